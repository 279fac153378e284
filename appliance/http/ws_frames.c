/*
 * appliance/http/ws_frames.c — the WebSocket frame-length tracker (see ws_frames.h).
 * RFC 6455 §5.2: byte 1's low 7 bits are the length, 126 = a 16-bit length follows, 127 = a
 * 64-bit one; a set high bit of byte 1 means a 4-byte masking key follows.
 */
#include "appliance/http/ws_frames.h"

static unsigned header_len(const uint8_t *h) {
    unsigned len7 = h[1] & 0x7f;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

int am_ws_frames_feed(am_ws_frames *f, const uint8_t *p, size_t n, uint64_t max) {
    while (n > 0) {
        if (f->left > 0) {
            uint64_t k = f->left < n ? f->left : n;
            f->left -= k;
            p += k;
            n -= (size_t)k;
            continue;
        }
        f->hdr[f->have++] = *p++;
        n--;
        if (f->have < 2 || f->have < header_len(f->hdr))
            continue;
        unsigned len7 = f->hdr[1] & 0x7f;
        uint64_t len = len7;
        if (len7 == 126)
            len = (uint64_t)f->hdr[2] << 8 | f->hdr[3];
        else if (len7 == 127) {
            len = 0;
            for (int i = 2; i < 10; i++)
                len = len << 8 | f->hdr[i];
        }
        f->have = 0;
        if (len > max)
            return -1;
        f->left = len;
    }
    return 0;
}
