-- examples/text-search end to end: its evaluator to procy's contract, its
-- procy.lua's objective, and `procy run recipes/evolve.lua` on a copy of it
-- with an instant agent that puts a prepared version in place of
-- baseline.py (posting lists: faster and exact; a broken one: fast and
-- wrong, so infeasible and rolled back). The proxy model is a fake.
local T = require "lib.tap"
local json = require "procy.json"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"
local fakemodel = require "lib.fakemodel"

if not proc.run { "python3", "-c", "" } then
  print("1..0 # SKIP python3 is not installed (.ci/setup installs it)")
  return 0
end
local dir = T.tmpdir()
local r
local work = dir .. "/text-search"
assert(proc.run { "cp", "-r", T.src .. "/examples/text-search", work })
local function git(...) return (T.git(work, ...)) end
-- the walk-through's first step, as its README gives it, by a git that
-- has no identity (a fresh machine's)
local readme = T.read(T.src .. "/examples/text-search/README.md")
local step1 = assert(readme:match("\n(git init [^\n]+)\n"), "the README's git line")
local home = dir .. "/home"
assert(proc.run { "mkdir", home })
local noid = { HOME = home, XDG_CONFIG_HOME = false, GIT_CONFIG_NOSYSTEM = "1", EMAIL = false,
  GIT_AUTHOR_NAME = false, GIT_AUTHOR_EMAIL = false, GIT_COMMITTER_NAME = false, GIT_COMMITTER_EMAIL = false }
r = assert(proc.run({ "sh", "-c", step1 }, { cwd = work, env = noid }))
T.is(r.code, 0, "the walk-through's git line works with no git identity: " .. step1, r.stderr)
git("branch", "-M", "main")
local small = { EVAL_DOCS = "2000", EVAL_QUERIES = "40" }

r = assert(proc.run({ "python3", "eval.py" }, { cwd = work, env = small }))
T.is(r.code, 0, "the example's evaluator runs", r.stderr)
local metrics = json.decode(r.stdout:match("([^\n]+)\n*$"))
T.ok(metrics and metrics.recall_at_10 == 1 and metrics.qps > 0 and metrics.build_s > 0,
  "its last line: qps, recall_at_10 = 1 for the baseline, build_s", r.stdout)
T.is(git("status", "--porcelain"), "", "its cache stays out of git")

-- the example's procy.lua, plus an agent and the record for this test
local conf = T.write(dir .. "/test-procy.lua", ([[
local example = dofile(%q)
example.db = %q
example.evaluator = %q -- paths are relative to the file that sets them
example.model = { backoff = 0.05 }
example.evolve.patience = 0
example.agents = { copier = { headless = "exec", parse = function() return nil end,
  exec = function(ctx, prompt)
    return { "sh", "-c", 'f=$(printf %%s "$1" | sed -n "s/.*USE \\([a-z_.]*\\).*/\\1/p"); ' ..
      '[ -n "$f" ] && cp "$FIXTURES/$f" baseline.py; echo "used $f"', "sh", prompt }
  end },
  -- the same, but it waits (90 s at most: three worktrees are made one
  -- after another, slow on a loaded disk) until three of it are at work:
  -- run one at a time, the first would wait alone
  meeter = { headless = "exec", parse = function() return nil end,
  exec = function(ctx, prompt)
    return { "sh", "-c", 'f=$(printf %%s "$1" | sed -n "s/.*USE \\([a-z_.]*\\).*/\\1/p"); ' ..
      '[ -n "$f" ] && cp "$FIXTURES/$f" baseline.py; touch "$MEET/$$"; i=0; ' ..
      'while [ "$(ls "$MEET" | wc -l)" -lt 3 ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done; ' ..
      'echo "used $f in $(pwd) with $(ls "$MEET" | wc -l) at work"', "sh", prompt }
  end } }
return example
]]):format(work .. "/procy.lua", dir .. "/rec.db", work .. "/eval.py"))
assert(config.load { config = conf })
local ev = assert(require("procy.evaluator").current(work))
T.is(table.concat(ev.argv, " ") .. " " .. ev.schema.metrics[1].name, "python3 eval.py qps",
  "procy.lua names eval.py; its METRICS_SCHEMA is read")
T.is(require("procy.objective").resolve(config.get().objective, ev.schema).text,
  "maximize qps subject to recall_at_10 >= 0.95", "the objective of the example")

local m = fakemodel.start { "Build posting lists: USE text_search_inverted.py", "Skip scoring: USE text_search_broken.py" }
local env = { FIXTURES = T.src .. "/tests/fixtures", PROCY_LOG = "warn" }
for k, v in pairs(small) do env[k] = v end
local p = assert(proc.spawn({ T.bin, "--config", conf, "--model-url", m.url, "run", "recipes/evolve.lua",
  "--task", "make search faster, keep recall", "--iterations", "2", "--agent", "copier" }, { cwd = work, env = env }))
r = assert(p:wait(240))
T.is(r.code, 0, "evolve on the example", r.stderr .. r.stdout)
local h = store.open()
local run = h:query("SELECT * FROM evolve_runs ORDER BY started_at DESC LIMIT 1")[1]
local tries = h:query("SELECT * FROM tries WHERE run_id = ? ORDER BY seq", run.id)
T.ok(tries[2].status == "ok" and tries[2].score > tries[1].score, "posting lists: a feasible try with more qps",
  ("%s vs %s"):format(tries[2].score, tries[1].score))
T.is(tries[3].status, "infeasible", "the wrong one is infeasible")
T.like(tries[3].feedback, "recall_at_10 = [%d.]+, needs >= 0.95", "and the failed constraint is its feedback")
T.is(run.best_seq, 1, "try 1 is the best")
T.is(T.read(work .. "/baseline.py"), T.read(T.src .. "/tests/fixtures/text_search_inverted.py"),
  "baseline.py ends as the best try")
m.close()

-- --parallel 3: three tries at once, each in a worktree of its own with an
-- agent of its own, one run, judged in order, the best applied
git("checkout", "--", "baseline.py")
local before = { head = git("rev-parse", "HEAD"), branch = git("symbolic-ref", "HEAD") }
local prompts = { "Skip scoring: USE text_search_broken.py", "Build posting lists: USE text_search_inverted.py",
  "Only tidy the comments." }
local m2 = fakemodel.start(prompts)
env.MEET = dir .. "/meet"
assert(proc.run { "mkdir", env.MEET })
p = assert(proc.spawn({ T.bin, "--config", conf, "--model-url", m2.url, "run", "recipes/evolve.lua",
  -- a benchmark's evaluations must not share the CPU (--eval-parallel 1):
  -- measured three at once, each try had a third of it and the posting
  -- lists lost to the start, measured alone (seen under load)
  "--task", "make search faster, keep recall", "--iterations", "3", "--parallel", "3", "--eval-parallel", "1",
  "--agent", "meeter" },
  { cwd = work, env = env }))
r = assert(p:wait(240))
T.is(r.code, 0, "evolve --parallel 3 on the example", r.stderr .. r.stdout)
run = h:query("SELECT * FROM evolve_runs ORDER BY started_at DESC LIMIT 1")[1]
tries = h:query("SELECT * FROM tries WHERE run_id = ? ORDER BY seq", run.id)
T.is(#tries, 4, "one run: the start and three tries")
local dirs, sessions = {}, {}
for i = 2, 4 do
  local t = tries[i]
  T.is(t.parent_seq, 0, ("try %d starts from the start"):format(t.seq))
  local where, n = (t.response or ""):match("in (%S+) with (%d+) at work")
  T.ok(where and where ~= work and tonumber(n) == 3, ("try %d's agent worked in a worktree, with the two others at work"):format(t.seq),
    t.response)
  if where then dirs[where] = true end
  sessions[t.session_id or "?"] = (h:query("SELECT cwd FROM sessions WHERE id = ?", t.session_id)[1] or {}).cwd
  T.is(sessions[t.session_id or "?"], where, ("try %d's own agent session, recorded in its worktree"):format(t.seq))
end
local nd, ns = 0, 0
for _ in pairs(dirs) do nd = nd + 1 end
for _ in pairs(sessions) do ns = ns + 1 end
T.ok(nd == 3 and ns == 3, "three worktrees, three agents", ("%d, %d"):format(nd, ns))
T.is(tries[2].status, "infeasible", "the wrong one is infeasible")
T.is(tries[2].prompt, prompts[1], "each try has its prompt")
T.ok(run.best_seq == 2, "the posting lists are the best", json.encode(tries))
T.ok(tries[4].status == "ok" and tries[4].improved == 0, "a try no better is not kept", tries[4].status)
T.like(m2.requests[1].messages[2].content, "one of 3 that start together", "the proxy model is told the tries run at once")
T.like(m2.requests[3].messages[2].content, "The others were given these prompts.-\n%- Skip scoring.-\n%- Build posting lists",
  "and the prompts the others were given")
T.is(T.read(work .. "/baseline.py"), T.read(T.src .. "/tests/fixtures/text_search_inverted.py"),
  "the person's workspace ends as the best try")
T.is(git("status", "--porcelain"), " M baseline.py", "and nothing else changed in it")
T.ok(git("rev-parse", "HEAD") == before.head and git("symbolic-ref", "HEAD") == before.branch,
  "its HEAD and branch untouched")
local wl = git("worktree", "list", "--porcelain")
T.is(select(2, wl:gsub("worktree ", "")), 1, "the worktrees are gone: only the person's is left", wl)
local refs = git("for-each-ref", "--format=%(refname)", "refs/procy/" .. run.id)
T.ok(refs:find("/1\n") and refs:find("/2\n") and refs:find("/3"), "every try's snapshot is kept", refs)
m2.close()
proc.run { "rm", "-rf", dir }
T.done()
