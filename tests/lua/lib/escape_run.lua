-- escape_run.lua: what escape_test.lua runs as root and as an ordinary
-- user (`procy run` it, with ESCAPE_DIR a directory of that user's and
-- HOME inside it). procy's server with a session and its key, another
-- session, a service on the host's loopback, the person's tmux server, a
-- git repository as the project; escape_probe.sh in the sandbox, in a
-- terminal and headless: every way out refused, the agent's work done.
-- Then, outside: nothing the agent planted ran, what it made where procy
-- loads from was moved aside, its API call recorded in its session.
local T = require "lib.tap"
local core = require "procy.core"
local fs = require "procy.fs"
local proc = require "procy.proc"
local http = require "procy.http"
local config = require "procy.config"

local dir = assert(os.getenv("ESCAPE_DIR"), "ESCAPE_DIR")
local home = os.getenv("HOME")
local who = os.getenv("ESCAPE_WHO") or "root"
local work, out = dir .. "/work", dir .. "/out"
for _, d in ipairs { work, out, home, home .. "/.claude", home .. "/.ssh" } do fs.mkdir(d) end
T.write(home .. "/.claude/settings.json", "{}\n")
T.write(home .. "/.ssh/id_test", "PRIVATE\n")
assert(config.load { config = T.write(dir .. "/procy.lua", ("return { db = %q, bwrap = %q }"):format(
  dir .. "/data/rec.db", os.getenv("PROCY_TEST_BWRAP"))) })
local store = require "procy.store"
local serve = require "procy.serve"
local sandbox = require "procy.sandbox"
T.git(work, "init", "-q")
T.write(work .. "/README", "project\n")
T.write(work .. "/procy.lua", "return {}\n") -- the person's own
fs.mkdir(work .. "/.claude")
T.write(work .. "/.claude/settings.json", "{}\n")
T.write(work .. "/.shared.gitconfig", "[core]\n\tautocrlf = false\n") -- a config the repository includes
fs.mkdir(home .. "/.claude/local")
T.write(home .. "/.claude/local/claude", "#!/bin/sh\nexec true\n") -- Claude Code's local install
-- the person's own files where a link the agent makes could point
local victim = dir .. "/victim"
fs.mkdir(victim)
T.write(victim .. "/settings.json", "{\"mine\": true}\n")
T.git(work, "add", "-A")
T.git(work, "-c", "user.name=p", "-c", "user.email=p@l", "commit", "-qm", "base")
T.git(work, "config", "include.path", "../.shared.gitconfig")

local fake = require("lib.fake").start(dir .. "/fake")
local _f <close> = fake.proc
local id = assert(store.new_session { argv = { "bash" }, cwd = work, mode = "headless" })
local other = assert(store.new_session { argv = { "bash" }, cwd = work, mode = "headless" })
local old = assert(store.new_session { argv = { "bash" }, cwd = work, mode = "headless" }) -- one with no key
local s = assert(serve.start { port = 0, session = id, upstream = fake.url, openai = fake.url })
local key = store.random_hex(16)
s.srv:key(key, id)
s.srv:key(store.random_hex(16), other)
-- a service of the host's, on its loopback
local host = assert(http.serve { port = 0 })
core.spawn(function()
  while true do
    local req = host:accept()
    if not req then return end
    req:respond(200, {}, "host")
  end
end)
-- a service on the machine's other address: the network beyond the
-- host's loopback (reached only with network = "full")
local addr = (proc.run { "hostname", "-I" } or { stdout = "" }).stdout:match("^(%d+%.%d+%.%d+%.%d+)")
local wide = addr and http.serve { host = "0.0.0.0", port = 0, token = "escape-test-wide-token-0123456789" }
-- a socket of the host's under /run (root may make one there)
local runsock = "/run/procy-escape-" .. store.random_hex(6) .. ".sock"
local runsrv = proc.spawn({ "python3", "-c", "import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); "
  .. "s.listen(); print('up', flush=True); time.sleep(300)", runsock }, { stderr = false })
if not (runsrv and (runsrv:lines()() or ""):find("up")) then runsock = nil end
-- the person's tmux server, its socket in a directory of /tmp
local tmuxdir = "/tmp/procy-escape-" .. store.random_hex(6)
fs.mkdir(tmuxdir, 448)
local sock = tmuxdir .. "/default"
local tmux = proc.run { "tmux", "-S", sock, "new-session", "-d", "sleep 300" }
T.ok(tmux and tmux.code == 0, who .. ": (the person's tmux server runs)", tmux and tmux.stderr)

local env = { BASE = s.url .. "/s/" .. key, PORT = tostring(s.port), OTHER = other, HOSTPORT = tostring(host:port()),
  OLD = old, VICTIM = victim, RUNSOCK = runsock or false, OUT = out, TMUXSOCK = sock, OUTSIDE_URL = wide and ("http://%s:%d/"):format(addr, wide:port()) or false, PROCY_PID = tostring(select(2, store.process_id("self"))), RECORD = store.path() }
-- the probe in the project (the sandbox's /tmp is its own: a checkout
-- under /tmp is not there)
local probe = work .. "/.escape_probe.sh"
T.write(probe, T.read(T.src .. "/tests/lua/lib/escape_probe.sh"))

local function results(text, how, err)
  local n = 0
  for name, verdict, what in text:gmatch("RESULT (%S+) (%S+) ?([^\n]*)") do
    n = n + 1
    T.ok(verdict == "held" or verdict == "works", ("%s, %s: %s %s"):format(who, how, name,
      verdict == "works" and "works" or "refused"), verdict .. " " .. what)
  end
  T.ok(text:find("RESULT end works", 1, true), ("%s, %s: the probe ran to its end"):format(who, how),
    text:sub(-2000) .. "\n--- stderr:\n" .. tostring(err or ""):sub(-2000))
  return n
end

-- headless
local argv, box = assert(sandbox.wrap({ "bash", probe }, { cwd = work, port = s.port }))
local r = assert(proc.run(argv, { env = env, timeout = 120 }))
box:finish()
results(r.stdout, "headless", r.stderr)
if r.stderr ~= "" then io.stderr:write(r.stderr) end

-- in a terminal, as procy runs an agent (its box takes the terminal)
argv, box = assert(sandbox.wrap({ "bash", probe }, { cwd = work, port = s.port, pty = true }))
local p = assert(proc.spawn(argv, { env = env, pty = { cols = 200, rows = 50, ctty = false } }))
local text = {}
while true do
  local chunk = p:read()
  if not chunk then break end
  text[#text + 1] = chunk
end
p:wait(60)
box:finish()
results(table.concat(text):gsub("\r", ""), "in a terminal")

-- network "full": the machine's other addresses, and not its loopback
local full = { writable = { "~/.claude", "~/.claude.json", "~/.codex" }, network = "full" }
local tun = io.open("/dev/net/tun", "r+b")
if tun then tun:close() end
local can_full = require("procy.sandbox").find_slirp() and tun
if can_full then
  argv, box = assert(sandbox.wrap({ "bash", probe }, { cwd = work, port = s.port, profile = full }))
  env.NETWORK = "full"
  -- (its probe waits out unreachable addresses: on a loaded machine, minutes)
  r = assert(proc.run(argv, { env = env, timeout = 240 }))
  box:finish()
  results(r.stdout, "network full", ("exit %s, %s"):format(tostring(r.code), tostring(r.stderr)))
  env.NETWORK = false
elseif not tun then
  local _, err = sandbox.wrap({ "true" }, { cwd = work, profile = full })
  T.like(err, "needs /dev/net/tun", who .. ", network full: refused, saying why (this machine's /dev/net/tun is not this user's)")
else
  T.skip(who .. ", network full", "slirp4netns is not installed (.ci/setup installs it)")
end

-- outside: nothing ran, what was made was moved aside, the work recorded
local marks = fs.dir(out) or {}
T.is(table.concat(marks, " "), "", who .. ": no program the agent planted ran, no file outside was written")
T.is(T.read(work .. "/procy.lua"), "return {}\n", who .. ": the person's procy.lua as it was")
local aside = {}
for _, f in ipairs(fs.dir(work .. "/sub") or {}) do if f:find("^procy%.lua%.sandboxed%-") then aside[#aside + 1] = f end end
T.ok(not fs.stat(work .. "/sub/procy.lua") and #aside >= 1, who .. ": a procy.lua the agent made in a subdirectory was moved aside",
  table.concat(fs.dir(work .. "/sub") or {}, " "))
local snap = assert(require("procy.snapshot").open(work))
T.ok(snap:take("refs/procy/escape/1", "after the agent"), who .. ": procy's snapshot of the agent's tree")
T.is(table.concat(fs.dir(out) or {}, " "), "", who .. ": and no planted filter, fsmonitor or hook ran in it")
T.is(T.read(home .. "/.claude/settings.json"), "{}\n", who .. ": the agent's settings as they were")
T.is(T.read(work .. "/.claude/settings.json"), "{}\n", who .. ": the project's agent settings as they were")
T.ok(not fs.stat(work .. "/.git/commondir"), who .. ": the commondir the agent made was moved aside")
T.ok(not fs.stat(work .. "/sub2/.git"), who .. ": the repository the agent made in the project was moved aside")
T.ok(not fs.stat(work .. "/node_modules/stash/procy.lua"), who .. ": a procy.lua stashed in node_modules was moved aside")
T.is(T.read(victim .. "/settings.json"), "{\"mine\": true}\n", who .. ": a link the agent made is moved, never what it names")
T.ok(not fs.stat(work .. "/.gemini", true), who .. ": (the link itself moved aside)")
local nested = proc.run({ "git", "status", "--short" }, { cwd = work .. "/sub2" })
T.is(table.concat(fs.dir(out) or {}, " "), "", who .. ": the person's git in that directory runs nothing of the agent's")
T.git(work, "status", "--short")
T.is(table.concat(fs.dir(out) or {}, " "), "", who .. ": the person's own git status after it runs nothing of the agent's")
T.ok(not fs.stat(sock) or proc.run({ "tmux", "-S", sock, "list-windows" }).stdout:match("^[^\n]*\n?$"),
  who .. ": the person's tmux server has no new window")
local deadline = core.now() + 10
local calls
repeat
  calls = store.open():query("SELECT count(*) AS n FROM api_calls WHERE session_id = ?", id)[1].n
  if calls >= 6 then break end
  core.sleep(0.1)
until core.now() > deadline
T.is(calls, can_full and 6 or 4, who .. ": the agent's model calls recorded in its session (a run's own, and the one it tagged with another session's id)")
T.is(store.open():query("SELECT count(*) AS n FROM api_calls WHERE session_id = ?", old)[1].n, 0,
  who .. ": none filed under the session it named without that session's key")
T.is(store.open():query("SELECT count(*) AS n FROM api_calls WHERE session_id = ?", other)[1].n, 0,
  who .. ": none in the other session")
-- what an agent says its own session id is goes on a command line (its
-- --resume, procy fork's outside any sandbox): never an option
store.agent_session(id, "--settings={\"hooks\":{}}")
T.is(store.open():query("SELECT agent_session_id FROM sessions WHERE id = ?", id)[1].agent_session_id, nil,
  who .. ": an agent session id that is an option is not kept")
T.ok(store.agent_id("0b9e6a52-7c1d-4f3e-9a8b-2d5c6e7f8a9b") and not store.agent_id("-x") and not store.agent_id("a b"),
  who .. ": ids are letters, digits, - and _")
local st = fs.stat(store.path())
T.is(st and st.mode, 384, who .. ": the record is 0600")
local dst = fs.stat(dir .. "/data")
T.is(dst and dst.mode, 448, who .. ": in a 0700 directory")

proc.run { "tmux", "-S", sock, "kill-server" }
proc.run { "rm", "-rf", tmuxdir }
host:close()
if runsrv then runsrv:kill("KILL") end
if runsock then os.remove(runsock) end
if wide then wide:close() end
serve.stop(s)
return T.done()
