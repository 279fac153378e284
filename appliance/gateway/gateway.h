/*
 * appliance/gateway — the model gateway's engine (issue 12): pod → runner listener → runner
 * stream (GatewayRequest) → here → the org's model endpoint, and the answer back as
 * GatewayResponse messages, in order (status and headers first, then the body as the model
 * server sends it, SSE included, `last` on the final one).
 *
 * One gateway thread runs a libcurl multi handle. The rpc thread hands each GatewayRequest over
 * with am_gw_submit (a copy into a bounded inbox, then curl_multi_wakeup: it never blocks);
 * the gateway thread assembles the body, asks appliance/ops whether the pod may (am_ops_gateway_
 * admit: runner, pod state and network, virtual key, quota, endpoint), swaps the virtual key for
 * the endpoint's real one (openai: Authorization: Bearer, anthropic: x-api-key; any credential
 * the pod sent is removed), and streams the upstream answer to the runner as it arrives. GET
 * /v1/models is answered here from the org's endpoints (OpenAI's list format, Anthropic's when
 * the request has anthropic-version). Refusals answer in the API's own error format
 * (core.h). Usage is read from the answer (core.h's parser; streaming chat requests get
 * stream_options.include_usage=true), and each request ends in a usage record + one
 * model.request audit record, written on the io worker pool in batches (what finished while the
 * previous batch was written goes in one transaction: one fsync for many requests).
 *
 * Back-pressure: while the runner's send queue holds more than queue_bytes, the transfer is
 * paused (curl stops reading the model server's socket) and resumed when it drains. Timeouts:
 * connect (default 10 s) and idle (no byte for idle_timeout_ms, default 300 s) answer 504 in
 * the API's format when nothing was sent yet. The runner's cancel, or its stream ending, stops
 * the transfer.
 *
 * Threads: am_gw_start/am_gw_stop/am_gw_free from main; am_gw_set_link once the rpc server
 * runs; am_gw_submit and am_gw_runner_gone from the rpc thread (any thread in fact). The send
 * function is called from the gateway thread (and from am_gw_submit to refuse when the inbox is
 * full). Ownership: am_gw_submit copies the message.
 */
#ifndef AM_APPLIANCE_GATEWAY_H
#define AM_APPLIANCE_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "airmesh/v1/runner.pb-c.h"
#include "appliance/ops/ops.h"

typedef struct am_gw am_gw;
struct am_work;

/* Queue a message on a runner's stream (am_rpc_send). */
typedef int (*am_gw_send_fn)(void *ctx, const char *runner_id, Airmesh__V1__ApplianceMessage *m);
/* Bytes and messages waiting in a runner's send queue; -1 when it is not connected. */
typedef int (*am_gw_queued_fn)(void *ctx, const char *runner_id, size_t *bytes, size_t *msgs);

typedef struct {
    am_ops *ops;
    struct am_work *io;          /* metering jobs; NULL = record on the gateway thread */
    uint32_t connect_timeout_ms; /* default 10000 */
    uint32_t idle_timeout_ms;    /* default 300000 */
    unsigned max_requests;       /* at once (default 256); more get 503 */
    size_t queue_bytes;          /* pause while the runner's queue holds more (default 4 MiB) */
} am_gw_opts;

int am_gw_start(const am_gw_opts *o, am_gw **out);
void am_gw_set_link(am_gw *g, am_gw_send_fn send, am_gw_queued_fn queued, void *ctx);
/* A GatewayRequest from the runner peer names (its certificate's identity). */
void am_gw_submit(am_gw *g, const am_ops_peer *peer, const Airmesh__V1__GatewayRequest *r);
/* The runner's stream ended: its requests stop (recorded as errors). */
void am_gw_runner_gone(am_gw *g, const char *runner_id);
/* Requests in progress (tests, the bench). */
size_t am_gw_active(am_gw *g);
/* Stop the thread: requests in progress end (recorded). NULL is ignored. */
void am_gw_stop(am_gw *g);
void am_gw_free(am_gw *g);

#endif
