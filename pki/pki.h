/*
 * pki — airmesh's built-in certificate authority, on wolfSSL (wolfCrypt).
 *
 * What it owns: ECDSA P-256 keys (am_pki_key), X.509 certificates and CSRs in PEM/DER, and the
 * appliance's CA directory (am_ca): root CA -> issuing CA -> leaves (HTTPS/gRPC server certs and
 * runner client certs). See ARCHITECTURE.md §7. wolfSSL never leaks out of this header: callers see
 * only our types, PEM strings and DER bytes.
 *
 * Errors: every int-returning call returns 0 or a negative -AM_E* code and sets am_err_last() to a
 * message saying what failed, on what, and why ("pki: ./var/airmesh/pki/root.key: ...").
 *
 * Memory: every char ** / uint8_t ** out-parameter is malloc'd and owned by the caller (free();
 * PEM of a private key: am_wipe() it first). Every _generate/_from_pem/_open has its _free/_close.
 * Private key material is wiped before it is freed.
 *
 * Threads: all am_pki_* functions are reentrant and may be called from any thread, as long as one
 * am_pki_key is not used by two threads at once. An am_ca may be shared: am_ca_issue_from_csr()
 * serialises itself on an internal mutex; am_ca_open()/am_ca_close() must not race with other use.
 * wolfSSL keeps a per-thread ECC fixed-point cache: a thread that used pki calls
 * am_pki_thread_done() before it exits (the main thread before exit), or the cache leaks.
 *
 * Certificate profile:
 *   - signatures ECDSA with SHA-256; keys P-256 only (CSRs with other keys are refused);
 *   - serials: random 63-bit positive integers;
 *   - validity: notBefore = now - 5 minutes (clock skew), notAfter = now + days;
 *   - CA certs: basicConstraints CA:TRUE, critical (issuing: pathlen:0), keyUsage
 *     keyCertSign|cRLSign (critical), subjectKeyIdentifier, authorityKeyIdentifier (on the
 *     self-signed root it equals its own SKI);
 *   - leaves: basicConstraints CA:FALSE (non-critical, allowed by RFC 5280), keyUsage
 *     digitalSignature (critical), extendedKeyUsage serverAuth and/or clientAuth, SAN DNS/IP,
 *     SKI and AKI; notAfter never later than the issuer's.
 *   - basicConstraints and wolfSSL 5.5.4: wolfSSL always encodes it NON-critical and has no
 *     switch for it. RFC 5280 4.2.1.9 requires it critical in CA certs and strict verifiers refuse
 *     the chain otherwise (checked: `openssl verify -x509_strict` fails with "Basic Constraints of
 *     CA cert not marked critical"). cert.c therefore inserts the critical flag into the unsigned
 *     TBSCertificate before signing; test_root_and_issuing_verify_with_openssl checks the result
 *     with -x509_strict.
 */
#ifndef AM_PKI_PKI_H
#define AM_PKI_PKI_H

#include <stddef.h>
#include <stdint.h>

/* ---- keys ---------------------------------------------------------------------------------- */

typedef struct am_pki_key am_pki_key; /* ECDSA P-256 key pair (or public-only) */

int am_pki_key_generate(am_pki_key **out);
/* Free this thread's wolfSSL ECC fixed-point cache (see Threads above). */
void am_pki_thread_done(void);
/* Accepts "EC PRIVATE KEY" (SEC1) or unencrypted PKCS#8 "PRIVATE KEY" holding a P-256 key. */
int am_pki_key_from_pem(const char *pem, size_t len, am_pki_key **out);
/* "EC PRIVATE KEY" PEM for a key pair, "PUBLIC KEY" for a public-only key. malloc'd, NUL
 * terminated; caller wipes and frees. */
int am_pki_key_to_pem(const am_pki_key *k, char **pem_out);
void am_pki_key_free(am_pki_key *k); /* wipes; NULL is fine */

/* ---- certificates -------------------------------------------------------------------------- */

typedef struct {
    const char *cn;  /* subject CN (required, < 64 bytes) */
    const char *org; /* subject O, optional */
    const char *const *dns;
    size_t n_dns; /* SAN DNS names */
    const char *const *ips;
    size_t n_ips;       /* SAN IP addresses (v4 and v6 text) */
    uint32_t days;      /* validity; notBefore = now - 5 min for clock skew */
    int server, client; /* EKU serverAuth / clientAuth; at least one must be set */
} am_pki_leaf_opts;

/* Self-signed root CA for key. */
int am_pki_make_root(am_pki_key *key, const char *cn, uint32_t days, char **cert_pem);
/* Issuing CA (pathlen 0) for key, signed by root_key (which must match root_cert_pem). */
int am_pki_make_issuing(am_pki_key *key, const char *cn, uint32_t days, const char *root_cert_pem,
                        am_pki_key *root_key, char **cert_pem);
/* Leaf for subject_pub (public-only keys are fine) signed by issuer_key. serial_out may be NULL.
 * The validity is clamped so the leaf never outlives its issuer. */
int am_pki_issue_leaf(am_pki_key *subject_pub, const am_pki_leaf_opts *o,
                      const char *issuer_cert_pem, am_pki_key *issuer_key, char **cert_pem,
                      uint64_t *serial_out);

/* ---- certificate signing requests ---------------------------------------------------------- */

/* PKCS#10 CSR (DER, malloc'd) for key with subject CN cn, self-signed with ECDSA-SHA256. */
int am_pki_csr_make(am_pki_key *key, const char *cn, uint8_t **der, size_t *der_len);
typedef struct {
    char cn[128];
    am_pki_key *pub; /* owned: am_pki_csr_free */
} am_pki_csr;
/* Parses an untrusted CSR, verifies its self-signature (ECDSA-SHA256) and refuses keys that are
 * not P-256 (-AM_EINVAL, message names the key type). On failure *out is left empty. */
int am_pki_csr_parse(const uint8_t *der, size_t len, am_pki_csr *out);
void am_pki_csr_free(am_pki_csr *c);

/* ---- inspection ---------------------------------------------------------------------------- */

/* SHA-256 of the DER of the FIRST certificate in the PEM, 64 lower-case hex chars + NUL. */
int am_pki_fingerprint_sha256(const char *cert_pem, char hex_out[65]);
/* DER of the first CERTIFICATE in pem (malloc'd). */
int am_pki_pem_to_der(const char *pem, uint8_t **der, size_t *len);
/* Serial (must fit 64 bits), notAfter (Unix seconds) and subject CN ("" when none) of the first
 * certificate. Any out-parameter may be NULL. */
int am_pki_cert_info(const char *cert_pem, uint64_t *serial, uint64_t *not_after_unix,
                     char cn[128]);
/* Verify that the first certificate of chain_pem chains to a trust anchor in ca_pem, using the
 * further certificates of chain_pem as intermediates (each one is itself verified before it is
 * used). Checks signatures, validity dates, CA flags and path lengths (wolfSSL CertManager).
 * 0 if OK, -AM_EAUTH if it does not verify, -AM_EINVAL if the input is not PEM certificates. */
int am_pki_verify_chain(const char *ca_pem, const char *chain_pem);

/* ---- the appliance's CA directory ---------------------------------------------------------- */

/*
 * Layout (dir 0700, keys 0600, certs 0644, every file written atomically):
 *   root.key root.pem        root CA "airmesh root CA", 10 years
 *   issuing.key issuing.pem  issuing CA "airmesh issuing CA", 5 years, signed by root
 *   ca.pem                   copy of root.pem: what users pin / pass to `curl --cacert`
 *   server.key server.pem    server leaf CN "airmesh", 1 year, SAN DNS:localhost, the host name,
 *                            extra_dns, IP:127.0.0.1, ::1, extra_ips; server.pem = leaf + issuing
 * am_ca_open(): if none of the files exist, creates them all (*created = 1). If all exist, loads
 * them and checks that each key matches its certificate, ca.pem equals root.pem, issuing chains to
 * root and server.pem chains to issuing; server.pem (same key) is reissued when it expires within
 * 30 days. If only some exist, or one is unreadable or corrupt, it fails with one message naming
 * the file and the problem: it never creates a new CA over an existing one.
 */
typedef struct am_ca am_ca;
typedef struct {
    const char *const *extra_dns;
    size_t n_extra_dns;
    const char *const *extra_ips;
    size_t n_extra_ips;
} am_ca_opts;

int am_ca_open(const char *dir, const am_ca_opts *opts, am_ca **out, int *created);
void am_ca_close(am_ca *ca);
/* 64 hex chars, SHA-256 of root cert DER. */
const char *am_ca_root_fingerprint(const am_ca *ca);
/* Full path of one of the files above ("ca.pem", "server.pem", "server.key", ...); NULL for an
 * unknown name. Valid until am_ca_close(). */
const char *am_ca_path(const am_ca *ca, const char *name);
/* PEM of the issuing CA certificate; valid until am_ca_close(). */
const char *am_ca_issuing_pem(const am_ca *ca);
/* Verify the CSR and issue a leaf for its key, signed by the issuing CA. CN from o->cn if set,
 * else from the CSR. *chain_pem = leaf followed by the issuing cert (malloc'd). serial may be
 * NULL. */
int am_ca_issue_from_csr(am_ca *ca, const uint8_t *csr_der, size_t len, const am_pki_leaf_opts *o,
                         char **chain_pem, uint64_t *serial);

#endif
