/*
 * appliance/audit/writer.c — opening/recovering an audit directory and the group-commit writer.
 *
 * Open is one linear sequence: create DIR (0700) → take flock(DIR/LOCK) → delete stale *.tmp →
 * list segments (must be 1..n) → either create seg-000001 or re-verify the last segment from its
 * header to its end (hashes, headers, seq) to recover the chain value and the next seq; a torn
 * final frame (crash mid-write) is truncated away with a warning, any other damage refuses the
 * open → start the writer thread.
 *
 * Group commit: appenders pack their record (varint length ‖ protobuf, seq assigned under the
 * lock, so queue order = seq order) into one queue buffer and return. The writer thread waits for
 * the first record, then up to flush_ms for more (cut short by a full block, a flush request or
 * close), swaps the whole queue out, cuts it into blocks (<= max_block_records, <= 4 MiB raw),
 * compresses each with one reused ZSTD_CCtx (level 3), chains and writes the frames, rolls
 * segments at segment_bytes, and fdatasyncs once per batch; then it publishes durable_seq and
 * wakes flushers. A write/fsync failure is sticky: later calls return -AM_EIO with its message.
 *
 * Ownership: am_audit is malloc'd by am_audit_open and freed by am_audit_close. Threads: mu
 * guards the queue, seq counters and error; the segment fd, chain hash, offsets and zstd context
 * belong to the writer thread alone (open/close touch them only while it is not running).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <zstd.h>

#include "appliance/audit/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define QUEUE_MAX_BYTES (32u << 20) /* appenders wait while the writer is this far behind */

struct am_audit {
    char *dir;
    am_audit_opts o;
    int lock_fd;
    pthread_t thr;
    int thr_started;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;    /* writer waits: records queued, flush requested, stop */
    pthread_cond_t durable_cv; /* flushers wait: durable_seq advanced or error */
    pthread_cond_t space_cv;   /* appenders wait: queue drained */
    /* guarded by mu */
    am_audit_publish_fn publish_fn; /* live subscriber (am_audit_set_publish) */
    void *publish_arg;
    uint8_t *q;
    size_t qlen, qcap;
    uint32_t qcount;
    uint64_t next_seq;     /* next seq to hand out */
    uint64_t durable_seq;  /* all seq <= this are fsync'd */
    uint64_t flush_target; /* a flusher waits for this seq */
    int stop;
    int err; /* sticky writer failure (negative AM_E*) */
    char errmsg[512];
    aud_signer *signer; /* NULL until the audit key exists; set once, freed at close */
    uint64_t seal_req;  /* am_audit_seal requests ... */
    uint64_t seal_done; /* ... and how many the writer has served */

    /* writer thread only */
    int fd;
    uint64_t segno, seg_off, seg_blocks;
    uint64_t seg_next_seq; /* seq the next block starts at */
    uint64_t seg_first_seq, seg_records;
    uint8_t seg_start[AUD_HASH];
    int seg_sealed;
    uint8_t hash[AUD_HASH];
    uint8_t *spare;
    size_t spare_cap;
    uint8_t *fbuf;
    size_t fcap;
    ZSTD_CCtx *cctx;
};

static int path_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return am_err_set(AM_EINVAL, "audit: path too long: %s/%s", dir, name);
    return 0;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return am_err_set(AM_EIO, "audit: open directory %s: %s", dir, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : am_err_set(AM_EIO, "audit: fsync %s: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

static int write_full(int fd, const uint8_t *p, size_t n, uint64_t off, const char *what) {
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return am_err_set(AM_EIO, "audit: write %s: %s", what,
                              w < 0 ? strerror(errno) : "wrote nothing");
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Create segment `segno` holding only its header (tmp + fsync + rename + fsync dir, so a segment
 * file never exists with a torn header) and make it the current segment. */
static int create_segment(am_audit *a, uint64_t segno, uint64_t first_seq,
                          const uint8_t start[AUD_HASH]) {
    char name[AUD_NAME_MAX], path[4096], tmp[4096 + 8];
    aud_seg_name(segno, name);
    int rc = path_join(path, sizeof path, a->dir, name);
    if (rc)
        return rc;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct stat st;
    if (stat(path, &st) == 0)
        return am_err_set(AM_EEXISTS, "audit: create %s: already exists", path);
    uint8_t h[AUD_SEG_HDR];
    aud_seg_hdr_encode(segno, first_seq, start, h);
    int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return am_err_set(AM_EIO, "audit: create %s: %s", tmp, strerror(errno));
    rc = write_full(fd, h, sizeof h, 0, tmp);
    if (!rc && fsync(fd) != 0)
        rc = am_err_set(AM_EIO, "audit: fsync %s: %s", tmp, strerror(errno));
    close(fd);
    if (!rc && rename(tmp, path) != 0)
        rc = am_err_set(AM_EIO, "audit: rename %s: %s", tmp, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    if ((rc = fsync_dir(a->dir)) != 0)
        return rc;
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return am_err_set(AM_EIO, "audit: open %s: %s", path, strerror(errno));
    if (a->fd >= 0)
        close(a->fd);
    a->fd = fd;
    a->segno = segno;
    a->seg_off = AUD_SEG_HDR;
    a->seg_blocks = 0;
    a->seg_next_seq = first_seq;
    a->seg_first_seq = first_seq;
    a->seg_records = 0;
    a->seg_sealed = 0;
    memcpy(a->seg_start, start, AUD_HASH);
    memcpy(a->hash, start, AUD_HASH);
    return 0;
}

/* Append the seal frame to the current segment and make it durable (writer thread). */
static int write_seal(am_audit *a, const aud_signer *k) {
    uint8_t f[AUD_FRAME_HDR + AUD_SEAL_MAX + AUD_HASH];
    uint32_t plen = 0;
    int rc = aud_seal_build(k, a->segno, a->seg_first_seq, a->seg_start, a->seg_blocks,
                            a->seg_records, a->hash, f + AUD_FRAME_HDR, &plen);
    if (rc)
        return rc;
    aud_frame_hdr h = {.type = AUD_TYPE_SEAL,
                       .comp_len = plen,
                       .raw_len = plen,
                       .count = 0,
                       .first_seq = a->seg_next_seq};
    if ((rc = aud_frame_hdr_encode(&h, f)) != 0)
        return rc;
    uint8_t *hash = f + AUD_FRAME_HDR + plen;
    if ((rc = aud_sha256(hash, a->hash, AUD_HASH, f, AUD_FRAME_HDR + plen, NULL, 0)) != 0)
        return rc;
    char name[AUD_NAME_MAX];
    aud_seg_name(a->segno, name);
    size_t flen = AUD_FRAME_HDR + plen + AUD_HASH;
    if ((rc = write_full(a->fd, f, flen, a->seg_off, name)) != 0) {
        if (ftruncate(a->fd, (off_t)a->seg_off) != 0) {
            /* the error is already being reported */
        }
        return rc;
    }
    if (fdatasync(a->fd) != 0)
        return am_err_set(AM_EIO, "audit: fsync segment %llu: %s", (unsigned long long)a->segno,
                          strerror(errno));
    memcpy(a->hash, hash, AUD_HASH);
    a->seg_off += flen;
    a->seg_sealed = 1;
    return 0;
}

/* Seal the current segment (if the key exists and it holds blocks) and start the next one. */
static int seal_and_roll(am_audit *a, const aud_signer *k) {
    int rc = 0;
    if (k && a->seg_blocks > 0 && !a->seg_sealed)
        rc = write_seal(a, k);
    else if (fdatasync(a->fd) != 0)
        rc = am_err_set(AM_EIO, "audit: fsync segment %llu: %s", (unsigned long long)a->segno,
                        strerror(errno));
    if (rc)
        return rc;
    uint8_t start[AUD_HASH];
    memcpy(start, a->hash, AUD_HASH);
    return create_segment(a, a->segno + 1, a->seg_next_seq, start);
}

/* Compress, frame, chain and write one block of `count` packed records. */
static int write_block(am_audit *a, const aud_signer *k, const uint8_t *raw, size_t raw_len,
                       uint32_t count) {
    size_t bound = ZSTD_compressBound(raw_len);
    size_t need = AUD_FRAME_HDR + bound + AUD_HASH;
    if (a->fcap < need) {
        uint8_t *nb = realloc(a->fbuf, need);
        if (!nb)
            return am_err_set(AM_ENOMEM, "audit: out of memory (%zu bytes)", need);
        a->fbuf = nb;
        a->fcap = need;
    }
    size_t clen = ZSTD_compress2(a->cctx, a->fbuf + AUD_FRAME_HDR, bound, raw, raw_len);
    if (ZSTD_isError(clen))
        return am_err_set(AM_EIO, "audit: zstd compress: %s", ZSTD_getErrorName(clen));
    aud_frame_hdr h = {.type = AUD_TYPE_BLOCK,
                       .comp_len = (uint32_t)clen,
                       .raw_len = (uint32_t)raw_len,
                       .count = count,
                       .first_seq = a->seg_next_seq};
    int rc = aud_frame_hdr_encode(&h, a->fbuf);
    if (rc)
        return rc;
    size_t flen = AUD_FRAME_HDR + clen + AUD_HASH;
    if (a->seg_sealed || (a->seg_blocks > 0 && a->seg_off + flen > a->o.segment_bytes)) {
        /* Roll: seal the finished segment (when the audit key exists), make it durable, then
         * chain the next one from its last hash (the seal's, when sealed). */
        if ((rc = seal_and_roll(a, k)) != 0)
            return rc;
    }
    uint8_t *hash = a->fbuf + AUD_FRAME_HDR + clen;
    if ((rc = aud_sha256(hash, a->hash, AUD_HASH, a->fbuf, AUD_FRAME_HDR + clen, NULL, 0)) != 0)
        return rc;
    char name[AUD_NAME_MAX];
    aud_seg_name(a->segno, name);
    if ((rc = write_full(a->fd, a->fbuf, flen, a->seg_off, name)) != 0) {
        /* Leave no partial frame behind if we can (open would truncate it anyway). */
        if (ftruncate(a->fd, (off_t)a->seg_off) != 0) {
            /* nothing more to do: the error is already being reported */
        }
        return rc;
    }
    memcpy(a->hash, hash, AUD_HASH);
    a->seg_off += flen;
    a->seg_blocks++;
    a->seg_next_seq += count;
    a->seg_records += count;
    return 0;
}

/* Cut a batch of packed records into blocks, write them, fdatasync once. */
static int write_batch(am_audit *a, const aud_signer *k, const uint8_t *buf, size_t len) {
    size_t pos = 0;
    while (pos < len) {
        size_t start = pos;
        uint32_t count = 0;
        while (pos < len && count < a->o.max_block_records) {
            uint64_t rl = 0;
            size_t p = pos;
            for (int shift = 0;; shift += 7) {
                uint8_t b = buf[p++];
                rl |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80))
                    break;
            }
            size_t next = p + (size_t)rl;
            if (count > 0 && next - start > AUD_BLOCK_RAW_TARGET)
                break;
            pos = next;
            count++;
        }
        int rc = write_block(a, k, buf + start, pos - start, count);
        if (rc)
            return rc;
    }
    if (len && fdatasync(a->fd) != 0)
        return am_err_set(AM_EIO, "audit: fsync segment %llu: %s", (unsigned long long)a->segno,
                          strerror(errno));
    return 0;
}

static void deadline_after_ms(struct timespec *ts, uint32_t ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *writer_main(void *arg) {
    am_audit *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->qcount == 0 && !a->stop && a->seal_req == a->seal_done)
            pthread_cond_wait(&a->work_cv, &a->mu);
        if (a->qcount == 0 && a->stop)
            break;
        /* Group-commit window: give other appenders flush_ms to join this batch. */
        if (a->o.flush_ms > 0 && !a->stop && a->qcount > 0 && a->qcount < a->o.max_block_records &&
            a->flush_target <= a->durable_seq && a->seal_req == a->seal_done) {
            struct timespec dl;
            deadline_after_ms(&dl, a->o.flush_ms);
            while (!a->stop && a->qcount < a->o.max_block_records &&
                   a->flush_target <= a->durable_seq && a->seal_req == a->seal_done) {
                if (pthread_cond_timedwait(&a->work_cv, &a->mu, &dl) == ETIMEDOUT)
                    break;
            }
        }
        /* Take everything queued; appenders continue into the spare buffer. */
        uint8_t *batch = a->q;
        size_t blen = a->qlen, bcap = a->qcap;
        uint64_t last = a->next_seq - 1;
        uint64_t seal = a->seal_req;
        const aud_signer *k = a->signer;
        a->q = a->spare;
        a->qcap = a->spare_cap;
        a->qlen = 0;
        a->qcount = 0;
        pthread_cond_broadcast(&a->space_cv);
        int err = a->err;
        pthread_mutex_unlock(&a->mu);

        int rc = err ? err : write_batch(a, k, batch, blen);
        if (!rc && seal != a->seal_done && a->seg_blocks > 0)
            rc = seal_and_roll(a, k); /* am_audit_seal: everything so far becomes sealed */

        pthread_mutex_lock(&a->mu);
        a->spare = batch;
        a->spare_cap = bcap;
        if (rc && !a->err) {
            a->err = rc;
            snprintf(a->errmsg, sizeof a->errmsg, "%s", am_err_last());
            char q[600];
            am_log_error("audit", "writer failed; audit log is now read-only", "error=%s",
                         am_log_quote(q, sizeof q, a->errmsg));
        }
        if (!rc)
            a->durable_seq = last;
        a->seal_done = seal;
        pthread_cond_broadcast(&a->durable_cv);
        pthread_cond_broadcast(&a->space_cv);
    }
    /* Clean close: seal what this run wrote (the next open starts a new segment). */
    if (!a->err && a->signer && a->seg_blocks > 0 && !a->seg_sealed) {
        int rc = write_seal(a, a->signer);
        if (rc) {
            a->err = rc;
            snprintf(a->errmsg, sizeof a->errmsg, "%s", am_err_last());
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void audit_free(am_audit *a) {
    if (!a)
        return;
    if (a->fd >= 0)
        close(a->fd);
    if (a->lock_fd >= 0)
        close(a->lock_fd); /* releases the flock */
    ZSTD_freeCCtx(a->cctx);
    aud_signer_free(a->signer);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->work_cv);
    pthread_cond_destroy(&a->durable_cv);
    pthread_cond_destroy(&a->space_cv);
    free(a->q);
    free(a->spare);
    free(a->fbuf);
    free(a->dir);
    free(a);
}

static int remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return am_err_set(AM_EIO, "audit: open directory %s: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strncmp(e->d_name, "seg-", 4) == 0 && strcmp(e->d_name + l - 4, ".tmp") == 0) {
            char p[4096];
            if ((rc = path_join(p, sizeof p, dir, e->d_name)) != 0)
                break;
            if (unlink(p) != 0) {
                rc = am_err_set(AM_EIO, "audit: remove %s: %s", p, strerror(errno));
                break;
            }
        }
    }
    closedir(d);
    return rc;
}

/* Verify segment `segno` and put its final chain value / next seq into s (scan left open). */
static int recover_scan(am_audit *a, uint64_t segno, int rw, aud_scan *s, int allow_torn) {
    char path[4096];
    aud_scan_init(s, segno, 0, NULL, NULL);
    int rc = path_join(path, sizeof path, a->dir, s->name);
    if (!rc)
        rc = aud_scan_open(s, path, rw);
    if (!rc && s->segno != segno)
        rc = am_err_set(AM_ECORRUPT, "audit: %s: header says segment %llu", s->where,
                        (unsigned long long)s->segno);
    while (!rc) {
        int r = aud_scan_next(s);
        if (r == 1)
            continue;
        if (r == AUD_TORN && allow_torn) {
            uint64_t torn = s->file_size - s->offset;
            am_log_warn("audit", "truncating torn final frame (crash during write)",
                        "segment=%s offset=%llu bytes=%llu", s->name, (unsigned long long)s->offset,
                        (unsigned long long)torn);
            if (ftruncate(s->fd, (off_t)s->offset) != 0 || fdatasync(s->fd) != 0)
                rc = am_err_set(AM_EIO, "audit: truncate %s: %s", path, strerror(errno));
            s->file_size = s->offset;
            break;
        }
        if (r == AUD_TORN)
            rc = am_err_set(AM_ECORRUPT,
                            "audit: %s: truncated frame in a segment that is not "
                            "the last",
                            s->where);
        else
            rc = r;
        break;
    }
    return rc;
}

static int recover(am_audit *a, uint64_t last) {
    aud_scan s;
    int rc = recover_scan(a, last, 1, &s, 1);
    if (!rc && s.block == 0 && last > 1) {
        /* An empty last segment (crash right after a roll): check it continues the previous. */
        aud_scan p;
        rc = recover_scan(a, last - 1, 0, &p, 0);
        if (!rc && (memcmp(p.hash, s.start_hash, AUD_HASH) != 0 || p.next_seq != s.first_seq))
            rc = am_err_set(AM_ECORRUPT, "audit: %s header (offset 0): does not continue %s",
                            s.name, p.name);
        aud_scan_close(&p);
    }
    if (rc) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", am_err_last());
        rc = am_err_set(-rc, "%s; refusing to open %s (tampered or damaged; run verify)", msg,
                        a->dir);
    } else {
        a->fd = s.fd;
        s.fd = -1;
        a->segno = last;
        a->seg_off = s.offset;
        a->seg_blocks = s.block;
        a->seg_next_seq = s.next_seq;
        a->seg_first_seq = s.first_seq;
        a->seg_records = s.records;
        a->seg_sealed = s.sealed;
        memcpy(a->seg_start, s.start_hash, AUD_HASH);
        memcpy(a->hash, s.hash, AUD_HASH);
    }
    aud_scan_close(&s);
    return rc;
}

int am_audit_open(const char *dir, const am_audit_opts *o, am_audit **out) {
    if (!dir || !*dir || !out)
        return am_err_set(AM_EINVAL, "audit: open: missing directory or out pointer");
    *out = NULL;
    am_audit *a = calloc(1, sizeof *a);
    if (!a)
        return am_err_set(AM_ENOMEM, "audit: open %s: out of memory", dir);
    a->fd = a->lock_fd = -1;
    a->o.flush_ms = o && o->flush_ms ? o->flush_ms : AM_AUDIT_DEFAULT_FLUSH_MS;
    a->o.max_block_records =
        o && o->max_block_records ? o->max_block_records : AM_AUDIT_DEFAULT_BLOCK_RECORDS;
    a->o.segment_bytes = o && o->segment_bytes ? o->segment_bytes : AM_AUDIT_DEFAULT_SEGMENT_BYTES;
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->work_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&a->durable_cv, NULL);
    pthread_cond_init(&a->space_cv, NULL);

    int rc = 0;
    uint64_t *nums = NULL;
    size_t n = 0;
    char lockp[4096];
    if (!(a->dir = strdup(dir))) {
        rc = am_err_set(AM_ENOMEM, "audit: open %s: out of memory", dir);
        goto fail;
    }
    if ((rc = am_mkdir_p(dir, 0700)) != 0)
        goto fail;
    if ((rc = path_join(lockp, sizeof lockp, dir, "LOCK")) != 0)
        goto fail;
    a->lock_fd = open(lockp, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (a->lock_fd < 0) {
        rc = am_err_set(AM_EIO, "audit: open %s: %s", lockp, strerror(errno));
        goto fail;
    }
    if (flock(a->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK
                 ? am_err_set(AM_ESTATE,
                              "audit: open %s: already open (by this or another "
                              "process)",
                              dir)
                 : am_err_set(AM_EIO, "audit: lock %s: %s", lockp, strerror(errno));
        goto fail;
    }
    if ((rc = remove_stale_tmp(dir)) != 0)
        goto fail;
    if ((rc = aud_list_segments(dir, &nums, &n)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (nums[i] != i + 1) {
            char name[AUD_NAME_MAX];
            aud_seg_name(i + 1, name);
            rc = am_err_set(AM_ECORRUPT, "audit: open %s: %s is missing; refusing to open", dir,
                            name);
            goto fail;
        }
    }
    if (n == 0) {
        static const uint8_t zero[AUD_HASH];
        rc = create_segment(a, 1, 1, zero);
    } else {
        rc = recover(a, n);
    }
    if (!rc && a->seg_sealed) {
        /* The last run closed cleanly and sealed its segment: continue in a new one. */
        uint8_t start[AUD_HASH];
        memcpy(start, a->hash, AUD_HASH);
        rc = create_segment(a, a->segno + 1, a->seg_next_seq, start);
    }
    if (!rc)
        rc = aud_signer_load(dir, &a->signer);
    if (rc)
        goto fail;
    a->next_seq = a->seg_next_seq;
    a->durable_seq = a->flush_target = a->next_seq - 1;
    if (!(a->cctx = ZSTD_createCCtx()) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(a->cctx, ZSTD_c_compressionLevel, 3))) {
        rc = am_err_set(AM_ENOMEM, "audit: open %s: cannot create zstd context", dir);
        goto fail;
    }
    if ((errno = pthread_create(&a->thr, NULL, writer_main, a)) != 0) {
        rc = am_err_set(AM_EIO, "audit: open %s: start writer thread: %s", dir, strerror(errno));
        goto fail;
    }
    a->thr_started = 1;
    free(nums);
    *out = a;
    return 0;
fail:
    free(nums);
    audit_free(a);
    return rc;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

int am_audit_append(am_audit *a, const Airmesh__V1__AuditRecord *r, uint64_t *seq_out) {
    if (!a || !r || r->base.descriptor != &airmesh__v1__audit_record__descriptor)
        return am_err_set(AM_EINVAL, "audit: append: not an AuditRecord");
    Airmesh__V1__AuditRecord c = *r; /* shallow copy: we only set seq/time_ms on it */
    if (c.time_ms == 0)
        c.time_ms = am_now_ms();
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    while (a->qlen > QUEUE_MAX_BYTES && !a->err && !a->stop)
        pthread_cond_wait(&a->space_cv, &a->mu);
    if (a->err) {
        rc = am_err_set(AM_EIO, "%s", a->errmsg);
        goto out;
    }
    if (a->stop) {
        rc = am_err_set(AM_ESTATE, "audit: append: log is closing");
        goto out;
    }
    c.seq = a->next_seq;
    size_t sz = airmesh__v1__audit_record__get_packed_size(&c);
    if (sz > AM_AUDIT_MAX_RECORD_BYTES) {
        rc = am_err_set(AM_EINVAL, "audit: append: record is %zu bytes (limit %u)", sz,
                        AM_AUDIT_MAX_RECORD_BYTES);
        goto out;
    }
    size_t need = a->qlen + 10 + sz;
    if (need > a->qcap) {
        size_t nc = a->qcap ? a->qcap : 64 * 1024;
        while (nc < need)
            nc *= 2;
        uint8_t *nq = realloc(a->q, nc);
        if (!nq) {
            rc = am_err_set(AM_ENOMEM, "audit: append: out of memory");
            goto out;
        }
        a->q = nq;
        a->qcap = nc;
    }
    a->qlen += put_varint(a->q + a->qlen, sz);
    a->qlen += airmesh__v1__audit_record__pack(&c, a->q + a->qlen);
    a->next_seq++;
    a->qcount++;
    if (seq_out)
        *seq_out = c.seq;
    if (a->publish_fn)
        a->publish_fn(a->publish_arg, &c);
    if (a->qcount == 1 || a->qcount == a->o.max_block_records)
        pthread_cond_signal(&a->work_cv);
out:
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void am_audit_set_publish(am_audit *a, am_audit_publish_fn fn, void *arg) {
    pthread_mutex_lock(&a->mu);
    a->publish_fn = fn;
    a->publish_arg = arg;
    pthread_mutex_unlock(&a->mu);
}

int am_audit_event(am_audit *a, const char *actor, const char *org, const char *action,
                   const char *target, const char *result, const char *source,
                   const char *details) {
    Airmesh__V1__AuditRecord r = AIRMESH__V1__AUDIT_RECORD__INIT;
    r.actor = (char *)(actor ? actor : "");
    r.org_id = (char *)(org ? org : "");
    r.action = (char *)(action ? action : "");
    r.target = (char *)(target ? target : "");
    r.result = (char *)(result ? result : "");
    r.source = (char *)(source ? source : "");
    r.details = (char *)(details ? details : "");
    return am_audit_append(a, &r, NULL);
}

int am_audit_flush(am_audit *a) {
    if (!a)
        return am_err_set(AM_EINVAL, "audit: flush: no log");
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    uint64_t target = a->next_seq - 1;
    if (target > a->durable_seq && !a->err) {
        if (target > a->flush_target)
            a->flush_target = target;
        pthread_cond_signal(&a->work_cv);
        while (a->durable_seq < target && !a->err)
            pthread_cond_wait(&a->durable_cv, &a->mu);
    }
    if (a->durable_seq < target && a->err)
        rc = am_err_set(AM_EIO, "%s", a->errmsg);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void am_audit_close(am_audit *a) {
    if (!a)
        return;
    if (a->thr_started) {
        pthread_mutex_lock(&a->mu);
        a->stop = 1;
        pthread_cond_broadcast(&a->work_cv);
        pthread_cond_broadcast(&a->space_cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thr, NULL);
    }
    if (a->err) {
        char q[600];
        am_log_error("audit", "closed after a write failure; recent events may be lost",
                     "dir=%s error=%s", a->dir, am_log_quote(q, sizeof q, a->errmsg));
    }
    audit_free(a);
}

int am_audit_seal(am_audit *a) {
    if (!a)
        return am_err_set(AM_EINVAL, "audit: seal: no log");
    pthread_mutex_lock(&a->mu);
    int rc = 0;
    if (!a->signer) {
        rc = am_err_set(AM_ESTATE, "audit: seal %s: there is no audit key yet", a->dir);
    } else if (a->err) {
        rc = am_err_set(AM_EIO, "%s", a->errmsg);
    } else {
        /* Everything appended so far goes into the batch the writer takes with this request. */
        uint64_t want = ++a->seal_req;
        pthread_cond_signal(&a->work_cv);
        while (a->seal_done < want && !a->err)
            pthread_cond_wait(&a->durable_cv, &a->mu);
        if (a->err)
            rc = am_err_set(AM_EIO, "%s", a->errmsg);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

const char *aud_audit_dir(const am_audit *a) {
    return a->dir;
}

const char *am_audit_dir(const am_audit *a) {
    return a->dir;
}

int aud_audit_set_signer(am_audit *a, aud_signer *s) {
    pthread_mutex_lock(&a->mu);
    int taken = a->signer == NULL;
    if (taken)
        a->signer = s;
    pthread_mutex_unlock(&a->mu);
    if (!taken)
        aud_signer_free(s);
    return 0;
}

int aud_audit_has_signer(am_audit *a) {
    pthread_mutex_lock(&a->mu);
    int has = a->signer != NULL;
    pthread_mutex_unlock(&a->mu);
    return has;
}

int aud_audit_sign(am_audit *a, const void *msg, size_t len, uint8_t *sig, uint32_t *sig_len,
                   char **cert_pem) {
    pthread_mutex_lock(&a->mu);
    int rc = 0;
    if (!a->signer)
        rc = am_err_set(AM_ESTATE, "audit: %s: there is no audit key yet", a->dir);
    if (!rc && msg)
        rc = aud_signer_sign(a->signer, msg, len, sig, sig_len);
    if (!rc && cert_pem && !(*cert_pem = strdup(aud_signer_cert_pem(a->signer))))
        rc = am_err_set(AM_ENOMEM, "audit: out of memory");
    pthread_mutex_unlock(&a->mu);
    return rc;
}
