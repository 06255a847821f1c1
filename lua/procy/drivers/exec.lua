-- procy.drivers.exec: a headless agent that runs once per prompt — Codex's
-- `codex exec --json` (then `exec resume THREAD` to go on), or any profile
-- with an exec(ctx, prompt) function. Prompts queue; each turn's process
-- runs to its end; the profile's parse(event) maps each JSON line of its
-- output onto the turn (thread.started, turn.started, item.*,
-- turn.completed for Codex). A line that is not JSON is part of the
-- answer (plain programs).

local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local store = require "procy.store"

local D = {}
D.__index = D

function D.new(a)
  if not a.profile.exec then
    return nil, "EINVAL: the " .. a.profile.name .. " profile has no exec(ctx, prompt) for headless turns", "EINVAL"
  end
  local d = setmetatable({ a = a, queue = {}, next_seq = a.tracker.seq, thread = a.resume,
    mirror = (a.opts or {}).mirror == nil and "preview" or a.opts.mirror, last_io = core.now() }, D)
  d.worker = core.spawn(function() d:work() end)
  d.worker:label("agent exec " .. a.session)
  return d
end

function D:send(text, source)
  self.next_seq = self.next_seq + 1
  self.queue[#self.queue + 1] = { text = text, source = source, seq = self.next_seq }
  if self.wake then core.complete(self.wake) end
  return self.next_seq
end

-- One turn: its process, from start to end.
function D:turn(item)
  local a, tracker = self.a, self.a.tracker
  tracker:begin(item.text, item.source)
  -- the prompt goes on stdin when the profile says so: no size limit (an
  -- argument is at most 128 KiB) and not in the process list
  local argv, input = a.profile.exec(a:ctx { resume = self.thread }, item.text)
  a:record("i", json.encode(argv))
  local p, err = proc.spawn(a:command(argv), { cwd = a.cwd, env = a:env(), stderr = "pipe", stdin = input })
  if not p then
    tracker:finish { status = "error", error = err }
    return
  end
  self.p = p
  local text, failed, done, plain = nil, nil, false, {}
  local errors = core.spawn(function()
    -- its last words: the last line that says something (a Rust backtrace's
    -- frames and blank lines after an error are not)
    for line in p:lines("stderr") do
      if line:find("%S") and not line:match("^%s*%d+: ") and not line:match("^%s*at ")
         and not line:match("^Stack backtrace:") then
        self.stderr_tail = line
      end
    end
  end)
  for line in p:lines() do
    self.last_io = core.now()
    a:record("o", line)
    local ev = json.decode(line)
    local info = type(ev) == "table" and a.profile.parse(ev) or nil
    if not info then
      plain[#plain + 1] = line
    else
      if info.session_id and info.session_id ~= self.thread then
        self.thread = info.session_id
        store.agent_session(a.session, info.session_id)
      end
      if info.text then
        text = info.text
        a:mirror(info.text, self.mirror)
      end
      failed = info.failed or failed
      done = done or info.done
    end
  end
  local r = p:wait()
  core.cancel(errors)
  self.p = nil
  if not text and #plain > 0 then text = table.concat(plain, "\n") end
  local ok = (done or not a.profile.parse_done) and not failed and r.code == 0
  local interrupted = self.interrupted == p
  a:settle() -- its calls recorded, so the turn has all of them
  tracker:finish { status = interrupted and "interrupted" or ok and "done" or "error", response = text,
    error = not ok and not interrupted and (failed or ("exit status " .. tostring(r.code) .. (self.stderr_tail and (": " .. self.stderr_tail) or ""))) or nil }
end

function D:work()
  while true do
    local item = table.remove(self.queue, 1)
    if item then
      self:turn(item)
    else
      self.wake = core.op()
      core.await(self.wake)
      self.wake = nil
    end
  end
end

function D:interrupt()
  if self.p then
    self.interrupted = self.p -- its turn ends interrupted, whatever its exit status
    self.p:kill("INT")
  end
  return true
end

-- restart{resume =}: the turn under way (if any) is ended, as
-- interrupted; the next prompt starts a new thread unless resume.
-- The process is signalled, not closed: its turn still waits for it.
function D:restart(o)
  if self.p then
    self.interrupted = self.p
    self.p:kill("TERM")
  end
  if not o.resume then self.thread = nil end
  return true
end

function D:hook() end

function D:status()
  return { running = self.p ~= nil, pid = self.p and self.p:pid() or nil, queued = #self.queue,
           idle = core.now() - self.last_io, agent_session = self.thread }
end

function D:close()
  core.cancel(self.worker)
  if self.p then self.p:close() end
end

return D
