/*
 * appliance/http/api_egress.c — GET/PUT /api/v1/orgs/{id}/egress-allow: an org's egress allow
 * list ({"allow": ["git.lan:443", ...]}), what pods with network "allow" may reach through
 * their runner's CONNECT proxy. Parse, call appliance/ops (which checks the role, validates,
 * writes and audits "org.egress_allow"), render. Threads: the http thread.
 */
#include <stdlib.h>
#include <string.h>

#include "appliance/http/internal.h"
#include "appliance/pods/pods.h"
#include "common/err.h"

static json_t *allow_json(const char *org, char *const *list, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(list[i]));
    return json_pack("{s:s,s:o}", "org", org, "allow", a);
}

int am_api_org_egress_get(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char **list = NULL;
    size_t n = 0;
    int rc = am_ops_org_egress_allow_get(h->app->ops, &who, param[0], &list, &n);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200, allow_json(param[0], list, n));
    am_pods_egress_allow_free(list, n);
    return 0;
}

int am_api_org_egress_put(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    json_t *allow = NULL;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, JSON_STRICT, "{s:o}", "allow", &allow) != 0 ||
        !json_is_array(allow)) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"allow\": [\"host:port\", ...]} (an empty list clears it)");
        return 0;
    }
    size_t n = json_array_size(allow);
    if (n > AM_EGRESS_ALLOW_MAX) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request", "allow: at most 64 entries");
        return 0;
    }
    const char *list[AM_EGRESS_ALLOW_MAX];
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(allow, i);
        if (!json_is_string(v)) {
            json_decref(body);
            am_http_send_error(req, 400, "bad_request", "allow: every entry is a \"host:port\"");
            return 0;
        }
        list[i] = json_string_value(v);
    }
    char peer[130];
    int rc = am_ops_org_egress_allow_set(h->app->ops, &who, am_http_peer(req, peer, sizeof peer),
                                         param[0], list, n);
    if (rc) {
        json_decref(body);
        return am_api_send_rc(req, rc);
    }
    json_decref(body);
    char **stored = NULL;
    size_t sn = 0;
    if (am_ops_org_egress_allow_get(h->app->ops, &who, param[0], &stored, &sn) != 0)
        return am_api_send_rc(req, -AM_EIO);
    am_http_send_json(req, 200, allow_json(param[0], stored, sn));
    am_pods_egress_allow_free(stored, sn);
    return 0;
}
