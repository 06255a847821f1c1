-- procy.serve: procy's HTTP server. Requests under /v1/ (or /s/ID/v1/)
-- are proxied in C and recorded by procy.record.capture; everything else is the
-- JSON API below, each request handled in its own task:
--
--   GET /health                      {ok, version, uptime_s, db, calls (the newest id), upstream, record, otel}:
--                                    record says what the proxy relayed and the record kept (srv:stats()),
--                                    otel what the live export sent, holds and dropped
--   GET /api/sessions?limit=N        the newest sessions
--   GET /api/calls?session=&limit=&before=   calls, newest first; `next` is
--                                    the `before` of the following page
--   GET /api/calls/ID                one call: headers, bodies, content, tools
--   GET /api/usage?since=&until=&session=    tokens and cost (procy.usage)
--   GET /api/events                  server-sent events: `call` per new call, `change` when
--                                    the record changed (any process's writes)
--   GET /api/corrections?session=&run=&kind=&limit=   corrections, newest first
--   GET /api/corrections/ID          one, with the messages the proxy model was given
--   POST /api/corrections            {session, turn, corrected, note}: a correction (JSON body)
--   DELETE /api/corrections/ID       one removed
--   GET /api/training/jobs           training jobs, newest first; /ID: one, with its losses;
--                                    /ID/log?after=LINE: its log lines
--   GET /api/training/adapters       the adapters deployed
--   GET /api/runs?session=           evolve runs; /api/runs/ID: one, with its tries
--
-- `procy serve` runs it alone; an interactive session runs one on a free
-- port and points the agent at it.

local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"
local store = require "procy.store"
local config = require "procy.config"
local web = require "procy.web"
local fs = require "procy.fs"

local M = {}

local function env(name)
  local v = os.getenv(name)
  return v ~= "" and v or nil
end

local function strip(url) return (url:gsub("/+$", "")) end

-- upstreams{upstream =, openai =, google =, agent_env = true} -> anthropic,
-- openai, google.
-- Order: the flag, PROCY_UPSTREAM, `upstream` from a config file, then for
-- a wrapped agent the base URL it would have used (ANTHROPIC_BASE_URL,
-- OPENAI_BASE_URL), then the default.
function M.upstreams(o)
  local cfg, origin = config.get(), config.origin or {}
  local function pick(flag, var, setting, agent_var)
    return flag or env(var) or (origin[setting] ~= "default" and cfg[setting])
      or (o.agent_env and agent_var and env(agent_var)) or cfg[setting]
  end
  local a = pick(o.upstream, "PROCY_UPSTREAM", "upstream", "ANTHROPIC_BASE_URL")
  local oa = pick(o.openai, "PROCY_OPENAI_UPSTREAM", "openai_upstream", "OPENAI_BASE_URL")
  local g = pick(o.google, "PROCY_GOOGLE_UPSTREAM", "google_upstream", "GOOGLE_GEMINI_BASE_URL")
  return strip(a), (strip(oa):gsub("/v1$", "")), strip(g)
end

-- ---- the JSON API ---------------------------------------------------------------

local reply, fail, query_of = web.reply, web.fail, web.query
M.reply, M.fail, M.query = reply, fail, query_of

local args_of = web.args

local routes = {}

-- The routes read the record with s.reader (store.reader): on its own
-- thread, so a long read holds its request's task, not the loop the relay
-- and the proxy run on.
-- none(req) -> true | nil: a route that takes no parameter answered 400
-- for one it was given (web.args: as strict as the others)
local function none(req, s)
  local a, err = args_of(req, {}, s)
  if not a then fail(req, 400, err) end
  return a ~= nil
end

routes["/health"] = function(req, s)
  if not none(req, s) then return end
  -- anyone may ask whether it runs; what it holds is for its person
  if req:auth() ~= "token" and req:auth() ~= "cookie" and req:auth() ~= "link" then
    return reply(req, 200, { ok = true, version = core.version })
  end
  -- the newest call's id, not a count: counting a large table takes long
  local rows, err = s.reader:query("SELECT max(id) AS n FROM api_calls")
  local ok = rows ~= nil
  local st = s.srv:stats()
  reply(req, 200, { ok = ok and not st.failing, version = core.version,
    uptime_s = core.now() - s.started, db = ok and "ok" or tostring(err), db_path = store.path(),
    calls = ok and (rows[1].n or 0) or nil, upstream = s.upstream, openai_upstream = s.openai,
    google_upstream = s.google,
    record = { relayed = st.relayed, recorded = st.recorded, marked = st.marked, lost = st.lost,
      waited = st.waited, waiting = st.held, queued = st.queued, queued_bytes = st.queued_bytes,
      failures = st.failures, failing = st.failing or json.null },
    otel = s.otel and s.otel:stats() or nil })
end

routes["/api/sessions"] = function(req, s)
  local a, err = args_of(req, { limit = "count" }, s)
  if not a then return fail(req, 400, err) end
  local rows, rerr = store.sessions(math.min(a.limit or 50, 1000), s.reader)
  if not rows then return fail(req, 500, rerr) end
  local ids = {}
  for i, r in ipairs(rows) do ids[i] = r.id end
  local stats = store.session_stats(ids, s.reader)
  for _, r in ipairs(rows) do r.argv, r.stats = json.array(r.argv), stats[r.id] end
  reply(req, 200, { sessions = json.array(rows) })
end

routes["/api/calls"] = function(req, s)
  local a, aerr = args_of(req, { limit = "count", before = "count", after = "index", session = "session" }, s)
  if not a then return fail(req, 400, aerr) end
  local rows, err = store.calls { session = a.session, limit = a.limit, before = a.before, after = a.after, db = s.reader }
  if not rows then return fail(req, 500, err) end
  local full = #rows == math.max(1, math.min(a.limit or 50, 1000))
  reply(req, 200, { calls = json.array(rows), next = full and rows[#rows].id or json.null })
end

routes["/api/usage"] = function(req, s)
  local a, aerr = args_of(req, { since = "time", ["until"] = "time", session = "session" }, s)
  if not a then return fail(req, 400, aerr) end
  local r, err = require("procy.usage").report { since = a.since, until_ = a["until"], session = a.session, db = s.reader }
  if not r then return fail(req, 500, err) end
  r.models, r.sessions = json.array(r.models), json.array(r.sessions)
  reply(req, 200, r)
end

local KINDS = { "corrected", "edited", "accepted", "rejected" }

routes["/api/corrections"] = function(req, s)
  local a, aerr = args_of(req, { limit = "count", session = "session", kind = KINDS, run = "string" }, s)
  if not a then return fail(req, 400, aerr) end
  local rows, err = store.corrections { session = a.session, run = a.run, kinds = a.kind and { a.kind } or KINDS,
    limit = math.min(a.limit or 100, 1000), db = s.reader }
  if not rows then return fail(req, 500, err) end
  for _, r in ipairs(rows) do r.context = nil end -- in the detail: a list stays small
  reply(req, 200, { corrections = json.array(rows) })
end

routes["/api/runs"] = function(req, s)
  local a, aerr = args_of(req, { session = "session" }, s)
  if not a then return fail(req, 400, aerr) end
  local rows, err = store.runs { session = a.session, limit = 200, db = s.reader }
  if not rows then return fail(req, 500, err) end
  for _, r in ipairs(rows) do r.objective = r.objective and json.decode(r.objective) or json.null end
  reply(req, 200, { runs = json.array(rows) })
end

routes["/api/training/jobs"] = function(req, s)
  local a, aerr = args_of(req, {}, s)
  if not a then return fail(req, 400, aerr) end
  local train = require "procy.train"
  local rows, err = train.jobs(100, s.reader)
  if not rows then return fail(req, 500, err) end
  for _, r in ipairs(rows) do r.argv = json.array(r.argv or {}) end
  reply(req, 200, { jobs = json.array(rows) })
end

routes["/api/training/adapters"] = function(req, s)
  if not none(req, s) then return end
  local rows, err = s.reader:query("SELECT * FROM adapters ORDER BY deployed_at DESC")
  if not rows then return fail(req, 500, err) end
  reply(req, 200, { adapters = json.array(rows) })
end

-- the routes with an id in the path, and the JSON API's writes
local function api_item(req, s, path)
  local method = req:method()
  local cid = path:match("^/api/corrections/(%d+)$")
  if cid and method == "GET" then
    local row, err = store.correction(cid, s.reader)
    if not row then return fail(req, 404, err) end
    row.context = row.context and json.array(row.context) or json.null
    return reply(req, 200, row)
  elseif cid and method == "DELETE" then
    local ok, err = store.uncorrect(cid)
    if not ok then return fail(req, 404, err) end
    return reply(req, 200, { removed = tonumber(cid) })
  elseif path == "/api/corrections" and method == "POST" then
    -- JSON only: a form another site could post is refused (and the guard
    -- has already refused a foreign Origin)
    local ctype = req:header("content-type") or ""
    if not ctype:find("^application/json") then return fail(req, 415, "a correction is posted as application/json") end
    local b = json.decode(req:body())
    if type(b) ~= "table" or type(b.session) ~= "string" or type(b.corrected) ~= "string" then
      return fail(req, 400, "needs {session, corrected, [turn], [note]}")
    end
    local row, ferr = store.find_session(b.session)
    if not row then return fail(req, 404, ferr) end
    local id, err = require("procy.corrections").add { session = row.id, turn = math.tointeger(b.turn),
      corrected = b.corrected, note = type(b.note) == "string" and b.note or nil }
    if not id then return fail(req, err:find("^ENOENT") and 404 or 400, err) end
    return reply(req, 201, { id = id })
  end
  local rid = path:match("^/api/runs/(%x+)$")
  if rid and method == "GET" then
    if not none(req, s) then return end
    local run, err = store.run(rid, s.reader)
    if not run then return fail(req, 404, err) end
    local tries = store.tries(run.id, s.reader)
    for _, t in ipairs(tries) do t.messages = nil end
    run.tries = json.array(tries)
    return reply(req, 200, run)
  end
  local jid, rest = path:match("^/api/training/jobs/(%x+)(.*)$")
  if jid and method == "GET" then
    local train = require "procy.train"
    local job, err = train.job(jid, s.reader)
    if not job then return fail(req, 404, err) end
    if rest == "/log" then
      local a, aerr = args_of(req, { after = "index" }, s)
      if not a then return fail(req, 400, aerr) end
      local lines = train.log(job.id, a.after, s.reader)
      return reply(req, 200, { lines = json.array(lines), state = job.state })
    elseif rest == "" then
      if not none(req, s) then return end
      job.argv, job.losses = json.array(job.argv or {}), json.array(train.losses(job.id, s.reader))
      return reply(req, 200, job)
    end
  end
  return false
end

-- Each new call goes to every listener as it is recorded. A client that
-- falls 1 MB behind is dropped by req:send; a keep-alive comment every
-- 15 s finds clients that left.
-- Whether the record changed, from any process writing to it: SQLite's
-- data_version moves with every commit of another connection, and costs
-- nothing to read (no table is scanned, however large the record).
local CHANGES = "PRAGMA data_version"

routes["/api/events"] = function(req, s)
  req:stream(200, { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-store" })
  req:send(": procy " .. core.version .. "\n\n")
  local gone = false
  local stop <close> = setmetatable({ off = M.on_call(function(call)
    if not gone and not req:send("event: call\ndata: " .. web.json(call) .. "\n\n") then gone = true end
  end) }, { __close = function(t) t.off() end })
  -- `change` when the record changed (the id says to what, so a client
  -- that reconnects with Last-Event-ID hears of what it missed, once); a
  -- comment every 15 s finds clients that left
  local last, quiet = req:header("last-event-id"), 0
  while not gone and not req:gone() do
    local rows = s.reader:query(CHANGES)
    local v = rows and rows[1] and rows[1].data_version and tostring(rows[1].data_version) or last
    if v and v ~= last then
      if not req:send("id: " .. v .. "\nevent: change\ndata: {}\n\n") then gone = true end
      last, quiet = v, 0
    elseif quiet >= 15 then
      if not req:send(": keep-alive\n\n") then gone = true end
      quiet = 0
    end
    core.sleep(0.5)
    quiet = quiet + 0.5
  end
  req:finish()
end

-- Hooks: `procy hook` posts an agent's hook event (Claude Code's hooks,
-- Codex's notify) to /hooks/SESSION/KEY; the agent that handed out that
-- URL (procy.agent) takes it. KEY is a secret of the session's.
M.hooks = {}

local function hook(req, key)
  local fn = M.hooks[key]
  if not fn then return fail(req, 404, "no agent listens for these hooks") end
  local ev = json.decode(req:body())
  if type(ev) ~= "table" then return fail(req, 400, "a hook event is a JSON object") end
  local ok, err = pcall(fn, ev)
  if not ok then core.log("error", "hook: " .. tostring(err)) end
  reply(req, 200, {})
end

-- Routes others add: {pattern, fn(req, captures...)}, tried in order
-- before the API's own (procy.cli.background's control endpoint).
M.extra_routes = {}

-- route(pattern, fn): requests whose path matches pattern (any method) go
-- to fn(req, captures...); returns a function that removes the route
function M.route(pattern, fn)
  local r = { pattern, fn }
  M.extra_routes[#M.extra_routes + 1] = r
  return function()
    for i, x in ipairs(M.extra_routes) do
      if x == r then table.remove(M.extra_routes, i) return end
    end
  end
end

-- The project a call comes from (whose .claude/agents a route reads):
-- its session's directory, else where procy serve runs.
local function project_of(s, tag)
  local id = tag or s.session
  s.projects = s.projects or {}
  local dir = id and s.projects[id]
  if dir == nil then
    local row = id and store.find_session(id, s.reader)
    dir = row and row.cwd or require("procy.fs").cwd()
    if id then s.projects[id] = dir end
  end
  return dir
end

-- A diverted POST /v1/messages (routes are set): routed, or relayed by C
-- as if never diverted. A body that is no JSON is relayed too: the
-- upstream's answer says what is wrong with it.
local function divert(s, req, path)
  local _, tag = web.api_path(path)
  local sum = s.router:summary(req:body(), req:headers(), path, project_of(s, tag))
  local r = sum and s.router:pick(sum)
  if not r then return req:relay() end
  return require("procy.routed").send(s, req, sum, r)
end

-- A request at an API path procy does not serve (under an agent's base
-- URL /s/KEY/, or an API's own /v1/, /v1beta/ beyond what the proxy
-- takes): answered in the caller's API's error shape — its client shows
-- the message — naming what procy serves there.
local SERVED = "procy relays POST /v1/messages (Anthropic), /v1/chat/completions and /v1/responses (OpenAI), "
  .. "/v1beta/models/MODEL:generateContent and :streamGenerateContent (Gemini), and every other /v1/ or "
  .. "/v1beta/ path to its API's upstream, under the base URL it gave the agent (http://HOST:PORT/s/KEY)"

local function api_refusal(req, path)
  local h = {}
  for _, kv in ipairs(req:headers()) do h[kv[1]:lower()] = kv[2] end
  local p = path:match("^/s/[%w_%-]+(.*)$") or path
  local msg = ("procy: nothing is served at %s %s. %s"):format(req:method(), p, SERVED)
  local status = (req:method() == "GET" or req:method() == "POST" or req:method() == "HEAD") and 404 or 405
  local body
  if p:find("/messages", 1, true) or h["anthropic-version"] or h["x-api-key"] then
    body = { type = "error", error = { type = "not_found_error", message = msg } }
  elseif p:find("^/v1beta/") or p:find("^/v1alpha/") or h["x-goog-api-key"] or h["x-goog-api-client"] then
    body = { error = { code = status, message = msg, status = status == 404 and "NOT_FOUND" or "UNIMPLEMENTED" } }
  else
    body = { error = { message = msg, type = "invalid_request_error", code = status == 404 and "not_found" or "method_not_allowed" } }
  end
  return reply(req, status, body)
end

local function route(s, req)
  local path = req:path()
  local api = web.api_path(path)
  if s.replay and api:find("^/v1/") then
    -- its answers are the record's: for the person, or an agent procy
    -- gave a session key, never any client of the plain proxy
    if not req:auth() then
      return fail(req, 401, "a replaying server answers from the record: send the person's token (x-procy-token)")
    end
    return s.replay.cassette:serve(s, req, s.replay)
  end
  if s.router and req:method() == "POST" and api:find("^/v1/messages") then return divert(s, req, path) end
  for _, r in ipairs(M.extra_routes) do
    local caps = table.pack(path:match(r[1]))
    if caps[1] ~= nil then return r[2](req, table.unpack(caps, 1, caps.n)) end
  end
  if path:find("^/s/[%w_%-]+") or path:find("^/v1/") or path:find("^/v1beta/") or path:find("^/v1alpha/") then
    return api_refusal(req, path)
  end
  if web.serve(req, s, path) then return end
  if req:method() ~= "GET" and req:method() ~= "HEAD" and path:find("^/api/") then
    local ok, why = web.write_ok(req, s)
    if not ok then return fail(req, 403, why) end
  end
  if s.ui and require("procy.monitor").serve(req, s, path) then return end
  local sid = path:match("^/api/sessions/([%x]+)$")
  if sid and req:method() == "GET" then
    if not none(req, s) then return end
    local row, err = store.find_session(sid, s.reader)
    if not row then return fail(req, 404, err) end
    row.argv = json.array(row.argv or {})
    row.stats = store.session_stats({ row.id }, s.reader)[row.id]
    row.turns = require("procy.turns").list(row.id, s.reader)
    row.forks = json.array(s.reader:query("SELECT id, fork_turn, cwd, started_at FROM sessions WHERE parent_id = ? ORDER BY started_at",
      row.id) or {})
    return reply(req, 200, row)
  end
  local id = path:match("^/api/calls/(%d+)$")
  local key = path:match("^/hooks/([%w]+/[%x]+)$")
  if key and req:method() == "POST" then return hook(req, key) end
  if (path:find("^/api/corrections") or path:find("^/api/training/jobs/") or path:find("^/api/runs/"))
     and api_item(req, s, path) ~= false then
    return
  end
  if req:method() ~= "GET" and req:method() ~= "HEAD" then
    return fail(req, 405, "only GET here; API calls go under /v1/")
  end
  if id then
    if not none(req, s) then return end
    local row = store.call(math.tointeger(tonumber(id)))
    if not row then return fail(req, 404, "no call " .. id) end
    row.request = json.decode(row.request or "") or row.request
    row.tool_calls = json.array(row.tool_calls)
    return reply(req, 200, row)
  end
  local handler = routes[path] or routes[path:gsub("/$", "")]
  if not handler then return fail(req, 404, "no route " .. path .. " (see /health, /api/calls)") end
  handler(req, s)
end

-- answer(s, req): what the server answers req with (every route but the
-- proxy's /v1/); procy.share asks it with requests of its own to put the
-- API's answers in an HTML export
M.answer = route

-- ---- starting and stopping ------------------------------------------------------

local listeners = {}

-- on_call(fn) -> a function that removes fn: fn(summary) for every call
-- recorded from now on, in any server of this process (the live feed).
function M.on_call(fn)
  listeners[fn] = true
  return function() listeners[fn] = nil end
end

-- Passes a recorded call to the listeners. What the recorder could not
-- do is logged every time, with counts (a repeated failure at most every
-- 10 s, saying how often it came meanwhile), and a loss is counted in the
-- record's `losses` as well.
local said = {}
local function complain(s, key, text)
  local now, w = core.now(), said[key]
  if w and now - w.at < 10 then
    w.n = w.n + 1
    return
  end
  local more = w and w.n > 0 and (" (and %d time(s) more since)"):format(w.n) or ""
  said[key] = { at = now, n = 0 }
  core.log("error", text .. more)
end

local function tell(s, call)
  if call.failing then
    local st = s.srv:stats()
    complain(s, "failing", ("capture: the record refuses writes: %s; %d call(s) wait and are tried again"):format(
      call.failing, st.queued + st.held))
    return
  end
  if call.not_recorded then
    complain(s, "lost", ("capture: %d call(s) not recorded: %s"):format(call.not_recorded, call.error))
    if call.not_recorded > 0 then pcall(store.lose, s.session, "api_call", call.not_recorded, nil, call.error) end
    return
  end
  if call.parse_error then
    complain(s, "marked", ("capture: call %d kept, but %s"):format(call.id, call.parse_error))
  end
  for fn in pairs(listeners) do pcall(fn, call) end
end
M.tell = tell

-- ---- the running servers' links (procy link) -----------------------------------

-- A file per running server in the record's directory (0700, hidden from
-- sandboxed agents), holding its link: how `procy link` prints it again.
local function links_dir()
  return (store.path():match("^(.*)/[^/]*$") or ".") .. "/servers"
end

local function announce(s)
  local dir = links_dir()
  fs.mkdir(dir, 448) -- 0700
  s.link_file = ("%s/%d.json"):format(dir, s.port)
  local f = io.open(s.link_file, "wb")
  if not f then s.link_file = nil return end
  f:write(json.encode { url = s.url, link = s.link, pid = select(2, store.process_id("self")),
    pid_start = store.process_id("self"), session = s.session, started = os.time() })
  f:close()
end

-- running() -> {{url, link, pid, session, started}, ...}: the servers of
-- this record that still run (a file a killed procy left is removed)
function M.running()
  local out = {}
  for _, name in ipairs(fs.dir(links_dir()) or {}) do
    local path = links_dir() .. "/" .. name
    local f = name:match("^%d+%.json$") and io.open(path, "rb")
    local e = f and json.decode(f:read("a"))
    if f then f:close() end
    if type(e) == "table" and e.pid and store.process_id(e.pid) == e.pid_start then
      out[#out + 1] = e
    elseif f then
      os.remove(path)
    end
  end
  table.sort(out, function(a, b) return (a.started or 0) > (b.started or 0) end)
  return out
end

-- start{port =, host =, token =, upstream =, openai =, session =,
-- agent_env =, max_queued =, lazy =, replay = {cassette =, mode =, fast =}}
-- -> server | nil, err, code. With replay, every /v1/ call is answered
-- from the cassette (procy.vcr), none goes upstream. The server's fields: port, url,
-- upstream, openai, session; close it with stop(server). Its calls are
-- recorded on the recorder thread (procy.record.capture) into the record.
function M.start(o)
  local db, err, code = store.open()
  if not db then return core.wrap("cannot open the record", err, code) end
  local reader
  reader, err, code = store.reader()
  if not reader then return core.wrap("cannot read the record", err, code) end
  local cfg = config.get()
  local up, oup, gup = M.upstreams(o)
  local host = o.host or "127.0.0.1"
  local port = o.port or cfg.port
  for _, u in ipairs { up, oup, gup } do
    local h, p = u:match("^https?://([^/:]*):?(%d*)")
    if port ~= 0 and (h == host or h == "localhost" and host == "127.0.0.1") and tonumber(p) == port then
      return nil, "the upstream " .. u .. " is this server itself", "ELOOP"
    end
  end
  -- procy.route is loaded only when there are routes: a session without
  -- any keeps the memory it had
  local router
  if next(cfg.routes) or (os.getenv("PROCY_ROUTES") or "") ~= "" or (os.getenv("SUBAGENT_MAPPINGS") or "") ~= "" then
    local ok
    ok, router = pcall(require("procy.route").new, { routes = cfg.routes, providers = cfg.providers,
      upstream = up, openai = oup })
    if not ok then return nil, "routes: " .. tostring(router), "EINVAL" end
    if router:empty() then router = nil end
  end
  -- a routed call costs what its provider charges: the providers' prices join the table
  local price_list = cfg.prices
  if router then
    price_list = {}
    for _, p in pairs(router.providers) do
      for m, v in pairs(p.prices or {}) do price_list[m] = v end
    end
    for m, v in pairs(cfg.prices) do price_list[m] = v end
  end
  local srv
  srv, err, code = http.serve { host = host, port = port, token = o.token, max_body = o.max_body, lazy = o.lazy,
    proxy = { anthropic = up, openai = oup, google = gup, stall_timeout = cfg.upstream_timeout,
      divert = o.replay and "all" or router ~= nil },
    record = { db = store.path(), session = o.session, redact = cfg.redact, prices = price_list,
      max_queued = o.max_queued } }
  if not srv then return nil, err, code end
  local s = { srv = srv, port = srv:port(), upstream = up, openai = oup, google = gup, session = o.session,
    started = core.now(), reader = reader, token = o.token, ui = o.ui ~= false, router = router, replay = o.replay }
  s.url = "http://" .. host .. ":" .. s.port
  s.token = srv:token()
  s.mount = srv:mount()
  -- the monitor's link: its token, which the page trades for a cookie
  s.link = s.url .. "/?token=" .. s.token
  if s.ui then announce(s) end
  if ((cfg.otel or {}).endpoint or os.getenv("OTEL_EXPORTER_OTLP_ENDPOINT") or "") ~= "" and not o.replay then
    local otel = require "procy.otel" -- loaded only when it exports
    s.otel = otel.live(s, otel.settings(cfg))
  end
  s.feed = core.spawn(function()
    while true do
      local call = srv:calls()
      if not call then return end -- closed, every call told
      tell(s, call)
    end
  end)
  s.feed:label("serve feed")
  s.acceptor = core.spawn(function()
    while true do
      local req = srv:accept()
      if not req then return end
      core.spawn(function()
        local ok, e = pcall(route, s, req)
        if not ok then
          core.log("error", "serve: " .. req:path() .. ": " .. tostring(e))
          pcall(fail, req, 500, "procy: " .. tostring(e))
        end
        req:close() -- answers 500 if nothing did; frees it now, not at the next GC
      end):label("serve " .. req:path())
    end
  end)
  s.acceptor:label("serve")
  return s
end

-- stop(server): stops listening; the calls still open are ended, and
-- every call is recorded before it returns.
function M.stop(s)
  if s.stopped then return end
  s.stopped = true
  if s.link_file then os.remove(s.link_file) end
  core.cancel(s.acceptor)
  core.cancel(s.feed)
  s.srv:close() -- waits for the recorder thread to finish
  while true do
    local call = s.srv:calls(0)
    if not call then break end
    tell(s, call)
  end
  if s.otel then s.otel:stop() end
end

return M
