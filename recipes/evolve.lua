-- recipes/evolve.lua — a proxy model writes the next prompt, the agent does
-- the work, an evaluator scores it, and the run keeps what works.
--
--   procy run recipes/evolve.lua --task TEXT --iterations N [--agent claude] [--evaluator PATH]
--   procy run recipes/evolve.lua --resume RUN [--more N]
--   !evolve N            (in a session: the agent you see, the task you gave it)
--
-- Options (defaults from the `evolve` setting of procy.lua): --iterations N,
-- --patience K (stop after K tries without a new best), --tolerance X (a
-- try worse than the best by more than X, relative, is rolled back),
-- --noise X (a gain of at most X, relative, may be the evaluator's
-- scatter: default 0.05), --remeasure N (such a try and the best are
-- measured N times more and their medians decide; 0: such a gain does not
-- count; default 2),
-- --rollback best|never, --budget-time S, --budget-tokens N, --approve,
-- --model-url URL, --turn-timeout S. The `evolve` setting also holds
-- agent_args (after the profile's edit_args: Claude Code gets
-- --permission-mode acceptEdits, Codex --sandbox workspace-write), history,
-- max_prompt, max_words, approve_timeout, eval_timeout.
--
-- Each try: ask the proxy model (procy.evolve.messages: the pinned task,
-- the best and recent tries with metrics and scores, evaluator feedback,
-- the agent's last answer, people's corrections), optionally let the
-- person approve or edit the prompt, send it, wait for the exact end of
-- the turn, snapshot the workspace (refs/procy/RUN/TRY), evaluate, score,
-- and restore the best snapshot when the try fell short. When the run ends
-- the workspace holds the best try.
--
-- Copy this file to your project's recipes/ (procy recipes copy evolve)
-- and change what you like: that copy is the one procy runs.

local core = require "procy.core"
local fs = require "procy.fs"
local agent = require "procy.agent"
local config = require "procy.config"
local evolve = require "procy.evolve"
local evaluator = require "procy.evaluator"
local model = require "procy.model"
local objective = require "procy.objective"
local snapshot = require "procy.snapshot"
local turns = require "procy.turns"

local R = {}

local flags = { task = "string", iterations = "number", more = "number", agent = "string", evaluator = "string",
  resume = "string", patience = "number", tolerance = "number", noise = "number", remeasure = "number",
  rollback = "string", ["budget-time"] = "number",
  ["budget-tokens"] = "number", approve = "boolean", ["model-url"] = "string", ["turn-timeout"] = "number",
  ["eval-timeout"] = "number", cwd = "string" }

-- options(args) -> o, given | nil, err: the `evolve` setting, then the
-- flags (given: the ones on the command line)
function R.options(args)
  local o, given = {}, {}
  for k, v in pairs(config.get().evolve or {}) do o[k] = v end
  local i = 1
  while i <= #args do
    local name = args[i]:match("^%-%-(.+)$")
    local kind = name and flags[name]
    if not kind then return nil, "evolve: unknown argument '" .. args[i] .. "' (" .. "see the head of recipes/evolve.lua)" end
    local key = name:gsub("%-", "_")
    if kind == "boolean" then o[key] = true
    else
      local v = args[i + 1]
      if v == nil then return nil, "evolve: " .. args[i] .. " needs a value" end
      if kind == "number" then
        v = tonumber(v)
        if not v then return nil, "evolve: " .. args[i] .. " needs a number" end
      end
      o[key] = v
      i = i + 1
    end
    given[key] = true
    i = i + 1
  end
  return o, given
end

-- The person's original prompt in a session: its newest human turn.
local function human_task(session)
  local list = turns.list(session)
  for i = #list, 1, -1 do
    if list[i].source == "human" and type(list[i].prompt) == "string" then return list[i].prompt end
  end
end

local function say(state, line)
  if state.print then state.print(line) else print(line) end
end

-- score a try from its evaluator result
local function judge(state, result)
  if result.status ~= "ok" then
    return { status = "eval-failed", feedback = evaluator.feedback(result) }
  end
  local s = objective.score(state.objective, result.metrics)
  s.metrics = result.metrics
  s.status = s.feasible and "ok" or (s.score == nil and "eval-failed" or "infeasible")
  s.feedback = s.why or (result.stderr_tail ~= "" and evaluator.feedback(result) or nil)
  return s
end

-- ---- noise: a gain the evaluator's own scatter could make is not progress

-- gain(o, t, best) -> how much t beats best, relative (0.03 is 3 %), or nil
-- when they do not compare by score (one infeasible, a score missing)
local function gain(o, t, best)
  if not (best and best.score and t.score and t.feasible and best.feasible) then return nil end
  local d = o.goal == "minimize" and best.score - t.score or t.score - best.score
  return d / math.max(math.abs(best.score), 1e-12)
end

-- the evaluator n more times on the workspace as it is; the scored runs
-- join samples
local function measure(state, seq, n, samples)
  for _ = 1, n do
    local s = judge(state, evaluator.run(state.evaluator, { session = state.agent.session, run = state.run.id,
      try = seq, iteration = seq, timeout = state.o.eval_timeout }))
    if s.score then samples[#samples + 1] = s end
  end
end

-- the sample whose score is the median (the lower middle one of an even count)
local function median(samples)
  local sorted = table.move(samples, 1, #samples, 1, {})
  table.sort(sorted, function(a, b) return a.score < b.score end)
  return sorted[(#sorted + 1) // 2]
end

-- settle(state, t, commit) -> improved, note: t beat the best by no more
-- than o.noise. With o.remeasure > 0 both are measured that many times
-- more (the best once per run: the workspace goes to its snapshot and back)
-- and the medians decide; each keeps its median's score and metrics. With
-- remeasure = 0 such a gain is not progress.
local function settle(state, t, commit)
  local o, best = state.o, state.best
  local n = o.remeasure or 2
  if n <= 0 then return false, "within the noise" end
  evolve.progress(state, "measuring again: the gain is within the noise")
  t.samples = { { score = t.score, metrics = t.metrics, feasible = t.feasible, violation = t.violation } }
  measure(state, t.seq, n, t.samples)
  if not best.samples then
    best.samples = { { score = best.score, metrics = best.metrics, feasible = best.feasible, violation = best.violation } }
    local ok, err = state.repo:restore(commit, best.commit_id)
    if not ok then return false, "the best could not be measured again: " .. tostring(err) end
    measure(state, best.seq, n, best.samples)
    ok, err = state.repo:restore(best.commit_id, commit)
    if not ok then error("evolve: the workspace did not come back from the best try: " .. tostring(err)) end
  end
  for _, x in ipairs { t, best } do
    local m = median(x.samples)
    x.score, x.metrics, x.feasible, x.violation = m.score, m.metrics, m.feasible, m.violation
    evolve.update_try(state.run.id, x.seq, { score = x.score, metrics = x.metrics, feasible = x.feasible })
  end
  local g = gain(state.objective, t, best)
  local note = ("median of %d: %.6g against the best's %.6g"):format(#t.samples, t.score, best.score)
  return g ~= nil and g > 0, note
end

-- one try: ask, (approve), send, wait, snapshot, evaluate, keep or roll back
function R.try(state)
  local o, run, a = state.o, state.run, state.agent
  local seq = state.seq
  evolve.progress(state, "asking the proxy model")
  local recent = {}
  for i = math.max(1, #state.tries - (o.history or 8) + 1), #state.tries do recent[#recent + 1] = state.tries[i] end
  local last = state.tries[#state.tries]
  local messages = evolve.messages {
    task = run.task, objective = state.objective.text, schema = state.schema, base = state.base, best = state.best,
    recent = recent, feedback = last and last.feedback, last_response = last and last.response,
    corrections = evolve.corrections { cwd = run.cwd, limit = 5 }, next_seq = seq,
    max_words = o.max_words or 200,
  }
  local prompt, info, code
  for _ = 1, 2 do -- an empty answer gets one more chance
    prompt, info, code = model.chat(messages, { url = o.model_url, session = a.session })
    if not prompt then return nil, "the proxy model failed: " .. tostring(info), code end
    if prompt ~= "" then break end
  end
  if prompt == "" then return nil, "the proxy model answered with an empty prompt twice", "EEMPTY" end
  if #prompt > (o.max_prompt or 4000) then prompt = prompt:sub(1, o.max_prompt or 4000) end
  local tokens = info.usage.input_tokens + info.usage.output_tokens
  if o.approve then
    evolve.progress(state, "waiting for approval")
    local proposed = prompt
    local edited, aerr, acode
    prompt, aerr, acode = evolve.approve(state, proposed)
    if not prompt then return nil, aerr, acode end
    edited = aerr
    if edited then
      evolve.correct { session = state.session, run = run.id, try = seq, original = proposed, corrected = prompt,
        note = "edited before it was sent", context = messages }
    end
  end
  evolve.add_try(run.id, { seq = seq, parent_seq = state.at.seq, prompt = prompt, model = info.model,
    session_id = a.session })
  evolve.progress(state, "the agent works")
  local tseq, serr, scode, turn, terr
  for attempt = 1, 2 do
    tseq, serr, scode = a:send(prompt, "proxy")
    if tseq then turn, terr = a:wait_turn { seq = tseq, timeout = o.turn_timeout } end
    -- the agent died (since the last try, or in this one): a new one,
    -- resuming its session, gets the prompt again, once
    local died = (not tseq and scode == "EPIPE") or (turn and turn.status == "error" and not a:status().running)
    if not (died and state.own_agent and attempt == 1) then break end
    evolve.progress(state, "restarting the agent")
    say(state, "the agent had exited; restarting it, resuming its session")
    local ok, rerr = a:restart { resume = true, force = true }
    if not ok then return nil, "the agent exited and did not restart: " .. tostring(rerr), "EPIPE" end
  end
  if not tseq then return nil, "the agent cannot take a prompt: " .. tostring(serr), scode end
  local t = { seq = seq, prompt = prompt, turn_seq = tseq, tokens = tokens }
  if turn then
    t.response = turn.response ~= require("procy.json").null and turn.response or nil
    t.tokens = tokens + (turn.usage.input_tokens or 0) + (turn.usage.output_tokens or 0)
      + (turn.usage.cache_creation_tokens or 0)
  end
  -- the workspace as the agent left it, whatever happened
  local commit, gerr = state.repo:take(("refs/procy/%s/%d"):format(run.id, seq),
    ("procy evolve %s try %d"):format(run.id, seq), state.at.commit)
  if not commit then return nil, "snapshot failed: " .. tostring(gerr) end
  t.commit_id = commit
  if not turn or turn.status ~= "done" then
    t.status, t.feedback = "agent-failed", "the agent's turn " .. (turn and turn.status or tostring(terr))
      .. (turn and turn.error ~= require("procy.json").null and (": " .. tostring(turn.error)) or "")
  else
    evolve.progress(state, "evaluating")
    local files = {}
    for _, c in ipairs(state.repo:changes(state.at.commit, commit) or {}) do files[#files + 1] = c.path end
    local result = evaluator.run(state.evaluator, { session = a.session, run = run.id, try = seq, iteration = seq,
      files_changed = files, timeout = o.eval_timeout })
    local s = judge(state, result)
    t.status, t.metrics, t.score, t.feasible, t.feedback = s.status, s.metrics, s.score, s.feasible, s.feedback
    t.violation, t.eval_result_id = s.violation, result.id
  end
  t.ended_at = require("procy.store").now_us()
  evolve.update_try(run.id, seq, { turn_seq = t.turn_seq, response = t.response, commit_id = t.commit_id,
    metrics = t.metrics, score = t.score, feasible = t.feasible, status = t.status, feedback = t.feedback,
    eval_result_id = t.eval_result_id, tokens = t.tokens, ended_at = t.ended_at })
  state.tries[#state.tries + 1] = t
  state.tokens = state.tokens + t.tokens
  -- keep it, or go back to the best
  local improved = t.status ~= "agent-failed" and t.status ~= "eval-failed"
    and objective.better(state.objective, t, state.best)
  local g, note = improved and gain(state.objective, t, state.best)
  if g and g <= (o.noise or 0.05) then improved, note = settle(state, t, commit) end
  local verdict
  if improved then
    state.best, state.at, state.stale = t, { seq = seq, commit = commit }, 0
    evolve.update_run(run.id, { best_seq = seq })
    verdict = "new best" .. (note and (" (" .. note .. ")") or "")
  else
    state.stale = state.stale + 1
    local fell = t.status == "agent-failed" or t.status == "eval-failed"
      or objective.worse(state.objective, t, state.best, o.tolerance)
    if o.rollback ~= "never" and fell and state.best and state.best.commit_id then
      local ok, rerr = state.repo:restore(commit, state.best.commit_id)
      if not ok then return nil, "restoring the best try failed: " .. tostring(rerr) end
      state.at = { seq = state.best.seq, commit = state.best.commit_id }
      verdict = "rolled back to " .. (state.best.seq == 0 and "the start" or ("try " .. state.best.seq))
    else
      state.at = { seq = seq, commit = commit }
      verdict = "kept" .. (note and (", no better than the best (" .. note .. ")") or "")
    end
  end
  t.verdict = not improved and verdict or nil
  say(state, ("try %d: %-11s score %-10s %s — %s"):format(seq, t.status, t.score and ("%.6g"):format(t.score) or "-",
    evolve.metrics_text(t.metrics), verdict))
  return t
end

-- a try left running when the run ends early is marked stopped
local function stop_open_try(run_id)
  local list = evolve.tries(run_id)
  local open = list[#list]
  if open and open.status == "running" then evolve.update_try(run_id, open.seq, { status = "stopped" }) end
end

-- the workspace, which is snapshot `now`, back to the best try
local function to_best(state, now)
  if state.best and state.best.commit_id and now and now ~= state.best.commit_id then
    state.repo:restore(now, state.best.commit_id)
  end
end

-- why the run stops now, or nil
local function spent(state)
  local o = state.o
  if state.seq > state.of then return "done" end
  if (o.patience or 0) > 0 and state.stale >= o.patience then
    return ("no improvement in %d tries"):format(state.stale)
  end
  if (o.budget_time or 0) > 0 and core.now() - state.started >= o.budget_time then return "time budget spent" end
  if (o.budget_tokens or 0) > 0 and state.tokens >= o.budget_tokens then return "token budget spent" end
end

-- main(args, [session]) -> true | nil, err. session: the `!` command's
-- context when run by !evolve (its agent is the person's)
function R.main(args, cmd)
  local o, given = R.options(args)
  if not o then return nil, given end
  local cwd = o.cwd or (cmd and cmd.cwd) or fs.cwd()
  local a = agent.current()
  local own_agent = false
  local state = { o = o, tries = {}, tokens = 0, stale = 0, durations = {}, started = core.now(),
    print = cmd and cmd.print, notify = cmd and (cmd.pin or cmd.status), show = cmd and cmd.show,
    approve_timeout = o.approve_timeout, session = a and a.session }
  -- the run: resumed or new
  local run, err, code
  if o.resume then
    run, err, code = evolve.run(o.resume)
    if not run then return nil, err, code end
    cwd = run.cwd
    for k, v in pairs(run.options) do if not given[k] then o[k] = v end end
    if o.more then o.iterations = (o.iterations or 0) + o.more end
  end
  -- the model, the evaluator and the objective, checked before any work
  if o.model_url then
    local m = {}
    for k, v in pairs(config.get().model or {}) do m[k] = v end
    m.url = o.model_url
    config.set("model", m, "--model-url")
  end
  if not (config.get().model or {}).url then
    local _, why = model.settings()
    return nil, why
  end
  local ev
  ev, err, code = evaluator.current(cwd, o.evaluator)
  if not ev then return nil, err, code end
  state.evaluator = ev
  local repo
  repo, err, code = snapshot.open(cwd)
  if not repo then return nil, err, code end
  state.repo = repo
  if not a then
    a, err, code = evolve.open_agent(o.agent, cwd)
    if not a then return nil, "cannot start the agent: " .. tostring(err), code end
    own_agent = true
    state.session, state.own_agent = a.session, true
  end
  state.agent = a
  local task = o.task or (run and run.task) or (cmd and human_task(a.session))
  if not task or task == "" then
    if own_agent then a:close() end
    return nil, "evolve needs a task: --task TEXT" .. (cmd and ", or give the agent your task first" or "")
  end
  local info = R.recipe or {}
  local keep = { iterations = o.iterations, patience = o.patience, tolerance = o.tolerance, noise = o.noise,
    remeasure = o.remeasure, rollback = o.rollback,
    budget_time = o.budget_time, budget_tokens = o.budget_tokens, agent = o.agent }
  if not run then
    run = evolve.new_run { session = a.session, cwd = cwd, task = task, recipe = info.path or info.name,
      recipe_sha256 = info.sha256, evaluator_id = ev.id, objective = config.get().objective, options = keep }
  else
    evolve.update_run(run.id, { status = "running", options = keep })
  end
  state.run, state.run_id, state.of = run, run.id, o.iterations or 5
  evolve.live[run.id] = state
  if cmd then evolve.session_run[a.session] = run.id end
  -- the end, however it comes: cancelled (!stop), failed or done
  local finished = false
  local _ <close> = setmetatable({}, { __close = function(_, e)
    evolve.live[run.id] = nil
    if cmd and cmd.pin then cmd.pin(nil) end -- the progress row goes with the run
    if finished then
      if own_agent then a:close() end
      return
    end
    stop_open_try(run.id)
    evolve.finish_run(run.id, e and "error" or "stopped", e and tostring(e) or "stopped")
    -- what waits (the agent's interrupt, the workspace back to the best try)
    -- runs in a task of its own: this one is ending and cannot wait
    core.spawn(function()
      if a.tracker.open then a:interrupt() end
      if own_agent then a:close() end
      if state.at then
        to_best(state, repo:take(("refs/procy/%s/stopped"):format(run.id), "procy evolve stopped", state.at.commit))
      end
    end)
  end })
  -- tries so far (a resumed run), else the starting point, evaluated
  local done = evolve.tries(run.id)
  if #done == 0 then
    evolve.progress({ run_id = run.id, seq = 0, of = state.of, durations = {}, started = state.started,
      notify = state.notify }, "evaluating the starting point")
    local base, berr = repo:take(("refs/procy/%s/0"):format(run.id), ("procy evolve %s start"):format(run.id))
    if not base then finished = true evolve.finish_run(run.id, "error", berr) return nil, berr end
    evolve.update_run(run.id, { base_commit = base })
    evolve.add_try(run.id, { seq = 0, session_id = a.session, status = "running" })
    local result = evaluator.run(ev, { session = a.session, run = run.id, try = 0, iteration = 0, timeout = o.eval_timeout })
    local t = { seq = 0, commit_id = base, status = result.status == "ok" and "ok" or "eval-failed",
      metrics = result.metrics, feedback = result.status ~= "ok" and evaluator.feedback(result) or nil }
    done = { t }
    evolve.update_try(run.id, 0, { commit_id = base, metrics = t.metrics, status = t.status, feedback = t.feedback,
      eval_result_id = result.id, ended_at = require("procy.store").now_us() })
  end
  local schema = state.evaluator.schema
  local obj, objerr = objective.resolve(config.get().objective, schema)
  if not obj then finished = true evolve.finish_run(run.id, "error", objerr) return nil, objerr end
  state.objective, state.schema = obj, schema and schema.metrics
  for _, t in ipairs(done) do
    if t.metrics then
      local s = objective.score(obj, t.metrics)
      t.score, t.feasible, t.violation = s.score, s.feasible, s.violation
    end
    if t.seq == 0 then
      state.base = t
      if t.metrics then evolve.update_try(run.id, 0, { score = t.score, feasible = t.feasible }) end
    else
      state.tries[#state.tries + 1] = t
    end
    if t.metrics and (t.status == "ok" or t.status == "infeasible") and objective.better(obj, t, state.best) then
      state.best = t
    end
  end
  state.base = state.base or done[1]
  -- the workspace starts from the best (a resumed run may have stopped elsewhere)
  local last = done[#done]
  state.at = { seq = last.seq, commit = last.commit_id }
  if state.best and last.seq ~= state.best.seq and last.commit_id and state.best.commit_id then
    to_best(state, repo:take(("refs/procy/%s/resume"):format(run.id), "procy evolve resume", last.commit_id))
    state.at = { seq = state.best.seq, commit = state.best.commit_id }
  end
  say(state, ("evolve run %s: %s\nobjective: %s\nstart: %s"):format(run.id, evolve.clip(task, 100), obj.text,
    evolve.metrics_text(state.base.metrics)))
  state.seq = (#done > 0 and done[#done].seq or 0) + 1
  local why
  while true do
    why = spent(state)
    if why then break end
    local t0 = core.now()
    local t, terr, tcode = R.try(state)
    if not t then
      finished = true
      evolve.finish_run(run.id, tcode == "EREJECTED" and "stopped" or "error", terr)
      stop_open_try(run.id)
      to_best(state, state.at.commit)
      say(state, "evolve stopped: " .. tostring(terr))
      return nil, terr
    end
    state.durations[#state.durations + 1] = core.now() - t0
    state.seq = state.seq + 1
    evolve.progress(state)
  end
  to_best(state, state.at.commit) -- the workspace ends at the best try
  finished = true
  evolve.finish_run(run.id, "done", why ~= "done" and why or nil)
  say(state, ("evolve run %s ended (%s): best %s"):format(run.id, why, state.best and state.best.seq > 0
    and ("try %d, score %.6g — %s"):format(state.best.seq, state.best.score, evolve.metrics_text(state.best.metrics))
    or "the starting point (no try beat it)"))
  return true
end

return R
