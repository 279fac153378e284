/*
 * appliance/http/accept.c — our h2o_accept: the TLS handshake, then HTTP/2 or HTTP/1.1 by
 * ALPN, with one change for HTTP/2: a request body above the limit (max_request_entity_size)
 * gets a 413 answer instead of h2o 2.2.5's RST_STREAM(REFUSED_STREAM), which tells clients the
 * request was never seen and may be retried (curl resent a 50 MB body five times).
 *
 * How: h2o parses an HTTP/2 connection frame by frame through conn->_read_expect (a pointer
 * to one of a few static functions: preface, default, continuation). Every connection's
 * pointer is replaced by a trampoline that looks at the frame first and then calls the
 * original; the trampolines are stateless per connection (one per original function, kept in
 * a small table), so nothing has to be freed with the connection. The trampoline:
 *  - after a HEADERS frame whose content-length is above the limit, or at the DATA frame that
 *    would take the body above it, turns the stream into a 413 response the way h2o itself
 *    answers a request with invalid headers (REQ_PENDING -> SEND_HEADERS ->
 *    h2o_send_error_generic), without running any handler;
 *  - consumes the rest of that stream's DATA frames (crediting the connection's flow-control
 *    window as h2o does), so they neither reset the stream before the 413 is written nor stall
 *    the other streams of the connection.
 * HTTP/1.1 needs none of this: h2o answers 413 itself there.
 * The handshake part mirrors h2o_accept (handshake timeout from the context, ALPN choice).
 * Threads: the http thread only.
 */
#include <stdlib.h>
#include <string.h>

#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>

#include "appliance/http/internal.h"

typedef ssize_t (*expect_fn)(h2o_http2_conn_t *conn, const uint8_t *src, size_t len,
                             const char **err_desc);

#define SLOTS 4
static expect_fn orig[SLOTS];
static expect_fn preface; /* the function a new connection starts with */
static const char too_large[] = "Request Entity Too Large"; /* also marks our 413 streams */

static ssize_t trampoline(int slot, h2o_http2_conn_t *conn, const uint8_t *src, size_t len,
                          const char **err_desc);
static ssize_t t0(h2o_http2_conn_t *c, const uint8_t *s, size_t l, const char **e) {
    return trampoline(0, c, s, l, e);
}
static ssize_t t1(h2o_http2_conn_t *c, const uint8_t *s, size_t l, const char **e) {
    return trampoline(1, c, s, l, e);
}
static ssize_t t2(h2o_http2_conn_t *c, const uint8_t *s, size_t l, const char **e) {
    return trampoline(2, c, s, l, e);
}
static ssize_t t3(h2o_http2_conn_t *c, const uint8_t *s, size_t l, const char **e) {
    return trampoline(3, c, s, l, e);
}
static const expect_fn tramp[SLOTS] = {t0, t1, t2, t3};

/* Point conn->_read_expect at the trampoline of whatever h2o set it to. */
static void rewrap(h2o_http2_conn_t *conn) {
    expect_fn fn = conn->_read_expect;
    for (int i = 0; i < SLOTS; i++)
        if (tramp[i] == fn)
            return;
    for (int i = 0; i < SLOTS; i++) {
        if (!orig[i])
            orig[i] = fn;
        if (orig[i] == fn) {
            conn->_read_expect = tramp[i];
            return;
        }
    }
    /* more originals than slots: leave this one unwrapped (no 413, h2o's own behaviour) */
}

/* h2o's update_input_window for the connection (connection.c keeps it static). */
static void credit(h2o_http2_conn_t *conn, size_t consumed) {
    h2o_http2_window_consume_window(&conn->_input_window, consumed);
    ssize_t win = h2o_http2_window_get_window(&conn->_input_window);
    if (win * 2 < H2O_HTTP2_SETTINGS_HOST.initial_window_size) {
        int32_t delta = (int32_t)(H2O_HTTP2_SETTINGS_HOST.initial_window_size - win);
        h2o_http2_encode_window_update_frame(&conn->_write.buf, 0, delta);
        h2o_http2_conn_request_write(conn);
        h2o_http2_window_update(&conn->_input_window, delta);
    }
}

static void answer_413(h2o_http2_conn_t *conn, h2o_http2_stream_t *stream) {
    h2o_http2_stream_set_state(conn, stream, H2O_HTTP2_STREAM_STATE_REQ_PENDING);
    h2o_http2_stream_set_state(conn, stream, H2O_HTTP2_STREAM_STATE_SEND_HEADERS);
    h2o_send_error_generic(&stream->req, 413, too_large, "request body too large\n", 0);
}

static int is_ours(h2o_http2_stream_t *stream) {
    return stream->state >= H2O_HTTP2_STREAM_STATE_SEND_HEADERS &&
           stream->req.res.reason == too_large;
}

static ssize_t trampoline(int slot, h2o_http2_conn_t *conn, const uint8_t *src, size_t len,
                          const char **err_desc) {
    expect_fn fn = orig[slot];
    h2o_http2_frame_t frame;
    const char *e = NULL;
    ssize_t flen = -1;
    size_t limit = conn->super.ctx->globalconf->max_request_entity_size;
    if (fn != preface && conn->_headers_unparsed == NULL && len >= H2O_HTTP2_FRAME_HEADER_SIZE)
        flen = h2o_http2_decode_frame(&frame, src, len, &H2O_HTTP2_SETTINGS_HOST, &e);
    if (flen > 0 && frame.type == H2O_HTTP2_FRAME_TYPE_DATA && frame.stream_id != 0 &&
        conn->state < H2O_HTTP2_CONN_STATE_HALF_CLOSED) {
        h2o_http2_stream_t *stream = h2o_http2_conn_get_stream(conn, frame.stream_id);
        h2o_http2_data_payload_t payload;
        if (stream && stream->state == H2O_HTTP2_STREAM_STATE_RECV_BODY &&
            stream->_req_body != NULL && h2o_http2_decode_data_payload(&payload, &frame, &e) == 0 &&
            stream->_req_body->size + payload.length > limit) {
            answer_413(conn, stream);
            credit(conn, frame.length);
            return flen;
        }
        if (stream && is_ours(stream)) { /* the rest of a refused body */
            credit(conn, frame.length);
            return flen;
        }
    }
    ssize_t ret = fn(conn, src, len, err_desc);
    if (ret < 0 && ret != H2O_HTTP2_ERROR_INCOMPLETE)
        return ret; /* h2o closes the connection */
    rewrap(conn);
    if (ret > 0 && flen > 0 && frame.type == H2O_HTTP2_FRAME_TYPE_HEADERS &&
        conn->state < H2O_HTTP2_CONN_STATE_HALF_CLOSED) {
        h2o_http2_stream_t *stream = h2o_http2_conn_get_stream(conn, frame.stream_id);
        if (stream && stream->state == H2O_HTTP2_STREAM_STATE_RECV_BODY &&
            stream->_expected_content_length != SIZE_MAX &&
            stream->_expected_content_length > limit)
            answer_413(conn, stream); /* announced too large: answer before the body comes */
    }
    return ret;
}

/* ---- the handshake (as h2o_accept does it) ---- */

typedef struct {
    h2o_accept_ctx_t *ctx;
    h2o_socket_t *sock;
    h2o_timeout_entry_t timeout;
    struct timeval connected_at;
} accept_data;

static void on_handshake_timeout(h2o_timeout_entry_t *entry) {
    accept_data *d = H2O_STRUCT_FROM_MEMBER(accept_data, timeout, entry);
    h2o_socket_t *sock = d->sock;
    sock->data = NULL;
    free(d);
    h2o_socket_close(sock);
}

static void accept_http2(h2o_accept_ctx_t *ctx, h2o_socket_t *sock, struct timeval at) {
    /* h2o_http2_accept parses whatever input is already buffered at once; hold it back until
     * the trampoline is in place. */
    h2o_buffer_t *held = sock->input;
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    h2o_http2_accept(ctx, sock, at);
    h2o_http2_conn_t *conn = sock->data;
    h2o_buffer_dispose(&sock->input);
    sock->input = held;
    if (!preface)
        preface = conn->_read_expect;
    rewrap(conn);
    if (sock->input->size != 0)
        sock->_cb.read(sock, NULL);
}

static void on_handshake(h2o_socket_t *sock, const char *err) {
    accept_data *d = sock->data;
    sock->data = NULL;
    h2o_timeout_unlink(&d->timeout);
    h2o_accept_ctx_t *ctx = d->ctx;
    struct timeval at = d->connected_at;
    free(d);
    if (err) {
        h2o_socket_close(sock);
        return;
    }
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(sock);
    for (const h2o_iovec_t *id = h2o_http2_alpn_protocols; id->len != 0; id++) {
        if (proto.len == id->len && memcmp(proto.base, id->base, proto.len) == 0) {
            accept_http2(ctx, sock, at);
            return;
        }
    }
    h2o_http1_accept(ctx, sock, at);
}

void am_http_accept(h2o_accept_ctx_t *ctx, h2o_socket_t *sock) {
    accept_data *d = calloc(1, sizeof *d);
    if (!d) {
        h2o_socket_close(sock);
        return;
    }
    d->ctx = ctx;
    d->sock = sock;
    d->connected_at = *h2o_get_timestamp(ctx->ctx, NULL, NULL);
    d->timeout.cb = on_handshake_timeout;
    h2o_timeout_link(ctx->ctx->loop, &ctx->ctx->handshake_timeout, &d->timeout);
    sock->data = d;
    h2o_socket_ssl_handshake(sock, ctx->ssl_ctx, NULL, on_handshake);
}
