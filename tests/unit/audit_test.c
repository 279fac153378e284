/*
 * tests/unit/audit_test.c — unit tests for appliance/audit (cmocka).
 *
 * What: round trips, seq continuity across restarts and segments, crash recovery of a torn tail,
 * and tamper detection (flipped bytes, reordered/dropped blocks, tampered complete blocks, garbage
 * files), each test named after what it proves. The tests parse the segment files themselves from
 * the format documented in audit.h (frame offsets, header fields), so they also check the
 * documentation. Each test works in its own directory under $TEST_TMPDIR (fallback /tmp).
 * Threads: test_concurrent_appenders_keep_order_and_count runs 4 appender threads; the rest are
 * single-threaded (besides the log's own writer thread).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/audit/audit.h"
#include "common/err.h"

/* ---- helpers ---- */

static char *mk_tmpdir(void) {
    const char *base = getenv("TEST_TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/audit-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void rm_tmpdir(char *d) {
    nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

static void seg_path(char *out, size_t cap, const char *dir, unsigned segno) {
    snprintf(out, cap, "%s/seg-%06u.aml", dir, segno);
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Frame offsets of a segment image, from the documented format: 56-byte header, then frames of
 * 32-byte header (comp_len at +8) + payload + 32-byte hash. Returns the number of frames. */
static size_t frame_offsets(const uint8_t *b, size_t len, size_t *offs, size_t max) {
    size_t n = 0, off = 56;
    assert_memory_equal(b, "AMAUDIT1", 8);
    while (off < len) {
        assert_true(n < max);
        assert_memory_equal(b + off, "AMFR", 4);
        offs[n++] = off;
        off += 32 + (size_t)le32(b + off + 8) + 32;
    }
    assert_int_equal(off, len);
    return n;
}

static void flip(const char *path, size_t off) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, (long)off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, (long)off, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static am_audit *open_ok(const char *dir, const am_audit_opts *o) {
    am_audit *a = NULL;
    int rc = am_audit_open(dir, o, &a);
    if (rc)
        fail_msg("am_audit_open: %s", am_err_last());
    return a;
}

static void append_n(am_audit *a, int n, int tag) {
    for (int i = 0; i < n; i++) {
        char target[64], details[96];
        snprintf(target, sizeof target, "pod:p-%05d", (i * 7919 + tag) % 100000);
        snprintf(details, sizeof details, "{\"i\":%d,\"tag\":%d}", i, tag);
        assert_int_equal(am_audit_event(a, i % 3 ? "user:u-1" : "system", "org-1",
                                        i % 2 ? "pod.start" : "auth.login", target, "ok",
                                        "10.0.0.1", details),
                         0);
    }
}

/* Write `blocks` blocks (one flush each) of `per` records into a fresh log in dir, then close. */
static void write_blocks(const char *dir, int blocks, int per) {
    am_audit *a = open_ok(dir, NULL);
    for (int b = 0; b < blocks; b++) {
        append_n(a, per, b);
        assert_int_equal(am_audit_flush(a), 0);
    }
    am_audit_close(a);
}

typedef struct {
    uint64_t n, next_seq;
    uint64_t times[4096];
    char details[4096][48];
} collect;

static int collect_fn(void *ud, const Airmesh__V1__AuditRecord *r) {
    collect *c = ud;
    assert_int_equal(r->seq, c->next_seq);
    c->next_seq++;
    if (c->n < 4096) {
        c->times[c->n] = r->time_ms;
        snprintf(c->details[c->n], sizeof c->details[0], "%s", r->details);
    }
    c->n++;
    return 0;
}

static uint64_t count_records(const char *dir) {
    collect *c = calloc(1, sizeof *c);
    c->next_seq = 1;
    int rc = am_audit_read(dir, 0, 0, collect_fn, c);
    if (rc)
        fail_msg("am_audit_read: %s", am_err_last());
    uint64_t n = c->n;
    free(c);
    return n;
}

static void verify_ok(const char *dir, am_audit_report *rep) {
    int rc = am_audit_verify(dir, rep);
    if (rc)
        fail_msg("verify: %s", rep->first_error);
}

/* ---- tests ---- */

static void test_append_flush_read_roundtrip(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    am_audit *a = open_ok(dir, NULL);
    am_audit *second = NULL;
    assert_int_equal(am_audit_open(dir, NULL, &second), -AM_ESTATE); /* one writer per dir */
    assert_int_equal(am_audit_flush(a), 0);                          /* nothing to flush */

    for (int i = 0; i < 1000; i++) {
        Airmesh__V1__AuditRecord r = AIRMESH__V1__AUDIT_RECORD__INIT;
        char details[48];
        snprintf(details, sizeof details, "{\"n\":%d}", i);
        r.seq = 777; /* ignored: the log assigns seq */
        r.time_ms = 1000 + (uint64_t)i;
        r.actor = "user:u-42";
        r.org_id = "org-7";
        r.action = "session.create";
        r.target = "session:abc";
        r.result = i % 10 ? "ok" : "denied";
        r.source = "192.0.2.1";
        r.details = details;
        uint64_t seq = 0;
        assert_int_equal(am_audit_append(a, &r, &seq), 0);
        assert_int_equal(seq, (uint64_t)i + 1);
    }
    uint64_t before = 0;
    {
        Airmesh__V1__AuditRecord r = AIRMESH__V1__AUDIT_RECORD__INIT; /* time_ms 0 → now */
        assert_int_equal(am_audit_append(a, &r, &before), 0);
        assert_int_equal(before, 1001);
    }
    assert_int_equal(am_audit_event(a, NULL, NULL, "x", NULL, NULL, NULL, NULL), 0);
    assert_int_equal(am_audit_flush(a), 0);

    collect *c = calloc(1, sizeof *c);
    c->next_seq = 1;
    assert_int_equal(am_audit_read(dir, 0, 0, collect_fn, c), 0);
    assert_int_equal(c->n, 1002);
    for (int i = 0; i < 1000; i++) {
        char want[48];
        snprintf(want, sizeof want, "{\"n\":%d}", i);
        assert_string_equal(c->details[i], want);
        assert_int_equal(c->times[i], 1000 + (uint64_t)i);
    }
    assert_true(c->times[1000] > 1600000000000ull);

    /* time window [1100, 1200) */
    memset(c, 0, sizeof *c);
    c->next_seq = 101;
    assert_int_equal(am_audit_read(dir, 1100, 1200, collect_fn, c), 0);
    assert_int_equal(c->n, 100);
    assert_string_equal(c->details[0], "{\"n\":100}");
    free(c);

    am_audit_report rep;
    verify_ok(dir, &rep);
    assert_int_equal(rep.records, 1002);
    assert_int_equal(rep.segments, 1);
    assert_int_equal(rep.last_seq, 1002);
    am_audit_close(a);
    am_audit_close(NULL);
    rm_tmpdir(dir);
}

static void test_seq_continues_after_reopen(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    am_audit *a = open_ok(dir, NULL);
    append_n(a, 10, 0);
    am_audit_close(a); /* close flushes */
    a = open_ok(dir, NULL);
    am_audit_close(a); /* reopen without appending */
    a = open_ok(dir, NULL);
    for (uint64_t want = 11; want <= 15; want++) {
        Airmesh__V1__AuditRecord r = AIRMESH__V1__AUDIT_RECORD__INIT;
        r.action = "again";
        uint64_t seq = 0;
        assert_int_equal(am_audit_append(a, &r, &seq), 0);
        assert_int_equal(seq, want);
    }
    am_audit_close(a);
    am_audit_report rep;
    verify_ok(dir, &rep);
    assert_int_equal(rep.records, 15);
    assert_int_equal(rep.last_seq, 15);
    assert_int_equal(count_records(dir), 15);
    rm_tmpdir(dir);
}

static void test_chain_continues_across_segments(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    am_audit_opts o = {.flush_ms = 5, .max_block_records = 16, .segment_bytes = 2048};
    am_audit *a = open_ok(dir, &o);
    for (int i = 0; i < 40; i++) {
        append_n(a, 50, i);
        assert_int_equal(am_audit_flush(a), 0);
    }
    am_audit_close(a);
    a = open_ok(dir, &o); /* recover from the last of many segments */
    append_n(a, 100, 99);
    am_audit_close(a);

    am_audit_report rep;
    verify_ok(dir, &rep);
    assert_int_equal(rep.records, 2100);
    assert_true(rep.segments > 5);
    assert_int_equal(count_records(dir), 2100);

    /* Documented linkage: segment 2's start_hash is the last hash of segment 1, first_seq follows.
     */
    char p1[4200], p2[4200];
    seg_path(p1, sizeof p1, dir, 1);
    seg_path(p2, sizeof p2, dir, 2);
    size_t l1, l2, offs[4096];
    uint8_t *b1 = slurp(p1, &l1), *b2 = slurp(p2, &l2);
    size_t n1 = frame_offsets(b1, l1, offs, 4096);
    assert_true(n1 > 0);
    assert_memory_equal(b2 + 24, b1 + l1 - 32, 32);
    uint32_t last_count = le32(b1 + offs[n1 - 1] + 16);
    uint64_t last_first = le32(b1 + offs[n1 - 1] + 20) | (uint64_t)le32(b1 + offs[n1 - 1] + 24)
                                                             << 32;
    assert_int_equal(le32(b2 + 16), last_first + last_count);

    /* Altering segment 2's start hash breaks the chain at segment 2. */
    flip(p2, 30);
    assert_int_equal(am_audit_verify(dir, &rep), -AM_ECORRUPT);
    assert_int_equal(rep.bad_segment, 2);
    assert_non_null(strstr(rep.where, "seg-000002.aml"));
    flip(p2, 30);
    verify_ok(dir, &rep);

    /* A missing middle segment is detected. */
    char p3[4200];
    seg_path(p3, sizeof p3, dir, 3);
    size_t l3;
    uint8_t *b3 = slurp(p3, &l3);
    unlink(p3);
    assert_int_equal(am_audit_verify(dir, &rep), -AM_ECORRUPT);
    assert_int_equal(rep.bad_segment, 3);
    am_audit *bad = NULL;
    assert_int_equal(am_audit_open(dir, &o, &bad), -AM_ECORRUPT);
    spit(p3, b3, l3);
    verify_ok(dir, &rep);
    free(b1);
    free(b2);
    free(b3);
    rm_tmpdir(dir);
}

static void test_flipped_byte_is_detected_at_the_right_block(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    write_blocks(dir, 20, 25);
    char p[4200];
    seg_path(p, sizeof p, dir, 1);
    size_t len, offs[64];
    uint8_t *b = slurp(p, &len);
    size_t n = frame_offsets(b, len, offs, 64);
    assert_int_equal(n, 20);

    const size_t blocks[] = {0, 1, 7, 19};
    for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
        size_t k = blocks[bi];
        size_t off = offs[k], clen = le32(b + off + 8);
        const size_t pos[] = {
            off + 0,              /* magic */
            off + 4,              /* type */
            off + 9,              /* comp_len */
            off + 17,             /* count */
            off + 21,             /* first_seq */
            off + 29,             /* hdr_check */
            off + 32,             /* first payload byte */
            off + 32 + clen / 2,  /* middle of payload */
            off + 32 + clen - 1,  /* last payload byte */
            off + 32 + clen,      /* first hash byte */
            off + 32 + clen + 31, /* last hash byte */
        };
        for (size_t pi = 0; pi < sizeof pos / sizeof pos[0]; pi++) {
            flip(p, pos[pi]);
            am_audit_report rep;
            int rc = am_audit_verify(dir, &rep);
            if (rc != -AM_ECORRUPT || rep.bad_block != (int64_t)k)
                fail_msg("block %zu byte +%zu: rc=%d bad_block=%lld err=%s", k, pos[pi] - off, rc,
                         (long long)rep.bad_block, rep.first_error);
            char want[64];
            snprintf(want, sizeof want, "seg-000001.aml block %zu (offset %zu)", k, off);
            assert_string_equal(rep.where, want);
            assert_non_null(strstr(rep.first_error, want));
            assert_int_equal(rep.bad_offset, off);
            /* the reader stops at the same place, after delivering the intact blocks */
            collect *c = calloc(1, sizeof *c);
            c->next_seq = 1;
            assert_int_equal(am_audit_read(dir, 0, 0, collect_fn, c), -AM_ECORRUPT);
            assert_int_equal(c->n, k * 25);
            free(c);
            flip(p, pos[pi]);
        }
    }
    am_audit_report rep;
    verify_ok(dir, &rep);
    assert_int_equal(rep.blocks, 20);
    free(b);
    rm_tmpdir(dir);
}

static void test_truncated_tail_is_recovered_on_open(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    write_blocks(dir, 5, 10);
    char p[4200];
    seg_path(p, sizeof p, dir, 1);
    size_t len, offs[16];
    uint8_t *b = slurp(p, &len);
    assert_int_equal(frame_offsets(b, len, offs, 16), 5);

    /* Cut inside the last frame's hash: a torn write. verify tolerates it, open truncates it. */
    assert_int_equal(truncate(p, (off_t)(len - 10)), 0);
    am_audit_report rep;
    verify_ok(dir, &rep);
    assert_int_equal(rep.records, 40);
    assert_int_equal(rep.tail_bytes_ignored, len - 10 - offs[4]);
    am_audit *a = open_ok(dir, NULL);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal((size_t)st.st_size, offs[4]);
    uint64_t seq = 0;
    Airmesh__V1__AuditRecord r = AIRMESH__V1__AUDIT_RECORD__INIT;
    assert_int_equal(am_audit_append(a, &r, &seq), 0);
    assert_int_equal(seq, 41); /* continues from the last intact record */
    am_audit_close(a);

    /* A torn frame header (a prefix of "AMFR..." shorter than 32 bytes) is recovered too. */
    assert_int_equal(stat(p, &st), 0);
    size_t good = (size_t)st.st_size;
    FILE *f = fopen(p, "ab");
    fwrite("AMFR\x01\0\0\0\x10", 1, 9, f);
    fclose(f);
    verify_ok(dir, &rep);
    assert_int_equal(rep.tail_bytes_ignored, 9);
    a = open_ok(dir, NULL);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal((size_t)st.st_size, good);
    am_audit_close(a);

    /* A complete-header frame whose payload was cut short. */
    f = fopen(p, "ab");
    fwrite(b + offs[1], 1, 32 + 5, f);
    fclose(f);
    a = open_ok(dir, NULL);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal((size_t)st.st_size, good);
    am_audit_close(a);
    verify_ok(dir, &rep);
    assert_int_equal(rep.records, 41);
    assert_int_equal(rep.tail_bytes_ignored, 0);
    free(b);
    rm_tmpdir(dir);
}

static void test_tampered_complete_block_refuses_open(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    write_blocks(dir, 6, 10);
    char p[4200];
    seg_path(p, sizeof p, dir, 1);
    size_t len, offs[16];
    uint8_t *b = slurp(p, &len);
    assert_int_equal(frame_offsets(b, len, offs, 16), 6);
    const size_t targets[] = {offs[5] + 40, offs[5] + 9 /* comp_len: must not look torn */,
                              offs[2] + 40};
    for (size_t i = 0; i < 3; i++) {
        flip(p, targets[i]);
        am_audit *a = NULL;
        assert_int_equal(am_audit_open(dir, NULL, &a), -AM_ECORRUPT);
        assert_null(a);
        size_t k = targets[i] < offs[5] ? 2 : 5;
        char want[80]; /* open verifies the whole last segment and names the block */
        snprintf(want, sizeof want, "seg-000001.aml block %zu (offset %zu)", k, offs[k]);
        if (!strstr(am_err_last(), want))
            fail_msg("error does not name the place: %s", am_err_last());
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal((size_t)st.st_size, len); /* nothing was dropped */
        flip(p, targets[i]);
    }
    am_audit *a = open_ok(dir, NULL);
    am_audit_close(a);
    free(b);
    rm_tmpdir(dir);
}

/* Rewrite segment 1 with frames in the given order (indices into the original). */
static void rewrite_frames(const char *p, const uint8_t *b, size_t len, const size_t *offs,
                           size_t n, const size_t *order, size_t m) {
    uint8_t *out = malloc(len);
    size_t o = 56;
    memcpy(out, b, 56);
    for (size_t i = 0; i < m; i++) {
        size_t s = offs[order[i]], e = order[i] + 1 < n ? offs[order[i] + 1] : len;
        memcpy(out + o, b + s, e - s);
        o += e - s;
    }
    spit(p, out, o);
    free(out);
}

static void test_reorder_two_blocks_is_detected(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    write_blocks(dir, 10, 20);
    char p[4200];
    seg_path(p, sizeof p, dir, 1);
    size_t len, offs[16];
    uint8_t *b = slurp(p, &len);
    assert_int_equal(frame_offsets(b, len, offs, 16), 10);
    const size_t order[] = {0, 1, 2, 4, 3, 5, 6, 7, 8, 9};
    rewrite_frames(p, b, len, offs, 10, order, 10);
    am_audit_report rep;
    assert_int_equal(am_audit_verify(dir, &rep), -AM_ECORRUPT);
    assert_int_equal(rep.bad_block, 3);
    assert_non_null(strstr(rep.where, "block 3"));
    assert_int_equal(rep.records, 60);
    am_audit *a = NULL;
    assert_int_equal(am_audit_open(dir, NULL, &a), -AM_ECORRUPT);
    /* swapping the last two as well */
    const size_t order2[] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 8};
    rewrite_frames(p, b, len, offs, 10, order2, 10);
    assert_int_equal(am_audit_verify(dir, &rep), -AM_ECORRUPT);
    assert_int_equal(rep.bad_block, 8);
    spit(p, b, len);
    verify_ok(dir, &rep);
    free(b);
    rm_tmpdir(dir);
}

static void test_dropped_block_is_detected(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    write_blocks(dir, 10, 20);
    char p[4200];
    seg_path(p, sizeof p, dir, 1);
    size_t len, offs[16];
    uint8_t *b = slurp(p, &len);
    assert_int_equal(frame_offsets(b, len, offs, 16), 10);
    const size_t drop0[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const size_t drop5[] = {0, 1, 2, 3, 4, 6, 7, 8, 9};
    const size_t *orders[] = {drop0, drop5};
    const int64_t want[] = {0, 5};
    for (int i = 0; i < 2; i++) {
        rewrite_frames(p, b, len, offs, 10, orders[i], 9);
        am_audit_report rep;
        assert_int_equal(am_audit_verify(dir, &rep), -AM_ECORRUPT);
        assert_int_equal(rep.bad_block, want[i]);
        am_audit *a = NULL;
        assert_int_equal(am_audit_open(dir, NULL, &a), -AM_ECORRUPT);
    }
    spit(p, b, len);
    am_audit_report rep;
    verify_ok(dir, &rep);
    free(b);
    rm_tmpdir(dir);
}

#define THREADS 4
#define PER_THREAD 2000

typedef struct {
    am_audit *a;
    int id;
    uint64_t seqs[PER_THREAD];
} appender;

static void *appender_main(void *arg) {
    appender *t = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        Airmesh__V1__AuditRecord r = AIRMESH__V1__AUDIT_RECORD__INIT;
        char actor[16], details[48];
        snprintf(actor, sizeof actor, "t%d", t->id);
        snprintf(details, sizeof details, "{\"i\":%d}", i);
        r.actor = actor;
        r.action = "load.test";
        r.details = details;
        if (am_audit_append(t->a, &r, &t->seqs[i]) != 0)
            return (void *)1;
        if (i % 500 == 499 && am_audit_flush(t->a) != 0)
            return (void *)1;
    }
    return NULL;
}

typedef struct {
    uint64_t n, next_seq;
    int next_i[THREADS];
    appender *ts;
} order_check;

static int order_fn(void *ud, const Airmesh__V1__AuditRecord *r) {
    order_check *c = ud;
    int t = -1, i = -1;
    assert_int_equal(r->seq, c->next_seq);
    assert_int_equal(sscanf(r->actor, "t%d", &t), 1);
    assert_int_equal(sscanf(r->details, "{\"i\":%d}", &i), 1);
    assert_true(t >= 0 && t < THREADS);
    assert_int_equal(i, c->next_i[t]);          /* each thread's events in its own order */
    assert_int_equal(c->ts[t].seqs[i], r->seq); /* the seq append returned */
    c->next_i[t]++;
    c->next_seq++;
    c->n++;
    return 0;
}

static void test_concurrent_appenders_keep_order_and_count(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    am_audit_opts o = {.flush_ms = 2, .max_block_records = 100};
    am_audit *a = open_ok(dir, &o);
    appender *ts = calloc(THREADS, sizeof *ts);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ts[i].a = a;
        ts[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, appender_main, &ts[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(am_audit_flush(a), 0);
    am_audit_close(a);
    order_check c = {.next_seq = 1, .ts = ts};
    assert_int_equal(am_audit_read(dir, 0, 0, order_fn, &c), 0);
    assert_int_equal(c.n, THREADS * PER_THREAD);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(c.next_i[i], PER_THREAD);
    am_audit_report rep;
    verify_ok(dir, &rep);
    assert_int_equal(rep.records, THREADS * PER_THREAD);
    free(ts);
    rm_tmpdir(dir);
}

/* A frame header with a valid hdr_check (so the length checks themselves are exercised). */
static void frame_header(uint8_t *h, uint32_t comp_len, uint32_t raw_len, uint32_t count) {
    memset(h, 0, 32);
    memcpy(h, "AMFR", 4);
    h[4] = 1;
    for (int i = 0; i < 4; i++) {
        h[8 + i] = (uint8_t)(comp_len >> (8 * i));
        h[12 + i] = (uint8_t)(raw_len >> (8 * i));
        h[16 + i] = (uint8_t)(count >> (8 * i));
    }
    h[20] = 1; /* first_seq 1 */
    uint8_t md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(h, 28, md, &mdlen, EVP_sha256(), NULL), 1);
    memcpy(h + 28, md, 4);
}

static int noop_fn(void *ud, const Airmesh__V1__AuditRecord *r) {
    (void)ud;
    (void)r;
    return 0;
}

static void expect_refused(const char *dir, const char *path, const uint8_t *img, size_t len,
                           const char *why) {
    spit(path, img, len);
    am_audit_report rep;
    int rc = am_audit_verify(dir, &rep);
    if (rc != -AM_ECORRUPT)
        fail_msg("%s: verify returned %d", why, rc);
    assert_true(rep.first_error[0] != '\0');
    assert_int_equal(am_audit_read(dir, 0, 0, noop_fn, NULL), -AM_ECORRUPT);
    am_audit *a = NULL;
    rc = am_audit_open(dir, NULL, &a);
    if (rc != -AM_ECORRUPT)
        fail_msg("%s: open returned %d", why, rc);
    assert_null(a);
}

static void test_garbage_segment_is_refused(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    char p[4200];
    seg_path(p, sizeof p, dir, 1);
    uint8_t img[8192];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof img; i++) {
        x = x * 1103515245u + 12345u;
        img[i] = (uint8_t)(x >> 16);
    }
    expect_refused(dir, p, img, sizeof img, "random bytes");
    expect_refused(dir, p, img, 10, "too short for a header");

    /* valid segment header, then garbage / absurd frames */
    memcpy(img, "AMAUDIT1", 8);
    memset(img + 8, 0, 48);
    img[8] = 1;  /* segment 1 */
    img[16] = 1; /* first_seq 1 */
    expect_refused(dir, p, img, 200, "garbage frame");
    frame_header(img + 56, 0xfffffff0u, 100, 1);
    expect_refused(dir, p, img, 56 + 32 + 100, "absurd compressed length");
    frame_header(img + 56, 100, 0xfffffff0u, 1);
    expect_refused(dir, p, img, 56 + 32 + 100 + 32, "absurd raw length");
    frame_header(img + 56, 100, 10, 1000);
    expect_refused(dir, p, img, 56 + 32 + 100 + 32, "absurd count");
    frame_header(img + 56, 100, 1000, 1);
    expect_refused(dir, p, img, 56 + 32 + 100 + 32, "bad hash");
    frame_header(img + 56, 100, 1000, 1);
    img[56 + 4] = 2; /* a seal frame with impossible lengths */
    expect_refused(dir, p, img, 56 + 32 + 100 + 32, "seal frame");
    unlink(p);

    /* a non-canonical segment name is not silently ignored */
    char q[4200];
    snprintf(q, sizeof q, "%s/seg-1.aml", dir);
    spit(q, img, 56);
    am_audit_report rep;
    assert_int_equal(am_audit_verify(dir, &rep), -AM_ECORRUPT);
    unlink(q);

    /* verify of a missing directory is an error, not a crash */
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    assert_int_equal(am_audit_verify(missing, &rep), -AM_ENOTFOUND);
    rm_tmpdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_flush_read_roundtrip),
        cmocka_unit_test(test_seq_continues_after_reopen),
        cmocka_unit_test(test_chain_continues_across_segments),
        cmocka_unit_test(test_flipped_byte_is_detected_at_the_right_block),
        cmocka_unit_test(test_truncated_tail_is_recovered_on_open),
        cmocka_unit_test(test_tampered_complete_block_refuses_open),
        cmocka_unit_test(test_reorder_two_blocks_is_detected),
        cmocka_unit_test(test_dropped_block_is_detected),
        cmocka_unit_test(test_concurrent_appenders_keep_order_and_count),
        cmocka_unit_test(test_garbage_segment_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
