/*
 * runner/egress/http1.h — the strict HTTP/1.1 request parser of the pod-facing listeners (the
 * model gateway and the CONNECT proxy). Pure functions on caller buffers: no I/O, no
 * allocation, no global state, so tests/fuzz/http1_fuzz.c can drive it directly.
 *
 * Strict on purpose (the pod is untrusted; a lenient parser in front of another parser is how
 * request smuggling happens): CRLF line ends only, no obs-fold, no space before a header's
 * colon, token method, one Content-Length (digits only) or Transfer-Encoding exactly
 * "chunked" and never both, Host required on HTTP/1.1, HTTP/1.0 and 1.1 only. Every refusal
 * has an HTTP status and a one-line reason.
 * Threads: any (the state lives in the caller's structs).
 */
#ifndef AM_RUNNER_EGRESS_HTTP1_H
#define AM_RUNNER_EGRESS_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define AM_H1_MAX_HEAD (32u << 10) /* request line + headers (431 above) */
#define AM_H1_MAX_HEADERS 100      /* 431 above */
#define AM_H1_MAX_TARGET 8192      /* 414 above */

typedef struct {
    const char *name; /* points into the caller's buffer, NUL-terminated by the parser */
    const char *value;
} am_h1_header;

typedef struct {
    const char *method, *target; /* into the buffer */
    int minor;                   /* HTTP/1.<minor>: 0 or 1 */
    am_h1_header headers[AM_H1_MAX_HEADERS];
    size_t n_headers;
    int chunked;         /* Transfer-Encoding: chunked */
    int has_length;      /* Content-Length given */
    uint64_t length;     /* its value */
    int keep_alive;      /* 1.1 without "Connection: close" */
    int expect_continue; /* Expect: 100-continue */
    const char *host;    /* the Host header, or NULL */
} am_h1_req;

/* Parse the request head at the start of buf (len bytes read so far; buf is modified: line
 * ends become NULs). Returns the head's length (> 0) when it is complete, 0 when more bytes are
 * needed, or -1 with *status (400, 414, 431, 501, 505) and *why set. */
int am_h1_parse_head(char *buf, size_t len, am_h1_req *r, int *status, const char **why);

/* Case-insensitive lookup of a header (first match), or NULL. */
const char *am_h1_header_get(const am_h1_req *r, const char *name);

/* 1 for the hop-by-hop headers a forwarder must not pass on (Connection, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-*, Content-Length, Expect, Host is kept). */
int am_h1_hop_by_hop(const char *name);

/* An incremental chunked-body decoder. Zero-initialise, then feed bytes as they arrive. */
typedef struct {
    int state;
    uint64_t left; /* data bytes left in the current chunk */
    size_t line;   /* bytes of the current size/trailer line */
    int size_digits;
    int done;
} am_h1_chunked;

/* Decode from in[0..len): data bytes are appended to out (out_cap bytes of room at out +
 * *out_len). *used = input bytes consumed. Returns 1 when the body (with trailers) is
 * complete, 0 when more input is needed (or out is full: call again with room), -1 with *why
 * on a malformed body. */
int am_h1_chunked_feed(am_h1_chunked *c, const uint8_t *in, size_t len, size_t *used, uint8_t *out,
                       size_t out_cap, size_t *out_len, const char **why);

/* "host:port" of a CONNECT target (authority-form) into host/port: -1 when it is not one
 * (IPv6 literals in brackets are accepted: "[::1]:443" -> "::1"). */
int am_h1_authority(const char *target, char *host, size_t host_cap, uint16_t *port);

#endif
