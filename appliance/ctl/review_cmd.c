/*
 * appliance/ctl/review_cmd.c — review of a pod's branch from the command line (issue 13):
 *   airmeshctl pod diff ID [--json] [--max-bytes N]   the patch (or the whole review as JSON)
 *   airmeshctl pod review ID --comment FILE:LINE:TEXT ... [--summary TEXT]
 *   airmeshctl pod approve ID
 * Thin: one REST call each (GET /api/v1/pods/{id}/review, POST .../review/comments,
 * POST .../review/approve); the appliance asks the pod's runner, so these may take a while.
 * Threads: main only.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ctl/ctl.h"

static int usage(void) {
    fprintf(stderr, "airmeshctl pod: expected diff ID [--json] [--max-bytes N], review ID "
                    "--comment FILE:LINE:TEXT ... [--summary TEXT], approve ID (see airmeshctl "
                    "help pod)\n");
    return 2;
}

static int diff(am_ctl *c, int argc, char **argv) {
    const char *id = argv[2], *max = NULL;
    int as_json = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (strcmp(argv[i], "--max-bytes") == 0 && i + 1 < argc)
            max = argv[++i];
        else
            return usage();
    }
    char path[400];
    snprintf(path, sizeof path, "/api/v1/pods/%s/review%s%s", id, max ? "?max_bytes=" : "",
             max ? max : "");
    json_t *resp = NULL;
    long st = am_ctl_api(c, "GET", path, NULL, &resp);
    if (st != 200)
        return am_ctl_report(st, resp);
    if (as_json) {
        json_dumpf(resp, stdout, JSON_INDENT(2));
        printf("\n");
    } else {
        fputs(json_string_value(json_object_get(resp, "diff")), stdout);
        if (json_is_true(json_object_get(resp, "truncated")))
            fprintf(stderr, "airmeshctl: the diff was cut (see --max-bytes)\n");
    }
    json_decref(resp);
    return 0;
}

/* "FILE:LINE:TEXT" (the file may hold ':' — the LINE is the last ":<digits>:" before TEXT). */
static json_t *parse_comment(const char *s) {
    for (const char *p = strchr(s, ':'); p; p = strchr(p + 1, ':')) {
        const char *q = p + 1;
        while (*q >= '0' && *q <= '9')
            q++;
        if (q > p + 1 && *q == ':' && q[1] && p > s) {
            json_t *o = json_object();
            json_object_set_new(o, "file", json_stringn(s, (size_t)(p - s)));
            json_object_set_new(o, "line", json_integer(atol(p + 1)));
            json_object_set_new(o, "text", json_string(q + 1));
            return o;
        }
    }
    return NULL;
}

static int review(am_ctl *c, int argc, char **argv) {
    json_t *body = json_object(), *cs = json_array();
    json_object_set_new(body, "comments", cs);
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--comment") == 0 && i + 1 < argc) {
            json_t *o = parse_comment(argv[++i]);
            if (!o) {
                fprintf(stderr, "airmeshctl: --comment %s: expected FILE:LINE:TEXT\n", argv[i]);
                json_decref(body);
                return 2;
            }
            json_array_append_new(cs, o);
        } else if (strcmp(argv[i], "--summary") == 0 && i + 1 < argc) {
            json_object_set_new(body, "summary", json_string(argv[++i]));
        } else {
            json_decref(body);
            return usage();
        }
    }
    if (json_array_size(cs) == 0) {
        json_decref(body);
        fprintf(stderr, "airmeshctl: pod review: at least one --comment FILE:LINE:TEXT\n");
        return 2;
    }
    char path[300];
    snprintf(path, sizeof path, "/api/v1/pods/%s/review/comments", argv[2]);
    json_t *resp = NULL;
    long st = am_ctl_api(c, "POST", path, body, &resp);
    json_decref(body);
    if (st != 200)
        return am_ctl_report(st, resp);
    const char *how = json_string_value(json_object_get(resp, "delivered"));
    json_t *np = json_object_get(resp, "new_pod");
    if (how && strcmp(how, "new_pod") == 0 && np)
        printf("%s ended: started %s on branch %s with the comments as its prompt\n", argv[2],
               json_string_value(json_object_get(np, "id")),
               json_string_value(json_object_get(np, "branch")));
    else
        printf("%s: %d comment(s) sent as a prompt\n", argv[2],
               (int)json_integer_value(json_object_get(resp, "count")));
    json_decref(resp);
    return 0;
}

static int approve(am_ctl *c, const char *id) {
    char path[300];
    snprintf(path, sizeof path, "/api/v1/pods/%s/review/approve", id);
    json_t *resp = NULL, *empty = json_object();
    long st = am_ctl_api(c, "POST", path, empty, &resp);
    json_decref(empty);
    if (st != 200)
        return am_ctl_report(st, resp);
    const char *state = json_string_value(json_object_get(resp, "review_state"));
    if (state && strcmp(state, "approved") == 0)
        printf("%s approved: pushed %s to %s\n", id,
               json_string_value(json_object_get(resp, "pushed_commit")),
               json_string_value(json_object_get(resp, "pushed_to")));
    else
        printf("%s ready: approved, not pushed (the runner holds no credentials for the "
               "repository's remote)\n",
               id);
    json_decref(resp);
    return 0;
}

int am_ctl_pod_review(am_ctl *c, int argc, char **argv) {
    if (argc < 3 || argv[2][0] == '-')
        return usage();
    if (strcmp(argv[1], "diff") == 0)
        return diff(c, argc, argv);
    if (strcmp(argv[1], "review") == 0)
        return review(c, argc, argv);
    if (strcmp(argv[1], "approve") == 0 && argc == 3)
        return approve(c, argv[2]);
    return usage();
}
