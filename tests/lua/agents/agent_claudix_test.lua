-- `procy claudix` driven as lproc drives it: stream-json lines into its
-- stdin, its stdout read line by line, with the real Claude Code against
-- the fake API. Every marker, a restart while a turn runs, the agent
-- killed, lines that are not JSON: one result per user line in every
-- case. The seed's bugs stay fixed: a graceful restart after a _NO_SEND
-- still waits for the turn in flight; a resume does not leak into later
-- restarts; a death is noticed with no input arriving.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local db = require "procy.db"
local agents = require "lib.agents"
local fake = require "lib.fake"

local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, env = w.dir, w.work, w.env
env.ANTHROPIC_BASE_URL = false
local record = dir .. "/rec.db"
T.write(work .. "/procy.lua", ("return { db = %q, upstream = %q }"):format(record, w.fake.url))

local p = assert(proc.spawn({ T.bin, "claudix", "--", "--dangerously-skip-permissions", "--replay-user-messages" },
  { cwd = work, env = env, stdin = true, stderr = "pipe" }))
local _p <close> = p
local out, errs = {}, {}
local reader = core.spawn(function() for line in p:lines() do out[#out + 1] = line end end)
local ereader = core.spawn(function() for line in p:lines("stderr") do errs[#errs + 1] = line end end)

local function user(text) return json.encode { type = "user", message = { role = "user", content = { { type = "text", text = text } } } } end
local function send(line) assert(p:write(line .. "\n")) end
local function results()
  local r = {}
  for _, l in ipairs(out) do
    local e = json.decode(l)
    if type(e) == "table" and e.type == "result" then r[#r + 1] = e end
  end
  return r
end
local function wait_results(n, seconds)
  local t0 = core.now()
  while #results() < n and core.now() - t0 < (seconds or 60) do core.sleep(0.05) end
  return results()
end
local function requests() return #fake.bodies(dir .. "/fake") end
local function wait_requests(n)
  local t0 = core.now()
  while requests() < n and core.now() - t0 < 30 do core.sleep(0.05) end
  return requests()
end
local function last_request() return json.decode(fake.bodies(dir .. "/fake")[requests()] or "") or {} end
local function said(r) return r and tostring(r.result) or "-" end

-- plain turns: one result each; the agent's lines come out unchanged
send(user("say one"))
local r = wait_results(1)
T.is(said(r[1]), "FAKE: hello! you said: say one", "a user line: Claude Code's result, on stdout")
local first = json.decode(out[1] or "") or {}
T.ok(first.type == "system" and first.subtype == "init", "its lines unchanged, from system/init on", out[1])
local echoed = false
for _, l in ipairs(out) do if l:find('"say one"', 1, true) and l:find('"type":"user"', 1, true) then echoed = true end end
T.ok(echoed, "--replay-user-messages passed through: the user line echoed")

-- not JSON: answered, never sent
send("this is { not json")
send("[1, 2]")
r = wait_results(3)
T.ok(r[2] and r[2].subtype == "CLAUDIX_FAIL" and said(r[2]):find("line 2 is not a JSON object") and r[3]
  and r[3].subtype == "CLAUDIX_FAIL", "lines that are no JSON object: a CLAUDIX_FAIL result each, naming the line")

-- a graceful restart while a turn runs waits for its result
local before = requests()
send(user("SLOW words"))
wait_requests(before + 1)
send(user("[CLAUDIX:RESTART] fresh start"))
r = wait_results(5, 60)
T.ok(r[4] and r[4].subtype == "success" and said(r[4]):find("^word0 word1"), "[CLAUDIX:RESTART] waits: the slow turn ends with its own answer")
T.is(said(r[5]), "FAKE: hello! you said: fresh start", "then the marker is removed and the message sent to a new process")
local req = last_request()
T.ok(#(req.messages or {}) <= 2 and not json.encode(req.messages):find("SLOW words", 1, true), "which starts fresh (no history)")

-- a forced restart while a turn hangs: CLAUDIX_FAIL for it, at once
before = requests()
send(user("HANG here"))
wait_requests(before + 1)
send(user("[CLAUDIX:FORCE_RESTART_RESUME] go on"))
r = wait_results(7, 60)
T.ok(r[6] and r[6].subtype == "CLAUDIX_FAIL" and said(r[6]):find("resumed"), "FORCE_RESTART_RESUME: the hung turn gets CLAUDIX_FAIL")
T.is(said(r[7]), "FAKE: hello! you said: go on", "the message goes to the new process")
req = last_request()
T.ok(json.encode(req.messages or {}):find("fresh start", 1, true), "which resumed the session: the history is there")

-- _NO_SEND: dropped and answered; counts stay right, so a graceful
-- restart after it still waits for the turn in flight (the seed's drift)
before = requests()
send(user("SLOW again"))
wait_requests(before + 1)
send(user("[CLAUDIX:FORCE_RESTART_NO_SEND] dropped text"))
r = wait_results(9, 30)
T.ok(r[8] and r[8].subtype == "CLAUDIX_FAIL" and r[9] and said(r[9]):find("NOT sent"),
  "FORCE_RESTART_NO_SEND: CLAUDIX_FAIL for the turn under way, and one asking to resend")
local dropped = false
for _, b in ipairs(fake.bodies(dir .. "/fake")) do dropped = dropped or b:find("dropped text", 1, true) ~= nil end
T.ok(not dropped, "the dropped message never reached the agent")
before = requests()
send(user("SLOW third"))
wait_requests(before + 1)
send(json.encode { _CLAUDIX_ = "RESTART", type = "user", message = { role = "user", content = "by the key" } })
r = wait_results(11, 60)
T.ok(r[10] and r[10].subtype == "success" and said(r[10]):find("^word0"), "after a _NO_SEND a graceful restart still waits for the turn in flight")
T.is(said(r[11]), "FAKE: hello! you said: by the key", "the _CLAUDIX_ key: a graceful restart, the rest of the object sent")
req = last_request()
T.ok(not json.encode(req.messages or {}):find("go on", 1, true), "a fresh restart after a resume: the resume did not leak into it")

-- FORCE_RESTART_RESUME_NO_SEND, and plain FORCE_RESTART
send(user("[CLAUDIX:FORCE_RESTART_RESUME_NO_SEND] x"))
r = wait_results(12, 30)
T.ok(r[12] and said(r[12]):find("NOT sent"), "FORCE_RESTART_RESUME_NO_SEND: nothing outstanding, one reminder")
send(user("[CLAUDIX:FORCE_RESTART] after force"))
r = wait_results(13, 60)
T.is(said(r[13]), "FAKE: hello! you said: after force", "FORCE_RESTART with nothing outstanding: just a fresh process")

-- the agent killed mid-turn: noticed at once, with no input arriving
before = requests()
send(user("HANG until killed"))
wait_requests(before + 1)
local pid
for _, l in ipairs(errs) do pid = l:match("PID (%d+)") or pid end -- the process now running
T.ok(pid and proc.run({ "kill", "-9", pid }).code == 0, "(Claude Code killed: " .. tostring(pid) .. ")")
r = wait_results(14, 20)
T.ok(r[14] and r[14].subtype == "CLAUDIX_FAIL", "its death is answered at once: CLAUDIX_FAIL for the turn it was on")
send(user("after the death"))
r = wait_results(15, 60)
T.is(said(r[15]), "FAKE: hello! you said: after the death", "the next line starts it again")
T.ok(json.encode(last_request().messages or {}):find("after force", 1, true), "resuming its session")

-- bursts: Claude Code takes lines that come while a turn runs into that
-- turn (three lines, two results); each line is held until the one
-- before it has its result, so every line still gets its own
local function burst(...)
  local lines = {}
  for i, t in ipairs { ... } do lines[i] = user(t) end
  send(table.concat(lines, "\n"))
end
burst("burst one", "burst two", "burst three")
r = wait_results(18, 60)
T.ok(said(r[16]) == "FAKE: hello! you said: burst one" and said(r[17]) == "FAKE: hello! you said: burst two"
  and said(r[18]) == "FAKE: hello! you said: burst three", "three lines at once: three results, each its own line's answer",
  said(r[16]) .. " | " .. said(r[17]) .. " | " .. said(r[18]))
burst("SLOW b1", "b2", "[CLAUDIX:RESTART] b3", "b4")
r = wait_results(22, 90)
T.ok(said(r[19]):find("^word0") and said(r[20]) == "FAKE: hello! you said: b2" and said(r[21]) == "FAKE: hello! you said: b3"
  and said(r[22]) == "FAKE: hello! you said: b4", "a RESTART inside a burst: the lines before it answered, then the restart, then the rest",
  said(r[19]) .. " | " .. said(r[20]) .. " | " .. said(r[21]) .. " | " .. said(r[22]))
T.ok(not json.encode(last_request().messages or {}):find("b2", 1, true), "the lines after the RESTART went to the fresh process")
before = requests()
burst("HANG f1", "f2", "[CLAUDIX:FORCE_RESTART] f3", "f4")
r = wait_results(26, 90)
T.ok(r[23] and r[23].subtype == "CLAUDIX_FAIL" and r[24] and r[24].subtype == "CLAUDIX_FAIL"
  and said(r[25]) == "FAKE: hello! you said: f3" and said(r[26]) == "FAKE: hello! you said: f4",
  "a FORCE_RESTART inside a burst: CLAUDIX_FAIL for the hung line and the one held behind it, then the rest answered",
  said(r[23]) .. " | " .. said(r[24]) .. " | " .. said(r[25]) .. " | " .. said(r[26]))
local f2_sent = false
for i, b in ipairs(fake.bodies(dir .. "/fake")) do
  if i > before and b:find('"f2"', 1, true) then f2_sent = true end
end
T.ok(not f2_sent, "the held line never reached the agent it was failed for")

-- end of input with lines still held: each answered, then it exits 0
burst("e1", "e2", "the last one")
p:close_stdin()
local done = p:wait(90)
T.is(done and done.code, 0, "end of input: claudix exits 0")
core.sleep(0.2)
r = results()
T.is(#r, 29, "one result for each of the 29 lines that asked for one (27 user lines, 2 not JSON)")
T.ok(said(r[27]) == "FAKE: hello! you said: e1" and said(r[28]) == "FAKE: hello! you said: e2", "the held lines answered in order")
T.is(said(r[29]), "FAKE: hello! you said: the last one", "the last answer came before it exited")
local text = table.concat(errs, "\n")
T.like(text, "%[claudix%] FAKE: hello! you said: say one", "stderr: claudix4's one-line previews")
T.like(text, "started PID %d+: claude %-p %-%-input%-format stream%-json %-%-output%-format stream%-json %-%-verbose",
  "the claudix defaults")
T.like(text, "end of input: waiting for %d result%(s%)", "end of input: stderr says what it waits for")
local eof_at
for i, l in ipairs(errs) do if l:find("end of input", 1, true) then eof_at = eof_at or i end end
local restart_after = false
for i, l in ipairs(errs) do if eof_at and i > eof_at and l:find("RESTART requested", 1, true) then restart_after = true end end
T.ok(eof_at and not restart_after, "and never that a RESTART was requested when none was")
local repeated
for i = 2, #errs do if errs[i] == errs[i - 1] and errs[i]:find("waiting", 1, true) then repeated = errs[i] end end
T.is(repeated, nil, "no waiting line said twice in a row")
T.like(text, "restarted, resuming session %x+", "a resume names the session it resumes")
T.ok(not text:find("restarting fresh", 1, true) and not text:find("resuming its session", 1, true),
  "never both 'fresh' and 'resuming' for one restart")

-- the mirror's preview: the first line with something on it
local D = require "procy.agent"
T.is(D.preview("\n\n  Here it is.\nmore"), "Here it is. ...", "a text that starts with blank lines: its first non-blank line")
T.is(D.preview("one line\n\n"), "one line", "trailing blank lines: nothing more to show")

-- --lproc: claudix4's own flags, so procy takes its place in an lproc command line as it is
local lp = assert(proc.spawn({ T.bin, "claudix", "--lproc", "--", "--replay-user-messages" },
  { cwd = work, env = env, stdin = true, stderr = "pipe" }))
assert(lp:write(user("lproc style") .. "\n"))
lp:close_stdin()
local lerr = {}
for line in lp:lines("stderr") do lerr[#lerr + 1] = line end
local lres = lp:wait(60)
T.ok(lres and lres.code == 0, "procy claudix --lproc runs to the end of its input")
T.like(table.concat(lerr, "\n"), "started PID %d+: claude .*%-%-dangerously%-skip%-permissions %-%-model sonnet %-%-replay%-user%-messages",
  "with --dangerously-skip-permissions --model sonnet before the flags given", table.concat(lerr, "\n"))
lp:close()

-- a 3 MB prompt: a line on claudix's input, on the agent's, and its echo
-- on the agent's output, all far past 1 MiB (such a line once hung procy's
-- line reader, and a 1 MB one lost its result). Claude Code answers it
-- itself (it is past the model's context): that answer comes back, and
-- claudix ends as it should.
do
  local big = "BIG " .. string.rep("0123456789", 300000)
  local bp = assert(proc.spawn({ T.bin, "claudix", "--", "--dangerously-skip-permissions", "--replay-user-messages" },
    { cwd = work, env = env, stdin = true, stderr = "pipe" }))
  local berr = core.spawn(function() for _ in bp:lines("stderr") do end end)
  assert(bp:write(user(big) .. "\n"))
  bp:close_stdin()
  local results_seen, echo = {}, false
  for line in bp:lines() do
    local e = json.decode(line)
    if type(e) == "table" and e.type == "result" then results_seen[#results_seen + 1] = e end
    if type(e) == "table" and e.type == "user" and line:find(big, 1, true) then echo = true end
  end
  local bres = bp:wait(120)
  core.cancel(berr)
  T.ok(echo, "a 3 MB prompt reaches the agent whole: its echo (--replay-user-messages) comes back whole")
  T.ok(#results_seen == 1 and type(results_seen[1].result) == "string" and results_seen[1].subtype ~= "CLAUDIX_FAIL",
       "its one result comes back (the agent's own answer)", tostring(results_seen[1] and results_seen[1].result))
  T.is(bres and bres.code, 0, "and claudix exits 0 at the end of its input")
end

local h = assert(db.open(record))
local s = h:query("SELECT count(*) AS n FROM turns t JOIN sessions s ON s.id = t.session_id WHERE s.profile = 'claude'")[1]
T.ok(s.n >= 10, "recorded like any procy agent: its turns in the record", tostring(s.n))
local calls = h:query("SELECT count(*) AS n FROM api_calls")[1].n
T.ok(calls >= 10, "and its API calls", tostring(calls))
core.cancel(reader)
core.cancel(ereader)
return T.done()
