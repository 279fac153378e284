/*
 * appliance/http/api_users.c — REST endpoints for organizations, users, teams and API tokens.
 *
 * Permissions (README "Roles"): admins and owners manage users and teams of their org, never
 * granting or touching a role above their own; only the appliance's superuser (the bootstrap
 * admin) creates organizations; every user manages their own password and API tokens. Another
 * org's users and teams answer 404. Every change and every refusal is an audit event.
 * Threads: the http thread.
 */
#include <stdio.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/config/config.h"
#include "appliance/http/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define ADMIN AIRMESH__V1__ROLE__ROLE_ADMIN

static int deny(am_http_handler *h, h2o_req_t *req, const am_principal *who, const char *action,
                const char *target, const char *msg) {
    am_api_audit(h, req, who, action, target, "denied", NULL);
    am_http_send_error(req, 403, "forbidden", msg);
    return 0;
}

static int fail(h2o_req_t *req, int rc) {
    int status = rc == -AM_EINVAL    ? 400
                 : rc == -AM_ENOTFOUND ? 404
                 : rc == -AM_EEXISTS   ? 409
                                       : 500;
    am_http_send_error(req, status,
                       status == 400   ? "bad_request"
                       : status == 404 ? "not_found"
                       : status == 409 ? "conflict"
                                       : "internal",
                       status == 500 ? "internal error (see the appliance log)" : am_err_last());
    if (status == 500)
        am_log_error("api", "request failed", "error=\"%s\"", am_err_last());
    return 0;
}

static json_t *user_json(const Airmesh__V1__User *u) {
    return json_pack("{s:s,s:s,s:s,s:b,s:I,s:b,s:I}", "id", u->id, "org", u->org_id, "role",
                     am_auth_role_name(u->role), "disabled", u->disabled, "created_ms",
                     (json_int_t)u->created_ms, "superuser", u->superuser, "locked_until_ms",
                     (json_int_t)u->locked_until_ms);
}

/* Load a user of the caller's org (404 otherwise). */
static Airmesh__V1__User *load_user(am_http_handler *h, h2o_req_t *req, const am_principal *who,
                                    const char *name) {
    ProtobufCMessage *m = NULL;
    if (am_store_get(h->app->store, AM_DB_USERS, who->org_id, name, &airmesh__v1__user__descriptor,
                     &m) != 0) {
        am_http_send_error(req, 404, "not_found", "no such user");
        return NULL;
    }
    return (Airmesh__V1__User *)m;
}

/* ---- orgs ---- */

static json_t *org_row(void *ud, const ProtobufCMessage *m) {
    const am_principal *who = ud;
    const Airmesh__V1__Org *o = (const Airmesh__V1__Org *)m;
    if (!who->superuser && strcmp(o->id, who->org_id) != 0)
        return NULL;
    return json_pack("{s:s,s:s,s:I}", "id", o->id, "name", o->name, "created_ms",
                     (json_int_t)o->created_ms);
}

int am_api_org_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    am_api_send_rows(h, req, AM_DB_ORGS, "", &airmesh__v1__org__descriptor, "orgs", org_row, &who);
    return 0;
}

int am_api_org_create(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    const char *id = NULL, *name = NULL, *owner = NULL, *password = NULL;
    if (json_unpack(body, "{s:s,s?s,s:s,s?s}", "id", &id, "name", &name, "owner", &owner,
                    "password", &password) != 0) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"id\", \"name\"?, \"owner\", \"password\"?}");
        return 0;
    }
    char target[160];
    snprintf(target, sizeof target, "org:%.64s", id);
    if (!who.superuser) {
        json_decref(body);
        return deny(h, req, &who, "org.create", target,
                    "only the appliance administrator creates organizations");
    }
    /* The owner's password hash (argon2id) is made on the worker pool (api_login.c). */
    am_api_create_start(h, req, &who, 1, id, name, owner, 0, password);
    json_decref(body);
    return 0;
}

/* ---- users ---- */

static json_t *user_row(void *ud, const ProtobufCMessage *m) {
    (void)ud;
    return user_json((const Airmesh__V1__User *)m);
}

int am_api_user_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    am_api_send_rows(h, req, AM_DB_USERS, who.org_id, &airmesh__v1__user__descriptor, "users",
                     user_row, NULL);
    return 0;
}

int am_api_user_show(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    Airmesh__V1__User *u = load_user(h, req, &who, param[0]);
    if (!u)
        return 0;
    am_http_send_json(req, 200, user_json(u));
    protobuf_c_message_free_unpacked(&u->base, NULL);
    return 0;
}

int am_api_user_create(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    const char *name = NULL, *role_s = "member", *password = NULL;
    if (json_unpack(body, "{s:s,s?s,s?s}", "name", &name, "role", &role_s, "password",
                    &password) != 0) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"name\", \"role\"?: viewer|member|admin|owner, "
                           "\"password\"?}");
        return 0;
    }
    char target[160];
    snprintf(target, sizeof target, "user:%.64s", name);
    int role = am_auth_role_parse(role_s);
    if (!role) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request", "role: viewer, member, admin or owner");
        return 0;
    }
    if (who.role < ADMIN || role > who.role) {
        json_decref(body);
        return deny(h, req, &who, "user.create", target,
                    "this needs the admin role, and a role no higher than your own");
    }
    /* The password hash (argon2id) is made on the worker pool (api_login.c). */
    am_api_create_start(h, req, &who, 0, who.org_id, NULL, name, role, password);
    json_decref(body);
    return 0;
}

/* Common gate for changes to another user: admin+, target's role <= caller's. */
static Airmesh__V1__User *gate(am_http_handler *h, h2o_req_t *req, const am_principal *who,
                               const char *name, const char *action, int allow_self) {
    Airmesh__V1__User *u = load_user(h, req, who, name);
    if (!u)
        return NULL;
    int self = strcmp(name, who->user_id) == 0;
    if (!(self && allow_self) && (who->role < ADMIN || u->role > who->role)) {
        char target[160];
        snprintf(target, sizeof target, "user:%.64s", name);
        protobuf_c_message_free_unpacked(&u->base, NULL);
        deny(h, req, who, action, target,
             "this needs the admin role, on a user whose role is no higher than yours");
        return NULL;
    }
    return u;
}

static int user_action(am_http_handler *h, h2o_req_t *req, char **param, const char *action) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    int self = strcmp(param[0], who.user_id) == 0;
    Airmesh__V1__User *u = gate(h, req, &who, param[0], action,
                                strcmp(action, "user.password") == 0);
    if (!u)
        return 0;
    protobuf_c_message_free_unpacked(&u->base, NULL);
    char target[160], details[128] = "";
    snprintf(target, sizeof target, "user:%.64s", param[0]);
    int rc = 0;
    size_t n = 0;
    if (strcmp(action, "user.disable") == 0 || strcmp(action, "user.delete") == 0) {
        if (self) {
            am_http_send_error(req, 409, "conflict", "you cannot disable or delete yourself");
            return 0;
        }
        rc = action[5] == 'd' && action[6] == 'i'
                 ? am_users_set_disabled(h->app->store, who.org_id, param[0], 1)
                 : am_users_delete(h->app->store, who.org_id, param[0]);
    } else if (strcmp(action, "user.enable") == 0) {
        rc = am_users_set_disabled(h->app->store, who.org_id, param[0], 0);
    } else if (strcmp(action, "user.sessions_revoke") == 0) {
        rc = am_auth_revoke_user_sessions(h->app->store, who.org_id, param[0], 0, &n);
        snprintf(details, sizeof details, "{\"sessions\":%zu}", n);
    } else {
        json_t *body = am_api_parse_body(req);
        if (!body)
            return 0;
        const char *value = NULL, *current = NULL;
        int role_change = strcmp(action, "user.role") == 0;
        if (json_unpack(body, role_change ? "{s:s}" : "{s:s,s?s}",
                        role_change ? "role" : "password", &value, "current_password",
                        &current) != 0) {
            json_decref(body);
            am_http_send_error(req, 400, "bad_request",
                               role_change ? "expected {\"role\"}"
                                           : "expected {\"password\", \"current_password\"?}");
            return 0;
        }
        if (role_change) {
            int role = am_auth_role_parse(value);
            if (!role || role > who.role || self)
                rc = !role ? am_err_set(AM_EINVAL, "role: viewer, member, admin or owner")
                           : am_err_set(AM_EINVAL, "you cannot raise a role above your own or "
                                                   "change your own role");
            else
                rc = am_users_set_role(h->app->store, who.org_id, param[0], role);
            snprintf(details, sizeof details, "{\"role\":\"%s\"}", am_auth_role_name(role));
        } else {
            /* argon2id (the current password's check, the new hash) runs on the worker pool;
             * the answer, audit and session ends follow from there (api_login.c). */
            am_api_password_start(h, req, &who, param[0], value, current,
                                  self && who.role < ADMIN);
            json_decref(body);
            return 0;
        }
        json_decref(body);
    }
    if (rc)
        return fail(req, rc);
    /* These end the user's sessions: end their live terminals and event streams with them. */
    if (strcmp(action, "user.enable") != 0 && strcmp(action, "user.role") != 0)
        am_ws_close_user(who.org_id, param[0]);
    am_api_audit(h, req, &who, action, target, "ok", details[0] ? details : NULL);
    am_http_send_json(req, 200, json_pack("{s:b}", "ok", 1));
    return 0;
}

int am_api_user_disable(am_http_handler *h, h2o_req_t *req, char **p) {
    return user_action(h, req, p, "user.disable");
}
int am_api_user_enable(am_http_handler *h, h2o_req_t *req, char **p) {
    return user_action(h, req, p, "user.enable");
}
int am_api_user_delete(am_http_handler *h, h2o_req_t *req, char **p) {
    return user_action(h, req, p, "user.delete");
}
int am_api_user_role(am_http_handler *h, h2o_req_t *req, char **p) {
    return user_action(h, req, p, "user.role");
}
int am_api_user_password(am_http_handler *h, h2o_req_t *req, char **p) {
    return user_action(h, req, p, "user.password");
}
int am_api_user_sessions_revoke(am_http_handler *h, h2o_req_t *req, char **p) {
    return user_action(h, req, p, "user.sessions_revoke");
}

/* ---- teams ---- */

static json_t *team_json(const Airmesh__V1__Team *t) {
    json_t *m = json_array();
    for (size_t i = 0; i < t->n_members; i++)
        json_array_append_new(m, json_string(t->members[i]));
    return json_pack("{s:s,s:s,s:o,s:I}", "id", t->id, "name", t->name, "members", m,
                     "created_ms", (json_int_t)t->created_ms);
}

static json_t *team_row(void *ud, const ProtobufCMessage *m) {
    (void)ud;
    return team_json((const Airmesh__V1__Team *)m);
}

int am_api_team_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    am_api_send_rows(h, req, AM_DB_TEAMS, who.org_id, &airmesh__v1__team__descriptor, "teams",
                     team_row, NULL);
    return 0;
}

typedef struct {
    const char *org, *team, *user;
    int op; /* 0 create, 1 add, 2 remove, 3 delete */
} team_ctx;

static int team_txn(am_txn *t, void *ud) {
    team_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    int rc = am_txn_get(t, AM_DB_TEAMS, c->org, c->team, &airmesh__v1__team__descriptor, &m);
    if (c->op == 0) {
        if (rc == 0) {
            protobuf_c_message_free_unpacked(m, NULL);
            return am_err_set(AM_EEXISTS, "team %s already exists", c->team);
        }
        Airmesh__V1__Team nt = AIRMESH__V1__TEAM__INIT;
        nt.id = (char *)c->team;
        nt.org_id = (char *)c->org;
        nt.name = (char *)c->team;
        nt.created_ms = am_now_ms();
        return am_txn_put(t, AM_DB_TEAMS, c->org, c->team, &nt.base);
    }
    if (rc)
        return rc == -AM_ENOTFOUND ? am_err_set(AM_ENOTFOUND, "no team %s", c->team) : rc;
    Airmesh__V1__Team *tm = (Airmesh__V1__Team *)m;
    if (c->op == 3) {
        rc = am_txn_del(t, AM_DB_TEAMS, c->org, c->team);
    } else {
        ProtobufCMessage *um = NULL;
        if (c->op == 1 &&
            am_txn_get(t, AM_DB_USERS, c->org, c->user, &airmesh__v1__user__descriptor, &um) != 0) {
            protobuf_c_message_free_unpacked(m, NULL);
            return am_err_set(AM_ENOTFOUND, "no user %s", c->user);
        }
        if (um)
            protobuf_c_message_free_unpacked(um, NULL);
        char *members[512];
        size_t n = 0;
        int present = 0;
        for (size_t i = 0; i < tm->n_members && n < 511; i++) {
            if (strcmp(tm->members[i], c->user) == 0) {
                present = 1;
                if (c->op == 2)
                    continue;
            }
            members[n++] = tm->members[i];
        }
        if (c->op == 1 && !present)
            members[n++] = (char *)c->user;
        if (c->op == 2 && !present) {
            protobuf_c_message_free_unpacked(m, NULL);
            return am_err_set(AM_ENOTFOUND, "%s is not in team %s", c->user, c->team);
        }
        Airmesh__V1__Team nt = *tm;
        nt.members = members;
        nt.n_members = n;
        rc = am_txn_put(t, AM_DB_TEAMS, c->org, c->team, &nt.base);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

static int team_change(am_http_handler *h, h2o_req_t *req, const char *team, int op) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    static const char *actions[] = {"team.create", "team.member_add", "team.member_remove",
                                    "team.delete"};
    const char *user = NULL, *name = team;
    json_t *body = NULL;
    if (op != 0) { /* another org's team, or none: 404 before any other answer */
        ProtobufCMessage *m = NULL;
        if (am_store_get(h->app->store, AM_DB_TEAMS, who.org_id, team,
                         &airmesh__v1__team__descriptor, &m) != 0) {
            am_http_send_error(req, 404, "not_found", "no such team");
            return 0;
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    if (op != 3) {
        body = am_api_parse_body(req);
        if (!body)
            return 0;
        if (json_unpack(body, op == 0 ? "{s:s}" : "{s:s}", op == 0 ? "name" : "user",
                        op == 0 ? &name : &user) != 0 ||
            !am_auth_valid_name(op == 0 ? name : user)) {
            json_decref(body);
            am_http_send_error(req, 400, "bad_request",
                               op == 0 ? "expected {\"name\"} (a-z 0-9 . _ -)"
                                       : "expected {\"user\"}");
            return 0;
        }
    }
    char target[160];
    snprintf(target, sizeof target, "team:%.64s", name);
    if (who.role < ADMIN) {
        json_decref(body);
        return deny(h, req, &who, actions[op], target, "this needs the admin role");
    }
    team_ctx c = {who.org_id, name, user ? user : "", op};
    int rc = am_store_update(h->app->store, team_txn, &c);
    char details[160] = "";
    if (user)
        snprintf(details, sizeof details, "{\"user\":\"%.64s\"}", user);
    if (rc == 0) {
        am_api_audit(h, req, &who, actions[op], target, "ok", details[0] ? details : NULL);
        am_http_send_json(req, op == 0 ? 201 : 200,
                          json_pack("{s:b,s:s}", "ok", 1, "team", name));
    }
    json_decref(body); /* name and user point into it */
    return rc ? fail(req, rc) : 0;
}

int am_api_team_create(am_http_handler *h, h2o_req_t *req, char **p) {
    (void)p;
    return team_change(h, req, NULL, 0);
}
int am_api_team_add(am_http_handler *h, h2o_req_t *req, char **p) {
    return team_change(h, req, p[0], 1);
}
int am_api_team_remove(am_http_handler *h, h2o_req_t *req, char **p) {
    return team_change(h, req, p[0], 2);
}
int am_api_team_delete(am_http_handler *h, h2o_req_t *req, char **p) {
    return team_change(h, req, p[0], 3);
}

/* ---- API tokens ---- */

static json_t *apitoken_row(void *ud, const ProtobufCMessage *m) {
    const am_principal *who = ud;
    const Airmesh__V1__Session *s = (const Airmesh__V1__Session *)m;
    if (!s->api_token || strcmp(s->org_id, who->org_id) != 0 ||
        (who->role < ADMIN && strcmp(s->user_id, who->user_id) != 0))
        return NULL;
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "id", s->id, "name", s->name, "user",
                     s->user_id, "role", am_auth_role_name(s->role), "created_ms",
                     (json_int_t)s->created_ms, "expires_ms", (json_int_t)s->expires_ms);
}

int am_api_apitoken_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    am_api_send_rows(h, req, AM_DB_SESSIONS, "", &airmesh__v1__session__descriptor, "api_tokens",
                     apitoken_row, &who);
    return 0;
}

int am_api_apitoken_create(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    const char *name = "", *role_s = NULL, *ttl = "30d";
    if (json_unpack(body, "{s?s,s?s,s?s}", "name", &name, "role", &role_s, "ttl", &ttl) != 0) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"name\"?, \"role\"?, \"ttl\"?: \"30d\"}");
        return 0;
    }
    int role = role_s ? am_auth_role_parse(role_s) : who.role;
    uint64_t ttl_ms;
    if (!role || am_config_parse_duration(ttl, &ttl_ms) != 0 || ttl_ms > 366ull * 86400000) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "role: viewer|member|admin|owner; ttl: a duration up to 366d");
        return 0;
    }
    char token[AM_AUTH_TOKEN_LEN + 1], id[13], target[40];
    uint64_t expires;
    int rc = am_auth_api_token_create(h->app->store, &who, name, role, ttl_ms, token, id, &expires);
    json_decref(body);
    if (rc)
        return fail(req, rc);
    snprintf(target, sizeof target, "api_token:%s", id);
    char details[64];
    snprintf(details, sizeof details, "{\"role\":\"%s\"}", am_auth_role_name(role));
    am_api_audit(h, req, &who, "api_token.create", target, "ok", details);
    am_http_send_json(req, 201, json_pack("{s:s,s:s,s:s,s:I}", "token", token, "id", id, "role",
                                          am_auth_role_name(role), "expires_ms",
                                          (json_int_t)expires));
    am_wipe(token, sizeof token);
    return 0;
}

int am_api_apitoken_revoke(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    int rc = am_auth_api_token_revoke(h->app->store, who.org_id, param[0],
                                      who.role >= ADMIN ? NULL : who.user_id);
    if (rc)
        return fail(req, rc);
    char target[40];
    snprintf(target, sizeof target, "api_token:%.20s", param[0]);
    am_api_audit(h, req, &who, "api_token.revoke", target, "ok", NULL);
    am_http_send_json(req, 200, json_pack("{s:b}", "ok", 1));
    return 0;
}
