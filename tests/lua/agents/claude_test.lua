-- The real Claude Code CLI wrapped by procy in a real terminal, offline
-- against the fake Anthropic API (tests/fake/upstream.mjs).
local T = require "lib.tap"
local tmux = require "lib.tmux"
local core = require "procy.core"
local db = require "procy.db"
local json = require "procy.json"
local proc = require "procy.proc"

local agents = require "lib.agents"
local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, env, claude = w.dir, w.work, w.env, w.cli
local record = dir .. "/record.db"
local port = tostring(w.fake.port)
env.IS_SANDBOX = nil -- this one runs Claude Code as a person would
local q = tmux.quote
local term = tmux.new { cols = 120, rows = 40, env = env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " -- " .. q(claude) .. "; echo procy-exit=$?" }

local function see(pattern, name, seconds) return term:see(pattern, name, seconds or 20) end

see("Claude Code v2%.1%.330", "Claude Code starts inside procy")
see("\n❯", "and shows its prompt")
core.sleep(0.5)
term:submit("say hi", "FAKE: hello! you said: say hi", 30)
see("FAKE: hello! you said: say hi", "a prompt gets the (fake) model's reply")
term:type("!help")
term:keys("Enter")
see("procy commands", "!help works while Claude Code runs")
term:keys("q")
see("FAKE: hello! you said: say hi.*\n❯", "Claude Code's screen comes back")
core.sleep(0.5)
term:keys("Escape") -- then, a moment later, a procy command: not Claude Code's shell mode
core.sleep(0.3)
term:type("!turns")
term:keys("Enter")
local turns = see("q or Enter: close", "after Esc, !turns is procy's command (its pager)")
T.like(turns or "", "1%s+done%s+human.-%$%d+%.%d+%s+say hi", "the turn has a cost: Claude Code's default model has a price")
term:keys("q")
see("FAKE: hello! you said: say hi.*\n❯", "and Claude Code's screen comes back again")
core.sleep(0.5)
term:type("!nosuch")
term:keys("Enter")
see("unknown command !nosuch", "a message on the bottom row under Claude Code")
core.sleep(1.5) -- Claude Code repaints meanwhile (its spinner, its prompt)
T.like(term:screen(), "unknown command !nosuch", "is still readable 1.5 s later")
term:type(" ") -- the next key takes it away
term:keys("BSpace")
core.sleep(0.5)
term:submit("/exit", "procy%-exit=0", 30)
see("procy%-exit=0", "/exit ends Claude Code, and procy exits 0")

local h = assert(db.open(record, { migrations = false }))
local row = h:query("SELECT * FROM sessions ORDER BY started_at DESC LIMIT 1")[1]
local out = h:query("SELECT group_concat(coalesce(data, tape(tape_id, at, len)), '') AS o FROM term_events WHERE session_id = ? AND kind = 'o'", row.id)[1].o
local lines = h:query("SELECT data FROM term_events WHERE session_id = ? AND kind = 'l' ORDER BY id", row.id)
h:close()
T.is(row.exit_code, 0, "the session is recorded with exit 0")
T.ok(out and out:find("FAKE:", 1, true), "Claude Code's output is in the recording")
T.is(lines[1] and lines[1].data, "say hi", "the typed prompt is in the recording")
local log = T.read(dir .. "/fake/requests.jsonl") or ""
T.like(log, '"method":"POST","path":"/v1/messages%?beta=true"', "Claude Code called the fake API")
T.like(log, '"accept%-encoding":"identity"', "through procy's proxy")

-- the session captured the calls with no configuration
h = assert(db.open(record, { migrations = false }))
local calls = h:query("SELECT * FROM api_calls WHERE session_id = ? ORDER BY id", row.id)
local said
for _, c in ipairs(calls) do
  if (c.content or ""):find("you said: say hi", 1, true) then said = c end
end
T.ok(#calls >= 1 and said, "the session's API calls are recorded, the prompt's answer among them", #calls .. " calls")
T.ok(said and said.path == "/v1/messages?beta=true" and said.status == 200 and said.stream == 1,
     "as a streamed Messages call")
h:close()
local shown = json.decode(T.procy({ "--db", record, "show", row.id, "--json" }).stdout)
T.ok(shown and shown.api.calls == #calls and shown.api.input_tokens > 0, "procy show sums the session's API calls",
     shown and require("procy.json").encode(shown.api))
term:kill()

-- --resume: the same session, and Claude Code's own conversation goes on
T.ok(row.agent_session_id, "procy learned Claude Code's session id from its hooks", tostring(row.agent_session_id))
term = tmux.new { cols = 120, rows = 40, env = env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " --resume " .. row.id:sub(1, 8)
    .. "; echo procy-exit=$?" }
see("\n❯", "Claude Code starts again inside procy")
core.sleep(0.5)
term:submit("and again", "you said: and again", 30)
see("you said: and again", "a new prompt in the resumed session")
local asked
for _, b in ipairs(require("lib.fake").bodies(dir .. "/fake")) do
  if b:find("and again", 1, true) and (not asked or b:find("say hi", 1, true)) then asked = b end
end
T.ok(asked and asked:find("say hi", 1, true), "and Claude Code sends the earlier conversation with it (--resume "
  .. tostring(row.agent_session_id) .. ")")
term:submit("/exit", "procy%-exit=0", 30)
see("procy%-exit=0", "the resumed session ends")
term:kill()

-- the offline first run: no key, no network
do
  local fresh = dir .. "/fresh-home"
  require("procy.fs").mkdir(fresh)
  local oenv = { HOME = fresh, XDG_STATE_HOME = dir .. "/state", XDG_CONFIG_HOME = dir .. "/config",
    ANTHROPIC_BASE_URL = "http://127.0.0.1:1", DISABLE_AUTOUPDATER = "1",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1" }
  local off = tmux.new { cols = 120, rows = 40, env = oenv,
    cmd = "unset ANTHROPIC_API_KEY; cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(dir .. "/offline.db") .. " --agent " .. q(claude)
      .. "; echo procy-exit=$?" }
  local screen = off:wait_for("procy%-exit=", 60)
  T.ok(screen and screen:find("procy: claude ended after", 1, true), "offline and without a key, procy has its word",
       screen or off:screen())
  T.like(screen or "", "ANTHROPIC_API_KEY", "naming the key")
  T.like(screen or "", "procy %-%- bash", "and how to try procy alone")
  off:kill()
end

-- ---- headless, through `procy serve`, with a Bash tool round trip ---------------------------
local serve = assert(proc.spawn({ T.bin, "--db", record, "serve", "--port", "0", "--upstream", "http://127.0.0.1:" .. port },
  { stderr = "pipe", stdout = false }))
local _s <close> = serve
local url = (serve:lines("stderr")() or ""):match("listening on (http://[%d.:]+)")
T.ok(url, "procy serve is up")
local henv = {}
for k, v in pairs(env) do henv[k] = v end
henv.ANTHROPIC_BASE_URL = url
local r = proc.run({ claude, "-p", "TOOL:bash[echo procy-tool-ok]", "--output-format", "stream-json", "--verbose",
  "--allowedTools", "Bash" }, { cwd = work, env = henv, timeout = 90 })
T.is(r.code, 0, "claude -p through procy serve exits 0", r.stderr)
local result, tool_result
for line in r.stdout:gmatch("[^\n]+") do
  local ev = json.decode(line)
  if ev and ev.type == "result" then result = ev end
  if ev and ev.type == "user" and ev.message then
    for _, b in ipairs(ev.message.content or {}) do
      if b.type == "tool_result" then tool_result = b end
    end
  end
end
T.like(tool_result and tool_result.content, "procy%-tool%-ok", "Claude Code ran the Bash tool")
T.like(result and result.result, "FAKE: got tool result: procy%-tool%-ok", "and got the model's answer to its result")
serve:kill("TERM")
serve:wait(10)
h = assert(db.open(record, { migrations = false }))
local srow = h:query("SELECT * FROM sessions WHERE mode = 'serve' ORDER BY started_at DESC LIMIT 1")[1]
local tc = srow and h:query("SELECT * FROM tool_calls WHERE session_id = ? AND name = 'Bash'", srow.id)[1]
local input = tc and json.decode(tc.input)
T.is(input and input.command, "echo procy-tool-ok", "the tool_use is recorded with its full input")
T.like(tc and tc.result, "^procy%-tool%-ok", "linked to the tool_result Claude Code sent back")
T.ok(tc and tc.api_call_id and tc.result_call_id and tc.api_call_id < tc.result_call_id,
     "from the call that asked to the call that answered")
local n = h:query("SELECT count(*) AS n FROM api_calls WHERE session_id = ?", srow and srow.id)[1].n
T.ok(n >= 2, "every call of the headless run is recorded", n .. " calls")
h:close()
local file = T.read(record) .. (T.read(record .. "-wal") or "")
T.ok(not file:find("sk-test-fake", 1, true), "the API key is nowhere in the database file")

proc.run { "rm", "-rf", dir }
return T.done()
