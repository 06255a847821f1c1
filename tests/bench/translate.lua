-- tests/bench/translate: see the shell script next to it.
local core = require "procy.core"
local json = require "procy.json"
local answer = require "procy.answer"
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
