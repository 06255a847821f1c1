-- fake.lua: starts the fake Anthropic/OpenAI API (tests/fake/upstream.mjs)
-- for a test. fake.start(dir) -> {port, url, log = dir .. "/requests.jsonl", proc}
local proc = require "procy.proc"
local T = require "tap"

local M = {}

function M.start(dir, args)
  local argv = { "node", T.src .. "/tests/fake/upstream.mjs", "--log-dir", dir }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local p = assert(proc.spawn(argv, { stderr = false }))
  local port = (p:lines()() or ""):match("^PORT (%d+)")
  assert(port, "the fake API did not start")
  return { port = tonumber(port), url = "http://127.0.0.1:" .. port, log = dir .. "/requests.jsonl", proc = p }
end

return M
