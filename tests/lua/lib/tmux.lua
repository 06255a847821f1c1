-- tmux.lua: drives programs in a real terminal — a detached tmux server of
-- our own — for tests: type keys, read the screen, resize, find pids.

local core = require "procy.core"
local proc = require "procy.proc"

local M = {}
M.__index = M

local count = 0

-- quote(s): s as one word for the shell tmux runs a pane's command with
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- new{cmd = "shell command", cols =, rows =, env = {K = v}} -> a terminal
-- (v false: K unset, as spawn's env does)
function M.new(o)
  count = count + 1
  local self = setmetatable({ socket = ("procy-test-%d-%d"):format(math.floor(core.time() * 1000) % 100000000, count) }, M)
  -- The pane gets its size after it starts, and output written before that
  -- can be lost: start it idle, then run the command in the sized pane. The
  -- command ends in a sleep, so the pane and its last screen stay.
  assert(self:tmux { "new-session", "-d", "-s", "main", "-x", tostring(o.cols or 100),
                     "-y", tostring(o.rows or 30), "sleep 600" })
  local exports = {}
  for k, v in pairs(o.env or {}) do
    exports[#exports + 1] = v == false and ("unset " .. k .. "; ") or ("export " .. k .. "=" .. M.quote(v) .. "; ")
  end
  assert(self:tmux { "respawn-pane", "-k", "-t", "main", table.concat(exports) .. o.cmd .. "; exec sleep 600" })
  return self
end

function M:tmux(args)
  local argv = { "tmux", "-L", self.socket, "-f", "/dev/null" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r, err = proc.run(argv, { timeout = 10 })
  if not r then return nil, err end
  if r.code ~= 0 then return nil, "tmux " .. args[1] .. ": " .. r.stderr end
  return r.stdout
end

-- keys(...): tmux key names ("Enter", "Escape", "C-c") or literal text with type()
function M:keys(...) return self:tmux { "send-keys", "-t", "main", ... } end
function M:type(text) return self:tmux { "send-keys", "-t", "main", "-l", text } end

-- screen() -> what the pane shows, one line per row
-- a `!` command typed as a person does: `!`, a moment for procy's command
-- line to open, the line, Enter
function M:command(line)
  self:type("!")
  core.sleep(0.2)
  self:type(line)
  return self:keys("Enter")
end
function M:screen() return self:tmux { "capture-pane", "-p", "-t", "main" } or "" end

-- wait_for(pattern, [seconds]) -> the screen once it matches, or nil and the last screen
function M:wait_for(pattern, seconds)
  local deadline = core.now() + (seconds or 10)
  local screen
  repeat
    screen = self:screen()
    if screen:find(pattern) then return screen end
    core.sleep(0.05)
  until core.now() > deadline
  return nil, screen
end

-- submit(text, done, [seconds]) -> whether the screen came to match done:
-- a prompt typed into an agent's TUI and submitted. Enter waits until the
-- prompt shows and is pressed again while it still sits in the box: a TUI
-- takes an Enter that comes in the same burst as the keys (under load,
-- tmux's keys arrive late and together) as part of a paste.
function M:submit(text, done, seconds)
  self:type(text)
  self:wait_for(text:gsub("%p", "%%%0"), 15)
  for _ = 1, 3 do
    core.sleep(0.6)
    self:keys("Enter")
    if self:wait_for(done, seconds or 20) then return true end
  end
  return false
end

-- see(pattern, name, [seconds]) -> the screen: a check that the pane
-- comes to match pattern (20 s by default), the last screen its diagnostic
function M:see(pattern, name, seconds)
  local screen, last = self:wait_for(pattern, seconds or 20)
  require("lib.tap").ok(screen, name, last)
  return screen
end

function M:resize(cols, rows)
  return self:tmux { "resize-window", "-t", "main", "-x", tostring(cols), "-y", tostring(rows) }
end

-- pane_pid() -> the pid of the pane's shell
function M:pane_pid()
  return tonumber((self:tmux { "display-message", "-p", "-t", "main", "#{pane_pid}" } or ""):match("%d+"))
end

-- children(pid) -> {pid = comm} of pid's children, read from /proc
function M.children(pid)
  local out = {}
  for _, name in ipairs(require("procy.fs").dir("/proc") or {}) do
    if name:match("^%d+$") then
      local f = io.open("/proc/" .. name .. "/stat")
      local stat = f and f:read("a")
      if f then f:close() end
      local comm, ppid = (stat or ""):match("^%d+ %((.-)%) %a (%d+)")
      if tonumber(ppid) == pid then out[tonumber(name)] = comm end
    end
  end
  return out
end

local function comm_of(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local c = f:read("a"):match("^%d+ %((.-)%)")
  f:close()
  return c
end

-- find(comm, [seconds]) -> pid of a process named comm: the pane's own
-- process (a shell may exec its last command) or one below it
function M:find(comm, seconds)
  local deadline = core.now() + (seconds or 5)
  repeat
    local top = self:pane_pid()
    if top and comm_of(top) == comm then return top end
    local todo = { top }
    while #todo > 0 do
      local pid = table.remove(todo)
      for child, name in pairs(M.children(pid)) do
        if name == comm then return child end
        todo[#todo + 1] = child
      end
    end
    core.sleep(0.05)
  until core.now() > deadline
end

function M:kill()
  self:tmux { "kill-server" }
end

return M
