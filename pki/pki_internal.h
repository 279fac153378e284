/*
 * pki/pki_internal.h — private helpers shared by the pki .c files. Not installed, not included
 * outside pki/. wolfSSL types appear here and nowhere else in airmesh.
 */
#ifndef AM_PKI_INTERNAL_H
#define AM_PKI_INTERNAL_H

/* options.h first: the layout of Cert/DecodedCert/ecc_key depends on it. */
#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/settings.h>

#include "pki/pki.h"

struct am_pki_key {
    ecc_key ecc;
    int has_priv; /* 0: public-only (from a CSR or a certificate) */
};

/* Upper bound for any PEM/DER object we handle (certs, chains, keys, CSRs). */
#define PKI_MAX_OBJ (64 * 1024)
/* Big enough for an ECDSA P-256 SubjectPublicKeyInfo (91 bytes) and SEC1 private key. */
#define PKI_KEY_DER_MAX 256

/* A fresh DRBG; on failure sets am_err ("pki: <what>: init RNG: ...") and returns -AM_ECRYPTO. */
int pki_rng_init(WC_RNG *rng, const char *what);

/* New empty key struct (ecc initialised). */
int pki_key_alloc(am_pki_key **out);

/* SubjectPublicKeyInfo DER of k into out (cap bytes). */
int pki_key_spki(const am_pki_key *k, uint8_t *out, size_t cap, size_t *len);

/* Public-only P-256 key from SubjectPublicKeyInfo DER; what names the source for messages.
 * Non-P-256 keys are refused with -AM_EINVAL. */
int pki_key_from_spki(const uint8_t *der, size_t len, const char *what, am_pki_key **out);

/* DER of the first CERTIFICATE in pem; what names the source for messages. */
int pki_cert_der(const char *pem, const char *what, uint8_t **der, size_t *len);

/* 0 if the public key of k equals the one in the certificate (DER); else -AM_ECORRUPT with a
 * message naming key_what and cert_what. */
int pki_key_matches_cert(const am_pki_key *k, const uint8_t *cert_der, size_t cert_len,
                         const char *key_what, const char *cert_what);

/* Parse a certificate (DER) into a heap DecodedCert without verifying it. */
int pki_decode_cert(const uint8_t *der, size_t len, const char *what, DecodedCert **out);
void pki_decoded_free(DecodedCert *dc);

/* Public key of a decoded certificate or CSR (P-256 only; others -AM_EINVAL). */
int pki_decoded_pubkey(DecodedCert *dc, const char *what, am_pki_key **out);

/* 1 if s is usable as a SAN dNSName (letters, digits, '-', '.', leading '*'; 1..253 bytes). */
int pki_dns_name_ok(const char *s);

/* wolfSSL curve id -> name ("SECP384R1"), never NULL. */
const char *pki_curve_name(int curve_id);

/* wolfSSL error code -> text (never NULL). */
const char *pki_wc_err(int ret);

#endif
