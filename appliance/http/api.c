/*
 * appliance/http/api.c — the REST API under /api/v1: routing, JSON in and out, authentication.
 *
 * Authentication: `Authorization: Bearer <token>` (airmeshctl, scripts) or the `am_session`
 * cookie (console). Cookie-authenticated requests that change state must also carry
 * `X-Airmesh-CSRF: 1`: a browser only sends a custom header from our own origin (no CORS is
 * ever granted), so a cross-site form or fetch cannot ride the cookie. The cookie is HttpOnly,
 * Secure and SameSite=Strict as well.
 * Every state change goes through appliance/ops (which audits it, refusals included); handlers
 * parse, call one am_ops_* function and render, and every error leaves through am_api_send_rc.
 * Threads: the http thread only. Memory: per-request data lives in req->pool; JSON documents
 * are freed by am_http_send_json.
 */
#include "appliance/http/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "appliance/auth/auth.h"
#include "appliance/ops/ops.h"
#include "common/display_name.h"
#include "common/err.h"
#include "common/log.h"

#define COOKIE_NAME "am_session"

void am_http_send_json(h2o_req_t *req, int status, json_t *doc) {
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    size_t len = body ? strlen(body) : 0;
    h2o_iovec_t copy = h2o_strdup(&req->pool, body ? body : "", len);
    free(body);
    req->res.status = status;
    req->res.reason = status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_send_inline(req, copy.base, copy.len);
}

void am_http_send_error(h2o_req_t *req, int status, const char *code, const char *msg) {
    am_http_send_json(req, status,
                      json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

const char *am_http_peer(h2o_req_t *req, char *buf, size_t cap) {
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    buf[0] = '\0';
    if (len == 0)
        return buf;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)cap);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)cap);
    return buf;
}

int am_api_is_method(h2o_req_t *req, const char *m) {
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

/* Parse the request body as a JSON object; on failure sends 400 and returns NULL. */
json_t *am_api_parse_body(h2o_req_t *req) {
    json_error_t jerr;
    json_t *doc = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len,
                             JSON_REJECT_DUPLICATES, &jerr);
    if (!doc || !json_is_object(doc)) {
        char msg[300];
        size_t bad_at = 0;
        if (doc)
            snprintf(msg, sizeof msg, "request body must be a JSON object");
        else if (am_utf8_check(req->entity.base, req->entity.len, &bad_at) != 0)
            snprintf(msg, sizeof msg,
                     "request body is not valid UTF-8 (byte 0x%02x at offset %zu): JSON text, "
                     "display names included, must be UTF-8",
                     (unsigned char)req->entity.base[bad_at], bad_at);
        else
            snprintf(msg, sizeof msg, "request body is not valid JSON: %s (line %d, column %d)",
                     jerr.text, jerr.line, jerr.column);
        json_decref(doc);
        am_http_send_error(req, 400, "bad_request", msg);
        return NULL;
    }
    return doc;
}

typedef struct {
    am_api_row_fn fn;
    void *ud;
    json_t *arr;
} rows_ctx;

static int rows_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    rows_ctx *c = ud;
    json_t *row = c->fn(c->ud, m);
    if (row)
        json_array_append_new(c->arr, row);
    return 0;
}

void am_api_send_rows(am_http_handler *h, h2o_req_t *req, am_db db, const char *org,
                      const ProtobufCMessageDescriptor *d, const char *key, am_api_row_fn fn,
                      void *ud) {
    rows_ctx c = {fn, ud, json_array()};
    int rc = am_ops_list(h->app->ops, db, org, d, rows_cb, &c);
    if (rc) {
        json_decref(c.arr);
        am_log_error("api", "list failed", "key=%s error=\"%s\"", key, am_err_last());
        am_http_send_error(req, 500, "internal", "could not read the store");
        return;
    }
    am_http_send_json(req, 200, json_pack("{s:o}", key, c.arr));
}

/* The one mapping from -AM_E* to an HTTP status and {"error": {code, message}}. 4xx answers
 * carry the operation's message (written for the client); a 500 hides it and logs it. */
int am_api_send_rc(h2o_req_t *req, int rc) {
    static const struct {
        int rc, status;
        const char *code;
    } map[] = {
        {-AM_EINVAL, 400, "bad_request"},       {-AM_EAUTH, 401, "unauthenticated"},
        {-AM_EPERM, 403, "forbidden"},          {-AM_ENOTFOUND, 404, "not_found"},
        {-AM_EEXISTS, 409, "conflict"},         {-AM_ESTATE, 409, "conflict"},
        {-AM_ELIMIT, 429, "too_many_requests"}, {-AM_EUNAVAIL, 503, "unavailable"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].rc == rc) {
            am_http_send_error(req, map[i].status, map[i].code, am_err_last());
            return 0;
        }
    am_log_error("api", "request failed", "path=%.*s error=\"%s\"", (int)req->path.len,
                 req->path.base, am_err_last());
    am_http_send_error(req, 500, "internal", "internal error (see the appliance log)");
    return 0;
}

/* The bearer secret from Authorization or the session cookie, copied into buf. */
static int find_token(h2o_req_t *req, char *buf, size_t cap, int *from_cookie) {
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    *from_cookie = 0;
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (v.len > 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")) && v.len - 7 < cap) {
            memcpy(buf, v.base + 7, v.len - 7);
            buf[v.len - 7] = '\0';
            return 0;
        }
        return -1;
    }
    for (i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) >= 0;) {
        h2o_iovec_t v = req->headers.entries[i].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi ? semi : end;
            size_t nl = strlen(COOKIE_NAME);
            if ((size_t)(stop - p) > nl + 1 && memcmp(p, COOKIE_NAME "=", nl + 1) == 0 &&
                (size_t)(stop - p - (ptrdiff_t)nl - 1) < cap) {
                size_t vl = (size_t)(stop - p) - nl - 1;
                memcpy(buf, p + nl + 1, vl);
                buf[vl] = '\0';
                *from_cookie = 1;
                return 0;
            }
            p = stop;
        }
    }
    return -1;
}

/* Authenticate; on failure sends 401 and returns -1. */
int am_api_require_auth(am_http_handler *h, h2o_req_t *req, am_principal *who) {
    char token[128];
    int from_cookie;
    if (find_token(req, token, sizeof token, &from_cookie) != 0) {
        am_http_send_error(req, 401, "unauthenticated",
                           "log in first (airmeshctl login, or the console)");
        return -1;
    }
    if (am_ops_authenticate(h->app->ops, token, who) != 0) {
        am_http_send_error(req, 401, "unauthenticated", "session expired or unknown: log in again");
        return -1;
    }
    if (from_cookie && !am_api_is_method(req, "GET") && !am_api_is_method(req, "HEAD")) {
        /* The value must be exactly "1" (a present-but-wrong header is refused too). */
        ssize_t ci = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-airmesh-csrf"), -1);
        if (ci < 0 || !h2o_memis(req->headers.entries[ci].value.base,
                                 req->headers.entries[ci].value.len, H2O_STRLIT("1"))) {
            am_http_send_error(req, 403, "csrf",
                               ci < 0 ? "missing X-Airmesh-CSRF header"
                                      : "X-Airmesh-CSRF header must be 1");
            return -1;
        }
    }
    return 0;
}

static int api_version(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    (void)h;
    am_http_send_json(
        req, 200,
        json_pack("{s:s,s:s,s:s}", "name", "airmesh", "version", AM_VERSION, "api", "v1"));
    return 0;
}

static int api_logout(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char token[128];
    int from_cookie;
    find_token(req, token, sizeof token, &from_cookie);
    char peer[64];
    int rc = am_ops_logout(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), token);
    if (rc)
        return am_api_send_rc(req, rc);
    h2o_add_header(
        &req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL,
        H2O_STRLIT(COOKIE_NAME "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"));
    am_http_send_json(req, 200, json_pack("{s:b}", "ok", 1));
    return 0;
}

static int api_whoami(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    am_http_send_json(req, 200,
                      json_pack("{s:s,s:s,s:i,s:s,s:b}", "user", who.user_id, "org", who.org_id,
                                "role", who.role, "role_name", am_auth_role_name(who.role),
                                "superuser", who.superuser));
    return 0;
}

/* Match route patterns such as "/api/v1/runners/:/revoke": each ":" takes one path segment (copied
 * into param[i] from the request pool). */
static int match(h2o_req_t *req, const char *pattern, char **param) {
    const char *p = req->path_normalized.base, *end = p + req->path_normalized.len;
    int np = 0;
    while (*pattern) {
        if (*pattern == ':') {
            const char *seg = p;
            while (p < end && *p != '/')
                p++;
            if (p == seg || np == 2)
                return 0;
            param[np++] = h2o_strdup(&req->pool, seg, (size_t)(p - seg)).base;
            pattern++;
        } else {
            if (p >= end || *p != *pattern)
                return 0;
            p++;
            pattern++;
        }
    }
    return p == end;
}

typedef struct {
    const char *method;
    const char *pattern;
    int (*fn)(am_http_handler *, h2o_req_t *, char **);
} route;

static const route routes[] = {
    {"GET", "/api/v1/version", api_version},
    {"POST", "/api/v1/login", am_api_login},
    {"POST", "/api/v1/logout", api_logout},
    {"GET", "/api/v1/whoami", api_whoami},
    {"POST", "/api/v1/runner-tokens", am_api_token_create},
    {"GET", "/api/v1/runner-tokens", am_api_token_list},
    {"POST", "/api/v1/runner-tokens/:/revoke", am_api_token_revoke},
    {"GET", "/api/v1/runners", am_api_runner_list},
    {"GET", "/api/v1/runners/:", am_api_runner_show},
    {"POST", "/api/v1/runners/:/revoke", am_api_runner_revoke},
    {"GET", "/api/v1/orgs", am_api_org_list},
    {"POST", "/api/v1/orgs", am_api_org_create},
    {"GET", "/api/v1/orgs/:/pod-limits", am_api_org_limits_get},
    {"PUT", "/api/v1/orgs/:/pod-limits", am_api_org_limits_put},
    {"GET", "/api/v1/orgs/:/model-quota", am_api_model_quota_get},
    {"PUT", "/api/v1/orgs/:/model-quota", am_api_model_quota_put},
    {"GET", "/api/v1/usage", am_api_usage},
    {"GET", "/api/v1/orgs/:/egress-allow", am_api_org_egress_get},
    {"PUT", "/api/v1/orgs/:/egress-allow", am_api_org_egress_put},
    {"GET", "/api/v1/users", am_api_user_list},
    {"POST", "/api/v1/users", am_api_user_create},
    {"GET", "/api/v1/users/:", am_api_user_show},
    {"DELETE", "/api/v1/users/:", am_api_user_delete},
    {"POST", "/api/v1/users/:/disable", am_api_user_disable},
    {"POST", "/api/v1/users/:/enable", am_api_user_enable},
    {"POST", "/api/v1/users/:/role", am_api_user_role},
    {"POST", "/api/v1/users/:/password", am_api_user_password},
    {"POST", "/api/v1/users/:/sessions/revoke", am_api_user_sessions_revoke},
    {"GET", "/api/v1/teams", am_api_team_list},
    {"POST", "/api/v1/teams", am_api_team_create},
    {"DELETE", "/api/v1/teams/:", am_api_team_delete},
    {"POST", "/api/v1/teams/:/members", am_api_team_add},
    {"POST", "/api/v1/teams/:/members/remove", am_api_team_remove},
    {"GET", "/api/v1/api-tokens", am_api_apitoken_list},
    {"POST", "/api/v1/api-tokens", am_api_apitoken_create},
    {"DELETE", "/api/v1/api-tokens/:", am_api_apitoken_revoke},
    {"GET", "/api/v1/audit", am_api_audit_list},
    {"GET", "/api/v1/audit/export", am_api_audit_export},
    {"POST", "/api/v1/pods", am_api_pod_create},
    {"GET", "/api/v1/pods", am_api_pod_list},
    {"GET", "/api/v1/pods/:", am_api_pod_show},
    {"DELETE", "/api/v1/pods/:", am_api_pod_delete},
    {"POST", "/api/v1/pods/:/stop", am_api_pod_stop},
    {"POST", "/api/v1/pods/:/share", am_api_pod_share},
    {"GET", "/api/v1/pods/:/recording", am_api_pod_recording},
    {"GET", "/api/v1/pods/:/terminal", am_api_pod_terminal},
    {"POST", "/api/v1/pods/:/prompt", am_api_pod_prompt},
    {"GET", "/api/v1/agents", am_api_agent_list},
    {"GET", "/api/v1/events", am_api_events},
    /* display names (api_names.c) */
    {"PATCH", "/api/v1/users/:", am_api_user_patch},
    {"PATCH", "/api/v1/teams/:", am_api_team_patch},
    {"GET", "/api/v1/teams/:", am_api_team_show},
    {"PATCH", "/api/v1/orgs/:", am_api_org_patch},
    {"PATCH", "/api/v1/pods/:", am_api_pod_patch},
    {"GET", "/api/v1/models", am_api_model_list},
    {"POST", "/api/v1/models", am_api_model_create},
    {"GET", "/api/v1/models/:", am_api_model_show},
    {"DELETE", "/api/v1/models/:", am_api_model_delete},
    {"POST", "/api/v1/models/:/test", am_api_model_test},
    /* tickets (api_tickets.c) */
    {"GET", "/api/v1/tickets", am_api_ticket_list},
    {"POST", "/api/v1/tickets", am_api_ticket_create},
    {"GET", "/api/v1/tickets/:", am_api_ticket_show},
    {"PATCH", "/api/v1/tickets/:", am_api_ticket_patch},
    {"POST", "/api/v1/tickets/:/comments", am_api_ticket_comment},
    {"POST", "/api/v1/tickets/:/start", am_api_ticket_start},
    /* channels (api_channels.c) */
    {"GET", "/api/v1/channels", am_api_channel_list},
    {"POST", "/api/v1/channels", am_api_channel_create},
    {"GET", "/api/v1/channels/:", am_api_channel_show},
    {"POST", "/api/v1/channels/:/members", am_api_channel_member_add},
    {"DELETE", "/api/v1/channels/:/members", am_api_channel_member_remove},
    {"GET", "/api/v1/channels/:/messages", am_api_channel_messages},
    {"POST", "/api/v1/channels/:/messages", am_api_channel_post},
    /* bindings (api_bindings.c) */
    {"GET", "/api/v1/bindings", am_api_binding_list},
    {"POST", "/api/v1/bindings", am_api_binding_create},
    {"POST", "/api/v1/bindings/:/accept", am_api_binding_accept},
    {"POST", "/api/v1/bindings/:/reject", am_api_binding_reject},
    {"DELETE", "/api/v1/bindings/:", am_api_binding_delete},
    {"GET", "/api/v1/orgs/:/binding-policy", am_api_binding_policy_get},
    {"PUT", "/api/v1/orgs/:/binding-policy", am_api_binding_policy_put},
    {"GET", "/api/v1/pods/:/snapshot", am_api_pod_snapshot},
};

int am_api_on_req(h2o_handler_t *self, h2o_req_t *req) {
    am_http_handler *h = (am_http_handler *)self;
    int path_known = 0;
    char *param[2] = {NULL, NULL};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!match(req, routes[i].pattern, param))
            continue;
        path_known = 1;
        if (am_api_is_method(req, routes[i].method))
            return routes[i].fn(h, req, param);
    }
    if (path_known)
        am_http_send_error(req, 405, "method_not_allowed", "method not allowed on this path");
    else
        am_http_send_error(req, 404, "not_found", "no such API endpoint");
    return 0;
}

/* The value of query parameter `key`, percent-decoded ('+' as a space when plus_space: form
 * encoding, what URLSearchParams writes) into out; 1 if present, 0 absent, -1 bad or too long. */
int am_api_query_param(h2o_req_t *req, int plus_space, const char *key, char *out, size_t cap) {
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t kl = strlen(key);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) >= kl + 1 && memcmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t o = 0;
            for (const char *q = p + kl + 1; q < stop; q++) {
                char c = plus_space && *q == '+' ? ' ' : *q;
                if (c == '%' && stop - q >= 3) {
                    char hex[3] = {q[1], q[2], 0};
                    char *e;
                    long v = strtol(hex, &e, 16);
                    if (*e || v == 0)
                        return -1;
                    c = (char)v;
                    q += 2;
                }
                if (o + 1 >= cap)
                    return -1;
                out[o++] = c;
            }
            out[o] = '\0';
            return 1;
        }
        p = stop + 1;
    }
    return 0;
}
