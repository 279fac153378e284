/*
 * appliance/ctl/binding_cmd.c — `airmeshctl binding list|request|accept|reject|end` and
 * `airmeshctl org binding-policy ORG same_creator|explicit`: pod bindings over /api/v1/bindings
 * (issue 13). A thin client: who may and what happens is the appliance's; this prints the
 * binding's state (active at once under same_creator, or pending until the target's side accepts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ctl/ctl.h"

/* Ids go into paths: [a-z0-9-] only (anything else is refused here). */
static int id_ok(const char *s) {
    if (!s || !*s || strlen(s) > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return 0;
    return 1;
}

/* "90", "90s", "15m", "1h", "7d" → seconds; -1 when malformed. */
static long long parse_ttl(const char *s) {
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0)
        return -1;
    long long mul = !*end               ? 1
                    : !strcmp(end, "s") ? 1
                    : !strcmp(end, "m") ? 60
                    : !strcmp(end, "h") ? 3600
                    : !strcmp(end, "d") ? 86400
                                        : 0;
    if (!mul || v > 30ll * 86400 / mul)
        return -1;
    return v * mul;
}

static void dump(json_t *j) {
    char *s = json_dumps(j, JSON_INDENT(2));
    printf("%s\n", s ? s : "{}");
    free(s);
}

static const char *str(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void scopes_text(json_t *b, char *out, size_t cap) {
    size_t i, n = 0;
    json_t *s;
    out[0] = 0;
    json_array_foreach(json_object_get(b, "scopes"), i, s) {
        int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", json_string_value(s));
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
}

static void print_one(const char *verb, json_t *b) {
    char sc[32];
    scopes_text(b, sc, sizeof sc);
    printf("binding %s %s: %s → %s [%s], %s%s%s\n", str(b, "id"), verb, str(b, "from_pod"),
           str(b, "to_pod"), sc, str(b, "state"), *str(b, "reason") ? ": " : "", str(b, "reason"));
}

static int cmd_list(am_ctl *c, int argc, char **argv) {
    const char *pod = am_ctl_opt(argc, argv, "--pod");
    if (pod && !id_ok(pod)) {
        fprintf(stderr, "airmeshctl binding list: --pod takes a pod id\n");
        return 2;
    }
    char path[160];
    snprintf(path, sizeof path, "/api/v1/bindings%s%s", pod ? "?pod=" : "", pod ? pod : "");
    json_t *resp = NULL;
    long st = am_ctl_api(c, "GET", path, NULL, &resp);
    if (st != 200)
        return am_ctl_report(st, resp);
    if (am_ctl_has_flag(argc, argv, "--json")) {
        dump(resp);
        json_decref(resp);
        return 0;
    }
    static const char *const heads[] = {"ID", "FROM", "TO", "SCOPES", "STATE", "EXPIRES", "BY"};
    am_ctl_table tb;
    am_ctl_table_init(&tb, 7, heads);
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(resp, "bindings"), i, b) {
        char sc[32], exp[40];
        scopes_text(b, sc, sizeof sc);
        am_ctl_local_time((long long)json_integer_value(json_object_get(b, "expires_ms")), exp,
                          sizeof exp);
        const char *row[7] = {
            str(b, "id"), str(b, "from_pod"),  str(b, "to_pod"), sc, str(b, "state"),
            exp,          str(b, "created_by")};
        am_ctl_table_add(&tb, row);
    }
    am_ctl_table_print(&tb, stdout);
    am_ctl_table_free(&tb);
    json_decref(resp);
    return 0;
}

static int cmd_request(am_ctl *c, int argc, char **argv) {
    const char *from = argc > 2 ? argv[2] : NULL, *to = argc > 3 ? argv[3] : NULL;
    const char *scopes = am_ctl_opt(argc, argv, "--scopes"), *ttl = am_ctl_opt(argc, argv, "--ttl");
    if (!id_ok(from) || !id_ok(to) || !scopes) {
        fprintf(stderr, "airmeshctl binding request: expected FROM_POD TO_POD --scopes "
                        "read,write [--ttl 1h]\n");
        return 2;
    }
    long long ttl_s = 0;
    if (ttl && (ttl_s = parse_ttl(ttl)) < 0) {
        fprintf(stderr, "airmeshctl binding request: --ttl like 90s, 15m, 1h or 7d (at most 30d; "
                        "0 = never)\n");
        return 2;
    }
    json_t *sc = json_array();
    char buf[64];
    snprintf(buf, sizeof buf, "%s", scopes);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(sc, json_string(t));
    json_t *body = json_pack("{s:s,s:s,s:o,s:I}", "from_pod", from, "to_pod", to, "scopes", sc,
                             "ttl_s", (json_int_t)ttl_s);
    json_t *resp = NULL;
    long st = am_ctl_api(c, "POST", "/api/v1/bindings", body, &resp);
    json_decref(body);
    if (st != 201)
        return am_ctl_report(st, resp);
    if (am_ctl_has_flag(argc, argv, "--json"))
        dump(resp);
    else
        print_one("requested", resp);
    json_decref(resp);
    return 0;
}

static int cmd_change(am_ctl *c, int argc, char **argv, const char *sub) {
    const char *id = argc > 2 ? argv[2] : NULL;
    if (!id_ok(id)) {
        fprintf(stderr, "airmeshctl binding %s: expected a binding ID\n", sub);
        return 2;
    }
    char path[160];
    const char *method = "POST", *verb = "accepted";
    json_t *body = NULL;
    if (!strcmp(sub, "end")) {
        snprintf(path, sizeof path, "/api/v1/bindings/%s", id);
        method = "DELETE";
        verb = "ended";
    } else {
        snprintf(path, sizeof path, "/api/v1/bindings/%s/%s", id, sub);
        if (!strcmp(sub, "reject")) {
            const char *reason = am_ctl_opt(argc, argv, "--reason");
            body = reason ? json_pack("{s:s}", "reason", reason) : json_object();
            if (!body) {
                fprintf(stderr, "airmeshctl binding reject: --reason must be UTF-8\n");
                return 2;
            }
            verb = "rejected";
        }
    }
    json_t *resp = NULL;
    long st = am_ctl_api(c, method, path, body, &resp);
    json_decref(body);
    if (st != 200)
        return am_ctl_report(st, resp);
    if (am_ctl_has_flag(argc, argv, "--json"))
        dump(resp);
    else
        print_one(verb, resp);
    json_decref(resp);
    return 0;
}

int am_ctl_binding(am_ctl *c, int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : "";
    if (!strcmp(sub, "list"))
        return cmd_list(c, argc, argv);
    if (!strcmp(sub, "request"))
        return cmd_request(c, argc, argv);
    if (!strcmp(sub, "accept") || !strcmp(sub, "reject") || !strcmp(sub, "end"))
        return cmd_change(c, argc, argv, sub);
    fprintf(stderr, "airmeshctl binding: expected list [--pod ID] | request FROM TO --scopes "
                    "read,write [--ttl 1h] | accept ID | reject ID [--reason T] | end ID (see "
                    "airmeshctl help binding)\n");
    return 2;
}

int am_ctl_org_binding_policy(am_ctl *c, int argc, char **argv) {
    const char *org = argc > 2 ? argv[2] : NULL, *policy = argc > 3 ? argv[3] : NULL;
    if (!id_ok(org)) {
        fprintf(stderr, "airmeshctl org binding-policy: expected ORG [same_creator|explicit]\n");
        return 2;
    }
    char path[160];
    snprintf(path, sizeof path, "/api/v1/orgs/%s/binding-policy", org);
    json_t *resp = NULL, *body = policy ? json_pack("{s:s}", "policy", policy) : NULL;
    long st = am_ctl_api(c, policy ? "PUT" : "GET", path, body, &resp);
    json_decref(body);
    if (st != 200)
        return am_ctl_report(st, resp);
    printf("org %s binding policy: %s\n", str(resp, "org"), str(resp, "policy"));
    json_decref(resp);
    return 0;
}
