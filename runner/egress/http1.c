/*
 * runner/egress/http1.c — the strict HTTP/1.1 request parser (see http1.h for the rules).
 * Written here rather than taken from a library: it is small, the rules are ours (refuse
 * anything ambiguous), and a fuzz harness covers it (tests/fuzz/http1_fuzz.c).
 * No allocation; the head is parsed in place in the caller's buffer.
 */
#include "runner/egress/http1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_tchar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int fail(int *status, const char **why, int st, const char *msg) {
    *status = st;
    *why = msg;
    return -1;
}

/* Early junk detection: a head whose first bytes cannot start a request line (TLS to the
 * plain listener, binary) is refused without waiting for a CRLF that never comes. */
static int early_check(const char *buf, size_t len, int *status, const char **why) {
    size_t i = 0;
    while (i < len && i < 16 && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == len)
        return 0;
    if (i == 16 || buf[i] != ' ' || i == 0)
        return fail(status, why, 400, "not an HTTP/1.1 request (bad method)");
    return 0;
}

/* The end of the head ("\r\n\r\n"), or 0 when not there yet; -1 on a bare LF. */
static long find_head_end(const char *buf, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i == 0 || buf[i - 1] != '\r')
            return -1;
        if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return (long)(i + 1);
    }
    return 0;
}

static int parse_version(const char *v, int *minor, int *status, const char **why) {
    if (strcmp(v, "HTTP/1.1") == 0) {
        *minor = 1;
        return 0;
    }
    if (strcmp(v, "HTTP/1.0") == 0) {
        *minor = 0;
        return 0;
    }
    if (strncmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' && v[7] >= '0' &&
        v[7] <= '9' && !v[8])
        return fail(status, why, 505, "only HTTP/1.0 and HTTP/1.1 are served here");
    return fail(status, why, 400, "bad HTTP version in the request line");
}

/* Comma-separated tokens of a Connection header: does it contain tok? */
static int has_token(const char *v, const char *tok) {
    size_t n = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *s = v;
        while (*v && *v != ',')
            v++;
        const char *e = v;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == n && strncasecmp(s, tok, n) == 0)
            return 1;
    }
    return 0;
}

static int parse_header_line(char *line, am_h1_req *r, int *status, const char **why) {
    if (*line == ' ' || *line == '\t')
        return fail(status, why, 400, "folded header lines (obs-fold) are not accepted");
    char *p = line;
    while (is_tchar((unsigned char)*p))
        p++;
    if (p == line || *p != ':')
        return fail(status, why, 400,
                    *p == ' ' || *p == '\t' ? "whitespace before a header's colon"
                                            : "a header line without a valid name");
    *p++ = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    char *v = p;
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return fail(status, why, 400, "a control character in a header value");
    }
    while (p > v && (p[-1] == ' ' || p[-1] == '\t'))
        *--p = '\0';
    if (r->n_headers == AM_H1_MAX_HEADERS)
        return fail(status, why, 431, "too many header lines");
    r->headers[r->n_headers].name = line;
    r->headers[r->n_headers].value = v;
    r->n_headers++;
    return 0;
}

int am_h1_parse_head(char *buf, size_t len, am_h1_req *r, int *status, const char **why) {
    memset(r, 0, sizeof *r);
    *status = 0;
    *why = "";
    if (early_check(buf, len, status, why) < 0)
        return -1;
    long end = find_head_end(buf, len > AM_H1_MAX_HEAD ? AM_H1_MAX_HEAD : len);
    if (end < 0)
        return fail(status, why, 400, "bare LF line end (CRLF is required)");
    if (end == 0) {
        const char *crlf = memchr(buf, '\n', len);
        if (!crlf && len > AM_H1_MAX_TARGET + 32)
            return fail(status, why, 414, "request line too long");
        if (len >= AM_H1_MAX_HEAD)
            return fail(status, why, 431, "request head too large");
        return 0;
    }
    /* Split into lines in place: each "\r\n" becomes "\0\n". */
    char *line = buf;
    char *stop = buf + end - 2; /* the final empty line's CR */
    int first = 1;
    int n_cl = 0, n_te = 0, n_host = 0;
    while (line < stop) {
        char *cr = memchr(line, '\r', (size_t)(stop - line) + 1);
        if (!cr || cr[1] != '\n')
            return fail(status, why, 400, "bare CR in the request head");
        *cr = '\0';
        if (memchr(line, '\0', (size_t)(cr - line)))
            return fail(status, why, 400, "a NUL byte in the request head");
        if (first) {
            first = 0;
            char *sp1 = strchr(line, ' ');
            if (!sp1)
                return fail(status, why, 400, "bad request line");
            *sp1 = '\0';
            char *tgt = sp1 + 1;
            char *sp2 = strchr(tgt, ' ');
            if (!sp2 || strchr(sp2 + 1, ' '))
                return fail(status, why, 400, "bad request line");
            *sp2 = '\0';
            if (!*line || strlen(line) > 15)
                return fail(status, why, 400, "bad method");
            for (const char *q = line; *q; q++)
                if (!is_tchar((unsigned char)*q))
                    return fail(status, why, 400, "bad method");
            size_t tl = strlen(tgt);
            if (tl == 0)
                return fail(status, why, 400, "empty request target");
            if (tl > AM_H1_MAX_TARGET)
                return fail(status, why, 414, "request target too long");
            for (const char *q = tgt; *q; q++)
                if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
                    return fail(status, why, 400, "a bad character in the request target");
            if (parse_version(sp2 + 1, &r->minor, status, why) < 0)
                return -1;
            r->method = line;
            r->target = tgt;
        } else if (parse_header_line(line, r, status, why) < 0) {
            return -1;
        }
        line = cr + 2;
    }
    if (first)
        return fail(status, why, 400, "empty request");
    r->keep_alive = r->minor == 1;
    for (size_t i = 0; i < r->n_headers; i++) {
        const char *n = r->headers[i].name, *v = r->headers[i].value;
        if (strcasecmp(n, "Content-Length") == 0) {
            if (!*v || strlen(v) > 18 || strspn(v, "0123456789") != strlen(v))
                return fail(status, why, 400, "Content-Length is not a number");
            uint64_t x = strtoull(v, NULL, 10);
            if (n_cl++ && x != r->length)
                return fail(status, why, 400, "conflicting Content-Length headers");
            r->length = x;
            r->has_length = 1;
        } else if (strcasecmp(n, "Transfer-Encoding") == 0) {
            if (n_te++)
                return fail(status, why, 400, "more than one Transfer-Encoding header");
            if (strcasecmp(v, "chunked") != 0)
                return fail(status, why, 501, "only Transfer-Encoding: chunked is supported");
            r->chunked = 1;
        } else if (strcasecmp(n, "Host") == 0) {
            if (n_host++)
                return fail(status, why, 400, "more than one Host header");
            r->host = v;
        } else if (strcasecmp(n, "Connection") == 0) {
            if (has_token(v, "close"))
                r->keep_alive = 0;
        } else if (strcasecmp(n, "Expect") == 0) {
            if (strcasecmp(v, "100-continue") != 0)
                return fail(status, why, 417, "only Expect: 100-continue is supported");
            r->expect_continue = 1;
        }
    }
    if (r->chunked && r->has_length)
        return fail(status, why, 400, "both Content-Length and Transfer-Encoding");
    if (r->minor == 1 && !r->host)
        return fail(status, why, 400, "HTTP/1.1 request without a Host header");
    return (int)end;
}

const char *am_h1_header_get(const am_h1_req *r, const char *name) {
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

int am_h1_hop_by_hop(const char *n) {
    static const char *const k[] = {
        "Connection", "Keep-Alive",     "TE",     "Trailer", "Transfer-Encoding",
        "Upgrade",    "Content-Length", "Expect", NULL};
    for (const char *const *p = k; *p; p++)
        if (strcasecmp(n, *p) == 0)
            return 1;
    return strncasecmp(n, "Proxy-", 6) == 0;
}

/* ---- chunked bodies ---- */

enum {
    CH_SIZE = 0,
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START,
    CH_TRAILER,
    CH_TRAILER_LF,
    CH_END_LF
};

#define CH_MAX_LINE 4096
#define CH_MAX_TRAILERS (8u << 10)

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int am_h1_chunked_feed(am_h1_chunked *c, const uint8_t *in, size_t len, size_t *used, uint8_t *out,
                       size_t out_cap, size_t *out_len, const char **why) {
    size_t i = 0;
    *why = "";
    while (i < len && !c->done) {
        unsigned char ch = in[i];
        switch (c->state) {
        case CH_SIZE: {
            int h = hexval(ch);
            if (h >= 0) {
                if (++c->size_digits > 15) {
                    *why = "chunk size too large";
                    goto bad;
                }
                c->left = c->left * 16 + (uint64_t)h;
                i++;
            } else if ((ch == ';' || ch == '\r') && c->size_digits) {
                c->state = ch == ';' ? CH_EXT : CH_SIZE_LF;
                c->line = 0;
                i++;
            } else {
                *why = "bad chunk size line";
                goto bad;
            }
            break;
        }
        case CH_EXT:
            if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f || ++c->line > CH_MAX_LINE) {
                *why = "bad chunk extension";
                goto bad;
            }
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') {
                *why = "chunk size line without CRLF";
                goto bad;
            }
            i++;
            c->state = c->left ? CH_DATA : CH_TRAILER_START;
            c->line = 0;
            break;
        case CH_DATA: {
            size_t room = out_cap - *out_len;
            if (room == 0)
                goto more; /* the caller decides (its body limit) */
            size_t n = len - i;
            if (n > c->left)
                n = (size_t)c->left;
            if (n > room)
                n = room;
            memcpy(out + *out_len, in + i, n);
            *out_len += n;
            c->left -= n;
            i += n;
            if (!c->left)
                c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
        case CH_DATA_LF:
            if (ch != (c->state == CH_DATA_CR ? '\r' : '\n')) {
                *why = "chunk data not followed by CRLF";
                goto bad;
            }
            i++;
            if (c->state == CH_DATA_CR) {
                c->state = CH_DATA_LF;
            } else {
                c->state = CH_SIZE;
                c->size_digits = 0;
                c->left = 0;
            }
            break;
        case CH_TRAILER_START:
            if (ch == '\r') {
                c->state = CH_END_LF;
                i++;
                break;
            }
            c->state = CH_TRAILER;
            /* fall through */
        case CH_TRAILER:
            if (ch == '\r') {
                c->state = CH_TRAILER_LF;
            } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f || ++c->line > CH_MAX_TRAILERS) {
                *why = "bad or too large trailer";
                goto bad;
            }
            i++;
            break;
        case CH_TRAILER_LF:
        case CH_END_LF:
            if (ch != '\n') {
                *why = "trailer line without CRLF";
                goto bad;
            }
            i++;
            if (c->state == CH_END_LF)
                c->done = 1;
            else
                c->state = CH_TRAILER_START;
            break;
        default:
            *why = "chunked decoder state";
            goto bad;
        }
    }
more:
    *used = i;
    return c->done ? 1 : 0;
bad:
    *used = i;
    return -1;
}

int am_h1_authority(const char *t, char *host, size_t cap, uint16_t *port) {
    const char *colon;
    const char *hs = t, *he;
    if (*t == '[') {
        const char *rb = strchr(t, ']');
        if (!rb || rb[1] != ':')
            return -1;
        hs = t + 1;
        he = rb;
        colon = rb + 1;
        for (const char *q = hs; q < he; q++)
            if (!(hexval((unsigned char)*q) >= 0 || *q == ':' || *q == '.'))
                return -1;
    } else {
        colon = strrchr(t, ':');
        if (!colon)
            return -1;
        he = colon;
        for (const char *q = hs; q < he; q++) {
            unsigned char c = (unsigned char)*q;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_'))
                return -1;
        }
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= cap || hl > 253)
        return -1;
    const char *ps = colon + 1;
    size_t pl = strlen(ps);
    if (pl == 0 || pl > 5 || strspn(ps, "0123456789") != pl)
        return -1;
    unsigned long p = strtoul(ps, NULL, 10);
    if (p == 0 || p > 65535)
        return -1;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}
