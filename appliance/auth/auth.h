/*
 * appliance/auth — password hashes, the bootstrap admin, login sessions and bearer tokens.
 *
 * Passwords: argon2id (Debian's libargon2), t=2 passes, m=19 MiB, p=1, 16-byte random salt,
 * 32-byte tag, stored as the standard "$argon2id$v=19$m=19456,t=2,p=1$salt$tag" string
 * (OWASP's minimum for argon2id; one verify costs ~30 ms on the 2-core appliance).
 * Sessions: a bearer secret "am_" + 64 hex chars (256 random bits), handed to the client once; the
 * store keeps only SHA-256(secret) as the key of a Session record in AM_DB_SESSIONS (org ""), so a
 * copy of the store yields no usable token. The same secret is the console's cookie value and
 * airmeshctl's bearer token.
 * Threads: every call may run on any thread (each is one LMDB transaction). appliance/ops
 * audits: calls that change state take an am_txn_hook (NULL = none) run last inside their
 * transaction.
 */
#ifndef AM_APPLIANCE_AUTH_H
#define AM_APPLIANCE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/auth/can.h"
#include "appliance/store/store.h"

#define AM_AUTH_TOKEN_LEN 67 /* "am_" + 64 hex */
#define AM_AUTH_DEFAULT_ORG "default"
#define AM_AUTH_BOOTSTRAP_USER "admin"

#define AM_AUTH_LOCKOUT_AFTER 5 /* failures in a row from one address before it is locked */

typedef struct am_principal {
    char user_id[129];
    char org_id[129];
    int role;      /* Airmesh__V1__Role */
    int superuser; /* may manage organizations (never through an API token) */
    /* Non-empty: a pod acting through airmesh-mcp (issue 13; appliance/mcp builds it with
     * am_ops_pod_principal): user_id is the pod's starter, role the starter's current role, at
     * most member; ops audits the actor as "pod:<pod_id>". Empty for every user and token. */
    char pod_id[129];
} am_principal;

/* Hash a password into an encoded argon2id string (out needs >= 128 bytes). */
int am_auth_hash_password(const char *password, char *out, size_t cap);
/* 0 when password matches the encoded hash, -AM_EAUTH when it does not. */
int am_auth_verify_password(const char *encoded, const char *password);

/* On a store with no users: create org "default" and user "admin" (owner) with a random password,
 * written to pw_out (>= 32 bytes) and *created = 1. Otherwise *created = 0 and nothing changes. */
int am_auth_bootstrap(am_store *s, char *pw_out, size_t cap, int *created);

/* Check user/password in org and open a session. token_out gets AM_AUTH_TOKEN_LEN+1 bytes.
 * Wrong user, wrong password and disabled user all return -AM_EAUTH with the same message and
 * the same cost (an unknown user gets a dummy argon2id verify). Slow (one argon2id verify):
 * call it off the h2o thread. Locking after repeated failures is the caller's, per address and
 * per (user, address) (throttle.h), never account-wide. */
int am_auth_login(am_store *s, const char *org, const char *user, const char *password,
                  const char *source, uint64_t ttl_ms, char token_out[AM_AUTH_TOKEN_LEN + 1],
                  uint64_t *expires_ms, am_principal *who);

/* Resolve a bearer secret to its principal; refuses unknown, expired, idle-timed-out sessions
 * and disabled users (-AM_EAUTH). Refreshes last_seen at most once a minute (every quarter of
 * the idle timeout when that is shorter). */
int am_auth_check(am_store *s, const char *token, uint64_t idle_ms, am_principal *who);

/* End the session behind a bearer secret (no error if it is already gone). */
int am_auth_logout(am_store *s, const char *token, const am_txn_hook *hook);

/* ---- users (users.c) ---- */

/* "viewer" | "member" | "admin" | "owner" → Role; 0 when unknown. And back. */
int am_auth_role_parse(const char *s);
const char *am_auth_role_name(int role);
/* Names: 1-64 of [a-z0-9._-], starting with a letter or digit. */
int am_auth_valid_name(const char *s);

/* Every call below is one write transaction; hook (may be NULL) runs last inside it. */

/* Create user `name` in org with role and display_name (NULL = none; checked by the caller with
 * am_display_name_check) (password NULL: a random one is written to pw_out, >= 32 bytes).
 * -AM_EEXISTS when the name is taken, -AM_EINVAL for a bad name/role/password. */
int am_users_create(am_store *s, const char *org, const char *name, int role,
                    const char *display_name, const char *password, char *pw_out, size_t pw_cap,
                    const am_txn_hook *hook);
/* Disabling also ends the user's login sessions (same transaction). */
int am_users_set_disabled(am_store *s, const char *org, const char *name, int disabled,
                          const am_txn_hook *hook);
int am_users_set_role(am_store *s, const char *org, const char *name, int role,
                      const am_txn_hook *hook);
/* New password (>= 12 characters); ends the user's login sessions (same transaction). */
int am_users_set_password(am_store *s, const char *org, const char *name, const char *password,
                          const am_txn_hook *hook);
/* 0 when password is the user's current one, else -AM_EAUTH "current_password is wrong". */
int am_users_check_password(am_store *s, const char *org, const char *name, const char *password);
/* Remove the user and every session and API token of theirs. */
int am_users_delete(am_store *s, const char *org, const char *name, const am_txn_hook *hook);
/* Revoke every login session (and API token) of a user; *n gets how many (set before the hook
 * runs, so its audit record can say it). */
int am_auth_revoke_user_sessions(am_store *s, const char *org, const char *name, int api_tokens_too,
                                 size_t *n, const am_txn_hook *hook);
/* Create an org (Org.name = display, Org.display_name = display_name, NULL = none) and its first
 * owner (password NULL: random, into pw_out). */
int am_orgs_create(am_store *s, const char *org, const char *display, const char *display_name,
                   const char *owner, const char *password, char *pw_out, size_t pw_cap,
                   const am_txn_hook *hook);

/* Set the display name of a user, team (db AM_DB_USERS / AM_DB_TEAMS, in org) or org
 * (AM_DB_ORGS, id = the org) to display ("" = none: the id is shown), already checked with
 * am_display_name_check. -AM_ENOTFOUND when there is no such record. The same name again is no
 * change: nothing is written, *changed (may be NULL) is 0 and the hook does not run. */
int am_auth_set_display(am_store *s, am_db db, const char *org, const char *id, const char *display,
                        int *changed, const am_txn_hook *hook);

/* ---- teams (teams.c) ---- */

typedef enum { AM_TEAM_CREATE, AM_TEAM_ADD, AM_TEAM_REMOVE, AM_TEAM_DELETE } am_team_op;
/* Create/delete team, or add/remove user (ADD: the user must exist in org). -AM_EEXISTS,
 * -AM_ENOTFOUND ("no team", "no user", "not in team"), -AM_EINVAL for a bad name. */
int am_teams_change(am_store *s, const char *org, const char *team, const char *user, am_team_op op,
                    const am_txn_hook *hook);
/* AM_TEAM_CREATE with a display name (NULL = none; checked by the caller). */
int am_teams_create(am_store *s, const char *org, const char *team, const char *display_name,
                    const am_txn_hook *hook);

/* ---- API tokens (users.c) ---- */

/* A bearer token for automation, acting as `who` with `role` (<= who's role), expiring after
 * ttl_ms. token_out gets AM_AUTH_TOKEN_LEN+1 bytes; id_out (>= 13 bytes) a public id, set
 * before the hook runs. */
int am_auth_api_token_create(am_store *s, const am_principal *who, const char *name, int role,
                             uint64_t ttl_ms, char *token_out, char *id_out, uint64_t *expires_ms,
                             const am_txn_hook *hook);
/* Revoke by public id within org; only_user non-NULL restricts to that user's tokens. */
int am_auth_api_token_revoke(am_store *s, const char *org, const char *id, const char *only_user,
                             const am_txn_hook *hook);

#endif
