-- tests/bench/translate: see the shell script next to it.
local core = require "procy.core"
local json = require "procy.json"
local answer = require "procy.record.answer"
local tr = require "procy.translate"

local parts = {}
for i = 1, 20000 do
  parts[#parts + 1] = "data: " .. json.encode { id = "chatcmpl-b", choices = { { index = 0, delta = { content = "word" .. i .. " " } } } } .. "\n\n"
end
for i = 1, 2000 do
  parts[#parts + 1] = "data: " .. json.encode { id = "chatcmpl-b", choices = { { index = 0, delta = { tool_calls = {
    { index = 0, id = i == 1 and "call_1" or nil, ["function"] = { name = i == 1 and "Bash" or nil, arguments = '"x' .. i .. '",' } } } } } } } .. "\n\n"
end
parts[#parts + 1] = 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n'
local n = #parts
local function best(fn)
  local b = math.huge
  for _ = 1, 5 do
    local t0 = core.now()
    fn()
    b = math.min(b, core.now() - t0)
  end
  return b
end
local translate = best(function()
  local t = tr.stream { model = "claude-sonnet-4-5" }
  for _, p in ipairs(parts) do t:feed(p) end
  t:finish()
end)
local whole = table.concat(parts)
local decode = best(function()
  for _, e in ipairs(answer.sse(whole)) do json.decode(e.data) end
end)
print(("translation: %.2f µs per event (%d events, best of 5); splitting and decoding the same stream: %.2f µs per event; "
  .. "translation adds %.2f µs per event"):format(translate / n * 1e6, n, decode / n * 1e6, (translate - decode) / n * 1e6))

-- Time to the first byte of the answer, median of 200 streamed calls in
-- a row, against the same fake (no delay between its events): the OpenAI
-- stream read directly; the Anthropic call routed through procy serve to
-- it (a route, the translation both ways, recording); and, for what
-- having routes costs the calls no route takes, an Anthropic call relayed
-- by procy with routes set (Lua looks at it first) and with none.
local proc = require "procy.proc"
local http = require "procy.http"
package.path = "tests/lua/?.lua;" .. package.path
local median = require("lib.measure").median
local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
local fake = assert(proc.spawn({ "node", "tests/fake/upstream.mjs", "--log-dir", dir .. "/fake", "--delay", "0" }, { stderr = false }))
local furl = "http://127.0.0.1:" .. assert((fake:lines()() or ""):match("^PORT (%d+)"))
local function serve(name, conf)
  local cfg = dir .. "/" .. name .. ".lua"
  local f = assert(io.open(cfg, "w"))
  f:write(conf)
  f:close()
  local p = assert(proc.spawn({ "build/procy", "--config", cfg, "--db", dir .. "/" .. name .. ".db", "serve", "--port", "0",
    "--upstream", furl }, { stderr = "pipe", stdout = false }))
  return p, assert((p:lines("stderr")() or ""):match("listening on (http://[%d.:]+)"))
end
local routes = ("return { providers = { f = { api = 'openai', url = %q } }, routes = { { model = 'haiku', to = 'f:gpt-bench' } } }")
  :format(furl .. "/v1")
local routed, rurl = serve("routed", routes)
local plain, purl = serve("plain", "return {}")
local function ttfb(url, req, n)
  local t = {}
  local body = json.encode(req)
  for i = 1, n do
    local t0 = core.now()
    local s = assert(http.stream { method = "POST", url = url, headers = { ["content-type"] = "application/json" }, body = body })
    assert(s:read())
    t[i] = core.now() - t0
    while s:read() do end
    s:close()
  end
  return median(t) * 1e3
end
local msgs = { { role = "user", content = "hello there" } }
local N = 200
local direct = ttfb(furl .. "/v1/chat/completions", { model = "gpt-bench", stream = true, messages = msgs }, N)
local via = ttfb(rurl .. "/v1/messages", { model = "claude-haiku-4-5", max_tokens = 64, stream = true, messages = msgs }, N)
local relay_routes = ttfb(rurl .. "/v1/messages", { model = "claude-sonnet-4-5", max_tokens = 64, stream = true, messages = msgs }, N)
local relay_plain = ttfb(purl .. "/v1/messages", { model = "claude-sonnet-4-5", max_tokens = 64, stream = true, messages = msgs }, N)
print(("time to first byte, median of %d: OpenAI stream direct %.2f ms, routed through procy (translated) %.2f ms "
  .. "(+%.2f ms); a call no route takes, relayed by procy with routes set %.2f ms, with none %.2f ms (+%.2f ms)")
  :format(N, direct, via, via - direct, relay_routes, relay_plain, relay_routes - relay_plain))
routed:kill("TERM") plain:kill("TERM") fake:kill("TERM")
routed:wait() plain:wait() fake:wait()
proc.run { "rm", "-rf", dir }
