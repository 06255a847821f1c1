// clients.mjs — the official npm clients (@anthropic-ai/sdk, openai) and
// plain fetch, talking to a base URL (procy's proxy in the tests). Prints
// one JSON object: what each client got, and for the raw fetches the
// request-id and SHA-256 of the exact bytes received.
//
//   node tests/node/clients.mjs BASE_URL API_KEY

import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import crypto from "node:crypto";

const [base, key] = process.argv.slice(2);
const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
const openai = new OpenAI({ baseURL: base + "/v1", apiKey: key, maxRetries: 0 });
const out = {};
const bash = { name: "Bash", description: "run a command", input_schema: { type: "object", properties: { command: { type: "string" } } } };

// Anthropic, not streamed
const m = await anthropic.messages.create({ model: "claude-haiku-4-5", max_tokens: 100,
  messages: [{ role: "user", content: "hello sdk" }] });
out.anthropic_text = m.content[0].text;

// Anthropic, streamed, with a tool round trip
const user = { role: "user", content: "TOOL:bash[echo from-sdk]" };
const s = anthropic.messages.stream({ model: "claude-sonnet-4-5", max_tokens: 100, tools: [bash], messages: [user] });
let deltas = 0;
s.on("text", () => deltas++);
const first = await s.finalMessage();
const use = first.content.find((b) => b.type === "tool_use");
out.anthropic_stream = { deltas, stop: first.stop_reason, tool: use && use.input, id: use && use.id };
const second = await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 100, tools: [bash], stream: false,
  messages: [user, { role: "assistant", content: first.content },
             { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "from-sdk" }] }] });
out.anthropic_tool_final = second.content[0].text;

// Anthropic errors come back as the SDK's typed errors
try {
  await anthropic.messages.create({ model: "claude-haiku-4-5", max_tokens: 10, messages: [{ role: "user", content: "FAKE_ERROR:529" }] });
} catch (e) {
  out.anthropic_error = { status: e.status, type: e.error && e.error.error && e.error.error.type };
}

// OpenAI chat, streamed with a tool call, and not streamed
const fn = { type: "function", function: { name: "Bash", parameters: { type: "object", properties: { command: { type: "string" } } } } };
const cs = await openai.chat.completions.create({ model: "gpt-4.1", stream: true, stream_options: { include_usage: true },
  tools: [fn], messages: [{ role: "user", content: "TOOL:bash[ls /]" }] });
let args = "", name = "", usage = null, finish = null;
for await (const chunk of cs) {
  if (chunk.usage) usage = chunk.usage;
  const c = chunk.choices[0];
  if (!c) continue;
  if (c.finish_reason) finish = c.finish_reason;
  for (const t of c.delta.tool_calls || []) {
    if (t.function && t.function.name) name = t.function.name;
    if (t.function && t.function.arguments) args += t.function.arguments;
  }
}
out.chat_stream = { name, args: JSON.parse(args), finish, usage: !!usage };
const cj = await openai.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hello chat" }] });
out.chat_text = cj.choices[0].message.content;

// OpenAI Responses, streamed with a function call, and not streamed
const rs = await openai.responses.create({ model: "gpt-5-codex", stream: true,
  tools: [{ type: "function", name: "Bash", parameters: { type: "object", properties: {} } }],
  input: [{ role: "user", content: [{ type: "input_text", text: "TOOL:bash[uname]" }] }] });
let done = null;
for await (const ev of rs) if (ev.type === "response.completed") done = ev.response;
const call = done.output.find((o) => o.type === "function_call");
out.responses_stream = { status: done.status, name: call && call.name, args: call && JSON.parse(call.arguments) };
const rj = await openai.responses.create({ model: "gpt-5-mini", input: "hello responses" });
out.responses_text = rj.output_text;

// raw bytes: what a client receives, hashed here, compared with the upstream's
out.raw = [];
for (const [path, body] of [
  ["/v1/messages", { model: "claude-haiku-4-5", stream: true, max_tokens: 50, messages: [{ role: "user", content: "THINK raw bytes" }] }],
  ["/v1/chat/completions", { model: "gpt-4.1", stream: true, messages: [{ role: "user", content: "raw chat" }] }],
  ["/v1/responses", { model: "gpt-5", stream: true, input: "raw responses" }],
]) {
  const res = await fetch(base + path, { method: "POST", body: JSON.stringify(body),
    headers: { "content-type": "application/json", "x-api-key": key, authorization: "Bearer " + key } });
  const bytes = Buffer.from(await res.arrayBuffer());
  out.raw.push({ path, status: res.status, request_id: res.headers.get("request-id"),
                 sha256: crypto.createHash("sha256").update(bytes).digest("hex") });
}

process.stdout.write(JSON.stringify(out) + "\n");
