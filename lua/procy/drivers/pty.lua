-- procy.drivers.pty: an agent on a terminal. A prompt goes in as the
-- person would give it — bracketed paste, then Enter — once the agent is
-- idle. The turn's end comes from the profile's hooks (Claude Code's
-- Stop, checked against the API: the main call ended the turn and no call
-- is under way; Codex's notify), else from quiet output (and the profile's
-- idle title) with nothing in flight.
--
-- The terminal is either the interactive session's (procy.pty: the person
-- sees it; wrap) or one of the agent's own (proc.spawn with a pty; new),
-- whose output is recorded like a session's.

local core = require "procy.core"
local proc = require "procy.proc"
local store = require "procy.store"

local D = {}
D.__index = D

local PASTE_START, PASTE_END = "\27[200~", "\27[201~"

-- ---- the two terminals -----------------------------------------------------------------

-- The session's pty: procy.pty relays it; s:info() has quiet and title.
local function session_io(s)
  return {
    write = function(bytes) return s:write(bytes) end,
    look = function()
      local i = s:info()
      return { quiet = i.quiet, title = i.title, titles = i.titles, running = i.running, pid = i.pid,
               tail = i.tail }
    end,
    close = function() end,
  }
end

-- A pty of the agent's own: its output read here, recorded as term_events,
-- the window title picked out of it.
local function own_io(d, argv, env, cwd)
  local p, err, code = proc.spawn(argv, { pty = { cols = 120, rows = 40, ctty = not d.a.sandbox }, env = env, cwd = cwd })
  if not p then return nil, err, code end
  local io_ = { p = p, last = core.now(), title = "", titles = 0, running = true }
  local session = d.a.session
  io_.reader = core.spawn(function()
    local tail = ""
    while true do
      local chunk = p:read()
      if not chunk then break end
      io_.last = core.now()
      store.event(session, "o", chunk)
      tail = (tail .. chunk):sub(-4096)
      io_.tail = tail:sub(-256)
      for t in tail:gmatch("\27%][02];([^\7\27]*)[\7\27]") do
        io_.title, io_.titles = t, io_.titles + 1
      end
      tail = tail:match(".*(\27%][^\7]*)$") or "" -- keep an unfinished title for the next chunk
    end
    io_.running = false
    local r = p:wait()
    d:exited(r)
  end)
  io_.reader:label("agent pty " .. session)
  io_.write = function(bytes) return p:write(bytes) end
  io_.look = function()
    return { quiet = core.now() - io_.last, title = io_.title, titles = io_.titles, running = io_.running, pid = p:pid(),
             tail = io_.tail or "" }
  end
  io_.close = function()
    core.cancel(io_.reader)
    p:close()
  end
  return io_
end

-- ---- the driver --------------------------------------------------------------------------

local function driver(a, io_, argv)
  local d = setmetatable({ a = a, io = io_, profile = a.profile, hooks = a.profile.hooks, argv = argv }, D)
  d.monitor = core.spawn(function() d:watch_end() end)
  d.monitor:label("agent turns " .. a.session)
  return d
end

-- wrap(a, pty_session) -> the driver of the interactive session's agent
function D.wrap(a, s)
  return driver(a, session_io(s))
end

-- new(a) -> the driver of an agent on a pty of its own
function D.new(a)
  local p = a.profile
  local args, env = a:launch()
  local argv = {}
  for _, w in ipairs(p.command or { p.name }) do argv[#argv + 1] = w end
  if a.resume and p.resume_args then
    for _, w in ipairs(p.resume_args(a.resume)) do argv[#argv + 1] = w end
  end
  for _, w in ipairs(args) do argv[#argv + 1] = w end
  for _, w in ipairs(a.args) do argv[#argv + 1] = w end
  local d = driver(a, nil, argv)
  local io_, err, code = own_io(d, a:command(argv), env, a.cwd)
  if not io_ then
    core.cancel(d.monitor)
    return nil, err, code
  end
  d.io = io_
  return d
end

-- Ready for a prompt: no turn under way, and the agent looks idle (its
-- idle title, or quiet output). With the title, quiet for half a second
-- too: an agent starting (resuming a long conversation, on a busy
-- machine) may set its idle title while it still draws, and what is typed
-- then can be lost.
function D:idle()
  if self.a.tracker.open then return false end
  local l = self.io.look()
  if self.profile.idle_title and l.titles > 0 then return l.title:find(self.profile.idle_title) ~= nil and l.quiet >= 0.5 end
  if self.profile.idle_output and not l.tail:find(self.profile.idle_output) then return false end
  return l.quiet >= math.min(self.profile.quiet or 1.5, 1)
end

function D:send(text, source)
  local t0 = core.now()
  while not self:idle() do
    if not self.io.look().running then return nil, "EPIPE: the agent is not running", "EPIPE" end
    if core.now() - t0 > (self.a.opts and self.a.opts.ready_timeout or 120) then
      return nil, "ETIMEDOUT: the agent did not become idle", "ETIMEDOUT"
    end
    core.sleep(0.05)
  end
  local tracker = self.a.tracker
  local seq = tracker.seq + 1
  if self.hooks then
    tracker:expect(source) -- the hook begins the turn, with the prompt as the agent got it
  else
    tracker:begin(text, source)
  end
  self.sent_at = core.now()
  local ok, err, code = self.io.write(PASTE_START .. text .. PASTE_END)
  if not ok then return nil, err, code end
  -- Enter once the agent has taken the paste in (drawn it, then quiet a
  -- moment; 3 s at most): an Enter that comes while it still handles the
  -- paste is swallowed (in the same write; on a busy machine, 50 ms later)
  core.sleep(0.05)
  local t1 = core.now()
  while core.now() - t1 < 3 do
    local l = self.io.look()
    if l.quiet >= 0.2 and core.now() - l.quiet > self.sent_at then break end
    core.sleep(0.05)
  end
  self.io.write("\r")
  if self.hooks then
    -- its UserPromptSubmit hook says the prompt was taken; until it comes,
    -- Enter again now and then (an empty prompt's Enter does nothing)
    local tracker = self.a.tracker
    core.spawn(function()
      for _ = 1, 5 do
        core.sleep(3)
        if tracker.seq >= seq or not self.io.look().running then return end
        if self.io.look().quiet >= 1 then self.io.write("\r") end
      end
    end):label("agent enter " .. self.a.session)
  end
  return seq
end

-- typed(line): the person submitted a line on the session's terminal (as
-- the agent echoed it). For an agent without hooks, a line typed while no
-- turn is open begins one, known from the terminal until its API call
-- (if procy sees one) brings the exact prompt; it ends when the agent is
-- idle again (watch_end).
function D:typed(text)
  local tracker = self.a.tracker
  if text:find("%S") then self.typed_at = core.now() end -- (an evolve try asks: did the person type meanwhile?)
  if self.hooks or tracker.open or not text:find("%S") then return end
  -- on the relay's thread: a record another process holds locked is waited
  -- for 200 ms at most (the line itself is on the tape); then the turn is
  -- left to the API call that carries the prompt, if procy sees one
  local h = store.open()
  local was = (h:query("PRAGMA busy_timeout")[1] or {}).timeout or 5000
  h:exec("PRAGMA busy_timeout = 200")
  local ok, err = pcall(tracker.begin, tracker, text, "human", "terminal")
  h:exec("PRAGMA busy_timeout = " .. math.tointeger(was))
  if ok then
    tracker.typed = true -- the person's prompts come from here: calls alone begin no turn
    self.sent_at = core.now()
  else
    core.log("warn", "a typed line begins no turn: the record is busy (" .. tostring(err) .. ")")
  end
end

-- Hook events (`procy hook` posts them): Claude Code's, and Codex's notify.
function D:hook(ev)
  local tracker = self.a.tracker
  local name = ev.hook_event_name or ev.type
  if type(ev.session_id) == "string" and ev.session_id ~= self.agent_session then
    self.agent_session = ev.session_id -- the agent's own id, for resuming
    store.agent_session(self.a.session, ev.session_id)
  end
  if name == "UserPromptSubmit" then
    local open = tracker.open
    if open and self.stop then
      -- the agent said it was done (Stop) and took the next prompt before
      -- the API settled: that turn is done, not interrupted
      local response = self.stop.response
      self.stop = nil
      tracker:finish { status = "done", response = response }
      tracker:begin(ev.prompt)
    elseif open and open.source == "proxy" and open.prompt ~= ev.prompt
           and not (open.last_main and open.last_main.aborted) then
      -- the person typed while a proxy's turn (an evolve try) was under
      -- way, and did not interrupt it (an aborted call: Esc, then a prompt
      -- of their own, is a new turn): the agent takes it into that turn,
      -- which ends when the agent is done — an intervention, not a new turn
      tracker:add(ev.prompt)
      self.folded_at = core.now()
    else
      tracker:begin(ev.prompt)
    end
  elseif name == "Stop" then
    self.stop = { t = core.now(), response = ev.last_assistant_message }
    tracker:watch(0) -- wake the monitor
  elseif name == "agent-turn-complete" then -- Codex notify; its title threads notify too
    local asked, turn = ev["input-messages"], tracker.open
    local mine = turn and type(asked) == "table" and (not turn.prompt or asked[#asked] == turn.prompt)
    local thread = mine and ev["thread-id"]
    if type(thread) == "string" and thread ~= self.agent_session then
      self.agent_session = thread -- Codex's conversation, for `codex resume`
      store.agent_session(self.a.session, thread)
    end
    if mine then
      self.a:settle()
      tracker:finish { status = "done", response = ev["last-assistant-message"] }
    end
  end
end

-- The monitor: ends the open turn when the signals say so.
function D:watch_end()
  local tracker = self.a.tracker
  while true do
    tracker:watch(0.05)
    local turn = self.io and tracker.open
    if turn then
      local l = self.io.look()
      -- quiet since the prompt went in, not since the prompt line was drawn
      l.quiet = math.min(l.quiet, core.now() - (self.sent_at or 0))
      local inflight = self.a.proxy.srv:inflight(self.a.session)
      local quiet = self.profile.quiet or 1.5
      local m = turn.last_main
      if self.stop and self.stop.t >= (self.sent_at or 0) - 1 then
        -- the Stop hook, and the API agrees (or has had 2 s to)
        if tracker:api_done(inflight) or core.now() - self.stop.t > 2 then
          local response = self.stop.response
          self.stop = nil
          tracker:finish { status = "done", response = response }
        end
      elseif m and m.aborted and inflight == 0 and l.quiet >= 1 then
        tracker:finish { status = "interrupted" }
      elseif not self.hooks and l.quiet >= quiet and inflight == 0
             -- with the API in sight (this turn's calls, or the session's),
             -- its answer ends the turn; a quiet terminal alone only when
             -- procy sees no API, or after ten times as long without a main call
             and (m and tracker:api_done(inflight)
                  or not m and not (turn.side_calls > 0 or tracker.api_seen)
                  or not m and l.quiet >= quiet * 10)
             and (not self.profile.idle_title or l.titles == 0 or l.title:find(self.profile.idle_title))
             and (not self.profile.idle_output or l.tail:find(self.profile.idle_output)) then
        tracker:finish { status = "done" }
      elseif self.hooks and l.quiet >= quiet * 10 and tracker:api_done(inflight) then
        tracker:finish { status = "done", error = "no Stop hook came; ended by the API and quiet output" }
      end
      if not l.running and tracker.open then
        self.a:settle()
        if tracker:api_done(0) or (tracker.open.known_from == "terminal" and l.quiet >= quiet) then
          tracker:finish { status = "done" } -- it answered (or went quiet), then exited
        else
          tracker:finish { status = "error", error = "the agent exited" }
        end
      end
    elseif self.stop then
      self.stop = nil -- a Stop for a turn procy did not see begin
    end
  end
end

function D:interrupt()
  self.io.write(self.profile.interrupt or "\27")
  local tracker = self.a.tracker
  local seq = tracker.open and tracker.open.seq
  if seq then
    core.sleep(1.5)
    if tracker.open and tracker.open.seq == seq then tracker:finish { status = "interrupted" } end
  end
  return true
end

function D:exited(r)
  self.result = r
  self.a.tracker:watch(0)
end

function D:restart(o)
  if self.a.interactive then return nil, "EPERM: the session's agent is the person's to restart", "EPERM" end
  local a = self.a
  if o.resume and not a.resume then
    a.resume = store.open():query("SELECT agent_session_id FROM sessions WHERE id = ?", a.session)[1].agent_session_id
  end
  if not o.resume then a.resume = nil end
  self:close()
  local d, err, code = D.new(a)
  if not d then return nil, err, code end
  a.driver = d
  return true
end

function D:status()
  local l = self.io.look()
  return { running = l.running, pid = l.pid, quiet = l.quiet, title = l.title }
end

function D:close()
  core.cancel(self.monitor)
  self.io.close()
end

return D
