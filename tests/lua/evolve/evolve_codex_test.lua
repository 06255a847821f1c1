-- `procy run recipes/evolve.lua --agent codex`: the real Codex CLI headless
-- (`codex exec --json`, then `exec resume`), its shell tool writing the
-- file the evaluator reads, in the sandbox procy asks for
-- (workspace-write); a regressing try rolled back.
local T = require "lib.tap"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"
local agents = require "lib.agents"
local fakemodel = require "lib.fakemodel"

local w = agents.world("codex")
if not w then return agents.skip("codex") end
local _ <close> = w.fake.proc
local work = w.work
local function git(...) return (T.git(work, ...)) end
agents.value_project(work, ([[return { db = %q, openai_upstream = %q, model = { backoff = 0.05 },
  evolve = { agent_args = { "-m", "gpt-5-codex" } } }]]):format(w.dir .. "/rec.db", w.fake.url))
assert(config.load { config = work .. "/procy.lua" })

local m = fakemodel.start { "TOOL:shell[printf 'value=5\\n' > value.txt]", "TOOL:shell[printf 'value=3\\n' > value.txt]" }
local env = { PROCY_LOG = "warn" }
for k, v in pairs(w.env) do env[k] = v end
local p = assert(proc.spawn({ T.bin, "--model-url", m.url, "run", "recipes/evolve.lua", "--task", "raise the value",
  "--iterations", "2", "--agent", "codex", "--evaluator", "eval.sh" }, { cwd = work, env = env }))
local r = assert(p:wait(180))
m.close()
T.is(r.code, 0, "evolve with Codex headless", r.stderr .. r.stdout)
T.like(r.stdout, "try 1: ok%s+score 5", "try 1: Codex's shell call wrote the file (workspace-write sandbox)")
T.like(r.stdout, "try 2: ok%s+score 3 .- rolled back to try 1", "try 2 regressed and was rolled back")
T.is(T.read(work .. "/value.txt"), "value=5\n", "the workspace holds the best try")
local h = store.open()
local tries = h:query("SELECT * FROM tries WHERE run_id = (SELECT id FROM evolve_runs) ORDER BY seq")
local turns = require("procy.turns").list(tries[2].session_id)
T.is(#turns, 2, "one Codex turn per try")
T.is(turns[2].source .. " " .. turns[2].status, "proxy done", "each a proxy turn ended by turn.completed")
T.like(turns[1].tools[1] and turns[1].tools[1].input.cmd or "", "printf 'value=5", "with its shell call from the API capture")
T.done()
