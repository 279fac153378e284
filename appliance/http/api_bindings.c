/*
 * appliance/http/api_bindings.c — pod bindings over REST (issue 13): GET/POST
 * /api/v1/bindings, POST /api/v1/bindings/{id}/accept and /reject, DELETE /api/v1/bindings/{id},
 * GET/PUT /api/v1/orgs/{id}/binding-policy, and GET /api/v1/pods/{id}/snapshot (a pod's screen
 * as text). Parsing and rendering only: who may, the store, the audit and the events are
 * appliance/ops's (bindings.c, podio.c). Bad JSON is a 400 naming what was expected, with
 * nothing changed. Threads: the http thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/http/internal.h"
#include "common/err.h"

static int bad(h2o_req_t *req, json_t *body, const char *msg) {
    json_decref(body);
    am_http_send_error(req, 400, "bad_request", msg);
    return 0;
}

static int send_binding(h2o_req_t *req, int status, Airmesh__V1__Binding *b) {
    am_http_send_json(req, status, am_ops_binding_json(b));
    protobuf_c_message_free_unpacked(&b->base, NULL);
    return 0;
}

static int list_cb(void *ud, const Airmesh__V1__Binding *b) {
    json_array_append_new(ud, am_ops_binding_json(b));
    return 0;
}

int am_api_binding_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char pod[130] = "";
    if (am_api_query_param(req, 0, "pod", pod, sizeof pod) < 0) {
        am_http_send_error(req, 400, "bad_request", "pod: a pod id");
        return 0;
    }
    json_t *rows = json_array();
    int rc = am_ops_binding_list(h->app->ops, &who, pod[0] ? pod : NULL, list_cb, rows);
    if (rc) {
        json_decref(rows);
        return am_api_send_rc(req, rc);
    }
    am_http_send_json(req, 200, json_pack("{s:o}", "bindings", rows));
    return 0;
}

#define REQUEST_SHAPE                                                                              \
    "expected {\"from_pod\": string, \"to_pod\": string, \"scopes\": [\"read\" | \"write\", "      \
    "...], \"ttl_s\"?: seconds (0 = never, at most 30 days)}"

int am_api_binding_create(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    const char *from = NULL, *to = NULL;
    json_t *scopes = NULL;
    json_int_t ttl = 0;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, JSON_STRICT, "{s:s,s:s,s:o,s?I}", "from_pod", &from, "to_pod",
                       &to, "scopes", &scopes, "ttl_s", &ttl) != 0 ||
        !json_is_array(scopes) || json_array_size(scopes) > 2)
        return bad(req, body, REQUEST_SHAPE);
    if (ttl < 0 || ttl > 30ll * 24 * 3600)
        return bad(req, body, "ttl_s: 0 (never) to 30 days in seconds");
    const char *sc[2];
    size_t n = json_array_size(scopes);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(scopes, i);
        if (!json_is_string(v))
            return bad(req, body, REQUEST_SHAPE);
        sc[i] = json_string_value(v);
    }
    char peer[130];
    Airmesh__V1__Binding *b = NULL;
    int rc = am_ops_binding_request(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), from,
                                    to, sc, n, (uint64_t)ttl * 1000, &b);
    json_decref(body);
    if (rc)
        return am_api_send_rc(req, rc);
    if (!b)
        return am_api_send_rc(req, am_err_set(AM_EIO, "binding: stored but not readable"));
    return send_binding(req, 201, b);
}

static int decide(am_http_handler *h, h2o_req_t *req, char **param, int accept) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    const char *reason = NULL;
    json_t *body = NULL;
    if (req->entity.len) { /* a body is optional: {"reason"?: string} */
        if (!(body = am_api_parse_body(req)))
            return 0;
        json_error_t jerr;
        if (json_unpack_ex(body, &jerr, JSON_STRICT, "{s?s}", "reason", &reason) != 0)
            return bad(req, body, "expected {\"reason\"?: string} or no body");
    }
    char peer[130];
    Airmesh__V1__Binding *b = NULL;
    int rc = am_ops_binding_decide(h->app->ops, &who, am_http_peer(req, peer, sizeof peer),
                                   param[0], accept, reason, &b);
    json_decref(body);
    if (rc)
        return am_api_send_rc(req, rc);
    if (!b)
        return am_api_send_rc(req, am_err_set(AM_EIO, "binding: stored but not readable"));
    return send_binding(req, 200, b);
}

int am_api_binding_accept(am_http_handler *h, h2o_req_t *req, char **param) {
    return decide(h, req, param, 1);
}

int am_api_binding_reject(am_http_handler *h, h2o_req_t *req, char **param) {
    return decide(h, req, param, 0);
}

int am_api_binding_delete(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char peer[130];
    int rc = am_ops_binding_end(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), param[0]);
    if (rc)
        return am_api_send_rc(req, rc);
    Airmesh__V1__Binding *b = NULL;
    if (am_ops_get(h->app->ops, AM_DB_BINDINGS, who.org_id, param[0],
                   &airmesh__v1__binding__descriptor, (ProtobufCMessage **)&b) != 0)
        return am_api_send_rc(req, am_err_set(AM_EIO, "binding: ended but not readable"));
    return send_binding(req, 200, b);
}

static int send_policy(am_http_handler *h, h2o_req_t *req, const char *org) {
    am_http_send_json(
        req, 200,
        json_pack("{s:s,s:s}", "org", org, "policy", am_ops_binding_policy(h->app->ops, org)));
    return 0;
}

int am_api_binding_policy_get(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    am_can_target t = {param[0], 0};
    int rc = am_auth_can(&who, AM_CAN_READ, &t);
    if (rc)
        return am_api_send_rc(req, rc);
    return send_policy(h, req, param[0]);
}

int am_api_binding_policy_put(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    const char *policy = NULL;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, JSON_STRICT, "{s:s}", "policy", &policy) != 0)
        return bad(req, body, "expected {\"policy\": \"same_creator\" | \"explicit\"}");
    char peer[130];
    int rc = am_ops_binding_policy_set(h->app->ops, &who, am_http_peer(req, peer, sizeof peer),
                                       param[0], policy);
    json_decref(body);
    if (rc)
        return am_api_send_rc(req, rc);
    return send_policy(h, req, param[0]);
}

int am_api_pod_snapshot(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char lines[16] = "";
    long n = 50;
    int q = am_api_query_param(req, 0, "lines", lines, sizeof lines);
    if (q < 0 || (q > 0 && ((n = strtol(lines, NULL, 10)) < 1 || n > 1000))) {
        am_http_send_error(req, 400, "bad_request", "lines: 1 to 1000");
        return 0;
    }
    char peer[130], *text = NULL;
    int rc = am_ops_pod_snapshot(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), param[0],
                                 (size_t)n, &text);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200,
                      json_pack("{s:s,s:i,s:s}", "pod", param[0], "lines", (int)n, "text", text));
    free(text);
    return 0;
}
