/*
 * appliance/ctl/wire.c — see wire.h. Lengths are checked before every read of buf; a 64-bit
 * payload length is compared with max before any arithmetic on it.
 */
#include "appliance/ctl/wire.h"

#include <stdlib.h>
#include <string.h>
#include <wchar.h>

int am_ctl_ws_frame(const uint8_t *buf, size_t len, size_t max, int *op, size_t *off, size_t *n) {
    if (len < 2)
        return 0;
    int fin = buf[0] & 0x80, rsv = buf[0] & 0x70, code = buf[0] & 0x0f, masked = buf[1] & 0x80;
    if (!fin || rsv || masked)
        return -1;
    uint64_t plen = buf[1] & 0x7f;
    size_t hdr = 2;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = ((uint64_t)buf[2] << 8) | buf[3];
        hdr = 4;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = (plen << 8) | buf[2 + i];
        hdr = 10;
    }
    if ((code & 0x08) && plen > 125)
        return -1;
    if (plen > max)
        return -1;
    if (len - hdr < plen)
        return 0;
    *op = code;
    *off = hdr;
    *n = (size_t)plen;
    return 1;
}

char *am_ctl_clean_text(const char *s) {
    char *o = strdup(s ? s : "");
    if (!o)
        return NULL;
    mbstate_t st;
    memset(&st, 0, sizeof st);
    size_t n = strlen(o);
    for (size_t i = 0; i < n;) {
        wchar_t wc;
        size_t k = mbrtowc(&wc, o + i, n - i, &st);
        if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
            unsigned char b = (unsigned char)o[i];
            if (b < 0x20 || b >= 0x7f)
                o[i] = '?';
            memset(&st, 0, sizeof st);
            i++;
            continue;
        }
        if (wc < 0x20 || wc == 0x7f || (wc >= 0x80 && wc < 0xa0))
            memset(o + i, '?', k);
        i += k;
    }
    return o;
}

size_t am_ctl_text_width(const char *s) {
    mbstate_t st;
    memset(&st, 0, sizeof st);
    size_t n = strlen(s), w = 0;
    for (size_t i = 0; i < n;) {
        wchar_t wc;
        size_t k = mbrtowc(&wc, s + i, n - i, &st);
        if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
            memset(&st, 0, sizeof st);
            w++;
            i++;
            continue;
        }
        int cw = wcwidth(wc);
        w += cw < 0 ? 1 : (size_t)cw;
        i += k;
    }
    return w;
}
