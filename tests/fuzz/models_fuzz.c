/*
 * tests/fuzz/models_fuzz.c — what the model endpoint code parses from outside: a model server's
 * answers as the self-test judges them (appliance/gateway/selftest: any bytes, both APIs, every
 * step), and an admin's endpoint fields as appliance/ops validates them (the URL parser, names,
 * keys, model names). The first byte picks the target; the rest is the input. Every input must
 * give a verdict with a NUL-terminated reason that fits its buffer, or a validation answer
 * that is 0 or -AM_EINVAL with a message; never a crash or an out-of-bounds read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/gateway/selftest/selftest.h"
#include "appliance/ops/ops.h"
#include "common/err.h"

#define S0                                                                                         \
    "\x01{\"choices\":[{\"message\":{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\","       \
    "\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{}\"}}]}}]}"
#define S1                                                                                         \
    "\x05{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"get_time\",\"input\":{}}]}"
#define S2 "\x02{\"choices\":[{\"message\":{\"content\":\"It is noon.\"}}]}"
#define S3 "\x06{\"content\":[{\"type\":\"text\",\"text\":\"noon\"}]}"
#define S4 "\x08https://[::1]:8443/openai/v1"
#define S5 "\x08http://user:pw@h:99999/v1?x#y"
#define S6 "\x09sk-\x01\r\nX: y"
const char *const fuzz_seeds[] = {S0, S1, S2, S3, S4, S5, S6, NULL};
const size_t fuzz_seed_lens[] = {sizeof S0 - 1, sizeof S1 - 1, sizeof S2 - 1, sizeof S3 - 1,
                                 sizeof S4 - 1, sizeof S5 - 1, sizeof S6 - 1, 0};

/* driver.c counts inputs that reached the parser (absent under libFuzzer's own main). */
void fuzz_reached(int accepted) __attribute__((weak));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned pick = size ? data[0] & 0x0f : 0;
    const char *body = size ? (const char *)data + 1 : "";
    size_t len = size ? size - 1 : 0;
    int accepted = 0;
    if (pick < 8) { /* a server's answer: bit 2 = anthropic, bits 0-1 = step */
        char why[64];
        memset(why, 'x', sizeof why);
        int ok = am_gw_selftest_judge(pick & 4, (int)(pick & 3) % 3, body, len, why, sizeof why);
        if (!memchr(why, '\0', sizeof why) || (ok != 0 && ok != 1))
            abort();
        accepted = ok;
    } else { /* an endpoint's fields */
        char *s = malloc(len + 1);
        if (!s)
            return 0;
        memcpy(s, body, len);
        s[len] = '\0';
        const char *models[1] = {s};
        am_model_spec sp = {.name = "ok", .api = "openai", .url = "http://h/v1"};
        if (pick == 8)
            sp.url = s;
        else if (pick == 9)
            sp.key = s;
        else if (pick == 10)
            sp.name = s;
        else {
            sp.models = models;
            sp.n_models = 1;
        }
        int rc = am_ops_model_validate(&sp);
        if (rc != 0 && (rc != -AM_EINVAL || !am_err_last()[0]))
            abort();
        accepted = rc == 0;
        free(s);
    }
    if (fuzz_reached)
        fuzz_reached(accepted);
    return 0;
}
