-- procy.http's client against the fake API over real sockets.
local T = require "lib.tap"
local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"

local dir = T.tmpdir()
local fake = require("lib.fake").start(dir)
local _ <close> = fake.proc

-- a plain request
local r = assert(http.request { method = "POST", url = fake.url .. "/v1/messages",
  headers = { ["content-type"] = "application/json", ["x-api-key"] = "sk-test" },
  body = json.encode { model = "m", messages = { { role = "user", content = "hi there" } } } })
T.is(r.status, 200, "status")
T.is(r.headers["content-type"], "application/json", "headers, names in lower case")
T.is(json.decode(r.body).content[1].text, "FAKE: hello! you said: hi there", "body")

-- a stream, event by event
local s, status, headers = assert(http.stream { method = "POST", url = fake.url .. "/v1/messages?beta=true",
  body = json.encode { model = "m", stream = true, tools = { { name = "Bash" } },
                       messages = { { role = "user", content = "TOOL:bash[ls -l]" } } } })
T.is(status, 200, "stream status")
T.like(headers["content-type"], "^text/event%-stream", "stream headers")
local names, input = {}, ""
for ev in s:events() do
  names[#names + 1] = ev.event
  local d = json.decode(ev.data)
  if d.delta and d.delta.partial_json then input = input .. d.delta.partial_json end
end
T.is(names[1] .. " " .. names[#names], "message_start message_stop", "every event, in order")
T.ok(table.concat(names, " "):find("ping", 1, true), "ping included")
T.is(json.decode(input).command, "ls -l", "tool input arrives in pieces")

-- raw reads while it trickles
s = assert(http.stream { method = "POST", url = fake.url .. "/v1/messages",
  body = json.encode { stream = true, messages = { { role = "user", content = "SLOW" } } } })
local first, t0 = nil, core.now()
local chunk = s:read()
first = core.now() - t0
T.ok(chunk and #chunk > 0 and first < 0.5, "the first piece comes before the slow stream ends")
local code
for _ = 1, 10 do -- words come every 0.5 s: some read of 0.2 s times out
  local piece, err
  piece, err, code = s:read(0.2)
  if code then break end
end
T.is(code, "ETIMEDOUT", "a read can time out")
T.ok(s:read(2), "and the stream goes on")
s:close()
T.ok(not pcall(s.read, s), "a closed stream raises")

-- failures are tuples
local x, e, c = http.request { url = "http://127.0.0.1:1/" }
T.is(c, "ECONNREFUSED", "connection refused")
x, e, c = http.request { method = "POST", url = fake.url .. "/v1/messages", timeout = 0.5,
  body = json.encode { stream = true, messages = { { role = "user", content = "SLOW" } } } }
T.is(c, "ETIMEDOUT", "a total timeout")
r = assert(http.request { method = "POST", url = fake.url .. "/v1/messages",
  body = json.encode { messages = { { role = "user", content = "FAKE_ERROR:529" } } } })
T.is(r.status, 529, "an HTTP error status is a result, not a failure")

-- cancelling the task stops the transfer
local t = core.spawn(function()
  return http.request { method = "POST", url = fake.url .. "/v1/messages",
    body = json.encode { stream = true, messages = { { role = "user", content = "SLOW" } } } }
end)
core.sleep(0.2)
core.cancel(t)
core.sleep(0.3)
local log = T.read(fake.log) or ""
T.like(log, "client_closed_mid_stream", "the server saw the client go")

-- a running server is anchored: dropped by Lua and collected, it still
-- proxies; closed, it lets go
do
  local port
  do
    local srv = assert(http.serve { port = 0, proxy = { anthropic = fake.url } })
    port = srv:port()
  end
  collectgarbage()
  collectgarbage()
  local pr = http.request { method = "POST", url = "http://127.0.0.1:" .. port .. "/v1/messages",
    body = json.encode { model = "m", messages = { { role = "user", content = "still here" } } } }
  T.ok(pr and pr.status == 200 and pr.body:find("still here", 1, true), "a server nobody holds still serves")
end

-- a server that cannot start says why, with the true code
do
  local a = assert(http.serve { port = 0 })
  local none, err, code = http.serve { port = a:port() }
  T.ok(none == nil and code == "EADDRINUSE" and err:find("cannot listen on 127.0.0.1:" .. a:port(), 1, true),
    "a port in use: EADDRINUSE", tostring(err))
  a:close()
  none, err, code = http.serve { host = "256.1.1.1", port = 0, token = ("t"):rep(16) }
  T.ok(none == nil and code == "EINVAL" and err:find("is not an IPv4 address", 1, true), "no address: EINVAL", tostring(err))
end

require("procy.proc").run { "rm", "-rf", dir }
return T.done()
