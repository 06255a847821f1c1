-- procy.agent: an agent a recipe drives. The same object whether the agent
-- runs on a terminal (the one the person looks at in an interactive
-- session, or one of its own) or headless (Claude Code's stream-json,
-- Codex's `exec --json`); its turns are known exactly (procy.turns), from
-- the agent's hooks and events checked against its API calls, which go
-- through a procy proxy tied to the agent's session.
--
--   local a = agent.open { profile = "claude", mode = "headless", cwd = dir }
--   a:send("fix the failing test")
--   local turn = a:wait_turn { timeout = 600 }
--   print(turn.status, turn.response, #turn.tools)

local core = require "procy.core"
local json = require "procy.json"
local fs = require "procy.fs"
local config = require "procy.config"
local store = require "procy.store"
local serve = require "procy.serve"
local turns = require "procy.turns"

local M = {}

local builtin = { claude = "procy.agents.claude", codex = "procy.agents.codex", generic = "procy.agents.generic" }

-- profile(name) -> the profile table | nil, err. A project's profiles (the
-- `agents` setting) come first and start from the generic one (or from the
-- built-in profile named by their `base`).
function M.profile(name)
  local own = (config.get().agents or {})[name]
  if own then
    local base = assert(M.profile(own.base or "generic"))
    local p = setmetatable({}, { __index = base })
    for k, v in pairs(own) do p[k] = v end
    p.name = name
    return p
  end
  if builtin[name] then return (require(builtin[name])) end
  return nil, "ENOENT: no agent profile '" .. tostring(name) .. "' (built in: claude, codex, generic; "
    .. "a project adds one with `agents` in procy.lua)", "ENOENT"
end

-- profile_for(argv) -> the profile whose `match` fits the program's name
-- (generic when none does)
function M.profile_for(argv)
  local base = (argv[1] or ""):match("[^/]*$")
  for name, p in pairs(config.get().agents or {}) do
    if p.match and base:find(p.match) then return (M.profile(name)) end
  end
  for _, name in ipairs { "claude", "codex" } do
    local p = require(builtin[name])
    if base:find(p.match) then return p end
  end
  return (require(builtin.generic))
end

-- edit_args(profile, extra) -> the arguments of a headless agent that is to
-- act unasked: the profile's edit_args (Claude Code --permission-mode
-- acceptEdits, Codex --sandbox workspace-write), then extra — without the
-- profile's when extra names the same option, so a caller's own choice wins.
function M.edit_args(p, extra)
  local args, own = {}, {}
  for _, a in ipairs(extra or {}) do own[a] = true end
  local e = p.edit_args or {}
  if not (e[1] and own[e[1]]) then table.move(e, 1, #e, 1, args) end
  return table.move(extra or {}, 1, #(extra or {}), #args + 1, args)
end

-- ---- the object ---------------------------------------------------------------------

local A = {}
A.__index = A

-- ctx(a) -> what a profile's functions are given
function A:ctx(extra)
  local c = { base_url = self.proxy.url .. "/s/" .. self.key, exe = core.exe, args = self.args,
              session = self.session, resume = store.agent_id(self.resume), env = self.extra_env }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

-- env() -> the agent's environment changes: its API through procy, the
-- hook endpoint for `procy hook`
-- (the caller's env first: what routes the API through procy wins)
-- command(argv) -> argv as it is started: inside the sandbox when the
-- agent has one (checked when it was opened)
function A:command(argv)
  if not self.sandbox then return argv end
  if self.box then self.box:finish() end -- the run before (a restart, exec's next turn) is over
  local boxed, box = assert(require("procy.sandbox").wrap(argv, { profile = self.sandbox, cwd = self.cwd,
    port = self.proxy.port, pty = self.mode == "pty" }))
  self.box = box
  return boxed
end

function A:env()
  local env = {}
  for k, v in pairs(self.extra_env or {}) do env[k] = v end
  for k, v in pairs(self.profile.env(self:ctx())) do env[k] = v end
  env.PROCY_HOOK_URL = self.proxy.url .. "/hooks/" .. self.hook_key
  env.PROCY_SESSION = self.session
  env.PROCY_TOKEN = false -- the person's token is never the agent's
  return env
end

-- send(text, [source]) -> the number (seq) of the turn it starts. source:
-- "recipe" (default), "proxy" (a proxy model wrote it), "human".
function A:send(text, source)
  assert(type(text) == "string" and text ~= "", "agent: send needs the prompt text")
  local seq, err, code = self.driver:send(text, source or "recipe")
  if seq then self.last_sent = seq end
  return seq, err, code
end

-- wait_turn{seq =, timeout =} -> the turn (procy.turns shape) once it has
-- ended, or nil, "ETIMEDOUT: ..." | "EPIPE: the agent exited ...". seq
-- defaults to the last one sent.
function A:wait_turn(o)
  o = o or {}
  local seq = o.seq or self.last_sent or self.tracker.seq
  if seq == 0 then return nil, "EINVAL: no turn to wait for (send a prompt first)", "EINVAL" end
  return self.tracker:wait(seq, o.timeout)
end

function A:interrupt() return self.driver:interrupt() end

-- record(kind, line): a line the agent got ('i') or wrote ('o'), as one of
-- its session's term_events (headless drivers; `procy agent log` reads them)
function A:record(kind, line) store.event(self.session, kind, line .. "\n") end

-- a:mirror(text, how): the agent's words on procy's stderr ("full": all
-- of them, else the first line with something on it), each line under
-- the agent's name. stderr may be a file procy keeps (a background
-- agent's log): the record's rule set first, as for every text procy
-- writes.
function A:mirror(text, how)
  if not how or not text or text == "" then return end
  text = require("procy.redact").text(text)
  local who = "[" .. (self.name or self.session:sub(1, 8)) .. "] "
  if how == "full" then
    io.stderr:write(who, (text:gsub("\n", "\n" .. who)), "\n")
  else
    io.stderr:write(who, M.preview(text), "\n")
  end
end

-- preview(text) -> text's first line with something on it, " ..." after
-- it when more follows: what the mirror prints of a message (claudix4's)
function M.preview(text)
  local first, rest = text:match("^%s*\n([^\n]*%S[^\n]*)\n?(.*)$")
  if not first then first, rest = text:match("^([^\n]*)\n?(.*)$") end
  return (first:gsub("^%s+", "")) .. (rest:match("%S") and " ..." or "")
end

-- settle([seconds]): waits (at most 2 s) until every API call that has
-- ended has been recorded and told — so a turn ended now holds all of them
function A:settle(max)
  local t0 = core.now()
  while core.now() - t0 < (max or 2) do
    local _, untold = self.proxy.srv:inflight(self.session)
    if untold == 0 then return true end
    self.tracker:watch(0.02)
  end
  return false
end

-- restart{resume = true|false, force = false}: a new agent process; with
-- resume it continues the agent's own session (its history)
function A:restart(o) return self.driver:restart(o or {}) end

-- status() -> {profile, mode, session, running, pid, turns, open, last_io}
function A:status()
  local s = self.driver:status()
  s.profile, s.mode, s.session, s.turns = self.profile.name, self.mode, self.session, self.tracker.seq
  s.open = self.tracker.open and self.tracker.open.seq or nil
  return s
end

-- The agents M.open made and nobody has closed yet: `procy run` closes
-- them when its recipe returns, so a recipe that forgets to is not left
-- waiting on its agent (a weak set: one dropped and collected is gone).
local opened = setmetatable({}, { __mode = "k" })

function A:close()
  if self.closed then return end
  self.closed = true
  opened[self] = nil
  self.driver:close()
  if self.box then self.box:finish() end
  if self.tracker.open then
    -- an agent that exits right after answering (a headless run) ended its
    -- turn: its calls recorded, the API says whether it had
    if not self.proxy.stopped then self:settle() end
    -- (the terminal may be closed already: then nothing says it was quiet)
    local ok, st = pcall(function() return self.driver.status and self.driver:status() end)
    st = ok and type(st) == "table" and st or {}
    local quiet = self.tracker.open.known_from == "terminal" and (st.quiet or 0) >= (self.profile.quiet or 1.5)
    if self.tracker:api_done(0) or quiet then
      self.tracker:finish { status = "done" }
    else
      self.tracker:finish { status = "interrupted", error = "the agent was closed" }
    end
  end
  self.off_call()
  serve.hooks[self.hook_key] = nil
  if not self.proxy.stopped then self.proxy.srv:key(self.key) end
  if self.own_proxy then serve.stop(self.proxy) end
  if self.own_session then store.end_session(self.session, { status = "exited" }) end
end

A.__close = A.close
A.__gc = nil

-- Whether dir is inside a git work tree: a .git above it (no git run).
local function in_git(dir)
  while dir and dir ~= "" do
    if fs.stat(dir .. "/.git") then return true end
    if dir == "/" then return false end
    dir = dir:match("^(.*)/[^/]*$")
    if dir == "" then dir = "/" end
  end
  return false
end

-- The parts every agent has: a session, a proxy tied to it, its turns, the
-- hook endpoint and the feed of its API calls.
local function attach(a, proxy)
  a.tracker = turns.new(a.session)
  local mode = a.snapshots or config.get().snapshots
  local cwd = a.cwd or (store.open():query("SELECT cwd FROM sessions WHERE id = ?", a.session)[1] or {}).cwd
  -- each turn's workspace, for procy fork: in a git work tree (found
  -- without running git: nothing at all happens at a turn's end elsewhere)
  if mode == "turn" or (mode == "git" and cwd and in_git(cwd)) then
    a.tracker.on_end = function(turn) require("procy.fork").take(a.session, turn.seq, cwd, mode) end
  end
  a.hook_key = a.session .. "/" .. store.random_hex(16)
  -- the session's key: its base URL is /s/KEY, which opens this session's
  -- routes alone (procy.serve); /s/ID is refused from now on
  a.key = store.random_hex(16)
  proxy.srv:key(a.key, a.session)
  serve.hooks[a.hook_key] = function(ev) a.driver:hook(ev) end
  a.off_call = serve.on_call(function(c)
    if c.session == a.session then
      -- the agent's own session id, from its requests when no hook said it
      if c.client_session and not a.agent_session_seen and store.agent_id(c.client_session) then
        a.agent_session_seen = true
        store.open():exec("UPDATE sessions SET agent_session_id = coalesce(agent_session_id, ?) WHERE id = ?",
          c.client_session, a.session)
      end
      a.tracker:call(c)
      if a.driver.on_call then a.driver:on_call(c) end
    end
  end)
  a.proxy = proxy
  return a
end

-- open{profile =, mode = "pty"|"headless", cwd =, args =, env =, resume =,
--      mirror =, watchdog =, validator =, sandbox =, snapshots =} -> agent | nil, err, code
-- profile: a name or a table; mode: "headless" (default) or "pty"; args:
-- extra arguments; resume: the agent's own session id to continue.
-- snapshots: the `snapshots` setting for this agent's turns ("off": a
-- recipe that snapshots its own work, as evolve does each try).
-- mirror, watchdog, validator: see procy.drivers.stream. sandbox: a
-- sandbox profile's name, or true (default: the `sandbox` setting).
function M.open(o)
  local profile, err, code = o.profile, nil, nil
  if type(profile) ~= "table" then
    profile, err, code = M.profile(profile or config.get().agent:match("^%S+"):match("[^/]*$"))
    if not profile then return nil, err, code end
  end
  local mode = o.mode or "headless"
  local cwd = o.cwd or assert(fs.cwd())
  local sandbox = o.sandbox
  if sandbox == nil then sandbox = config.get().sandbox end
  if sandbox then
    local ok, serr, scode = require("procy.sandbox").check(sandbox)
    if not ok then return nil, serr, scode end
  end
  local argv = mode == "pty" and (profile.command or { profile.name }) or { profile.name }
  local session
  session, err, code = store.new_session { argv = argv, cwd = cwd, profile = profile.name, mode = mode }
  if not session then return core.wrap("cannot write to the record", err, code) end
  local proxy
  proxy, err, code = serve.start { port = 0, session = session, agent_env = true, lazy = true }
  if not proxy then
    store.end_session(session, { status = "error" })
    return nil, err, code
  end
  local a = setmetatable({ profile = profile, mode = mode, cwd = cwd, args = o.args or {}, resume = o.resume,
    snapshots = o.snapshots,
    sandbox = sandbox or nil, session = session, own_session = true, own_proxy = true, extra_env = o.env, opts = o }, A)
  attach(a, proxy)
  local driver = mode == "pty" and "procy.drivers.pty" or
    (profile.headless == "stream-json" and "procy.drivers.stream" or "procy.drivers.exec")
  if mode == "headless" and not profile.headless then
    a:close()
    return nil, "EINVAL: the " .. profile.name .. " profile has no headless mode", "EINVAL"
  end
  a.driver, err, code = require(driver).new(a)
  if not a.driver then
    a.driver = { close = function() end }
    a:close()
    return nil, err, code
  end
  opened[a] = true
  return a
end

-- close_all(): closes every agent open() made that is still open (their
-- sessions end as a close ends them)
function M.close_all()
  local list = {}
  for a in pairs(opened) do list[#list + 1] = a end
  for _, a in ipairs(list) do a:close() end
end

-- ---- the interactive session's agent ---------------------------------------------------

local current

-- current() -> the agent of this interactive session (nil outside one):
-- `!` commands and recipes run in the session drive what the person sees.
function M.current() return current end

-- wrap{session =, proxy =, profile =} -> the agent of an interactive
-- session, before it starts: a:launch() gives the arguments and the
-- environment to start it with, bind(a, pty) what it runs on.
function M.wrap(o)
  local a = setmetatable({ profile = o.profile, mode = "pty", session = o.session, args = {},
    interactive = true }, A)
  a.driver = { hook = function() end, close = function() end, status = function() return {} end }
  attach(a, o.proxy)
  return a
end

-- launch() -> extra arguments, environment (interactive)
function A:launch()
  return self.profile.args(self:ctx()), self:env()
end

-- bind(a, pty): the session's agent runs; current() returns it
function M.bind(a, pty)
  a.driver = require("procy.drivers.pty").wrap(a, pty)
  current = a
end

-- unwrap(a): the session is over
function M.unwrap(a)
  if current == a then current = nil end
  a:close()
end

return M
