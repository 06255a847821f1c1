-- tap.lua: assertions printing TAP, and helpers for tests run with
-- `procy run`. A test file ends with `return T.done()`.

local proc = require "procy.proc"

local T = {}
local count, failures = 0, 0

-- A failure goes to stderr too, with its diagnostics: meson reads stdout
-- for the TAP stream, and `meson test --print-errorlogs` shows stderr.
local function report(pass, name, diag)
  count = count + 1
  local line = (pass and "ok " or "not ok ") .. count .. " - " .. (name or "")
  print(line)
  if not pass then
    failures = failures + 1
    local where = debug.getinfo(2, "Sl") -- T.ok and friends tail-call report
    local text = ("#   failed at %s:%d"):format(where.short_src, where.currentline)
    if diag then text = text .. "\n#   " .. diag:gsub("\n", "\n#   ") end
    print(text)
    io.stderr:write(line, "\n", text, "\n")
  end
  io.stdout:flush()
  return pass
end

function T.ok(cond, name, diag) return report(cond and true or false, name, diag) end

function T.is(got, want, name)
  return report(got == want, name, ("got:  %s\nwant: %s"):format(tostring(got), tostring(want)))
end

function T.like(got, pattern, name)
  local s = tostring(got)
  return report(s:find(pattern) ~= nil, name, ("got:  %s\nwant match: %s"):format(s, pattern))
end

-- skip(name, reason): a check that cannot mean anything here, said so
function T.skip(name, reason)
  count = count + 1
  print("ok " .. count .. " - " .. name .. " # SKIP " .. reason)
end

T.sanitized = (os.getenv("PROCY_SANITIZED") or "") ~= ""

local made = {} -- the directories T.tmpdir made, removed by T.done

-- done() -> the exit status: 1 when a test failed. The test's directories
-- go, unless PROCY_TEST_KEEP is set (to look at what a failure left).
function T.done()
  print("1.." .. count)
  if (os.getenv("PROCY_TEST_KEEP") or "") == "" then
    for _, dir in ipairs(made) do proc.run { "rm", "-rf", "--", dir } end
  else
    for _, dir in ipairs(made) do io.stderr:write("# kept ", dir, "\n") end
  end
  return failures > 0 and 1 or 0
end

T.bin = assert(os.getenv("PROCY_BIN"), "PROCY_BIN is not set (run through meson test)")
T.src = assert(os.getenv("PROCY_SRC"), "PROCY_SRC is not set (run through meson test)")

-- tmpdir() -> a new empty directory
function T.tmpdir()
  local r = assert(proc.run { "mktemp", "-d", "/tmp/procy-test-XXXXXX" })
  local dir = r.stdout:gsub("%s+$", "")
  made[#made + 1] = dir
  return dir
end

function T.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

function T.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- git(cwd, ...) -> stdout (trimmed), exit code, stderr: git with a fixed identity
function T.git(cwd, ...)
  local r = assert(proc.run({ "git", ... }, { cwd = cwd, env = { GIT_AUTHOR_NAME = "t", GIT_AUTHOR_EMAIL = "t@t",
    GIT_COMMITTER_NAME = "t", GIT_COMMITTER_EMAIL = "t@t" } }))
  return (r.stdout:gsub("%s+$", "")), r.code, r.stderr
end

-- b64(s) -> s in base64, on one line
-- row(h, seconds, sql, ...) -> the first row sql gives on the record h,
-- asked every 0.2 s until there is one or seconds have passed (then nil)
function T.row(h, seconds, sql, ...)
  local core = require "procy.core"
  local deadline = core.now() + seconds
  repeat
    local row = h:query(sql, ...)[1]
    if row then return row end
    core.sleep(0.2)
  until core.now() > deadline
end

function T.b64(s) return assert(proc.run({ "base64", "-w0" }, { stdin = s })).stdout end

-- procy(args, opts) -> result of running the procy binary with args
function T.procy(args, opts)
  local argv = { T.bin }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return assert(proc.run(argv, opts or {}))
end

-- Is pid gone? (A zombie is dead too: the process is gone, only its entry
-- waits for a parent that may never reap it.)
function T.dead(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local state = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  return state == nil or state == "Z"
end

-- Waits up to `seconds` for pid to be gone: a SIGKILL is delivered by the
-- kernel a moment after kill() returns.
function T.gone(pid, seconds)
  local core = require "procy.core"
  local deadline = core.now() + (seconds or 2)
  while not T.dead(pid) do
    if core.now() > deadline then return false end
    core.sleep(0.01)
  end
  return true
end

return T
