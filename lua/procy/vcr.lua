-- procy.vcr: the record as a cassette. `procy serve --replay SESSION|RUN`
-- answers API calls from a session's (or an evolve run's) recorded calls
-- instead of an upstream: a request is matched to a recorded one by its
-- normalised form, and the recorded answer is sent back byte for byte,
-- its stream paced as it was (or at once). A recorded Claude Code session
-- replayed this way drives the real Claude Code to the same tool calls,
-- offline: the basis for regression tests of a recipe, an evaluator or
-- the monitor without a model.
--
-- Normalised: the JSON body with what changes from run to run left out —
-- metadata (Claude Code's user and session id), cache_control marks,
-- prompt_cache_key and user (Codex, OpenAI), Claude Code's billing header
-- block, and dates (YYYY-MM-DD, in every text) — keys sorted. Equal
-- forms match; identical requests are answered in their recorded order.

local core = require "procy.core"
local hash = require "procy.hash"
local json = require "procy.json"
local store = require "procy.store"

local M = {}

M.volatile = { metadata = true, prompt_cache_key = true, user = true }

local function clean(v, top)
  if type(v) == "string" then return (v:gsub("%d%d%d%d%-%d%d%-%d%d", "<date>")) end
  if type(v) ~= "table" then return v end
  local out = setmetatable({}, getmetatable(v))
  if v[1] ~= nil or (getmetatable(v) and #v > 0) then
    for i = 1, #v do out[#out + 1] = clean(v[i]) end
    return out
  end
  for k, x in pairs(v) do
    if k ~= "cache_control" and not (top and M.volatile[k]) then out[k] = clean(x) end
  end
  if top and type(out.system) == "table" then -- Claude Code's billing block changes with every build
    local sys = setmetatable({}, getmetatable(out.system))
    for _, b in ipairs(out.system) do
      if not (type(b) == "table" and type(b.text) == "string" and b.text:find("^x%-anthropic%-billing%-header")) then
        sys[#sys + 1] = b
      end
    end
    out.system = sys
  end
  return out
end

-- normal(body) -> the normalised request (a table, or the body itself
-- when it is no JSON), and its text
function M.normal(body)
  local v = json.decode(body or "")
  if type(v) ~= "table" then return body or "", body or "" end
  local n = clean(v, true)
  return n, json.encode(n, { sort = true })
end

local function short(v)
  local s = type(v) == "table" and json.encode(v, { sort = true }) or tostring(v)
  return #s > 80 and (s:sub(1, 77) .. "...") or s
end

-- diff(a, b) -> the first path where two normalised requests differ
-- ("messages[3].content[0].text"), and each side's value there; nil if equal
function M.diff(a, b, path)
  path = path or ""
  if type(a) ~= type(b) then return path ~= "" and path or "(the body)", a, b end
  if type(a) ~= "table" then
    if a ~= b then return path ~= "" and path or "(the body)", a, b end
    return nil
  end
  local arr = a[1] ~= nil or b[1] ~= nil
  if arr then
    for i = 1, math.max(#a, #b) do
      local p, x, y = M.diff(a[i], b[i], path .. "[" .. (i - 1) .. "]")
      if p then return p, x, y end
    end
    return nil
  end
  local keys, seen = {}, {}
  for k in pairs(a) do keys[#keys + 1], seen[k] = k, true end
  for k in pairs(b) do if not seen[k] then keys[#keys + 1] = k end end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(keys) do
    local p, x, y = M.diff(a[k], b[k], path == "" and tostring(k) or (path .. "." .. tostring(k)))
    if p then return p, x, y end
  end
  return nil
end

local C = {}
C.__index = C

local function message_keys(n)
  local out = {}
  for i, m in ipairs(type(n) == "table" and type(n.messages) == "table" and n.messages or {}) do
    out[i] = hash.sha256(json.encode(m, { sort = true })):sub(1, 16)
  end
  return out
end

-- load{session = ID | run = ID, db =} -> a cassette | nil, err, code:
-- the calls recorded in the session (or in every session of the evolve
-- run), replays of replays left out
function M.load(o)
  local h = o.db or store.open()
  local sessions, label = {}, nil
  if o.run then
    local run, err, code = store.run(o.run, h)
    if not run then return nil, err, code end
    label = "run " .. run.id
    sessions[#sessions + 1] = run.session_id
    for _, r in ipairs(h:query("SELECT DISTINCT session_id FROM tries WHERE run_id = ? AND session_id IS NOT NULL", run.id)) do
      sessions[#sessions + 1] = r.session_id
    end
  else
    local row, err, code = store.find_session(o.session, h)
    if not row then return nil, err, code end
    label = "session " .. row.id
    sessions[1] = row.id
  end
  local blobs = require "procy.blobs"
  local c = setmetatable({ label = label, calls = {}, by_key = {}, next = {}, h = h }, C)
  for _, sid in ipairs(sessions) do
    for _, r in ipairs(h:query([[SELECT id, session_id, method, path, status, resp_headers, req_body, resp_body, ttfb_us,
        duration_us, stream, model FROM api_calls WHERE session_id = ? AND status IS NOT NULL AND resp_body IS NOT NULL
        AND coalesce(route, '') <> 'replay' ORDER BY id]], sid)) do
      local body = r.req_body and blobs.get(h, r.req_body) or ""
      local n, text = M.normal(body)
      local call = { id = r.id, session = r.session_id, method = r.method, path = r.path:match("^[^?]*"), status = r.status,
        resp_headers = json.decode(r.resp_headers or "[]") or {}, resp_hash = r.resp_body, ttfb_us = r.ttfb_us or 0,
        duration_us = r.duration_us or 0, stream = r.stream == 1, model = r.model, req_hash = r.req_body,
        msgs = message_keys(n) }
      call.key = call.method .. " " .. call.path .. "\0" .. hash.sha256(text)
      c.calls[#c.calls + 1] = call
      if #c.calls % 200 == 0 then core.yield() end -- a long record: the loop goes on meanwhile
      local list = c.by_key[call.key]
      if not list then list = {} c.by_key[call.key] = list end
      list[#list + 1] = call
    end
  end
  if #c.calls == 0 then return nil, "ENOENT: " .. label .. " has no recorded API calls to replay", "ENOENT" end
  return c
end

-- c:match(method, path, body) -> call | nil, closest, where, recorded,
-- now: the recorded call for a request (identical requests in their
-- recorded order, the last one again once all are used); else the
-- closest recorded call to the same path and what differs first
function C:match(method, path, body)
  path = path:match("^[^?]*")
  local n, text = M.normal(body)
  local key = method .. " " .. path .. "\0" .. hash.sha256(text)
  local list = self.by_key[key]
  if list then
    local i = math.min((self.next[key] or 0) + 1, #list)
    self.next[key] = i
    return list[i]
  end
  local mine = message_keys(n)
  local model = type(n) == "table" and n.model or nil
  local best, score
  for _, c in ipairs(self.calls) do
    if c.path == path and c.method == method then
      local same = 0
      while same < #mine and mine[same + 1] == c.msgs[same + 1] do same = same + 1 end
      local s = (c.model == model and 1e6 or 0) + same * 1000 - math.abs(#c.msgs - #mine)
      if not score or s > score then best, score = c, s end
    end
  end
  if not best then return nil end
  local recorded = M.normal(require("procy.blobs").get(self.h, best.req_hash) or "")
  local where, was, now = M.diff(recorded, n)
  return nil, best, where, was, now
end

-- Never sent again: what the proxy never passes on (the length among
-- them: procy sets it), and an encoding the recorded bytes may not have.
local function skip(name) return name == "content-encoding" or require("procy.http").hop_by_hop(name) end

-- c:answer(req, call, {fast =}): the recorded answer, byte for byte; a
-- stream paced as recorded (its first event at the recorded time to first
-- byte, the rest spread to its duration), unless fast
function C:answer(req, call, o)
  o = o or {}
  local body = require("procy.blobs").get(self.h, call.resp_hash) or ""
  local headers, stream = {}, false
  for _, hd in ipairs(call.resp_headers) do
    local name = tostring(hd[1]):lower()
    if not skip(name) then headers[hd[1]] = hd[2] end
    if name == "content-type" and tostring(hd[2]):find("event-stream", 1, true) then stream = true end
  end
  if not o.fast and call.ttfb_us > 0 then core.sleep(call.ttfb_us / 1e6) end
  if not stream then return req:respond(call.status, headers, body) end
  req:stream(call.status, headers)
  local events, at = {}, 1
  while at <= #body do
    local e = body:find("\n\n", at, true)
    local stop = e and e + 1 or #body
    events[#events + 1] = body:sub(at, stop)
    at = stop + 1
  end
  local gap = (not o.fast and #events > 1) and math.max(0, (call.duration_us - call.ttfb_us) / 1e6 / (#events - 1)) or 0
  for i, ev in ipairs(events) do
    if i > 1 and gap > 0 then core.sleep(gap) end
    if not req:send(ev) then return nil end
  end
  req:finish()
  return true
end

-- c:serve(s, req, {mode = "strict"|"nearest", fast =}): answers a request
-- to procy serve's /v1/ from the cassette and records it (route
-- "replay", marked with the call it replayed). Unmatched under strict: a
-- 404 Anthropic error naming the closest recorded call and the first field
-- that differs.
function C:serve(s, req, o)
  local t0, started = core.now(), store.now_us()
  local rest, tag = require("procy.web").api_path(req:path())
  local body = req:body()
  local call, closest, where, was, now = self:match(req:method(), rest, body)
  local rec = { session = tag, keyed = req:auth() ~= nil, method = req:method(), path = rest .. (req:query() and ("?" .. req:query()) or ""),
    req_headers = req:headers(), req_body = body, started_at = started, upstream = "replay:" .. self.label }
  local facts = { route = "replay", provider = "vcr" }
  if not call and o.mode == "nearest" and closest then call = closest end
  if call then
    facts.replayed = call.id
    rec.status, rec.resp_headers = call.status, call.resp_headers
    rec.resp_body = require("procy.blobs").get(self.h, call.resp_hash) or ""
    rec.ttfb_us = o.fast and 0 or call.ttfb_us
    local ok = self:answer(req, call, o)
    if not ok then rec.aborted, rec.error = true, "ECONNRESET: the client closed the connection" end
  else
    local msg = closest and ("procy replay: no recorded call in %s matches this %s %s; the closest is call %d, which differs "
      .. "first at %s: recorded %s, now %s"):format(self.label, req:method(), rest, closest.id, tostring(where), short(was), short(now))
      or ("procy replay: %s recorded no %s %s"):format(self.label, req:method(), rest)
    local err = json.encode { type = "error", error = { type = "not_found_error", message = msg } }
    rec.status, rec.error, rec.resp_headers, rec.resp_body = 404, msg, { { "content-type", "application/json" } }, err
    req:respond(404, { ["content-type"] = "application/json" }, err)
  end
  rec.duration_us = math.floor((core.now() - t0) * 1e6)
  rec.routed = json.encode(facts, { sort = true })
  s.srv:record(rec)
end

-- start{session = | run =, mode = "strict"|"nearest", fast =, port = 0,
-- session_id =} -> a procy.serve server answering from the cassette (its
-- url for the agent's base URL; serve.stop ends it) | nil, err, code. The
-- replayed calls are recorded into session_id when given.
function M.start(o)
  local c, err, code = M.load { session = o.session, run = o.run }
  if not c then return nil, err, code end
  return require("procy.serve").start { port = o.port or 0, session = o.session_id, lazy = true,
    replay = { cassette = c, mode = o.mode or "strict", fast = o.fast } }
end

return M
