/*
 * appliance/http/ws_terminal.c — the live web terminal, GET /api/v1/pods/{id}/terminal
 * (ARCHITECTURE.md §9; HTTP/1.1 only: h2o 2.2.5 has no WebSocket over HTTP/2). The plumbing it
 * shares with the events socket is in ws_conn.c (see its header for the write path, lag rule and
 * re-entrancy).
 *
 * Protocol (the console is written against it):
 *  - server→client binary frames: terminal bytes, contiguous from the offset in `hello`;
 *  - server→client text (JSON): hello, lagged, control, resize, exit, error;
 *  - client→server text: take, release, resize; binary: input bytes (only from the holder).
 * Input control (issue 14): members and above type; one holder at a time. A take succeeds when
 * control is free; from another user when the taker is an admin or owner or started the pod;
 * from any holder idle for control_idle (a forgotten tab). Never from the taker's own other
 * connection while it is active. A take-over is audited with who lost control and why.
 * Auth: am_session cookie or Bearer; an Origin header, when present, must be https://<Host>,
 * and a cookie-authenticated upgrade needs it (403). Pods of other orgs are 404. Taking input
 * control and keystrokes go through appliance/ops (role check, audit, the runner link).
 *
 * Ownership: rooms (per-pod viewer lists with the input-control holder) are owned here; a room
 * holds one hub attach reference. Threads: the http thread.
 */
#include <h2o.h>
#include <h2o/websocket.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airmesh/v1/runner.pb-c.h"
#include "airmesh/v1/store.pb-c.h"
#include "appliance/http/ws.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

static json_t *holder_id(room *r) {
    return r->holder ? json_integer((json_int_t)r->holder->id) : json_null();
}

static json_t *holder_user(room *r) {
    return r->holder ? json_string(r->holder->user) : json_null();
}

static void broadcast_control(room *r) {
    for (viewer *v = r->viewers; v; v = v->next)
        if (!v->close_queued)
            am_ws_queue_text(v, json_pack("{s:s,s:o,s:o}", "type", "control", "holder",
                                          holder_id(r), "user", holder_user(r)));
}

void am_ws_term_refill(viewer *v) {
    wslay_event_context_ptr ctx = v->conn->ws_ctx;
    static uint8_t buf[CHUNK];
    for (;;) {
        size_t queued = wslay_event_get_queued_msg_length(ctx);
        if (queued >= WINDOW)
            break;
        size_t n = 0;
        uint64_t at = 0;
        am_hub_pod_view view;
        if (am_hub_pod_read(am_ws.app->hub, v->room->pod, v->pos, buf, CHUNK, &n, &at, &view) != 0)
            break;
        uint64_t backlog =
            (view.end > v->pos ? view.end - v->pos : 0) + queued + v->pend_len + v->inflight_len;
        if (v->pos < view.start || backlog > LAG_CAP) {
            v->pos = view.end;
            am_ws_queue_text(
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
            am_ws_queue_text(v, json_pack("{s:s,s:s,s:i}", "type", "exit", "state", view.state,
                                          "code", view.exit_code));
        }
        break;
    }
    if (v->exit_sent && !v->close_queued && wslay_event_get_queued_msg_count(ctx) == 0) {
        v->close_queued = 1;
        wslay_event_queue_close(ctx, 1000, (const uint8_t *)"pod ended", 9);
    }
    am_ws_kick(v);
}

room *am_ws_room_find(const char *pod) {
    for (room *r = am_ws.rooms; r; r = r->next)
        if (strcmp(r->pod, pod) == 0)
            return r;
    return NULL;
}

/* Take v out of its room (the last viewer out closes the room and its hub reference). */
void am_ws_room_leave(viewer *v) {
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
        am_hub_pod_detach(am_ws.app->hub, r->pod);
        room **pp = &am_ws.rooms;
        while (*pp != r)
            pp = &(*pp)->next;
        *pp = r->next;
        free(r);
    }
}

/* ---------- frames in ---------- */

static void send_runner(viewer *v, Airmesh__V1__ApplianceMessage *m) {
    int rc = am_ops_terminal_send(am_ws.app->ops, &v->who, v->room->runner, m);
    if (rc == -AM_EPERM) /* e.g. issue 14: the pod is no longer shared */
        am_ws_queue_error(v, am_err_last());
    else if (rc != 0)
        am_ws_queue_error(v, "the pod's runner is not reachable");
}

static void on_text(viewer *v, const uint8_t *msg, size_t len) {
    room *r = v->room;
    json_error_t jerr;
    json_t *j = json_loadb((const char *)msg, len, 0, &jerr);
    const char *type = json_is_object(j) ? json_string_value(json_object_get(j, "type")) : NULL;
    if (!type) {
        am_ws_queue_error(v, "expected a JSON object with a \"type\"");
    } else if (strcmp(type, "take") == 0) {
        /* Issue 14's rules: control passes from another user to an admin/owner or the pod's
         * owner, and from anyone idle for control_idle; never from your own active other tab. */
        viewer *h = r->holder;
        uint64_t now = am_now_ms(), idle_ms = am_ws.app->control_idle_ms;
        int idle = h && h != v && idle_ms && now - h->active_ms >= idle_ms;
        int same_user = h && h != v && strcmp(h->user, v->user) == 0;
        if (!v->can_input) {
            /* ops refuses it (the role table's message) and audits the refusal */
            am_ops_terminal_control(am_ws.app->ops, &v->who, v->peer, r->pod, 1);
            am_ws_queue_error(v, am_err_last());
        } else if (h && h != v && !idle && same_user)
            am_ws_queue_error(v, "input control is held by another viewer: you, in another tab or "
                                 "window; release it there");
        else if (h && h != v && !idle && !v->take_over)
            am_ws_queue_error(v, "input control is held by another viewer (the pod's owner or an "
                                 "admin may take it over)");
        else if (h != v) {
            int rc = h ? am_ops_terminal_take_over(am_ws.app->ops, &v->who, v->peer, r->pod,
                                                   h->user, idle ? "idle" : "taken over")
                       : am_ops_terminal_control(am_ws.app->ops, &v->who, v->peer, r->pod, 1);
            if (rc != 0)
                am_ws_queue_error(v, am_err_last());
            else {
                r->holder = v;
                v->active_ms = now;
                broadcast_control(r);
            }
        }
    } else if (strcmp(type, "release") == 0) {
        if (r->holder == v) {
            r->holder = NULL;
            am_ops_terminal_control(am_ws.app->ops, &v->who, v->peer, r->pod, 0);
            broadcast_control(r);
        }
    } else if (strcmp(type, "resize") == 0) {
        json_t *c = json_object_get(j, "cols"), *rw = json_object_get(j, "rows");
        json_int_t cols = json_is_integer(c) ? json_integer_value(c) : 0;
        json_int_t rows = json_is_integer(rw) ? json_integer_value(rw) : 0;
        if (cols < 1 || cols > 1000 || rows < 1 || rows > 1000)
            am_ws_queue_error(v, "resize: cols and rows must be integers from 1 to 1000");
        else if (r->holder != v)
            am_ws_queue_error(v, "resize ignored: take input control first");
        else {
            v->active_ms = am_now_ms();
            Airmesh__V1__Resize rs = AIRMESH__V1__RESIZE__INIT;
            rs.pod_id = r->pod;
            rs.cols = (uint32_t)cols;
            rs.rows = (uint32_t)rows;
            Airmesh__V1__ApplianceMessage m = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
            m.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_RESIZE;
            m.resize = &rs;
            send_runner(v, &m);
            am_hub_pod_set_size(am_ws.app->hub, r->pod, (uint16_t)cols, (uint16_t)rows);
            for (viewer *o = r->viewers; o; o = o->next)
                if (!o->close_queued)
                    am_ws_queue_text(o, json_pack("{s:s,s:I,s:I}", "type", "resize", "cols", cols,
                                                  "rows", rows));
        }
    } else {
        am_ws_queue_error(v, "unknown message type (expected take, release or resize)");
    }
    json_decref(j);
}

/* A frame from a terminal viewer: control (text) or keystrokes (binary, from the holder). */
void am_ws_term_msg(viewer *v, const struct wslay_event_on_msg_recv_arg *arg) {
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        on_text(v, arg->msg, arg->msg_length);
    } else if (arg->opcode == WSLAY_BINARY_FRAME && !v->close_queued) {
        if (v->room->holder != v) {
            am_ws_queue_error(v, "input ignored: take input control first");
        } else if (arg->msg_length) {
            v->active_ms = am_now_ms();
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
}

/* ---------- the upgrade ---------- */

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

int am_api_pod_terminal(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_ws_auth(h, req, &who))
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
    if (!am_ws.started || am_ws.stopping || strlen(p->id) > AM_HUB_POD_ID_MAX) {
        protobuf_c_message_free_unpacked(&p->base, NULL);
        am_http_send_error(req, 503, "unavailable", "the terminal service is not running");
        return 0;
    }
    room *r = am_ws_room_find(p->id);
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
        r->next = am_ws.rooms;
        am_ws.rooms = r;
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
    const char *by = p->created_by ? p->created_by : "";
    int own = strcmp(strncmp(by, "user:", 5) == 0 ? by + 5 : by, who.user_id) == 0;
    protobuf_c_message_free_unpacked(&p->base, NULL);

    v->room = r;
    v->id = ++am_ws.next_id;
    snprintf(v->user, sizeof v->user, "%s", who.user_id);
    v->who = who;
    am_http_peer(req, v->peer, sizeof v->peer);
    v->can_input = am_auth_can(&who, AM_CAN_TERMINAL_INPUT, NULL) == 0;
    v->take_over = who.role >= AIRMESH__V1__ROLE__ROLE_ADMIN || (v->can_input && own);
    v->next = r->viewers;
    if (r->viewers)
        r->viewers->prev = v;
    r->viewers = v;
    r->n++;
    am_ws.nviewers++;

    v->conn = h2o_upgrade_to_websocket(req, key, v, am_ws_on_msg);
    am_ws_setup(v);

    int given;
    uint64_t want = query_offset(req, &given);
    size_t n;
    uint64_t at;
    am_hub_pod_view view;
    am_hub_pod_read(h->app->hub, r->pod, 0, NULL, 0, &n, &at, &view);
    uint64_t start = !given || want < view.start ? view.start : want > view.end ? view.end : want;
    v->pos = start;
    const char *st = view.ended ? view.state : state;
    am_ws_queue_text(v, json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:I,s:o,s:o,s:b,s:i,s:i}", "type",
                                  "hello", "pod", r->pod, "offset", (json_int_t)start, "ring_start",
                                  (json_int_t)view.start, "ring_end", (json_int_t)view.end, "state",
                                  st, "you", (json_int_t)v->id, "control", holder_id(r),
                                  "control_user", holder_user(r), "can_input", v->can_input, "cols",
                                  (int)view.cols, "rows", (int)view.rows));
    if (given && want < view.start)
        am_ws_queue_text(
            v, json_pack("{s:s,s:I}", "type", "lagged", "skipped_to", (json_int_t)view.start));
    if (ended_in_store && !view.ended) {
        /* Ended before this appliance saw its end (e.g. before a restart): say so and close. */
        am_hub_pod_end(h->app->hub, r->org, r->runner, r->pod, state, exit_code);
    }
    am_ws_refill(v);
    am_ws_flush();
    return 0;
}
