-- The web monitor in a real browser (Debian's chromium, driven by npm's
-- playwright-core from tests/node/ui.mjs) against procy serve holding a
-- record with calls relayed from the fake upstream, turns with tool
-- calls, and corrections. Screenshots of each view go to screens/ in the
-- tests' build directory.
local T = require "lib.tap"
local core = require "procy.core"
local fs = require "procy.fs"
local http = require "procy.http"
local json = require "procy.json"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"

local dir = T.tmpdir()
local record = dir .. "/rec.db"
assert(config.load { config = T.write(dir .. "/procy.lua", ("return { db = %q }"):format(record)) })
local h = assert(store.open())
local fake = require("lib.fake").start(dir .. "/fake")
local _ <close> = fake.proc

-- ---- the record ---------------------------------------------------------------------------
local a = assert(store.new_session { argv = { "claude" }, cwd = dir .. "/work", mode = "pty" })
local b = assert(store.new_session { argv = { "codex" }, cwd = dir .. "/other", mode = "pty" })
local serve = require "procy.serve"
local srv = assert(serve.start { port = 0, upstream = fake.url, openai = fake.url, session = a })
-- two calls, then a third that goes on from the second's conversation
local asks = { { { role = "user", content = "hello 1" } }, { { role = "user", content = "hello 2" } },
  { { role = "user", content = "hello 2" }, { role = "assistant", content = "FAKE: hello!" }, { role = "user", content = "now the tests" } } }
for i, messages in ipairs(asks) do
  assert(http.request { method = "POST", url = srv.url .. "/v1/messages", headers = { ["x-api-key"] = "sk-test" },
    body = json.encode { model = "claude-haiku-4-5", stream = i > 1, max_tokens = 50, messages = messages } })
  local deadline = core.now() + 10
  while core.now() < deadline and #h:query("SELECT 1 FROM api_calls WHERE session_id = ?", a) < i do core.sleep(0.05) end
end
local now = store.now_us()
h:exec([[INSERT INTO turns(session_id, seq, source, prompt, response, started_at, ended_at, status)
  VALUES (?, 1, 'human', 'fix the parser', 'I fixed it.', ?, ?, 'done'), (?, 2, 'proxy', 'run the tests', 'They pass. ' || char(8238) || 'txt.exe', ?, ?, 'done')]],
  a, now, now + 2e6, a, now + 3e6, now + 5e6)
local t1 = h:query("SELECT id FROM turns WHERE session_id = ? AND seq = 1", a)[1].id
h:exec([[INSERT INTO tool_calls(session_id, turn_id, tool_use_id, name, input, result, started_at)
  VALUES (?, ?, 'tu1', 'Edit', ?, 'ok', ?), (?, ?, 'tu2', 'Bash', ?, 'all 12 tests pass', ?)]],
  a, t1, json.encode { file_path = "parse.c", old_string = "return parse(s)", new_string = "return parse(s, strict)" }, now + 1,
  a, t1, json.encode { command = "make test" }, now + 2)
assert(require("procy.corrections").add { session = a, turn = 2, corrected = "run the tests, then the fuzzers" })
-- session a's terminal: output from its start to after its last turn, a
-- marker, and a line only the terminal holds
local a0 = store.find_session(a).started_at
local function term(t, kind, data)
  assert(h:exec("INSERT INTO term_events(session_id, t, kind, data) VALUES (?, ?, ?, ?)", a, t, kind, data))
end
term(a0, "r", "80x24")
term(a0 + 1000, "o", "\27[1mprocy test session\27[0m\r\n")
for i = 1, 200 do term(a0 + 1000 + i * (now - a0 - 2000) // 200, "o", ("working line %d\r\n"):format(i)) end
term(now - 500, "o", "BEFORE-TURN-ONE\r\n")
term(now + 1e6, "m", "halfway")
term(now + 2.5e6, "o", "TERMINAL-ONLY zebra-quartz-42\r\n")
term(now + 5.5e6, "o", "\27[32mthe end of the session\27[0m\r\n")
-- an evolve run in session a: a start and four tries, one infeasible, with a lineage
local run = store.new_run { session = a, cwd = dir .. "/work", task = "make it fast", recipe = "recipes/evolve.lua",
  objective = { goal = "maximize", metric = "qps" } }
store.add_try(run.id, { seq = 0, session_id = a, status = "ok" })
store.update_try(run.id, 0, { score = 100, feasible = true })
for _, t in ipairs { { 1, 0, 150, true, true, "use a hash map\nkeep the API" }, { 2, 1, 120, true, false, "use a trie\nkeep the API" },
                     { 3, 1, 300, false, false, "drop the checks" }, { 4, 1, 180, true, true, "use a hash map\ncache the results\nkeep the API" } } do
  store.add_try(run.id, { seq = t[1], parent_seq = t[2], prompt = t[6]:gsub("\\n", "\n"), session_id = a })
  store.update_try(run.id, t[1], { score = t[3], feasible = t[4], improved = t[5], status = t[4] and "ok" or "infeasible",
    response = "done " .. t[1], metrics = { qps = t[3] } })
end
store.update_run(run.id, { best_seq = 4, status = "done", policy = "population" })
-- the population's record of try 4: its policy, island and why; try 3 a person added to
store.update_try(run.id, 4, { policy = "population", island = 1,
  selection = { why = "exploitation (draw 0.412): one of the 5 best", inspirations = { 2 } } })
store.update_try(run.id, 3, { intervened = true })
-- a training job with its log, and an adapter
local train = require "procy.train"
local job = train.new { host = "gpu1", dir = "procy-train/x", argv = { "python3", "train_lora.py" }, method = "sft" }
train.update(job, { state = "done", exit_code = 0, started_at = now, ended_at = now + 6e7,
  progress = { event = "done", output = "adapter" } })
for i = 1, 4 do
  h:exec("INSERT INTO train_log(job_id, t, line) VALUES (?, ?, ?)", job, now + i,
    json.encode { event = "progress", step = i, total = 4, loss = 2 / i })
end
h:exec("INSERT INTO adapters(name, url, path, sha256, job_id, deployed_at) VALUES ('procy-' || ?, 'http://gpu1:8000', '/x/adapter', ?, ?, ?)",
  job, ("cd"):rep(32), job, now)

-- ---- the person's token -------------------------------------------------------------------
-- every person's route refuses a request that does not show it
for _, path in ipairs { "/", "/web/app.js", "/api/sessions", "/api/csrf", "/api/events", "/api/calls/1", "/nope" } do
  local r = assert(http.request { url = srv.url .. path, timeout = 5 })
  T.is(r.status, 401, path .. " without the token: 401")
end
T.is(assert(http.request { url = srv.url .. srv.mount .. "/", headers = { cookie = "procy-" .. srv.port .. "=" .. ("0"):rep(32) } }).status,
  401, "a wrong cookie: 401")
T.is(assert(http.request { url = srv.url .. srv.mount .. "/", headers = { cookie = "procy-1=" .. srv.token } }).status,
  401, "the token under another server's cookie name: 401")
-- the link procy prints: the token is traded for an HttpOnly, SameSite=Strict
-- cookie of this server's, for its secret mount alone (a browser sends a
-- cookie to every port of a host: a path it sends it to only there), and
-- the browser sent to the mount without the token
local r = assert(http.request { url = srv.link })
T.ok(r.status == 303 and r.headers.location == srv.mount .. "/" and srv.mount:match("^/p/%x+$"),
  "the link: sent on to the server's secret mount without its token", r.headers.location)
local set = r.headers["set-cookie"] or ""
T.ok(set:find("^procy%-" .. srv.port .. "=" .. srv.token .. ";") and set:find("HttpOnly", 1, true)
  and set:find("SameSite=Strict", 1, true) and set:find("Path=" .. srv.mount .. "/;", 1, true),
  "with the token as an HttpOnly, SameSite=Strict cookie of this server's, for its mount alone", set)
local person = { cookie = set:match("^[^;]+") }
T.is(assert(http.request { url = srv.url .. "/api/sessions", headers = person }).status, 401,
  "the cookie outside the mount opens nothing")
T.is(assert(http.request { url = srv.url .. "/p/0123456789abcdef/api/sessions", headers = person }).status, 401,
  "nor under another mount")
local mbase = srv.url .. srv.mount

-- ---- the page, as served ----------------------------------------------------------------
r = assert(http.request { headers = person, url = mbase .. "/" })
T.ok(r.status == 200 and r.body:find('<script type="module" src="web/app.js">', 1, true), "GET / is the monitor's page")
T.like(r.headers["content-security-policy"] or "", "default%-src 'none'; script%-src 'self'", "with a policy that loads only procy's own files")
local csrf = r.body:match('name="procy%-csrf" content="(%x+)"')
T.ok(csrf and #csrf == 32, "and the server's CSRF token for its writes")
r = assert(http.request { headers = person, url = mbase .. "/web/app.js" })
T.ok(r.status == 200 and r.headers["content-type"]:find("javascript", 1, true), "its modules, built into procy")
T.is(assert(http.request { headers = person, url = mbase .. "/web/../procy.lua" }).status, 404, "nothing outside web/")
r = assert(http.request { url = mbase .. "/api/sessions", headers = { host = "evil.example:" .. srv.port, cookie = person.cookie } })
T.is(r.status, 403, "a Host that is not procy's is refused (DNS rebinding)")
r = assert(http.request { method = "POST", url = mbase .. "/api/corrections", headers = { ["content-type"] = "application/json", cookie = person.cookie },
  body = json.encode { session = a, turn = 1, corrected = "x" } })
T.is(r.status, 403, "a write without the CSRF token is refused")
r = assert(http.request { method = "POST", url = mbase .. "/api/corrections",
  headers = { ["content-type"] = "application/json", ["x-procy-csrf"] = csrf, cookie = person.cookie },
  body = json.encode { session = b, corrected = "x" } })
T.is(r.status, 404, "with it, the write is procy's to judge (a session with no turn: 404)")
local ok, err = pcall(serve.start, { port = 0, host = "0.0.0.0", upstream = fake.url })
T.ok(not ok and tostring(err):find("needs a token", 1, true), "listening beyond loopback without a token is refused", err)
local s = json.decode(assert(http.request { headers = person, url = mbase .. "/api/sessions/" .. a:sub(1, 8) }).body)
T.ok(s.stats and s.stats.calls == 3 and s.stats.turns == 2 and s.stats.corrections == 1 and #s.turns == 2,
  "GET /api/sessions/ID: the session, its counts and turns")

-- ---- the browser ------------------------------------------------------------------------------
local browser = require "lib.browser"
if browser.missing() then
  T.skip("the browser checks", browser.missing())
else
  local screens = fs.cwd() .. "/screens"
  fs.mkdir(screens)
  -- the session as one HTML file, made by the command a person would run
  local export = dir .. "/session.html"
  local r = T.procy { "--config", dir .. "/procy.lua", "export", a:sub(1, 8), "--format", "html", "-o", export }
  T.ok(r.code == 0 and fs.stat(export), "procy export --format html writes one file", r.stderr)
  local page = T.read(export) or ""
  T.ok(not page:find('src="', 1, true) and not page:find('href="/', 1, true) and page:find("default-src 'none'", 1, true),
    "it loads nothing from anywhere, and its policy says so")
  T.ok(not page:find("sk-test", 1, true), "the API key the calls carried is not in it")
  local checks, res = browser.run("ui.mjs", { srv.url, a, screens, job, export, srv.link }, {
    ["new-session"] = function(p)
      p:write(assert(store.new_session { argv = { "claude" }, cwd = dir .. "/third", mode = "pty" }) .. "\n")
    end,
    ["new-call"] = function(p)
      assert(http.request { method = "POST", url = srv.url .. "/v1/messages", headers = { ["x-api-key"] = "sk-test" },
        body = json.encode { model = "claude-haiku-4-5", max_tokens = 50, messages = { { role = "user", content = "one more" } } } })
      p:write(("%d\n"):format(math.floor(core.time() * 1000)))
    end,
    ["live-output"] = function(p)
      term(now + 6e6, "o", "LIVE-LINE 7\r\n")
      p:write("ok\n")
    end,
    ["count-evil"] = function(p)
      core.sleep(0.5)
      p:write(tostring(h:query("SELECT count(*) AS n FROM corrections WHERE corrected = 'evil'")[1].n) .. "\n")
    end,
  })
  T.ok(res.code == 0 and checks >= 20, "the browser run ended, every check made", checks .. " checks")
  local kept = h:query("SELECT * FROM corrections WHERE session_id = ? AND turn_seq = 1", a)[1] or {}
  T.ok(kept.corrected == "fix the parser, and test nested quotes twice" and kept.context,
    "the page's correction is in the record, with its context")
  T.ok(fs.stat(screens .. "/interactions.png"), "screenshots of each view in screens/")
end

serve.stop(srv)
proc.run { "rm", "-rf", dir }
return T.done()
