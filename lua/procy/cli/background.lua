-- procy.cli.background: named background agents (`procy agent ...`), lproc's
-- job. `start` records the agent in the `agents` table and starts a
-- detached supervisor (`procy agent run NAME`, reparented to init) that
-- runs it headless (procy.agent) and answers on 127.0.0.1 — its proxy's
-- port — to requests carrying the agent's token: send, wait, interrupt,
-- restart, stop, status. Everything about an agent is in the record: its
-- row, its session, its turns, every line in and out (`log`).

local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local http = require "procy.http"
local fs = require "procy.fs"
local store = require "procy.store"
local config = require "procy.config"

local M = {}

local function say(...)
  io.stderr:write("procy: ", ...)
  io.stderr:write("\n")
end

local function row_of(name)
  return store.open():query("SELECT * FROM agents WHERE name = ?", name)[1]
end

-- alive(row) -> whether the agent's supervisor runs: its pid names the
-- process it named when it started (a pid may be reused by another), and
-- that process is no zombie
local function alive(row)
  local pid = row and row.pid
  local f = pid and io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a")
  f:close()
  if stat:match("^%d+ %b() [ZX]") then return false end
  return not row.pid_start or store.process_id(pid) == row.pid_start
end

local function log_path(name)
  local state = os.getenv("XDG_STATE_HOME")
  state = (state and state ~= "") and state or (os.getenv("HOME") .. "/.local/state")
  return state .. "/procy/agents/" .. name .. ".log"
end

-- call(row, method, action, [body], [query], [timeout]) -> decoded answer | nil, err, code
local function call(row, method, action, body, query, timeout)
  if not row.port or row.status == "stopped" or row.status == "failed" then
    return nil, "ENOTCONN: agent " .. row.name .. " is not running (procy agent start)", "ENOTCONN"
  end
  local url = ("http://127.0.0.1:%d/agent/%s/%s%s"):format(row.port, row.name, action, query and ("?" .. query) or "")
  local r, err, code = http.request { method = method, url = url, body = body, timeout = timeout or 30,
    headers = { ["x-procy-token"] = row.token, ["content-type"] = "text/plain; charset=utf-8" } }
  if not r then return nil, "ENOTCONN: agent " .. row.name .. "'s supervisor does not answer: " .. err, code end
  local v = json.decode(r.body)
  if r.status ~= 200 then return nil, "EAGENT: " .. (type(v) == "table" and v.error or r.body), "EAGENT" end
  return v
end

-- ---- the supervisor (procy agent run NAME) -------------------------------------------------

function M.supervise(name)
  local serve, agent = require "procy.serve", require "procy.agent"
  local h = assert(store.open())
  local row = row_of(name)
  if not row then
    say("no agent ", name)
    return 1
  end
  local me, pid = store.process_id("self")
  local p, perr = agent.profile(row.profile)
  local a, err = perr and nil, perr
  if p then -- it acts unasked, as a recipe's agent does: nobody is there to approve
    a, err = agent.open { profile = p, mode = "headless", cwd = row.cwd, sandbox = row.sandbox or false,
      args = agent.edit_args(p, json.decode(row.args) or {}), mirror = "full" }
  end
  if not a then
    h:exec("UPDATE agents SET status = 'failed', error = ?, pid = ?, pid_start = ?, ended_at = ? WHERE name = ?",
      err, pid, me, store.now_us(), name)
    say("agent ", name, ": ", err)
    return 1
  end
  a.name = name
  local stopping, wake = false, nil
  local function actions(req, action)
    if req:header("x-procy-token") ~= row.token then return serve.fail(req, 401, "a token is needed") end
    local q = serve.query(req)
    if action == "send" then
      local text = req:body()
      if text == "" then return serve.fail(req, 400, "nothing to send") end
      local seq, serr = a:send(text, q.source == "recipe" and "recipe" or "human")
      if not seq then return serve.fail(req, 409, serr) end
      return serve.reply(req, 200, { seq = seq })
    elseif action == "wait" then
      local turn, werr = a:wait_turn { seq = tonumber(q.seq), timeout = tonumber(q.timeout) or 600 }
      if not turn then return serve.fail(req, 408, werr) end
      return serve.reply(req, 200, turn)
    elseif action == "interrupt" then
      local ok, ierr = a:interrupt()
      return ok and serve.reply(req, 200, { ok = true }) or serve.fail(req, 409, ierr)
    elseif action == "restart" then
      local ok, rerr = a:restart { resume = q.resume == "1", force = q.force == "1" }
      return ok and serve.reply(req, 200, { ok = true }) or serve.fail(req, 409, rerr)
    elseif action == "stop" then
      serve.reply(req, 200, { ok = true })
      stopping = true
      if wake then core.complete(wake) end
    elseif action == "status" then
      return serve.reply(req, 200, a:status())
    else
      return serve.fail(req, 404, "no action " .. action)
    end
  end
  serve.route("^/agent/" .. name:gsub("%p", "%%%0") .. "/(%a+)$", actions)
  h:exec([[UPDATE agents SET pid = ?, pid_start = ?, port = ?, session_id = ?, status = 'running', started_at = ?,
           error = NULL WHERE name = ?]], pid, me, a.proxy.port, a.session, store.now_us(), name)
  io.stderr:write(("procy: agent %s running (supervisor %d, session %s, port %d)\n"):format(name, pid,
    a.session:sub(1, 8), a.proxy.port))
  local _ <close> = setmetatable({}, { __close = function()
    a:close()
    h:exec("UPDATE agents SET status = 'stopped', ended_at = ? WHERE name = ?", store.now_us(), name)
  end })
  while not stopping do
    wake = core.op()
    core.await(wake, 1)
    wake = nil
    local st = a:status()
    h:exec("UPDATE agents SET last_io = ?, status = ? WHERE name = ?",
      math.floor((core.time() - (st.idle or 0)) * 1e6), st.running and "running" or "exited", name)
  end
  return 0
end

-- ---- the commands ----------------------------------------------------------------------

local cmd = {}

-- start NAME [--profile P] [--cwd DIR] [--sandbox] [-- ARGS...]
function cmd.start(args, opts)
  local name = args[1]
  if not name or not name:match("^[%w_%-]+$") then
    say("agent start needs a NAME of letters, digits, - and _")
    return 2
  end
  local profile = opts.profile or "claude"
  local _, perr = require("procy.agent").profile(profile)
  if perr then
    say(perr)
    return 2
  end
  local old = row_of(name)
  if old and old.status ~= "stopped" and old.status ~= "failed" and alive(old) then
    say("agent ", name, " is running already (procy agent stop ", name, ")")
    return 1
  end
  local cwd = opts.cwd and fs.realpath(opts.cwd) or fs.cwd()
  if not cwd or (fs.stat(cwd) or {}).type ~= "dir" then
    say("no directory ", tostring(opts.cwd))
    return 2
  end
  local extra = table.move(args, 2, #args, 1, json.array())
  local token = store.random_hex(16)
  local sandbox = config.get().sandbox
  if opts.sandbox and not sandbox then sandbox = true end
  if sandbox then -- refused now, not in the supervisor's log
    local ok, serr = require("procy.sandbox").check(sandbox)
    if not ok then
      say(serr)
      return 1
    end
  end
  store.open():exec([[INSERT OR REPLACE INTO agents(name, profile, cwd, args, token, status, started_at, sandbox)
                      VALUES (?, ?, ?, ?, ?, 'starting', ?, ?)]], name, profile, cwd, json.encode(extra), token,
    store.now_us(), sandbox and (sandbox == true and "default" or sandbox) or nil)
  local log = log_path(name)
  fs.mkdir(log:match("^(.*)/"), 448)
  local pid, err = proc.daemon(store.self_argv("agent", "run", name), { cwd = cwd, log = log })
  if not pid then
    say(err)
    return 1
  end
  local t0 = core.now()
  while core.now() - t0 < 30 do
    local row = row_of(name)
    if row.status == "running" then
      print(("agent %s started: supervisor %d, session %s (log: %s)"):format(name, row.pid, row.session_id:sub(1, 8), log))
      return 0
    end
    if row.status == "failed" or not alive { pid = pid } then
      say("agent ", name, " did not start: ", row.error or ("see " .. log))
      return 1
    end
    core.sleep(0.05)
  end
  say("agent ", name, " is slow to start; see ", log)
  return 1
end

local function named(args, what)
  local row = args[1] and row_of(args[1])
  if not row then
    say(args[1] and ("no agent " .. args[1] .. " (procy agent ls)") or ("agent " .. what .. " needs a NAME"))
  end
  return row
end

-- send NAME TEXT|- [--wait] [--timeout S]
function cmd.send(args, opts)
  local row = named(args, "send")
  if not row then return 1 end
  local text = args[2]
  if text == "-" then text = io.stdin:read("a") end
  if not text or text == "" then
    say("agent send needs the TEXT to send (or - to read it from stdin)")
    return 2
  end
  local r, err = call(row, "POST", "send", text)
  if not r then
    say(err)
    return 1
  end
  if not opts.wait then
    print(("sent: turn %d"):format(r.seq))
    return 0
  end
  local timeout = tonumber(opts.timeout) or 600
  local turn, werr = call(row, "GET", "wait", nil, "seq=" .. r.seq .. "&timeout=" .. timeout, timeout + 5)
  if not turn then
    say(werr)
    return 1
  end
  print(turn.response ~= json.null and turn.response or ("(" .. turn.status .. ")"))
  for _, d in ipairs(turn.denied or {}) do
    say("agent ", row.name, " was refused ", tostring(d.tool), " ", json.encode(d.input):sub(1, 120),
      ": it needs permission (procy agent start NAME -- --allowedTools ", tostring(d.tool), ")")
  end
  return turn.status == "done" and #(turn.denied or {}) == 0 and 0 or 1
end

local function age(us)
  if not us then return "-" end
  local s = math.max(0, math.floor(core.time() - us / 1e6))
  return s < 60 and ("%ds"):format(s) or s < 3600 and ("%dm"):format(s // 60) or ("%dh"):format(s // 3600)
end

-- ls
function cmd.ls()
  local rows = store.open():query([[SELECT a.*, (SELECT count(*) FROM turns t WHERE t.session_id = a.session_id) AS turns,
    (SELECT coalesce(sum(json_array_length(t.meta, '$.denied')), 0) FROM turns t
     WHERE t.session_id = a.session_id AND json_valid(t.meta)) AS denied
    FROM agents a ORDER BY a.started_at DESC]])
  if #rows == 0 then
    print("no agents (procy agent start NAME)")
    return 0
  end
  print(("%-16s %-8s %-8s %8s %6s %6s  %-8s %s"):format("NAME", "STATUS", "PID", "LAST I/O", "TURNS", "DENIED",
    "PROFILE", "CWD"))
  local refused = 0
  for _, r in ipairs(rows) do
    local status = r.status
    if (status == "running" or status == "exited" or status == "starting") and not alive(r) then status = "dead" end
    print(("%-16s %-8s %-8s %8s %6d %6d  %-8s %s"):format(r.name, status, r.pid or "-", age(r.last_io), r.turns,
      r.denied, r.profile, r.cwd))
    refused = refused + r.denied
  end
  if refused > 0 then
    print("DENIED counts tool uses refused for want of permission: procy agent log NAME shows them;"
      .. " start the agent with -- --allowedTools TOOL to allow one")
  end
  return 0
end

-- stop NAME / restart NAME [--resume] / interrupt NAME
function cmd.stop(args)
  local row = named(args, "stop")
  if not row then return 1 end
  local r = call(row, "POST", "stop")
  if not r and alive(row) then proc.run { "kill", tostring(row.pid) } end -- only the supervisor it names
  for _ = 1, 100 do
    if not alive(row) then break end
    core.sleep(0.05)
  end
  store.open():exec("UPDATE agents SET status = 'stopped', ended_at = coalesce(ended_at, ?) WHERE name = ?",
    store.now_us(), row.name)
  print("agent " .. row.name .. " stopped")
  return 0
end

function cmd.restart(args, opts)
  local row = named(args, "restart")
  if not row then return 1 end
  local _, err = call(row, "POST", "restart", nil, opts.resume and "resume=1" or nil, 120)
  if err then
    say(err)
    return 1
  end
  print("agent " .. row.name .. " restarted" .. (opts.resume and ", resuming its session" or ""))
  return 0
end

function cmd.interrupt(args)
  local row = named(args, "interrupt")
  if not row then return 1 end
  local _, err = call(row, "POST", "interrupt")
  if err then
    say(err)
    return 1
  end
  return 0
end

function cmd.run(args)
  return M.supervise(args[1])
end

-- log NAME [--follow] [--color]
function cmd.log(args, opts)
  local row = named(args, "log")
  if not row then return 1 end
  local color = opts.color or require("procy.pty").isatty(1)
  local render = require("procy.record.transcript").renderer { color = color }
  local last = 0
  while true do
    local rows = assert(store.open():query([[SELECT id, kind, coalesce(data, tape(tape_id, at, len)) AS data FROM term_events
                                             WHERE session_id = ? AND id > ? ORDER BY id LIMIT 500]], row.session_id, last))
    for _, e in ipairs(rows) do
      last = e.id
      io.stdout:write(render(e.kind, e.data))
    end
    io.stdout:flush()
    if #rows == 0 then
      if not opts.follow then return 0 end
      local now = row_of(row.name)
      if now.status == "stopped" or now.status == "failed" then return 0 end
      core.sleep(0.3)
    end
  end
end

-- main(args, opts): `procy agent SUBCOMMAND ...`
function M.main(args, opts)
  local sub = table.remove(args, 1)
  local f = sub and cmd[sub]
  if not f then
    say("agent needs one of: start, send, ls, log, stop, restart, interrupt (see procy --help)")
    return 2
  end
  return f(args, opts)
end

return M
