-- The agent VCR: a real Claude Code session recorded through procy serve
-- against the fake API (Bash and Edit round trips), the fake stopped,
-- then `procy serve --replay SESSION` answering from the record: the real
-- Claude Code makes the same tool calls and ends with the same answers.
-- A changed prompt under --strict gets a 404 naming the closest call and
-- the field that differs; --nearest answers it anyway; the pace is kept
-- unless --fast. procy.vcr's matching on its own: volatile fields
-- ignored, identical requests in their recorded order.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local db = require "procy.db"
local vcr = require "procy.vcr"
local agents = require "lib.agents"

-- ---- normalising and diffing --------------------------------------------------------------
local a = vcr.normal(json.encode { model = "m", metadata = { user_id = "user_1_session_aaa" },
  system = { { type = "text", text = "x-anthropic-billing-header: cc_version=2.1.330.963;" },
             { type = "text", text = "Today's date is 2026-12-01.", cache_control = { type = "ephemeral" } } },
  messages = { { role = "user", content = "hi" } } })
local b = vcr.normal(json.encode { model = "m", metadata = { user_id = "user_1_session_bbb" },
  system = { { type = "text", text = "x-anthropic-billing-header: cc_version=2.1.330.983;" },
             { type = "text", text = "Today's date is 2026-12-02." } },
  messages = { { role = "user", content = "hi" } } })
T.is(select(2, vcr.normal(json.encode(a))), select(2, vcr.normal(json.encode(b))),
  "metadata, cache_control, the billing block and dates do not count")
local c = vcr.normal(json.encode { model = "m", messages = { { role = "user", content = "hi" }, { role = "user", content = "more" } } })
T.is(vcr.diff(a, c), "messages[1]", "diff names the first field that differs")
T.is(vcr.diff(a, a), nil, "and nothing for equal requests")

local w = agents.world("claude")
if not w then
  T.skip("the replay with Claude Code", "the claude CLI is not installed")
  return T.done()
end
local dir, work, env = w.dir, w.work, w.env
local record = dir .. "/rec.db"
local notes = work .. "/notes.txt"

local function serve(args)
  local argv = { T.bin, "--db", record, "serve", "--port", "0" }
  for _, x in ipairs(args) do argv[#argv + 1] = x end
  local p = assert(proc.spawn(argv, { stderr = "pipe", stdout = false }))
  local lines = p:lines("stderr")
  local head = lines() or ""
  local url, sid = head:match("listening on (http://[%d.:]+), recording into .- %(session (%x+)%)")
  -- what it says after: a replaying server's base URL carries its key
  local said = {}
  for _ = 1, 3 do
    said[#said + 1] = lines() or ""
    if said[#said]:find("use it:", 1, true) then break end
  end
  local base = said[#said]:match("ANTHROPIC_BASE_URL=(%S+)")
  return p, base or url or "http://127.0.0.1:1", sid, table.concat(said, "\n"), url
end
local function claude(url, prompt)
  env.ANTHROPIC_BASE_URL = url
  return proc.run({ w.cli, "-p", "--dangerously-skip-permissions", prompt }, { cwd = work, env = env, timeout = 90 })
end
local BASH = "TOOLS:2:bash[echo vcr-ok]"
local EDIT = ("TOOL:edit:%s:%s:%s"):format(notes, T.b64("alpha"), T.b64("beta"))

-- record
T.write(notes, "alpha\n")
local rec, url, sid = serve { "--upstream", w.fake.url }
T.ok(sid, "procy serve records into a session of its own")
local r1 = claude(url, BASH)
local r2 = claude(url, EDIT)
T.is(r1.stdout, "FAKE: got tool result: vcr-ok\n", "recorded: two Bash round trips", r1.stderr)
T.like(r2.stdout, "has been updated successfully", "recorded: a Read and an Edit", r2.stderr)
T.is(T.read(notes), "beta\n", "(which changed the file)")
rec:kill("TERM")
rec:wait()
w.fake.proc:kill("TERM")
w.fake.proc:wait()
local h = assert(db.open(record))
local recorded = h:query("SELECT count(*) AS n FROM api_calls WHERE session_id LIKE ? || '%'", sid)[1].n
T.ok(recorded >= 6, "the calls are in the record", tostring(recorded))

-- replay, the fake gone: the same tool calls, the same answers
T.write(notes, "alpha\n")
local rp, rurl, rsid, rsaid, plain_url = serve { "--replay", sid, "--fast" }
T.like(rsaid, "replaying " .. recorded .. " recorded calls? of session " .. sid, "procy serve --replay says what it replays")
-- its answers are the record's: the plain proxy route gives none, the base
-- URL it prints (with its key) does
local plain = require("procy.http").request { method = "POST", url = plain_url .. "/v1/messages", body = "{}",
  headers = { ["content-type"] = "application/json" } }
T.is(plain and plain.status, 401, "a replaying server answers no client without its key", plain and plain.body)
T.like(rurl, "/s/%x+$", "it prints a base URL with its key")
local p1 = claude(rurl, BASH)
local p2 = claude(rurl, EDIT)
T.is(p1.stdout, r1.stdout, "replayed offline: Claude Code ends with the same answer", p1.stderr)
T.is(p2.stdout, r2.stdout, "and the same for the Edit session")
T.is(T.read(notes), "beta\n", "the replayed Edit changed the file again")
local bash = h:query([[SELECT count(*) AS n FROM tool_calls WHERE session_id LIKE ? || '%' AND name = 'Bash' AND result = 'vcr-ok']], rsid)[1].n
T.is(bash, 2, "Claude Code ran both Bash calls again, with the same results")
local replays = h:query("SELECT count(*) AS n FROM api_calls WHERE session_id LIKE ? || '%' AND route = 'replay' AND status = 200", rsid)[1].n
T.is(replays, recorded, "every replayed call recorded, marked as a replay")

-- a changed prompt under --strict: 404 naming the closest and the field
claude(rurl, "something else entirely")
local miss = h:query("SELECT status, error FROM api_calls WHERE session_id LIKE ? || '%' AND status = 404 ORDER BY id LIMIT 1", rsid)[1] or {}
T.like(miss.error, "no recorded call in session %x+ matches this POST /v1/messages; the closest is call %d+, which differs first at "
  .. "messages%[0%]%.content%[%d%]%.text: recorded TOOL", "--strict: a 404 naming the closest call and the first field that differs")
rp:kill("TERM")
rp:wait()

-- --nearest answers anyway; without --fast, the recorded pace
local np, nurl, nsid = serve { "--replay", sid, "--nearest" }
local n1 = claude(nurl, "TOOLS:2:bash[echo vcr-ok] and a little more")
T.is(n1.stdout, r1.stdout, "--nearest: the closest recorded answers drive the same run", n1.stderr)
np:kill("TERM")
np:wait()
local slowest = h:query("SELECT max(ttfb_us) AS t FROM api_calls WHERE session_id LIKE ? || '%'", sid)[1].t or 0
local replayed_total = h:query("SELECT sum(duration_us) AS d FROM api_calls WHERE session_id LIKE ? || '%'", nsid)[1].d or 0
T.ok(replayed_total >= slowest, "at the recorded pace: the replay takes at least the recorded waits",
  ("%d >= %d"):format(replayed_total, slowest))
return T.done()
