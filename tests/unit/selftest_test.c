/*
 * tests/unit/selftest_test.c — how the model endpoint self-test judges answers
 * (appliance/gateway/selftest, am_gw_selftest_judge), for both APIs, without a server: a
 * well-formed get_time call passes, and every way a local model gets it wrong is a failure
 * whose reason says what happened (text instead of a call, another tool, arguments that are not
 * a JSON object, no call id, no text after the tool's result, not the API's shape).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "appliance/gateway/selftest/selftest.h"

static int judge(int anthropic, int step, const char *body, char *why) {
    return am_gw_selftest_judge(anthropic, step, body, strlen(body), why, 300);
}

#define CHAT_CALL(name, args)                                                                      \
    "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"        \
    "\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"" name                       \
    "\",\"arguments\":" args "}}]}}]}"

static void test_openai_answers_are_judged_with_reasons(void **state) {
    (void)state;
    char why[300];
    /* positive control: a well-formed call of get_time */
    assert_int_equal(judge(0, 1, CHAT_CALL("get_time", "\"{\\\"timezone\\\":\\\"UTC\\\"}\""), why),
                     1);
    assert_string_equal(why, "");
    assert_int_equal(judge(0, 1, "{\"choices\":[{\"message\":{\"content\":\"noon\"}}]}", why), 0);
    assert_non_null(strstr(why, "answered with text instead of calling get_time (\"noon\")"));
    assert_int_equal(judge(0, 1, CHAT_CALL("get_weather", "\"{}\""), why), 0);
    assert_non_null(strstr(why, "called \"get_weather\" instead of get_time"));
    assert_int_equal(judge(0, 1, CHAT_CALL("get_time", "\"{\\\"timezone\\\": \\\"UT\""), why), 0);
    assert_non_null(strstr(why, "arguments of get_time are not a JSON object"));
    assert_int_equal(judge(0, 1, CHAT_CALL("get_time", "\"[1]\""), why), 0);
    assert_non_null(strstr(why, "not a JSON object"));
    assert_int_equal(judge(0, 1, CHAT_CALL("get_time", "{}"), why), 0); /* not a string */
    assert_int_equal(judge(0, 1, "{\"object\":\"list\"}", why), 0);
    assert_non_null(strstr(why, "not a Chat Completions answer"));
    /* completion and the final answer */
    assert_int_equal(judge(0, 0, "{\"choices\":[{\"message\":{\"content\":\"OK\"}}]}", why), 1);
    assert_int_equal(judge(0, 0, "{\"choices\":[]}", why), 0);
    assert_int_equal(judge(0, 2, "{\"choices\":[{\"message\":{\"content\":\"It is noon\"}}]}", why),
                     1);
    assert_int_equal(judge(0, 2, CHAT_CALL("get_time", "\"{}\""), why), 0);
    assert_non_null(strstr(why, "no text answer after the get_time result"));
    assert_int_equal(judge(0, 0, "not json", why), 0);
}

static void test_anthropic_answers_are_judged_with_reasons(void **state) {
    (void)state;
    char why[300];
    const char *good = "{\"content\":[{\"type\":\"text\",\"text\":\"Let me check.\"},"
                       "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_time\","
                       "\"input\":{\"timezone\":\"UTC\"}}]}";
    assert_int_equal(judge(1, 1, good, why), 1);
    assert_int_equal(judge(1, 1, "{\"content\":[{\"type\":\"text\",\"text\":\"noon\"}]}", why), 0);
    assert_non_null(strstr(why, "answered with text instead of calling get_time"));
    assert_int_equal(judge(1, 1,
                           "{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
                           "\"get_time\",\"input\":\"{\\\"timezone\\\"\"}]}",
                           why),
                     0);
    assert_non_null(strstr(why, "input is not a JSON object"));
    assert_int_equal(judge(1, 1,
                           "{\"content\":[{\"type\":\"tool_use\",\"name\":\"get_time\","
                           "\"input\":{}}]}",
                           why),
                     0);
    assert_non_null(strstr(why, "no id"));
    assert_int_equal(judge(1, 2, "{\"content\":[{\"type\":\"text\",\"text\":\"12:00\"}]}", why), 1);
    assert_int_equal(judge(1, 2, "{\"content\":[]}", why), 0);
    assert_int_equal(judge(1, 0, "{\"choices\":[{\"message\":{\"content\":\"OK\"}}]}", why), 0);
    assert_non_null(strstr(why, "not a Messages answer"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_answers_are_judged_with_reasons),
        cmocka_unit_test(test_anthropic_answers_are_judged_with_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
