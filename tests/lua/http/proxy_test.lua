-- The API proxy over real sockets: procy.http's client -> procy's proxy ->
-- the fake upstream (tests/fake/upstream.mjs), and what procy records.
local T = require "lib.tap"
local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"
local hash = require "procy.hash"
local config = require "procy.config"
local store = require "procy.store"
local serve = require "procy.serve"
local blobs = require "procy.blobs"

local dir = T.tmpdir()
local fake = require("lib.fake").start(dir .. "/fake")
local _ <close> = fake.proc
assert(config.load { config = T.write(dir .. "/procy.lua", "return { db = 'rec.db', upstream_timeout = 1 }") })
local session = assert(store.new_session { argv = { "test" }, cwd = dir, mode = "serve" })
local px = assert(serve.start { port = 0, upstream = fake.url, openai = fake.url, session = session })
local base = px.url
local h = store.open()
local KEY = "sk-ant-api03-" .. ("S3cr3tK3y_"):rep(6)

-- the fake's log line for a request (by number, or by the request-id its
-- answer carried), once the fake has written it
local function upstream(n)
  if type(n) == "table" then n = tonumber(n.headers["request-id"]:match("%d+$")) end
  for _ = 1, 100 do
    for line in io.lines(fake.log) do
      local e = json.decode(line)
      if e.n == n then return e end
    end
    core.sleep(0.02)
  end
end

-- the recorded call for an answer (found by the request-id the fake gave
-- it), or the newest call matching an SQL condition, once the recorder
-- thread has written it
local function recorded(r, where)
  local sql = "SELECT * FROM api_calls WHERE " .. (where or "resp_headers LIKE ?") .. " ORDER BY id DESC LIMIT 1"
  local rid = r and (type(r) == "table" and r.headers["request-id"] or r)
  for _ = 1, 150 do
    local row = rid and h:query(sql, '%"' .. rid .. '"%')[1] or not rid and h:query(sql)[1]
    if row then return row end
    core.sleep(0.02)
  end
end

local function messages(body) return json.encode(body) end

-- ---- a streamed tool call, byte for byte ----------------------------------------------
local req1 = messages { model = "claude-sonnet-4-5", stream = true, max_tokens = 100,
  tools = { { name = "Bash", input_schema = { type = "object" } } },
  messages = { { role = "user", content = "TOOL:bash[ls -la] my key is " .. KEY } } }
local r = assert(http.request { method = "POST", url = base .. "/v1/messages?beta=true", body = req1,
  headers = { ["x-api-key"] = KEY, ["anthropic-version"] = "2023-06-01", ["content-type"] = "application/json",
              ["x-custom"] = "kept", ["authorization"] = "Bearer " .. KEY } })
T.is(r.status, 200, "a stream through the proxy")
local up = upstream(r)
T.is(hash.sha256(r.body), up.resp_sha256, "the client got exactly the bytes the upstream sent (SHA-256 both ends)")
T.is(up.req_sha256, hash.sha256(req1), "the upstream got exactly the body the client sent")
T.is(up.path, "/v1/messages?beta=true", "path and query as sent")
T.is(up.headers["x-custom"] .. " " .. up.headers["anthropic-version"], "kept 2023-06-01", "headers passed on")
T.is(up.headers["x-api-key"], KEY:sub(1, 7) .. "...(len " .. #KEY .. ")", "the real API key reaches the upstream")
T.is(up.headers["accept-encoding"], "identity", "the body comes uncompressed, so what is relayed is what is recorded")
T.like(r.headers["content-type"], "^text/event%-stream", "response headers passed back")
T.is(r.headers["anthropic-ratelimit-requests-remaining"], "49", "rate-limit headers passed back")
local c1 = recorded(r)
T.ok(c1, "the call is recorded")
T.is(c1.session_id .. " " .. c1.method .. " " .. c1.path .. " " .. c1.status .. " " .. c1.model,
     session .. " POST /v1/messages?beta=true 200 claude-sonnet-4-5", "with session, method, path, status, model")
T.ok(c1.ttfb_us > 0 and c1.duration_us >= c1.ttfb_us, "with time to first byte and duration",
     c1.ttfb_us .. " / " .. c1.duration_us)
T.is(c1.stop_reason .. " " .. c1.stream .. " " .. c1.api, "tool_use 1 anthropic", "stop reason, stream, API")
T.ok(c1.input_tokens > 0 and c1.output_tokens > 0 and c1.cost > 0, "tokens and cost")
T.like(c1.ratelimit, "anthropic%-ratelimit%-requests%-remaining", "rate-limit headers recorded")
T.is(c1.resp_body, up.resp_sha256, "the recorded response is the upstream's bytes")
T.is(blobs.get(h, c1.resp_body), r.body, "and reads back whole")
local content = json.decode(c1.content)
T.is(json.encode(content[2].input, { sort = true }), '{"command":"ls -la","description":"fake command"}',
     "the tool_use input is recorded as full JSON")
local tc = h:query("SELECT * FROM tool_calls WHERE session_id = ?", session)[1]
T.is(tc and (tc.name .. " " .. tc.api_call_id), "Bash " .. c1.id, "a tool_calls row for the tool_use")

-- the answer to it: history plus a tool_result
local req2 = messages { model = "claude-sonnet-4-5", stream = true, max_tokens = 100,
  tools = { { name = "Bash", input_schema = { type = "object" } } },
  messages = { { role = "user", content = "TOOL:bash[ls -la] my key is " .. KEY },
               { role = "assistant", content = content },
               { role = "user", content = { { type = "tool_result", tool_use_id = tc.tool_use_id,
                 content = "total 0\nfile.txt" } } } } }
r = assert(http.request { method = "POST", url = base .. "/s/" .. session .. "/v1/messages", body = req2,
  headers = { ["x-api-key"] = KEY } })
local c2 = recorded(r)
T.like(json.decode(c2.content)[1].text, "got tool result: total 0", "the tool result reaches the model")
tc = h:query("SELECT * FROM tool_calls WHERE session_id = ?", session)[1]
T.is(tc.result .. "|" .. tc.result_call_id .. "|" .. tc.is_error, "total 0\nfile.txt|" .. c2.id .. "|0",
     "the tool_result is linked to its tool_use")
T.is(c2.req_body, hash.sha256((req2:gsub(KEY:gsub("%-", "%%-"), "[REDACTED]"))), "the request is recorded redacted")

-- ---- secrets never reach the disk --------------------------------------------------------
do
  local file = T.read(store.path()) .. (T.read(store.path() .. "-wal") or "")
  T.ok(not file:find(KEY, 1, true), "the API key is nowhere in the database file")
  T.ok(not file:find("S3cr3tK3y_", 1, true), "nor any piece of it")
  T.like(c1.req_headers, '"x%-api%-key","%[REDACTED%]"', "headers are stored redacted")
  T.like(c1.req_headers, '"authorization","Bearer %[REDACTED%]"', "Authorization keeps its scheme only")
end

-- ---- other answers ------------------------------------------------------------------
local function call(path, body, headers, method)
  return http.request { method = method or "POST", url = base .. path, body = body and messages(body), headers = headers }
end

r = assert(call("/v1/messages", { model = "claude-haiku-4-5", messages = { { role = "user", content = "FAKE_ERROR:429" } } }))
up = upstream(r)
T.is(r.status .. " " .. (r.headers["retry-after"] or "-"), "429 1", "429 passes through with retry-after")
T.is(hash.sha256(r.body), up.resp_sha256, "with the upstream's body")
local c = recorded(r)
T.is(c.status .. " " .. c.error, "429 rate_limit_error: fake error 429", "recorded with the error")
r = assert(call("/v1/messages", { messages = { { role = "user", content = "FAKE_ERROR:529" } } }))
T.is(r.status, 529, "529 passes through")

r = assert(call("/v1/models?limit=3", nil, nil, "HEAD"))
T.is(r.status .. " " .. #r.body, "200 0", "HEAD passes through without a body")
r = assert(call("/v1/echo?a=1&b=%20x", nil, { ["x-procy-token"] = "not-for-upstream", ["x-trace"] = "t1" }, "GET"))
local echo = json.decode(r.body)
T.is(echo.url, "/v1/echo?a=1&b=%20x", "the query string arrives as sent")
T.ok(echo.headers["x-trace"] == "t1" and not echo.headers["x-procy-token"], "procy's own token header stays home")
-- ?token= is procy's: never sent on, nor recorded, wherever it stands
for _, case in ipairs {
  { "/v1/echo?token=procy-secret-1&a=1", "/v1/echo?a=1" },
  { "/v1/echo?a=1&token=procy-secret-2&b=2", "/v1/echo?a=1&b=2" },
  { "/v1/echo?a=1&token=procy-secret-3", "/v1/echo?a=1" },
  { "/v1/echo?token=procy-secret-4", "/v1/echo" },
  { "/v1/echo?token=procy-secret-5&token=again", "/v1/echo" },
  { "/v1/echo?tokens=1&a_token=2", "/v1/echo?tokens=1&a_token=2" },
} do
  r = assert(call(case[1], nil, nil, "GET"))
  T.is(json.decode(r.body).url, case[2], "upstream gets " .. case[2] .. " for " .. case[1])
end
T.ok(recorded(nil, "path = '/v1/echo?tokens=1&a_token=2'"), "the calls are recorded")
T.is(#h:query("SELECT id FROM api_calls WHERE path LIKE '%procy-secret%' OR path LIKE '%token=again%'"), 0,
     "and their recorded paths hold no token= either")

do -- THINK and SERVER_TOOL
  local a = assert(call("/v1/messages", { model = "claude-opus-4-5", stream = true, messages = { { role = "user", content = "THINK please" } } }))
  local blocks = json.decode(recorded(a).content)
  T.is(blocks[1].type .. " " .. blocks[1].signature, "thinking sig_" .. upstream(a).n, "thinking recorded with its signature")
  local b = assert(call("/v1/messages", { model = "claude-opus-4-5", stream = true, messages = { { role = "user", content = "SERVER_TOOL" } } }))
  blocks = json.decode(recorded(b).content)
  T.is(blocks[1].type .. " " .. blocks[1].input.query .. " " .. blocks[2].type, "server_tool_use procy web_search_tool_result",
       "server tool blocks recorded")
end

-- ---- OpenAI ---------------------------------------------------------------------------
do
  r = assert(call("/v1/chat/completions", { model = "gpt-4.1", stream = true, stream_options = { include_usage = true },
    tools = { { type = "function", ["function"] = { name = "Bash" } } },
    messages = { { role = "user", content = "TOOL:bash[pwd]" } } }, { authorization = "Bearer sk-proj-" .. ("k"):rep(30) }))
  T.is(hash.sha256(r.body), upstream(r).resp_sha256, "an OpenAI chat stream, byte for byte")
  T.like(upstream(r).headers.authorization, "^Bearer ", "the OpenAI key reaches the upstream")
  c = recorded(r)
  local b = json.decode(c.content)
  T.is(c.api .. " " .. c.stop_reason .. " " .. b[2].name .. " " .. b[2].input.command, "openai-chat tool_calls Bash pwd",
       "a chat tool call recorded")
  T.ok(c.input_tokens > 0 and c.cost > 0, "with usage and cost")
  r = assert(call("/v1/responses", { model = "gpt-5-codex", stream = true, tools = { { type = "function", name = "Bash" } },
    input = { { role = "user", content = { { type = "input_text", text = "TOOL:bash[id]" } } } } }))
  T.is(hash.sha256(r.body), upstream(r).resp_sha256, "a Responses stream, byte for byte")
  c = recorded(r)
  b = json.decode(c.content)
  T.is(c.api .. " " .. c.stop_reason .. " " .. b[#b].type .. " " .. b[#b].input.command, "openai-responses completed tool_use id",
       "a Responses function call recorded")
  local call_id = b[#b].id
  r = assert(call("/v1/responses", { model = "gpt-5-codex", stream = false,
    input = { { type = "function_call_output", call_id = call_id, output = "uid=0(root)" } } }))
  c = recorded(r)
  local t = h:query("SELECT * FROM tool_calls WHERE tool_use_id = ?", call_id)[1]
  T.is(t and (t.result .. " " .. t.result_call_id), "uid=0(root) " .. c.id, "its output is linked as the tool result")
  T.is(c.stream .. " " .. json.decode(c.content)[1].text, "0 FAKE: got tool result: uid=0(root)", "a Responses answer without streaming")
end

-- ---- faults -----------------------------------------------------------------------------
do -- an upstream that trickles: one byte every 100 ms
  local s, _, hd = assert(http.stream { method = "POST", url = base .. "/v1/messages",
    body = messages { model = "m", stream = true, messages = { { role = "user", content = "TRICKLE" } } } })
  local t0, got = core.now(), {}
  got[1] = s:read()
  T.ok(core.now() - t0 < 1, "a trickling stream's first bytes arrive at once, not at its end",
       ("%.2f s, %d bytes"):format(core.now() - t0, #(got[1] or "")))
  for piece in function() return s:read() end do got[#got + 1] = piece end
  T.ok(#got > 10, "piece by piece", #got .. " pieces")
  T.ok(core.now() - t0 > 2.5, "as slowly as the upstream sent it", ("%.2f s"):format(core.now() - t0))
  T.is(hash.sha256(table.concat(got)), upstream { headers = hd }.resp_sha256, "and whole in the end")
end

do -- an upstream that closes a kept-alive connection as the next request comes
  -- (the body, 300 KB, is read in place from the client's request: curl
  -- takes it again from its start for the fresh connection)
  local small = assert(http.request { method = "POST", url = base .. "/v1/messages",
    body = messages { model = "m", messages = { { role = "user", content = "hi" } } } })
  T.is(small.status, 200, "a call that leaves a connection to the upstream open")
  local big = messages { model = "m", messages = { { role = "user", content = "DROPONCE:rewind " .. ("x"):rep(300000) } } }
  local got = assert(http.request { method = "POST", url = base .. "/v1/messages", body = big })
  T.is(got.status, 200, "the call is sent again on a fresh connection, and answered", got.body:sub(1, 200))
  local n = tonumber((got.headers["request-id"] or ""):match("%d+$")) or 0
  local first, again = upstream(n - 1), upstream(n)
  T.is(first and first.ended, "dropped", "the upstream closed the first try")
  T.is(again and again.req_sha256, hash.sha256(big), "and got the whole body again, byte for byte")
end

do -- reset mid-stream
  local s, _, hd = assert(http.stream { method = "POST", url = base .. "/v1/messages",
    body = messages { model = "m", stream = true, messages = { { role = "user", content = "RESET" } } } })
  local got, err = {}, nil
  while true do
    local piece, e = s:read()
    if not piece then err = e break end
    got[#got + 1] = piece
  end
  T.ok(err ~= nil, "an upstream reset breaks the client's stream too (not a clean end)", tostring(err))
  c = recorded(hd["request-id"])
  T.like(c.error or "", "^E", "the call is recorded with the failure: " .. tostring(c.error))
  T.is(c.resp_body, upstream { headers = hd }.resp_sha256, "and the bytes that came before it")
end

do -- the client hangs up mid-stream
  local s, _, hd = assert(http.stream { method = "POST", url = base .. "/v1/messages",
    body = messages { model = "m", stream = true, messages = { { role = "user", content = "SLOW" } } } })
  assert(s:read())
  s:close()
  c = recorded(hd["request-id"])
  T.is(c.aborted, 1, "a client that hangs up: the call is marked aborted")
  local e = upstream { headers = hd }
  T.is(e and e.ended, "client_closed_mid_stream", "and the upstream transfer is cancelled")
end

do -- an upstream that sends nothing: 504 after upstream_timeout
  r = assert(call("/v1/messages", { model = "m", messages = { { role = "user", content = "HANG" } } }))
  local e = json.decode(r.body)
  T.is(r.status .. " " .. e.type .. " " .. e.error.type, "504 error timeout_error", "a silent upstream is a 504, Anthropic-style")
  T.like(recorded(nil, "error LIKE 'ETIMEDOUT%'").error, "^ETIMEDOUT", "recorded as a timeout")
end

do -- two streams at once (Claude Code runs a title stream beside the main one)
  local function one(text)
    return core.spawn(function()
      return http.request { method = "POST", url = base .. "/s/" .. session .. "/v1/messages",
        body = messages { model = "m", stream = true, messages = { { role = "user", content = text } } } }
    end)
  end
  local a, b = one("BIG:1500 first"), one("BIG:1500 second")
  local ra, ea = core.await(a)
  local rb, eb = core.await(b)
  T.ok(ra and rb and ra.status == 200 and rb.status == 200, "both concurrent streams complete",
    tostring(ea) .. " / " .. tostring(eb))
  ra, rb = ra or {}, rb or {}
  local rows = { recorded(ra), recorded(rb) }
  T.ok(rows[1] and rows[2] and rows[1].id ~= rows[2].id, "and both are recorded")
  T.ok(rows[2] and rows[1].started_at < rows[2].started_at + rows[2].duration_us
       and rows[2].started_at < rows[1].started_at + rows[1].duration_us, "their times overlap")
end

do -- each API family's calls to its own upstream, with its own key only
  local oai = require("lib.fake").start(dir .. "/oai")
  local _o <close> = oai.proc
  local two = assert(serve.start { port = 0, upstream = fake.url, openai = oai.url, session = session })
  local OKEY = "sk-proj-" .. ("o"):rep(40)
  local function count(d)
    local n = 0
    for _ in io.lines(d .. "/requests.jsonl") do n = n + 1 end
    return n
  end
  local seen = {}
  -- the log line of the next request d's fake answers (written as its answer ends)
  local function last(d)
    local e
    for _ = 1, 150 do
      local n = 0
      for line in io.lines(d .. "/requests.jsonl") do n, e = n + 1, json.decode(line) end
      if n > (seen[d] or 0) then seen[d] = n return e end
      core.sleep(0.02)
    end
  end
  local na = count(dir .. "/fake")
  seen[dir .. "/fake"] = na
  r = assert(http.request { url = two.url .. "/v1/models", headers = { authorization = "Bearer " .. OKEY } })
  local e = last(dir .. "/oai")
  T.ok(r.status == 200 and e and e.path == "/v1/models" and e.headers.authorization == "Bearer ...(len 55)",
    "an OpenAI client's GET /v1/models (a bearer key, no anthropic-version) goes to the OpenAI upstream", json.encode(e))
  T.is(count(dir .. "/fake"), na, "not to the Anthropic one")
  local na2 = count(dir .. "/oai")
  r = assert(http.request { url = two.url .. "/v1/models", headers = { authorization = "Bearer sk-ant-oat01-" .. ("t"):rep(30) } })
  e = last(dir .. "/fake")
  T.ok(r.status == 200 and e.path == "/v1/models" and e.headers.authorization and count(dir .. "/oai") == na2,
    "an Anthropic bearer key (sk-ant-, no anthropic-version) stays with Anthropic: never sent to OpenAI", json.encode(e))
  r = assert(http.request { url = two.url .. "/v1/models", headers = { authorization = "Bearer some-local-token" } })
  e = last(dir .. "/fake")
  T.ok(r.status == 200 and count(dir .. "/oai") == na2, "a bearer that is nobody's for sure goes where it always went (Anthropic)")
  r = assert(http.request { url = two.url .. "/v1/models", headers = { ["x-api-key"] = KEY, ["anthropic-version"] = "2023-06-01" } })
  e = last(dir .. "/fake")
  T.ok(r.status == 200 and e.path == "/v1/models" and e.headers["x-api-key"] and count(dir .. "/oai") == na2,
    "an Anthropic client's (anthropic-version, x-api-key) goes to the Anthropic upstream", json.encode(e))
  r = assert(http.request { method = "POST", url = two.url .. "/v1/chat/completions", body = json.encode { model = "gpt-4o",
    messages = { { role = "user", content = "hi" } } }, headers = { authorization = "Bearer " .. OKEY, ["x-api-key"] = KEY,
    ["content-type"] = "application/json" } })
  e = last(dir .. "/oai")
  T.ok(r.status == 200 and e.path == "/v1/chat/completions" and e.headers.authorization and not e.headers["x-api-key"],
    "an OpenAI call carries its bearer key, never an x-api-key", json.encode(e))
  r = assert(http.request { method = "POST", url = two.url .. "/v1/messages", body = messages { model = "claude-x", max_tokens = 5,
    messages = { { role = "user", content = "hi" } } }, headers = { authorization = "Bearer " .. OKEY, ["x-api-key"] = KEY,
    ["anthropic-version"] = "2023-06-01", ["content-type"] = "application/json" } })
  e = last(dir .. "/fake")
  T.ok(r.status == 200 and e.path == "/v1/messages" and e.headers["x-api-key"] and not e.headers.authorization,
    "an Anthropic call with an x-api-key passes no bearer token on", json.encode(e))
  r = assert(http.request { method = "POST", url = two.url .. "/v1/messages", body = messages { model = "claude-x", max_tokens = 5,
    messages = { { role = "user", content = "hi" } } }, headers = { authorization = "Bearer sk-ant-oat01-" .. ("t"):rep(30),
    ["anthropic-version"] = "2023-06-01", ["content-type"] = "application/json" } })
  e = last(dir .. "/fake")
  T.ok(r.status == 200 and e.headers.authorization, "one whose key is a bearer token (ANTHROPIC_AUTH_TOKEN) keeps it",
    json.encode(e))
  serve.stop(two)
end

do -- an upstream that is not there
  local dead = assert(serve.start { port = 0, upstream = "http://127.0.0.1:1", openai = "http://127.0.0.1:1", session = session })
  r = assert(http.request { method = "POST", url = dead.url .. "/v1/messages", body = "{}" })
  local e = json.decode(r.body)
  T.is(r.status .. " " .. e.type .. " " .. e.error.type, "502 error api_error", "a refused upstream is a 502, Anthropic-style")
  T.like(e.error.message, "upstream", "saying what failed")
  serve.stop(dead)
  T.like(recorded(nil, "error LIKE 'ECONNREFUSED%'").error, "^ECONNREFUSED", "recorded as refused")
end

-- a session prefix that names no session is kept as a tag
do
  r = assert(call("/s/nosuchsession/v1/messages", { model = "m", messages = { { role = "user", content = "hi" } } }))
  c = recorded(r)
  T.is(c.session_id .. " " .. c.tag, session .. " nosuchsession", "an unknown /s/ prefix is a tag on the serve session")
end

serve.stop(px)
local calls = h:query("SELECT count(*) AS n FROM api_calls")[1].n
T.ok(calls >= 18, "every call was recorded", calls .. " calls")
require("procy.proc").run { "rm", "-rf", dir }
return T.done()
