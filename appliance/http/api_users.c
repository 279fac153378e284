/*
 * appliance/http/api_users.c — REST endpoints for organizations, users, teams and API tokens:
 * parse the request, call appliance/ops (which checks the role with am_auth_can, changes the
 * store and audits, refusals included), render. Permissions are in the README's role matrix
 * (appliance/auth/can.c). Another org's users and teams answer 404.
 * Threads: the http thread.
 */
#include <stdio.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/http/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

static const char *peer_of(h2o_req_t *req, char *buf, size_t cap) {
    return am_http_peer(req, buf, cap);
}

static json_t *user_json(const Airmesh__V1__User *u) {
    return json_pack("{s:s,s:s,s:s,s:b,s:I,s:b,s:I,s:s}", "id", u->id, "org", u->org_id, "role",
                     am_auth_role_name(u->role), "disabled", u->disabled, "created_ms",
                     (json_int_t)u->created_ms, "superuser", u->superuser, "locked_until_ms",
                     (json_int_t)u->locked_until_ms, "display_name",
                     u->display_name ? u->display_name : "");
}

/* Load a user of the caller's org (404 otherwise). */
static Airmesh__V1__User *load_user(am_http_handler *h, h2o_req_t *req, const am_principal *who,
                                    const char *name) {
    ProtobufCMessage *m = NULL;
    if (am_ops_get(h->app->ops, AM_DB_USERS, who->org_id, name, &airmesh__v1__user__descriptor,
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
    return json_pack("{s:s,s:s,s:I,s:s}", "id", o->id, "name", o->name, "created_ms",
                     (json_int_t)o->created_ms, "display_name",
                     o->display_name ? o->display_name : "");
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
    const char *id = NULL, *name = NULL, *owner = NULL, *password = NULL, *dn = NULL;
    if (json_unpack(body, "{s:s,s?s,s:s,s?s}", "id", &id, "name", &name, "owner", &owner,
                    "password", &password) != 0) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"id\", \"name\"?, \"display_name\"?, \"owner\", "
                           "\"password\"?}");
        return 0;
    }
    if (am_api_display_name_arg(req, body, &dn) != 0) {
        json_decref(body);
        return 0;
    }
    /* The owner's password hash (argon2id) is made on the worker pool (api_login.c); the role
     * check, the store and the audit record are ops', there. */
    am_api_create_start(h, req, &who, 1, id, name, owner, NULL, dn, password);
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
    const char *name = NULL, *role_s = "member", *password = NULL, *dn = NULL;
    if (json_unpack(body, "{s:s,s?s,s?s}", "name", &name, "role", &role_s, "password", &password) !=
        0) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"name\", \"role\"?: viewer|member|admin|owner, "
                           "\"display_name\"?, \"password\"?}");
        return 0;
    }
    if (am_api_display_name_arg(req, body, &dn) != 0) {
        json_decref(body);
        return 0;
    }
    /* The password hash (argon2id) is made on the worker pool (api_login.c); the role check,
     * the store and the audit record are ops', there. */
    am_api_create_start(h, req, &who, 0, who.org_id, NULL, name, role_s, dn, password);
    json_decref(body);
    return 0;
}

static int user_action(am_http_handler *h, h2o_req_t *req, char **param, const char *action) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char peer[64];
    const char *src = peer_of(req, peer, sizeof peer), *name = param[0];
    am_ops *o = h->app->ops;
    int rc;
    if (strcmp(action, "user.disable") == 0 || strcmp(action, "user.enable") == 0) {
        rc = am_ops_user_set_disabled(o, &who, src, name, action[5] == 'd');
    } else if (strcmp(action, "user.delete") == 0) {
        rc = am_ops_user_delete(o, &who, src, name);
    } else if (strcmp(action, "user.sessions_revoke") == 0) {
        rc = am_ops_user_revoke_sessions(o, &who, src, name, NULL);
    } else {
        /* 404 for another org's user before the body is even looked at */
        Airmesh__V1__User *u = load_user(h, req, &who, name);
        if (!u)
            return 0;
        protobuf_c_message_free_unpacked(&u->base, NULL);
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
            rc = am_ops_user_set_role(o, &who, src, name, value);
        } else {
            /* argon2id (the current password's check, the new hash) runs on the worker pool;
             * the answer and the end of sessions and WebSockets follow from there (api_login.c). */
            am_api_password_start(h, req, &who, name, value, current);
            json_decref(body);
            return 0;
        }
        json_decref(body);
    }
    if (rc)
        return am_api_send_rc(req, rc);
    /* These end the user's sessions: end their live terminals and event streams with them. */
    if (strcmp(action, "user.enable") != 0 && strcmp(action, "user.role") != 0)
        am_ws_close_user(who.org_id, name);
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
    return json_pack("{s:s,s:s,s:o,s:I,s:s}", "id", t->id, "name", t->name, "members", m,
                     "created_ms", (json_int_t)t->created_ms, "display_name",
                     t->display_name ? t->display_name : "");
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

int am_api_team_show(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    ProtobufCMessage *m = NULL;
    if (am_ops_get(h->app->ops, AM_DB_TEAMS, who.org_id, param[0], &airmesh__v1__team__descriptor,
                   &m) != 0) {
        am_http_send_error(req, 404, "not_found", "no such team");
        return 0;
    }
    am_http_send_json(req, 200, team_json((const Airmesh__V1__Team *)m));
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

static int team_change(am_http_handler *h, h2o_req_t *req, const char *team, am_team_op op) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    const char *user = NULL, *name = team, *dn = NULL;
    json_t *body = NULL;
    if (op != AM_TEAM_CREATE) { /* another org's team, or none: 404 before any other answer */
        ProtobufCMessage *m = NULL;
        if (am_ops_get(h->app->ops, AM_DB_TEAMS, who.org_id, team, &airmesh__v1__team__descriptor,
                       &m) != 0) {
            am_http_send_error(req, 404, "not_found", "no such team");
            return 0;
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    if (op != AM_TEAM_DELETE) {
        body = am_api_parse_body(req);
        if (!body)
            return 0;
        int create = op == AM_TEAM_CREATE;
        if (json_unpack(body, "{s:s}", create ? "name" : "user", create ? &name : &user) != 0 ||
            !am_auth_valid_name(create ? name : user)) {
            json_decref(body);
            am_http_send_error(req, 400, "bad_request",
                               create
                                   ? "expected {\"name\", \"display_name\"?} (name: a-z 0-9 . _ -)"
                                   : "expected {\"user\"}");
            return 0;
        }
        if (create && am_api_display_name_arg(req, body, &dn) != 0) {
            json_decref(body);
            return 0;
        }
    }
    char peer[64];
    const char *src = peer_of(req, peer, sizeof peer);
    int rc = op == AM_TEAM_CREATE ? am_ops_team_create(h->app->ops, &who, src, name, dn)
                                  : am_ops_team_change(h->app->ops, &who, src, name, user, op);
    if (rc == 0) {
        json_t *out = json_pack("{s:b,s:s}", "ok", 1, "team", name);
        if (op == AM_TEAM_CREATE)
            am_api_add_display_name(out, AM_DB_TEAMS, h, who.org_id, name);
        am_http_send_json(req, op == AM_TEAM_CREATE ? 201 : 200, out);
    }
    json_decref(body); /* name and user point into it */
    return rc ? am_api_send_rc(req, rc) : 0;
}

int am_api_team_create(am_http_handler *h, h2o_req_t *req, char **p) {
    (void)p;
    return team_change(h, req, NULL, AM_TEAM_CREATE);
}
int am_api_team_add(am_http_handler *h, h2o_req_t *req, char **p) {
    return team_change(h, req, p[0], AM_TEAM_ADD);
}
int am_api_team_remove(am_http_handler *h, h2o_req_t *req, char **p) {
    return team_change(h, req, p[0], AM_TEAM_REMOVE);
}
int am_api_team_delete(am_http_handler *h, h2o_req_t *req, char **p) {
    return team_change(h, req, p[0], AM_TEAM_DELETE);
}

/* ---- API tokens ---- */

static json_t *apitoken_row(void *ud, const ProtobufCMessage *m) {
    const am_principal *who = ud;
    const Airmesh__V1__Session *s = (const Airmesh__V1__Session *)m;
    if (!s->api_token || strcmp(s->org_id, who->org_id) != 0 ||
        (am_auth_can(who, AM_CAN_MANAGE_USERS, NULL) != 0 && strcmp(s->user_id, who->user_id) != 0))
        return NULL;
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "id", s->id, "name", s->name, "user", s->user_id,
                     "role", am_auth_role_name(s->role), "created_ms", (json_int_t)s->created_ms,
                     "expires_ms", (json_int_t)s->expires_ms);
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
    char token[AM_AUTH_TOKEN_LEN + 1], id[13], peer[64];
    uint64_t expires;
    int role = 0;
    int rc = am_ops_api_token_create(h->app->ops, &who, peer_of(req, peer, sizeof peer), name,
                                     role_s, ttl, token, id, &expires, &role);
    json_decref(body);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 201,
                      json_pack("{s:s,s:s,s:s,s:I}", "token", token, "id", id, "role",
                                am_auth_role_name(role), "expires_ms", (json_int_t)expires));
    am_wipe(token, sizeof token);
    return 0;
}

int am_api_apitoken_revoke(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char peer[64];
    int rc = am_ops_api_token_revoke(h->app->ops, &who, peer_of(req, peer, sizeof peer), param[0]);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200, json_pack("{s:b}", "ok", 1));
    return 0;
}
