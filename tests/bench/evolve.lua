-- evolve.lua TRIES — see tests/bench/evolve.
local core = require "procy.core"
local proc = require "procy.proc"
local fs = require "procy.fs"
local config = require "procy.config"

package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local measure = require "lib.measure"
local fakemodel = require "lib.fakemodel"

local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
local work = dir .. "/work"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function git(...)
  local r = assert(proc.run({ "git", ... }, { cwd = work, env = { GIT_AUTHOR_NAME = "b", GIT_AUTHOR_EMAIL = "b@b",
    GIT_COMMITTER_NAME = "b", GIT_COMMITTER_EMAIL = "b@b" } }))
  assert(r.code == 0, r.stderr)
end

return function(args)
  local n = tonumber(args[1]) or 30
  fs.mkdir(work .. "/src")
  for i = 1, 200 do write(("%s/src/f%03d.txt"):format(work, i), ("line %d\n"):format(i):rep(50)) end
  write(work .. "/value.txt", "0")
  write(work .. "/eval.sh", 'echo "{\\"value\\": $(cat value.txt)}"\n')
  git("init", "-q")
  git("add", "-A")
  git("commit", "-q", "-m", "start")
  local agent_argv = function(prompt)
    return { "sh", "-c", 'printf %s "${1#SET }" > value.txt; echo done', "sh", prompt }
  end
  write(dir .. "/procy.lua", ([[
return {
  db = %q, evaluator = %q, objective = { maximize = "value" }, evolve = { patience = 0, tolerance = 0 },
  agents = { instant = { headless = "exec", parse = function() return nil end,
    exec = function(ctx, prompt) return { "sh", "-c", 'printf %%s "${1#SET }" > value.txt; echo done', "sh", prompt } end },
    incr = { headless = "exec", parse = function() return nil end,
    exec = function() return { "sh", "-c", 'v=$(cat value.txt); echo $((v + 1)) > value.txt; echo done' } end },
    sleeper = { headless = "exec", parse = function() return nil end,
    exec = function(ctx, prompt) return { "sh", "-c", 'sleep 1; printf %%s "${1#SET }" > value.txt; echo done', "sh", prompt } end } },
}]]):format(dir .. "/rec.db", work .. "/eval.sh"))
  assert(config.load { config = dir .. "/procy.lua" })
  local m = fakemodel.start { default = function(_, i) return "SET " .. i end }
  config.set("model", { url = m.url, name = "fake" }, "bench")

  -- the fakes alone, called directly: the baselines, interleaved — with
  -- the model (the model policy's try) and without (agent, population)
  local model = require "procy.model"
  local incr = { "sh", "-c", 'v=$(cat value.txt); echo $((v + 1)) > value.txt; echo done' }
  local direct = { model = {}, none = {} }
  for i = 1, n do
    local t0 = core.now()
    local text = assert(model.chat({ { role = "user", content = "next" } }))
    assert(proc.run(agent_argv(text), { cwd = work }))
    assert(proc.run({ "sh", work .. "/eval.sh" }, { cwd = work }))
    direct.model[i] = core.now() - t0
    t0 = core.now()
    assert(proc.run(incr, { cwd = work }))
    assert(proc.run({ "sh", work .. "/eval.sh" }, { cwd = work }))
    direct.none[i] = core.now() - t0
  end
  write(work .. "/value.txt", "0")

  -- the loop, under each policy: the per-try median against its baseline
  local recipes = require "procy.recipes"
  local function evolve(args) return assert(recipes.run("recipes/evolve.lua", args)) end
  local h = require("procy.store").open()
  print(("evolve, %d tries a policy, instant fakes, a git project of 200 files"):format(n))
  print("  (a try: from one try's start to the next's; the baseline: the same fakes called directly, in the same run)")
  local total
  for _, pol in ipairs { { "model", "instant", direct.model }, { "agent", "incr", direct.none },
                         { "population", "incr", direct.none } } do
    local t0 = core.now()
    evolve { "--task", "make value big", "--iterations", tostring(n), "--agent", pol[2], "--cwd", work, "--policy", pol[1] }
    total = core.now() - t0
    local rows = h:query([[SELECT seq, started_at FROM tries WHERE run_id = (SELECT id FROM evolve_runs
      ORDER BY started_at DESC LIMIT 1) ORDER BY seq]])
    local per = {}
    for i = 3, #rows do per[#per + 1] = (rows[i].started_at - rows[i - 1].started_at) / 1e6 end
    local md, mt = measure.median(table.move(pol[3], 1, #pol[3], 1, {})), measure.median(per)
    print(("  %-10s  direct %6.1f ms   a try %6.1f ms (p90 %6.1f)   %.2fx   evolve's own %5.1f ms  (target <= 50)   run %.2f s")
      :format(pol[1], md * 1000, mt * 1000, per[math.max(1, math.ceil(#per * 0.9))] * 1000, mt / md, (mt - md) * 1000, total))
  end

  -- parallel tries: 6 tries of an agent that works 1 s, one at a time and
  -- three at once (each in a worktree of its own), the evaluator instant
  local wall = {}
  for _, k in ipairs { 1, 3 } do
    local t0 = core.now()
    evolve { "--task", "make value big", "--iterations", "6", "--agent", "sleeper", "--cwd", work,
      "--parallel", tostring(k), "--policy", "model" }
    wall[k] = core.now() - t0
  end
  print("parallel tries: 6 tries, an agent that works 1 s, the same git project")
  print(("  --parallel 1: %5.2f s    --parallel 3: %5.2f s    %.2fx faster (ideal 3x; a batch waits for its slowest)"):format(
    wall[1], wall[3], wall[1] / wall[3]))
  m.close()
  proc.run { "rm", "-rf", dir }
  return 0
end
