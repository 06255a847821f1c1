-- `!evolve 3` with no proxy model at all, in a session of the real Claude
-- Code (tmux, the fake Anthropic upstream), on examples/text-search as its
-- walk-through sets it up: the agent policy's prompts (procy's directive
-- from the template: the task, the objective, the evaluator, the best, the
-- parent), each try started from its parent's snapshot, scores recorded,
-- a broken try rolled back, a try that changed nothing marked, the
-- workspace left at the best. The task has the fake upstream run a script
-- that puts the next of three versions of baseline.py in place.
local T = require "lib.tap"
local tmux = require "lib.tmux"
local core = require "procy.core"
local db = require "procy.db"
local proc = require "procy.proc"
local agents = require "lib.agents"

if not proc.run { "python3", "-c", "" } then
  print("1..0 # SKIP python3 is not installed (.ci/setup installs it)")
  return 0
end
local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, claude = w.dir, w.cli
local work = w.work -- (the folder Claude Code's settings trust)
assert(proc.run { "cp", "-r", T.src .. "/examples/text-search/.", work })
local record = dir .. "/record.db"
local function git(...) return (T.git(work, ...)) end
git("init", "-q", "-b", "main")
git("add", "-A")
git("commit", "-q", "-m", "start")
-- the person's procy.lua: the example's, the fake upstream as Anthropic's
T.write(dir .. "/procy.lua", ([[local e = dofile(%q)
e.upstream = %q
e.evaluator = %q
return e]]):format(work .. "/procy.lua", w.fake.url, work .. "/eval.py"))
-- what the task has the agent run: the n-th call puts the n-th version in
-- place (1: the person's own turn, nothing; 2: one that breaks recall; 3:
-- the posting lists; 4: nothing), and notes what baseline.py held before
local fixtures = T.src .. "/tests/fixtures"
T.write(dir .. "/bump.sh", ([[
n=$(cat %q/count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > %q/count
md5sum baseline.py | cut -c1-12 >> %q/seen
case $n in
  2) cp %q/text_search_broken.py baseline.py ;;
  3) cp %q/text_search_inverted.py baseline.py ;;
esac
echo "bumped $n"
]]):format(dir, dir, dir, fixtures, fixtures))
local task = ("Make search faster, keep recall. TOOL:bash[sh %s/bump.sh]"):format(dir)

local env = { EVAL_DOCS = "2000", EVAL_QUERIES = "40" }
for k, v in pairs(w.env) do env[k] = v end
local q = tmux.quote
local term = tmux.new { cols = 140, rows = 40, env = env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --config " .. q(dir .. "/procy.lua") .. " --db " .. q(record)
    .. " -- " .. q(claude) .. " --permission-mode acceptEdits --allowedTools Bash Edit Read Write; echo procy-exit=$?" }
local function see(pattern, name, seconds) return term:see(pattern, name, seconds or 30) end

see("\n❯", "Claude Code starts inside procy")
core.sleep(0.5)
term:submit(task, "got tool result")
see("got tool result", "the person gives the agent the task (its script runs once)")
core.sleep(1)
term:command("evolve 3")
see("evolve run %x+ ended", "!evolve 3 with no proxy model runs to its end", 240)
term:keys("q")
core.sleep(0.5)

local h = assert(db.open(record, { migrations = false }))
local run = h:query("SELECT * FROM evolve_runs ORDER BY started_at DESC LIMIT 1")[1] or {}
T.is(run.policy, "agent", "the run's policy: agent (no model is configured)")
local tries = h:query("SELECT * FROM tries WHERE run_id = ? ORDER BY seq", run.id or "")
local got = {}
for _, t in ipairs(tries) do got[#got + 1] = ("%d:%s<%s"):format(t.seq, t.status, tostring(t.parent_seq)) end
T.is(table.concat(got, " "), "0:ok<nil 1:infeasible<0 2:ok<0 3:ok<2",
  "the start and three tries: the broken one infeasible, the next from the start, the last from the best", run.error)
T.is(run.best_seq, 2, "the posting lists are the best")
T.ok(tries[3] and tries[3].score and tries[1].score and tries[3].score > tries[1].score, "scored above the start")
T.ok(tries[4] and tries[4].files_changed == 0 and tries[4].improved == 0, "the try that changed nothing is marked, not the best")
local seen = {}
for line in (T.read(dir .. "/seen") or ""):gmatch("[^\n]+") do seen[#seen + 1] = line end
local md5 = function(path) return proc.run({ "md5sum", path }).stdout:sub(1, 12) end
local orig, inverted = md5(T.src .. "/examples/text-search/baseline.py"), md5(fixtures .. "/text_search_inverted.py")
T.ok(#seen == 4 and seen[1] == orig and seen[2] == orig and seen[3] == orig and seen[4] == inverted,
  "each try's agent found its parent's snapshot: try 2 the start (the broken try rolled back), try 3 the best",
  table.concat(seen, " "))
-- the prompts: procy's directive, the exact text the agent's turn got
local p1, p3 = tries[2] and tries[2].prompt or "", tries[4] and tries[4].prompt or ""
T.ok(p1:find("^Make search faster, keep recall%.") and p1:find("Objective: maximize qps subject to recall_at_10 >= 0.95", 1, true)
  and p1:find("Evaluator: python3 eval.py", 1, true) and p1:find("No try has beaten the starting point yet", 1, true),
  "try 1's prompt: the task, the objective, the evaluator, the best so far", p1)
T.ok(p3:find("Best so far: try 2", 1, true) and p3:find("You start from try 2", 1, true)
  and p3:find("What the best tries changed:\n— try 2", 1, true) and p3:find("baseline.py |", 1, true)
  and p3:find("#1 [infeasible", 1, true),
  "try 3's: the best, its parent, what the best changed (its diff), the recent tries", p3)
local turn = h:query("SELECT prompt, source, status FROM turns WHERE session_id = ? AND seq = ?", tries[4].session_id,
  tries[4].turn_seq or -1)[1] or {}
T.is(tostring(turn.source) .. " " .. tostring(turn.status), "proxy done", "each try a proxy turn of the session's agent, ended done")
-- (Claude Code hands a long pasted text to its model inside <pasted_content>:
-- the turn records what the model got, the try what procy sent)
T.ok(#p3 > 0 and tostring(turn.prompt):find(p3, 1, true), "whose prompt holds the try's, exactly", turn.prompt)
T.is(T.read(work .. "/baseline.py"), T.read(fixtures .. "/text_search_inverted.py"), "the workspace ends at the best try")
T.like(T.procy({ "--db", record, "runs", run.id or "?" }, { cwd = work }).stdout, "policy%s+agent", "procy runs says the policy")
h:close()
term:type("/exit")
core.sleep(0.3)
term:keys("Enter")
see("procy%-exit=0", "the session ends", 20)
term:kill()
return T.done()
