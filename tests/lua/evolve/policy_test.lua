-- Evolve's policies: the population's selection and migration, by seed;
-- `agent` (no second model) end to end — the directive from the template,
-- the parent's snapshot in the workspace, scores recorded; `population`
-- end to end with its choices recorded; a hosted model by name against the
-- fake Anthropic API, recorded and priced; --more after a stop.
local T = require "lib.tap"
local fs = require "procy.fs"
local json = require "procy.json"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"
local population = require "procy.population"

-- ---- procy.population, deterministic ------------------------------------------------------
local function prog(seq, score, m) return { seq = seq, score = score, feasible = true, metrics = m or { v = score } } end
local progs = { prog(0, 1), prog(1, 5), prog(2, 3), prog(3, 9), prog(4, 2), prog(5, 7), prog(6, 4) }
local o = { islands = 3, migration_interval = 3 }
local a = population.select(o, progs, 7, 42, false)
local b = population.select(o, progs, 7, 42, false)
T.is(json.encode(a.parent.seq) .. a.why, json.encode(b.parent.seq) .. b.why, "the same seed and try: the same choice")
local islands = {}
for seq = 1, 6 do islands[#islands + 1] = population.select(o, progs, seq, 42, false).island end
T.is(table.concat(islands, " "), "0 1 2 0 1 2", "islands advance: try n works on island (n-1) mod 3")
local isl, migr = population.build(population.options(o), progs, 7, false)
T.ok(#migr > 0 and migr[1].after == 3, "migration every 3 tries, ring-wise", json.encode(migr))
local on1 = {}
for _, p in ipairs(isl[2]) do on1[#on1 + 1] = p.seq end
-- island 1 made tries 2 and 5; after try 3 island 0's best (try 1... or 3? 0,1,4 on island 0 → 1 is best of 0,1) came
T.like(table.concat(on1, ","), "^0,2,1", "island 1 holds its own and island 0's best (migrated after try 3)")
local draws, whys = {}, {}
for seed = 1, 200 do
  local c = population.select(o, progs, 7, seed, false)
  local kind = c.why:match("^(%a+)")
  whys[kind] = (whys[kind] or 0) + 1
  draws[#draws + 1] = c.draw
end
T.ok(whys.exploration and whys.exploitation and whys.weighted and whys.exploitation > whys.exploration
  and whys.exploitation > whys.weighted, "exploration, exploitation and rank-weighted choices, in their shares", json.encode(whys))
-- features binned by the observed range, not clamped to [0, 1]
local qps = { prog(0, 50, { qps = 50, mem = 1000 }), prog(1, 400, { qps = 400, mem = 9000 }), prog(2, 220, { qps = 220, mem = 1200 }) }
local elites, cell = population.cells(qps, { "qps", "mem" }, 10, false)
T.is(json.encode { cell[0], cell[1], cell[2] }, "[[0,0],[9,9],[4,0]]", "cells from each metric's observed range (qps 50..400)")
T.is(#elites, 3, "each cell's best is an elite")
local c = population.select({ islands = 2, inspirations = 1, exploration = 0, exploitation = 1 }, qps, 4, 7, false, { "qps", "mem" })
T.like(c.why, "^exploitation .-the elite of cell %(%d,%d%) of qps × mem", "exploitation names the cell", c.why)
T.ok(#c.inspirations == 1 and c.inspirations[1].seq ~= c.parent.seq, "an inspiration from another island, not the parent",
  json.encode(c.inspirations))
T.ok(not pcall(population.options, { exploration = 0.5, exploitation = 0.6 }), "shares over 1 are refused")
T.ok(not pcall(population.options, { migration_interval = 0 }) and not pcall(population.options, { features = "qps" }),
  "an interval of 0 and features that are no list are refused")
-- of two infeasible programs the smaller violation ranks first; the start is no inspiration
local inf = { prog(0, 1), { seq = 1, score = 9, feasible = false, violation = 0.5, metrics = {} },
  { seq = 2, score = 2, feasible = false, violation = 0.1, metrics = {} } }
T.is(population.select({ islands = 1, exploration = 0, exploitation = 1, elites = 1 }, inf, 3, 1, false).parent.seq, 0,
  "feasible first")
T.is(population.select({ islands = 1, exploration = 0, exploitation = 1, elites = 1 }, { inf[2], inf[3] }, 3, 1, false)
  .parent.seq, 2, "of two infeasible, the smaller violation (not the higher score)")
local c2 = population.select({ islands = 2, inspirations = 2 }, { prog(0, 1), prog(1, 5), prog(2, 3) }, 3, 5, false)
local ins = {}
for _, x in ipairs(c2.inspirations) do ins[#ins + 1] = x.seq end
T.ok(not table.concat(ins, " "):find("^0$") and not table.concat(ins, " "):find("%f[%d]0%f[%D]"), "the start is no inspiration",
  table.concat(ins, " "))

-- ---- end to end: a project whose agent notes what it was given ------------------------
local dir = T.tmpdir()
local db_path = dir .. "/rec.db"
local function project(name, extra)
  local p = dir .. "/" .. name
  fs.mkdir(p)
  T.git(p, "init", "-q", "-b", "main")
  T.write(p .. "/value.txt", "1")
  T.write(p .. "/eval.sh", [[
# METRICS_SCHEMA = [{"name": "value", "goal": "maximize"}]
echo "value is $(cat value.txt)" >&2
echo "timing: fine"
echo "{\"value\": $(cat value.txt)}"
]])
  T.git(p, "add", "-A")
  T.git(p, "commit", "-q", "-m", "start")
  -- the agent adds the next number of its list to value.txt, and notes the
  -- value it found and the prompt it was given
  T.write(p .. "/procy.lua", ([[
return {
  db = %q,
  agents = { adder = { headless = "exec", parse = function() return nil end,
    exec = function(ctx, prompt)
      return { "sh", "-c", 'v=$(cat value.txt); n=$(head -n 1 "$STEPS"); sed -i 1d "$STEPS"; ' ..
        'echo "$v" >> "$SEEN"; printf "%%s\n=====\n" "$1" >> "$PROMPTS"; ' ..
        '[ -n "$n" ] && echo $((v + n)) > value.txt; echo "added $n"', "sh", prompt }
    end } },
  evolve = { patience = 0 },
  %s
}
]]):format(db_path, extra or ""))
  return p
end
assert(config.load { config = T.write(dir .. "/procy.lua", ("return { db = %q }"):format(db_path)) })

local function run(p, args, steps, env)
  T.write(dir .. "/steps", table.concat(steps, "\n") .. "\n")
  for _, f in ipairs { "seen", "prompts" } do T.write(dir .. "/" .. f, "") end
  local e = { PROCY_LOG = "warn", STEPS = dir .. "/steps", SEEN = dir .. "/seen", PROMPTS = dir .. "/prompts" }
  for k, v in pairs(env or {}) do e[k] = v end
  local argv = { T.bin, "run", "recipes/evolve.lua" }
  for _, x in ipairs(args) do argv[#argv + 1] = x end
  local r = assert(assert(proc.spawn(argv, { cwd = p, env = e })):wait(120))
  -- read through a connection of its own: what the run wrote, whatever
  -- this process's own connection holds
  local rd = assert(require("procy.db").open(db_path, { migrations = false }))
  local rid = rd:query("SELECT id FROM evolve_runs WHERE cwd = ? ORDER BY started_at DESC LIMIT 1", p)[1]
  local rn, tries = rid and store.run(rid.id, rd), rid and store.tries(rid.id, rd) or {}
  rd:close()
  return r, rn, tries
end

local function prompts()
  local out = {}
  for text in T.read(dir .. "/prompts"):gmatch("(.-)\n=====\n") do out[#out + 1] = text end
  return out
end

-- agent: no model configured at all
local pa = project("pa")
local r, rn, tries = run(pa, { "--task", "raise the value", "--iterations", "3", "--agent", "adder", "--evaluator", "eval.sh" },
  { 4, -2, 3 })
T.is(r.code, 0, "evolve with no model configured runs (policy agent)", r.stderr .. r.stdout)
T.is(rn.policy, "agent", "the run's policy: agent")
local got = {}
for _, t in ipairs(tries) do got[#got + 1] = ("%d=%s/%s/%s"):format(t.seq, tostring(t.score), tostring(t.parent_seq), tostring(t.policy)) end
T.is(table.concat(got, " "), "0=1.0/nil/nil 1=5.0/0/agent 2=3.0/1/agent 3=8.0/1/agent",
  "scores recorded; each try from the best so far")
T.is(T.read(dir .. "/seen"), "1\n5\n5\n", "the agent found the parent's snapshot in the workspace (try 3: the best, 5, not try 2's 3)")
local ps = prompts()
T.like(ps[1], "^raise the value\n\nObjective: maximize value — metrics: value %(maximize%)\nEvaluator: bash eval.sh",
  "the directive: the task, the objective, the evaluator", ps[1])
T.like(ps[1], "No try has beaten the starting point yet %(score 1: value=1%)", "the best so far (none yet)")
T.like(ps[2], "Best so far: try 1, score 5 %(value=5%).-You start from try 1 %(score 5%), chosen by being the best so far",
  "the best and the parent", ps[2])
T.like(ps[2], "What the best tries changed:\n— try 1 %(score 5%): added 4\n.-value.txt | 2 %+%-.-\n%-1\n.-\n%+5",
  "what the best try changed: its diff", ps[2])
T.like(ps[2], "The evaluator on the last try:\nstderr:\nvalue is 5\nstdout:\ntiming: fine\n\n[^{]",
  "the evaluator's feedback: both tails, its metrics line left out", ps[2])
T.like(ps[3], "#2 %[ok, rolled back to try 1%] score 3 — the agent said: added %-2", "the recent tries with their verdicts and what the agent said", ps[3])
T.is(T.read(pa .. "/value.txt"), "8\n", "the workspace ends at the best")
T.like(T.procy({ "runs", rn.id }, { cwd = pa }).stdout, "policy%s+agent\n.-  2  ok .-\n%s+from try 1",
  "procy runs RUN: the policy and each try's parent")

-- the template, the project's own
local pt = project("pt", [[evolve = { template = "DO: {task} | BEST: {best} | NOPE: {nothing}" },]])
r = run(pt, { "--task", "raise it", "--iterations", "1", "--agent", "adder", "--evaluator", "eval.sh" }, { 1 })
T.is(r.code, 0, "a run with the project's template", r.stderr)
T.is(prompts()[1], "DO: raise it | BEST: No try has beaten the starting point yet (score 1: value=1). | NOPE: {nothing}",
  "its fields filled, an unknown one left as written")

-- population: choices recorded, parents from the population
local pp = project("pp", [[evolve = { patience = 0, population = { islands = 2, seed = 7, migration_interval = 2 } },]])
r, rn, tries = run(pp, { "--task", "raise the value", "--iterations", "5", "--agent", "adder", "--evaluator", "eval.sh",
  "--policy", "population" }, { 4, 2, -3, 6, 1 })
T.is(r.code, 0, "evolve --policy population", r.stderr .. r.stdout)
T.is(rn.policy, "population", "the run's policy")
local isl2, whys = {}, true
for i = 2, #tries do
  local t = tries[i]
  isl2[#isl2 + 1] = tostring(t.island)
  local sel = json.decode(t.selection or "null")
  whys = whys and type(sel) == "table" and type(sel.why) == "string" and type(sel.draw) == "number"
end
T.is(table.concat(isl2, " "), "0 1 0 1 0", "each try's island, advancing")
T.ok(whys, "each try's selection: the draw and why that parent")
local seen = {}
for v in T.read(dir .. "/seen"):gmatch("%d+") do seen[#seen + 1] = tonumber(v) end
local values = { [0] = 1 }
for i = 2, #tries do values[tries[i].seq] = tries[i].metrics and tries[i].metrics.value end
local same = #seen == 5
for i = 2, #tries do same = same and seen[i - 1] == values[tries[i].parent_seq] end
T.ok(same, "each agent found its recorded parent's snapshot in the workspace", T.read(dir .. "/seen"))
local migrated = false
for i = 2, #tries do migrated = migrated or (tries[i].selection or ""):find("migrations", 1, true) ~= nil end
T.ok(migrated, "a migration is recorded with the try after it")
-- the same seed on the same results: the same choices
local first = {}
for i = 2, #tries do first[#first + 1] = tostring(tries[i].parent_seq) end
r, rn, tries = run(pp, { "--task", "raise the value", "--iterations", "5", "--agent", "adder", "--evaluator", "eval.sh",
  "--policy", "population" }, { 4, 2, -3, 6, 1 })
local again = {}
for i = 2, #tries do again[#again + 1] = tostring(tries[i].parent_seq) end
T.ok(table.concat(first, " ") == table.concat(again, " "), "the same seed, the same parents", table.concat(first, " ")
  .. " / " .. table.concat(again, " "))

-- model, hosted by name: the fake Anthropic API through the person's key
local fake = require("lib.fake").start(dir .. "/fake")
local _f <close> = fake.proc
local pm = project("pm", ([[upstream = %q, model = "anthropic:claude-haiku-4-5",]]):format(fake.url))
r, rn, tries = run(pm, { "--task", "raise the value", "--iterations", "1", "--agent", "adder", "--evaluator", "eval.sh" },
  { 2 }, { ANTHROPIC_API_KEY = "sk-ant-person-key-0123456789" })
T.is(r.code, 0, "a hosted model by name writes the prompts", r.stderr .. r.stdout)
T.is(rn.policy .. " " .. tostring(tries[2].model), "model claude-haiku-4-5", "policy model, the hosted model named")
local rdc = assert(require("procy.db").open(db_path, { migrations = false }))
local call = rdc:query("SELECT * FROM api_calls WHERE role = 'proxy-model' ORDER BY id DESC LIMIT 1")[1] or {}
rdc:close()
T.is(tostring(call.model) .. " " .. tostring(call.path), "claude-haiku-4-5 /v1/messages", "its call recorded, Anthropic's API")
T.ok(call.cost and call.cost > 0, "and priced like the agent's", json.encode(call.cost))
T.ok(not T.read(db_path):find("sk-ant-person-key", 1, true), "the person's key is not in the record")
T.like(prompts()[1], "^FAKE:", "the agent got the model's prompt")

-- the policies side by side on one task (the newest run's: agent once,
-- population twice, model once)
local cmp = T.procy({ "runs", "--compare", "--by", "policy" }, { cwd = pm })
T.like(cmp.stdout, "policy%s+runs%s+tries%s+best", "procy runs --compare --by policy: a table", cmp.stderr)
T.ok(cmp.stdout:find("\n%u%s+agent%s+1%s+3%s") and cmp.stdout:find("\n%u%s+population%s+2%s+5%s")
  and cmp.stdout:find("\n%u%s+model%s+1%s+1%s"),
  "a series per policy, with its runs", cmp.stdout)

-- --more after a stop: N more tries, the run's last end forgotten (the
-- record changed and read through connections of their own)
local pr = project("pr")
r, rn = run(pr, { "--task", "raise", "--iterations", "2", "--agent", "adder", "--evaluator", "eval.sh" }, { 1, 1 })
do
  local w = assert(require("procy.db").open(db_path, { migrations = false }))
  w:exec("UPDATE evolve_runs SET status = 'stopped', error = 'stopped' WHERE id = ?", rn.id)
  w:exec("DELETE FROM tries WHERE run_id = ? AND seq = 2", rn.id)
  w:close()
end
r = run(pr, { "--resume", rn.id, "--more", "2", "--agent", "adder", "--evaluator", "eval.sh" }, { 1, 1, 1, 1 })
T.is(r.code, 0, "the run resumed", r.stderr .. r.stdout)
do
  local rd = assert(require("procy.db").open(db_path, { migrations = false }))
  local seqs = {}
  for _, t in ipairs(rd:query("SELECT seq FROM tries WHERE run_id = ? ORDER BY seq", rn.id)) do seqs[#seqs + 1] = t.seq end
  T.is(table.concat(seqs, " "), "0 1 2 3", "--more 2 after try 1: two more tries, not the two plus what the stop left")
  local row = rd:query("SELECT status, error FROM evolve_runs WHERE id = ?", rn.id)[1]
  T.is(row.status .. " " .. tostring(row.error), "done nil", "done, its stale error cleared")
  rd:close()
end
T.like(T.procy({ "runs" }, { cwd = pr }).stdout, rn.id .. "%s+[%d-]+ [%d:]+%s+done%s+3 ", "procy runs: done, 3 tries")

return T.done()
