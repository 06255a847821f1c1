-- otlp.lua: the fake OTLP/HTTP receiver (tests/fake/otlp.mjs) for tests.
local proc = require "procy.proc"
local T = require "lib.tap"

local M = {}

-- receiver(dir, [fail], [delay]) -> process, url: it logs to dir, refuses
-- the first `fail` requests and answers after `delay` seconds
function M.receiver(dir, fail, delay)
  local p = assert(proc.spawn({ "node", T.src .. "/tests/fake/otlp.mjs", "--log-dir", dir, "--fail-first", tostring(fail or 0),
    "--delay", tostring(delay or 0) }, { stderr = false }))
  local port = assert((p:lines()() or ""):match("^PORT (%d+)"), "the OTLP receiver did not start")
  return p, "http://127.0.0.1:" .. port
end

return M
