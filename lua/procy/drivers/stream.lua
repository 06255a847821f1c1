-- procy.drivers.stream: Claude Code headless, stream-json in and out
-- (`claude -p --input-format stream-json --output-format stream-json
-- --verbose`) — what lproc's claudix proxies did, without their gaps:
--
-- * one user line per prompt, one `result` per user line: the counts
--   (expected, seen) say what is outstanding, and every turn ends with its
--   result, exactly. Claude Code takes user lines that arrive while a turn
--   runs into that turn (three lines at once, two results), so a user line
--   is held while a turn runs and written when its result is in;
-- * restart, gracefully (after the outstanding results) or forced (at once:
--   each lost turn gets a synthetic error result, so counts stay right),
--   fresh or resuming the agent's last session_id;
-- * the agent's death is noticed at once (its turns end as errors), not on
--   the next input;
-- * an idle watchdog: a turn with no I/O for `idle` seconds gets a nudge,
--   or a forced restart with resume and the nudge;
-- * a validator: after each turn, fn(turn, agent) may return a correction,
--   sent at once;
-- * the assistant's text mirrored to stderr (a one-line preview, or all);
-- * control out of band: this API, the supervisor's HTTP endpoint, `procy
--   agent` — never magic text inside a user message.
--
-- Every line in and out is recorded as the session's term_events ('i',
-- 'o'), which `procy agent log` renders.

local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local store = require "procy.store"

local D = {}
D.__index = D

function D.new(a)
  local o = a.opts or {}
  local d = setmetatable({ a = a, expected = 0, seen = 0, queue = {}, next_seq = a.tracker.seq,
    mirror = o.mirror == nil and "preview" or o.mirror, watchdog = o.watchdog, validator = o.validator,
    on_line = o.on_line, on_died = o.on_died, agent_session = a.resume, requests = 0 }, D)
  local ok, err, code = d:start(a.resume)
  if not ok then return nil, err, code end
  if d.watchdog then
    d.dog = core.spawn(function() d:watch() end)
    d.dog:label("agent watchdog " .. a.session)
  end
  return d
end

-- Starts the agent process (resuming `resume`, the agent's session id).
function D:start(resume)
  local a = self.a
  local argv = a.profile.headless_args(a:ctx { resume = resume })
  local p, err, code = proc.spawn(a:command(argv), { stdin = true, cwd = a.cwd, env = a:env(), stderr = "pipe" })
  if not p then return nil, err, code end
  self.p, self.last_io, self.exit, self.heard = p, core.now(), nil, false
  self.gen = (self.gen or 0) + 1
  local gen = self.gen
  self.reader = core.spawn(function()
    for line in p:lines() do self:line(line) end
    if self.gen ~= gen then return end -- stopped on purpose (stop() waits for it)
    self:died(p:wait())
  end)
  self.reader:label("agent stream " .. a.session)
  self.errors = core.spawn(function()
    for line in p:lines("stderr") do
      self.stderr_tail = line
      core.log("debug", "agent " .. a.session:sub(1, 8) .. ": " .. line)
    end
  end)
  return true
end

local function mirror(self, text) self.a:mirror(text, self.mirror) end

-- One line of the agent's output.
function D:line(line)
  self.last_io, self.heard = core.now(), true
  self.a:record("o", line)
  local ev = json.decode(line)
  if self.on_line then self.on_line(line, type(ev) == "table" and ev or nil) end
  if type(ev) ~= "table" then return end
  if type(ev.session_id) == "string" and ev.session_id ~= self.agent_session then
    self.agent_session = ev.session_id
    store.agent_session(self.a.session, ev.session_id)
  end
  local sub = ev.parent_tool_use_id ~= nil and ev.parent_tool_use_id ~= json.null -- a subagent's
  if ev.type == "assistant" and type(ev.message) == "table" and not sub then
    for _, b in ipairs(type(ev.message.content) == "table" and ev.message.content or {}) do
      if type(b) == "table" and b.type == "text" then mirror(self, b.text) end
    end
  elseif ev.type == "result" then
    self:result(ev)
  elseif ev.type == "control_response" and self.control then
    core.complete(self.control, ev)
  end
end

-- A result ends the oldest outstanding turn; the next queued one begins.
function D:result(ev)
  if self.seen >= self.expected then
    -- a result no line of ours asked for (the agent took a turn of its own:
    -- a background agent's report, say): it ends no turn of ours and moves
    -- no count, so each line keeps its one result
    core.log("info", "agent " .. self.a.session:sub(1, 8) .. ": a result no prompt asked for (" .. tostring(ev.subtype) .. ")")
    return false
  end
  self.seen = self.seen + 1
  local tracker = self.a.tracker
  local turn = tracker.open
  if ev.subtype ~= "procy_lost" then self.a:settle() end -- its calls recorded first
  -- an interrupt ends the turn with an error result: it is still an interrupt
  local status = self.interrupting and "interrupted" or ev.is_error and "error" or "done"
  self.interrupting = nil
  local denied = {}
  for _, d in ipairs(type(ev.permission_denials) == "table" and ev.permission_denials or {}) do
    if type(d) == "table" then denied[#denied + 1] = { tool = d.tool_name, input = d.tool_input } end
  end
  tracker:finish { status = status, denied = denied[1] and denied or nil,
    response = type(ev.result) == "string" and ev.result or nil,
    error = status == "error" and tostring(ev.result or ev.subtype) or nil }
  self:next_line()
  if turn and self.validator then
    local seq = turn.seq
    core.spawn(function()
      local t = tracker:wait(seq, 0)
      local ok, fix = pcall(self.validator, t, self.a)
      if not ok then core.log("error", "agent validator: " .. tostring(fix))
      elseif type(fix) == "string" and fix ~= "" then self.a:send(fix, "recipe") end
    end):label("agent validator")
  end
end

function D:send(text, source)
  return self:send_line(json.encode { type = "user", message = { role = "user",
    content = { { type = "text", text = text } } } }, text, source)
end

-- send_line(line, [text], [source]) -> true, or the turn's seq for a user
-- message | nil, err, code: one stream-json line as it is; with text (the
-- prompt it carries) it is a user message, and a turn: written now if no
-- turn runs, else held until the turns before it have their results
function D:send_line(line, text, source)
  if not self.p or self.exit then return nil, "EPIPE: the agent is not running (restart it)", "EPIPE" end
  if text == nil then return self:write(line) end
  local busy = self.seen < self.expected
  if not busy then
    local ok, err, code = self:write(line)
    if not ok then return nil, err, code end
  end
  self.expected = self.expected + 1
  self.next_seq = self.next_seq + 1
  if busy then
    self.queue[#self.queue + 1] = { line = line, text = text, source = source }
  else
    self.a.tracker:begin(text, source)
  end
  return self.next_seq
end

-- write(line) -> true | nil, err, code: the line to the agent now, recorded
function D:write(line)
  local ok, err, code = self.p:write(line .. "\n")
  if not ok then return nil, err, code end
  self.a:record("i", line)
  self.last_io = core.now()
  return true
end

-- The oldest held user line's turn begins (a result came in), and the line
-- goes to the agent. With no agent to take it (stopped, dead: lose() is
-- answering the lines under way) the turn begins all the same and the
-- next synthetic result ends it as lost: every line keeps its turn and its
-- number, and whoever waits on it is answered.
function D:next_line()
  local nextq = table.remove(self.queue, 1)
  if not nextq then return end
  self.a.tracker:begin(nextq.text, nextq.source)
  if not self.p or self.exit then return end
  local ok, err = self:write(nextq.line)
  if not ok then core.log("warn", "agent: a held line could not be sent: " .. tostring(err)) end
end

-- Synthetic results for the turns a restart or a death lost, so every
-- user line still gets its one result.
function D:lose(why)
  local missing = self.expected - self.seen
  for _ = 1, missing do
    local ev = { type = "result", subtype = "procy_lost", is_error = true, session_id = self.agent_session,
                 result = "procy: " .. why .. "; this turn was lost" }
    self.a:record("o", json.encode(ev))
    self:result(ev)
  end
  self.queue = {}
  return missing
end

-- The process ended on its own: noticed now, not at the next send.
function D:died(r)
  self.exit = r
  local why = ("the agent exited (%s)"):format(r and (r.signal and ("signal " .. r.signal) or ("status " .. tostring(r.code))) or "?")
  if self.stderr_tail then why = why .. ": " .. self.stderr_tail end
  self:lose(why)
  if self.on_died then self.on_died(why) end
  self.a.tracker:watch(0)
end

-- Stops the process: end of input, then TERM and KILL after a grace;
-- forced, TERM and KILL at once.
function D:stop(force)
  self.gen = (self.gen or 0) + 1 -- its end is not a death
  local p = self.p
  if not p then return end
  self.p = nil
  if force then
    p:close()
  else
    p:close_stdin()
    if not p:wait(3) then p:close() end
  end
  core.cancel(self.reader)
  core.cancel(self.errors)
end

-- restart{resume =, force =, timeout =}: graceful waits for every
-- outstanding result first (at most timeout seconds); force does not, and
-- the lost turns end with synthetic error results.
function D:restart(o)
  if not o.force then
    local t0 = core.now()
    while self.seen < self.expected and not self.exit do
      if o.timeout and core.now() - t0 > o.timeout then
        return nil, "ETIMEDOUT: results still outstanding: " .. (self.expected - self.seen), "ETIMEDOUT"
      end
      self.a.tracker:watch(0.5)
    end
  end
  self:stop(o.force)
  self:lose(o.resume and "procy restarted the agent, resuming its session" or "procy restarted the agent")
  local resume = o.resume and self.agent_session or nil
  if o.resume and not resume then core.log("warn", "agent: no session id seen yet; restarting fresh") end
  return self:start(resume)
end

-- interrupt(): a control request, out of band; the turn ends with its result
function D:interrupt()
  if not self.p or self.exit then return nil, "EPIPE: the agent is not running", "EPIPE" end
  self.requests = self.requests + 1
  local line = json.encode { type = "control_request", request_id = "procy-" .. self.requests,
    request = { subtype = "interrupt" } }
  self.control = core.op()
  if self.seen < self.expected then self.interrupting = true end
  self:write(line)
  local ev, err, code = core.await(self.control, 10)
  self.control = nil
  if not ev then return nil, err, code end
  return true
end

-- The watchdog: a turn under way with no I/O for `idle` seconds.
function D:watch()
  local w = self.watchdog
  local nudge = w.nudge or "Continue the task."
  while true do
    core.sleep(math.min(1, w.idle / 4))
    -- a process that has not said a word since it started is starting
    -- (slowly, on a busy machine): it gets longer before it counts as stuck
    local limit = self.heard and w.idle or math.max(3 * w.idle, 30)
    local turn = self.a.tracker.open
    if self.seen < self.expected and not self.exit and core.now() - self.last_io > limit
       and not (w.action ~= "restart" and turn and self.nudged == turn.seq) then
      core.log("warn", ("agent %s: no I/O for %d s: %s"):format(self.a.session:sub(1, 8), math.floor(limit),
        w.action == "restart" and "restarting it with its session" or "nudging it"))
      self.last_io = core.now()
      -- Claude Code takes a line that comes mid-turn as a turn after it:
      -- the nudge is one (held, counted), once per turn; a turn that never
      -- ends needs the restart
      if w.action == "restart" then self:restart { force = true, resume = true }
      else self.nudged = turn and turn.seq end
      self.a:send(nudge, "recipe")
    end
  end
end

function D:hook() end

function D:status()
  return { running = self.p ~= nil and not self.exit, pid = self.p and self.p:pid() or nil,
           expected = self.expected, seen = self.seen, idle = core.now() - (self.last_io or core.now()),
           agent_session = self.agent_session }
end

function D:close()
  if self.dog then core.cancel(self.dog) end
  self:stop()
  self:lose("the agent was closed")
end

return D
