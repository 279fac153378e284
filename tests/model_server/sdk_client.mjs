// tests/model_server/sdk_client.mjs — drives the test model server with the official SDKs
// (openai, @anthropic-ai/sdk from this dir's package.json) and prints one JSON object with what
// each SDK parsed, for model_server_test.py to check. Usage: node sdk_client.mjs BASE_URL KEY
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

const [base, key] = process.argv.slice(2);
const out = {};
const oa = new OpenAI({ baseURL: base + "/v1", apiKey: key, maxRetries: 0 });
const an = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
const tools = [{ type: "function", function: { name: "write_file", parameters: { type: "object" } } }];

// Chat Completions: plain, streamed with usage, and a tool call.
const c1 = await oa.chat.completions.create({ model: "test-model", messages: [{ role: "user", content: "say hello" }] });
out.chat = { text: c1.choices[0].message.content, usage: c1.usage };
let streamed = "", usage = null, chunks = 0;
const s1 = await oa.chat.completions.create({ model: "test-model", stream: true, stream_options: { include_usage: true },
  messages: [{ role: "user", content: "say hello" }] });
for await (const ch of s1) {
  chunks++;
  if (ch.choices[0]?.delta?.content) streamed += ch.choices[0].delta.content;
  if (ch.usage) usage = ch.usage;
}
out.chat_stream = { text: streamed, usage, chunks };
const c2 = await oa.chat.completions.create({ model: "test-model", tools, messages: [{ role: "user", content: "write the file" }] });
const tc = c2.choices[0].message.tool_calls[0];
out.chat_tool = { finish: c2.choices[0].finish_reason, name: tc.function.name, args: JSON.parse(tc.function.arguments) };
// ... the same tool call, streamed, assembled by the SDK's helper.
const s2 = oa.chat.completions.stream({ model: "test-model", tools, messages: [{ role: "user", content: "write the file" }] });
const f2 = await s2.finalChatCompletion();
const tc2 = f2.choices[0].message.tool_calls[0];
out.chat_tool_stream = { name: tc2.function.name, args: JSON.parse(tc2.function.arguments) };

// Responses: plain and streamed.
const r1 = await oa.responses.create({ model: "test-model", input: "say hello" });
out.responses = { text: r1.output_text, usage: r1.usage };
const types = [];
let rtext = "", rusage = null;
const rs = await oa.responses.create({ model: "test-model", input: "say hello", stream: true });
for await (const ev of rs) {
  types.push(ev.type);
  if (ev.type === "response.output_text.delta") rtext += ev.delta;
  if (ev.type === "response.completed") rusage = ev.response.usage;
}
out.responses_stream = { text: rtext, usage: rusage, types };
const r2 = await oa.responses.create({ model: "test-model", input: "write the file",
  tools: [{ type: "function", name: "write_file", parameters: { type: "object" } }] });
const fc = r2.output.find((o) => o.type === "function_call");
out.responses_tool = { name: fc.name, args: JSON.parse(fc.arguments) };

// Anthropic Messages: plain, streamed (the SDK's accumulator checks the event sequence), tool_use.
const a1 = await an.messages.create({ model: "test-model", max_tokens: 100, messages: [{ role: "user", content: "say hello" }] });
out.messages = { text: a1.content[0].text, usage: a1.usage, stop: a1.stop_reason };
const as = an.messages.stream({ model: "test-model", max_tokens: 100, messages: [{ role: "user", content: "say hello" }] });
const aev = [];
as.on("streamEvent", (e) => aev.push(e.type));
const af = await as.finalMessage();
out.messages_stream = { text: af.content[0].text, usage: af.usage, stop: af.stop_reason, types: aev };
const at = an.messages.stream({ model: "test-model", max_tokens: 100,
  tools: [{ name: "write_file", input_schema: { type: "object" } }],
  messages: [{ role: "user", content: "write the file" }] });
const atf = await at.finalMessage();
const tu = atf.content.find((b) => b.type === "tool_use");
out.messages_tool_stream = { name: tu.name, input: tu.input, stop: atf.stop_reason };

// Models, in both formats.
out.models_openai = (await oa.models.list()).data.map((m) => m.id);
out.models_anthropic = (await an.models.list()).data.map((m) => m.id);
console.log(JSON.stringify(out));
