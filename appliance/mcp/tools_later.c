/*
 * appliance/mcp/tools_later.c — EMPTY placeholders for the tool tables the bindings helper
 * writes (tools_pods.c, tools_bindings.c, tools_channels.c), so the core links on its own.
 * Delete this file when those files are merged: each of them defines its table.
 */
#include "appliance/mcp/tools.h"

const am_mcp_tool am_mcp_tools_pods[] = {{0}};
const am_mcp_tool am_mcp_tools_bindings[] = {{0}};
const am_mcp_tool am_mcp_tools_channels[] = {{0}};
