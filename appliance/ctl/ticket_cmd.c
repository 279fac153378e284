/*
 * appliance/ctl/ticket_cmd.c — `airmeshctl ticket create|list|show|update|comment|start`: the
 * org's tickets over /api/v1/tickets (issue 13). Every rule (keys, status moves, who may) is the
 * appliance's; this file builds the request and prints the answer (a table, the ticket, or the
 * JSON with --json). Texts given as "-" are read from stdin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ctl/ctl.h"

#define TEXT_MAX (64 * 1024)

static const char *opt(int argc, char **argv, const char *name) {
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return NULL;
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    }
    return NULL;
}

static int has_flag(int argc, char **argv, const char *name) {
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], name) == 0)
            return 1;
    }
    return 0;
}

/* s, or stdin's whole text for "-" (malloc'd; NULL on error). */
static char *text_arg(const char *s) {
    if (strcmp(s, "-") != 0)
        return strdup(s);
    char *b = malloc(TEXT_MAX + 2);
    size_t n = b ? fread(b, 1, TEXT_MAX + 1, stdin) : 0;
    if (!b)
        return NULL;
    if (n > TEXT_MAX) {
        fprintf(stderr, "airmeshctl: the text on stdin is longer than 64 KiB\n");
        free(b);
        return NULL;
    }
    while (n && (b[n - 1] == '\n' || b[n - 1] == '\r'))
        n--;
    b[n] = '\0';
    return b;
}

static void escape(const char *s, char *out, size_t cap) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '.' || *p == '_' || *p == '-')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
    }
    out[o] = '\0';
}

static json_t *csv(const char *s) {
    json_t *a = json_array();
    char *copy = strdup(s), *save = NULL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(a, json_string(t));
    free(copy);
    return a;
}

static const char *str(json_t *o, const char *k) {
    const char *v = json_string_value(json_object_get(o, k));
    return v && *v ? v : "-";
}

static void print_ticket(json_t *t) {
    printf("%s  %s\n", str(t, "key"), str(t, "title"));
    printf("status %s, priority %s, assignee %s\n", str(t, "status"), str(t, "priority"),
           str(t, "assignee"));
    static const char *const lists[] = {"labels", "blocks", "blocked_by", "pods"};
    for (size_t i = 0; i < 4; i++) {
        json_t *a = json_object_get(t, lists[i]), *v;
        size_t j;
        if (!json_array_size(a))
            continue;
        printf("%s:", lists[i]);
        json_array_foreach(a, j, v) printf("%s %s", j ? "," : "", json_string_value(v));
        printf("\n");
    }
    if (strcmp(str(t, "parent"), "-") != 0)
        printf("parent: %s\n", str(t, "parent"));
    if (strcmp(str(t, "branch"), "-") != 0)
        printf("branch: %s\n", str(t, "branch"));
    char when[64];
    am_ctl_local_time((long long)json_integer_value(json_object_get(t, "created_ms")), when,
                      sizeof when);
    printf("created by %s at %s\n", str(t, "created_by"), when);
    const char *d = json_string_value(json_object_get(t, "description"));
    if (d && *d)
        printf("\n%s\n", d);
    json_t *c;
    size_t i;
    json_array_foreach(json_object_get(t, "comments"), i, c) {
        am_ctl_local_time((long long)json_integer_value(json_object_get(c, "time_ms")), when,
                          sizeof when);
        printf("\n-- %s, %s\n%s\n", str(c, "author"), when, str(c, "body"));
    }
}

static int answer(long st, long want, json_t *resp, int json, const char *done) {
    if (st != want)
        return am_ctl_report(st, resp);
    if (json) {
        char *s = json_dumps(resp, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        json_t *t = json_object_get(resp, "ticket") ? json_object_get(resp, "ticket") : resp;
        if (done)
            printf(done, str(t, "key"));
        print_ticket(t);
    }
    json_decref(resp);
    return 0;
}

/* The fields create and update share, from the flags, into b. -1 on a bad text argument. */
static int fields(int argc, char **argv, json_t *b) {
    static const char *const flags[][2] = {
        {"--title", "title"},       {"--status", "status"}, {"--priority", "priority"},
        {"--assignee", "assignee"}, {"--parent", "parent"}, {"--description", "description"}};
    for (size_t i = 0; i < 6; i++) {
        const char *v = opt(argc, argv, flags[i][0]);
        if (!v)
            continue;
        char *t = text_arg(v);
        if (!t)
            return -1;
        json_object_set_new(b, flags[i][1], json_string(t));
        free(t);
    }
    const char *v;
    if ((v = opt(argc, argv, "--labels")))
        json_object_set_new(b, "labels", csv(v));
    if ((v = opt(argc, argv, "--blocks")))
        json_object_set_new(b, "blocks", csv(v));
    return 0;
}

static int cmd_list(am_ctl *c, int argc, char **argv, int json) {
    char path[1200] = "/api/v1/tickets", esc[300];
    static const char *const q[][2] = {{"--status", "status"},
                                       {"--assignee", "assignee"},
                                       {"--label", "label"},
                                       {"--search", "q"}};
    int first = 1;
    for (size_t i = 0; i < 4; i++) {
        const char *v = opt(argc, argv, q[i][0]);
        if (!v)
            continue;
        escape(v, esc, sizeof esc);
        size_t n = strlen(path);
        snprintf(path + n, sizeof path - n, "%s%s=%s", first ? "?" : "&", q[i][1], esc);
        first = 0;
    }
    json_t *resp = NULL;
    long st = am_ctl_api(c, "GET", path, NULL, &resp);
    if (st != 200)
        return am_ctl_report(st, resp);
    if (json) {
        char *s = json_dumps(resp, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(resp);
        return 0;
    }
    static const char *const heads[] = {"KEY", "STATUS", "PRIORITY", "ASSIGNEE", "TITLE"};
    am_ctl_table tb;
    am_ctl_table_init(&tb, 5, heads);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(resp, "tickets"), i, t) {
        const char *row[5] = {str(t, "key"), str(t, "status"), str(t, "priority"),
                              str(t, "assignee"), str(t, "title")};
        am_ctl_table_add(&tb, row);
    }
    am_ctl_table_print(&tb, stdout);
    am_ctl_table_free(&tb);
    json_decref(resp);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "airmeshctl: ticket create|list|show|update|comment|start (see airmeshctl "
                    "ticket --help)\n");
    return 2;
}

int am_ctl_ticket(am_ctl *c, int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 && argv[2][0] != '-' ? argv[2] : NULL;
    if (argc > 2 && strcmp(argv[2], "-") == 0)
        arg = argv[2];
    int json = has_flag(argc, argv, "--json");
    char path[400], esc[200];
    json_t *resp = NULL;
    if (strcmp(sub, "list") == 0)
        return cmd_list(c, argc, argv, json);
    if (!arg)
        return usage();
    if (strcmp(sub, "create") == 0) {
        char *title = text_arg(arg);
        json_t *b = json_object();
        if (!title || fields(argc, argv, b) != 0) {
            free(title);
            json_decref(b);
            return 1;
        }
        json_object_set_new(b, "title", json_string(title));
        free(title);
        long st = am_ctl_api(c, "POST", "/api/v1/tickets", b, &resp);
        json_decref(b);
        return answer(st, 201, resp, json, "ticket %s created\n");
    }
    escape(arg, esc, sizeof esc);
    if (strcmp(sub, "show") == 0) {
        snprintf(path, sizeof path, "/api/v1/tickets/%s", esc);
        long st = am_ctl_api(c, "GET", path, NULL, &resp);
        return answer(st, 200, resp, json, NULL);
    }
    if (strcmp(sub, "update") == 0) {
        json_t *b = json_object();
        if (fields(argc, argv, b) != 0) {
            json_decref(b);
            return 1;
        }
        if (json_object_size(b) == 0) {
            json_decref(b);
            fprintf(stderr, "airmeshctl: ticket update KEY: say what changes (--status, --title, "
                            "...; see ticket --help)\n");
            return 2;
        }
        snprintf(path, sizeof path, "/api/v1/tickets/%s", esc);
        long st = am_ctl_api(c, "PATCH", path, b, &resp);
        json_decref(b);
        return answer(st, 200, resp, json, "ticket %s updated\n");
    }
    if (strcmp(sub, "comment") == 0) {
        const char *text = argc > 3 ? argv[3] : NULL;
        char *body = text ? text_arg(text) : NULL;
        if (!body) {
            if (!text)
                fprintf(stderr, "airmeshctl: ticket comment KEY TEXT (or - for stdin)\n");
            return text ? 1 : 2;
        }
        json_t *b = json_pack("{s:s}", "body", body);
        free(body);
        snprintf(path, sizeof path, "/api/v1/tickets/%s/comments", esc);
        long st = am_ctl_api(c, "POST", path, b, &resp);
        json_decref(b);
        return answer(st, 201, resp, json, "comment added to %s\n");
    }
    if (strcmp(sub, "start") == 0) {
        const char *repo = opt(argc, argv, "--repo");
        if (!repo) {
            fprintf(stderr, "airmeshctl: ticket start KEY --repo PATH [--agent NAME] [--runner "
                            "ID] [-- COMMAND...]\n");
            return 2;
        }
        json_t *b = json_pack("{s:s}", "repo", repo);
        static const char *const flags[][2] = {{"--agent", "agent"},
                                               {"--runner", "runner"},
                                               {"--base-ref", "base_ref"},
                                               {"--network", "network"}};
        for (size_t i = 0; i < 4; i++) {
            const char *v = opt(argc, argv, flags[i][0]);
            if (v)
                json_object_set_new(b, flags[i][1], json_string(v));
        }
        for (int i = 0; i < argc; i++)
            if (strcmp(argv[i], "--") == 0 && i + 1 < argc) {
                json_t *cmd = json_array();
                for (int j = i + 1; j < argc; j++)
                    json_array_append_new(cmd, json_string(argv[j]));
                json_object_set_new(b, "command", cmd);
                break;
            }
        snprintf(path, sizeof path, "/api/v1/tickets/%s/start", esc);
        long st = am_ctl_api(c, "POST", path, b, &resp);
        json_decref(b);
        if (st == 201 && !json) {
            json_t *p = json_object_get(resp, "pod");
            printf("pod %s started for %s on branch %s\n", str(p, "id"),
                   str(json_object_get(resp, "ticket"), "key"), str(p, "branch"));
            json_decref(resp);
            return 0;
        }
        return answer(st, 201, resp, json, NULL);
    }
    return usage();
}
