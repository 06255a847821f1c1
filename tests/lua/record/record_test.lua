-- The API record under bad answers, a refusing database and hostile
-- clients: every relayed call is recorded (bad ones marked), nothing is
-- lost, secrets stay off the disk, and requests that are not for procy
-- are refused before their body is read.
local T = require "lib.tap"
local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"
local db = require "procy.db"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"
local serve = require "procy.serve"
local capture = require "procy.record.capture"

local dir = T.tmpdir()
local fake = require("lib.fake").start(dir .. "/fake")
local _ <close> = fake.proc
assert(config.load { config = T.write(dir .. "/procy.lua", "return { db = 'rec.db', upstream_timeout = 60 }") })
local record = dir .. "/rec.db"
local session = assert(store.new_session { argv = { "test" }, cwd = dir, mode = "serve" })
local h = store.open()

local function b64(s) return (T.b64(s):gsub("%s", "")) end
-- a prompt the fake answers with exactly these bytes
local function raw(status, ctype, body) return ("RAW:%d:%s:%s"):format(status, b64(ctype), b64(body)) end
local function ev(name, data) return "event: " .. name .. "\ndata: " .. data .. "\n\n" end

-- ---- one batch, bad calls among good ones: each one its own row ------------------------
do
  local function call(answer, ctype, req)
    return { method = "POST", path = "/v1/messages", upstream = fake.url .. "/v1/messages", status = 200,
      req_headers = { { "content-type", "application/json" } }, resp_headers = { { "content-type", ctype } },
      req_body = req or json.encode { model = "claude-haiku-4-5", messages = { { role = "user", content = "hi" } } },
      resp_body = answer, started_at = 1, duration_us = 2 }
  end
  local good = '{"type":"message","model":"claude-haiku-4-5","content":[{"type":"text","text":"fine"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}'
  local chat_req = json.encode { model = "gpt-4o", messages = { { role = "user", content = "x" } } }
  local calls = {
    call(good, "application/json"),
    call('{"type":"message","content":["not a block", 7, null, {"type":"tool_use","id":null,"name":5}]}', "application/json"),
    call(good, "application/json"),
    call(ev("message_start", '{"type":"message_start","message":{"id":null,"model":7,"usage":"many"}}')
      .. ev("content_block_start", '{"type":"content_block_start","index":null,"content_block":"x"}')
      .. ev("content_block_delta", '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":null}}')
      .. ev("message_delta", '{not json at all'), "text/event-stream"),
    call(good, "application/json", '[1, 2, "a request that is not an object"]'),
    call(good, "application/json", json.encode { model = "claude-haiku-4-5", messages = {
      { role = "user", content = { { type = "tool_result", tool_use_id = json.null, content = 5 },
                                   { type = "tool_result", tool_use_id = "toolu_ok", content = { json.null, "s" } } } } } }),
    call(good, "application/json", "this is not JSON"),
    call("\255\254 invalid utf-8 \192\128", "application/json"),
  }
  -- an OpenAI chat stream whose continuation chunk has "id": null
  local c = call("data: " .. json.encode { id = "c1", choices = { { index = 0, delta = { tool_calls = {
      { index = 0, id = "call_1", ["function"] = { name = "Bash", arguments = "{\"a\":" } } } } } } } .. "\n\n"
    .. "data: " .. '{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":null,"function":{"arguments":"1}"}}]}}]}' .. "\n\n"
    .. "data: [DONE]\n\n", "text/event-stream", chat_req)
  c.path = "/v1/chat/completions"
  calls[#calls + 1] = c
  local out = assert(capture.record(h, session, calls))
  T.is(#out, #calls, "a batch of good and malformed calls: a summary for every call")
  local ids, marked = 0, 0
  for _, s in ipairs(out) do
    if s.id then ids = ids + 1 end
    if s.parse_error then marked = marked + 1 end
  end
  T.is(ids, #calls, "every call has its row, however its answer looks")
  T.is(out[1].parse_error, nil, "a good call before the bad ones is not marked")
  T.is(out[3].parse_error, nil, "nor one between them")
  T.like(out[2].parse_error or "", "", "a content list of strings and nulls")
  T.like(out[4].parse_error or "", "not JSON", "a stream with an event that is not JSON is marked")
  T.like(out[5].parse_error or "", "not a JSON object", "a request that is an array is marked")
  T.like(out[7].parse_error or "", "not a JSON object", "a request that is not JSON is marked")
  T.like(out[8].parse_error or "", "not JSON", "an answer of invalid bytes is marked")
  local chat = h:query("SELECT content FROM api_calls WHERE id = ?", out[9].id)[1]
  local blocks = json.decode(chat.content)
  T.is(blocks[1] and blocks[1].id, "call_1", "a null id in a continuation chunk keeps the first chunk's id")
  T.is(blocks[1] and blocks[1].input and blocks[1].input.a, 1, "and the arguments are put together")
  T.is(h:query("SELECT count(*) AS n FROM tool_calls WHERE tool_use_id IS NULL OR tool_use_id = ''")[1].n, 0,
       "no tool call row without an id")
  T.is(h:query("SELECT count(*) AS n FROM tool_calls WHERE tool_use_id = 'toolu_ok'")[1].n, 1,
       "the good tool result beside a null one is kept")
  local back = h:query("SELECT req_body FROM api_calls WHERE id = ?", out[7].id)[1]
  T.is(require("procy.blobs").get(h, back.req_body), "this is not JSON", "a bad call's raw bytes are kept")

  -- a call whose record fails for another reason is written raw, and says why
  local write = capture.write
  capture.write = function() error("a bug in the writer") end
  local out2 = assert(capture.record(h, session, { call(good, "application/json"), call(good, "application/json") }))
  capture.write = write
  T.ok(out2[1].id and out2[2].id, "when writing a call fails, it is still recorded, raw")
  T.like(out2[1].parse_error or "", "a bug in the writer", "with the failure as its mark")
  local rawrow = h:query("SELECT resp_body, parse_error FROM api_calls WHERE id = ?", out2[2].id)[1]
  T.is(require("procy.blobs").get(h, rawrow.resp_body), good, "and its answer's bytes")
end

-- ---- through the proxy: 200 calls, a third of them malformed, 8 at a time ---------------
local px = assert(serve.start { port = 0, upstream = fake.url, openai = fake.url, session = session })
local base = px.url
do
  local bad_answers = {
    raw(200, "application/json", '{"content":[1,2,null],"usage":{"input_tokens":"x"}}'),
    raw(200, "text/event-stream", ev("message_start", '{"type":"message_start","message":null}') .. ev("x", "{{{")),
    raw(200, "application/json", "\0\1\2 not json \255"),
    raw(200, "text/event-stream", "data: " .. ("["):rep(3000) .. "\n\n"),
    "JUNK:4000",
  }
  local before = h:query("SELECT count(*) AS n FROM api_calls")[1].n
  local sent, bad, answered = 0, 0, 0
  local tasks = {}
  for w = 1, 8 do
    tasks[w] = core.spawn(function()
      for i = 1, 25 do
        local k = (w - 1) * 25 + i
        local text = k % 3 == 0 and bad_answers[k % #bad_answers + 1] or ("hello " .. k)
        if k % 3 == 0 then bad = bad + 1 end
        sent = sent + 1
        local r = http.request { method = "POST", url = base .. "/v1/messages", timeout = 30,
          body = json.encode { model = "claude-haiku-4-5", stream = k % 2 == 0, messages = { { role = "user", content = text } } } }
        if r then answered = answered + 1 end
      end
    end)
  end
  for _, t in ipairs(tasks) do core.await(t, 60) end
  T.is(answered, sent, "200 calls relayed, a third with malformed answers")
  local n
  for _ = 1, 200 do
    n = h:query("SELECT count(*) AS n FROM api_calls")[1].n - before
    if n >= sent then break end
    core.sleep(0.02)
  end
  T.is(n, sent, "every one of them is recorded")
  local st = px.srv:stats()
  T.is(st.lost, 0, "none is lost")
  T.ok(st.marked >= bad, "the malformed ones are marked", st.marked .. " marked of " .. bad)
  local health = json.decode(assert(http.request { url = base .. "/health", headers = { ["x-procy-token"] = px.token } }).body)
  T.ok(health.record and health.record.recorded == st.recorded and health.record.lost == 0
       and health.record.relayed == st.relayed, "/health says what was relayed, recorded and lost", json.encode(health.record))
end

-- ---- a 100 MB answer: relayed whole, its record a 64 MB prefix, marked -------------------
do
  local t0 = core.now()
  local r = assert(http.request { method = "POST", url = base .. "/v1/messages", timeout = 120,
    body = json.encode { model = "claude-haiku-4-5", messages = { { role = "user", content = "JUNK:104857600" } } } })
  T.is(#r.body, 104857600, "a 100 MB answer reaches the client whole")
  local row
  for _ = 1, 1500 do
    row = h:query("SELECT * FROM api_calls WHERE resp_size = 104857600 ORDER BY id DESC LIMIT 1")[1]
    if row then break end
    core.sleep(0.02)
  end
  T.ok(row, "and is recorded", ("%.1f s after it was sent"):format(core.now() - t0))
  local kept = row and require("procy.blobs").get(h, row.resp_body) or ""
  T.is(#kept, 64 << 20, "the record keeps its first 64 MB")
  T.ok(kept == r.body:sub(1, 64 << 20), "exactly as a prefix (no hole)")
  T.like(row and row.error or "", "first 67108864 kept", "the call says so")
  T.like(row and row.parse_error or "", "over the", "and that it was not parsed")
end

-- ---- a database that refuses writes: calls wait, nothing is lost ------------------------
do
  local locked = serve.start { port = 0, upstream = fake.url, openai = fake.url, session = session, max_queued = 3 }
  local other = assert(db.open(record, { migrations = false, busy_timeout = 0 }))
  assert(other:exec("BEGIN IMMEDIATE"))
  local before = h:query("SELECT count(*) AS n FROM api_calls")[1].n
  local done = 0
  local tasks = {}
  for i = 1, 12 do -- one after another: the first three fill the queue, the rest find it full
    tasks[i] = core.spawn(function()
      local r = http.request { method = "POST", url = locked.url .. "/v1/messages", timeout = 60,
        body = json.encode { model = "claude-haiku-4-5", messages = { { role = "user", content = "locked " .. i } } } }
      if r and r.status == 200 then done = done + 1 end
    end)
    core.sleep(0.05)
  end
  local st
  for _ = 1, 150 do
    st = locked.srv:stats()
    if st.held > 0 and st.failing then break end
    core.sleep(0.02)
  end
  T.ok(st.failing, "a locked database: the recorder says it is refused", tostring(st.failing))
  T.ok(st.held > 0, "and new calls wait for it rather than go unrecorded", st.held .. " held")
  T.ok(done < 12, "so their clients wait too", done .. " answered")
  local health = json.decode(assert(http.request { url = locked.url .. "/health", headers = { ["x-procy-token"] = locked.token } }).body)
  T.is(health.ok, false, "/health is not ok meanwhile")
  core.sleep(1)
  assert(other:exec("COMMIT"))
  other:close()
  for _, t in ipairs(tasks) do core.await(t, 60) end
  T.is(done, 12, "once it takes writes again, every call goes on")
  local n
  for _ = 1, 300 do
    n = h:query("SELECT count(*) AS n FROM api_calls")[1].n - before
    if n >= 12 then break end
    core.sleep(0.02)
  end
  st = locked.srv:stats()
  T.is(n, 12, "and every call is recorded")
  T.ok(st.lost == 0 and st.failures > 0 and not st.failing, "none lost, after the refusals",
       ("lost %d failures %d"):format(st.lost, st.failures))
  serve.stop(locked)
end

-- ---- secrets in places the patterns did not look ----------------------------------------
local KEY = "sk-ant-api03-" .. ("Qz9_xW2"):rep(6)
do
  local escaped = KEY:gsub("%-", "\\u002d")
  local body = '{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"my key: ' .. escaped .. ' '
    .. raw(200, "application/json", '{"type":"message","content":[{"type":"text","text":"yours: ' .. escaped .. '"}]}') .. '"}]}'
  local r = assert(http.request { method = "POST", url = base .. "/v1/messages?key=" .. KEY .. "&beta=true&token=t0ps3cr3t", body = body })
  T.is(r.status, 200, "a call with keys in its query string and written with JSON escapes")
  T.like(r.body, "u002d", "the client got the answer as sent")
  local row
  for _ = 1, 100 do
    row = h:query("SELECT * FROM api_calls WHERE path LIKE '%beta=true%' ORDER BY id DESC LIMIT 1")[1]
    if row then break end
    core.sleep(0.02)
  end
  T.ok(row and not row.path:find(KEY, 1, true) and not row.path:find("t0ps3cr3t", 1, true)
       and row.path:find("beta=true", 1, true), "query-string secrets are masked in the recorded path", row and row.path)
  T.ok(row and not row.upstream:find(KEY, 1, true), "and in the upstream URL")
  T.ok(row and not (row.content or ""):find(KEY, 1, true), "the decoded content has no key")
  local req = row and require("procy.blobs").get(h, row.req_body) or ""
  T.ok(not req:find(escaped, 1, true) and not req:find(KEY, 1, true), "the request body keeps no escaped key")
  local resp = row and require("procy.blobs").get(h, row.resp_body) or ""
  T.ok(not resp:find(escaped, 1, true), "nor the answer")
end

-- procy's own token is not sent on
do
  local token = "procy-token-0123456789"
  local srv = assert(http.serve { port = 0, token = token, proxy = { anthropic = fake.url, openai = fake.url } })
  local url = "http://127.0.0.1:" .. srv:port()
  local r = assert(http.request { method = "POST", url = url .. "/v1/messages",
    headers = { authorization = "Bearer " .. token, ["x-api-key"] = KEY },
    body = json.encode { model = "m", messages = { { role = "user", content = "token check" } } } })
  T.is(r.status, 200, "a proxied call carrying procy's token as Authorization: Bearer")
  -- the fake's log line for this request, once written (its answer may come first)
  local n = tonumber((r.headers["request-id"] or ""):match("%d+$"))
  local seen
  for _ = 1, 500 do
    for line in io.lines(fake.log) do
      local e = json.decode(line)
      if e and e.n == n then seen = e end
    end
    if seen then break end
    core.sleep(0.02)
  end
  T.ok(seen and not seen.headers.authorization, "reaches the upstream without it", seen and json.encode(seen.headers))
  -- the token check reads no byte past what was sent
  for _, given in ipairs { token:sub(1, 4), token .. "x", "", ("z"):rep(200) } do
    local rr = assert(http.request { url = url .. "/api/calls", headers = { ["x-procy-token"] = given } })
    T.is(rr.status, 401, ("a token of %d bytes that is not procy's: 401"):format(#given))
  end
  local rr = assert(http.request { url = url .. "/v1/models?token=" .. token })
  T.is(rr.status, 200, "?token= still works")
  srv:close()
end

-- ---- hostile clients ------------------------------------------------------------------
-- raw(port, bytes) -> what the server answered, until it closed or 3 s
local function talk(port, bytes, wait)
  local r = assert(proc.run({ "node", "-e", [[
    const net = require("net");
    const data = require("fs").readFileSync(0);
    const s = net.connect(]] .. port .. [[, "127.0.0.1", () => s.write(data));
    let out = "";
    s.on("data", (d) => { out += d.toString("latin1"); });
    s.on("close", () => { process.stdout.write(out); process.exit(0); });
    s.on("error", () => { process.stdout.write(out); process.exit(0); });
    setTimeout(() => { process.stdout.write(out); process.exit(0); }, ]] .. (wait or 3000) .. [[);
  ]] }, { stdin = bytes, timeout = 20 }))
  return r.stdout
end
local port = px.port
local function status(text) return tonumber(text:match("^HTTP/1%.%d (%d+)")) end
local tok = "x-procy-token: " .. px.token .. "\r\n"
T.is(status(talk(port, "GET /api/calls HTTP/1.1\r\nHost: evil.example:" .. port .. "\r\n" .. tok .. "\r\n")), 403,
     "a Host that is not procy's is refused (DNS rebinding)")
T.is(status(talk(port, "POST /v1/messages HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 2\r\n\r\n{}")), 403,
     "on the proxy too")
T.is(status(talk(port, "GET /api/calls HTTP/1.1\r\nHost: 127.0.0.1:" .. port .. "\r\n\r\n")), 401,
     "the person's routes without the token: 401")
T.is(status(talk(port, "GET /api/calls HTTP/1.1\r\nHost: 127.0.0.1:" .. port .. "\r\n" .. tok .. "\r\n")), 200,
     "procy's own Host is answered")
T.is(status(talk(port, "GET /api/calls HTTP/1.1\r\nHost: localhost:" .. port .. "\r\n" .. tok .. "\r\n")), 200, "and localhost")
T.is(status(talk(port, "POST /hooks/x/0 HTTP/1.1\r\nHost: 127.0.0.1:" .. port
  .. "\r\nOrigin: http://evil.example\r\nContent-Length: 2\r\n\r\n{}")), 403, "a request from another web page is refused")
T.is(status(talk(port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1:" .. port .. "\r\nOrigin: http://127.0.0.1:"
  .. port .. "\r\n\r\n")), 200, "one from procy's own page is not")
T.is(status(talk(port, "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}")),
     400, "two Content-Length headers are refused")
for _, path in ipairs { "/v1/../x", "/v1/%2e%2e/x", "/v1/messages/./x", "/v1/.%2E/x", "/v1/..%2fx", "/v1\\..\\x" } do
  T.is(status(talk(port, "GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")), 400, "a dot segment is refused: " .. path)
end
do -- a body that will not be read: refused at once, nothing held for it
  local tsrv = assert(http.serve { port = 0, token = "a-token-of-16-chars-or-more", max_body = 128 << 20 })
  local function rss()
    for line in io.lines("/proc/self/status") do
      local kb = line:match("^VmRSS:%s+(%d+)")
      if kb then return tonumber(kb) end
    end
  end
  local r0 = rss()
  local t0 = core.now()
  local out = talk(tsrv:port(), "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 62914560\r\n\r\n", 1500)
  T.is(status(out), 401, "an unauthenticated 60 MB POST is answered 401 before its body is sent")
  T.ok(core.now() - t0 < 3, "at once")
  T.ok(rss() - r0 < 8 * 1024, "without holding its body", (rss() - r0) .. " KB more")
  local big = talk(px.port, "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999999999\r\n\r\n", 1500)
  T.is(status(big), 413, "a Content-Length over the limit is refused before the body")
  tsrv:close()
end
do -- idle connections are closed
  local isrv = assert(http.serve { port = 0, idle_timeout = 1 })
  core.spawn(function()
    while true do
      local req = isrv:accept()
      if not req then return end
      req:respond(200, {}, "ok")
    end
  end)
  local t0 = core.now()
  local out = talk(isrv:port(), "GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\nx-procy-token: " .. isrv:token() .. "\r\n\r\n", 8000)
  local took = core.now() - t0
  T.ok(status(out) == 200 and took < 6, "an idle kept-alive connection is closed by procy", ("%.1f s"):format(took))
  isrv:close()
end

serve.stop(px)
return T.done()
