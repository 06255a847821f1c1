-- procy.evolve: what recipes/evolve.lua stands on (the record of runs,
-- tries and corrections is procy.store's, the evaluator procy.evaluator's).
-- The runs live in this process (for !status and !stop), the gate where a
-- person approves or edits a proxy prompt, the corrections shown to the
-- proxy model as examples, and the one prompt template — used to ask the
-- proxy model and, later, to export training data, so the two never
-- disagree.

local core = require "procy.core"
local json = require "procy.json"
local store = require "procy.store"

local M = {}


-- open_agent(profile, cwd) -> a headless agent for a recipe, or nil, err,
-- code (its turns not snapshotted for procy fork): the profile's edit_args (Claude Code: --permission-mode
-- acceptEdits; Codex: --sandbox workspace-write), then evolve.agent_args.
function M.open_agent(profile, cwd)
  local agent = require "procy.agent"
  local cfg = require("procy.config").get()
  local p, err, code = agent.profile(profile or (cfg.agent:match("^%S+") or "claude"):match("[^/]*$"))
  if not p then return nil, err, code end
  -- (no turn snapshots for procy fork: evolve takes each try's itself,
  -- refs/procy/RUN/TRY, a moment later)
  return agent.open { profile = p, mode = "headless", cwd = cwd, mirror = false, snapshots = "off",
    args = agent.edit_args(p, (cfg.evolve or {}).agent_args) }
end

-- ---- the prompt template -----------------------------------------------------------------

local function clip(s, n)
  s = tostring(s or ""):gsub("%s+", " ")
  return #s > n and (s:sub(1, n) .. "…") or s
end
M.clip = clip

local metrics_text = require("procy.evaluator").metrics_text

M.system = [[You write the next prompt for an AI coding agent that works in a code repository.
The agent receives your prompt as it is, does the work, and then an evaluator measures the result.
Your goal is the objective below. Build on what worked, avoid what failed, and try a different
idea when progress stalls. Be specific: name the change to make and why. Reply with the prompt
only — no preamble, no quotes, no reasoning — in at most %d words.]]

-- messages(state) -> the chat messages for the proxy model. state: {task,
-- objective (text), schema, base (try), best (try), recent = {tries},
-- feedback, last_response, corrections = {...}, next_seq, max_words,
-- batch = {size, siblings = {prompts}} for a try of a parallel batch}
local system_for = {} -- {template, max_words, text}
function M.messages(s)
  local u = {}
  local function add(line) u[#u + 1] = line end
  add("Task (pinned):\n" .. s.task)
  -- (a person's own prompt, as an export renders it, has no run: no
  -- objective and no try number to name)
  if s.objective then
    add("")
    add("Objective: " .. s.objective)
  end
  if s.schema then
    local ms = {}
    for _, m in ipairs(s.schema) do ms[#ms + 1] = m.name .. " (" .. m.goal .. ")" end
    add("Metrics: " .. table.concat(ms, ", "))
  end
  if s.base then add("Starting point: " .. metrics_text(s.base.metrics)) end
  if s.best and s.best.seq and s.best.seq > 0 then
    add(("Best so far: try %d, score %.6g — %s. Its prompt: %s"):format(s.best.seq, s.best.score,
      metrics_text(s.best.metrics), clip(s.best.prompt, 400)))
  end
  if s.recent and #s.recent > 0 then
    add("")
    add("Recent tries (newest last):")
    for _, t in ipairs(s.recent) do
      local verdict = t.status
      if s.best and t.seq == s.best.seq then verdict = verdict .. ", best"
      elseif t.verdict then verdict = verdict .. ", " .. t.verdict end
      if t.intervened == true or t.intervened == 1 then
        verdict = verdict .. ", a person added to its prompt while the agent worked"
      end
      add(("#%d [%s] score=%s %s"):format(t.seq, verdict, t.score and ("%.6g"):format(t.score) or "none",
        metrics_text(t.metrics)))
      add("   prompt: " .. clip(t.prompt, 300))
      if t.status ~= "ok" and t.feedback and t.feedback ~= "" then add("   problem: " .. clip(t.feedback, 300)) end
      if t.response and t.response ~= "" then add("   agent said: " .. clip(t.response, 200)) end
    end
  end
  if s.feedback and s.feedback ~= "" then
    add("")
    add("Evaluator feedback on the last try:\n" .. s.feedback)
  end
  if s.trace and s.trace ~= "" then
    add("")
    add("What the agent did in the last try:\n" .. s.trace)
  end
  if s.last_response and s.last_response ~= "" then
    add("")
    add("The agent's last answer, in brief: " .. clip(s.last_response, 600))
  end
  if s.corrections and #s.corrections > 0 then
    add("")
    add("Prompts a person corrected — write like the corrected ones:")
    for _, c in ipairs(s.corrections) do
      add("- instead of: " .. clip(c.original, 200))
      add("  they wrote: " .. clip(c.corrected, 300))
    end
  end
  if s.batch then
    add("")
    add(("This try is one of %d that start together from the same workspace, each with an agent of its own; "
      .. "the best of them is kept."):format(s.batch.size))
    if #s.batch.siblings > 0 then
      add("The others were given these prompts — take a different approach:")
      for _, p in ipairs(s.batch.siblings) do add("- " .. clip(p, 300)) end
    end
  end
  add("")
  add(s.next_seq and ("Write the prompt for try %d."):format(s.next_seq) or "Write the next prompt.")
  local words = s.max_words or 200
  if system_for[1] ~= M.system or system_for[2] ~= words then -- formatted once, not for every row of an export
    system_for[1], system_for[2], system_for[3] = M.system, words, M.system:format(words)
  end
  return {
    { role = "system", content = system_for[3] },
    { role = "user", content = table.concat(u, "\n") },
  }
end

-- ---- what the agent did: its tool calls, to a budget ----------------------------------------

local function brief(v, n)
  if v == nil or v == json.null then return "" end
  if type(v) == "table" then
    -- a shell tool's command, an edit's path: the field that says most
    v = v.command or v.cmd or v.file_path or v.path or v.pattern or json.encode(v)
    if type(v) == "table" then v = table.concat(v, " ") end
  end
  return clip(v, n)
end

-- trace(session, turn_seq, [budget]) -> text: the tool calls of an agent's
-- turn, a line each ("- Bash: make test → 3 passed"), cut at budget bytes
-- (default 1500) with how many were left out; "" when it made none
function M.trace(session, seq, budget)
  if not (session and seq) then return "" end
  local turn = require("procy.turns").get(session, seq)
  if not turn or #turn.tools == 0 then return "" end
  budget = budget or 1500
  local lines, used = {}, 0
  for i, tool in ipairs(turn.tools) do
    local line = ("- %s: %s → %s%s"):format(tool.name, brief(tool.input, 160), tool.is_error and "error: " or "",
      brief(tool.result, 160))
    if used + #line > budget then
      lines[#lines + 1] = ("[… %d more tool calls]"):format(#turn.tools - i + 1)
      break
    end
    lines[#lines + 1], used = line, used + #line + 1
  end
  return table.concat(lines, "\n")
end

-- ---- the directive: the prompt procy writes itself (policies agent, population) --------------

-- The template of the agent and population policies' prompt. {name} is a
-- field of directive(); a field that is empty takes its line with it. A
-- project overrides it: `evolve = { template = "..." }` (or template_file).
M.template = [[{task}

Objective: {objective}{metrics}
Evaluator: {evaluator} (it prints the metrics; run it to check your change before you finish).
{best}
{parent}

{changes}

{inspirations}

{history}

{feedback}

{trace}

Make one focused change that improves the objective, starting from the workspace as it is now.
Build on what worked above; where the last tries stalled, take a different approach from theirs.]]

-- render(template, fields) -> text: {name} replaced by fields[name] ({name}
-- that is no field stays as it is); lines left empty by an empty field go,
-- and so do runs of blank lines
function M.render(template, fields)
  local out = {}
  for line in (template .. "\n"):gmatch("(.-)\n") do
    local empty = false
    local text = line:gsub("{([%w_]+)}", function(k)
      local v = fields[k]
      if v == nil then return nil end
      if v == "" then empty = true end
      return tostring(v)
    end)
    if not (empty and not text:find("%S")) then out[#out + 1] = text end
  end
  return (table.concat(out, "\n"):gsub("\n\n\n+", "\n\n"):gsub("^%s+", ""):gsub("%s+$", ""))
end

local function score_of(t) return t.score and ("%.6g"):format(t.score) or "none" end

-- name(t) -> "try 3" or "the starting point"
local function name(t) return t.seq == 0 and "the starting point" or ("try " .. t.seq) end
M.name = name

-- directive(s) -> the fields of the template. s: {task, objective (text),
-- schema, evaluator (how to run it), base, best, parent (a try) and why
-- (the selection's reason), changes = {{try, diff}} (what the best tries
-- changed), inspirations = {{try, diff}}, recent = {tries}, feedback,
-- trace (the last try's tool calls)}
function M.directive(s)
  local f = { task = s.task, objective = s.objective or "?", evaluator = s.evaluator or "?", metrics = "" }
  if s.schema then
    local ms = {}
    for _, m in ipairs(s.schema) do ms[#ms + 1] = m.name .. " (" .. m.goal .. ")" end
    f.metrics = " — metrics: " .. table.concat(ms, ", ")
  end
  local best = s.best
  f.best = best and best.seq > 0
    and ("Best so far: try %d, score %s (%s); the starting point scored %s."):format(best.seq, score_of(best),
      metrics_text(best.metrics), s.base and score_of(s.base) or "none")
    or ("No try has beaten the starting point yet (score %s: %s)."):format(s.base and score_of(s.base) or "none",
      metrics_text(s.base and s.base.metrics))
  local p = s.parent
  f.parent = p and ("You start from %s (score %s)%s: the workspace holds it now."):format(name(p), score_of(p),
    s.why and (", chosen by " .. s.why) or "") or ""
  local function diffs(title, list)
    if not list or #list == 0 then return "" end
    local parts = { title }
    for _, d in ipairs(list) do
      -- what the agent said it did (a directive's prompt is the same each time)
      parts[#parts + 1] = ("— %s (score %s): %s\n%s"):format(name(d.try), score_of(d.try),
        clip(d.try.response or d.try.prompt, 200), d.diff ~= "" and d.diff or "(no file changed)")
    end
    return table.concat(parts, "\n")
  end
  f.changes = diffs("What the best tries changed:", s.changes)
  f.inspirations = diffs("Ideas from other lines of work (other islands):", s.inspirations)
  local h = {}
  for _, t in ipairs(s.recent or {}) do
    local verdict = t.status .. ((t.files_changed == 0) and ", no file changed" or "")
      .. (t.verdict and (", " .. t.verdict) or "")
      .. ((t.intervened == true or t.intervened == 1) and ", a person added to it" or "")
    h[#h + 1] = ("#%d [%s] score %s — %s"):format(t.seq, verdict, score_of(t),
      t.response and t.response ~= "" and ("the agent said: " .. clip(t.response, 160)) or clip(t.prompt, 160))
  end
  f.history = #h > 0 and ("Recent tries (newest last):\n" .. table.concat(h, "\n")) or ""
  f.feedback = (s.feedback and s.feedback ~= "") and ("The evaluator on the last try:\n" .. s.feedback) or ""
  f.trace = (s.trace and s.trace ~= "") and ("What the agent did in the last try:\n" .. s.trace) or ""
  return f
end

-- report([id]) -> text: the runs, newest first; or one run's tries
function M.report(id, limit)
  local out = {}
  local function add(...) out[#out + 1] = string.format(...) end
  if not id then
    local runs = store.runs { limit = limit or 20 }
    if #runs == 0 then return "no evolve run yet\n" end
    add("%-12s  %-16s  %-7s  %5s  %-5s  %s", "run", "started", "status", "tries", "best", "task")
    for _, r in ipairs(runs) do
      add("%-12s  %-16s  %-7s  %5d  %-5s  %s", r.id, os.date("%Y-%m-%d %H:%M", r.started_at // 1000000), r.status,
        r.tries, r.best_seq and tostring(r.best_seq) or "-", clip(r.task, 60))
    end
    return table.concat(out, "\n") .. "\n"
  end
  local r, err, code = store.run(id)
  if not r then return nil, err, code end
  add("run       %s (%s)%s", r.id, r.status, r.error and r.error ~= r.status and ("  " .. r.error) or "")
  add("task      %s", clip(r.task, 200))
  add("in        %s", r.cwd)
  add("recipe    %s  sha256 %s", tostring(r.recipe), tostring(r.recipe_sha256):sub(1, 12))
  add("policy    %s", r.policy or (r.options or {}).policy or "model")
  for _, t in ipairs(store.tries(r.id)) do
    add("%3d  %-12s %-10s %-8s %s%s%s%s", t.seq, t.status, t.score and ("%.6g"):format(t.score) or "-",
      t.commit_id and t.commit_id:sub(1, 8) or "-", metrics_text(t.metrics), t.seq == r.best_seq and "  [best]" or "",
      t.files_changed == 0 and t.seq > 0 and "  (no file changed)" or "",
      t.intervened == 1 and "  (a person added to it)" or "")
    if t.seq > 0 then
      local sel = t.selection and json.decode(t.selection)
      add("     from %s%s%s", t.parent_seq and t.parent_seq > 0 and ("try " .. t.parent_seq) or "the start",
        t.island and (" · island " .. t.island) or "", type(sel) == "table" and sel.why and (" · " .. sel.why) or "")
    end
    if t.prompt then add("     %s", clip(t.prompt, 110)) end
  end
  add("refs      refs/procy/%s/SEQ (git diff refs/procy/%s/0 refs/procy/%s/%s)", r.id, r.id, r.id, r.best_seq or "N")
  return table.concat(out, "\n") .. "\n"
end

-- ---- comparing runs: did training help? -------------------------------------------------

-- curve(run) -> the best score so far after each try (the run's goal
-- decides which way is better), and the tries' adapter
local function curve(r)
  local minimize = type(r.objective) == "table" and r.objective.goal == "minimize"
  local out, best, adapter = {}, nil, nil
  for _, t in ipairs(store.tries(r.id)) do
    adapter = adapter or t.adapter
    if t.seq > 0 then
      if t.score and t.feasible ~= false and (not best or (minimize and t.score < best) or (not minimize and t.score > best)) then
        best = t.score
      end
      out[#out + 1] = best or false
    end
  end
  return out, adapter, minimize
end

-- tries to reach target on a curve (nil: never)
local function reach(c, target, minimize)
  for i, v in ipairs(c) do
    if v and ((minimize and v <= target) or (not minimize and v >= target)) then return i end
  end
end

-- comparison(ids, {by = "adapter"|"policy"|nil, target = N}) -> {by, target, lo,
-- hi, len, series = {{name, runs (ids), curve, best, tries (mean tries
-- to the target, or nil), reached (runs that did), adapter}}} | nil, err,
-- code: runs on the same task side by side (no ids: every run on the
-- newest run's task): each run's (or, by adapter, each adapter's mean)
-- best-so-far curve, its best, and the tries it took to reach the target
-- score (default: the lowest best among them, which every series reaches)
function M.comparison(ids, o)
  o = o or {}
  local runs = {}
  if #ids == 0 then
    local newest = store.runs { limit = 1 }[1]
    if not newest then return core.fail("ENOENT", "no evolve run yet") end
    for _, r in ipairs(store.runs { limit = 1000 }) do
      if r.task == newest.task then runs[#runs + 1] = assert(store.run(r.id)) end
    end
  else
    for _, id in ipairs(ids) do
      local r, err, code = store.run(id)
      if not r then return nil, err, code end
      runs[#runs + 1] = r
    end
  end
  local series = {}
  local by = {}
  for _, r in ipairs(runs) do
    local c, adapter, minimize = curve(r)
    local key = o.by == "adapter" and (adapter or "(base model)")
      or o.by == "policy" and (r.policy or (r.options or {}).policy or "model") or r.id
    local sx = by[key]
    if not sx then
      sx = { name = key, curves = {}, runs = {}, minimize = minimize, adapter = adapter }
      by[key] = sx
      series[#series + 1] = sx
    end
    sx.curves[#sx.curves + 1], sx.runs[#sx.runs + 1] = c, r
  end
  -- a series' curve: the mean over its runs at each try (a run that ended
  -- keeps its last best)
  local lo, hi, len = math.huge, -math.huge, 0
  for _, sx in ipairs(series) do
    local n = 0
    for _, c in ipairs(sx.curves) do n = math.max(n, #c) end
    sx.curve = {}
    for i = 1, n do
      local sum, k = 0, 0
      for _, c in ipairs(sx.curves) do
        local v = c[math.min(i, #c)]
        if v then sum, k = sum + v, k + 1 end
      end
      sx.curve[i] = k > 0 and sum / k or false
      if k > 0 then lo, hi = math.min(lo, sx.curve[i]), math.max(hi, sx.curve[i]) end
    end
    len = math.max(len, n)
    local last = sx.curve[#sx.curve]
    sx.best = last or nil
  end
  if len == 0 or lo == math.huge then return core.fail("ENODATA", "no scored try in these runs") end
  local target = o.target
  if not target then
    for _, sx in ipairs(series) do
      if sx.best then target = target and (sx.minimize and math.max(target, sx.best) or math.min(target, sx.best)) or sx.best end
    end
  end
  local out = { by = o.by, target = target, lo = lo, hi = hi, len = len, series = {} }
  for i, sx in ipairs(series) do
    local tries = {}
    for _, c in ipairs(sx.curves) do tries[#tries + 1] = reach(c, target, sx.minimize) end
    local mean
    if #tries > 0 then
      local sum = 0
      for _, n in ipairs(tries) do sum = sum + n end
      mean = sum / #tries
    end
    local ids_of = {}
    for k, r in ipairs(sx.runs) do ids_of[k] = r.id end
    out.series[i] = { name = sx.name, runs = ids_of, curve = sx.curve, best = sx.best, tries = mean, reached = #tries,
                      adapter = sx.adapter }
  end
  return out
end

-- compare(ids, {by =, target =}) -> the comparison as text: a row per
-- series and a text chart of the curves | nil, err, code
function M.compare(ids, o)
  o = o or {}
  local c, err, code = M.comparison(ids, o)
  if not c then return nil, err, code end
  local lo, hi, len, series = c.lo, c.hi, c.len, c.series
  local out = {}
  local function add(...) out[#out + 1] = string.format(...) end
  local marks = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  add("%-2s  %-16s  %4s  %5s  %10s  %s", "", o.by or "run", "runs", "tries", "best",
    ("tries to %.6g"):format(c.target))
  for i, sx in ipairs(series) do
    local mean = sx.tries and (("%.1f"):format(sx.tries) .. (sx.reached < #sx.runs and (" (%d of %d runs)"):format(sx.reached, #sx.runs) or ""))
      or "never"
    add("%-2s  %-16s  %4d  %5d  %10s  %s", marks:sub(i, i), clip(sx.name, 16), #sx.runs, #sx.curve,
      sx.best and ("%.6g"):format(sx.best) or "-", mean)
  end
  -- the chart: a column per try, a row per step of the score
  local height, width = 8, math.min(60, len)
  add("")
  add("best score so far, by try:")
  local grid = {}
  for r = 1, height do grid[r] = {} for c = 1, width do grid[r][c] = " " end end
  for i, sx in ipairs(series) do
    for c = 1, width do
      local v = sx.curve[math.min(#sx.curve, math.max(1, math.floor(c * len / width)))]
      if v then
        local r = hi > lo and math.floor((hi - v) / (hi - lo) * (height - 1) + 0.5) + 1 or height
        grid[r][c] = grid[r][c] == " " and marks:sub(i, i) or "*"
      end
    end
  end
  for r = 1, height do
    add("%10s |%s", r == 1 and ("%.6g"):format(hi) or r == height and ("%.6g"):format(lo) or "", table.concat(grid[r]))
  end
  add("%10s +%s", "", ("-"):rep(width))
  add("%10s  try 1%s%d   (* where series meet)", "", (" "):rep(math.max(1, width - 6 - #tostring(len))), len)
  return table.concat(out, "\n") .. "\n"
end

-- ---- live runs: progress, stop, approval ----------------------------------------------------

M.live = {}        -- run id -> state {run, seq, of, best, started, durations, task, phase, notify}
M.session_run = {} -- session id -> the run `!evolve` continues (until !reset-evolve)

local function bar(done, total, width)
  local n = total > 0 and math.floor(done / total * width + 0.5) or 0
  return ("█"):rep(n) .. ("░"):rep(width - n)
end

-- status_line(state) -> "evolve 1a2b3c: try 2/5 ▕███░░░▏ best 12.3 (try 1) · 1m02s · ~2m30s left · agent"
function M.status_line(s)
  local d = require("procy.commands").duration
  local elapsed = core.now() - s.started
  local done = #s.durations
  local left = ""
  if done > 0 and s.of > s.seq - 1 then
    local avg = 0
    for _, x in ipairs(s.durations) do avg = avg + x end
    avg = avg / done
    left = " · ~" .. d(avg * (s.of - s.seq + 1)) .. " left"
  end
  local best = s.best and s.best.score and ("best %.6g (try %d)"):format(s.best.score, s.best.seq) or "no score yet"
  -- the bar counts the run's tries done, a resumed run's earlier ones too
  return ("evolve %s: try %d/%d%s ▕%s▏ %s · %s%s%s"):format(s.run_id:sub(1, 6), math.min(s.seq, s.of), s.of,
    s.batch and (" (" .. s.batch.size .. " at once)") or "", bar(math.max(0, math.min(s.seq - 1, s.of)), s.of, 10), best, d(elapsed), left,
    s.phase and (" · " .. s.phase) or "")
end

-- progress(state, [phase]): tells the person where the run is: the bottom
-- row in a session; a line rewritten in place on a terminal; else (a log)
-- a line per try
function M.progress(s, phase)
  s.phase = phase
  local line = M.status_line(s)
  if s.notify then s.notify(line)
  elseif require("procy.pty").isatty(2) then io.stderr:write("\r", line, "\27[K", phase and "" or "\n")
  elseif not phase then io.stderr:write(line, "\n") end -- a log: one line per try
end

-- approve(state, prompt) -> text, edited | nil, err: the gate before a
-- proxy prompt is sent. In a session the prompt is shown and waits for
-- !approve, !edit TEXT or !reject; after evolve.approve_timeout seconds
-- (0: no limit) it goes as it is.
M.pending = nil
function M.approve(s, prompt)
  if not s.show then
    return nil, "EINVAL: approve = true needs an interactive session (!evolve): nobody here can answer"
  end
  local op = core.op()
  M.pending = { op = op, run = s.run_id, seq = s.seq, prompt = prompt }
  local _ <close> = setmetatable({}, { __close = function() M.pending = nil end }) -- also when !stop cancels
  s.show(("evolve %s, try %d — the proxy model proposes:\n\n%s\n\n"
    .. "!approve sends it · !edit TEXT sends yours instead (kept as a correction) · !reject ends the run")
    :format(s.run_id, s.seq, prompt))
  if s.notify then s.notify(("evolve %s: try %d waits for !approve, !edit TEXT or !reject"):format(s.run_id:sub(1, 6), s.seq)) end
  local t = s.approve_timeout
  local verdict, text = core.await(op, (t and t > 0) and t or nil)
  if verdict == nil then return prompt, false end -- timed out: as proposed
  if verdict == "reject" then return nil, "EREJECTED: the person rejected the prompt", "EREJECTED" end
  if verdict == "edit" then return text, text ~= prompt end
  return prompt, false
end

-- answer(verdict, [text]) -> true, or nil, err: !approve / !edit / !reject
function M.answer(verdict, text)
  local p = M.pending
  if not p then return core.fail("ENOENT", "no prompt is waiting for approval") end
  core.complete(p.op, verdict, text)
  return true
end

-- ---- takeover: the person works in the middle of a try ---------------------------------------

local function live_of(session)
  for _, s in pairs(M.live) do if s.session == session then return s end end
end

-- pause(state) / resume(state): !pause holds the run after the turn under
-- way (the try goes no further: no snapshot, no evaluation) until !resume
function M.pause(s)
  if s.paused then return nil, "EALREADY: the run is paused already", "EALREADY" end
  if (s.o and s.o.parallel or 1) > 1 then
    return nil, "EPARALLEL: a run of parallel tries cannot be paused: their agents are headless (!stop ends it)", "EPARALLEL"
  end
  s.paused = { at = s.agent and s.agent.tracker.seq or 0 }
  M.progress(s, "pausing after the turn under way")
  return true
end

function M.resume(s)
  local p = s.paused
  if not p then return nil, "ENOENT: the run is not paused", "ENOENT" end
  s.paused = nil
  if p.op then core.complete(p.op) end
  return true
end

-- hold(state, try) -> the turns the person had the agent do while the run
-- was paused ({} when it was not): called after the try's turn ends and
-- before its workspace is taken, so what the person did is part of the
-- try and is scored with it. Each such turn is kept as a correction
-- candidate of the try's prompt, with its context.
function M.hold(s, t)
  local p = s.paused
  if not p then return {} end
  M.progress(s, "paused: type to the agent; !resume goes on")
  if s.notify then s.notify(("evolve %s: paused after try %d's turn — type to the agent; !resume goes on"):format(s.run_id:sub(1, 6), t.seq)) end
  p.op = core.op()
  core.await(p.op)
  local a = s.agent
  local typed = {}
  if a.tracker.open then a:wait_turn { seq = a.tracker.open.seq, timeout = 600 } end -- the person's last turn ends first
  for seq = (t.turn_seq or p.at) + 1, a.tracker.seq do
    local turn = require("procy.turns").get(a.session, seq)
    if turn and turn.source == "human" and turn.prompt ~= nil and turn.prompt ~= require("procy.json").null then
      typed[#typed + 1] = turn
    end
  end
  if #typed > 0 and t.turn_seq then
    local parts = {}
    -- an addition to the proxy's prompt, not a replacement: what the
    -- prompt should have said is both
    local parts = { t.prompt }
    for _, turn in ipairs(typed) do parts[#parts + 1] = turn.prompt end
    require("procy.corrections").add { session = a.session, turn = t.turn_seq, corrected = table.concat(parts, "\n\n"),
      note = ("intervention: typed to the agent while evolve run %s was paused in try %d (turns %d-%d); "
        .. "what the proxy prompt left to do, added to it"):format(s.run_id, t.seq, typed[1].seq, typed[#typed].seq),
      author = "human" }
  end
  M.progress(s, "the agent works")
  return typed
end

-- ---- ! commands ---------------------------------------------------------------------------

M.commands = {
  evolve = { args = "[N] [--policy agent|population|model] [--task TEXT] [--approve] ...", run = function(ctx, args)
      if live_of(ctx.id) then ctx.print("an evolve run is going on (!status, !stop)") return end
      local n = tonumber(args[1])
      local rest = table.move(args, n and 2 or 1, #args, 1, {})
      local prev = M.session_run[ctx.id]
      local rargs = prev and { "--resume", prev, "--more", tostring(n or 1) } or { "--iterations", tostring(n or
        (require("procy.config").get().evolve or {}).iterations or 5) }
      for _, a in ipairs(rest) do rargs[#rargs + 1] = a end
      require("procy.recipes").command(ctx, "recipes/evolve.lua", rargs)
    end,
    help = "N tries: procy (or the proxy model, or a population: --policy) prompts the agent, the evaluator scores, the best is kept" },
  ["reset-evolve"] = { help = "stop evolving; the next !evolve starts a new run from your latest prompt",
    run = function(ctx)
      for task, name in pairs(ctx.running) do if name == "evolve" then core.cancel(task) end end
      local prev = M.session_run[ctx.id]
      M.session_run[ctx.id] = nil
      ctx.status(prev and ("evolve run " .. prev .. " put aside; !evolve starts a new one") or "no evolve run to reset")
    end },
  approve = { help = "send the prompt evolve proposes", run = function(ctx)
      local ok, err = M.answer("approve")
      ctx.status(ok and "approved" or err)
    end },
  edit = { args = "TEXT", help = "send TEXT instead of the proposed prompt (kept as a correction)",
    run = function(ctx, args)
      if args.line == "" then ctx.status("usage: !edit TEXT") return end
      local ok, err = M.answer("edit", args.line)
      ctx.status(ok and "sent your prompt" or err)
    end },
  reject = { help = "refuse the proposed prompt: the evolve run ends", run = function(ctx)
      local ok, err = M.answer("reject")
      ctx.status(ok and "rejected" or err)
    end },
  pause = { help = "hold the evolve run after the turn under way: type to the agent yourself, then !resume",
    run = function(ctx)
      local s = live_of(ctx.id)
      if not s then ctx.status("no evolve run is going on") return end
      local ok, err = M.pause(s)
      ctx.status(ok and "evolve will pause when the agent's turn ends (the status line says \"paused\"); "
        .. "what you type before joins the try's turn" or err)
    end },
  resume = { help = "go on with the paused evolve run: what you typed is part of the try, kept as a correction",
    run = function(ctx)
      local s = live_of(ctx.id)
      if not s then ctx.status("no evolve run is going on") return end
      local ok, err = M.resume(s)
      ctx.status(ok and "evolve goes on" or err)
    end },
}

return M
