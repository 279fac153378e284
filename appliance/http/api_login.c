/*
 * appliance/http/api_login.c — POST /api/v1/login, off the h2o thread.
 *
 * The handler checks the throttle (appliance/auth/throttle.h: per address and per
 * (org, user, address)), copies the request into a job and hands it to the worker pool
 * (appliance/work): am_auth_login (one argon2id verify, a dummy one for unknown names, and the
 * session write) runs on a worker, never on the event loop. The answer is sent when the result
 * comes back on the http thread. A refused login (throttled, pool full, wrong password) is
 * answered without revealing whether the name exists: the throttle counts names that do not
 * exist exactly like real ones. Every outcome is an audit event (auth.login ok / denied with
 * the reason).
 *
 * A password change (am_api_password_start, called by api_users.c once it has checked who may
 * do it) runs the same way: the current-password check and the new hash on a worker, then the
 * audit event, the end of the user's sessions and WebSockets, and the answer on this thread.
 *
 * Statuses: 200 + token and cookie; 400 bad body; 401 unknown user or wrong password; 429 +
 * Retry-After when throttled; 503 + Retry-After when the pool's queue is full.
 * Threads: the http thread, except login_run (a worker). The throttle table is this file's and
 * is touched only on the http thread. Memory: the job is malloc'd, owns copies of its inputs
 * (the password is wiped before free) and is freed in login_done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/auth/auth.h"
#include "appliance/auth/throttle.h"
#include "appliance/http/internal.h"
#include "appliance/work/work.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define COOKIE_NAME "am_session"
#define MAX_NAME 128
#define MAX_PASSWORD 1024

static am_throttle *throttle; /* http thread only; lives until exit */

typedef struct {
    am_work_job job; /* first: the pool's part */
    am_http_handler *h;
    char org[MAX_NAME + 1], user[MAX_NAME + 1], peer[64];
    char password[MAX_PASSWORD + 1];
    uint64_t ttl_ms;
    /* results (written by the worker) */
    int rc;
    char err[256];
    char token[AM_AUTH_TOKEN_LEN + 1];
    uint64_t expires;
    am_principal who;
} login_job;

static am_throttle *table(void) {
    if (!throttle && am_throttle_new(&throttle) != 0)
        return NULL;
    return throttle;
}

void am_api_login_forget(const char *org, const char *user) {
    if (throttle)
        am_throttle_forget_user(throttle, org, user);
}

static void audit_denied(am_http_handler *h, const char *org, const char *user, const char *peer,
                         const char *reason) {
    char target[300], details[64];
    snprintf(target, sizeof target, "user:%s", user);
    if (reason)
        snprintf(details, sizeof details, "{\"reason\":\"%s\"}", reason);
    am_audit_event(h->app->audit, target, org, "auth.login", target, "denied", peer,
                   reason ? details : NULL);
}

static void send_retry(h2o_req_t *req, int status, unsigned retry_s, const char *code,
                       const char *msg) {
    char v[16];
    int n = snprintf(v, sizeof v, "%u", retry_s ? retry_s : 1);
    h2o_iovec_t c = h2o_strdup(&req->pool, v, (size_t)n);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, c.base, c.len);
    am_http_send_error(req, status, code, msg);
}

static void login_run(am_work_job *job) {
    login_job *j = (login_job *)job;
    j->rc = am_auth_login(j->h->app->store, j->org, j->user, j->password, j->peer, j->ttl_ms,
                          j->token, &j->expires, &j->who);
    if (j->rc)
        snprintf(j->err, sizeof j->err, "%s", am_err_last());
    am_wipe(j->password, sizeof j->password);
}

static void job_free(login_job *j) {
    am_wipe(j, sizeof *j);
    free(j);
}

static void login_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    login_job *j = (login_job *)job;
    am_http_handler *h = j->h;
    int ok = !cancelled && j->rc == 0;
    am_throttle *t = table();
    if (t)
        am_throttle_end(t, j->org, j->user, j->peer, cancelled ? -1 : ok, am_now_ms());
    if (cancelled) {
        audit_denied(h, j->org, j->user, j->peer, "busy");
        if (req)
            send_retry(req, 503, 1, "busy", "the appliance is shutting down: try again");
        job_free(j);
        return;
    }
    char target[300];
    snprintf(target, sizeof target, "user:%s", j->user);
    if (!ok) {
        audit_denied(h, j->org, j->user, j->peer, NULL);
        am_log_warn("auth", "login refused", "org=%s source=%s", j->org, j->peer);
        if (j->rc != -AM_EAUTH)
            am_log_error("auth", "login failed", "error=\"%s\"", j->err);
        if (req) {
            if (j->rc == -AM_EAUTH)
                am_http_send_error(req, 401, "unauthenticated", "unknown user or wrong password");
            else
                am_http_send_error(req, 500, "internal", "login failed (see the appliance log)");
        }
        job_free(j);
        return;
    }
    am_audit_event(h->app->audit, target, j->who.org_id, "auth.login", target, "ok", j->peer,
                   req ? NULL : "{\"note\":\"client left before the answer\"}");
    if (req) {
        char cookie[200];
        snprintf(cookie, sizeof cookie,
                 COOKIE_NAME "=%s; Path=/; Max-Age=%llu; HttpOnly; Secure; SameSite=Strict",
                 j->token, (unsigned long long)(j->ttl_ms / 1000));
        h2o_iovec_t c = h2o_strdup(&req->pool, cookie, strlen(cookie));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, c.base, c.len);
        am_http_send_json(req, 200,
                          json_pack("{s:s,s:I,s:s,s:s,s:i}", "token", j->token, "expires_ms",
                                    (json_int_t)j->expires, "user", j->who.user_id, "org",
                                    j->who.org_id, "role", j->who.role));
        am_wipe(cookie, sizeof cookie);
    }
    job_free(j);
}

int am_api_login(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    const char *user = NULL, *password = NULL, *org = AM_AUTH_DEFAULT_ORG;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, 0, "{s:s,s:s,s?s}", "user", &user, "password", &password, "org",
                       &org) != 0 ||
        strlen(user) > MAX_NAME || strlen(org) > MAX_NAME || strlen(password) > MAX_PASSWORD) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"user\": string, \"password\": string, \"org\"?: string} "
                           "(names up to 128, password up to 1024 characters)");
        return 0;
    }
    char peer[64];
    am_http_peer(req, peer, sizeof peer);
    am_throttle *t = table();
    unsigned retry_s = 1;
    const char *why = "busy";
    if (!t || am_throttle_begin(t, org, user, peer, am_now_ms(), &retry_s, &why) != 0) {
        char msg[160];
        if (strcmp(why, "locked") == 0)
            snprintf(msg, sizeof msg, "too many failed logins: try again in %u s", retry_s);
        else if (strcmp(why, "address") == 0)
            snprintf(msg, sizeof msg, "too many failed logins from this address: try again in %u s",
                     retry_s);
        else
            snprintf(msg, sizeof msg,
                     "too many logins in progress from this address: try again in %u s", retry_s);
        audit_denied(h, org, user, peer, why);
        am_log_warn("auth", "login throttled", "org=%s source=%s reason=%s", org, peer, why);
        json_decref(body);
        send_retry(req, 429, retry_s, strcmp(why, "locked") == 0 ? "locked" : "throttled", msg);
        return 0;
    }
    login_job *j = calloc(1, sizeof *j);
    if (!j) {
        am_throttle_end(t, org, user, peer, -1, am_now_ms());
        json_decref(body);
        am_http_send_error(req, 500, "internal", "out of memory");
        return 0;
    }
    j->h = h;
    snprintf(j->org, sizeof j->org, "%s", org);
    snprintf(j->user, sizeof j->user, "%s", user);
    snprintf(j->peer, sizeof j->peer, "%s", peer);
    snprintf(j->password, sizeof j->password, "%s", password);
    j->ttl_ms = h->app->session_ttl_ms;
    json_decref(body);
    int rc = am_work_submit(h->app->work, req, &j->job, login_run, login_done);
    if (rc) {
        am_throttle_end(t, j->org, j->user, j->peer, -1, am_now_ms());
        audit_denied(h, j->org, j->user, j->peer, "busy");
        am_log_warn("auth", "login refused: worker pool busy", "source=%s error=\"%s\"", peer,
                    am_err_last());
        job_free(j);
        send_retry(req, 503, 1, "busy", "the appliance is busy: try again in a second");
        return 0;
    }
    return 0;
}

/* ---- POST /api/v1/users/{name}/password, off the h2o thread ---- */

typedef struct {
    am_work_job job;
    am_http_handler *h;
    char org[MAX_NAME + 1], name[MAX_NAME + 1], actor[160], peer[64];
    char password[MAX_PASSWORD + 1], current[MAX_PASSWORD + 1];
    int check_current;
    /* results */
    int denied, rc;
    char err[256];
} password_job;

static void password_run(am_work_job *job) {
    password_job *j = (password_job *)job;
    if (j->check_current) { /* users prove who they are before changing their own password */
        ProtobufCMessage *m = NULL;
        am_store_get(j->h->app->store, AM_DB_USERS, j->org, j->name, &airmesh__v1__user__descriptor,
                     &m);
        j->denied =
            !m || am_auth_verify_password(((Airmesh__V1__User *)m)->password_hash, j->current) != 0;
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
    }
    if (!j->denied) {
        j->rc = am_users_set_password(j->h->app->store, j->org, j->name, j->password);
        if (j->rc)
            snprintf(j->err, sizeof j->err, "%s", am_err_last());
    }
    am_wipe(j->password, sizeof j->password);
    am_wipe(j->current, sizeof j->current);
}

static void password_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    password_job *j = (password_job *)job;
    char target[160];
    snprintf(target, sizeof target, "user:%.64s", j->name);
    const char *result = cancelled ? "denied" : j->denied ? "denied" : j->rc ? "failed" : "ok";
    am_audit_event(j->h->app->audit, j->actor, j->org, "user.password", target, result, j->peer,
                   cancelled ? "{\"reason\":\"busy\"}" : NULL);
    if (!cancelled && !j->denied && j->rc == 0) {
        /* The new password ends the user's sessions, their live terminals and login locks. */
        am_api_login_forget(j->org, j->name);
        am_ws_close_user(j->org, j->name);
    }
    if (req) {
        if (cancelled)
            send_retry(req, 503, 1, "busy", "the appliance is shutting down: try again");
        else if (j->denied)
            am_http_send_error(req, 403, "forbidden", "current_password is wrong");
        else if (j->rc == -AM_EINVAL || j->rc == -AM_ENOTFOUND)
            am_http_send_error(req, j->rc == -AM_EINVAL ? 400 : 404,
                               j->rc == -AM_EINVAL ? "bad_request" : "not_found", j->err);
        else if (j->rc) {
            am_log_error("api", "request failed", "error=\"%s\"", j->err);
            am_http_send_error(req, 500, "internal", "internal error (see the appliance log)");
        } else
            am_http_send_json(req, 200, json_pack("{s:b}", "ok", 1));
    }
    am_wipe(j, sizeof *j);
    free(j);
}

int am_api_password_start(am_http_handler *h, h2o_req_t *req, const am_principal *who,
                          const char *name, const char *password, const char *current,
                          int check_current) {
    if (!password || strlen(password) > MAX_PASSWORD || strlen(name) > MAX_NAME ||
        (current && strlen(current) > MAX_PASSWORD)) {
        am_http_send_error(req, 400, "bad_request", "password: 12 to 1024 characters");
        return 0;
    }
    password_job *j = calloc(1, sizeof *j);
    if (!j) {
        am_http_send_error(req, 500, "internal", "out of memory");
        return 0;
    }
    j->h = h;
    snprintf(j->org, sizeof j->org, "%s", who->org_id);
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->actor, sizeof j->actor, "user:%s", who->user_id);
    am_http_peer(req, j->peer, sizeof j->peer);
    snprintf(j->password, sizeof j->password, "%s", password);
    snprintf(j->current, sizeof j->current, "%s", current ? current : "");
    j->check_current = check_current;
    j->denied = check_current && !current;
    if (am_work_submit(h->app->work, req, &j->job, password_run, password_done) != 0) {
        char target[160];
        snprintf(target, sizeof target, "user:%.64s", j->name);
        am_audit_event(h->app->audit, j->actor, j->org, "user.password", target, "denied", j->peer,
                       "{\"reason\":\"busy\"}");
        am_wipe(j, sizeof *j);
        free(j);
        send_retry(req, 503, 1, "busy", "the appliance is busy: try again in a second");
    }
    return 0;
}

/* ---- user and organization creation (a new password's hash), off the h2o thread ---- */

typedef struct {
    am_work_job job;
    am_http_handler *h;
    int org_create; /* 0: user in org; 1: org `org` with owner `name` */
    int role;
    char org[MAX_NAME + 1], name[MAX_NAME + 1], display[256], actor[160], caller_org[129];
    char peer[64];
    char password[MAX_PASSWORD + 1];
    int has_password;
    /* results */
    int rc;
    char err[256];
    char generated[32];
} create_job;

static void create_run(am_work_job *job) {
    create_job *j = (create_job *)job;
    const char *pw = j->has_password ? j->password : NULL;
    j->rc = j->org_create ? am_orgs_create(j->h->app->store, j->org, j->display, j->name, pw,
                                           j->generated, sizeof j->generated)
                          : am_users_create(j->h->app->store, j->org, j->name, j->role, pw,
                                            j->generated, sizeof j->generated);
    if (j->rc)
        snprintf(j->err, sizeof j->err, "%s", am_err_last());
    am_wipe(j->password, sizeof j->password);
}

static void create_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    create_job *j = (create_job *)job;
    if (!cancelled && j->rc == 0) {
        char target[160], details[64];
        if (j->org_create) {
            snprintf(target, sizeof target, "org:%.64s", j->org);
            am_audit_event(j->h->app->audit, j->actor, j->caller_org, "org.create", target, "ok",
                           j->peer, NULL);
        } else {
            snprintf(target, sizeof target, "user:%.64s", j->name);
            snprintf(details, sizeof details, "{\"role\":\"%s\"}", am_auth_role_name(j->role));
            am_audit_event(j->h->app->audit, j->actor, j->caller_org, "user.create", target, "ok",
                           j->peer, details);
        }
    }
    if (req) {
        if (cancelled) {
            send_retry(req, 503, 1, "busy", "the appliance is shutting down: try again");
        } else if (j->rc) {
            int st = j->rc == -AM_EINVAL      ? 400
                     : j->rc == -AM_ENOTFOUND ? 404
                     : j->rc == -AM_EEXISTS   ? 409
                                              : 500;
            if (st == 500)
                am_log_error("api", "request failed", "error=\"%s\"", j->err);
            am_http_send_error(req, st,
                               st == 400   ? "bad_request"
                               : st == 404 ? "not_found"
                               : st == 409 ? "conflict"
                                           : "internal",
                               st == 500 ? "internal error (see the appliance log)" : j->err);
        } else {
            json_t *out = j->org_create ? json_pack("{s:s,s:s}", "id", j->org, "owner", j->name)
                                        : json_pack("{s:s,s:s,s:s}", "id", j->name, "org", j->org,
                                                    "role", am_auth_role_name(j->role));
            if (j->generated[0])
                json_object_set_new(out, j->org_create ? "owner_password" : "password",
                                    json_string(j->generated));
            am_http_send_json(req, 201, out);
        }
    }
    am_wipe(j, sizeof *j);
    free(j);
}

int am_api_create_start(am_http_handler *h, h2o_req_t *req, const am_principal *who, int org_create,
                        const char *org, const char *display, const char *name, int role,
                        const char *password) {
    if (strlen(org) > MAX_NAME || strlen(name) > MAX_NAME ||
        (password && strlen(password) > MAX_PASSWORD) || (display && strlen(display) > 255)) {
        am_http_send_error(req, 400, "bad_request",
                           "names up to 128, display name up to 255, password up to 1024 "
                           "characters");
        return 0;
    }
    create_job *j = calloc(1, sizeof *j);
    if (!j) {
        am_http_send_error(req, 500, "internal", "out of memory");
        return 0;
    }
    j->h = h;
    j->org_create = org_create;
    j->role = role;
    snprintf(j->org, sizeof j->org, "%s", org);
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->display, sizeof j->display, "%s", display ? display : "");
    snprintf(j->actor, sizeof j->actor, "user:%s", who->user_id);
    snprintf(j->caller_org, sizeof j->caller_org, "%s", who->org_id);
    am_http_peer(req, j->peer, sizeof j->peer);
    j->has_password = password != NULL;
    snprintf(j->password, sizeof j->password, "%s", password ? password : "");
    if (am_work_submit(h->app->work, req, &j->job, create_run, create_done) != 0) {
        am_wipe(j, sizeof *j);
        free(j);
        send_retry(req, 503, 1, "busy", "the appliance is busy: try again in a second");
    }
    return 0;
}
