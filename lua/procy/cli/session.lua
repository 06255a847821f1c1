-- procy.cli.session: an interactive session. The agent runs on a pty with the
-- person's terminal relayed in C (procy.pty); this task records the session
-- row, turns `!` lines into command tasks, and keeps what was typed.

local core = require "procy.core"
local fs = require "procy.fs"
local pty = require "procy.pty"
local config = require "procy.config"
local store = require "procy.store"
local commands = require "procy.commands"
local serve = require "procy.serve"
local agent = require "procy.agent"

local M = {}

local function dirname(path) return path:match("^(.*)/[^/]*$") or "." end

-- run{argv =, cwd =, resume = session row, explain =, parent = {id =, turn =}}
-- -> exit status | nil, err, code. parent: the session this one forks.
-- explain: an agent that fails within M.short seconds gets procy's word on it.
-- The status is the agent's: its exit code, or 128+N for signal N.
function M.run(opts)
  if not pty.isatty() then
    return nil, "standard input is not a terminal. An interactive session needs one; "
      .. "for a headless run, write a recipe and use: procy run FILE.lua", "ENOTTY"
  end
  local cfg = config.get()
  local _, err, ecode = store.open()
  if err then return core.wrap("cannot open the record", err, ecode) end
  local argv, cwd = opts.argv, opts.cwd or assert(fs.cwd())
  local id
  if opts.resume then
    id = opts.resume.id
    store.reopen_session(id)
  else
    local ierr, code
    id, ierr, code = store.new_session { argv = argv, cwd = cwd, mode = "pty", term = os.getenv("TERM") }
    if not id then return core.wrap("cannot write to the record", ierr, code) end
    if opts.parent then
      store.open():exec("UPDATE sessions SET parent_id = ?, fork_turn = ? WHERE id = ?", opts.parent.id, opts.parent.turn, id)
    end
  end
  fs.mkdir(dirname(cfg.log), 448) -- 0700
  -- The agent's API calls come through procy's proxy, tied to this session
  -- by the path; its own base URL (if it had one) becomes the upstream.
  -- The agent's profile (procy.agents) adds what tells procy its turns:
  -- Claude Code's hooks, Codex's provider and notify.
  local proxy, wrapped, env, run = nil, nil, nil, argv
  if cfg.capture then
    local perr
    -- the session's server is the monitor too: on 7862, as ProCy's was,
    -- when that port is free (and the monitor on); else any free port
    local first = cfg.ui and cfg.port ~= 0 and cfg.port or 0
    local pcode
    proxy, perr, pcode = serve.start { port = first, session = id, agent_env = true, lazy = true, ui = cfg.ui }
    if not proxy and first ~= 0 and pcode == "EADDRINUSE" then
      proxy, perr = serve.start { port = 0, session = id, agent_env = true, lazy = true, ui = cfg.ui }
    end
    if proxy then
      local profile = agent.profile_for(argv)
      store.open():exec("UPDATE sessions SET profile = ? WHERE id = ?", profile.name, id)
      wrapped = agent.wrap { profile = profile, session = id, proxy = proxy }
      local extra
      extra, env = wrapped:launch()
      run = { argv[1] }
      -- --resume: the agent's own conversation goes on too, when procy
      -- knows its id and the agent can be told (Claude Code --resume ID,
      -- codex resume ID); else it starts a new one, and procy says so
      -- (a generic agent, a shell, has no conversation to go on with)
      if opts.resume then
        local aid = store.agent_id(opts.resume.agent_session_id)
        if aid and profile.resume_args then
          table.move(profile.resume_args(aid), 1, #profile.resume_args(aid), 2, run)
          io.stderr:write(("procy: resuming %s's own session %s\n"):format(profile.name, aid))
        elseif profile.resume_args then -- an agent with conversations (a generic one has none)
          io.stderr:write(("procy: %s starts a new conversation: procy never learned its session id; "
            .. "the session's record goes on\n"):format(profile.name))
        end
      end
      table.move(extra, 1, #extra, #run + 1, run)
      table.move(argv, 2, #argv, #run + 1, run)
    else
      core.log("warn", "session " .. id .. ": API capture is off: " .. tostring(perr))
    end
  end
  local function stop_agent()
    if wrapped then agent.unwrap(wrapped) end
    if proxy then serve.stop(proxy) end
  end
  if cfg.sandbox then -- the agent inside bubblewrap; procy, its record and proxy outside
    local sandbox = require "procy.sandbox"
    local boxed, berr, bcode = sandbox.check(cfg.sandbox)
    local box
    if boxed then boxed, box, bcode = sandbox.wrap(run, { profile = cfg.sandbox, cwd = cwd, port = proxy and proxy.port, pty = true }) end
    if boxed then
      local stop = stop_agent
      stop_agent = function() stop() box:finish() end
    else
      berr = box
    end
    if not boxed then
      stop_agent()
      store.end_session(id, { status = "error" })
      return nil, berr, bcode
    end
    run = boxed
  end
  local s, serr, scode = pty.session { argv = run, env = env, cwd = cwd, db = store.path(), id = id,
    ctty = not cfg.sandbox, -- in the sandbox, procy's box takes the terminal
    log = cfg.log, redact = require("procy.json").encode { redact = cfg.redact },
    redact_literals = (function()
      local l = require("procy.redact").literals()
      return l and table.concat(l, "\n")
    end)() }
  if not s then
    stop_agent()
    store.end_session(id, { status = "error" })
    return nil, serr, scode
  end
  if wrapped then agent.bind(wrapped, s) end
  -- However this task ends, the terminal is given back, the calls under way
  -- recorded and the row closed.
  local ended = false
  local guard <close> = setmetatable({}, { __close = function()
    if not ended then
      local i = s:info()
      s:close()
      stop_agent()
      store.end_session(id, { status = "killed", bytes_in = i.bytes_in, bytes_out = i.bytes_out })
    end
  end })
  if opts.resume then s:mark("resumed") end
  local info = s:info()
  store.open():exec("UPDATE sessions SET cols = coalesce(cols, ?), rows = coalesce(rows, ?) WHERE id = ?",
    info.cols, info.rows, id)
  local ctx = commands.context(s, { id = id, argv = argv, cwd = cwd, started = core.time(),
    proxy = proxy and proxy.url, monitor = proxy and cfg.ui and (proxy.link .. "#/s/" .. id) or nil })
  if ctx.monitor then s:status("monitor: " .. proxy.link) end
  local exit = { code = 1 }
  for ev in function() return s:event() end do
    if ev.type == "command" then
      commands.run(ctx, ev.text)
    elseif ev.type == "line" then
      ctx.lines[#ctx.lines + 1] = { t = core.time(), text = ev.text }
      if wrapped and wrapped.driver.typed then wrapped.driver:typed(ev.text) end
    elseif ev.type == "error" then
      core.log("error", "session " .. id .. ": " .. ev.text)
    elseif ev.type == "exit" then
      exit = ev
    end
  end
  commands.stop_all(ctx)
  info = s:info()
  s:close()
  stop_agent()
  ended = true
  -- on a full disk this may fail too: said, and the next procy closes it
  local closed, cerr = pcall(store.end_session, id, { status = exit.signal and "killed" or "exited", code = exit.code,
    signal = exit.signal, bytes_in = info.bytes_in, bytes_out = info.bytes_out })
  if not closed then
    io.stderr:write(("procy: session %s could not be closed in the record (%s): the next procy that opens it closes it, "
      .. "with what was lost\n"):format(id, type(cerr) == "table" and tostring(cerr.err) or tostring(cerr)))
  end
  if opts.explain and core.time() - ctx.started < M.short and (exit.code or 1) ~= 0 then
    io.stderr:write(M.why_so_short(id, argv, core.time() - ctx.started, exit, proxy))
  end
  return exit.code or 1
end

-- A session whose agent fails this soon (seconds) gets procy's word on it.
M.short = 15

-- why_so_short(id, argv, seconds, exit, proxy) -> text: what procy saw of
-- an agent that failed at once, and what to try
function M.why_so_short(id, argv, seconds, exit, proxy)
  local name = tostring(argv[1]):match("[^/]*$")
  local out = { ("procy: %s ended after %.1f s (%s).\n"):format(name, seconds,
    exit.signal and ("signal " .. exit.signal) or ("exit " .. tostring(exit.code))) }
  local function say(...) out[#out + 1] = "  " .. string.format(...) .. "\n" end
  local calls = proxy and store.open():query([[SELECT status, error, upstream, req_headers FROM api_calls
    WHERE session_id = ? ORDER BY id]], id) or {}
  if not proxy then
    say("procy did not see its API calls (capture is off).")
  elseif #calls == 0 then
    say("No API call reached procy: the agent stopped before it asked the model (a login or setup step?).")
  else
    local last = calls[#calls]
    local up = (last.upstream or ""):match("^https?://[^/]+") or "the upstream"
    if last.error and last.error:match("^E[A-Z]+") then
      say("%d API call(s); %s could not be reached: %s.", #calls, up, last.error)
      if last.error:find("ENOTFOUND") or last.error:find("resolve") or last.error:find("ECONNREFUSED") then
        say("No network, or no server there: set the agent's base URL (ANTHROPIC_BASE_URL) or procy's --upstream.")
      end
    elseif last.status and last.status >= 400 then
      say("%d API call(s); %s refused the last one: %s %s.", #calls, up, last.status, last.error or "")
    else
      say("%d API call(s), the last answered %s.", #calls, tostring(last.status))
    end
    local keyed = false
    for _, c in ipairs(calls) do
      local h = (c.req_headers or ""):lower()
      if h:find('"x-api-key"', 1, true) or h:find('"authorization"', 1, true) then keyed = true end
    end
    if not keyed then say("They carried no API key.") end
  end
  local key = os.getenv("ANTHROPIC_API_KEY") or os.getenv("OPENAI_API_KEY")
  local login = io.open((os.getenv("HOME") or "") .. "/.claude/.credentials.json")
  if login then login:close() end
  if name:find("claude") and not os.getenv("ANTHROPIC_API_KEY") and not login then
    say("ANTHROPIC_API_KEY is not set, and Claude Code has no login: export ANTHROPIC_API_KEY=... or run `claude` once to log in.")
  elseif not key and not login then
    say("No API key in the environment (ANTHROPIC_API_KEY, OPENAI_API_KEY).")
  end
  say("Another agent: procy --agent 'CMD ARGS'; procy alone, with a shell: procy -- bash.")
  return table.concat(out)
end

return M
