-- The real Claude Code CLI wrapped by procy in a real terminal, offline
-- against the fake Anthropic API (tests/fake/anthropic.mjs).
local T = require "tap"
local tmux = require "tmux"
local core = require "procy.core"
local db = require "procy.db"
local json = require "procy.json"
local proc = require "procy.proc"

local claude = os.getenv("PROCY_TEST_CLAUDE")
if not claude then
  local r = proc.run { "sh", "-c", "command -v claude" }
  claude = r and r.code == 0 and r.stdout:gsub("%s+$", "") or nil
end
if not claude then
  print("1..0 # SKIP the claude CLI is not installed (.ci/setup installs it)")
  return 0
end

local dir = T.tmpdir()
local home, work, record = dir .. "/home", dir .. "/work", dir .. "/record.db"
local fs = require "procy.fs"
fs.mkdir(home)
fs.mkdir(work)

-- the fake API
local fake = assert(proc.spawn({ "node", T.src .. "/tests/fake/anthropic.mjs", "--log-dir", dir .. "/fake" },
                               { stderr = false }))
local _ <close> = fake
local port = (fake:lines()() or ""):match("^PORT (%d+)")
T.ok(port, "the fake Anthropic API listens")

-- a home where Claude Code's first-run screens are already done
T.write(home .. "/.claude.json", json.encode {
  hasCompletedOnboarding = true,
  customApiKeyResponses = { approved = json.array { "sk-test-fake" }, rejected = json.array() },
  projects = { [work] = { hasTrustDialogAccepted = true } },
})
local env = {
  HOME = home, XDG_STATE_HOME = dir .. "/state", XDG_CONFIG_HOME = dir .. "/config",
  ANTHROPIC_BASE_URL = "http://127.0.0.1:" .. (port or "1"), ANTHROPIC_API_KEY = "sk-test-fake",
  DISABLE_TELEMETRY = "1", DISABLE_ERROR_REPORTING = "1", DISABLE_AUTOUPDATER = "1",
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1", CLAUDE_CODE_MAX_RETRIES = "1",
}
local q = tmux.quote
local term = tmux.new { cols = 120, rows = 40, env = env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " -- " .. q(claude) .. "; echo procy-exit=$?" }

local function see(pattern, name, seconds)
  local screen, last = term:wait_for(pattern, seconds or 20)
  T.ok(screen, name, last)
  return screen
end

see("Claude Code v2%.1%.330", "Claude Code starts inside procy")
see("\n❯", "and shows its prompt")
core.sleep(0.5)
term:type("say hi")
term:keys("Enter")
see("FAKE: hello! you said: say hi", "a prompt gets the (fake) model's reply")
term:type("!help")
term:keys("Enter")
see("procy commands", "!help works while Claude Code runs")
term:keys("q")
see("FAKE: hello! you said: say hi.*\n❯", "Claude Code's screen comes back")
core.sleep(0.5)
term:type("/exit")
term:keys("Enter")
see("procy%-exit=0", "/exit ends Claude Code, and procy exits 0")

local h = assert(db.open(record, { migrations = false }))
local row = h:query("SELECT * FROM sessions ORDER BY started_at DESC LIMIT 1")[1]
local out = h:query("SELECT group_concat(data, '') AS o FROM term_events WHERE session_id = ? AND kind = 'o'", row.id)[1].o
local lines = h:query("SELECT data FROM term_events WHERE session_id = ? AND kind = 'l' ORDER BY id", row.id)
h:close()
T.is(row.exit_code, 0, "the session is recorded with exit 0")
T.ok(out and out:find("FAKE:", 1, true), "Claude Code's output is in the recording")
T.is(lines[1] and lines[1].data, "say hi", "the typed prompt is in the recording")
local log = T.read(dir .. "/fake/requests.jsonl") or ""
T.like(log, '"method":"POST","path":"/v1/messages%?beta=true"', "Claude Code called the fake API")

term:kill()
proc.run { "rm", "-rf", dir }
return T.done()
