/*
 * appliance/audit/verify.c — offline verification and reading of an audit directory.
 *
 * Both walk the whole chain with the scanner (scan.c): segments must be 1..n and match their
 * names; segment 1 starts from the zero hash and seq 1; every later segment must start from the
 * previous one's final hash and next seq; every frame's hash, header and seq are checked and every
 * record is decoded. Only the end of the last segment may be torn (a crash leftover the writer
 * truncates on its next open); it is reported in tail_bytes_ignored, not as an error. A single
 * segment file may be verified on its own (then its header is the anchor).
 *
 * Ownership: nothing outlives a call. Threads: no shared state; any thread, any number at once.
 * The files are opened read-only and never modified.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "appliance/audit/internal.h"
#include "common/err.h"

typedef struct {
    am_audit_report *rep;
    aud_rec_fn fn;
    void *ud;
} walk_ctx;

static void report_fail(am_audit_report *rep, uint64_t segno, const aud_scan *s) {
    snprintf(rep->first_error, sizeof rep->first_error, "%s", am_err_last());
    rep->bad_segment = segno;
    if (s) {
        rep->bad_block = s->bad_block;
        rep->bad_offset = s->bad_offset;
        snprintf(rep->where, sizeof rep->where, "%s", s->where);
    }
}

/* Scan one segment to its end. anchor_* are the expected start (NULL = trust the header). */
static int walk_segment(walk_ctx *w, const char *path, aud_scan *s, uint64_t expect_segno,
                        const uint8_t *anchor_hash, uint64_t anchor_seq, int is_last) {
    int rc = aud_scan_open(s, path, 0);
    if (!rc && expect_segno && s->segno != expect_segno)
        rc = am_err_set(AM_ECORRUPT, "audit: %s: header says segment %llu", s->where,
                        (unsigned long long)s->segno);
    if (!rc && anchor_hash && memcmp(anchor_hash, s->start_hash, AUD_HASH) != 0)
        rc = am_err_set(AM_ECORRUPT,
                        "audit: %s: start hash does not continue the previous segment's chain",
                        s->where);
    if (!rc && anchor_seq && s->first_seq != anchor_seq)
        rc = am_err_set(AM_ECORRUPT, "audit: %s: starts at seq %llu, expected %llu", s->where,
                        (unsigned long long)s->first_seq, (unsigned long long)anchor_seq);
    while (!rc) {
        int r = aud_scan_next(s);
        if (r == 1) {
            if (!s->sealed)
                w->rep->blocks++; /* the seal frame is not a block */
            continue;
        }
        if (r == 0)
            break;
        if (r == AUD_TORN && is_last) {
            w->rep->tail_bytes_ignored = s->file_size - s->offset;
            break;
        }
        if (r == AUD_TORN)
            rc = am_err_set(AM_ECORRUPT,
                            "audit: %s: truncated frame in a segment that is not "
                            "the last",
                            s->where);
        else if (r == AUD_STOPPED)
            rc = s->fn_rc;
        else
            rc = r;
    }
    w->rep->records += s->records;
    if (s->next_seq > s->first_seq)
        w->rep->last_seq = s->next_seq - 1;
    if (!rc)
        w->rep->segments++;
    if (!rc && s->sealed)
        w->rep->sealed++;
    return rc;
}

static int walk(const char *path, am_audit_report *rep, aud_rec_fn fn, void *ud) {
    memset(rep, 0, sizeof *rep);
    rep->bad_block = -1;
    walk_ctx w = {rep, fn, ud};
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        int code = path && errno == ENOENT ? AM_ENOTFOUND : AM_EIO;
        int rc = am_err_set(code, "audit: %s: %s", path ? path : "(null)",
                            path ? strerror(errno) : "no path");
        report_fail(rep, 0, NULL);
        return rc;
    }
    aud_scan s;
    int rc = 0;
    if (S_ISREG(st.st_mode)) {
        /* One segment on its own: its header is the anchor (segment 1 must start at zero). */
        aud_scan_init(&s, 0, 1, fn, ud);
        const char *base = strrchr(path, '/');
        snprintf(s.name, sizeof s.name, "%s", base ? base + 1 : path);
        rc = walk_segment(&w, path, &s, 0, NULL, 0, 1);
        if (!rc && s.segno == 1) {
            static const uint8_t zero[AUD_HASH];
            if (memcmp(s.start_hash, zero, AUD_HASH) != 0 || s.first_seq != 1)
                rc = am_err_set(AM_ECORRUPT,
                                "audit: %s header (offset 0): segment 1 must start "
                                "from the zero hash and seq 1",
                                s.name);
        }
        if (rc < 0)
            report_fail(rep, s.segno, &s);
        aud_scan_close(&s);
        return rc;
    }
    uint64_t *nums = NULL;
    size_t n = 0;
    if ((rc = aud_list_segments(path, &nums, &n)) != 0) {
        report_fail(rep, 0, NULL);
        return rc;
    }
    uint8_t prev[AUD_HASH] = {0};
    uint64_t next_seq = 1;
    for (size_t i = 0; i < n && !rc; i++) {
        aud_scan_init(&s, i + 1, 1, fn, ud);
        if (nums[i] != i + 1) {
            snprintf(rep->where, sizeof rep->where, "%s", s.name);
            rc = am_err_set(AM_ECORRUPT, "audit: %s/%s: segment is missing", path, s.name);
            report_fail(rep, i + 1, NULL);
            break;
        }
        char file[4096];
        int m = snprintf(file, sizeof file, "%s/%s", path, s.name);
        if (m < 0 || (size_t)m >= sizeof file) {
            rc = am_err_set(AM_EINVAL, "audit: path too long: %s", path);
            break;
        }
        rc = walk_segment(&w, file, &s, i + 1, prev, next_seq, i + 1 == n);
        if (rc < 0)
            report_fail(rep, i + 1, &s);
        memcpy(prev, s.hash, AUD_HASH);
        next_seq = s.next_seq;
        aud_scan_close(&s);
    }
    free(nums);
    return rc;
}

int am_audit_verify(const char *dir, am_audit_report *rep) {
    am_audit_report local;
    return walk(dir, rep ? rep : &local, NULL, NULL);
}

typedef struct {
    uint64_t since, until;
    am_audit_record_fn fn;
    void *ud;
} read_ctx;

static int read_filter(void *ud, const Airmesh__V1__AuditRecord *r) {
    read_ctx *c = ud;
    if (r->time_ms < c->since || (c->until && r->time_ms >= c->until))
        return 0;
    return c->fn(c->ud, r);
}

int am_audit_read(const char *dir, uint64_t since_ms, uint64_t until_ms, am_audit_record_fn fn,
                  void *ud) {
    if (!fn)
        return am_err_set(AM_EINVAL, "audit: read: no callback");
    read_ctx c = {since_ms, until_ms, fn, ud};
    am_audit_report rep;
    return walk(dir, &rep, read_filter, &c);
}

/* ---- paging for the REST API: start at the segment holding from_seq ---- */

int am_audit_query(const char *dir, uint64_t from_seq, am_audit_record_fn fn, void *ud) {
    if (!fn)
        return am_err_set(AM_EINVAL, "audit: query: no callback");
    uint64_t *nums = NULL;
    size_t n = 0;
    int rc = aud_list_segments(dir, &nums, &n);
    if (rc)
        return rc;
    /* Segment headers name their first seq: binary search would do, but headers are cheap. */
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        aud_scan s;
        char file[4096];
        aud_scan_init(&s, nums[i], 0, NULL, NULL);
        if (snprintf(file, sizeof file, "%s/%s", dir, s.name) >= (int)sizeof file) {
            rc = am_err_set(AM_EINVAL, "audit: path too long: %s", dir);
            break;
        }
        rc = aud_scan_open(&s, file, 0);
        uint64_t first = s.first_seq;
        aud_scan_close(&s);
        if (rc)
            break;
        if (first > from_seq)
            break;
        start = i;
    }
    for (size_t i = start; i < n && !rc; i++) {
        aud_scan s;
        char file[4096];
        aud_scan_init(&s, nums[i], 1, (aud_rec_fn)fn, ud);
        s.skip_before_seq = from_seq;
        snprintf(file, sizeof file, "%s/%s", dir, s.name);
        rc = aud_scan_open(&s, file, 0);
        while (!rc) {
            int r = aud_scan_next(&s);
            if (r == 1)
                continue;
            if (r == AUD_STOPPED)
                rc = s.fn_rc;
            else if (r != 0 && !(r == AUD_TORN && i + 1 == n))
                rc = r == AUD_TORN ? am_err_set(AM_ECORRUPT, "audit: %s: truncated frame", s.where)
                                   : r;
            break;
        }
        aud_scan_close(&s);
    }
    free(nums);
    return rc;
}
