/*
 * tests/fuzz/display_name_fuzz.c — the display-name check (common/display_name.c) on any bytes,
 * as a client could send them: either a refusal, or a name that is valid UTF-8, trimmed, 1-64
 * code points, with no control or bidirectional control character left, and inside the output
 * buffer. Never a crash or an out-of-bounds read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/display_name.h"

const char *const fuzz_seeds[] = {"Zo\xc3\xab",
                                  "\xc3\x89quipe \xf0\x9f\x9a\x80",
                                  "  padded  ",
                                  "\xe2\x80\xae"
                                  "evil",
                                  "a\x07"
                                  "b",
                                  NULL};
const size_t fuzz_seed_lens[] = {4, 12, 10, 7, 3, 0};

void fuzz_reached(int accepted) __attribute__((weak));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char out[AM_DISPLAY_NAME_BUF];
    int rc = am_display_name_check((const char *)data, size, out, sizeof out);
    if (rc == 0) {
        size_t n = strlen(out);
        if (n == 0 || n >= sizeof out || am_utf8_check(out, n, NULL) != 0 ||
            am_utf8_len(out) > AM_DISPLAY_NAME_MAX || out[0] == ' ' || out[n - 1] == ' ')
            abort(); /* an accepted name that breaks a rule */
        for (const unsigned char *p = (const unsigned char *)out; *p; p++)
            if (*p < 0x20 || *p == 0x7f ||
                (p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae))
                abort(); /* a control or bidi override survived */
        /* the check is idempotent: the accepted name is accepted as it is */
        char again[AM_DISPLAY_NAME_BUF];
        if (am_display_name_check(out, n, again, sizeof again) != 0 || strcmp(out, again) != 0)
            abort();
    }
    if (fuzz_reached)
        fuzz_reached(rc == 0);
    return 0;
}
