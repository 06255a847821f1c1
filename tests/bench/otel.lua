-- tests/bench/otel: see the shell script next to it.
package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local http = require "procy.http"
local config = require "procy.config"
local measure = require "lib.measure"
core.set_run_limit(0) -- a benchmark: long loops on purpose

local n = tonumber((...)) or 20000
local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
local function start(argv, what)
  local p = assert(proc.spawn(argv, { stderr = false }))
  return p, "http://127.0.0.1:" .. assert((p:lines()() or ""):match("^PORT (%d+)"), what)
end
local recv, rurl = start({ "node", "tests/fake/otlp.mjs", "--log-dir", dir .. "/otlp" }, "the receiver did not start")
local fake, furl = start({ "node", "tests/fake/upstream.mjs", "--log-dir", dir .. "/fake", "--delay", "0" }, "the fake did not start")
local f = assert(io.open(dir .. "/procy.lua", "w"))
f:write(("return { db = %q }"):format(dir .. "/rec.db"))
f:close()
assert(config.load { config = dir .. "/procy.lua" })
local store, capture, otel = require "procy.store", require "procy.record.capture", require "procy.otel"
local h = assert(store.open())
local sid = assert(store.new_session { argv = { "bench" }, cwd = dir, mode = "serve" })
h:transaction(function()
  for i = 1, n do
    local call = { method = "POST", path = "/v1/messages", upstream = "bench", req_headers = {}, status = 200,
      req_body = json.encode { model = "claude-sonnet-4-5", messages = { { role = "user", content = "call " .. i } } },
      resp_headers = { { "content-type", "application/json" } }, started_at = 1796000000000000 + i * 1000, ttfb_us = 500,
      duration_us = 900, resp_body = json.encode { id = "m" .. i, type = "message", role = "assistant", model = "claude-sonnet-4-5",
        content = { { type = "text", text = "answer " .. i } }, stop_reason = "end_turn", usage = { input_tokens = 12, output_tokens = 3 } } }
    capture.write(h, capture.prepare(call), sid)
  end
end)
local t0 = core.now()
local sent = assert(otel.export(h, { session = sid, endpoint = rurl, batch = 512, retries = 0 }))
local took = core.now() - t0
print(("procy otel export: %d spans in %.2f s, %.0f spans/s (building them from the record included)"):format(sent, took, sent / took))

local function serve(conf)
  local cfg = dir .. "/" .. conf .. ".lua"
  local g = assert(io.open(cfg, "w"))
  g:write(conf == "on" and ("return { db = %q, otel = { endpoint = %q, interval = 0.2 } }"):format(dir .. "/on.db", rurl)
    or ("return { db = %q }"):format(dir .. "/off.db"))
  g:close()
  local p = assert(proc.spawn({ "build/procy", "--config", cfg, "serve", "--port", "0", "--upstream", furl }, { stderr = "pipe", stdout = false }))
  return p, assert((p:lines("stderr")() or ""):match("listening on (http://[%d.:]+)"))
end
local function latency(url)
  local t = {}
  local body = json.encode { model = "claude-sonnet-4-5", max_tokens = 10, messages = { { role = "user", content = "hello" } } }
  for i = 1, 500 do
    local t1 = core.now()
    local r = assert(http.request { method = "POST", url = url .. "/v1/messages", headers = { ["content-type"] = "application/json" }, body = body })
    assert(r.status == 200)
    t[i] = core.now() - t1
  end
  return measure.median(t) * 1e3
end
local on, onurl = serve("on")
local off, offurl = serve("off")
local l_off, l_on = latency(offurl), latency(onurl)
local l_off2 = latency(offurl) -- interleaved: drift hits both
print(("a relayed call, median of 500: live export off %.3f ms, on %.3f ms (+%.3f ms)"):format((l_off + l_off2) / 2, l_on,
  l_on - (l_off + l_off2) / 2))
for _, p in ipairs { on, off, recv, fake } do p:kill("TERM") p:wait() end
proc.run { "rm", "-rf", dir }
