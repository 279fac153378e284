/*
 * runner/mcp/relay.h — the runner's side of a pod's MCP socket (common/mcp.h): it serves the
 * listening AF_UNIX socket runner/sandbox bound in the pod's root tmpfs (AM_MCP_SOCKET) and
 * relays newline-delimited JSON-RPC lines between the pod's connections and the appliance.
 *
 *   pod → appliance: every line (at most AM_MCP_LINE_MAX bytes without its '\n'; a longer one
 *     drops the connection) becomes McpRequest{pod_id, conn_id, message}; the pod_id is the one
 *     the listener was started with, never anything the pod sends, and the runner does not
 *     parse the line. A connection's end becomes McpRequest{closed}.
 *   appliance → pod: am_mcprelay_on_response queues McpResponse.message + '\n' for that
 *     connection (close: end it once written). A pod that does not read its answers gets its
 *     connection dropped once AM_MCPRELAY_OUT_MAX bytes wait.
 *   A pod sends at most 8 MiB and 500 lines per second (burst: one second's worth); beyond that
 *     its connections are not read until the budget refills (back-pressure, nothing dropped).
 *   At most AM_MCP_CONNS_MAX connections per pod: one more is accepted and closed at once (the
 *     client sees EOF, not a hang). When the stream to the appliance is down (the line cannot
 *     be queued) or ends (am_mcprelay_link_down), connections are closed: airmesh-mcp answers
 *     what was pending with an error and reconnects for the next request.
 *
 * Threads: one per pod (started by am_mcprelay_pod_start, poll loop over its listener and
 * connections, woken through an eventfd); am_mcprelay_on_response / am_mcprelay_link_down run
 * on the session thread and never block on a pod (they queue and wake). emit must be
 * thread-safe and must not block (the session's queue).
 * Ownership: am_mcprelay_pod_start takes the listener fd (also on failure);
 * am_mcprelay_pod_stop closes it and every connection, joins the thread and frees.
 */
#ifndef AM_RUNNER_MCP_RELAY_H
#define AM_RUNNER_MCP_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "airmesh/v1/runner.pb-c.h"

/* Answer bytes that may wait for one connection before it is dropped. */
#define AM_MCPRELAY_OUT_MAX (4u << 20)

typedef struct am_mcprelay am_mcprelay;
typedef struct am_mcprelay_pod am_mcprelay_pod;

/* Deliver one message to the appliance: 0 queued, -1 dropped (stream down or full). */
typedef int (*am_mcprelay_emit_fn)(void *ud, Airmesh__V1__RunnerMessage *m);

int am_mcprelay_new(am_mcprelay_emit_fn emit, void *ud, am_mcprelay **out);
/* After every pod was stopped. NULL is fine. */
void am_mcprelay_free(am_mcprelay *r);

/* Serve pod_id's listening socket (taken, also on failure). */
int am_mcprelay_pod_start(am_mcprelay *r, const char *pod_id, int listen_fd, am_mcprelay_pod **out);
/* Close the listener and every connection (each reported closed), join, free. NULL is fine. */
void am_mcprelay_pod_stop(am_mcprelay_pod *p);

/* Session thread: one McpResponse (copied; an unknown pod or connection is dropped). */
void am_mcprelay_on_response(am_mcprelay *r, const Airmesh__V1__McpResponse *m);
/* Session thread: the stream ended; every open connection is closed (their answers will not
 * come on this stream). */
void am_mcprelay_link_down(am_mcprelay *r);

/* Connections open right now (tests). */
size_t am_mcprelay_conns(am_mcprelay *r);

#endif
