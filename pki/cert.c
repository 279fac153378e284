/*
 * pki/cert.c — issuing X.509 v3 certificates: the self-signed root, the issuing CA and leaves.
 *
 * Why: airmesh runs its own CA (ARCHITECTURE.md §7). All three kinds go through build_cert(), one
 * linear sequence of wolfSSL Cert setters, so the profile documented in pki.h lives in one place.
 * How: wc_MakeCert() encodes the TBSCertificate for the subject key, wc_SignCert() signs it with
 * the issuer key (ECDSA-SHA256). Validity is written as raw UTCTime/GeneralizedTime into
 * Cert.beforeDate/afterDate (wolfSSL 5.5.4 has no wc_SetCertValidity), which gives us
 * notBefore = now - 5 min. SANs are DER we encode here (wolfSSL copies Cert.altNames verbatim).
 * Ownership: the ~17 KiB Cert lives on the heap for one call; the PEM result is malloc'd for the
 * caller. Threads: no shared state; each call has its own DRBG.
 */
#include "pki/pki_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"

#define SKEW_SECONDS 300
#define CERT_DER_MAX 8192

typedef struct {
    const char *what; /* for messages: "root CA", "leaf airmesh", ... */
    am_pki_key *subject;
    const char *cn, *org;
    uint32_t days;
    int ca, pathlen0;
    const char *key_usage, *ext_key_usage;
    const uint8_t *san;
    size_t san_len;
    const uint8_t *issuer_der; /* NULL: self-signed */
    size_t issuer_len;
    am_pki_key *issuer_key;
} cert_spec;

/* ---- small DER writer for the SAN extension -------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} der_buf;

static int der_put(der_buf *b, uint8_t tag, const void *data, size_t n) {
    uint8_t hdr[4];
    size_t h = 0;
    hdr[h++] = tag;
    if (n < 0x80) {
        hdr[h++] = (uint8_t)n;
    } else if (n <= 0xff) {
        hdr[h++] = 0x81;
        hdr[h++] = (uint8_t)n;
    } else if (n <= 0xffff) {
        hdr[h++] = 0x82;
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    } else {
        return -1;
    }
    if (b->len + h + n > b->cap)
        return -1;
    memcpy(b->p + b->len, hdr, h);
    if (n)
        memmove(b->p + b->len + h, data, n);
    b->len += h + n;
    return 0;
}

int pki_dns_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || (c == '*' && i == 0)))
            return 0;
    }
    return 1;
}

/* GeneralNames ::= SEQUENCE OF GeneralName; dNSName [2] IA5String, iPAddress [7] OCTET STRING. */
static int encode_san(const am_pki_leaf_opts *o, uint8_t *out, size_t cap, size_t *out_len) {
    uint8_t *inner = malloc(cap);
    if (!inner)
        return am_err_set(AM_ENOMEM, "pki: leaf %s: SAN: out of memory", o->cn);
    der_buf b = {inner, 0, cap};
    int rc = 0;
    for (size_t i = 0; i < o->n_dns; i++) {
        if (!o->dns[i] || !pki_dns_name_ok(o->dns[i])) {
            rc = am_err_set(AM_EINVAL, "pki: leaf %s: SAN DNS name \"%s\" is not a valid host name",
                            o->cn, o->dns[i] ? o->dns[i] : "(null)");
            goto out;
        }
        if (der_put(&b, 0x82, o->dns[i], strlen(o->dns[i])) != 0)
            goto toobig;
    }
    for (size_t i = 0; i < o->n_ips; i++) {
        uint8_t ip[16];
        size_t n;
        if (o->ips[i] && inet_pton(AF_INET, o->ips[i], ip) == 1)
            n = 4;
        else if (o->ips[i] && inet_pton(AF_INET6, o->ips[i], ip) == 1)
            n = 16;
        else {
            rc = am_err_set(AM_EINVAL, "pki: leaf %s: SAN IP \"%s\" is not an IPv4/IPv6 address",
                            o->cn, o->ips[i] ? o->ips[i] : "(null)");
            goto out;
        }
        if (der_put(&b, 0x87, ip, n) != 0)
            goto toobig;
    }
    der_buf outer = {out, 0, cap};
    if (der_put(&outer, 0x30, inner, b.len) != 0)
        goto toobig;
    *out_len = outer.len;
    goto out;
toobig:
    rc = am_err_set(AM_EFULL, "pki: leaf %s: SAN extension larger than %zu bytes", o->cn, cap);
out:
    free(inner);
    return rc;
}

/* ---- dates and serials ----------------------------------------------------------------------- */

/* RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. Writes tag+len+value. */
static int encode_time(time_t t, uint8_t *out, int *out_len) {
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return -1;
    char s[32];
    int n;
    uint8_t tag;
    if (tm.tm_year + 1900 < 2050) {
        tag = 0x17;
        n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    } else {
        tag = 0x18;
        n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    if (n <= 0 || n + 2 > CTC_DATE_SIZE)
        return -1;
    out[0] = tag;
    out[1] = (uint8_t)n;
    memcpy(out + 2, s, (size_t)n);
    *out_len = n + 2;
    return 0;
}

/* notAfter of an issuer certificate, to keep children inside their parent's lifetime. */
static int issuer_not_after(DecodedCert *dc, time_t *out) {
    const byte *date = NULL;
    byte format = 0;
    int dlen = 0;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (wc_GetDateInfo(dc->afterDate, dc->afterDateLen, &date, &format, &dlen) != 0 ||
        wc_GetDateAsCalendarTime(date, dlen, format, &tm) != 0)
        return -1;
    *out = timegm(&tm);
    return 0;
}

static int random_serial(uint64_t *out) {
    uint64_t s = 0;
    while (s == 0) {
        int rc = am_random(&s, sizeof(s));
        if (rc)
            return rc;
        s &= 0x7fffffffffffffffULL; /* positive, fits a signed 64-bit column */
    }
    *out = s;
    return 0;
}

/* ---- basicConstraints criticality ------------------------------------------------------------
 * wolfSSL 5.5.4 always encodes basicConstraints as non-critical, but RFC 5280 4.2.1.9 says a CA
 * certificate MUST mark it critical and strict verifiers (openssl verify -x509_strict,
 * Python 3.13's default context) reject the chain otherwise. So for CA certificates we rewrite the
 * unsigned TBSCertificate that wc_MakeCert() produced, inserting "critical TRUE" (01 01 FF) after
 * the extension's OID and re-encoding the lengths of the enclosing Extension, Extensions, [3] and
 * TBSCertificate, before wc_SignCert() signs it. Input is our own encoder's output; every length
 * is still checked. */

typedef struct {
    const uint8_t *p; /* start of the TLV */
    size_t hdr, len;  /* header size, content length */
} tlv;

static int tlv_read(const uint8_t *p, size_t avail, tlv *t) {
    if (avail < 2)
        return -1;
    size_t h = 2, len = p[1];
    if (len & 0x80) {
        size_t nb = len & 0x7f;
        if (nb == 0 || nb > 3 || avail < 2 + nb)
            return -1;
        len = 0;
        for (size_t i = 0; i < nb; i++)
            len = (len << 8) | p[2 + i];
        h += nb;
    }
    if (len > avail - h)
        return -1;
    t->p = p;
    t->hdr = h;
    t->len = len;
    return 0;
}

/* Writes tag + length + the concatenation of up to three parts into out. */
static int tlv_write(der_buf *out, uint8_t tag, const uint8_t *a, size_t an, const uint8_t *b,
                     size_t bn, const uint8_t *c, size_t cn) {
    size_t n = an + bn + cn;
    uint8_t hdr[5];
    size_t h = 0;
    hdr[h++] = tag;
    if (n < 0x80) {
        hdr[h++] = (uint8_t)n;
    } else if (n <= 0xff) {
        hdr[h++] = 0x81;
        hdr[h++] = (uint8_t)n;
    } else if (n <= 0xffff) {
        hdr[h++] = 0x82;
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    } else {
        return -1;
    }
    if (out->len + h + n > out->cap)
        return -1;
    memcpy(out->p + out->len, hdr, h);
    out->len += h;
    memcpy(out->p + out->len, a, an);
    out->len += an;
    if (bn)
        memcpy(out->p + out->len, b, bn);
    out->len += bn;
    if (cn)
        memcpy(out->p + out->len, c, cn);
    out->len += cn;
    return 0;
}

/* Find the first direct child of parent (content [start,end)) with the given tag. */
static int find_child(const uint8_t *start, const uint8_t *end, uint8_t tag, tlv *out) {
    const uint8_t *p = start;
    while (p < end) {
        tlv t;
        if (tlv_read(p, (size_t)(end - p), &t) != 0)
            return -1;
        if (p[0] == tag) {
            *out = t;
            return 0;
        }
        p += t.hdr + t.len;
    }
    return -1;
}

static int mark_bc_critical(uint8_t *der, size_t len, size_t cap, size_t *new_len) {
    static const uint8_t bc_oid[] = {0x06, 0x03, 0x55, 0x1d, 0x13};
    static const uint8_t crit[] = {0x01, 0x01, 0xff};
    tlv tbs, a3, exts, ext;
    if (tlv_read(der, len, &tbs) != 0 || der[0] != 0x30)
        return -1;
    const uint8_t *tbs_c = der + tbs.hdr, *tbs_e = tbs_c + tbs.len;
    if (find_child(tbs_c, tbs_e, 0xa3, &a3) != 0)
        return -1;
    const uint8_t *a3_c = a3.p + a3.hdr;
    if (tlv_read(a3_c, a3.len, &exts) != 0 || a3_c[0] != 0x30)
        return -1;
    const uint8_t *ex_c = a3_c + exts.hdr, *ex_e = ex_c + exts.len, *p = ex_c;
    int found = 0;
    while (p < ex_e) {
        if (tlv_read(p, (size_t)(ex_e - p), &ext) != 0)
            return -1;
        if (ext.len >= sizeof(bc_oid) + 2 && memcmp(p + ext.hdr, bc_oid, sizeof(bc_oid)) == 0) {
            found = 1;
            break;
        }
        p += ext.hdr + ext.len;
    }
    if (!found)
        return -1;
    const uint8_t *oid_end = ext.p + ext.hdr + sizeof(bc_oid);
    const uint8_t *ext_end = ext.p + ext.hdr + ext.len;
    if (oid_end[0] == 0x01) { /* already has a critical flag */
        *new_len = len;
        return 0;
    }

    uint8_t *tmp = malloc(3 * cap);
    if (!tmp)
        return -1;
    der_buf e1 = {tmp, 0, cap}, e2 = {tmp + cap, 0, cap}, e3 = {tmp + 2 * cap, 0, cap};
    int rc = -1;
    /* Extension ::= SEQUENCE { extnID, critical TRUE, extnValue } */
    if (tlv_write(&e1, 0x30, ext.p + ext.hdr, sizeof(bc_oid), crit, sizeof(crit), oid_end,
                  (size_t)(ext_end - oid_end)) != 0)
        goto out;
    /* Extensions: the ones before, the patched one, the ones after. */
    if (tlv_write(&e2, 0x30, ex_c, (size_t)(ext.p - ex_c), e1.p, e1.len, ext_end,
                  (size_t)(ex_e - ext_end)) != 0)
        goto out;
    /* [3] EXPLICIT Extensions (the only thing in [3]) */
    e1.len = 0;
    if (tlv_write(&e1, 0xa3, e2.p, e2.len, NULL, 0, NULL, 0) != 0)
        goto out;
    /* TBSCertificate: fields before [3], the new [3], fields after it. */
    const uint8_t *a3_end = a3.p + a3.hdr + a3.len;
    if (tlv_write(&e3, 0x30, tbs_c, (size_t)(a3.p - tbs_c), e1.p, e1.len, a3_end,
                  (size_t)(tbs_e - a3_end)) != 0)
        goto out;
    if (e3.len > cap)
        goto out;
    memcpy(der, e3.p, e3.len);
    *new_len = e3.len;
    rc = 0;
out:
    free(tmp);
    return rc;
}

/* ---- the one place certificates are built ---------------------------------------------------- */

#define WC_CHECK(step)                                                                             \
    do {                                                                                           \
        if (ret < 0) {                                                                             \
            rc = am_err_set(AM_ECRYPTO, "pki: %s: %s: %s (%d)", s->what, step, pki_wc_err(ret),    \
                            ret);                                                                  \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static int build_cert(const cert_spec *s, char **pem_out, uint64_t *serial_out) {
    *pem_out = NULL;
    if (!s->subject || !s->issuer_key || !s->cn || !s->cn[0])
        return am_err_set(AM_EINVAL, "pki: %s: missing key or CN", s->what);
    if (!s->issuer_key->has_priv)
        return am_err_set(AM_EINVAL, "pki: %s: signing key has no private part", s->what);
    if (strlen(s->cn) >= CTC_NAME_SIZE || (s->org && strlen(s->org) >= CTC_NAME_SIZE))
        return am_err_set(AM_EINVAL, "pki: %s: CN/O longer than %d bytes", s->what,
                          CTC_NAME_SIZE - 1);
    if (s->days == 0 || s->days > 36500)
        return am_err_set(AM_EINVAL, "pki: %s: validity of %u days out of range (1..36500)",
                          s->what, s->days);

    int rc = 0, ret = 0;
    WC_RNG rng;
    int have_rng = 0;
    Cert *c = NULL;
    DecodedCert *idc = NULL;
    uint8_t *der = NULL;
    char *pem = NULL;
    uint64_t serial = 0;

    time_t now = time(NULL);
    time_t not_before = now - SKEW_SECONDS;
    time_t not_after = now + (time_t)s->days * 86400;

    if (s->issuer_der) {
        /* The issuer key must belong to the issuer cert, or the result would never verify. */
        rc = pki_key_matches_cert(s->issuer_key, s->issuer_der, s->issuer_len, "issuer key",
                                  "issuer certificate");
        if (rc)
            return rc;
        rc = pki_decode_cert(s->issuer_der, s->issuer_len, "issuer certificate", &idc);
        if (rc)
            return rc;
        if (!idc->isCA) {
            rc = am_err_set(AM_EINVAL, "pki: %s: issuer certificate \"%.*s\" is not a CA", s->what,
                            idc->subjectCNLen, idc->subjectCN ? idc->subjectCN : "");
            goto out;
        }
        time_t ina;
        if (issuer_not_after(idc, &ina) != 0) {
            rc = am_err_set(AM_EINVAL, "pki: %s: issuer certificate has an unreadable notAfter",
                            s->what);
            goto out;
        }
        if (ina <= now) {
            rc = am_err_set(AM_ESTATE, "pki: %s: issuer certificate has expired", s->what);
            goto out;
        }
        if (not_after > ina)
            not_after = ina;
    }

    if ((rc = pki_rng_init(&rng, s->what)) != 0)
        goto out;
    have_rng = 1;
    if ((rc = random_serial(&serial)) != 0)
        goto out;

    c = wc_CertNew(NULL);
    if (!c) {
        rc = am_err_set(AM_ENOMEM, "pki: %s: allocate Cert: out of memory", s->what);
        goto out;
    }
    c->sigType = CTC_SHA256wECDSA;
    c->version = 2; /* X.509 v3 */
    for (int i = 0; i < 8; i++)
        c->serial[i] = (byte)(serial >> (56 - 8 * i));
    c->serialSz = 8;
    /* wolfSSL drops leading zero bytes of a serial; keep the first byte non-zero so the value we
     * return is exactly what is encoded. */
    while (c->serialSz > 1 && c->serial[0] == 0) {
        memmove(c->serial, c->serial + 1, (size_t)c->serialSz - 1);
        c->serialSz--;
    }

    snprintf(c->subject.commonName, CTC_NAME_SIZE, "%s", s->cn);
    c->subject.commonNameEnc = CTC_UTF8;
    if (s->org && s->org[0]) {
        snprintf(c->subject.org, CTC_NAME_SIZE, "%s", s->org);
        c->subject.orgEnc = CTC_UTF8;
    }

    if (encode_time(not_before, c->beforeDate, &c->beforeDateSz) != 0 ||
        encode_time(not_after, c->afterDate, &c->afterDateSz) != 0) {
        rc = am_err_set(AM_EINVAL, "pki: %s: cannot encode validity dates", s->what);
        goto out;
    }
    c->daysValid = (int)s->days; /* unused when the dates above are set */

    c->isCA = s->ca ? 1 : 0;
    c->basicConstSet = 1;
    if (s->ca && s->pathlen0) {
        c->pathLen = 0;
        c->pathLenSet = 1;
    }

    ret = wc_SetSubjectKeyIdFromPublicKey_ex(c, ECC_TYPE, &s->subject->ecc);
    WC_CHECK("set subjectKeyIdentifier");
    if (s->issuer_der) {
        c->selfSigned = 0;
        ret = wc_SetIssuerBuffer(c, s->issuer_der, (int)s->issuer_len);
        WC_CHECK("set issuer name");
        ret = wc_SetAuthKeyIdFromCert(c, s->issuer_der, (int)s->issuer_len);
        WC_CHECK("set authorityKeyIdentifier");
    } else {
        c->selfSigned = 1;
        ret = wc_SetAuthKeyIdFromPublicKey_ex(c, ECC_TYPE, &s->issuer_key->ecc);
        WC_CHECK("set authorityKeyIdentifier");
    }
    ret = wc_SetKeyUsage(c, s->key_usage);
    WC_CHECK("set keyUsage");
    if (s->ext_key_usage) {
        ret = wc_SetExtKeyUsage(c, s->ext_key_usage);
        WC_CHECK("set extendedKeyUsage");
    }
    if (s->san_len) {
        if (s->san_len > sizeof(c->altNames)) {
            rc = am_err_set(AM_EFULL, "pki: %s: SAN too large", s->what);
            goto out;
        }
        memcpy(c->altNames, s->san, s->san_len);
        c->altNamesSz = (int)s->san_len;
    }

    der = malloc(CERT_DER_MAX);
    if (!der) {
        rc = am_err_set(AM_ENOMEM, "pki: %s: out of memory", s->what);
        goto out;
    }
    ret = wc_MakeCert(c, der, CERT_DER_MAX, NULL, &s->subject->ecc, &rng);
    WC_CHECK("encode certificate body");
    int body_len = c->bodySz;
    if (s->ca) {
        size_t nl = 0;
        if (mark_bc_critical(der, (size_t)body_len, CERT_DER_MAX / 2, &nl) != 0) {
            rc = am_err_set(AM_ECRYPTO,
                            "pki: %s: cannot mark basicConstraints critical in the "
                            "encoded certificate body",
                            s->what);
            goto out;
        }
        body_len = (int)nl;
    }
    ret = wc_SignCert(body_len, c->sigType, der, CERT_DER_MAX, NULL, &s->issuer_key->ecc, &rng);
    WC_CHECK("sign certificate");
    int der_len = ret;

    size_t cap = (size_t)der_len * 2 + 128;
    pem = malloc(cap);
    if (!pem) {
        rc = am_err_set(AM_ENOMEM, "pki: %s: out of memory", s->what);
        goto out;
    }
    ret = wc_DerToPem(der, (word32)der_len, (byte *)pem, (word32)cap - 1, CERT_TYPE);
    WC_CHECK("encode PEM");
    pem[ret] = '\0';
    *pem_out = pem;
    pem = NULL;
    if (serial_out)
        *serial_out = serial;
out:
    free(pem);
    free(der);
    if (c) {
        wc_CertFree(c);
    }
    if (have_rng)
        wc_FreeRng(&rng);
    pki_decoded_free(idc);
    return rc;
}

int am_pki_make_root(am_pki_key *key, const char *cn, uint32_t days, char **cert_pem) {
    if (!key || !cert_pem)
        return am_err_set(AM_EINVAL, "pki: make root CA: NULL argument");
    cert_spec s = {
        .what = "make root CA",
        .subject = key,
        .cn = cn,
        .days = days,
        .ca = 1,
        .key_usage = "keyCertSign,cRLSign",
        .issuer_key = key,
    };
    return build_cert(&s, cert_pem, NULL);
}

int am_pki_make_issuing(am_pki_key *key, const char *cn, uint32_t days, const char *root_cert_pem,
                        am_pki_key *root_key, char **cert_pem) {
    if (!key || !root_cert_pem || !root_key || !cert_pem)
        return am_err_set(AM_EINVAL, "pki: make issuing CA: NULL argument");
    *cert_pem = NULL;
    uint8_t *rder = NULL;
    size_t rlen = 0;
    int rc = pki_cert_der(root_cert_pem, "make issuing CA: root certificate", &rder, &rlen);
    if (rc)
        return rc;
    cert_spec s = {
        .what = "make issuing CA",
        .subject = key,
        .cn = cn,
        .days = days,
        .ca = 1,
        .pathlen0 = 1,
        .key_usage = "keyCertSign,cRLSign",
        .issuer_der = rder,
        .issuer_len = rlen,
        .issuer_key = root_key,
    };
    rc = build_cert(&s, cert_pem, NULL);
    free(rder);
    return rc;
}

int am_pki_issue_leaf(am_pki_key *subject_pub, const am_pki_leaf_opts *o,
                      const char *issuer_cert_pem, am_pki_key *issuer_key, char **cert_pem,
                      uint64_t *serial_out) {
    if (!subject_pub || !o || !issuer_cert_pem || !issuer_key || !cert_pem)
        return am_err_set(AM_EINVAL, "pki: issue leaf: NULL argument");
    *cert_pem = NULL;
    if (!o->cn || !o->cn[0])
        return am_err_set(AM_EINVAL, "pki: issue leaf: empty CN");
    if (!o->server && !o->client)
        return am_err_set(AM_EINVAL,
                          "pki: issue leaf %s: neither server nor client usage requested", o->cn);
    if ((o->n_dns && !o->dns) || (o->n_ips && !o->ips))
        return am_err_set(AM_EINVAL, "pki: issue leaf %s: SAN count without array", o->cn);

    char what[96];
    snprintf(what, sizeof(what), "issue leaf %s", o->cn);
    uint8_t *ider = NULL, *san = NULL;
    size_t ilen = 0, san_len = 0;
    int rc = 0;
    if (o->n_dns + o->n_ips > 0) {
        san = malloc(CTC_MAX_ALT_SIZE);
        if (!san)
            return am_err_set(AM_ENOMEM, "pki: %s: out of memory", what);
        rc = encode_san(o, san, CTC_MAX_ALT_SIZE, &san_len);
        if (rc)
            goto out;
    }
    rc = pki_cert_der(issuer_cert_pem, "issue leaf: issuer certificate", &ider, &ilen);
    if (rc)
        goto out;
    const char *eku = o->server && o->client ? "serverAuth,clientAuth"
                      : o->server            ? "serverAuth"
                                             : "clientAuth";
    cert_spec s = {
        .what = what,
        .subject = subject_pub,
        .cn = o->cn,
        .org = o->org,
        .days = o->days,
        .key_usage = "digitalSignature",
        .ext_key_usage = eku,
        .san = san,
        .san_len = san_len,
        .issuer_der = ider,
        .issuer_len = ilen,
        .issuer_key = issuer_key,
    };
    rc = build_cert(&s, cert_pem, serial_out);
out:
    free(ider);
    free(san);
    return rc;
}
