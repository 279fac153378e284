/*
 * tests/unit/agentstate_test.c — unit tests for runner/pod/agentstate (cmocka): the scanner
 * that turns a pod's PTY output into agent states. Structured signals (airmesh-notify's OSC
 * 777, other OSC 777 notifications, OSC 9 but not 9;4 progress, Claude Code's titles), split
 * anywhere across chunks; output and quiet as fallbacks; garbage and an endless OSC bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "runner/pod/agentstate.h"

typedef struct {
    int n;
    char state[8][16], source[8][16], msg[8][256];
} changes;

static void on_change(void *ud, const char *state, const char *source, const char *message) {
    changes *c = ud;
    if (c->n < 8) {
        snprintf(c->state[c->n], sizeof c->state[0], "%s", state);
        snprintf(c->source[c->n], sizeof c->source[0], "%s", source);
        snprintf(c->msg[c->n], sizeof c->msg[0], "%s", message);
    }
    c->n++;
}

static void feed(am_agentstate *a, const char *s, uint64_t now) {
    am_agentstate_output(a, (const uint8_t *)s, strlen(s), now);
}

/* Feed s one byte per call: every split point at once. */
static void feed_bytewise(am_agentstate *a, const char *s, uint64_t now) {
    for (size_t i = 0; s[i]; i++)
        am_agentstate_output(a, (const uint8_t *)s + i, 1, now);
}

static void test_notify_sets_the_state_it_names(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    feed(&a, "\033]777;notify;airmesh;waiting;need a review\007", 1);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.state[0], "waiting");
    assert_string_equal(c.source[0], "notify");
    assert_string_equal(c.msg[0], "need a review");
    /* the same again is no change; ST as terminator works too */
    feed(&a, "\033]777;notify;airmesh;waiting;need a review\033\\", 2);
    assert_int_equal(c.n, 1);
    feed(&a, "\033]777;notify;airmesh;idle;done; all of it\033\\", 3);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.state[1], "idle");
    assert_string_equal(c.msg[1], "done; all of it");
    /* an unknown state from the pod changes nothing */
    feed(&a, "\033]777;notify;airmesh;exited;bye\007", 4);
    feed(&a, "\033]777;notify;airmesh;\007", 5);
    assert_int_equal(c.n, 2);
    assert_string_equal(a.state, "idle");
}

static void test_sequences_split_at_every_byte_still_count(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    feed_bytewise(&a, "ab\033]777;notify;airmesh;waiting;split \xe2\x9c\x93 me\007cd", 1);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.state[0], "waiting");
    assert_string_equal(c.msg[0], "split \xe2\x9c\x93 me");
    feed_bytewise(&a, "\033]9;Claude needs your permission to use Bash\033\\", 2);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.source[1], "osc9");
    assert_string_equal(c.msg[1], "Claude needs your permission to use Bash");
}

static void test_osc9_notifies_but_progress_and_conemu_commands_do_not(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    feed(&a, "\033]9;4;3;0\007\033]9;4;0\007\033]9;9;/workspace\007\033]9;\007\033]9;12\007", 1);
    assert_int_equal(c.n, 0);
    feed(&a, "\033]9;Task done\007", 2);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.state[0], "waiting");
    assert_string_equal(c.source[0], "osc9");
    assert_string_equal(c.msg[0], "Task done");
    /* "9;4" progress right after changes nothing either */
    feed(&a, "\033]9;4;1;50\007", 3);
    assert_int_equal(c.n, 1);
}

static void test_other_osc777_notifications_mean_waiting(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    feed(&a, "\033]777;notify;Codex;Approve running git push?\007", 1);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.state[0], "waiting");
    assert_string_equal(c.source[0], "osc777");
    assert_string_equal(c.msg[0], "Codex: Approve running git push?");
    feed(&a, "\033]777;notify;no body\007\033]777;preexec\007", 2); /* not notifications */
    assert_int_equal(c.n, 1);
}

static void test_claude_titles_spinner_working_star_idle_others_no_state(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    feed(&a, "\033]0;user@pod: /workspace\007", 1); /* a shell's title: no state */
    assert_int_equal(c.n, 0);
    feed(&a, "\033]0;\xe2\xa0\x82 Fixing the parser\007", 2); /* U+2802 braille spinner */
    assert_int_equal(c.n, 1);
    assert_string_equal(c.state[0], "working");
    assert_string_equal(c.source[0], "title");
    assert_string_equal(c.msg[0], "\xe2\xa0\x82 Fixing the parser");
    /* the next frames (another glyph, a quarter circle) are no change */
    feed(&a, "\033]2;\xe2\xa0\x90 Fixing the parser\007\033]0;\xe2\x97\x91 Fixing\007", 3);
    assert_int_equal(c.n, 1);
    feed(&a, "\033]0;\xe2\x9c\xb3 Fixing the parser\007", 4); /* ✳: the turn ended */
    assert_int_equal(c.n, 2);
    assert_string_equal(c.state[1], "idle");
    assert_string_equal(c.source[1], "title");
    /* a glyph without the space after it is just a title */
    feed(&a,
         "\033]0;\xe2\xa0\x82"
         "Fixing\007",
         5);
    assert_int_equal(c.n, 2);
    /* once a title said "working", the agent's own redraws are not work */
    char redraw[300];
    memset(redraw, 'x', sizeof redraw - 1);
    redraw[sizeof redraw - 1] = '\0';
    feed(&a, redraw, 6);
    assert_int_equal(c.n, 2);
}

static void test_output_after_waiting_means_working_but_not_a_blink(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    feed(&a, "\033]777;notify;airmesh;waiting;question\007", 1);
    assert_int_equal(c.n, 1);
    /* cursor blinks, colours, a cursor move, a short echo: no work */
    for (int i = 0; i < 100; i++)
        feed(&a, "\033[?25l\033[?25h\033[1;31m\033[H", 2);
    feed(&a, "ok\r\n", 2);
    assert_int_equal(c.n, 1);
    /* 64 printable bytes: working */
    char out[80];
    memset(out, 'y', 70);
    out[70] = '\0';
    feed(&a, out, 3);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.state[1], "working");
    assert_string_equal(c.source[1], "output");
}

static void test_input_then_output_means_working(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    feed(&a, "\033]0;\xe2\xa0\x82 Thinking\007", 1); /* structured: output alone is not work */
    feed(&a, "\033]9;Allow edit?\007", 2);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.state[1], "waiting");
    feed(&a, "a long redraw of the permission dialog, more than sixty-four bytes long...", 3);
    assert_int_equal(c.n, 2);
    am_agentstate_input(&a); /* the user answered */
    feed(&a, "y", 4);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.state[2], "working");
}

static void test_quiet_means_idle_but_waiting_stays_waiting(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    am_agentstate_tick(&a, 999);
    assert_int_equal(c.n, 0);
    char out[80];
    memset(out, 'z', 70);
    out[70] = '\0';
    feed(&a, out, 500);
    assert_int_equal(c.n, 1); /* working */
    am_agentstate_tick(&a, 1499);
    assert_int_equal(c.n, 1);
    am_agentstate_tick(&a, 1500);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.state[1], "idle");
    assert_string_equal(c.source[1], "quiet");
    am_agentstate_tick(&a, 5000); /* idle stays idle: no repeat */
    assert_int_equal(c.n, 2);
    feed(&a, "\033]777;notify;airmesh;waiting;your turn\007", 6000);
    am_agentstate_tick(&a, 60000);
    assert_int_equal(c.n, 3);
    assert_string_equal(a.state, "waiting");
}

static void test_messages_lose_control_characters_and_stop_at_200_bytes(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    char seq[1100] = "\033]9;tab\there \x01\x7f\xc2\x9b[2J bad\xff\xfe utf8 ";
    size_t n = strlen(seq);
    while (n < 600)
        seq[n++] = '\xc3', seq[n++] = '\xa9'; /* é: a 2-byte character */
    seq[n++] = '\007';
    seq[n] = '\0';
    feed(&a, seq, 1);
    assert_int_equal(c.n, 1);
    assert_true(strlen(c.msg[0]) <= AM_AGENTSTATE_MSG_MAX);
    assert_memory_equal(c.msg[0], "tab here [2J bad utf8 ", 22);
    for (const char *p = c.msg[0]; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
    /* cut at a character boundary: the last byte ends an é */
    assert_int_equal((unsigned char)c.msg[0][strlen(c.msg[0]) - 1], 0xa9);
    char out[16];
    am_agentstate_sanitize("abc\xe2\x82", 5, out, sizeof out); /* a cut sequence is dropped */
    assert_string_equal(out, "abc");
}

static void test_endless_osc_is_bounded_and_parsing_recovers(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    feed(&a, "\033]777;notify;airmesh;waiting;", 1);
    char junk[4096];
    memset(junk, 'q', sizeof junk - 1);
    junk[sizeof junk - 1] = '\0';
    for (int i = 0; i < 256; i++) /* 1 MiB without a terminator */
        feed(&a, junk, 2);
    assert_true(a.osc_len <= AM_AGENTSTATE_OSC_MAX);
    assert_true(a.osc_dropped >= 1);
    /* its text was plain output (no state had been set: that is work) */
    assert_int_equal(c.n, 1);
    assert_string_equal(c.state[0], "working");
    /* and the next real signal still parses */
    feed(&a, "\007\033]777;notify;airmesh;waiting;after junk\007", 3);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.msg[1], "after junk");
}

static void test_garbage_never_crashes_and_cancelled_sequences_end(void **st) {
    (void)st;
    changes c = {0};
    am_agentstate a;
    am_agentstate_init(&a, 1000, 0, on_change, &c);
    uint8_t g[8192];
    uint32_t x = 12345;
    for (int round = 0; round < 64; round++) {
        for (size_t i = 0; i < sizeof g; i++) {
            x = x * 1103515245u + 12345u;
            uint8_t b = (uint8_t)(x >> 16);
            g[i] = (b & 7) == 0 ? 0x1b : (b & 7) == 1 ? ']' : (b & 7) == 2 ? ';' : b;
        }
        am_agentstate_output(&a, g, sizeof g, (uint64_t)round);
        assert_true(a.osc_len <= AM_AGENTSTATE_OSC_MAX);
    }
    /* CAN aborts an OSC: what follows is plain again, and a later signal parses */
    feed(&a, "\033]9;never\030\033]777;notify;airmesh;idle;clean\007", 100);
    assert_string_equal(a.state, "idle");
    assert_string_equal(a.message, "clean");
    /* a DCS string's contents are not output (200 bytes in one would otherwise be work) */
    changes c2 = {0};
    am_agentstate_init(&a, 1000, 0, on_change, &c2);
    char dcs[256] = "\033P";
    memset(dcs + 2, 'x', 200);
    memcpy(dcs + 202, "\033\\", 3);
    feed(&a, dcs, 1);
    assert_int_equal(c2.n, 0);
    assert_string_equal(a.state, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_sets_the_state_it_names),
        cmocka_unit_test(test_sequences_split_at_every_byte_still_count),
        cmocka_unit_test(test_osc9_notifies_but_progress_and_conemu_commands_do_not),
        cmocka_unit_test(test_other_osc777_notifications_mean_waiting),
        cmocka_unit_test(test_claude_titles_spinner_working_star_idle_others_no_state),
        cmocka_unit_test(test_output_after_waiting_means_working_but_not_a_blink),
        cmocka_unit_test(test_input_then_output_means_working),
        cmocka_unit_test(test_quiet_means_idle_but_waiting_stays_waiting),
        cmocka_unit_test(test_messages_lose_control_characters_and_stop_at_200_bytes),
        cmocka_unit_test(test_endless_osc_is_bounded_and_parsing_recovers),
        cmocka_unit_test(test_garbage_never_crashes_and_cancelled_sequences_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
