/*
 * appliance/rpc — the runner protocol server on the gRPC C core (ARCHITECTURE.md §4).
 *
 * One port, TLS always, client certificates requested and verified against the issuing CA when
 * presented: EnrollService.Enroll (unary) needs none (the token authenticates; the runner pins
 * our CA by fingerprint), RunnerService.Connect (bidi stream) refuses any call without a
 * verified client certificate, whose CN is the runner id and O its org; revoked or unknown
 * serials are refused at the call. The server sends its chain leaf → issuing → root so a runner
 * holding only the root's fingerprint can find and pin the root.
 *
 * What each message means (enrollment, connection checks, pod states, renewals, refusals) is
 * decided in appliance/ops; this module does the framing and the peer identity (CN/O of the
 * verified client certificate) and hands each message there. It implements the runner link
 * ops uses to reach runners (am_rpc_link_send, injected by main.c).
 * Threads: am_rpc_start spawns the rpc thread, which drains the completion queue for every call.
 * am_rpc_send / am_rpc_link_send may be called from any thread. am_rpc_stop joins.
 */
#ifndef AM_APPLIANCE_RPC_H
#define AM_APPLIANCE_RPC_H

#include <stdint.h>

#include "airmesh/v1/runner.pb-c.h"
#include "appliance/app.h"
#include "appliance/hub/hub.h"

typedef struct am_rpc am_rpc;

typedef struct {
    const char *listen;    /* "127.0.0.1:9443" */
    uint32_t cert_days;    /* runner certificate lifetime, default 7 */
    uint32_t heartbeat_ms; /* told to runners in HelloAck, default 5000 */
    uint32_t max_message;  /* max receive size, default 4 MiB */
} am_rpc_opts;

int am_rpc_start(am_app *app, am_hub *hub, const am_rpc_opts *o, am_rpc **out);
int am_rpc_port(const am_rpc *r);
/* Queue a message on a connected runner's stream (any thread). -AM_ESTATE when the runner is
 * not connected, -AM_EFULL when its send queue is full. */
int am_rpc_send(am_rpc *r, const char *runner_id, Airmesh__V1__ApplianceMessage *m);
/* Bytes and messages waiting in a connected runner's send queue (am_gw_queued_fn; rpc is the
 * am_rpc). -AM_ESTATE when it is not connected. Any thread. */
int am_rpc_queued(void *rpc, const char *runner_id, size_t *bytes, size_t *msgs);
/* am_ops_send_fn over am_rpc_send (rpc may be NULL: nothing reachable). */
int am_rpc_link_send(void *rpc, const char *runner_id, Airmesh__V1__ApplianceMessage *m);
void am_rpc_stop(am_rpc *r);

#endif
