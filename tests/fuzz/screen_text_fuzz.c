/*
 * tests/fuzz/screen_text_fuzz.c — the snapshot renderer (appliance/ops/podio.c,
 * am_ops_screen_text) on any bytes, as a pod's terminal could print them (get_pod_snapshot hands
 * another pod the result): the text is valid UTF-8 with no ESC and no control character but \t
 * and \n, at most `lines` lines, never longer than its input, and rendering it again changes
 * nothing. Never a crash or an out-of-bounds read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "appliance/ops/ops.h"

const char *const fuzz_seeds[] = {"\x1b]0;title\x07\x1b[1;31mhello\x1b[0m world\r\r\n",
                                  "progress 1\rprogress 2\r\n\x1b[2J\x1b[Hthird\x1b[K\n",
                                  "\x1bP+q\x1b\\tail \xe2\x82\xac \xc3", "a\bb\tc\x7f\x01\n\n\n\nd",
                                  NULL};
const size_t fuzz_seed_lens[] = {35, 39, 16, 12, 0};

void fuzz_reached(int accepted) __attribute__((weak));

/* Say which rule broke and on what input (hex), then abort. */
static void broke(const char *rule, const uint8_t *data, size_t size, const char *out) {
    fprintf(stderr, "screen_text_fuzz: %s; input:", rule);
    for (size_t i = 0; i < size && i < 256; i++)
        fprintf(stderr, " %02x", data[i]);
    fprintf(stderr, "\noutput: \"%s\"\n", out ? out : "(none)");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t lines = size ? data[0] % 8 : 0;
    char *out = NULL;
    if (am_ops_screen_text(data, size, lines, &out) != 0)
        broke("no text", data, size, NULL);
    size_t n = strlen(out), nl = 0;
    if (n > size)
        broke("the text grew", data, size, out);
    for (const unsigned char *p = (const unsigned char *)out; *p; p++) {
        if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f)
            broke("an escape or control character survived", data, size, out);
        nl += *p == '\n';
    }
    if (lines && nl + 1 > lines)
        abort();                      /* more lines than asked for */
    json_t *j = json_stringn(out, n); /* NULL unless valid UTF-8 */
    if (!j)
        broke("not valid UTF-8", data, size, out);
    json_decref(j);
    char *again = NULL;
    if (am_ops_screen_text((const uint8_t *)out, n, 0, &again) != 0 || strcmp(out, again) != 0)
        broke("plain text does not render as itself", data, size, out);
    free(again);
    free(out);
    if (fuzz_reached)
        fuzz_reached(n > 0);
    return 0;
}
