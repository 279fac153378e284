/*
 * appliance/http/server.c — h2o setup: TLS context, listener, path table, security headers,
 * the event loop and its graceful stop.
 *
 * Sequence: am_http_open binds the socket first (so "port in use" is reported before anything
 * else happens), builds an OpenSSL SSL_CTX (TLS 1.2+, ALPN h2 + http/1.1) from the CA module's
 * server chain, then the h2o config: /healthz, /api/v1 (api.c) and / (h2o's file handler on the
 * console dir). am_http_run spins h2o_evloop_run with a short timeout so a signal flag is seen
 * within 200 ms; on stop it closes the listener, asks h2o to shut connections down gracefully
 * (GOAWAY / close idle), closes web-terminal WebSockets (1001; ws_terminal.c, whose wake-up
 * receiver is registered on this loop when the run starts) and keeps running until they are gone
 * or the grace period ends.
 * Threads: one, the caller's (main's http thread).
 */
#include "appliance/http/http.h"
#include "appliance/http/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "appliance/work/work.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

struct am_http {
    am_app *app;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_evloop_t *loop;
    h2o_accept_ctx_t accept_ctx;
    SSL_CTX *ssl;
    int fd;
    int port;
    h2o_socket_t *listener;
    int timers_drained;
};

/* Headers every response carries. The CSP allows only same-origin scripts, styles, images,
 * fonts and connections (wss to the same host is 'self' in current browsers); no inline script.
 * 'wasm-unsafe-eval' lets the console's recording player (asciinema-player, served from ui/dist)
 * compile its WebAssembly terminal; JavaScript eval stays refused. */
static h2o_iovec_t hdr_csp_name = {H2O_STRLIT("content-security-policy")};
static h2o_iovec_t hdr_xcto_name = {H2O_STRLIT("x-content-type-options")};
static h2o_iovec_t hdr_xfo_name = {H2O_STRLIT("x-frame-options")};
static h2o_iovec_t hdr_ref_name = {H2O_STRLIT("referrer-policy")};
static h2o_headers_command_t security_headers[7];
static h2o_headers_command_t api_headers[8];

static void init_header_commands(void) {
    h2o_headers_command_t common[] = {
        {H2O_HEADERS_CMD_SET,
         (h2o_iovec_t *)H2O_TOKEN_STRICT_TRANSPORT_SECURITY,
         {H2O_STRLIT("max-age=31536000")}},
        {H2O_HEADERS_CMD_SET,
         &hdr_csp_name,
         {H2O_STRLIT(
             "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
             "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
             "form-action 'self'; frame-ancestors 'none'")}},
        {H2O_HEADERS_CMD_SET, &hdr_xcto_name, {H2O_STRLIT("nosniff")}},
        {H2O_HEADERS_CMD_SET, &hdr_xfo_name, {H2O_STRLIT("DENY")}},
        {H2O_HEADERS_CMD_SET, &hdr_ref_name, {H2O_STRLIT("no-referrer")}},
    };
    size_t n = sizeof common / sizeof common[0];
    memcpy(security_headers, common, sizeof common);
    security_headers[n] = (h2o_headers_command_t){H2O_HEADERS_CMD_SETIFEMPTY,
                                                  (h2o_iovec_t *)H2O_TOKEN_CACHE_CONTROL,
                                                  {H2O_STRLIT("no-cache")}};
    security_headers[n + 1] = (h2o_headers_command_t){H2O_HEADERS_CMD_NULL, NULL, {NULL, 0}};
    memcpy(api_headers, common, sizeof common);
    api_headers[n] = (h2o_headers_command_t){
        H2O_HEADERS_CMD_SET, (h2o_iovec_t *)H2O_TOKEN_CACHE_CONTROL, {H2O_STRLIT("no-store")}};
    api_headers[n + 1] = (h2o_headers_command_t){H2O_HEADERS_CMD_NULL, NULL, {NULL, 0}};
}

int am_http_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len) {
    char host[128];
    const char *colon;
    memset(ss, 0, sizeof *ss);
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
            return am_err_set(AM_EINVAL, "listen address %s: expected [v6addr]:port", s);
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host)
            return am_err_set(AM_EINVAL, "listen address %s: expected host:port", s);
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    char *endp;
    errno = 0;
    long port = strtol(colon + 1, &endp, 10);
    if (errno || *endp || colon[1] == '\0' || port < 0 || port > 65535)
        return am_err_set(AM_EINVAL, "listen address %s: bad port", s);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
    } else {
        return am_err_set(AM_EINVAL, "listen address %s: %s is not an IP address", s, host);
    }
    return 0;
}

static int bind_listener(const char *listen_addr, int *fd_out, int *port_out) {
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = am_http_parse_listen(listen_addr, &ss, &len);
    if (rc)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return am_err_set(AM_EIO, "http: socket: %s", strerror(errno));
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        int e = errno;
        close(fd);
        return am_err_set(AM_EIO, "http: listen on %s: %s%s", listen_addr, strerror(e),
                          e == EADDRINUSE ? " (another airmeshd or program holds the port; "
                                            "stop it or pass --listen)"
                                          : "");
    }
    if (listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        return am_err_set(AM_EIO, "http: listen on %s: %s", listen_addr, strerror(e));
    }
    struct sockaddr_storage got;
    socklen_t glen = sizeof got;
    getsockname(fd, (struct sockaddr *)&got, &glen);
    *port_out = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                               : ((struct sockaddr_in6 *)&got)->sin6_port);
    *fd_out = fd;
    return 0;
}

/* A handshake OpenSSL refuses (e.g. a TLS 1.1 client: protocol_version) must end with the TLS
 * alert, so the client learns why. h2o 2.2.5 closes the socket on a failed handshake without
 * flushing what OpenSSL wrote into its BIO, so the alert is written here, straight to the socket
 * (best effort, non-blocking). The BIO is h2o's own ("h2o_socket", its data the h2o_socket_t);
 * anything else is left alone. */
static void on_ssl_info(const SSL *s, int where, int ret) {
    if (!(where & SSL_CB_WRITE_ALERT) || (ret >> 8) != SSL3_AL_FATAL || SSL_is_init_finished(s))
        return;
    BIO *b = SSL_get_wbio(s);
    const char *name = b ? BIO_method_name(b) : NULL;
    h2o_socket_t *sock = name && strcmp(name, "h2o_socket") == 0 ? BIO_get_data(b) : NULL;
    int fd = sock ? h2o_socket_get_fd(sock) : -1;
    if (fd < 0)
        return;
    const uint8_t alert[7] = {21, 3, 1, 0, 2, SSL3_AL_FATAL, (uint8_t)(ret & 0xff)};
    if (send(fd, alert, sizeof alert, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        am_log_debug("http", "TLS alert not sent", "errno=%d", errno);
}

static int make_ssl_ctx(const am_http_opts *o, SSL_CTX **out) {
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    if (!ssl)
        return am_err_set(AM_ECRYPTO, "http: SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    /* TLS 1.2: ECDHE + AEAD only (Mozilla "intermediate" without the DHE suites); TLS 1.3's
     * suites are all AEAD. */
    if (SSL_CTX_set_cipher_list(ssl, AM_HTTP_TLS12_CIPHERS) != 1) {
        SSL_CTX_free(ssl);
        return am_err_set(AM_ECRYPTO, "http: TLS cipher list refused");
    }
    SSL_CTX_set_options(ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_info_callback(ssl, on_ssl_info);
    if (SSL_CTX_use_certificate_chain_file(ssl, o->cert_pem) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl, o->key_pem, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ssl) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        SSL_CTX_free(ssl);
        return am_err_set(AM_ECRYPTO, "http: TLS certificate %s / key %s: %s", o->cert_pem,
                          o->key_pem, buf);
    }
    h2o_ssl_register_alpn_protocols(ssl, h2o_http2_alpn_protocols);
    *out = ssl;
    return 0;
}

/* h2o 2.2.5 has no h2o_evloop_destroy: the loop lives until the process exits. Keeping it in a
 * static keeps it reachable (LeakSanitizer reports only unreachable memory). */
static h2o_evloop_t *process_loop;

static int on_healthz(h2o_handler_t *self, h2o_req_t *req) {
    (void)self;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        req->res.status = 405;
        req->res.reason = "Method Not Allowed";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("text/plain; charset=utf-8"));
        h2o_send_inline(req, H2O_STRLIT("method not allowed: GET or HEAD\n"));
        return 0;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; charset=utf-8"));
    h2o_send_inline(req, H2O_STRLIT("ok\n"));
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err) {
    if (err)
        return;
    am_http *h = listener->data;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock)
        am_http_accept(&h->accept_ctx, sock); /* h2o_accept + 413 for HTTP/2 (accept.c) */
}

static void add_handler(am_http *h, h2o_pathconf_t *pc, int (*fn)(h2o_handler_t *, h2o_req_t *)) {
    am_http_handler *hd = (am_http_handler *)h2o_create_handler(pc, sizeof *hd);
    hd->super.on_req = fn;
    hd->app = h->app;
}

int am_http_open(am_app *app, const am_http_opts *o, am_http **out) {
    am_http *h = calloc(1, sizeof *h);
    if (!h)
        return am_err_set(AM_ENOMEM, "http: out of memory");
    h->app = app;
    h->fd = -1;
    int rc = bind_listener(o->listen, &h->fd, &h->port);
    if (rc == 0)
        rc = make_ssl_ctx(o, &h->ssl);
    if (rc) {
        if (h->fd >= 0)
            close(h->fd);
        free(h);
        return rc;
    }
    init_header_commands();
    h2o_config_init(&h->config);
    h->config.max_request_entity_size = o->max_body ? o->max_body : 1 << 20;
    h->config.server_name = h2o_iovec_init(H2O_STRLIT("airmesh"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);

    h2o_pathconf_t *pc = h2o_config_register_path(host, "/healthz", 0);
    add_handler(h, pc, on_healthz);
    h2o_headers_register(pc, api_headers);

    pc = h2o_config_register_path(host, "/api/", 0);
    add_handler(h, pc, am_api_on_req);
    h2o_headers_register(pc, api_headers);

    pc = h2o_config_register_path(host, "/", 0);
    static const char *index_files[] = {"index.html", NULL};
    h2o_file_register(pc, o->ui_dir, index_files, NULL, 0);
    h2o_headers_register(pc, security_headers);

    if (!process_loop)
        process_loop = h2o_evloop_create();
    h->loop = process_loop;
    h2o_context_init(&h->ctx, h->loop, &h->config);
    h->accept_ctx.ctx = &h->ctx;
    h->accept_ctx.hosts = h->config.hosts;
    h->accept_ctx.ssl_ctx = h->ssl;
    h->listener = h2o_evloop_socket_create(h->loop, h->fd, H2O_SOCKET_FLAG_DONT_READ);
    h->listener->data = h;
    h2o_socket_read_start(h->listener, on_accept);
    *out = h;
    return 0;
}

int am_http_port(const am_http *h) {
    return h->port;
}

static int connections_open(am_http *h) {
    return !h2o_linklist_is_empty(&h->ctx.http1._conns) ||
           !h2o_linklist_is_empty(&h->ctx.http2._conns);
}

/* h2o_context_dispose asserts that no timer is armed: wait for them to drain. */
static int timers_pending(am_http *h) {
    h2o_timeout_t *t[] = {&h->ctx.zero_timeout,
                          &h->ctx.one_sec_timeout,
                          &h->ctx.hundred_ms_timeout,
                          &h->ctx.handshake_timeout,
                          &h->ctx.http1.req_timeout,
                          &h->ctx.http2.idle_timeout,
                          &h->ctx.http2.graceful_shutdown_timeout,
                          &h->ctx.proxy.io_timeout};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!h2o_linklist_is_empty(&t[i]->_entries))
            return 1;
    return 0;
}

int am_http_run(am_http *h, volatile sig_atomic_t *stop, int grace_ms) {
    if (h->app->hub)
        am_ws_start(h->app, h->loop); /* web terminal wake-ups from the rpc thread */
    if (h->app->work)
        am_work_attach(h->app->work, h->loop); /* slow jobs' completions */
    if (h->app->io)
        am_work_attach(h->app->io, h->loop);
    if (h->app->models)
        am_work_attach(h->app->models, h->loop);
    if (h->app->review)
        am_work_attach(h->app->review, h->loop);
    while (!*stop)
        h2o_evloop_run(h->loop, 200);
    /* Stop accepting; finish what is in flight. */
    if (h->listener) {
        h2o_socket_read_stop(h->listener);
        h2o_socket_close(h->listener);
        h->listener = NULL;
        h->fd = -1;
    }
    h2o_context_request_shutdown(&h->ctx);
    am_ws_stop_begin(); /* WebSockets are no longer h2o connections: close them ourselves */
    uint64_t deadline = am_mono_ns() + (uint64_t)grace_ms * 1000000u;
    while ((connections_open(h) || am_ws_count() > 0) && am_mono_ns() < deadline)
        h2o_evloop_run(h->loop, 50);
    am_ws_stop_end();
    if (h->app->work)
        am_work_detach(h->app->work); /* jobs still queued get 503 (their requests may be gone) */
    if (h->app->io)
        am_work_detach(h->app->io);
    if (h->app->models)
        am_work_detach(h->app->models); /* a running self-test ends within its budget */
    if (h->app->review)
        am_work_detach(h->app->review); /* a waiting review ends at its deadline */
    if (connections_open(h))
        am_log_warn("http", "grace period over; closing remaining connections", "grace_ms=%d",
                    grace_ms);
    /* Let deferred closes and their timers run out before the context is disposed. */
    deadline = am_mono_ns() + 3000000000u;
    while (timers_pending(h) && am_mono_ns() < deadline)
        h2o_evloop_run(h->loop, 50);
    h->timers_drained = !timers_pending(h);
    return 0;
}

void am_http_close(am_http *h) {
    if (!h)
        return;
    if (h->listener)
        h2o_socket_close(h->listener);
    if (!h->timers_drained) {
        /* h2o would abort in h2o_context_dispose; leave it to process exit. */
        am_log_warn("http", "timers still armed at exit; skipping h2o context cleanup", NULL);
        SSL_CTX_free(h->ssl);
        return;
    }
    h2o_context_dispose(&h->ctx);
    h2o_config_dispose(&h->config);
    SSL_CTX_free(h->ssl);
    free(h);
}
