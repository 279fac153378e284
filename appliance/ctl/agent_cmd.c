/*
 * appliance/ctl/agent_cmd.c — `airmeshctl agent list [--json]` (GET /api/v1/agents: the catalog
 * and which online runners have each CLI) and `airmeshctl pod prompt ID TEXT` (POST
 * /api/v1/pods/{id}/prompt; TEXT "-" reads stdin, up to 64 KiB). A thin client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ctl/ctl.h"

#define PROMPT_MAX (64u << 10)

int am_ctl_agent(am_ctl *c, int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : "";
    if (strcmp(sub, "list") != 0 || argc > 3 || (argc == 3 && strcmp(argv[2], "--json") != 0)) {
        fprintf(stderr, "airmeshctl agent: expected list [--json] (see airmeshctl help agent)\n");
        return 2;
    }
    json_t *resp = NULL;
    long st = am_ctl_api(c, "GET", "/api/v1/agents", NULL, &resp);
    if (st != 200)
        return am_ctl_report(st, resp);
    json_t *agents = json_object_get(resp, "agents");
    if (argc == 3) {
        json_dumpf(agents, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(resp);
        return 0;
    }
    am_ctl_table t;
    am_ctl_table_init(&t, 4, (const char *[]){"AGENT", "PROMPT", "RUNNERS", "COMMAND"});
    size_t i, j;
    json_t *a, *r, *w;
    json_array_foreach(agents, i, a) {
        char runners[1024] = "", cmd[1024] = "";
        size_t o = 0;
        json_array_foreach(json_object_get(a, "runners"), j, r) {
            const char *v = json_string_value(json_object_get(r, "version"));
            int n = snprintf(runners + o, sizeof runners - o, "%s%s%s%s", j ? ", " : "",
                             json_string_value(json_object_get(r, "id")), v && *v ? " " : "",
                             v ? v : "");
            if (n < 0 || (size_t)n >= sizeof runners - o)
                break;
            o += (size_t)n;
        }
        o = 0;
        json_array_foreach(json_object_get(a, "command"), j, w) {
            int n = snprintf(cmd + o, sizeof cmd - o, "%s%s", j ? " " : "", json_string_value(w));
            if (n < 0 || (size_t)n >= sizeof cmd - o)
                break;
            o += (size_t)n;
        }
        am_ctl_table_add(&t, (const char *[]){json_string_value(json_object_get(a, "name")),
                                              json_string_value(json_object_get(a, "prompt")),
                                              runners[0] ? runners : "-", cmd});
    }
    am_ctl_table_print(&t, stdout);
    am_ctl_table_free(&t);
    json_decref(resp);
    return 0;
}

int am_ctl_pod_prompt(am_ctl *c, int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "airmeshctl pod prompt: expected ID TEXT (TEXT - reads stdin)\n");
        return 2;
    }
    char *text = NULL;
    size_t len = 0;
    if (strcmp(argv[3], "-") == 0) {
        text = malloc(PROMPT_MAX + 2);
        if (!text)
            return 1;
        len = fread(text, 1, PROMPT_MAX + 1, stdin);
        if (len > PROMPT_MAX) {
            fprintf(stderr, "airmeshctl pod prompt: stdin holds more than %u bytes\n", PROMPT_MAX);
            free(text);
            return 2;
        }
        text[len] = '\0';
    } else {
        text = strdup(argv[3]);
        len = text ? strlen(text) : 0;
    }
    json_t *body = text ? json_object() : NULL;
    json_t *s = text ? json_stringn(text, len) : NULL;
    free(text);
    if (!s) {
        json_decref(body);
        fprintf(stderr, "airmeshctl pod prompt: TEXT is not valid UTF-8\n");
        return 2;
    }
    json_object_set_new(body, "text", s);
    char path[300];
    snprintf(path, sizeof path, "/api/v1/pods/%s/prompt", argv[2]);
    json_t *resp = NULL;
    long st = am_ctl_api(c, "POST", path, body, &resp);
    json_decref(body);
    if (st != 200)
        return am_ctl_report(st, resp);
    printf("%s: prompt sent (%lld bytes)\n", argv[2],
           (long long)json_integer_value(json_object_get(resp, "length")));
    json_decref(resp);
    return 0;
}
