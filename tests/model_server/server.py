#!/usr/bin/python3
"""A scripted stand-in for an on-prem model server (vLLM, Ollama, TGI, a gateway), for tests only.

Speaks just enough of the real wire formats for agent CLIs and the official SDKs:

  POST /v1/chat/completions   OpenAI Chat Completions, stream (SSE chunks, [DONE], usage chunk
                              with stream_options.include_usage) and non-stream, tool_calls
  POST /v1/responses          OpenAI Responses, stream (response.created ... response.completed,
                              sequence_number) and non-stream, function_call items
  POST /v1/messages           Anthropic Messages, stream (message_start, content_block_start,
                              ping, content_block_delta, content_block_stop, message_delta with
                              usage, message_stop) and non-stream, tool_use blocks
  POST /v1/messages/count_tokens  Anthropic token count (a deterministic estimate)
  GET  /v1/models             OpenAI list, or Anthropic's when the request has anthropic-version
  POST /_test/release         let every held stream send its last chunks (see "hold")
  GET  /_test/log             the request log (JSON lines), also written to --log

What to answer comes from a JSON script (--script FILE):

  {"models": ["test-model"],            # listed by GET /v1/models (default ["test-model"])
   "list_models": false,                # GET /v1/models answers 404 (a server that lists none)
   "chunk_delay_ms": 0,                 # pause between streamed chunks (default 0)
   "rules": [                           # the first rule whose "when" matches answers
     {"when": {"api": "messages",       # chat | responses | messages (any if absent)
               "model": "m",            # exact model name
               "contains": "hello",     # substring of the newest user text in the request
               "tool_result": false,    # the newest input item (role system messages
                                        # aside) is (not) a tool result
               "tool_offered": "Write", # the request offers a tool of this name
               "key": "sk-real"},       # the Authorization bearer / x-api-key it carries
      "times": 1,                       # use this rule at most N times (default unlimited)
      "reply": {"text": "done",         # assistant text, and/or
                "tool_call": {"name": "Write", "arguments": {"file_path": "x"},
                              "namespace": "mcp__airmesh"},  # Responses only: the call's
                                        # namespace (Codex offers an MCP server's tools as
                                        # one "namespace" tool; name is then the bare tool)
                "raw_arguments": "{not json",  # send these arguments verbatim instead (a
                                        # model that emits a malformed tool call; Messages:
                                        # the tool_use input is this string, not an object)
                "usage": {"input_tokens": 11, "output_tokens": 7},  # default: an estimate
                "chunks": 4,            # split the text/arguments into N stream pieces
                "hold": true,           # stream all but the last piece, then wait for
                                        # POST /_test/release (at most 60 s)
                "status": 429, "error": "quota"}}]}   # answer an error in the API's format

Every request is logged, one JSON object per line: n, time, method, path, api, headers (all of
them, incl. Authorization / x-api-key, so a test can prove which key arrived), body (parsed JSON
or text), rule (index or null), reply usage, stream flag, and when the stream's first and last
pieces were written ("first_sent", "last_sent", monotonic seconds).

Run: server.py --script S.json --log L.jsonl [--port 0] [--port-file F] [--host 127.0.0.1]
     [--tls-cert CERT.pem --tls-key KEY.pem]  (HTTPS, for a model server behind an own CA)
(--port 0 picks a free port; its number goes to --port-file once listening). Stdlib only.
Outside the product: tests start it, the appliance never does.
"""
import argparse
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, script, log_path):
        self.script = script
        self.log_path = log_path
        self.lock = threading.Lock()
        self.uses = {}
        self.n = 0
        self.released = threading.Event()
        self.lines = []

    def log(self, entry):
        with self.lock:
            line = json.dumps(entry, sort_keys=True)
            self.lines.append(line)
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(line + "\n")

    def next_n(self):
        with self.lock:
            self.n += 1
            return self.n


def _text_of(content):
    """The text in a message's content (a string, or a list of parts of any of the APIs)."""
    if isinstance(content, str):
        return content
    out = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                for k in ("text", "content", "output"):
                    v = part.get(k)
                    if isinstance(v, (str, list)):
                        out.append(_text_of(v))
            elif isinstance(part, str):
                out.append(part)
    return "\n".join(out)


def _items(api, body):
    """The request's conversation as a list of (role, is_tool_result, text)."""
    items = []
    if api == "responses":
        inp = body.get("input")
        if isinstance(inp, str):
            return [("user", False, inp)]
        for it in inp or []:
            if not isinstance(it, dict):
                continue
            t = it.get("type", "message")
            if t == "function_call_output":
                items.append(("user", True, _text_of(it.get("output"))))
            elif t == "message":
                items.append((it.get("role", "user"), False, _text_of(it.get("content"))))
        return items
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        role = m.get("role", "user")
        content = m.get("content")
        is_tool = role == "tool" or (
            isinstance(content, list) and any(isinstance(p, dict) and p.get("type") ==
                                              "tool_result" for p in content))
        items.append(("user" if role == "tool" else role, is_tool, _text_of(content)))
    return items


def _tool_names(api, body):
    names = []
    for t in body.get("tools") or []:
        if not isinstance(t, dict):
            continue
        if "function" in t and isinstance(t["function"], dict):
            names.append(t["function"].get("name"))
        else:
            names.append(t.get("name"))
    return names


def _key_of(headers):
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:]
    return headers.get("x-api-key", "")


def pick_rule(state, api, body, headers):
    items = _items(api, body)
    last_user = ""
    for role, _, text in reversed(items):
        if role == "user":
            last_user = text
            break
    # Claude Code 2.1 may end a request with role "system" messages (tools that became
    # available, reminders): the newest item of the conversation is the newest other one.
    convo = [it for it in items if it[0] != "system"]
    last_is_tool = bool(convo) and convo[-1][1]
    tools = _tool_names(api, body)
    for i, rule in enumerate(state.script.get("rules", [])):
        w = rule.get("when", {})
        if "api" in w and w["api"] != api:
            continue
        if "model" in w and w["model"] != body.get("model"):
            continue
        if "contains" in w and w["contains"] not in last_user:
            continue
        if "tool_result" in w and bool(w["tool_result"]) != last_is_tool:
            continue
        if "tool_offered" in w and w["tool_offered"] not in tools:
            continue
        if "key" in w and w["key"] != _key_of(headers):
            continue
        with state.lock:
            used = state.uses.get(i, 0)
            if "times" in rule and used >= rule["times"]:
                continue
            state.uses[i] = used + 1
        return i, rule.get("reply", {})
    return None, {"text": "ok"}


def _pieces(s, n):
    if not s:
        return []
    n = max(1, min(n, len(s)))
    step = -(-len(s) // n)
    return [s[i:i + step] for i in range(0, len(s), step)]


def _usage(reply, body_len, out_text):
    u = reply.get("usage") or {}
    return (int(u.get("input_tokens", body_len // 4 + 1)),
            int(u.get("output_tokens", max(1, len(out_text) // 4))))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, as real servers do
    server_version = "airmesh-test-model/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing ---------------------------------------------------------------------------

    def _send_json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, text):
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _error(self, api, code, message):
        if api == "messages":
            kind = {400: "invalid_request_error", 401: "authentication_error",
                    404: "not_found_error", 429: "rate_limit_error"}.get(code, "api_error")
            self._send_json(code, {"type": "error", "error": {"type": kind, "message": message}})
        else:
            kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(code, "server_error")
            self._send_json(code, {"error": {"message": message, "type": kind, "param": None,
                                             "code": kind}})

    # ---- routes -----------------------------------------------------------------------------

    def do_GET(self):
        st = self.server.state
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        if self.path == "/_test/log":
            with st.lock:
                data = ("\n".join(st.lines) + ("\n" if st.lines else "")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        path = self.path.split("?")[0]
        st.log({"n": st.next_n(), "time": time.time(), "method": "GET", "path": self.path,
                "api": "models", "headers": hdrs, "body": None, "rule": None})
        if path != "/v1/models" or st.script.get("list_models") is False:
            self._send_json(404, {"error": {"message": "no route " + path, "type": "not_found"}})
            return
        models = st.script.get("models", ["test-model"])
        if "anthropic-version" in hdrs:
            data = [{"type": "model", "id": m, "display_name": m,
                     "created_at": "2026-01-01T00:00:00Z"} for m in models]
            self._send_json(200, {"data": data, "has_more": False,
                                  "first_id": models[0] if models else None,
                                  "last_id": models[-1] if models else None})
        else:
            self._send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1767225600, "owned_by": "airmesh-test"}
                for m in models]})

    def do_POST(self):
        st = self.server.state
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        n = int(hdrs.get("content-length", "0") or 0)
        raw = self.rfile.read(n) if n else b""
        path = self.path.split("?")[0]
        if path == "/_test/release":
            st.released.set()
            self._send_json(200, {"released": True})
            return
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        api = {"/v1/chat/completions": "chat", "/v1/responses": "responses",
               "/v1/messages": "messages",
               "/v1/messages/count_tokens": "count_tokens"}.get(path)
        entry = {"n": st.next_n(), "time": time.time(), "method": "POST", "path": self.path,
                 "api": api, "headers": hdrs,
                 "body": body if body is not None else raw.decode("utf-8", "replace"),
                 "rule": None}
        if api is None:
            st.log(entry)
            self._send_json(404, {"error": {"message": "no route " + path, "type": "not_found"}})
            return
        if not isinstance(body, dict):
            st.log(entry)
            self._error(api, 400, "the body is not a JSON object")
            return
        if api == "count_tokens":
            st.log(entry)
            self._send_json(200, {"input_tokens": len(raw) // 4 + 1})
            return
        idx, reply = pick_rule(st, api, body, hdrs)
        entry["rule"] = idx
        stream = bool(body.get("stream"))
        entry["stream"] = stream
        if reply.get("status"):
            entry["status"] = reply["status"]
            st.log(entry)
            self._error(api, int(reply["status"]), reply.get("error", "scripted error"))
            return
        text = reply.get("text", "")
        call = reply.get("tool_call")
        if call and isinstance(reply.get("raw_arguments"), str):
            args = reply["raw_arguments"]
            call = dict(call, arguments=args)
        else:
            args = json.dumps(call.get("arguments", {})) if call else ""
        inp, out = _usage(reply, len(raw), text + args)
        entry["usage"] = {"input_tokens": inp, "output_tokens": out}
        model = body.get("model", "test-model")
        timing = {}
        try:
            if api == "messages":
                self._messages(model, text, call, args, inp, out, stream, reply, timing)
            elif api == "chat":
                self._chat(model, text, call, args, inp, out, stream, reply, body, timing)
            else:
                self._responses(model, text, call, args, inp, out, stream, reply, timing)
        except (BrokenPipeError, ConnectionResetError) as e:
            entry["client_gone"] = str(e)
        entry.update(timing)
        st.log(entry)

    # ---- streaming helper -------------------------------------------------------------------

    def _emit_all(self, events, reply, timing):
        """events: list of SSE strings; the last `tail` of them come after a hold."""
        st = self.server.state
        delay = float(st.script.get("chunk_delay_ms", 0)) / 1000.0
        hold_at = len(events) - 1 if reply.get("hold") else None
        for i, ev in enumerate(events):
            if hold_at is not None and i == hold_at:
                st.released.wait(60)
            elif i and delay:
                time.sleep(delay)
            self._chunk(ev)
            if i == 0:
                timing["first_sent"] = time.monotonic()
        timing["last_sent"] = time.monotonic()
        self._end_stream()

    # ---- Anthropic Messages -----------------------------------------------------------------

    def _messages(self, model, text, call, args, inp, out, stream, reply, timing):
        mid = "msg_" + uuid.uuid4().hex[:24]
        tid = "toolu_" + uuid.uuid4().hex[:24]
        stop = "tool_use" if call else "end_turn"
        if not stream:
            content = []
            if text:
                content.append({"type": "text", "text": text})
            if call:
                content.append({"type": "tool_use", "id": call.get("id", tid),
                                "name": call["name"], "input": call.get("arguments", {})})
            self._send_json(200, {"id": mid, "type": "message", "role": "assistant",
                                  "model": model, "content": content, "stop_reason": stop,
                                  "stop_sequence": None,
                                  "usage": {"input_tokens": inp, "output_tokens": out}})
            return

        def ev(name, obj):
            obj["type"] = name
            return "event: %s\ndata: %s\n\n" % (name, json.dumps(obj))

        n = int(reply.get("chunks", 3))
        events = [ev("message_start", {"message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": inp, "output_tokens": 1}}})]
        idx = 0
        if text:
            events.append(ev("content_block_start", {"index": idx,
                                                     "content_block": {"type": "text",
                                                                       "text": ""}}))
            events.append(ev("ping", {}))
            for p in _pieces(text, n):
                events.append(ev("content_block_delta", {"index": idx, "delta": {
                    "type": "text_delta", "text": p}}))
            events.append(ev("content_block_stop", {"index": idx}))
            idx += 1
        if call:
            events.append(ev("content_block_start", {"index": idx, "content_block": {
                "type": "tool_use", "id": call.get("id", tid), "name": call["name"],
                "input": {}}}))
            for p in _pieces(args, n):
                events.append(ev("content_block_delta", {"index": idx, "delta": {
                    "type": "input_json_delta", "partial_json": p}}))
            events.append(ev("content_block_stop", {"index": idx}))
        events.append(ev("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                           "usage": {"output_tokens": out}}))
        events.append(ev("message_stop", {}))
        self._start_stream()
        self._emit_all(events, reply, timing)

    # ---- OpenAI Chat Completions ------------------------------------------------------------

    def _chat(self, model, text, call, args, inp, out, stream, reply, body, timing):
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        finish = "tool_calls" if call else "stop"
        usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}
        tool_id = call.get("id", "call_" + uuid.uuid4().hex[:24]) if call else None
        if not stream:
            msg = {"role": "assistant", "content": text or None, "refusal": None}
            if call:
                msg["tool_calls"] = [{"id": tool_id, "type": "function", "function": {
                    "name": call["name"], "arguments": args}}]
            self._send_json(200, {"id": cid, "object": "chat.completion", "created": created,
                                  "model": model, "choices": [{"index": 0, "message": msg,
                                                               "logprobs": None,
                                                               "finish_reason": finish}],
                                  "usage": usage})
            return

        def chunk(delta, fin=None):
            return "data: %s\n\n" % json.dumps({
                "id": cid, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                             "finish_reason": fin}]})

        n = int(reply.get("chunks", 3))
        events = [chunk({"role": "assistant", "content": ""})]
        for p in _pieces(text, n):
            events.append(chunk({"content": p}))
        if call:
            events.append(chunk({"tool_calls": [{"index": 0, "id": tool_id, "type": "function",
                                                 "function": {"name": call["name"],
                                                              "arguments": ""}}]}))
            for p in _pieces(args, n):
                events.append(chunk({"tool_calls": [{"index": 0, "function": {
                    "arguments": p}}]}))
        events.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append("data: %s\n\n" % json.dumps({
                "id": cid, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [], "usage": usage}))
        events.append("data: [DONE]\n\n")
        self._start_stream()
        self._emit_all(events, reply, timing)

    # ---- OpenAI Responses -------------------------------------------------------------------

    def _responses(self, model, text, call, args, inp, out, stream, reply, timing):
        rid = "resp_" + uuid.uuid4().hex[:24]
        mid = "msg_" + uuid.uuid4().hex[:24]
        fid = "fc_" + uuid.uuid4().hex[:24]
        call_id = call.get("id", "call_" + uuid.uuid4().hex[:24]) if call else None
        created = int(time.time())
        usage = {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out,
                 "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens_details": {"reasoning_tokens": 0}}
        msg_item = {"type": "message", "id": mid, "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}
        fc_item = ({"type": "function_call", "id": fid, "call_id": call_id,
                    "name": call["name"], "arguments": args, "status": "completed"}
                   if call else None)
        if fc_item and call.get("namespace"):
            fc_item["namespace"] = call["namespace"]
        output = ([msg_item] if text else []) + ([fc_item] if fc_item else [])

        def resp(status, out_items, with_usage):
            return {"id": rid, "object": "response", "created_at": created, "status": status,
                    "model": model, "output": out_items, "error": None,
                    "incomplete_details": None, "parallel_tool_calls": True, "tools": [],
                    "usage": usage if with_usage else None}

        if not stream:
            self._send_json(200, resp("completed", output, True))
            return
        seq = [0]

        def ev(name, obj):
            obj["type"] = name
            obj["sequence_number"] = seq[0]
            seq[0] += 1
            return "event: %s\ndata: %s\n\n" % (name, json.dumps(obj))

        n = int(reply.get("chunks", 3))
        events = [ev("response.created", {"response": resp("in_progress", [], False)}),
                  ev("response.in_progress", {"response": resp("in_progress", [], False)})]
        oi = 0
        if text:
            events.append(ev("response.output_item.added", {"output_index": oi, "item": dict(
                msg_item, status="in_progress", content=[])}))
            events.append(ev("response.content_part.added", {
                "item_id": mid, "output_index": oi, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []}}))
            for p in _pieces(text, n):
                events.append(ev("response.output_text.delta", {
                    "item_id": mid, "output_index": oi, "content_index": 0, "delta": p}))
            events.append(ev("response.output_text.done", {
                "item_id": mid, "output_index": oi, "content_index": 0, "text": text}))
            events.append(ev("response.content_part.done", {
                "item_id": mid, "output_index": oi, "content_index": 0,
                "part": {"type": "output_text", "text": text, "annotations": []}}))
            events.append(ev("response.output_item.done", {"output_index": oi, "item": msg_item}))
            oi += 1
        if fc_item:
            events.append(ev("response.output_item.added", {"output_index": oi, "item": dict(
                fc_item, arguments="", status="in_progress")}))
            for p in _pieces(args, n):
                events.append(ev("response.function_call_arguments.delta", {
                    "item_id": fid, "output_index": oi, "delta": p}))
            events.append(ev("response.function_call_arguments.done", {
                "item_id": fid, "output_index": oi, "arguments": args}))
            events.append(ev("response.output_item.done", {"output_index": oi, "item": fc_item}))
        events.append(ev("response.completed", {"response": resp("completed", output, True)}))
        self._start_stream()
        self._emit_all(events, reply, timing)


class Running:
    """A server started by start(): .url, .log_path, .entries(), .release(), .stop()."""

    def __init__(self, proc, url, log_path):
        self.proc, self.url, self.log_path = proc, url, log_path

    def entries(self):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            text = f.read()
        # Only whole lines: the server may be half-way through appending the last one.
        return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]

    def wait_entries(self, pred, timeout=30):
        """The log's entries once pred(entries) holds (a request is logged just after its
        reply was written, so a client can be a moment ahead of the log)."""
        deadline = time.monotonic() + timeout
        while True:
            e = self.entries()
            if pred(e) or time.monotonic() > deadline:
                return e
            time.sleep(0.05)

    def release(self):
        import urllib.request
        urllib.request.urlopen(urllib.request.Request(self.url + "/_test/release", data=b"{}",
                                                      method="POST"), timeout=10).read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait()


def start(script, workdir, host="127.0.0.1", timeout=30, tls=None):
    """Start this server as a subprocess with `script` (a dict) in workdir; returns Running
    once it listens. tls: (cert PEM path, key PEM path) to serve HTTPS."""
    import subprocess
    os.makedirs(workdir, exist_ok=True)
    sp, lp, pf = (os.path.join(workdir, n) for n in ("script.json", "requests.jsonl", "port"))
    with open(sp, "w") as f:
        json.dump(script, f)
    for p in (lp, pf):
        if os.path.exists(p):
            os.unlink(p)
    with open(lp + ".stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--script", sp,
                                 "--log", lp, "--host", host, "--port-file", pf,
                                 *(["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else [])],
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + timeout
    while not os.path.exists(pf):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("test model server did not start: " +
                               open(lp + ".stderr").read())
        time.sleep(0.05)
    with open(pf) as f:
        port = int(f.read())
    return Running(proc, "%s://%s:%d" % ("https" if tls else "http", host, port), lp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--script", required=True)
    ap.add_argument("--log")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    ap.add_argument("--tls-key", help="the certificate's PEM private key")
    a = ap.parse_args()
    with open(a.script) as f:
        script = json.load(f)
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    srv.state = State(script, a.log)
    if a.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    print("test model server on %s://%s:%d" % ("https" if a.tls_cert else "http", a.host, port),
          flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
