-- recipes/evolve.lua — a policy writes the next prompt (procy's directive,
-- a population's choice of parent, or a proxy model), the agent does the
-- work, an evaluator scores it, and the run keeps what works.
--
--   procy run recipes/evolve.lua --task TEXT --iterations N [--agent claude] [--evaluator PATH]
--                                [--policy agent|population|model] [--model anthropic:NAME]
--   procy run recipes/evolve.lua --resume RUN [--more N]   (N tries after its last one)
--   !evolve N            (in a session: the agent you see, the task you gave it)
--   procy run recipes/evolve.lua --task TEXT --iterations 6 --parallel 3 [--eval-parallel 1]
--
-- Options (defaults from the `evolve` setting of procy.lua): --iterations N,
-- --patience K (stop after K tries without a new best), --tolerance X (a
-- try worse than the best by more than X, relative, is rolled back),
-- --noise X (a gain of at most X, relative, may be the evaluator's
-- scatter: default 0.05), --remeasure N (such a try and the best are
-- measured N times more and their medians decide; 0: such a gain does not
-- count; default 2),
-- --rollback best|never, --budget-time S, --budget-tokens N, --approve,
-- --model-url URL, --turn-timeout S, --parallel K (K tries at once, each in
-- a git worktree of its own with a headless agent of its own; default 1),
-- --eval-parallel J (at most J evaluator runs at once; default K: one for a
-- benchmark that must not share the CPU). The `evolve` setting also holds
-- worktree_links (ignored paths a try's worktree links to the person's:
-- {"node_modules", "data"}),
-- agent_args (after the profile's edit_args: Claude Code gets
-- --permission-mode acceptEdits, Codex --sandbox workspace-write), history,
-- max_prompt, max_words, approve_timeout, eval_timeout.
--
-- The policy (--policy, evolve.policy): agent when no proxy model is
-- configured, model when one is; population when asked. evolve.template
-- or template_file, population, diff_budget, trace_budget, show_best
-- shape them (see "policies" below).
--
-- Each try: ask the policy (model: procy.evolve.messages, the pinned task,
-- the best and recent tries with metrics and scores, evaluator feedback,
-- the agent's last answer, people's corrections), optionally let the
-- person approve or edit the prompt, send it, wait for the exact end of
-- the turn, snapshot the workspace (refs/procy/RUN/TRY), evaluate, score,
-- and restore the best snapshot when the try fell short. When the run ends
-- the workspace holds the best try.
--
-- With --parallel K the tries go in batches of K. Each try of a batch starts
-- from where the run is, in a worktree of its own (the person's workspace
-- is not touched meanwhile), its prompt asked knowing the batch's other
-- prompts; when all have ended they are judged in order in the person's
-- workspace, exactly as tries one at a time are (keep, report), and the
-- next batch starts from where that leaves the run. Their parent is the
-- batch's start. A worktree holds what the snapshot holds: files git
-- ignores are not there unless worktree_links names them.
--
-- A try is six steps — ask, gate, act, judge, keep, report (see "the steps
-- of a try" below) — and a project replaces any one in its procy.lua,
-- without copying this file:
--   evolve = { judge = function(ctx, try) ... return true end }
-- To change more, copy this file to your project's recipes/ (procy recipes
-- copy evolve) and change what you like: that copy is the one procy runs.

local core = require "procy.core"
local fs = require "procy.fs"
local agent = require "procy.agent"
local config = require "procy.config"
local evolve = require "procy.evolve"
local store = require "procy.store"
local evaluator = require "procy.evaluator"
local model = require "procy.model"
local objective = require "procy.objective"
local population = require "procy.population"
local snapshot = require "procy.snapshot"
local turns = require "procy.turns"

local R = {}

local flags = { task = "string", iterations = "number", more = "number", agent = "string", evaluator = "string",
  resume = "string", patience = "number", tolerance = "number", noise = "number", remeasure = "number",
  rollback = "string", ["budget-time"] = "number",
  ["budget-tokens"] = "number", approve = "boolean", ["model-url"] = "string", ["turn-timeout"] = "number",
  ["eval-timeout"] = "number", cwd = "string", parallel = "number", ["eval-parallel"] = "number",
  policy = "string", model = "string", ["template-file"] = "string" }

-- options(args) -> o, given | nil, err: the `evolve` setting, then the
-- flags (given: the ones on the command line)
function R.options(args)
  local flags_given, words = require("procy.recipes").flags(args, flags, "evolve")
  if not flags_given then return core.wrap("evolve", words .. " (see the head of recipes/evolve.lua)", "EINVAL") end
  if #words > 0 then return core.fail("EINVAL", "evolve: unknown argument '" .. words[1] .. "' (see the head of recipes/evolve.lua)") end
  local o, given = {}, {}
  for k, v in pairs(config.get().evolve or {}) do o[k] = v end
  for k, v in pairs(flags_given) do o[k], given[k] = v, true end
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
    local s = { seq = seq, result = evaluator.run(state.evaluator, { session = state.session,
      run = state.run.id, try = seq, iteration = seq, timeout = state.o.eval_timeout }) }
    local ok, err, code = state.steps.judge(state, s)
    if not ok then return nil, err, code end
    if s.score then samples[#samples + 1] = s end
  end
  return true
end

-- the sample whose score is the median (the lower middle one of an even count)
local function median(samples)
  local sorted = table.move(samples, 1, #samples, 1, {})
  table.sort(sorted, function(a, b) return a.score < b.score end)
  return sorted[(#sorted + 1) // 2]
end

-- settle(state, t, commit) -> improved, note | nil, err, code: t beat the best by no more
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
  local ok, err, code = measure(state, t.seq, n, t.samples)
  if not ok then return nil, err, code end
  if not best.samples then
    best.samples = { { score = best.score, metrics = best.metrics, feasible = best.feasible, violation = best.violation } }
    ok, err = state.repo:restore(commit, best.commit_id)
    if not ok then return false, "the best could not be measured again: " .. tostring(err) end
    local mok, merr, mcode = measure(state, best.seq, n, best.samples)
    ok, err = state.repo:restore(best.commit_id, commit)
    if not ok then error("evolve: the workspace did not come back from the best try: " .. tostring(err)) end
    if not mok then return nil, merr, mcode end
  end
  for _, x in ipairs { t, best } do
    local m = median(x.samples)
    x.score, x.metrics, x.feasible, x.violation = m.score, m.metrics, m.feasible, m.violation
    store.update_try(state.run.id, x.seq, { score = x.score, metrics = x.metrics, feasible = x.feasible })
  end
  local g = gain(state.objective, t, best)
  local note = ("median of %d: %.6g against the best's %.6g"):format(#t.samples, t.score, best.score)
  return g ~= nil and g > 0, note
end

-- ---- the steps of a try -------------------------------------------------
--
-- A try is ask, gate, act, judge, keep, report: each step(ctx, try), ctx
-- the run's state (ctx.o the options, ctx.run, ctx.agent, ctx.evaluator,
-- ctx.objective, ctx.repo, ctx.best, ctx.tries, ctx.steps the steps in
-- force, ctx.default these), try the table the steps fill in turn. A step
-- returns true, or nil, err, code to end the run with that error. A
-- project replaces any of them in its procy.lua, without copying this
-- file, and may call the default from its own:
--   evolve = { judge = function(ctx, try) ... return true end }
local steps = {}
R.steps = steps
R.setting = "evolve" -- where a project's steps are (procy recipes lists them)
R.step_names = { "ask", "gate", "act", "judge", "keep", "report" }

-- ask: the policy in force (ctx.policy: agent, population, model; see
-- "policies" below) picks the parent and writes the prompt. Sets
-- try.prompt, try.parent (the try whose snapshot the agent starts from),
-- try.policy, and what the policy says of itself: try.messages (what a
-- model was given), try.model, try.tokens, try.island, try.selection.
function steps.ask(ctx, t)
  local policy = R.policies[ctx.policy]
  if not policy then
    return core.fail("EINVAL", ("evolve: no policy '%s' (agent, population, model)"):format(tostring(ctx.policy)))
  end
  t.policy, t.tokens = ctx.policy, 0
  return policy(ctx, t)
end

-- gate: with --approve, a person approves, edits (a correction is kept)
-- or rejects try.prompt (the run stops, EREJECTED).
function steps.gate(ctx, t)
  if not ctx.o.approve then return true end
  evolve.progress(ctx, "waiting for approval")
  local proposed = t.prompt
  local prompt, edited, code = evolve.approve(ctx, proposed)
  -- what the person did is kept either way: training data (accepted and
  -- rejected prompts are KTO's desirable and undesirable examples)
  if prompt or code == "EREJECTED" then
    store.correct { session = ctx.session, run = ctx.run.id, try = t.seq, original = proposed,
      corrected = prompt or proposed, context = t.messages, source = "proxy",
      kind = not prompt and "rejected" or edited and "edited" or "accepted",
      note = edited and "edited before it was sent" or nil }
  end
  if not prompt then return nil, edited, code end
  t.prompt = prompt
  return true
end

-- act: the agent works on try.prompt (restarted once if it died), the
-- workspace is snapshotted. Sets try.turn_seq, try.turn, try.response,
-- try.commit_id, and try.status = "agent-failed" with try.feedback when
-- the turn did not end done.
function steps.act(ctx, t)
  local a = ctx.agent
  evolve.progress(ctx, "the agent works")
  local tseq, serr, scode, turn, terr
  local sent_at = core.now()
  for attempt = 1, 2 do
    tseq, serr, scode = a:send(t.prompt, "proxy")
    -- the try is that turn from now on, whatever ends it (a !stop
    -- mid-turn too): !correct finds the messages it was asked with
    if tseq then store.update_try(ctx.run.id, t.seq, { turn_seq = tseq }) end
    if tseq then turn, terr = a:wait_turn { seq = tseq, timeout = ctx.o.turn_timeout } end
    -- the agent died (since the last try, or in this one): a new one,
    -- resuming its session, gets the prompt again, once
    local died = (not tseq and scode == "EPIPE") or (turn and turn.status == "error" and not a:status().running)
    if not (died and ctx.own_agent and attempt == 1) then break end
    evolve.progress(ctx, "restarting the agent")
    say(ctx, "the agent had exited; restarting it, resuming its session")
    local ok, rerr = a:restart { resume = true, force = true }
    if not ok then return core.wrap("the agent exited and did not restart", rerr, "EPIPE") end
  end
  if not tseq then return core.wrap("the agent cannot take a prompt", serr, scode) end
  local null = require("procy.json").null
  t.turn_seq, t.turn = tseq, turn
  -- a line the person typed while the agent worked, which the agent takes
  -- after the try's turn (Claude Code queues it): the turns it makes are
  -- part of this try, waited for before the workspace is taken
  local followed = {}
  local d = a.driver
  -- (a line the hook folded into the try's turn after it was typed makes no turn of its own)
  if turn and d and d.typed_at and d.typed_at >= sent_at and not (d.folded_at and d.folded_at >= d.typed_at) then
    local deadline = core.now() + 5
    while a.tracker.seq <= tseq and core.now() < deadline do core.sleep(0.1) end
    deadline = core.now() + (ctx.o.turn_timeout or 1800)
    while a.tracker.open and a.tracker.open.seq > tseq do
      if core.now() > deadline then
        a:interrupt() -- the person's turn ran past the try's limit
        break
      end
      a:wait_turn { seq = a.tracker.open.seq, timeout = math.max(1, deadline - core.now()) }
    end
    for s2 = tseq + 1, a.tracker.seq do
      local t2 = turns.get(a.session, s2)
      if t2 and t2.source == "human" and t2.prompt ~= null then followed[#followed + 1] = { text = t2.prompt } end
    end
  end
  -- !pause: the person works on before the workspace is taken; what they
  -- did is part of this try (and kept as a correction candidate of it)
  if ctx.paused then t.interventions = #evolve.hold(ctx, t) end
  -- text the person typed while the agent worked joined the try's turn
  -- (the turn went on): an intervention on this try, kept as what the
  -- prompt should have said — the proxy's prompt with the addition
  local added = {}
  for _, x in ipairs(turn and type(turn.added) == "table" and turn.added or {}) do added[#added + 1] = x end
  for _, x in ipairs(followed) do added[#added + 1] = x end
  if #added > 0 then
    local parts = { t.prompt }
    for _, x in ipairs(added) do parts[#parts + 1] = x.text end
    require("procy.corrections").add { session = a.session, turn = tseq, corrected = table.concat(parts, "\n\n"),
      note = ("intervention: a person added to try %d's prompt while the agent worked (an addition, "
        .. "not a replacement)"):format(t.seq), author = "human" }
  end
  t.intervened = (t.interventions or 0) > 0 or #added > 0 or nil
  if turn then
    t.response = turn.response ~= null and turn.response or nil
    t.tokens = t.tokens + (turn.usage.input_tokens or 0) + (turn.usage.output_tokens or 0)
      + (turn.usage.cache_creation_tokens or 0)
  end
  -- the workspace as the agent left it, whatever happened
  local commit, gerr = ctx.repo:take(("refs/procy/%s/%d"):format(ctx.run.id, t.seq),
    ("procy evolve %s try %d"):format(ctx.run.id, t.seq), ctx.at.commit)
  if not commit then return core.wrap("snapshot failed", gerr) end
  t.commit_id = commit
  if not turn or turn.status ~= "done" then
    t.status, t.feedback = "agent-failed", "the agent's turn " .. (turn and turn.status or tostring(terr))
      .. (turn and turn.error ~= null and (": " .. tostring(turn.error)) or "")
  end
  return true
end

-- judge: scores try.result (the evaluator's: status, metrics, stderr_tail,
-- ...). Sets try.status ("ok", "infeasible", "eval-failed"), try.metrics,
-- try.score, try.feasible, try.violation, try.feedback. Also what scores
-- the starting point, a resumed run's tries and each measure again.
function steps.judge(ctx, t)
  local result = t.result
  if result.status ~= "ok" then
    t.status, t.feedback = "eval-failed", evaluator.feedback(result)
    return true
  end
  local s = objective.score(ctx.objective, result.metrics)
  t.metrics, t.score, t.feasible, t.violation = result.metrics, s.score, s.feasible, s.violation
  t.status = s.feasible and "ok" or (s.score == nil and "eval-failed" or "infeasible")
  local fb = evaluator.feedback(result)
  t.feedback = s.why and (fb ~= "" and (s.why .. "\n" .. fb) or s.why) or (fb ~= "" and fb or nil)
  return true
end

-- keep: the try becomes the best, is kept, or the workspace goes back to
-- the best (a try that failed, or fell short by more than the tolerance).
-- In a batch, try.after_sibling (where an earlier try of the same batch
-- left the run) is where a try that did not win goes back to: it was made
-- without that try's change, and keeping it would drop it.
-- Sets try.verdict, try.improved; moves ctx.best, ctx.at, ctx.stale.
function steps.keep(ctx, t)
  local o, run = ctx.o, ctx.run
  -- a try whose agent changed no file runs the code it started from: it
  -- is marked, and never the best (its gain is the evaluator's scatter)
  local same = t.files_changed == 0
  local improved = not same and t.status ~= "agent-failed" and t.status ~= "eval-failed"
    and objective.better(ctx.objective, t, ctx.best)
  local g, note = improved and gain(ctx.objective, t, ctx.best)
  if g and g <= (o.noise or 0.05) then
    local code
    improved, note, code = settle(ctx, t, t.commit_id)
    if improved == nil then return nil, note, code end
  elseif same then
    note = "no file changed"
  end
  if improved then
    ctx.best, ctx.at, ctx.stale = t, { seq = t.seq, commit = t.commit_id }, 0
    store.update_run(run.id, { best_seq = t.seq })
    t.verdict = "new best" .. (note and (" (" .. note .. ")") or "")
  else
    ctx.stale = ctx.stale + 1
    local fell = t.status == "agent-failed" or t.status == "eval-failed"
      or objective.worse(ctx.objective, t, ctx.best, o.tolerance)
    if o.rollback ~= "never" and fell and ctx.best and ctx.best.commit_id then
      local ok, rerr = ctx.repo:restore(t.commit_id, ctx.best.commit_id)
      if not ok then return core.wrap("restoring the best try failed", rerr) end
      ctx.at = { seq = ctx.best.seq, commit = ctx.best.commit_id }
      t.verdict = "rolled back to " .. (ctx.best.seq == 0 and "the start" or ("try " .. ctx.best.seq))
        .. (note and (" (" .. note .. ")") or "")
    elseif t.after_sibling then
      local ok, rerr = ctx.repo:restore(t.commit_id, t.after_sibling.commit)
      if not ok then return core.wrap("restoring the batch's earlier try failed", rerr) end
      ctx.at = t.after_sibling
      t.verdict = ("no better: back to try %d, of the same batch"):format(t.after_sibling.seq)
    else
      ctx.at = { seq = t.seq, commit = t.commit_id }
      t.verdict = "kept" .. (note and (", no better than the best (" .. note .. ")") or "")
    end
  end
  t.improved = improved
  return true
end

-- report: one line for the person.
function steps.report(ctx, t)
  say(ctx, ("try %d: %-11s score %-10s %s — %s"):format(t.seq, t.status, t.score and ("%.6g"):format(t.score) or "-",
    evaluator.metrics_text(t.metrics), t.verdict))
  return true
end

-- ---- policies: who picks the parent and writes the prompt -----------------------
--
-- Each is an implementation of ask(ctx, t). agent: no second model — procy
-- writes a directive from the template (procy.evolve.template, or the
-- `evolve.template` setting) and the agent starts from the best try.
-- population: the parent comes from islands and a MAP-Elites archive
-- (procy.population, `evolve.population` setting), with inspirations from
-- other islands in the directive. model: the proxy model writes the prompt
-- (a served one at model.url, or a hosted one: model = "anthropic:NAME").
local policies = {}
R.policies = policies

-- programs(ctx) -> the tries a parent can be: scored, with a snapshot, the
-- agent's work done, something changed (and the starting point)
local function programs(ctx)
  local list = {}
  if ctx.base and ctx.base.score and ctx.base.commit_id then list[1] = ctx.base end
  for _, x in ipairs(ctx.tries) do
    if x.score and x.commit_id and (x.status == "ok" or x.status == "infeasible") and x.files_changed ~= 0 then
      list[#list + 1] = x
    end
  end
  return list
end

local function try_of(ctx, seq)
  if seq == 0 or seq == nil then return ctx.base end
  for _, x in ipairs(ctx.tries) do if x.seq == seq then return x end end
end

-- diffs(ctx, tries, budget) -> {{try, diff}}: what each try changed from
-- its parent, the budget shared among them (a snapshot never changes: each
-- diff is asked of git once a run)
local function diffs(ctx, list, budget)
  local out = {}
  ctx.diffs = ctx.diffs or {}
  for _, x in ipairs(list) do
    local from = try_of(ctx, x.parent_seq or 0)
    if from and from.commit_id and x.commit_id then
      local share = budget // math.max(1, #list)
      local key = ("%s %s %d"):format(from.commit_id, x.commit_id, share)
      ctx.diffs[key] = ctx.diffs[key] or ctx.repo:diff(from.commit_id, x.commit_id, share) or ""
      out[#out + 1] = { try = x, diff = ctx.diffs[key] }
    end
  end
  return out
end

local function ranked(ctx, list)
  local out = {}
  for _, x in ipairs(list) do if x.seq > 0 and x.feasible then out[#out + 1] = x end end
  table.sort(out, function(a, b) return objective.better(ctx.objective, a, b) end)
  return out
end

local function template(ctx)
  local o = ctx.o
  if o.template_file then
    local path = o.template_file:sub(1, 1) == "/" and o.template_file or (ctx.run.cwd .. "/" .. o.template_file)
    local f, err = io.open(path, "rb")
    if not f then return core.fail("ENOENT", "evolve: template_file cannot be read: " .. tostring(err)) end
    local text = f:read("a")
    f:close()
    return text
  end
  return o.template or evolve.template
end

-- the directive for try t from parent p (why: how p was chosen), with
-- inspirations ({tries}) shown
local function directive(ctx, t, p, why, inspirations)
  local o = ctx.o
  local tpl, err, code = template(ctx)
  if not tpl then return nil, err, code end
  local recent = {}
  for i = math.max(1, #ctx.tries - (o.history or 8) + 1), #ctx.tries do recent[#recent + 1] = ctx.tries[i] end
  local last = ctx.tries[#ctx.tries]
  local best_ones = table.move(ranked(ctx, programs(ctx)), 1, o.show_best or 3, 1, {})
  local ev = ctx.evaluator
  local fields = evolve.directive {
    task = ctx.run.task, objective = ctx.objective.text, schema = ctx.schema, base = ctx.base, best = ctx.best,
    evaluator = ev.argv and table.concat(ev.argv, " ") or ev.path or "procy's evaluator (procy.lua)",
    parent = p, why = why, changes = diffs(ctx, best_ones, o.diff_budget or 4000),
    inspirations = inspirations and diffs(ctx, inspirations, (o.diff_budget or 4000) // 2),
    recent = recent, feedback = last and last.feedback,
    trace = last and evolve.trace(last.session_id or ctx.agent.session, last.turn_seq, o.trace_budget),
  }
  t.prompt = evolve.render(tpl, fields)
  return true
end

-- agent: the best so far is the parent; procy writes the directive
function policies.agent(ctx, t)
  evolve.progress(ctx, "writing the prompt")
  t.parent = ctx.best or try_of(ctx, ctx.at.seq) or ctx.base
  return directive(ctx, t, t.parent, t.parent.seq > 0 and "being the best so far" or nil)
end

-- population: the parent from islands and the archive, with why
function policies.population(ctx, t)
  evolve.progress(ctx, "choosing a parent")
  local list = programs(ctx)
  if #list == 0 then return policies.agent(ctx, t) end
  local o = ctx.o
  local po = o.population or {}
  local ok, choice = pcall(population.select, po, list, t.seq, po.seed or population.seed_of(ctx.run.id),
    ctx.objective.goal == "minimize", po.features)
  if not ok then return core.fail("EINVAL", tostring(choice)) end
  t.parent, t.island = choice.parent, choice.island
  local insp = {}
  for i, x in ipairs(choice.inspirations) do insp[i] = x.seq end
  t.selection = { why = choice.why, draw = choice.draw, cell = choice.cell, inspirations = insp,
    migrations = #choice.migrations > 0 and choice.migrations or nil }
  return directive(ctx, t, t.parent, choice.why, choice.inspirations)
end

-- model: the proxy model writes the prompt from procy.evolve.messages (the
-- one template its training export renders too); the parent is where the
-- run is
function policies.model(ctx, t)
  local o, run = ctx.o, ctx.run
  evolve.progress(ctx, "asking the proxy model")
  local recent = {}
  for i = math.max(1, #ctx.tries - (o.history or 8) + 1), #ctx.tries do recent[#recent + 1] = ctx.tries[i] end
  local last = ctx.tries[#ctx.tries]
  t.messages = evolve.messages {
    task = run.task, objective = ctx.objective.text, schema = ctx.schema, base = ctx.base, best = ctx.best,
    recent = recent, feedback = last and last.feedback, last_response = last and last.response,
    trace = last and evolve.trace(last.session_id or ctx.agent.session, last.turn_seq, o.trace_budget),
    corrections = store.corrections { cwd = run.cwd, limit = 5 }, next_seq = t.seq,
    max_words = o.max_words or 200, batch = ctx.batch and { size = ctx.batch.size, siblings = ctx.batch.prompts },
  }
  local prompt, info, code
  for _ = 1, 2 do -- an empty answer gets one more chance
    prompt, info, code = model.chat(t.messages, { session = ctx.agent.session })
    if not prompt then return core.wrap("the proxy model failed", info, code) end
    if prompt ~= "" then break end
  end
  if prompt == "" then return core.fail("EEMPTY", "the proxy model answered with an empty prompt twice") end
  t.prompt = #prompt > (o.max_prompt or 4000) and prompt:sub(1, o.max_prompt or 4000) or prompt
  t.model, t.tokens = info.model, info.usage.input_tokens + info.usage.output_tokens
  t.adapter, t.adapter_sha256 = info.adapter, info.adapter_sha256
  return true
end

local function step(ctx, t, name)
  local ok, err, code = ctx.steps[name](ctx, t)
  if not ok then return nil, err or (name .. " failed"), code end
  return true
end

-- attempt(ctx) -> try | nil, err, code: ask, gate, act, the evaluator,
-- judge, with the record kept between them; what needs the run's best
-- (keep, report) is conclude's. ctx: the run's state, or a batch's lane
-- (its own seq, agent, repo, evaluator, start, and the batch's limits)
function R.attempt(ctx)
  local run, seq = ctx.run, ctx.seq
  local t = { seq = seq }
  -- a batch's prompts are asked in order, each knowing the ones before
  local b = ctx.batch
  if b and b.asked[seq - 1] then core.await(b.asked[seq - 1]) end
  -- a prompt of the batch rejected ends the run: the tries after it ask nothing
  if b and b.rejected then return core.fail("EREJECTED", ("try %d was rejected: try %d is not asked"):format(b.rejected, seq)) end
  local ok, err, code = step(ctx, t, "ask")
  if ok then ok, err, code = step(ctx, t, "gate") end
  if b then
    if ok then b.prompts[#b.prompts + 1] = t.prompt end
    if code == "EREJECTED" then b.rejected = seq end
    core.complete(b.asked[seq])
  end
  if not ok then return nil, err, code end
  -- the agent works from the parent the policy chose: its snapshot comes
  -- into the workspace (the try's worktree, in a batch) first
  local p = t.parent
  if p and p.commit_id and p.commit_id ~= ctx.at.commit then
    local rok, rerr, rcode = ctx.repo:restore(ctx.at.commit, p.commit_id)
    if not rok then return core.wrap(("cannot bring %s into the workspace"):format(evolve.name(p)), rerr, rcode) end
    ctx.at = { seq = p.seq, commit = p.commit_id }
  end
  t.parent_seq = ctx.at.seq
  store.add_try(run.id, { seq = seq, parent_seq = ctx.at.seq, prompt = t.prompt, model = t.model,
    session_id = ctx.agent.session, messages = t.messages, adapter = t.adapter, adapter_sha256 = t.adapter_sha256 })
  store.update_try(run.id, seq, { policy = t.policy, island = t.island, selection = t.selection })
  ok, err, code = step(ctx, t, "act")
  if not ok then return nil, err, code end
  if t.status ~= "agent-failed" then
    evolve.progress(ctx, "evaluating")
    local files = {}
    local changes = ctx.repo:changes(ctx.at.commit, t.commit_id)
    for _, c in ipairs(changes or {}) do files[#files + 1] = c.path end
    t.files_changed = changes and #files or nil
    do
      local _ <close> = ctx.eval_slots and ctx.eval_slots.held()
      t.result = evaluator.run(ctx.evaluator, { session = ctx.agent.session, run = run.id, try = seq,
        iteration = seq, files_changed = files, timeout = ctx.o.eval_timeout })
    end
    t.eval_result_id = t.result.id
    ok, err, code = step(ctx, t, "judge")
    if not ok then return nil, err, code end
  end
  t.ended_at = require("procy.store").now_us()
  store.update_try(run.id, seq, { turn_seq = t.turn_seq, response = t.response, commit_id = t.commit_id,
    intervened = t.intervened,
    files_changed = t.files_changed,
    metrics = t.metrics, score = t.score, feasible = t.feasible, status = t.status, feedback = t.feedback,
    eval_result_id = t.eval_result_id, tokens = t.tokens, ended_at = t.ended_at })
  return t
end

-- conclude(state, t) -> t | nil, err, code: keep and report, the workspace
-- being snapshot t.commit_id
function R.conclude(state, t)
  state.tries[#state.tries + 1] = t
  state.tokens = state.tokens + (t.tokens or 0)
  local ok, err, code = step(state, t, "keep")
  if ok then
    store.update_try(state.run.id, t.seq, { improved = t.improved and true or false,
      verdict = not t.improved and t.verdict or nil })
  end
  if ok then ok, err, code = step(state, t, "report") end
  if not ok then return nil, err, code end
  if t.improved then t.verdict = nil end -- the record's verdict is for a try that did not win
  return t
end

-- one try, in the workspace
function R.try(state)
  local t, err, code = R.attempt(state)
  if not t then return nil, err, code end
  return R.conclude(state, t)
end

-- ---- parallel tries ---------------------------------------------------------

-- slots(n): at most n tasks hold one at a time. held() takes one, and
-- returns what gives it back when closed (`local _ <close> = s.held()`),
-- so an error in between cannot keep it
local function slots(n)
  local free, queue = n, {}
  local function give()
    while #queue > 0 do
      if core.complete(table.remove(queue, 1)) then return end
    end
    free = free + 1
  end
  local back = setmetatable({}, { __close = give })
  return {
    held = function()
      if free > 0 then
        free = free - 1
      else
        local op = core.op()
        queue[#queue + 1] = op
        core.await(op)
      end
      return back
    end,
  }
end

-- the lane's agents stopped and its worktrees removed (what they made is
-- in the snapshots)
local function close_lanes(state, b)
  for _, l in ipairs(b.lanes) do
    if l.agent then l.agent:close() l.agent = nil end
    if l.path then
      local ok, err = state.repo:remove_worktree(l.path)
      if not ok and l.repo then core.log("warn", "evolve: " .. tostring(err)) end
      l.repo, l.path = nil, nil
    end
  end
  -- by path, only procy's own: `git worktree prune` would drop any of the
  -- person's worktrees whose directory is away (an unmounted disk)
  require("procy.proc").run { "rm", "-rf", b.root }
end

-- lane(state, b, l, base) -> ctx | nil, err, code: try l.seq's worktree
-- at base, its agent, and the evaluator on it
local function lane(state, b, l, base)
  local o, repo = state.o, state.repo
  -- one `git worktree add` at a time: two at once in a repository can read
  -- each other's half-written records (CI saw "failed to read commondir")
  l.path = ("%s/%d"):format(b.root, l.seq)
  local wt, err, code
  do
    local _ <close> = b.git.held()
    -- what a run that procy could not end (SIGKILL) left at this path
    repo:remove_worktree(l.path)
    wt, err, code = repo:worktree(l.path, base.commit)
  end
  if not wt then return core.wrap("cannot make try " .. l.seq .. "'s worktree", err, code) end
  l.repo = wt
  -- where the run's directory is in the repository, in the worktree
  local rel = repo.dir:sub(#repo.top + 2)
  local cwd = wt.top .. (rel ~= "" and "/" .. rel or "")
  -- links to the person's ignored directories are never part of a try:
  -- a snapshot holding one would, when judged, put a symlink where the
  -- person's directory is
  wt.exclude = {}
  for _, path in ipairs(o.worktree_links or {}) do
    if fs.stat(repo.dir .. "/" .. path) and not fs.stat(cwd .. "/" .. path, true) then
      local r = require("procy.proc").run { "ln", "-s", repo.dir .. "/" .. path, cwd .. "/" .. path }
      if not r or r.code ~= 0 then
        return core.fail("EIO", ("cannot link %s into try %d's worktree: %s"):format(path, l.seq, r and r.stderr or "?"))
      end
      wt.exclude[#wt.exclude + 1] = (rel ~= "" and rel .. "/" or "") .. path
    end
  end
  local ev = setmetatable({ cwd = cwd }, { __index = state.evaluator })
  -- an evaluator git ignores is not in the snapshot: the run's own copy
  if ev.path and ev.path:sub(1, 1) ~= "/" and not fs.stat(cwd .. "/" .. ev.path) then
    local r = require("procy.proc").run { "cp", "-p", repo.dir .. "/" .. ev.path, cwd .. "/" .. ev.path }
    if not r or r.code ~= 0 then
      return core.fail("EIO", ("cannot copy the evaluator into try %d's worktree: %s"):format(l.seq, r and r.stderr or "?"))
    end
  end
  local a
  a, err, code = evolve.open_agent(o.agent, cwd)
  if not a then return core.wrap("cannot start try " .. l.seq .. "'s agent", err, code) end
  l.agent = a
  return setmetatable({ seq = l.seq, agent = a, repo = wt, at = base, evaluator = ev, own_agent = true,
    paused = false, batch = b, eval_slots = b.eval_slots }, { __index = state })
end

-- batch(state, k) -> true | nil, err, code: k tries at once from state.at,
-- then judged in order in the person's workspace
local function batch(state, k)
  local o, base = state.o, state.at
  local b = { size = k, prompts = {}, lanes = {}, asked = {}, eval_slots = slots(o.eval_parallel or k), git = slots(1),
    root = ("%s/worktrees/%s-%d"):format(store.path():match("^(.*)/[^/]*$") or ".", state.run.id, state.seq) }
  require("procy.proc").run { "rm", "-rf", b.root }
  state.lanes = b
  for i = 1, k do
    local l = { seq = state.seq + i - 1 }
    b.lanes[i], b.asked[l.seq] = l, core.op()
    l.task = core.spawn(function()
      -- however this lane ends (an error, a step that raised), the next one asks
      local _ <close> = setmetatable({}, { __close = function() core.complete(b.asked[l.seq]) end })
      local ctx, err, code = lane(state, b, l, base)
      if not ctx then return nil, err, code end
      return R.attempt(ctx)
    end)
  end
  local done = {}
  for i, l in ipairs(b.lanes) do done[i] = table.pack(core.await(l.task)) end
  close_lanes(state, b)
  state.lanes = nil
  -- judged in order, each brought into the workspace first; keep leaves
  -- the workspace at state.at
  local at, failed = base.commit, nil
  for i, l in ipairs(b.lanes) do
    local t, err, code = done[i][1], done[i][2], done[i][3]
    if t then
      local ok, rerr, rcode = state.repo:restore(at, t.commit_id)
      if not ok then return core.wrap("cannot bring try " .. l.seq .. " into the workspace", rerr, rcode) end
      at = t.commit_id
      if state.at.commit ~= base.commit then t.after_sibling = state.at end
      ok, err, code = R.conclude(state, t)
      if not ok then return nil, err, code end
      at = state.at.commit
    else
      failed = failed or { ("try %d: %s"):format(l.seq, tostring(err)), code }
    end
  end
  if failed then return nil, failed[1], failed[2] end
  return true
end

-- tries left running when the run ends early are marked stopped
local function stop_open_try(run_id)
  for _, t in ipairs(store.tries(run_id)) do
    if t.status == "running" then store.update_try(run_id, t.seq, { status = "stopped" }) end
  end
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

-- main(args, [cmd]) -> true | nil, err. cmd: the `!` command's
-- context when run by !evolve (its agent is the person's)
function R.main(args, cmd)
  local o, given = R.options(args)
  if not o then return nil, given end
  local st, serr = require("procy.recipes").steps(R, o)
  if not st then return nil, serr, "EINVAL" end
  local cwd = o.cwd or (cmd and cmd.cwd) or fs.cwd()
  local a = agent.current()
  local own_agent = false
  local state = { o = o, tries = {}, tokens = 0, stale = 0, durations = {}, started = core.now(),
    print = cmd and cmd.print, notify = cmd and (cmd.pin or cmd.status), show = cmd and cmd.show,
    approve_timeout = o.approve_timeout, session = a and a.session, steps = st, default = steps }
  -- the run: resumed or new
  local run, err, code
  if o.resume then
    run, err, code = store.run(o.resume)
    if not run then return nil, err, code end
    cwd = run.cwd
    for k, v in pairs(run.options) do if not given[k] then o[k] = v end end
  end
  -- a resumed run goes on as it ran (its --parallel too) unless told
  for _, k in ipairs { "parallel", "eval_parallel" } do
    if o[k] ~= nil and (math.type(o[k]) ~= "integer" and o[k] % 1 ~= 0 or o[k] < 1) then
      return core.fail("EINVAL", ("evolve: --%s must be a whole number of at least 1, not %s"):format(k:gsub("_", "-"), o[k]))
    end
  end
  local parallel = math.tointeger(o.parallel or 1)
  -- the policy (--policy, evolve.policy; else model when a proxy model is
  -- configured, agent when not), its model, the evaluator and the
  -- objective, checked before any work
  if o.model_url or o.model then
    local m = {}
    for k, v in pairs(config.get().model or {}) do m[k] = v end
    -- --model NAME: that model of the configured server, or a hosted one
    -- ("anthropic:NAME") through the person's key
    if o.model then
      m.name, m.model = o.model, nil
      if model.resolve({ name = o.model }).hosted then m.url = nil end
    end
    m.url = o.model_url or m.url
    config.set("model", m, o.model and "--model" or "--model-url")
  end
  local has_model = model.settings() ~= nil
  local policy = o.policy or (has_model and "model" or "agent")
  if not R.policies[policy] then
    return core.fail("EINVAL", ("evolve: --policy must be agent, population or model, not '%s'"):format(policy))
  end
  if policy == "model" and not has_model then
    local _, why = model.settings()
    return nil, why .. " (or --policy agent: the agent alone, no second model)", "ENOMODEL"
  end
  state.policy = policy
  local ev
  ev, err, code = evaluator.current(cwd, o.evaluator)
  if not ev then return nil, err, code end
  state.evaluator = ev
  local repo
  repo, err, code = snapshot.open(cwd)
  if not repo then return nil, err, code end
  state.repo = repo
  -- tries of a batch have agents of their own; one at a time, the run's
  if not a and parallel == 1 then
    a, err, code = evolve.open_agent(o.agent, cwd)
    if not a then return core.wrap("cannot start the agent", err, code) end
    own_agent = true
    state.session, state.own_agent = a.session, true
  end
  state.agent = a
  local task = o.task or (run and run.task) or (cmd and a and human_task(a.session))
  if not task or task == "" then
    if own_agent then a:close() end
    return core.fail("EINVAL", "evolve needs a task: --task TEXT" .. (cmd and ", or give the agent your task first" or ""))
  end
  local info = R.recipe or {}
  local keep = { iterations = o.iterations, patience = o.patience, tolerance = o.tolerance, noise = o.noise,
    remeasure = o.remeasure, rollback = o.rollback, parallel = o.parallel, eval_parallel = o.eval_parallel,
    budget_time = o.budget_time, budget_tokens = o.budget_tokens, agent = o.agent, policy = policy,
    population = o.population, model = o.model, template = o.template, template_file = o.template_file }
  if not run then
    run = store.new_run { session = state.session, cwd = cwd, task = task, recipe = info.path or info.name,
      recipe_sha256 = info.sha256, evaluator_id = ev.id, objective = config.get().objective, options = keep }
    store.update_run(run.id, { policy = policy })
  else
    store.resume_run(run.id, { options = keep, policy = policy })
  end
  state.run, state.run_id, state.of = run, run.id, o.iterations or 5
  evolve.live[run.id] = state
  if cmd and a then evolve.session_run[a.session] = run.id end
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
    store.finish_run(run.id, e and "error" or "stopped", e and tostring(e) or "stopped")
    local b = state.lanes
    if b then for _, l in ipairs(b.lanes) do core.cancel(l.task) end end
    -- what waits (the agent's interrupt, the workspace back to the best try)
    -- runs in a task of its own: this one is ending and cannot wait
    core.spawn(function()
      if b then close_lanes(state, b) end
      if a and parallel == 1 and a.tracker.open then a:interrupt() end -- a batch has agents of its own
      if own_agent then a:close() end
      if state.at then
        to_best(state, repo:take(("refs/procy/%s/stopped"):format(run.id), "procy evolve stopped", state.at.commit))
      end
    end)
  end })
  -- tries so far (a resumed run), else the starting point, evaluated
  local done = store.tries(run.id)
  if #done == 0 then
    evolve.progress({ run_id = run.id, seq = 0, of = state.of, durations = {}, started = state.started,
      notify = state.notify }, "evaluating the starting point")
    local base, berr = repo:take(("refs/procy/%s/0"):format(run.id), ("procy evolve %s start"):format(run.id))
    if not base then finished = true store.finish_run(run.id, "error", berr) return nil, berr end
    store.update_run(run.id, { base_commit = base })
    store.add_try(run.id, { seq = 0, session_id = state.session, status = "running" })
    local result = evaluator.run(ev, { session = state.session, run = run.id, try = 0, iteration = 0, timeout = o.eval_timeout })
    local t = { seq = 0, commit_id = base, status = result.status == "ok" and "ok" or "eval-failed",
      metrics = result.metrics, feedback = result.status ~= "ok" and evaluator.feedback(result) or nil }
    done = { t }
    store.update_try(run.id, 0, { commit_id = base, metrics = t.metrics, status = t.status, feedback = t.feedback,
      eval_result_id = result.id, ended_at = require("procy.store").now_us() })
  end
  local schema = state.evaluator.schema
  local obj, objerr = objective.resolve(config.get().objective, schema)
  if not obj then finished = true store.finish_run(run.id, "error", objerr) return nil, objerr end
  state.objective, state.schema = obj, schema and schema.metrics
  for _, t in ipairs(done) do
    if t.metrics then -- scored by the judge in force, as the tries to come will be
      local j = { seq = t.seq, result = { status = "ok", metrics = t.metrics, stderr_tail = "" } }
      local ok, jerr, jcode = st.judge(state, j)
      if not ok then finished = true store.finish_run(run.id, "error", jerr) return nil, jerr, jcode end
      t.score, t.feasible, t.violation = j.score, j.feasible, j.violation
    end
    if t.seq == 0 then
      state.base = t
      if t.metrics then store.update_try(run.id, 0, { score = t.score, feasible = t.feasible }) end
    else
      state.tries[#state.tries + 1] = t
    end
    -- a try never judged (its batch was stopped) cannot be the best: it
    -- was not measured again within the noise
    -- nor can one keep judged no better (a noisy score, or no file changed)
    if t.metrics and (t.status == "ok" or t.status == "infeasible") and (t.seq == 0 or t.improved == 1)
      and objective.better(obj, t, state.best) then
      state.best = t
    end
  end
  state.base = state.base or done[1]
  -- the workspace starts from the best (a resumed run may have stopped
  -- elsewhere); the last try with a snapshot is where it stands (tries a
  -- stopped batch left have none)
  local last = done[1]
  for _, t in ipairs(done) do if t.commit_id then last = t end end
  state.at = { seq = last.seq, commit = last.commit_id }
  if state.best and last.seq ~= state.best.seq and last.commit_id and state.best.commit_id then
    to_best(state, repo:take(("refs/procy/%s/resume"):format(run.id), "procy evolve resume", last.commit_id))
    state.at = { seq = state.best.seq, commit = state.best.commit_id }
  end
  say(state, ("evolve run %s: %s\nobjective: %s\nstart: %s"):format(run.id, evolve.clip(task, 100), obj.text,
    evaluator.metrics_text(state.base.metrics)))
  state.seq = (#done > 0 and done[#done].seq or 0) + 1
  -- --more N: N tries after the last one (a run stopped early does not
  -- also run what it left)
  if o.resume and o.more then
    state.of = state.seq - 1 + o.more
    o.iterations = state.of
    keep.iterations = state.of
    store.update_run(run.id, { options = keep })
  end
  local why
  while true do
    why = spent(state)
    if why then break end
    local t0 = core.now()
    local n = math.min(parallel, state.of - state.seq + 1)
    local t, terr, tcode
    if parallel > 1 then t, terr, tcode = batch(state, n) else t, terr, tcode = R.try(state) end
    if not t then
      finished = true
      store.finish_run(run.id, tcode == "EREJECTED" and "stopped" or "error", terr)
      stop_open_try(run.id)
      -- a batch may end anywhere in the workspace: what it holds is taken first
      to_best(state, parallel > 1 and repo:take(("refs/procy/%s/stopped"):format(run.id), "procy evolve stopped",
        state.at.commit) or state.at.commit)
      say(state, "evolve stopped: " .. tostring(terr))
      return nil, terr
    end
    for _ = 1, n do state.durations[#state.durations + 1] = (core.now() - t0) / n end
    state.seq = state.seq + n
    evolve.progress(state)
  end
  to_best(state, state.at.commit) -- the workspace ends at the best try
  finished = true
  store.finish_run(run.id, "done", why ~= "done" and why or nil)
  say(state, ("evolve run %s ended (%s): best %s"):format(run.id, why, state.best and state.best.seq > 0
    and ("try %d, score %.6g — %s"):format(state.best.seq, state.best.score, evaluator.metrics_text(state.best.metrics))
    or "the starting point (no try beat it)"))
  return true
end

return R
