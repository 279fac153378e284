/*
 * appliance/ctl — airmeshctl internals shared by its command files (not a library).
 */
#ifndef AM_APPLIANCE_CTL_H
#define AM_APPLIANCE_CTL_H

#include <jansson.h>
#include <stdio.h>

typedef struct {
    const char *url;
    const char *ca;
    char token[256];
} am_ctl;

/* One API call; *out is the JSON response (caller decrefs). Returns the HTTP status or -1. */
long am_ctl_api(am_ctl *c, const char *method, const char *path, json_t *body, json_t **out);
/* A libcurl failure (no HTTP answer) in words: what to check. code is a CURLcode. */
void am_ctl_curl_error(const char *url, int code);
/* Print the API's error for a failed call (consumes resp); returns 1. */
int am_ctl_report(long status, json_t *resp);
/* GET path into file (atomically via FILE.part); prints the API error on failure. */
int am_ctl_download(am_ctl *c, const char *path, const char *file);

int am_ctl_pod(am_ctl *c, int argc, char **argv);
/* agent list [--json] | pod prompt ID TEXT (agent_cmd.c; argv[0] is "agent" / "pod"). */
int am_ctl_agent(am_ctl *c, int argc, char **argv);
int am_ctl_pod_prompt(am_ctl *c, int argc, char **argv);
/* pod diff | review | approve (review_cmd.c; argv[0] is "pod"). */
int am_ctl_pod_review(am_ctl *c, int argc, char **argv);
/* pod logs ID [--follow] | pod attach ID (attach_cmd.c; argv[0] is "pod"). */
int am_ctl_pod_terminal(am_ctl *c, int argc, char **argv);
/* Print the help of one command (NULL: the overview) on out; 0, or 2 for an unknown command. */
int am_ctl_help(const char *cmd, FILE *out);
/* 1 when argv (up to a "--") asks for help: --help or -h. */
int am_ctl_wants_help(int argc, char **argv);
/* The value after option `name` in argv (the first occurrence), or NULL; and 1 when the flag
 * `name` is in argv. Neither stops at "--" (ticket_cmd.c has its own that do). */
const char *am_ctl_opt(int argc, char **argv, const char *name);
int am_ctl_has_flag(int argc, char **argv, const char *name);
/* A time in the local zone, ISO 8601 to the second ("2026-12-01T21:23:55+01:00"); "-" for 0. */
void am_ctl_local_time(long long ms, char *buf, size_t cap);

/* Lists (table.c): columns padded by display width; the last column is never cut. */
typedef struct {
    size_t ncols, nrows, cap;
    char **cells;
} am_ctl_table;
void am_ctl_table_init(am_ctl_table *t, size_t ncols, const char *const *headers);
void am_ctl_table_add(am_ctl_table *t, const char *const *row);
void am_ctl_table_print(const am_ctl_table *t, FILE *out);
void am_ctl_table_free(am_ctl_table *t);
size_t am_ctl_display_width(const char *s);
/* Display names (user_cmd.c): check text with the appliance's rule (common/display_name.h)
 * into out (AM_DISPLAY_NAME_BUF); on a refusal print "airmeshctl CMD: why" and return -1. */
int am_ctl_display_name_arg(const char *cmd, const char *text, char *out, size_t cap);
/* `WHAT rename ID "TEXT" | --clear` (argv[first...]): PATCH path {"display_name"}; prints the
 * result. Returns the exit status. */
int am_ctl_rename(am_ctl *c, const char *what, const char *path, const char *id, int argc,
                  char **argv, int first);
/* model add|list|show|test|rm (model_cmd.c; argv[0] is "model"). */
int am_ctl_model(am_ctl *c, int argc, char **argv);
/* ticket create|list|show|update|comment|start (ticket_cmd.c; argv[0] is "ticket"). */
int am_ctl_ticket(am_ctl *c, int argc, char **argv);
/* `airmeshctl channel ...` (channel_cmd.c). */
int am_ctl_channel(am_ctl *c, int argc, char **argv);
/* `airmeshctl binding ...` and `org binding-policy ORG [POLICY]` (binding_cmd.c). */
int am_ctl_binding(am_ctl *c, int argc, char **argv);
int am_ctl_org_binding_policy(am_ctl *c, int argc, char **argv);
/* org | user | team | api-token subcommands (argv[0] names which). */
int am_ctl_tenancy(am_ctl *c, int argc, char **argv);
/* usage_cmd.c: `usage`, `org quota` */
int am_ctl_usage(am_ctl *c, int argc, char **argv);
int am_ctl_org_quota(am_ctl *c, int argc, char **argv);

#endif
