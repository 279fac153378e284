#!/usr/bin/python3
"""tests/model_server/model_server_test.py — the scripted test model server (server.py) speaks
the wire formats real clients parse: curl checks the raw HTTP (status, content types, the SSE
event sequence of each API, usage fields, tool calls, error bodies, the request log with the
key that arrived), a held stream proves the first chunk leaves before the last one exists, and
the official `openai` and `@anthropic-ai/sdk` npm clients (installed from this dir's
package-lock.json by `make test`) parse every endpoint, streamed and not.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from xml.sax.saxutils import quoteattr

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)
import server  # noqa: E402

SCRIPT = {
    "models": ["test-model", "other-model"],
    "rules": [
        # An agent CLI that loaded an MCP server offers its tools under the CLI's names (Claude
        # Code: mcp__<server>__<tool>; Codex: a Responses "namespace" tool mcp__<server>).
        {"when": {"tool_offered": "mcp__airmesh__update_ticket", "tool_result": False},
         "reply": {"tool_call": {"name": "mcp__airmesh__update_ticket",
                                 "arguments": {"key": "ACME-7", "status": "in_review"}}}},
        {"when": {"tool_offered": "mcp__airmesh__update_ticket", "tool_result": True},
         "reply": {"text": "ACME-7 is in review."}},
        {"when": {"api": "responses", "tool_offered": "mcp__airmesh", "tool_result": False},
         "reply": {"tool_call": {"name": "update_ticket", "namespace": "mcp__airmesh",
                                 "arguments": {"key": "ACME-7", "title": "New title"}}}},
        {"when": {"contains": "quota please"}, "reply": {"status": 429, "error": "daily quota"}},
        {"when": {"contains": "break the call"},
         "reply": {"tool_call": {"name": "write_file"}, "raw_arguments": "{\"path\": \"a.t"}},
        {"when": {"contains": "no tools here", "tool_offered": "write_file"},
         "reply": {"text": "I would rather just answer."}},
        {"when": {"contains": "hold it"}, "reply": {"text": "first and last", "hold": True,
                                                    "chunks": 3}},
        {"when": {"contains": "write the file", "tool_offered": "write_file",
                  "tool_result": False},
         "reply": {"tool_call": {"name": "write_file",
                                 "arguments": {"path": "a.txt", "content": "hi"}},
                   "usage": {"input_tokens": 21, "output_tokens": 9}}},
        {"when": {"tool_result": True}, "reply": {"text": "done",
                                                  "usage": {"input_tokens": 30,
                                                            "output_tokens": 1}}},
        {"when": {"contains": "say hello"},
         "reply": {"text": "Hello from the test model", "chunks": 4,
                   "usage": {"input_tokens": 12, "output_tokens": 5}}},
    ],
}


def sse_events(raw):
    """[(event name or None, parsed data or the raw string)] of an SSE body."""
    out = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            d = "\n".join(data)
            try:
                d = json.loads(d)
            except ValueError:
                pass
            out.append((name, d))
    return out


class ModelServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.srv = server.start(SCRIPT, cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def curl(self, path, body=None, headers=(), method=None):
        args = ["curl", "-sS", "-N", "-o", "-", "-w", "\n%{http_code} %{content_type}"]
        for h in headers:
            args += ["-H", h]
        if body is not None:
            args += ["-H", "content-type: application/json", "--data-binary", json.dumps(body)]
        if method:
            args += ["-X", method]
        r = subprocess.run(args + [self.srv.url + path], capture_output=True, text=True,
                           timeout=60, check=True)
        text, _, tail = r.stdout.rpartition("\n")
        code, _, ctype = tail.partition(" ")
        return int(code), ctype, text

    def last_entry(self, path, pred=lambda e: True):
        def match(es):
            return [e for e in es if e["path"] == path and pred(e)]
        got = match(self.srv.wait_entries(lambda es: match(es)))
        self.assertTrue(got, "no logged request to %s" % path)
        return got[-1]

    # ---- OpenAI Chat Completions ------------------------------------------------------------

    def test_chat_completion_plain_has_text_and_usage(self):
        code, ctype, body = self.curl("/v1/chat/completions", {
            "model": "test-model", "messages": [{"role": "user", "content": "say hello"}]})
        self.assertEqual((code, ctype), (200, "application/json"))
        j = json.loads(body)
        self.assertEqual(j["object"], "chat.completion")
        self.assertEqual(j["choices"][0]["message"]["content"], "Hello from the test model")
        self.assertEqual(j["choices"][0]["finish_reason"], "stop")
        self.assertEqual(j["usage"], {"prompt_tokens": 12, "completion_tokens": 5,
                                      "total_tokens": 17})

    def test_chat_completion_stream_chunks_usage_and_done(self):
        code, ctype, body = self.curl("/v1/chat/completions", {
            "model": "test-model", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "say hello"}]})
        self.assertEqual((code, ctype), (200, "text/event-stream"))
        ev = sse_events(body)
        self.assertEqual(ev[-1], (None, "[DONE]"))
        chunks = [d for _, d in ev[:-1]]
        self.assertTrue(all(c["object"] == "chat.completion.chunk" for c in chunks))
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks
                       if c["choices"])
        self.assertEqual(text, "Hello from the test model")
        self.assertGreaterEqual(len(chunks), 6)  # role, 4 pieces, finish, usage
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["total_tokens"], 17)

    def test_chat_tool_call_then_answer_after_the_tool_result(self):
        tools = [{"type": "function", "function": {"name": "write_file",
                                                   "parameters": {"type": "object"}}}]
        msgs = [{"role": "user", "content": "write the file"}]
        _, _, body = self.curl("/v1/chat/completions", {"model": "test-model", "tools": tools,
                                                        "messages": msgs})
        j = json.loads(body)
        self.assertEqual(j["choices"][0]["finish_reason"], "tool_calls")
        call = j["choices"][0]["message"]["tool_calls"][0]
        self.assertEqual(call["function"]["name"], "write_file")
        self.assertEqual(json.loads(call["function"]["arguments"]),
                         {"path": "a.txt", "content": "hi"})
        msgs += [j["choices"][0]["message"],
                 {"role": "tool", "tool_call_id": call["id"], "content": "written"}]
        _, _, body = self.curl("/v1/chat/completions", {"model": "test-model", "tools": tools,
                                                        "messages": msgs})
        self.assertEqual(json.loads(body)["choices"][0]["message"]["content"], "done")

    def test_a_model_can_be_scripted_to_fail_tool_calls(self):
        """What a model endpoint's self-test must tell apart: text instead of a tool call, and
        a call whose arguments are not JSON (Chat and Messages)."""
        tools = [{"type": "function", "function": {"name": "write_file",
                                                   "parameters": {"type": "object"}}}]
        _, _, body = self.curl("/v1/chat/completions", {
            "model": "test-model", "tools": tools,
            "messages": [{"role": "user", "content": "no tools here please"}]})
        msg = json.loads(body)["choices"][0]["message"]
        self.assertNotIn("tool_calls", msg)
        self.assertEqual(msg["content"], "I would rather just answer.")
        _, _, body = self.curl("/v1/chat/completions", {
            "model": "test-model", "tools": tools,
            "messages": [{"role": "user", "content": "break the call"}]})
        call = json.loads(body)["choices"][0]["message"]["tool_calls"][0]
        self.assertEqual(call["function"]["name"], "write_file")
        self.assertEqual(call["function"]["arguments"], '{"path": "a.t')
        with self.assertRaises(ValueError):
            json.loads(call["function"]["arguments"])
        _, _, body = self.curl("/v1/messages", {
            "model": "test-model", "max_tokens": 10,
            "tools": [{"name": "write_file", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "break the call"}]},
            headers=["anthropic-version: 2023-06-01"])
        blk = [b for b in json.loads(body)["content"] if b["type"] == "tool_use"][0]
        self.assertEqual(blk["input"], '{"path": "a.t')

    def test_a_server_that_lists_no_models(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        srv = server.start(dict(SCRIPT, list_models=False), d)
        try:
            r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                srv.url + "/v1/models"], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.stdout, "404")
            r = subprocess.run(["curl", "-sS", "-H", "content-type: application/json",
                                "--data", json.dumps({"model": "m", "messages": [
                                    {"role": "user", "content": "say hello"}]}),
                                srv.url + "/v1/chat/completions"], capture_output=True,
                               text=True, timeout=30)
            self.assertIn("Hello from the test model", r.stdout)  # it still answers
        finally:
            srv.stop()

    def test_https_with_a_certificate_of_its_own(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        def run(*a):
            subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "k.pem", "-out", "c.pem", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1")
        srv = server.start(SCRIPT, os.path.join(d, "srv"), tls=(os.path.join(d, "c.pem"),
                                                                 os.path.join(d, "k.pem")))
        try:
            self.assertTrue(srv.url.startswith("https://"))
            r = subprocess.run(["curl", "-sS", "--cacert", os.path.join(d, "c.pem"),
                                srv.url + "/v1/models"], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["data"][0]["id"], "test-model")
            r = subprocess.run(["curl", "-sS", srv.url + "/v1/models"], capture_output=True,
                               text=True, timeout=30)  # the system's CAs do not know it
            self.assertNotEqual(r.returncode, 0)
        finally:
            srv.stop()

    # ---- OpenAI Responses -------------------------------------------------------------------

    def test_responses_stream_event_sequence_and_usage(self):
        code, ctype, body = self.curl("/v1/responses", {"model": "test-model", "stream": True,
                                                        "input": "say hello"})
        self.assertEqual((code, ctype), (200, "text/event-stream"))
        ev = sse_events(body)
        names = [n for n, _ in ev]
        self.assertEqual(names[:4], ["response.created", "response.in_progress",
                                     "response.output_item.added",
                                     "response.content_part.added"])
        self.assertEqual(names[-4:], ["response.output_text.done", "response.content_part.done",
                                      "response.output_item.done", "response.completed"])
        self.assertEqual([d["sequence_number"] for _, d in ev], list(range(len(ev))))
        self.assertTrue(all(d["type"] == n for n, d in ev))
        text = "".join(d["delta"] for n, d in ev if n == "response.output_text.delta")
        self.assertEqual(text, "Hello from the test model")
        self.assertEqual(ev[-1][1]["response"]["usage"]["input_tokens"], 12)

    def test_responses_function_call_item(self):
        _, _, body = self.curl("/v1/responses", {
            "model": "test-model", "input": "write the file",
            "tools": [{"type": "function", "name": "write_file", "parameters": {}}]})
        j = json.loads(body)
        fc = [o for o in j["output"] if o["type"] == "function_call"][0]
        self.assertEqual((fc["name"], json.loads(fc["arguments"])),
                         ("write_file", {"path": "a.txt", "content": "hi"}))
        self.assertEqual(j["usage"]["output_tokens"], 9)

    # ---- Anthropic Messages -----------------------------------------------------------------

    def test_messages_stream_has_the_real_event_sequence(self):
        code, ctype, body = self.curl("/v1/messages", {
            "model": "test-model", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "say hello"}]},
            headers=["anthropic-version: 2023-06-01", "x-api-key: sk-ant-real"])
        self.assertEqual((code, ctype), (200, "text/event-stream"))
        ev = sse_events(body)
        names = [n for n, _ in ev]
        self.assertEqual(names, ["message_start", "content_block_start", "ping"] +
                         ["content_block_delta"] * 4 +
                         ["content_block_stop", "message_delta", "message_stop"])
        self.assertEqual(ev[0][1]["message"]["usage"]["input_tokens"], 12)
        self.assertEqual(ev[-2][1]["usage"], {"output_tokens": 5})
        self.assertEqual(ev[-2][1]["delta"]["stop_reason"], "end_turn")
        self.assertEqual("".join(d["delta"]["text"] for n, d in ev if n == "content_block_delta"),
                         "Hello from the test model")

    def test_messages_tool_use_block_streamed_and_plain(self):
        req = {"model": "test-model", "max_tokens": 50,
               "tools": [{"name": "write_file", "input_schema": {"type": "object"}}],
               "messages": [{"role": "user", "content": "write the file"}]}
        _, _, body = self.curl("/v1/messages", req)
        j = json.loads(body)
        self.assertEqual(j["stop_reason"], "tool_use")
        self.assertEqual(j["content"][0]["type"], "tool_use")
        self.assertEqual(j["content"][0]["input"], {"path": "a.txt", "content": "hi"})
        _, _, body = self.curl("/v1/messages", dict(req, stream=True))
        ev = sse_events(body)
        self.assertEqual(ev[1][1]["content_block"]["type"], "tool_use")
        self.assertEqual(ev[1][1]["content_block"]["name"], "write_file")
        js = "".join(d["delta"]["partial_json"] for n, d in ev if n == "content_block_delta")
        self.assertEqual(json.loads(js), {"path": "a.txt", "content": "hi"})
        self.assertEqual(ev[-2][1]["delta"]["stop_reason"], "tool_use")
        # The tool result comes back as a user content block: the script answers "done".
        req["messages"] += [{"role": "assistant", "content": j["content"]},
                            {"role": "user", "content": [{"type": "tool_result",
                                                          "tool_use_id": j["content"][0]["id"],
                                                          "content": "written"}]}]
        _, _, body = self.curl("/v1/messages", req)
        self.assertEqual(json.loads(body)["content"][0]["text"], "done")

    def test_an_offered_mcp_tool_is_called_then_answered_after_its_result(self):
        # As Claude Code 2.1 asks: streamed, the MCP tool among its own, and after the tool's
        # result a role "system" message (tools that became available) last in the list.
        tools = [{"name": "Bash", "input_schema": {"type": "object"}},
                 {"name": "mcp__airmesh__update_ticket", "input_schema": {"type": "object"}}]
        req = {"model": "test-model", "max_tokens": 50, "stream": True, "tools": tools,
               "messages": [{"role": "user", "content": "move the ticket"}]}
        # Positive control: without the MCP tool offered, another rule answers.
        _, _, body = self.curl("/v1/messages", dict(req, stream=False, tools=tools[:1]))
        self.assertNotIn("mcp__airmesh", body)
        _, _, body = self.curl("/v1/messages", req)
        ev = sse_events(body)
        start = [d for n, d in ev if n == "content_block_start"][0]["content_block"]
        self.assertEqual((start["type"], start["name"]),
                         ("tool_use", "mcp__airmesh__update_ticket"))
        js = "".join(d["delta"]["partial_json"] for n, d in ev if n == "content_block_delta")
        self.assertEqual(json.loads(js), {"key": "ACME-7", "status": "in_review"})
        self.assertEqual(ev[-2][1]["delta"]["stop_reason"], "tool_use")
        req["messages"] += [
            {"role": "assistant", "content": [dict(start, input=json.loads(js))]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": start["id"],
                                          "content": [{"type": "text", "text": "updated"}]}]},
            {"role": "system", "content": [{"type": "text", "text": "reminder"}]}]
        _, _, body = self.curl("/v1/messages", dict(req, stream=False))
        self.assertEqual(json.loads(body)["content"][0]["text"], "ACME-7 is in review.")

    def test_a_responses_tool_call_can_name_its_namespace(self):
        _, _, body = self.curl("/v1/responses", {
            "model": "test-model", "input": "retitle it",
            "tools": [{"type": "namespace", "name": "mcp__airmesh", "tools": [
                {"type": "function", "name": "update_ticket", "parameters": {}}]}]})
        fc = [o for o in json.loads(body)["output"] if o["type"] == "function_call"][0]
        self.assertEqual((fc["namespace"], fc["name"], json.loads(fc["arguments"])),
                         ("mcp__airmesh", "update_ticket", {"key": "ACME-7", "title": "New title"}))
        _, _, body = self.curl("/v1/responses", {"model": "test-model", "input": "write the file",
                                                 "tools": [{"type": "function",
                                                            "name": "write_file"}]})
        fc = [o for o in json.loads(body)["output"] if o["type"] == "function_call"][0]
        self.assertNotIn("namespace", fc)

    # ---- models, errors, the log --------------------------------------------------------------

    def test_models_in_both_formats(self):
        _, _, body = self.curl("/v1/models")
        self.assertEqual([m["id"] for m in json.loads(body)["data"]],
                         ["test-model", "other-model"])
        _, _, body = self.curl("/v1/models", headers=["anthropic-version: 2023-06-01"])
        j = json.loads(body)
        self.assertEqual(j["data"][0]["type"], "model")
        self.assertFalse(j["has_more"])

    def test_scripted_error_in_each_apis_format(self):
        code, _, body = self.curl("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "quota please"}]})
        self.assertEqual(code, 429)
        self.assertEqual(json.loads(body)["error"]["type"], "rate_limit_error")
        code, _, body = self.curl("/v1/chat/completions", {"model": "m", "messages": [
            {"role": "user", "content": "quota please"}]})
        self.assertEqual(code, 429)
        self.assertEqual(json.loads(body)["error"]["message"], "daily quota")
        code, _, _ = self.curl("/v1/nothing", {})
        self.assertEqual(code, 404)

    def test_log_records_the_key_that_arrived(self):
        self.curl("/v1/messages", {"model": "test-model", "max_tokens": 5, "messages": [
            {"role": "user", "content": "say hello"}]}, headers=["x-api-key: sk-ant-REAL-1"])
        e = self.last_entry("/v1/messages",
                            lambda e: e["headers"].get("x-api-key") == "sk-ant-REAL-1")
        self.assertEqual(e["headers"]["x-api-key"], "sk-ant-REAL-1")
        self.assertEqual(e["body"]["messages"][0]["content"], "say hello")
        self.assertEqual(e["usage"], {"input_tokens": 12, "output_tokens": 5})
        self.curl("/v1/chat/completions", {"model": "test-model", "messages": [
            {"role": "user", "content": "say hello"}]}, headers=["Authorization: Bearer sk-R2"])
        e = self.last_entry("/v1/chat/completions",
                            lambda e: e["headers"].get("authorization") == "Bearer sk-R2")
        self.assertNotIn("x-api-key", e["headers"])

    def test_stream_is_incremental_first_chunk_before_the_last_exists(self):
        # The reply is held before its last event until /_test/release: a client that sees
        # the first events now got them before the last one was even written.
        p = subprocess.Popen(
            ["curl", "-sS", "-N", "-H", "content-type: application/json", "--data-binary",
             json.dumps({"model": "test-model", "max_tokens": 5, "stream": True,
                         "messages": [{"role": "user", "content": "hold it"}]}),
             self.srv.url + "/v1/messages"], stdout=subprocess.PIPE, text=True)
        try:
            seen = []
            for line in p.stdout:
                seen.append(line)
                if line.startswith("event: message_delta"):
                    break
            self.assertTrue(any(s.startswith("event: message_start") for s in seen))
            self.assertFalse(any("message_stop" in s for s in seen))
            self.srv.release()
            rest = p.stdout.read()
            self.assertIn("event: message_stop", rest)
        finally:
            p.wait(30)

    # ---- the official SDKs --------------------------------------------------------------------

    @unittest.skipUnless(os.path.isdir(os.path.join(HERE, "node_modules", "openai")) and
                         os.path.isdir(os.path.join(HERE, "node_modules", "@anthropic-ai")),
                         "tests/model_server/node_modules missing (make test installs it)")
    def test_official_openai_and_anthropic_sdks_parse_every_endpoint(self):
        r = subprocess.run(["node", os.path.join(HERE, "sdk_client.mjs"), self.srv.url,
                            "sk-sdk-real"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        o = json.loads(r.stdout)
        hello = "Hello from the test model"
        self.assertEqual(o["chat"]["text"], hello)
        self.assertEqual(o["chat"]["usage"]["total_tokens"], 17)
        self.assertEqual(o["chat_stream"]["text"], hello)
        self.assertEqual(o["chat_stream"]["usage"]["completion_tokens"], 5)
        want_args = {"path": "a.txt", "content": "hi"}
        self.assertEqual((o["chat_tool"]["name"], o["chat_tool"]["args"]),
                         ("write_file", want_args))
        self.assertEqual(o["chat_tool_stream"]["args"], want_args)
        self.assertEqual(o["responses"]["text"], hello)
        self.assertEqual(o["responses_stream"]["text"], hello)
        self.assertEqual(o["responses_stream"]["usage"]["output_tokens"], 5)
        self.assertEqual(o["responses_tool"]["args"], want_args)
        self.assertEqual((o["messages"]["text"], o["messages"]["stop"]), (hello, "end_turn"))
        self.assertEqual(o["messages_stream"]["text"], hello)
        self.assertEqual(o["messages_stream"]["usage"]["output_tokens"], 5)
        self.assertEqual(o["messages_stream"]["types"][0], "message_start")
        self.assertEqual(o["messages_stream"]["types"][-1], "message_stop")
        self.assertEqual((o["messages_tool_stream"]["input"], o["messages_tool_stream"]["stop"]),
                         (want_args, "tool_use"))
        self.assertEqual(o["models_openai"], ["test-model", "other-model"])
        self.assertEqual(o["models_anthropic"], ["test-model", "other-model"])
        # Every SDK request is logged with the key it carried. (@anthropic-ai/sdk 1.x sends
        # it as "Authorization: Bearer", not x-api-key: a gateway must swap both.)
        def sdk(es):
            return [e for e in es if "x-stainless-lang" in e["headers"]]
        got = sdk(self.srv.wait_entries(lambda es: len(sdk(es)) >= 12))
        self.assertEqual(len(got), 12)  # 4 chat, 3 responses, 3 messages, 2 models
        by_api = {}
        for e in got:
            h = e["headers"]
            by_api.setdefault("anthropic" if "anthropic-version" in h else "openai", set()).add(
                h.get("x-api-key") or h.get("authorization"))
        self.assertEqual(by_api["openai"], {"Bearer sk-sdk-real"})
        self.assertIn(by_api["anthropic"], ({"sk-sdk-real"}, {"Bearer sk-sdk-real"}))


def _write_junit(result, cases):
    path = os.environ.get("XML_OUTPUT_FILE")
    if not path:
        return
    fails = {t.id(): ("failure", m) for t, m in result.failures}
    fails.update({t.id(): ("error", m) for t, m in result.errors})
    skips = {t.id(): m for t, m in result.skipped}
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<testsuites>",
           '<testsuite name="model_server_test" tests="%d">' % len(cases)]
    for tid in cases:
        head = "<testcase name=%s classname=%s" % (quoteattr(tid.rpartition(".")[2]),
                                                   quoteattr("ModelServerTest"))
        if tid in fails:
            kind, msg = fails[tid]
            out.append(head + "><%s message=%s/></testcase>" %
                       (kind, quoteattr(msg.strip().splitlines()[-1][:300])))
        elif tid in skips:
            out.append(head + "><skipped message=%s/></testcase>" % quoteattr(skips[tid]))
        else:
            out.append(head + "/>")
    out += ["</testsuite>", "</testsuites>", ""]
    with open(path, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(ModelServerTest)
    ids = [t.id() for t in suite]
    res = unittest.TextTestRunner(verbosity=2).run(suite)
    _write_junit(res, ids)
    sys.exit(0 if res.wasSuccessful() else 1)
