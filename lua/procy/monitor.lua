-- procy.monitor: the routes the monitor's page needs beyond the JSON API
-- of procy.serve: a session's terminal for the player (procy.replay) and
-- search across the record (procy.search). Reads go through s.reader; the
-- search index is brought up to date on the process's own connection.

local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
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

local TERMINAL_ARGS = { [""] = {}, ["/seek"] = { t = "number" }, ["/events"] = { after = "index", max = "count" } }

local function terminal(req, s, sid, rest)
  if not TERMINAL_ARGS[rest] then return web.fail(req, 404, "no route " .. req:path()) end
  local q, qerr = web.args(req, TERMINAL_ARGS[rest], s)
  if not q then return web.fail(req, 400, qerr) end
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
    local t = q.t
    if not t then return web.fail(req, 400, "seek needs t (µs since the session's start)") end
    local body, last = replay.seek(ix, ix.start + t, s.reader)
    if not body then return web.fail(req, 500, last) end
    return binary(req, body, { ["X-Procy-Last"] = tostring(last) })
  elseif rest == "/events" then
    local after, max = q.after or 0, q.max or 256 * 1024
    local body, last, more = replay.events(ix, after, math.max(1024, math.min(max, 4 * 1024 * 1024)), s.reader)
    if not body then return web.fail(req, 500, last) end
    return binary(req, body, { ["X-Procy-Last"] = tostring(last), ["X-Procy-More"] = more and "1" or "0" })
  end
  return web.fail(req, 404, "no route " .. req:path())
end

local function search(req, s)
  local q, qerr = web.args(req, { q = "string", kind = { "prompt", "answer", "tool", "call", "term" }, limit = "count",
    raw = "flag", session = "session" }, s)
  if not q then return web.fail(req, 400, qerr) end
  if not q.q or not q.q:find("%S") then return web.fail(req, 400, "search needs q") end
  local o = { kind = q.kind, limit = q.limit or 50, raw = q.raw, session = q.session }
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

-- ---- the writes: corrections, training ---------------------------------------------------

local function body_of(req)
  if not (req:header("content-type") or ""):find("^application/json") then
    return core.fail("EINVAL", "a change is posted as application/json")
  end
  local b = json.decode(req:body() or "")
  if type(b) ~= "table" then return core.fail("EINVAL", "the body is a JSON object") end
  return b
end

local function last_line(r)
  local text = ((r.stderr or "") ~= "" and r.stderr or r.stdout or ""):gsub("%s+$", "")
  return text:match("([^\n]*)$")
end

-- GET /api/training/export?format=F[&session=ID][&category=C,...]: the
-- training file procy train export makes, as a download
local function export(req, s)
  local q, qerr = web.args(req, { format = { "trl-sft", "trl-dpo", "trl-kto", "openai-sft", "openai-dpo", "alpaca" },
    session = "session", category = "list" }, s)
  if not q then return web.fail(req, 400, qerr) end
  for _, c in ipairs(q.category or {}) do
    if c ~= "human" and c ~= "corrected" and c ~= "proxy" then
      return web.fail(req, 400, "parameter 'category': each is human, corrected or proxy, not " .. c)
    end
  end
  local format = q.format or "trl-sft"
  local dir = os.tmpname()
  os.remove(dir)
  local argv = store.self_argv("train", "export", "--format", format, "-o", dir)
  if q.session then argv[#argv + 1] = "--session" argv[#argv + 1] = q.session end
  if q.category then argv[#argv + 1] = "--category" argv[#argv + 1] = table.concat(q.category, ",") end
  local r = assert(proc.run(argv))
  local f = io.open(dir .. "/" .. format .. ".train.jsonl", "rb")
  local data = f and f:read("a")
  if f then f:close() end
  proc.run { "rm", "-rf", dir }
  if r.code ~= 0 or not data then
    return web.fail(req, (r.stderr or ""):find("ENODATA", 1, true) and 404 or 400, last_line(r) or "the export failed")
  end
  req:respond(200, { ["Content-Type"] = "application/x-ndjson", ["Cache-Control"] = "no-store",
    ["Content-Disposition"] = ('attachment; filename="%s.train.jsonl"'):format(format) }, data)
end

local function writes(req, s, path, method)
  local cid = path:match("^/api/corrections/(%d+)$")
  if cid and method == "PATCH" then
    local b, err = body_of(req)
    if not b then return web.fail(req, 400, err) end
    local ok, eerr = store.edit_correction(cid, { corrected = b.corrected, note = type(b.note) == "string" and b.note or nil })
    if not ok then return web.fail(req, eerr:find("^ENOENT") and 404 or 400, eerr) end
    return web.reply(req, 200, { id = tonumber(cid) })
  elseif path == "/api/training/jobs" and method == "POST" then
    local b, err = body_of(req)
    if not b then return web.fail(req, 400, err) end
    local m = b.method or "sft"
    if m ~= "sft" and m ~= "dpo" and m ~= "kto" then return web.fail(req, 400, "method is sft, dpo or kto") end
    local argv = store.self_argv("train", "start", "--method", m)
    if type(b.base_model) == "string" and b.base_model ~= "" then
      argv[#argv + 1] = "--base-model"
      argv[#argv + 1] = b.base_model
    end
    local r = assert(proc.run(argv))
    local job = (r.stdout or ""):match("training job (%x+) started")
    if r.code ~= 0 or not job then return web.fail(req, 400, last_line(r) or "the job did not start") end
    return web.reply(req, 201, { id = job })
  end
  local jid = path:match("^/api/training/jobs/(%x+)/stop$")
  if jid and method == "POST" then
    local train = require "procy.train"
    local job, err = train.job(jid)
    if not job then return web.fail(req, 404, err) end
    local ok, serr = train.stop(job)
    if not ok then return web.fail(req, 409, serr) end
    return web.reply(req, 200, { stopped = job.id })
  end
  return false
end

-- serve(req, s, path) -> true when it answered
function M.serve(req, s, path)
  local method = req:method()
  if method ~= "GET" and method ~= "HEAD" then return writes(req, s, path, method) ~= false end
  if path == "/api/training/export" then
    export(req, s)
    return true
  end
  if path == "/api/runs/compare" then
    local q, qerr = web.args(req, { runs = "list", by = { "adapter", "policy" }, target = "number" }, s)
    if not q then web.fail(req, 400, qerr) return true end
    local c, err = require("procy.evolve").comparison(q.runs or {}, { by = q.by, target = q.target })
    if not c then
      web.reply(req, 200, { series = json.array(), error = err })
    else
      for _, sx in ipairs(c.series) do sx.runs, sx.curve = json.array(sx.runs), json.array(sx.curve) end
      c.series = json.array(c.series)
      web.reply(req, 200, c)
    end
    return true
  end
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
