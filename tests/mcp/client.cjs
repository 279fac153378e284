// tests/mcp/client.cjs — an MCP client that runs INSIDE a pod, as an agent CLI would: the
// official MCP TypeScript SDK's Client over StdioClientTransport, which spawns
// /opt/airmesh/bin/airmesh-mcp and speaks JSON-RPC over its stdin/stdout.
//
// Run: NODE_PATH=<agents dir>/node_modules MCP_STEPS='<JSON list>' node client.cjs
// (CommonJS on purpose: NODE_PATH applies to require(), not to ES module imports; the SDK
// ships CommonJS builds.) tests/integration/harness.py (mcp_pod and friends) passes this file's
// text as `node -e` and the steps in the environment.
//
// Steps (each prints one line "MCPRESULT <json>" with "op" and "i" = its index):
//   {"op": "init"}                      server info, capabilities, instructions (after connect)
//   {"op": "list"}                      tools/list → {"tools": [...]}
//   {"op": "call", "name": N, "args": {...}, "meta": {...}}
//                                       tools/call → {"result": CallToolResult} or {"error"}
//   {"op": "time_calls", "name": N, "args": {...}, "n": K}
//                                       K calls one after another → {"n", "ms"} (for a report)
//   {"op": "raw", "lines": [text, ...], "expect": N, "path": P}
//                                       a raw connection to the pod's MCP socket (or P): writes
//                                       the lines, collects up to N answer lines (or until the
//                                       socket closes, 20 s at most) → {"responses", "closed"}
//   {"op": "connect", "path": P}        only try to connect → {"ok", "error" (errno code)}
//   {"op": "wait_stdin"}                wait for a line on stdin (the test types one)
// The SDK client connects (initialize) before the first step that needs it; a step that fails
// (the SDK throws: a JSON-RPC error, no connection) prints {"error": {code, message}}. At the
// end: "MCPDONE"; anything else going wrong: "MCPFAIL <message>" and exit 1.
"use strict";
const net = require("net");
const readline = require("readline");
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StdioClientTransport } = require("@modelcontextprotocol/sdk/client/stdio.js");

const BIN = process.env.MCP_BIN || "/opt/airmesh/bin/airmesh-mcp";
const SOCKET = process.env.AIRMESH_MCP_SOCKET || "/run/airmesh/mcp.sock";

function out(obj) {
  process.stdout.write("MCPRESULT " + JSON.stringify(obj) + "\n");
}

let client = null;
async function sdk() {
  if (client) return client;
  const c = new Client({ name: "airmesh-test-client", version: "1.0.0" });
  const transport = new StdioClientTransport({ command: BIN, args: [], env: { ...process.env } });
  await c.connect(transport);
  client = c;
  return c;
}

function raw(step) {
  return new Promise((resolve) => {
    const path = step.path || SOCKET;
    const responses = [];
    let buf = "", done = false;
    const s = net.createConnection(path);
    const finish = (closed, error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ path, responses, closed, error: error || null });
    };
    const timer = setTimeout(() => finish(false, "timeout"), step.timeout_ms || 20000);
    s.on("connect", () => {
      for (const l of step.lines || []) s.write(l.endsWith("\n") ? l : l + "\n");
      if (step.repeat) s.write(step.repeat.text.repeat(step.repeat.count) + "\n");
    });
    s.on("data", (d) => {
      buf += d.toString("utf8");
      let k;
      while ((k = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, k);
        buf = buf.slice(k + 1);
        try {
          responses.push(JSON.parse(line));
        } catch (e) {
          responses.push({ unparsed: line });
        }
        if (step.expect && responses.length >= step.expect) finish(false);
      }
    });
    s.on("error", (e) => finish(true, e.code || String(e)));
    s.on("close", () => finish(true));
  });
}

function tryConnect(path) {
  return new Promise((resolve) => {
    const s = net.createConnection(path);
    s.on("connect", () => { s.destroy(); resolve({ path, ok: true, error: null }); });
    s.on("error", (e) => resolve({ path, ok: false, error: e.code || String(e) }));
  });
}

let stdinLines = null;
function nextStdinLine() {
  if (!stdinLines) {
    stdinLines = [];
    const rl = readline.createInterface({ input: process.stdin });
    rl.on("line", (l) => { const w = stdinLines.waiter; stdinLines.push(l); if (w) w(); });
  }
  return new Promise((resolve) => {
    const take = () => { stdinLines.waiter = null; resolve(stdinLines.shift()); };
    if (stdinLines.length) take(); else stdinLines.waiter = take;
  });
}

async function main() {
  const steps = JSON.parse(process.env.MCP_STEPS || "[]");
  for (let i = 0; i < steps.length; i++) {
    const st = steps[i];
    const r = { op: st.op, i };
    try {
      if (st.op === "init") {
        const c = await sdk();
        r.server = c.getServerVersion();
        r.capabilities = c.getServerCapabilities();
        r.instructions = c.getInstructions();
      } else if (st.op === "list") {
        r.tools = (await (await sdk()).listTools()).tools;
      } else if (st.op === "call") {
        const params = { name: st.name, arguments: st.args || {} };
        if (st.meta) params._meta = st.meta;
        r.result = await (await sdk()).callTool(params);
      } else if (st.op === "time_calls") {
        const c = await sdk();
        const t0 = process.hrtime.bigint();
        for (let k = 0; k < st.n; k++) {
          const res = await c.callTool({ name: st.name, arguments: st.args || {} });
          if (res.isError) throw new Error("call failed: " + JSON.stringify(res.content));
        }
        r.n = st.n;
        r.ms = Number(process.hrtime.bigint() - t0) / 1e6;
      } else if (st.op === "raw") {
        Object.assign(r, await raw(st));
      } else if (st.op === "connect") {
        Object.assign(r, await tryConnect(st.path));
      } else if (st.op === "wait_stdin") {
        r.line = await nextStdinLine();
      } else {
        throw new Error("unknown step op " + st.op);
      }
    } catch (e) {
      if (st.op === "wait_stdin" || String(e).startsWith("Error: unknown step")) throw e;
      r.error = { code: e.code, message: e.message };
    }
    out(r);
  }
  if (client) await client.close().catch(() => {});
  process.stdout.write("MCPDONE\n");
  process.exit(0);
}

main().catch((e) => {
  process.stdout.write("MCPFAIL " + JSON.stringify(String((e && e.stack) || e)) + "\n");
  process.exit(1);
});
