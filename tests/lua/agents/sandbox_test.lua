-- --sandbox: agents inside bubblewrap. A write outside the allowed paths
-- fails inside, one inside succeeds; SANDBOX=1; the network kept; a
-- missing bwrap a clear error and no unsandboxed run. Through
-- procy.sandbox directly, an interactive `procy --sandbox -- sh` in a
-- real terminal, and the real Claude Code started by `procy agent start
-- --sandbox`, whose Bash call tries both.
local T = require "lib.tap"
local core = require "procy.core"
local fs = require "procy.fs"
local proc = require "procy.proc"
local json = require "procy.json"
local sandbox = require "procy.sandbox"
local config = require "procy.config"

-- .ci/setup unpacks bubblewrap here rather than installing it (Codex's
-- own sandbox breaks on Debian 12's bwrap on PATH); else the system's
local bwrap = os.getenv("PROCY_TEST_BWRAP") or "/usr/local/lib/procy-test/bubblewrap/usr/bin/bwrap"
if not fs.stat(bwrap) then bwrap = "bwrap" end
local dir = T.tmpdir()
-- (the record in a directory of its own: the project is inside dir)
local conf = T.write(dir .. "/procy.lua", ("return { db = %q, bwrap = %q }"):format(dir .. "/data/rec.db", bwrap))
assert(config.load { config = conf })
if not sandbox.find() then
  print("1..0 # SKIP bubblewrap is not installed (.ci/setup unpacks it into /usr/local/lib/procy-test)")
  return 0
end
local ok, why = sandbox.check(true)
if not ok then
  print("1..0 # SKIP this kernel lets no sandbox be made here: " .. tostring(why))
  return 0
end

local work = dir .. "/work"
fs.mkdir(work)
-- outside every allowed path, and writable outside the sandbox (checked):
-- a refused write inside means the sandbox refused it
local outside = "/var/tmp/procy-sandbox-" .. require("procy.store").random_hex(6)
local probe = assert(proc.run { "sh", "-c", "echo x > " .. outside .. " && rm " .. outside })
T.is(probe.code, 0, "(outside the sandbox, " .. outside .. " can be written)")

local argv = assert(sandbox.wrap({ "sh", "-c", 'echo in > inside.txt; echo t > /tmp/procy-sbx-$$; rm /tmp/procy-sbx-$$; '
  .. 'echo out > ' .. outside .. ' 2>/dev/null; echo "rc=$? SANDBOX=$SANDBOX pwd=$(pwd)"' }, { cwd = work }))
local r = assert(proc.run(argv, { timeout = 20 }))
T.like(r.stdout, "^rc=[1-9]%d* ", "the default profile: a write outside the allowed paths fails", r.stdout .. r.stderr)
T.ok(not fs.stat(outside), "and left nothing there")
T.is(T.read(work .. "/inside.txt"), "in\n", "a write in the project directory succeeds")
T.like(r.stdout, "SANDBOX=1 pwd=" .. work:gsub("%-", "%%-"), "SANDBOX=1, in the project directory")

argv = assert(sandbox.wrap({ "sh", "-c", "echo a > " .. dir .. "/elsewhere.txt; echo b > w/ok.txt; echo rc=$?" },
  { cwd = work, profile = { defaults = false, writable = { "w" }, create = true } }))
r = assert(proc.run(argv, { timeout = 20 }))
T.ok(not fs.stat(dir .. "/elsewhere.txt") and T.read(work .. "/w/ok.txt") == "b\n",
  "a profile without the defaults: /tmp read-only, its writable list (made) writable", r.stdout .. r.stderr)

-- the record where the agent could write it: refused, saying where to put it
do
  local nested = dir .. "/nested"
  fs.mkdir(nested .. "/proj")
  local c2 = T.write(dir .. "/nested.lua", ("return { db = %q, bwrap = %q }"):format(nested .. "/rec.db", bwrap))
  local r2 = T.procy({ "--config", c2, "run", T.write(dir .. "/nested_run.lua", ([[
    local a, b = require("procy.sandbox").wrap({ "true" }, { cwd = %q })
    print(a and "wrapped" or b)
    return 0]]):format(nested .. "/proj")) }, { timeout = 20 })
  T.like(r2.stdout, "EINVAL: procy's record is in .*nested, which the sandboxed agent could write", "the record around the project: refused",
    r2.stdout .. r2.stderr)
end

local bad, berr = sandbox.profile("nosuch")
T.ok(not bad and berr:find("no sandbox profile \"nosuch\" %(there are: default"), "an unknown profile is named", berr)

-- no bwrap: an error saying so, never an unsandboxed run
local script = T.write(dir .. "/nobwrap.lua", [[
local a, err = require("procy.agent").open { profile = "claude", cwd = ]] .. ("%q"):format(work) .. [[, sandbox = true }
print(a and "opened" or err)
return 0]])
r = T.procy({ "--db", dir .. "/data/rec.db", "run", script }, { env = { PATH = "/nonexistent" }, timeout = 20 })
T.like(r.stdout, "ENOENT: %-%-sandbox runs the agent in bubblewrap, and bwrap is not on PATH", "no bwrap: a clear error", r.stdout .. r.stderr)
T.write(dir .. "/missing.lua", "return { bwrap = '/nonexistent/bwrap' }")
r = T.procy({ "--config", dir .. "/missing.lua", "--db", dir .. "/data/rec.db", "agent", "start", "nobox", "--sandbox" }, { timeout = 20 })
T.ok(r.code ~= 0 and r.stderr:find("/nonexistent/bwrap is not there", 1, true), "agent start --sandbox without it: refused, saying why",
  r.stderr)

-- interactive: procy --sandbox -- sh, in a real terminal
local tmux = require "lib.tmux"
local q = tmux.quote
local term = tmux.new { cols = 100, rows = 30, env = { PS1 = "$ " },
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --config " .. q(conf) .. " --sandbox -- sh; echo procy-exit=$?" }
term:see("^%$", "the shell starts in the sandbox", 20)
term:type("echo term > term.txt; echo o > " .. outside .. "; echo \"rc=$? $SANDBOX\"")
term:keys("Enter")
term:see("rc=[1-9]%d* 1", "interactive: outside refused, SANDBOX=1", 10)
term:type("exit")
term:keys("Enter")
term:see("procy%-exit=0", "procy exits with the shell", 10)
T.is(T.read(work .. "/term.txt"), "term\n", "and the write in the project went through")
T.ok(not fs.stat(outside), "the one outside did not")
term:kill()

-- the real Claude Code, a background agent in the sandbox: its Bash call
-- tries both; the API still reaches procy (network kept)
local agents = require "lib.agents"
local w = agents.world("claude")
if not w then
  T.skip("Claude Code in the sandbox", "the claude CLI is not installed")
  return T.done()
end
local _ <close> = w.fake.proc
w.env.ANTHROPIC_BASE_URL = false
T.write(w.work .. "/procy.lua", ("return { db = %q, upstream = %q, bwrap = %q }"):format(w.dir .. "/data/rec.db", w.fake.url, bwrap))
local function procy(...) return T.procy({ ... }, { cwd = w.work, env = w.env, timeout = 120 }) end
r = procy("agent", "start", "boxed", "--sandbox", "--", "--allowedTools", "Bash")
T.is(r.code, 0, "agent start --sandbox", r.stderr)
r = procy("agent", "send", "boxed", "TOOL:bash[echo cc > cc.txt; echo x > " .. outside .. " || echo refused-outside]", "--wait")
T.like(r.stdout, "FAKE: got tool result: .*refused%-outside", "Claude Code's Bash: the write outside is refused", r.stdout .. r.stderr)
T.is(T.read(w.work .. "/cc.txt"), "cc\n", "its write in the project succeeds")
T.ok(not fs.stat(outside), "nothing outside")
local ls = procy("agent", "ls").stdout
procy("agent", "stop", "boxed")
T.like(ls, "boxed", "listed")

-- the real Claude Code in a terminal, sandboxed: procy's box gives it the
-- terminal (its screen, keys and job control), its Bash runs inside, its
-- calls reach the model through procy's relay, and /exit ends it
local cterm = tmux.new { cols = 120, rows = 40, env = w.env,
  cmd = "cd " .. q(w.work) .. " && " .. q(T.bin) .. " --sandbox -- " .. q(w.cli)
    .. " --permission-mode acceptEdits --allowedTools Bash; echo procy-exit=$?" }
cterm:see("\n❯", "interactive Claude Code starts in the sandbox", 60)
core.sleep(0.5)
-- (typed and Enter apart, Enter again if the prompt still sits in the box:
-- a loaded machine delivers tmux's keys in one burst, which Claude Code
-- takes as a paste)
cterm:submit("TOOL:bash[echo in-the-box-$SANDBOX > tty.txt]", "FAKE: got tool result", 90)
-- (a loaded machine: Claude Code's first Bash call makes its shell
-- snapshot, then two round trips through the relay)
cterm:see("FAKE: got tool result", "its Bash call runs and the answer comes back through procy", 90)
local deadline = core.now() + 10
while not fs.stat(w.work .. "/tty.txt") and core.now() < deadline do core.sleep(0.1) end
T.is(T.read(w.work .. "/tty.txt"), "in-the-box-1\n", "inside the sandbox")
cterm:submit("/exit", "procy%-exit=0", 30)
cterm:see("procy%-exit=0", "/exit ends it, and procy exits 0", 60)
cterm:kill()
return T.done()
