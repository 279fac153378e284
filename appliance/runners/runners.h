/*
 * appliance/runners — the fleet's durable state: enrollment tokens, runner records, revoked
 * certificate serials. Pure store logic (LMDB + the CA), no networking: appliance/ops calls it
 * for the runner protocol (Enroll/Connect/Renew, handed over by appliance/rpc) and the REST API.
 *
 * Tokens: a secret "amt_" + 64 hex (256 random bits) shown once; the store keeps SHA-256 of it
 * (AM_DB_TOKENS, key "/<hash hex>", global because the runner does not know its org yet) and a
 * short public id (first 12 hex of the hash) for listing and revoking. Lookup is by hash; the
 * final comparison is constant-time. A token is burned in the same write transaction that
 * records the new runner, so two concurrent enrollments with one token cannot both succeed.
 * Runners: AM_DB_RUNNERS key "org/<runner id>"; the id ("r-" + 16 hex) is the client
 * certificate's CN and the certificate's O is the org. Revoked serials: AM_DB_REVOKED, key
 * "/<serial as 16 hex>", checked on every Connect.
 * Threads: any; each call is one or two LMDB transactions. appliance/ops writes the audit events:
 * changes take an am_txn_hook (may be NULL) that runs last inside their write transaction.
 */
#ifndef AM_APPLIANCE_RUNNERS_H
#define AM_APPLIANCE_RUNNERS_H

#include <stddef.h>
#include <stdint.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/store/store.h"
#include "pki/pki.h"

#define AM_TOKEN_SECRET_LEN 68 /* "amt_" + 64 hex */
#define AM_RUNNER_ID_LEN 18    /* "r-" + 16 hex */

typedef struct {
    const char *const *keys;
    const char *const *values;
    size_t n;
} am_labels;

/* Create a one-time enrollment token for org. secret_out gets AM_TOKEN_SECRET_LEN+1 bytes;
 * id_out (>= 13 bytes) the public id. */
int am_runners_token_create(am_store *s, const char *org, uint64_t ttl_ms, const char *created_by,
                            const am_labels *labels, char *secret_out, char *id_out,
                            uint64_t *expires_ms, const am_txn_hook *hook);
/* 1 when org has a token with this public id. */
int am_runners_token_exists(am_store *s, const char *org, const char *token_id);
/* Revoke an unused token by public id within org (-AM_ENOTFOUND when no such token in org). */
int am_runners_token_revoke(am_store *s, const char *org, const char *token_id,
                            const am_txn_hook *hook);

typedef struct {
    char runner_id[AM_RUNNER_ID_LEN + 1];
    char org_id[129];
    char *chain_pem; /* malloc'd: leaf + issuing CA; caller frees */
    uint64_t serial;
    uint64_t not_after_ms;
} am_enrolled;

/* Check the token, verify the CSR, issue a client certificate valid cert_days and record the
 * runner while burning the token (out->runner_id and org_id are set before the hook runs). Errors
 * (with precise messages): -AM_EAUTH for an unknown, used, expired or revoked token; -AM_EINVAL for
 * a bad CSR. */
int am_runners_enroll(am_store *s, am_ca *ca, const char *token, const uint8_t *csr_der,
                      size_t csr_len, const char *hostname, const char *version,
                      const am_labels *labels, uint32_t cert_days, am_enrolled *out,
                      const am_txn_hook *hook);

/* Accept a connecting certificate: the runner (CN) must exist in org (O), not be revoked, and
 * the serial must be its current one or an earlier one not revoked. -AM_EAUTH otherwise. */
int am_runners_check_cert(am_store *s, const char *runner_id, const char *org, uint64_t serial);

/* Record what a runner says about itself in Hello (hostname, version, labels, capacity). */
int am_runners_hello(am_store *s, const char *org, const char *runner_id, const char *hostname,
                     const char *version, const am_labels *labels, uint32_t capacity,
                     const am_txn_hook *hook);
int am_runners_seen(am_store *s, const char *org, const char *runner_id, uint64_t when_ms,
                    const am_txn_hook *hook);

/* Issue a new certificate for a connected runner from its CSR; the old serial is kept in the
 * record's old_serials. */
int am_runners_renew(am_store *s, am_ca *ca, const char *org, const char *runner_id,
                     const uint8_t *csr_der, size_t csr_len, uint32_t cert_days, am_enrolled *out,
                     const am_txn_hook *hook);

/* Revoke a runner: mark it, and add its current and earlier serials to the revoked list. */
int am_runners_revoke(am_store *s, const char *org, const char *runner_id, const char *reason,
                      const am_txn_hook *hook);

#endif
