-- procy.objective: what "better" means for a run. From the `objective`
-- setting:
--
--   objective = { maximize = "qps", subject_to = { recall_at_10 = ">= 0.95" } }
--   objective = { minimize = "build_s", subject_to = { qps = { min = 100 } } }
--   objective = { score = function(metrics) return ... end }   -- higher is better
--
-- else from the evaluator's declared METRICS_SCHEMA (its first metric and
-- goal), else from its only metric or one named "score". With several
-- metrics and nothing to say which counts, it is an error, never a guess.
--
-- A try's score is its objective metric (or the score function's value);
-- a try that breaks a constraint is infeasible: worse than every feasible
-- try, and among infeasible ones the smaller violation is better.

local core = require "procy.core"

local M = {}

local ops = {
  [">="] = function(a, b) return a >= b end, [">"] = function(a, b) return a > b end,
  ["<="] = function(a, b) return a <= b end, ["<"] = function(a, b) return a < b end,
  ["=="] = function(a, b) return a == b end,
}

-- constraint(name, spec) -> {metric, op, value, text}, or nil, err
local function constraint(name, spec)
  if type(spec) == "number" then spec = ">= " .. spec end
  if type(spec) == "table" then
    local out = {}
    if spec.min then out[#out + 1] = { metric = name, op = ">=", value = spec.min } end
    if spec.max then out[#out + 1] = { metric = name, op = "<=", value = spec.max } end
    if #out == 0 then return core.fail("EINVAL", "constraint on '" .. name .. "' needs min or max") end
    return out
  end
  if type(spec) ~= "string" then return core.fail("EINVAL", "constraint on '" .. name .. "' must be a string like \">= 0.95\"") end
  local op, v = spec:match("^%s*([<>=]=?)%s*(%S+)%s*$")
  v = tonumber(v)
  if not op or not ops[op] or not v then
    return core.fail("EINVAL", ("constraint on '%s' is %q: write \">= N\", \"<= N\", \"> N\", \"< N\" or \"== N\""):format(name, spec))
  end
  return { { metric = name, op = op, value = v } }
end

-- resolve(setting, schema) -> objective, or nil, err
-- objective: {metric, goal = "maximize"|"minimize", fn, constraints = {...}, text}
function M.resolve(setting, schema)
  setting = setting or {}
  local o = { constraints = {} }
  if type(setting.score) == "function" then
    o.fn, o.goal, o.metric = setting.score, "maximize", "score"
  elseif setting.maximize or setting.minimize then
    if setting.maximize and setting.minimize then
      return nil, "EOBJECTIVE: objective: maximize or minimize, not both", "EOBJECTIVE"
    end
    o.goal = setting.maximize and "maximize" or "minimize"
    o.metric = setting.maximize or setting.minimize
    if type(o.metric) ~= "string" then
      return nil, "EOBJECTIVE: objective: " .. o.goal .. " names one metric", "EOBJECTIVE"
    end
  else
    local list = schema and schema.metrics or {}
    if schema and schema.declared and list[1] then
      o.metric, o.goal = list[1].name, list[1].goal
    elseif #list == 1 then
      o.metric, o.goal = list[1].name, list[1].goal
    else
      for _, m in ipairs(list) do if m.name == "score" then o.metric, o.goal = "score", "maximize" end end
      if not o.metric then
        local names = {}
        for _, m in ipairs(list) do names[#names + 1] = m.name end
        return nil, "EOBJECTIVE: the evaluator reports " .. (#names > 0 and table.concat(names, ", ") or "no metric yet")
          .. "; say which counts in procy.lua: objective = { maximize = \"NAME\" } (or minimize, and subject_to)"
      end
    end
  end
  local names = {}
  for name in pairs(setting.subject_to or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local list, err = constraint(name, setting.subject_to[name])
    if not list then return nil, "EOBJECTIVE: objective: " .. err, "EOBJECTIVE" end
    for _, c in ipairs(list) do o.constraints[#o.constraints + 1] = c end
  end
  local cs = {}
  for _, c in ipairs(o.constraints) do cs[#cs + 1] = ("%s %s %g"):format(c.metric, c.op, c.value) end
  o.text = o.goal .. " " .. o.metric .. (#cs > 0 and (" subject to " .. table.concat(cs, ", ")) or "")
  return o
end

-- score(o, metrics) -> {score, feasible, violation, why}; score nil when
-- the metric is missing
function M.score(o, metrics)
  local s = { feasible = true, violation = 0 }
  if o.fn then
    local ok, v = pcall(o.fn, metrics)
    if not ok then s.why = "the objective's score function failed: " .. tostring(v)
    elseif type(v) ~= "number" then s.why = "the objective's score function returned " .. type(v)
    else s.score = v end
  else
    s.score = metrics[o.metric]
    if s.score == nil then s.why = "the evaluator did not report '" .. o.metric .. "'" end
  end
  local failed = {}
  for _, c in ipairs(o.constraints) do
    local v = metrics[c.metric]
    if v == nil then
      s.violation = s.violation + 1
      failed[#failed + 1] = c.metric .. " missing"
    elseif not ops[c.op](v, c.value) then
      s.violation = s.violation + math.abs(v - c.value) / math.max(math.abs(c.value), 1e-9)
      failed[#failed + 1] = ("%s = %g, needs %s %g"):format(c.metric, v, c.op, c.value)
    end
  end
  if #failed > 0 then
    s.feasible = false
    s.why = (s.why and s.why .. "; " or "") .. "constraint failed: " .. table.concat(failed, "; ")
  end
  if s.score == nil then s.feasible = false end
  return s
end

-- better(o, a, b) -> whether a beats b ({score, feasible, violation}; nil b: a wins)
function M.better(o, a, b)
  if not b then return a ~= nil and a.score ~= nil end
  if not a or a.score == nil then return false end
  if b.score == nil then return true end
  if a.feasible ~= b.feasible then return a.feasible end
  if not a.feasible and a.violation ~= b.violation then return a.violation < b.violation end
  if o.goal == "minimize" then return a.score < b.score end
  return a.score > b.score
end

-- worse(o, a, best, tolerance) -> whether a falls short of best by more
-- than tolerance (relative: 0.02 is 2%)
function M.worse(o, a, best, tol)
  if not best or best.score == nil then return false end
  if not a or a.score == nil then return true end
  if best.feasible and not a.feasible then return true end
  if not best.feasible then return M.better(o, best, a) end
  local margin = math.abs(best.score) * (tol or 0)
  if o.goal == "minimize" then return a.score > best.score + margin end
  return a.score < best.score - margin
end

return M
