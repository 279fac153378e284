/*
 * appliance/auth — argon2id password hashes, the bootstrap admin, and login sessions.
 *
 * Users are keyed "org/<name>" in AM_DB_USERS (the user id is the login name for now; the tenancy
 * issue adds renames). Sessions are keyed "/<sha256-hex of the bearer secret>" in AM_DB_SESSIONS.
 * Ownership: every returned string is written into caller buffers; nothing here allocates for the
 * caller. Secrets are wiped from the stack before return.
 */
#include "appliance/auth/auth.h"
#include "appliance/auth/internal.h"

#include <argon2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "common/err.h"
#include "common/util.h"

#define ARGON_T 2
#define ARGON_M 19456
#define ARGON_P 1
#define SALT_LEN 16
#define TAG_LEN 32
#define LAST_SEEN_GRANULARITY_MS 60000u

int am_auth_hash_password(const char *password, char *out, size_t cap) {
    uint8_t salt[SALT_LEN];
    int rc = am_random(salt, sizeof salt);
    if (rc)
        return rc;
    int ar = argon2id_hash_encoded(ARGON_T, ARGON_M, ARGON_P, password, strlen(password), salt,
                                   sizeof salt, TAG_LEN, out, cap);
    if (ar != ARGON2_OK)
        return am_err_set(AM_ECRYPTO, "auth: argon2id: %s", argon2_error_message(ar));
    return 0;
}

int am_auth_verify_password(const char *encoded, const char *password) {
    int ar = argon2id_verify(encoded, password, strlen(password));
    if (ar == ARGON2_OK)
        return 0;
    if (ar == ARGON2_VERIFY_MISMATCH)
        return am_err_set(AM_EAUTH, "auth: wrong password");
    return am_err_set(AM_EAUTH, "auth: stored password hash unusable: %s",
                      argon2_error_message(ar));
}

void am_auth_token_key(const char *token, char hex[65]) {
    uint8_t d[32];
    unsigned int n = 0;
    EVP_Digest(token, strlen(token), d, &n, EVP_sha256(), NULL);
    am_hex(d, sizeof d, hex);
}

/* ---- bootstrap ---- */

typedef struct {
    int any;
} any_ctx;

static int any_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    (void)m;
    ((any_ctx *)ud)->any = 1;
    return 1;
}

typedef struct {
    const char *hash;
    int *created;
} boot_ctx;

static int bootstrap_txn(am_txn *t, void *ud) {
    boot_ctx *b = ud;
    any_ctx any = {0};
    int rc = am_txn_list(t, AM_DB_USERS, AM_AUTH_DEFAULT_ORG, &airmesh__v1__user__descriptor,
                         any_cb, &any);
    if (rc)
        return rc;
    *b->created = 0;
    if (any.any)
        return 0;
    uint64_t now = am_now_ms();
    Airmesh__V1__Org org = AIRMESH__V1__ORG__INIT;
    org.id = AM_AUTH_DEFAULT_ORG;
    org.name = "Default organization";
    org.created_ms = now;
    rc = am_txn_put(t, AM_DB_ORGS, "", AM_AUTH_DEFAULT_ORG, &org.base);
    if (rc)
        return rc;
    Airmesh__V1__User u = AIRMESH__V1__USER__INIT;
    u.id = AM_AUTH_BOOTSTRAP_USER;
    u.org_id = AM_AUTH_DEFAULT_ORG;
    u.name = AM_AUTH_BOOTSTRAP_USER;
    u.password_hash = (char *)b->hash;
    u.role = AIRMESH__V1__ROLE__ROLE_OWNER;
    u.superuser = 1;
    u.created_ms = now;
    rc = am_txn_put(t, AM_DB_USERS, AM_AUTH_DEFAULT_ORG, AM_AUTH_BOOTSTRAP_USER, &u.base);
    if (rc)
        return rc;
    *b->created = 1;
    return 0;
}

int am_auth_random_password(char pw[25]) {
    /* 24 characters of a 56-letter unambiguous alphabet: ~139 bits. */
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    uint8_t raw[24];
    int rc = am_random(raw, sizeof raw);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof raw; i++)
        pw[i] = alphabet[raw[i] % (sizeof alphabet - 1)];
    pw[sizeof raw] = '\0';
    am_wipe(raw, sizeof raw);
    return 0;
}

int am_auth_bootstrap(am_store *s, char *pw_out, size_t cap, int *created) {
    char pw[25], hash[160];
    *created = 0;
    if (cap < sizeof pw)
        return am_err_set(AM_EINVAL, "auth: bootstrap password buffer too small");
    int rc = am_auth_random_password(pw);
    if (rc)
        return rc;
    rc = am_auth_hash_password(pw, hash, sizeof hash);
    if (rc == 0) {
        boot_ctx b = {hash, created};
        rc = am_store_update(s, bootstrap_txn, &b);
    }
    if (rc == 0 && *created)
        memcpy(pw_out, pw, sizeof pw);
    am_wipe(pw, sizeof pw);
    return rc;
}

/* ---- login / sessions ---- */

typedef struct {
    const char *org, *user;
    int ok;
} login_note;

/* Count consecutive failures on the record (shown to admins; success resets it). The lock
 * itself is per (user, address), in memory (throttle.c): a stored lock would let anyone lock any
 * user out. */
static int login_note_txn(am_txn *t, void *ud) {
    login_note *c = ud;
    ProtobufCMessage *m = NULL;
    int rc = am_txn_get(t, AM_DB_USERS, c->org, c->user, &airmesh__v1__user__descriptor, &m);
    if (rc)
        return rc;
    Airmesh__V1__User *u = (Airmesh__V1__User *)m;
    if (c->ok) {
        u->failed_logins = 0;
        u->locked_until_ms = 0;
    } else {
        u->failed_logins++;
        u->locked_until_ms = 0;
    }
    rc = am_txn_put(t, AM_DB_USERS, c->org, c->user, &u->base);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

static void note_login_result(am_store *s, const char *org, const char *user, int ok) {
    login_note c = {org, user, ok};
    am_store_update(s, login_note_txn, &c);
}

int am_auth_login(am_store *s, const char *org, const char *user, const char *password,
                  const char *source, uint64_t ttl_ms, char token_out[AM_AUTH_TOKEN_LEN + 1],
                  uint64_t *expires_ms, am_principal *who) {
    ProtobufCMessage *m = NULL;
    int rc = am_store_get(s, AM_DB_USERS, org, user, &airmesh__v1__user__descriptor, &m);
    if (rc) {
        /* Spend the same time as a real check so timing does not reveal which users exist. */
        am_auth_verify_password("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
                                "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyMTI",
                                password);
        return am_err_set(AM_EAUTH, "auth: unknown user or wrong password");
    }
    Airmesh__V1__User *u = (Airmesh__V1__User *)m;
    /* No account-wide lock: it would let anyone lock any user out and tell which names exist.
     * Failures are throttled per address and per (user, address) in throttle.c instead. */
    rc = am_auth_verify_password(u->password_hash, password);
    if (rc || u->disabled) {
        if (rc)
            note_login_result(s, org, user, 0);
        protobuf_c_message_free_unpacked(m, NULL);
        return am_err_set(AM_EAUTH, "auth: unknown user or wrong password");
    }
    if (u->failed_logins)
        note_login_result(s, org, user, 1);
    uint8_t raw[32];
    rc = am_random(raw, sizeof raw);
    if (rc) {
        protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    memcpy(token_out, "am_", 3);
    am_hex(raw, sizeof raw, token_out + 3);
    am_wipe(raw, sizeof raw);

    char key[65];
    am_auth_token_key(token_out, key);
    uint64_t now = am_now_ms();
    Airmesh__V1__Session sess = AIRMESH__V1__SESSION__INIT;
    uint8_t digest[32];
    am_unhex(key, digest, sizeof digest);
    sess.token_sha256.data = digest;
    sess.token_sha256.len = sizeof digest;
    sess.user_id = u->id;
    sess.org_id = u->org_id;
    sess.created_ms = now;
    sess.expires_ms = now + ttl_ms;
    sess.last_seen_ms = now;
    sess.source = (char *)(source ? source : "");
    rc = am_store_put(s, AM_DB_SESSIONS, "", key, &sess.base);
    if (rc == 0) {
        *expires_ms = sess.expires_ms;
        snprintf(who->user_id, sizeof who->user_id, "%s", u->id);
        snprintf(who->org_id, sizeof who->org_id, "%s", u->org_id);
        who->role = u->role;
        who->superuser = u->superuser;
        who->pod_id[0] = 0;
    } else {
        am_wipe(token_out, AM_AUTH_TOKEN_LEN + 1);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

static int del_txn(am_txn *t, void *ud) {
    int rc = am_txn_del(t, AM_DB_SESSIONS, "", ud);
    return rc == -AM_ENOTFOUND ? 0 : rc;
}

static int token_well_formed(const char *token) {
    if (!token || strlen(token) != AM_AUTH_TOKEN_LEN || strncmp(token, "am_", 3) != 0)
        return 0;
    for (const char *p = token + 3; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

int am_auth_check(am_store *s, const char *token, uint64_t idle_ms, am_principal *who) {
    if (!token_well_formed(token))
        return am_err_set(AM_EAUTH, "auth: malformed token");
    char key[65];
    am_auth_token_key(token, key);
    ProtobufCMessage *m = NULL;
    int rc = am_store_get(s, AM_DB_SESSIONS, "", key, &airmesh__v1__session__descriptor, &m);
    if (rc)
        return am_err_set(AM_EAUTH, "auth: unknown or expired session");
    Airmesh__V1__Session *sess = (Airmesh__V1__Session *)m;
    uint64_t now = am_now_ms();
    if (now >= sess->expires_ms || (idle_ms && now - sess->last_seen_ms > idle_ms)) {
        protobuf_c_message_free_unpacked(m, NULL);
        am_store_update(s, del_txn, key); /* expired: forget it */
        return am_err_set(AM_EAUTH, "auth: session expired");
    }
    ProtobufCMessage *um = NULL;
    rc = am_store_get(s, AM_DB_USERS, sess->org_id, sess->user_id, &airmesh__v1__user__descriptor,
                      &um);
    if (rc || ((Airmesh__V1__User *)um)->disabled) {
        if (um)
            protobuf_c_message_free_unpacked(um, NULL);
        protobuf_c_message_free_unpacked(m, NULL);
        return am_err_set(AM_EAUTH, "auth: user disabled or removed");
    }
    Airmesh__V1__User *u = (Airmesh__V1__User *)um;
    snprintf(who->user_id, sizeof who->user_id, "%s", u->id);
    snprintf(who->org_id, sizeof who->org_id, "%s", u->org_id);
    who->role = u->role;
    who->superuser = u->superuser && !sess->api_token;
    who->pod_id[0] = 0;
    /* An API token acts with its own role, never above its user's current one. */
    if (sess->api_token && (int)sess->role < who->role)
        who->role = sess->role;
    /* Refresh last_seen often enough for the idle timeout, at most once a minute. */
    uint64_t granularity = LAST_SEEN_GRANULARITY_MS;
    if (idle_ms && idle_ms / 4 < granularity)
        granularity = idle_ms / 4;
    if (now - sess->last_seen_ms > granularity) {
        sess->last_seen_ms = now;
        am_store_put(s, AM_DB_SESSIONS, "", key, &sess->base);
    }
    protobuf_c_message_free_unpacked(um, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

typedef struct {
    const char *key;
    const am_txn_hook *hook;
} logout_ctx;

static int logout_txn(am_txn *t, void *ud) {
    logout_ctx *c = ud;
    int rc = del_txn(t, (void *)c->key);
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_auth_logout(am_store *s, const char *token, const am_txn_hook *hook) {
    if (!token_well_formed(token))
        return am_err_set(AM_EAUTH, "auth: malformed token");
    char key[65];
    am_auth_token_key(token, key);
    logout_ctx c = {key, hook};
    return am_store_update(s, logout_txn, &c);
}
