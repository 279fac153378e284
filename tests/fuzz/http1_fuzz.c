/*
 * tests/fuzz/http1_fuzz.c — runner/egress's strict HTTP/1.1 parser (http1.c) on arbitrary
 * bytes from a pod: the request head, then the rest as a chunked body fed in uneven pieces
 * into a small output buffer, and the target as a CONNECT authority. Every input must be
 * answered (complete, need more, or refused with a 4xx/5xx status), never crash or overrun.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runner/egress/http1.h"

const char *const fuzz_seeds[] = {
    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:4000\r\nContent-Length: 2\r\n"
    "Authorization: Bearer amk_x\r\n\r\n{}",
    "POST /v1/messages HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n6;e=1\r\n world\r\n0\r\nT: x\r\n\r\n",
    "CONNECT git.lan:443 HTTP/1.1\r\nHost: git.lan:443\r\n\r\n",
    "CONNECT [::1]:8080 HTTP/1.0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    NULL};
const size_t fuzz_seed_lens[] = {110, 103, 51, 31, 68, 0};

void fuzz_reached(int accepted) __attribute__((weak));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    am_h1_req r;
    int status = 0;
    const char *why = NULL;
    int n = am_h1_parse_head(buf, size, &r, &status, &why);
    if (n < 0 && (status < 400 || status > 505 || !why || !*why))
        abort(); /* a refusal always has a status and a reason */
    if (n > 0) {
        if ((size_t)n > size || !r.method || !r.target)
            abort();
        char host[256];
        uint16_t port;
        if (am_h1_authority(r.target, host, sizeof host, &port) == 0 && (!port || !host[0]))
            abort();
        for (size_t i = 0; i < r.n_headers; i++)
            if (!r.headers[i].name || !r.headers[i].value)
                abort();
        if (r.chunked) {
            am_h1_chunked c;
            memset(&c, 0, sizeof c);
            uint8_t out[37];
            size_t off = (size_t)n, olen = 0, step = 1;
            int d = 0;
            while (off < size && d == 0) {
                size_t piece = size - off < step ? size - off : step;
                size_t used = 0;
                if (olen == sizeof out)
                    olen = 0; /* the caller's buffer drained */
                d = am_h1_chunked_feed(&c, data + off, piece, &used, out, sizeof out, &olen, &why);
                if (used > piece || olen > sizeof out)
                    abort();
                if (used == 0 && d == 0 && olen != sizeof out)
                    abort(); /* no progress with room left */
                off += used;
                step = step * 3 % 17 + 1;
            }
        }
    }
    free(buf);
    if (fuzz_reached)
        fuzz_reached(n > 0);
    return 0;
}
