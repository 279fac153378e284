/*
 * tests/unit/asciicast_test.c — unit tests for runner/pod/asciicast (cmocka): what the runner
 * writes is a zstd stream of asciicast v2 lines that a strict JSON parser reads back to exactly
 * the terminal's text: escapes, control characters, NUL, invalid UTF-8 as U+FFFD, and UTF-8
 * sequences cut between two reads joined again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/util.h"
#include "runner/pod/asciicast.h"

static char path[256];

static int setup(void **st) {
    (void)st;
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(path, sizeof path, "%s/cast-%d.cast.zst", tmp ? tmp : "/tmp", (int)getpid());
    unlink(path);
    return 0;
}

/* Decompress the whole file; the caller frees. */
static char *read_cast(size_t *len) {
    uint8_t *z = NULL;
    size_t zlen = 0;
    assert_int_equal(am_read_file(path, 64u << 20, &z, &zlen), 0);
    unsigned long long n = ZSTD_getFrameContentSize(z, zlen);
    size_t cap = n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR ? (16u << 20) : n;
    char *out = malloc(cap + 1);
    assert_non_null(out);
    ZSTD_DStream *ds = ZSTD_createDStream();
    ZSTD_inBuffer in = {z, zlen, 0};
    ZSTD_outBuffer ob = {out, cap, 0};
    size_t r;
    do {
        r = ZSTD_decompressStream(ds, &ob, &in);
        assert_false(ZSTD_isError(r));
    } while (r != 0 && in.pos < in.size);
    assert_int_equal(r, 0); /* a complete frame: close finished it */
    ZSTD_freeDStream(ds);
    free(z);
    out[ob.pos] = 0;
    *len = ob.pos;
    return out;
}

/* The lines as parsed JSON values (strict: each line must parse by itself). */
static size_t parse_lines(char *text, json_t **lines, size_t cap) {
    size_t n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t e;
        json_t *v = json_loads(line, JSON_ALLOW_NUL, &e);
        if (!v)
            fail_msg("line %zu is not JSON (%s): %s", n, e.text, line);
        assert_true(n < cap);
        lines[n++] = v;
    }
    return n;
}

/* The "o" text of every event, concatenated, with its length. */
static size_t events_text(json_t **lines, size_t n, char *out, size_t cap) {
    size_t o = 0;
    double last_t = 0;
    for (size_t i = 1; i < n; i++) {
        json_t *ev = lines[i];
        assert_true(json_is_array(ev) && json_array_size(ev) == 3);
        double t = json_real_value(json_array_get(ev, 0));
        assert_true(t >= last_t); /* times never go back */
        last_t = t;
        assert_string_equal(json_string_value(json_array_get(ev, 1)), "o");
        json_t *s = json_array_get(ev, 2);
        size_t l = json_string_length(s);
        assert_true(o + l <= cap);
        memcpy(out + o, json_string_value(s), l);
        o += l;
    }
    return o;
}

static void test_header_and_events_parse_back_to_the_terminal_text(void **st) {
    (void)st;
    am_cast *c = NULL;
    assert_int_equal(am_cast_open(path, 120, 40, 1700000000, &c), 0);
    const char a[] = "say \"hi\" \\ back\r\n\t\x1b[31mred\x1b[0m \x7f";
    am_cast_output(c, (const uint8_t *)a, sizeof a - 1);
    const uint8_t nul[] = {'x', 0, 'y'};
    am_cast_output(c, nul, sizeof nul);
    assert_int_equal(am_cast_close(c), 0);

    size_t len;
    char *text = read_cast(&len);
    json_t *lines[8];
    size_t n = parse_lines(text, lines, 8);
    assert_int_equal(n, 3);
    json_t *h = lines[0];
    assert_int_equal(json_integer_value(json_object_get(h, "version")), 2);
    assert_int_equal(json_integer_value(json_object_get(h, "width")), 120);
    assert_int_equal(json_integer_value(json_object_get(h, "height")), 40);
    assert_int_equal(json_integer_value(json_object_get(h, "timestamp")), 1700000000);
    assert_string_equal(json_string_value(json_object_get(json_object_get(h, "env"), "TERM")),
                        "xterm-256color");
    char got[256];
    size_t gl = events_text(lines, n, got, sizeof got);
    assert_int_equal(gl, sizeof a - 1 + sizeof nul);
    assert_memory_equal(got, a, sizeof a - 1);
    assert_memory_equal(got + sizeof a - 1, nul, sizeof nul);
    for (size_t i = 0; i < n; i++)
        json_decref(lines[i]);
    free(text);
}

static void test_invalid_utf8_becomes_replacement_and_cut_sequences_are_joined(void **st) {
    (void)st;
    am_cast *c = NULL;
    assert_int_equal(am_cast_open(path, 80, 24, 0, &c), 0);
    /* "é" (c3 a9) and "€" (e2 82 ac) cut across calls; then invalid bytes: a lone
     * continuation, an overlong "/", a surrogate, a byte that is never UTF-8. */
    const uint8_t p1[] = {'a', 0xc3};
    const uint8_t p2[] = {0xa9, 'b', 0xe2, 0x82};
    const uint8_t p3[] = {0xac, 0x80, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xff, 'z'};
    am_cast_output(c, p1, sizeof p1);
    am_cast_output(c, p2, sizeof p2);
    am_cast_output(c, p3, sizeof p3);
    assert_int_equal(am_cast_close(c), 0);

    size_t len;
    char *text = read_cast(&len);
    json_t *lines[8];
    size_t n = parse_lines(text, lines, 8);
    char got[256];
    size_t gl = events_text(lines, n, got, sizeof got);
    const char want[] = "a\xc3\xa9"
                        "b\xe2\x82\xac"
                        "\xef\xbf\xbd"                         /* 80 */
                        "\xef\xbf\xbd\xef\xbf\xbd"             /* c0 af */
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" /* ed a0 80 */
                        "\xef\xbf\xbd"                         /* ff */
                        "z";
    assert_int_equal(gl, sizeof want - 1);
    assert_memory_equal(got, want, sizeof want - 1);
    for (size_t i = 0; i < n; i++)
        json_decref(lines[i]);
    free(text);
}

static void test_many_large_events_round_trip(void **st) {
    (void)st;
    am_cast *c = NULL;
    assert_int_equal(am_cast_open(path, 80, 24, 0, &c), 0);
    static uint8_t chunk[64 << 10];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (uint8_t)(' ' + i % 90);
    for (int k = 0; k < 32; k++)
        am_cast_output(c, chunk, sizeof chunk);
    assert_int_equal(am_cast_close(c), 0);
    size_t len;
    char *text = read_cast(&len);
    static json_t *lines[64];
    size_t n = parse_lines(text, lines, 64);
    assert_int_equal(n, 33);
    static char got[33 << 16];
    assert_int_equal(events_text(lines, n, got, sizeof got), 32 * sizeof chunk);
    for (int k = 0; k < 32; k++)
        assert_memory_equal(got + (size_t)k * sizeof chunk, chunk, sizeof chunk);
    for (size_t i = 0; i < n; i++)
        json_decref(lines[i]);
    free(text);
}

static void test_an_unwritable_path_is_an_error_not_a_crash(void **st) {
    (void)st;
    am_cast *c = NULL;
    assert_int_not_equal(am_cast_open("/nonexistent-dir/x.cast.zst", 80, 24, 0, &c), 0);
    assert_null(c);
    /* A symlink in place of the recording is not followed. */
    char link[300];
    snprintf(link, sizeof link, "%s.link", path);
    unlink(link);
    assert_int_equal(symlink("/dev/null", link), 0);
    assert_int_not_equal(am_cast_open(link, 80, 24, 0, &c), 0);
    unlink(link);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_header_and_events_parse_back_to_the_terminal_text, setup),
        cmocka_unit_test_setup(test_invalid_utf8_becomes_replacement_and_cut_sequences_are_joined,
                               setup),
        cmocka_unit_test_setup(test_many_large_events_round_trip, setup),
        cmocka_unit_test_setup(test_an_unwritable_path_is_an_error_not_a_crash, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
