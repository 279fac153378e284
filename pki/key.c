/*
 * pki/key.c — ECDSA P-256 keys: generate, load from PEM (SEC1 or PKCS#8), save to PEM.
 *
 * Why: every key in airmesh's CA (root, issuing, server, runner) is P-256; keeping the wolfSSL
 * ecc_key behind am_pki_key lets the rest of the tree ignore wolfSSL entirely.
 * Ownership: am_pki_key is heap-allocated and freed (after wolfSSL zeroes it, and we wipe it
 * again) with am_pki_key_free(). Temporary DER/PEM buffers holding private keys are wiped before
 * free. Threads: no shared state; one key must not be used by two threads at once.
 */
#include "pki/pki_internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

const char *pki_wc_err(int ret) {
    const char *s = wc_GetErrorString(ret);
    return s ? s : "unknown wolfSSL error";
}

const char *pki_curve_name(int curve_id) {
    const char *n = wc_ecc_get_name(curve_id);
    return n ? n : "unknown";
}

int pki_rng_init(WC_RNG *rng, const char *what) {
    int ret = wc_InitRng(rng);
    if (ret != 0)
        return am_err_set(AM_ECRYPTO, "pki: %s: init RNG: %s (%d)", what, pki_wc_err(ret), ret);
    return 0;
}

int pki_key_alloc(am_pki_key **out) {
    am_pki_key *k = calloc(1, sizeof(*k));
    if (!k)
        return am_err_set(AM_ENOMEM, "pki: allocate key: out of memory");
    int ret = wc_ecc_init(&k->ecc);
    if (ret != 0) {
        free(k);
        return am_err_set(AM_ECRYPTO, "pki: init key: %s (%d)", pki_wc_err(ret), ret);
    }
    *out = k;
    return 0;
}

void am_pki_key_free(am_pki_key *k) {
    if (!k)
        return;
    wc_ecc_free(&k->ecc);
    am_wipe(k, sizeof(*k));
    free(k);
}

void am_pki_thread_done(void) {
#ifdef FP_ECC
    wc_ecc_fp_free();
#endif
}

int am_pki_key_generate(am_pki_key **out) {
    if (!out)
        return am_err_set(AM_EINVAL, "pki: generate key: NULL out");
    *out = NULL;
    WC_RNG rng;
    int rc = pki_rng_init(&rng, "generate P-256 key");
    if (rc)
        return rc;
    am_pki_key *k = NULL;
    rc = pki_key_alloc(&k);
    if (rc)
        goto out;
    int ret = wc_ecc_make_key_ex(&rng, 32, &k->ecc, ECC_SECP256R1);
    if (ret != 0) {
        rc = am_err_set(AM_ECRYPTO, "pki: generate P-256 key: %s (%d)", pki_wc_err(ret), ret);
        goto out;
    }
    k->has_priv = 1;
    *out = k;
    k = NULL;
out:
    am_pki_key_free(k);
    wc_FreeRng(&rng);
    return rc;
}

/* Check a freshly decoded key: P-256, public point present (derive it if the PEM omitted it),
 * and the point is valid. */
static int check_loaded_key(am_pki_key *k, const char *what) {
    int curve = wc_ecc_get_curve_id(k->ecc.idx);
    if (curve != ECC_SECP256R1)
        return am_err_set(AM_EINVAL, "pki: %s: EC key on curve %s refused: only P-256 is supported",
                          what, pki_curve_name(curve));
    if (k->ecc.type == ECC_PRIVATEKEY_ONLY) {
        int ret = wc_ecc_make_pub(&k->ecc, NULL);
        if (ret != 0)
            return am_err_set(AM_ECRYPTO, "pki: %s: derive public key: %s (%d)", what,
                              pki_wc_err(ret), ret);
        k->ecc.type = ECC_PRIVATEKEY;
    }
    int ret = wc_ecc_check_key(&k->ecc);
    if (ret != 0)
        return am_err_set(AM_ECORRUPT, "pki: %s: key fails validation: %s (%d)", what,
                          pki_wc_err(ret), ret);
    return 0;
}

int am_pki_key_from_pem(const char *pem, size_t len, am_pki_key **out) {
    if (!pem || !out)
        return am_err_set(AM_EINVAL, "pki: load key: NULL argument");
    *out = NULL;
    if (len == 0 || len > PKI_MAX_OBJ)
        return am_err_set(AM_EINVAL, "pki: load key: PEM length %zu out of range (1..%d)", len,
                          PKI_MAX_OBJ);
    /* DER is always shorter than its PEM. */
    uint8_t *der = malloc(len);
    if (!der)
        return am_err_set(AM_ENOMEM, "pki: load key: out of memory");
    am_pki_key *k = NULL;
    int rc = 0;
    int n = wc_KeyPemToDer((const unsigned char *)pem, (int)len, der, (int)len, NULL);
    if (n <= 0) {
        rc = am_err_set(AM_EINVAL,
                        "pki: load key: no unencrypted \"EC PRIVATE KEY\" or \"PRIVATE KEY\" PEM "
                        "block found: %s (%d)",
                        pki_wc_err(n), n);
        goto out;
    }
    word32 idx = 0;
    /* PKCS#8 wraps the SEC1 key: skip the wrapper when there is one. */
    if (wc_GetPkcs8TraditionalOffset(der, &idx, (word32)n) < 0)
        idx = 0;
    rc = pki_key_alloc(&k);
    if (rc)
        goto out;
    int ret = wc_EccPrivateKeyDecode(der, &idx, &k->ecc, (word32)n);
    if (ret != 0) {
        rc = am_err_set(AM_EINVAL, "pki: load key: not an EC private key: %s (%d)", pki_wc_err(ret),
                        ret);
        goto out;
    }
    k->has_priv = 1;
    rc = check_loaded_key(k, "load key");
    if (rc)
        goto out;
    *out = k;
    k = NULL;
out:
    am_pki_key_free(k);
    am_wipe(der, len);
    free(der);
    return rc;
}

int am_pki_key_to_pem(const am_pki_key *k, char **pem_out) {
    if (!k || !pem_out)
        return am_err_set(AM_EINVAL, "pki: key to PEM: NULL argument");
    *pem_out = NULL;
    uint8_t der[PKI_KEY_DER_MAX];
    int n;
    int type;
    /* wolfSSL's encoders take a non-const key; they do not modify it. */
    ecc_key *ek = (ecc_key *)&k->ecc;
    if (k->has_priv) {
        n = wc_EccKeyToDer(ek, der, sizeof(der));
        type = ECC_PRIVATEKEY_TYPE;
    } else {
        n = wc_EccPublicKeyToDer(ek, der, sizeof(der), 1);
        type = PUBLICKEY_TYPE;
    }
    if (n <= 0) {
        am_wipe(der, sizeof(der));
        return am_err_set(AM_ECRYPTO, "pki: key to PEM: encode DER: %s (%d)", pki_wc_err(n), n);
    }
    size_t cap = (size_t)n * 2 + 128;
    char *pem = malloc(cap);
    if (!pem) {
        am_wipe(der, sizeof(der));
        return am_err_set(AM_ENOMEM, "pki: key to PEM: out of memory");
    }
    int m = wc_DerToPem(der, (word32)n, (byte *)pem, (word32)cap - 1, type);
    am_wipe(der, sizeof(der));
    if (m <= 0) {
        am_wipe(pem, cap);
        free(pem);
        return am_err_set(AM_ECRYPTO, "pki: key to PEM: encode PEM: %s (%d)", pki_wc_err(m), m);
    }
    pem[m] = '\0';
    *pem_out = pem;
    return 0;
}

int pki_key_spki(const am_pki_key *k, uint8_t *out, size_t cap, size_t *len) {
    int n = wc_EccPublicKeyToDer((ecc_key *)&k->ecc, out, (word32)cap, 1);
    if (n <= 0)
        return am_err_set(AM_ECRYPTO, "pki: encode public key: %s (%d)", pki_wc_err(n), n);
    *len = (size_t)n;
    return 0;
}

int pki_key_from_spki(const uint8_t *der, size_t len, const char *what, am_pki_key **out) {
    *out = NULL;
    am_pki_key *k = NULL;
    int rc = pki_key_alloc(&k);
    if (rc)
        return rc;
    word32 idx = 0;
    int ret = wc_EccPublicKeyDecode(der, &idx, &k->ecc, (word32)len);
    if (ret != 0) {
        am_pki_key_free(k);
        return am_err_set(AM_EINVAL, "pki: %s: not an EC public key: %s (%d)", what,
                          pki_wc_err(ret), ret);
    }
    int curve = wc_ecc_get_curve_id(k->ecc.idx);
    if (curve != ECC_SECP256R1) {
        am_pki_key_free(k);
        return am_err_set(AM_EINVAL, "pki: %s: EC key on curve %s refused: only P-256 is supported",
                          what, pki_curve_name(curve));
    }
    ret = wc_ecc_check_key(&k->ecc);
    if (ret != 0) {
        am_pki_key_free(k);
        return am_err_set(AM_EINVAL, "pki: %s: invalid EC public key: %s (%d)", what,
                          pki_wc_err(ret), ret);
    }
    *out = k;
    return 0;
}
