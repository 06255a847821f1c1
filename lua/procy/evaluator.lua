-- procy.evaluator: the evaluators of a project and their runs.
--
-- The contract. A command evaluator is an argv run in the project
-- directory with PROCY_SESSION, PROCY_RUN, PROCY_TRY, PROCY_ITERATION,
-- PROCY_DB, PROCY_CWD and PROCY_FILES_CHANGED (one path per line) in its
-- environment; the last line of its stdout that is a JSON object holds its
-- metrics (the numbers in it). Its stdout and stderr tails are kept as
-- feedback for the next prompt; a timeout ends its whole process group. A
-- Lua evaluator is a file (recipes/evaluators/*.lua) returning
-- function(ctx) -> {metric = number, ...} (or a table {run = fn, schema =
-- {...}}), or such a function as the `evaluator` setting of procy.lua.
--
-- A script may declare its metrics: METRICS_SCHEMA = [{"name": "qps",
-- "goal": "maximize"}, ...] (or {"qps": "maximize", ...}) anywhere in its
-- text. Otherwise the first run's keys are the schema.

local core = require "procy.core"
local fs = require "procy.fs"
local hash = require "procy.hash"
local json = require "procy.json"
local proc = require "procy.proc"
local store = require "procy.store"

local M = {}

M.tail_bytes = 4000

local function tail(s, n)
  s = s or ""
  n = n or M.tail_bytes
  return #s > n and ("..." .. s:sub(-n)) or s
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- command_for(path) -> argv: how a script is run, by its suffix
function M.command_for(path)
  if path:match("%.py$") then return { "python3", path } end
  if path:match("%.sh$") then return { "bash", path } end
  if path:match("%.m?js$") then return { "node", path } end
  if not path:find("/", 1, true) then path = "./" .. path end
  return { path }
end

-- A metric's goal when nothing says: times, latencies, errors, losses,
-- costs and sizes go down; anything else goes up.
function M.goal_of(name)
  local n = name:lower()
  for _, w in ipairs { "time", "latency", "error", "loss", "cost", "mem", "size", "seconds", "_ms", "_us" } do
    if n:find(w, 1, true) then return "minimize" end
  end
  return "maximize"
end

local function normalize(list)
  local out = {}
  if type(list) ~= "table" then return nil end
  if list[1] == nil then -- {"qps": "maximize", ...}
    local names = {}
    for k in pairs(list) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do out[#out + 1] = { name = k, goal = list[k] } end
  else
    for _, e in ipairs(list) do
      if type(e) == "string" then out[#out + 1] = { name = e }
      elseif type(e) == "table" and type(e.name) == "string" then
        out[#out + 1] = { name = e.name, goal = e.goal or e.direction }
      end
    end
  end
  for _, e in ipairs(out) do
    local g = tostring(e.goal or ""):lower()
    e.goal = (g == "min" or g == "minimize" or g == "lower") and "minimize"
      or (g == "max" or g == "maximize" or g == "higher") and "maximize" or M.goal_of(e.name)
  end
  return #out > 0 and out or nil
end

-- schema_of(text) -> {{name, goal}, ...} from a METRICS_SCHEMA literal, or nil
function M.schema_of(text)
  local _, e = text:find("METRICS_SCHEMA[^=\n]*=%s*")
  if not e then return nil end
  local open = text:sub(e + 1, e + 1)
  local close = ({ ["["] = "]", ["{"] = "}" })[open]
  if not close then return nil end
  local depth, i, quote = 0, e + 1, nil
  while i <= #text do
    local c = text:sub(i, i)
    if quote then
      if c == "\\" then i = i + 1 elseif c == quote then quote = nil end
    elseif c == '"' or c == "'" then quote = c
    elseif c == "[" or c == "{" then depth = depth + 1
    elseif c == "]" or c == "}" then
      depth = depth - 1
      if depth == 0 then break end
    end
    i = i + 1
  end
  local lit = text:sub(e + 1, i)
  -- a Python or JS literal as JSON: quotes, constants, trailing commas
  if not lit:find('"', 1, true) then lit = lit:gsub("'", '"') end
  lit = lit:gsub("%f[%w]True%f[%W]", "true"):gsub("%f[%w]False%f[%W]", "false"):gsub("%f[%w]None%f[%W]", "null")
  lit = lit:gsub(",(%s*[%]}])", "%1"):gsub("([{,]%s*)([%a_][%w_]*)(%s*:)", '%1"%2"%3')
  local v = json.decode(lit)
  return normalize(v)
end

-- metrics_of(stdout) -> {name = number}, or nil: the last JSON object line
function M.metrics_of(out)
  local lines = {}
  for line in (out or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
  for i = #lines, 1, -1 do
    local l = lines[i]:match("^%s*(.-)%s*$")
    if l:sub(1, 1) == "{" then
      local v = json.decode(l)
      if type(v) == "table" then
        local m, any = {}, false
        for k, x in pairs(v) do
          if type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge then m[k] = x any = true
          elseif type(x) == "boolean" then m[k] = x and 1 or 0 any = true end
        end
        if any then return m end
      end
    end
  end
  return nil
end

-- ---- the registry --------------------------------------------------------------

local function decode_row(r)
  if not r then return nil end
  r.argv = r.argv and json.decode(r.argv) or nil
  r.schema = r.schema and json.decode(r.schema) or nil
  return r
end

local function db() return assert(store.open()) end

-- register{cwd =, path = | argv = | fn =, name =, created_by =} -> evaluator, or nil, err, code
-- The newest registration of a directory is the one it uses.
function M.register(o)
  local cwd = o.cwd or fs.cwd()
  local kind, path, argv, sha, schema = "command", o.path, o.argv, nil, nil
  if o.fn then kind = "lua"
  elseif path then
    local full = path:sub(1, 1) == "/" and path or (cwd .. "/" .. path)
    local text = read(full)
    if not text then return nil, "ENOENT: no evaluator at " .. full, "ENOENT" end
    if #text == 0 then return nil, "EINVAL: the evaluator " .. full .. " is empty", "EINVAL" end
    sha = hash.sha256(text)
    schema = M.schema_of(text)
    if full:sub(1, #cwd + 1) == cwd .. "/" then path = full:sub(#cwd + 2) else path = full end
    if path:match("%.lua$") then kind = "lua" else argv = argv or M.command_for(path) end
  elseif not argv then
    error("evaluator.register needs path, argv or fn", 2)
  end
  local name = o.name or (path and path:match("([^/]+)$")) or (argv and argv[#argv]:match("([^/]+)$")) or "procy.lua"
  local h = db()
  h:transaction(function()
    h:exec("UPDATE evaluators SET active = 0 WHERE cwd = ?", cwd)
    h:exec([[INSERT INTO evaluators(cwd, name, kind, path, argv, sha256, schema, created_by, created_at, active)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
             ON CONFLICT(cwd, name) DO UPDATE SET kind = excluded.kind, path = excluded.path, argv = excluded.argv,
               sha256 = excluded.sha256, schema = excluded.schema, created_by = excluded.created_by,
               created_at = excluded.created_at, active = 1]],
      cwd, name, kind, path, argv and json.encode(argv) or nil, sha,
      schema and json.encode { declared = true, metrics = schema } or nil, o.created_by or "human", store.now_us())
  end)
  local ev = M.get(cwd, name)
  ev.fn = o.fn
  return ev
end

-- get(cwd, name) -> a registered evaluator, or nil
function M.get(cwd, name)
  return decode_row(db():query("SELECT * FROM evaluators WHERE cwd = ? AND name = ?", cwd, name)[1])
end

-- list(cwd) -> the directory's evaluators, the one in use first
function M.list(cwd)
  local out = {}
  for _, r in ipairs(db():query("SELECT * FROM evaluators WHERE cwd = ? ORDER BY active DESC, created_at DESC", cwd)) do
    out[#out + 1] = decode_row(r)
  end
  return out
end

-- current(cwd, [given]) -> the evaluator a run uses, or nil, err, code:
-- `given` (--evaluator) first, then the last one registered here, then the
-- `evaluator` setting of procy.lua
function M.current(cwd, given, by)
  cwd = cwd or fs.cwd()
  if given then
    if type(given) == "function" then return M.register { cwd = cwd, fn = given, name = "procy.lua", created_by = "config" } end
    if type(given) == "table" then return M.register { cwd = cwd, argv = given, created_by = "config" } end
    return M.register { cwd = cwd, path = given, created_by = by or "human" }
  end
  local row = decode_row(db():query(
    "SELECT * FROM evaluators WHERE cwd = ? AND active = 1 ORDER BY created_at DESC LIMIT 1", cwd)[1])
  local setting = require("procy.config").get().evaluator
  if row and row.kind == "lua" and not row.path then
    if type(setting) ~= "function" then row = nil else row.fn = setting end
  end
  if row then return row end
  if setting then return M.current(cwd, setting, "config") end
  return nil, "ENOEVAL: no evaluator for " .. cwd .. ": `!eval set PATH`, `!eval generate [DESC]`, "
    .. "`evaluator = \"eval.py\"` in procy.lua, or --evaluator PATH", "ENOEVAL"
end

-- ---- running ----------------------------------------------------------------------

local function env_of(ev, ctx)
  return {
    PROCY_SESSION = ctx.session or "", PROCY_RUN = ctx.run or "", PROCY_TRY = tostring(ctx.try or ""),
    PROCY_ITERATION = tostring(ctx.iteration or ctx.try or ""), PROCY_DB = store.path(), PROCY_CWD = ev.cwd,
    PROCY_FILES_CHANGED = table.concat(ctx.files_changed or {}, "\n"),
  }
end

local function run_command(ev, ctx, timeout)
  local r, err = proc.run(ev.argv, { cwd = ev.cwd, env = env_of(ev, ctx), timeout = timeout,
    max_output = 8 * 1024 * 1024 })
  if not r then return { status = "error", error = err } end
  local out = { exit_code = r.code, stdout = r.stdout, stderr = r.stderr }
  if r.timed_out then
    out.status, out.error = "timeout", ("timed out after %gs (its process group was killed)"):format(timeout)
  elseif r.code ~= 0 then
    out.status, out.error = "failed", "exited with status " .. r.code
  else
    out.metrics = M.metrics_of(r.stdout)
    out.status = out.metrics and "ok" or "no-metrics"
    if not out.metrics then out.error = "its output has no JSON object of numeric metrics on a line of its own" end
  end
  return out
end

local function run_lua(ev, ctx, timeout)
  local fn, printed = ev.fn, {}
  local env = setmetatable({ print = function(...)
    local p = table.pack(...)
    for i = 1, p.n do p[i] = tostring(p[i]) end
    printed[#printed + 1] = table.concat(p, "\t")
  end }, { __index = _G })
  if not fn then
    local full = ev.path:sub(1, 1) == "/" and ev.path or (ev.cwd .. "/" .. ev.path)
    local chunk, err = loadfile(full, "t", env)
    if not chunk then return { status = "error", error = err } end
    local ok, v = pcall(chunk)
    if not ok then return { status = "error", error = tostring(v) } end
    fn = type(v) == "table" and v.run or v
    if type(fn) ~= "function" then
      return { status = "error", error = full .. " must return function(ctx) -> metrics (or {run = fn})" }
    end
  end
  local c = setmetatable({ cwd = ev.cwd, print = env.print, env = env_of(ev, ctx) }, { __index = ctx })
  local task = core.spawn(function() return fn(c) end)
  local r = table.pack(core.await(task, timeout))
  local out = { stdout = table.concat(printed, "\n"), stderr = "" }
  if r[1] == nil and r[3] == "ETIMEDOUT" then
    core.cancel(task)
    out.status, out.error = "timeout", ("timed out after %gs"):format(timeout)
  elseif r[1] == nil and r[2] then
    out.status, out.error = "error", tostring(r[2])
  elseif type(r[1]) ~= "table" then
    out.status, out.error = "no-metrics", "the Lua evaluator returned " .. type(r[1]) .. ", not a table of metrics"
  else
    out.metrics = M.metrics_of(json.encode(r[1]))
    out.status = out.metrics and "ok" or "no-metrics"
    if not out.metrics then out.error = "the Lua evaluator returned no numeric metric" end
  end
  return out
end

-- run(ev, ctx) -> result: {id, status = "ok"|"failed"|"timeout"|"no-metrics"|"error",
--   metrics, exit_code, stdout_tail, stderr_tail, error, duration}
-- ctx: {session, run, try, iteration, files_changed = {...}, timeout}
function M.run(ev, ctx)
  ctx = ctx or {}
  local cfg = require("procy.config").get()
  local timeout = ctx.timeout or (cfg.evolve or {}).eval_timeout or 600
  local t0, started = core.now(), store.now_us()
  local out = ev.kind == "lua" and run_lua(ev, ctx, timeout) or run_command(ev, ctx, timeout)
  out.duration = core.now() - t0
  out.stdout_tail, out.stderr_tail = tail(out.stdout), tail(out.stderr)
  out.stdout, out.stderr = nil, nil
  local h = db()
  if out.metrics and not ev.schema then -- the first run's keys are the schema
    local names = {}
    for k in pairs(out.metrics) do names[#names + 1] = k end
    table.sort(names)
    ev.schema = { declared = false, metrics = normalize(names) }
    h:exec("UPDATE evaluators SET schema = ? WHERE id = ?", json.encode(ev.schema), ev.id)
  end
  out.id = h:query([[INSERT INTO eval_results(evaluator_id, session_id, run_id, try_seq, started_at, ended_at, status,
      exit_code, metrics, stdout_tail, stderr_tail, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id]],
    ev.id, ctx.session, ctx.run, ctx.try, started, store.now_us(), out.status, out.exit_code,
    out.metrics and json.encode(out.metrics) or nil, out.stdout_tail, out.stderr_tail, out.error)[1].id
  return out
end

-- feedback(result) -> text for the next prompt: what went wrong and the output tails
function M.feedback(r)
  local parts = {}
  if r.error then parts[#parts + 1] = "evaluator: " .. r.error end
  local err = (r.stderr_tail or ""):gsub("%s+$", "")
  if err ~= "" then parts[#parts + 1] = "stderr:\n" .. tail(err, 1200) end
  -- stdout too, whatever the status: what an evaluator prints besides its
  -- metrics line (timings, the slowest query) is what a prompt can use
  local out = (r.stdout_tail or ""):gsub("%s+$", "")
  if r.status == "ok" then out = out:gsub("\n?[^\n]*$", function(last) -- the metrics line, once read
    return last:match("^\n?%s*{") and "" or last end) end
  if out:find("%S") then parts[#parts + 1] = "stdout:\n" .. tail(out, 1200) end
  return table.concat(parts, "\n")
end

-- history(ev_id, [limit]) -> eval_results rows, oldest first (metrics decoded)
function M.history(id, limit)
  local rows = db():query([[SELECT * FROM (SELECT * FROM eval_results WHERE evaluator_id = ? ORDER BY id DESC LIMIT ?)
                            ORDER BY id]], id, limit or 20)
  for _, r in ipairs(rows) do r.metrics = r.metrics and json.decode(r.metrics) or nil end
  return rows
end

-- metrics_text(m) -> "a=1, b=2.5" (names sorted), "none" for nil
function M.metrics_text(m)
  if not m then return "none" end
  local names = {}
  for k in pairs(m) do names[#names + 1] = k end
  table.sort(names)
  for i, k in ipairs(names) do names[i] = ("%s=%.6g"):format(k, m[k]) end
  return table.concat(names, ", ")
end

-- ---- !eval ------------------------------------------------------------------------------

local function eval_cmd(ctx, args)
  local ev_mod, metrics_text = M, M.metrics_text
  local sub, cwd = args[1], ctx.cwd or fs.cwd()
  if sub == "set" then
    local path, name = args[2], nil
    if args[3] == "--name" then name = args[4] end
    if not path then ctx.print("usage: !eval set PATH [--name N]") return end
    local ev, err = ev_mod.register { cwd = cwd, path = path, name = name }
    if not ev then ctx.print(err) return end
    ctx.print(("evaluator %s: %s"):format(ev.name, ev.kind == "lua" and ev.path or table.concat(ev.argv, " ")))
    ctx.print("metrics: " .. (ev.schema and "declared by METRICS_SCHEMA" or "from its first run"))
    for _, m in ipairs(ev.schema and ev.schema.metrics or {}) do ctx.print(("  %-24s %s"):format(m.name, m.goal)) end
  elseif sub == "generate" then
    require("procy.recipes").command(ctx, "recipes/eval_generate.lua", table.move(args, 2, #args, 1, {}))
  elseif sub == "show" or sub == "run" or sub == "metrics" then
    local ev, err = ev_mod.current(cwd)
    if not ev then ctx.print(err) return end
    if sub == "show" then
      ctx.print(("evaluator %s (%s, by %s)"):format(ev.name, ev.kind, ev.created_by))
      ctx.print("  runs     " .. (ev.argv and table.concat(ev.argv, " ") or ev.path or "a function in procy.lua"))
      ctx.print("  in       " .. ev.cwd)
      for _, m in ipairs(ev.schema and ev.schema.metrics or {}) do
        ctx.print(("  metric   %-24s %s%s"):format(m.name, m.goal, ev.schema.declared and "" or " (from its first run)"))
      end
      local o = require("procy.objective").resolve(require("procy.config").get().objective, ev.schema)
      ctx.print("  objective " .. (o and o.text or "not set (objective = {...} in procy.lua)"))
    elseif sub == "run" then
      ctx.status("!eval run: " .. ev.name .. " ...")
      local r = ev_mod.run(ev, { session = ctx.id })
      ctx.print(("%s: %s in %.1fs%s"):format(ev.name, r.status, r.duration, r.exit_code and (", exit " .. r.exit_code) or ""))
      if r.metrics then ctx.print("metrics: " .. metrics_text(r.metrics)) end
      local fb = ev_mod.feedback(r)
      if fb ~= "" then ctx.print(fb) end
    else
      local rows = ev_mod.history(ev.id, tonumber(args[2]) or 20)
      if #rows == 0 then ctx.print("no run of " .. ev.name .. " yet (!eval run)") return end
      local names, seen = {}, {}
      for _, m in ipairs(ev.schema and ev.schema.metrics or {}) do names[#names + 1] = m.name seen[m.name] = true end
      for _, r in ipairs(rows) do
        for k in pairs(r.metrics or {}) do if not seen[k] then seen[k] = true names[#names + 1] = k end end
      end
      local head = { ("%-5s %-8s %-10s %-8s"):format("#", "time", "status", "run/try") }
      for _, n in ipairs(names) do head[#head + 1] = ("%14s"):format(n:sub(1, 14)) end
      ctx.print(table.concat(head, " "))
      for _, r in ipairs(rows) do
        local line = { ("%-5d %-8s %-10s %-8s"):format(r.id, os.date("%H:%M:%S", r.started_at // 1000000), r.status,
          r.run_id and (r.run_id:sub(1, 4) .. "/" .. tostring(r.try_seq)) or "-") }
        for _, n in ipairs(names) do
          local v = r.metrics and r.metrics[n]
          line[#line + 1] = ("%14s"):format(v and ("%.6g"):format(v) or "-")
        end
        ctx.print(table.concat(line, " "))
      end
    end
  else
    ctx.print("usage: !eval set PATH [--name N] | generate [--file F] [--force] [DESC] | show | run | metrics [N]")
  end
end

M.commands = {
  eval = { args = "set|generate|show|run|metrics", run = eval_cmd,
    help = "the project's evaluator: set PATH [--name N], generate [--file F] [--force] [DESC], show, run, metrics" },
}

return M
