// upstream.mjs — a fake model API for tests: Anthropic Messages, OpenAI
// chat completions, OpenAI Responses and Google's Gemini API
// (generateContent, streamGenerateContent as SSE with alt=sse or as one
// JSON array, countTokens). The model is the one part of the
// stack that cannot run here. Node's standard library only.
//
//   node tests/fake/upstream.mjs --log-dir DIR [--port 0] [--delay 0.01] [--tool-prefix toolu_fake_]
//
// Listens on 127.0.0.1, prints "PORT n" and writes DIR/port. Every request
// is one JSON line in DIR/requests.jsonl when its answer ends (auth headers
// masked; req_sha256 and resp_sha256: SHA-256 of the bytes received and
// sent, resp_bytes, how it ended, and for streams stop_ns: the monotonic
// clock when the last event was written), its body in DIR/bodies/NNNN.json.
// Any path prefix is accepted before /v1/.
//
// GET …/v1/models lists claude-fake-1..3 and gpt-small (max_model_len 8192,
// as vLLM says it); a chat call to gpt-limited asking more than 4096
// tokens is refused with OpenAI's 400, which names the limit.
//
// POST …/v1/messages, …/v1/chat/completions and …/v1/responses answer from
// the last user message's text (<system-reminder> parts removed):
//   a tool result              -> "FAKE: got tool result: <first 200 chars>"
//   FAKE_ERROR:<status>        -> that HTTP status, an error body in the API's shape
//   TOOL:bash[cmd] / TOOL:bash -> text + a Bash tool call (if a Bash tool is offered; else the
//                                 shell tool the client offers: bash, run_shell_command, shell)
//   TOOLS:N:bash[cmd]          -> N Bash calls in a row, each after the last one's result
//   TOOL:write:/path[:B64]     -> a Write tool call (if Write is offered): "hello from fake", or the base64 content
//   TOOL:edit:/path:OLD:NEW    -> a Read of the file, then (after its result) an Edit replacing OLD by NEW
//                                 (both base64), then the answer
//   TOOL:shell[cmd]            -> Codex's exec_command call (if exec_command is offered)
//   TOOL:task:NAME[prompt]     -> a Task (or Agent) call handing prompt to the subagent NAME, in the foreground
//   TOOL:bgtask:NAME[prompt]   -> the same, run_in_background left out: Claude Code's default, the background
//   THINK                      -> a thinking block (with signature) first
//   SERVER_TOOL                -> a web search server tool block and its result (Anthropic)
//   SLOW                       -> 20 words, one every 0.5 s
//   TRICKLE                    -> the first 30 bytes written one every 100 ms
//   RESET                      -> the connection is reset after the first events
//   HANG                       -> nothing is sent, the connection stays open
//   TIMED                      -> 100 pings 5 ms apart, each with the monotonic clock in ns (t)
//   BIG:<n>                    -> a text of n bytes
//   RAW:<status>:<ctype>:<b64> -> exactly these bytes with that status and content type (broken
//                                 streams, nulls where ids go, invalid UTF-8: whatever a test needs)
//   JUNK:<n>                   -> a 200 event stream of n bytes of pseudo-random junk, sent in pieces
//   anything else              -> "FAKE: hello! you said: <text>"
// streamed as SSE when "stream": true (Anthropic: event + data lines and a
// ping; OpenAI: data lines and [DONE]), else one JSON body.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const logDir = opt("--log-dir", ".");
const port = Number(opt("--port", "0"));
const delay = Number(opt("--delay", "0.01")) * 1000;
const toolPrefix = opt("--tool-prefix", "toolu_fake_"); // two fakes in one test: ids of their own
fs.mkdirSync(path.join(logDir, "bodies"), { recursive: true });
const logFile = fs.openSync(path.join(logDir, "requests.jsonl"), "a");

let n = 0, gets = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const secret = /^(x-api-key|x-goog-api-key|authorization|proxy-authorization|cookie)$/i;
const log = (entry) => fs.writeSync(logFile, JSON.stringify(entry) + "\n");

function text(c) {
  if (typeof c === "string") return c;
  return (c || []).filter((b) => b && (b.type === "text" || b.type === "input_text")).map((b) => b.text).join("\n");
}

// The last user turn: its text, or the tool result it carries.
function lastUser(api, body) {
  if (api === "gemini") return geminiLastUser(body);
  let msgs = api === "responses" ? body.input : body.messages;
  if (typeof msgs === "string") msgs = [{ role: "user", content: msgs }];
  msgs = Array.isArray(msgs) ? msgs : [];
  for (let i = msgs.length - 1; i >= 0; i--) {
    const m = msgs[i];
    if (m.type === "function_call_output") return { toolResult: String(m.output) };
    if (m.role === "tool") return { toolResult: text(m.content) };
    if (m.role !== "user") continue;
    const blocks = typeof m.content === "string" ? [] : m.content || [];
    const result = blocks.find((b) => b.type === "tool_result");
    if (result) return { toolResult: text(result.content) };
    const t = text(m.content);
    return { text: t.replace(/<system-reminder>[\s\S]*?<\/system-reminder>/g, "").trim() };
  }
  if (typeof body.prompt === "string") return { text: body.prompt };
  return { text: "" };
}

function toolNames(api, body) {
  if (api === "gemini") return (body.tools || []).flatMap((t) => (t.functionDeclarations || []).map((f) => f.name));
  return (body.tools || []).map((t) => t.name || (t.function && t.function.name));
}

// The tool's declared parameters (JSON schema), for the arguments a call
// must carry: a required one the test did not give is filled with an
// empty value of its type.
function toolSchema(api, body, name) {
  for (const t of body.tools || []) {
    if (api === "gemini")
      for (const f of t.functionDeclarations || []) if (f.name === name) return f.parameters || f.parametersJsonSchema;
    if (t.name === name) return t.input_schema || t.parameters;
    if (t.function && t.function.name === name) return t.function.parameters;
  }
  return null;
}
function fillRequired(schema, input) {
  const empty = { boolean: false, string: "", number: 0, integer: 0, array: [], object: {} };
  for (const k of (schema && schema.required) || []) {
    if (k in input) continue;
    const ty = String(((schema.properties || {})[k] || {}).type || "string").toLowerCase();
    input[k] = empty[ty] ?? "";
  }
  return input;
}
// A request that asks for JSON (a classifier, a router: Gemini's
// responseMimeType, OpenAI's response_format) gets a JSON value of the
// schema it gives: the smallest that has every required field.
function jsonAsked(api, body) {
  const g = body.generationConfig || {};
  if (api === "gemini" && /json/.test(g.responseMimeType || "")) return g.responseJsonSchema || g.responseSchema || {};
  const f = body.response_format || (body.text && body.text.format);
  if (f && /json/.test(f.type || "")) return (f.json_schema && f.json_schema.schema) || f.schema || {};
  return null;
}
function fromSchema(s) {
  const ty = String((s && s.type) || "object").toLowerCase();
  if (s && Array.isArray(s.enum) && s.enum.length) return s.enum[0];
  if (ty === "string") return "fake";
  if (ty === "integer" || ty === "number") return 1;
  if (ty === "boolean") return false;
  if (ty === "array") return [];
  const out = {};
  for (const k of (s && s.required) || Object.keys((s && s.properties) || {}))
    out[k] = fromSchema(((s && s.properties) || {})[k] || { type: "string" });
  return out;
}
const shellTools = ["Bash", "bash", "run_shell_command", "shell"];

// Gemini: the last user content: its text, or the function response it carries.
function geminiLastUser(body) {
  const contents = Array.isArray(body.contents) ? body.contents : [];
  for (let i = contents.length - 1; i >= 0; i--) {
    const c = contents[i];
    if (c.role && c.role !== "user") continue;
    const parts = c.parts || [];
    const fr = parts.find((p) => p.functionResponse);
    if (fr) return { toolResult: JSON.stringify(fr.functionResponse.response ?? {}) };
    return { text: parts.filter((p) => typeof p.text === "string" && !p.thought).map((p) => p.text).join("\n").trim() };
  }
  return { text: "" };
}

// What the model says, in the API's neutral terms.
// TOOLS:N:bash[cmd] in the conversation's first prompt: N Bash round trips
// in a row before the answer.
function rounds(api, body) {
  const msgs = (api === "responses" ? body.input : body.messages) || [];
  let want = 0, cmd = "", results = 0;
  for (const m of Array.isArray(msgs) ? msgs : []) {
    const t = m.role === "user" ? text(m.content) : "";
    const hit = t.match(/TOOLS:(\d+):bash\[([^\]]*)\]/);
    if (hit) { want = Number(hit[1]); cmd = hit[2]; results = 0; }
    if (Array.isArray(m.content)) results += m.content.filter((b) => b.type === "tool_result").length;
  }
  return { want, cmd, results };
}

// TOOL:edit in the conversation's latest prompt, and the tool results since
function editChain(api, body) {
  const msgs = (api === "responses" ? body.input : body.messages) || [];
  let hit = null, results = 0;
  for (const m of Array.isArray(msgs) ? msgs : []) {
    if (m.role !== "user") continue;
    const blocks = Array.isArray(m.content) ? m.content : [];
    const n = blocks.filter((b) => b.type === "tool_result").length;
    const t = text(m.content).replace(/<system-reminder>[\s\S]*?<\/system-reminder>/g, "").trim();
    // a prompt may share its message with the result of an interrupted call
    if (!t || /^\[Request interrupted/.test(t) && !t.includes("TOOL:")) { results += n; continue; }
    const h = t.match(/TOOL:edit:([^\s:]+):([A-Za-z0-9+/=]*):([A-Za-z0-9+/=]*)/);
    hit = h ? { path: h[1], old: Buffer.from(h[2], "base64").toString(), new: Buffer.from(h[3], "base64").toString() } : null;
    results = 0;
  }
  return hit && { ...hit, results };
}

function reply(api, body) {
  const u = lastUser(api, body);
  const tools = toolNames(api, body);
  const id = toolPrefix + String(n).padStart(4, "0");
  const r0 = rounds(api, body);
  if (r0.want > 0 && tools.includes("Bash") && (u.toolResult !== undefined || r0.results === 0) && r0.results < r0.want)
    return { blocks: [{ type: "text", text: `FAKE: round ${r0.results + 1} of ${r0.want}.` },
                      { type: "tool_use", id, name: "Bash", input: { command: r0.cmd, description: "fake round" } }],
             stop: "tool_use" };
  const ed = editChain(api, body);
  if (ed && tools.includes("Edit") && ed.results < 2 && (u.toolResult !== undefined || ed.results === 0)) {
    if (ed.results === 0)
      return { blocks: [{ type: "tool_use", id, name: "Read", input: { file_path: ed.path } }], stop: "tool_use" };
    return { blocks: [{ type: "tool_use", id, name: "Edit",
                        input: { file_path: ed.path, old_string: ed.old, new_string: ed.new } }], stop: "tool_use" };
  }
  const schema = jsonAsked(api, body);
  if (schema) return { blocks: [{ type: "text", text: JSON.stringify(fromSchema(schema)) }], stop: "end_turn" };
  if (u.toolResult !== undefined)
    return { blocks: [{ type: "text", text: "FAKE: got tool result: " + u.toolResult.slice(0, 200) }], stop: "end_turn" };
  const t = u.text;
  const err = t.match(/FAKE_ERROR:(\d{3})/);
  if (err) return { error: Number(err[1]) };
  const r = { blocks: [], stop: "end_turn", mode: (t.match(/\b(SLOW|TRICKLE|RESET|HANG|TIMED)\b/) || [])[1] };
  if (/\bTHINK\b/.test(t))
    r.blocks.push({ type: "thinking", thinking: "FAKE: let me think about " + t.slice(0, 40), signature: "sig_" + n });
  const bash = t.match(/TOOL:bash(?:\[([^\]]*)\])?/);
  const shell = t.match(/TOOL:shell\[([^\]]*)\]/);
  const write = t.match(/TOOL:write:([^\s:]+)(?::([A-Za-z0-9+/=]+))?/);
  const big = t.match(/BIG:(\d+)/);
  const task = t.match(/TOOL:(bg)?task:([\w-]+)\[((?:[^[\]]|\[[^\]]*\])*)\]/); // one [...] may nest
  const taskTool = tools.find((x) => x === "Task" || x === "Agent");
  if (task && taskTool) {
    const input = { description: "fake task", prompt: task[3], subagent_type: task[2] };
    if (!task[1]) input.run_in_background = false;
    r.blocks.push({ type: "text", text: "FAKE: asking " + task[2] + "." }, { type: "tool_use", id, name: taskTool, input });
    r.stop = "tool_use";
  } else if (bash && shellTools.some((x) => tools.includes(x))) {
    const name = shellTools.find((x) => tools.includes(x));
    const input = fillRequired(toolSchema(api, body, name), { command: bash[1] || "echo hello", description: "fake command" });
    r.blocks.push({ type: "text", text: "FAKE: running a command." }, { type: "tool_use", id, name, input });
    r.stop = "tool_use";
  } else if (shell && tools.includes("exec_command")) { // Codex's shell tool
    r.blocks.push({ type: "tool_use", id: "call_fake_" + String(n).padStart(4, "0"), name: "exec_command",
                    input: { cmd: shell[1] } });
    r.stop = "tool_use";
  } else if (write && tools.includes("Write")) {
    r.blocks.push({ type: "tool_use", id, name: "Write", input: { file_path: write[1],
      content: write[2] ? Buffer.from(write[2], "base64").toString() : "hello from fake\n" } });
    r.stop = "tool_use";
  } else if (/\bSERVER_TOOL\b/.test(t) && api === "anthropic") {
    r.blocks.push({ type: "server_tool_use", id: "srvtoolu_fake_" + n, name: "web_search", input: { query: "procy" } },
      { type: "web_search_tool_result", tool_use_id: "srvtoolu_fake_" + n,
        content: [{ type: "web_search_result", url: "https://example.invalid/", title: "Example" }] },
      { type: "text", text: "FAKE: searched." });
  } else if (big) {
    r.blocks.push({ type: "text", text: "x".repeat(Number(big[1])) });
  } else if (r.mode === "SLOW") {
    r.blocks.push({ type: "text", text: Array.from({ length: 20 }, (_, i) => "word" + i).join(" ") });
  } else {
    r.blocks.push({ type: "text", text: "FAKE: hello! you said: " + t.replace(/\s+/g, " ").slice(0, 80) });
  }
  return r;
}

const usage = (raw, out) => ({ input: Math.floor(raw.length / 4), output: out });

// ---- answers, per API -------------------------------------------------------------

const anthropicErrors = { 400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
                          529: "overloaded_error" };

const googleStatus = { 400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                       429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE" };

function errorBody(api, status) {
  if (api === "gemini")
    return { error: { code: status, message: "fake error " + status, status: googleStatus[status] || "UNKNOWN" } };
  if (api === "anthropic")
    return { type: "error", error: { type: anthropicErrors[status] || "api_error", message: "fake error " + status } };
  return { error: { message: "fake error " + status, type: status === 429 ? "rate_limit_exceeded" : "server_error",
                    code: String(status) } };
}

function pieces(s, size) {
  return s.match(new RegExp(`[\\s\\S]{1,${size}}`, "g")) || [];
}

// Anthropic: the events of one message.
function anthropicEvents(body, raw, r, id) {
  const u = usage(raw, 1);
  const ev = [["message_start", { type: "message_start", message: { id: "msg_fake_" + id, type: "message",
    role: "assistant", model: body.model || "fake", content: [], stop_reason: null, stop_sequence: null,
    usage: { input_tokens: u.input, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } } }]];
  let out = 0;
  r.blocks.forEach((b, i) => {
    const start = { ...b };
    if (b.type === "text") start.text = "";
    if (b.type === "thinking") Object.assign(start, { thinking: "", signature: "" });
    if ("input" in b) start.input = {};
    ev.push(["content_block_start", { type: "content_block_start", index: i, content_block: start }]);
    if (i === 0) ev.push(["ping", { type: "ping" }]);
    const delta = (d) => ev.push(["content_block_delta", { type: "content_block_delta", index: i, delta: d }]);
    if (b.type === "text")
      for (const p of r.mode === "SLOW" ? b.text.split(/(?<= )/) : pieces(b.text, 12)) { delta({ type: "text_delta", text: p }); out++; }
    if (b.type === "thinking") {
      for (const p of pieces(b.thinking, 10)) delta({ type: "thinking_delta", thinking: p });
      delta({ type: "signature_delta", signature: b.signature });
    }
    if ("input" in b) for (const p of pieces(JSON.stringify(b.input), 15)) { delta({ type: "input_json_delta", partial_json: p }); out++; }
    ev.push(["content_block_stop", { type: "content_block_stop", index: i }]);
  });
  ev.push(["message_delta", { type: "message_delta", delta: { stop_reason: r.stop, stop_sequence: null },
                              usage: { output_tokens: out } }]);
  ev.push(["message_stop", { type: "message_stop" }]);
  return ev.map(([e, d]) => `event: ${e}\ndata: ${JSON.stringify(d)}\n\n`);
}

function anthropicJson(body, raw, r, id) {
  return { id: "msg_fake_" + id, type: "message", role: "assistant", model: body.model || "fake", content: r.blocks,
           stop_reason: r.stop, stop_sequence: null,
           usage: { input_tokens: usage(raw).input, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } };
}

function chatCalls(r) {
  return r.blocks.filter((b) => b.type === "tool_use").map((b, i) => ({ index: i, id: b.id, type: "function",
    function: { name: b.name, arguments: JSON.stringify(b.input) } }));
}

function chatEvents(body, raw, r, id) {
  const base = { id: "chatcmpl-fake-" + id, object: "chat.completion.chunk", created: 1, model: body.model || "fake" };
  const chunk = (delta, finish = null) => ({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] });
  const ev = [chunk({ role: "assistant", content: "" })];
  for (const b of r.blocks) {
    if (b.type === "thinking") for (const p of pieces(b.thinking, 10)) ev.push(chunk({ reasoning_content: p }));
    if (b.type === "text") for (const p of pieces(b.text, 12)) ev.push(chunk({ content: p }));
  }
  for (const c of chatCalls(r)) {
    ev.push(chunk({ tool_calls: [{ index: c.index, id: c.id, type: "function", function: { name: c.function.name, arguments: "" } }] }));
    for (const p of pieces(c.function.arguments, 15)) ev.push(chunk({ tool_calls: [{ index: c.index, function: { arguments: p } }] }));
  }
  ev.push(chunk({}, r.stop === "tool_use" ? "tool_calls" : "stop"));
  if (body.stream_options && body.stream_options.include_usage)
    ev.push({ ...base, choices: [], usage: { prompt_tokens: usage(raw).input, completion_tokens: ev.length,
                                              total_tokens: usage(raw).input + ev.length,
                                              prompt_tokens_details: { cached_tokens: 0 } } });
  return ev.map((d) => `data: ${JSON.stringify(d)}\n\n`).concat(["data: [DONE]\n\n"]);
}

function chatJson(body, raw, r, id) {
  const calls = chatCalls(r);
  const content = r.blocks.filter((b) => b.type === "text").map((b) => b.text).join("");
  return { id: "chatcmpl-fake-" + id, object: "chat.completion", created: 1, model: body.model || "fake",
           choices: [{ index: 0, message: { role: "assistant", content: content || null,
                                            ...(calls.length ? { tool_calls: calls.map(({ index, ...c }) => c) } : {}) },
                       finish_reason: calls.length ? "tool_calls" : "stop" }],
           usage: { prompt_tokens: usage(raw).input, completion_tokens: 5, total_tokens: usage(raw).input + 5 } };
}

function responseItems(r) {
  return r.blocks.map((b, i) => {
    if (b.type === "thinking") return { type: "reasoning", id: "rs_" + i, summary: [{ type: "summary_text", text: b.thinking }] };
    if (b.type === "tool_use") return { type: "function_call", id: "fc_" + i, call_id: b.id, name: b.name,
                                        arguments: JSON.stringify(b.input), status: "completed" };
    return { type: "message", id: "msg_" + i, role: "assistant", status: "completed",
             content: [{ type: "output_text", text: b.text, annotations: [] }] };
  });
}

function responseObject(body, raw, r, id, status, items) {
  return { id: "resp_fake_" + id, object: "response", created_at: 1, status, model: body.model || "fake",
           output: items, usage: status === "completed" ? { input_tokens: usage(raw).input,
             input_tokens_details: { cached_tokens: 0 }, output_tokens: 7, output_tokens_details: { reasoning_tokens: 0 },
             total_tokens: usage(raw).input + 7 } : null };
}

function responsesEvents(body, raw, r, id) {
  let seq = 0;
  const ev = [];
  const push = (d) => ev.push({ ...d, sequence_number: seq++ });
  push({ type: "response.created", response: responseObject(body, raw, r, id, "in_progress", []) });
  const items = responseItems(r);
  items.forEach((it, i) => {
    const empty = it.type === "message" ? { ...it, content: [], status: "in_progress" }
                : it.type === "function_call" ? { ...it, arguments: "", status: "in_progress" } : it;
    push({ type: "response.output_item.added", output_index: i, item: empty });
    if (it.type === "message") {
      push({ type: "response.content_part.added", item_id: it.id, output_index: i, content_index: 0,
             part: { type: "output_text", text: "", annotations: [] } });
      for (const p of pieces(it.content[0].text, 12))
        push({ type: "response.output_text.delta", item_id: it.id, output_index: i, content_index: 0, delta: p });
      push({ type: "response.output_text.done", item_id: it.id, output_index: i, content_index: 0, text: it.content[0].text });
    }
    if (it.type === "function_call") {
      for (const p of pieces(it.arguments, 15))
        push({ type: "response.function_call_arguments.delta", item_id: it.id, output_index: i, delta: p });
      push({ type: "response.function_call_arguments.done", item_id: it.id, output_index: i, arguments: it.arguments });
    }
    push({ type: "response.output_item.done", output_index: i, item: it });
  });
  push({ type: "response.completed", response: responseObject(body, raw, r, id, "completed", items) });
  return ev.map((d) => `event: ${d.type}\ndata: ${JSON.stringify(d)}\n\n`);
}

// Gemini: the chunks of one streamed answer (each a GenerateContentResponse).
function geminiParts(r) {
  return r.blocks.map((b) => {
    if (b.type === "thinking") return { text: b.thinking, thought: true };
    if (b.type === "tool_use") return { functionCall: { name: b.name, args: b.input } };
    return { text: b.text };
  });
}
function geminiUsage(raw, out) {
  const input = usage(raw).input;
  return { promptTokenCount: input, candidatesTokenCount: out, totalTokenCount: input + out + 3,
           cachedContentTokenCount: 0, thoughtsTokenCount: 3 };
}
function geminiChunks(body, raw, r, id) {
  const out = [];
  const model = body.model || "gemini-fake";
  const chunk = (parts, finish) => ({ candidates: [{ content: { role: "model", parts }, ...(finish ? { finishReason: finish } : {}),
    index: 0 }], modelVersion: model, responseId: "fake_" + id });
  for (const p of geminiParts(r)) {
    if (typeof p.text === "string") for (const t of pieces(p.text, 12)) out.push(chunk([{ ...p, text: t }]));
    else out.push(chunk([p]));
  }
  const last = chunk([], "STOP");
  last.candidates[0].content.parts = [{ text: "" }];
  last.usageMetadata = geminiUsage(raw, out.length);
  out.push(last);
  return out;
}
function geminiJson(body, raw, r, id) {
  return { candidates: [{ content: { role: "model", parts: geminiParts(r) }, finishReason: "STOP", index: 0 }],
           usageMetadata: geminiUsage(raw, 5), modelVersion: body.model || "gemini-fake", responseId: "fake_" + id };
}

const apis = {
  gemini: { events: (body, raw, r, id) => geminiChunks(body, raw, r, id).map((d) => `data: ${JSON.stringify(d)}\r\n\r\n`),
            json: geminiJson },
  anthropic: { events: anthropicEvents, json: anthropicJson },
  chat: { events: chatEvents, json: chatJson },
  responses: { events: responsesEvents,
               json: (body, raw, r, id) => responseObject(body, raw, r, id, "completed", responseItems(r)) },
};

// ---- the server ----------------------------------------------------------------

async function stream(req, res, api, body, raw, r, entry) {
  const hash = crypto.createHash("sha256");
  let bytes = 0, closed = false;
  res.on("close", () => { if (!res.writableFinished) closed = true; });
  const write = (s) => { if (!closed) { hash.update(s); bytes += Buffer.byteLength(s); res.write(s); } };
  const array = api === "gemini" && body.jsonArray; // Gemini's stream without alt=sse: one JSON array, sent in pieces
  res.writeHead(200, { "content-type": array ? "application/json; charset=UTF-8" : "text/event-stream; charset=utf-8",
                       "cache-control": "no-cache",
                       "request-id": "req_fake_" + entry.n,
                       "anthropic-ratelimit-requests-remaining": "49", "x-ratelimit-remaining-requests": "49" });
  if (r.mode === "HANG") {
    await new Promise((resolve) => res.on("close", resolve));
    entry.ended = "client_closed_mid_stream";
    return;
  }
  if (r.mode === "TIMED") { // pings stamped with the monotonic clock, for latency benchmarks
    for (let i = 0; i < 100 && !closed; i++) {
      write(`event: ping\ndata: {"type":"ping","t":${process.hrtime.bigint()}}\n\n`);
      await sleep(5);
    }
    entry.ended = closed ? "client_closed_mid_stream" : "complete";
    if (!closed) res.end();
    return;
  }
  const events = array ? geminiChunks(body, raw, r, entry.n).map((d, i, a) => (i ? ",\r\n" : "[") + JSON.stringify(d)
                                                                     + (i === a.length - 1 ? "]" : ""))
                       : apis[api].events(body, raw, r, entry.n);
  for (let i = 0; i < events.length && !closed; i++) {
    if (r.mode === "TRICKLE" && i === 0) { // its first 30 bytes, one every 100 ms
      for (const c of events[0].slice(0, 30)) { write(c); await sleep(100); }
      write(events[0].slice(30));
    } else {
      write(events[i]);
    }
    if (i === events.length - 1) entry.stop_ns = String(process.hrtime.bigint()); // the last event (message_stop) left
    if (r.mode === "RESET" && i === 2) {
      await sleep(50);
      entry.ended = "reset";
      entry.resp_sha256 = hash.digest("hex");
      entry.resp_bytes = bytes;
      res.socket.resetAndDestroy ? res.socket.resetAndDestroy() : res.socket.destroy();
      return;
    }
    await sleep(r.mode === "SLOW" && /delta/.test(events[i]) ? 500 : delay);
  }
  entry.ended = closed ? "client_closed_mid_stream" : "complete";
  entry.resp_sha256 = hash.digest("hex");
  entry.resp_bytes = bytes;
  if (!closed) res.end();
}

// Gemini's paths: /v1beta/models/MODEL:VERB (or /v1/...), VERB one of
// generateContent, streamGenerateContent, countTokens.
function geminiRoute(url) {
  const m = url.match(/\/v1(?:beta|alpha)?\/models\/([^/:?]+):(generateContent|streamGenerateContent|countTokens)(\?|$)/);
  return m && { model: decodeURIComponent(m[1]), verb: m[2], sse: /[?&]alt=sse(&|$)/.test(url) };
}

function routeOf(method, url) {
  if (method !== "POST") return null;
  const g = geminiRoute(url);
  if (g) return g.verb === "countTokens" ? "gemini-count" : "gemini";
  if (/\/v1\/messages\/count_tokens(\?|$)/.test(url)) return "count";
  if (/\/v1\/messages(\?|$)/.test(url)) return "anthropic";
  if (/\/v1\/chat\/completions(\?|$)/.test(url)) return "chat";
  if (/\/v1\/responses(\?|$)/.test(url)) return "responses";
  return null;
}

const dropped = new Set(); // DROPONCE tags seen
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const buf = Buffer.concat(chunks);
    const raw = buf.toString("utf8");
    // a GET (a model list, say) has no body and takes no number: the
    // calls' numbers (and the tool ids made from them) stay as they were
    const get = req.method === "GET" || req.method === "HEAD";
    const id = get ? "get" + ++gets : ++n;
    const headers = {};
    for (const [k, v] of Object.entries(req.headers))
      headers[k] = secret.test(k) ? String(v).slice(0, 7) + `...(len ${String(v).length})` : v;
    if (!get) fs.writeFileSync(path.join(logDir, "bodies", String(id).padStart(4, "0") + ".json"), buf);
    let body = {};
    try { body = raw ? JSON.parse(raw) : {}; } catch { body = {}; }
    const url = req.url;
    // DROPONCE:tag: the first request carrying it is read whole, then its
    // connection is closed with no answer (as a server that timed the
    // kept-alive connection out would); the next one is answered
    const drop = raw.match(/DROPONCE:(\w+)/);
    if (drop && !dropped.has(drop[1])) {
      dropped.add(drop[1]);
      log({ n: id, t: Date.now() / 1000, method: req.method, path: url, body_len: buf.length, ended: "dropped",
            req_sha256: crypto.createHash("sha256").update(buf).digest("hex") });
      return req.socket.destroy();
    }
    const entry = { n: id, t: Date.now() / 1000, method: req.method, path: url, headers, body_len: buf.length,
                    req_sha256: crypto.createHash("sha256").update(buf).digest("hex") };
    const json = (status, obj) => {
      const text = JSON.stringify(obj);
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text),
                              "request-id": "req_fake_" + id,
                              ...(status === 429 ? { "retry-after": "1", "anthropic-ratelimit-requests-remaining": "0" } : {}) });
      res.end(req.method === "HEAD" ? undefined : text);
      entry.status = status;
      entry.ended = "complete";
      entry.resp_bytes = req.method === "HEAD" ? 0 : Buffer.byteLength(text);
      entry.resp_sha256 = crypto.createHash("sha256").update(req.method === "HEAD" ? "" : text).digest("hex");
      log(entry);
    };
    const api = routeOf(req.method, url);
    if (api === "count") return json(200, { input_tokens: Math.floor(raw.length / 4) });
    if (api === "gemini-count") return json(200, { totalTokens: Math.floor(raw.length / 4) });
    const gem = api === "gemini" && geminiRoute(url);
    if (gem) { body.model = gem.model; body.stream = gem.verb === "streamGenerateContent"; body.jsonArray = !gem.sse; }
    const rawAnswer = api && raw.match(/RAW:(\d{3}):([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]*)/);
    const junk = api && raw.match(/JUNK:(\d+)/);
    if (rawAnswer || junk) {
      const bytes = rawAnswer ? Buffer.from(rawAnswer[3], "base64") : junkBytes(Number(junk[1]), id);
      const status = rawAnswer ? Number(rawAnswer[1]) : 200;
      res.writeHead(status, { "content-type": rawAnswer ? Buffer.from(rawAnswer[2], "base64").toString() : "text/event-stream" });
      for (let at = 0; at < bytes.length; at += 65536) {
        if (!res.write(bytes.subarray(at, at + 65536))) await new Promise((r) => res.once("drain", r));
      }
      res.end();
      Object.assign(entry, { status, ended: "complete", resp_bytes: bytes.length,
                             resp_sha256: crypto.createHash("sha256").update(bytes).digest("hex") });
      return log(entry);
    }
    // "gpt-limited" writes at most 4096 tokens and says so as OpenAI does
    const asked = body.max_completion_tokens ?? body.max_tokens;
    if (api === "chat" && body.model === "gpt-limited" && asked > 4096)
      return json(400, { error: { message: `max_tokens is too large: ${asked}. This model supports at most 4096 completion `
        + `tokens, whereas you provided ${asked}.`, type: "invalid_request_error", param: "max_tokens", code: "invalid_value" } });
    if (api) {
      const r = reply(api, body);
      entry.summary = r.error ? "error " + r.error : r.blocks.map((b) => b.type).join(",") + " " + r.stop;
      if (r.error) return json(r.error, errorBody(api, r.error));
      if (body.stream) {
        entry.status = 200;
        await stream(req, res, api, body, raw, r, entry);
        return log(entry);
      }
      if (r.mode === "HANG") return; // never answers
      return json(200, apis[api].json(body, raw, r, id));
    }
    if ((req.method === "GET" || req.method === "HEAD") && /\/v1\/models(\?|$)/.test(url))
      return json(200, { data: [...["claude-fake-1", "claude-fake-2", "claude-fake-3"].map((m) => ({ id: m, type: "model" })),
                                // a model list that says a limit, as vLLM's does
                                { id: "gpt-small", object: "model", max_model_len: 8192 }],
                         has_more: false });
    if (req.method === "GET" && /\/v1\/echo(\?|$)/.test(url))
      return json(200, { method: req.method, url, headers: req.headers });
    return json(404, { type: "error", error: { type: "not_found_error", message: "no route " + req.method + " " + url } });
  });
});

// n bytes that look a little like an event stream, and a lot like junk
// (a block of at most 1 MB, repeated: 100 MB must come quickly)
function junkBytes(n, seed) {
  const block = junkBlock(Math.min(n, 1 << 20), seed);
  if (block.length === n) return block;
  const out = Buffer.alloc(n);
  for (let at = 0; at < n; at += block.length) block.copy(out, at, 0, Math.min(block.length, n - at));
  return out;
}
function junkBlock(n, seed) {
  const out = Buffer.alloc(n);
  let x = seed * 2654435761 >>> 0 || 1;
  const bits = ["data: ", "{\"type\":", "\n\n", "\"", "null", "[", "]", "}", "\\u00", "\xff\xfe", "event: "];
  for (let i = 0; i < n;) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    if (x % 3 === 0) {
      const b = Buffer.from(bits[x % bits.length], "latin1");
      b.copy(out, i, 0, Math.min(b.length, n - i));
      i += b.length;
    } else {
      out[i++] = x & 0xff;
    }
  }
  return out;
}

server.keepAliveTimeout = 60000;
server.listen(port, "127.0.0.1", () => {
  const p = server.address().port;
  fs.writeFileSync(path.join(logDir, "port"), String(p));
  process.stdout.write("PORT " + p + "\n");
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
