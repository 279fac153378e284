/*
 * appliance/mcp — airmesh's MCP server (issue 13): the JSON-RPC 2.0 messages pods send through
 * airmesh-mcp → their MCP socket → their runner's stream (McpRequest) are answered here
 * (McpResponse, through the runner link), per the MCP specification 2025-06-18: initialize
 * (protocol version negotiation, capabilities {tools}, serverInfo, instructions),
 * notifications/initialized, ping, tools/list (every table of tools.h, with their JSON Schemas
 * and readOnlyHint), tools/call (the caller is am_ops_pod_principal of the pod whose socket the
 * line arrived on, relayed by the runner whose certificate the stream carries — never anything
 * in the message; a tool failure is a result with isError and the reason; each call one
 * "mcp.call" audit record), notifications/cancelled. Errors as JSON-RPC says: -32700 parse
 * error, -32600 invalid request, -32601 method not found, -32602 invalid params (an unknown
 * tool too); -32000 when the server is busy (its queue is full).
 *
 * Work runs on a small pool of worker threads (default 4) behind a bounded queue (default 256
 * messages): a full queue answers at once with -32000. A tool may block (wait_for_pod), so one
 * pod never occupies more than per_pod workers (default 2) at once; its further messages wait
 * while other pods' run. A connection's end (McpRequest.closed), the runner's stream ending
 * (am_mcp_runner_gone) or notifications/cancelled set the calls' cancelled flag (tools poll it);
 * a cancelled request gets no answer (the specification's rule), a gone one has nobody to get it.
 *
 * Threads: am_mcp_start / am_mcp_stop / am_mcp_free from main; am_mcp_set_link once rpc runs;
 * am_mcp_submit and am_mcp_runner_gone from the rpc thread (any thread; they never block on a
 * tool). The send function is called from the workers (and from am_mcp_submit for a refusal).
 * Ownership: am_mcp_submit copies what it keeps.
 */
#ifndef AM_APPLIANCE_MCP_H
#define AM_APPLIANCE_MCP_H

#include <stddef.h>
#include <stdint.h>

#include "airmesh/v1/runner.pb-c.h"
#include "appliance/ops/ops.h"

typedef struct am_mcp am_mcp;

/* Queue a message on a runner's stream (am_rpc_link_send). */
typedef int (*am_mcp_send_fn)(void *ctx, const char *runner_id, Airmesh__V1__ApplianceMessage *m);

typedef struct {
    am_ops *ops;
    unsigned workers;   /* default 4 */
    unsigned queue_max; /* messages waiting (default 256); more are refused with -32000 */
    unsigned per_pod;   /* workers one pod may occupy at once (default 2) */
} am_mcp_opts;

/* Starts the workers. -AM_EINVAL when a tool table is malformed (a schema that is not a JSON
 * object, a duplicate name): a bug to see at startup. */
int am_mcp_start(const am_mcp_opts *o, am_mcp **out);
void am_mcp_set_link(am_mcp *m, am_mcp_send_fn send, void *ctx);
/* One McpRequest from the runner peer names (its certificate's identity). */
void am_mcp_submit(am_mcp *m, const am_ops_peer *peer, const Airmesh__V1__McpRequest *r);
/* The runner's stream ended: its calls are cancelled, its queued messages dropped. */
void am_mcp_runner_gone(am_mcp *m, const char *runner_id);
/* The tools/list result as JSON text (tests; caller frees). */
char *am_mcp_tools_json(am_mcp *m);
/* Stop: queued messages are dropped, running calls cancelled, workers joined. NULL is fine. */
void am_mcp_stop(am_mcp *m);
void am_mcp_free(am_mcp *m);

#endif
