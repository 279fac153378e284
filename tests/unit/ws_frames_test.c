/*
 * tests/unit/ws_frames_test.c — unit tests for appliance/http/ws_frames (cmocka): the
 * WebSocket frame-length tracker refuses an announced length above the limit as soon as the
 * header is complete, however the bytes are split, and follows frame boundaries exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "appliance/http/ws_frames.h"

#define MAX (64u << 10)

/* A masked client frame header announcing len (no payload). */
static size_t header(uint8_t *b, uint64_t len) {
    size_t n = 0;
    b[n++] = 0x82;
    if (len < 126) {
        b[n++] = 0x80 | (uint8_t)len;
    } else if (len < 65536) {
        b[n++] = 0x80 | 126;
        b[n++] = (uint8_t)(len >> 8);
        b[n++] = (uint8_t)len;
    } else {
        b[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            b[n++] = (uint8_t)(len >> (8 * i));
    }
    memset(b + n, 0xAA, 4); /* mask */
    return n + 4;
}

static void test_huge_announced_length_is_refused_at_the_header(void **st) {
    (void)st;
    uint8_t b[16];
    size_t n = header(b, (1ull << 63) - 1);
    am_ws_frames f = {0};
    /* one byte at a time: refused exactly when the last header byte arrives */
    for (size_t i = 0; i + 1 < n; i++)
        assert_int_equal(am_ws_frames_feed(&f, b + i, 1, MAX), 0);
    assert_int_equal(am_ws_frames_feed(&f, b + n - 1, 1, MAX), -1);
}

static void test_frames_at_the_limit_pass_and_boundaries_are_followed(void **st) {
    (void)st;
    static uint8_t buf[3 * (MAX + 16)];
    size_t n = 0;
    uint64_t lens[] = {5, 300, MAX};
    for (int k = 0; k < 3; k++) {
        n += header(buf + n, lens[k]);
        memset(buf + n, 0x82, lens[k]); /* payload bytes that look like headers */
        n += lens[k];
    }
    am_ws_frames f = {0};
    for (size_t off = 0; off < n; off += 1000) /* odd split sizes */
        assert_int_equal(am_ws_frames_feed(&f, buf + off, n - off < 1000 ? n - off : 1000, MAX), 0);
    assert_int_equal(f.left, 0);
    assert_int_equal(f.have, 0);
    /* the next frame, just over the limit, is refused */
    uint8_t b[16];
    size_t h = header(b, MAX + 1);
    assert_int_equal(am_ws_frames_feed(&f, b, h, MAX), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_huge_announced_length_is_refused_at_the_header),
        cmocka_unit_test(test_frames_at_the_limit_pass_and_boundaries_are_followed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
