/*
 * appliance/audit/scan.c — the one place that parses audit files (format in audit.h).
 *
 * The scanner walks one segment file frame by frame with pread: it checks the segment header,
 * then for every frame the magic, the header check, the type and the lengths (all bounded BEFORE
 * anything is allocated: a length must be <= 64 MiB and fit in the file), recomputes the chained
 * SHA-256, checks the seq continues, and optionally decompresses and decodes the records
 * (checking each record's seq). It never trusts a length it has not checked, never allocates more
 * than the file holds, and reports every problem with the segment, block index and offset.
 * Whether a torn tail is acceptable is the caller's decision (only at the end of the last
 * segment); the scanner only tells a torn tail (a prefix of a valid frame) apart from damage.
 *
 * Seal frames (type 2) are checked against what was scanned before them (segment, start, block
 * and record counts, last seq and hash) and kept in the aud_scan; their signature is for the
 * caller to check (verify.c knows no key, export.c checks it against the export's certificate).
 *
 * Ownership: an aud_scan owns its fd (not in range mode, where the caller keeps it) and buffers
 * until aud_scan_close. Threads: an aud_scan is used by one thread; the functions keep no global
 * state, so any number may run in parallel.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "appliance/audit/internal.h"
#include "common/err.h"

int aud_sha256(uint8_t out[AUD_HASH], const void *p1, size_t n1, const void *p2, size_t n2,
               const void *p3, size_t n3) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int outlen = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             (!p1 || EVP_DigestUpdate(md, p1, n1) == 1) &&
             (!p2 || EVP_DigestUpdate(md, p2, n2) == 1) &&
             (!p3 || EVP_DigestUpdate(md, p3, n3) == 1) &&
             EVP_DigestFinal_ex(md, out, &outlen) == 1 && outlen == AUD_HASH;
    EVP_MD_CTX_free(md);
    return ok ? 0 : am_err_set(AM_ECRYPTO, "audit: SHA-256 failed");
}

int aud_frame_hdr_encode(const aud_frame_hdr *h, uint8_t *out) {
    uint8_t check[AUD_HASH];
    memcpy(out, AUD_FRAME_MAGIC, 4);
    out[4] = h->type;
    out[5] = out[6] = out[7] = 0;
    aud_put32(out + 8, h->comp_len);
    aud_put32(out + 12, h->raw_len);
    aud_put32(out + 16, h->count);
    aud_put64(out + 20, h->first_seq);
    int rc = aud_sha256(check, out, 28, NULL, 0, NULL, 0);
    if (rc)
        return rc;
    memcpy(out + 28, check, 4);
    return 0;
}

void aud_seg_hdr_encode(uint64_t segno, uint64_t first_seq, const uint8_t start_hash[AUD_HASH],
                        uint8_t *out) {
    memcpy(out, AUD_SEG_MAGIC, 8);
    aud_put64(out + 8, segno);
    aud_put64(out + 16, first_seq);
    memcpy(out + 24, start_hash, AUD_HASH);
}

void aud_seg_name(uint64_t segno, char *buf) {
    snprintf(buf, AUD_NAME_MAX, "seg-%06llu.aml", (unsigned long long)segno);
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

int aud_list_segments(const char *dir, uint64_t **nums, size_t *n) {
    *nums = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return am_err_set(errno == ENOENT ? AM_ENOTFOUND : AM_EIO, "audit: open directory %s: %s",
                          dir, strerror(errno));
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        size_t l = strlen(nm);
        if (l < 9 || strncmp(nm, "seg-", 4) != 0 || strcmp(nm + l - 4, ".aml") != 0)
            continue;
        /* seg-<digits>.aml, canonical (what aud_seg_name writes): anything else is refused, so a
         * renamed segment cannot silently drop out of the chain. */
        uint64_t num = 0;
        size_t digits = l - 8;
        int ok = digits >= 1 && digits <= 19;
        for (size_t i = 0; ok && i < digits; i++) {
            char c = nm[4 + i];
            ok = c >= '0' && c <= '9';
            num = num * 10 + (uint64_t)(c - '0');
        }
        char canon[AUD_NAME_MAX];
        aud_seg_name(num, canon);
        if (!ok || num == 0 || strcmp(canon, nm) != 0) {
            rc = am_err_set(AM_ECORRUPT, "audit: %s/%s: not a valid segment file name", dir, nm);
            goto out;
        }
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                rc = am_err_set(AM_ENOMEM, "audit: list %s: out of memory", dir);
                goto out;
            }
            v = nv;
            cap = nc;
        }
        v[len++] = num;
    }
    if (len)
        qsort(v, len, sizeof *v, cmp_u64);
    *nums = v;
    *n = len;
    v = NULL;
out:
    free(v);
    closedir(d);
    return rc;
}

/* Read exactly n bytes at off; -AM_EIO on error or a short read (the size was checked first). */
static int pread_full(aud_scan *s, void *buf, size_t n, uint64_t off) {
    uint8_t *p = buf;
    while (n) {
        ssize_t r = pread(s->fd, p, n, (off_t)(s->base + off));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return am_err_set(AM_EIO, "audit: read %s at offset %llu: %s", s->name,
                              (unsigned long long)off, r < 0 ? strerror(errno) : "short read");
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int grow(uint8_t **buf, size_t *cap, size_t need) {
    if (*cap >= need)
        return 0;
    uint8_t *nb = realloc(*buf, need);
    if (!nb)
        return am_err_set(AM_ENOMEM, "audit: out of memory (%zu bytes)", need);
    *buf = nb;
    *cap = need;
    return 0;
}

#define CORRUPT(s, ...) corrupt_at(s, __VA_ARGS__)

__attribute__((format(printf, 2, 3))) static int corrupt_at(aud_scan *s, const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return am_err_set(AM_ECORRUPT, "audit: %s: %s", s->where, msg);
}

static void set_where_block(aud_scan *s) {
    s->bad_block = (int64_t)s->block;
    s->bad_offset = s->offset;
    snprintf(s->where, sizeof s->where, "%s block %llu (offset %llu)", s->name,
             (unsigned long long)s->block, (unsigned long long)s->offset);
}

void aud_scan_init(aud_scan *s, uint64_t segno, int decode, aud_rec_fn fn, void *ud) {
    memset(s, 0, sizeof *s);
    s->fd = -1;
    aud_seg_name(segno, s->name);
    s->decode = decode;
    s->fn = fn;
    s->ud = ud;
    s->bad_block = -1;
}

/* Check the segment header at offset 0 (s->fd and s->file_size are set). */
static int read_seg_header(aud_scan *s) {
    if (s->file_size < AUD_SEG_HDR)
        return CORRUPT(s, "file too short for a segment header (%llu bytes)",
                       (unsigned long long)s->file_size);
    uint8_t h[AUD_SEG_HDR];
    int rc = pread_full(s, h, sizeof h, 0);
    if (rc)
        return rc;
    if (memcmp(h, AUD_SEG_MAGIC, 8) != 0)
        return CORRUPT(s, "bad segment magic (not an airmesh audit segment)");
    s->segno = aud_get64(h + 8);
    s->first_seq = aud_get64(h + 16);
    memcpy(s->start_hash, h + 24, AUD_HASH);
    if (s->first_seq == 0)
        return CORRUPT(s, "segment first_seq is 0");
    memcpy(s->hash, s->start_hash, AUD_HASH);
    s->next_seq = s->first_seq;
    s->offset = AUD_SEG_HDR;
    s->block = 0;
    return 0;
}

int aud_scan_open(aud_scan *s, const char *path, int rw) {
    s->fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    s->bad_block = -1;
    s->bad_offset = 0;
    snprintf(s->where, sizeof s->where, "%s header (offset 0)", s->name);
    if (s->fd < 0)
        return am_err_set(AM_EIO, "audit: open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return am_err_set(AM_EIO, "audit: stat %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return CORRUPT(s, "not a regular file");
    s->file_size = (uint64_t)st.st_size;
    return read_seg_header(s);
}

int aud_scan_open_range(aud_scan *s, int fd, uint64_t base, uint64_t len) {
    s->fd = fd;
    s->borrowed_fd = 1;
    s->base = base;
    s->file_size = len;
    s->bad_block = -1;
    s->bad_offset = 0;
    snprintf(s->where, sizeof s->where, "%s header (offset 0)", s->name);
    int rc = read_seg_header(s);
    if (!rc)
        aud_seg_name(s->segno, s->name);
    return rc;
}

/* Decompress the verified payload and decode its records into s->fn. */
static int decode_block(aud_scan *s, const aud_frame_hdr *h) {
    int rc = grow(&s->rbuf, &s->rcap, h->raw_len);
    if (rc)
        return rc;
    if (!s->dctx && !(s->dctx = ZSTD_createDCtx()))
        return am_err_set(AM_ENOMEM, "audit: ZSTD_createDCtx failed");
    size_t got =
        ZSTD_decompressDCtx(s->dctx, s->rbuf, h->raw_len, s->cbuf + AUD_FRAME_HDR, h->comp_len);
    if (ZSTD_isError(got))
        return CORRUPT(s, "zstd payload does not decompress: %s", ZSTD_getErrorName(got));
    if (got != h->raw_len)
        return CORRUPT(s, "payload decompresses to %zu bytes, header says %u", got, h->raw_len);
    const uint8_t *p = s->rbuf, *end = s->rbuf + h->raw_len;
    for (uint32_t i = 0; i < h->count; i++) {
        uint64_t len = 0;
        int shift = 0;
        for (;;) {
            if (p >= end || shift > 28)
                return CORRUPT(s, "record %u: bad length prefix", i);
            uint8_t b = *p++;
            len |= (uint64_t)(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80))
                break;
        }
        if (len > (uint64_t)(end - p))
            return CORRUPT(s, "record %u: length %llu runs past the block", i,
                           (unsigned long long)len);
        Airmesh__V1__AuditRecord *r = airmesh__v1__audit_record__unpack(NULL, (size_t)len, p);
        if (!r)
            return CORRUPT(s, "record %u: not a valid AuditRecord", i);
        uint64_t want = h->first_seq + i;
        if (r->seq != want) {
            unsigned long long got_seq = (unsigned long long)r->seq;
            airmesh__v1__audit_record__free_unpacked(r, NULL);
            return CORRUPT(s, "record %u has seq %llu, expected %llu", i, got_seq,
                           (unsigned long long)want);
        }
        int frc = s->fn ? s->fn(s->ud, r) : 0;
        airmesh__v1__audit_record__free_unpacked(r, NULL);
        if (frc) {
            s->fn_rc = frc;
            return AUD_STOPPED;
        }
        p += len;
    }
    if (p != end)
        return CORRUPT(s, "%zu trailing bytes after %u records", (size_t)(end - p), h->count);
    return 0;
}

/* A seal frame (header already read and checked): its payload must describe exactly the chain
 * scanned so far. The signature is checked by the caller, who knows which key to trust. */
static int next_seal(aud_scan *s, const aud_frame_hdr *h, const uint8_t *hb, uint64_t rem) {
    if (h->comp_len != h->raw_len || h->comp_len < AUD_SEAL_FIXED + AUD_SIG_MIN ||
        h->comp_len > AUD_SEAL_MAX || h->count != 0)
        return CORRUPT(s, "seal frame with impossible lengths (%u/%u, count %u)", h->comp_len,
                       h->raw_len, h->count);
    uint64_t total = (uint64_t)AUD_FRAME_HDR + h->comp_len + AUD_HASH;
    if (rem < total)
        return AUD_TORN;
    uint8_t f[AUD_FRAME_HDR + AUD_SEAL_MAX + AUD_HASH];
    memcpy(f, hb, AUD_FRAME_HDR);
    int rc = pread_full(s, f + AUD_FRAME_HDR, h->comp_len + AUD_HASH, s->offset + AUD_FRAME_HDR);
    if (rc)
        return rc;
    uint8_t hash[AUD_HASH];
    if ((rc = aud_sha256(hash, s->hash, AUD_HASH, f, AUD_FRAME_HDR + h->comp_len, NULL, 0)))
        return rc;
    if (memcmp(hash, f + AUD_FRAME_HDR + h->comp_len, AUD_HASH) != 0)
        return CORRUPT(s, "seal hash mismatch: seal altered, or a block before it is missing "
                          "or altered");
    if (h->first_seq != s->next_seq)
        return CORRUPT(s, "seal says next seq %llu, the blocks end before %llu",
                       (unsigned long long)h->first_seq, (unsigned long long)s->next_seq);
    const uint8_t *p = f + AUD_FRAME_HDR;
    uint32_t sig_len = aud_get32(p + 152);
    if (memcmp(p, AUD_SEAL_MAGIC, 8) != 0 || aud_get32(p + 156) != 0)
        return CORRUPT(s, "seal payload: bad magic or reserved bytes");
    if (sig_len < AUD_SIG_MIN || sig_len > AUD_SIG_MAX || AUD_SEAL_FIXED + sig_len != h->comp_len)
        return CORRUPT(s, "seal payload: signature length %u does not fit", sig_len);
    if (aud_get64(p + 8) != s->segno || aud_get64(p + 16) != s->first_seq ||
        memcmp(p + 24, s->start_hash, AUD_HASH) != 0)
        return CORRUPT(s, "seal names another segment start (segment %llu, first seq %llu)",
                       (unsigned long long)aud_get64(p + 8), (unsigned long long)aud_get64(p + 16));
    if (aud_get64(p + 56) != s->block || aud_get64(p + 64) != s->records ||
        aud_get64(p + 72) != s->next_seq - 1 || memcmp(p + 80, s->hash, AUD_HASH) != 0)
        return CORRUPT(s,
                       "seal covers %llu blocks / %llu records up to seq %llu, the segment has "
                       "%llu / %llu up to %llu (blocks missing or added)",
                       (unsigned long long)aud_get64(p + 56), (unsigned long long)aud_get64(p + 64),
                       (unsigned long long)aud_get64(p + 72), (unsigned long long)s->block,
                       (unsigned long long)s->records, (unsigned long long)(s->next_seq - 1));
    memcpy(s->seal, p, h->comp_len);
    s->seal_len = h->comp_len;
    s->sealed = 1;
    s->blocks = s->block;
    memcpy(s->pre_seal_hash, s->hash, AUD_HASH);
    memcpy(s->hash, hash, AUD_HASH);
    s->offset += total;
    s->block++;
    return 1;
}

int aud_scan_next(aud_scan *s) {
    if (s->offset >= s->file_size)
        return 0;
    set_where_block(s);
    if (s->sealed)
        return CORRUPT(s, "data after the seal frame (a seal must end its segment)");
    uint64_t rem = s->file_size - s->offset;
    uint8_t hb[AUD_FRAME_HDR];
    if (rem < AUD_FRAME_HDR) {
        int rc = pread_full(s, hb, (size_t)rem, s->offset);
        if (rc)
            return rc;
        if (memcmp(hb, AUD_FRAME_MAGIC, rem < 4 ? (size_t)rem : 4) != 0)
            return CORRUPT(s, "bad frame magic");
        return AUD_TORN;
    }
    int rc = pread_full(s, hb, sizeof hb, s->offset);
    if (rc)
        return rc;
    if (memcmp(hb, AUD_FRAME_MAGIC, 4) != 0)
        return CORRUPT(s, "bad frame magic");
    uint8_t check[AUD_HASH];
    if ((rc = aud_sha256(check, hb, 28, NULL, 0, NULL, 0)) != 0)
        return rc;
    if (memcmp(check, hb + 28, 4) != 0)
        return CORRUPT(s, "frame header check mismatch (damaged frame header)");
    aud_frame_hdr h = {.type = hb[4],
                       .comp_len = aud_get32(hb + 8),
                       .raw_len = aud_get32(hb + 12),
                       .count = aud_get32(hb + 16),
                       .first_seq = aud_get64(hb + 20)};
    if (h.type != AUD_TYPE_BLOCK && h.type != AUD_TYPE_SEAL)
        return CORRUPT(s, "unknown frame type %u", h.type);
    if (hb[5] | hb[6] | hb[7])
        return CORRUPT(s, "reserved frame header bytes are not zero");
    if (h.type == AUD_TYPE_SEAL)
        return next_seal(s, &h, hb, rem);
    if (h.comp_len == 0 || h.comp_len > AUD_MAX_LEN || h.raw_len == 0 || h.raw_len > AUD_MAX_LEN)
        return CORRUPT(s, "absurd frame lengths (compressed %u, raw %u; limit %u)", h.comp_len,
                       h.raw_len, AUD_MAX_LEN);
    if (h.count == 0 || h.count > h.raw_len)
        return CORRUPT(s, "absurd record count %u for %u raw bytes", h.count, h.raw_len);
    uint64_t total = (uint64_t)AUD_FRAME_HDR + h.comp_len + AUD_HASH;
    if (rem < total)
        return AUD_TORN;
    /* Bounded by the checks above and by the file size. */
    if ((rc = grow(&s->cbuf, &s->ccap, (size_t)total)) != 0)
        return rc;
    memcpy(s->cbuf, hb, AUD_FRAME_HDR);
    if ((rc = pread_full(s, s->cbuf + AUD_FRAME_HDR, h.comp_len + AUD_HASH,
                         s->offset + AUD_FRAME_HDR)) != 0)
        return rc;
    uint8_t hash[AUD_HASH];
    if ((rc = aud_sha256(hash, s->hash, AUD_HASH, s->cbuf, AUD_FRAME_HDR + h.comp_len, NULL, 0)))
        return rc;
    if (memcmp(hash, s->cbuf + AUD_FRAME_HDR + h.comp_len, AUD_HASH) != 0)
        return CORRUPT(s, "hash mismatch: block altered, reordered, or a block before it is "
                          "missing or altered");
    if (h.first_seq != s->next_seq)
        return CORRUPT(s, "block starts at seq %llu, expected %llu",
                       (unsigned long long)h.first_seq, (unsigned long long)s->next_seq);
    if (s->decode && h.first_seq + h.count > s->skip_before_seq && (rc = decode_block(s, &h)) != 0)
        return rc;
    memcpy(s->hash, hash, AUD_HASH);
    s->offset += total;
    s->block++;
    s->next_seq += h.count;
    s->records += h.count;
    return 1;
}

void aud_scan_close(aud_scan *s) {
    if (s->fd >= 0 && !s->borrowed_fd)
        close(s->fd);
    s->fd = -1;
    free(s->cbuf);
    free(s->rbuf);
    s->cbuf = s->rbuf = NULL;
    s->ccap = s->rcap = 0;
    ZSTD_freeDCtx(s->dctx);
    s->dctx = NULL;
}
