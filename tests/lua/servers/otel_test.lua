-- OpenTelemetry export against an OTLP/HTTP receiver written for the
-- tests (tests/fake/otlp.mjs: it checks every payload against the
-- protobuf JSON mapping and refuses what breaks it). A background agent
-- (the real Claude Code) exported live: session → turn → API call → tool
-- call spans with the GenAI attributes, retried through 503s; `procy otel
-- export` sending the same spans again; content only when asked; the
-- relay unaffected while the collector is down.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local http = require "procy.http"
local otel = require "procy.otel"
local agents = require "lib.agents"

-- ---- the pieces ------------------------------------------------------------------------------
local a = otel.attrs { n = 3, d = 0.5, s = "x", b = true, l = { "end_turn" }, gone = json.null }
T.is(json.encode(a, { sort = true }), '[{"key":"b","value":{"boolValue":true}},{"key":"d","value":{"doubleValue":0.5}},'
  .. '{"key":"l","value":{"arrayValue":{"values":[{"stringValue":"end_turn"}]}}},{"key":"n","value":{"intValue":"3"}},'
  .. '{"key":"s","value":{"stringValue":"x"}}]', "attributes: typed AnyValues, int64 as strings, nulls left out, sorted")
T.is(#otel.trace_id("abc") .. " " .. #otel.span_id("call", 1), "32 16", "ids: 16 and 8 bytes of hex")
T.is(otel.trace_id("abc"), otel.trace_id("abc"), "the same session, the same trace: exports are idempotent")

local receiver = require("lib.otlp").receiver
local function spans(dir)
  local out = {}
  for line in (T.read(dir .. "/spans.jsonl") or ""):gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
  return out
end
local function requests(dir)
  local out = {}
  for line in (T.read(dir .. "/requests.jsonl") or ""):gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
  return out
end
local function attr(sp, key)
  for _, kv in ipairs(sp.attributes or {}) do
    if kv.key == key then
      local v = kv.value
      return v.stringValue or v.intValue or v.doubleValue or v.boolValue or v.arrayValue
    end
  end
end

local w = agents.world("claude")
if not w then
  T.skip("live export of a Claude Code session", "the claude CLI is not installed")
  return T.done()
end
local _ <close> = w.fake.proc
local dir = w.dir
local rp, rurl = receiver(dir .. "/otlp", 2)
local _r <close> = rp
local record, procy = agents.project(w, ("  otel = { endpoint = %q, interval = 0.2 },\n"):format(rurl))

-- ---- live, from a background agent -----------------------------------------------------------
local r = procy("agent", "start", "tele", "--", "--allowedTools", "Bash")
T.is(r.code, 0, "agent start", r.stderr)
r = procy("agent", "send", "tele", "TOOL:bash[echo otel-ok]", "--wait")
T.like(r.stdout, "otel%-ok", "a turn with a Bash call", r.stderr)
procy("agent", "stop", "tele")
local sid = require("procy.db").open(record):query("SELECT session_id FROM agents WHERE name = 'tele'")[1].session_id
local got
for _ = 1, 100 do
  got = spans(dir .. "/otlp")
  local has_session = false
  for _, s in ipairs(got) do if s.span.name:find("^invoke_agent") then has_session = true end end
  if has_session then break end
  core.sleep(0.1)
end
local reqs = requests(dir .. "/otlp")
T.ok(#reqs >= 3 and reqs[1].status == 503 and reqs[2].status == 503 and reqs[3].status == 200,
  "the collector's 503s are retried until it takes the spans", json.encode(reqs))
local bad = 0
for _, q in ipairs(reqs) do if q.status == 400 then bad = bad + 1 end end
T.is(bad, 0, "every payload passed the protobuf JSON mapping's checks")

local by = { session = {}, turn = {}, call = {}, tool = {} }
for _, s in ipairs(got) do
  local sp = s.span
  local op = attr(sp, "gen_ai.operation.name")
  local kind = op == "invoke_agent" and "session" or op == "chat" and "call" or op == "execute_tool" and "tool"
    or sp.name:find("^turn ") and "turn"
  if kind then by[kind][#by[kind] + 1] = sp end
end
local session, turn = by.session[1] or {}, by.turn[1] or {}
T.ok(#by.session == 1 and attr(session, "procy.session.id") == sid and attr(session, "gen_ai.agent.name") == "claude",
  "one session span: invoke_agent claude, the session's id", json.encode(session))
T.ok(turn.parentSpanId == session.spanId and turn.traceId == session.traceId and attr(turn, "procy.turn.seq") == "1",
  "its turn, a child in the same trace")
local main
for _, c in ipairs(by.call) do if attr(c, "procy.call.role") == "main" and c.parentSpanId == turn.spanId then main = main or c end end
T.ok(main and main.kind == 3 and attr(main, "gen_ai.provider.name") == "anthropic" and attr(main, "gen_ai.request.model")
  and tonumber(attr(main, "gen_ai.usage.input_tokens")) > 0 and attr(main, "gen_ai.response.finish_reasons"),
  "the API calls: chat spans (client) under the turn, with provider, model, usage, finish reasons", json.encode(main))
local tool = by.tool[1] or {}
local asked
for _, c in ipairs(by.call) do if c.spanId == tool.parentSpanId then asked = c end end
T.ok(attr(tool, "gen_ai.tool.name") == "Bash" and tool.name == "execute_tool Bash" and asked
  and attr(asked, "gen_ai.response.finish_reasons").values[1].stringValue == "tool_use",
  "the tool call: execute_tool Bash, a child of the call that asked for it", json.encode(tool))
local content = 0
for _, list in pairs(by) do
  for _, sp in ipairs(list) do
    content = content + #(sp.events or {}) + (attr(sp, "gen_ai.input.messages") and 1 or 0)
      + (attr(sp, "gen_ai.output.messages") and 1 or 0)
  end
end
T.is(content, 0, "no prompt or answer leaves without content = true")
T.ok(tonumber(attr(main, "gen_ai.usage.input_tokens")) == tonumber(attr(main, "procy.usage.input_tokens"))
  + tonumber(attr(main, "procy.usage.cache_read_tokens") or 0) + tonumber(attr(main, "procy.usage.cache_creation_tokens") or 0),
  "usage: the conventions' input (all of it) is procy's in + cache read + cache write, both sent", json.encode(main))
T.ok(got[1].resource.attributes[1].key == "service.name", "the resource names the service")

-- ---- the batch export: the same spans, and content when asked -----------------------------
local rp2, rurl2 = receiver(dir .. "/otlp2")
local _r2 <close> = rp2
r = procy("otel", "export", "--session", sid, "--endpoint", rurl2, "--content")
T.like(r.stdout, "^exported %d+ spans? to ", "procy otel export", r.stderr)
local again = spans(dir .. "/otlp2")
-- by id: a batch under way when the agent's supervisor was stopped is sent
-- again (at least once), under the same ids
local live_ids, nlive = {}, 0
for _, s in ipairs(got) do
  if not live_ids[s.span.spanId] then nlive = nlive + 1 end
  live_ids[s.span.spanId] = true
end
local same = 0
for _, s in ipairs(again) do if live_ids[s.span.spanId] then same = same + 1 end end
T.ok(#again >= nlive and same == nlive, "the batch export sends every live span again under the same ids",
  ("%d live (%d sent), %d exported, %d shared"):format(nlive, #got, #again, same))
local input, output, events = nil, nil, 0
for _, s in ipairs(again) do
  events = events + #(s.span.events or {})
  if s.span.name:find("^turn ") then
    input = json.decode(attr(s.span, "gen_ai.input.messages") or "null")
    output = json.decode(attr(s.span, "gen_ai.output.messages") or "null")
  end
end
T.ok(type(input) == "table" and input[1].role == "user" and input[1].parts[1].type == "text"
  and input[1].parts[1].content:find("TOOL:bash[echo otel-ok]", 1, true),
  "--content: the prompt as gen_ai.input.messages (a user message of text parts)", json.encode(input))
T.ok(type(output) == "table" and output[1].role == "assistant" and output[1].parts[1].content:find("FAKE", 1, true),
  "and the answer as gen_ai.output.messages", json.encode(output))
local tool_part
for _, s in ipairs(again) do
  local out = json.decode(attr(s.span, "gen_ai.output.messages") or "null")
  for _, p in ipairs(type(out) == "table" and out[1].parts or {}) do if p.type == "tool_call" then tool_part = p end end
end
T.ok(tool_part and tool_part.name == "Bash" and tool_part.arguments.command == "echo otel-ok",
  "a call's tool use as a tool_call part with its arguments", json.encode(tool_part))
T.is(events, 0, "no deprecated gen_ai.content.* events")
rp2:kill("TERM")

-- ---- the collector down: the relay goes on ------------------------------------------------
T.write(dir .. "/down.lua", ("return { db = %q, otel = { endpoint = 'http://127.0.0.1:9', interval = 0.1 } }"):format(dir .. "/down.db"))
local srv = assert(proc.spawn({ T.bin, "--config", dir .. "/down.lua", "serve", "--port", "0", "--upstream", w.fake.url },
  { stderr = "pipe", stdout = false, env = { PROCY_TOKEN = "otel-test-person-token-0123456789" } }))
local _s <close> = srv
local surl = (srv:lines("stderr")() or ""):match("listening on (http://[%d.:]+)") or "http://127.0.0.1:1"
local ok = 0
for i = 1, 20 do
  local res = http.request { method = "POST", url = surl .. "/v1/messages", headers = { ["content-type"] = "application/json" },
    body = json.encode { model = "claude-sonnet-4-5", max_tokens = 10, messages = { { role = "user", content = "down " .. i } } },
    timeout = 20 }
  if res and res.status == 200 and res.body:find("down " .. i, 1, true) then ok = ok + 1 end
end
T.is(ok, 20, "with the collector down, every call is relayed")
local health
for _ = 1, 50 do
  health = json.decode((http.request { url = surl .. "/health", timeout = 5, headers = { ["x-procy-token"] = "otel-test-person-token-0123456789" } } or {}).body or "") or {}
  if health.record and health.record.recorded == 20 and health.otel and health.otel.failed > 0 then break end
  core.sleep(0.1)
end
T.ok(health.record and health.record.recorded == 20, "and recorded", json.encode(health.record))
T.ok(health.otel and health.otel.failed > 0 and health.otel.sent == 0 and health.otel.queued > 0,
  "/health says the export fails and holds the spans", json.encode(health.otel))
srv:kill("TERM")
T.ok(srv:wait(20), "procy serve stops though the collector never answered")

-- ---- a send under way when the server stops ------------------------------------------------
-- A signal ends every task, the export's too, mid-send: whether the
-- collector took that batch is not known, so it is sent again (at least
-- once, under the same ids); what came after it is sent too.
local rp3, rurl3 = receiver(dir .. "/otlp3", 0, 1)
local _r3 <close> = rp3
T.write(dir .. "/slow.lua", ("return { db = %q, otel = { endpoint = %q, interval = 0.1 } }"):format(dir .. "/slow.db", rurl3))
local srv2 = assert(proc.spawn({ T.bin, "--config", dir .. "/slow.lua", "serve", "--port", "0", "--upstream", w.fake.url },
  { stderr = "pipe", stdout = false }))
local _s2 <close> = srv2
local surl2 = (srv2:lines("stderr")() or ""):match("listening on (http://[%d.:]+)") or "http://127.0.0.1:1"
local res = http.request { method = "POST", url = surl2 .. "/v1/messages", headers = { ["content-type"] = "application/json" },
  body = json.encode { model = "claude-sonnet-4-5", max_tokens = 10, messages = { { role = "user", content = "slow" } } },
  timeout = 20 }
T.is(res and res.status, 200, "a call through a server whose collector answers a second late")
for _ = 1, 100 do -- the collector has the call's span and has not answered yet
  if #spans(dir .. "/otlp3") > 0 then break end
  core.sleep(0.05)
end
srv2:kill("TERM")
T.ok(srv2:wait(20), "the server stops")
local seen, names = {}, {}
for _, s in ipairs(spans(dir .. "/otlp3")) do
  seen[s.span.spanId] = (seen[s.span.spanId] or 0) + 1
  names[s.span.name:match("^%S+")] = true
end
local most = 0
for _, n in pairs(seen) do most = math.max(most, n) end
T.ok(names.chat and names.invoke_agent and most <= 2,
  "the batch under way is sent again once, under the same ids, and the session's span after it",
  json.encode { seen = seen, requests = requests(dir .. "/otlp3") })

-- ---- a session that ends while a send is under way: that send ends first -------------------
-- (no signal: the exporter's stop waits for the cycle under way, so
-- nothing is sent twice)
local rp4, rurl4 = receiver(dir .. "/otlp4", 0, 1)
local _r4 <close> = rp4
T.write(dir .. "/s4.lua", ("return { db = %q, upstream = %q, otel = { endpoint = %q, interval = 0.1 } }")
  :format(dir .. "/s4.db", w.fake.url, rurl4))
T.write(dir .. "/client.lua", [[
local http, json, core = require "procy.http", require "procy.json", require "procy.core"
return function()
  local r = http.request { method = "POST", url = os.getenv("ANTHROPIC_BASE_URL") .. "/v1/messages",
    headers = { ["content-type"] = "application/json" }, timeout = 20,
    body = json.encode { model = "claude-sonnet-4-5", max_tokens = 10, messages = { { role = "user", content = "s4" } } } }
  core.sleep(0.3) -- the span's send is under way when the agent exits
  return r and r.status == 200 and 0 or 1
end
]])
local sess = proc.run({ T.bin, "--config", dir .. "/s4.lua", "--agent", T.bin .. " run " .. dir .. "/client.lua" },
  { pty = { cols = 100, rows = 30 }, timeout = 60 })
T.is(sess.code, 0, "an interactive session whose agent makes a call and exits", sess.stdout)
local seen4, twice4, names4 = {}, 0, {}
for _, s in ipairs(spans(dir .. "/otlp4")) do
  if seen4[s.span.spanId] then twice4 = twice4 + 1 end
  seen4[s.span.spanId] = true
  names4[s.span.name:match("^%S+")] = true
end
T.ok(twice4 == 0 and names4.chat and names4.invoke_agent,
  "the session's end waits for the send under way: its spans once each, the session's after",
  json.encode(requests(dir .. "/otlp4")))
return T.done()
