/*
 * tests/unit/gateway_usage_test.c — the model gateway's pure parts (appliance/gateway/core.h):
 * the usage parser reads exactly the token counts each API reports (OpenAI chat, streamed and
 * not; Responses; Anthropic Messages, streamed and not), however the bytes are split into
 * pieces (every split point of a stream is tried); it ignores "usage" inside text; error bodies
 * are each API's own format (the 429 quota shapes the BRIEF names); paths map to APIs and
 * upstream URLs by the endpoint URL convention; endpoints serve the models they list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "appliance/gateway/core.h"
#include "common/err.h"

static void parse_whole(const char *text, int sse, uint64_t *in, uint64_t *out, int *seen) {
    am_gw_usage u;
    am_gw_usage_init(&u, sse);
    am_gw_usage_feed(&u, text, strlen(text));
    am_gw_usage_finish(&u);
    *in = u.tokens_in;
    *out = u.tokens_out;
    *seen = u.seen;
    am_gw_usage_free(&u);
}

/* The same stream fed in two pieces at every split point gives the same counts. */
static void check_every_split(const char *text, int sse, uint64_t in, uint64_t out) {
    size_t n = strlen(text);
    for (size_t cut = 0; cut <= n; cut++) {
        am_gw_usage u;
        am_gw_usage_init(&u, sse);
        am_gw_usage_feed(&u, text, cut);
        am_gw_usage_feed(&u, text + cut, n - cut);
        am_gw_usage_finish(&u);
        if (u.tokens_in != in || u.tokens_out != out)
            fail_msg("split at %zu: got %llu/%llu, want %llu/%llu", cut,
                     (unsigned long long)u.tokens_in, (unsigned long long)u.tokens_out,
                     (unsigned long long)in, (unsigned long long)out);
        am_gw_usage_free(&u);
    }
    /* and byte by byte */
    am_gw_usage u;
    am_gw_usage_init(&u, sse);
    for (size_t i = 0; i < n; i++)
        am_gw_usage_feed(&u, text + i, 1);
    am_gw_usage_finish(&u);
    assert_int_equal(u.tokens_in, in);
    assert_int_equal(u.tokens_out, out);
    am_gw_usage_free(&u);
}

static void test_openai_chat_body_usage_is_read(void **state) {
    (void)state;
    const char *b = "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[{\"message\":{"
                    "\"content\":\"the usage is fine\"}}],\"usage\":{\"prompt_tokens\":11,"
                    "\"completion_tokens\":7,\"total_tokens\":18}}";
    check_every_split(b, 0, 11, 7);
}

static void test_openai_chat_stream_final_usage_chunk_is_read(void **state) {
    (void)state;
    const char *s =
        "data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\" \\\"usage\\\": 5\"}}]}\r\n\r\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":123,\"completion_tokens\":45}}\n\n"
        "data: [DONE]\n\n";
    check_every_split(s, 1, 123, 45);
}

static void test_responses_stream_completed_usage_is_read(void **state) {
    (void)state;
    const char *s = "event: response.created\n"
                    "data: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n"
                    "event: response.output_text.delta\n"
                    "data: {\"type\":\"response.output_text.delta\",\"delta\":\"usage\"}\n\n"
                    "event: response.completed\n"
                    "data: {\"type\":\"response.completed\",\"response\":{\"status\":"
                    "\"completed\",\"usage\":{\"input_tokens\":31,\"output_tokens\":9,"
                    "\"total_tokens\":40}}}\n\n";
    check_every_split(s, 1, 31, 9);
    const char *b = "{\"object\":\"response\",\"usage\":{\"input_tokens\":5,\"output_tokens\":2}}";
    check_every_split(b, 0, 5, 2);
}

static void test_anthropic_stream_start_and_delta_usage_are_read(void **state) {
    (void)state;
    /* message_start carries input (and an output of 1 so far), message_delta the final output. */
    const char *s = "event: message_start\n"
                    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{"
                    "\"input_tokens\":250,\"output_tokens\":1}}}\n\n"
                    "event: content_block_delta\n"
                    "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\","
                    "\"text\":\"usage output_tokens\"}}\n\n"
                    "event: message_delta\n"
                    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
                    "\"usage\":{\"output_tokens\":42}}\n\n"
                    "event: message_stop\n"
                    "data: {\"type\":\"message_stop\"}\n\n";
    check_every_split(s, 1, 250, 42);
    const char *b = "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],"
                    "\"usage\":{\"input_tokens\":12,\"output_tokens\":3}}";
    check_every_split(b, 0, 12, 3);
}

static void test_usage_inside_text_or_missing_counts_nothing(void **state) {
    (void)state;
    uint64_t in, out;
    int seen;
    parse_whole("data: {\"choices\":[{\"delta\":{\"content\":\"{\\\"usage\\\":{\\\"prompt_"
                "tokens\\\":9}}\"}}]}\n\ndata: [DONE]\n\n",
                1, &in, &out, &seen);
    assert_int_equal(seen, 0);
    assert_int_equal(in + out, 0);
    parse_whole("not json at all usage", 0, &in, &out, &seen);
    assert_int_equal(seen, 0);
    parse_whole("{\"usage\":{\"prompt_tokens\":-4,\"completion_tokens\":\"7\"}}", 0, &in, &out,
                &seen);
    assert_int_equal(seen, 0);
    /* A stream cut before its blank line still counts its last event. */
    parse_whole("data: {\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}", 1, &in, &out, &seen);
    assert_int_equal(in, 3);
    assert_int_equal(out, 4);
}

static void test_multi_line_sse_data_is_joined(void **state) {
    (void)state;
    check_every_split("data: {\"usage\":\n"
                      "data: {\"input_tokens\":8,\n"
                      "data: \"output_tokens\":2}}\n\n",
                      1, 8, 2);
}

static json_t *load(char *s) {
    assert_non_null(s);
    json_t *d = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(d);
    return d;
}

static void test_error_bodies_are_each_apis_own_format(void **state) {
    (void)state;
    json_t *d = load(am_gw_error_body(AM_GW_OPENAI, 429, "quota used up"));
    json_t *e = json_object_get(d, "error");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "quota used up");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "insufficient_quota");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "insufficient_quota");
    assert_true(json_is_null(json_object_get(e, "param")));
    json_decref(d);
    d = load(am_gw_error_body(AM_GW_ANTHROPIC, 429, "quota used up"));
    assert_string_equal(json_string_value(json_object_get(d, "type")), "error");
    e = json_object_get(d, "error");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "rate_limit_error");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "quota used up");
    json_decref(d);
    struct {
        int status;
        const char *openai_code, *anthropic_type;
    } k[] = {{401, "invalid_api_key", "authentication_error"},
             {403, "permission_denied", "permission_error"},
             {404, "model_not_found", "not_found_error"},
             {504, "timeout", "timeout_error"},
             {502, "upstream_error", "api_error"}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        d = load(am_gw_error_body(AM_GW_OPENAI, k[i].status, "m\"x"));
        e = json_object_get(d, "error");
        assert_string_equal(json_string_value(json_object_get(e, "code")), k[i].openai_code);
        assert_string_equal(json_string_value(json_object_get(e, "message")), "m\"x");
        json_decref(d);
        d = load(am_gw_error_body(AM_GW_ANTHROPIC, k[i].status, "m"));
        assert_string_equal(json_string_value(json_object_get(json_object_get(d, "error"), "type")),
                            k[i].anthropic_type);
        json_decref(d);
    }
}

static void test_paths_urls_and_endpoint_choice(void **state) {
    (void)state;
    assert_int_equal(am_gw_api_of_path("/v1/messages"), AM_GW_ANTHROPIC);
    assert_int_equal(am_gw_api_of_path("/v1/messages/count_tokens"), AM_GW_ANTHROPIC);
    assert_int_equal(am_gw_api_of_path("/v1/messages?beta=true"), AM_GW_ANTHROPIC);
    assert_int_equal(am_gw_api_of_path("/v1/messagesx"), AM_GW_OPENAI);
    assert_int_equal(am_gw_api_of_path("/v1/chat/completions"), AM_GW_OPENAI);
    assert_int_equal(am_gw_api_of_path("/admin"), 0);
    Airmesh__V1__ModelEndpoint ep = AIRMESH__V1__MODEL_ENDPOINT__INIT;
    char url[256];
    ep.api = "openai";
    ep.url = "http://h:8000/v1/";
    assert_int_equal(am_gw_upstream_url(&ep, "/v1/chat/completions", url, sizeof url), 0);
    assert_string_equal(url, "http://h:8000/v1/chat/completions");
    ep.api = "anthropic";
    ep.url = "http://h:8001";
    assert_int_equal(am_gw_upstream_url(&ep, "/v1/messages?beta=true", url, sizeof url), 0);
    assert_string_equal(url, "http://h:8001/v1/messages?beta=true");
    assert_int_equal(am_gw_upstream_url(&ep, "/v1/messages", url, 10), -AM_EFULL);
    char *models[] = {"a", "b"};
    ep.models = models;
    ep.n_models = 2;
    assert_int_equal(am_gw_endpoint_serves(&ep, "anthropic", "b"), 2);
    assert_int_equal(am_gw_endpoint_serves(&ep, "anthropic", "c"), 0);
    assert_int_equal(am_gw_endpoint_serves(&ep, "openai", "a"), 0);
    ep.n_models = 0;
    assert_int_equal(am_gw_endpoint_serves(&ep, "anthropic", "c"), 1);
    char day[11];
    am_gw_day(0, day);
    assert_string_equal(day, "1970-01-01");
    am_gw_day(1796169599000ull, day); /* 2026-12-01T23:59:59Z */
    assert_string_equal(day, "2026-12-01");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_chat_body_usage_is_read),
        cmocka_unit_test(test_openai_chat_stream_final_usage_chunk_is_read),
        cmocka_unit_test(test_responses_stream_completed_usage_is_read),
        cmocka_unit_test(test_anthropic_stream_start_and_delta_usage_are_read),
        cmocka_unit_test(test_usage_inside_text_or_missing_counts_nothing),
        cmocka_unit_test(test_multi_line_sse_data_is_joined),
        cmocka_unit_test(test_error_bodies_are_each_apis_own_format),
        cmocka_unit_test(test_paths_urls_and_endpoint_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
