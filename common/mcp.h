/*
 * common/mcp.h — where airmesh-mcp finds its runner inside a pod, shared by the runner (which
 * makes the socket during sandbox setup and serves it) and airmesh-mcp (the stdio MCP server the
 * agent CLIs start).
 *
 * The path (issue 13): every pod's init binds a listening AF_UNIX socket at AM_MCP_SOCKET in the
 * pod's own root tmpfs (so it exists in that pod's mount namespace only, whatever its network),
 * mode 0666, and hands the listening fd to the runner over the setup socketpair (SCM_RIGHTS,
 * like the egress listeners); the pod keeps no copy. Every connection the runner accepts on it
 * is that pod's: the pod's identity is which listener accepted, never anything it sends.
 * airmesh-mcp (bound read-only at AM_MCP_BIN) relays newline-delimited JSON-RPC 2.0 between its
 * stdin/stdout and the socket; the runner relays each line over its mTLS stream (McpRequest /
 * McpResponse) to airmeshd, whose appliance/mcp speaks MCP (initialize, tools/list, tools/call)
 * and executes tools through appliance/ops with the pod as actor.
 */
#ifndef AM_COMMON_MCP_H
#define AM_COMMON_MCP_H

#define AM_MCP_SOCKET "/run/airmesh/mcp.sock"
#define AM_MCP_BIN "/opt/airmesh/bin/airmesh-mcp"
/* The pod's environment names the socket (airmesh-mcp's default is AM_MCP_SOCKET anyway). */
#define AM_MCP_ENV_SOCKET "AIRMESH_MCP_SOCKET"
/* Longest JSON-RPC message (one line) either way; longer ones are refused. */
#define AM_MCP_LINE_MAX (1u << 20)
/* Connections one pod may hold open on its socket at once. */
#define AM_MCP_CONNS_MAX 16
/* The MCP protocol revision airmeshd implements (it also accepts 2025-03-26 and 2024-11-05,
 * answering with the client's when it is one of those). */
#define AM_MCP_PROTOCOL_VERSION "2025-06-18"
/* The server name agents see (tool names become e.g. mcp__airmesh__update_ticket in Claude Code).
 */
#define AM_MCP_SERVER_NAME "airmesh"

#endif
