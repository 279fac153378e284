/*
 * appliance/ctl/model_cmd.c — `airmeshctl model add|list|show|test|rm`: the org's model
 * endpoints over /api/v1/models. add and test print the appliance's self-test as a table
 * (model, completion, tool calls, latency, error).
 *
 * The key is read from --key-file (trailing whitespace and newlines dropped), sent once in the
 * add request and wiped; it is never printed, and no answer carries it back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ctl/ctl.h"
#include "common/util.h"

#define KEY_MAX 4096
#define CA_MAX (64 * 1024)

/* Read at most max bytes of path into a NUL-terminated malloc'd buffer. */
static char *read_file(const char *path, size_t max, const char *what) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "airmeshctl: cannot read the %s from %s\n", what, path);
        return NULL;
    }
    char *b = malloc(max + 2);
    size_t n = b ? fread(b, 1, max + 1, f) : 0;
    fclose(f);
    if (!b)
        return NULL;
    if (n > max) {
        fprintf(stderr, "airmeshctl: %s is larger than the %s limit (%zu bytes)\n", path, what,
                max);
        am_wipe(b, max + 2);
        free(b);
        return NULL;
    }
    b[n] = '\0';
    return b;
}

/* name with every byte outside [A-Za-z0-9._-] percent-encoded, into out. */
static void escape(const char *name, char *out, size_t cap) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '.' || *p == '_' || *p == '-')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
    }
    out[o] = '\0';
}

static void print_test(json_t *t) {
    if (!json_is_object(t)) {
        printf("self-test: none yet (airmeshctl model test NAME)\n");
        return;
    }
    const char *err = json_string_value(json_object_get(t, "error"));
    char when[64];
    am_ctl_local_time((long long)json_integer_value(json_object_get(t, "time_ms")), when,
                      sizeof when);
    if (!json_is_true(json_object_get(t, "reachable"))) {
        printf("self-test (%s): NOT reachable: %s\n", when, err && *err ? err : "no answer");
        return;
    }
    printf("self-test (%s): reachable", when);
    json_t *listed = json_object_get(t, "models_listed"), *m;
    size_t i;
    if (json_array_size(listed)) {
        printf("; models listed:");
        json_array_foreach(listed, i, m) printf("%s %s", i ? "," : "", json_string_value(m));
    }
    printf("\n");
    if (err && *err)
        printf("  note: %s\n", err);
    json_t *checks = json_object_get(t, "checks"), *k;
    if (!json_array_size(checks))
        return;
    static const char *const heads[] = {"MODEL", "COMPLETION", "TOOL CALLS", "LATENCY", "ERROR"};
    am_ctl_table tb;
    am_ctl_table_init(&tb, 5, heads);
    json_array_foreach(checks, i, k) {
        char lat[32];
        snprintf(lat, sizeof lat, "%lld ms",
                 (long long)json_integer_value(json_object_get(k, "latency_ms")));
        const char *e = json_string_value(json_object_get(k, "error"));
        const char *row[5] = {json_string_value(json_object_get(k, "model")),
                              json_is_true(json_object_get(k, "completion")) ? "yes" : "no",
                              json_is_true(json_object_get(k, "tool_call")) ? "yes" : "no", lat,
                              e && *e ? e : "-"};
        if (!row[0])
            row[0] = "?";
        am_ctl_table_add(&tb, row);
    }
    am_ctl_table_print(&tb, stdout);
    am_ctl_table_free(&tb);
}

static void print_endpoint(json_t *e) {
    json_t *models = json_object_get(e, "models"), *m;
    size_t i;
    printf("%s: %s %s, key %s%s, models:", json_string_value(json_object_get(e, "name")),
           json_string_value(json_object_get(e, "api")),
           json_string_value(json_object_get(e, "url")),
           json_is_true(json_object_get(e, "has_key")) ? "set" : "none",
           json_is_true(json_object_get(e, "has_ca")) ? ", own CA" : "");
    if (!json_array_size(models))
        printf(" any the server lists");
    json_array_foreach(models, i, m) printf("%s %s", i ? "," : "", json_string_value(m));
    printf("\n");
    print_test(json_object_get(e, "last_test"));
}

/* The self-test column of the list: "ok", "unreachable", "tools 1/2", "not tested". */
static void summary(json_t *t, char *buf, size_t cap) {
    if (!json_is_object(t)) {
        snprintf(buf, cap, "not tested");
        return;
    }
    if (!json_is_true(json_object_get(t, "reachable"))) {
        snprintf(buf, cap, "unreachable");
        return;
    }
    json_t *checks = json_object_get(t, "checks"), *k;
    size_t i, comp = 0, tools = 0, n = json_array_size(checks);
    json_array_foreach(checks, i, k) {
        comp += json_is_true(json_object_get(k, "completion"));
        tools += json_is_true(json_object_get(k, "tool_call"));
    }
    if (n == 0)
        snprintf(buf, cap, "no models");
    else if (comp == n && tools == n)
        snprintf(buf, cap, "ok (%zu model%s, tools ok)", n, n == 1 ? "" : "s");
    else
        snprintf(buf, cap, "completion %zu/%zu, tools %zu/%zu", comp, n, tools, n);
}

static int cmd_list(am_ctl *c, int json) {
    json_t *resp = NULL;
    long st = am_ctl_api(c, "GET", "/api/v1/models", NULL, &resp);
    if (st != 200)
        return am_ctl_report(st, resp);
    if (json) {
        char *s = json_dumps(resp, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(resp);
        return 0;
    }
    static const char *const heads[] = {"NAME", "API", "URL", "KEY", "MODELS", "SELF-TEST"};
    am_ctl_table tb;
    am_ctl_table_init(&tb, 6, heads);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(resp, "models"), i, e) {
        char models[300] = "", test[80];
        size_t j, o = 0;
        json_t *m;
        json_array_foreach(json_object_get(e, "models"), j, m) {
            int w =
                snprintf(models + o, sizeof models - o, "%s%s", j ? "," : "", json_string_value(m));
            if (w < 0 || (size_t)w >= sizeof models - o)
                break;
            o += (size_t)w;
        }
        summary(json_object_get(e, "last_test"), test, sizeof test);
        const char *row[6] = {json_string_value(json_object_get(e, "name")),
                              json_string_value(json_object_get(e, "api")),
                              json_string_value(json_object_get(e, "url")),
                              json_is_true(json_object_get(e, "has_key")) ? "set" : "-",
                              models[0] ? models : "(any)",
                              test};
        am_ctl_table_add(&tb, row);
    }
    am_ctl_table_print(&tb, stdout);
    am_ctl_table_free(&tb);
    json_decref(resp);
    return 0;
}

/* Print an endpoint answer (consumes resp) as text or JSON. */
static int show(long st, long want, json_t *resp, int json, const char *done) {
    if (st != want)
        return am_ctl_report(st, resp);
    if (json) {
        char *s = json_dumps(resp, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        if (done)
            printf("%s\n", done);
        print_endpoint(resp);
    }
    json_decref(resp);
    return 0;
}

static int cmd_add(am_ctl *c, int argc, char **argv, const char *name, int json) {
    const char *api = am_ctl_opt(argc, argv, "--api"), *url = am_ctl_opt(argc, argv, "--url");
    const char *key_file = am_ctl_opt(argc, argv, "--key-file"),
               *ca_file = am_ctl_opt(argc, argv, "--ca");
    const char *models = am_ctl_opt(argc, argv, "--models");
    if (!api || !url) {
        fprintf(stderr, "airmeshctl: model add NAME --api openai|anthropic --url URL "
                        "[--key-file F] [--ca F] [--models m1,m2] (see model --help)\n");
        return 2;
    }
    json_t *b = json_pack("{s:s,s:s,s:s}", "name", name, "api", api, "url", url);
    if (models) {
        json_t *arr = json_array();
        char *copy = strdup(models), *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(arr, json_string(t));
        free(copy);
        json_object_set_new(b, "models", arr);
    }
    if (ca_file) {
        char *ca = read_file(ca_file, CA_MAX, "CA certificate");
        if (!ca) {
            json_decref(b);
            return 1;
        }
        json_object_set_new(b, "ca_pem", json_string(ca));
        free(ca);
    }
    char *key = NULL;
    if (key_file) {
        if (!(key = read_file(key_file, KEY_MAX + 2, "key"))) {
            json_decref(b);
            return 1;
        }
        size_t n = strlen(key);
        while (n && (key[n - 1] == '\n' || key[n - 1] == '\r' || key[n - 1] == ' ' ||
                     key[n - 1] == '\t'))
            key[--n] = '\0';
        json_object_set_new(b, "key", json_string(key));
    }
    json_t *resp = NULL;
    long st = am_ctl_api(c, "POST", "/api/v1/models", b, &resp);
    /* jansson copied the key into b: wipe both copies before freeing */
    json_t *kv = json_object_get(b, "key");
    if (kv && json_string_value(kv))
        am_wipe((char *)json_string_value(kv), json_string_length(kv));
    json_decref(b);
    if (key) {
        am_wipe(key, strlen(key));
        free(key);
    }
    char done[200];
    snprintf(done, sizeof done, "model endpoint %s added", name);
    return show(st, 201, resp, json, done);
}

int am_ctl_model(am_ctl *c, int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : "";
    const char *name = argc > 2 && argv[2][0] != '-' ? argv[2] : NULL;
    int json = am_ctl_has_flag(argc, argv, "--json");
    char path[300];
    if (strcmp(sub, "list") == 0)
        return cmd_list(c, json);
    if (strcmp(sub, "add") == 0 && name)
        return cmd_add(c, argc, argv, name, json);
    if ((strcmp(sub, "show") == 0 || strcmp(sub, "test") == 0 || strcmp(sub, "rm") == 0) && name) {
        char esc[200];
        escape(name, esc, sizeof esc);
        snprintf(path, sizeof path, "/api/v1/models/%s%s", esc,
                 strcmp(sub, "test") == 0 ? "/test" : "");
        json_t *resp = NULL;
        long st;
        if (strcmp(sub, "show") == 0 || strcmp(sub, "test") == 0) {
            st = am_ctl_api(c, strcmp(sub, "show") == 0 ? "GET" : "POST", path, NULL, &resp);
            return show(st, 200, resp, json, NULL);
        }
        st = am_ctl_api(c, "DELETE", path, NULL, &resp);
        if (st != 200)
            return am_ctl_report(st, resp);
        json_decref(resp);
        printf("model endpoint %s removed\n", name);
        return 0;
    }
    fprintf(stderr, "airmeshctl: model add|list|show|test|rm (see airmeshctl model --help)\n");
    return 2;
}
