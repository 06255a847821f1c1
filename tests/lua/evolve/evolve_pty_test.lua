-- evolve inside an interactive session: the real Claude Code in tmux
-- through procy, a fake proxy model served by this test. !eval show / run
-- / metrics; !eval generate (the agent writes the evaluator evolve then
-- uses); the person's prompt pinned as the task; `!evolve 2` with its
-- progress line, `!status` while it runs and `!stop` in the middle of a
-- try (the agent interrupted, the run and the try marked stopped, the best
-- kept); then `!reset-evolve` and `!evolve 1 --approve` with `!edit`,
-- kept as a correction.
local T = require "lib.tap"
local tmux = require "lib.tmux"
local core = require "procy.core"
local db = require "procy.db"
local proc = require "procy.proc"
local agents = require "lib.agents"
local fakemodel = require "lib.fakemodel"

local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, claude = w.dir, w.work, w.cli
local record = dir .. "/record.db"

local function git(...) return (T.git(work, ...)) end
local b64 = T.b64
local function edit(from, to)
  return ("TOOL:edit:%s/value.txt:%s:%s"):format(work, b64("value=" .. from), b64("value=" .. to))
end

local m = fakemodel.start { edit(1, 5), "TOOL:bash[timeout 60 tail -f /dev/null; echo slow]", "a proposal to edit" }
agents.value_project(work, ([[return { upstream = %q, evaluator = "eval.sh", evolve = { patience = 0 },
  model = { url = %q, name = "fake-proxy", backoff = 0.05 } }]]):format(w.fake.url, m.url))

local q = tmux.quote
local term = tmux.new { cols = 140, rows = 40, env = w.env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " -- " .. q(claude)
    .. " --permission-mode acceptEdits --allowedTools Bash Edit Read Write; echo procy-exit=$?" }

local function see(pattern, name, seconds) return term:see(pattern, name, seconds or 30) end
local function command(line) term:command(line) end
local function close_pager()
  term:keys("q")
  for _ = 1, 100 do -- under load the pager may take a moment to go
    if not term:screen():find("q or Enter: close", 1, true) then break end
    core.sleep(0.1)
  end
  core.sleep(0.2)
end

see("\n❯", "Claude Code starts inside procy")
core.sleep(0.5)
command("eval show")
see("evaluator eval.sh %(command, by config%)", "!eval show: the evaluator procy.lua names")
see("metric%s+value%s+maximize", "with its declared metric")
close_pager()
command("eval run")
see("eval.sh: ok in", "!eval run runs it")
see("metrics: value=1", "and shows its metrics")
close_pager()
command("eval metrics")
see("status.-value.-\n.-ok.-%s1\n", "!eval metrics: the history table")
close_pager()

-- the agent writes an evaluator (the fake upstream's Write): registered, and used from now on
local gen = '# METRICS_SCHEMA = [{"name": "value", "goal": "maximize"}]\necho "{\\"value\\": $(sed -n s/^value=//p value.txt)}"\n'
command("eval generate --file gen_eval.sh the value TOOL:write:" .. work .. "/gen_eval.sh:" .. b64(gen))
see("registered gen_eval.sh %(bash gen_eval.sh%)", "!eval generate: the agent wrote it, it ran, it is registered", 60)
see("value%s+1%s+maximize", "with the metrics it found")
close_pager()
command("eval show")
see("evaluator gen_eval.sh %(command, by agent%)", "and it is the project's evaluator now")
close_pager()

term:submit("raise the value in value.txt", "you said: raise the value", 30)
see("you said: raise the value", "the person gives the agent the task")
core.sleep(1)
command("evolve 2")
local h = assert(db.open(record, { migrations = false }))
local running = T.row(h, 90, "SELECT * FROM tries WHERE seq = 2 AND status = 'running'")
T.ok(running, "try 1 scored, try 2 under way (a Bash call that waits 60 s: !stop comes first, however slow the machine)")
core.sleep(2)
local function bottom()
  local last
  for line in term:screen():gmatch("([^\n]*)\n") do last = line end
  return last or ""
end
T.like(bottom(), "evolve %x+: try 2/2 ▕.-▏ best 5 %(try 1%)", "the progress line is pinned to the bottom row while the agent works")
command("status")
see("evolve %x+: try 2/2 ▕.-▏ best 5 %(try 1%) · %d+s · ~%d+s left · the agent works",
  "!status while it runs: try i of N, a bar, the best, elapsed, an estimate, the phase")
close_pager()
command("stop")
local stopped = T.row(h, 30, "SELECT 1 FROM evolve_runs WHERE status = 'stopped'")
T.ok(stopped, "!stop cancels it mid-try")
core.sleep(2)
T.ok(not bottom():find("evolve", 1, true), "and the progress row goes with the run", bottom())

local run = h:query("SELECT * FROM evolve_runs ORDER BY started_at LIMIT 1")[1] or {}
T.is(run.status, "stopped", "the run is marked stopped")
T.is(run.task, "raise the value in value.txt", "its task is the person's prompt, pinned")
local tries = h:query("SELECT * FROM tries WHERE run_id = ? ORDER BY seq", run.id or "")
T.is((tries[2] or {}).score, 5.0, "try 1 scored 5")
T.is((tries[3] or {}).status, "stopped", "try 2 is marked stopped")
local session = h:query("SELECT id FROM sessions ORDER BY started_at LIMIT 1")[1].id
local turn = h:query("SELECT * FROM turns WHERE session_id = ? ORDER BY seq DESC LIMIT 1", session)[1] or {}
T.is(turn.source .. " " .. turn.status, "proxy interrupted", "the agent's turn was interrupted")
T.is(T.read(work .. "/value.txt"), "value=5\n", "the workspace holds the best try")
T.like(m.requests[1].messages[2].content, "^Task %(pinned%):\nraise the value in value.txt", "the model saw the pinned task")

-- a new run, with the person approving: they edit the proposal
see("\n❯", "the agent is at its prompt again")
command("reset-evolve")
see("put aside", "!reset-evolve")
command("evolve 1 --approve")
see("the proxy model proposes:", "--approve: the proposal is shown", 60)
see("a proposal to edit", "the proxy model's text")
close_pager()
command("edit " .. edit(5, 8))
see("evolve run %x+ ended .-best try 1, score 8", "the edited prompt ran and scored", 90)
close_pager()
local c = h:query("SELECT * FROM corrections ORDER BY id DESC LIMIT 1")[1] or {}
T.is(c.original, "a proposal to edit", "the edit is kept as a correction: the proposal")
T.is(c.corrected, edit(5, 8), "and what the person sent")
T.like(c.context or "", "Task %(pinned%)", "with what the proxy model was shown")
T.ok(c.kind == "edited" and c.source == "proxy" and c.run_id and c.try_seq == 1, "an edited proxy prompt, of its run's try",
  require("procy.json").encode(c))
local tr = h:query("SELECT messages FROM tries WHERE run_id = ? AND seq = 1", c.run_id or "")[1] or {}
T.is(tr.messages, c.context, "the try keeps the same messages, byte for byte")
T.is(T.read(work .. "/value.txt"), "value=8\n", "the new best is in the workspace")
h:close()
term:submit("/exit", "procy%-exit=0", 30)
see("procy%-exit=0", "/exit ends the session")
term:kill()
m.close()
proc.run { "rm", "-rf", dir }
return T.done()
