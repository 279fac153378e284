/*
 * pki/inspect.c — reading certificates: PEM -> DER, SHA-256 fingerprints, serial/notAfter/CN,
 * "does this key belong to this certificate", and chain verification with a wolfSSL CertManager.
 *
 * Why: the CA directory loader, the enrolment path and airmeshctl all need to look inside
 * certificates without knowing wolfSSL. Everything here treats its input as untrusted: lengths are
 * bounded by PKI_MAX_OBJ and parsing is left to wolfSSL's ASN.1 decoder.
 * Ownership: DER out-parameters are malloc'd for the caller; DecodedCert objects from
 * pki_decode_cert() borrow the DER they were parsed from and are released with
 * pki_decoded_free(). Threads: no shared state (each verification builds its own CertManager).
 */
#include "pki/pki_internal.h"

#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/hash.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"

#define PEM_CERT_BEGIN "-----BEGIN CERTIFICATE-----"
#define PEM_CERT_END "-----END CERTIFICATE-----"
#define MAX_CHAIN 8

int pki_cert_der(const char *pem, const char *what, uint8_t **der, size_t *len) {
    *der = NULL;
    *len = 0;
    size_t n = strnlen(pem, PKI_MAX_OBJ + 1);
    if (n == 0 || n > PKI_MAX_OBJ)
        return am_err_set(AM_EINVAL, "pki: %s: PEM length out of range (1..%d bytes)", what,
                          PKI_MAX_OBJ);
    if (!strstr(pem, PEM_CERT_BEGIN))
        return am_err_set(AM_EINVAL, "pki: %s: no \"" PEM_CERT_BEGIN "\" block", what);
    uint8_t *buf = malloc(n);
    if (!buf)
        return am_err_set(AM_ENOMEM, "pki: %s: out of memory", what);
    int ret = wc_CertPemToDer((const unsigned char *)pem, (int)n, buf, (int)n, CERT_TYPE);
    if (ret <= 0) {
        free(buf);
        return am_err_set(AM_EINVAL, "pki: %s: bad CERTIFICATE PEM: %s (%d)", what, pki_wc_err(ret),
                          ret);
    }
    /* Base64 that decodes is not yet a certificate: make sure it parses as X.509. */
    DecodedCert *dc = NULL;
    int rc = pki_decode_cert(buf, (size_t)ret, what, &dc);
    pki_decoded_free(dc);
    if (rc) {
        free(buf);
        return rc;
    }
    *der = buf;
    *len = (size_t)ret;
    return 0;
}

int am_pki_pem_to_der(const char *pem, uint8_t **der, size_t *len) {
    if (!pem || !der || !len)
        return am_err_set(AM_EINVAL, "pki: PEM to DER: NULL argument");
    return pki_cert_der(pem, "PEM to DER", der, len);
}

int pki_decode_cert(const uint8_t *der, size_t len, const char *what, DecodedCert **out) {
    *out = NULL;
    DecodedCert *dc = calloc(1, sizeof(*dc));
    if (!dc)
        return am_err_set(AM_ENOMEM, "pki: %s: out of memory", what);
    wc_InitDecodedCert(dc, der, (word32)len, NULL);
    int ret = wc_ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL);
    if (ret != 0) {
        pki_decoded_free(dc);
        return am_err_set(AM_EINVAL, "pki: %s: not a valid X.509 certificate: %s (%d)", what,
                          pki_wc_err(ret), ret);
    }
    *out = dc;
    return 0;
}

void pki_decoded_free(DecodedCert *dc) {
    if (!dc)
        return;
    wc_FreeDecodedCert(dc);
    free(dc);
}

int am_pki_fingerprint_sha256(const char *cert_pem, char hex_out[65]) {
    if (!cert_pem || !hex_out)
        return am_err_set(AM_EINVAL, "pki: fingerprint: NULL argument");
    uint8_t *der = NULL;
    size_t len = 0;
    int rc = pki_cert_der(cert_pem, "fingerprint", &der, &len);
    if (rc)
        return rc;
    uint8_t h[WC_SHA256_DIGEST_SIZE];
    int ret = wc_Sha256Hash(der, (word32)len, h);
    free(der);
    if (ret != 0)
        return am_err_set(AM_ECRYPTO, "pki: fingerprint: SHA-256: %s (%d)", pki_wc_err(ret), ret);
    am_hex(h, sizeof(h), hex_out);
    return 0;
}

/* Public key of a decoded certificate or CSR as an am_pki_key (P-256 only). */
int pki_decoded_pubkey(DecodedCert *dc, const char *what, am_pki_key **out) {
    uint8_t spki[PKI_KEY_DER_MAX];
    word32 sz = sizeof(spki);
    if (dc->keyOID != ECDSAk) {
        const char *type = dc->keyOID == RSAk       ? "RSA"
                           : dc->keyOID == RSAPSSk  ? "RSA-PSS"
                           : dc->keyOID == ED25519k ? "Ed25519"
                           : dc->keyOID == ED448k   ? "Ed448"
                           : dc->keyOID == DSAk     ? "DSA"
                                                    : "unknown";
        return am_err_set(AM_EINVAL, "pki: %s: %s key refused: only ECDSA P-256 is supported", what,
                          type);
    }
    int ret = wc_GetPubKeyDerFromCert(dc, spki, &sz);
    if (ret != 0)
        return am_err_set(AM_EINVAL, "pki: %s: extract public key: %s (%d)", what, pki_wc_err(ret),
                          ret);
    return pki_key_from_spki(spki, sz, what, out);
}

int pki_key_matches_cert(const am_pki_key *k, const uint8_t *cert_der, size_t cert_len,
                         const char *key_what, const char *cert_what) {
    DecodedCert *dc = NULL;
    am_pki_key *ck = NULL;
    int rc = pki_decode_cert(cert_der, cert_len, cert_what, &dc);
    if (rc)
        return rc;
    rc = pki_decoded_pubkey(dc, cert_what, &ck);
    if (rc)
        goto out;
    uint8_t a[PKI_KEY_DER_MAX], b[PKI_KEY_DER_MAX];
    size_t alen = 0, blen = 0;
    if ((rc = pki_key_spki(k, a, sizeof(a), &alen)) != 0 ||
        (rc = pki_key_spki(ck, b, sizeof(b), &blen)) != 0)
        goto out;
    if (alen != blen || memcmp(a, b, alen) != 0)
        rc = am_err_set(AM_ECORRUPT, "pki: %s does not match the public key in %s", key_what,
                        cert_what);
out:
    am_pki_key_free(ck);
    pki_decoded_free(dc);
    return rc;
}

int am_pki_cert_info(const char *cert_pem, uint64_t *serial, uint64_t *not_after_unix,
                     char cn[128]) {
    if (!cert_pem)
        return am_err_set(AM_EINVAL, "pki: cert info: NULL certificate");
    uint8_t *der = NULL;
    size_t len = 0;
    DecodedCert *dc = NULL;
    int rc = pki_cert_der(cert_pem, "cert info", &der, &len);
    if (rc)
        return rc;
    rc = pki_decode_cert(der, len, "cert info", &dc);
    if (rc)
        goto out;
    if (serial) {
        int i = 0;
        while (i < dc->serialSz - 1 && dc->serial[i] == 0)
            i++;
        if (dc->serialSz - i > 8) {
            rc = am_err_set(AM_EINVAL, "pki: cert info: serial is %d bytes, more than 64 bits",
                            dc->serialSz - i);
            goto out;
        }
        uint64_t s = 0;
        for (; i < dc->serialSz; i++)
            s = (s << 8) | dc->serial[i];
        *serial = s;
    }
    if (not_after_unix) {
        const byte *date = NULL;
        byte format = 0;
        int dlen = 0;
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        int ret = wc_GetDateInfo(dc->afterDate, dc->afterDateLen, &date, &format, &dlen);
        if (ret == 0)
            ret = wc_GetDateAsCalendarTime(date, dlen, format, &tm);
        if (ret != 0) {
            rc = am_err_set(AM_EINVAL, "pki: cert info: bad notAfter: %s (%d)", pki_wc_err(ret),
                            ret);
            goto out;
        }
        time_t t = timegm(&tm);
        *not_after_unix = t < 0 ? 0 : (uint64_t)t;
    }
    if (cn) {
        cn[0] = '\0';
        if (dc->subjectCN && dc->subjectCNLen > 0) {
            size_t n = (size_t)dc->subjectCNLen < 127 ? (size_t)dc->subjectCNLen : 127;
            memcpy(cn, dc->subjectCN, n);
            cn[n] = '\0';
        }
    }
out:
    pki_decoded_free(dc);
    free(der);
    return rc;
}

/* Split a PEM bundle into DER certificates (at most max). */
static int split_chain(const char *pem, uint8_t **ders, size_t *lens, int max, int *count) {
    *count = 0;
    const char *p = pem;
    for (;;) {
        const char *b = strstr(p, PEM_CERT_BEGIN);
        if (!b)
            break;
        const char *e = strstr(b, PEM_CERT_END);
        if (!e)
            return am_err_set(AM_EINVAL, "pki: verify chain: certificate #%d has no END line",
                              *count + 1);
        e += strlen(PEM_CERT_END);
        if (*count == max)
            return am_err_set(AM_EINVAL, "pki: verify chain: more than %d certificates", max);
        size_t n = (size_t)(e - b);
        char *one = strndup(b, n);
        if (!one)
            return am_err_set(AM_ENOMEM, "pki: verify chain: out of memory");
        int rc = pki_cert_der(one, "verify chain", &ders[*count], &lens[*count]);
        free(one);
        if (rc)
            return rc;
        (*count)++;
        p = e;
    }
    if (*count == 0)
        return am_err_set(AM_EINVAL, "pki: verify chain: no \"" PEM_CERT_BEGIN "\" block");
    return 0;
}

int am_pki_verify_chain(const char *ca_pem, const char *chain_pem) {
    if (!ca_pem || !chain_pem)
        return am_err_set(AM_EINVAL, "pki: verify chain: NULL argument");
    size_t ca_len = strnlen(ca_pem, PKI_MAX_OBJ + 1);
    if (ca_len == 0 || ca_len > PKI_MAX_OBJ || strnlen(chain_pem, PKI_MAX_OBJ + 1) > PKI_MAX_OBJ)
        return am_err_set(AM_EINVAL, "pki: verify chain: PEM length out of range (1..%d bytes)",
                          PKI_MAX_OBJ);
    uint8_t *ders[MAX_CHAIN] = {0};
    size_t lens[MAX_CHAIN] = {0};
    int n = 0;
    WOLFSSL_CERT_MANAGER *cm = NULL;
    int rc = split_chain(chain_pem, ders, lens, MAX_CHAIN, &n);
    if (rc)
        goto out;
    cm = wolfSSL_CertManagerNew();
    if (!cm) {
        rc = am_err_set(AM_ENOMEM, "pki: verify chain: create CertManager: out of memory");
        goto out;
    }
    int ret = wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)ca_pem, (long)ca_len,
                                              WOLFSSL_FILETYPE_PEM);
    if (ret != WOLFSSL_SUCCESS) {
        rc = am_err_set(AM_EINVAL, "pki: verify chain: load trust anchors: %s (%d)",
                        pki_wc_err(ret), ret);
        goto out;
    }
    /* Intermediates from the top down: each must verify against what is already trusted before
     * it may vouch for the next one (LoadCA also refuses certificates that are not CAs). */
    for (int i = n - 1; i >= 1; i--) {
        ret = wolfSSL_CertManagerVerifyBuffer(cm, ders[i], (long)lens[i], WOLFSSL_FILETYPE_ASN1);
        if (ret != WOLFSSL_SUCCESS) {
            rc = am_err_set(AM_EAUTH,
                            "pki: verify chain: intermediate certificate #%d does not "
                            "verify: %s (%d)",
                            i + 1, pki_wc_err(ret), ret);
            goto out;
        }
        ret = wolfSSL_CertManagerLoadCABuffer(cm, ders[i], (long)lens[i], WOLFSSL_FILETYPE_ASN1);
        if (ret != WOLFSSL_SUCCESS) {
            rc = am_err_set(AM_EAUTH,
                            "pki: verify chain: certificate #%d cannot act as a CA: %s "
                            "(%d)",
                            i + 1, pki_wc_err(ret), ret);
            goto out;
        }
    }
    ret = wolfSSL_CertManagerVerifyBuffer(cm, ders[0], (long)lens[0], WOLFSSL_FILETYPE_ASN1);
    if (ret != WOLFSSL_SUCCESS) {
        rc = am_err_set(AM_EAUTH, "pki: verify chain: leaf certificate does not verify: %s (%d)",
                        pki_wc_err(ret), ret);
        goto out;
    }
out:
    if (cm)
        wolfSSL_CertManagerFree(cm);
    for (int i = 0; i < n; i++)
        free(ders[i]);
    return rc;
}
