-- proxy.lua — see tests/bench/proxy. Every figure is a ratio or a
-- difference against a baseline measured in the same run: the same
-- upstream reached directly, or through nginx's proxy_pass.
local core = require "procy.core"
local proc = require "procy.proc"
local http = require "procy.http"
local json = require "procy.json"
local db = require "procy.db"

package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local measure = require "lib.measure"
package.path = "tests/bench/?.lua;" .. package.path
local nginx = require "nginx"
local median = measure.median

local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
local bin = os.getenv("PROCY_BENCH_BIN") or "build/procy" -- another build, to compare

local function percentile(t, p)
  table.sort(t)
  return t[math.max(1, math.ceil(#t * p))]
end

local function start_fake(name, delay)
  local p = assert(proc.spawn({ "node", "tests/fake/upstream.mjs", "--log-dir", dir .. "/" .. name, "--delay", delay },
    { stderr = false }))
  local port = assert((p:lines()() or ""):match("^PORT (%d+)"), "the fake upstream did not start")
  return p, "http://127.0.0.1:" .. port
end

local function start_procy(name, upstream)
  local p = assert(proc.spawn({ bin, "--db", dir .. "/" .. name .. ".db", "serve", "--port", "0",
    "--upstream", upstream, "--openai-upstream", upstream }, { stderr = "pipe", stdout = false }))
  local url = (p:lines("stderr")() or ""):match("listening on (http://[%d.:]+)")
  return p, assert(url, "procy serve did not start")
end

local function body(text, extra)
  local t = { model = "claude-sonnet-4-5", max_tokens = 100, stream = true,
              messages = { { role = "user", content = text } } }
  for k, v in pairs(extra or {}) do t[k] = v end
  return json.encode(t)
end

-- ---- time to first byte ----------------------------------------------------------------
local function ttfb(url, n)
  local times = {}
  for i = 1, n do
    local t0 = core.now()
    local s = assert(http.stream { method = "POST", url = url .. "/v1/messages", body = body("ttfb " .. i) })
    assert(s:read())
    times[i] = core.now() - t0
    while s:read() do end
    s:close()
  end
  return times
end

-- ---- each event's delay: arrival minus the upstream's send stamp ---------------------------
local function event_delays(url)
  local s = assert(http.stream { method = "POST", url = url .. "/v1/messages", body = body("TIMED") })
  local delays = {}
  for ev in s:events() do
    local t = ev.data:match('"t":(%d+)')
    if t then delays[#delays + 1] = core.now() - tonumber(t) / 1e9 end
  end
  return delays
end

-- ---- wrk: small non-streaming requests, 32 connections ---------------------------------------
local function wrk(url, seconds)
  local script = dir .. "/post.lua"
  local f = assert(io.open(script, "w"))
  f:write(('wrk.method = "POST"\nwrk.body = %q\nwrk.headers["Content-Type"] = "application/json"\n'
    .. 'wrk.headers["x-api-key"] = "sk-ant-bench-0123456789abcdef"\n'):format(
    json.encode { model = "claude-haiku-4-5", max_tokens = 10, messages = { { role = "user", content = "hi" } } }))
  f:close()
  local r = assert(proc.run({ "wrk", "-t2", "-c32", "-d" .. seconds .. "s", "-s", script, url .. "/v1/messages" },
    { timeout = seconds + 30 }))
  local rps = tonumber(r.stdout:match("Requests/sec:%s*([%d.]+)"))
  local errors = r.stdout:match("Non%-2xx or 3xx responses: (%d+)")
  return rps, tonumber(errors or 0), r.stdout
end

-- ---- a 200-request conversation: what the record takes ----------------------------------
local function conversation(url, record, n)
  local system = ("You are a careful coding agent. Follow the rules. "):rep(200)
  local tools = {}
  for i = 1, 20 do
    tools[i] = { name = "tool_" .. i, description = ("Does thing %d with care. "):format(i):rep(60),
                 input_schema = { type = "object", properties = { arg = { type = "string" } } } }
  end
  local msgs = {}
  for i = 1, n do
    msgs[#msgs + 1] = { role = "user", content = ("Turn %d: please change the function so that it works. "):format(i):rep(8) }
    local r = assert(http.request { method = "POST", url = url .. "/v1/messages",
      body = json.encode { model = "claude-sonnet-4-5", max_tokens = 1000, stream = true, system = system,
                           tools = tools, messages = msgs } })
    local text = {}
    for d in r.body:gmatch('"text_delta","text":"(.-)"}') do text[#text + 1] = d end
    msgs[#msgs + 1] = { role = "assistant", content = { { type = "text", text = table.concat(text) } } }
  end
  core.sleep(0.5)
  local h = assert(db.open(record))
  local naive = h:query("SELECT sum(req_size + resp_size) AS n, count(*) AS c FROM api_calls")[1]
  h:exec("PRAGMA wal_checkpoint(TRUNCATE)")
  local pages = h:query("PRAGMA page_count")[1].page_count * h:query("PRAGMA page_size")[1].page_size
  h:close()
  return pages, naive.n, naive.c
end

return function(args)
  local n = tonumber(args[1]) or 200
  local fake, fake_url = start_fake("fake", "0")
  local px, px_url = start_procy("ttfb", fake_url)
  local _f <close> = fake
  local _p <close> = px
  print(("procy %s, %d requests each, interleaved"):format(core.version, n))

  -- warm both paths
  ttfb(fake_url, 5)
  ttfb(px_url, 5)
  local direct, via = {}, {}
  for i = 1, n // 10 do
    for _, t in ipairs(ttfb(fake_url, 10)) do direct[#direct + 1] = t end
    for _, t in ipairs(ttfb(px_url, 10)) do via[#via + 1] = t end
  end
  local d, v = median(direct), median(via)
  print(("time to first byte (streamed): direct %.3f ms, through procy %.3f ms: +%.3f ms (target <= 1 ms)"):format(
    d * 1e3, v * 1e3, (v - d) * 1e3))

  local ed, ev = {}, {}
  for _ = 1, 5 do
    for _, x in ipairs(event_delays(fake_url)) do ed[#ed + 1] = x end
    for _, x in ipairs(event_delays(px_url)) do ev[#ev + 1] = x end
  end
  local ed50, ev50 = median(ed), median(ev)
  print(("each SSE event, upstream send to client (%d events): direct median %.3f ms p99 %.3f ms; "
    .. "through procy median %.3f ms p99 %.3f ms max %.3f ms: +%.3f ms median, +%.3f ms p99 (target <= 1 ms)"):format(
    #ev, ed50 * 1e3, percentile(ed, 0.99) * 1e3, ev50 * 1e3, percentile(ev, 0.99) * 1e3, percentile(ev, 1) * 1e3,
    (ev50 - ed50) * 1e3, (percentile(ev, 0.99) - percentile(ed, 0.99)) * 1e3))

  -- the conversation
  local convo_px, convo_url = start_procy("conversation", fake_url)
  local size, naive, calls = conversation(convo_url, dir .. "/conversation.db", 200)
  convo_px:kill("TERM")
  convo_px:wait(10)
  print(("200-request conversation: %d calls, bodies %.1f MB, record %.2f MB: %.3fx (target <= 0.1x)"):format(
    calls, naive / 1e6, size / 1e6, size / naive))

  -- reads of a large record beside the proxy: /api/usage (summing every
  -- call) back to back while streamed calls are timed
  local big = dir .. "/large.db"
  local bh = assert(db.open(big))
  bh:exec([[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400000)
    INSERT INTO api_calls(method, path, upstream, status, started_at, model, input_tokens, output_tokens, cost)
    SELECT 'POST', '/v1/messages', 'http://u', 200, x, 'claude-sonnet-4-5', x % 1000, x % 300, (x % 7) / 1000.0
    FROM c]])
  bh:close()
  local lp, lurl = start_procy("large", fake_url)
  local _l <close> = lp
  ttfb(lurl, 5)
  local idle = median(ttfb(lurl, 40))
  local reading, reads, read_time = true, 0, 0
  local reader = core.spawn(function()
    while reading do
      local t0 = core.now()
      local r = assert(http.request { url = lurl .. "/api/usage" })
      assert(r.status == 200, r.body)
      reads, read_time = reads + 1, read_time + (core.now() - t0)
    end
  end)
  core.sleep(0.1)
  local during = {}
  while reads < 3 do -- over several reads, whatever they take
    for _, t in ipairs(ttfb(lurl, 5)) do during[#during + 1] = t end
  end
  local busy, worst = median(during), percentile(during, 1)
  reading = false
  core.await(reader)
  print(("time to first byte while /api/usage reads a record of 400,000 calls (%d reads, %.0f ms each, %d calls):"
    .. " median %.3f ms (max %.3f), idle %.3f ms: +%.3f ms (target <= 2 ms)"):format(reads,
    read_time / math.max(reads, 1) * 1e3, #during, busy * 1e3, worst * 1e3, idle * 1e3, (busy - idle) * 1e3))

  -- wrk against nginx
  if not nginx.have() then
    print("wrk or nginx is missing (apt-get install wrk nginx-light): requests/s not measured")
    return 0
  end
  local up_port, ng_port = nginx.free_port(), nginx.free_port()
  local upstream = nginx.start(dir, nginx.upstream_conf(dir, up_port), "upstream")
  local _u <close> = upstream
  local up_url = "http://127.0.0.1:" .. up_port
  local wx, wx_url = start_procy("wrk", up_url)
  local seconds = tonumber(args[2]) or 10
  wrk(wx_url, 2) -- warm up
  for _, tuned in ipairs { false, true } do
    local ng = nginx.start(dir, nginx.proxy_conf(dir, up_port, ng_port, tuned), tuned and "tuned" or "plain")
    wrk("http://127.0.0.1:" .. ng_port, 2)
    local rn = wrk("http://127.0.0.1:" .. ng_port, seconds)
    local rp, errs = wrk(wx_url, seconds)
    print(("wrk -c32 POST /v1/messages, %d s: nginx proxy_pass (%s) %.0f req/s, procy (recording) %.0f req/s: "
      .. "%.2fx%s%s"):format(seconds, tuned and "tuned: upstream keepalive, no access log" or "as Debian ships it",
      rn, rp, rp / rn, tuned and "" or " (target >= 0.5x)", errs > 0 and (", " .. errs .. " non-2xx") or ""))
    ng:kill("QUIT")
    ng:wait(10)
  end
  local peak = measure.peak_kb(wx:pid())
  wx:kill("TERM")
  wx:wait(30)
  local h = assert(db.open(dir .. "/wrk.db"))
  local recorded = h:query("SELECT count(*) AS n FROM api_calls")[1].n
  h:close()
  print(("procy serve under wrk: peak RSS %.1f MB, %d calls recorded"):format(peak / 1024, recorded))
  proc.run { "rm", "-rf", dir }
  return 0
end
