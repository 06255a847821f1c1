-- `procy run recipes/evolve.lua` driving the real Claude Code headless
-- (stream-json) against the fake upstream, with a fake proxy model that
-- writes prompts the fake upstream turns into Read + Edit tool calls: three
-- tries with scores, a regressing one rolled back, private refs, and the
-- person's branch, index and other files untouched.
local T = require "lib.tap"
local fs = require "procy.fs"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"
local agents = require "lib.agents"
local fakemodel = require "lib.fakemodel"

local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local work, db_path = w.work, w.dir .. "/rec.db"

local function git(...) return (T.git(work, ...)) end
agents.value_project(work, ("return { db = %q, upstream = %q, model = { backoff = 0.05 } }"):format(db_path, w.fake.url))
T.write(work .. "/mine.txt", "the person's\n")
git("add", "mine.txt")
local head, index = git("rev-parse", "HEAD"), T.read(work .. "/.git/index")
assert(config.load { config = work .. "/procy.lua" })

local b64 = T.b64
local function edit(from, to)
  return ("TOOL:edit:%s/value.txt:%s:%s"):format(work, b64("value=" .. from), b64("value=" .. to))
end
local m = fakemodel.start { edit(1, 5), edit(5, 2), edit(5, 7) }
local env = { PROCY_LOG = "warn" }
for k, v in pairs(w.env) do env[k] = v end
local p = assert(proc.spawn({ T.bin, "--model-url", m.url, "run", "recipes/evolve.lua", "--task", "raise the value",
  "--iterations", "3", "--agent", "claude", "--evaluator", "eval.sh" }, { cwd = work, env = env }))
local r = assert(p:wait(180))
T.is(r.code, 0, "three tries with the real Claude Code", r.stderr .. r.stdout)
T.like(r.stdout, "try 2: ok%s+score 2 .- rolled back to try 1", "the regressing try 2 is rolled back")
local h = store.open()
local run = h:query("SELECT * FROM evolve_runs ORDER BY started_at DESC LIMIT 1")[1]
T.is(run.status .. " " .. run.best_seq, "done 3", "the run is done, try 3 the best")
local tries = h:query("SELECT * FROM tries WHERE run_id = ? ORDER BY seq", run.id)
local got = {}
for _, t in ipairs(tries) do got[#got + 1] = t.seq .. "=" .. tostring(t.score) end
T.is(table.concat(got, " "), "0=1.0 1=5.0 2=2.0 3=7.0", "each try scored by the evaluator")
T.is(T.read(work .. "/value.txt"), "value=7\n", "the workspace ends at the best try")
local turns = require("procy.turns").list(tries[2].session_id)
T.is(#turns, 3, "one agent turn per try")
T.is(turns[2].source .. " " .. turns[2].status, "proxy done", "a proxy turn, ended exactly")
T.is(turns[2].prompt, edit(5, 2), "its exact prompt")
local names = {}
for _, tool in ipairs(turns[3].tools) do names[#names + 1] = tool.name .. (tool.is_error and "!" or "") end
T.is(table.concat(names, " "), "Read Edit", "its tool calls: Read, then Edit (accepted without asking)")
T.is(git("show", ("refs/procy/%s/2:value.txt"):format(run.id)), "value=2", "refs/procy/RUN/2 holds try 2")
T.is(git("rev-parse", "HEAD"), head, "the person's HEAD untouched")
T.is(git("symbolic-ref", "HEAD"), "refs/heads/main", "their branch untouched")
T.ok(T.read(work .. "/.git/index") == index, "their index untouched")
T.is(git("diff", "--cached", "--name-only"), "mine.txt", "their staged file still staged")
m.close()

-- the agent dies between tries (its evaluator kills it, the second time it
-- runs): the next try gets a restarted agent that resumes its session
T.write(work .. "/value.txt", "value=1\n")
T.write(work .. "/killer.sh", [[
n=$(cat .git/procy-test-evals 2>/dev/null || echo 0); n=$((n+1)); echo $n > .git/procy-test-evals
if test $n = 2; then
  for d in /proc/[0-9]*; do
    if test "$(readlink $d/cwd)" = "$PWD" && tr '\0' ' ' < $d/cmdline 2>/dev/null | grep -q -- '-p --input-format'; then
      kill -9 ${d#/proc/}
    fi
  done
fi
echo "{\"value\": $(sed -n s/^value=//p value.txt)}"
]])
m = fakemodel.start { edit(1, 4), edit(4, 6) }
p = assert(proc.spawn({ T.bin, "--model-url", m.url, "run", "recipes/evolve.lua", "--task", "raise the value",
  "--iterations", "2", "--agent", "claude", "--evaluator", "killer.sh" }, { cwd = work, env = env }))
r = assert(p:wait(180))
m.close()
T.is(r.code, 0, "a run whose agent dies goes on", r.stderr .. r.stdout)
T.like(r.stdout, "try 1: ok%s+score 4.-restarting it, resuming its session.-try 2: ok%s+score 6",
  "the next try ran on a restarted agent")
local run2 = h:query("SELECT * FROM evolve_runs ORDER BY started_at DESC LIMIT 1")[1]
local t2 = h:query("SELECT * FROM tries WHERE run_id = ? AND seq = 2", run2.id)[1]
local list = require("procy.turns").list(t2.session_id)
local open_turns = 0
for _, t in ipairs(list) do open_turns = open_turns + (t.status == "running" and 1 or 0) end
T.ok(open_turns == 0 and list[#list].status == "done" and list[#list].prompt == edit(4, 6) and t2.turn_seq == #list,
  "in the same session: try 2's turn is its last, done (a prompt the dead agent got is an error turn before it)",
  #list .. " turns")

-- recipes/eval_generate.lua (what !eval generate runs): the agent writes the evaluator
local function generate(desc)
  local g = assert(proc.spawn({ T.bin, "run", "recipes/eval_generate.lua", "--file", "gen_eval.sh", "--agent", "claude",
    desc }, { cwd = work, env = env }))
  return assert(g:wait(120))
end
r = generate("nothing to write here")
T.is(r.code, 1, "eval generate: an agent that writes nothing")
T.like(r.stderr, "the agent did not write .*gen_eval.sh", "is told so")
local script = '# METRICS_SCHEMA = [{"name": "lines", "goal": "maximize"}]\necho "{\\"lines\\": $(wc -l < value.txt)}"\n'
r = generate("count the lines TOOL:write:" .. work .. "/gen_eval.sh:" .. b64(script))
T.is(r.code, 0, "eval generate: the agent writes an evaluator to the contract", r.stderr)
T.like(r.stdout, "registered gen_eval.sh %(bash gen_eval.sh%).-lines%s+1%s+maximize", "it ran once; its metrics")
local ev = require("procy.evaluator").current(work)
T.is(ev.name .. " " .. ev.created_by, "gen_eval.sh agent", "and it is the project's evaluator now")
local prompt = h:query("SELECT prompt FROM turns WHERE prompt LIKE 'Write an evaluator%' ORDER BY id DESC LIMIT 1")[1]
T.like(prompt and prompt.prompt or "", "METRICS_SCHEMA", "the prompt gives the contract")
T.like(prompt and prompt.prompt or "", "gen_eval.sh %(a new file%)", "for a new file")

-- the working evaluator is never replaced without the person's word
local turns_before = h:query("SELECT count(*) AS n FROM turns")[1].n
r = generate("count the words TOOL:write:" .. work .. "/gen_eval.sh:" .. b64("echo '{\"words\": 1}'\n"))
T.is(r.code, 1, "eval generate onto the project's evaluator: refused")
T.like(r.stderr, "gen_eval.sh is already there %(the project's evaluator%).-%-%-file NEW_NAME.-%-%-force", "saying how to go on")
T.is(T.read(work .. "/gen_eval.sh"), script, "the evaluator is as it was")
T.is(h:query("SELECT count(*) AS n FROM turns")[1].n, turns_before, "and the agent was never asked")
local g = assert(proc.spawn({ T.bin, "run", "recipes/eval_generate.lua", "--file", "gen_eval.sh", "--force", "--agent", "claude",
  "count the lines again TOOL:write:" .. work .. "/gen_eval.sh:" .. b64(script .. "# v2\n") }, { cwd = work, env = env }))
r = assert(g:wait(120))
T.is(r.code, 0, "with --force the agent replaces it", r.stderr)
prompt = h:query("SELECT prompt FROM turns WHERE prompt LIKE 'Write an evaluator%' ORDER BY id DESC LIMIT 1")[1]
T.like(prompt and prompt.prompt or "", "replace the file that is there", "and is told it replaces one")
T.done()
