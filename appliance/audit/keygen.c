/*
 * appliance/audit/keygen.c — creating the appliance's audit key with the pki module.
 *
 * am_audit_signer_ensure: if DIR/audit.key exists it is loaded (am_audit_open already does this);
 * otherwise a new ECDSA P-256 key is generated (am_pki_key_generate), a CSR made for it
 * (am_pki_csr_make, CN "airmesh audit") and a certificate issued by the appliance CA
 * (am_ca_issue_from_csr; pki issues leaves with EKU clientAuth only, since it has no
 * signing-only profile: verifiers only check that the certificate chains to the root). The chain
 * is written to DIR/audit.pem (0644), then the key to DIR/audit.key (0600), both atomically, and
 * the writer starts sealing. The key PEM is wiped before it is freed.
 *
 * Ownership: nothing outlives the call but the files and the signer handed to the am_audit.
 * Threads: any thread; it uses the am_ca's own lock and the am_audit's mutex.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/audit/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "pki/pki.h"

int am_audit_signer_ensure(am_audit *a, am_ca *ca) {
    if (!a)
        return am_err_set(AM_EINVAL, "audit: signer: no log");
    if (aud_audit_has_signer(a))
        return 0;
    const char *dir = aud_audit_dir(a);
    aud_signer *s = NULL;
    int rc = aud_signer_load(dir, &s);
    if (rc)
        return rc;
    if (s)
        return aud_audit_set_signer(a, s);
    if (!ca)
        return am_err_set(AM_ESTATE, "audit: %s/audit.key does not exist and no CA was given", dir);
    am_pki_key *key = NULL;
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    char *chain = NULL, *kpem = NULL, kp[4096], cp[4096];
    if (snprintf(kp, sizeof kp, "%s/audit.key", dir) >= (int)sizeof kp ||
        snprintf(cp, sizeof cp, "%s/audit.pem", dir) >= (int)sizeof cp)
        return am_err_set(AM_EINVAL, "audit: path too long: %s", dir);
    am_pki_leaf_opts o = {.cn = "airmesh audit", .org = "airmesh", .days = 3650, .client = 1};
    if ((rc = am_pki_key_generate(&key)) != 0 ||
        (rc = am_pki_csr_make(key, "airmesh audit", &csr, &csr_len)) != 0 ||
        (rc = am_ca_issue_from_csr(ca, csr, csr_len, &o, &chain, NULL)) != 0 ||
        (rc = am_pki_key_to_pem(key, &kpem)) != 0)
        goto out;
    if ((rc = am_write_file_atomic(cp, chain, strlen(chain), 0644)) != 0 ||
        (rc = am_write_file_atomic(kp, kpem, strlen(kpem), 0600)) != 0)
        goto out;
    if ((rc = aud_signer_load(dir, &s)) != 0)
        goto out;
    if (!s) {
        rc = am_err_set(AM_EIO, "audit: %s vanished after it was written", kp);
        goto out;
    }
    am_log_info("audit", "created the audit key", "key=%s cert=%s", kp, cp);
    rc = aud_audit_set_signer(a, s);
out:
    if (kpem) {
        am_wipe(kpem, strlen(kpem));
        free(kpem);
    }
    free(chain);
    free(csr);
    am_pki_key_free(key);
    return rc;
}
