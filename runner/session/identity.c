/*
 * runner/session/identity.c — load and save the runner's key, certificate chain and metadata.
 */
#include "runner/session/identity.h"

#include <jansson.h>
#include <limits.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"

static uint64_t asn1_ms(const ASN1_TIME *t) {
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (uint64_t)timegm(&tm) * 1000u;
}

int am_identity_cert_times(const char *chain_pem, uint64_t *not_before_ms, uint64_t *not_after_ms,
                           uint64_t *serial) {
    BIO *bio = BIO_new_mem_buf(chain_pem, -1);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!x)
        return am_err_set(AM_EINVAL, "identity: no certificate in the chain");
    *not_before_ms = asn1_ms(X509_get0_notBefore(x));
    *not_after_ms = asn1_ms(X509_get0_notAfter(x));
    uint64_t v = 0;
    ASN1_INTEGER_get_uint64(&v, X509_get0_serialNumber(x));
    *serial = v;
    X509_free(x);
    return 0;
}

int am_identity_load(const char *dir, am_identity *id) {
    memset(id, 0, sizeof *id);
    char path[PATH_MAX];
    uint8_t *buf = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/identity.pem", dir);
    int rc = am_read_file(path, 1 << 20, &buf, &len);
    if (rc == -AM_ENOTFOUND)
        return am_err_set(AM_ENOTFOUND,
                          "%s: not enrolled (no identity.pem): run `airmesh-runner enroll` first",
                          dir);
    if (rc)
        return rc;
    char *cert = strstr((char *)buf, "-----BEGIN CERTIFICATE-----");
    if (!cert || cert == (char *)buf) {
        am_wipe(buf, len);
        free(buf);
        return am_err_set(AM_ECORRUPT, "%s: expected a private key then certificates", path);
    }
    id->chain_pem = strdup(cert);
    *cert = '\0';
    id->key_pem = strdup((char *)buf);
    am_wipe(buf, len);
    free(buf);
    snprintf(path, sizeof path, "%s/ca.pem", dir);
    if ((rc = am_read_file(path, 1 << 20, &buf, &len)) != 0) {
        am_identity_free(id);
        return rc;
    }
    id->ca_pem = (char *)buf;
    snprintf(path, sizeof path, "%s/runner.json", dir);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    const char *rid = NULL, *org = NULL, *app = NULL;
    if (!doc || json_unpack(doc, "{s:s,s:s,s:s}", "runner_id", &rid, "org", &org, "appliance",
                            &app) != 0) {
        json_decref(doc);
        am_identity_free(id);
        return am_err_set(AM_ECORRUPT, "%s: unreadable (%s)", path, jerr.text);
    }
    snprintf(id->runner_id, sizeof id->runner_id, "%s", rid);
    snprintf(id->org, sizeof id->org, "%s", org);
    snprintf(id->appliance, sizeof id->appliance, "%s", app);
    json_decref(doc);
    if (!id->key_pem || !id->chain_pem ||
        am_identity_cert_times(id->chain_pem, &id->not_before_ms, &id->not_after_ms,
                               &id->serial) != 0) {
        am_identity_free(id);
        return am_err_set(AM_ECORRUPT, "%s/identity.pem: certificate unreadable", dir);
    }
    return 0;
}

int am_identity_save_pem(const char *dir, const char *key_pem, const char *chain_pem) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/identity.pem", dir);
    size_t kl = strlen(key_pem), cl = strlen(chain_pem);
    char *both = malloc(kl + cl + 2);
    if (!both)
        return am_err_set(AM_ENOMEM, "identity: out of memory");
    memcpy(both, key_pem, kl);
    size_t off = kl;
    if (kl && key_pem[kl - 1] != '\n')
        both[off++] = '\n';
    memcpy(both + off, chain_pem, cl);
    int rc = am_write_file_atomic(path, both, off + cl, 0600);
    am_wipe(both, off + cl);
    free(both);
    return rc;
}

int am_identity_save_meta(const char *dir, const char *ca_pem, const char *runner_id,
                          const char *org, const char *appliance) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/ca.pem", dir);
    int rc = am_write_file_atomic(path, ca_pem, strlen(ca_pem), 0644);
    if (rc)
        return rc;
    json_t *doc = json_pack("{s:s,s:s,s:s}", "runner_id", runner_id, "org", org, "appliance",
                            appliance);
    char *text = json_dumps(doc, JSON_INDENT(2));
    json_decref(doc);
    snprintf(path, sizeof path, "%s/runner.json", dir);
    rc = am_write_file_atomic(path, text, strlen(text), 0644);
    free(text);
    return rc;
}

void am_identity_free(am_identity *id) {
    if (id->key_pem) {
        am_wipe(id->key_pem, strlen(id->key_pem));
        free(id->key_pem);
    }
    free(id->chain_pem);
    free(id->ca_pem);
    memset(id, 0, sizeof *id);
}
