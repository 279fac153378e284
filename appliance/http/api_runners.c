/*
 * appliance/http/api_runners.c — REST endpoints for the runner fleet: enrollment tokens
 * (create, list, revoke) and runners (list, show, revoke): parse, call appliance/ops, render.
 * Admins and owners of the org may change things (appliance/auth/can.c), every member may
 * list; refusals are audited by ops. Resources of another org answer 404, never 403.
 * Threads: the http thread.
 */
#include <stdio.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/http/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define MAX_LABELS 32

static int valid_label(const char *k, const char *v) {
    size_t kl = strlen(k), vl = strlen(v);
    if (kl == 0 || kl > 63 || vl > 255)
        return 0;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.' || *p == '/'))
            return 0;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20)
            return 0;
    return 1;
}

int am_api_token_create(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    const char *org = who.org_id, *ttl = "1h";
    json_t *labels = NULL;
    if (json_unpack(body, "{s?s,s?s,s?o}", "org", &org, "ttl", &ttl, "labels", &labels) != 0 ||
        (labels && !json_is_object(labels))) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"org\"?: string, \"ttl\"?: \"1h\", \"labels\"?: {k: v}}");
        return 0;
    }
    uint64_t ttl_ms = 0;
    if (strcmp(org, who.org_id) == 0 && am_duration_parse(ttl, &ttl_ms) != 0) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "ttl: a duration like 15m, 1h or 7d (at most 30d)");
        return 0;
    }
    const char *keys[MAX_LABELS], *vals[MAX_LABELS];
    am_labels l = {keys, vals, 0};
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v) {
        if (l.n == MAX_LABELS || !json_is_string(v) || !valid_label(k, json_string_value(v))) {
            json_decref(body);
            am_http_send_error(req, 400, "bad_request",
                               "labels: at most 32 string values; keys of letters, digits, -_./");
            return 0;
        }
        keys[l.n] = k;
        vals[l.n++] = json_string_value(v);
    }
    char secret[AM_TOKEN_SECRET_LEN + 1], id[13], peer[64];
    uint64_t expires;
    int rc = am_ops_runner_token_create(h->app->ops, &who, am_http_peer(req, peer, sizeof peer),
                                        org, ttl_ms, &l, secret, id, &expires);
    if (rc) {
        json_decref(body);
        return am_api_send_rc(req, rc);
    }
    const char *fp = am_ca_root_fingerprint(h->app->ca);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "airmesh-runner enroll --appliance %s --token %s --ca-sha256 %s",
             h->app->grpc_addr ? h->app->grpc_addr : "HOST:9443", secret, fp);
    am_http_send_json(req, 201,
                      json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:o}", "token", secret, "id", id, "org",
                                org, "expires_ms", (json_int_t)expires, "ca_sha256", fp, "command",
                                cmd, "labels", labels ? json_incref(labels) : json_object()));
    memset(secret, 0, sizeof secret);
    memset(cmd, 0, sizeof cmd);
    json_decref(body);
    return 0;
}

static json_t *labels_json(void **entries, size_t n) {
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        Airmesh__V1__Runner__LabelsEntry *e = entries[i];
        json_object_set_new(o, e->key, json_string(e->value));
    }
    return o;
}

static json_t *token_row(void *ud, const ProtobufCMessage *m) {
    const Airmesh__V1__EnrollToken *t = (const Airmesh__V1__EnrollToken *)m;
    if (strcmp(t->org_id, (const char *)ud) != 0)
        return NULL;
    const char *state = t->revoked                     ? "revoked"
                        : t->used                      ? "used"
                        : am_now_ms() >= t->expires_ms ? "expired"
                                                       : "active";
    return json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:o}", "id", t->id, "state", state, "created_ms",
                     (json_int_t)t->created_ms, "expires_ms", (json_int_t)t->expires_ms,
                     "created_by", t->created_by, "used_by", t->used_by_runner, "labels",
                     labels_json((void **)t->labels, t->n_labels));
}

int am_api_token_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    /* Tokens are keyed by hash alone (the runner does not know its org): filter by org. */
    am_api_send_rows(h, req, AM_DB_TOKENS, "", &airmesh__v1__enroll_token__descriptor, "tokens",
                     token_row, who.org_id);
    return 0;
}

int am_api_token_revoke(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char peer[64];
    int rc = am_ops_runner_token_revoke(h->app->ops, &who, am_http_peer(req, peer, sizeof peer),
                                        param[0]);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200, json_pack("{s:b}", "ok", 1));
    return 0;
}

static json_t *runner_json(am_app *app, const Airmesh__V1__Runner *r) {
    am_hub_runner_info info;
    /* Online once its Hello is applied: labels, capacity and version are then in the record. */
    int online =
        !r->revoked && am_hub_runner_get(am_ops_hub(app->ops), r->id, &info) && info.introduced;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:i,s:s,s:b}", "id", r->id, "org",
                          r->org_id, "hostname", r->hostname, "version", r->version, "labels",
                          labels_json((void **)r->labels, r->n_labels), "cert_not_after_ms",
                          (json_int_t)r->cert_not_after_ms, "enrolled_ms",
                          (json_int_t)r->enrolled_ms, "last_heartbeat_ms",
                          (json_int_t)(online ? info.last_heartbeat_ms : r->last_seen_ms),
                          "capacity", (int)r->capacity, "state",
                          r->revoked ? "revoked"
                          : online   ? "online"
                                     : "offline",
                          "revoked", r->revoked);
    char serial[17];
    snprintf(serial, sizeof serial, "%016llx", (unsigned long long)r->cert_serial);
    json_object_set_new(o, "cert_serial", json_string(serial));
    json_t *old = json_array();
    for (size_t i = 0; i < r->n_old_serials; i++) {
        snprintf(serial, sizeof serial, "%016llx", (unsigned long long)r->old_serials[i]);
        json_array_append_new(old, json_string(serial));
    }
    json_object_set_new(o, "old_serials", old);
    return o;
}

static json_t *runner_row(void *ud, const ProtobufCMessage *m) {
    return runner_json(ud, (const Airmesh__V1__Runner *)m);
}

int am_api_runner_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    am_api_send_rows(h, req, AM_DB_RUNNERS, who.org_id, &airmesh__v1__runner__descriptor, "runners",
                     runner_row, h->app);
    return 0;
}

int am_api_runner_show(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    ProtobufCMessage *m = NULL;
    if (am_ops_get(h->app->ops, AM_DB_RUNNERS, who.org_id, param[0],
                   &airmesh__v1__runner__descriptor, &m) != 0) {
        am_http_send_error(req, 404, "not_found", "no such runner");
        return 0;
    }
    am_http_send_json(req, 200, runner_json(h->app, (Airmesh__V1__Runner *)m));
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

int am_api_runner_revoke(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char peer[64];
    int rc =
        am_ops_runner_revoke(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), param[0]);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200, json_pack("{s:b,s:s}", "ok", 1, "id", param[0]));
    return 0;
}
