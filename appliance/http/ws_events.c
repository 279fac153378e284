/*
 * appliance/http/ws_events.c — live audit events of the caller's org, GET /api/v1/events (the
 * console's Activity page). appliance/ops publishes every audit record it writes to the hub
 * after the commit; this socket forwards the caller's org's ones. Plumbing: ws_conn.c.
 * Threads: the http thread.
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

void am_ws_events_refill(viewer *v) {
    if (wslay_event_get_queued_msg_length(v->conn->ws_ctx) > LAG_CAP)
        return; /* a stuck reader: leave the events in the hub; they roll over into `lagged` */
    if (am_hub_events_read(am_ws.app->hub, v->org, &v->ev_after, ev_cb, v))
        am_ws_queue_text(v, json_pack("{s:s}", "type", "lagged"));
    am_ws_kick(v);
}

void am_ws_events_leave(viewer *v) {
    if (v->prev)
        v->prev->next = v->next;
    else
        am_ws.evs = v->next;
    if (v->next)
        v->next->prev = v->prev;
}

int am_api_events(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_ws_auth(h, req, &who))
        return 0;
    const char *key = NULL;
    if (h2o_is_websocket_handshake(req, &key) != 0 || !key) {
        am_http_send_error(req, 400, "bad_request",
                           "expected a WebSocket upgrade over HTTP/1.1 (GET with Upgrade: "
                           "websocket)");
        return 0;
    }
    viewer *v = am_ws.started && !am_ws.stopping ? calloc(1, sizeof *v) : NULL;
    if (!v) {
        am_http_send_error(req, 503, "unavailable", "the events service is not running");
        return 0;
    }
    v->events = 1;
    v->id = ++am_ws.next_id;
    v->ev_after = UINT64_MAX;
    snprintf(v->org, sizeof v->org, "%s", who.org_id);
    snprintf(v->user, sizeof v->user, "%s", who.user_id);
    v->who = who;
    am_hub_events_read(h->app->hub, v->org, &v->ev_after, ev_cb, v); /* start from now */
    v->next = am_ws.evs;
    if (am_ws.evs)
        am_ws.evs->prev = v;
    am_ws.evs = v;
    am_ws.nviewers++;
    v->conn = h2o_upgrade_to_websocket(req, key, v, am_ws_on_msg);
    am_ws_setup(v);
    am_ws_queue_text(v, json_pack("{s:s,s:I}", "type", "hello", "you", (json_int_t)v->id));
    am_ws_flush();
    return 0;
}
