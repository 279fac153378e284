/*
 * appliance/http/ws_conn.c — the plumbing of airmeshd's WebSockets (HTTP/1.1; h2o 2.2.5 has no
 * WebSocket over HTTP/2): the live web terminal, GET /api/v1/pods/{id}/terminal (ARCHITECTURE.md
 * §9), and live audit events of the caller's org, GET /api/v1/events (the console's Activity page;
 * see ws_events.c). This file is what both share: the write path, the kick list, the wake-up from
 * the rpc thread and the service's start and stop; ws_terminal.c holds the rooms.
 *
 * Data path: the rpc thread appends runner output to the pod's ring in the hub and wakes this
 * thread (h2o_multithread message; the hub keeps at most one pending). Each viewer has its own
 * position in the ring; `refill` copies the next slices out of the ring into wslay's queue while
 * less than WINDOW bytes are queued there, so a viewer costs at most WINDOW + 2 * WBUF_CAP of
 * memory however far behind it is. A viewer whose unsent backlog (ring bytes not yet queued +
 * bytes queued in wslay + bytes buffered for the socket, all counted exactly) exceeds LAG_CAP, or
 * whose position fell out of the ring, skips to the ring end and gets `lagged`: nothing ever
 * waits for a slow viewer. Writes: wslay's send callback is replaced by one that coalesces frames
 * behind the one socket write in flight (h2o 2.2.5's own sends one frame piece per write), so a
 * fast viewer gets large TLS writes. At a pod's end every byte is queued before `exit`, and the
 * close frame (1000) is queued only once wslay's queue is empty (control frames jump the queue
 * in wslay, so queueing it earlier would cut the tail).
 *
 * Re-entrancy: h2o_websocket_proceed may close (and so free) a connection through the message
 * callback. Nothing here calls proceed while iterating: queueing work only puts the viewer on a
 * "kick" list, and `flush` pops viewers one at a time and proceeds them; a viewer freed meanwhile
 * has already left the list. A viewer whose message callback is running (`busy`) is skipped: the
 * h2o loop that called us sends its frames.
 *
 * Ownership: viewers are allocated by the upgrade handlers (ws_terminal.c, ws_events.c) and freed
 * here (am_ws_viewer_gone). Threads: everything here runs on the http thread except wake(),
 * which the hub calls on the rpc thread (it only posts the h2o message).
 */
#include <h2o.h>
#include <h2o/websocket.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/http/ws.h"
#include "common/err.h"
#include "common/log.h"

am_ws_state am_ws;

/* ---------- kick list ---------- */

void am_ws_kick(viewer *v) {
    if (v->kicked || v->gone)
        return;
    v->kicked = 1;
    v->knext = NULL;
    v->kprev = am_ws.ktail;
    if (am_ws.ktail)
        am_ws.ktail->knext = v;
    else
        am_ws.khead = v;
    am_ws.ktail = v;
}

void am_ws_unkick(viewer *v) {
    if (!v->kicked)
        return;
    if (v->kprev)
        v->kprev->knext = v->knext;
    else
        am_ws.khead = v->knext;
    if (v->knext)
        v->knext->kprev = v->kprev;
    else
        am_ws.ktail = v->kprev;
    v->kicked = 0;
    v->knext = v->kprev = NULL;
}

static void start_write(viewer *v);

/* Proceed every kicked viewer (see the header on re-entrancy). */
void am_ws_flush(void) {
    if (am_ws.flushing)
        return;
    am_ws.flushing = 1;
    while (am_ws.khead) {
        viewer *v = am_ws.khead;
        am_ws_unkick(v);
        if (v->busy || !v->conn->sock)
            continue; /* in its own callback / upgrade not complete: h2o proceeds it */
        wslay_event_context_ptr ctx = v->conn->ws_ctx;
        if (h2o_socket_is_writing(v->conn->sock) && wslay_event_want_write(ctx) &&
            wslay_event_send(ctx) != 0) {
            am_ws_viewer_gone(v);
            continue;
        }
        start_write(v);
        h2o_websocket_proceed(v->conn); /* may free v */
    }
    am_ws.flushing = 0;
}

/* ---------- socket writes (replaces h2o's one-piece-at-a-time send callback) ---------- */

static void on_written(h2o_socket_t *sock, const char *err);

static void start_write(viewer *v) {
    if (v->inflight_len || !v->pend_len || !v->conn->sock || h2o_socket_is_writing(v->conn->sock))
        return;
    uint8_t *t = v->inflight;
    v->inflight = v->pend;
    v->pend = t;
    v->inflight_len = v->pend_len;
    v->pend_len = 0;
    h2o_iovec_t b = h2o_iovec_init(v->inflight, v->inflight_len);
    h2o_socket_write(v->conn->sock, &b, 1, on_written);
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud) {
    h2o_websocket_conn_t *conn = ud;
    viewer *v = conn->data;
    if (!v->pend && !(v->pend = malloc(WBUF_CAP))) {
        wslay_event_set_error(ctx, WSLAY_ERR_NOMEM);
        return -1;
    }
    if (!v->inflight && !(v->inflight = malloc(WBUF_CAP))) {
        wslay_event_set_error(ctx, WSLAY_ERR_NOMEM);
        return -1;
    }
    size_t room = WBUF_CAP - v->pend_len;
    if (room == 0) {
        start_write(v);
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > room)
        len = room;
    memcpy(v->pend + v->pend_len, data, len);
    v->pend_len += len;
    if (!(flags & WSLAY_MSG_MORE) || v->pend_len == WBUF_CAP)
        start_write(v);
    return (ssize_t)len;
}

/* ---------- frames out ---------- */

void am_ws_queue_text(viewer *v, json_t *doc) {
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!s)
        return;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)s, strlen(s)};
    wslay_event_queue_msg(v->conn->ws_ctx, &m);
    free(s);
    am_ws_kick(v);
}

void am_ws_queue_error(viewer *v, const char *msg) {
    am_ws_queue_text(v, json_pack("{s:s,s:s}", "type", "error", "message", msg));
}

/* Queue the viewer's missing bytes (bounded by WINDOW), applying the lag rule; `exit` once
 * everything is queued after the pod ended; the close frame once wslay's queue is empty. */
void am_ws_refill(viewer *v) {
    if (v->gone || v->close_queued)
        return;
    if (v->events)
        am_ws_events_refill(v);
    else
        am_ws_term_refill(v);
}

static void on_written(h2o_socket_t *sock, const char *err) {
    h2o_websocket_conn_t *conn = sock->data;
    viewer *v = conn->data;
    if (err) {
        am_ws_viewer_gone(v);
        am_ws_flush();
        return;
    }
    v->inflight_len = 0;
    start_write(v);
    am_ws_refill(v);
    am_ws_flush();
}

/* ---------- connections ---------- */

void am_ws_viewer_gone(viewer *v) {
    if (v->gone)
        return;
    v->gone = 1;
    am_ws_unkick(v);
    am_ws.nviewers--;
    if (v->events)
        am_ws_events_leave(v);
    else
        am_ws_room_leave(v);
    h2o_websocket_close(v->conn);
    free(v->inflight);
    free(v->pend);
    free(v);
}

void am_ws_on_msg(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg) {
    viewer *v = conn->data;
    if (!arg) {
        am_ws_viewer_gone(v);
        am_ws_flush();
        return;
    }
    v->busy = 1;
    if (!v->events) /* nothing to say to an events socket: ignored */
        am_ws_term_msg(v, arg);
    am_ws_flush();
    v->busy = 0;
}

static int origin_ok(h2o_req_t *req, h2o_iovec_t origin) {
    return origin.len == req->authority.len + 8 && memcmp(origin.base, "https://", 8) == 0 &&
           h2o_lcstris(origin.base + 8, req->authority.len, req->authority.base,
                       req->authority.len);
}

/* Origin (when present: https://<Host>), then authentication, then a cookie needs Origin.
 * Sends the error response itself and returns -1 on refusal. */
int am_ws_auth(am_http_handler *h, h2o_req_t *req, am_principal *who) {
    ssize_t oi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    if (oi >= 0 && !origin_ok(req, req->headers.entries[oi].value)) {
        am_http_send_error(req, 403, "origin", "Origin does not match this host");
        return -1;
    }
    int bearer = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) >= 0;
    if (am_api_require_auth(h, req, who))
        return -1;
    if (!bearer && oi < 0) {
        am_http_send_error(req, 403, "origin", "a cookie-authenticated WebSocket needs Origin");
        return -1;
    }
    return 0;
}

/* h2o's recv callback, then the frame-length check: a header announcing more than MAX_MSG is
 * answered with close 1009 at once (wslay alone waits for the payload bytes to arrive). */
static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *ud) {
    h2o_websocket_conn_t *conn = ud;
    viewer *v = conn->data;
    ssize_t n = conn->ws_callbacks.recv_callback(ctx, buf, len, flags, ud);
    if (n > 0 && am_ws_frames_feed(&v->rx, buf, (size_t)n, MAX_MSG) != 0) {
        am_log_warn("ws", "frame too big: closing 1009", "user=%s source=%s", v->user, v->peer);
        wslay_event_shutdown_read(ctx);
        wslay_event_queue_close(ctx, 1009, (const uint8_t *)"message too big", 15);
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

void am_ws_setup(viewer *v) {
    struct wslay_event_callbacks cbs = v->conn->ws_callbacks;
    cbs.send_callback = ws_send;
    cbs.recv_callback = ws_recv;
    wslay_event_config_set_callbacks(v->conn->ws_ctx, &cbs);
    wslay_event_config_set_max_recv_msg_length(v->conn->ws_ctx, MAX_MSG);
}

/* ---------- wake-ups from the rpc thread ---------- */

static void wake(void *arg) {
    (void)arg;
    h2o_multithread_send_message(&am_ws.receiver, &am_ws.msg);
}

static void on_wake(h2o_multithread_receiver_t *rcv, h2o_linklist_t *messages) {
    (void)rcv;
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    am_hub_notify_ack(am_ws.app->hub); /* after the unlink: the rpc thread may send it again now */
    char ids[64][AM_HUB_POD_ID_MAX + 1];
    size_t n;
    while ((n = am_hub_take_dirty(am_ws.app->hub, ids, 64)) > 0)
        for (size_t i = 0; i < n; i++) {
            room *r = am_ws_room_find(ids[i]);
            for (viewer *v = r ? r->viewers : NULL; v; v = v->next)
                am_ws_refill(v);
        }
    if (am_hub_events_take_dirty(am_ws.app->hub))
        for (viewer *v = am_ws.evs; v; v = v->next)
            am_ws_refill(v);
    am_ws_flush();
}

void am_ws_start(am_app *app, h2o_loop_t *loop) {
    memset(&am_ws, 0, sizeof am_ws);
    am_ws.app = app;
    am_ws.queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(am_ws.queue, &am_ws.receiver, on_wake);
    am_hub_set_notify(app->hub, wake, NULL);
    am_ws.started = 1;
}

size_t am_ws_count(void) {
    return am_ws.nviewers;
}

static void going_away(viewer *v) {
    if (!v->close_queued) {
        v->close_queued = 1;
        wslay_event_queue_close(v->conn->ws_ctx, 1001, (const uint8_t *)"shutting down", 13);
        am_ws_kick(v);
    }
}

/* Close (1008) every WebSocket of a user whose sessions just ended (disabled, deleted, password
 * changed, sessions revoked): an open terminal must not outlive the session that opened it. */
static void session_ended(viewer *v) {
    if (!v->close_queued && !v->gone) {
        v->close_queued = 1;
        wslay_event_queue_close(v->conn->ws_ctx, 1008, (const uint8_t *)"session ended", 13);
        am_ws_kick(v);
    }
}

size_t am_ws_close_user(const char *org, const char *user) {
    size_t n = 0;
    if (!am_ws.started)
        return 0;
    for (room *r = am_ws.rooms; r; r = r->next)
        for (viewer *v = r->viewers; v; v = v->next)
            if (strcmp(r->org, org) == 0 && strcmp(v->user, user) == 0) {
                session_ended(v);
                n++;
            }
    for (viewer *v = am_ws.evs; v; v = v->next)
        if (strcmp(v->org, org) == 0 && strcmp(v->user, user) == 0) {
            session_ended(v);
            n++;
        }
    if (n)
        am_ws_flush();
    return n;
}

void am_ws_stop_begin(void) {
    if (!am_ws.started)
        return;
    am_ws.stopping = 1;
    for (room *r = am_ws.rooms; r; r = r->next)
        for (viewer *v = r->viewers; v; v = v->next)
            going_away(v);
    for (viewer *v = am_ws.evs; v; v = v->next)
        going_away(v);
    am_ws_flush();
}

void am_ws_stop_end(void) {
    if (!am_ws.started)
        return;
    while (am_ws.rooms)
        am_ws_viewer_gone(am_ws.rooms->viewers);
    while (am_ws.evs)
        am_ws_viewer_gone(am_ws.evs);
    am_hub_set_notify(am_ws.app->hub, NULL, NULL); /* no send can be in progress after this */
    if (h2o_linklist_is_linked(&am_ws.msg.link))
        h2o_linklist_unlink(&am_ws.msg.link);
    h2o_multithread_unregister_receiver(am_ws.queue, &am_ws.receiver);
    h2o_multithread_destroy_queue(am_ws.queue);
    am_ws.started = 0;
}
