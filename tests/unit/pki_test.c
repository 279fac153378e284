/*
 * tests/unit/pki_test.c — unit tests for pki/: keys, certificates, CSRs, chain checks and the CA
 * directory. The openssl CLI is the independent checker: whatever we issue must satisfy
 * `openssl verify -x509_strict`, `openssl req -verify` and `openssl x509 -text`.
 * Each test works in its own mkdtemp directory under $TEST_TMPDIR (or /tmp). Single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "pki/pki.h"

/* ---- helpers ------------------------------------------------------------------------------- */

typedef struct {
    char dir[512];
    am_pki_key *root_key, *iss_key;
    char *root_pem, *iss_pem;
} fixture;

static char *path_in(const fixture *f, const char *name) {
    static char buf[4][768];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof(buf[0]), "%s/%s", f->dir, name);
    return p;
}

static void write_str(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static char *read_str(const char *path) {
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(am_read_file(path, 1 << 20, &data, &len), 0);
    return (char *)data;
}

/* Run a shell command, capture stdout+stderr into out, return its exit status. */
static int sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t cap, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd) - 8, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(cmd) - 8);
    strcat(cmd, " 2>&1");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = 0;
    if (out && cap) {
        got = fread(out, 1, cap - 1, p);
        out[got] = '\0';
    } else {
        char sink[4096];
        while (fread(sink, 1, sizeof(sink), p) > 0) {
        }
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    const char *base = getenv("TEST_TMPDIR");
    if (!base || !base[0])
        base = "/tmp";
    snprintf(f->dir, sizeof(f->dir), "%s/pki_test.XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(am_pki_key_generate(&f->root_key), 0);
    assert_int_equal(am_pki_make_root(f->root_key, "test root", 3650, &f->root_pem), 0);
    assert_int_equal(am_pki_key_generate(&f->iss_key), 0);
    assert_int_equal(am_pki_make_issuing(f->iss_key, "test issuing", 1825, f->root_pem, f->root_key,
                                         &f->iss_pem),
                     0);
    write_str(path_in(f, "root.pem"), f->root_pem, strlen(f->root_pem));
    write_str(path_in(f, "issuing.pem"), f->iss_pem, strlen(f->iss_pem));
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    am_pki_key_free(f->root_key);
    am_pki_key_free(f->iss_key);
    free(f->root_pem);
    free(f->iss_pem);
    free(f);
    return 0;
}

static char *concat(const char *a, const char *b) {
    char *s = malloc(strlen(a) + strlen(b) + 1);
    assert_non_null(s);
    strcpy(s, a);
    strcat(s, b);
    return s;
}

static void key_pem_to_file(const am_pki_key *k, const char *path) {
    char *pem = NULL;
    assert_int_equal(am_pki_key_to_pem(k, &pem), 0);
    write_str(path, pem, strlen(pem));
    am_wipe(pem, strlen(pem));
    free(pem);
}

static am_pki_key *key_from_file(const char *path) {
    char *pem = read_str(path);
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_from_pem(pem, strlen(pem), &k), 0);
    free(pem);
    return k;
}

static char *issue_server_leaf(fixture *f, am_pki_key *k, uint64_t *serial) {
    static const char *const dns[] = {"localhost", "airmesh.example"};
    static const char *const ips[] = {"127.0.0.1", "::1", "10.1.2.3"};
    am_pki_leaf_opts o = {.cn = "airmesh",
                          .org = "airmesh",
                          .dns = dns,
                          .n_dns = 2,
                          .ips = ips,
                          .n_ips = 3,
                          .days = 365,
                          .server = 1};
    char *leaf = NULL;
    int rc = am_pki_issue_leaf(k, &o, f->iss_pem, f->iss_key, &leaf, serial);
    if (rc)
        fail_msg("issue leaf: %s", am_err_last());
    return leaf;
}

/* ---- keys ---------------------------------------------------------------------------------- */

static void test_key_pem_roundtrip_sec1_and_pkcs8(void **state) {
    fixture *f = *state;
    char out[4096];
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    char *pem = NULL;
    assert_int_equal(am_pki_key_to_pem(k, &pem), 0);
    assert_non_null(strstr(pem, "-----BEGIN EC PRIVATE KEY-----"));
    write_str(path_in(f, "k.pem"), pem, strlen(pem));
    /* openssl reads it as a P-256 key ... */
    assert_int_equal(sh(out, sizeof(out), "openssl ec -in '%s' -noout -text", path_in(f, "k.pem")),
                     0);
    assert_non_null(strstr(out, "prime256v1"));
    /* ... and its PKCS#8 form loads back to the same key. */
    assert_int_equal(sh(NULL, 0, "openssl pkcs8 -topk8 -nocrypt -in '%s' -out '%s'",
                        path_in(f, "k.pem"), path_in(f, "k8.pem")),
                     0);
    am_pki_key *k8 = key_from_file(path_in(f, "k8.pem"));
    char *pem8 = NULL;
    assert_int_equal(am_pki_key_to_pem(k8, &pem8), 0);
    assert_string_equal(pem, pem8);
    /* A key openssl generates (PKCS#8 "PRIVATE KEY") loads too. */
    assert_int_equal(sh(NULL, 0,
                        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '%s'",
                        path_in(f, "o.pem")),
                     0);
    am_pki_key *ko = key_from_file(path_in(f, "o.pem"));
    am_pki_key_free(ko);
    am_wipe(pem, strlen(pem));
    free(pem);
    am_wipe(pem8, strlen(pem8));
    free(pem8);
    am_pki_key_free(k8);
    am_pki_key_free(k);
}

static void test_non_p256_private_key_is_refused(void **state) {
    fixture *f = *state;
    assert_int_equal(
        sh(NULL, 0, "openssl ecparam -name secp384r1 -genkey -noout -out '%s'", path_in(f, "p384")),
        0);
    char *pem = read_str(path_in(f, "p384"));
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_from_pem(pem, strlen(pem), &k), -AM_EINVAL);
    assert_null(k);
    assert_non_null(strstr(am_err_last(), "P-256"));
    free(pem);
}

/* ---- certificates -------------------------------------------------------------------------- */

static void test_root_and_issuing_verify_with_openssl(void **state) {
    fixture *f = *state;
    char out[16384];
    /* Strict mode: RFC 5280 profile checks, including basicConstraints criticality. */
    assert_int_equal(sh(out, sizeof(out), "openssl verify -x509_strict -CAfile '%s' '%s'",
                        path_in(f, "root.pem"), path_in(f, "issuing.pem")),
                     0);
    assert_int_equal(sh(out, sizeof(out), "openssl verify -x509_strict -CAfile '%s' '%s'",
                        path_in(f, "root.pem"), path_in(f, "root.pem")),
                     0);
    assert_int_equal(
        sh(out, sizeof(out), "openssl x509 -in '%s' -text -noout", path_in(f, "root.pem")), 0);
    assert_non_null(strstr(out, "X509v3 Basic Constraints: critical"));
    assert_non_null(strstr(out, "CA:TRUE"));
    assert_null(strstr(out, "pathlen"));
    assert_non_null(strstr(out, "Certificate Sign, CRL Sign"));
    assert_non_null(strstr(out, "Subject Key Identifier"));
    assert_non_null(strstr(out, "ecdsa-with-SHA256"));
    assert_non_null(strstr(out, "NIST CURVE: P-256"));
    assert_int_equal(
        sh(out, sizeof(out), "openssl x509 -in '%s' -text -noout", path_in(f, "issuing.pem")), 0);
    assert_non_null(strstr(out, "X509v3 Basic Constraints: critical"));
    assert_non_null(strstr(out, "CA:TRUE, pathlen:0"));
    assert_non_null(strstr(out, "X509v3 Key Usage: critical"));
    assert_non_null(strstr(out, "Certificate Sign, CRL Sign"));
    assert_non_null(strstr(out, "Authority Key Identifier"));
    /* Our own verifier agrees. */
    assert_int_equal(am_pki_verify_chain(f->root_pem, f->iss_pem), 0);
}

static void test_server_leaf_has_sans_and_eku(void **state) {
    fixture *f = *state;
    char out[16384];
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    uint64_t serial = 0;
    char *leaf = issue_server_leaf(f, k, &serial);
    write_str(path_in(f, "leaf.pem"), leaf, strlen(leaf));
    assert_int_equal(
        sh(out, sizeof(out), "openssl x509 -in '%s' -text -noout", path_in(f, "leaf.pem")), 0);
    assert_non_null(strstr(out, "DNS:localhost"));
    assert_non_null(strstr(out, "DNS:airmesh.example"));
    assert_non_null(strstr(out, "IP Address:127.0.0.1"));
    assert_non_null(strstr(out, "IP Address:0:0:0:0:0:0:0:1"));
    assert_non_null(strstr(out, "IP Address:10.1.2.3"));
    assert_non_null(strstr(out, "TLS Web Server Authentication"));
    assert_null(strstr(out, "TLS Web Client Authentication"));
    assert_non_null(strstr(out, "Digital Signature"));
    assert_non_null(strstr(out, "CA:FALSE"));
    assert_non_null(strstr(out, "Subject: O = airmesh, CN = airmesh"));
    assert_int_equal(sh(out, sizeof(out),
                        "openssl verify -x509_strict -purpose sslserver -CAfile '%s' -untrusted "
                        "'%s' '%s'",
                        path_in(f, "root.pem"), path_in(f, "issuing.pem"), path_in(f, "leaf.pem")),
                     0);
    /* Serial, CN and expiry as reported by am_pki_cert_info match what openssl sees. */
    uint64_t s2 = 0, not_after = 0;
    char cn[128];
    assert_int_equal(am_pki_cert_info(leaf, &s2, &not_after, cn), 0);
    assert_int_equal(s2, serial);
    assert_true(serial > 0 && serial <= INT64_MAX);
    assert_string_equal(cn, "airmesh");
    uint64_t now = (uint64_t)time(NULL);
    assert_true(not_after >= now + 365ull * 86400 - 120 && not_after <= now + 365ull * 86400 + 120);
    assert_int_equal(
        sh(out, sizeof(out), "openssl x509 -in '%s' -noout -serial", path_in(f, "leaf.pem")), 0);
    char hex[32];
    snprintf(hex, sizeof(hex), "serial=%016llX", (unsigned long long)serial);
    /* openssl prints without leading zero bytes; compare numerically. */
    assert_int_equal(strtoull(out + strlen("serial="), NULL, 16), serial);
    char *chain = concat(leaf, f->iss_pem);
    assert_int_equal(am_pki_verify_chain(f->root_pem, chain), 0);
    free(chain);
    free(leaf);
    am_pki_key_free(k);
}

static void test_leaf_not_before_allows_clock_skew(void **state) {
    fixture *f = *state;
    char out[256];
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    char *leaf = issue_server_leaf(f, k, NULL);
    write_str(path_in(f, "leaf.pem"), leaf, strlen(leaf));
    assert_int_equal(sh(out, sizeof(out),
                        "openssl x509 -in '%s' -noout -startdate -dateopt "
                        "iso_8601",
                        path_in(f, "leaf.pem")),
                     0);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    assert_non_null(strptime(out, "notBefore=%Y-%m-%d %H:%M:%S", &tm));
    time_t nb = timegm(&tm), now = time(NULL);
    assert_true(nb <= now - 240 && nb >= now - 360);
    free(leaf);
    am_pki_key_free(k);
}

static void test_serials_are_random_and_positive(void **state) {
    fixture *f = *state;
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    uint64_t a = 0, b = 0;
    char *l1 = issue_server_leaf(f, k, &a);
    char *l2 = issue_server_leaf(f, k, &b);
    assert_true(a != b);
    assert_true(a > 0 && a <= INT64_MAX && b > 0 && b <= INT64_MAX);
    free(l1);
    free(l2);
    am_pki_key_free(k);
}

static void test_leaf_without_usage_or_with_bad_san_is_refused(void **state) {
    fixture *f = *state;
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    char *leaf = NULL;
    am_pki_leaf_opts o = {.cn = "x", .days = 1};
    assert_int_equal(am_pki_issue_leaf(k, &o, f->iss_pem, f->iss_key, &leaf, NULL), -AM_EINVAL);
    const char *const bad_ip[] = {"300.1.1.1"};
    o.server = 1;
    o.ips = bad_ip;
    o.n_ips = 1;
    assert_int_equal(am_pki_issue_leaf(k, &o, f->iss_pem, f->iss_key, &leaf, NULL), -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "300.1.1.1"));
    const char *const bad_dns[] = {"a b"};
    o.n_ips = 0;
    o.dns = bad_dns;
    o.n_dns = 1;
    assert_int_equal(am_pki_issue_leaf(k, &o, f->iss_pem, f->iss_key, &leaf, NULL), -AM_EINVAL);
    assert_null(leaf);
    am_pki_key_free(k);
}

static void test_leaf_cannot_be_signed_by_non_ca_or_wrong_key(void **state) {
    fixture *f = *state;
    am_pki_key *k = NULL, *k2 = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    assert_int_equal(am_pki_key_generate(&k2), 0);
    char *leaf = issue_server_leaf(f, k, NULL);
    am_pki_leaf_opts o = {.cn = "child", .days = 1, .client = 1};
    char *child = NULL;
    /* A leaf is not a CA. */
    assert_int_equal(am_pki_issue_leaf(k2, &o, leaf, k, &child, NULL), -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "not a CA"));
    /* The issuer key must be the issuer certificate's key. */
    assert_int_equal(am_pki_issue_leaf(k2, &o, f->iss_pem, f->root_key, &child, NULL),
                     -AM_ECORRUPT);
    assert_non_null(strstr(am_err_last(), "does not match"));
    assert_null(child);
    free(leaf);
    am_pki_key_free(k);
    am_pki_key_free(k2);
}

static void test_verify_chain_rejects_foreign_root_and_rogue_intermediate(void **state) {
    fixture *f = *state;
    am_pki_key *k = NULL, *rk = NULL, *ik = NULL;
    char *root2 = NULL, *iss2 = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    assert_int_equal(am_pki_key_generate(&rk), 0);
    assert_int_equal(am_pki_key_generate(&ik), 0);
    assert_int_equal(am_pki_make_root(rk, "other root", 30, &root2), 0);
    assert_int_equal(am_pki_make_issuing(ik, "other issuing", 30, root2, rk, &iss2), 0);
    char *leaf = issue_server_leaf(f, k, NULL);
    char *chain = concat(leaf, f->iss_pem);
    assert_int_equal(am_pki_verify_chain(f->root_pem, chain), 0);
    assert_int_equal(am_pki_verify_chain(root2, chain), -AM_EAUTH);
    /* Right leaf, but an intermediate from another root tacked on: still refused. */
    char *rogue = concat(leaf, iss2);
    assert_int_equal(am_pki_verify_chain(f->root_pem, rogue), -AM_EAUTH);
    /* Leaf alone, without its intermediate: refused. */
    assert_int_equal(am_pki_verify_chain(f->root_pem, leaf), -AM_EAUTH);
    free(rogue);
    free(chain);
    free(leaf);
    free(root2);
    free(iss2);
    am_pki_key_free(k);
    am_pki_key_free(rk);
    am_pki_key_free(ik);
}

static void test_fingerprint_matches_openssl(void **state) {
    fixture *f = *state;
    char out[512], fp[65];
    /* Chain PEM: the fingerprint is the first certificate's. */
    char *chain = concat(f->iss_pem, f->root_pem);
    assert_int_equal(am_pki_fingerprint_sha256(chain, fp), 0);
    free(chain);
    assert_int_equal(strlen(fp), 64);
    assert_int_equal(sh(out, sizeof(out), "openssl x509 -in '%s' -noout -fingerprint -sha256",
                        path_in(f, "issuing.pem")),
                     0);
    /* "sha256 Fingerprint=AB:CD:..." -> "abcd..." */
    char *eq = strchr(out, '=');
    assert_non_null(eq);
    char want[65];
    size_t n = 0;
    for (char *p = eq + 1; *p && *p != '\n' && n < 64; p++)
        if (*p != ':')
            want[n++] = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
    want[n] = '\0';
    assert_string_equal(fp, want);
    /* DER from am_pki_pem_to_der is what openssl produces. */
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(am_pki_pem_to_der(f->iss_pem, &der, &len), 0);
    write_str(path_in(f, "ours.der"), der, len);
    free(der);
    assert_int_equal(sh(NULL, 0, "openssl x509 -in '%s' -outform DER -out '%s' && cmp '%s' '%s'",
                        path_in(f, "issuing.pem"), path_in(f, "theirs.der"), path_in(f, "ours.der"),
                        path_in(f, "theirs.der")),
                     0);
}

static void test_pem_garbage_is_refused(void **state) {
    fixture *f = *state;
    static const char garbage[] = "hello, I am not a PEM file\n";
    static const char bad_cert[] = "-----BEGIN CERTIFICATE-----\nAAAAbm90IGEgY2VydA==\n"
                                   "-----END CERTIFICATE-----\n";
    static const char bad_key[] = "-----BEGIN EC PRIVATE KEY-----\nAAAAbm90IGEga2V5\n"
                                  "-----END EC PRIVATE KEY-----\n";
    static const char truncated[] = "-----BEGIN CERTIFICATE-----\nMIIBkTCCATeg";
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_from_pem(garbage, sizeof(garbage) - 1, &k), -AM_EINVAL);
    assert_int_equal(am_pki_key_from_pem(bad_key, sizeof(bad_key) - 1, &k), -AM_EINVAL);
    assert_int_equal(am_pki_key_from_pem(bad_cert, sizeof(bad_cert) - 1, &k), -AM_EINVAL);
    assert_int_equal(am_pki_key_from_pem("", 0, &k), -AM_EINVAL);
    assert_null(k);
    uint8_t *der = NULL;
    size_t len = 0;
    char fp[65];
    uint64_t serial;
    char cn[128];
    const char *inputs[] = {garbage, bad_cert, truncated, ""};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        assert_int_equal(am_pki_pem_to_der(inputs[i], &der, &len), -AM_EINVAL);
        assert_null(der);
        assert_int_equal(am_pki_fingerprint_sha256(inputs[i], fp), -AM_EINVAL);
        assert_int_equal(am_pki_cert_info(inputs[i], &serial, NULL, cn), -AM_EINVAL);
        assert_int_equal(am_pki_verify_chain(f->root_pem, inputs[i]), -AM_EINVAL);
        assert_true(am_pki_verify_chain(inputs[i], f->root_pem) < 0);
        assert_true(strlen(am_err_last()) > 0);
    }
    am_pki_csr csr;
    assert_int_equal(am_pki_csr_parse((const uint8_t *)garbage, sizeof(garbage), &csr), -AM_EINVAL);
    assert_null(csr.pub);
}

/* ---- CSRs ---------------------------------------------------------------------------------- */

static void test_csr_roundtrip_and_openssl_req_verify(void **state) {
    fixture *f = *state;
    char out[4096];
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(am_pki_csr_make(k, "runner-7", &der, &len), 0);
    write_str(path_in(f, "csr.der"), der, len);
    assert_int_equal(sh(out, sizeof(out),
                        "openssl req -inform DER -in '%s' -verify -noout -subject",
                        path_in(f, "csr.der")),
                     0);
    assert_non_null(strstr(out, "verify OK"));
    assert_non_null(strstr(out, "CN = runner-7"));
    am_pki_csr csr;
    assert_int_equal(am_pki_csr_parse(der, len, &csr), 0);
    assert_string_equal(csr.cn, "runner-7");
    assert_non_null(csr.pub);
    /* The CSR's key is our key: its public PEM equals openssl's view of our private key. */
    char *pub = NULL;
    assert_int_equal(am_pki_key_to_pem(csr.pub, &pub), 0);
    key_pem_to_file(k, path_in(f, "k.pem"));
    assert_int_equal(sh(out, sizeof(out), "openssl pkey -in '%s' -pubout", path_in(f, "k.pem")), 0);
    assert_string_equal(pub, out);
    /* A public-only key cannot sign a CSR. */
    uint8_t *der2 = NULL;
    assert_int_equal(am_pki_csr_make(csr.pub, "x", &der2, &len), -AM_EINVAL);
    free(pub);
    am_pki_csr_free(&csr);
    free(der);
    am_pki_key_free(k);
}

static void test_openssl_csr_is_accepted(void **state) {
    fixture *f = *state;
    assert_int_equal(sh(NULL, 0,
                        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                        "-keyout '%s' -subj /CN=runner-from-openssl -outform DER -out '%s'",
                        path_in(f, "ok.key"), path_in(f, "ok.der")),
                     0);
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(am_read_file(path_in(f, "ok.der"), 65536, &der, &len), 0);
    am_pki_csr csr;
    assert_int_equal(am_pki_csr_parse(der, len, &csr), 0);
    assert_string_equal(csr.cn, "runner-from-openssl");
    am_pki_csr_free(&csr);
    free(der);
}

static void test_csr_with_bad_signature_is_refused(void **state) {
    (void)state;
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(am_pki_csr_make(k, "runner-7", &der, &len), 0);
    am_pki_csr csr;
    /* Last byte = last byte of the signature's s value. */
    der[len - 1] ^= 0x01;
    assert_int_equal(am_pki_csr_parse(der, len, &csr), -AM_EAUTH);
    assert_non_null(strstr(am_err_last(), "self-signature does not verify"));
    assert_null(csr.pub);
    der[len - 1] ^= 0x01;
    assert_int_equal(am_pki_csr_parse(der, len, &csr), 0);
    am_pki_csr_free(&csr);
    /* Tampering with the signed body (the CN) is caught the same way. */
    uint8_t *cn = memmem(der, len, "runner-7", 8);
    assert_non_null(cn);
    cn[7] = '9';
    assert_int_equal(am_pki_csr_parse(der, len, &csr), -AM_EAUTH);
    assert_null(csr.pub);
    free(der);
    am_pki_key_free(k);
}

static void test_csr_with_non_p256_key_is_refused(void **state) {
    fixture *f = *state;
    uint8_t *der = NULL;
    size_t len = 0;
    am_pki_csr csr;
    assert_int_equal(sh(NULL, 0,
                        "openssl req -new -newkey rsa:2048 -nodes -keyout '%s' -subj /CN=rsa "
                        "-outform DER -out '%s'",
                        path_in(f, "rsa.key"), path_in(f, "rsa.der")),
                     0);
    assert_int_equal(am_read_file(path_in(f, "rsa.der"), 65536, &der, &len), 0);
    assert_int_equal(am_pki_csr_parse(der, len, &csr), -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "RSA key refused"));
    assert_non_null(strstr(am_err_last(), "P-256"));
    assert_null(csr.pub);
    free(der);
    assert_int_equal(sh(NULL, 0,
                        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes "
                        "-keyout '%s' -subj /CN=p384 -outform DER -out '%s'",
                        path_in(f, "p384.key"), path_in(f, "p384.der")),
                     0);
    assert_int_equal(am_read_file(path_in(f, "p384.der"), 65536, &der, &len), 0);
    assert_int_equal(am_pki_csr_parse(der, len, &csr), -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "SECP384R1"));
    assert_non_null(strstr(am_err_last(), "only P-256"));
    assert_null(csr.pub);
    free(der);
}

/* ---- the CA directory ---------------------------------------------------------------------- */

static am_ca *open_ca(fixture *f, int want_created) {
    static const char *const extra_dns[] = {"mesh.example"};
    static const char *const extra_ips[] = {"192.0.2.10"};
    am_ca_opts o = {extra_dns, 1, extra_ips, 1};
    am_ca *ca = NULL;
    int created = -1;
    int rc = am_ca_open(path_in(f, "pki"), &o, &ca, &created);
    if (rc)
        fail_msg("am_ca_open: %s", am_err_last());
    assert_int_equal(created, want_created);
    return ca;
}

static int mode_of(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int)(st.st_mode & 07777);
}

static void test_ca_open_creates_then_reloads_same_fingerprint(void **state) {
    fixture *f = *state;
    char out[16384];
    am_ca *ca = open_ca(f, 1);
    char fp1[65];
    snprintf(fp1, sizeof(fp1), "%s", am_ca_root_fingerprint(ca));
    assert_int_equal(strlen(fp1), 64);
    assert_int_equal(mode_of(path_in(f, "pki")), 0700);
    static const char *const names[] = {"root.key", "root.pem",   "issuing.key", "issuing.pem",
                                        "ca.pem",   "server.key", "server.pem"};
    for (size_t i = 0; i < 7; i++) {
        const char *p = am_ca_path(ca, names[i]);
        assert_non_null(p);
        assert_int_equal(mode_of(p), strstr(names[i], ".key") ? 0600 : 0644);
    }
    assert_null(am_ca_path(ca, "nope.pem"));
    /* ca.pem is the root, and its fingerprint is what we report. */
    char *ca_pem = read_str(am_ca_path(ca, "ca.pem"));
    char *root_pem = read_str(am_ca_path(ca, "root.pem"));
    assert_string_equal(ca_pem, root_pem);
    char fp[65];
    assert_int_equal(am_pki_fingerprint_sha256(ca_pem, fp), 0);
    assert_string_equal(fp, fp1);
    /* server.pem = leaf + issuing; curl --cacert ca.pem would accept it (openssl says so). */
    char *srv = read_str(am_ca_path(ca, "server.pem"));
    assert_non_null(strstr(srv, am_ca_issuing_pem(ca)));
    assert_int_equal(am_pki_verify_chain(ca_pem, srv), 0);
    assert_int_equal(sh(out, sizeof(out),
                        "openssl verify -x509_strict -purpose sslserver -CAfile '%s' -untrusted "
                        "'%s' '%s'",
                        am_ca_path(ca, "ca.pem"), am_ca_path(ca, "server.pem"),
                        am_ca_path(ca, "server.pem")),
                     0);
    assert_int_equal(
        sh(out, sizeof(out), "openssl x509 -in '%s' -noout -text", am_ca_path(ca, "server.pem")),
        0);
    assert_non_null(strstr(out, "CN = airmesh"));
    assert_non_null(strstr(out, "DNS:localhost"));
    assert_non_null(strstr(out, "DNS:mesh.example"));
    assert_non_null(strstr(out, "IP Address:127.0.0.1"));
    assert_non_null(strstr(out, "IP Address:0:0:0:0:0:0:0:1"));
    assert_non_null(strstr(out, "IP Address:192.0.2.10"));
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) == 0 && host[0] && !strchr(host, '_')) {
        char want[300];
        snprintf(want, sizeof(want), "DNS:%s", host);
        assert_non_null(strstr(out, want));
    }
    uint64_t serial1 = 0;
    assert_int_equal(am_pki_cert_info(srv, &serial1, NULL, NULL), 0);
    am_ca_close(ca);

    /* Second start: loaded, nothing regenerated. */
    ca = open_ca(f, 0);
    assert_string_equal(am_ca_root_fingerprint(ca), fp1);
    char *srv2 = read_str(am_ca_path(ca, "server.pem"));
    assert_string_equal(srv, srv2);
    am_ca_close(ca);
    free(ca_pem);
    free(root_pem);
    free(srv);
    free(srv2);
}

static void expect_open_fails(fixture *f, int code, const char *needle1, const char *needle2) {
    am_ca *ca = NULL;
    int created = -1;
    int rc = am_ca_open(path_in(f, "pki"), NULL, &ca, &created);
    if (rc != -code)
        fail_msg("am_ca_open returned %d (%s), want %d", rc, am_err_last(), -code);
    assert_null(ca);
    assert_int_equal(created, 0);
    if (!strstr(am_err_last(), needle1) || (needle2 && !strstr(am_err_last(), needle2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", am_err_last(), needle1,
                 needle2 ? needle2 : "");
}

static void test_ca_open_refuses_partial_dir(void **state) {
    fixture *f = *state;
    am_ca *ca = open_ca(f, 1);
    char *root_before = read_str(am_ca_path(ca, "root.pem"));
    char key_path[768];
    snprintf(key_path, sizeof(key_path), "%s", am_ca_path(ca, "root.key"));
    am_ca_close(ca);
    assert_int_equal(unlink(key_path), 0);
    expect_open_fails(f, AM_ECORRUPT, "root.key missing while", "refusing to create a new CA");
    /* Nothing was re-created behind our back. */
    assert_int_equal(access(key_path, F_OK), -1);
    char *root_after = read_str(path_in(f, "pki/root.pem"));
    assert_string_equal(root_before, root_after);
    free(root_before);
    free(root_after);
    /* Only one file left is still "partial". */
    assert_int_equal(sh(NULL, 0,
                        "cd '%s' && rm -f root.pem issuing.key issuing.pem server.key "
                        "server.pem",
                        path_in(f, "pki")),
                     0);
    expect_open_fails(f, AM_ECORRUPT, "missing while ca.pem exists", NULL);
}

static void test_ca_open_refuses_corrupt_key(void **state) {
    fixture *f = *state;
    am_ca *ca = open_ca(f, 1);
    char *good = read_str(am_ca_path(ca, "issuing.key"));
    am_ca_close(ca);
    const char *p = path_in(f, "pki/issuing.key");
    write_str(p, "garbage\n", 8);
    expect_open_fails(f, AM_ECORRUPT, "issuing.key is corrupt", NULL);
    write_str(p, "", 0);
    expect_open_fails(f, AM_ECORRUPT, "issuing.key is corrupt", "empty");
    /* A valid key that is not the issuing certificate's key. */
    am_pki_key *other = NULL;
    assert_int_equal(am_pki_key_generate(&other), 0);
    key_pem_to_file(other, p);
    am_pki_key_free(other);
    expect_open_fails(f, AM_ECORRUPT, "issuing.key does not match the public key in",
                      "issuing.pem");
    /* Restored: opens again. */
    write_str(p, good, strlen(good));
    am_wipe(good, strlen(good));
    free(good);
    ca = open_ca(f, 0);
    am_ca_close(ca);
}

/* As root the permission bits are ignored (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a
 * permission check would test nothing. dac_caps_drop takes those two out of this thread's
 * effective set (still permitted, so dac_caps_restore can put them back): the check then runs
 * as root too. Returns 1 when dropped, 0 when not root (nothing to drop), -1 on failure. */
static int dac_caps_drop(struct __user_cap_data_struct saved[2]) {
    if (geteuid() != 0)
        return 0;
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, saved) != 0)
        return -1;
    memcpy(d, saved, sizeof d);
    d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
    return syscall(SYS_capset, &h, d) == 0 ? 1 : -1;
}

static void dac_caps_restore(struct __user_cap_data_struct saved[2]) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    assert_int_equal(syscall(SYS_capset, &h, saved), 0);
}

static void test_ca_open_refuses_corrupt_or_foreign_certs(void **state) {
    fixture *f = *state;
    am_ca *ca = open_ca(f, 1);
    am_ca_close(ca);
    char *ca_good = read_str(path_in(f, "pki/ca.pem"));
    char *srv_good = read_str(path_in(f, "pki/server.pem"));
    /* ca.pem replaced by another root. */
    write_str(path_in(f, "pki/ca.pem"), f->root_pem, strlen(f->root_pem));
    expect_open_fails(f, AM_ECORRUPT, "ca.pem is not the same certificate as", "root.pem");
    write_str(path_in(f, "pki/ca.pem"), ca_good, strlen(ca_good));
    /* server.pem truncated mid-certificate. */
    write_str(path_in(f, "pki/server.pem"), srv_good, 200);
    expect_open_fails(f, AM_ECORRUPT, "server.pem is corrupt", NULL);
    /* server.pem replaced by a directory. */
    assert_int_equal(unlink(path_in(f, "pki/server.pem")), 0);
    assert_int_equal(mkdir(path_in(f, "pki/server.pem"), 0700), 0);
    expect_open_fails(f, AM_ECORRUPT, "server.pem is not a regular file", NULL);
    assert_int_equal(rmdir(path_in(f, "pki/server.pem")), 0);
    /* server.pem unreadable (permission bits; as root checked with DAC override dropped). */
    write_str(path_in(f, "pki/server.pem"), srv_good, strlen(srv_good));
    {
        assert_int_equal(chmod(path_in(f, "pki/server.pem"), 0), 0);
        struct __user_cap_data_struct saved[2];
        int dropped = dac_caps_drop(saved);
        if (dropped < 0) {
            print_message("skip reason: cannot drop CAP_DAC_OVERRIDE as root: %s\n",
                          strerror(errno));
            skip();
        }
        am_ca *ca2 = NULL;
        int created = -1;
        int rc = am_ca_open(path_in(f, "pki"), NULL, &ca2, &created);
        char msg[512];
        snprintf(msg, sizeof msg, "%s", am_err_last());
        if (dropped)
            dac_caps_restore(saved);
        assert_int_equal(chmod(path_in(f, "pki/server.pem"), 0644), 0);
        if (rc != -AM_EIO || ca2 || !strstr(msg, "server.pem cannot be read") ||
            !strstr(msg, "Permission denied"))
            fail_msg("unreadable server.pem: rc %d, error \"%s\"", rc, msg);
    }
    assert_int_equal(unlink(path_in(f, "pki/server.pem")), 0);
    assert_int_equal(mkdir(path_in(f, "pki/server.pem"), 0700), 0);
    assert_int_equal(rmdir(path_in(f, "pki/server.pem")), 0);
    write_str(path_in(f, "pki/server.pem"), srv_good, strlen(srv_good));
    ca = open_ca(f, 0);
    am_ca_close(ca);
    free(ca_good);
    free(srv_good);
}

static void test_ca_open_reissues_server_cert_expiring_soon(void **state) {
    fixture *f = *state;
    am_ca *ca = open_ca(f, 1);
    char *iss = strdup(am_ca_issuing_pem(ca));
    char srv_pem_path[768];
    snprintf(srv_pem_path, sizeof(srv_pem_path), "%s", am_ca_path(ca, "server.pem"));
    am_ca_close(ca);
    /* Replace server.pem by a 10-day certificate for the same key, from the same issuing CA. */
    am_pki_key *srv_key = key_from_file(path_in(f, "pki/server.key"));
    am_pki_key *iss_key = key_from_file(path_in(f, "pki/issuing.key"));
    am_pki_leaf_opts o = {.cn = "airmesh", .days = 10, .server = 1};
    char *leaf = NULL;
    uint64_t old_serial = 0;
    assert_int_equal(am_pki_issue_leaf(srv_key, &o, iss, iss_key, &leaf, &old_serial), 0);
    char *chain = concat(leaf, iss);
    write_str(srv_pem_path, chain, strlen(chain));

    ca = open_ca(f, 0);
    char *srv = read_str(srv_pem_path);
    uint64_t serial = 0, not_after = 0;
    assert_int_equal(am_pki_cert_info(srv, &serial, &not_after, NULL), 0);
    assert_true(serial != old_serial);
    assert_true(not_after > (uint64_t)time(NULL) + 300ull * 86400);
    char *ca_pem = read_str(am_ca_path(ca, "ca.pem"));
    assert_int_equal(am_pki_verify_chain(ca_pem, srv), 0);
    am_ca_close(ca);
    free(ca_pem);
    free(srv);
    free(chain);
    free(leaf);
    free(iss);
    am_pki_key_free(srv_key);
    am_pki_key_free(iss_key);
}

static void test_issue_from_csr_client_cert_verifies(void **state) {
    fixture *f = *state;
    char out[16384];
    am_ca *ca = open_ca(f, 1);
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(am_pki_csr_make(k, "runner-42", &der, &len), 0);
    am_pki_leaf_opts o = {.days = 7, .client = 1}; /* CN from the CSR */
    char *chain = NULL;
    uint64_t serial = 0;
    int rc = am_ca_issue_from_csr(ca, der, len, &o, &chain, &serial);
    if (rc)
        fail_msg("issue from CSR: %s", am_err_last());
    assert_true(serial > 0);
    write_str(path_in(f, "client.pem"), chain, strlen(chain));
    assert_int_equal(sh(out, sizeof(out),
                        "openssl verify -x509_strict -purpose sslclient -CAfile '%s' -untrusted "
                        "'%s' '%s'",
                        am_ca_path(ca, "ca.pem"), path_in(f, "client.pem"),
                        path_in(f, "client.pem")),
                     0);
    char *ca_pem = read_str(am_ca_path(ca, "ca.pem"));
    assert_int_equal(am_pki_verify_chain(ca_pem, chain), 0);
    assert_int_equal(
        sh(out, sizeof(out), "openssl x509 -in '%s' -noout -text", path_in(f, "client.pem")), 0);
    assert_non_null(strstr(out, "CN = runner-42"));
    assert_non_null(strstr(out, "TLS Web Client Authentication"));
    assert_null(strstr(out, "TLS Web Server Authentication"));
    /* The certificate carries the runner's key. */
    key_pem_to_file(k, path_in(f, "runner.key"));
    assert_int_equal(sh(NULL, 0,
                        "openssl x509 -in '%s' -noout -pubkey > '%s' && openssl pkey -in '%s' "
                        "-pubout | cmp - '%s'",
                        path_in(f, "client.pem"), path_in(f, "cert.pub"), path_in(f, "runner.key"),
                        path_in(f, "cert.pub")),
                     0);
    uint64_t s2 = 0, not_after = 0;
    char cn[128];
    assert_int_equal(am_pki_cert_info(chain, &s2, &not_after, cn), 0);
    assert_int_equal(s2, serial);
    assert_string_equal(cn, "runner-42");
    assert_true(not_after <= (uint64_t)time(NULL) + 7ull * 86400 + 60);
    free(chain);
    /* The CN in the options wins over the CSR's. */
    o.cn = "runner-override";
    assert_int_equal(am_ca_issue_from_csr(ca, der, len, &o, &chain, NULL), 0);
    assert_int_equal(am_pki_cert_info(chain, NULL, NULL, cn), 0);
    assert_string_equal(cn, "runner-override");
    free(chain);
    /* A tampered CSR is refused. */
    der[len - 1] ^= 0x80;
    chain = NULL;
    assert_int_equal(am_ca_issue_from_csr(ca, der, len, &o, &chain, NULL), -AM_EAUTH);
    assert_null(chain);
    free(ca_pem);
    free(der);
    am_pki_key_free(k);
    am_ca_close(ca);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_pem_roundtrip_sec1_and_pkcs8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_p256_private_key_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_and_issuing_verify_with_openssl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_leaf_has_sans_and_eku, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_not_before_allows_clock_skew, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serials_are_random_and_positive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_without_usage_or_with_bad_san_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_leaf_cannot_be_signed_by_non_ca_or_wrong_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_verify_chain_rejects_foreign_root_and_rogue_intermediate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint_matches_openssl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pem_garbage_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csr_roundtrip_and_openssl_req_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openssl_csr_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csr_with_bad_signature_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csr_with_non_p256_key_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_open_creates_then_reloads_same_fingerprint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ca_open_refuses_partial_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_open_refuses_corrupt_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_open_refuses_corrupt_or_foreign_certs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ca_open_reissues_server_cert_expiring_soon, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_issue_from_csr_client_cert_verifies, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
