/*
 * common/display_name.c — the display-name check (see display_name.h): one UTF-8 decoder pass
 * that validates, finds the trimmed span and applies the character rules. Pure function of its
 * input; any thread.
 */
#include "common/display_name.h"

#include <stdint.h>
#include <string.h>

#include "common/err.h"

/* Decode one code point at s (n bytes left): its length, or 0 for an invalid sequence. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

static int is_space(uint32_t c) {
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

static int is_control(uint32_t c) {
    return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029;
}

static int is_bidi(uint32_t c) {
    return (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

int am_display_name_check(const char *in, size_t len, char *out, size_t cap) {
    const unsigned char *s = (const unsigned char *)(in ? in : "");
    if (!in)
        len = 0;
    /* Pass 1: valid UTF-8 throughout; the span between the first and last non-space. */
    size_t first = len, last = 0, chars = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_decode(s + i, len - i, &cp);
        if (!n)
            return am_err_set(AM_EINVAL,
                              "display_name: not valid UTF-8 (byte 0x%02x at offset %zu)", s[i], i);
        if (!is_space(cp)) {
            if (first == len)
                first = i;
            last = i + n;
        }
        i += n;
    }
    if (first == len)
        return am_err_set(AM_EINVAL, "display_name: empty (1-%d characters after trimming spaces)",
                          AM_DISPLAY_NAME_MAX);
    /* Pass 2: the character rules and the length, on the trimmed span. */
    for (size_t i = first; i < last;) {
        uint32_t cp;
        size_t n = utf8_decode(s + i, last - i, &cp);
        chars++;
        if (is_control(cp))
            return am_err_set(AM_EINVAL,
                              "display_name: control character U+%04X at character %zu is not "
                              "allowed",
                              (unsigned)cp, chars);
        if (is_bidi(cp))
            return am_err_set(AM_EINVAL,
                              "display_name: bidirectional control character U+%04X at character "
                              "%zu is not allowed",
                              (unsigned)cp, chars);
        i += n;
    }
    if (chars > AM_DISPLAY_NAME_MAX)
        return am_err_set(AM_EINVAL, "display_name: at most %d characters (this one has %zu)",
                          AM_DISPLAY_NAME_MAX, chars);
    size_t bytes = last - first;
    if (!out || cap <= bytes)
        return am_err_set(AM_EINVAL, "display_name: too long");
    memcpy(out, s + first, bytes);
    out[bytes] = '\0';
    return 0;
}

int am_utf8_check(const char *s, size_t len, size_t *bad_at) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (!n) {
            if (bad_at)
                *bad_at = i;
            return am_err_set(AM_EINVAL, "not valid UTF-8 at offset %zu", i);
        }
        i += n;
    }
    return 0;
}

size_t am_utf8_len(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
        if ((*p & 0xC0) != 0x80)
            n++;
    return n;
}
