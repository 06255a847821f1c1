-- procy.claudix: procy in the place of lproc's claudix proxies (and of
-- codexx, which never worked): stream-json lines in on stdin, the agent's
-- lines out on stdout, one-line previews of its text on stderr, and
-- claudix's restart protocol, kept for compatibility:
--
-- * an input object with "_CLAUDIX_": "RESTART": a graceful restart (after
--   every outstanding result), the rest of the object sent on;
-- * a marker in a user message's first text holding one, removed before
--   it is sent: [CLAUDIX:RESTART] (graceful), [CLAUDIX:FORCE_RESTART] (at
--   once: each outstanding user line answered by a synthetic CLAUDIX_FAIL
--   result), ..._RESUME (the new process resumes the agent's last
--   session), ..._NO_SEND (the message is dropped, and answered by a
--   result asking to resend it).
--
-- Exactly one result answers each user line, whatever happens: a restart,
-- the agent's death (noticed at once; it is started again, resuming its
-- session, at the next line), a line that is not JSON. The counts are
-- this file's own, so a dropped message never skews them, and a resume
-- applies to the restart that asked for it only.
--
-- Claude Code runs on procy's headless driver (procy.drivers.stream):
-- recorded like any procy agent, its API through procy's proxy. Codex
-- runs a `codex exec --json` per message (procy.drivers.exec), and its
-- turns come out as Claude-shaped `assistant` and `result` lines.

local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"

local M = {}

-- The markers, longest first (one is a prefix of another).
M.markers = {
  { text = "[CLAUDIX:FORCE_RESTART_RESUME_NO_SEND]", force = true, resume = true, no_send = true },
  { text = "[CLAUDIX:FORCE_RESTART_RESUME]", force = true, resume = true },
  { text = "[CLAUDIX:FORCE_RESTART_NO_SEND]", force = true, no_send = true },
  { text = "[CLAUDIX:FORCE_RESTART]", force = true },
  { text = "[CLAUDIX:RESTART]" },
}

M.texts = {
  fail = "Claude Code Failure. Will Restart. The Agent will lose its memory.",
  fail_resume = "Claude Code Failure. Will Restart. The session will be resumed with previous context preserved.",
  not_sent = "Claude Code was restarted. Your previous message was NOT sent to it. Please resend it.",
}

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function take_marker(text)
  for _, m in ipairs(M.markers) do
    local i, j = text:find(m.text, 1, true)
    if i then return m, trim(text:sub(1, i - 1) .. text:sub(j + 1)) end
  end
end

-- parse(line) -> {kind = "blank"|"bad"|"json"|"user", obj, line, text,
-- restart = {force, resume, no_send} | nil, err}: what an input line is.
-- A user message's marker is taken out of it (line is what to send).
function M.parse(line)
  if line:match("^%s*$") then return { kind = "blank" } end
  local obj, err = json.decode(line)
  if type(obj) ~= "table" or obj[1] ~= nil then
    return { kind = "bad", err = err or "not a JSON object" }
  end
  local m = { kind = "json", obj = obj, line = line }
  if obj._CLAUDIX_ == "RESTART" then
    obj._CLAUDIX_ = nil
    m.restart = {}
    m.line = next(obj) ~= nil and json.encode(obj) or nil
  end
  local msg = type(obj.message) == "table" and obj.message
  -- a user message (Claude Code takes one with no role as the user's too)
  if obj.type == "user" and msg and (msg.role == "user" or msg.role == nil) then
    m.kind = "user"
    local texts = {}
    if type(msg.content) == "string" then
      local mk, rest = take_marker(msg.content)
      if mk then msg.content, m.restart = rest, m.restart or mk end
      texts[1] = msg.content
    elseif type(msg.content) == "table" then
      local found = false
      for _, b in ipairs(msg.content) do
        if type(b) == "table" and b.type == "text" and type(b.text) == "string" then
          if not found then
            local mk, rest = take_marker(b.text)
            if mk then b.text, m.restart, found = rest, m.restart or mk, true end
          end
          texts[#texts + 1] = b.text
        end
      end
    end
    m.text = table.concat(texts, "\n")
    if m.restart and m.line then m.line = json.encode(obj) end
  end
  return m
end

-- ---- the front: counts, restarts, synthetic results ------------------------------------------

local Front = {}
Front.__index = Front

local function new_front(o)
  local name = o.agent == "codex" and "codexx" or "claudix"
  return setmetatable({ expected = 0, seen = 0, out = o.out or function(s)
    io.stdout:write(s, "\n")
    io.stdout:flush()
  end, say = o.say or function(s) io.stderr:write("[", name, "] ", s, "\n") end, changed = nil }, Front)
end

function Front:emit(obj) self.out(json.encode(obj)) end

function Front:result_seen()
  self.seen = self.seen + 1
  if self.changed then core.complete(self.changed) self.changed = nil end
end

-- A synthetic result: one more user line answered.
function Front:fail(text, session)
  self:emit { type = "result", subtype = "CLAUDIX_FAIL", is_error = true, result = text, session_id = session,
              duration_ms = 0, num_turns = 0 }
end

-- Every outstanding user line answered with a CLAUDIX_FAIL result.
function Front:fail_outstanding(text, session)
  local missing = self.expected - self.seen
  for _ = 1, missing do self:fail(text, session) end
  self.seen = self.expected
  if self.changed then core.complete(self.changed) self.changed = nil end
  return missing
end

-- drain(why): waits until every user line sent has its result, saying
-- why it waits and for how many, once, and again only when that changes
function Front:drain(why)
  local said
  while self.seen < self.expected do
    local n = self.expected - self.seen
    if n ~= said then
      self.say(("%s: waiting for %d result(s)"):format(why, n))
      said = n
    end
    self.changed = core.op()
    core.await(self.changed, 2)
  end
end

-- ---- the backends ------------------------------------------------------------------------

-- Claude Code on the stream-json driver: its lines forwarded unchanged.
local function claude_backend(front, o)
  local agent = require "procy.agent"
  local b = { muted = false }
  local args, resume = {}, nil
  local i = 1
  while i <= #o.args do -- a --resume given is the first start's, not every restart's
    if o.args[i] == "--resume" and o.args[i + 1] then resume, i = o.args[i + 1], i + 2
    else args[#args + 1], i = o.args[i], i + 1 end
  end
  local a, err, code = agent.open { profile = "claude", mode = "headless", cwd = o.cwd, args = args, resume = resume,
    mirror = o.mirror, sandbox = o.sandbox, env = o.env,
    on_line = function(line, ev)
      if b.muted then return end -- a process being stopped: its late lines answer nothing now
      if ev and ev.type == "result" and front.seen >= front.expected then
        -- a turn Claude Code took of its own (a background agent's report):
        -- no line asked for it, so it goes out as a system line, not a
        -- result, and every line keeps its one result
        front.say("a result no line asked for: passed on as a system line")
        return front:emit { type = "system", subtype = "procy_unasked_result", result = ev }
      end
      front.out(line)
      if ev and ev.type == "result" then front:result_seen() end
    end,
    on_died = function(why)
      b.dead = why
      front.say("Claude Code died: " .. why .. "; it is started again at the next line"
        .. (b:session() and (", resuming session " .. b:session()) or ""))
      front:fail_outstanding(M.texts.fail_resume, b:session())
    end }
  if not a then return nil, err, code end
  a.name = "claudix"
  b.agent = a
  function b:session() return a:status().agent_session end
  function b:send(m)
    if m.kind == "user" then return a.driver:send_line(m.line, m.text, "human") end
    return a.driver:send_line(m.line)
  end
  function b:restart(force, resume)
    self.muted = true
    local session = resume and self:session() or nil -- what a resume continues: none seen yet, a fresh start
    local ok, rerr = a:restart { force = force, resume = resume }
    self.muted, self.dead = false, nil
    if not ok then front.say("the restart failed: " .. tostring(rerr))
    elseif session then front.say(("restarted, resuming session %s: PID %s"):format(session, tostring(a:status().pid)))
    else
      front.say(("restarted fresh%s: PID %s"):format(resume and " (no session id seen yet to resume)" or "",
        tostring(a:status().pid)))
    end
    return ok, rerr
  end
  function b:close() a:close() end
  front.say(("started PID %s: %s"):format(tostring(a:status().pid), table.concat(a.profile.headless_args(a:ctx {}), " ")))
  return b
end

-- Codex: a `codex exec` per message; each turn's end as Claude's lines.
local function codex_backend(front, o)
  local agent = require "procy.agent"
  local a, err, code = agent.open { profile = "codex", mode = "headless", cwd = o.cwd, args = o.args,
    mirror = o.mirror, sandbox = o.sandbox, env = o.env }
  if not a then return nil, err, code end
  a.name = "codexx"
  local b = { agent = a, waiting = {} }
  function b:session() return a:status().agent_session end
  function b:send(m)
    if m.kind ~= "user" then
      front.say("codex takes user messages only; a " .. tostring(m.obj.type) .. " line was not sent")
      return true
    end
    local seq = a:send(m.text, "human")
    local w = {}
    w.task = core.spawn(function()
      local t = a:wait_turn { seq = seq }
      if w.gone then return end
      b.waiting[w] = nil
      local ok = t and t.status == "done"
      local text = t and (t.response ~= json.null and t.response or t.error) or "the turn was lost"
      local sid = b:session()
      if ok and text ~= json.null then
        front:emit { type = "assistant", session_id = sid, parent_tool_use_id = json.null,
          message = { type = "message", role = "assistant", model = "codex", content = { { type = "text", text = text } } } }
      end
      local u = t and t.usage or {}
      front:emit { type = "result", subtype = ok and "success" or "error_during_execution", is_error = not ok,
        result = text ~= json.null and text or "", session_id = sid, num_turns = 1,
        duration_ms = t and t.duration ~= json.null and math.floor(t.duration * 1000) or 0,
        total_cost_usd = t and t.cost ~= json.null and t.cost or json.null,
        usage = { input_tokens = u.input_tokens or 0, output_tokens = u.output_tokens or 0,
                  cache_read_input_tokens = u.cache_read_tokens or 0 } }
      front:result_seen()
    end)
    b.waiting[w] = true
    return true
  end
  function b:restart(force, resume)
    if force then -- the turns under way and queued are answered by the front
      for w in pairs(self.waiting) do
        w.gone = true
        core.cancel(w.task)
      end
      self.waiting = {}
      a.driver.queue = {}
    end
    return a:restart { resume = resume }
  end
  function b:close() a:close() end
  front.say("codex ready: codex exec --json per message")
  return b
end

-- ---- the loop ------------------------------------------------------------------------------

-- stdin's lines without blocking the loop (the proxy, the driver and the
-- recorder run meanwhile): read by a `cat` child, whose pipe the loop
-- polls. lproc feeds it from a pipe (lptail); a file works too.
local function input_lines()
  local p = assert(proc.spawn({ "cat" }, { stdin = proc.inherit, stderr = false }))
  return p:lines(), p
end

-- run{agent = "claude"|"codex", args =, cwd =, mirror =, sandbox =, env =,
-- lines =, out =, say =} -> exit status. lines: an iterator of input lines
-- (default: stdin); out(line), say(text): stdout and stderr by default.
function M.run(o)
  local front = new_front(o)
  local b, err = (o.agent == "codex" and codex_backend or claude_backend)(front, o)
  if not b then
    front.say(tostring(err))
    return 1
  end
  local lines, cat = o.lines, nil
  if not lines then lines, cat = input_lines() end
  local n = 0
  for line in lines do
    n = n + 1
    local m = M.parse(line)
    if m.kind == "bad" then
      -- never sent (it could crash the agent and lose its session), and
      -- answered, so an orchestrator waiting for a result goes on
      front.say(("input line %d is not a JSON object (%s): not sent"):format(n, m.err))
      front:fail(("procy claudix: input line %d is not a JSON object (%s); it was not sent"):format(n, m.err), b:session())
    elseif m.kind ~= "blank" then
      local r = m.restart
      if r and r.force then
        front.say("FORCE_RESTART" .. (r.resume and "_RESUME" or "") .. (r.no_send and "_NO_SEND" or "")
          .. ": " .. (front.expected - front.seen) .. " result(s) outstanding, answered with CLAUDIX_FAIL")
        front:fail_outstanding(r.resume and M.texts.fail_resume or M.texts.fail, b:session())
        b:restart(true, r.resume)
      elseif r then
        front:drain("RESTART requested")
        b:restart(false, false)
      elseif b.dead then -- died since the last line: back, with its session
        b:restart(false, true)
      end
      if r and r.no_send then
        front:fail(M.texts.not_sent, b:session())
      elseif m.line then
        local ok, serr = b:send(m)
        if ok and m.kind == "user" then
          front.expected = front.expected + 1
        elseif not ok then
          front.say("not sent: " .. tostring(serr))
          if m.kind == "user" then front:fail("procy claudix: the message could not be sent: " .. tostring(serr), b:session()) end
        end
      end
    end
  end
  -- end of input: the answers still coming are waited for, as claude -p does
  front:drain("end of input")
  b:close()
  if cat then cat:close() end
  return 0
end

return M
