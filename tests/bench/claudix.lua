-- tests/bench/claudix: see the shell script next to it.
package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local core = require "procy.core"
local fs = require "procy.fs"
local json = require "procy.json"
local proc = require "procy.proc"
local measure = require "lib.measure"

local n = tonumber((...)) or 20
local bin = fs.realpath(os.getenv("PROCY_BENCH_BIN") or "build/procy")
local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
local work, home = dir .. "/work", dir .. "/home"
fs.mkdir(work)
fs.mkdir(home)
local f = assert(io.open(home .. "/.claude.json", "w"))
f:write(json.encode { hasCompletedOnboarding = true, customApiKeyResponses = { approved = { "sk-test-fake" }, rejected = json.array() },
  projects = { [work] = { hasTrustDialogAccepted = true } } })
f:close()
local fake = assert(proc.spawn({ "node", "tests/fake/upstream.mjs", "--log-dir", dir .. "/fake", "--delay", "0" }, { stderr = false }))
local url = "http://127.0.0.1:" .. assert((fake:lines()() or ""):match("^PORT (%d+)"))
f = assert(io.open(work .. "/procy.lua", "w"))
f:write(("return { db = %q, upstream = %q }"):format(dir .. "/rec.db", url))
f:close()
local env = { HOME = home, XDG_STATE_HOME = dir .. "/state", XDG_CONFIG_HOME = dir .. "/config", ANTHROPIC_API_KEY = "sk-test-fake",
  DISABLE_TELEMETRY = "1", DISABLE_AUTOUPDATER = "1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1", IS_SANDBOX = "1" }

local function turns(argv, extra)
  local e = {}
  for k, v in pairs(env) do e[k] = v end
  for k, v in pairs(extra or {}) do e[k] = v end
  local p = assert(proc.spawn(argv, { cwd = work, env = e, stdin = true, stderr = false }))
  local lines = p:lines()
  local t = {}
  for i = 1, n + 1 do -- the first turn starts the process: left out
    local t0 = core.now()
    p:write(json.encode { type = "user", message = { role = "user", content = { { type = "text", text = "turn " .. i } } } } .. "\n")
    for line in lines do
      if line:find('"type":"result"', 1, true) then break end
    end
    if i > 1 then t[#t + 1] = core.now() - t0 end
  end
  p:close_stdin()
  p:wait(30)
  return measure.median(t) * 1e3
end
local direct = turns({ "claude", "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose" },
  { ANTHROPIC_BASE_URL = url })
local via = turns({ bin, "claudix", "--mirror", "off" })
print(("a turn, median of %d: claude -p directly %.1f ms, through procy claudix %.1f ms: +%.1f ms (%.2fx)")
  :format(n, direct, via, via - direct, via / direct))
fake:kill("TERM")
fake:wait()
proc.run { "rm", "-rf", dir }
