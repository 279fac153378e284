/*
 * tests/unit/audit_export_test.c — seals, the audit key and the offline export (cmocka).
 *
 * What: an export verifies; every kind of tampering (a flipped byte, a dropped block, two blocks
 * swapped, a truncated file, a segment spliced in from another appliance, a changed header, a
 * removed seal) fails and names the place; seals are written at roll, on request and at clean
 * close, and a restart continues in a new segment. The tests take export files apart with their
 * own parser written from the format in audit.h, so they also check that documentation. Each
 * test has its own directory (with its own CA) under $TEST_TMPDIR.
 * Threads: single-threaded besides the log's writer thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/audit/audit.h"
#include "common/err.h"
#include "pki/pki.h"

/* ---- helpers ---- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

typedef struct {
    char root[4096];
    char audit[4200];
    am_ca *ca;
    am_audit *a;
    char *root_pem;
} appliance;

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void app_open(appliance *ap, const am_audit_opts *o) {
    const char *base = getenv("TEST_TMPDIR");
    snprintf(ap->root, sizeof ap->root, "%s/auditexp-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(ap->root));
    char pki[4200];
    snprintf(pki, sizeof pki, "%s/pki", ap->root);
    snprintf(ap->audit, sizeof ap->audit, "%s/audit", ap->root);
    int created = 0;
    assert_int_equal(am_ca_open(pki, NULL, &ap->ca, &created), 0);
    size_t n;
    ap->root_pem = slurp(am_ca_path(ap->ca, "ca.pem"), &n);
    assert_int_equal(am_audit_open(ap->audit, o, &ap->a), 0);
    assert_int_equal(am_audit_signer_ensure(ap->a, ap->ca), 0);
}

static void app_close(appliance *ap) {
    am_audit_close(ap->a);
    am_ca_close(ap->ca);
    free(ap->root_pem);
    nftw(ap->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* n events in batches of `per` (each flush makes at least one block). */
static void events(am_audit *a, int n, int per, const char *action) {
    for (int i = 0; i < n; i++) {
        char target[32];
        snprintf(target, sizeof target, "thing:%d", i);
        assert_int_equal(
            am_audit_event(a, "user:u1", "default", action, target, "ok", "127.0.0.1", "{\"i\":1}"),
            0);
        if ((i + 1) % per == 0)
            assert_int_equal(am_audit_flush(a), 0);
    }
    assert_int_equal(am_audit_flush(a), 0);
}

static void export_to(appliance *ap, const char *path, am_audit_export_info *info) {
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(am_audit_export(ap->a, ap->root_pem, 0, 0, fd, info), 0);
    close(fd);
}

static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* An export taken apart: head (header + PEMs), blobs, trailer. */
typedef struct {
    uint8_t *file;
    size_t len;
    size_t head_len;
    size_t nblob;
    size_t blob_off[64], blob_len[64]; /* offsets of the segment bytes (after the u64) */
    size_t trailer_off;
} parsed;

static void parse(const char *path, parsed *p) {
    p->file = (uint8_t *)slurp(path, &p->len);
    assert_memory_equal(p->file, "AMAUDEXP", 8);
    p->nblob = get32(p->file + 12);
    assert_true(p->nblob <= 64);
    p->head_len = 64 + get32(p->file + 40) + get32(p->file + 44);
    size_t off = p->head_len;
    for (size_t i = 0; i < p->nblob; i++) {
        p->blob_len[i] = (size_t)get64(p->file + off);
        p->blob_off[i] = off + 8;
        off += 8 + p->blob_len[i];
    }
    p->trailer_off = off;
    assert_memory_equal(p->file + off, "AMEXPEND", 8);
}

/* Frame offsets (within blob b) — block frames and the final seal. */
static size_t frames(const parsed *p, size_t b, size_t *offs, size_t cap) {
    const uint8_t *s = p->file + p->blob_off[b];
    size_t off = 56, n = 0;
    while (off < p->blob_len[b]) {
        assert_true(n < cap);
        assert_memory_equal(s + off, "AMFR", 4);
        offs[n++] = off;
        off += 32 + get32(s + off + 8) + 32;
    }
    assert_int_equal(off, p->blob_len[b]);
    return n;
}

/* Write head ‖ blobs (blob b replaced by repl/repl_len, when repl) ‖ trailer. */
static void rebuild(const parsed *p, size_t b, const uint8_t *repl, size_t repl_len,
                    const char *out) {
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    fwrite(p->file, 1, p->head_len, f);
    for (size_t i = 0; i < p->nblob; i++) {
        const uint8_t *d = p->file + p->blob_off[i];
        size_t l = p->blob_len[i];
        if (i == b && repl) {
            d = repl;
            l = repl_len;
        }
        uint8_t lb[8];
        put64(lb, l);
        fwrite(lb, 1, 8, f);
        fwrite(d, 1, l, f);
    }
    fwrite(p->file + p->trailer_off, 1, p->len - p->trailer_off, f);
    fclose(f);
}

static void expect_fail(const char *path, const char *want_in_error, const char *want_where) {
    am_audit_export_report rep;
    int rc = am_audit_export_verify(path, &rep);
    if (rc != -AM_ECORRUPT)
        fail_msg("expected -AM_ECORRUPT, got %d (%s)", rc, am_err_last());
    if (!strstr(rep.r.first_error, want_in_error))
        fail_msg("error '%s' does not mention '%s'", rep.r.first_error, want_in_error);
    if (want_where && !strstr(rep.r.where, want_where))
        fail_msg("where '%s' does not name '%s'", rep.r.where, want_where);
}

static const am_audit_opts small = {.flush_ms = 1, .max_block_records = 4, .segment_bytes = 2048};

/* ---- tests ---- */

static void test_export_verifies_and_shows_every_record(void **state) {
    (void)state;
    appliance ap;
    app_open(&ap, &small);
    events(ap.a, 120, 3, "runner_token.create");
    char path[4300];
    snprintf(path, sizeof path, "%s/x.amexp", ap.root);
    am_audit_export_info info;
    export_to(&ap, path, &info);
    assert_true(info.segments >= 3); /* small segments: the log rolled */
    assert_int_equal(info.records, 120);
    am_audit_export_report rep;
    assert_int_equal(am_audit_export_verify(path, &rep), 0);
    assert_int_equal(rep.r.records, 120);
    assert_int_equal(rep.r.segments, info.segments);
    assert_int_equal(rep.first_seq, 1);
    assert_int_equal(rep.r.last_seq, 120);
    assert_string_equal(rep.root_fp, am_ca_root_fingerprint(ap.ca));
    assert_non_null(strstr(rep.subject, "airmesh audit"));
    /* and the live directory still verifies, every finished segment sealed */
    am_audit_report dr;
    assert_int_equal(am_audit_verify(ap.audit, &dr), 0);
    assert_int_equal(dr.sealed, info.segments);
    app_close(&ap);
}

static int count_cb(void *ud, const Airmesh__V1__AuditRecord *r) {
    uint64_t *n = ud;
    assert_int_equal(r->seq, *n + 1);
    assert_string_equal(r->action, "auth.login");
    (*n)++;
    return 0;
}

static void test_export_read_delivers_records_in_order(void **state) {
    (void)state;
    appliance ap;
    app_open(&ap, &small);
    events(ap.a, 25, 5, "auth.login");
    char path[4300];
    snprintf(path, sizeof path, "%s/x.amexp", ap.root);
    export_to(&ap, path, NULL);
    uint64_t n = 0;
    assert_int_equal(am_audit_export_read(path, 1, count_cb, &n, NULL), 0);
    assert_int_equal(n, 25);
    app_close(&ap);
}

static void test_flipped_byte_names_segment_and_block(void **state) {
    (void)state;
    appliance ap;
    app_open(&ap, &small);
    events(ap.a, 40, 3, "x");
    char path[4300], bad[4400];
    snprintf(path, sizeof path, "%s/x.amexp", ap.root);
    snprintf(bad, sizeof bad, "%s.bad", path);
    export_to(&ap, path, NULL);
    parsed p;
    parse(path, &p);
    size_t offs[64];
    size_t nf = frames(&p, 1, offs, 64);
    assert_true(nf >= 3);
    p.file[p.blob_off[1] + offs[1] + 40] ^= 0x01; /* inside block 1's payload */
    spit(bad, p.file, p.len);
    expect_fail(bad, "hash mismatch", "seg-000002.aml block 1");
    free(p.file);
    app_close(&ap);
}

static void test_dropped_block_is_detected(void **state) {
    (void)state;
    appliance ap;
    app_open(&ap, &small);
    events(ap.a, 40, 3, "x");
    char path[4300], bad[4400];
    snprintf(path, sizeof path, "%s/x.amexp", ap.root);
    snprintf(bad, sizeof bad, "%s.bad", path);
    export_to(&ap, path, NULL);
    parsed p;
    parse(path, &p);
    size_t offs[64];
    size_t nf = frames(&p, 0, offs, 64);
    assert_true(nf >= 3);
    /* drop block 1 of segment 1, fixing up the blob length so only the chain can tell */
    const uint8_t *s = p.file + p.blob_off[0];
    size_t cut = offs[2] - offs[1];
    uint8_t *seg = malloc(p.blob_len[0]);
    memcpy(seg, s, offs[1]);
    memcpy(seg + offs[1], s + offs[2], p.blob_len[0] - offs[2]);
    rebuild(&p, 0, seg, p.blob_len[0] - cut, bad);
    expect_fail(bad, "hash mismatch", "seg-000001.aml block 1");

    /* dropping the last block before the seal: the seal no longer matches */
    size_t last = nf - 2; /* frames: blocks..., seal */
    memcpy(seg, s, offs[last]);
    memcpy(seg + offs[last], s + offs[nf - 1], p.blob_len[0] - offs[nf - 1]);
    rebuild(&p, 0, seg, p.blob_len[0] - (offs[nf - 1] - offs[last]), bad);
    expect_fail(bad, "seal", "seg-000001.aml");
    free(seg);
    free(p.file);
    app_close(&ap);
}

static void test_reordered_blocks_are_detected(void **state) {
    (void)state;
    appliance ap;
    app_open(&ap, &small);
    events(ap.a, 40, 3, "x");
    char path[4300], bad[4400];
    snprintf(path, sizeof path, "%s/x.amexp", ap.root);
    snprintf(bad, sizeof bad, "%s.bad", path);
    export_to(&ap, path, NULL);
    parsed p;
    parse(path, &p);
    size_t offs[64];
    size_t nf = frames(&p, 0, offs, 64);
    assert_true(nf >= 4);
    const uint8_t *s = p.file + p.blob_off[0];
    size_t l1 = offs[2] - offs[1], l2 = offs[3] - offs[2];
    uint8_t *seg = malloc(p.blob_len[0]);
    memcpy(seg, s, p.blob_len[0]);
    memcpy(seg + offs[1], s + offs[2], l2);
    memcpy(seg + offs[1] + l2, s + offs[1], l1);
    rebuild(&p, 0, seg, p.blob_len[0], bad);
    expect_fail(bad, "hash mismatch", "seg-000001.aml block 1");
    free(seg);
    free(p.file);
    app_close(&ap);
}

static void test_truncated_export_is_detected(void **state) {
    (void)state;
    appliance ap;
    app_open(&ap, &small);
    events(ap.a, 40, 3, "x");
    char path[4300], bad[4400];
    snprintf(path, sizeof path, "%s/x.amexp", ap.root);
    snprintf(bad, sizeof bad, "%s.bad", path);
    export_to(&ap, path, NULL);
    parsed p;
    parse(path, &p);
    /* cut in the middle of the second segment: its length no longer fits */
    spit(bad, p.file, p.blob_off[1] + 100);
    expect_fail(bad, "truncated", "segment blob 2");
    /* cut only the trailer's signature */
    spit(bad, p.file, p.len - 10);
    expect_fail(bad, "trailer", "export trailer");
    /* drop the whole last segment and fix the count: the signed file hash catches it */
    uint8_t *cp = malloc(p.len);
    memcpy(cp, p.file, p.len);
    size_t lastb = p.nblob - 1;
    cp[12] = (uint8_t)(p.nblob - 1);
    size_t keep = p.blob_off[lastb] - 8;
    memmove(cp + keep, p.file + p.trailer_off, p.len - p.trailer_off);
    spit(bad, cp, keep + (p.len - p.trailer_off));
    expect_fail(bad, "file hash mismatch", "export trailer");
    free(cp);
    free(p.file);
    app_close(&ap);
}

static void test_segment_from_another_appliance_is_refused(void **state) {
    (void)state;
    appliance a1, a2;
    app_open(&a1, &small);
    app_open(&a2, &small);
    events(a1.a, 40, 3, "x");
    events(a2.a, 40, 3, "x");
    char p1[4300], p2[4300], bad[4400];
    snprintf(p1, sizeof p1, "%s/x.amexp", a1.root);
    snprintf(p2, sizeof p2, "%s/x.amexp", a2.root);
    snprintf(bad, sizeof bad, "%s.bad", p1);
    export_to(&a1, p1, NULL);
    export_to(&a2, p2, NULL);
    parsed x, y;
    parse(p1, &x);
    parse(p2, &y);
    assert_true(x.nblob >= 2 && y.nblob >= 2);
    rebuild(&x, 1, y.file + y.blob_off[1], y.blob_len[1], bad);
    expect_fail(bad, "another audit key", "seg-000002.aml seal");
    /* and a whole export re-labelled with the other appliance's certificates fails too */
    free(x.file);
    free(y.file);
    app_close(&a1);
    app_close(&a2);
}

static void test_changed_header_fails_the_file_signature(void **state) {
    (void)state;
    appliance ap;
    app_open(&ap, &small);
    events(ap.a, 10, 3, "x");
    char path[4300], bad[4400];
    snprintf(path, sizeof path, "%s/x.amexp", ap.root);
    snprintf(bad, sizeof bad, "%s.bad", path);
    export_to(&ap, path, NULL);
    parsed p;
    parse(path, &p);
    p.file[24] ^= 0x40; /* since_ms */
    spit(bad, p.file, p.len);
    expect_fail(bad, "file hash mismatch", "export trailer");
    p.file[24] ^= 0x40;
    memcpy(p.file, "AMAUDEXQ", 8);
    spit(bad, p.file, p.len);
    expect_fail(bad, "magic", "export header");
    free(p.file);
    app_close(&ap);
}

static void test_restart_seals_at_close_and_continues_in_a_new_segment(void **state) {
    (void)state;
    appliance ap;
    am_audit_opts big = {.flush_ms = 1};
    app_open(&ap, &big);
    events(ap.a, 5, 5, "x");
    am_audit_close(ap.a);
    am_audit_report dr;
    assert_int_equal(am_audit_verify(ap.audit, &dr), 0);
    assert_int_equal(dr.segments, 1);
    assert_int_equal(dr.sealed, 1);
    /* reopen: the key is loaded from the directory, writing continues in segment 2 */
    assert_int_equal(am_audit_open(ap.audit, &big, &ap.a), 0);
    events(ap.a, 5, 5, "x");
    char path[4300];
    snprintf(path, sizeof path, "%s/x.amexp", ap.root);
    am_audit_export_info info;
    export_to(&ap, path, &info);
    assert_int_equal(info.segments, 2);
    am_audit_export_report rep;
    assert_int_equal(am_audit_export_verify(path, &rep), 0);
    assert_int_equal(rep.r.records, 10);
    assert_int_equal(am_audit_verify(ap.audit, &dr), 0);
    assert_int_equal(dr.records, 10);
    app_close(&ap);
}

static void test_empty_range_exports_and_verifies(void **state) {
    (void)state;
    appliance ap;
    app_open(&ap, &small);
    events(ap.a, 5, 5, "x");
    char path[4300];
    snprintf(path, sizeof path, "%s/x.amexp", ap.root);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    am_audit_export_info info;
    assert_int_equal(am_audit_export(ap.a, ap.root_pem, 1, 2, fd, &info), 0); /* 1970 */
    close(fd);
    assert_int_equal(info.segments, 0);
    am_audit_export_report rep;
    assert_int_equal(am_audit_export_verify(path, &rep), 0);
    assert_int_equal(rep.r.records, 0);
    app_close(&ap);
}

static void test_garbage_export_files_are_refused_without_crashing(void **state) {
    (void)state;
    appliance ap;
    app_open(&ap, &small);
    events(ap.a, 12, 3, "x");
    char path[4300], bad[4400];
    snprintf(path, sizeof path, "%s/x.amexp", ap.root);
    snprintf(bad, sizeof bad, "%s.bad", path);
    export_to(&ap, path, NULL);
    parsed p;
    parse(path, &p);
    /* absurd lengths in the header and in a blob length */
    uint8_t *cp = malloc(p.len);
    memcpy(cp, p.file, p.len);
    cp[43] = 0x7f; /* cert_len huge */
    spit(bad, cp, p.len);
    expect_fail(bad, "impossible lengths", "export header");
    memcpy(cp, p.file, p.len);
    put64(cp + p.blob_off[0] - 8, UINT64_MAX);
    spit(bad, cp, p.len);
    expect_fail(bad, "does not fit", "segment blob 1");
    /* every single-byte truncation point of the first 200 bytes fails cleanly */
    for (size_t n = 0; n < 200; n += 7) {
        spit(bad, p.file, n);
        am_audit_export_report rep;
        assert_true(am_audit_export_verify(bad, &rep) < 0);
    }
    free(cp);
    free(p.file);
    app_close(&ap);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_verifies_and_shows_every_record),
        cmocka_unit_test(test_export_read_delivers_records_in_order),
        cmocka_unit_test(test_flipped_byte_names_segment_and_block),
        cmocka_unit_test(test_dropped_block_is_detected),
        cmocka_unit_test(test_reordered_blocks_are_detected),
        cmocka_unit_test(test_truncated_export_is_detected),
        cmocka_unit_test(test_segment_from_another_appliance_is_refused),
        cmocka_unit_test(test_changed_header_fails_the_file_signature),
        cmocka_unit_test(test_restart_seals_at_close_and_continues_in_a_new_segment),
        cmocka_unit_test(test_empty_range_exports_and_verifies),
        cmocka_unit_test(test_garbage_export_files_are_refused_without_crashing),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    am_pki_thread_done();
    return rc;
}
