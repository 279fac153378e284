/*
 * tests/fuzz/ctl_wire_fuzz.c — what airmeshctl parses from the network (appliance/ctl/wire.c):
 * WebSocket frame headers as the appliance could send them, and names printed in lists. Every
 * input must give a frame that lies inside the buffer (or "need more" / "refused"), and a cleaned
 * name with no control character left; never a crash or an out-of-bounds read.
 */
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ctl/wire.h"

const char *const fuzz_seeds[] = {"\x82\x05hello", /* binary frame */
                                  "\x81\x7e\x00\x03"
                                  "abc",                                       /* 16-bit length */
                                  "\x88\x02\x03\xe8",                          /* close 1000 */
                                  "\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x01x", /* 64-bit length */
                                  "feature/\xc3\xbcn\xc3\xaf"
                                  "c\xc3\xb8"
                                  "d\xc3\xa9-\xe6\x97\xa5\x1b[31m", /* UTF-8, ESC */
                                  NULL};
const size_t fuzz_seed_lens[] = {7, 7, 4, 11, 28, 0};

/* driver.c counts inputs that reached the parser (absent under libFuzzer's own main). */
void fuzz_reached(int accepted) __attribute__((weak));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int locale_set;
    if (!locale_set) {
        if (!setlocale(LC_CTYPE, "C.UTF-8"))
            setlocale(LC_CTYPE, "");
        locale_set = 1;
    }
    int op;
    size_t off, n;
    int r = am_ctl_ws_frame(data, size, 1 << 20, &op, &off, &n);
    if (r == 1 && (off > size || n > size - off || op < 0 || op > 15))
        abort(); /* a frame outside the buffer */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *c = am_ctl_clean_text(s);
    if (c) {
        for (const unsigned char *p = (const unsigned char *)c; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                abort(); /* a control character survived */
        (void)am_ctl_text_width(c);
        free(c);
    }
    free(s);
    /* accepted: a whole frame was found (the seeds are whole frames but the last, a name) */
    if (fuzz_reached)
        fuzz_reached(r == 1);
    return 0;
}
