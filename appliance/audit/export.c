/*
 * appliance/audit/export.c — the offline export file (format in audit.h): writing it from a live
 * log, and verifying/reading it with nothing but the file.
 *
 * Export (appliance side): seal the live segment (am_audit_seal: everything appended so far ends
 * up in sealed segments), scan every segment to learn its time range, pick the contiguous run of
 * sealed segments from the first to the last one holding a record in [since, until), and copy
 * them byte for byte behind a header carrying the audit certificate chain and the root CA. The
 * trailer is SHA-256 of everything before it, signed with the audit key, so segments dropped at
 * either end or a changed header are detected too.
 *
 * Verify (auditor side): the one parser of export files. Every length is checked against the
 * file size before it is used; nothing is allocated from a length except the two PEMs (64 KiB
 * cap); segments are scanned in place by the segment scanner (scan.c). Per segment: all frames
 * and hashes, then the seal (present, made by THIS export's audit key, signature valid), then
 * continuity with the previous segment; finally the trailer. The first failure is reported with
 * segment, block and offsets.
 *
 * Ownership: nothing outlives a call; the caller owns the output fd. Threads: am_audit_export
 * from any thread (it blocks while it reads the segments); verify/read are thread-safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "appliance/audit/internal.h"
#include "common/err.h"
#include "common/util.h"

#define EXP_MAGIC "AMAUDEXP"
#define EXP_END "AMEXPEND"
#define EXP_HDR 64u
#define EXP_TRAILER 48u /* magic ‖ hash ‖ sig_len ‖ reserved, then the signature */
#define EXP_PEM_MAX (64u << 10)
#define EXP_MAX_SEGS (1u << 20)
#define CHUNK (1u << 20)

/* ---------------------------------------------------------------- writing (appliance side) */

typedef struct {
    int fd;
    uint64_t off;
    EVP_MD_CTX *md;
} out_file;

static int out_write(out_file *o, const void *p, size_t n) {
    if (EVP_DigestUpdate(o->md, p, n) != 1)
        return am_err_set(AM_ECRYPTO, "audit: export: SHA-256 failed");
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(o->fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return am_err_set(AM_EIO, "audit: export: write: %s",
                              w < 0 ? strerror(errno) : "wrote nothing");
        b += w;
        n -= (size_t)w;
        o->off += (uint64_t)w;
    }
    return 0;
}

typedef struct {
    uint64_t segno, size, records, first_seq, last_seq;
    uint64_t tmin, tmax;
    int sealed;
} seg_info;

static int time_cb(void *ud, const Airmesh__V1__AuditRecord *r) {
    seg_info *si = ud;
    if (si->records == 0 || r->time_ms < si->tmin)
        si->tmin = r->time_ms;
    if (si->records == 0 || r->time_ms > si->tmax)
        si->tmax = r->time_ms;
    si->records++;
    return 0;
}

/* Scan one segment file: verified size, sealed or not, time range. A torn or unsealed tail is
 * fine here (the caller decides); damage is an error. */
static int survey(const char *dir, uint64_t segno, seg_info *si) {
    memset(si, 0, sizeof *si);
    si->segno = segno;
    aud_scan s;
    aud_scan_init(&s, segno, 1, time_cb, si);
    char path[4096];
    int rc = 0;
    if (snprintf(path, sizeof path, "%s/%s", dir, s.name) >= (int)sizeof path)
        return am_err_set(AM_EINVAL, "audit: path too long: %s", dir);
    rc = aud_scan_open(&s, path, 0);
    while (!rc) {
        int r = aud_scan_next(&s);
        if (r == 1)
            continue;
        if (r != 0 && r != AUD_TORN)
            rc = r;
        break;
    }
    if (!rc && s.segno != segno)
        rc = am_err_set(AM_ECORRUPT, "audit: %s header says segment %llu", s.name,
                        (unsigned long long)s.segno);
    si->size = s.offset;
    si->sealed = s.sealed;
    si->first_seq = s.first_seq;
    si->last_seq = s.next_seq - 1;
    aud_scan_close(&s);
    return rc;
}

static int copy_segment(out_file *o, const char *dir, const seg_info *si, uint8_t *buf) {
    char name[AUD_NAME_MAX], path[4096];
    aud_seg_name(si->segno, name);
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return am_err_set(AM_EINVAL, "audit: path too long: %s", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return am_err_set(AM_EIO, "audit: export: open %s: %s", path, strerror(errno));
    uint8_t len[8];
    aud_put64(len, si->size);
    int rc = out_write(o, len, sizeof len);
    for (uint64_t off = 0; !rc && off < si->size;) {
        size_t want = si->size - off < CHUNK ? (size_t)(si->size - off) : CHUNK;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = am_err_set(AM_EIO, "audit: export: read %s: %s", path,
                            r < 0 ? strerror(errno) : "file shrank");
            break;
        }
        rc = out_write(o, buf, (size_t)r);
        off += (uint64_t)r;
    }
    close(fd);
    return rc;
}

int am_audit_export(am_audit *a, const char *root_pem, uint64_t since_ms, uint64_t until_ms, int fd,
                    am_audit_export_info *info) {
    if (!a || !root_pem || fd < 0)
        return am_err_set(AM_EINVAL, "audit: export: bad arguments");
    am_audit_export_info local;
    info = info ? info : &local;
    memset(info, 0, sizeof *info);
    const char *dir = aud_audit_dir(a);
    char *cert = NULL;
    uint64_t *nums = NULL;
    size_t n = 0;
    seg_info *segs = NULL;
    uint8_t *buf = NULL;
    out_file o = {fd, 0, EVP_MD_CTX_new()};
    int rc = aud_audit_sign(a, NULL, 0, NULL, NULL, &cert);
    if (!rc)
        rc = am_audit_seal(a);
    if (!rc)
        rc = aud_list_segments(dir, &nums, &n);
    if (rc)
        goto out;
    size_t cert_len = strlen(cert), root_len = strlen(root_pem);
    if (cert_len == 0 || cert_len > EXP_PEM_MAX || root_len == 0 || root_len > EXP_PEM_MAX ||
        n > EXP_MAX_SEGS) {
        rc = am_err_set(AM_EINVAL, "audit: export: certificate or segment count out of bounds");
        goto out;
    }
    if (!o.md || EVP_DigestInit_ex(o.md, EVP_sha256(), NULL) != 1 ||
        !(segs = calloc(n ? n : 1, sizeof *segs)) || !(buf = malloc(CHUNK))) {
        rc = am_err_set(AM_ENOMEM, "audit: export: out of memory");
        goto out;
    }
    /* Which segments: the contiguous run from the first to the last one with a record in
     * range. The live segment (the last, unsealed) holds only records appended after the seal
     * above and is left out. */
    size_t first = n, last = 0;
    for (size_t i = 0; i < n; i++) {
        if (nums[i] != i + 1) {
            rc = am_err_set(AM_ECORRUPT, "audit: export: segment %zu is missing", i + 1);
            goto out;
        }
        if ((rc = survey(dir, nums[i], &segs[i])) != 0)
            goto out;
        seg_info *si = &segs[i];
        if (!si->sealed && i + 1 == n)
            break;
        if (si->records && si->tmax >= since_ms && (!until_ms || si->tmin < until_ms)) {
            if (first == n)
                first = i;
            last = i;
        }
    }
    size_t nsel = first == n ? 0 : last - first + 1;
    for (size_t i = first; i < first + nsel; i++) {
        if (!segs[i].sealed) {
            rc = am_err_set(AM_ESTATE,
                            "audit: export: seg-%06llu.aml is not sealed (written before the "
                            "audit key existed); choose a later --since",
                            (unsigned long long)segs[i].segno);
            goto out;
        }
    }
    uint8_t h[EXP_HDR] = {0};
    memcpy(h, EXP_MAGIC, 8);
    aud_put32(h + 8, 1);
    aud_put32(h + 12, (uint32_t)nsel);
    aud_put64(h + 16, am_now_ms());
    aud_put64(h + 24, since_ms);
    aud_put64(h + 32, until_ms);
    aud_put32(h + 40, (uint32_t)cert_len);
    aud_put32(h + 44, (uint32_t)root_len);
    aud_put64(h + 48, nsel ? segs[first].segno : 0);
    if ((rc = out_write(&o, h, sizeof h)) != 0 || (rc = out_write(&o, cert, cert_len)) != 0 ||
        (rc = out_write(&o, root_pem, root_len)) != 0)
        goto out;
    for (size_t i = first; i < first + nsel; i++) {
        if ((rc = copy_segment(&o, dir, &segs[i], buf)) != 0)
            goto out;
        info->segments++;
        info->records += segs[i].records;
        if (!info->first_seq)
            info->first_seq = segs[i].first_seq;
        info->last_seq = segs[i].last_seq;
    }
    uint8_t t[EXP_TRAILER + AUD_SIG_MAX] = {0};
    unsigned int hl = 0;
    memcpy(t, EXP_END, 8);
    if (EVP_DigestFinal_ex(o.md, t + 8, &hl) != 1 || hl != AUD_HASH) {
        rc = am_err_set(AM_ECRYPTO, "audit: export: SHA-256 failed");
        goto out;
    }
    uint32_t sl = 0;
    if ((rc = aud_audit_sign(a, t, 8 + AUD_HASH, t + EXP_TRAILER, &sl, NULL)) != 0)
        goto out;
    aud_put32(t + 40, sl);
    int wfd = o.fd;
    for (size_t left = EXP_TRAILER + sl, done = 0; left;) {
        ssize_t w = write(wfd, t + done, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = am_err_set(AM_EIO, "audit: export: write: %s", strerror(errno));
            goto out;
        }
        done += (size_t)w;
        left -= (size_t)w;
    }
    info->bytes = o.off + EXP_TRAILER + sl;
out:
    EVP_MD_CTX_free(o.md);
    free(buf);
    free(segs);
    free(nums);
    free(cert);
    return rc;
}

/* ---------------------------------------------------------------- verifying (auditor side) */

/* Bounded copy that always terminates (cuts long text). */
static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

typedef struct {
    int fd;
    uint64_t size;
    am_audit_export_report *rep;
} exp_file;

static int exp_read(exp_file *f, void *buf, size_t n, uint64_t off) {
    uint8_t *p = buf;
    while (n) {
        ssize_t r = pread(f->fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return am_err_set(AM_EIO, "audit: read export at offset %llu: %s",
                              (unsigned long long)off, r < 0 ? strerror(errno) : "short read");
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

__attribute__((format(printf, 4, 5))) static int exp_fail(exp_file *f, uint64_t segno,
                                                          const char *where, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    f->rep->r.bad_segment = segno;
    copy_str(f->rep->r.where, sizeof f->rep->r.where, where);
    int rc = am_err_set(AM_ECORRUPT, "audit export: %s: %s", where, msg);
    copy_str(f->rep->r.first_error, sizeof f->rep->r.first_error, am_err_last());
    return rc;
}

static void hex16(const uint8_t *id, char out[17]) {
    char full[2 * AUD_HASH + 1];
    am_hex(id, AUD_HASH, full);
    memcpy(out, full, 16);
    out[16] = '\0';
}

/* One blob: frames, seal, signature, continuity. */
static int walk_blob(exp_file *f, const aud_pub *pub, uint32_t i, uint64_t base, uint64_t len,
                     aud_rec_fn fn, void *ud, uint8_t prev_hash[AUD_HASH], uint64_t *prev_next,
                     uint64_t *prev_segno) {
    am_audit_report *r = &f->rep->r;
    aud_scan s;
    aud_scan_init(&s, 0, 1, fn, ud);
    snprintf(s.name, sizeof s.name, "segment blob %u", i + 1);
    char where[512];
    int rc = aud_scan_open_range(&s, f->fd, base, len);
    while (!rc) {
        int x = aud_scan_next(&s);
        if (x == 1) {
            if (!s.sealed)
                r->blocks++;
            continue;
        }
        if (x == 0)
            break;
        if (x == AUD_TORN)
            rc = am_err_set(AM_ECORRUPT, "audit: %s: truncated frame", s.where);
        else if (x == AUD_STOPPED)
            rc = s.fn_rc;
        else
            rc = x;
    }
    snprintf(where, sizeof where, "%s (segment starts at export offset %llu)", s.where,
             (unsigned long long)base);
    if (rc < 0) {
        r->bad_segment = s.segno;
        r->bad_block = s.bad_block;
        r->bad_offset = s.bad_offset;
        copy_str(r->where, sizeof r->where, where);
        copy_str(r->first_error, sizeof r->first_error, am_err_last());
        goto out;
    }
    if (rc) /* a callback stopped the read */
        goto out;
    r->bad_block = (int64_t)s.block;
    r->bad_offset = s.offset;
    snprintf(where, sizeof where,
             "%s block %llu (offset %llu; segment starts at export offset %llu)", s.name,
             (unsigned long long)s.block, (unsigned long long)s.offset, (unsigned long long)base);
    if (!s.sealed) {
        rc = exp_fail(f, s.segno, where,
                      "no seal frame at the end of the segment (blocks or the seal were removed, "
                      "or the segment was cut short)");
        goto out;
    }
    r->bad_block = (int64_t)s.blocks;
    snprintf(where, sizeof where, "%s seal (block %llu; segment starts at export offset %llu)",
             s.name, (unsigned long long)s.blocks, (unsigned long long)base);
    if (memcmp(s.seal + 112, aud_pub_key_id(pub), AUD_HASH) != 0) {
        char got[17], want[17];
        hex16(s.seal + 112, got);
        hex16(aud_pub_key_id(pub), want);
        rc = exp_fail(f, s.segno, where,
                      "sealed by another audit key (key id %s..., this export's audit "
                      "certificate has %s...): segment from another appliance or re-keyed",
                      got, want);
        goto out;
    }
    if (aud_pub_verify(pub, s.seal, AUD_SEAL_SIGNED, s.seal + AUD_SEAL_FIXED,
                       aud_get32(s.seal + 152)) != 0) {
        rc = exp_fail(f, s.segno, where,
                      "seal signature does not verify with the audit certificate (seal forged "
                      "or altered)");
        goto out;
    }
    snprintf(where, sizeof where, "%s header (segment starts at export offset %llu)", s.name,
             (unsigned long long)base);
    r->bad_block = -1;
    r->bad_offset = 0;
    static const uint8_t zero[AUD_HASH];
    if (i == 0) {
        if (s.segno != f->rep->first_segment)
            rc = exp_fail(f, s.segno, where, "export header says the first segment is %llu",
                          (unsigned long long)f->rep->first_segment);
        else if (s.segno == 1 && (memcmp(s.start_hash, zero, AUD_HASH) != 0 || s.first_seq != 1))
            rc = exp_fail(f, s.segno, where, "segment 1 must start from the zero hash and seq 1");
    } else if (s.segno != *prev_segno + 1) {
        rc = exp_fail(f, s.segno, where,
                      "follows segment %llu: a segment is missing or out of order",
                      (unsigned long long)*prev_segno);
    } else if (memcmp(s.start_hash, prev_hash, AUD_HASH) != 0) {
        rc = exp_fail(f, s.segno, where,
                      "start hash does not continue the previous segment's chain (spliced in "
                      "from another log)");
    } else if (s.first_seq != *prev_next) {
        rc = exp_fail(f, s.segno, where, "starts at seq %llu, expected %llu",
                      (unsigned long long)s.first_seq, (unsigned long long)*prev_next);
    }
    if (rc)
        goto out;
    memcpy(prev_hash, s.hash, AUD_HASH);
    *prev_next = s.next_seq;
    *prev_segno = s.segno;
    r->segments++;
    r->records += s.records;
    if (s.records) {
        if (!f->rep->first_seq)
            f->rep->first_seq = s.first_seq;
        r->last_seq = s.next_seq - 1;
    }
out:
    aud_scan_close(&s);
    return rc;
}

static int walk_export(const char *path, am_audit_export_report *rep, aud_rec_fn fn, void *ud) {
    memset(rep, 0, sizeof *rep);
    rep->r.bad_block = -1;
    exp_file f = {-1, 0, rep};
    char *cert = NULL, *root = NULL;
    aud_pub *pub = NULL;
    uint8_t *buf = NULL;
    EVP_MD_CTX *md = NULL;
    int rc = 0;
    f.fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (f.fd < 0 || fstat(f.fd, &st) != 0) {
        rc = am_err_set(errno == ENOENT ? AM_ENOTFOUND : AM_EIO, "audit export: %s: %s", path,
                        strerror(errno));
        copy_str(rep->r.first_error, sizeof rep->r.first_error, am_err_last());
        goto out;
    }
    f.size = (uint64_t)st.st_size;
    uint8_t h[EXP_HDR];
    if (!S_ISREG(st.st_mode) || f.size < EXP_HDR + EXP_TRAILER) {
        rc = exp_fail(&f, 0, "export header (offset 0)", "not an export file (%llu bytes)",
                      (unsigned long long)f.size);
        goto out;
    }
    if ((rc = exp_read(&f, h, sizeof h, 0)) != 0)
        goto out;
    uint32_t nseg = aud_get32(h + 12), cert_len = aud_get32(h + 40), root_len = aud_get32(h + 44);
    if (memcmp(h, EXP_MAGIC, 8) != 0 || aud_get32(h + 8) != 1) {
        rc = exp_fail(&f, 0, "export header (offset 0)",
                      "bad magic or version (not an airmesh audit export v1)");
        goto out;
    }
    rep->created_ms = aud_get64(h + 16);
    rep->since_ms = aud_get64(h + 24);
    rep->until_ms = aud_get64(h + 32);
    rep->first_segment = aud_get64(h + 48);
    if (nseg > EXP_MAX_SEGS || cert_len == 0 || cert_len > EXP_PEM_MAX || root_len == 0 ||
        root_len > EXP_PEM_MAX || (uint64_t)EXP_HDR + cert_len + root_len + EXP_TRAILER > f.size ||
        aud_get64(h + 56) != 0) {
        rc = exp_fail(&f, 0, "export header (offset 0)",
                      "impossible lengths (%u segments, certificate %u bytes, root %u bytes, "
                      "file %llu bytes)",
                      nseg, cert_len, root_len, (unsigned long long)f.size);
        goto out;
    }
    if (!(cert = malloc(cert_len + 1)) || !(root = malloc(root_len + 1))) {
        rc = am_err_set(AM_ENOMEM, "audit export: out of memory");
        goto out;
    }
    if ((rc = exp_read(&f, cert, cert_len, EXP_HDR)) != 0 ||
        (rc = exp_read(&f, root, root_len, EXP_HDR + cert_len)) != 0)
        goto out;
    cert[cert_len] = root[root_len] = '\0';
    if ((rc = aud_pub_from_chain(cert, cert_len, root, root_len, &pub, rep->root_fp, rep->subject,
                                 sizeof rep->subject)) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", am_err_last());
        rc = exp_fail(&f, 0, "export header certificates (offset 64)", "%s", msg);
        goto out;
    }
    uint64_t off = (uint64_t)EXP_HDR + cert_len + root_len;
    uint8_t prev[AUD_HASH] = {0};
    uint64_t prev_next = 0, prev_segno = 0;
    for (uint32_t i = 0; i < nseg; i++) {
        char where[128];
        snprintf(where, sizeof where, "segment blob %u of %u (export offset %llu)", i + 1, nseg,
                 (unsigned long long)off);
        if (f.size - off < 8 + EXP_TRAILER) {
            rc = exp_fail(&f, 0, where, "missing: the file ends early (truncated)");
            goto out;
        }
        uint8_t lb[8];
        if ((rc = exp_read(&f, lb, 8, off)) != 0)
            goto out;
        uint64_t len = aud_get64(lb);
        if (len < AUD_SEG_HDR || len > f.size - off - 8 - EXP_TRAILER) {
            rc = exp_fail(&f, 0, where,
                          "length %llu does not fit in the file (truncated or altered)",
                          (unsigned long long)len);
            goto out;
        }
        if ((rc = walk_blob(&f, pub, i, off + 8, len, fn, ud, prev, &prev_next, &prev_segno)))
            goto out;
        off += 8 + len;
    }
    rep->last_segment = prev_segno;
    /* Trailer: SHA-256 of everything before it, signed by the audit key. */
    char where[128];
    snprintf(where, sizeof where, "export trailer (offset %llu)", (unsigned long long)off);
    uint64_t rem = f.size - off;
    uint8_t t[EXP_TRAILER + AUD_SIG_MAX];
    if (rem < EXP_TRAILER || rem > EXP_TRAILER + AUD_SIG_MAX) {
        rc = exp_fail(&f, 0, where, "%llu bytes where the trailer should be (%s)",
                      (unsigned long long)rem, rem < EXP_TRAILER ? "truncated" : "extra data");
        goto out;
    }
    if ((rc = exp_read(&f, t, (size_t)rem, off)) != 0)
        goto out;
    uint32_t sl = aud_get32(t + 40);
    if (memcmp(t, EXP_END, 8) != 0 || aud_get32(t + 44) != 0 || sl < AUD_SIG_MIN ||
        EXP_TRAILER + sl != rem) {
        rc = exp_fail(&f, 0, where, "bad trailer (truncated, or data added or removed)");
        goto out;
    }
    uint8_t hash[AUD_HASH];
    unsigned int hl = 0;
    if (!(md = EVP_MD_CTX_new()) || !(buf = malloc(CHUNK)) ||
        EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = am_err_set(AM_ENOMEM, "audit export: out of memory");
        goto out;
    }
    for (uint64_t p = 0; p < off;) {
        size_t n = off - p < CHUNK ? (size_t)(off - p) : CHUNK;
        if ((rc = exp_read(&f, buf, n, p)) != 0)
            goto out;
        EVP_DigestUpdate(md, buf, n);
        p += n;
    }
    if (EVP_DigestFinal_ex(md, hash, &hl) != 1 || memcmp(hash, t + 8, AUD_HASH) != 0) {
        rc = exp_fail(&f, 0, where,
                      "file hash mismatch: the header, the certificates or the segment list "
                      "were altered");
        goto out;
    }
    if (aud_pub_verify(pub, t, 8 + AUD_HASH, t + EXP_TRAILER, sl) != 0) {
        rc = exp_fail(&f, 0, where, "trailer signature does not verify with the audit certificate");
        goto out;
    }
    rep->r.bad_block = -1;
    rep->r.where[0] = '\0';
out:
    if (rc < 0 && !rep->r.first_error[0])
        copy_str(rep->r.first_error, sizeof rep->r.first_error, am_err_last());
    if (f.fd >= 0)
        close(f.fd);
    EVP_MD_CTX_free(md);
    free(buf);
    free(cert);
    free(root);
    aud_pub_free(pub);
    return rc;
}

int am_audit_export_verify(const char *path, am_audit_export_report *rep) {
    am_audit_export_report local;
    return walk_export(path, rep ? rep : &local, NULL, NULL);
}

typedef struct {
    uint64_t since, until;
    am_audit_record_fn fn;
    void *ud;
} exp_read_ctx;

static int exp_filter(void *ud, const Airmesh__V1__AuditRecord *r) {
    exp_read_ctx *c = ud;
    if (r->time_ms < c->since || (c->until && r->time_ms >= c->until))
        return 0;
    return c->fn(c->ud, r);
}

int am_audit_export_read(const char *path, int all, am_audit_record_fn fn, void *ud,
                         am_audit_export_report *rep) {
    if (!fn)
        return am_err_set(AM_EINVAL, "audit export: read: no callback");
    am_audit_export_report local;
    rep = rep ? rep : &local;
    /* Verify everything first, so no record of a tampered file is ever delivered. */
    int rc = walk_export(path, rep, NULL, NULL);
    if (rc)
        return rc;
    exp_read_ctx c = {all ? 0 : rep->since_ms, all ? 0 : rep->until_ms, fn, ud};
    am_audit_export_report again;
    return walk_export(path, &again, exp_filter, &c);
}
