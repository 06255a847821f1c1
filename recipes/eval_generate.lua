-- recipes/eval_generate.lua — the agent writes the project's evaluator.
--
--   !eval generate [DESC]
--   procy run recipes/eval_generate.lua [--file eval.py] [--force] [--agent claude] [--timeout S] [DESC...]
--
-- Asks the agent to write FILE to procy's evaluator contract, waits for the
-- exact end of its turn, checks the file is there and new, runs it once,
-- and registers it as the project's evaluator only if that run gave
-- metrics. Prints the metrics it found. A FILE that is already there (a
-- working evaluator, often) is never replaced without --force: name a new
-- file instead, or say --force.

local core = require "procy.core"
local agent = require "procy.agent"
local evaluator = require "procy.evaluator"
local fs = require "procy.fs"
local hash = require "procy.hash"
local turns = require "procy.turns"

local R = {}

R.contract = [[Write an evaluator script for this project at %s (%s).
What it must measure: %s

The contract procy runs it under:
- It is run from the project directory as `%s`, with no arguments, and measures the code as it is now.
- Its last line on standard output is ONE JSON object of numeric metrics, e.g. {"qps": 1234.5, "recall_at_10": 0.97}.
- Near the top it declares METRICS_SCHEMA = [{"name": "...", "goal": "maximize"}, ...] (goal "maximize" or
  "minimize"), the metric that matters most first.
- It is self-contained, deterministic where it can be (fixed seeds), finishes in under a few minutes, and exits 0.
- Progress or diagnostics go to standard error.
Write the file with your tools; do not paste the code into the chat. When it is written, answer: WROTE %s]]

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- ---- the steps: ask, check, register -------------------------------------
--
-- Each step(ctx, gen) returns true, or nil, err, code to stop. ctx: args,
-- cmd, cwd, agent, out (print), default (these steps); gen: file (as
-- given), full (its path), desc, command, and what the steps add. A
-- project replaces one in procy.lua:
--   eval_generate = { check = function(ctx, gen) ... return true end }
local steps = {}
R.steps = steps
R.setting = "eval_generate"
R.step_names = { "ask", "check", "register" }

-- ask: the agent writes the file to the contract. Sets gen.text.
function steps.ask(ctx, gen)
  local before = read(gen.full)
  local how = before and "replace the file that is there: the person asked for a new one" or "a new file"
  local seq, serr = ctx.agent:send(R.contract:format(gen.file, how, gen.desc, gen.command, gen.file), "recipe")
  if not seq then return core.wrap("the agent cannot take a prompt", serr) end
  if ctx.cmd and ctx.cmd.status then ctx.cmd.status("eval generate: the agent writes " .. gen.file .. " ...") end
  local turn, terr = ctx.agent:wait_turn { seq = seq, timeout = gen.timeout }
  if not turn then return core.wrap("the agent's turn did not end", terr) end
  if turn.status ~= "done" then return core.fail("EAGENT", "the agent's turn ended " .. turn.status) end
  gen.text = read(gen.full)
  if not gen.text or gen.text == "" then return core.fail("ENOENT", "the agent did not write " .. gen.full) end
  if before and hash.sha256(before) == hash.sha256(gen.text) then
    return core.fail("EAGENT", "the agent left " .. gen.full .. " as it was")
  end
  return true
end

-- check: one run as it will be run, before it becomes the project's
-- evaluator; it must give metrics. Sets gen.result.
function steps.check(ctx, gen)
  local trial = { cwd = ctx.cwd, kind = gen.file:match("%.lua$") and "lua" or "command", path = gen.file,
    argv = evaluator.command_for(gen.file), schema = nil }
  gen.result = evaluator.run(trial, { session = ctx.agent.session })
  if gen.result.status ~= "ok" then
    ctx.out(("%s was written but its first run failed (%s): not registered."):format(gen.file, gen.result.status))
    ctx.out(evaluator.feedback(gen.result))
    return core.fail("EEVAL", "the generated evaluator does not work yet")
  end
  return true
end

-- register: the project's evaluator now; says the metrics it found.
function steps.register(ctx, gen)
  local ev, rerr = evaluator.register { cwd = ctx.cwd, path = gen.file, name = gen.file:match("([^/]+)$"),
    created_by = "agent" }
  if not ev then return core.wrap("cannot register the evaluator", rerr) end
  ctx.out(("registered %s (%s) as this project's evaluator; it found:"):format(gen.file, gen.command))
  local names = {}
  for k in pairs(gen.result.metrics) do names[#names + 1] = k end
  table.sort(names)
  local goals = {}
  for _, m in ipairs(ev.schema and ev.schema.metrics or {}) do goals[m.name] = m.goal end
  for _, k in ipairs(names) do ctx.out(("  %-24s %-12.6g %s"):format(k, gen.result.metrics[k], goals[k] or "")) end
  return true
end

function R.main(args, cmd)
  local o, words = require("procy.recipes").flags(args, { file = "string", agent = "string", timeout = "number",
    force = "boolean" }, "eval_generate")
  if not o then return core.wrap("eval_generate [--file PATH] [--force] [--agent NAME] [--timeout SECONDS] WHAT", words, "EINVAL") end
  local st, serr = require("procy.recipes").steps(R, require("procy.config").get().eval_generate or {})
  if not st then return core.wrap("eval_generate", serr, "EINVAL") end
  local file, profile, timeout = o.file or "eval.py", o.agent, o.timeout or 600
  local cwd = (cmd and cmd.cwd) or fs.cwd()
  local full = file:sub(1, 1) == "/" and file or (cwd .. "/" .. file)
  if fs.stat(full) and not o.force then
    local is_ev = false -- registered here, or the `evaluator` setting
    for _, e in ipairs(evaluator.list(cwd)) do
      if e.path and (e.path == full or cwd .. "/" .. e.path == full) then is_ev = true end
    end
    local set = require("procy.config").get().evaluator
    if type(set) == "string" and (set == full or cwd .. "/" .. set == full) then is_ev = true end
    return core.fail("EEXIST", ("eval generate: %s is already there%s; it is not replaced without your word: "
      .. "--file NEW_NAME for a new evaluator, or --force to have the agent replace it"):format(file,
      is_ev and " (the project's evaluator)" or ""))
  end
  local a, own = agent.current(), false
  if not a then
    local err, code
    a, err, code = require("procy.evolve").open_agent(profile, cwd)
    if not a then return core.wrap("cannot start the agent", err, code) end
    own = true
  end
  local _ <close> = setmetatable({}, { __close = function() if own then a:close() end end })
  local desc = table.concat(words, " ")
  if desc == "" then
    for _, t in ipairs(turns.list(a.session)) do
      if t.source == "human" and type(t.prompt) == "string" then desc = "how well the code does this task: " .. t.prompt end
    end
  end
  if desc == "" then return core.fail("EINVAL", "eval generate needs a description of what to measure (or give the agent its task first)") end
  local ctx = { args = args, cmd = cmd, cwd = cwd, agent = a, out = cmd and cmd.print or print, steps = st,
    default = steps }
  local gen = { file = file, full = full, desc = desc,
    command = table.concat(evaluator.command_for(file), " "), timeout = timeout }
  for _, name in ipairs(R.step_names) do
    local ok, err, code = st[name](ctx, gen)
    if not ok then return nil, err or (name .. " failed"), code end
  end
  return true
end

return R
