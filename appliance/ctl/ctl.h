/*
 * appliance/ctl — airmeshctl internals shared by its command files (not a library).
 */
#ifndef AM_APPLIANCE_CTL_H
#define AM_APPLIANCE_CTL_H

#include <jansson.h>

typedef struct {
    const char *url;
    const char *ca;
    char token[256];
} am_ctl;

/* One API call; *out is the JSON response (caller decrefs). Returns the HTTP status or -1. */
long am_ctl_api(am_ctl *c, const char *method, const char *path, json_t *body, json_t **out);
/* Print the API's error for a failed call (consumes resp); returns 1. */
int am_ctl_report(long status, json_t *resp);
/* GET path into file (atomically via FILE.part); prints the API error on failure. */
int am_ctl_download(am_ctl *c, const char *path, const char *file);

int am_ctl_pod(am_ctl *c, int argc, char **argv);
/* org | user | team | api-token subcommands (argv[0] names which). */
int am_ctl_tenancy(am_ctl *c, int argc, char **argv);

#endif
