-- Routes: procy serve with providers and routes in procy.lua, two fake
-- APIs (the Anthropic upstream, an OpenAI-compatible provider, and a
-- second Anthropic one). A call a route takes goes to its provider,
-- translated and streamed back; the others stay on the C relay; each is
-- recorded once with both sides. Matching by model, role, size, thinking,
-- subagent (whitespace-proof, reloaded), route functions, the env
-- overrides, count_tokens, provider errors, a missing key, bad settings.
local T = require "lib.tap"
local core = require "procy.core"
local fs = require "procy.fs"
local http = require "procy.http"
local json = require "procy.json"
local proc = require "procy.proc"
local db = require "procy.db"
local answer = require "procy.record.answer"
local route = require "procy.route"

-- ---- the pieces, in process ---------------------------------------------------------------
local name, body = route.parse_agent("---\nname: \"code-reviewer\"\ndescription: x\n---\nYou review.\n\n---\n\nA rule above.\n", "/a/b.md")
T.is(name, "code-reviewer", "an agent's name from its front matter")
T.is(body, "You review.\n\n---\n\nA rule above.\n", "a --- rule inside the prompt stays the prompt's")
T.is((route.parse_agent("Just a prompt.", "/x/writer.md")), "writer", "no front matter: the file's name")

local r = route.parse_env_routes("agent:reviewer=openai:gpt-4o, role:side+model:haiku=local:qwen3:8b")
T.ok(r[1].agent == "reviewer" and r[1].to == "openai:gpt-4o" and r[2].role == "side" and r[2].model == "haiku"
  and r[2].to == "local:qwen3:8b", "PROCY_ROUTES: conditions joined by +, a target's model may hold ':'")
local m = route.parse_mappings("code-reviewer:gpt-4o,writer:claude-haiku-4-5", { anthropic = true, openai = true })
T.ok(m[1].to == "openai:gpt-4o" and m[2].to == "anthropic:claude-haiku-4-5" and m[1].agent == "code-reviewer",
  "SUBAGENT_MAPPINGS: NAME:MODEL, the provider from the model")

local function bad(o, pattern, what)
  local ok, err = pcall(route.new, o)
  T.ok(not ok and tostring(err):find(pattern), what, tostring(err))
end
bad({ providers = { x = { api = "openai", url = "http://h/v1", key = "sk-1" } } }, "never read from a config file",
  "a key in the config file is refused")
bad({ routes = { { model = "a", to = "nope:m" } } }, "no provider \"nope\"", "a route to an unknown provider names it")
bad({ routes = { { modle = "a", to = "openai" } } }, "unknown field \"modle\"", "a misspelt field is named")
bad({ routes = { { model = "[", to = "openai" } } }, "Lua pattern", "a broken pattern is refused")
bad({ env = function(k) return k == "PROCY_ROUTES" and "agent=openai" or nil end }, "PROCY_ROUTES", "a broken PROCY_ROUTES")
-- the agent's own Anthropic key goes only where it is meant to
bad({ providers = { gw = { api = "anthropic", url = "https://gateway.example/" } } },
  "providers%.gw: https://gateway%.example would be sent the agent's own Anthropic key: .*key_env.*forward_key = true",
  "an Anthropic-compatible provider without key_env elsewhere: refused, naming key_env and forward_key")
for _, evil in ipairs { "https://api.anthropic.com:@evil.example", "https://api.anthropic.com:443@evil.example/x",
                       "https://api.anthropic.com.evil.example" } do
  bad({ providers = { gw = { api = "anthropic", url = evil } } }, "would be sent the agent's own Anthropic key",
    "not Anthropic's host, whatever the URL starts with: " .. evil)
end
bad({ providers = { gw = { api = "anthropic", url = "https://gateway.example", forward_key = "yes" } } },
  "forward_key must be true or false", "forward_key is a boolean")
for _, p in ipairs {
  { api = "anthropic", url = "https://gateway.example", forward_key = true },
  { api = "anthropic", url = "https://api.anthropic.com" },
  { api = "anthropic", url = "http://127.0.0.1:9/", key_env = "GW_KEY" },
} do
  T.ok(pcall(route.new, { providers = { gw = p } }), "allowed: " .. p.url .. (p.forward_key and " with forward_key" or p.key_env and " with key_env" or ""))
end
T.ok(pcall(route.new, { upstream = "http://127.0.0.1:9/", providers = { up2 = { api = "anthropic", url = "http://127.0.0.1:9" } } }),
  "allowed: the proxy's own upstream, where the agent's calls go anyway")

local rt = route.new { routes = { { model = "haiku", to = "openai:small" }, { min_tokens = 1000, to = "openai:long" },
  { thinking = true, to = "anthropic:thinker" }, { role = "side", to = "openai:titles" },
  function(s) return s.model == "fn-me" and { to = "openai:by-fn", name = "mine" } end,
  function(s) if s.model == "boom" then error("oops") end end } }
local function pick(req, headers)
  local text = json.encode(req)
  return rt:pick(assert(rt:summary(text, headers or {}, "/v1/messages", nil)))
end
T.is((pick { model = "claude-haiku-4-5", messages = {} } or {}).model, "small", "by model pattern")
T.is((pick { model = "x", messages = { { role = "user", content = ("w"):rep(5000) } } } or {}).model, "long", "by size")
T.is((pick { model = "x", thinking = { type = "enabled", budget_tokens = 1 }, messages = {} } or {}).model, "thinker", "by thinking")
T.is((pick({ model = "x", messages = {} }, { { "user-agent", "claude-cli/2.1.330 (external, cli)" } }) or {}).model, "titles",
  "by role: a Claude Code call with no tools is a side call")
local f = pick { model = "fn-me", messages = {} }
T.ok(f and f.model == "by-fn" and f.name == "mine", "a route function of the summary")
T.is(pick { model = "boom", messages = {} }, nil, "a route function that raises is skipped (and logged)")
T.is(pick { model = "other", messages = {} }, nil, "no route: nil")

-- ---- through procy serve ------------------------------------------------------------------
local dir = T.tmpdir()
local fake = require "lib.fake"
local up = fake.start(dir .. "/up")
local _u <close> = up.proc
local oai = fake.start(dir .. "/oai", { "--tool-prefix", "call_oai_" })
local _o <close> = oai.proc
local alt = fake.start(dir .. "/alt", { "--tool-prefix", "toolu_alt_" })
local _a <close> = alt.proc
local work = dir .. "/work"
fs.mkdir(work .. "/.claude/agents")
local agent_file = work .. "/.claude/agents/reviewer.md"
T.write(agent_file, "---\nname: reviewer\ndescription: Reviews changes.\ntools: Bash\n---\nYou are a careful code reviewer.\n"
  .. "Look at the change you are given, run the checks you need,\nand say what is wrong with it. Be brief.\n")
T.write(dir .. "/procy.lua", ([[return {
  db = %q,
  providers = {
    oai = { api = "openai", url = %q, key_env = "ROUTE_TEST_KEY", prices = { ["gpt-test"] = { input = 2, output = 8 } } },
    alt = { api = "anthropic", url = %q, key_env = "ALT_KEY" },
    nokey = { api = "openai", url = %q, key_env = "ROUTE_TEST_UNSET" },
  },
  routes = {
    { agent = "reviewer", to = "oai:gpt-test" },
    { model = "haiku", to = "oai:gpt-test" },
    { model = "^alt%%-", to = "alt:claude-alt-model" },
    { model = "^nokey", to = "nokey:m" },
    { model = "^small%%-", to = "oai:gpt-small" },
    { model = "^limited%%-", to = "oai:gpt-limited" },
  },
}]]):format(dir .. "/rec.db", oai.url .. "/v1", alt.url, oai.url .. "/v1"))

-- the person's token, given (PROCY_TOKEN), for the monitor's API
local person_token = "route-test-person-token-0123456789"
local person = { ["x-procy-token"] = person_token }
local env = { ROUTE_TEST_KEY = "sk-route-test-0123456789", ALT_KEY = "sk-ant-alt-0123456789abcdef", PROCY_ROUTES = "",
  SUBAGENT_MAPPINGS = "", PROCY_TOKEN = person_token }
local serve = assert(proc.spawn({ T.bin, "--config", dir .. "/procy.lua", "serve", "--port", "0", "--upstream", up.url },
  { cwd = work, env = env, stderr = "pipe", stdout = false }))
local _s <close> = serve
local url = (serve:lines("stderr")() or ""):match("listening on (http://[%d.:]+)")
T.ok(url, "procy serve is up with routes")
url = url or "http://127.0.0.1:1"

local CC = { ["user-agent"] = "claude-cli/2.1.330 (external, cli)", ["content-type"] = "application/json",
  ["x-api-key"] = "sk-ant-api03-" .. ("agentkey"):rep(5), ["anthropic-version"] = "2023-06-01" }
local BASH = { name = "Bash", description = "run a command", input_schema = { type = "object",
  properties = { command = { type = "string" } }, required = { "command" } } }

local function post(path, req, headers)
  local h = {}
  for k, v in pairs(headers or CC) do h[k] = v end
  return http.request { method = "POST", url = url .. path, headers = h, body = json.encode(req), timeout = 30 }
end
local function events(text)
  local out = { content = {}, usage = {}, bad = 0, odd = 0, events = 0 }
  answer.parse.anthropic(out, text, true, answer.events(text))
  return out
end

-- a subagent's call (tools, no Task tool), its system prompt holding the
-- agent file's prompt re-wrapped: routed to the OpenAI provider, streamed
local sys = { { type = "text", text = "x-anthropic-billing-header: cc_version=2.1.330; cc_is_subagent=true;" },
  { type = "text", text = "You are a Claude agent, built on Anthropic's Claude Agent SDK." },
  { type = "text", text = "You are a careful   code reviewer. Look at the change you are given, run the checks\n\tyou need, and say what is wrong with it. Be brief.\n\nNotes:\n- env" } }
local res = post("/v1/messages", { model = "claude-opus-5-5", max_tokens = 512, stream = true, system = sys, tools = { BASH },
  messages = { { role = "user", content = "review TOOL:bash[git diff]" } } })
T.is(res and res.status, 200, "a subagent's call routed: 200")
local ev = events(res and res.body or "")
T.is(ev.stop_reason, "tool_use", "its answer: an Anthropic stream ending in tool_use")
local tu = ev.content[#ev.content] or {}
T.ok(tu.type == "tool_use" and tu.name == "Bash" and tu.input.command == "git diff" and tu.id == "call_oai_0001",
  "the provider's tool call as a tool_use block, its id kept", json.encode(ev.content))
local ob = json.decode(fake.bodies(dir .. "/oai")[1] or "") or {}
T.ok(ob.model == "gpt-test" and ob.stream and ob.messages[1].role == "system" and ob.tools[1]["function"].name == "Bash",
  "the provider got a chat completions call: its model, the system message, the tools as functions")
local ol = { headers = {} }
for _, e in ipairs(fake.requests(dir .. "/oai", 2)) do
  if e.method == "POST" then ol = e break end
end
T.ok(ol.path == "/v1/chat/completions" and ol.headers.authorization == "Bearer ...(len 31)" and not ol.headers["x-api-key"],
  "at the provider's URL (its path kept), with the provider's key, not the agent's", json.encode(ol.headers))

-- the tool's result comes back as role "tool" with the call's id
res = post("/v1/messages", { model = "claude-opus-5-5", max_tokens = 512, stream = true, system = sys, tools = { BASH },
  messages = { { role = "user", content = "review TOOL:bash[git diff]" },
    { role = "assistant", content = { { type = "tool_use", id = "call_oai_0001", name = "Bash", input = { command = "git diff" } } } },
    { role = "user", content = { { type = "tool_result", tool_use_id = "call_oai_0001", content = "diff --git a b" } } } } })
ev = events(res and res.body or "")
T.is((ev.content[1] or {}).text, "FAKE: got tool result: diff --git a b", "the tool result round trip through the provider")
ob = json.decode(fake.bodies(dir .. "/oai")[2] or "") or {}
local last = ob.messages and ob.messages[#ob.messages] or {}
T.ok(last.role == "tool" and last.tool_call_id == "call_oai_0001", "sent as a role tool message with its tool_call_id")

-- not routed: the main agent (it has the Task tool), on the C relay
local main = post("/v1/messages", { model = "claude-opus-5-5", max_tokens = 64, system = sys,
  tools = { BASH, { name = "Agent", description = "a subagent", input_schema = { type = "object" } } },
  messages = { { role = "user", content = "hello main" } } })
T.like(main and main.body, "FAKE: hello! you said: hello main", "the main agent's call stays on the upstream")
T.is(#fake.bodies(dir .. "/up"), 1, "it reached the Anthropic upstream")

-- the agent file changes: reloaded, the old prompt no longer matches
T.write(agent_file, "---\nname: reviewer\n---\nYou write release notes in verse, nothing else at all ever.\n")
core.sleep(1.2)
local before = #fake.bodies(dir .. "/oai")
post("/v1/messages", { model = "claude-opus-5-5", max_tokens = 64, system = sys, tools = { BASH },
  messages = { { role = "user", content = "after the edit" } } })
T.is(#fake.bodies(dir .. "/oai"), before, "an edited agent file is read again: its old prompt is no longer routed")
sys[3].text = "You write release notes in verse,\n  nothing else at all ever.\nNotes: x"
post("/v1/messages", { model = "claude-opus-5-5", max_tokens = 64, system = sys, tools = { BASH },
  messages = { { role = "user", content = "new prompt" } } })
T.is(#fake.bodies(dir .. "/oai"), before + 1, "and its new one is")

-- by model, not streamed; count_tokens for a routed model
res = post("/v1/messages", { model = "claude-haiku-4-5", max_tokens = 64, messages = { { role = "user", content = "short" } } },
  { ["content-type"] = "application/json" })
local msg = json.decode(res and res.body or "") or {}
T.ok(msg.type == "message" and msg.model == "claude-haiku-4-5" and msg.content[1].text:find("you said: short")
  and msg.stop_reason == "end_turn", "a routed answer, not streamed: an Anthropic message named as asked", res and res.body)
res = post("/v1/messages/count_tokens", { model = "claude-haiku-4-5", messages = { { role = "user", content = ("abcd"):rep(100) } } },
  { ["content-type"] = "application/json" })
local ct = json.decode(res and res.body or "") or {}
T.ok(res and res.status == 200 and math.type(ct.input_tokens) and ct.input_tokens > 90 and ct.input_tokens < 200,
  "count_tokens for a routed model: an estimate", res and res.body)

-- the provider's error, Anthropic-shaped, its status kept
res = post("/v1/messages", { model = "claude-haiku-4-5", max_tokens = 64, stream = true,
  messages = { { role = "user", content = "FAKE_ERROR:429" } } })
local e = json.decode(res and res.body or "") or {}
T.ok(res and res.status == 429 and e.type == "error" and e.error.type == "rate_limit_error", "a provider's 429: rate_limit_error, 429",
  res and res.body)
res = post("/v1/messages", { model = "nokey-1", max_tokens = 64, messages = { { role = "user", content = "x" } } })
T.ok(res and res.status == 401 and res.body:find("ROUTE_TEST_UNSET", 1, true), "a provider whose key is not set: 401 naming the variable",
  res and res.body)

-- to another Anthropic-compatible provider: the model swapped, its own key
res = post("/v1/messages", { model = "alt-sonnet", max_tokens = 64, stream = true, messages = { { role = "user", content = "to alt" } } })
ev = events(res and res.body or "")
T.like((ev.content[1] or {}).text, "you said: to alt", "routed to the other Anthropic provider, streamed through")
local al = fake.requests(dir .. "/alt")[1] or { headers = {} }
local ab = json.decode(fake.bodies(dir .. "/alt")[1] or "") or {}
T.ok(ab.model == "claude-alt-model" and (al.headers["x-api-key"] or ""):find("(len 27)", 1, true), "with the route's model and the provider's key",
  T.read(dir .. "/alt/requests.jsonl"))

-- the official SDK through the route: a streamed tool call, read whole
local sdk = T.src .. "/tests/node/node_modules/@anthropic-ai/sdk/index.mjs"
local sdk_calls = 0
if fs.stat(sdk) then
  local script = T.write(dir .. "/sdk.mjs", ([[
    import Anthropic from %q;
    const c = new Anthropic({ baseURL: process.argv[2], apiKey: "sk-ant-sdk", maxRetries: 0 });
    const s = c.messages.stream({ model: "claude-haiku-4-5", max_tokens: 100, messages: [{ role: "user", content: "TOOL:bash[make test]" }],
      tools: [{ name: "Bash", description: "run", input_schema: { type: "object", properties: { command: { type: "string" } } } }] });
    let texts = 0; s.on("text", () => texts++);
    const m = await s.finalMessage();
    console.log(JSON.stringify({ texts, m }));
  ]]):format(sdk))
  local sr = proc.run({ "node", script, url }, { timeout = 60 })
  local got = json.decode(sr and sr.stdout or "") or {}
  local m = got.m or {}
  T.ok(got.texts and got.texts > 0 and m.stop_reason == "tool_use" and m.content and m.content[2]
    and m.content[2].input.command == "make test" and m.model == "claude-haiku-4-5",
    "@anthropic-ai/sdk streams a routed call: text deltas, the tool input whole, the stop reason", sr and (sr.stdout .. sr.stderr))
  sdk_calls = 1
else
  T.skip("the SDK through a route", "tests/node has no @anthropic-ai/sdk (.ci/setup installs it)")
end

-- the output limit: clamped to what the provider's model list says
-- (vLLM's max_model_len less the request), or, refused with the limit
-- named, asked again with it
local function last_oai()
  local b = fake.bodies(dir .. "/oai")
  return json.decode(b[#b] or "") or {}, #b
end
local _, n0 = last_oai()
res = post("/v1/messages", { model = "small-x", max_tokens = 128000, messages = { { role = "user", content = ("w"):rep(4000) } } })
local sb = last_oai()
T.ok(res and res.status == 200 and sb.model == "gpt-small" and sb.max_tokens and sb.max_tokens < 8192 - 900
  and sb.max_tokens > 6000, "max_tokens 128000 to a model whose list says 8192: clamped to its context less the request",
  tostring(sb.max_tokens))
res = post("/v1/messages", { model = "limited-x", max_tokens = 128000, messages = { { role = "user", content = "hello limited" } } })
local lb, n2 = last_oai()
local lev = json.decode(res and res.body or "") or { content = {} }
T.ok(res and res.status == 200 and (lev.content[1] or {}).text and lev.content[1].text:find("you said: hello limited", 1, true),
  "a provider that refuses the ask, naming its limit: asked again within it, and answered", res and res.body)
T.ok(n2 == n0 + 3 and lb.max_tokens == 4096, "the second ask: max_tokens 4096", tostring(n2 - n0) .. " " .. tostring(lb.max_tokens))

-- the record: once per call, both sides, marked routed, the provider's prices
local listed
for _ = 1, 50 do
  local l = http.request { headers = person, url = url .. "/api/calls?limit=50", timeout = 10 }
  listed = json.decode(l and l.body or "") or {}
  if listed.calls and #listed.calls >= 12 + sdk_calls then break end
  core.sleep(0.1)
end
local oldest = listed.calls and listed.calls[#listed.calls] or {}
T.ok(oldest.route == "reviewer" and oldest.provider == "oai", "/api/calls says which calls were routed, and where")
local one = json.decode((http.request { headers = person, url = url .. "/api/calls/" .. tostring(oldest.id), timeout = 10 } or {}).body or "") or {}
T.ok(tostring(one.provider_request):find('"gpt-test"', 1, true) and tostring(one.provider_response):find("chat.completion.chunk", 1, true),
  "/api/calls/ID has what the provider got and answered")
serve:kill("TERM")
serve:wait()
local h = assert(db.open(dir .. "/rec.db"))
local rows = h:query("SELECT id, role, model, routed_model, route, provider, up_status, status, cost, input_tokens, "
  .. "output_tokens, up_request, up_response, req_body, resp_body, upstream, error FROM api_calls ORDER BY id")
T.is(#rows, 12 + sdk_calls, "every call recorded once (10 routed, 2 relayed, and the SDK's)")
local first = rows[1] or {}
T.ok(first.route == "reviewer" and first.provider == "oai" and first.routed_model == "gpt-test" and first.model == "claude-opus-5-5"
  and first.role == "subagent" and first.up_status == 200, "a routed call: its route, provider, both models, the subagent role")
T.ok(first.up_request and first.up_response and first.up_request ~= first.req_body and first.up_response ~= first.resp_body,
  "both sides kept: what the agent sent and got, what the provider got and answered")
local blob = require "procy.blobs"
local upreq = blob.get(h, first.up_request) or ""
T.ok(upreq:find('"chat', 1, true) == nil and upreq:find('"tool_calls"', 1, true) == nil and upreq:find('"gpt%-test"'),
  "the provider's side is the translated request")
T.ok(not (blob.get(h, first.up_request) or ""):find("sk-route-test", 1, true), "no key reaches the record")
T.ok(first.cost and math.abs(first.cost - (first.input_tokens * 2 + first.output_tokens * 8) / 1e6) < 1e-12,
  "priced at the provider's prices for its model", tostring(first.cost))
local tc = h:query("SELECT name, result, api_call_id, result_call_id FROM tool_calls WHERE tool_use_id = 'call_oai_0001'")[1] or {}
T.ok(tc.name == "Bash" and tc.result == "diff --git a b" and tc.api_call_id == first.id, "the routed tool call and its result in tool_calls")
local relayed = rows[3] or {}
T.ok(relayed.route == nil and relayed.provider == nil and relayed.upstream:find(up.url, 1, true), "an unrouted call: no route, the upstream")
local n429 = 0
for _, row in ipairs(rows) do if row.status == 429 and row.up_status == 429 and row.error then n429 = n429 + 1 end end
T.is(n429, 1, "the provider's error recorded with its status")

-- PROCY_ROUTES and SUBAGENT_MAPPINGS win over the file's routes
T.write(dir .. "/procy2.lua", ("return { db = %q, providers = { oai = { api = 'openai', url = %q } } }"):format(dir .. "/rec2.db", oai.url .. "/v1"))
local s2 = assert(proc.spawn({ T.bin, "--config", dir .. "/procy2.lua", "serve", "--port", "0", "--upstream", up.url },
  { cwd = work, env = { PROCY_ROUTES = "model:^env%-=oai:from-env", SUBAGENT_MAPPINGS = "reviewer:oai:mapped" },
    stderr = "pipe", stdout = false }))
local _s2 <close> = s2
url = (s2:lines("stderr")() or ""):match("listening on (http://[%d.:]+)") or "http://127.0.0.1:1"
before = #fake.bodies(dir .. "/oai")
post("/v1/messages", { model = "env-model", max_tokens = 8, messages = { { role = "user", content = "e" } } })
post("/v1/messages", { model = "claude-opus-5-5", max_tokens = 8, system = sys, tools = { BASH },
  messages = { { role = "user", content = "m" } } })
local b = fake.bodies(dir .. "/oai")
T.ok(#b == before + 2 and json.decode(b[before + 1]).model == "from-env" and json.decode(b[before + 2]).model == "mapped",
  "PROCY_ROUTES by model, SUBAGENT_MAPPINGS by subagent")
s2:kill("TERM")
s2:wait()

-- a config with a key in it stops procy serve with a clear message
T.write(dir .. "/procy3.lua", "return { providers = { p = { api = 'openai', url = 'http://h/v1', key = 'sk-1' } }, routes = { { to = 'p' } } }")
local r3 = T.procy({ "--config", dir .. "/procy3.lua", "--db", dir .. "/rec3.db", "serve", "--port", "0" }, { timeout = 20 })
T.ok(r3.code ~= 0 and r3.stderr:find("never read from a config file", 1, true), "a key in the config: procy serve refuses, saying why",
  r3.stderr)

return T.done()
