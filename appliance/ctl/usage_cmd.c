/*
 * appliance/ctl/usage_cmd.c — `airmeshctl usage` (the model gateway's tokens: the org today,
 * per pod, per user today) and `airmeshctl org quota [ORG] [--tokens-per-day N]` (the org's
 * daily token quota), over /api/v1/usage and /api/v1/orgs/{id}/model-quota.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ctl/ctl.h"

static long long num(json_t *o, const char *k) {
    return (long long)json_integer_value(json_object_get(o, k));
}

static void row(am_ctl_table *t, const char *name, json_t *u) {
    char cols[6][32];
    const char *keys[] = {"requests", "tokens_in", "tokens_out", "errors", "refused"};
    for (int i = 0; i < 5; i++)
        snprintf(cols[i], sizeof cols[i], "%lld", num(u, keys[i]));
    am_ctl_table_add(t, (const char *[]){name, cols[0], cols[1], cols[2], cols[3], cols[4]});
}

static const char *const k_cols[] = {"WHO",        "REQUESTS", "TOKENS IN",
                                     "TOKENS OUT", "ERRORS",   "REFUSED"};

int am_ctl_usage(am_ctl *c, int argc, char **argv) {
    int as_json = argc > 1 && strcmp(argv[1], "--json") == 0;
    if (argc > 1 && !as_json) {
        fprintf(stderr,
                "airmeshctl usage: unexpected argument '%s' (see airmeshctl help "
                "usage)\n",
                argv[1]);
        return 2;
    }
    json_t *resp = NULL;
    long st = am_ctl_api(c, "GET", "/api/v1/usage", NULL, &resp);
    if (st != 200)
        return am_ctl_report(st, resp);
    if (as_json) {
        char *s = json_dumps(resp, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(resp);
        return 0;
    }
    json_t *today = json_object_get(resp, "today");
    long long quota = num(resp, "tokens_per_day");
    long long used = num(today, "tokens");
    if (quota)
        printf("model tokens of org %s on %s (UTC): %lld of %lld per day\n",
               json_string_value(json_object_get(resp, "org")),
               json_string_value(json_object_get(resp, "day")), used, quota);
    else
        printf("model tokens of org %s on %s (UTC): %lld (no quota)\n",
               json_string_value(json_object_get(resp, "org")),
               json_string_value(json_object_get(resp, "day")), used);
    am_ctl_table t;
    am_ctl_table_init(&t, 6, k_cols);
    row(&t, "org today", today);
    size_t i;
    json_t *v;
    char name[200];
    json_array_foreach(json_object_get(resp, "users"), i, v) {
        snprintf(name, sizeof name, "user %s today", json_string_value(json_object_get(v, "user")));
        row(&t, name, v);
    }
    json_array_foreach(json_object_get(resp, "pods"), i, v) {
        snprintf(name, sizeof name, "pod %s", json_string_value(json_object_get(v, "pod")));
        row(&t, name, v);
    }
    am_ctl_table_print(&t, stdout);
    am_ctl_table_free(&t);
    json_decref(resp);
    return 0;
}

/* argv: "org" "quota" [ORG] [--tokens-per-day N] */
int am_ctl_org_quota(am_ctl *c, int argc, char **argv) {
    const char *org = argc > 2 && argv[2][0] != '-' ? argv[2] : NULL;
    const char *set = NULL;
    for (int i = org ? 3 : 2; i < argc; i++) {
        if (strcmp(argv[i], "--tokens-per-day") == 0 && i + 1 < argc) {
            set = argv[++i];
            continue;
        }
        fprintf(stderr,
                "airmeshctl org quota: unknown or incomplete flag '%s' "
                "(--tokens-per-day N; see airmeshctl help org)\n",
                argv[i]);
        return 2;
    }
    json_t *resp = NULL;
    long st;
    char path[400];
    if (!org) {
        st = am_ctl_api(c, "GET", "/api/v1/whoami", NULL, &resp);
        if (st != 200)
            return am_ctl_report(st, resp);
        snprintf(path, sizeof path, "/api/v1/orgs/%s/model-quota",
                 json_string_value(json_object_get(resp, "org")));
        json_decref(resp);
        resp = NULL;
    } else {
        snprintf(path, sizeof path, "/api/v1/orgs/%s/model-quota", org);
    }
    if (set) {
        char *end;
        long long n = strtoll(set, &end, 10);
        if (end == set || *end || n < 0) {
            fprintf(stderr,
                    "airmeshctl org quota: --tokens-per-day %s: a whole number, 0 for "
                    "no quota\n",
                    set);
            return 2;
        }
        json_t *body = json_pack("{s:I}", "tokens_per_day", (json_int_t)n);
        st = am_ctl_api(c, "PUT", path, body, &resp);
        json_decref(body);
    } else {
        st = am_ctl_api(c, "GET", path, NULL, &resp);
    }
    if (st != 200)
        return am_ctl_report(st, resp);
    long long q = num(resp, "tokens_per_day");
    json_t *today = json_object_get(resp, "today");
    char qs[32];
    snprintf(qs, sizeof qs, "%lld", q);
    printf("model token quota of org %s%s: %s per day (UTC); used on %s: %lld (%lld requests, "
           "%lld refused)\n",
           json_string_value(json_object_get(resp, "org")), set ? " (changed)" : "",
           q ? qs : "none", json_string_value(json_object_get(resp, "day")), num(today, "tokens"),
           num(today, "requests"), num(today, "refused"));
    json_decref(resp);
    return 0;
}
