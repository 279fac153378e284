/*
 * pki/csr.c — PKCS#10 certificate signing requests: make one for our key, parse an untrusted one.
 *
 * Why: runners enrol by sending a CSR (their private key never leaves the runner); the hub checks
 * it here and then issues from the CA (ca.c). The parser does not rely on wolfSSL to check the
 * CSR's proof of possession: after decoding with NO_VERIFY it insists on ecdsa-with-SHA256 and a
 * P-256 key, hashes the CertificationRequestInfo itself and verifies the signature with the key the
 * CSR carries. Ownership: CSR DER from am_pki_csr_make() is malloc'd for the caller; am_pki_csr
 * owns its public key (am_pki_csr_free). Threads: no shared state.
 */
#include "pki/pki_internal.h"

#include <wolfssl/wolfcrypt/sha256.h>

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

#define CSR_DER_MAX 4096

int am_pki_csr_make(am_pki_key *key, const char *cn, uint8_t **der, size_t *der_len) {
    if (!key || !cn || !der || !der_len)
        return am_err_set(AM_EINVAL, "pki: make CSR: NULL argument");
    *der = NULL;
    *der_len = 0;
    if (!key->has_priv)
        return am_err_set(AM_EINVAL, "pki: make CSR for %s: key has no private part", cn);
    if (!cn[0] || strlen(cn) >= CTC_NAME_SIZE)
        return am_err_set(AM_EINVAL, "pki: make CSR: CN must be 1..%d bytes", CTC_NAME_SIZE - 1);

    WC_RNG rng;
    int rc = pki_rng_init(&rng, "make CSR");
    if (rc)
        return rc;
    uint8_t *buf = NULL;
    Cert *c = wc_CertNew(NULL);
    if (!c) {
        rc = am_err_set(AM_ENOMEM, "pki: make CSR for %s: out of memory", cn);
        goto out;
    }
    c->version = 0; /* PKCS#10 v1 */
    c->sigType = CTC_SHA256wECDSA;
    snprintf(c->subject.commonName, CTC_NAME_SIZE, "%s", cn);
    c->subject.commonNameEnc = CTC_UTF8;
    buf = malloc(CSR_DER_MAX);
    if (!buf) {
        rc = am_err_set(AM_ENOMEM, "pki: make CSR for %s: out of memory", cn);
        goto out;
    }
    int ret = wc_MakeCertReq(c, buf, CSR_DER_MAX, NULL, &key->ecc);
    if (ret < 0) {
        rc = am_err_set(AM_ECRYPTO, "pki: make CSR for %s: encode: %s (%d)", cn, pki_wc_err(ret),
                        ret);
        goto out;
    }
    ret = wc_SignCert(c->bodySz, c->sigType, buf, CSR_DER_MAX, NULL, &key->ecc, &rng);
    if (ret < 0) {
        rc =
            am_err_set(AM_ECRYPTO, "pki: make CSR for %s: sign: %s (%d)", cn, pki_wc_err(ret), ret);
        goto out;
    }
    *der = buf;
    *der_len = (size_t)ret;
    buf = NULL;
out:
    free(buf);
    if (c) {
        wc_CertFree(c);
    }
    wc_FreeRng(&rng);
    return rc;
}

int am_pki_csr_parse(const uint8_t *der, size_t len, am_pki_csr *out) {
    if (!der || !out)
        return am_err_set(AM_EINVAL, "pki: parse CSR: NULL argument");
    memset(out, 0, sizeof(*out));
    if (len == 0 || len > CSR_DER_MAX)
        return am_err_set(AM_EINVAL, "pki: parse CSR: length %zu out of range (1..%d)", len,
                          CSR_DER_MAX);

    am_pki_key *pub = NULL;
    int rc = 0;
    DecodedCert *dc = calloc(1, sizeof(*dc));
    if (!dc)
        return am_err_set(AM_ENOMEM, "pki: parse CSR: out of memory");
    wc_InitDecodedCert(dc, der, (word32)len, NULL);
    int ret = wc_ParseCert(dc, CERTREQ_TYPE, NO_VERIFY, NULL);
    if (ret != 0) {
        rc = am_err_set(AM_EINVAL, "pki: parse CSR: not a valid PKCS#10 request: %s (%d)",
                        pki_wc_err(ret), ret);
        goto out;
    }
    rc = pki_decoded_pubkey(dc, "parse CSR", &pub);
    if (rc)
        goto out;
    if (dc->signatureOID != CTC_SHA256wECDSA) {
        rc = am_err_set(AM_EINVAL,
                        "pki: parse CSR: signature algorithm OID sum %u refused: only "
                        "ecdsa-with-SHA256 is accepted",
                        dc->signatureOID);
        goto out;
    }
    /* Proof of possession: the CSR is signed by the key it carries. */
    if (dc->sigIndex <= dc->certBegin || dc->sigIndex > len || !dc->signature ||
        dc->sigLength == 0) {
        rc = am_err_set(AM_EINVAL, "pki: parse CSR: malformed request/signature layout");
        goto out;
    }
    uint8_t hash[WC_SHA256_DIGEST_SIZE];
    ret = wc_Sha256Hash(der + dc->certBegin, dc->sigIndex - dc->certBegin, hash);
    if (ret != 0) {
        rc = am_err_set(AM_ECRYPTO, "pki: parse CSR: SHA-256: %s (%d)", pki_wc_err(ret), ret);
        goto out;
    }
    int verified = 0;
    ret =
        wc_ecc_verify_hash(dc->signature, dc->sigLength, hash, sizeof(hash), &verified, &pub->ecc);
    if (ret != 0 || verified != 1) {
        rc = am_err_set(AM_EAUTH,
                        "pki: parse CSR: self-signature does not verify with the CSR's key%s%s",
                        ret != 0 ? ": " : "", ret != 0 ? pki_wc_err(ret) : "");
        goto out;
    }
    if (dc->subjectCN && dc->subjectCNLen > 0) {
        if ((size_t)dc->subjectCNLen >= sizeof(out->cn)) {
            rc = am_err_set(AM_EINVAL, "pki: parse CSR: CN longer than %zu bytes",
                            sizeof(out->cn) - 1);
            goto out;
        }
        if (memchr(dc->subjectCN, '\0', (size_t)dc->subjectCNLen)) {
            rc = am_err_set(AM_EINVAL, "pki: parse CSR: CN contains a NUL byte");
            goto out;
        }
        memcpy(out->cn, dc->subjectCN, (size_t)dc->subjectCNLen);
        out->cn[dc->subjectCNLen] = '\0';
    }
    out->pub = pub;
    pub = NULL;
out:
    am_pki_key_free(pub);
    wc_FreeDecodedCert(dc);
    free(dc);
    return rc;
}

void am_pki_csr_free(am_pki_csr *c) {
    if (!c)
        return;
    am_pki_key_free(c->pub);
    memset(c, 0, sizeof(*c));
}
