/*
 * tests/fuzz/gateway_usage_fuzz.c — the model gateway's usage parser (appliance/gateway/
 * usage.c) on arbitrary model-server answers: the first byte picks JSON or SSE and where the
 * rest is split into two pieces (answers arrive in pieces); it must never crash or leak, and the
 * counts must not depend on the split (the same bytes in one piece give the same counts).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/gateway/core.h"

const char *const fuzz_seeds[] = {
    "\x01"
    "data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n",
    "\x00{\"usage\":{\"input_tokens\":5,\"output_tokens\":6}}",
    "\x03"
    "event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":9}}}\r\n\r\n"
    "data: {\"usage\":{\"output_tokens\":2}}\n\n",
    "\x05"
    "data: {\"response\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n"
    "data: x\n\n",
    NULL};
const size_t fuzz_seed_lens[] = {74, 47, 109, 76, 0};

void fuzz_reached(int accepted) __attribute__((weak));

static void run(const uint8_t *d, size_t n, int sse, size_t cut, am_gw_usage *u) {
    am_gw_usage_init(u, sse);
    am_gw_usage_feed(u, (const char *)d, cut);
    am_gw_usage_feed(u, (const char *)d + cut, n - cut);
    am_gw_usage_finish(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int sse = size ? data[0] & 1 : 0;
    const uint8_t *d = size ? data + 1 : data;
    size_t n = size ? size - 1 : 0, cut = n ? (data[0] >> 1) % (n + 1) : 0;
    am_gw_usage a, b;
    run(d, n, sse, cut, &a);
    run(d, n, sse, 0, &b);
    if (a.tokens_in != b.tokens_in || a.tokens_out != b.tokens_out || a.seen != b.seen) {
        fprintf(stderr, "gateway_usage_fuzz: counts depend on the split at %zu\n", cut);
        abort();
    }
    am_gw_usage_free(&a);
    am_gw_usage_free(&b);
    if (fuzz_reached)
        fuzz_reached(b.seen);
    return 0;
}
