// anthropic.mjs — a fake Anthropic API for tests: the model is the one part
// of the stack that cannot run here. Node's standard library only.
//
//   node tests/fake/anthropic.mjs --log-dir DIR [--port 0] [--delay 0.01]
//
// Listens on 127.0.0.1, prints "PORT n" and writes DIR/port. Every request
// is one JSON line in DIR/requests.jsonl (auth headers masked), its body in
// DIR/bodies/NNNN.json. Any path prefix is accepted before /v1/.
//
// POST …/v1/messages answers from the last user message's text
// (<system-reminder> parts removed):
//   a tool_result block        -> "FAKE: got tool result: <first 200 chars>"
//   FAKE_ERROR:<status>        -> that HTTP status, an Anthropic error body
//   TOOL:bash[cmd] / TOOL:bash -> text + a Bash tool_use (if Bash is offered)
//   TOOL:write:/path           -> a Write tool_use (if Write is offered)
//   SLOW                       -> 20 words, one every 0.5 s
//   anything else              -> "FAKE: hello! you said: <text>"
// streamed as SSE (event: + data: lines, ping after the first block) when
// "stream": true, else one JSON message.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const logDir = opt("--log-dir", ".");
const port = Number(opt("--port", "0"));
const delay = Number(opt("--delay", "0.01")) * 1000;
fs.mkdirSync(path.join(logDir, "bodies"), { recursive: true });
const logFile = fs.openSync(path.join(logDir, "requests.jsonl"), "a");

let n = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const secret = /^(x-api-key|authorization|proxy-authorization|cookie)$/i;

function log(entry) {
  fs.writeSync(logFile, JSON.stringify(entry) + "\n");
}

function lastUserText(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) {
    const m = msgs[i];
    if (m.role !== "user") continue;
    const blocks = typeof m.content === "string" ? [{ type: "text", text: m.content }] : m.content || [];
    const result = blocks.find((b) => b.type === "tool_result");
    if (result) {
      const c = result.content;
      const text = typeof c === "string" ? c : (c || []).map((b) => b.text || "").join("");
      return { toolResult: text };
    }
    const text = blocks.filter((b) => b.type === "text").map((b) => b.text).join("\n");
    return { text: text.replace(/<system-reminder>[\s\S]*?<\/system-reminder>/g, "").trim() };
  }
  return { text: "" };
}

function reply(body) {
  const u = lastUserText(body);
  const tools = (body.tools || []).map((t) => t.name);
  if (u.toolResult !== undefined)
    return { blocks: [{ type: "text", text: "FAKE: got tool result: " + u.toolResult.slice(0, 200) }], stop: "end_turn" };
  const text = u.text;
  const err = text.match(/FAKE_ERROR:(\d{3})/);
  if (err) return { error: Number(err[1]) };
  const bash = text.match(/TOOL:bash(?:\[([^\]]*)\])?/);
  if (bash && tools.includes("Bash"))
    return {
      blocks: [
        { type: "text", text: "FAKE: running a command." },
        { type: "tool_use", id: "toolu_fake_" + String(n).padStart(4, "0"), name: "Bash",
          input: { command: bash[1] || "echo hello", description: "fake command" } },
      ],
      stop: "tool_use",
    };
  const write = text.match(/TOOL:write:(\S+)/);
  if (write && tools.includes("Write"))
    return {
      blocks: [{ type: "tool_use", id: "toolu_fake_" + String(n).padStart(4, "0"), name: "Write",
                 input: { file_path: write[1], content: "hello from fake\n" } }],
      stop: "tool_use",
    };
  if (/\bSLOW\b/.test(text))
    return { blocks: [{ type: "text", text: Array.from({ length: 20 }, (_, i) => "word" + i).join(" ") }],
             stop: "end_turn", slow: true };
  return { blocks: [{ type: "text", text: "FAKE: hello! you said: " + text.replace(/\s+/g, " ").slice(0, 80) }],
           stop: "end_turn" };
}

const errorTypes = { 400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
                     529: "overloaded_error" };

function usage(body, out) {
  return { input_tokens: Math.floor(body.length / 4), output_tokens: out,
           cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
}

async function stream(res, req, body, raw, r, id) {
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
                       "request-id": "req_fake_" + id });
  let closed = false;
  res.on("close", () => {
    if (!res.writableFinished) {
      closed = true;
      log({ event: "client_closed_mid_stream", n: id });
    }
  });
  const send = async (event, data) => {
    if (closed) return;
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    await sleep(delay);
  };
  await send("message_start", { type: "message_start", message: {
    id: "msg_fake_" + id, type: "message", role: "assistant", model: body.model || "fake", content: [],
    stop_reason: null, stop_sequence: null, usage: usage(raw, 1) } });
  let out = 0;
  for (let i = 0; i < r.blocks.length; i++) {
    const b = r.blocks[i];
    if (b.type === "text") {
      await send("content_block_start", { type: "content_block_start", index: i, content_block: { type: "text", text: "" } });
      if (i === 0) await send("ping", { type: "ping" });
      const pieces = r.slow ? b.text.split(/(?<= )/) : b.text.match(/[\s\S]{1,12}/g) || [];
      for (const p of pieces) {
        await send("content_block_delta", { type: "content_block_delta", index: i, delta: { type: "text_delta", text: p } });
        out++;
        if (r.slow) await sleep(500);
      }
    } else {
      await send("content_block_start", { type: "content_block_start", index: i,
        content_block: { type: "tool_use", id: b.id, name: b.name, input: {} } });
      if (i === 0) await send("ping", { type: "ping" });
      for (const p of JSON.stringify(b.input).match(/[\s\S]{1,15}/g)) {
        await send("content_block_delta", { type: "content_block_delta", index: i,
          delta: { type: "input_json_delta", partial_json: p } });
        out++;
      }
    }
    await send("content_block_stop", { type: "content_block_stop", index: i });
  }
  await send("message_delta", { type: "message_delta", delta: { stop_reason: r.stop, stop_sequence: null },
                                usage: { output_tokens: out } });
  await send("message_stop", { type: "message_stop" });
  if (!closed) res.end();
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const raw = Buffer.concat(chunks).toString("utf8");
    const id = ++n;
    const headers = {};
    for (const [k, v] of Object.entries(req.headers))
      headers[k] = secret.test(k) ? String(v).slice(0, 7) + `...(len ${String(v).length})` : v;
    fs.writeFileSync(path.join(logDir, "bodies", String(id).padStart(4, "0") + ".json"), raw);
    let body = {};
    try { body = raw ? JSON.parse(raw) : {}; } catch { body = {}; }
    const url = req.url;
    const entry = { n: id, t: Date.now() / 1000, method: req.method, path: url, headers, body_len: raw.length };
    const json = (status, obj) => {
      const text = JSON.stringify(obj);
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text),
                              "request-id": "req_fake_" + id });
      res.end(req.method === "HEAD" ? undefined : text);
      entry.status = status;
      log(entry);
    };
    if (req.method === "POST" && /\/v1\/messages\/count_tokens(\?|$)/.test(url))
      return json(200, { input_tokens: Math.floor(raw.length / 4) });
    if (req.method === "POST" && /\/v1\/messages(\?|$)/.test(url)) {
      const r = reply(body);
      entry.summary = r.error ? "error " + r.error : r.blocks.map((b) => b.type).join(",") + " " + r.stop;
      if (r.error)
        return json(r.error, { type: "error", error: { type: errorTypes[r.error] || "api_error",
                                                         message: "fake error " + r.error } });
      if (body.stream) {
        entry.status = 200;
        log(entry);
        return stream(res, req, body, raw, r, id);
      }
      return json(200, { id: "msg_fake_" + id, type: "message", role: "assistant", model: body.model || "fake",
                         content: r.blocks, stop_reason: r.stop, stop_sequence: null, usage: usage(raw, 5) });
    }
    if (req.method === "GET" && /\/v1\/models(\?|$)/.test(url))
      return json(200, { data: ["claude-fake-1", "claude-fake-2", "claude-fake-3"].map((m) => ({ id: m, type: "model" })),
                         has_more: false });
    return json(404, { type: "error", error: { type: "not_found_error", message: "no route " + req.method + " " + url } });
  });
});

server.keepAliveTimeout = 60000;
server.listen(port, "127.0.0.1", () => {
  const p = server.address().port;
  fs.writeFileSync(path.join(logDir, "port"), String(p));
  process.stdout.write("PORT " + p + "\n");
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
