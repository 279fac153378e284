/*
 * tests/unit/display_name_test.c — unit tests for common/display_name (cmocka): the one check of
 * the display names of users, teams, orgs and pods, rule by rule, each with the name that just
 * passes beside the one that just fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "common/display_name.h"
#include "common/err.h"

static int check(const char *in, char *out) {
    return am_display_name_check(in, strlen(in), out, AM_DISPLAY_NAME_BUF);
}

static void test_unicode_names_pass_as_given_and_are_trimmed(void **st) {
    (void)st;
    char out[AM_DISPLAY_NAME_BUF];
    assert_int_equal(check("Zo\xc3\xab", out), 0);
    assert_string_equal(out, "Zo\xc3\xab");
    assert_int_equal(check("\xc3\x89quipe \xf0\x9f\x9a\x80", out), 0); /* Équipe 🚀 */
    assert_string_equal(out, "\xc3\x89quipe \xf0\x9f\x9a\x80");
    /* outer ASCII and unicode spaces go (U+00A0, U+3000); inner ones stay */
    assert_int_equal(check(" \t\xc2\xa0"
                           "a  b\xe3\x80\x80 ",
                           out),
                     0);
    assert_string_equal(out, "a  b");
    /* decomposed text is kept as given (no normalisation): e + U+0301 */
    assert_int_equal(check("Zoe\xcc\x81", out), 0);
    assert_string_equal(out, "Zoe\xcc\x81");
}

static void test_64_characters_pass_65_fail(void **st) {
    (void)st;
    char in[400] = "", out[AM_DISPLAY_NAME_BUF];
    for (int i = 0; i < 64; i++)
        strcat(in, "\xf0\x9f\x9a\x80"); /* 64 rockets, 256 bytes */
    assert_int_equal(check(in, out), 0);
    assert_int_equal(am_utf8_len(out), 64);
    strcat(in, "x");
    assert_int_equal(check(in, out), -AM_EINVAL);
    assert_string_equal(am_err_last(), "display_name: at most 64 characters (this one has 65)");
}

static void test_control_and_bidi_characters_are_refused_by_position(void **st) {
    (void)st;
    char out[AM_DISPLAY_NAME_BUF];
    assert_int_equal(check("ab\x1b[31m", out), -AM_EINVAL);
    assert_string_equal(am_err_last(),
                        "display_name: control character U+001B at character 3 is not allowed");
    assert_int_equal(check("a\xc2\x85"
                           "b",
                           out),
                     -AM_EINVAL); /* C1 NEL inside */
    assert_int_equal(check("a\x7f", out), -AM_EINVAL);
    assert_int_equal(check("a\xe2\x80\xa8"
                           "b",
                           out),
                     -AM_EINVAL); /* line separator inside */
    static const char *const bidi[] = {"\xe2\x80\xaa", "\xe2\x80\xae", "\xe2\x81\xa6",
                                       "\xe2\x81\xa9"}; /* U+202A U+202E U+2066 U+2069 */
    for (size_t i = 0; i < 4; i++) {
        char in[16];
        strcpy(in, "x");
        strcat(in, bidi[i]);
        assert_int_equal(check(in, out), -AM_EINVAL);
        assert_non_null(strstr(am_err_last(), "bidirectional control character U+20"));
    }
    /* the neighbours pass: U+2029's neighbour U+202F (a space, inside), U+2065, U+206A */
    assert_int_equal(check("a\xe2\x80\xaf"
                           "b",
                           out),
                     0);
    assert_int_equal(check("a\xe2\x81\xa5"
                           "b",
                           out),
                     0);
    assert_int_equal(check("a\xe2\x81\xaa"
                           "b",
                           out),
                     0);
    /* an embedded NUL (len counts it) is a control character */
    assert_int_equal(am_display_name_check("a\0b", 3, out, sizeof out), -AM_EINVAL);
}

static void test_bytes_that_are_not_utf8_are_refused_with_their_offset(void **st) {
    (void)st;
    char out[AM_DISPLAY_NAME_BUF];
    static const char *const bad[] = {
        "ab\xff", "ab\xc0\xaf", "ab\xed\xa0\x80", "ab\xf4\x90\x80\x80", "ab\xe2\x82", "ab\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(check(bad[i], out), -AM_EINVAL);
        assert_non_null(strstr(am_err_last(), "not valid UTF-8"));
        assert_non_null(strstr(am_err_last(), "at offset 2"));
        size_t at = 99;
        assert_int_equal(am_utf8_check(bad[i], strlen(bad[i]), &at), -AM_EINVAL);
        assert_int_equal(at, 2);
    }
    assert_int_equal(am_utf8_check("\xf4\x8f\xbf\xbf", 4, NULL), 0); /* U+10FFFF is fine */
}

static void test_empty_and_blank_are_refused(void **st) {
    (void)st;
    char out[AM_DISPLAY_NAME_BUF];
    assert_int_equal(check("", out), -AM_EINVAL);
    assert_int_equal(check(" \xe3\x80\x80 ", out), -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "display_name: empty"));
    assert_int_equal(am_display_name_check(NULL, 0, out, sizeof out), -AM_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unicode_names_pass_as_given_and_are_trimmed),
        cmocka_unit_test(test_64_characters_pass_65_fail),
        cmocka_unit_test(test_control_and_bidi_characters_are_refused_by_position),
        cmocka_unit_test(test_bytes_that_are_not_utf8_are_refused_with_their_offset),
        cmocka_unit_test(test_empty_and_blank_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
