-- fake.lua: starts the fake Anthropic/OpenAI API (tests/fake/upstream.mjs)
-- for a test. fake.start(dir) -> {port, url, log = dir .. "/requests.jsonl", proc}
-- A request's log line is written when its answer ends (for a stream, a
-- moment after the last event, so a client may show the answer first);
-- its body (bodies/NNNN.json) before the answer starts: fake.bodies reads
-- those, fake.requests waits for the log lines.
local fs = require "procy.fs"
local proc = require "procy.proc"
local T = require "lib.tap"

local M = {}

function M.start(dir, args)
  local argv = { "node", T.src .. "/tests/fake/upstream.mjs", "--log-dir", dir }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local p = assert(proc.spawn(argv, { stderr = false }))
  local port = (p:lines()() or ""):match("^PORT (%d+)")
  assert(port, "the fake API did not start")
  return { port = tonumber(port), url = "http://127.0.0.1:" .. port, log = dir .. "/requests.jsonl", proc = p }
end

-- fake.requests(dir, [n], [seconds]) -> {log line decoded, ...}: once n
-- (default 1) are written, or what there is after seconds (default 10)
function M.requests(dir, n, seconds)
  local core = require "procy.core"
  local json = require "procy.json"
  local deadline, out = core.now() + (seconds or 10), {}
  while true do
    out = {}
    for line in (T.read(dir .. "/requests.jsonl") or ""):gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
    if #out >= (n or 1) or core.now() > deadline then return out end
    core.sleep(0.02)
  end
end

-- fake.bodies(dir) -> {text, ...}: every request body so far, in order
function M.bodies(dir)
  local out = {}
  for _, name in ipairs(fs.dir(dir .. "/bodies") or {}) do out[#out + 1] = T.read(dir .. "/bodies/" .. name) end
  return out
end

return M
