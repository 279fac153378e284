/*
 * runner/egress — a pod's way out (network "models" / "allow", common/egress.h): the runner
 * serves the listening sockets runner/sandbox made inside the pod's netns.
 *
 *   gateway (127.0.0.1:4000 in the pod): every HTTP/1.1 request (strict parser, http1.h; body
 *     at most AM_EGRESS_MAX_BODY, 413 above) goes to the appliance as GatewayRequest messages
 *     (AM_EGRESS_CHUNK body bytes each, `more`) on the runner's stream; the GatewayResponse
 *     messages that come back (am_egress_on_response, by request_id) are written to the pod's
 *     client as they arrive (chunked transfer encoding, so SSE flows). The pod's client going
 *     away sends `cancel`. A stream that is down, or an appliance that never answers, is a 502
 *     with a JSON error body. The runner decides nothing here: the appliance checks the key.
 *   proxy (127.0.0.1:3128, network "allow"): HTTP CONNECT to exactly one of the pod's allowed
 *     host:ports (CreatePod.egress_allow), resolved and connected from the runner's own netns,
 *     then bytes relayed both ways; anything else is 403 (or 400 for junk) with a one-line
 *     reason. Every decision is an EgressEvent (connect / refused / close with byte counts).
 *
 * Files: egress.c (the registry of requests, pods, listeners, connection threads), gateway.c,
 * proxy.c, http1.c (the parser).
 * Threads: one accept thread per listener and one thread per pod connection, all ended and
 * joined by am_egress_pod_stop. am_egress_on_response / am_egress_link_down run on the session
 * thread and never block on a pod (they queue and wake). emit must be thread-safe (it is the
 * session's queue) and must not block.
 * Ownership: am_egress_pod_start takes the listener fds; am_egress_pod_stop closes them and
 * every connection.
 */
#ifndef AM_RUNNER_EGRESS_H
#define AM_RUNNER_EGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "airmesh/v1/runner.pb-c.h"

typedef struct am_egress am_egress;
typedef struct am_egress_pod am_egress_pod;

/* Deliver one message to the appliance: 0 queued, -1 dropped (stream down or full). */
typedef int (*am_egress_emit_fn)(void *ud, Airmesh__V1__RunnerMessage *m);

int am_egress_new(am_egress_emit_fn emit, void *ud, am_egress **out);
/* Call after every pod was stopped. NULL is fine. */
void am_egress_free(am_egress *e);
/* How long a request waits for the appliance's first answer before its 502 (default 120 s). */
void am_egress_set_answer_timeout(am_egress *e, uint32_t ms);

/* Session thread: one GatewayResponse (copied; unknown request ids are dropped). */
void am_egress_on_response(am_egress *e, const Airmesh__V1__GatewayResponse *r);
/* Session thread: the stream to the appliance ended: every request waiting for an answer gets
 * its 502 (or, mid-response, its connection closed without the final chunk). */
void am_egress_link_down(am_egress *e);

/* Serve a pod's listeners: gateway_fd (or -1), proxy_fd (or -1, network "allow") with the
 * allowed "host:port" entries (copied). Takes the fds, also on failure. */
int am_egress_pod_start(am_egress *e, const char *pod_id, int gateway_fd, int proxy_fd,
                        char *const *allow, size_t n_allow, am_egress_pod **out);
/* Close the listeners and every connection (cancelling requests in flight), join the threads,
 * free. NULL is fine. */
void am_egress_pod_stop(am_egress_pod *p);

#endif
