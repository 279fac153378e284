/*
 * appliance/http/api_usage.c — the model gateway's numbers over REST (issue 12):
 *   GET  /api/v1/usage                      the org today, each pod (all time), each user today
 *   GET  /api/v1/orgs/{id}/model-quota      the token quota and today's usage (any role)
 *   PUT  /api/v1/orgs/{id}/model-quota      {"tokens_per_day": N} (admins and owners; 0 = none)
 * and the "usage" object GET /api/v1/pods/{id} carries (am_api_pod_usage).
 * Counters come from the usage table (appliance/gateway/core.h's scopes) through ops reads; the
 * quota change goes through am_ops_model_quota_set (audited org.model_quota).
 * Threads: the http thread only.
 */
#include "appliance/http/internal.h"

#include <stdio.h>
#include <string.h>

#include "appliance/ops/ops.h"
#include "common/err.h"
#include "common/util.h"

static json_t *counts_json(const Airmesh__V1__ModelUsage *u) {
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "requests", (json_int_t)u->requests, "tokens_in",
                     (json_int_t)u->tokens_in, "tokens_out", (json_int_t)u->tokens_out, "tokens",
                     (json_int_t)(u->tokens_in + u->tokens_out), "errors", (json_int_t)u->errors,
                     "refused", (json_int_t)u->refused);
}

static json_t *gw_counts_json(const am_gw_counts *c) {
    Airmesh__V1__ModelUsage u = AIRMESH__V1__MODEL_USAGE__INIT;
    u.requests = c->requests;
    u.tokens_in = c->tokens_in;
    u.tokens_out = c->tokens_out;
    u.errors = c->errors;
    u.refused = c->refused;
    return counts_json(&u);
}

json_t *am_api_pod_usage(am_http_handler *h, const char *org, const char *pod_id) {
    char scope[AM_STORE_ID_MAX + 1];
    snprintf(scope, sizeof scope, "pod:%.120s", pod_id);
    ProtobufCMessage *m = NULL;
    Airmesh__V1__ModelUsage zero = AIRMESH__V1__MODEL_USAGE__INIT;
    if (am_ops_get(h->app->ops, AM_DB_USAGE, org, scope, &airmesh__v1__model_usage__descriptor,
                   &m) != 0)
        return counts_json(&zero);
    json_t *j = counts_json((const Airmesh__V1__ModelUsage *)m);
    protobuf_c_message_free_unpacked(m, NULL);
    return j;
}

typedef struct {
    char day[11];
    json_t *today, *pods, *users;
} usage_ctx;

static int usage_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    usage_ctx *c = ud;
    const Airmesh__V1__ModelUsage *u = (const Airmesh__V1__ModelUsage *)m;
    size_t n = strlen(id);
    if (strncmp(id, "day:", 4) == 0 && strcmp(id + 4, c->day) == 0) {
        json_decref(c->today);
        c->today = counts_json(u);
    } else if (strncmp(id, "pod:", 4) == 0) {
        json_t *row = counts_json(u);
        json_object_set_new(row, "pod", json_string(id + 4));
        json_array_append_new(c->pods, row);
    } else if (strncmp(id, "user:", 5) == 0 && n > 16 && id[n - 11] == ':' &&
               strcmp(id + n - 10, c->day) == 0) {
        json_t *row = counts_json(u);
        json_object_set_new(row, "user", json_stringn(id + 5, n - 16));
        json_array_append_new(c->users, row);
    }
    return 0;
}

int am_api_usage(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    uint64_t quota = 0;
    am_gw_counts today;
    int rc = am_ops_model_quota_get(h->app->ops, &who, NULL, &quota, &today);
    if (rc)
        return am_api_send_rc(req, rc);
    Airmesh__V1__ModelUsage zero = AIRMESH__V1__MODEL_USAGE__INIT;
    usage_ctx c = {.today = counts_json(&zero), .pods = json_array(), .users = json_array()};
    am_gw_day(am_now_ms(), c.day);
    rc = am_ops_list(h->app->ops, AM_DB_USAGE, who.org_id, &airmesh__v1__model_usage__descriptor,
                     usage_cb, &c);
    if (rc) {
        json_decref(c.today);
        json_decref(c.pods);
        json_decref(c.users);
        return am_api_send_rc(req, rc);
    }
    am_http_send_json(req, 200,
                      json_pack("{s:s,s:s,s:I,s:o,s:o,s:o}", "org", who.org_id, "day", c.day,
                                "tokens_per_day", (json_int_t)quota, "today", c.today, "pods",
                                c.pods, "users", c.users));
    return 0;
}

static int send_quota(am_http_handler *h, h2o_req_t *req, am_principal *who, const char *org) {
    uint64_t quota = 0;
    am_gw_counts today;
    int rc = am_ops_model_quota_get(h->app->ops, who, org, &quota, &today);
    if (rc)
        return am_api_send_rc(req, rc);
    char day[11];
    am_gw_day(am_now_ms(), day);
    am_http_send_json(req, 200,
                      json_pack("{s:s,s:I,s:s,s:o}", "org", org, "tokens_per_day",
                                (json_int_t)quota, "day", day, "today", gw_counts_json(&today)));
    return 0;
}

int am_api_model_quota_get(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    return send_quota(h, req, &who, param[0]);
}

int am_api_model_quota_put(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    json_t *v = json_object_get(body, "tokens_per_day");
    if (json_object_size(body) != 1 || !json_is_integer(v) || json_integer_value(v) < 0) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"tokens_per_day\": N} (tokens in + out per UTC day; "
                           "0 = no quota)");
        return 0;
    }
    uint64_t n = (uint64_t)json_integer_value(v);
    json_decref(body);
    char peer[130];
    int rc = am_ops_model_quota_set(h->app->ops, &who, am_http_peer(req, peer, sizeof peer),
                                    param[0], n);
    if (rc)
        return am_api_send_rc(req, rc);
    return send_quota(h, req, &who, param[0]);
}
