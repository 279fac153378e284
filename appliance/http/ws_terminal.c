/*
 * appliance/http/ws_terminal.c — airmeshd's WebSockets (HTTP/1.1; h2o 2.2.5 has no WebSocket
 * over HTTP/2): the live web terminal, GET /api/v1/pods/{id}/terminal (ARCHITECTURE.md §9), and
 * live audit events of the caller's org, GET /api/v1/events (the console's Activity page; see
 * that section below). Both share the write path, the kick list and the wake-up.
 *
 * Protocol (the console is written against it):
 *  - server→client binary frames: terminal bytes, contiguous from the offset in `hello`;
 *  - server→client text (JSON): hello, lagged, control, resize, exit, error;
 *  - client→server text: take, release, resize; binary: input bytes (only from the holder).
 * Auth: am_session cookie or Bearer; an Origin header, when present, must be https://<Host>,
 * and a cookie-authenticated upgrade needs it (403). Pods of other orgs are 404.
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
 * Ownership: viewers and rooms (per-pod viewer lists with the input-control holder) are owned
 * here; a room holds one hub attach reference. Threads: everything here runs on the http thread
 * except wake(), which the hub calls on the rpc thread (it only posts the h2o message).
 */
#include <h2o.h>
#include <h2o/websocket.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airmesh/v1/runner.pb-c.h"
#include "airmesh/v1/store.pb-c.h"
#include "appliance/http/internal.h"
#include "appliance/hub/hub.h"
#include "common/err.h"
#include "common/log.h"

#define CHUNK (32u << 10)     /* terminal bytes per binary frame */
#define WINDOW (128u << 10)   /* bytes a viewer keeps queued in wslay */
#define WBUF_CAP (128u << 10) /* frames coalesced behind the socket write in flight */
#define LAG_CAP (1u << 20)    /* unsent backlog after which a viewer skips ahead */
#define MAX_MSG (64u << 10)   /* largest client message (bigger: close 1009) */

typedef struct room room;

typedef struct viewer {
    h2o_websocket_conn_t *conn;
    room *room;
    struct viewer *next, *prev;   /* in room */
    struct viewer *knext, *kprev; /* kick list */
    int kicked, busy, gone;
    uint64_t id;
    uint64_t pos; /* next ring offset to queue */
    am_principal who; /* who opened it (role checks for input go through ops) */
    char user[129];
    char peer[64];
    int can_input;
    int exit_sent, close_queued;
    int events;        /* a /api/v1/events subscriber (room is NULL) */
    uint64_t ev_after; /* last event sequence seen */
    char org[129];
    uint8_t *inflight, *pend;
    size_t inflight_len, pend_len;
} viewer;

struct room {
    char pod[AM_HUB_POD_ID_MAX + 1];
    char org[129], runner[129];
    viewer *viewers;
    size_t n;
    viewer *holder;
    room *next;
};

static struct {
    am_app *app;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t msg;
    room *rooms;
    viewer *evs; /* events subscribers */
    viewer *khead, *ktail;
    int flushing, started, stopping;
    uint64_t next_id;
    size_t nviewers;
} W;

static void viewer_gone(viewer *v);

/* ---------- kick list ---------- */

static void kick(viewer *v) {
    if (v->kicked || v->gone)
        return;
    v->kicked = 1;
    v->knext = NULL;
    v->kprev = W.ktail;
    if (W.ktail)
        W.ktail->knext = v;
    else
        W.khead = v;
    W.ktail = v;
}

static void unkick(viewer *v) {
    if (!v->kicked)
        return;
    if (v->kprev)
        v->kprev->knext = v->knext;
    else
        W.khead = v->knext;
    if (v->knext)
        v->knext->kprev = v->kprev;
    else
        W.ktail = v->kprev;
    v->kicked = 0;
    v->knext = v->kprev = NULL;
}

static void start_write(viewer *v);

/* Proceed every kicked viewer (see the header on re-entrancy). */
static void flush(void) {
    if (W.flushing)
        return;
    W.flushing = 1;
    while (W.khead) {
        viewer *v = W.khead;
        unkick(v);
        if (v->busy || !v->conn->sock)
            continue; /* in its own callback / upgrade not complete: h2o proceeds it */
        wslay_event_context_ptr ctx = v->conn->ws_ctx;
        if (h2o_socket_is_writing(v->conn->sock) && wslay_event_want_write(ctx) &&
            wslay_event_send(ctx) != 0) {
            viewer_gone(v);
            continue;
        }
        start_write(v);
        h2o_websocket_proceed(v->conn); /* may free v */
    }
    W.flushing = 0;
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

static void queue_text(viewer *v, json_t *doc) {
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!s)
        return;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)s, strlen(s)};
    wslay_event_queue_msg(v->conn->ws_ctx, &m);
    free(s);
    kick(v);
}

static void queue_error(viewer *v, const char *msg) {
    queue_text(v, json_pack("{s:s,s:s}", "type", "error", "message", msg));
}

static json_t *holder_id(room *r) {
    return r->holder ? json_integer((json_int_t)r->holder->id) : json_null();
}

static json_t *holder_user(room *r) {
    return r->holder ? json_string(r->holder->user) : json_null();
}

static void broadcast_control(room *r) {
    for (viewer *v = r->viewers; v; v = v->next)
        if (!v->close_queued)
            queue_text(v, json_pack("{s:s,s:o,s:o}", "type", "control", "holder", holder_id(r),
                                    "user", holder_user(r)));
}

/* Queue the viewer's missing bytes (bounded by WINDOW), applying the lag rule; `exit` once
 * everything is queued after the pod ended; the close frame once wslay's queue is empty. */
static void ev_refill(viewer *v);

static void refill(viewer *v) {
    if (v->gone || v->close_queued)
        return;
    if (v->events) {
        ev_refill(v);
        return;
    }
    wslay_event_context_ptr ctx = v->conn->ws_ctx;
    static uint8_t buf[CHUNK];
    for (;;) {
        size_t queued = wslay_event_get_queued_msg_length(ctx);
        if (queued >= WINDOW)
            break;
        size_t n = 0;
        uint64_t at = 0;
        am_hub_pod_view view;
        if (am_hub_pod_read(W.app->hub, v->room->pod, v->pos, buf, CHUNK, &n, &at, &view) != 0)
            break;
        uint64_t backlog =
            (view.end > v->pos ? view.end - v->pos : 0) + queued + v->pend_len + v->inflight_len;
        if (v->pos < view.start || backlog > LAG_CAP) {
            v->pos = view.end;
            queue_text(
                v, json_pack("{s:s,s:I}", "type", "lagged", "skipped_to", (json_int_t)view.end));
            continue;
        }
        v->pos = at;
        if (n > 0) {
            struct wslay_event_msg m = {WSLAY_BINARY_FRAME, buf, n};
            if (wslay_event_queue_msg(ctx, &m) != 0)
                break;
            v->pos += n;
            continue;
        }
        if (view.ended && !v->exit_sent) {
            v->exit_sent = 1;
            queue_text(v, json_pack("{s:s,s:s,s:i}", "type", "exit", "state", view.state, "code",
                                    view.exit_code));
        }
        break;
    }
    if (v->exit_sent && !v->close_queued && wslay_event_get_queued_msg_count(ctx) == 0) {
        v->close_queued = 1;
        wslay_event_queue_close(ctx, 1000, (const uint8_t *)"pod ended", 9);
    }
    kick(v);
}

static void on_written(h2o_socket_t *sock, const char *err) {
    h2o_websocket_conn_t *conn = sock->data;
    viewer *v = conn->data;
    if (err) {
        viewer_gone(v);
        flush();
        return;
    }
    v->inflight_len = 0;
    start_write(v);
    refill(v);
    flush();
}

/* ---------- rooms and viewers ---------- */

static room *room_find(const char *pod) {
    for (room *r = W.rooms; r; r = r->next)
        if (strcmp(r->pod, pod) == 0)
            return r;
    return NULL;
}

static void viewer_gone(viewer *v) {
    if (v->gone)
        return;
    v->gone = 1;
    unkick(v);
    W.nviewers--;
    if (v->events) {
        if (v->prev)
            v->prev->next = v->next;
        else
            W.evs = v->next;
        if (v->next)
            v->next->prev = v->prev;
        goto free_it;
    }
    room *r = v->room;
    if (v->prev)
        v->prev->next = v->next;
    else
        r->viewers = v->next;
    if (v->next)
        v->next->prev = v->prev;
    r->n--;
    if (r->holder == v) {
        r->holder = NULL;
        broadcast_control(r);
    }
    if (r->n == 0) {
        am_hub_pod_detach(W.app->hub, r->pod);
        room **pp = &W.rooms;
        while (*pp != r)
            pp = &(*pp)->next;
        *pp = r->next;
        free(r);
    }
free_it:
    h2o_websocket_close(v->conn);
    free(v->inflight);
    free(v->pend);
    free(v);
}

/* ---------- frames in ---------- */

static void send_runner(viewer *v, Airmesh__V1__ApplianceMessage *m) {
    if (am_ops_terminal_send(W.app->ops, &v->who, v->room->runner, m) != 0)
        queue_error(v, "the pod's runner is not reachable");
}

static void on_text(viewer *v, const uint8_t *msg, size_t len) {
    room *r = v->room;
    json_error_t jerr;
    json_t *j = json_loadb((const char *)msg, len, 0, &jerr);
    const char *type = json_is_object(j) ? json_string_value(json_object_get(j, "type")) : NULL;
    if (!type) {
        queue_error(v, "expected a JSON object with a \"type\"");
    } else if (strcmp(type, "take") == 0) {
        if (!v->can_input)
            queue_error(v, "your role may watch but not type (member or above may)");
        else if (r->holder && r->holder != v)
            queue_error(v, "input control is held by another viewer");
        else if (r->holder != v) {
            if (am_ops_terminal_control(W.app->ops, &v->who, v->peer, r->pod, 1) != 0)
                queue_error(v, am_err_last());
            else {
                r->holder = v;
                broadcast_control(r);
            }
        }
    } else if (strcmp(type, "release") == 0) {
        if (r->holder == v) {
            r->holder = NULL;
            am_ops_terminal_control(W.app->ops, &v->who, v->peer, r->pod, 0);
            broadcast_control(r);
        }
    } else if (strcmp(type, "resize") == 0) {
        json_t *c = json_object_get(j, "cols"), *rw = json_object_get(j, "rows");
        json_int_t cols = json_is_integer(c) ? json_integer_value(c) : 0;
        json_int_t rows = json_is_integer(rw) ? json_integer_value(rw) : 0;
        if (cols < 1 || cols > 1000 || rows < 1 || rows > 1000)
            queue_error(v, "resize: cols and rows must be integers from 1 to 1000");
        else if (r->holder != v)
            queue_error(v, "resize ignored: take input control first");
        else {
            Airmesh__V1__Resize rs = AIRMESH__V1__RESIZE__INIT;
            rs.pod_id = r->pod;
            rs.cols = (uint32_t)cols;
            rs.rows = (uint32_t)rows;
            Airmesh__V1__ApplianceMessage m = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
            m.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_RESIZE;
            m.resize = &rs;
            send_runner(v, &m);
            am_hub_pod_set_size(W.app->hub, r->pod, (uint16_t)cols, (uint16_t)rows);
            for (viewer *o = r->viewers; o; o = o->next)
                if (!o->close_queued)
                    queue_text(o, json_pack("{s:s,s:I,s:I}", "type", "resize", "cols", cols, "rows",
                                            rows));
        }
    } else {
        queue_error(v, "unknown message type (expected take, release or resize)");
    }
    json_decref(j);
}

static void on_msg(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg) {
    viewer *v = conn->data;
    if (!arg) {
        viewer_gone(v);
        flush();
        return;
    }
    v->busy = 1;
    if (v->events) {
        /* nothing to say to an events socket: ignored */
    } else if (arg->opcode == WSLAY_TEXT_FRAME) {
        on_text(v, arg->msg, arg->msg_length);
    } else if (arg->opcode == WSLAY_BINARY_FRAME && !v->close_queued) {
        if (v->room->holder != v) {
            queue_error(v, "input ignored: take input control first");
        } else if (arg->msg_length) {
            Airmesh__V1__TerminalInput in = AIRMESH__V1__TERMINAL_INPUT__INIT;
            in.pod_id = v->room->pod;
            in.data.data = (uint8_t *)arg->msg;
            in.data.len = arg->msg_length;
            Airmesh__V1__ApplianceMessage m = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
            m.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_INPUT;
            m.input = &in;
            send_runner(v, &m);
        }
    }
    flush();
    v->busy = 0;
}

/* ---------- the upgrade ---------- */

static int origin_ok(h2o_req_t *req, h2o_iovec_t origin) {
    return origin.len == req->authority.len + 8 && memcmp(origin.base, "https://", 8) == 0 &&
           h2o_lcstris(origin.base + 8, req->authority.len, req->authority.base,
                       req->authority.len);
}

static uint64_t query_offset(h2o_req_t *req, int *given) {
    *given = 0;
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if (stop - q > 7 && memcmp(q, "offset=", 7) == 0) {
            uint64_t v = 0;
            const char *p = q + 7;
            for (; p < stop && *p >= '0' && *p <= '9' && v < (UINT64_MAX - 9) / 10; p++)
                v = v * 10 + (uint64_t)(*p - '0');
            if (p == stop) {
                *given = 1;
                return v;
            }
        }
        q = stop + 1;
    }
    return 0;
}

/* Origin (when present: https://<Host>), then authentication, then a cookie needs Origin.
 * Sends the error response itself and returns -1 on refusal. */
static int ws_auth(am_http_handler *h, h2o_req_t *req, am_principal *who) {
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

static void ws_setup(viewer *v) {
    struct wslay_event_callbacks cbs = v->conn->ws_callbacks;
    cbs.send_callback = ws_send;
    wslay_event_config_set_callbacks(v->conn->ws_ctx, &cbs);
    wslay_event_config_set_max_recv_msg_length(v->conn->ws_ctx, MAX_MSG);
}

int am_api_pod_terminal(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (ws_auth(h, req, &who))
        return 0;
    Airmesh__V1__Pod *p = NULL;
    if (am_ops_get(h->app->ops, AM_DB_PODS, who.org_id, param[0], &airmesh__v1__pod__descriptor,
                   (ProtobufCMessage **)&p) != 0) {
        am_http_send_error(req, 404, "not_found", "no such pod");
        return 0;
    }
    const char *key = NULL;
    if (h2o_is_websocket_handshake(req, &key) != 0 || !key) {
        protobuf_c_message_free_unpacked(&p->base, NULL);
        am_http_send_error(req, 400, "bad_request",
                           "expected a WebSocket upgrade over HTTP/1.1 (GET with Upgrade: "
                           "websocket)");
        return 0;
    }
    if (!W.started || W.stopping || strlen(p->id) > AM_HUB_POD_ID_MAX) {
        protobuf_c_message_free_unpacked(&p->base, NULL);
        am_http_send_error(req, 503, "unavailable", "the terminal service is not running");
        return 0;
    }
    room *r = room_find(p->id);
    viewer *v = calloc(1, sizeof *v);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r || !v || am_hub_pod_attach(h->app->hub, who.org_id, p->runner_id, p->id) != 0) {
            free(r);
            free(v);
            protobuf_c_message_free_unpacked(&p->base, NULL);
            am_http_send_error(req, 500, "internal", "out of memory");
            return 0;
        }
        snprintf(r->pod, sizeof r->pod, "%s", p->id);
        snprintf(r->org, sizeof r->org, "%s", who.org_id);
        snprintf(r->runner, sizeof r->runner, "%s", p->runner_id);
        r->next = W.rooms;
        W.rooms = r;
    } else if (!v) {
        protobuf_c_message_free_unpacked(&p->base, NULL);
        am_http_send_error(req, 500, "internal", "out of memory");
        return 0;
    }
    char state[16];
    snprintf(state, sizeof state, "%s", p->state);
    am_pod_state pst;
    int ended_in_store = am_pod_state_parse(p->state, &pst) == 0 && am_pod_state_final(pst);
    int exit_code = p->exit_code;
    protobuf_c_message_free_unpacked(&p->base, NULL);

    v->room = r;
    v->id = ++W.next_id;
    snprintf(v->user, sizeof v->user, "%s", who.user_id);
    v->who = who;
    am_http_peer(req, v->peer, sizeof v->peer);
    v->can_input = am_auth_can(&who, AM_CAN_TERMINAL_INPUT, NULL) == 0;
    v->next = r->viewers;
    if (r->viewers)
        r->viewers->prev = v;
    r->viewers = v;
    r->n++;
    W.nviewers++;

    v->conn = h2o_upgrade_to_websocket(req, key, v, on_msg);
    ws_setup(v);

    int given;
    uint64_t want = query_offset(req, &given);
    size_t n;
    uint64_t at;
    am_hub_pod_view view;
    am_hub_pod_read(h->app->hub, r->pod, 0, NULL, 0, &n, &at, &view);
    uint64_t start = !given || want < view.start ? view.start : want > view.end ? view.end : want;
    v->pos = start;
    const char *st = view.ended ? view.state : state;
    queue_text(v, json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:I,s:o,s:o,s:b,s:i,s:i}", "type", "hello",
                            "pod", r->pod, "offset", (json_int_t)start, "ring_start",
                            (json_int_t)view.start, "ring_end", (json_int_t)view.end, "state", st,
                            "you", (json_int_t)v->id, "control", holder_id(r), "control_user",
                            holder_user(r), "can_input", v->can_input, "cols", (int)view.cols,
                            "rows", (int)view.rows));
    if (given && want < view.start)
        queue_text(v,
                   json_pack("{s:s,s:I}", "type", "lagged", "skipped_to", (json_int_t)view.start));
    if (ended_in_store && !view.ended) {
        /* Ended before this appliance saw its end (e.g. before a restart): say so and close. */
        am_hub_pod_end(h->app->hub, r->org, r->runner, r->pod, state, exit_code);
    }
    refill(v);
    flush();
    return 0;
}

/* ---------- live events: GET /api/v1/events ---------- */

/* Each text frame is one audit event of the caller's org, the same JSON object as an item of
 * GET /api/v1/audit (seq, time_ms, actor, org, action, target, result, source, details), from
 * the moment of connecting (history comes from the REST API). A subscriber that falls more than
 * AM_HUB_EVENTS events or LAG_CAP queued bytes behind gets {"type":"lagged"} and continues with
 * the newest events. */

static void ev_cb(void *arg, const char *data, size_t len) {
    viewer *v = arg;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)data, len};
    wslay_event_queue_msg(v->conn->ws_ctx, &m);
}

static void ev_refill(viewer *v) {
    if (wslay_event_get_queued_msg_length(v->conn->ws_ctx) > LAG_CAP)
        return; /* a stuck reader: leave the events in the hub; they roll over into `lagged` */
    if (am_hub_events_read(W.app->hub, v->org, &v->ev_after, ev_cb, v))
        queue_text(v, json_pack("{s:s}", "type", "lagged"));
    kick(v);
}

/* Events are published to the hub by appliance/ops, after each operation's commit. */

int am_api_events(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (ws_auth(h, req, &who))
        return 0;
    const char *key = NULL;
    if (h2o_is_websocket_handshake(req, &key) != 0 || !key) {
        am_http_send_error(req, 400, "bad_request",
                           "expected a WebSocket upgrade over HTTP/1.1 (GET with Upgrade: "
                           "websocket)");
        return 0;
    }
    viewer *v = W.started && !W.stopping ? calloc(1, sizeof *v) : NULL;
    if (!v) {
        am_http_send_error(req, 503, "unavailable", "the events service is not running");
        return 0;
    }
    v->events = 1;
    v->id = ++W.next_id;
    v->ev_after = UINT64_MAX;
    snprintf(v->org, sizeof v->org, "%s", who.org_id);
    snprintf(v->user, sizeof v->user, "%s", who.user_id);
    v->who = who;
    am_hub_events_read(h->app->hub, v->org, &v->ev_after, ev_cb, v); /* start from now */
    v->next = W.evs;
    if (W.evs)
        W.evs->prev = v;
    W.evs = v;
    W.nviewers++;
    v->conn = h2o_upgrade_to_websocket(req, key, v, on_msg);
    ws_setup(v);
    queue_text(v, json_pack("{s:s,s:I}", "type", "hello", "you", (json_int_t)v->id));
    flush();
    return 0;
}

/* ---------- wake-ups from the rpc thread ---------- */

static void wake(void *arg) {
    (void)arg;
    h2o_multithread_send_message(&W.receiver, &W.msg);
}

static void on_wake(h2o_multithread_receiver_t *rcv, h2o_linklist_t *messages) {
    (void)rcv;
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    am_hub_notify_ack(W.app->hub); /* after the unlink: the rpc thread may send it again now */
    char ids[64][AM_HUB_POD_ID_MAX + 1];
    size_t n;
    while ((n = am_hub_take_dirty(W.app->hub, ids, 64)) > 0)
        for (size_t i = 0; i < n; i++) {
            room *r = room_find(ids[i]);
            for (viewer *v = r ? r->viewers : NULL; v; v = v->next)
                refill(v);
        }
    if (am_hub_events_take_dirty(W.app->hub))
        for (viewer *v = W.evs; v; v = v->next)
            refill(v);
    flush();
}

void am_ws_start(am_app *app, h2o_loop_t *loop) {
    memset(&W, 0, sizeof W);
    W.app = app;
    W.queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(W.queue, &W.receiver, on_wake);
    am_hub_set_notify(app->hub, wake, NULL);
    W.started = 1;
}

size_t am_ws_count(void) {
    return W.nviewers;
}

static void going_away(viewer *v) {
    if (!v->close_queued) {
        v->close_queued = 1;
        wslay_event_queue_close(v->conn->ws_ctx, 1001, (const uint8_t *)"shutting down", 13);
        kick(v);
    }
}

/* Close (1008) every WebSocket of a user whose sessions just ended (disabled, deleted, password
 * changed, sessions revoked): an open terminal must not outlive the session that opened it. */
static void session_ended(viewer *v) {
    if (!v->close_queued && !v->gone) {
        v->close_queued = 1;
        wslay_event_queue_close(v->conn->ws_ctx, 1008, (const uint8_t *)"session ended", 13);
        kick(v);
    }
}

size_t am_ws_close_user(const char *org, const char *user) {
    size_t n = 0;
    if (!W.started)
        return 0;
    for (room *r = W.rooms; r; r = r->next)
        for (viewer *v = r->viewers; v; v = v->next)
            if (strcmp(r->org, org) == 0 && strcmp(v->user, user) == 0) {
                session_ended(v);
                n++;
            }
    for (viewer *v = W.evs; v; v = v->next)
        if (strcmp(v->org, org) == 0 && strcmp(v->user, user) == 0) {
            session_ended(v);
            n++;
        }
    if (n)
        flush();
    return n;
}

void am_ws_stop_begin(void) {
    if (!W.started)
        return;
    W.stopping = 1;
    for (room *r = W.rooms; r; r = r->next)
        for (viewer *v = r->viewers; v; v = v->next)
            going_away(v);
    for (viewer *v = W.evs; v; v = v->next)
        going_away(v);
    flush();
}

void am_ws_stop_end(void) {
    if (!W.started)
        return;
    while (W.rooms)
        viewer_gone(W.rooms->viewers);
    while (W.evs)
        viewer_gone(W.evs);
    am_hub_set_notify(W.app->hub, NULL, NULL); /* no send can be in progress after this */
    if (h2o_linklist_is_linked(&W.msg.link))
        h2o_linklist_unlink(&W.msg.link);
    h2o_multithread_unregister_receiver(W.queue, &W.receiver);
    h2o_multithread_destroy_queue(W.queue);
    W.started = 0;
}
