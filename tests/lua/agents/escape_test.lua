-- A sandbox with no known way out, tried from inside (escape_probe.sh, run
-- by tests/lua/lib/escape_run.lua) as root and as an ordinary user, in a
-- terminal and headless: the person's routes and CSRF token, another
-- session's, the host's loopback, the person's /tmp and tmux server,
-- TIOCSTI, procy's process (signal, /proc, ptrace), remounting (also from
-- a user namespace of its own), capabilities, procy.lua, the record and
-- its tape, the agent's settings, ~/.ssh, git's config, hooks and
-- includes, a write outside — all refused; editing, the project's tests,
-- the model through procy — all work. Then the real Claude Code runs the
-- same probe with its Bash tool.
local T = require "lib.tap"
local fs = require "procy.fs"
local proc = require "procy.proc"

local bwrap = os.getenv("PROCY_TEST_BWRAP") or "/usr/local/lib/procy-test/bubblewrap/usr/bin/bwrap"
if not fs.stat(bwrap) then
  print("1..0 # SKIP bubblewrap is not unpacked (.ci/setup unpacks it into /usr/local/lib/procy-test)")
  return 0
end
for _, tool in ipairs { "curl", "tmux", "python3" } do
  local r = proc.run { "sh", "-c", "command -v " .. tool }
  if not r or r.code ~= 0 then
    print("1..0 # SKIP the probe needs " .. tool .. " (.ci/setup installs it)")
    return 0
  end
end

-- relays the TAP lines of a run of escape_run.lua
local function relay(r, who)
  local n = 0
  for line in (r.stdout or ""):gmatch("[^\n]+") do
    local bad, name = line:match("^(n?o?t? ?)ok %d+ %- (.*)$")
    if name then
      n = n + 1
      T.ok(bad == "", name, bad ~= "" and r.stdout:match(line:gsub("%p", "%%%0") .. "\n(#[^\n]*\n?[^\n]*)") or nil)
    end
  end
  T.ok(r.code == 0 and n > 60, who .. ": the run ended, every check made", ("%d checks, exit %s\n%s"):format(n,
    tostring(r.code), (r.stderr or ""):sub(-3000)))
end

local function run(who, dir, wrap)
  local env = { ESCAPE_DIR = dir, HOME = dir .. "/home", ESCAPE_WHO = who, PROCY_TEST_BWRAP = bwrap,
    XDG_CONFIG_HOME = dir .. "/home/.config", XDG_DATA_HOME = dir .. "/home/.local/share", XDG_RUNTIME_DIR = false,
    TMUX = false, PROCY_TEST_KEEP = false }
  local argv = { T.bin, "run", T.src .. "/tests/lua/lib/escape_run.lua" }
  if wrap then argv = table.move(argv, 1, #argv, #wrap + 1, table.move(wrap, 1, #wrap, 1, {})) end
  return assert(proc.run(argv, { env = env, cwd = dir, timeout = 300 }))
end

local top = T.tmpdir()
assert(proc.run { "chmod", "755", top })
fs.mkdir(top .. "/root")
relay(run("root", top .. "/root"), "root")

-- an ordinary user: bwrap unprivileged, in a user namespace of its own
local plain = top .. "/plain"
fs.mkdir(plain)
assert(proc.run { "chown", "65534:65534", plain })
relay(run("an ordinary user", plain, { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups" }),
  "an ordinary user")

-- the real Claude Code, sandboxed by procy agent start --sandbox: its Bash
-- tool runs the probe
local agents = require "lib.agents"
local w = agents.world("claude")
if not w then
  T.skip("Claude Code in the sandbox", "the claude CLI is not installed")
  return T.done()
end
local _ <close> = w.fake.proc
w.env.ANTHROPIC_BASE_URL = false
T.write(w.work .. "/procy.lua", ("return { db = %q, upstream = %q, bwrap = %q }"):format(w.dir .. "/data/rec.db", w.fake.url, bwrap))
local out = w.dir .. "/out"
fs.mkdir(out)
local function procy(...) return T.procy({ ... }, { cwd = w.work, env = w.env, timeout = 180 }) end
-- the project a git repository that includes a config from its work tree;
-- Claude Code's local install in its home
T.git(w.work, "init", "-q")
T.write(w.work .. "/.shared.gitconfig", "[core]\n\tautocrlf = false\n")
T.git(w.work, "config", "include.path", "../.shared.gitconfig")
fs.mkdir(w.env.HOME .. "/.claude/local")
T.write(w.env.HOME .. "/.claude/local/claude", "#!/bin/sh\nexec true\n")
local settings = w.env.HOME .. "/.claude/settings.json"
if not fs.stat(settings) then fs.mkdir(w.env.HOME .. "/.claude") T.write(settings, "{}\n") end
local settings_before = T.read(settings)
local r = procy("agent", "start", "boxed", "--sandbox", "--", "--allowedTools", "Bash")
T.is(r.code, 0, "agent start --sandbox", r.stderr)
-- procy's pid: the supervisor's, from the record
local h = assert(require("procy.db").open(w.dir .. "/data/rec.db", { migrations = false }))
local supervisor = (h:query("SELECT pid FROM agents WHERE name = 'boxed'")[1] or {}).pid or 1
h:close()
local probe = w.work .. "/.escape_probe.sh" -- in the project: the sandbox's /tmp is its own
T.write(probe, T.read(T.src .. "/tests/lua/lib/escape_probe.sh"))
-- (its port is its base URL's; "another session" is its own by its bare
-- id, which only its key opens; the host service and procy's pid are
-- stand-ins here: the runs above try the real ones)
local cmd = ("OUT=%s PORT=${ANTHROPIC_BASE_URL##*:} HOSTPORT=9 OTHER=$PROCY_SESSION TMUXSOCK=/tmp/none/s PROCY_PID=%d "
  .. "RECORD=%s/data/rec.db BASE=$ANTHROPIC_BASE_URL bash %s > results.txt 2>&1; grep -c RESULT results.txt"):format(out, supervisor, w.dir, probe)
r = procy("agent", "send", "boxed", "TOOL:bash[" .. cmd .. "]", "--wait")
T.like(r.stdout, "FAKE: got tool result: %d+", "Claude Code's Bash ran the probe", r.stdout .. r.stderr)
local text = T.read(w.work .. "/results.txt") or ""
for name, verdict in text:gmatch("RESULT (%S+) (%S+)") do
  T.ok(verdict == "held" or verdict == "works", "Claude Code's Bash: " .. name .. " " ..
    (verdict == "works" and "works" or "refused"), verdict)
end
T.ok(text:find("RESULT end works", 1, true), "Claude Code's Bash ran the probe to its end", text)
procy("agent", "stop", "boxed")
T.is(table.concat(fs.dir(out) or {}, " "), "", "nothing Claude Code planted ran, nothing outside written")
T.is(T.read(settings), settings_before, "Claude Code's settings as they were")
return T.done()
