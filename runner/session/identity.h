/*
 * runner/session/identity — the runner's files under its data dir (private to runner/session).
 *   identity.pem  private key PEM followed by the certificate chain PEM (mode 0600)
 *   ca.pem        the pinned appliance root CA
 *   runner.json   {"runner_id", "org", "appliance"}
 * Ownership: am_identity owns its strings; am_identity_free releases (and wipes the key).
 */
#ifndef AM_RUNNER_IDENTITY_H
#define AM_RUNNER_IDENTITY_H

#include <stdint.h>

typedef struct {
    char *key_pem;
    char *chain_pem;
    char *ca_pem;
    char runner_id[64];
    char org[129];
    char appliance[256];
    uint64_t not_before_ms, not_after_ms, serial;
} am_identity;

int am_identity_load(const char *dir, am_identity *id);
/* Write identity.pem atomically (key + chain in one file, so they can never disagree). */
int am_identity_save_pem(const char *dir, const char *key_pem, const char *chain_pem);
int am_identity_save_meta(const char *dir, const char *ca_pem, const char *runner_id,
                          const char *org, const char *appliance);
/* Parse notBefore/notAfter/serial of the first certificate in chain_pem (OpenSSL). */
int am_identity_cert_times(const char *chain_pem, uint64_t *not_before_ms, uint64_t *not_after_ms,
                           uint64_t *serial);
void am_identity_free(am_identity *id);

#endif
