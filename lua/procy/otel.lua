-- procy.otel: the record exported to OpenTelemetry, OTLP/HTTP with JSON
-- bodies — what Langfuse, Arize Phoenix, Jaeger and any collector take in.
-- A trace per session; spans for the session, its turns, each API call
-- (a child of its turn) and each tool call (a child of the call that asked
-- for it), named and attributed as the GenAI semantic conventions say
-- (gen_ai.operation.name, gen_ai.provider.name and gen_ai.system,
-- gen_ai.request.model, gen_ai.response.model, gen_ai.usage.*,
-- gen_ai.response.finish_reasons, gen_ai.tool.*). Prompts and answers go
-- out only with `content = true`, as the conventions now put them:
-- gen_ai.input.messages and gen_ai.output.messages (JSON, messages of
-- typed parts), not the deprecated gen_ai.content.* events. Usage as the
-- conventions count it: gen_ai.usage.input_tokens all input, its cached
-- parts in gen_ai.usage.cache_read.input_tokens and
-- gen_ai.usage.cache_creation.input_tokens; procy's own normalised
-- figures (procy.usage: in, cache read, cache write, out, reasoning) as
-- procy.usage.* beside them, the same numbers every other view shows.
--
-- Ids are digests of the record's own (a session's trace id, a call's span
-- id), so exporting twice, or live then again in a batch, sends the same
-- spans, which a backend deduplicates.
--
-- Live export (`otel = {endpoint = ...}` in procy.lua) queues a call's
-- spans when its record is written and sends them in batches from a task
-- of its own: the relay never waits for it; a collector that is down is
-- retried with backoff, and what does not fit the queue is dropped and
-- counted.

local core = require "procy.core"
local hash = require "procy.hash"
local http = require "procy.http"
local json = require "procy.json"

local M = {}

M.defaults = { endpoint = nil, content = false, headers = {}, batch = 256, interval = 2, max_queue = 20000,
               timeout = 10, retries = 6, service = "procy" }

-- ---- OTLP/JSON pieces ----------------------------------------------------------------------

-- trace and span ids: hex (the OTLP/JSON mapping's form, not base64)
local function trace_id(session) return hash.sha256("trace\0" .. session):sub(1, 32) end
local function span_id(kind, key) return hash.sha256(kind .. "\0" .. tostring(key)):sub(1, 16) end
M.trace_id, M.span_id = trace_id, span_id

-- nanoseconds since the epoch, as the decimal string a uint64 is in JSON
local function nanos(us) return ("%d000"):format(math.floor(tonumber(us) or 0)) end

local function value(v)
  if type(v) == "boolean" then return { boolValue = v } end
  if math.type(v) == "integer" then return { intValue = tostring(v) } end
  if type(v) == "number" then return { doubleValue = v } end
  if type(v) == "table" then
    local vals = json.array()
    for i, x in ipairs(v) do vals[i] = value(x) end
    return { arrayValue = { values = vals } }
  end
  return { stringValue = tostring(v) }
end

-- attrs{k = v, ...} -> [{key, value}] sorted, nils and nulls left out
local function attrs(t)
  local keys = {}
  for k, v in pairs(t) do if v ~= nil and v ~= json.null then keys[#keys + 1] = k end end
  table.sort(keys)
  local out = json.array()
  for i, k in ipairs(keys) do out[i] = { key = k, value = value(t[k]) } end
  return out
end
M.attrs = attrs

local KIND_INTERNAL, KIND_CLIENT = 1, 3
local STATUS_OK, STATUS_ERROR = 1, 2

local function span(o)
  local s = { traceId = o.trace, spanId = o.id, name = o.name, kind = o.kind or KIND_INTERNAL,
    startTimeUnixNano = nanos(o.start), endTimeUnixNano = nanos(math.max(o.stop or o.start, o.start)),
    attributes = attrs(o.attributes or {}), status = { code = o.error and STATUS_ERROR or STATUS_OK } }
  if o.parent then s.parentSpanId = o.parent end
  if o.error then s.status.message = tostring(o.error):sub(1, 1000) end
  if o.events and #o.events > 0 then s.events = o.events end
  return s
end

-- ---- spans from the record -----------------------------------------------------------------

local providers = { anthropic = "anthropic", ["openai-chat"] = "openai", ["openai-responses"] = "openai",
                    gemini = "gcp.gemini" }

-- usage_attrs(into, row): a call's or a turn's usage, the conventions' way
-- and procy's (see the top).
local function usage_attrs(into, r)
  local function n(v) return math.type(v) and v or 0 end
  if r.input_tokens or r.cache_read_tokens or r.cache_creation_tokens then
    into["gen_ai.usage.input_tokens"] = n(r.input_tokens) + n(r.cache_read_tokens) + n(r.cache_creation_tokens)
  end
  into["gen_ai.usage.output_tokens"] = r.output_tokens
  into["gen_ai.usage.cache_read.input_tokens"] = r.cache_read_tokens
  into["gen_ai.usage.cache_creation.input_tokens"] = r.cache_creation_tokens
  into["procy.usage.input_tokens"] = r.input_tokens
  into["procy.usage.cache_read_tokens"] = r.cache_read_tokens
  into["procy.usage.cache_creation_tokens"] = r.cache_creation_tokens
  into["procy.usage.output_tokens"] = r.output_tokens
  into["procy.usage.reasoning_tokens"] = r.reasoning_tokens
  return into
end

-- Messages as gen_ai.input.messages / gen_ai.output.messages want them:
-- {role, parts = {{type = "text", content}, {type = "tool_call", id, name,
-- arguments}, {type = "reasoning", content}}, finish_reason}.
local function text_message(role, text, finish)
  return json.encode(json.array { { role = role, parts = json.array { { type = "text", content = text } },
    finish_reason = finish } })
end

local function output_message(content, finish)
  local parts = json.array()
  for _, b in ipairs(type(content) == "table" and content or {}) do
    if type(b) == "table" then
      if b.type == "text" and type(b.text) == "string" then
        parts[#parts + 1] = { type = "text", content = b.text }
      elseif b.type == "thinking" and type(b.thinking) == "string" then
        parts[#parts + 1] = { type = "reasoning", content = b.thinking }
      elseif b.type == "tool_use" then
        parts[#parts + 1] = { type = "tool_call", id = b.id, name = b.name, arguments = b.input }
      end
    end
  end
  if #parts == 0 then return nil end
  return json.encode(json.array { { role = "assistant", parts = parts, finish_reason = finish } })
end

-- session_span(row, [now]), turn_span(session, row, {content =}),
-- call_span(row, {content =, h =}), tool_span(session, row): one span
-- each, from the record's rows (now: the end of a session still open)
function M.session_span(row, now)
  local argv = type(row.argv) == "string" and (json.decode(row.argv) or {}) or row.argv or {}
  return span { trace = trace_id(row.id), id = span_id("session", row.id), name = "invoke_agent " .. tostring(row.profile or argv[1] or "agent"),
    start = row.started_at, stop = row.ended_at or now or row.started_at,
    error = row.status == "error" and "the session ended in error" or nil,
    attributes = { ["gen_ai.operation.name"] = "invoke_agent", ["gen_ai.agent.name"] = row.profile or argv[1],
      ["procy.session.id"] = row.id, ["procy.session.mode"] = row.mode, ["procy.session.status"] = row.status,
      ["procy.session.cwd"] = row.cwd } }
end

function M.turn_span(session, t, o)
  local a = usage_attrs({ ["procy.turn.seq"] = t.seq, ["procy.turn.source"] = t.source, ["procy.turn.status"] = t.status,
    ["procy.cost_usd"] = t.cost }, t)
  if o and o.content then -- the prompt exactly as the agent got it, and its answer
    a["gen_ai.input.messages"] = t.prompt and text_message("user", t.prompt) or nil
    a["gen_ai.output.messages"] = t.response and text_message("assistant", t.response,
      t.status == "done" and "stop" or t.status) or nil
  end
  return span { trace = trace_id(session), id = span_id("turn", t.id), parent = span_id("session", session),
    name = "turn " .. t.seq, start = t.started_at, stop = t.ended_at or t.started_at,
    error = t.status == "error" and (t.error or "the turn failed") or nil, attributes = a }
end

function M.call_span(c, o)
  o = o or {}
  local session = c.session_id or ("tag:" .. tostring(c.tag))
  local provider = c.provider or providers[c.api] or "anthropic"
  local a = usage_attrs({ ["gen_ai.operation.name"] = "chat", ["gen_ai.provider.name"] = provider,
    ["gen_ai.request.model"] = c.model, ["gen_ai.response.model"] = c.routed_model or c.model,
    ["gen_ai.response.finish_reasons"] = c.stop_reason and { c.stop_reason } or nil,
    ["http.response.status_code"] = c.status, ["procy.call.id"] = c.id, ["procy.call.role"] = c.role,
    ["procy.cost_usd"] = c.cost, ["procy.ttfb_ms"] = c.ttfb_us and c.ttfb_us / 1000 or nil,
    ["procy.route"] = c.route, ["url.path"] = c.path }, c)
  if o.content then -- the answer; the prompt too for a call outside any turn (a turn's span has it)
    local req = not c.turn_id and o.h and c.req_body and require("procy.blobs").get(o.h, c.req_body)
    local v = req and json.decode(req)
    if type(v) == "table" then
      local prompt = require("procy.record.request").prompt(c.api or "anthropic", v)
      if prompt and prompt ~= "" then a["gen_ai.input.messages"] = text_message("user", prompt) end
    end
    a["gen_ai.output.messages"] = output_message(json.decode(c.content or "[]"), c.stop_reason)
  end
  local err = c.error or ((tonumber(c.status) or 0) >= 400 and ("HTTP " .. c.status)) or nil
  return span { trace = trace_id(session), id = span_id("call", c.id),
    parent = c.turn_id and span_id("turn", c.turn_id) or span_id("session", session), kind = KIND_CLIENT,
    name = "chat " .. tostring(c.model or "?"), start = c.started_at, stop = (c.started_at or 0) + (c.duration_us or 0),
    error = err, attributes = a }
end

function M.tool_span(session, t)
  local start = t.started_at or t.ended_at or 0
  return span { trace = trace_id(session), id = span_id("tool", t.id),
    parent = t.api_call_id and span_id("call", t.api_call_id) or (t.turn_id and span_id("turn", t.turn_id)) or span_id("session", session),
    name = "execute_tool " .. tostring(t.name), start = start, stop = t.ended_at or start,
    error = t.is_error == 1 and "the tool reported an error" or nil,
    attributes = { ["gen_ai.operation.name"] = "execute_tool", ["gen_ai.tool.name"] = t.name,
      ["gen_ai.tool.call.id"] = t.tool_use_id, ["gen_ai.tool.type"] = "function" } }
end

-- payload(spans) -> the ExportTraceServiceRequest, as JSON text
function M.payload(spans, o)
  o = o or {}
  return json.encode { resourceSpans = { { resource = { attributes = attrs { ["service.name"] = o.service or "procy",
      ["service.version"] = core.version, ["telemetry.sdk.name"] = "procy" } },
    scopeSpans = { { scope = { name = "procy", version = core.version }, spans = json.array(spans) } } } } }
end

local CALL_COLUMNS = [[id, session_id, tag, turn_id, api, method, path, status, model, routed_model, started_at, ttfb_us,
  duration_us, stop_reason, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, reasoning_tokens, cost,
  error, role, route,
  provider, content, req_body]]

-- spans(h, {session =, since = µs, content =}) -> every span of the
-- sessions (one, or those started since), in the record's order
function M.spans(h, o)
  o = o or {}
  local sessions = o.session and h:query("SELECT * FROM sessions WHERE id = ?", o.session)
    or h:query("SELECT * FROM sessions WHERE started_at >= ? ORDER BY started_at", o.since or 0)
  local out = {}
  for _, s in ipairs(sessions) do
    out[#out + 1] = M.session_span(s)
    for _, t in ipairs(h:query("SELECT * FROM turns WHERE session_id = ? ORDER BY seq", s.id)) do
      out[#out + 1] = M.turn_span(s.id, t, o)
    end
    for _, c in ipairs(h:query("SELECT " .. CALL_COLUMNS .. " FROM api_calls WHERE session_id = ? ORDER BY id", s.id)) do
      out[#out + 1] = M.call_span(c, { content = o.content, h = h })
    end
    for _, t in ipairs(h:query("SELECT * FROM tool_calls WHERE session_id = ? ORDER BY id", s.id)) do out[#out + 1] = M.tool_span(s.id, t) end
    core.yield()
  end
  return out
end

-- ---- sending -------------------------------------------------------------------------------

-- settings(cfg) -> the `otel` setting over the defaults, the endpoint and
-- headers from OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS
-- when it names none (the standard variables: keys stay out of files)
function M.settings(cfg)
  local o = {}
  for k, v in pairs(M.defaults) do o[k] = v end
  for k, v in pairs((cfg or require("procy.config").get()).otel or {}) do o[k] = v end
  o.endpoint = o.endpoint or os.getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
  local h = {}
  for k, v in pairs(o.headers or {}) do h[k] = v end
  for pair in (os.getenv("OTEL_EXPORTER_OTLP_HEADERS") or ""):gmatch("[^,]+") do
    local k, v = pair:match("^%s*([^=]+)=(.-)%s*$")
    if k then h[k] = v:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end) end
  end
  o.headers = h
  return o
end

local function traces_url(endpoint)
  endpoint = endpoint:gsub("/+$", "")
  if endpoint:find("/v1/traces$") then return endpoint end
  return endpoint .. "/v1/traces"
end

local RETRY = { [429] = true, [502] = true, [503] = true, [504] = true }

-- send(o, spans, [on_fail]) -> true | nil, err, code: one request,
-- retried with backoff (0.5 s, doubling, Retry-After wins) on 429, 502-504
-- and connection failures, up to o.retries times; on_fail(why) hears of
-- each attempt that failed
function M.send(o, spans, on_fail)
  local body = M.payload(spans, o)
  local headers = { ["content-type"] = "application/json" }
  for k, v in pairs(o.headers or {}) do headers[k] = v end
  local wait, last = 0.5, nil
  for attempt = 0, o.retries or 6 do
    if attempt > 0 then core.sleep(wait) wait = math.min(wait * 2, 30) end
    local r, err, code = http.request { method = "POST", url = traces_url(o.endpoint), headers = headers, body = body,
      timeout = o.timeout or 10, connect_timeout = 5 }
    if r and r.status < 300 then return true end
    if r and not RETRY[r.status] then
      return nil, ("EHTTP: the collector answered %d: %s"):format(r.status, (r.body or ""):sub(1, 200)), "EHTTP"
    end
    local after = r and tonumber(r.headers["retry-after"])
    if after then wait = math.min(after, 30) end
    last = r and ("HTTP " .. r.status) or tostring(err)
    if on_fail then on_fail(last) end
  end
  return nil, "ETIMEDOUT: the collector did not take the spans: " .. tostring(last), "ETIMEDOUT"
end

-- export(h, {session =, since =, content =, endpoint =, ...}) -> spans
-- sent | nil, err, code: the batch export (`procy otel export`)
function M.export(h, o)
  local all = M.spans(h, o)
  local n = o.batch or M.defaults.batch
  for i = 1, #all, n do
    local ok, err, code = M.send(o, table.move(all, i, math.min(i + n - 1, #all), 1, {}))
    if not ok then return nil, err, code end
  end
  return #all
end

-- ---- live export ---------------------------------------------------------------------------

local Live = {}
Live.__index = Live

-- live(s, o) -> an exporter for procy.serve's server s: each recorded
-- call's spans (and its finished tool calls and turns) queued, sent in
-- batches every o.interval seconds or o.batch spans; x:stop() sends the
-- rest (and the session's span), waiting at most 3 s
function M.live(s, o)
  local x = setmetatable({ s = s, o = o, queue = {}, sent = 0, dropped = 0, failed = 0, batches = 0, calls = {},
    sessions = {}, seen = {} }, Live)
  -- only the id now: the spans are built at the next cycle, once the
  -- call's turn has been linked
  x.off = require("procy.serve").on_call(function(c)
    if c.id then
      x.calls[#x.calls + 1] = c.id
      if #x.calls >= o.batch and x.wake then core.complete(x.wake) end
    end
  end)
  x.task = core.spawn(function() x:run() end)
  x.task:label("otel export")
  return x
end

function Live:add(sp)
  if #self.queue >= self.o.max_queue then -- a collector down for long: what does not fit is given up, and counted
    self.dropped = self.dropped + 1
    return
  end
  self.queue[#self.queue + 1] = sp
  if #self.queue >= self.o.batch and self.wake then core.complete(self.wake) end
end

-- Spans for what the record gained: the calls told since the last cycle,
-- the tool calls they answered, and the turns of their sessions that have
-- ended (each once). final: the tool calls never answered too.
function Live:collect(final)
  local r = self.s.reader
  local ids = self.calls
  self.calls = {}
  local h = self.o.content and require("procy.store").open() or nil
  for _, id in ipairs(ids) do
    local c = (r:query("SELECT " .. CALL_COLUMNS .. " FROM api_calls WHERE id = ?", id) or {})[1]
    if c then
      self:add(M.call_span(c, { content = self.o.content, h = h }))
      if c.session_id then
        self.sessions[c.session_id] = true
        for _, t in ipairs(r:query("SELECT * FROM tool_calls WHERE result_call_id = ?", id) or {}) do
          self.seen["tool" .. t.id] = true
          self:add(M.tool_span(c.session_id, t))
        end
      end
    end
  end
  for session in pairs(self.sessions) do
    for _, t in ipairs(r:query("SELECT * FROM turns WHERE session_id = ? AND ended_at IS NOT NULL", session) or {}) do
      if not self.seen["turn" .. t.id] then
        self.seen["turn" .. t.id] = true
        self:add(M.turn_span(session, t, self.o))
      end
    end
    if final then
      for _, t in ipairs(r:query("SELECT * FROM tool_calls WHERE session_id = ?", session) or {}) do
        if not self.seen["tool" .. t.id] then self:add(M.tool_span(session, t)) end
      end
    end
  end
end

function Live:flush()
  while #self.queue > 0 do
    local n = math.min(#self.queue, self.o.batch)
    local batch = table.move(self.queue, 1, n, 1, {})
    local ok = M.send(self.o, batch, function(why)
      self.failed, self.last_error = self.failed + 1, why
    end)
    if ok then
      self.sent, self.batches = self.sent + n, self.batches + 1
      self.queue = table.move(self.queue, n + 1, #self.queue, 1, {}) -- with what came meanwhile
    else
      return false
    end
  end
  return true
end

function Live:run()
  while not self.stopping do
    self.wake = core.op()
    core.await(self.wake, self.o.interval)
    self.wake = nil
    if self.stopping then return end
    self:collect(false)
    self:flush()
  end
end

-- stats() -> {sent, queued, dropped, failed (attempts), batches, error}
function Live:stats()
  return { sent = self.sent, queued = #self.queue + #self.calls, dropped = self.dropped, failed = self.failed,
           batches = self.batches, error = self.last_error }
end

-- stop(): the session's span and what is queued sent (3 s at most), then
-- the exporter ends; what could not be sent is counted as dropped. A
-- cycle under way ends first: cancelled mid-send, its batch (which the
-- collector may have taken) would be sent again.
function Live:stop()
  self.off()
  self.stopping = true
  if self.wake then core.complete(self.wake) end
  local o = self.o
  local saved = o.retries
  o.retries = 2
  local sender = core.spawn(function()
    core.await(self.task)
    self:collect(true)
    if self.s.session then self.sessions[self.s.session] = true end
    for id in pairs(self.sessions) do -- sessions end with the server: their spans are whole now
      local row = (self.s.reader:query("SELECT * FROM sessions WHERE id = ?", id) or {})[1]
      if row then self:add(M.session_span(row, require("procy.store").now_us())) end
    end
    self:flush()
  end)
  core.await(sender, 3)
  core.cancel(sender)
  core.cancel(self.task)
  o.retries = saved
  self.dropped = self.dropped + #self.queue
  self.queue = {}
end

return M
