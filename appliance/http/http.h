/*
 * appliance/http — the HTTPS front of airmeshd: h2o (libh2o-evloop 2.2.5) over OpenSSL,
 * HTTP/2 by ALPN and HTTP/1.1, TLS 1.2 minimum.
 *
 * Routes: /healthz (200 "ok"), /api/v1/... (REST, JSON; api.c), everything else static files
 * from the console directory (ui). Every response carries the security headers (HSTS, CSP with
 * frame-ancestors 'none', nosniff, no referrer); API responses are never cached.
 *
 * Threads: am_http_open/run/close are called by main.c on the http thread only; handlers run on
 * that thread. The server borrows app (never frees it).
 */
#ifndef AM_APPLIANCE_HTTP_H
#define AM_APPLIANCE_HTTP_H

#include <signal.h>
#include <sys/socket.h>

#include "appliance/app.h"

typedef struct am_http am_http;

/* TLS 1.2 suites offered on :8443: ECDHE + AEAD only (ECDSA first: our keys are P-256). */
#define AM_HTTP_TLS12_CIPHERS                                                                      \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

typedef struct {
    const char *listen;    /* "127.0.0.1:8443", "[::1]:8443", "0.0.0.0:8443" */
    const char *ui_dir;    /* static console files */
    const char *cert_pem;  /* server certificate chain (leaf first) */
    const char *key_pem;   /* its private key */
    size_t max_body;       /* request body limit, bytes */
} am_http_opts;

/* Bind the listener and load TLS material. Errors: port in use, bad address, unreadable cert. */
int am_http_open(am_app *app, const am_http_opts *o, am_http **out);
/* The bound port (useful with port 0). */
int am_http_port(const am_http *h);
/* Serve until *stop becomes non-zero, then stop accepting, let in-flight requests finish
 * (bounded by grace_ms) and return. */
int am_http_run(am_http *h, volatile sig_atomic_t *stop, int grace_ms);
void am_http_close(am_http *h);

/* Split "host:port" / "[v6]:port" into a sockaddr. */
int am_http_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
