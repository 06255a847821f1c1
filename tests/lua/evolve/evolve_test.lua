-- The evolve loop's parts and the loop itself, with an instant agent (an
-- exec profile: a shell that writes the number the prompt names), a fake
-- OpenAI-compatible proxy model served by this test, and real evaluators,
-- git, SQLite and subprocesses: procy.model (retries, reasoning stripped,
-- recorded), evaluators (contract, schema, garbage, timeout), objectives,
-- snapshots under private refs, `procy run recipes/evolve.lua` with a
-- regressing try rolled back, resume, a dead proxy model, a project's own
-- copy of the recipe.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local fs = require "procy.fs"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"
local fakemodel = require "lib.fakemodel"

local dir = T.tmpdir()
local db_path = dir .. "/rec.db"

local git = T.git

-- a project: value.txt holds a number the evaluator reports
local function project(name, extra)
  local p = dir .. "/" .. name
  fs.mkdir(p)
  git(p, "init", "-q", "-b", "main")
  T.write(p .. "/value.txt", "1")
  T.write(p .. "/notes.txt", "notes\n")
  T.write(p .. "/.gitignore", "cache/\n")
  T.write(p .. "/eval.sh", [[
# METRICS_SCHEMA = [{"name": "value", "goal": "maximize"}, {"name": "size", "goal": "minimize"}]
v=$(cat value.txt)
echo "measuring $v" >&2
echo "not json"
echo "{\"value\": $v, \"size\": 3, \"label\": \"x\"}"
]])
  git(p, "add", "-A")
  git(p, "commit", "-q", "-m", "start")
  T.write(p .. "/procy.lua", ([[
return {
  db = %q,
  agents = {
    setter = {
      headless = "exec",
      -- the prompt is $1 of a fixed script: data never becomes shell text
      exec = function(ctx, prompt)
        return { "sh", "-c", 'v=$(printf %%s "$1" | sed -n "s/.*SET \\([0-9.]*\\).*/\\1/p"); ' ..
          '[ -n "$v" ] && printf %%s "$v" > value.txt; echo "set $v"', "sh", prompt }
      end,
      parse = function() return nil end,
    },
    -- one that does nothing at all
    idle = { headless = "exec", parse = function() return nil end, exec = function() return { "true" } end },
    -- one that says where it works, then works on and on
    sleeper = { headless = "exec", parse = function() return nil end,
      exec = function() return { "sh", "-c", 'echo "$$ $PWD" >> "$STARTED"; exec sleep 60' } end },
  },
  evolve = { patience = 0 },
  model = { backoff = 0.05 },
  %s
}
]]):format(db_path, extra or ""))
  return p
end

assert(config.load { config = T.write(dir .. "/procy.lua", ("return { db = %q }"):format(db_path)) })
local h = assert(store.open())

-- ---- procy.model ---------------------------------------------------------------------------
local model = require "procy.model"
T.is(model.strip("<think>a\nb</think>\n  the prompt "), "the prompt", "reasoning in <think> is stripped")
T.is(model.strip("half a thought</think>answer"), "answer", "and a reasoning whose opening the server dropped")
T.is(model.strip("answer <think>never closed"), "answer", "and one never closed")
T.is(select(1, model.endpoint("http://h:1/v1", "openai")), "http://h:1/v1/chat/completions", "a /v1 base URL is completed")
T.is(select(1, model.endpoint("http://h:1/x/v1/messages", "anthropic")), "http://h:1/x/v1/messages", "a full one is kept")

local m = fakemodel.start { "<think>let me see</think>SET 5 please", { status = 503 }, { status = 429, retry_after = 0 },
  "after two failures", "streamed answer" }
local text, info = model.chat({ { role = "system", content = "sys" }, { role = "user", content = "hi" } },
  { url = m.url, model = "qwen", key = "sk-secret-key-1234567890abcdef" })
T.is(text, "SET 5 please", "chat: the reply without its reasoning")
T.is(info.raw, "<think>let me see</think>SET 5 please", "info.raw keeps it")
T.is(m.requests[1].model .. " " .. m.requests[1].messages[1].role, "qwen system", "the model and the messages were sent")
local row = h:query("SELECT * FROM api_calls WHERE id = ?", info.call)[1]
T.is(row and row.role, "proxy-model", "the call is recorded as role proxy-model")
T.is(row and row.input_tokens .. "/" .. row.output_tokens, "10/5", "with its usage")
T.ok(row and not row.req_headers:find("sk-secret", 1, true), "and the key redacted", row and row.req_headers)
local t0 = core.now()
text, info = model.chat({ { role = "user", content = "again" } }, { url = m.url, backoff = 0.05 })
T.is(text, "after two failures", "503 and 429 are retried")
T.is(info.attempts, 3, "three attempts")
T.ok(core.now() - t0 < 2, "with short backoff waits (retry-after: 0 honoured)")
text = model.chat({ { role = "user", content = "s" } }, { url = m.url, stream = true })
T.is(text, "streamed answer", "a streamed answer is put together")
m.close()
local n0 = h:query("SELECT count(*) AS n FROM api_calls WHERE role = 'proxy-model'")[1].n
local nothing, err, code = model.chat({ { role = "user", content = "x" } }, { url = m.url, retries = 2, backoff = 0.01 })
T.ok(nothing == nil and code == "ECONNREFUSED", "a dead model: the failure after the retries", err)
T.like(err, "after 3 attempts", "which says how often it tried")
T.is(h:query("SELECT count(*) AS n FROM api_calls WHERE role = 'proxy-model'")[1].n - n0, 3, "each attempt recorded")
nothing, err = model.chat({ { role = "user", content = "x" } }, { url = "" })
T.like(err, "model = {", "no model configured: how to configure one")

-- the Anthropic API, through the fake upstream
local up = require("lib.fake").start(dir .. "/fake")
text = model.chat({ { role = "system", content = "be brief" }, { role = "user", content = "hello there" } },
  { url = up.url, api = "anthropic", model = "claude-x" })
T.like(text, "^FAKE: hello! you said: hello there", "api = anthropic: /v1/messages")
up.proc:kill()

-- ---- evaluators ----------------------------------------------------------------------------
local evaluator = require "procy.evaluator"
local p1 = project("p1")
local ev = assert(evaluator.register { cwd = p1, path = "eval.sh" })
T.is(table.concat(ev.argv, " "), "bash eval.sh", "a .sh script runs with bash")
T.is(ev.schema.declared and ev.schema.metrics[1].name .. ":" .. ev.schema.metrics[2].goal, "value:minimize",
  "METRICS_SCHEMA read from the script, in order")
local r = evaluator.run(ev, { session = nil, run = "r1", try = 2, files_changed = { "a.txt", "b c.txt" } })
T.is(r.status, "ok", "a run")
T.is(json.encode(r.metrics, { sort = true }), '{"size":3,"value":1}', "the last JSON line, numbers only")
T.like(r.stderr_tail, "measuring 1", "stderr kept as feedback")
T.is(evaluator.current(p1).id, ev.id, "the registered evaluator is the directory's")
T.write(p1 .. "/env.sh", [[echo "{\"try\": $PROCY_TRY, \"files\": $(printf '%s' "$PROCY_FILES_CHANGED" | wc -l), \"has_db\": $([ -n "$PROCY_DB" ] && echo 1 || echo 0)}"]])
local ev2 = assert(evaluator.register { cwd = p1, path = "env.sh", name = "env" })
r = evaluator.run(ev2, { try = 4, files_changed = { "a", "b", "c" } })
T.is(json.encode(r.metrics, { sort = true }), '{"files":2,"has_db":1,"try":4}', "PROCY_TRY, PROCY_FILES_CHANGED, PROCY_DB")
T.is(evaluator.current(p1).name, "env", "the newest registration is the one used")
T.write(p1 .. "/garbage.sh", "echo 'Traceback: something broke'; echo '{not json'")
r = evaluator.run(assert(evaluator.register { cwd = p1, path = "garbage.sh" }), {})
T.is(r.status, "no-metrics", "garbage output: no metrics")
T.like(evaluator.feedback(r), "Traceback: something broke", "and the output is the feedback")
T.write(p1 .. "/slow.sh", "sh -c 'sleep 30' & echo $! > grandchild.pid; sleep 30")
t0 = core.now()
r = evaluator.run(assert(evaluator.register { cwd = p1, path = "slow.sh" }), { timeout = 0.5 })
T.is(r.status, "timeout", "a timeout")
T.ok(core.now() - t0 < 5, "is kept")
local gpid = tonumber(T.read(p1 .. "/grandchild.pid"))
T.ok(gpid and T.gone(gpid, 3), "and its grandchild is killed too")
T.write(p1 .. "/ev.lua", [[
return function(ctx)
  print("lua evaluator in " .. ctx.cwd)
  local f = io.open(ctx.cwd .. "/value.txt")
  local v = tonumber(f:read("a")) f:close()
  return { value = v * 10, try = ctx.try }
end]])
r = evaluator.run(assert(evaluator.register { cwd = p1, path = "ev.lua" }), { try = 3 })
T.is(r.status .. " " .. json.encode(r.metrics, { sort = true }), 'ok {"try":3,"value":10}', "a Lua evaluator recipe")
T.like(r.stdout_tail, "lua evaluator in", "its print is its output")
-- the example evaluator recipe: a project's tests, TAP or a summary line
T.write(p1 .. "/t.sh", "echo 'ok 1 - a'; echo 'not ok 2 - b'; echo 'ok 3 - c'")
local tests_ev = assert(evaluator.register { cwd = p1, path = T.src .. "/examples/evaluators/tests.lua" })
r = evaluator.run(tests_ev, { test_cmd = "sh t.sh" })
T.is(r.status .. " " .. r.metrics.passed .. " " .. r.metrics.failed, "ok 2 1", "examples/evaluators/tests.lua counts TAP lines",
  tostring(r.error))
T.write(p1 .. "/t.sh", "echo 'noise'")
r = evaluator.run(tests_ev, { test_cmd = "sh t.sh" })
T.is(r.status, "error", "no results: an error")
T.like(r.error, "no test results", "that says so")
T.is(#evaluator.schema_of("METRICS_SCHEMA = [\n {'name': 'qps', 'goal': 'maximize'},\n {'name': 'build_s', 'goal': 'minimize'},\n]"),
  2, "a Python literal with single quotes and a trailing comma")
T.is(evaluator.schema_of('METRICS_SCHEMA = {"latency_ms": "min", "qps": "max"}')[1].goal, "minimize", "or a map")
T.is(select(3, evaluator.register { cwd = p1, path = "missing.py" }), "ENOENT", "a missing evaluator: ENOENT")

-- ---- objectives ----------------------------------------------------------------------------
local objective = require "procy.objective"
local o = assert(objective.resolve { maximize = "qps", subject_to = { recall_at_10 = ">= 0.95" } })
T.is(o.text, "maximize qps subject to recall_at_10 >= 0.95", "an objective")
local a1 = objective.score(o, { qps = 100, recall_at_10 = 0.97 })
local a2 = objective.score(o, { qps = 500, recall_at_10 = 0.90 })
local a3 = objective.score(o, { qps = 120, recall_at_10 = 0.96 })
T.ok(a1.feasible and not a2.feasible, "a failed constraint makes a try infeasible")
T.like(a2.why, "recall_at_10 = 0.9, needs >= 0.95", "and says why")
T.ok(objective.better(o, a1, a2) and objective.better(o, a3, a1), "feasible beats infeasible; then the metric")
T.ok(not objective.worse(o, objective.score(o, { qps = 99, recall_at_10 = 1 }), a1, 0.02), "within the tolerance")
T.ok(objective.worse(o, objective.score(o, { qps = 90, recall_at_10 = 1 }), a1, 0.02), "beyond it")
local om = assert(objective.resolve { minimize = "t" })
T.ok(objective.better(om, objective.score(om, { t = 1 }), objective.score(om, { t = 2 })), "minimize")
T.is(select(2, objective.resolve({}, { declared = false, metrics = { { name = "a" }, { name = "b" } } })):match("EOBJECTIVE"),
  "EOBJECTIVE", "several metrics and no objective: an error, not a guess")
T.is(objective.resolve({}, { declared = true, metrics = { { name = "b", goal = "minimize" }, { name = "a" } } }).text,
  "minimize b", "a declared schema: its first metric")
T.like(select(2, objective.resolve { maximize = "x", subject_to = { y = "about 3" } }), "write \">= N\"", "a bad constraint")

-- ---- snapshots -----------------------------------------------------------------------------
local snapshot = require "procy.snapshot"
local p2 = project("p2")
fs.mkdir(p2 .. "/cache")
T.write(p2 .. "/cache/big.bin", "ignored")
T.write(p2 .. "/notes.txt", "staged by the person\n")
git(p2, "add", "notes.txt")
local head = git(p2, "rev-parse", "HEAD")
local index_before = T.read(p2 .. "/.git/index")
local repo = assert(snapshot.open(p2))
local c0 = assert(repo:take("refs/procy/t/0", "start"))
T.write(p2 .. "/value.txt", "2")
fs.mkdir(p2 .. "/new/deep")
T.write(p2 .. "/new/deep/file.txt", "added")
local c1 = assert(repo:take("refs/procy/t/1", "one", c0))
local files = {}
for _, c in ipairs(repo:changes(c0, c1)) do files[#files + 1] = c.status .. " " .. c.path end
T.is(table.concat(files, ", "), "A new/deep/file.txt, M value.txt", "changes between snapshots")
T.is(git(p2, "show", "refs/procy/t/1:cache/big.bin"):match("fatal") or "", "", "ignored files are not in it")
T.ok(git(p2, "ls-tree", "-r", "--name-only", "refs/procy/t/1"):find("cache/", 1, true) == nil, ".gitignore honoured")
local done = assert(repo:restore(c1, c0))
T.is(done.written .. " " .. done.removed, "1 1", "restore writes what differs and removes what was added")
T.is(T.read(p2 .. "/value.txt"), "1", "the file is back")
T.ok(not fs.stat(p2 .. "/new"), "the directories the removal emptied are gone")
T.is(git(p2, "rev-parse", "HEAD"), head, "HEAD untouched")
T.is(git(p2, "symbolic-ref", "HEAD"), "refs/heads/main", "the branch untouched")
T.ok(T.read(p2 .. "/.git/index") == index_before, "the index file untouched, byte for byte")
T.is(git(p2, "diff", "--cached", "--name-only"), "notes.txt", "what the person staged stays staged")
T.is(T.read(p2 .. "/cache/big.bin"), "ignored", "ignored files untouched")
T.is(git(p2, "rev-parse", "refs/procy/t/1^"), c0, "a snapshot's parent is the one given")
-- procy stopped mid-snapshot: its index file goes with the task; one a
-- killed procy left goes when the next opens the repository
local function index_files()
  local n = {}
  for _, f in ipairs(fs.dir(p2 .. "/.git") or {}) do if f:match("^procy%-index") then n[#n + 1] = f end end
  return n
end
local mid = core.spawn(function() return repo:with_index(function() core.sleep(30) end) end)
core.sleep(0.1)
T.is(#index_files(), 1, "(a snapshot under way has its own index file)")
core.cancel(mid)
T.is(#index_files(), 0, "a snapshot's task cancelled: its index file is gone")
local dead = assert(proc.spawn({ "true" }))
local dead_pid = dead:pid()
dead:wait()
local stale = { "procy-index-" .. dead_pid .. "-abcdef", "procy-index-" .. dead_pid .. "-abcdef.lock", "procy-index-0a1b2c" }
for _, f in ipairs(stale) do T.write(p2 .. "/.git/" .. f, "left by a killed procy") end
assert(snapshot.open(p2))
T.is(#index_files(), 3, "a fresh one is left alone (it could be a snapshot under way, in another pid namespace)")
for _, f in ipairs(stale) do proc.run { "touch", "-d", "20 minutes ago", p2 .. "/.git/" .. f } end
assert(snapshot.open(p2))
T.is(#index_files(), 0, "ones a dead procy left, ten minutes untouched, go when the repository is opened next (the older kind too)")
local plain = dir .. "/plain"
fs.mkdir(plain)
T.write(plain .. "/a.txt", "a")
local prepo = assert(snapshot.open(plain))
local pc = assert(prepo:take("refs/procy/x/0", "plain"))
T.ok(prepo.private and not fs.stat(plain .. "/.git"), "a directory without git gets a private repository elsewhere")
T.write(plain .. "/a.txt", "changed")
local pc2 = assert(prepo:take("refs/procy/x/1", "plain", pc))
assert(prepo:restore(pc2, pc))
T.is(T.read(plain .. "/a.txt"), "a", "and restores from it")

-- ---- the loop: procy run recipes/evolve.lua ------------------------------------------------
local function evolve_run(p, m, args, env)
  local argv = { T.bin, "--model-url", m.url, "run", "recipes/evolve.lua" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local e = { PROCY_LOG = "warn" }
  for k, v in pairs(env or {}) do e[k] = v end
  local sp = assert(proc.spawn(argv, { cwd = p, env = e }))
  return assert(sp:wait(60))
end

local p3 = project("p3")
T.write(p3 .. "/untracked-by-person.txt", "mine")
fs.mkdir(p3 .. "/cache")
T.write(p3 .. "/cache/x", "ignored")
T.write(p3 .. "/notes.txt", "staged\n")
git(p3, "add", "notes.txt")
local head3 = git(p3, "rev-parse", "HEAD")
local index3 = T.read(p3 .. "/.git/index")
m = fakemodel.start { "SET 5", "<think>lower it</think>SET 2", "SET 7" }
r = evolve_run(p3, m, { "--task", "make the value big", "--iterations", "3", "--agent", "setter", "--evaluator", "eval.sh" })
T.is(r.code, 0, "procy run recipes/evolve.lua --iterations 3", r.stderr .. r.stdout)
T.like(r.stdout, "try 2: ok%s+score 2 .- rolled back to try 1", "a regressing try is rolled back")
local run = h:query("SELECT * FROM evolve_runs ORDER BY started_at DESC LIMIT 1")[1]
T.is(run and run.status .. " " .. run.best_seq .. " " .. run.task, "done 3 make the value big", "the run: done, best try 3, the pinned task")
local tries = h:query("SELECT * FROM tries WHERE run_id = ? ORDER BY seq", run.id)
local scores = {}
for _, t in ipairs(tries) do scores[#scores + 1] = t.seq .. "=" .. tostring(t.score) .. "/" .. t.status end
T.is(table.concat(scores, " "), "0=1.0/ok 1=5.0/ok 2=2.0/ok 3=7.0/ok", "four rows: the start and three scored tries")
T.is(tries[3].parent_seq .. " " .. tries[4].parent_seq, "1 1", "after the rollback try 3 starts from try 1")
T.is(tries[2].prompt .. "|" .. tries[3].prompt, "SET 5|SET 2", "each try's prompt, reasoning stripped")
T.is(T.read(p3 .. "/value.txt"), "7", "the workspace holds the best try")
local refs = git(p3, "for-each-ref", "--format=%(refname)", "refs/procy/" .. run.id)
T.is(select(2, refs:gsub("\n", "")) + 1, 4, "private refs refs/procy/RUN/0..3", refs)
T.is(git(p3, "show", "refs/procy/" .. run.id .. "/2:value.txt"), "2", "each snapshot holds its try")
T.is(git(p3, "rev-parse", "HEAD"), head3, "the person's HEAD untouched")
T.is(git(p3, "symbolic-ref", "HEAD"), "refs/heads/main", "their branch untouched")
T.ok(T.read(p3 .. "/.git/index") == index3, "their index untouched")
T.is(T.read(p3 .. "/untracked-by-person.txt") .. T.read(p3 .. "/cache/x"), "mineignored", "their other files untouched")
T.ok(tries[2].turn_seq and tries[2].session_id, "each try knows its turn")
local msg = m.requests[3].messages[2].content
T.like(msg, "^Task %(pinned%):\nmake the value big", "the proxy model sees the pinned task, not the last prompt")
T.like(msg, "#2 %[ok, rolled back to try 1%] score=2 size=3, value=2", "and the tries with their scores and fate")
T.like(msg, "Best so far: try 1, score 5", "and the best")
T.like(msg, "Objective: maximize value", "and the objective")
T.is(h:query("SELECT count(*) AS n FROM api_calls WHERE role = 'proxy-model' AND session_id = ?", tries[2].session_id)[1].n,
  3, "the proxy model's calls are in the run's session")
T.ok(run.recipe_sha256 and #run.recipe_sha256 == 64, "the recipe's hash is stored with the run")
T.is(tries[2].improved .. tries[3].improved .. tries[4].improved, "101", "each try says whether it became the best")
-- the run as training data: the prompt side of each row is what the proxy
-- model received for that try, byte for byte
do
  local out = dir .. "/export-p3"
  local ex = assert(proc.run({ T.bin, "train", "export", "--run", run.id, "--category", "proxy",
    "--format", "trl-kto,trl-sft", "-o", out }, { cwd = p3 }))
  T.is(ex.code, 0, "procy train export of the run", ex.stderr)
  local function jsonl(path)
    local rows = {}
    for line in (T.read(path) or ""):gmatch("[^\n]+") do rows[#rows + 1] = json.decode(line) end
    return rows
  end
  local kto = jsonl(out .. "/trl-kto.train.jsonl")
  T.is(#kto, 3, "KTO: every judged try")
  local labels, same = {}, true
  for i, row in ipairs(kto) do
    labels[i] = tostring(row.label)
    local sent = {}
    for j, mm in ipairs(m.requests[i].messages) do sent[j] = { role = mm.role, content = mm.content } end
    same = same and json.encode(row.prompt, { sort = true }) == json.encode(sent, { sort = true })
      and row.completion[1].content == tries[i + 1].prompt
  end
  T.is(table.concat(labels, " "), "true false true", "desirable when the try became the best, not when it was rolled back")
  T.ok(same, "each row's prompt is the messages the proxy model was sent, its completion the prompt it wrote")
  local sft = jsonl(out .. "/trl-sft.train.jsonl")
  T.is(#sft, 2, "SFT: the desirable ones")
  T.ok(sft[1] and sft[1].messages[#sft[1].messages].role == "assistant" and sft[1].messages[#sft[1].messages].content == "SET 5",
    "an SFT row ends with the assistant's turn: the prompt written")
  local card = json.decode(T.read(out .. "/dataset.json") or "null") or {}
  T.ok(card.formats and card.formats["trl-kto"].train == 3 and card.runs == 1 and #card.template_sha256 == 64,
    "the dataset card counts rows per format, names its sources and the template's hash")
end
m.close()

-- resume: two more tries, from the best
m = fakemodel.start { "SET 3", "SET 9" }
r = evolve_run(p3, m, { "--resume", run.id:sub(1, 6), "--more", "2" })
T.is(r.code, 0, "--resume RUN --more 2", r.stderr .. r.stdout)
tries = h:query("SELECT seq, score, parent_seq FROM tries WHERE run_id = ? ORDER BY seq", run.id)
T.is(#tries, 6, "the run goes on at try 4")
T.is(tries[6].score, 9.0, "and its new best")
T.like(m.requests[1].messages[2].content, "#3 %[ok, best%] score=7", "the resumed run remembers its tries")
T.is(T.read(p3 .. "/value.txt"), "9", "the workspace holds the new best")
m.close()

-- patience and budgets end a run early; rollback = "never" keeps a worse try
local p6 = project("p6")
m = fakemodel.start { "SET 5", "SET 4", "SET 3", "SET 2" }
r = evolve_run(p6, m, { "--task", "t", "--iterations", "4", "--agent", "setter", "--evaluator", "eval.sh", "--patience", "2" })
T.like(r.stdout, "ended %(no improvement in 2 tries%)", "--patience 2: two tries without a new best end the run", r.stdout)
run = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", p6)[1]
T.is(#h:query("SELECT 1 FROM tries WHERE run_id = ? AND seq > 0", run.id), 3, "after three tries of four")
T.is(run.status .. " " .. run.error, "done no improvement in 2 tries", "the run says why it ended")
m.close()
-- did it help? two runs side by side
do
  local p3run = h:query("SELECT id FROM evolve_runs WHERE cwd = ? ORDER BY started_at LIMIT 1", p3)[1].id
  local c = T.procy({ "runs", "--compare", p3run, run.id, "--target", "7" }, { cwd = p3 })
  T.ok(c.code == 0, "procy runs --compare RUN RUN", c.stderr .. c.stdout)
  T.like(c.stdout, "A%s+" .. p3run .. "%s+1%s+5%s+9%s+3%.0", "the first run: 5 tries, best 9, the target reached at try 3")
  T.like(c.stdout, "B%s+" .. run.id .. "%s+1%s+3%s+5%s+never", "the second never reached it")
  T.like(c.stdout, "best score so far, by try:\n%s+9 |[^\n]*A", "and the curves in one chart, the best at the top")
  h:exec("UPDATE tries SET adapter = 'procy-lora1' WHERE run_id = ?", p3run)
  c = T.procy({ "runs", "--compare", p3run, run.id, "--by", "adapter" }, { cwd = p3 })
  T.like(c.stdout, "A%s+procy%-lora1%s+1 .-B%s+%(base model%)%s+1", "--by adapter: a series per adapter", c.stdout)
  T.like(c.stdout, "tries to 5\n.-procy%-lora1%s+1%s+5%s+9%s+1%.0", "the default target: what every series reached")
end
m = fakemodel.start { "SET 5", "SET 4", "SET 3" }
r = evolve_run(p6, m, { "--task", "t", "--iterations", "3", "--agent", "setter", "--evaluator", "eval.sh", "--budget-tokens", "20" })
T.like(r.stdout, "ended %(token budget spent%)", "--budget-tokens: the proxy model's tokens count (15 a call)")
m.close()
m = fakemodel.start { "SET 5", "SET 4", "SET 3" }
r = evolve_run(p6, m, { "--task", "t", "--iterations", "3", "--agent", "setter", "--evaluator", "eval.sh", "--budget-time", "0.001" })
T.like(r.stdout, "ended %(time budget spent%)", "--budget-time: no try starts once the time is spent")
T.is(#m.requests, 0, "(the starting point's evaluation counts)")
m.close()
m = fakemodel.start { "SET 9", "SET 4" }
r = evolve_run(p6, m, { "--task", "t", "--iterations", "2", "--agent", "setter", "--evaluator", "eval.sh", "--rollback", "never" })
T.like(r.stdout, "try 2: ok%s+score 4 .- kept", "--rollback never: a worse try is kept to build on")
T.is(T.read(p6 .. "/value.txt"), "9", "but the run still ends on its best")
m.close()

-- noise: a gain within o.noise is measured again, with the best, and the
-- medians decide; with remeasure 0 it does not count. The evaluator adds
-- the next line of cache/jitter to the value.
local function noisy(name, jitter)
  local p = project(name)
  T.write(p .. "/value.txt", "100")
  T.write(p .. "/noisy.sh", [[
# METRICS_SCHEMA = [{"name": "value", "goal": "maximize"}]
j=$(head -n 1 cache/jitter); sed -i 1d cache/jitter
echo "{\"value\": $(( $(cat value.txt) + ${j:-0} ))}"
]])
  fs.mkdir(p .. "/cache")
  T.write(p .. "/cache/jitter", table.concat(jitter, "\n") .. "\n")
  return p
end
-- start 100; try 1 sets 99 but reads 102, then 99 and 100; the best
-- again 101 and 100; try 2 is 150
local p7 = noisy("p7", { 0, 3, 0, 1, 1, 0, 0 })
m = fakemodel.start { "SET 99", "SET 150" }
r = evolve_run(p7, m, { "--task", "t", "--iterations", "2", "--agent", "setter", "--evaluator", "noisy.sh" })
T.is(r.code, 0, "a run with a noisy evaluator", r.stderr .. r.stdout)
T.like(r.stdout, "try 1: ok%s+score 100 .- kept, no better than the best %(median of 3: 100 against the best's 100%)",
  "a gain within the noise is measured again, with the best, and the medians decide", r.stdout)
T.like(r.stdout, "try 2: ok%s+score 150 .- new best\n", "a gain beyond the noise counts at once")
run = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", p7)[1]
tries = h:query("SELECT seq, score FROM tries WHERE run_id = ? ORDER BY seq", run.id)
T.is(tries[1].score .. " " .. tries[2].score .. " " .. run.best_seq, "100.0 100.0 2", "each keeps its median's score")
T.is(T.read(p7 .. "/cache/jitter"), "", "seven measurements: the start, try 1, two more of each, try 2")
T.is(T.read(p7 .. "/value.txt"), "150", "the workspace is the best try's")
m.close()
-- a small gain that holds survives the second measurements
local p8 = noisy("p8", { 0, 0, 0, 0, 0, 0 })
m = fakemodel.start { "SET 104" }
r = evolve_run(p8, m, { "--task", "t", "--iterations", "1", "--agent", "setter", "--evaluator", "noisy.sh" })
T.like(r.stdout, "try 1: ok%s+score 104 .- new best %(median of 3: 104 against the best's 100%)",
  "a small gain that holds is a new best", r.stdout)
m.close()
-- remeasure 0: a gain within the noise does not count
local p9 = noisy("p9", { 0, 0 })
m = fakemodel.start { "SET 103" }
r = evolve_run(p9, m, { "--task", "t", "--iterations", "1", "--agent", "setter", "--evaluator", "noisy.sh",
  "--remeasure", "0" })
T.like(r.stdout, "try 1: ok%s+score 103 .- kept, no better than the best %(within the noise%)",
  "--remeasure 0: a gain within the noise is not progress", r.stdout)
run = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", p9)[1]
T.is(run.best_seq, nil, "the start stays the best: no try is")
m.close()

-- --parallel: bad values are refused
m = fakemodel.start {}
for _, bad in ipairs { "0", "1.5" } do
  r = evolve_run(project("pbad" .. bad:gsub("%.", "")), m, { "--task", "t", "--parallel", bad, "--agent", "setter" })
  T.ok(r.code ~= 0 and (r.stderr .. r.stdout):find("--parallel must be a whole number of at least 1", 1, true),
    "--parallel " .. bad .. " is refused", r.stderr .. r.stdout)
end
m.close()
-- in a directory that is no git repository (worktrees of the private
-- one): two batches of two, the second from the first's best
local pnogit = project("pnogit")
proc.run { "rm", "-rf", pnogit .. "/.git" }
m = fakemodel.start { "SET 3", "SET 2", "SET 7", "SET 5" }
r = evolve_run(pnogit, m, { "--task", "t", "--iterations", "4", "--parallel", "2", "--agent", "setter", "--evaluator", "eval.sh" })
T.is(r.code, 0, "--parallel 2 where there is no git repository", r.stderr .. r.stdout)
run = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", pnogit)[1]
local par = {}
for _, t in ipairs(h:query("SELECT * FROM tries WHERE run_id = ? ORDER BY seq", run.id)) do
  par[#par + 1] = ("%d<%s:%s"):format(t.seq, t.parent_seq or "-", t.score and ("%g"):format(t.score) or "-")
end
T.is(table.concat(par, " "), "0<-:1 1<0:3 2<0:2 3<1:7 4<1:5", "each batch starts from the best so far; every try scored")
T.is(run.best_seq, 3, "the best of the second batch is the run's best")
T.is(T.read(pnogit .. "/value.txt"), "7", "and it is in the workspace")
T.ok(not fs.stat(pnogit .. "/.git"), "the directory is still no repository")
m.close()
-- in a subdirectory of a repository, with an evaluator git ignores (each
-- worktree gets a copy) and an ignored directory each worktree links to
-- (`data/` ignores a directory, not the link to it: the link must stay
-- out of the tries, or judging one would put it over the person's data)
local psub = project("psub", [[evolve = { patience = 0, worktree_links = { "data" } },]])
fs.mkdir(psub .. "/sub")
fs.mkdir(psub .. "/sub/data")
T.write(psub .. "/sub/data/keep.txt", "precious")
for _, f in ipairs { "value.txt", "eval.sh" } do git(psub, "mv", f, "sub/" .. f) end
T.write(psub .. "/.gitignore", "cache/\nsub/eval.sh\nsub/data/\n")
git(psub, "rm", "-q", "--cached", "sub/eval.sh")
git(psub, "commit", "-qam", "into sub")
m = fakemodel.start { "SET 4", "SET 9" }
r = evolve_run(psub .. "/sub", m, { "--task", "t", "--iterations", "2", "--parallel", "2", "--agent", "setter",
  "--evaluator", "eval.sh" })
T.is(r.code, 0, "--parallel 2 in a subdirectory", r.stderr .. r.stdout)
T.like(r.stdout, "try 1: ok%s+score 4 .-\ntry 2: ok%s+score 9 .- new best", "both tries worked and were scored there", r.stdout)
T.is(T.read(psub .. "/sub/value.txt"), "9", "the best is in the person's subdirectory")
T.is(git(psub, "status", "--porcelain"), " M sub/value.txt\n?? procy.lua", "and nothing else changed (procy.lua is the test's)")
local dst = fs.stat(psub .. "/sub/data", true)
T.ok(dst and dst.type == "dir" and T.read(psub .. "/sub/data/keep.txt") == "precious",
  "the linked ignored directory is still the person's, untouched", dst and dst.type)
local linked = 0
for _, t in ipairs(h:query("SELECT commit_id FROM tries WHERE run_id = (SELECT id FROM evolve_runs WHERE cwd = ?"
  .. " ORDER BY started_at DESC LIMIT 1) AND seq > 0", psub .. "/sub")) do
  if (git(psub, "ls-tree", "-r", "--name-only", t.commit_id) or ""):find("sub/data", 1, true) then linked = linked + 1 end
end
T.is(linked, 0, "no try's snapshot holds the link")
m.close()

-- a try that did not win, made beside the batch's new best, does not
-- become where the run goes on: it lacks the new best's change
do
  local psib = project("psib")
  m = fakemodel.start { "SET 100", "SET 99.5", "SET 3", "SET 2" }
  r = evolve_run(psib, m, { "--task", "t", "--iterations", "4", "--parallel", "2", "--agent", "setter",
    "--evaluator", "eval.sh" })
  T.like(r.stdout, "try 2: ok%s+score 99.5 .- no better: back to try 1, of the same batch",
    "a sibling within the tolerance of the new best goes back to it", r.stdout)
  run = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", psib)[1]
  local ps = {}
  for _, t in ipairs(h:query("SELECT seq, parent_seq FROM tries WHERE run_id = ? AND seq > 2 ORDER BY seq", run.id)) do
    ps[#ps + 1] = t.seq .. "<" .. t.parent_seq
  end
  T.is(table.concat(ps, " "), "3<1 4<1", "the next batch starts from the new best")
  T.is(T.read(psib .. "/value.txt"), "100", "which ends in the workspace")
  m.close()
end

-- a project's step that raises in one try of a batch: the run ends with
-- that error, the other try judged, nothing left waiting
do
  local praise = project("praise", [[evolve = { patience = 0, ask = function(ctx, try)
    if try.seq == 1 then error("this ask broke") end
    return ctx.default.ask(ctx, try)
  end },]])
  m = fakemodel.start { "SET 4" }
  local sp = assert(proc.spawn({ T.bin, "--model-url", m.url, "run", "recipes/evolve.lua", "--task", "t", "--iterations",
    "2", "--parallel", "2", "--agent", "setter", "--evaluator", "eval.sh" }, { cwd = praise, env = { PROCY_LOG = "warn" } }))
  r = sp:wait(60)
  if not r then sp:kill("KILL") r = { code = -1, stdout = "", stderr = "still running after 60 s" } end
  T.ok(r.code == 1 and r.stdout:find("evolve stopped: try 1: ETASK: .-this ask broke"), "the run ends with the lane's error",
    r.stdout .. r.stderr)
  T.like(r.stdout, "try 2: ok%s+score 4 .- new best", "and the other try of the batch was judged", r.stdout)
  T.is(T.read(praise .. "/value.txt"), "4", "its result is in the workspace")
  T.is(select(2, git(praise, "worktree", "list", "--porcelain"):gsub("worktree ", "")), 1, "no worktree is left")
  m.close()
end

-- a prompt rejected in a batch: the tries after it are not asked
do
  local prej = project("prej", ([[evolve = { patience = 0,
    ask = function(ctx, try)
      local f = io.open(%q, "a") f:write(try.seq, "\n") f:close()
      return ctx.default.ask(ctx, try)
    end,
    gate = function(ctx, try)
      if try.seq == 1 then return nil, "EREJECTED: the person rejected the prompt", "EREJECTED" end
      return ctx.default.gate(ctx, try)
    end },]]):format(dir .. "/prej-asked"))
  m = fakemodel.start { "SET 4", "SET 5", "SET 6" }
  r = evolve_run(prej, m, { "--task", "t", "--iterations", "3", "--parallel", "3", "--agent", "setter",
    "--evaluator", "eval.sh" })
  T.ok(r.code ~= 0 and r.stdout:find("evolve stopped: try 1: EREJECTED", 1, true), "a rejected prompt stops the run",
    r.stdout .. r.stderr)
  T.is(T.read(dir .. "/prej-asked"), "1\n", "and the batch's later tries ask nothing")
  run = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", prej)[1]
  T.is(run.status, "stopped", "the run is marked stopped")
  T.is(T.read(prej .. "/value.txt"), "1", "the workspace is as it was")
  m.close()
end

-- stopped mid-batch (SIGTERM): each try's agent is stopped, the worktrees
-- are gone, the tries and the run are marked stopped
do
  local pst = project("pstop")
  local started = dir .. "/started"
  m = fakemodel.start {}
  local sp = assert(proc.spawn({ T.bin, "--model-url", m.url, "run", "recipes/evolve.lua", "--task", "t", "--iterations",
    "2", "--parallel", "2", "--agent", "sleeper", "--evaluator", "eval.sh" },
    { cwd = pst, env = { PROCY_LOG = "warn", STARTED = started } }))
  local deadline = core.now() + 30
  while core.now() < deadline and select(2, (T.read(started) or ""):gsub("\n", "")) < 2 do core.sleep(0.05) end
  local lines = {}
  for pid, where in (T.read(started) or ""):gmatch("(%d+) (%S+)") do lines[#lines + 1] = { tonumber(pid), where } end
  T.is(#lines, 2, "two agents at work at once")
  sp:kill("TERM")
  r = assert(sp:wait(30))
  T.ok(r.code ~= 0, "procy ends", r.stderr)
  local gone = true
  for _, l in ipairs(lines) do gone = gone and T.gone(l[1], 5) and not fs.stat(l[2]) and l[2] ~= pst end
  T.ok(gone, "each try's agent is stopped and its worktree removed", T.read(started))
  T.is(select(2, git(pst, "worktree", "list", "--porcelain"):gsub("worktree ", "")), 1, "git knows of no worktree left")
  run = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", pst)[1]
  local st = {}
  for _, t in ipairs(h:query("SELECT status FROM tries WHERE run_id = ? AND seq > 0 ORDER BY seq", run.id)) do
    st[#st + 1] = t.status
  end
  T.is(run.status .. ": " .. table.concat(st, " "), "stopped: stopped stopped", "the run and both tries are marked stopped")
  T.like(T.procy({ "runs", run.id }, { cwd = pst }).stdout, "^run       " .. run.id .. " %(stopped%)\n",
    "procy runs RUN says stopped once")
  -- !correct on a stopped try: its context is the messages the proxy model was given, as recorded
  local corrections = require "procy.corrections"
  local exact = 0
  for _, t in ipairs(h:query("SELECT * FROM tries WHERE run_id = ? AND seq > 0 ORDER BY seq", run.id)) do
    local turn = t.turn_seq and h:query("SELECT * FROM turns WHERE session_id = ? AND seq = ?", t.session_id, t.turn_seq)[1]
    local msgs, linked
    if turn then msgs, linked = corrections.messages(turn) end
    if msgs and linked and linked.id == t.id and t.messages
       and json.encode(msgs, { sort = true }) == json.encode(json.decode(t.messages), { sort = true }) then
      exact = exact + 1
    end
  end
  T.is(exact, 2, "each stopped try is linked to its turn, and a correction of it gets the messages the model was given")
  local t1 = h:query("SELECT * FROM tries WHERE run_id = ? AND seq = 1", run.id)[1]
  local turn1 = h:query("SELECT * FROM turns WHERE session_id = ? AND seq = ?", t1.session_id, t1.turn_seq)[1]
  h:exec("UPDATE tries SET turn_seq = NULL WHERE id = ?", t1.id) -- as an older record, or a project's act step, left it
  local _, found = corrections.messages(turn1)
  T.ok(found and found.id == t1.id, "a try never linked to its turn is still found by its prompt, so its messages are used")
  h:exec("UPDATE tries SET turn_seq = ? WHERE id = ?", t1.turn_seq, t1.id)
  T.is(T.read(pst .. "/value.txt"), "1", "the workspace is as it was")
  m.close()
  -- resumed: it goes on from where the stopped batch left it (its tries
  -- have no snapshot), still two at a time; a worktree that a killed run
  -- left registered where a lane goes is cleared first
  local left = ("%s/worktrees/%s-3/3"):format(db_path:match("^(.*)/[^/]*$"), run.id)
  git(pst, "worktree", "add", "-q", "--detach", left)
  proc.run { "rm", "-rf", left }
  m = fakemodel.start { "SET 6", "SET 8" }
  r = evolve_run(pst, m, { "--resume", run.id, "--more", "2", "--agent", "setter", "--evaluator", "eval.sh" })
  T.is(r.code, 0, "the stopped run resumes", r.stdout .. r.stderr)
  local res, sessions = {}, {}
  for _, t in ipairs(h:query("SELECT * FROM tries WHERE run_id = ? AND seq > 2 ORDER BY seq", run.id)) do
    res[#res + 1] = ("%d<%s:%s"):format(t.seq, t.parent_seq or "-", t.score and ("%g"):format(t.score) or "-")
    sessions[t.session_id or "?"] = true
  end
  T.is(table.concat(res, " "), "3<0:6 4<0:8", "two more tries from the start, both scored")
  local n = 0
  for _ in pairs(sessions) do n = n + 1 end
  T.is(n, 2, "at once, each with its agent, as the run was started (--parallel 2)")
  T.is(T.read(pst .. "/value.txt"), "8", "the best is in the workspace")
  T.is(select(2, git(pst, "worktree", "list", "--porcelain"):gsub("worktree ", "")), 1, "and no worktree is left")
  m.close()
end

-- procy runs
r = T.procy({ "runs" }, { cwd = p3 })
T.like(r.stdout, "run%s+started%s+status%s+tries%s+best%s+task\n", "procy runs: a table of runs", r.stderr)
T.like(r.stdout, "%x+%s+[%d-]+ [%d:]+%s+done%s+5%s+5%s+make the value big", "the resumed run: 5 tries, best 5")
local rid = r.stdout:match("(%x+)%s+[%d-]+ [%d:]+%s+done%s+5%s+5")
r = T.procy({ "runs", rid:sub(1, 5) }, { cwd = p3 })
T.like(r.stdout, "%s2  ok%s+2%s+%x+%s+size=3, value=2\n%s+from try 1[^\n]*\n%s+SET 2", "procy runs RUN: each try, its score, where it started and its prompt")
T.like(r.stdout, "5  ok%s+9 .-%[best%]", "and the best")
local js = json.decode(T.procy({ "runs", rid, "--json" }, { cwd = p3 }).stdout)
T.is(js and #js.tries, 6, "--json: the run with its tries")

-- evaluator garbage and a dead proxy model
local p4 = project("p4")
T.write(p4 .. "/eval.sh", [[
v=$(cat value.txt)
if [ "$v" = 4 ]; then echo "Segmentation fault (core dumped)"; exit 0; fi
echo "{\"value\": $v}"
]])
m = fakemodel.start { "SET 4", "SET 6" }
r = evolve_run(p4, m, { "--task", "t", "--iterations", "2", "--agent", "setter", "--evaluator", "eval.sh" })
T.is(r.code, 0, "an evaluator printing garbage does not stop the run", r.stderr)
run = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", p4)[1]
tries = h:query("SELECT * FROM tries WHERE run_id = ? ORDER BY seq", run.id)
T.is(tries[2].status, "eval-failed", "the try is an evaluation failure")
T.like(tries[2].feedback, "Segmentation fault", "with the output as feedback")
T.like(m.requests[2].messages[2].content, "problem: .-Segmentation fault", "which the proxy model sees")
T.is(tries[3].score, 6.0, "and the loop went on")
m.close()
local dead = m.url
r = evolve_run(p4, { url = dead }, { "--task", "t", "--iterations", "2", "--agent", "setter", "--evaluator", "eval.sh" })
T.is(r.code, 1, "a dead proxy model: the run fails")
T.like(r.stderr, "ECONNREFUSED: the proxy model failed: .-after 5 attempts", "with a clear error after the retries, its code first")
run = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", p4)[1]
T.is(run.status, "error", "and a cleanly ended run")
T.like(run.error, "ECONNREFUSED", "that says why")

-- --model-url given to the recipe itself keeps the rest of the model setting (its backoff here)
t0 = core.now()
r = T.procy({ "run", "recipes/evolve.lua", "--model-url", dead, "--task", "t", "--agent", "setter", "--evaluator", "eval.sh" },
  { cwd = p4, env = { PROCY_LOG = "warn" } })
T.like(r.stderr, "ECONNREFUSED.-after 5 attempts", "the recipe's own --model-url")
T.ok(core.now() - t0 < 5, "with the project's backoff kept")

-- no model, no evaluator, no task
r = T.procy({ "run", "recipes/evolve.lua", "--task", "t", "--policy", "model" }, { cwd = p4, env = { PROCY_LOG = "warn" } })
T.like(r.stderr, "no proxy model is configured: set model = {.-%-%-policy agent", "--policy model, no model: how to configure one, or go without")
local p5 = project("p5")
os.remove(p5 .. "/eval.sh")
r = T.procy({ "--model-url", "http://127.0.0.1:9", "run", "recipes/evolve.lua", "--task", "t" }, { cwd = p5 })
T.like(r.stderr, "no evaluator for .-!eval set PATH", "no evaluator: how to set one")
T.is(r.code, 1, "exit 1")

-- --tunnel: ssh from an argv, for as long as procy runs (a fake ssh records its arguments)
local bin = dir .. "/bin"
fs.mkdir(bin)
T.write(bin .. "/ssh", [[#!/bin/sh
printf '%s\n' "$@" > "$SSH_LOG"
echo $$ > "$SSH_LOG.pid"
case "$*" in *bad-host*) echo "ssh: Could not resolve hostname bad-host" >&2; exit 255;; esac
exec sleep 30
]])
assert(proc.run { "chmod", "+x", bin .. "/ssh" })
local tenv = { PATH = bin .. ":" .. os.getenv("PATH"), SSH_LOG = dir .. "/ssh.args" }
T.write(dir .. "/noop.lua", "return 0")
r = T.procy({ "--tunnel", "gpu-host", "--model-url", "http://127.0.0.1:18001", "run", dir .. "/noop.lua" }, { env = tenv })
T.is(r.code, 0, "--tunnel HOST: procy runs", r.stderr)
T.is(T.read(dir .. "/ssh.args"), table.concat({ "-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=30",
  "-o", "BatchMode=yes", "-L", "127.0.0.1:18001:127.0.0.1:8000", "--", "gpu-host" }, "\n") .. "\n",
  "ssh -N -L forwards the model's port, the host an argument after --")
T.ok(T.gone(tonumber(T.read(dir .. "/ssh.args.pid")), 3), "and the tunnel is stopped when procy exits")
r = T.procy({ "--tunnel", "bad-host", "run", dir .. "/noop.lua" }, { env = tenv })
T.is(r.code, 1, "a tunnel that fails")
T.like(r.stderr, "ETUNNEL: ssh to bad%-host exited with 255: ssh: Could not resolve hostname", "says why")
r = T.procy({ "--tunnel", "-oProxyCommand=x", "run", dir .. "/noop.lua" }, { env = tenv })
T.like(r.stderr, "needs a host name", "a host that looks like an option is refused")

-- recipes.flags: the one flag parser of recipes
local recipes = require "procy.recipes"
local fo, fw = recipes.flags({ "--n", "3", "word", "--yes", "--name-x", "v", "more" },
  { n = "number", yes = "boolean", ["name-x"] = "string" }, "r")
T.ok(fo and fo.n == 3 and fo.yes == true and fo.name_x == "v" and table.concat(fw, " ") == "word more",
  "recipes.flags: values, a boolean, dashes made underscores, the other words in order")
T.is(table.concat({ select(2, recipes.flags({ "--what" }, {}, "r")) }, " | "), "EINVAL: r: unknown argument '--what' | EINVAL",
  "an unknown flag is named, with its code")
T.is(select(2, recipes.flags({ "--n", "x" }, { n = "number" }, "r")), "EINVAL: r: --n needs a number", "so is a number that is none")
T.is(select(2, recipes.flags({ "--n" }, { n = "string" }, "r")), "EINVAL: r: --n needs a value", "and a missing value")

-- a project's own judge, five lines of its procy.lua: the starting point,
-- every try and every measure-again are scored by it
local p10 = project("p10", [[evolve = { patience = 0, judge = function(ctx, try)
    local m = try.result.metrics
    try.metrics, try.score, try.feasible = m, m.value * 10 - m.size, true
    try.status = "ok"
    return true
  end },]])
m = fakemodel.start { "SET 5", "SET 2" }
r = evolve_run(p10, m, { "--task", "t", "--iterations", "2", "--agent", "setter", "--evaluator", "eval.sh" })
T.is(r.code, 0, "a run with the project's judge", r.stderr .. r.stdout)
run = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", p10)[1]
tries = h:query("SELECT seq, score FROM tries WHERE run_id = ? ORDER BY seq", run.id)
scores = {}
for _, t in ipairs(tries) do scores[#scores + 1] = t.seq .. "=" .. tostring(t.score) end
T.is(table.concat(scores, " "), "0=7.0 1=47.0 2=17.0", "the project's judge scored the start and each try")
T.like(r.stdout, "try 2: ok%s+score 17 .- rolled back to try 1", "and the recipe's own keep step used its scores")
m.close()
r = T.procy({ "recipes" }, { cwd = p10 })
T.like(r.stdout, "steps: ask, gate, act, judge %(procy.lua's%), keep, report", "procy recipes names the step it replaces")
T.write(p10 .. "/procy.lua", T.read(p10 .. "/procy.lua"):gsub("judge = function", "jduge = function"))
m = fakemodel.start { "SET 5" }
r = evolve_run(p10, m, { "--task", "t", "--iterations", "1", "--agent", "setter", "--evaluator", "eval.sh" })
T.ok(r.code ~= 0 and r.stderr:find("'evolve.jduge' is not a field of 'evolve' (did you mean 'judge'?)", 1, true)
  and r.stderr:find("procy.lua:%d+:"), "a step by a name the recipe has not: procy.lua is refused where it says it, naming the step",
  r.stderr)
local steps_ok, serr = require("procy.recipes").steps({ steps = { judge = function() end }, step_names = { "judge" },
  setting = "evolve" }, { jduge = function() end })
T.ok(not steps_ok and tostring(serr):find("no step named jduge", 1, true), "and recipes.steps itself names it too", tostring(serr))
m.close()

-- after procy train deploy: the setting names the adapter; the proxy model
-- is asked for it, and each try records it
do
  local p12 = project("p12", [[model = { backoff = 0.05, adapter = "procy-lora-test" },]])
  h:exec([[INSERT INTO adapters(name, url, path, sha256, deployed_at) VALUES ('procy-lora-test', ?, '/x', ?, 1)]],
    m.url, ("ab"):rep(32))
  m.close()
  m = fakemodel.start { "SET 6" }
  h:exec("UPDATE adapters SET url = ? WHERE name = 'procy-lora-test'", m.url)
  r = evolve_run(p12, m, { "--task", "t", "--iterations", "1", "--agent", "setter", "--evaluator", "eval.sh" })
  T.is(r.code, 0, "a run after deploy", r.stderr)
  T.is(m.requests[1] and m.requests[1].model, "procy-lora-test", "its proxy-model calls ask for the adapter by name")
  local tr = h:query([[SELECT t.adapter, t.adapter_sha256 FROM tries t JOIN evolve_runs r ON r.id = t.run_id
    WHERE r.cwd = ? AND t.seq = 1]], p12)[1] or {}
  T.is((tr.adapter or "") .. " " .. (tr.adapter_sha256 or ""), "procy-lora-test " .. ("ab"):rep(32),
    "and its try records the adapter and the hash deploy took")
  m.close()
end

-- eval generation's steps too: a project's ask writes the evaluator itself,
-- the recipe's check runs it and its register makes it the project's
local p11 = project("p11", [[eval_generate = { ask = function(ctx, gen)
    local f = assert(io.open(gen.full, "w"))
    f:write('# METRICS_SCHEMA = [{"name": "value", "goal": "maximize"}]\necho "{\\"value\\": $(cat value.txt)}"\n')
    f:close()
    return true
  end },]])
r = T.procy({ "run", "recipes/eval_generate.lua", "--file", "gen.sh", "--agent", "setter",
  "the value" }, { cwd = p11, env = { PROCY_LOG = "warn" } })
T.is(r.code, 0, "eval_generate with the project's ask step", r.stderr .. r.stdout)
T.like(r.stdout, "registered gen.sh %(bash gen.sh%) as this project's evaluator", "the recipe's check and register ran")
T.like(r.stdout, "value%s+1%s+maximize", "with the metrics its run gave")
r = T.procy({ "recipes" }, { cwd = p11 })
T.like(r.stdout, "steps: ask %(procy.lua's%), check, register", "procy recipes names it")

-- a try whose agent changed no file, scored higher by a scattering
-- evaluator, is marked and never the best, measured again or not
do
  local pn = project("pnoise")
  T.write(pn .. "/noisy.sh", ([[
# METRICS_SCHEMA = [{"name": "value", "goal": "maximize"}]
n=$(cat %q 2>/dev/null || echo 0); n=$((n + 1)); echo $n > %q
echo "{\"value\": $n}"
]]):format(dir .. "/noise.count", dir .. "/noise.count"))
  git(pn, "add", "-A")
  git(pn, "commit", "-q", "-m", "noisy evaluator")
  local mn = fakemodel.start { "do nothing", "do nothing again" }
  local rn = evolve_run(pn, mn, { "--task", "t", "--iterations", "1", "--agent", "idle", "--evaluator", "noisy.sh",
    "--remeasure", "0" })
  T.is(rn.code, 0, "a run whose agent changes nothing", rn.stdout .. rn.stderr)
  T.like(rn.stdout, "try 1:.-no file changed", "the try is reported as having changed no file", rn.stdout)
  T.ok(not rn.stdout:find("new best", 1, true), "and is no new best, though it scored higher (no re-measure asked)", rn.stdout)
  local nrun = h:query("SELECT * FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", pn)[1]
  local t1 = h:query("SELECT * FROM tries WHERE run_id = ? AND seq = 1", nrun.id)[1]
  T.ok(t1.files_changed == 0 and t1.score > h:query("SELECT score FROM tries WHERE run_id = ? AND seq = 0", nrun.id)[1].score
    and nrun.best_seq ~= 1, "the record marks it (files_changed 0); its higher score did not make it the best")
  T.like(T.procy({ "runs", nrun.id }, { cwd = pn }).stdout, "  1  ok .-no file changed", "procy runs RUN marks it")
  -- with re-measuring asked for, it is not measured again: it cannot win
  rn = evolve_run(pn, mn, { "--task", "t", "--iterations", "1", "--agent", "idle", "--evaluator", "noisy.sh",
    "--remeasure", "2" })
  T.ok(rn.stdout:find("try 1:.-no file changed") and not rn.stdout:find("median of", 1, true)
    and not rn.stdout:find("new best", 1, true), "with re-measuring, an unchanged try is still no candidate", rn.stdout)
  mn.close()
end

-- the project's own copy of the recipe is the one that runs
r = T.procy({ "recipes", "copy", "evolve" }, { cwd = p5 })
T.is(r.code, 0, "procy recipes copy evolve", r.stderr)
local copy = T.read(p5 .. "/recipes/evolve.lua")
T.like(copy, "^%-%- recipes/evolve.lua", "writes the shipped source")
T.write(p5 .. "/recipes/evolve.lua", copy:gsub("function R.main%(args, cmd%)",
  'function R.main(args, cmd)\n  print("the project\'s own evolve")\n  do return 3 end', 1))
r = T.procy({ "run", "recipes/evolve.lua" }, { cwd = p5 })
T.is(r.code .. " " .. r.stdout, "3 the project's own evolve\n", "an edited copy in the project runs, no rebuild")
r = T.procy({ "recipes" }, { cwd = p5 })
T.like(r.stdout, "recipes/evolve.lua%s+this project's copy", "procy recipes says which are overridden")

T.done()
