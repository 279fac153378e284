/*
 * appliance/mcp/tools.h — the contract between airmesh's MCP server core (appliance/mcp/mcp.c:
 * JSON-RPC 2.0, initialize, tools/list, tools/call, the worker threads) and the tool files
 * (tools_tickets.c, tools_pods.c, tools_bindings.c, tools_channels.c, ...), each of which
 * exports one NULL-terminated table. The core lists them all in tools/list (name, title,
 * description, inputSchema) and dispatches tools/call by name.
 *
 * A tool runs on one of the core's worker threads with the calling pod as its principal
 * (am_principal.pod_id set: actor "pod:<id>" in every audit record; user_id = the pod's
 * starter; role = the starter's current role, at most member). It reads its arguments from
 * args (a JSON object; a missing or mistyped field is -AM_EINVAL naming the field), does its
 * work ONLY through am_ops_* (which decides, writes and audits: never the store or the audit log
 * directly), and on success sets *result to a new JSON object (the core sends it as
 * structuredContent and as one text content item with its JSON). On failure it returns -AM_E*
 * with am_err_last() set: the core answers a tool result with isError: true and that text (the
 * MCP specification's tool execution error), and audits nothing more itself (ops already did).
 * The core audits every tools/call once (am_ops_mcp_audit: "mcp.call", actor the pod, details
 * {tool, error}); a tool that changes state also gets the operation's own record from ops
 * (e.g. ticket.update with actor "pod:<id>").
 *
 * Threads: any worker thread; a tool may block (wait_for_pod) but must return by its own
 * deadline and poll *c->cancelled (set when the pod's connection closed or the server stops).
 */
#ifndef AM_APPLIANCE_MCP_TOOLS_H
#define AM_APPLIANCE_MCP_TOOLS_H

#include <jansson.h>

#include "appliance/ops/ops.h"

typedef struct {
    am_ops *ops;
    am_principal who;              /* the calling pod (who.pod_id) acting for its starter */
    const Airmesh__V1__Pod *pod;   /* the calling pod's record, as read when the call began */
    const char *source;            /* "runner:<id>" of the runner that relayed the call */
    const volatile int *cancelled; /* non-zero: give up now (return -AM_ESTATE) */
} am_mcp_call;

typedef int (*am_mcp_tool_fn)(am_mcp_call *c, json_t *args, json_t **result);

typedef struct {
    const char *name;         /* [a-z_]+, as the reference platform names it where they overlap */
    const char *title;        /* short human title */
    const char *description;  /* what it does and what it needs (e.g. "needs a read binding") */
    const char *input_schema; /* JSON Schema (draft 2020-12) text of the arguments object */
    am_mcp_tool_fn fn;
    int read_only; /* annotations.readOnlyHint */
} am_mcp_tool;

/* The tables (NULL name ends each). Who writes which: tickets: the core's helper; pods,
 * bindings, channels: the bindings helper. */
extern const am_mcp_tool am_mcp_tools_tickets[];  /* search_tickets get_ticket create_ticket
                                                      update_ticket post_comment */
extern const am_mcp_tool am_mcp_tools_pods[];     /* list_pods get_pod_status get_pod_snapshot
                                                      send_pod_input delegate_task wait_for_pod */
extern const am_mcp_tool am_mcp_tools_bindings[]; /* bind_pod accept_binding reject_binding
                                                      unbind_pod get_bindings */
extern const am_mcp_tool am_mcp_tools_channels[]; /* list_channels create_channel
                                                      send_channel_message get_channel_messages */

/* Small helpers for tools (mcp.c): a string field (NULL when absent; -AM_EINVAL when present
 * and not a string, or when required and absent). */
int am_mcp_arg_str(json_t *args, const char *name, int required, const char **out);
int am_mcp_arg_int(json_t *args, const char *name, int required, json_int_t lo, json_int_t hi,
                   json_int_t *out);
int am_mcp_arg_bool(json_t *args, const char *name, int *out); /* absent: *out unchanged */

#endif
