-- tests/bench/vcr: see the shell script next to it.
package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local http = require "procy.http"
local config = require "procy.config"
local measure = require "lib.measure"

local n = tonumber((...)) or 10000
core.set_run_limit(0) -- a benchmark: long loops on purpose
local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
local f = assert(io.open(dir .. "/procy.lua", "w"))
f:write(("return { db = %q }"):format(dir .. "/rec.db"))
f:close()
assert(config.load { config = dir .. "/procy.lua" })
local store, capture, vcr = require "procy.store", require "procy.record.capture", require "procy.vcr"
local h = assert(store.open())
local sid = assert(store.new_session { argv = { "bench" }, cwd = dir, mode = "serve" })

local function request(conv, k)
  local msgs = {}
  for i = 1, k do
    msgs[i] = { role = i % 2 == 1 and "user" or "assistant",
      content = ("conversation %d, message %d: "):format(conv, i) .. ("make the parser faster and keep it correct. "):rep(8) }
  end
  return json.encode { model = "claude-sonnet-4-5", max_tokens = 4096, stream = true, metadata = { user_id = "u" .. conv },
    system = { { type = "text", text = "You are Claude Code." } }, messages = msgs }
end
local answer = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-sonnet-4-5\","
  .. "\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
local bodies = {}
local t0 = core.now()
h:transaction(function()
  for i = 1, n do
    local body = request((i - 1) // 50, (i - 1) % 50 + 1)
    bodies[#bodies + 1] = body
    local call = { method = "POST", path = "/v1/messages", upstream = "bench", req_headers = {}, req_body = body, status = 200,
      resp_headers = { { "content-type", "text/event-stream" } }, resp_body = answer, started_at = i, ttfb_us = 1000,
      duration_us = 2000 }
    capture.write(h, capture.prepare(call), sid)
  end
end)
local built = core.now() - t0
t0 = core.now()
local c = assert(vcr.load { session = sid })
local loaded = core.now() - t0
local hits, misses = {}, {}
for i = 1, 1000 do
  local body = bodies[(i * 7919) % n + 1]
  local t = core.now()
  assert(c:match("POST", "/v1/messages", body))
  hits[i] = core.now() - t
end
for i = 1, 50 do
  local body = request(100000 + i, 10)
  local t = core.now()
  local call, closest = c:match("POST", "/v1/messages", body)
  assert(not call and closest)
  misses[i] = core.now() - t
end
local kb = 0
for _, b in ipairs(bodies) do kb = kb + #b end
print(("a cassette of %d calls (%.1f KB a request on average; recorded in %.1f s) loaded in %.2f s; a match: %.0f µs "
  .. "(median of 1000 hits), a miss with its closest call and first difference: %.1f ms (median of 50)")
  :format(n, kb / n / 1024, built, loaded, measure.median(hits) * 1e6, measure.median(misses) * 1e3))

-- a replayed call's time to first byte, against the fake answering it
local fake = assert(proc.spawn({ "node", "tests/fake/upstream.mjs", "--log-dir", dir .. "/fake", "--delay", "0" }, { stderr = false }))
local furl = "http://127.0.0.1:" .. assert((fake:lines()() or ""):match("^PORT (%d+)"))
local srv = assert(proc.spawn({ "build/procy", "--config", dir .. "/procy.lua", "serve", "--port", "0", "--replay", sid, "--fast" },
  { stderr = "pipe", stdout = false }))
local rurl = assert((srv:lines("stderr")() or ""):match("listening on (http://[%d.:]+)"))
local function ttfb(url, body)
  local t = {}
  for i = 1, 200 do
    local t1 = core.now()
    local s = assert(http.stream { method = "POST", url = url .. "/v1/messages", headers = { ["content-type"] = "application/json" },
      body = body })
    assert(s:read())
    t[i] = core.now() - t1
    while s:read() do end
    s:close()
  end
  return measure.median(t) * 1e3
end
local body = bodies[25]
local direct, replayed = ttfb(furl, body), ttfb(rurl, body)
print(("time to first byte, median of 200: the fake API %.2f ms, replayed by procy serve --replay --fast %.2f ms"):format(direct, replayed))
srv:kill("TERM") fake:kill("TERM")
srv:wait() fake:wait()
proc.run { "rm", "-rf", dir }
