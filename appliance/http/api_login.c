/*
 * appliance/http/api_login.c — POST /api/v1/login, off the h2o thread.
 *
 * The handler checks the throttle (appliance/auth/throttle.h: per address and per
 * (org, user, address)), copies the request into a job and hands it to the worker pool
 * (appliance/work): am_ops_login (one argon2id verify, a dummy one for unknown names, the
 * session write and its audit record) runs on a worker, never on the event loop. The answer is
 * sent when the result comes back on the http thread. A refused login (throttled, pool full,
 * wrong password) is answered without revealing whether the name exists: the throttle counts
 * names that do not exist exactly like real ones. Every outcome is an audit event written by
 * appliance/ops (auth.login ok / denied with the reason).
 *
 * A password change (am_api_password_start) and a user or organization creation
 * (am_api_create_start) run the same way: the whole operation (am_ops_*: role check, argon2id,
 * store, audit) on a worker, then the end of the user's sessions' WebSockets and the answer on
 * this thread.
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
#include "appliance/ops/ops.h"
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
    am_ops_login_refused(h->app->ops, org, user, peer, reason);
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
    /* the slow half: one argon2id verify and the session write; login_done audits it */
    j->rc = am_ops_login_begin(j->h->app->ops, j->org, j->user, j->password, j->peer, j->token,
                               &j->expires, &j->who);
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
    if (!cancelled) { /* ops audits the outcome (and undoes a session it cannot record) */
        if (j->rc)
            am_err_set(j->rc, "%s", j->err);
        j->rc = am_ops_login_done(h->app->ops, j->org, j->user, j->peer, j->rc, j->token, &j->who,
                                  req ? NULL : "client left before the answer");
        if (j->rc)
            snprintf(j->err, sizeof j->err, "%s", am_err_last());
    }
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
    if (!ok) { /* (ops audited the refusal) */
        if (req) {
            if (j->rc == -AM_EAUTH)
                am_http_send_error(req, 401, "unauthenticated", "unknown user or wrong password");
            else {
                am_err_set(j->rc, "%s", j->err);
                am_api_send_rc(req, j->rc);
            }
        }
        job_free(j);
        return;
    }
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
    j->ttl_ms = am_ops_session_ttl_ms(h->app->ops);
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
    am_principal who;
    char name[MAX_NAME + 1], peer[64];
    char password[MAX_PASSWORD + 1], current[MAX_PASSWORD + 1];
    int has_current;
    /* results */
    int rc;
    char err[256];
} password_job;

static void password_run(am_work_job *job) {
    password_job *j = (password_job *)job;
    /* ops: who may (admin up to own role, or oneself with the current password), the hash, the
     * store (ending the user's sessions) and the audit record */
    j->rc = am_ops_user_set_password(j->h->app->ops, &j->who, j->peer, j->name, j->password,
                                     j->has_current ? j->current : NULL);
    if (j->rc)
        snprintf(j->err, sizeof j->err, "%s", am_err_last());
    am_wipe(j->password, sizeof j->password);
    am_wipe(j->current, sizeof j->current);
}

static void password_busy(password_job *j) {
    char target[160];
    snprintf(target, sizeof target, "user:%.64s", j->name);
    am_ops_refused(j->h->app->ops, &j->who, j->peer, "user.password", target, "busy");
}

static void password_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    password_job *j = (password_job *)job;
    if (cancelled)
        password_busy(j);
    else if (j->rc == 0) {
        /* The new password ends the user's sessions, their live terminals and login locks. */
        am_api_login_forget(j->who.org_id, j->name);
        am_ws_close_user(j->who.org_id, j->name);
    }
    if (req) {
        if (cancelled)
            send_retry(req, 503, 1, "busy", "the appliance is shutting down: try again");
        else if (j->rc) {
            am_err_set(j->rc, "%s", j->err);
            am_api_send_rc(req, j->rc);
        } else
            am_http_send_json(req, 200, json_pack("{s:b}", "ok", 1));
    }
    am_wipe(j, sizeof *j);
    free(j);
}

int am_api_password_start(am_http_handler *h, h2o_req_t *req, const am_principal *who,
                          const char *name, const char *password, const char *current) {
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
    j->who = *who;
    snprintf(j->name, sizeof j->name, "%s", name);
    am_http_peer(req, j->peer, sizeof j->peer);
    snprintf(j->password, sizeof j->password, "%s", password);
    snprintf(j->current, sizeof j->current, "%s", current ? current : "");
    j->has_current = current != NULL;
    if (am_work_submit(h->app->work, req, &j->job, password_run, password_done) != 0) {
        password_busy(j);
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
    am_principal who;
    int org_create; /* 0: user in who's org; 1: org `org` with owner `name` */
    char org[MAX_NAME + 1], name[MAX_NAME + 1], display[256], role[16];
    char display_name[1024]; /* checked by ops (common/display_name.h) */
    int has_display_name;
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
    am_ops *o = j->h->app->ops;
    /* ops: the role check, the hash, the store and the audit record */
    const char *dn = j->has_display_name ? j->display_name : NULL;
    j->rc = j->org_create ? am_ops_org_create(o, &j->who, j->peer, j->org, j->display, dn, j->name,
                                              pw, j->generated, sizeof j->generated)
                          : am_ops_user_create(o, &j->who, j->peer, j->name, j->role, dn, pw,
                                               j->generated, sizeof j->generated);
    if (j->rc)
        snprintf(j->err, sizeof j->err, "%s", am_err_last());
    am_wipe(j->password, sizeof j->password);
}

static void create_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    create_job *j = (create_job *)job;
    if (req) {
        if (cancelled) {
            send_retry(req, 503, 1, "busy", "the appliance is shutting down: try again");
        } else if (j->rc) {
            am_err_set(j->rc, "%s", j->err);
            am_api_send_rc(req, j->rc);
        } else {
            json_t *out = j->org_create
                              ? json_pack("{s:s,s:s}", "id", j->org, "owner", j->name)
                              : json_pack("{s:s,s:s,s:s}", "id", j->name, "org", j->who.org_id,
                                          "role", am_auth_role_name(am_auth_role_parse(j->role)));
            am_api_add_display_name(out, j->org_create ? AM_DB_ORGS : AM_DB_USERS, j->h,
                                    j->org_create ? "" : j->who.org_id,
                                    j->org_create ? j->org : j->name);
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
                        const char *org, const char *display, const char *name,
                        const char *role_name, const char *display_name, const char *password) {
    if (strlen(org) > MAX_NAME || strlen(name) > MAX_NAME ||
        (password && strlen(password) > MAX_PASSWORD) || (display && strlen(display) > 255) ||
        (role_name && strlen(role_name) > 15)) {
        am_http_send_error(req, 400, "bad_request",
                           "names up to 128, display name up to 255, password up to 1024 "
                           "characters");
        return 0;
    }
    if (display_name && strlen(display_name) > 1000) {
        am_http_send_error(req, 400, "bad_request",
                           "display_name: at most 64 characters (this one is over 1000 bytes)");
        return 0;
    }
    create_job *j = calloc(1, sizeof *j);
    if (!j) {
        am_http_send_error(req, 500, "internal", "out of memory");
        return 0;
    }
    j->h = h;
    j->who = *who;
    j->org_create = org_create;
    snprintf(j->org, sizeof j->org, "%s", org);
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->display, sizeof j->display, "%s", display ? display : "");
    snprintf(j->role, sizeof j->role, "%s", role_name ? role_name : "member");
    j->has_display_name = display_name != NULL;
    snprintf(j->display_name, sizeof j->display_name, "%s", display_name ? display_name : "");
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
