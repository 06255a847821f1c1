-- Takeover mid-evolve: the real Claude Code in tmux through procy, a fake
-- proxy model. While try 1's turn runs (a slow answer), !pause; the run
-- holds after that turn; the person types to the agent directly (an edit
-- the proxy's prompt never asked for); !resume; the try's workspace and
-- score include what the person did, and what they typed is kept as a
-- correction candidate of the try's prompt, with its context.
local T = require "lib.tap"
local tmux = require "lib.tmux"
local core = require "procy.core"
local db = require "procy.db"
local agents = require "lib.agents"
local fakemodel = require "lib.fakemodel"

local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, claude = w.dir, w.work, w.cli
local record = dir .. "/record.db"
local function git(...) return (T.git(work, ...)) end
local function edit(from, to)
  return ("TOOL:edit:%s/value.txt:%s:%s"):format(work, T.b64("value=" .. from), T.b64("value=" .. to))
end

local m = fakemodel.start { "SLOW words while the person watches", "SLOW again while the person types" }
agents.value_project(work, ([[return { upstream = %q, evaluator = "eval.sh", evolve = { patience = 0 },
  model = { url = %q, name = "fake-proxy", backoff = 0.05 } }]]):format(w.fake.url, m.url))

local q = tmux.quote
local term = tmux.new { cols = 140, rows = 40, env = w.env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " -- " .. q(claude)
    .. " --permission-mode acceptEdits --allowedTools Bash Edit Read Write; echo procy-exit=$?" }
local function see(pattern, name, seconds) return term:see(pattern, name, seconds or 30) end
local function command(line) term:command(line) end

see("\n❯", "Claude Code starts inside procy")
core.sleep(0.5)
term:submit("raise the value in value.txt", "you said: raise the value", 30)
see("you said: raise the value", "the person gives the agent the task")
core.sleep(1)
command("evolve 1")
local h = assert(db.open(record, { migrations = false }))
local running = T.row(h, 60, "SELECT * FROM tries WHERE seq = 1 AND status = 'running'")
T.ok(running, "try 1 under way (a slow answer)")
command("pause")
see("evolve will pause when the agent's turn ends", "!pause: the run will hold after the agent's turn, and says it has not yet")
see("paused after try 1's turn", "the turn ended: the run holds, and says so", 60)
local try = h:query("SELECT status, score FROM tries WHERE seq = 1")[1] or {}
T.ok(try.status == "running" and try.score == nil, "paused before the try is taken and scored")
term:type(edit(1, 9))
see("❯[^\n]*TOOL:edit:", "(the person's prompt is in Claude Code's input box)")
core.sleep(0.5) -- typed text and Enter apart: typed together Claude Code may take them as a paste
term:keys("Enter")
see("FAKE: got tool result: .-updated", "the person's own prompt goes to the agent while the run holds", 60)
core.sleep(1)
command("resume")
local done = T.row(h, 60, "SELECT * FROM evolve_runs WHERE status = 'done'")
T.ok(done, "!resume: the run goes on and ends")
local t1 = h:query("SELECT * FROM tries WHERE run_id = ? AND seq = 1", done and done.id or "")[1] or {}
T.is(t1.score, 9.0, "the try is scored with what the person did (value 9)")
T.is(T.read(work .. "/value.txt"), "value=9\n", "and the workspace holds it, the best try")
local c = h:query("SELECT * FROM corrections ORDER BY id DESC LIMIT 1")[1] or {}
T.ok(c.corrected and c.corrected:find("TOOL:edit", 1, true) and c.original == "SLOW words while the person watches"
  and c.try_seq == 1 and tostring(c.note):find("^intervention: typed to the agent while evolve run"),
  "what the person typed is kept as a correction candidate of the try's prompt", require("procy.json").encode(c))
T.ok(c.context and c.context:find("Task %(pinned%)"), "with the messages the proxy model was given")
see("evolve run %x+ ended", "the run's report, in the pager when !evolve ends")
term:keys("q")
core.sleep(1)

-- the person types while a try's turn is under way (no !pause): the try
-- goes on to the agent's end, what they typed is an intervention on it
command("evolve 1")
running = T.row(h, 60, "SELECT * FROM tries WHERE seq = 2 AND status = 'running' AND turn_seq IS NOT NULL")
T.ok(running, "try 2 under way")
core.sleep(2)
term:type("also keep the value odd")
core.sleep(0.5)
term:keys("Enter")
local t2 = T.row(h, 90, "SELECT * FROM tries WHERE seq = 2 AND status <> 'running'") or {}
T.is(t2.status, "ok", "the try is not cut short by the person's typing: it is scored", require("procy.json").encode(t2))
T.is(t2.intervened, 1, "it is marked as intervened")
local turn = h:query("SELECT status FROM turns WHERE seq = ? AND session_id = ?", t2.turn_seq or -1, t2.session_id or "")[1] or {}
T.is(turn.status, "done", "the try's turn ended done, not interrupted")
c = h:query("SELECT * FROM corrections ORDER BY id DESC LIMIT 1")[1] or {}
T.ok(tostring(c.note):find("^intervention: a person added to try 2") and tostring(c.corrected):find("^SLOW again")
  and tostring(c.corrected):find("also keep the value odd", 1, true),
  "kept as the proxy's prompt with the addition, not a replacement", require("procy.json").encode(c))
see("evolve run %x+ ended", "the run ends", 60)
term:keys("q")
core.sleep(1)
T.is(T.read(work .. "/value.txt"), "value=9\n", "the workspace ends at the best")
-- the export does not credit the proxy's prompts alone with tries a person
-- added to (both were): nothing to label, and it says why
local ex = T.procy({ "--db", record, "train", "export", "--category", "proxy", "--format", "trl-kto", "-o", dir .. "/export" },
  { cwd = work })
T.like(ex.stderr, "nothing to export.-left out: 2 tries a person added to", "the export leaves intervened tries' prompts unlabelled, and says so")
term:type("/exit")
core.sleep(0.3)
term:keys("Enter")
see("procy%-exit=0", "the session ends", 20)
term:kill()
m.close()
return T.done()
