/*
 * pki/ca.c — the appliance's CA directory: create it on first start, load and check it after.
 *
 * Why: the root certificate is what users pin; silently replacing it would break every client
 * and hide tampering. So am_ca_open() only creates a CA when NONE of its files exist; any partial,
 * unreadable or inconsistent state is an error that names the file and the problem, for a human
 * to resolve. The one thing renewed automatically is the server leaf (same key) when it is within
 * 30 days of expiry.
 * How: files are written with am_write_file_atomic (keys 0600, certs 0644, dir 0700). Loading
 * checks: each key matches its certificate, ca.pem == root.pem, root is a valid self-signed CA,
 * issuing chains to root, server.pem = server leaf chaining to issuing + issuing.pem.
 * Ownership: am_ca owns the issuing key (wiped on close) and the issuing PEM; the root key is only
 * held while creating or checking and is wiped right after. Threads: am_ca_issue_from_csr() takes
 * ca->mu, so an opened CA may be shared; open/close must not race with other calls.
 */
#include "pki/pki_internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"

#define ROOT_DAYS 3650
#define ISSUING_DAYS 1825
#define SERVER_DAYS 365
#define RENEW_BEFORE_SECONDS (30 * 86400)
#define ROOT_CN "airmesh root CA"
#define ISSUING_CN "airmesh issuing CA"
#define SERVER_CN "airmesh"
#define CA_ORG "airmesh"

enum { F_ROOT_KEY, F_ROOT_PEM, F_ISS_KEY, F_ISS_PEM, F_CA_PEM, F_SRV_KEY, F_SRV_PEM, F_COUNT };
static const char *const k_names[F_COUNT] = {"root.key", "root.pem",   "issuing.key", "issuing.pem",
                                             "ca.pem",   "server.key", "server.pem"};
static int is_key(int f) {
    return f == F_ROOT_KEY || f == F_ISS_KEY || f == F_SRV_KEY;
}

struct am_ca {
    char dir[PATH_MAX];
    char paths[F_COUNT][PATH_MAX];
    char root_fp[65];
    char *issuing_pem;
    am_pki_key *issuing_key;
    pthread_mutex_t mu;
};

/* The contents of the directory while opening. */
typedef struct {
    char *text[F_COUNT]; /* file contents (NUL terminated) */
    size_t len[F_COUNT];
    am_pki_key *root_key, *srv_key;
    char *srv_leaf; /* first certificate block of server.pem */
} ca_files;

static void files_free(ca_files *f) {
    for (int i = 0; i < F_COUNT; i++) {
        if (f->text[i]) {
            if (is_key(i))
                am_wipe(f->text[i], f->len[i]);
            free(f->text[i]);
        }
    }
    am_pki_key_free(f->root_key);
    am_pki_key_free(f->srv_key);
    free(f->srv_leaf);
    memset(f, 0, sizeof(*f));
}

/* The message of the error just recorded, without its "pki: " prefix, copied so it can be
 * embedded in a new message. */
static const char *last_reason(char *buf, size_t cap) {
    const char *m = am_err_last();
    if (strncmp(m, "pki: ", 5) == 0)
        m += 5;
    snprintf(buf, cap, "%s", m);
    return buf;
}

/* Wrap the error just recorded as "pki: <path> <verb>: <reason>" keeping its code. */
static int wrap(int rc, const char *path, const char *verb) {
    char why[512];
    last_reason(why, sizeof(why));
    return am_err_set(-rc, "pki: %s %s: %s", path, verb, why);
}

static int write_file(am_ca *ca, int f, const char *data) {
    int rc = am_write_file_atomic(ca->paths[f], data, strlen(data), is_key(f) ? 0600 : 0644);
    return rc ? wrap(rc, ca->paths[f], "cannot be written") : 0;
}

/* First "-----BEGIN CERTIFICATE-----" block of pem, malloc'd. */
static char *first_cert_block(const char *pem) {
    const char *b = strstr(pem, "-----BEGIN CERTIFICATE-----");
    const char *e = b ? strstr(b, "-----END CERTIFICATE-----") : NULL;
    if (!e)
        return NULL;
    e += strlen("-----END CERTIFICATE-----");
    size_t n = (size_t)(e - b);
    char *out = malloc(n + 2);
    if (!out)
        return NULL;
    memcpy(out, b, n);
    out[n] = '\n';
    out[n + 1] = '\0';
    return out;
}

static char *concat(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *out = malloc(la + lb + 1);
    if (!out)
        return NULL;
    memcpy(out, a, la);
    memcpy(out + la, b, lb + 1);
    return out;
}

/* Issue the server leaf for srv_key and write server.pem (leaf + issuing). */
static int issue_server(am_ca *ca, am_pki_key *srv_key, const am_ca_opts *opts) {
    const char *dns[66];
    const char *ips[66];
    size_t nd = 0, ni = 0;
    size_t extra_d = opts ? opts->n_extra_dns : 0, extra_i = opts ? opts->n_extra_ips : 0;
    if (extra_d > 64 || extra_i > 64)
        return am_err_set(AM_EINVAL,
                          "pki: server certificate: more than 64 extra DNS names or IPs");
    char host[256] = "";
    dns[nd++] = "localhost";
    if (gethostname(host, sizeof(host) - 1) == 0 && host[0] && strcmp(host, "localhost") != 0 &&
        pki_dns_name_ok(host))
        dns[nd++] = host;
    for (size_t i = 0; i < extra_d; i++) {
        int dup = 0;
        for (size_t j = 0; j < nd; j++)
            dup |= opts->extra_dns[i] && strcmp(dns[j], opts->extra_dns[i]) == 0;
        if (!dup)
            dns[nd++] = opts->extra_dns[i];
    }
    ips[ni++] = "127.0.0.1";
    ips[ni++] = "::1";
    for (size_t i = 0; i < extra_i; i++)
        ips[ni++] = opts->extra_ips[i];

    am_pki_leaf_opts lo = {
        .cn = SERVER_CN,
        .org = CA_ORG,
        .dns = dns,
        .n_dns = nd,
        .ips = ips,
        .n_ips = ni,
        .days = SERVER_DAYS,
        .server = 1,
    };
    char *leaf = NULL, *chain = NULL;
    int rc = am_pki_issue_leaf(srv_key, &lo, ca->issuing_pem, ca->issuing_key, &leaf, NULL);
    if (rc)
        return wrap(rc, ca->paths[F_SRV_PEM], "cannot be issued");
    chain = concat(leaf, ca->issuing_pem);
    free(leaf);
    if (!chain)
        return am_err_set(AM_ENOMEM, "pki: %s: out of memory", ca->paths[F_SRV_PEM]);
    rc = write_file(ca, F_SRV_PEM, chain);
    free(chain);
    return rc;
}

static int write_key(am_ca *ca, int f, const am_pki_key *k) {
    char *pem = NULL;
    int rc = am_pki_key_to_pem(k, &pem);
    if (rc)
        return wrap(rc, ca->paths[f], "cannot be encoded");
    rc = write_file(ca, f, pem);
    am_wipe(pem, strlen(pem));
    free(pem);
    return rc;
}

/* First start: a new root, issuing CA and server certificate. ca.pem is written last. */
static int create_all(am_ca *ca, const am_ca_opts *opts) {
    am_pki_key *root_key = NULL, *srv_key = NULL;
    char *root_pem = NULL;
    int rc;
    if ((rc = am_pki_key_generate(&root_key)) != 0 ||
        (rc = am_pki_make_root(root_key, ROOT_CN, ROOT_DAYS, &root_pem)) != 0 ||
        (rc = am_pki_key_generate(&ca->issuing_key)) != 0 ||
        (rc = am_pki_make_issuing(ca->issuing_key, ISSUING_CN, ISSUING_DAYS, root_pem, root_key,
                                  &ca->issuing_pem)) != 0 ||
        (rc = am_pki_key_generate(&srv_key)) != 0) {
        rc = wrap(rc, ca->dir, "new CA cannot be created");
        goto out;
    }
    if ((rc = write_key(ca, F_ROOT_KEY, root_key)) != 0 ||
        (rc = write_file(ca, F_ROOT_PEM, root_pem)) != 0 ||
        (rc = write_key(ca, F_ISS_KEY, ca->issuing_key)) != 0 ||
        (rc = write_file(ca, F_ISS_PEM, ca->issuing_pem)) != 0 ||
        (rc = write_key(ca, F_SRV_KEY, srv_key)) != 0 ||
        (rc = issue_server(ca, srv_key, opts)) != 0 ||
        (rc = write_file(ca, F_CA_PEM, root_pem)) != 0)
        goto out;
    rc = am_pki_fingerprint_sha256(root_pem, ca->root_fp);
out:
    am_pki_key_free(root_key);
    am_pki_key_free(srv_key);
    free(root_pem);
    return rc;
}

static int load_key(const ca_files *f, const am_ca *ca, int i, am_pki_key **out) {
    int rc = am_pki_key_from_pem(f->text[i], f->len[i], out);
    return rc ? wrap(-AM_ECORRUPT, ca->paths[i], "is corrupt") : 0;
}

/* The key in file kf must belong to the (first) certificate in file cf. */
static int check_pair(const am_ca *ca, const am_pki_key *k, int kf, const char *cert_pem, int cf) {
    uint8_t *der = NULL;
    size_t len = 0;
    int rc = pki_cert_der(cert_pem, ca->paths[cf], &der, &len);
    if (rc)
        return wrap(-AM_ECORRUPT, ca->paths[cf], "is corrupt");
    rc = pki_key_matches_cert(k, der, len, ca->paths[kf], ca->paths[cf]);
    free(der);
    if (rc == -AM_ECORRUPT)
        return rc; /* "pki: <key> does not match the public key in <cert>" */
    return rc ? wrap(-AM_ECORRUPT, ca->paths[cf], "is corrupt") : 0;
}

static int load_all(am_ca *ca, const am_ca_opts *opts) {
    ca_files f;
    memset(&f, 0, sizeof(f));
    int rc = 0;
    for (int i = 0; i < F_COUNT; i++) {
        uint8_t *data = NULL;
        rc = am_read_file(ca->paths[i], PKI_MAX_OBJ, &data, &f.len[i]);
        if (rc) {
            rc = wrap(rc, ca->paths[i], "cannot be read");
            goto out;
        }
        f.text[i] = (char *)data;
        if (f.len[i] == 0 || strlen(f.text[i]) != f.len[i]) {
            rc = am_err_set(AM_ECORRUPT, "pki: %s is corrupt: %s", ca->paths[i],
                            f.len[i] == 0 ? "empty file" : "contains NUL bytes");
            goto out;
        }
    }
    /* Keys parse and are P-256. */
    if ((rc = load_key(&f, ca, F_ROOT_KEY, &f.root_key)) != 0 ||
        (rc = load_key(&f, ca, F_ISS_KEY, &ca->issuing_key)) != 0 ||
        (rc = load_key(&f, ca, F_SRV_KEY, &f.srv_key)) != 0)
        goto out;
    /* Each key matches its certificate (this also parses every certificate). */
    if ((rc = check_pair(ca, f.root_key, F_ROOT_KEY, f.text[F_ROOT_PEM], F_ROOT_PEM)) != 0 ||
        (rc = check_pair(ca, ca->issuing_key, F_ISS_KEY, f.text[F_ISS_PEM], F_ISS_PEM)) != 0 ||
        (rc = check_pair(ca, f.srv_key, F_SRV_KEY, f.text[F_SRV_PEM], F_SRV_PEM)) != 0)
        goto out;
    /* ca.pem is the root users pinned. */
    char fp_ca[65];
    rc = am_pki_fingerprint_sha256(f.text[F_CA_PEM], fp_ca);
    if (rc) {
        rc = wrap(-AM_ECORRUPT, ca->paths[F_CA_PEM], "is corrupt");
        goto out;
    }
    if ((rc = am_pki_fingerprint_sha256(f.text[F_ROOT_PEM], ca->root_fp)) != 0)
        goto out;
    if (strcmp(fp_ca, ca->root_fp) != 0) {
        rc = am_err_set(AM_ECORRUPT, "pki: %s is not the same certificate as %s (%s vs %s)",
                        ca->paths[F_CA_PEM], ca->paths[F_ROOT_PEM], fp_ca, ca->root_fp);
        goto out;
    }
    /* The root is a currently valid self-signed CA; issuing chains to it. */
    rc = am_pki_verify_chain(f.text[F_ROOT_PEM], f.text[F_ROOT_PEM]);
    if (rc) {
        rc = wrap(rc, ca->paths[F_ROOT_PEM], "is not a valid self-signed root CA");
        goto out;
    }
    rc = am_pki_verify_chain(f.text[F_ROOT_PEM], f.text[F_ISS_PEM]);
    if (rc) {
        rc = wrap(rc, ca->paths[F_ISS_PEM], "does not chain to root.pem");
        goto out;
    }
    ca->issuing_pem = strdup(f.text[F_ISS_PEM]);
    f.srv_leaf = first_cert_block(f.text[F_SRV_PEM]);
    if (!ca->issuing_pem || !f.srv_leaf) {
        rc = am_err_set(AM_ENOMEM, "pki: load %s: out of memory", ca->paths[F_SRV_PEM]);
        goto out;
    }
    /* The server leaf: renew when close to expiry, else it must chain to issuing and carry it. */
    uint64_t not_after = 0;
    rc = am_pki_cert_info(f.srv_leaf, NULL, &not_after, NULL);
    if (rc) {
        rc = wrap(-AM_ECORRUPT, ca->paths[F_SRV_PEM], "is corrupt");
        goto out;
    }
    if (not_after < (uint64_t)time(NULL) + RENEW_BEFORE_SECONDS) {
        rc = issue_server(ca, f.srv_key, opts);
        goto out;
    }
    char *chain = concat(f.srv_leaf, ca->issuing_pem);
    if (!chain) {
        rc = am_err_set(AM_ENOMEM, "pki: load %s: out of memory", ca->paths[F_SRV_PEM]);
        goto out;
    }
    rc = am_pki_verify_chain(f.text[F_ROOT_PEM], chain);
    free(chain);
    if (rc) {
        rc = wrap(rc, ca->paths[F_SRV_PEM], "does not chain to issuing.pem");
        goto out;
    }
    if (!strstr(f.text[F_SRV_PEM] + strlen(f.srv_leaf) - 1, ca->issuing_pem)) {
        rc = am_err_set(AM_ECORRUPT,
                        "pki: %s is corrupt: the certificate after the server leaf is not %s",
                        ca->paths[F_SRV_PEM], ca->paths[F_ISS_PEM]);
        goto out;
    }
out:
    files_free(&f);
    return rc;
}

int am_ca_open(const char *dir, const am_ca_opts *opts, am_ca **out, int *created) {
    if (!dir || !dir[0] || !out)
        return am_err_set(AM_EINVAL, "pki: open CA: missing directory or out parameter");
    *out = NULL;
    if (created)
        *created = 0;
    am_ca *ca = calloc(1, sizeof(*ca));
    if (!ca)
        return am_err_set(AM_ENOMEM, "pki: open CA %s: out of memory", dir);
    pthread_mutex_init(&ca->mu, NULL);
    int rc = 0;
    snprintf(ca->dir, sizeof(ca->dir), "%s", dir);
    for (int i = 0; i < F_COUNT; i++) {
        int n = snprintf(ca->paths[i], sizeof(ca->paths[i]), "%s/%s", dir, k_names[i]);
        if (n < 0 || (size_t)n >= sizeof(ca->paths[i])) {
            rc = am_err_set(AM_EINVAL, "pki: open CA %s: path too long", dir);
            goto fail;
        }
    }
    rc = am_mkdir_p(dir, 0700);
    if (rc) {
        rc = wrap(rc, dir, "cannot be created");
        goto fail;
    }

    /* Which files exist decides between "create all", "load all" and "refuse". */
    int exists[F_COUNT], n_exist = 0;
    for (int i = 0; i < F_COUNT; i++) {
        struct stat st;
        if (stat(ca->paths[i], &st) == 0) {
            if (!S_ISREG(st.st_mode)) {
                rc = am_err_set(AM_ECORRUPT, "pki: %s is not a regular file", ca->paths[i]);
                goto fail;
            }
            exists[i] = 1;
            n_exist++;
        } else if (errno == ENOENT) {
            exists[i] = 0;
        } else {
            rc = am_err_set(AM_EIO, "pki: %s cannot be checked: %s", ca->paths[i], strerror(errno));
            goto fail;
        }
    }
    if (n_exist == 0) {
        rc = create_all(ca, opts);
        if (rc)
            goto fail;
        if (created)
            *created = 1;
    } else if (n_exist < F_COUNT) {
        int missing = -1, present = -1;
        for (int i = 0; i < F_COUNT; i++) {
            if (!exists[i] && missing < 0)
                missing = i;
            if (exists[i] && present < 0)
                present = i;
        }
        rc = am_err_set(AM_ECORRUPT,
                        "pki: %s missing while %s exists: refusing to create a new CA over an "
                        "existing one (restore the missing file, or move %s away to start a new "
                        "CA)",
                        ca->paths[missing], k_names[present], dir);
        goto fail;
    } else {
        rc = load_all(ca, opts);
        if (rc)
            goto fail;
    }
    *out = ca;
    return 0;
fail:
    am_ca_close(ca);
    return rc;
}

void am_ca_close(am_ca *ca) {
    if (!ca)
        return;
    am_pki_key_free(ca->issuing_key);
    free(ca->issuing_pem);
    pthread_mutex_destroy(&ca->mu);
    free(ca);
}

const char *am_ca_root_fingerprint(const am_ca *ca) {
    return ca ? ca->root_fp : NULL;
}

const char *am_ca_path(const am_ca *ca, const char *name) {
    if (!ca || !name)
        return NULL;
    for (int i = 0; i < F_COUNT; i++)
        if (strcmp(name, k_names[i]) == 0)
            return ca->paths[i];
    return NULL;
}

const char *am_ca_issuing_pem(const am_ca *ca) {
    return ca ? ca->issuing_pem : NULL;
}

int am_ca_issue_from_csr(am_ca *ca, const uint8_t *csr_der, size_t len, const am_pki_leaf_opts *o,
                         char **chain_pem, uint64_t *serial) {
    if (!ca || !csr_der || !o || !chain_pem)
        return am_err_set(AM_EINVAL, "pki: issue from CSR: NULL argument");
    *chain_pem = NULL;
    am_pki_csr csr;
    int rc = am_pki_csr_parse(csr_der, len, &csr);
    if (rc)
        return rc;
    am_pki_leaf_opts lo = *o;
    if (!lo.cn || !lo.cn[0])
        lo.cn = csr.cn;
    if (!lo.cn[0]) {
        am_pki_csr_free(&csr);
        return am_err_set(AM_EINVAL, "pki: issue from CSR: no CN in the options or the CSR");
    }
    char *leaf = NULL;
    pthread_mutex_lock(&ca->mu);
    rc = am_pki_issue_leaf(csr.pub, &lo, ca->issuing_pem, ca->issuing_key, &leaf, serial);
    if (rc == 0) {
        *chain_pem = concat(leaf, ca->issuing_pem);
        if (!*chain_pem)
            rc = am_err_set(AM_ENOMEM, "pki: issue from CSR for %s: out of memory", lo.cn);
    }
    pthread_mutex_unlock(&ca->mu);
    free(leaf);
    am_pki_csr_free(&csr);
    return rc;
}
