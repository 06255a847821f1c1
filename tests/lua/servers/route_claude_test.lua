-- The real Claude Code through procy with a project subagent routed to an
-- OpenAI-compatible server: .claude/agents/reviewer.md, a route for it in
-- the project's procy.lua, a prompt that makes the main agent hand work
-- to it (the fake Anthropic API answers with an Agent call). The
-- subagent's calls go to the fake OpenAI server, streamed, including a
-- Bash call Claude Code runs and whose result comes back as role "tool";
-- the main agent's stay on Anthropic; all recorded with both sides.
local T = require "lib.tap"
local core = require "procy.core"
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
env.ROUTE_KEY = "sk-route-key-0123456789abcdef"
agents.reviewer(work)
local record, procy = agents.project(w, ([[
  providers = { oai = { api = "openai", url = %q, key_env = "ROUTE_KEY" } },
  routes = { { agent = "reviewer", to = "oai:gpt-review" } },
]]):format(oai.url .. "/v1"))
local r = procy("agent", "start", "rev", "--", "--allowedTools", "Bash,Agent")
T.is(r.code, 0, "agent start", r.stderr)
r = procy("agent", "send", "rev", "please TOOL:task:reviewer[review it TOOL:bash[echo reviewed-ok]]", "--wait")
T.like(r.stdout, "FAKE: got tool result:", "the main agent ends with the subagent's report", r.stderr)
procy("agent", "stop", "rev")

local bodies = {}
for _, b in ipairs(fake.bodies(dir .. "/oai")) do bodies[#bodies + 1] = json.decode(b) end
T.ok(#bodies >= 2, "the subagent's calls reached the OpenAI-compatible server", tostring(#bodies))
local b1, b2 = bodies[1] or {}, bodies[2] or {}
T.ok(b1.model == "gpt-review" and b1.stream == true and b1.messages and b1.messages[1].role == "system"
  and b1.messages[1].content:find("careful code reviewer", 1, true), "as chat completions, streamed, with the agent's prompt as system")
local last = b2.messages and b2.messages[#b2.messages] or {}
T.ok(last.role == "tool" and last.tool_call_id == "call_oai_0001" and tostring(last.content):find("reviewed%-ok"),
  "Claude Code ran the provider's Bash call; its result came back as role tool with the call's id", json.encode(last))
local main_sub = 0
for _, b in ipairs(fake.bodies(dir .. "/fake")) do
  if b:find("careful code reviewer", 1, true) and not b:find('"Agent"', 1, true) then main_sub = main_sub + 1 end
end
T.is(main_sub, 0, "no subagent call reached the Anthropic upstream")

local h = assert(db.open(record))
local rows
for _ = 1, 100 do
  rows = h:query("SELECT role, route, provider, routed_model, up_request, up_response, stop_reason FROM api_calls ORDER BY id")
  local routed = 0
  for _, row in ipairs(rows) do if row.route then routed = routed + 1 end end
  if routed >= 2 then break end
  core.sleep(0.1)
end
local routed, mains = {}, {}
for _, row in ipairs(rows) do
  if row.route then routed[#routed + 1] = row elseif row.role == "main" then mains[#mains + 1] = row end
end
T.ok(#routed >= 2 and routed[1].route == "reviewer" and routed[1].provider == "oai" and routed[1].role == "subagent"
  and routed[1].routed_model == "gpt-review" and routed[1].stop_reason == "tool_use",
  "the subagent's calls recorded as routed: route, provider, model, its tool_use", json.encode(rows))
T.ok(routed[1] and routed[1].up_request and routed[1].up_response, "with both sides")
T.ok(#mains >= 2, "the main agent's calls recorded, not routed")
local tc = h:query("SELECT name, result FROM tool_calls WHERE tool_use_id = 'call_oai_0001'")[1] or {}
T.ok(tc.name == "Bash" and tostring(tc.result):find("reviewed%-ok"), "the routed Bash call and its result in tool_calls", json.encode(tc))

return T.done()
