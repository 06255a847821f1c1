-- tests/bench/fork: see the shell script next to it.
package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local core = require "procy.core"
local fs = require "procy.fs"
local json = require "procy.json"
local proc = require "procy.proc"
local measure = require "lib.measure"

local bin = fs.realpath(os.getenv("PROCY_BENCH_BIN") or "build/procy")
local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
local work, home = dir .. "/work", dir .. "/home"
fs.mkdir(work)
fs.mkdir(home)
local function write(p, s) local f = assert(io.open(p, "w")) f:write(s) f:close() end
write(home .. "/.claude.json", json.encode { hasCompletedOnboarding = true,
  customApiKeyResponses = { approved = { "sk-test-fake" }, rejected = json.array() }, projects = { [work] = { hasTrustDialogAccepted = true } } })
local fake = assert(proc.spawn({ "node", "tests/fake/upstream.mjs", "--log-dir", dir .. "/fake", "--delay", "0" }, { stderr = false }))
local url = "http://127.0.0.1:" .. assert((fake:lines()() or ""):match("^PORT (%d+)"))
write(work .. "/procy.lua", ("return { db = %q, upstream = %q }"):format(dir .. "/rec.db", url))
local env = { HOME = home, XDG_STATE_HOME = dir .. "/state", XDG_CONFIG_HOME = dir .. "/config", ANTHROPIC_API_KEY = "sk-test-fake",
  DISABLE_TELEMETRY = "1", DISABLE_AUTOUPDATER = "1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1", IS_SANDBOX = "1",
  GIT_AUTHOR_NAME = "b", GIT_AUTHOR_EMAIL = "b@b", GIT_COMMITTER_NAME = "b", GIT_COMMITTER_EMAIL = "b@b" }
local function run(argv, extra)
  local e = {}
  for k, v in pairs(env) do e[k] = v end
  for k, v in pairs(extra or {}) do e[k] = v end
  return assert(proc.run(argv, { cwd = work, env = e, timeout = 120 }))
end
run { "git", "init", "-q" }
write(work .. "/.gitignore", "procy.lua\n")
run { "git", "add", "-A" }
run { "git", "commit", "-qm", "base" }
run { bin, "agent", "start", "b" }
run { bin, "agent", "send", "b", "turn one", "--wait" }
run { bin, "agent", "send", "b", "turn two", "--wait" }
run { bin, "agent", "stop", "b" }
local h = require("procy.db").open(dir .. "/rec.db")
local sid = h:query("SELECT session_id FROM agents WHERE name = 'b'")[1].session_id
local aid = h:query("SELECT agent_session_id AS a FROM sessions WHERE id = ?", sid)[1].a
local function first_request_after(t0)
  for line in io.lines(dir .. "/fake/requests.jsonl") do
    local e = json.decode(line)
    if e and e.t >= t0 then return e.t end
  end
end
local function timed(argv, extra)
  local t = {}
  for i = 1, 5 do
    local t0 = core.time()
    run(argv(i), extra)
    t[i] = (first_request_after(t0) or t0) - t0
  end
  return measure.median(t) * 1000
end
local forked = timed(function(i) return { bin, "fork", sid, "--turn", "1", "--prompt", "forked " .. i, "--headless", "--dir", dir .. "/f" .. i } end)
local plain = timed(function(i) return { "claude", "-p", "--resume", aid, "--fork-session", "plain " .. i } end, { ANTHROPIC_BASE_URL = url })
print(("from the command to the agent's first request, median of 5: procy fork --headless %.0f ms, "
  .. "claude -p --resume --fork-session directly %.0f ms (+%.0f ms: the worktree, procy's proxy and record)"):format(forked, plain, forked - plain))
fake:kill("TERM") fake:wait()
proc.run { "rm", "-rf", dir }
