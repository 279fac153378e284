/*
 * appliance/auth/users.c — users, orgs, teams and API tokens in the store: create, disable,
 * delete, change role or password, revoke sessions, team membership. The caller
 * (appliance/ops) decides who may do what (am_auth_can) and passes an am_txn_hook that appends
 * the audit record inside the same transaction; this file keeps the records consistent.
 * Threads: any; each call is ONE LMDB write transaction (plus an argon2id hash outside it), so
 * a change and the sessions it ends commit or abort together.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/auth/auth.h"
#include "appliance/auth/internal.h"
#include "common/err.h"
#include "common/util.h"

static const char *role_names[] = {"", "viewer", "member", "admin", "owner"};

int am_auth_role_parse(const char *s) {
    for (int i = 1; i <= 4; i++)
        if (s && strcmp(s, role_names[i]) == 0)
            return i;
    return 0;
}

const char *am_auth_role_name(int role) {
    return role >= 1 && role <= 4 ? role_names[role] : "none";
}

int am_auth_valid_name(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
              *p == '-'))
            return 0;
    return 1;
}

static int password_ok(const char *pw) {
    return pw && strlen(pw) >= 12 && strlen(pw) <= 1024;
}

/* Hash `password`, or a fresh random one copied to pw_out. */
static int make_hash(const char *password, char *pw_out, size_t pw_cap, char *hash, size_t cap) {
    char gen[25];
    if (!password) {
        if (!pw_out || pw_cap < sizeof gen)
            return am_err_set(AM_EINVAL, "auth: password buffer too small");
        int rc = am_auth_random_password(gen);
        if (rc)
            return rc;
        password = gen;
    } else if (!password_ok(password)) {
        return am_err_set(AM_EINVAL, "password: at least 12 characters");
    }
    int rc = am_auth_hash_password(password, hash, cap);
    if (rc == 0 && password == gen)
        memcpy(pw_out, gen, sizeof gen);
    am_wipe(gen, sizeof gen);
    return rc;
}

typedef struct {
    const char *org, *name, *hash, *display, *display_name;
    int role, superuser, create_org;
    const am_txn_hook *hook;
} create_ctx;

static int create_txn(am_txn *t, void *ud) {
    create_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    if (c->create_org) {
        if (am_txn_get(t, AM_DB_ORGS, "", c->org, &airmesh__v1__org__descriptor, &m) == 0) {
            protobuf_c_message_free_unpacked(m, NULL);
            return am_err_set(AM_EEXISTS, "organization %s already exists", c->org);
        }
        Airmesh__V1__Org o = AIRMESH__V1__ORG__INIT;
        o.id = (char *)c->org;
        o.name = (char *)(c->display && *c->display ? c->display : c->org);
        o.display_name = (char *)(c->display_name ? c->display_name : "");
        o.created_ms = am_now_ms();
        int rc = am_txn_put(t, AM_DB_ORGS, "", c->org, &o.base);
        if (rc)
            return rc;
    } else if (am_txn_get(t, AM_DB_ORGS, "", c->org, &airmesh__v1__org__descriptor, &m) != 0) {
        return am_err_set(AM_ENOTFOUND, "no organization %s", c->org);
    } else {
        protobuf_c_message_free_unpacked(m, NULL);
    }
    m = NULL;
    if (am_txn_get(t, AM_DB_USERS, c->org, c->name, &airmesh__v1__user__descriptor, &m) == 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return am_err_set(AM_EEXISTS, "user %s already exists", c->name);
    }
    Airmesh__V1__User u = AIRMESH__V1__USER__INIT;
    u.id = (char *)c->name;
    u.org_id = (char *)c->org;
    u.name = (char *)c->name;
    u.password_hash = (char *)c->hash;
    u.role = c->role;
    u.superuser = c->superuser;
    u.created_ms = am_now_ms();
    if (!c->create_org)
        u.display_name = (char *)(c->display_name ? c->display_name : "");
    int rc = am_txn_put(t, AM_DB_USERS, c->org, c->name, &u.base);
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_users_create(am_store *s, const char *org, const char *name, int role,
                    const char *display_name, const char *password, char *pw_out, size_t pw_cap,
                    const am_txn_hook *hook) {
    if (!am_auth_valid_name(name))
        return am_err_set(AM_EINVAL, "name: 1-64 of a-z 0-9 . _ - (starting with a letter or digit)");
    if (role < 1 || role > 4)
        return am_err_set(AM_EINVAL, "role: viewer, member, admin or owner");
    char hash[160];
    int rc = make_hash(password, pw_out, pw_cap, hash, sizeof hash);
    if (rc)
        return rc;
    create_ctx c = {.org = org,
                    .name = name,
                    .hash = hash,
                    .display_name = display_name,
                    .role = role,
                    .hook = hook};
    return am_store_update(s, create_txn, &c);
}

int am_orgs_create(am_store *s, const char *org, const char *display, const char *display_name,
                   const char *owner, const char *password, char *pw_out, size_t pw_cap,
                   const am_txn_hook *hook) {
    if (!am_auth_valid_name(org))
        return am_err_set(AM_EINVAL, "org id: 1-64 of a-z 0-9 . _ -");
    if (!am_auth_valid_name(owner))
        return am_err_set(AM_EINVAL, "owner: 1-64 of a-z 0-9 . _ -");
    char hash[160];
    int rc = make_hash(password, pw_out, pw_cap, hash, sizeof hash);
    if (rc)
        return rc;
    create_ctx c = {.org = org,
                    .name = owner,
                    .hash = hash,
                    .display = display,
                    .display_name = display_name,
                    .role = AIRMESH__V1__ROLE__ROLE_OWNER,
                    .create_org = 1,
                    .hook = hook};
    return am_store_update(s, create_txn, &c);
}

/* ---- sessions (deleted in the caller's transaction) ---- */

typedef struct {
    const char *org, *user, *id;
    int api_too;
    char keys[256][65];
    size_t n;
} sess_scan;

static int sess_cb(void *ud, const char *key, const ProtobufCMessage *m) {
    sess_scan *c = ud;
    const Airmesh__V1__Session *se = (const Airmesh__V1__Session *)m;
    if (strcmp(se->org_id, c->org) != 0 || c->n == 256)
        return 0;
    if (c->user && strcmp(se->user_id, c->user) != 0)
        return 0;
    if (c->id && (!se->api_token || strcmp(se->id, c->id) != 0))
        return 0;
    if (se->api_token && !c->api_too)
        return 0;
    snprintf(c->keys[c->n++], 65, "%s", key);
    return 0;
}

/* Delete every matching session in t (256 keys per pass, as many passes as needed). */
static int sess_delete_in(am_txn *t, const char *org, const char *user, const char *id, int api_too,
                          size_t *total) {
    sess_scan *c = calloc(1, sizeof *c);
    if (!c)
        return am_err_set(AM_ENOMEM, "auth: out of memory");
    c->org = org;
    c->user = user;
    c->id = id;
    c->api_too = api_too;
    int rc;
    *total = 0;
    do {
        c->n = 0;
        rc = am_txn_list(t, AM_DB_SESSIONS, "", &airmesh__v1__session__descriptor, sess_cb, c);
        for (size_t i = 0; rc == 0 && i < c->n; i++)
            rc = am_txn_del(t, AM_DB_SESSIONS, "", c->keys[i]);
        *total += c->n;
    } while (rc == 0 && c->n == 256);
    free(c);
    return rc;
}

typedef struct {
    const char *org, *name, *hash;
    int op, value; /* op: 0 disabled, 1 role, 2 password, 3 delete, 4 sessions only */
    int api_too;
    size_t ended;
    size_t *n_out; /* set before the hook runs */
    const am_txn_hook *hook;
} user_ctx;

static int user_txn(am_txn *t, void *ud) {
    user_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    int rc = am_txn_get(t, AM_DB_USERS, c->org, c->name, &airmesh__v1__user__descriptor, &m);
    if (rc)
        return rc == -AM_ENOTFOUND ? am_err_set(AM_ENOTFOUND, "no user %s", c->name) : rc;
    Airmesh__V1__User *u = (Airmesh__V1__User *)m;
    Airmesh__V1__User nu = *u;
    int end_sessions = c->op == 2 || c->op == 3 || c->op == 4 || (c->op == 0 && c->value);
    if (c->op == 3) {
        rc = am_txn_del(t, AM_DB_USERS, c->org, c->name);
    } else if (c->op != 4) {
        if (c->op == 0)
            nu.disabled = c->value;
        else if (c->op == 1)
            nu.role = c->value;
        else {
            nu.password_hash = (char *)c->hash;
            nu.failed_logins = 0;
            nu.locked_until_ms = 0;
        }
        rc = am_txn_put(t, AM_DB_USERS, c->org, c->name, &nu.base);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    c->ended = 0;
    if (rc == 0 && end_sessions)
        rc = sess_delete_in(t, c->org, c->name, NULL, c->op == 3 || c->api_too, &c->ended);
    if (c->n_out)
        *c->n_out = c->ended;
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_users_set_disabled(am_store *s, const char *org, const char *name, int disabled,
                          const am_txn_hook *hook) {
    user_ctx c = {.org = org, .name = name, .op = 0, .value = disabled, .hook = hook};
    return am_store_update(s, user_txn, &c);
}

int am_users_set_role(am_store *s, const char *org, const char *name, int role,
                      const am_txn_hook *hook) {
    if (role < 1 || role > 4)
        return am_err_set(AM_EINVAL, "role: viewer, member, admin or owner");
    user_ctx c = {.org = org, .name = name, .op = 1, .value = role, .hook = hook};
    return am_store_update(s, user_txn, &c);
}

int am_users_set_password(am_store *s, const char *org, const char *name, const char *password,
                          const am_txn_hook *hook) {
    if (!password_ok(password))
        return am_err_set(AM_EINVAL, "password: at least 12 characters");
    char hash[160];
    int rc = am_auth_hash_password(password, hash, sizeof hash);
    if (rc)
        return rc;
    user_ctx c = {.org = org, .name = name, .hash = hash, .op = 2, .hook = hook};
    return am_store_update(s, user_txn, &c);
}

int am_users_check_password(am_store *s, const char *org, const char *name, const char *password) {
    ProtobufCMessage *m = NULL;
    if (!password ||
        am_store_get(s, AM_DB_USERS, org, name, &airmesh__v1__user__descriptor, &m) != 0)
        return am_err_set(AM_EAUTH, "current_password is wrong");
    int rc = am_auth_verify_password(((Airmesh__V1__User *)m)->password_hash, password);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc ? am_err_set(AM_EAUTH, "current_password is wrong") : 0;
}

int am_users_delete(am_store *s, const char *org, const char *name, const am_txn_hook *hook) {
    user_ctx c = {.org = org, .name = name, .op = 3, .hook = hook};
    return am_store_update(s, user_txn, &c);
}

int am_auth_revoke_user_sessions(am_store *s, const char *org, const char *name, int api_tokens_too,
                                 size_t *n, const am_txn_hook *hook) {
    user_ctx c = {
        .org = org, .name = name, .op = 4, .api_too = api_tokens_too, .n_out = n, .hook = hook};
    int rc = am_store_update(s, user_txn, &c);
    if (n && rc)
        *n = 0;
    return rc;
}

/* ---- API tokens ---- */

typedef struct {
    const char *key;
    const Airmesh__V1__Session *se;
    const am_txn_hook *hook;
} put_ctx;

static int put_session_txn(am_txn *t, void *ud) {
    put_ctx *c = ud;
    int rc = am_txn_put(t, AM_DB_SESSIONS, "", c->key, &c->se->base);
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_auth_api_token_create(am_store *s, const am_principal *who, const char *name, int role,
                             uint64_t ttl_ms, char *token_out, char *id_out, uint64_t *expires_ms,
                             const am_txn_hook *hook) {
    if (role < 1 || role > who->role)
        return am_err_set(AM_EINVAL, "role: at most your own (%s)", am_auth_role_name(who->role));
    if (!name || strlen(name) > 128)
        return am_err_set(AM_EINVAL, "name: at most 128 characters");
    uint8_t raw[32], digest[32];
    int rc = am_random(raw, sizeof raw);
    if (rc)
        return rc;
    memcpy(token_out, "am_", 3);
    am_hex(raw, sizeof raw, token_out + 3);
    am_wipe(raw, sizeof raw);
    char key[65];
    am_auth_token_key(token_out, key);
    am_unhex(key, digest, sizeof digest);
    Airmesh__V1__Session se = AIRMESH__V1__SESSION__INIT;
    se.token_sha256.data = digest;
    se.token_sha256.len = sizeof digest;
    se.user_id = (char *)who->user_id;
    se.org_id = (char *)who->org_id;
    se.created_ms = se.last_seen_ms = am_now_ms();
    se.expires_ms = se.created_ms + ttl_ms;
    se.api_token = 1;
    se.role = role;
    se.name = (char *)name;
    char id[13];
    snprintf(id, sizeof id, "%.12s", key);
    se.id = id;
    memcpy(id_out, id, sizeof id); /* the hook names the token in its audit record */
    put_ctx c = {key, &se, hook};
    rc = am_store_update(s, put_session_txn, &c);
    if (rc) {
        am_wipe(token_out, AM_AUTH_TOKEN_LEN + 1);
        return rc;
    }
    *expires_ms = se.expires_ms;
    return 0;
}

typedef struct {
    const char *org, *id, *only_user;
    size_t n;
    const am_txn_hook *hook;
} tok_revoke_ctx;

static int tok_revoke_txn(am_txn *t, void *ud) {
    tok_revoke_ctx *c = ud;
    int rc = sess_delete_in(t, c->org, c->only_user, c->id, 1, &c->n);
    if (rc == 0 && c->n == 0)
        return am_err_set(AM_ENOTFOUND, "no API token %s", c->id);
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_auth_api_token_revoke(am_store *s, const char *org, const char *id, const char *only_user,
                             const am_txn_hook *hook) {
    tok_revoke_ctx c = {org, id, only_user, 0, hook};
    return am_store_update(s, tok_revoke_txn, &c);
}

/* ---- display names (users, teams, orgs) ---- */

typedef struct {
    am_db db;
    const char *org, *id, *display;
    char old[260];
    int changed;
    const am_txn_hook *hook;
} display_ctx;

static int display_txn(am_txn *t, void *ud) {
    display_ctx *c = ud;
    const ProtobufCMessageDescriptor *d = c->db == AM_DB_USERS   ? &airmesh__v1__user__descriptor
                                          : c->db == AM_DB_TEAMS ? &airmesh__v1__team__descriptor
                                                                 : &airmesh__v1__org__descriptor;
    const char *key_org = c->db == AM_DB_ORGS ? "" : c->org;
    const char *what = c->db == AM_DB_USERS   ? "user"
                       : c->db == AM_DB_TEAMS ? "team"
                                              : "organization";
    ProtobufCMessage *m = NULL;
    c->changed = 0;
    int rc = am_txn_get(t, c->db, key_org, c->id, d, &m);
    if (rc)
        return rc == -AM_ENOTFOUND ? am_err_set(AM_ENOTFOUND, "no %s %s", what, c->id) : rc;
    char **field = c->db == AM_DB_USERS   ? &((Airmesh__V1__User *)m)->display_name
                   : c->db == AM_DB_TEAMS ? &((Airmesh__V1__Team *)m)->display_name
                                          : &((Airmesh__V1__Org *)m)->display_name;
    snprintf(c->old, sizeof c->old, "%s", *field ? *field : "");
    if (strcmp(c->old, c->display) == 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
    }
    char *keep = *field;
    *field = (char *)c->display;
    rc = am_txn_put(t, c->db, key_org, c->id, m);
    *field = keep; /* the unpacked message frees its own string */
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc)
        return rc;
    c->changed = 1;
    return am_txn_hook_run(c->hook, t);
}

int am_auth_set_display(am_store *s, am_db db, const char *org, const char *id, const char *display,
                        int *changed, const am_txn_hook *hook) {
    if (db != AM_DB_USERS && db != AM_DB_TEAMS && db != AM_DB_ORGS)
        return am_err_set(AM_EINVAL, "auth: display names are for users, teams and orgs");
    display_ctx c = {
        .db = db, .org = org, .id = id, .display = display ? display : "", .hook = hook};
    int rc = am_store_update(s, display_txn, &c);
    if (changed)
        *changed = rc == 0 && c.changed;
    return rc;
}
