-- tests/bench/web: see the shell script next to it.
package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local measure = require "lib.measure"
local core = require "procy.core"
local db = require "procy.db"
local json = require "procy.json"
local proc = require "procy.proc"

local a = { ... }
local events_n, calls_n = tonumber(a[1]) or 100000, tonumber(a[2]) or 5000
local bin = "build/procy"
local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
local record = dir .. "/rec.db"

-- ---- the record: one long Claude Code-like session ---------------------------------------
local h = assert(db.open(record))
local sid = "be0c0000000000a1" -- hex, as session ids are
local span = 2 * 3600 * 1e6 -- two hours
local t0 = math.floor(core.time() * 1e6) - span
local bytes = 0
h:transaction(function()
  h:exec([[INSERT INTO sessions(id, started_at, cwd, argv, status, mode, cols, rows) VALUES (?, ?, '/w', '["claude"]', 'exited', 'pty', 120, 40)]],
    sid, t0)
  h:exec("INSERT INTO term_events(session_id, t, kind, data) VALUES (?, ?, 'r', '120x40')", sid, t0)
  local spinner = { "✻", "✽", "✢", "·" }
  for i = 1, events_n do
    local data
    if i % 10 == 0 then
      data = ("\r\27[2K\27[38;2;215;119;87m%s\27[0m Working… \27[2m(%ds · esc to interrupt)\27[0m"):format(spinner[i % 4 + 1], i % 600)
    elseif i % 97 == 0 then
      data = "\27[2J\27[H\27[1m╭────────────────────────────────────────╮\27[0m\r\n│ turn " .. i .. " │\r\n"
    else
      data = ("\27[32m●\27[0m line %d: \27[1mRead\27[0m(src/parser_%d.c) — %s\r\n"):format(i, i % 50, ("ok "):rep(i % 12))
    end
    bytes = bytes + #data
    h:exec("INSERT INTO term_events(session_id, t, kind, data) VALUES (?, ?, 'o', ?)", sid, t0 + math.floor(i * span / events_n), data)
  end
  for i = 1, calls_n do
    local at = t0 + math.floor(i * span / (calls_n + 1))
    h:exec([[INSERT INTO api_calls(session_id, method, path, status, model, role, started_at, ttfb_us, duration_us,
        input_tokens, output_tokens, cache_read_tokens, cost, content, stream)
      VALUES (?, 'POST', '/v1/messages', 200, 'claude-opus-5-5', 'main', ?, 800000, 4000000, 1200, 300, 40000, 0.05, ?, 1)]],
      sid, at, json.encode { { type = "text", text = "answer " .. i } })
  end
  for i = 1, 500 do
    h:exec([[INSERT INTO turns(session_id, seq, source, prompt, response, started_at, ended_at, status)
      VALUES (?, ?, 'human', ?, ?, ?, ?, 'done')]], sid, i, "make the parser faster, step " .. i, "Done: step " .. i,
      t0 + math.floor(i * span / 501), t0 + math.floor(i * span / 501) + 5e6)
  end
end)
h:close()
print(("record: %d terminal events (%.1f MB of output), %d API calls, 500 turns"):format(events_n, bytes / 1e6, calls_n))

-- ---- procy serve, the fake upstream, the browser ---------------------------------------------
local fake = assert(proc.spawn({ "node", "tests/fake/upstream.mjs", "--delay", "0", "--log-dir", dir }, { stderr = false }))
local _ <close> = fake
local fport = assert((fake:lines()() or ""):match("^PORT (%d+)"))
local srv = assert(proc.spawn({ bin, "--db", record, "serve", "--port", "0", "--upstream", "http://127.0.0.1:" .. fport },
  { stderr = "pipe", stdout = false }))
local _s <close> = srv
local url = assert((srv:lines("stderr")() or ""):match("listening on (http://[%d.:]+)"), "procy serve did not start")
local function rss_kb()
  local f = io.open("/proc/" .. srv:pid() .. "/status")
  local text = f and f:read("a") or ""
  if f then f:close() end
  return tonumber(text:match("VmRSS:%s*(%d+)")) or 0, tonumber(text:match("VmHWM:%s*(%d+)")) or 0
end
local rss0 = rss_kb()

if os.getenv("PROCY_BENCH_RECORD_ONLY") then print("record " .. record) return 0 end
local node = assert(proc.spawn({ "node", "tests/node/bench_web.mjs", url, sid }, { stdin = true, stderr = "stdout" }))
local results = {}
for line in node:lines() do
  if line == "RSS" then
    local rss, hwm = rss_kb()
    node:write(("%d %d\n"):format(rss, hwm))
  else
    local r = line:sub(1, 1) == "{" and json.decode(line)
    if r then results[#results + 1] = r else io.stderr:write("bench_web.mjs: ", line, "\n") end
  end
end
local res = node:wait()
local rss, hwm = rss_kb()
for _, r in ipairs(results) do print(r.line) end
print(("procy serve: %.1f MB resident before the page, %.1f MB with it open after the runs (peak %.1f MB)"):format(
  rss0 / 1024, rss / 1024, hwm / 1024))
if not os.getenv("PROCY_BENCH_KEEP") then proc.run { "rm", "-rf", dir } else print("kept " .. dir) end
return res.code == 0 and 0 or 1
