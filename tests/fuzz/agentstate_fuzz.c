/*
 * tests/fuzz/agentstate_fuzz.c — the agent-state scanner (runner/pod/agentstate.c) on arbitrary
 * PTY output, fed in chunks split where the input's first byte says: it must never crash, keep
 * its OSC buffer bounded, and only ever report a known state with a clean message (no control
 * characters, valid UTF-8, at most 200 bytes: the appliance refuses anything else).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/pod/agentstate.h"

#define S1 "\033]777;notify;airmesh;waiting;need a review\007"
#define S2 "\033]9;Claude needs your permission\033\\\033]9;4;3\007"
#define S3 "\033]0;\xe2\xa0\x82 Working\007\033]2;\xe2\x9c\xb3 Done\007"
#define S4 "\033]777;notify;Codex;Approve?\007\033P+q\033\\\033[?25l"
const char *const fuzz_seeds[] = {S1, S2, S3, S4, NULL};
const size_t fuzz_seed_lens[] = {sizeof S1 - 1, sizeof S2 - 1, sizeof S3 - 1, sizeof S4 - 1, 0};

void fuzz_reached(int accepted) __attribute__((weak));

static int changes;

static void check(void *ud, const char *state, const char *source, const char *message) {
    (void)ud;
    changes++;
    char again[AM_AGENTSTATE_MSG_MAX + 1];
    size_t n = strlen(message);
    am_agentstate_sanitize(message, n, again, sizeof again);
    if (!am_agentstate_valid(state) || !source[0] || n > AM_AGENTSTATE_MSG_MAX ||
        strcmp(again, message) != 0) {
        fprintf(stderr, "agentstate_fuzz: bad change state=%s source=%s message=%s\n", state,
                source, message);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    am_agentstate a;
    changes = 0;
    am_agentstate_init(&a, 1000, 0, check, NULL);
    size_t step = size ? (size_t)data[0] % 17 + 1 : 1;
    uint64_t now = 0;
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        am_agentstate_output(&a, data + off, n, now);
        if (a.osc_len > AM_AGENTSTATE_OSC_MAX)
            abort();
        if (data[off] == '\r')
            am_agentstate_input(&a);
        now += 300;
        am_agentstate_tick(&a, now);
    }
    if (fuzz_reached)
        fuzz_reached(changes > 0);
    return 0;
}
