// otlp.mjs — an OTLP/HTTP receiver for tests: POST /v1/traces with a JSON
// ExportTraceServiceRequest, checked against the protobuf JSON mapping
// (opentelemetry-proto's trace/v1 and common/v1 messages): every field
// known and of its type, ids as lowercase hex of 16 and 8 bytes, times as
// decimal uint64 strings, int64 values as strings, enums as numbers, one
// value per AnyValue. A body that breaks any rule gets 400 naming the
// path. Node's standard library only.
//
//   node tests/fake/otlp.mjs --log-dir DIR [--fail-first N] [--delay S]
//
// Prints "PORT n". Accepted spans go to DIR/spans.jsonl, one per line;
// every request's status to DIR/requests.jsonl. --fail-first N: the first
// N requests are answered 503 with Retry-After: 0. --delay S: accepted
// spans are logged at once, the 200 is sent S seconds later (a send still
// under way when the exporter stops).

import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const dir = opt("--log-dir", ".");
let failFirst = Number(opt("--fail-first", "0"));
const delay = Number(opt("--delay", "0")) * 1000;
fs.mkdirSync(dir, { recursive: true });
const spansLog = fs.openSync(path.join(dir, "spans.jsonl"), "a");
const reqLog = fs.openSync(path.join(dir, "requests.jsonl"), "a");

class Bad extends Error {}
const bad = (where, what) => { throw new Bad(`${where}: ${what}`); };
const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function fields(v, where, allowed) {
  if (!isObj(v)) bad(where, "not an object");
  for (const k of Object.keys(v)) if (!(k in allowed)) bad(`${where}.${k}`, "no such field");
  for (const [k, check] of Object.entries(allowed)) if (v[k] !== undefined) check(v[k], `${where}.${k}`);
}
const str = (v, w) => { if (typeof v !== "string") bad(w, "not a string"); };
const u32 = (v, w) => { if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) bad(w, "not a uint32"); };
const int64 = (v, w) => {
  if (typeof v !== "string" || !/^-?\d+$/.test(v)) bad(w, "an int64 is a decimal string in JSON");
  const n = BigInt(v);
  if (n > 9223372036854775807n || n < -9223372036854775808n) bad(w, "out of int64 range");
};
const fixed64 = (v, w) => {
  if (typeof v !== "string" || !/^\d+$/.test(v)) bad(w, "a fixed64 is a decimal string in JSON");
  if (BigInt(v) > 18446744073709551615n) bad(w, "out of uint64 range");
};
const hexId = (n) => (v, w) => {
  if (typeof v !== "string" || !new RegExp(`^[0-9a-f]{${n * 2}}$`).test(v)) bad(w, `not ${n} bytes of lowercase hex`);
  if (/^0+$/.test(v)) bad(w, "all zero (an invalid id)");
};
const list = (each) => (v, w) => { if (!Array.isArray(v)) bad(w, "not an array"); v.forEach((x, i) => each(x, `${w}[${i}]`)); };
const enumOf = (max) => (v, w) => { if (!Number.isInteger(v) || v < 0 || v > max) bad(w, `not an enum number 0..${max}`); };

function anyValue(v, w) {
  if (!isObj(v)) bad(w, "not an AnyValue");
  const kinds = Object.keys(v);
  if (kinds.length !== 1) bad(w, "an AnyValue holds exactly one value");
  const k = kinds[0], x = v[k];
  if (k === "stringValue") str(x, `${w}.${k}`);
  else if (k === "boolValue") { if (typeof x !== "boolean") bad(`${w}.${k}`, "not a boolean"); }
  else if (k === "intValue") int64(x, `${w}.${k}`);
  else if (k === "doubleValue") { if (typeof x !== "number") bad(`${w}.${k}`, "not a number"); }
  else if (k === "arrayValue") fields(x, `${w}.${k}`, { values: list(anyValue) });
  else if (k === "kvlistValue") fields(x, `${w}.${k}`, { values: list(keyValue) });
  else if (k === "bytesValue") { if (typeof x !== "string" || !/^[A-Za-z0-9+/]*=*$/.test(x)) bad(`${w}.${k}`, "not base64"); }
  else bad(`${w}.${k}`, "no such AnyValue field");
}
function keyValue(v, w) {
  fields(v, w, { key: str, value: anyValue });
  if (v.key === undefined || v.key === "") bad(`${w}.key`, "missing");
}
const attributes = list(keyValue);

function span(v, w) {
  fields(v, w, {
    traceId: hexId(16), spanId: hexId(8), traceState: str, parentSpanId: (x, ww) => { if (x !== "") hexId(8)(x, ww); },
    flags: u32, name: str, kind: enumOf(5), startTimeUnixNano: fixed64, endTimeUnixNano: fixed64,
    attributes, droppedAttributesCount: u32,
    events: list((e, ww) => fields(e, ww, { timeUnixNano: fixed64, name: str, attributes, droppedAttributesCount: u32 })),
    droppedEventsCount: u32,
    links: list((l, ww) => fields(l, ww, { traceId: hexId(16), spanId: hexId(8), traceState: str, attributes,
                                           droppedAttributesCount: u32, flags: u32 })),
    droppedLinksCount: u32,
    status: (s, ww) => fields(s, ww, { message: str, code: enumOf(2) }),
  });
  for (const k of ["traceId", "spanId", "name", "startTimeUnixNano", "endTimeUnixNano"])
    if (v[k] === undefined) bad(`${w}.${k}`, "missing");
  if (BigInt(v.startTimeUnixNano) > BigInt(v.endTimeUnixNano)) bad(w, "ends before it starts");
}

function request(v) {
  fields(v, "request", {
    resourceSpans: list((rs, w) => fields(rs, w, {
      resource: (r, ww) => fields(r, ww, { attributes, droppedAttributesCount: u32 }),
      schemaUrl: str,
      scopeSpans: list((ss, ww) => fields(ss, ww, {
        scope: (s, www) => fields(s, www, { name: str, version: str, attributes, droppedAttributesCount: u32 }),
        schemaUrl: str, spans: list(span),
      })),
    })),
  });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const done = (status, body, extra = {}) => {
      fs.writeSync(reqLog, JSON.stringify({ path: req.url, status, spans: extra.spans || 0, error: extra.error }) + "\n");
      res.writeHead(status, { "content-type": "application/json", ...(status === 503 ? { "retry-after": "0" } : {}) });
      res.end(body);
    };
    if (req.method !== "POST" || req.url !== "/v1/traces") return done(404, "{}");
    if (!/^application\/json/.test(req.headers["content-type"] || "")) return done(415, "{}", { error: "not JSON" });
    if (failFirst > 0) { failFirst--; return done(503, "{}"); }
    let v;
    try { v = JSON.parse(Buffer.concat(chunks).toString("utf8")); } catch (e) { return done(400, "{}", { error: "not JSON: " + e.message }); }
    try { request(v); } catch (e) {
      if (e instanceof Bad) return done(400, JSON.stringify({ error: e.message }), { error: e.message });
      throw e;
    }
    let n = 0;
    for (const rs of v.resourceSpans || [])
      for (const ss of rs.scopeSpans || [])
        for (const s of ss.spans || []) {
          n++;
          fs.writeSync(spansLog, JSON.stringify({ resource: rs.resource, scope: ss.scope, span: s }) + "\n");
        }
    if (delay > 0) setTimeout(() => done(200, "{}", { spans: n }), delay);
    else done(200, "{}", { spans: n });
  });
});
server.listen(0, "127.0.0.1", () => console.log("PORT " + server.address().port));
