-- procy.monitor: the routes the monitor's page needs beyond the JSON API
-- of procy.serve: a session's terminal for the player (procy.replay) and
-- search across the record (procy.search). Reads go through s.reader; the
-- search index is brought up to date on the process's own connection.

local json = require "procy.json"
local replay = require "procy.replay"
local store = require "procy.store"
local web = require "procy.web"

local M = {}

local function binary(req, body, headers)
  headers["Content-Type"] = "application/octet-stream"
  headers["Cache-Control"] = "no-store"
  req:respond(200, headers, body)
end

local function index_of(req, s, sid)
  local row, err = store.find_session(sid, s.reader)
  if not row then return web.fail(req, 404, err) end
  local ix, ierr = replay.index(row, s.reader)
  if not ix then return web.fail(req, 500, ierr) end
  return ix, row
end

local function terminal(req, s, sid, rest)
  local q = web.query(req)
  local ix, row = index_of(req, s, sid)
  if not ix then return end
  if rest == "" then
    local frames, marks = json.array(), json.array()
    for i, f in ipairs(ix.frames) do frames[i] = { t = f.t - ix.start, after = f.after } end
    for _, ev in ipairs(assert(store.events_page(ix.session, 0, "mg", 10000, s.reader))) do
      marks[#marks + 1] = { t = ev.t - ix.start, kind = ev.kind == "m" and "mark" or "gap", label = ev.data }
    end
    return web.reply(req, 200, { session = row.id, cols = ix.cols, rows = ix.rows, start = ix.start,
      duration = ix.last_t - ix.start, bytes = ix.bytes, last = ix.last, status = row.status,
      frames = frames, marks = marks })
  elseif rest == "/seek" then
    local t = tonumber(q.t)
    if not t then return web.fail(req, 400, "seek needs t (µs since the session's start)") end
    local body, last = replay.seek(ix, ix.start + t, s.reader)
    if not body then return web.fail(req, 500, last) end
    return binary(req, body, { ["X-Procy-Last"] = tostring(last) })
  elseif rest == "/events" then
    local after = math.tointeger(tonumber(q.after or "0"))
    local max = math.tointeger(tonumber(q.max or "")) or 256 * 1024
    if not after or after < 0 then return web.fail(req, 400, "after must be an event id") end
    local body, last, more = replay.events(ix, after, math.max(1024, math.min(max, 4 * 1024 * 1024)), s.reader)
    if not body then return web.fail(req, 500, last) end
    return binary(req, body, { ["X-Procy-Last"] = tostring(last), ["X-Procy-More"] = more and "1" or "0" })
  end
  return web.fail(req, 404, "no route " .. req:path())
end

local function search(req, s)
  local q = web.query(req)
  if not q.q or not q.q:find("%S") then return web.fail(req, 400, "search needs q") end
  local o = { kind = q.kind ~= "" and q.kind or nil, limit = tonumber(q.limit or "50"), raw = q.raw == "1" }
  if q.session and q.session ~= "" then
    local row, err = store.find_session(q.session, s.reader)
    if not row then return web.fail(req, 404, err) end
    o.session = row.id
  end
  local hits, err = require("procy.search").search(q.q, o, s.reader)
  if not hits then return web.fail(req, 400, err) end
  web.reply(req, 200, { hits = hits })
end

-- ---- what a call asked that the one before it did not --------------------------------

-- cache_control moves from call to call (the newest turn carries it):
-- it changes no message
local function plain(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if k ~= "cache_control" then out[k] = plain(x) end
  end
  return setmetatable(out, getmetatable(v))
end
local function same(a, b)
  return json.encode(plain(a) or json.null, { sort = true }) == json.encode(plain(b) or json.null, { sort = true })
end

local function request_of(id)
  local row = store.call(id)
  if not row then return nil end
  local r = json.decode(row.request or "")
  return row, type(r) == "table" and type(r.messages) == "table" and r or nil
end

local function tool_names(r)
  local out = {}
  for _, t in ipairs(type(r.tools) == "table" and r.tools or {}) do
    if type(t) == "table" and t.name then out[t.name] = true end
  end
  return out
end

-- the previous call of the same conversation: of the last 20 calls of the
-- session to the same path, the newest whose messages begin this call's
local function call_diff(req, s, id)
  local row, r = request_of(math.tointeger(tonumber(id)))
  if not row then return web.fail(req, 404, "no call " .. id) end
  if not r then return web.reply(req, 200, { previous = json.null }) end
  local cands = assert(s.reader:query([[SELECT id FROM api_calls WHERE session_id IS ? AND path = ? AND id < ?
    ORDER BY id DESC LIMIT 20]], row.session_id, row.path, row.id))
  for _, c in ipairs(cands) do
    local _, p = request_of(c.id)
    local n = 0
    if p then
      while n < #p.messages and n < #r.messages and same(p.messages[n + 1], r.messages[n + 1]) do n = n + 1 end
    end
    if p and n > 0 then
      local added = json.array()
      for i = n + 1, #r.messages do added[#added + 1] = r.messages[i] end
      local now, before = tool_names(r), tool_names(p)
      local tools_added, tools_removed = json.array(), json.array()
      for k in pairs(now) do if not before[k] then tools_added[#tools_added + 1] = k end end
      for k in pairs(before) do if not now[k] then tools_removed[#tools_removed + 1] = k end end
      table.sort(tools_added)
      table.sort(tools_removed)
      return web.reply(req, 200, { previous = c.id, kept = n, dropped = #p.messages - n, added = added,
        system_changed = not same(p.system, r.system), model_changed = p.model ~= r.model,
        tools_added = tools_added, tools_removed = tools_removed })
    end
  end
  web.reply(req, 200, { previous = json.null, added = json.array(r.messages) })
end

-- serve(req, s, path) -> true when it answered
function M.serve(req, s, path)
  if req:method() ~= "GET" and req:method() ~= "HEAD" then return false end
  if path == "/api/search" then
    search(req, s)
    return true
  end
  local cid = path:match("^/api/calls/(%d+)/diff$")
  if cid then
    call_diff(req, s, cid)
    return true
  end
  local sid, rest = path:match("^/api/sessions/(%x+)/terminal(.*)$")
  if sid then
    terminal(req, s, sid, rest)
    return true
  end
  return false
end

return M
