-- claude-code-proxy's way, with procy: the routes come from the
-- environment alone (SUBAGENT_MAPPINGS, OPENAI_BASE_URL, OPENAI_API_KEY;
-- no procy.lua anywhere), the real Claude Code runs in a real terminal
-- under procy, and a project subagent in .claude/agents/ is handed work
-- in the background, as Claude Code does by default. Its calls go to the
-- built-in `openai` provider (a fake OpenAI server), the main agent's
-- stay on Anthropic; none fails.
local T = require "lib.tap"
local tmux = require "lib.tmux"
local core = require "procy.core"
local fs = require "procy.fs"
local json = require "procy.json"
local db = require "procy.db"
local agents = require "lib.agents"
local fake = require "lib.fake"

local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, env = w.dir, w.work, w.env
local oai = fake.start(dir .. "/oai", { "--tool-prefix", "call_oai_" })
local _o <close> = oai.proc
env.SUBAGENT_MAPPINGS = "reviewer:gpt-4o"
env.OPENAI_BASE_URL = oai.url .. "/v1"
env.OPENAI_API_KEY = "sk-openai-route-0123456789abcdef"
agents.reviewer(work)
T.ok(not fs.stat(work .. "/procy.lua") and not fs.stat(dir .. "/config/procy/procy.lua"), "no procy.lua anywhere")

local record = dir .. "/rec.db"
local q = tmux.quote
local term = tmux.new { cols = 120, rows = 40, env = env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " -- " .. q(w.cli)
    .. " --permission-mode acceptEdits --allowedTools Bash Agent; echo procy-exit=$?" }
term:see("\n❯", "Claude Code starts inside procy", 60)
core.sleep(0.5)
-- typed, and seen on its prompt line, before Enter (a busy machine is slow to draw it)
local prompt = "please TOOL:bgtask:reviewer[review it TOOL:bash[echo reviewed-ok]]"
term:type(prompt)
term:wait_for("reviewed%-ok%]%]", 30)
term:keys("Enter")

-- the subagent's two calls (its Bash call, then its report) reach the
-- OpenAI server; Claude Code then tells the main agent it is done
local bodies = {}
local deadline = core.now() + 90
while core.now() < deadline do
  bodies = fake.bodies(dir .. "/oai")
  if #bodies >= 2 then break end
  core.sleep(0.2)
end
T.ok(#bodies >= 2, "the background subagent's calls reached the OpenAI server", tostring(#bodies))
local first = json.decode(bodies[1] or "{}") or {}
T.is(first.model, "gpt-4o", "with the mapped model")
local msgs = first.messages or {}
local env_as_user = false
for _, m in ipairs(msgs) do
  if m.role == "user" and tostring(m.content):find("# Environment", 1, true) then env_as_user = true end
end
T.ok(msgs[1] and msgs[1].role == "system" and msgs[1].content:find("careful code reviewer", 1, true)
  and msgs[1].content:find("# Environment", 1, true) and not env_as_user,
  "Claude Code's environment block (a system message in messages) joins the system prompt, never a user turn")
T.ok(msgs[#msgs] and msgs[#msgs].role == "user" and tostring(msgs[#msgs].content):find("review it", 1, true),
  "so the last user message is the subagent's prompt", json.encode(msgs[#msgs]))
local log = T.read(dir .. "/oai/requests.jsonl") or ""
T.like(log, '"authorization":"Bearer %.%.%.%(len 39%)"', "with the OpenAI key as a bearer token")
local calls
deadline = core.now() + 30
while core.now() < deadline do
  local h = db.open(record, { migrations = false })
  calls = h and h:query("SELECT role, route, provider, routed_model, status, error FROM api_calls ORDER BY id") or {}
  if h then h:close() end
  local routed = 0
  for _, c in ipairs(calls) do if c.route and c.status == 200 then routed = routed + 1 end end
  if routed >= 2 then break end
  core.sleep(0.2)
end
local routed, failed = {}, {}
for _, c in ipairs(calls) do
  if c.route then routed[#routed + 1] = c end
  if (c.status or 0) >= 500 or c.error then failed[#failed + 1] = c end
end
T.ok(#routed >= 2 and routed[1].provider == "openai" and routed[1].routed_model == "gpt-4o" and routed[1].status == 200
  and routed[1].role == "subagent", "the routed calls are recorded: provider openai, gpt-4o, 200", json.encode(calls))
T.is(#failed, 0, "no call failed (no 502 from procy)", json.encode(failed))
local main_sub = 0
for _, b in ipairs(fake.bodies(dir .. "/fake")) do
  if b:find("careful code reviewer", 1, true) and not b:find('"Agent"', 1, true) then main_sub = main_sub + 1 end
end
T.is(main_sub, 0, "no subagent call reached the Anthropic upstream")
term:see('Agent "fake task" finished', "Claude Code says the background agent finished", 60)
local told
deadline = core.now() + 30
repeat
  for _, b in ipairs(fake.bodies(dir .. "/fake")) do
    if b:find("FAKE: got tool result: reviewed-ok", 1, true) then told = true end
  end
  if not told then core.sleep(0.2) end
until told or core.now() > deadline
T.ok(told, "and hands the main agent the subagent's report, on the Anthropic upstream")
core.sleep(0.5)
term:submit("/exit", "procy%-exit=0", 30)
term:see("procy%-exit=0", "/exit ends Claude Code, and procy exits 0", 40)
term:kill()
return T.done()
