/*
 * appliance/ops/users.c — the state changes of people: login and logout, organizations, users,
 * teams and API tokens. Permissions come from am_auth_can (README "Organizations, users and
 * roles"): admins and owners manage users and teams of their org, never touching or granting a
 * role above their own; only the appliance administrator creates organizations; everyone
 * manages their own password and API tokens. Another org's users and teams are -AM_ENOTFOUND.
 * Threads: any.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops/internal.h"
#include "common/display_name.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define ADMIN AIRMESH__V1__ROLE__ROLE_ADMIN

/* ---- sessions ---- */

int am_ops_login(am_ops *o, const char *org, const char *user, const char *password,
                 const char *source, char token_out[AM_AUTH_TOKEN_LEN + 1], uint64_t *expires_ms,
                 am_principal *who) {
    int rc = am_ops_login_begin(o, org, user, password, source, token_out, expires_ms, who);
    return am_ops_login_done(o, org, user, source, rc, token_out, who, NULL);
}

int am_ops_login_begin(am_ops *o, const char *org, const char *user, const char *password,
                       const char *source, char token_out[AM_AUTH_TOKEN_LEN + 1],
                       uint64_t *expires_ms, am_principal *who) {
    return am_auth_login(o->c.store, org, user, password, source, o->c.session_ttl_ms, token_out,
                         expires_ms, who);
}

int am_ops_login_done(am_ops *o, const char *org, const char *user, const char *source, int rc,
                      char token_out[AM_AUTH_TOKEN_LEN + 1], const am_principal *who,
                      const char *note) {
    char target[160];
    snprintf(target, sizeof target, "user:%.64s", user ? user : "");
    ops_act a;
    ops_act_init(&a, o, target, org, "auth.login", target, source);
    if (rc) {
        int locked = rc == -AM_ELIMIT;
        if (locked)
            ops_act_details(&a, "{\"reason\":\"locked\"}");
        am_log_warn("auth", "login refused", "org=%s source=%s locked=%d", org, source, locked);
        if (!locked)
            am_err_set(AM_EAUTH, "unknown user or wrong password");
        return ops_deny(&a, locked ? -AM_ELIMIT : -AM_EAUTH);
    }
    snprintf(a.org, sizeof a.org, "%s", who->org_id);
    if (note) {
        json_t *d = json_pack("{s:s}", "note", note);
        char *ds = d ? json_dumps(d, JSON_COMPACT) : NULL;
        json_decref(d);
        snprintf(a.details, sizeof a.details, "%s",
                 ds && strlen(ds) < sizeof a.details ? ds : "{}");
        free(ds);
    }
    rc = ops_record(&a, "ok");
    if (rc) { /* no audit record, no session: end the one just opened */
        char why[400];
        snprintf(why, sizeof why, "%s", am_err_last());
        am_auth_logout(o->c.store, token_out, NULL);
        am_wipe(token_out, AM_AUTH_TOKEN_LEN + 1);
        return am_err_set(rc, "%s", why);
    }
    return 0;
}

int am_ops_login_refused(am_ops *o, const char *org, const char *user, const char *source,
                         const char *reason) {
    char target[160];
    snprintf(target, sizeof target, "user:%.64s", user ? user : "");
    ops_act a;
    ops_act_init(&a, o, target, org, "auth.login", target, source);
    json_t *d = json_pack("{s:s}", "reason", reason ? reason : "");
    char *ds = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a.details, sizeof a.details, "%s", ds && strlen(ds) < sizeof a.details ? ds : "{}");
    free(ds);
    am_err_set(AM_ELIMIT, "login refused: %s", reason ? reason : "");
    return ops_deny(&a, -AM_ELIMIT);
}

int am_ops_refused(am_ops *o, const am_principal *who, const char *source, const char *action,
                   const char *target, const char *reason) {
    ops_act a;
    ops_act_user(&a, o, who, action, target, source);
    json_t *d = json_pack("{s:s}", "reason", reason ? reason : "");
    char *ds = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a.details, sizeof a.details, "%s", ds && strlen(ds) < sizeof a.details ? ds : "{}");
    free(ds);
    am_err_set(AM_EUNAVAIL, "%s: %s", action, reason ? reason : "");
    return ops_deny(&a, -AM_EUNAVAIL);
}

int am_ops_logout(am_ops *o, const am_principal *who, const char *source, const char *token) {
    ops_act a;
    ops_act_user(&a, o, who, "auth.logout", NULL, source);
    return ops_act_done(&a, am_auth_logout(o->c.store, token, &a.hook));
}

/* ---- organizations ---- */

int am_ops_org_create(am_ops *o, const am_principal *who, const char *source, const char *id,
                      const char *name, const char *display_name, const char *owner,
                      const char *password, char *pw_out, size_t pw_cap) {
    char target[160];
    snprintf(target, sizeof target, "org:%.64s", id ? id : "");
    ops_act a;
    ops_act_user(&a, o, who, "org.create", target, source);
    int rc = ops_check(&a, who, AM_CAN_ORG_CREATE, NULL);
    if (rc)
        return rc;
    char dn[AM_DISPLAY_NAME_BUF];
    if ((rc = ops_display_name(&a, display_name, dn, sizeof dn, NULL)) != 0)
        return rc;
    rc = am_orgs_create(o->c.store, id, name, display_name ? dn : NULL, owner, password, pw_out,
                        pw_cap, &a.hook);
    return ops_act_done(&a, rc);
}

/* The pod limit policy. Reads need a role in the org; the target org must be the caller's. */
int am_ops_org_limits_get(am_ops *o, const am_principal *who, const char *org, am_org_limits *out) {
    memset(out, 0, sizeof *out);
    if (!org)
        org = who ? who->org_id : "";
    am_can_target t = {org, 0};
    int rc = am_auth_can(who, AM_CAN_READ, &t);
    if (rc)
        return rc;
    return am_pods_limits_get(o->c.store, org, out);
}

static void limits_json(json_t *o, const char *key, const am_pod_defaults *d) {
    json_object_set_new(o, key,
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "memory",
                                  (json_int_t)d->memory_bytes, "cpu_millis",
                                  (json_int_t)d->cpu_millis, "pids", (json_int_t)d->pids, "tmp",
                                  (json_int_t)d->tmp_bytes, "shm", (json_int_t)d->shm_bytes,
                                  "workspace", (json_int_t)d->workspace_bytes));
}

int am_ops_org_limits_set(am_ops *o, const am_principal *who, const char *source, const char *org,
                          const am_org_limits *l) {
    if (!org)
        org = who ? who->org_id : "";
    char target[160];
    snprintf(target, sizeof target, "org:%.64s", org);
    ops_act a;
    ops_act_user(&a, o, who, "org.limits", target, source);
    am_can_target t = {org, 0};
    int rc = ops_check(&a, who, AM_CAN_ORG_LIMITS, &t);
    if (rc)
        return rc;
    if ((rc = am_pods_limits_validate(l)) != 0)
        return rc;
    json_t *d = json_object();
    limits_json(d, "defaults", &l->def);
    limits_json(d, "max", &l->max);
    char *ds = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a.details, sizeof a.details, "%s", ds && strlen(ds) < sizeof a.details ? ds : "{}");
    free(ds);
    return ops_act_done(&a, am_pods_limits_set(o->c.store, org, l, &a.hook));
}

/* ---- users ---- */

/* The target user of the caller's org (-AM_ENOTFOUND otherwise): its role. */
static int user_role(am_ops *o, const am_principal *who, const char *name, int *role) {
    ProtobufCMessage *m = NULL;
    if (!name || am_store_get(o->c.store, AM_DB_USERS, who->org_id, name,
                              &airmesh__v1__user__descriptor, &m) != 0)
        return am_err_set(AM_ENOTFOUND, "no such user");
    *role = ((Airmesh__V1__User *)m)->role;
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

static void user_target(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "user:%.64s", name ? name : "");
}

int am_ops_user_create(am_ops *o, const am_principal *who, const char *source, const char *name,
                       const char *role_name, const char *display_name, const char *password,
                       char *pw_out, size_t pw_cap) {
    char target[160];
    user_target(target, sizeof target, name);
    int role = am_auth_role_parse(role_name ? role_name : "member");
    if (!role)
        return am_err_set(AM_EINVAL, "role: viewer, member, admin or owner");
    ops_act a;
    ops_act_user(&a, o, who, "user.create", target, source);
    am_can_target t = {NULL, role};
    int rc = ops_check(&a, who, AM_CAN_MANAGE_USERS, &t);
    if (rc)
        return rc;
    char dn[AM_DISPLAY_NAME_BUF];
    if ((rc = ops_display_name(&a, display_name, dn, sizeof dn, am_auth_role_name(role))) != 0)
        return rc;
    rc = am_users_create(o->c.store, who->org_id, name, role, display_name ? dn : NULL, password,
                         pw_out, pw_cap, &a.hook);
    return ops_act_done(&a, rc);
}

/* Load the target (404), then the gate: admin+, on a user whose role is no higher. */
static int user_gate(am_ops *o, ops_act *a, const am_principal *who, const char *name, int *role) {
    int rc = user_role(o, who, name, role);
    if (rc)
        return rc;
    am_can_target t = {NULL, *role};
    return ops_check(a, who, AM_CAN_MANAGE_USERS, &t);
}

int am_ops_user_set_disabled(am_ops *o, const am_principal *who, const char *source,
                             const char *name, int disabled) {
    char target[160];
    user_target(target, sizeof target, name);
    ops_act a;
    ops_act_user(&a, o, who, disabled ? "user.disable" : "user.enable", target, source);
    int role, rc = user_gate(o, &a, who, name, &role);
    if (rc)
        return rc;
    if (disabled && strcmp(name, who->user_id) == 0)
        return am_err_set(AM_ESTATE, "you cannot disable or delete yourself");
    rc = am_users_set_disabled(o->c.store, who->org_id, name, disabled, &a.hook);
    return ops_act_done(&a, rc);
}

int am_ops_user_delete(am_ops *o, const am_principal *who, const char *source, const char *name) {
    char target[160];
    user_target(target, sizeof target, name);
    ops_act a;
    ops_act_user(&a, o, who, "user.delete", target, source);
    int role, rc = user_gate(o, &a, who, name, &role);
    if (rc)
        return rc;
    if (strcmp(name, who->user_id) == 0)
        return am_err_set(AM_ESTATE, "you cannot disable or delete yourself");
    return ops_act_done(&a, am_users_delete(o->c.store, who->org_id, name, &a.hook));
}

int am_ops_user_set_role(am_ops *o, const am_principal *who, const char *source, const char *name,
                         const char *role_name) {
    char target[160];
    user_target(target, sizeof target, name);
    ops_act a;
    ops_act_user(&a, o, who, "user.role", target, source);
    int cur, rc = user_gate(o, &a, who, name, &cur);
    if (rc)
        return rc;
    int role = am_auth_role_parse(role_name);
    if (!role)
        return am_err_set(AM_EINVAL, "role: viewer, member, admin or owner");
    if (role > who->role || strcmp(name, who->user_id) == 0)
        return am_err_set(AM_EINVAL,
                          "you cannot raise a role above your own or change your own role");
    ops_act_details(&a, "{\"role\":\"%s\"}", am_auth_role_name(role));
    rc = am_users_set_role(o->c.store, who->org_id, name, role, &a.hook);
    return ops_act_done(&a, rc);
}

int am_ops_user_set_password(am_ops *o, const am_principal *who, const char *source,
                             const char *name, const char *password, const char *current) {
    char target[160];
    user_target(target, sizeof target, name);
    ops_act a;
    ops_act_user(&a, o, who, "user.password", target, source);
    int role, rc;
    if (name && strcmp(name, who->user_id) == 0) {
        if ((rc = user_role(o, who, name, &role)) != 0)
            return rc;
        if ((rc = ops_check(&a, who, AM_CAN_SELF, NULL)) != 0)
            return rc;
        /* Below admin, users prove who they are before changing their own password. */
        if (who->role < ADMIN &&
            am_users_check_password(o->c.store, who->org_id, name, current) != 0) {
            am_err_set(AM_EPERM, "current_password is wrong");
            return ops_deny(&a, -AM_EPERM);
        }
    } else if ((rc = user_gate(o, &a, who, name, &role)) != 0) {
        return rc;
    }
    rc = am_users_set_password(o->c.store, who->org_id, name, password, &a.hook);
    return ops_act_done(&a, rc);
}

typedef struct {
    ops_act *a;
    const size_t *n;
} count_hook_ctx;

static int count_hook(am_txn *t, void *ud) {
    count_hook_ctx *c = ud;
    ops_act_details(c->a, "{\"sessions\":%zu}", *c->n);
    return c->a->hook.fn(t, c->a);
}

int am_ops_user_revoke_sessions(am_ops *o, const am_principal *who, const char *source,
                                const char *name, size_t *n) {
    char target[160];
    user_target(target, sizeof target, name);
    ops_act a;
    ops_act_user(&a, o, who, "user.sessions_revoke", target, source);
    int role, rc = user_gate(o, &a, who, name, &role);
    if (rc)
        return rc;
    /* The count is known inside the transaction only: the hook's record says it. */
    size_t count = 0;
    count_hook_ctx hc = {&a, &count};
    am_txn_hook h = {count_hook, &hc};
    rc = am_auth_revoke_user_sessions(o->c.store, who->org_id, name, 0, &count, &h);
    if (n)
        *n = count;
    return ops_act_done(&a, rc);
}

/* ---- teams ---- */

static int team_change(am_ops *o, const am_principal *who, const char *source, const char *team,
                       const char *user, am_team_op op, const char *display_name) {
    static const char *actions[] = {"team.create", "team.member_add", "team.member_remove",
                                    "team.delete"};
    if (op != AM_TEAM_CREATE) { /* another org's team, or none: 404 before any other answer */
        ProtobufCMessage *m = NULL;
        if (!team || am_store_get(o->c.store, AM_DB_TEAMS, who->org_id, team,
                                  &airmesh__v1__team__descriptor, &m) != 0)
            return am_err_set(AM_ENOTFOUND, "no such team");
        protobuf_c_message_free_unpacked(m, NULL);
    }
    char target[160];
    snprintf(target, sizeof target, "team:%.64s", team ? team : "");
    ops_act a;
    ops_act_user(&a, o, who, actions[op], target, source);
    int rc = ops_check(&a, who, AM_CAN_MANAGE_USERS, NULL);
    if (rc)
        return rc;
    if (user && (op == AM_TEAM_ADD || op == AM_TEAM_REMOVE))
        ops_act_details(&a, "{\"user\":\"%.64s\"}", user);
    if (op == AM_TEAM_CREATE) {
        char dn[AM_DISPLAY_NAME_BUF];
        if ((rc = ops_display_name(&a, display_name, dn, sizeof dn, NULL)) != 0)
            return rc;
        rc = am_teams_create(o->c.store, who->org_id, team, display_name ? dn : NULL, &a.hook);
    } else {
        rc = am_teams_change(o->c.store, who->org_id, team, user, op, &a.hook);
    }
    return ops_act_done(&a, rc);
}

int am_ops_team_change(am_ops *o, const am_principal *who, const char *source, const char *team,
                       const char *user, am_team_op op) {
    return team_change(o, who, source, team, user, op, NULL);
}

int am_ops_team_create(am_ops *o, const am_principal *who, const char *source, const char *team,
                       const char *display_name) {
    return team_change(o, who, source, team, NULL, AM_TEAM_CREATE, display_name);
}

/* ---- API tokens ---- */

typedef struct {
    ops_act *a;
    const char *id;
} tok_hook_ctx;

/* The token's id is known only once auth made it: name the target inside the transaction. */
static int tok_hook(am_txn *t, void *ud) {
    tok_hook_ctx *c = ud;
    snprintf(c->a->target, sizeof c->a->target, "api_token:%s", c->id);
    return c->a->hook.fn(t, c->a);
}

int am_ops_api_token_create(am_ops *o, const am_principal *who, const char *source,
                            const char *name, const char *role_name, const char *ttl,
                            char token_out[AM_AUTH_TOKEN_LEN + 1], char id_out[13],
                            uint64_t *expires_ms, int *role_out) {
    int role = role_name ? am_auth_role_parse(role_name) : who->role;
    uint64_t ttl_ms;
    if (!role || am_duration_parse(ttl ? ttl : "30d", &ttl_ms) != 0 || ttl_ms > 366ull * 86400000)
        return am_err_set(AM_EINVAL, "role: viewer|member|admin|owner; ttl: a duration up to 366d");
    ops_act a;
    ops_act_user(&a, o, who, "api_token.create", "api_token:", source);
    int rc = ops_check(&a, who, AM_CAN_SELF, NULL);
    if (rc)
        return rc;
    ops_act_details(&a, "{\"role\":\"%s\"}", am_auth_role_name(role));
    tok_hook_ctx hc = {&a, id_out};
    am_txn_hook h = {tok_hook, &hc};
    rc = am_auth_api_token_create(o->c.store, who, name ? name : "", role, ttl_ms, token_out,
                                  id_out, expires_ms, &h);
    if (rc == 0 && role_out)
        *role_out = role;
    return ops_act_done(&a, rc);
}

int am_ops_api_token_revoke(am_ops *o, const am_principal *who, const char *source,
                            const char *id) {
    char target[40];
    snprintf(target, sizeof target, "api_token:%.20s", id ? id : "");
    ops_act a;
    ops_act_user(&a, o, who, "api_token.revoke", target, source);
    int rc = ops_check(&a, who, AM_CAN_SELF, NULL);
    if (rc)
        return rc;
    /* Admins revoke any token of the org; others only their own (another's: not found). */
    int all = am_auth_can(who, AM_CAN_MANAGE_USERS, NULL) == 0;
    rc = am_auth_api_token_revoke(o->c.store, who->org_id, id, all ? NULL : who->user_id, &a.hook);
    return ops_act_done(&a, rc);
}
