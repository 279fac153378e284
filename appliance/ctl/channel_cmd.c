/*
 * appliance/ctl/channel_cmd.c — `airmeshctl channel create|list|post|read|join|leave`: the
 * org's channels over /api/v1/channels (issue 13). post says what became of each @mention of a
 * pod (queued until it waits, or refused and why); read prints one message per line, oldest
 * first, with local times.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ctl/ctl.h"

#define TEXT_MAX (16 * 1024)

/* Channel names are [a-z0-9_-]: no escaping needed, anything else is refused here. */
static int name_ok(const char *n) {
    if (!n || !*n || strlen(n) > 48)
        return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return 0;
    return 1;
}

static void dump(json_t *j) {
    char *s = json_dumps(j, JSON_INDENT(2));
    printf("%s\n", s ? s : "{}");
    free(s);
}

static int cmd_list(am_ctl *c, int json) {
    json_t *resp = NULL;
    long st = am_ctl_api(c, "GET", "/api/v1/channels", NULL, &resp);
    if (st != 200)
        return am_ctl_report(st, resp);
    if (json) {
        dump(resp);
        json_decref(resp);
        return 0;
    }
    static const char *const heads[] = {"NAME", "MEMBERS", "MESSAGES", "CREATED BY"};
    am_ctl_table tb;
    am_ctl_table_init(&tb, 4, heads);
    size_t i;
    json_t *ch;
    json_array_foreach(json_object_get(resp, "channels"), i, ch) {
        char members[16], msgs[24];
        snprintf(members, sizeof members, "%zu", json_array_size(json_object_get(ch, "members")));
        snprintf(msgs, sizeof msgs, "%lld",
                 (long long)json_integer_value(json_object_get(ch, "messages")));
        const char *row[4] = {json_string_value(json_object_get(ch, "name")), members, msgs,
                              json_string_value(json_object_get(ch, "created_by"))};
        am_ctl_table_add(&tb, row);
    }
    am_ctl_table_print(&tb, stdout);
    am_ctl_table_free(&tb);
    json_decref(resp);
    return 0;
}

static int cmd_create(am_ctl *c, int argc, char **argv, const char *name) {
    json_t *members = json_array();
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "--member") == 0)
            json_array_append_new(members, json_string(argv[++i]));
    json_t *resp = NULL;
    json_t *b = json_pack("{s:s,s:o}", "name", name, "members", members);
    long st = am_ctl_api(c, "POST", "/api/v1/channels", b, &resp);
    json_decref(b);
    if (st != 201)
        return am_ctl_report(st, resp);
    printf("channel #%s created (%zu members)\n", name,
           json_array_size(json_object_get(resp, "members")));
    json_decref(resp);
    return 0;
}

static char *read_stdin(void) {
    char *b = malloc(TEXT_MAX + 2);
    size_t n = b ? fread(b, 1, TEXT_MAX + 1, stdin) : 0;
    if (!b)
        return NULL;
    b[n] = '\0';
    return b;
}

static int cmd_post(am_ctl *c, const char *name, const char *text, int json) {
    char *in = NULL;
    if (strcmp(text, "-") == 0) {
        if (!(in = read_stdin())) {
            fprintf(stderr, "airmeshctl: out of memory\n");
            return 1;
        }
        text = in;
    }
    char path[120];
    snprintf(path, sizeof path, "/api/v1/channels/%s/messages", name);
    json_t *resp = NULL;
    json_t *b = json_pack("{s:s}", "text", text);
    free(in);
    if (!b) {
        fprintf(stderr, "airmeshctl: the text must be UTF-8\n");
        return 1;
    }
    long st = am_ctl_api(c, "POST", path, b, &resp);
    json_decref(b);
    if (st != 201)
        return am_ctl_report(st, resp);
    if (json) {
        dump(resp);
        json_decref(resp);
        return 0;
    }
    printf("message %lld posted to #%s\n",
           (long long)json_integer_value(json_object_get(resp, "seq")), name);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(resp, "mentions"), i, m) {
        const char *state = json_string_value(json_object_get(m, "state"));
        const char *why = json_string_value(json_object_get(m, "reason"));
        printf("  @%s: %s%s%s\n", json_string_value(json_object_get(m, "pod")), state,
               why && *why ? ": " : "", why && *why ? why : "");
    }
    json_decref(resp);
    return 0;
}

static int cmd_read(am_ctl *c, int argc, char **argv, const char *name, int json) {
    const char *before = am_ctl_opt(argc, argv, "--before"),
               *after = am_ctl_opt(argc, argv, "--after");
    const char *limit = am_ctl_opt(argc, argv, "--limit");
    char path[200];
    int n = snprintf(path, sizeof path, "/api/v1/channels/%s/messages?limit=%s", name,
                     limit ? limit : "50");
    if (before)
        snprintf(path + n, sizeof path - (size_t)n, "&before=%s", before);
    else if (after)
        snprintf(path + n, sizeof path - (size_t)n, "&after=%s", after);
    json_t *resp = NULL;
    long st = am_ctl_api(c, "GET", path, NULL, &resp);
    if (st != 200)
        return am_ctl_report(st, resp);
    if (json) {
        dump(resp);
        json_decref(resp);
        return 0;
    }
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(resp, "messages"), i, m) {
        char when[64];
        am_ctl_local_time((long long)json_integer_value(json_object_get(m, "time_ms")), when,
                          sizeof when);
        const char *author = json_string_value(json_object_get(m, "author"));
        if (author && strncmp(author, "user:", 5) == 0)
            author += 5;
        printf("%lld  %s  %s: %s\n", (long long)json_integer_value(json_object_get(m, "seq")), when,
               author ? author : "?", json_string_value(json_object_get(m, "text")));
    }
    if (json_is_true(json_object_get(resp, "more")))
        printf(
            "(more: --%s %lld)\n", after ? "after" : "before",
            (long long)json_integer_value(json_object_get(
                json_array_get(json_object_get(resp, "messages"),
                               after ? json_array_size(json_object_get(resp, "messages")) - 1 : 0),
                "seq")));
    json_decref(resp);
    return 0;
}

static int cmd_member(am_ctl *c, const char *name, int join) {
    char path[120];
    snprintf(path, sizeof path, "/api/v1/channels/%s/members", name);
    json_t *resp = NULL;
    json_t *b = join ? json_object() : NULL;
    long st = am_ctl_api(c, join ? "POST" : "DELETE", path, b, &resp);
    json_decref(b);
    if (st != 200)
        return am_ctl_report(st, resp);
    printf("%s #%s\n", join ? "joined" : "left", name);
    json_decref(resp);
    return 0;
}

int am_ctl_channel(am_ctl *c, int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : "";
    const char *name = argc > 2 && argv[2][0] != '-' ? argv[2] : NULL;
    int json = am_ctl_has_flag(argc, argv, "--json");
    if (strcmp(sub, "list") == 0)
        return cmd_list(c, json);
    if (name && !name_ok(name)) {
        fprintf(stderr, "airmeshctl: channel name: 1-48 of a-z 0-9 - _\n");
        return 2;
    }
    if (strcmp(sub, "create") == 0 && name)
        return cmd_create(c, argc, argv, name);
    if (strcmp(sub, "post") == 0 && name && argc > 3)
        return cmd_post(c, name, argv[3], json);
    if (strcmp(sub, "read") == 0 && name)
        return cmd_read(c, argc, argv, name, json);
    if ((strcmp(sub, "join") == 0 || strcmp(sub, "leave") == 0) && name)
        return cmd_member(c, name, strcmp(sub, "join") == 0);
    fprintf(stderr, "airmeshctl: channel create|list|post|read|join|leave (see airmeshctl channel "
                    "--help)\n");
    return 2;
}
