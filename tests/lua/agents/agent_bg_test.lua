-- Named background agents with the real Claude Code: `procy agent start`,
-- send, ls, log, restart, stop — a detached supervisor, all state in the
-- record.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local db = require "procy.db"
local agents = require "lib.agents"

local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, env, claude = w.dir, w.work, w.env, w.cli
local record, procy = agents.project(w)

local r = procy("agent", "start", "bob", "--", "--allowedTools", "Bash")
T.is(r.code, 0, "agent start", r.stderr)
local pid = tonumber(r.stdout:match("supervisor (%d+)"))
T.ok(pid and not T.dead(pid), "a supervisor runs", r.stdout)
T.like(procy("agent", "start", "bob").stderr, "running already", "a second start of the same name refuses")

r = procy("agent", "send", "bob", "hello bob", "--wait")
T.is(r.stdout, "FAKE: hello! you said: hello bob\n", "send --wait prints the answer", r.stderr)
r = procy("agent", "send", "bob", "TOOL:bash[echo from-bob]")
T.like(r.stdout, "^sent: turn 2", "send without --wait says which turn")
local h = assert(db.open(record))
local function turn(n)
  for _ = 1, 600 do
    local row = h:query([[SELECT t.* FROM turns t JOIN agents a ON a.session_id = t.session_id
                          WHERE a.name = 'bob' AND t.seq = ?]], n)[1]
    if row and row.status ~= "running" then return row end
    core.sleep(0.1)
  end
end
local t2 = turn(2) or {}
T.is(t2.status .. " " .. tostring(t2.response), "done FAKE: got tool result: from-bob", "the turn ends in the record")

r = procy("agent", "ls")
T.like(r.stdout, "\nbob%s+running%s+" .. pid .. "%s+%S+%s+2%s+0%s+claude", "ls: running, its pid, last I/O, two turns, none denied")

r = procy("agent", "log", "bob")
T.like(r.stdout, "### user\n    hello bob\n", "log: the user's prompt")
T.like(r.stdout, "### tool Bash\n    {\"command\":\"echo from%-bob\"", "each tool call")
T.like(r.stdout, "### result from Bash\n    from%-bob", "each result under its call")
T.ok(not r.stdout:find("\27[", 1, true), "no colour when not on a terminal")

-- started with no arguments, an agent may edit (its profile's edit_args);
-- what it may not do is said by send, ls and log; an interrupt is no error
r = procy("agent", "start", "carol")
T.is(r.code, 0, "agent start with no arguments", r.stderr)
r = procy("agent", "send", "carol", "TOOL:write:carol.txt:" .. T.b64("written unasked\n"), "--wait")
T.is(r.code, 0, "a file write needs nobody's approval", r.stdout .. r.stderr)
T.is(T.read(work .. "/carol.txt"), "written unasked\n", "and the file is written")
r = procy("agent", "send", "carol", "TOOL:bash[kill -0 1]", "--wait")
T.is(r.code, 1, "a refused tool: send --wait fails", r.stdout)
T.like(r.stderr, "agent carol was refused Bash {.-\"command\":\"kill %-0 1\".*%-%-allowedTools Bash",
  "saying which tool, with what, and how to allow it")
r = procy("agent", "ls")
T.like(r.stdout, "\ncarol%s+running%s+%d+%s+%S+%s+2%s+1%s+claude", "ls counts the refused tool use")
T.like(r.stdout, "DENIED counts tool uses refused", "and says what the count means")
T.like(procy("agent", "log", "carol").stdout, "### denied Bash: it needs permission\n    {\"command\":\"kill %-0 1\"",
  "log shows the refusal")
r = procy("agent", "send", "carol", "SLOW to be interrupted")
core.sleep(1)
T.is(procy("agent", "interrupt", "carol").code, 0, "agent interrupt")
local t3 = h:query([[SELECT t.status FROM turns t JOIN agents a ON a.session_id = t.session_id
                     WHERE a.name = 'carol' AND t.seq = 3]])[1]
for _ = 1, 100 do
  if t3 and t3.status ~= "running" then break end
  core.sleep(0.1)
  t3 = h:query([[SELECT t.status FROM turns t JOIN agents a ON a.session_id = t.session_id
                 WHERE a.name = 'carol' AND t.seq = 3]])[1]
end
T.is(t3 and t3.status, "interrupted", "an interrupted turn is stored as interrupted")
T.is(procy("agent", "stop", "carol").code, 0, "carol stops")

r = procy("agent", "restart", "bob", "--resume")
T.is(r.code, 0, "restart --resume", r.stderr)
r = procy("agent", "send", "bob", "are you back", "--wait")
T.is(r.stdout, "FAKE: hello! you said: are you back\n", "the restarted agent answers")

-- follow shows what arrives while it runs
local follow = assert(proc.spawn({ T.bin, "agent", "log", "bob", "--follow" }, { cwd = work, env = env }))
procy("agent", "send", "bob", "while following", "--wait")
local seen = ""
for _ = 1, 100 do
  local chunk = follow:read("stdout", 0.1)
  if chunk then seen = seen .. chunk end
  if seen:find("you said: while following", 1, true) then break end
end
T.like(seen, "you said: while following", "log --follow shows new lines as they come")

r = procy("agent", "stop", "bob")
T.is(r.code, 0, "agent stop")
local res = follow:wait(10)
T.ok(res, "log --follow ends when the agent stops")
T.ok(T.dead(pid), "the supervisor is gone")
T.like(procy("agent", "ls").stdout, "\nbob%s+stopped", "ls says stopped")
local row = h:query("SELECT * FROM agents WHERE name = 'bob'")[1]
T.ok(row.ended_at and row.session_id, "the record keeps the agent, its session and its end")
T.is(procy("agent", "send", "bob", "anyone?").code, 1, "sending to a stopped agent fails")
-- its pid, reused by another process: stop leaves that process alone
local other = assert(proc.spawn { "sleep", "30" })
h:exec("UPDATE agents SET status = 'running', pid = ? WHERE name = 'bob'", other:pid())
T.like(procy("agent", "ls").stdout, "\nbob%s+dead", "a supervisor's pid taken by another process: ls says dead")
procy("agent", "stop", "bob")
T.ok(not T.dead(other:pid()), "and agent stop does not signal that process")
other:kill()
other:wait(5)
h:close()
proc.run { "rm", "-rf", dir }
return T.done()
