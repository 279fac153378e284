/*
 * tests/unit/throttle_test.c — unit tests for appliance/auth/throttle (cmocka): the login
 * throttle's rules with explicit times (no sleeping).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "appliance/auth/throttle.h"
#include "common/err.h"

static void fail_n(am_throttle *t, const char *user, const char *addr, int n, uint64_t now) {
    for (int i = 0; i < n; i++) {
        unsigned retry;
        const char *why;
        assert_int_equal(am_throttle_begin(t, "o", user, addr, now, &retry, &why), 0);
        am_throttle_end(t, "o", user, addr, 0, now);
    }
}

static void test_fifth_failure_locks_the_pair_not_the_user_elsewhere(void **st) {
    (void)st;
    am_throttle *t;
    assert_int_equal(am_throttle_new(&t), 0);
    fail_n(t, "admin", "10.0.0.2", 5, 1000);
    unsigned retry = 0;
    const char *why = NULL;
    assert_int_equal(am_throttle_begin(t, "o", "admin", "10.0.0.2", 1000, &retry, &why), -AM_EFULL);
    assert_string_equal(why, "locked");
    assert_int_equal(retry, 30);
    /* the owner from another address is not affected */
    assert_int_equal(am_throttle_begin(t, "o", "admin", "10.0.0.1", 1000, &retry, &why), 0);
    am_throttle_end(t, "o", "admin", "10.0.0.1", 1, 1000);
    /* the lock ends after 30 s; the next failure doubles it */
    assert_int_equal(am_throttle_begin(t, "o", "admin", "10.0.0.2", 31000, &retry, &why), 0);
    am_throttle_end(t, "o", "admin", "10.0.0.2", 0, 31000);
    assert_int_equal(am_throttle_begin(t, "o", "admin", "10.0.0.2", 31000, &retry, &why),
                     -AM_EFULL);
    assert_int_equal(retry, 60);
    am_throttle_free(t);
}

static void test_unknown_and_real_names_are_counted_alike(void **st) {
    (void)st;
    am_throttle *t;
    assert_int_equal(am_throttle_new(&t), 0);
    fail_n(t, "admin", "10.0.0.3", 5, 5000);
    fail_n(t, "nobody", "10.0.0.4", 5, 5000);
    unsigned r1, r2;
    const char *w1, *w2;
    assert_int_equal(am_throttle_begin(t, "o", "admin", "10.0.0.3", 5000, &r1, &w1), -AM_EFULL);
    assert_int_equal(am_throttle_begin(t, "o", "nobody", "10.0.0.4", 5000, &r2, &w2), -AM_EFULL);
    assert_int_equal(r1, r2);
    assert_string_equal(w1, w2);
    am_throttle_free(t);
}

static void test_an_address_flood_fills_its_bucket_and_drains(void **st) {
    (void)st;
    am_throttle *t;
    assert_int_equal(am_throttle_new(&t), 0);
    char user[32];
    for (int i = 0; i < 20; i++) {
        snprintf(user, sizeof user, "u%d", i);
        fail_n(t, user, "10.0.0.9", 1, 0);
    }
    unsigned retry;
    const char *why;
    assert_int_equal(am_throttle_begin(t, "o", "fresh", "10.0.0.9", 0, &retry, &why), -AM_EFULL);
    assert_string_equal(why, "address");
    assert_true(retry >= 1 && retry <= 3);
    /* other addresses are unaffected; one failure drains every 3 s */
    assert_int_equal(am_throttle_begin(t, "o", "fresh", "10.0.0.8", 0, &retry, &why), 0);
    am_throttle_end(t, "o", "fresh", "10.0.0.8", -1, 0);
    assert_int_equal(am_throttle_begin(t, "o", "fresh", "10.0.0.9", 3000, &retry, &why), 0);
    am_throttle_end(t, "o", "fresh", "10.0.0.9", -1, 3000);
    am_throttle_free(t);
}

static void test_at_most_four_in_progress_per_address(void **st) {
    (void)st;
    am_throttle *t;
    assert_int_equal(am_throttle_new(&t), 0);
    unsigned retry;
    const char *why;
    for (int i = 0; i < 4; i++)
        assert_int_equal(am_throttle_begin(t, "o", "a", "10.0.1.1", 0, &retry, &why), 0);
    assert_int_equal(am_throttle_begin(t, "o", "a", "10.0.1.1", 0, &retry, &why), -AM_EFULL);
    assert_string_equal(why, "busy");
    am_throttle_end(t, "o", "a", "10.0.1.1", -1, 0); /* no verdict: nothing counted */
    assert_int_equal(am_throttle_begin(t, "o", "a", "10.0.1.1", 0, &retry, &why), 0);
    am_throttle_free(t);
}

static void test_forget_user_clears_every_address_lock(void **st) {
    (void)st;
    am_throttle *t;
    assert_int_equal(am_throttle_new(&t), 0);
    fail_n(t, "lena", "10.0.2.1", 5, 0);
    fail_n(t, "lena", "10.0.2.2", 5, 0);
    fail_n(t, "other", "10.0.2.3", 5, 0);
    am_throttle_forget_user(t, "o", "lena");
    unsigned retry;
    const char *why;
    assert_int_equal(am_throttle_begin(t, "o", "lena", "10.0.2.1", 0, &retry, &why), 0);
    assert_int_equal(am_throttle_begin(t, "o", "lena", "10.0.2.2", 0, &retry, &why), 0);
    assert_int_equal(am_throttle_begin(t, "o", "other", "10.0.2.3", 0, &retry, &why), -AM_EFULL);
    am_throttle_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifth_failure_locks_the_pair_not_the_user_elsewhere),
        cmocka_unit_test(test_unknown_and_real_names_are_counted_alike),
        cmocka_unit_test(test_an_address_flood_fills_its_bucket_and_drains),
        cmocka_unit_test(test_at_most_four_in_progress_per_address),
        cmocka_unit_test(test_forget_user_clears_every_address_lock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
