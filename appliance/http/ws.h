/*
 * appliance/http/ws.h — the WebSocket plumbing shared by the terminal (ws_terminal.c) and the
 * live events socket (ws_events.c); ws_conn.c implements it (not a public header).
 *
 * A `viewer` is one upgraded connection of either kind. ws_conn.c owns the write path (frames
 * coalesced behind the one socket write in flight), the kick list that proceeds connections
 * outside any iteration, the wake-up from the rpc thread, and the start/stop of the whole
 * service; ws_terminal.c owns rooms (per-pod viewer lists with the input-control holder),
 * ws_events.c the events subscribers. Everything runs on the http thread except the hub's
 * wake-up callback (ws_conn.c), which only posts an h2o message.
 */
#ifndef AM_APPLIANCE_HTTP_WS_H
#define AM_APPLIANCE_HTTP_WS_H

#include <h2o.h>
#include <h2o/websocket.h>
#include <jansson.h>

#include "appliance/http/internal.h"
#include "appliance/http/ws_frames.h"
#include "appliance/hub/hub.h"

#define CHUNK (32u << 10)     /* terminal bytes per binary frame */
#define WINDOW (128u << 10)   /* bytes a viewer keeps queued in wslay */
#define WBUF_CAP (128u << 10) /* frames coalesced behind the socket write in flight */
/* Unsent backlog after which a viewer skips ahead: more than a whole ring plus what can sit in
 * wslay's queue and the write buffers, so a new viewer (a browser reload) replays the full ring;
 * a viewer that falls out of the ring skips ahead either way. */
#define LAG_CAP (AM_HUB_RING_BYTES + WINDOW + 2 * WBUF_CAP + (64u << 10))
#define MAX_MSG (64u << 10)   /* largest client message (bigger: close 1009) */

typedef struct room room;

typedef struct viewer {
    h2o_websocket_conn_t *conn;
    room *room;
    struct viewer *next, *prev;   /* in room */
    struct viewer *knext, *kprev; /* kick list */
    int kicked, busy, gone;
    uint64_t id;
    uint64_t pos;     /* next ring offset to queue */
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
    am_ws_frames rx; /* client frame boundaries: an announced length above MAX_MSG closes 1009 */
} viewer;

struct room {
    char pod[AM_HUB_POD_ID_MAX + 1];
    char org[129], runner[129];
    viewer *viewers;
    size_t n;
    viewer *holder;
    room *next;
};

typedef struct {
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
} am_ws_state;

extern am_ws_state am_ws; /* the http thread's WebSocket state (ws_conn.c) */

/* ws_conn.c: plumbing */
void am_ws_kick(viewer *v);
void am_ws_unkick(viewer *v);
/* Proceed every kicked viewer (never while iterating a list: it may free viewers). */
void am_ws_flush(void);
/* Queue a JSON text frame (takes doc) / an {"type":"error"} frame, and kick. */
void am_ws_queue_text(viewer *v, json_t *doc);
void am_ws_queue_error(viewer *v, const char *msg);
/* Queue whatever the viewer is missing (terminal bytes or events). */
void am_ws_refill(viewer *v);
/* The connection ended: unlink (room or events list), close, free. */
void am_ws_viewer_gone(viewer *v);
/* Origin (when present: https://<Host>), authentication, a cookie needs Origin; sends the
 * refusal itself and returns -1. */
int am_ws_auth(am_http_handler *h, h2o_req_t *req, am_principal *who);
/* After h2o_upgrade_to_websocket: our send callback and the message size limit. */
void am_ws_setup(viewer *v);
/* h2o's message callback for every viewer. */
void am_ws_on_msg(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg);

/* ws_terminal.c: rooms */
room *am_ws_room_find(const char *pod);
void am_ws_room_leave(viewer *v);
void am_ws_term_refill(viewer *v);
void am_ws_term_msg(viewer *v, const struct wslay_event_on_msg_recv_arg *arg);

/* ws_events.c: events subscribers */
void am_ws_events_refill(viewer *v);
void am_ws_events_leave(viewer *v);

#endif
