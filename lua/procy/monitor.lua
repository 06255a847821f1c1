-- procy.monitor: the routes the monitor's page needs beyond the JSON API
-- of procy.serve: a session's terminal for the player (procy.replay) and
-- search across the record (procy.search). Reads go through s.reader.

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

-- serve(req, s, path) -> true when it answered
function M.serve(req, s, path)
  if req:method() ~= "GET" and req:method() ~= "HEAD" then return false end
  local sid, rest = path:match("^/api/sessions/(%x+)/terminal(.*)$")
  if sid then
    terminal(req, s, sid, rest)
    return true
  end
  return false
end

return M
