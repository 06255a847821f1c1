-- The agent matrix: Claude Code, Codex, Qwen Code, opencode and Gemini CLI
-- (the real CLIs from npm, pinned in .ci/setup) wrapped by procy against
-- the fake upstream of their wire format (Anthropic, Responses, OpenAI chat
-- with streamed tool calls, Gemini), each headless on procy's terminal and
-- the three newer ones interactive in tmux. For each: the exact prompt, the
-- answer, the shell tool call with its input and result, tokens, one turn
-- that ended done, the exit code, side calls never a turn's prompt or
-- answer, and the same numbers in `show --json`, `usage --json` and the
-- transcript. Then Gemini CLI with its API out of procy's sight: turns
-- from the terminal, and every view saying so.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local fs = require "procy.fs"
local tmux = require "lib.tmux"
local agents = require "lib.agents"

local names = { "claude", "codex", "qwen", "opencode", "gemini" }
local found = {}
for _, n in ipairs(names) do found[n] = agents.find(n) end
if not (found.qwen or found.opencode or found.gemini) then return agents.skip("qwen, opencode and gemini") end

local dir = T.tmpdir()
local work = dir .. "/work"
fs.mkdir(work)
local home = agents.home(dir, work)
-- first-run settings: the API key way in, no telemetry or update checks
local quiet_settings = json.encode { security = { auth = { selectedType = "gemini-api-key" } },
  privacy = { usageStatisticsEnabled = false }, telemetry = { enabled = false },
  general = { disableAutoUpdate = true, disableUpdateNag = true } }
fs.mkdir(home .. "/.gemini")
T.write(home .. "/.gemini/settings.json", quiet_settings)
fs.mkdir(home .. "/.qwen")
T.write(home .. "/.qwen/settings.json", (quiet_settings:gsub("gemini%-api%-key", "openai")))
local fake = require("lib.fake").start(dir .. "/fake")
local _f <close> = fake.proc
local record = dir .. "/rec.db"
local config = T.write(dir .. "/procy.lua", ("return { db = %q, upstream = %q, openai_upstream = %q, google_upstream = %q }")
  :format(record, fake.url, fake.url, fake.url))
local env = agents.env(dir, home, fake.url)
env.ANTHROPIC_BASE_URL = nil -- procy points each agent at itself
env.GEMINI_API_KEY, env.GEMINI_CLI_TRUST_WORKSPACE = "fake-gemini-key", "true"
env.OPENAI_MODEL = "qwen-fake"
env.OPENCODE_DISABLE_AUTOUPDATE, env.OPENCODE_DISABLE_MODELS_FETCH = "1", "1"
local q = tmux.quote

local function procy(...)
  return T.procy({ "--config", config, ... }, { cwd = work, env = env, timeout = 60 })
end

local function newest_session()
  local h = require("procy.db").open(record, { migrations = false })
  local row = h:query("SELECT id FROM sessions ORDER BY started_at DESC LIMIT 1")[1]
  h:close()
  return row and row.id
end

-- session(argv, [config]) -> the terminal, the session's show --json: procy
-- wraps argv on a terminal of tmux's; a headless CLI ends by itself
local function session(argv, cfg, o)
  local words = {}
  for i, a in ipairs(argv) do words[i] = q(a) end
  local term = tmux.new { cols = 120, rows = 40, env = (o or {}).env or env,
    cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --config " .. q(cfg or config) .. " -- " .. table.concat(words, " ")
      .. "; echo procy-exit=$?" }
  return term
end

local function show(id)
  local r = procy("show", id, "--json")
  return json.decode(r.stdout) or {}
end

-- settled(id) -> show --json once the session's first turn has ended (an
-- interactive turn ends when the agent is quiet again), and that turn
local function settled(id)
  local s, t
  for _ = 1, 100 do
    s = show(id)
    t = (s.turns or {})[1]
    if t and t.status ~= "running" then break end
    core.sleep(0.1)
  end
  return s, t or {}
end

-- The same numbers in every view: show --json's totals, usage --json's,
-- the transcript's header (procy.usage.tokens, procy.usage.money); the JSON
-- API's and OTLP's at the end (checked).
local checked = {}
local function agree(name, id, s)
  checked[#checked + 1] = { name = name, id = id, api = s.api }
  local u = json.decode(procy("usage", "--session", id, "--json").stdout) or {}
  local total = u.total or {}
  local same = true
  for _, k in ipairs { "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
                       "reasoning_tokens", "unpriced" } do
    if total[k] ~= s.api[k] then same = false end
  end
  T.ok(same, name .. ": show --json and usage --json give the same figures", json.encode { show = s.api, usage = total })
  local usage = require "procy.usage"
  local head = procy("transcript", id).stdout:match("^[^\n]*")
  T.ok(head:find(" · " .. usage.tokens(s.api) .. " · " .. usage.money(s.api.cost, s.api.unpriced), 1, true)
    and (s.api.unpriced == 0 or not head:find("$0.0000", 1, true)),
    name .. ": the transcript's header says them under the same labels, an unknown cost never $0", head)
end

-- ---- headless, on procy's terminal ----------------------------------------------------------
local runs = {
  { name = "claude", argv = { "claude", "-p", "TOOL:bash[echo matrix-claude]", "--dangerously-skip-permissions" },
    tool = "Bash", key = "command" },
  { name = "codex", argv = { "codex", "-m", "gpt-5-codex", "exec", "--skip-git-repo-check",
      "--dangerously-bypass-approvals-and-sandbox", "TOOL:shell[echo matrix-codex]" }, tool = "exec_command", key = "cmd" },
  { name = "qwen", argv = { "qwen", "-p", "TOOL:bash[echo matrix-qwen]", "--yolo" }, tool = "run_shell_command", key = "command" },
  { name = "opencode", argv = { "opencode", "run", "-m", "anthropic/claude-sonnet-4-5", "TOOL:bash[echo matrix-opencode]" },
    tool = "bash", key = "command" },
  { name = "gemini", argv = { "gemini", "-p", "TOOL:bash[echo matrix-gemini]", "--yolo" }, tool = "run_shell_command",
    key = "command" },
}
for _, r in ipairs(runs) do
  if not found[r.name] then
    T.ok(true, r.name .. ": not installed here (.ci/setup installs it) # SKIP")
  else
    r.argv[1] = found[r.name]
    local term = session(r.argv)
    local ended = term:wait_for("procy%-exit=%d+", 120)
    T.ok(ended and ended:find("procy-exit=0", 1, true), r.name .. ": ends, and procy exits with its status 0", term:screen())
    term:kill()
    local id = newest_session()
    local s = show(id)
    local t = (s.turns or {})[1] or {}
    local word = "matrix-" .. r.name
    T.is(#(s.turns or {}) .. " " .. tostring(t.status), "1 done", r.name .. ": one turn, done (it ended before the agent exited)",
      json.encode(s.turns))
    T.ok(type(t.prompt) == "string" and t.prompt:find(word, 1, true) and not t.prompt:find("title", 1, true)
      and not t.prompt:find("<session_context>", 1, true), r.name .. ": the person's prompt, not a side call's", t.prompt)
    T.like(t.response, "^FAKE: got tool result:.*" .. word:gsub("%-", "%%-"), r.name .. ": the answer after the tool's result")
    local tool = (t.tools or {})[1] or {}
    T.ok(tool.name == r.tool and type(tool.input) == "table" and tostring(tool.input[r.key]):find("echo " .. word, 1, true)
      and type(tool.result) == "string" and tool.result:find(word, 1, true),
      r.name .. ": the shell call with its input and its result", json.encode(tool))
    T.ok(t.calls >= 2 and t.usage.input_tokens > 0 and t.usage.output_tokens > 0,
      r.name .. ": its main calls, with tokens", json.encode { calls = t.calls, side = t.side_calls, usage = t.usage })
    T.ok(s.api_visible == true and s.api.calls >= t.calls + t.side_calls, r.name .. ": every call recorded", json.encode(s.api))
    agree(r.name, id, s)
  end
end

-- ---- interactive, in tmux -----------------------------------------------------------------
local tuis = {
  { name = "qwen", argv = { "qwen", "--yolo" }, ready = "Type your message", tool = "run_shell_command", quit = "/quit" },
  { name = "opencode", argv = { "opencode", "-m", "anthropic/claude-sonnet-4-5" }, ready = "Ask anything", tool = "bash" },
  { name = "gemini", argv = { "gemini", "--yolo" }, ready = "Type your message", tool = "run_shell_command", quit = "/quit" },
}
for _, r in ipairs(tuis) do
  if found[r.name] then
    r.argv[1] = found[r.name]
    local term = session(r.argv)
    T.ok(term:wait_for(r.ready, 60), r.name .. " TUI: starts inside procy", term:screen())
    core.sleep(1)
    local word = "tui-" .. r.name
    T.ok(term:submit("TOOL:bash[echo " .. word .. "]", "got tool result"), r.name .. " TUI: runs the tool and answers",
      term:screen())
    local id = newest_session()
    local s, t = settled(id)
    T.is(tostring(t.status) .. " " .. tostring(t.prompt), "done TOOL:bash[echo " .. word .. "]",
      r.name .. " TUI: the turn, done, with the exact prompt (as the API carried it)", json.encode(s.turns))
    local tool = (t.tools or {})[1] or {}
    -- (Gemini CLI's shell tool can lose its command's output on a loaded
    -- machine and sends "Output: (empty)": procy records what was sent)
    T.ok(tool.name == r.tool and tostring(tool.input and tool.input.command):find("echo " .. word, 1, true)
      and (tostring(tool.result):find(word, 1, true) or tostring(tool.result):find("Output: (empty)", 1, true)),
      r.name .. " TUI: its tool call and result", json.encode(tool))
    T.like(t.response, "^FAKE: got tool result:", r.name .. " TUI: the answer is the main conversation's, no side call's")
    if r.quit then
      term:submit(r.quit, "procy%-exit=%d+")
    else
      term:keys("C-c")
      term:wait_for("procy%-exit=%d+", 20)
    end
    T.ok(term:screen():find("procy-exit=0", 1, true), r.name .. " TUI: ends, procy exits 0", term:screen())
    term:kill()
    s = show(id)
    T.is(#s.turns, 1, r.name .. " TUI: a command to the agent (its quit) is no turn when procy sees the API")
  end
end

-- ---- the monitor's JSON API and OTLP: the same figures -------------------------------------------
if #checked > 0 then
  local token = "matrix-person-token-0123456789"
  local srv = assert(require("procy.proc").spawn({ T.bin, "--config", config, "serve", "--port", "0" },
    { stderr = "pipe", stdout = false, env = { PROCY_TOKEN = token } }))
  local _s <close> = srv
  local url = (srv:lines("stderr")() or ""):match("listening on (http://[%d.:]+)")
  local r = url and require("procy.http").request { url = url .. "/api/sessions?limit=1000", headers = { ["x-procy-token"] = token } }
  local listed = {}
  for _, row in ipairs(r and (json.decode(r.body) or {}).sessions or {}) do listed[row.id] = row.stats end
  local h = require("procy.db").open(record, { migrations = false })
  local otel = require "procy.otel"
  for _, c in ipairs(checked) do
    local st = listed[c.id] or {}
    local same = st.calls == c.api.calls and st.input_tokens == c.api.input_tokens and st.output_tokens == c.api.output_tokens
      and st.cache_read_tokens == c.api.cache_read_tokens and st.reasoning_tokens == c.api.reasoning_tokens
      and st.unpriced == c.api.unpriced and (st.cost == json.null) == (c.api.cost == json.null)
    T.ok(same, c.name .. ": /api/sessions (the monitor) gives the same figures", json.encode { api = st, show = c.api })
    local sum = { i = 0, o = 0 }
    for _, sp in ipairs(otel.spans(h, { session = c.id })) do
      local a = {}
      for _, kv in ipairs(sp.attributes or {}) do a[kv.key] = kv.value.intValue or kv.value.stringValue end
      if a["gen_ai.operation.name"] == "chat" then
        sum.i = sum.i + tonumber(a["procy.usage.input_tokens"] or 0)
        sum.o = sum.o + tonumber(a["procy.usage.output_tokens"] or 0)
      end
    end
    T.ok(sum.i == c.api.input_tokens and sum.o == c.api.output_tokens, c.name .. ": OTLP's procy.usage.* sum to them",
      json.encode(sum))
  end
  h:close()
  srv:kill("TERM")
end

-- ---- an agent whose API procy cannot see: turns from the terminal ------------------------------
if found.gemini then
  -- a profile that leaves the agent's own base URL alone: Gemini CLI talks
  -- to its API directly, procy sees only the terminal
  local blind = T.write(dir .. "/blind.lua", ([[return { db = %q, upstream = %q,
  agents = { blind = { base = "generic", command = { "gemini" }, match = "^gemini$", env = function() return {} end } } }]])
    :format(record, fake.url))
  local benv = {}
  for k, v in pairs(env) do benv[k] = v end
  benv.GOOGLE_GEMINI_BASE_URL = fake.url
  local term = session({ found.gemini, "--yolo" }, blind, { env = benv })
  T.ok(term:wait_for("Type your message", 60), "blind: Gemini CLI starts", term:screen())
  core.sleep(1)
  -- (on failure, what the terminal's environment says of CI: Gemini CLI
  -- starts headless under CI=true)
  T.ok(term:submit("TOOL:bash[echo blind-gemini]", "got tool result"), "blind: it answers, through its own connection",
    term:screen() .. "\n" .. ((term:tmux { "show-environment", "-g" } or ""):gsub("[^\n]*\n", function(l)
      return (l:find("CI") or l:find("GITHUB") or l:find("^TERM")) and l or "" end)))
  local id = newest_session()
  local s, t = settled(id)
  T.is(tostring(t.status) .. " " .. tostring(t.known_from) .. " " .. tostring(t.prompt),
    "done terminal TOOL:bash[echo blind-gemini]",
    "blind: the turn comes from the terminal: the line typed, ended when the agent was idle again", json.encode(s.turns))
  T.is(s.api_visible, false, "blind: show --json says the API is not visible")
  T.like(procy("show", id).stdout, "api%s+none seen: procy does not see this agent's API", "blind: so does show")
  T.like(procy("transcript", id).stdout, "procy does not see this agent's API", "blind: and the transcript")
  term:keys("C-c")
  term:keys("C-c")
  term:wait_for("procy%-exit=%d+", 20)
  term:kill()
end

return T.done()
