-- procy.session: an interactive session. The agent runs on a pty with the
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

-- run{argv =, cwd =, resume = session row} -> exit status | nil, err, code
-- The status is the agent's: its exit code, or 128+N for signal N.
function M.run(opts)
  if not pty.isatty() then
    return nil, "standard input is not a terminal. An interactive session needs one; "
      .. "for a headless run, write a recipe and use: procy run FILE.lua", "ENOTTY"
  end
  local cfg = config.get()
  local _, err = store.open()
  if err then return nil, "cannot open the record: " .. err, "EDB" end
  local argv, cwd = opts.argv, opts.cwd or assert(fs.cwd())
  local id
  if opts.resume then
    id = opts.resume.id
    store.reopen_session(id)
  else
    local ierr, code
    id, ierr, code = store.new_session { argv = argv, cwd = cwd, mode = "pty" }
    if not id then return nil, "cannot write to the record: " .. ierr, code end
  end
  fs.mkdir(dirname(cfg.log), 448) -- 0700
  -- The agent's API calls come through procy's proxy, tied to this session
  -- by the path; its own base URL (if it had one) becomes the upstream.
  -- The agent's profile (procy.agents) adds what tells procy its turns:
  -- Claude Code's hooks, Codex's provider and notify.
  local proxy, wrapped, env, run = nil, nil, nil, argv
  if cfg.capture then
    local perr
    proxy, perr = serve.start { port = 0, session = id, agent_env = true }
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
      if opts.resume then
        local aid = opts.resume.agent_session_id
        if aid and profile.resume_args then
          table.move(profile.resume_args(aid), 1, #profile.resume_args(aid), 2, run)
          io.stderr:write(("procy: resuming %s's own session %s\n"):format(profile.name, aid))
        else
          io.stderr:write(("procy: %s starts a new conversation: %s; the session's record goes on\n"):format(
            profile.name, aid and "procy does not know how to resume it (its profile has no resume_args)"
              or "procy never learned its session id"))
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
  local s, serr, scode = pty.session { argv = run, env = env, cwd = cwd, db = store.path(), id = id,
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
    proxy = proxy and proxy.url })
  local exit = { code = 1 }
  for ev in function() return s:event() end do
    if ev.type == "command" then
      commands.run(ctx, ev.text)
    elseif ev.type == "line" then
      ctx.lines[#ctx.lines + 1] = { t = core.time(), text = ev.text }
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
  store.end_session(id, { status = exit.signal and "killed" or "exited", code = exit.code,
    signal = exit.signal, bytes_in = info.bytes_in, bytes_out = info.bytes_out })
  return exit.code or 1
end

return M
