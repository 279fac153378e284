/*
 * appliance/audit/seal.c — the audit key: signing seals (writer side) and checking them
 * (verifier side), with OpenSSL libcrypto.
 *
 * The audit key is an ECDSA P-256 key kept next to the segments as DIR/audit.key (SEC1 PEM, 0600)
 * with DIR/audit.pem, its certificate issued by the appliance CA followed by the issuing CA
 * certificate. Creating them needs the CA and lives in writer.c (am_audit_signer_ensure); this
 * file only loads, signs and verifies, so offline tools (airmeshctl audit verify) need no pki.
 * A key is identified by its key id: SHA-256 of its DER SubjectPublicKeyInfo. Signatures are
 * DER ECDSA-Sig-Value over SHA-256 of the message.
 *
 * Ownership: aud_signer / aud_pub are malloc'd by their _load/_from_chain and freed by _free.
 * Threads: an aud_signer may be used by one thread at a time (the writer thread, or the exporter
 * while holding the writer's mutex); aud_pub likewise. No global state.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "appliance/audit/internal.h"
#include "common/err.h"
#include "common/util.h"

#define PEM_MAX (64u << 10)

struct aud_signer {
    EVP_PKEY *key;
    uint8_t key_id[AUD_HASH];
    char *cert_pem;
};

struct aud_pub {
    EVP_PKEY *key;
    uint8_t key_id[AUD_HASH];
};

static int key_id_of(EVP_PKEY *k, uint8_t out[AUD_HASH]) {
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    if (n <= 0)
        return am_err_set(AM_ECRYPTO, "audit: cannot encode the audit public key");
    int rc = aud_sha256(out, der, (size_t)n, NULL, 0, NULL, 0);
    OPENSSL_free(der);
    return rc;
}

static int is_p256(EVP_PKEY *k) {
    char group[64];
    size_t gl = 0;
    return EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
           EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group, &gl) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

int aud_signer_load(const char *dir, aud_signer **out) {
    *out = NULL;
    char kp[4096], cp[4096];
    if (snprintf(kp, sizeof kp, "%s/audit.key", dir) >= (int)sizeof kp ||
        snprintf(cp, sizeof cp, "%s/audit.pem", dir) >= (int)sizeof cp)
        return am_err_set(AM_EINVAL, "audit: path too long: %s", dir);
    struct stat st;
    if (stat(kp, &st) != 0 && errno == ENOENT)
        return 0;
    uint8_t *kpem = NULL, *cpem = NULL;
    size_t klen = 0, clen = 0;
    BIO *b = NULL;
    X509 *cert = NULL;
    aud_signer *s = calloc(1, sizeof *s);
    int rc = s ? 0 : am_err_set(AM_ENOMEM, "audit: out of memory");
    if (!rc && (rc = am_read_file(kp, PEM_MAX, &kpem, &klen)) != 0)
        goto out;
    if (!rc && (rc = am_read_file(cp, PEM_MAX, &cpem, &clen)) != 0)
        goto out;
    if (rc)
        goto out;
    if (!(b = BIO_new_mem_buf(kpem, (int)klen)) ||
        !(s->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) || !is_p256(s->key)) {
        rc = am_err_set(AM_ECORRUPT, "audit: %s: not a P-256 private key", kp);
        goto out;
    }
    BIO_free(b);
    if (!(b = BIO_new_mem_buf(cpem, (int)clen)) ||
        !(cert = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
        rc = am_err_set(AM_ECORRUPT, "audit: %s: not a PEM certificate", cp);
        goto out;
    }
    if (X509_check_private_key(cert, s->key) != 1) {
        rc = am_err_set(AM_ECORRUPT, "audit: %s does not match %s", cp, kp);
        goto out;
    }
    if ((rc = key_id_of(s->key, s->key_id)) != 0)
        goto out;
    if (!(s->cert_pem = malloc(clen + 1))) {
        rc = am_err_set(AM_ENOMEM, "audit: out of memory");
        goto out;
    }
    memcpy(s->cert_pem, cpem, clen);
    s->cert_pem[clen] = '\0';
    *out = s;
    s = NULL;
out:
    BIO_free(b);
    X509_free(cert);
    if (kpem) {
        am_wipe(kpem, klen);
        free(kpem);
    }
    free(cpem);
    aud_signer_free(s);
    return rc;
}

void aud_signer_free(aud_signer *s) {
    if (!s)
        return;
    EVP_PKEY_free(s->key);
    free(s->cert_pem);
    free(s);
}

const uint8_t *aud_signer_key_id(const aud_signer *s) {
    return s->key_id;
}

const char *aud_signer_cert_pem(const aud_signer *s) {
    return s->cert_pem;
}

int aud_signer_sign(const aud_signer *s, const void *msg, size_t len, uint8_t *sig,
                    uint32_t *sig_len) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t n = AUD_SIG_MAX;
    int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, s->key) == 1 &&
             EVP_DigestSign(md, sig, &n, msg, len) == 1 && n >= AUD_SIG_MIN && n <= AUD_SIG_MAX;
    EVP_MD_CTX_free(md);
    if (!ok)
        return am_err_set(AM_ECRYPTO, "audit: ECDSA signing with the audit key failed");
    *sig_len = (uint32_t)n;
    return 0;
}

int aud_seal_build(const aud_signer *k, uint64_t segno, uint64_t first_seq,
                   const uint8_t start_hash[AUD_HASH], uint64_t blocks, uint64_t records,
                   const uint8_t last_hash[AUD_HASH], uint8_t *out, uint32_t *out_len) {
    memset(out, 0, AUD_SEAL_FIXED);
    memcpy(out, AUD_SEAL_MAGIC, 8);
    aud_put64(out + 8, segno);
    aud_put64(out + 16, first_seq);
    memcpy(out + 24, start_hash, AUD_HASH);
    aud_put64(out + 56, blocks);
    aud_put64(out + 64, records);
    aud_put64(out + 72, first_seq + records - 1);
    memcpy(out + 80, last_hash, AUD_HASH);
    memcpy(out + 112, k->key_id, AUD_HASH);
    aud_put64(out + 144, am_now_ms());
    uint32_t sl = 0;
    int rc = aud_signer_sign(k, out, AUD_SEAL_SIGNED, out + AUD_SEAL_FIXED, &sl);
    if (rc)
        return rc;
    aud_put32(out + 152, sl);
    *out_len = AUD_SEAL_FIXED + sl;
    return 0;
}

/* ---- verifier side ---- */

static STACK_OF(X509) * read_certs(const char *pem, size_t len) {
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while (b && sk && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        sk_X509_push(sk, x);
    BIO_free(b);
    if (sk && sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        sk = NULL;
    }
    return sk;
}

int aud_pub_from_chain(const char *chain_pem, size_t chain_len, const char *root_pem,
                       size_t root_len, aud_pub **out, char root_fp[65], char *subject,
                       size_t subject_cap) {
    *out = NULL;
    if (chain_len > PEM_MAX || root_len > PEM_MAX)
        return am_err_set(AM_EINVAL, "audit: certificate PEM too large");
    STACK_OF(X509) *chain = read_certs(chain_pem, chain_len);
    STACK_OF(X509) *roots = read_certs(root_pem, root_len);
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    aud_pub *p = NULL;
    int rc = 0;
    if (!chain || !roots) {
        rc = am_err_set(AM_ECORRUPT, "audit: the %s is not a PEM certificate",
                        chain ? "root CA certificate" : "audit certificate");
        goto out;
    }
    X509 *root = sk_X509_value(roots, 0), *leaf = sk_X509_value(chain, 0);
    unsigned char md[AUD_HASH];
    unsigned int mdlen = 0;
    if (X509_digest(root, EVP_sha256(), md, &mdlen) != 1 || mdlen != AUD_HASH) {
        rc = am_err_set(AM_ECRYPTO, "audit: cannot fingerprint the root CA certificate");
        goto out;
    }
    am_hex(md, AUD_HASH, root_fp);
    X509_NAME_oneline(X509_get_subject_name(leaf), subject, (int)subject_cap);
    if (!(store = X509_STORE_new()) || X509_STORE_add_cert(store, root) != 1 ||
        !(ctx = X509_STORE_CTX_new()) || X509_STORE_CTX_init(ctx, store, leaf, chain) != 1) {
        rc = am_err_set(AM_ECRYPTO, "audit: cannot set up certificate verification");
        goto out;
    }
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
    if (X509_verify_cert(ctx) != 1) {
        rc = am_err_set(AM_EAUTH,
                        "audit: the audit certificate does not chain to the included root CA: %s",
                        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    if (!(p = calloc(1, sizeof *p))) {
        rc = am_err_set(AM_ENOMEM, "audit: out of memory");
        goto out;
    }
    if (!(p->key = X509_get_pubkey(leaf)) || !is_p256(p->key)) {
        rc = am_err_set(AM_ECORRUPT, "audit: the audit certificate's key is not P-256");
        goto out;
    }
    if ((rc = key_id_of(p->key, p->key_id)) != 0)
        goto out;
    *out = p;
    p = NULL;
out:
    aud_pub_free(p);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(roots, X509_free);
    return rc;
}

void aud_pub_free(aud_pub *p) {
    if (!p)
        return;
    EVP_PKEY_free(p->key);
    free(p);
}

const uint8_t *aud_pub_key_id(const aud_pub *p) {
    return p->key_id;
}

int aud_pub_verify(const aud_pub *p, const void *msg, size_t len, const uint8_t *sig,
                   uint32_t sig_len) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int r = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, p->key) == 1
                ? EVP_DigestVerify(md, sig, sig_len, msg, len)
                : -1;
    EVP_MD_CTX_free(md);
    if (r == 1)
        return 0;
    return am_err_set(AM_EAUTH, "signature does not verify");
}
