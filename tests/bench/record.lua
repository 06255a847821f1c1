-- record.lua — see tests/bench/record. What the record keeps under load,
-- each figure beside a baseline measured in the same run:
--  1. wrk at full speed, every request body different, against procy serve
--     (recording) and nginx's proxy_pass to the same upstream (as Debian
--     ships it, and tuned: upstream keepalive, no access log): requests/s,
--     the recorder's calls/s, and recorded/relayed (must be 100 %); twice,
--     the second time on the record the first one grew.
--  2. mutated answers for a while (real stream shapes with bytes flipped,
--     events cut, cloned, nulled), 8 clients at once: recorded/relayed and
--     how many were marked.
--  3. the terminal's recorder while another writer holds the database for
--     a minute and the agent writes 4 MB/s: procy's peak memory, the spill,
--     and the output recorded once the database is free.
local core = require "procy.core"
local proc = require "procy.proc"
local http = require "procy.http"
local json = require "procy.json"
local db = require "procy.db"

package.path = "tests/lua/?.lua;" .. package.path
local measure = require "lib.measure"
package.path = "tests/bench/?.lua;" .. package.path
local nginx = require "nginx"

local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
local bin = "build/procy"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function start_procy(name, upstream, with)
  local p = assert(proc.spawn({ with or bin, "--db", dir .. "/" .. name .. ".db", "serve", "--port", "0",
    "--upstream", upstream, "--openai-upstream", upstream }, { stderr = "pipe", stdout = false }))
  local url = (p:lines("stderr")() or ""):match("listening on (http://[%d.:]+)")
  return p, assert(url, "procy serve did not start")
end

local function health(url) return json.decode(assert(http.request { url = url .. "/health" }).body) end

local function count(path)
  local h = assert(db.open(path, { migrations = false }))
  local n = h:query("SELECT count(*) AS n FROM api_calls")[1].n
  h:close()
  return n
end

-- ---- 1. wrk -------------------------------------------------------------------------------
-- small non-streamed calls, every body different (a counter and the
-- thread's random number), as a conversation's calls are
local wrk_script = write(dir .. "/unique.lua", [[
local n = 0
local words = string.rep("the quick brown fox jumps over a lazy dog; ", 30)
request = function()
  n = n + 1
  local body = '{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"call ' .. n
    .. ' ' .. math.random(1e9) .. ' ' .. words .. '"}]}'
  return wrk.format("POST", "/v1/messages", { ["Content-Type"] = "application/json",
    ["x-api-key"] = "sk-ant-bench-0123456789abcdef" }, body)
end
]])

local function wrk(url, seconds)
  local r = assert(proc.run({ "wrk", "-t2", "-c32", "-d" .. seconds .. "s", "-s", wrk_script, url .. "/v1/messages" },
    { timeout = seconds + 60 }))
  return tonumber(r.stdout:match("Requests/sec:%s*([%d.]+)")), tonumber(r.stdout:match("(%d+) requests in")),
    tonumber(r.stdout:match("Non%-2xx or 3xx responses: (%d+)") or 0)
end

local function part_wrk(seconds)
  if not nginx.have() then
    print("wrk or nginx is missing (apt-get install wrk nginx-light): part 1 not measured")
    return
  end
  local up_port, ng_port = nginx.free_port(), nginx.free_port()
  local upstream = nginx.start(dir, nginx.upstream_conf(dir, up_port), "upstream")
  local _u <close> = upstream
  local up_url = "http://127.0.0.1:" .. up_port
  local rates = {}
  for _, tuned in ipairs { false, true } do
    local ng = nginx.start(dir, nginx.proxy_conf(dir, up_port, ng_port, tuned), tuned and "tuned" or "plain")
    wrk("http://127.0.0.1:" .. ng_port, 2)
    rates[tuned] = wrk("http://127.0.0.1:" .. ng_port, seconds)
    ng:kill("QUIT")
    ng:wait(10)
  end
  -- PROCY_BASELINE=BIN: an earlier build measured the same way, its rounds
  -- between this build's, to measure a change
  local base_bin = os.getenv("PROCY_BASELINE")
  if base_bin then
    local bp, burl = start_procy("baseline", up_url, base_bin)
    local mine, theirs = {}, {}
    local tp, turl = start_procy("paired", up_url)
    for round = 1, 3 do
      theirs[round] = wrk(burl, seconds)
      mine[round] = wrk(turl, seconds)
    end
    table.sort(mine)
    table.sort(theirs)
    print(("paired with %s, 3 rounds each, interleaved: this build %.0f req/s, it %.0f req/s (medians): %.2fx")
      :format(base_bin, mine[2], theirs[2], mine[2] / theirs[2]))
    bp:kill("TERM")
    tp:kill("TERM")
    bp:wait(30)
    tp:wait(30)
  end
  local px, url = start_procy("wrk", up_url)
  local record = dir .. "/wrk.db"
  for round = 1, 2 do
    local h0 = health(url).record
    local t0 = core.now()
    local rps, done, errors = wrk(url, seconds)
    local t1 = core.now()
    local h1 = health(url).record
    -- the recorder's own rate: what it wrote while wrk ran
    local during = (h1.recorded - h0.recorded) / (t1 - t0)
    while health(url).record.recorded < h1.relayed and core.now() - t1 < 60 do core.sleep(0.1) end
    local h2 = health(url).record
    local relayed, recorded = h2.relayed - h0.relayed, h2.recorded - h0.recorded
    local size = proc.run { "du", "-sm", record }
    print(("wrk -t2 -c32 %d s, unique bodies (round %d, record %s MB): procy %.0f req/s (%d calls, %d non-2xx, %d waited "
      .. "for the recorder), recorder %.0f calls/s; recorded/relayed %d/%d = %.1f %%; nginx proxy_pass as Debian ships it "
      .. "%.0f req/s (procy %.2fx), tuned %.0f req/s (%.2fx)"):format(seconds, round,
      size and size.stdout:match("^(%d+)") or "?", rps, done, errors, h2.waited - h0.waited, during, recorded, relayed,
      relayed > 0 and 100 * recorded / relayed or 0, rates[false], rps / rates[false], rates[true], rps / rates[true]))
  end
  local peak = measure.peak_kb(px:pid())
  px:kill("TERM")
  px:wait(60)
  print(("procy serve under wrk: peak RSS %.1f MB; %d calls in the record"):format(peak / 1024, count(record)))
end

-- ---- 2. mutated answers ---------------------------------------------------------------------
local function mutate(s, seed)
  local x = seed
  local function rnd(n)
    x = (x * 1103515245 + 12345) % 2147483648
    return x % n + 1
  end
  local kind = rnd(6)
  if kind == 1 then -- bytes flipped
    local t = { s:byte(1, -1) }
    for _ = 1, rnd(8) do local i = rnd(#t) t[i] = rnd(256) - 1 end
    local out = {}
    for i = 1, #t, 4096 do out[#out + 1] = string.char(table.unpack(t, i, math.min(#t, i + 4095))) end
    return table.concat(out)
  elseif kind == 2 then return s:sub(1, rnd(#s)) -- cut short
  elseif kind == 3 then -- an event cloned
    local a = rnd(#s)
    local e = s:find("\n\n", a, true) or #s
    return s:sub(1, e) .. s:sub(a, e) .. s:sub(e + 1)
  elseif kind == 4 then return (s:gsub('"id":"[^"]*"', '"id":null')) -- nulls where ids go
  elseif kind == 5 then return (s:gsub('"index":%d+', '"index":"x"', rnd(3)))
  else return s end
end

local function part_mutated(seconds)
  local fake_log = dir .. "/fake"
  local fake = assert(proc.spawn({ "node", "tests/fake/upstream.mjs", "--log-dir", fake_log, "--delay", "0" }, { stderr = false }))
  local _f <close> = fake
  local fport = assert((fake:lines()() or ""):match("^PORT (%d+)"))
  local furl = "http://127.0.0.1:" .. fport
  local tools = { { name = "Bash", input_schema = { type = "object" } } }
  local shapes = {}
  for _, a in ipairs {
    { "/v1/messages", { model = "claude-sonnet-4-5", stream = true, tools = tools, messages = { { role = "user", content = "THINK TOOL:bash[ls]" } } } },
    { "/v1/chat/completions", { model = "gpt-4o", stream = true, tools = { { type = "function", ["function"] = { name = "Bash" } } },
      messages = { { role = "user", content = "TOOL:bash[ls]" } } } },
    { "/v1/responses", { model = "gpt-5", stream = true, tools = { { type = "function", name = "exec_command" } },
      input = { { role = "user", content = { { type = "input_text", text = "TOOL:shell[ls]" } } } } } },
  } do
    shapes[#shapes + 1] = { a[1], assert(http.request { method = "POST", url = furl .. a[1], body = json.encode(a[2]) }).body }
  end
  local px, url = start_procy("mutated", furl)
  local b64 = function(s) return (assert(proc.run({ "base64", "-w0" }, { stdin = s })).stdout) end
  local ctype = b64("text/event-stream")
  local sent, t0 = 0, core.now()
  local workers = {}
  for w = 1, 8 do
    workers[w] = core.spawn(function()
      local k = 0
      while core.now() - t0 < seconds do
        k = k + 1
        local shape = shapes[(w + k) % #shapes + 1]
        local body = mutate(shape[2], w * 100003 + k)
        local text = ("RAW:200:%s:%s"):format(ctype, b64(body))
        local req = shape[1] == "/v1/responses" and { model = "gpt-5", stream = true, input = text }
          or { model = "m", stream = true, messages = { { role = "user", content = text } } }
        sent = sent + 1
        http.request { method = "POST", url = url .. shape[1], body = json.encode(req), timeout = 30 }
      end
    end)
  end
  for _, t in ipairs(workers) do core.await(t) end
  local relayed
  repeat
    local r = health(url).record
    relayed = r.relayed
    core.sleep(0.2)
  until r.recorded >= r.relayed or core.now() - t0 > seconds + 60
  local r = health(url).record
  px:kill("TERM")
  px:wait(60)
  print(("mutated answers, 8 clients, %d s: %d sent, %d relayed, %d recorded = %.2f %%, %d marked, %d lost"):format(
    seconds, sent, relayed, r.recorded, 100 * r.recorded / math.max(1, relayed), r.marked, r.lost))
end

-- ---- 3. the terminal's recorder under a locked database ----------------------------------------
local function part_locked(seconds)
  local gen = write(dir .. "/burst.py", [[
import os, sys, time
end = time.time() + float(sys.argv[1])
i = 0
while time.time() < end:
    os.write(1, (("%06d:" % i) + ("abcdefghijklmnopqrstuvwxyz0123456789" * 11112)[:399993] + "\n").encode())
    i += 1
    time.sleep(0.1)
os.write(1, b"END\n")
]])
  local record = dir .. "/term.db"
  local p = assert(proc.spawn({ bin, "--db", record, "--", "sh", "-c", "stty raw -echo; read go; exec python3 " .. gen .. " " .. seconds },
    { pty = { cols = 100, rows = 30 }, env = { HOME = dir, XDG_STATE_HOME = dir .. "/state" } }))
  core.sleep(1)
  local other = assert(db.open(record, { migrations = false, busy_timeout = 0 }))
  assert(other:exec("BEGIN IMMEDIATE"))
  local base = measure.peak_kb(p:pid())
  p:write("go\n")
  local n, peak, spill = 0, 0, 0
  local sid = other:query("SELECT id FROM sessions ORDER BY started_at DESC LIMIT 1")[1].id
  local t0, next_sample = core.now(), 0
  while true do
    local c = p:read()
    if not c then break end
    n = n + #c
    if core.now() >= next_sample then
      next_sample = core.now() + 0.5
      peak = measure.peak_kb(p:pid(), peak)
      local st = require("procy.fs").stat(record .. "-spill-" .. sid)
      if st and st.size > spill then spill = st.size end
    end
    if other and core.now() - t0 > seconds then
      other:exec("COMMIT")
      other:close()
      other = nil
    end
  end
  if other then other:exec("COMMIT") other:close() end
  p:wait(120)
  local h = assert(db.open(record, { migrations = false }))
  local rec = h:query("SELECT sum(coalesce(len, length(data))) AS n FROM term_events WHERE kind = 'o' AND session_id = ?", sid)[1].n or 0
  local gaps = h:query("SELECT count(*) AS n FROM term_events WHERE kind = 'g' AND session_id = ?", sid)[1].n
  h:close()
  print(("terminal, database held by another writer for %d s while the agent wrote %.1f MB/s: procy's peak RSS %.1f MB "
    .. "(%.1f MB before), spill file at most %.1f MB; %.1f MB shown, %.1f MB recorded once it was free, %d gap event(s)")
    :format(seconds, n / 1e6 / seconds, peak / 1024, base / 1024, spill / 1e6, n / 1e6, rec / 1e6, gaps))
end

return function(args)
  local wrk_s, mutated_s, locked_s = tonumber(args[1]) or 10, tonumber(args[2]) or 300, tonumber(args[3]) or 60
  print(("procy %s"):format(core.version))
  part_wrk(wrk_s)
  part_mutated(mutated_s)
  part_locked(locked_s)
  proc.run { "rm", "-rf", dir }
  return 0
end
