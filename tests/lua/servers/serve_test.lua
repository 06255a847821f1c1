-- procy.http.serve and procy serve's JSON API, over real sockets.
local T = require "lib.tap"
local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"
local proc = require "procy.proc"
local fs = require "procy.fs"

local dir = T.tmpdir()

-- ---- the server primitives -----------------------------------------------------------
local srv = assert(http.serve { port = 0, max_body = 1000 })
-- every route here is the person's: each request shows the server's token
local tok = srv:token()
local base = "http://127.0.0.1:" .. srv:port()
T.ok(srv:port() > 0, "port 0 picks a free port")
T.write(dir .. "/index.html", "<h1>procy</h1>")
T.write(dir .. "/app.js", "console.log(1)")
T.write(dir .. "/style.css", "body{}")
T.write(dir .. "/data.json", "{}")

local seen = {}
local handlers = {}
handlers["/echo"] = function(req)
  req:respond(201, { ["Content-Type"] = "text/plain", ["X-Method"] = req:method() },
    req:path() .. "|" .. (req:query() or "") .. "|" .. (req:header("x-thing") or "") .. "|" .. req:body())
end
handlers["/file"] = function(req)
  local name = req:query():match("name=([%w.]+)")
  local ok, err = req:file(dir .. "/" .. name)
  if not ok then req:respond(404, {}, err) end
end
handlers["/stream"] = function(req)
  req:stream(200, { ["Content-Type"] = "text/event-stream" })
  for i = 1, 3 do
    req:send("data: " .. i .. "\n\n")
    core.sleep(0.05)
  end
  req:finish()
end
handlers["/flood"] = function(req) -- a client that never reads: dropped, never waited for
  req:stream(200, { ["Content-Type"] = "application/octet-stream" })
  local chunk, sent = ("x"):rep(65536), 0
  while sent < 256 * 1024 * 1024 do
    local ok, err = req:send(chunk)
    if not ok then seen.flood_error = err break end
    sent = sent + #chunk
    if sent % (1024 * 1024) == 0 then core.yield() end
  end
  seen.flood_sent = sent
end
handlers["/forget"] = function() end -- answers nothing

core.spawn(function()
  while true do
    local req = srv:accept()
    if not req then return end -- closed
    core.spawn(function()
      local f = handlers[req:path()]
      if f then f(req) else req:respond(404, {}, "no") end
    end)
  end
end)

local r = assert(http.request { method = "PUT", url = base .. "/echo?a=1", body = "hello", headers = { ["x-procy-token"] = tok, ["x-thing"] = "t" } })
T.is(r.status .. " " .. r.body, "201 /echo|a=1|t|hello", "a Lua handler sees method, path, query, headers and body")
T.is(r.headers["x-method"], "PUT", "and sets the answer's headers")
r = assert(http.request { headers = { ["x-procy-token"] = tok }, method = "POST", url = base .. "/echo", body = ("b"):rep(2000) })
T.is(r.status, 413, "a body over max_body is refused with 413")
for name, ctype in pairs { ["index.html"] = "text/html; charset=utf-8", ["app.js"] = "text/javascript; charset=utf-8",
                           ["style.css"] = "text/css; charset=utf-8", ["data.json"] = "application/json" } do
  r = assert(http.request { headers = { ["x-procy-token"] = tok }, url = base .. "/file?name=" .. name })
  T.is(r.status .. " " .. r.headers["content-type"], "200 " .. ctype, "static " .. name .. " with its MIME type")
end
r = assert(http.request { headers = { ["x-procy-token"] = tok }, url = base .. "/file?name=index.html" })
local etag = r.headers.etag
T.ok(etag and r.body == "<h1>procy</h1>", "a file comes with an ETag", tostring(etag))
r = assert(http.request { url = base .. "/file?name=index.html", headers = { ["x-procy-token"] = tok, ["if-none-match"] = etag } })
T.is(r.status .. " " .. #r.body, "304 0", "304 when the client has it")
r = assert(http.request { headers = { ["x-procy-token"] = tok }, url = base .. "/file?name=nothere.txt" })
T.is(r.status, 404, "a missing file is the handler's to answer")
r = assert(http.request { headers = { ["x-procy-token"] = tok }, url = base .. "/stream" })
T.is(r.body, "data: 1\n\ndata: 2\n\ndata: 3\n\n", "a streamed answer")
do
  local t = core.spawn(function() return http.request { headers = { ["x-procy-token"] = tok }, url = base .. "/forget" } end)
  core.sleep(0.2)
  collectgarbage()
  r = assert(core.await(t, 5))
  T.is(r.status, 500, "a handler that answers nothing: 500 when its request is collected")
end

do -- the flood: a client that stops reading
  local client = assert(proc.spawn({ "node", "-e", [[
    const net = require("net");
    const s = net.connect(]] .. srv:port() .. [[, "127.0.0.1", () => {
      s.write("GET /flood HTTP/1.1\r\nHost: 127.0.0.1\r\nx-procy-token: ]] .. tok .. [[\r\n\r\n");
      s.once("data", () => s.pause());
    });
    setTimeout(() => process.exit(0), 20000);
  ]] }, { stdout = false }))
  local t0 = core.now()
  local answered
  while not seen.flood_sent and core.now() - t0 < 15 do
    r = http.request { headers = { ["x-procy-token"] = tok }, url = base .. "/echo", timeout = 2 }
    answered = answered ~= false and r and r.status == 201
    core.sleep(0.1)
  end
  T.ok(seen.flood_error and seen.flood_error:find("behind", 1, true), "a client that does not read is dropped",
       tostring(seen.flood_error))
  T.ok(seen.flood_sent and seen.flood_sent < 64 * 1024 * 1024, "before procy holds much for it",
       tostring(seen.flood_sent))
  T.ok(answered, "and other requests are answered meanwhile")
  client:kill()
end

srv:close()
T.ok(not pcall(srv.accept, srv), "a closed server raises")
T.ok(not http.request { url = base .. "/echo", timeout = 2 }, "and no longer listens")

-- ---- security by default -----------------------------------------------------------------
T.ok(not pcall(http.serve, { host = "0.0.0.0", port = 0 }), "listening beyond 127.0.0.1 needs a token")
local open = assert(http.serve { host = "0.0.0.0", port = 0, token = "0123456789abcdef-token" })
core.spawn(function()
  while true do
    local req = open:accept()
    if not req then return end
    req:respond(200, {}, "in")
  end
end)
local url = "http://127.0.0.1:" .. open:port() .. "/x"
T.is(assert(http.request { url = url }).status, 401, "without the token: 401")
T.is(assert(http.request { url = url, headers = { authorization = "Bearer wrong-token-wrong-token" } }).status, 401,
     "with a wrong token: 401")
T.is(assert(http.request { url = url, headers = { authorization = "Bearer 0123456789abcdef-token" } }).body, "in",
     "with the token: in")
T.is(assert(http.request { url = url .. "?token=0123456789abcdef-token" }).body, "in", "or as ?token=")
open:close()

-- ---- procy serve ---------------------------------------------------------------------------
local fake = require("lib.fake").start(dir .. "/fake")
local _ <close> = fake.proc
local db = dir .. "/rec.db"
local p = assert(proc.spawn({ T.bin, "--db", db, "serve", "--port", "0", "--upstream", fake.url }, { stderr = "pipe" }))
local banner = p:lines("stderr")()
local surl = banner and banner:match("listening on (http://[%d.:]+)")
T.ok(surl, "procy serve says where it listens", banner)
surl = surl or "http://127.0.0.1:1"
-- it prints the monitor's link, with the person's token; procy link again
local lines, link = p:lines("stderr"), nil
for _ = 1, 5 do
  local l = lines()
  link = l and l:match("monitor: (http://%S+%?token=%x+)")
  if link or not l then break end
end
T.ok(link and link:sub(1, #surl) == surl, "procy serve prints the monitor's link with its token", link)
link = link or surl
local again = T.procy { "--db", db, "link", "--no-open" }
T.ok(again.code == 0 and again.stdout:find(link, 1, true), "procy link prints it again", again.stdout .. again.stderr)
local person = { ["x-procy-token"] = link:match("token=(%x+)") }
local anon = json.decode(assert(http.request { url = surl .. "/health" }).body)
T.ok(anon.ok and anon.version and not anon.db_path and not anon.calls and not anon.upstream,
  "/health without the token: that it runs, nothing of what it holds", json.encode(anon))
T.is(assert(http.request { url = surl .. "/api/calls" }).status, 401, "the API without the token: 401")

local health = json.decode(assert(http.request { headers = person, url = surl .. "/health" }).body)
T.ok(health.ok and health.db == "ok" and health.version and health.upstream == fake.url, "/health: version, DB, upstream",
     json.encode(health))

-- the live feed, listening before the calls
local feed = assert(http.stream { headers = person, url = surl .. "/api/events" })
local events = {}
local reader = core.spawn(function()
  for ev in feed:events() do
    if ev.event == "call" then events[#events + 1] = json.decode(ev.data) end
  end
end)
for i = 1, 5 do
  assert(http.request { method = "POST", url = surl .. "/v1/messages", headers = { ["x-api-key"] = "sk-x" },
    body = json.encode { model = "claude-haiku-4-5", stream = i % 2 == 0, messages = { { role = "user", content = "hello " .. i } } } })
end
for _ = 1, 100 do
  if #events >= 5 then break end
  core.sleep(0.02)
end
T.is(#events, 5, "/api/events: an event per call, as it is recorded")
T.is(events[1] and events[1].model, "claude-haiku-4-5", "with its summary")

local page1 = json.decode(assert(http.request { headers = person, url = surl .. "/api/calls?limit=3" }).body)
T.is(#page1.calls, 3, "/api/calls?limit=3")
T.ok(page1.calls[1].id > page1.calls[2].id, "newest first")
local page2 = json.decode(assert(http.request { headers = person, url = surl .. "/api/calls?limit=3&before=" .. page1.next }).body)
T.is(#page2.calls, 2, "the next page with before=")
T.ok(page2.calls[1].id < page1.calls[3].id, "without overlap")
T.is(page2.next, json.null, "and no page after the last")
local one = json.decode(assert(http.request { headers = person, url = surl .. "/api/calls/" .. page1.calls[1].id }).body)
T.ok(one.request and one.request.messages and one.response and one.content and one.req_headers, "/api/calls/ID: everything about a call")
T.is(one.request.messages[1].content, "hello 5", "the request as JSON")
local usage = json.decode(assert(http.request { headers = person, url = surl .. "/api/usage" }).body)
T.is(usage.total.calls, 5, "/api/usage counts the calls")
-- every parameter checked, as the CLI checks its flags: never all-time on garbage
for _, bad in ipairs {
  { "/api/usage?since=garbage", "parameter 'since': 'garbage' is not a time" },
  { "/api/usage?sine=7d", "unknown parameter 'sine' %(this takes: session, since, until%)" },
  { "/api/calls?limit=0", "parameter 'limit': must be a whole number from 1" },
  { "/api/calls?limit=5&limit=6", "parameter 'limit' given twice" },
  { "/api/calls?after=-1", "parameter 'after': must be a whole number" },
  { "/api/calls?session=zz", "parameter 'session': 'zz' is not a session id" },
  { "/api/corrections?kind=nice", "parameter 'kind': must be one of corrected, edited, accepted, rejected" },
  { "/api/sessions?limit=ten", "parameter 'limit'" },
  { "/health?verbose=1", "unknown parameter 'verbose' %(this takes: none%)" },
} do
  local br = assert(http.request { headers = person, url = surl .. bad[1] })
  T.ok(br.status == 400 and br.body:find(bad[2]), bad[1] .. ": 400, saying what is wrong", br.status .. " " .. br.body)
end
T.ok(usage.total.cost > 0 and usage.models[1].model == "claude-haiku-4-5", "with cost by model")
local sessions = json.decode(assert(http.request { headers = person, url = surl .. "/api/sessions" }).body)
T.is(sessions.sessions[1].mode, "serve", "/api/sessions lists the serve session")
T.is(assert(http.request { headers = person, url = surl .. "/api/nope" }).status, 404, "an unknown route is a 404")
-- the browser's way in: the link's token traded for a cookie; its writes
-- also need the page's CSRF token
local given = assert(http.request { url = link })
local cookie = (given.headers["set-cookie"] or ""):match("^[^;]+")
local mount = surl .. (given.headers.location or "/"):gsub("/$", "")
T.is(assert(http.request { method = "POST", url = mount .. "/api/calls", headers = { cookie = cookie }, body = "{}" }).status, 403,
  "POST on the API with the cookie but without the CSRF token: 403")
local csrf = json.decode(assert(http.request { headers = { cookie = cookie }, url = mount .. "/api/csrf" }).body).csrf
T.is(assert(http.request { method = "POST", url = mount .. "/api/calls", headers = { ["x-procy-csrf"] = csrf, cookie = cookie },
  body = "{}" }).status, 405, "with it, POST where only GET is: 405")
T.is(assert(http.request { headers = person, url = surl .. "/api/calls?limit=x" }).status, 400, "a bad parameter: 400")

-- keep-alive: one connection carries several calls
do
  local r = proc.run({ "node", "-e", [[
    const http = require("http");
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports = [];
    const one = () => new Promise((ok, fail) => {
      const req = http.request(process.argv[1] + "/v1/messages", { method: "POST", agent,
        headers: { "content-type": "application/json" } }, (res) => {
        ports.push(res.socket.localPort);
        res.resume();
        res.on("end", ok);
      });
      req.on("error", fail);
      req.end(JSON.stringify({ model: "m", messages: [{ role: "user", content: "keep" }] }));
    });
    (async () => { for (let i = 0; i < 3; i++) await one(); console.log(ports.join(" ")); agent.destroy(); })();
  ]], surl }, { timeout = 20 })
  local a, b, c = r.stdout:match("(%d+) (%d+) (%d+)")
  T.ok(a and a == b and b == c, "keep-alive: three calls on one connection", r.stdout .. r.stderr)
end

core.cancel(reader)
feed:close()
p:kill("TERM")
local res = p:wait(10)
T.ok(res, "procy serve stops on SIGTERM")

-- procy usage reads the same record
local out = T.procy { "--db", db, "usage" }
T.like(out.stdout, "claude%-haiku%-4%-5%s+5", "procy usage: calls by model")
T.like(out.stdout, "\nm%s+3%s+%d+%s+0%s+0%s+%d+%s+0%s+%$%?", "a model with no price: its cost is unknown, not zero")
T.like(out.stdout, "total%s+8.-≥ %$[%d.]+ %(3 calls unpriced%)", "and the total says it leaves them out")
T.like(out.stdout, "No known price for: m %(3 calls%)", "procy usage names the models with no price")
T.like(out.stdout, 'prices = { %["m"%] = {', "and shows how to add one in procy.lua")
out = T.procy { "--db", db, "usage", "--json", "--since", "1h" }
local rep = json.decode(out.stdout)
T.is(rep and rep.total.calls, 8, "procy usage --json --since 1h")
out = T.procy { "--db", db, "usage", "--json", "--until", "2020-01-01" }
rep = json.decode(out.stdout)
T.is(rep and rep.total.calls, 0, "procy usage --until before any call: none")
out = T.procy { "--db", db, "usage", "--since", "yesterday" }
T.is(out.code, 2, "a bad time is a usage error")
T.like(out.stderr, "not a time", "saying so")
out = T.procy { "--db", db, "serve", "--host", "0.0.0.0" }
T.is(out.code, 2, "procy serve --host without a token refuses")

proc.run { "rm", "-rf", dir }
return T.done()
