-- procy.population: the population policy's parent selection — islands
-- that advance and migrate, a MAP-Elites archive over the features the
-- person names, inspirations from the other islands (OpenEvolve's scheme,
-- done so that every part of it runs).
--
-- Nothing here is kept between tries: the population is rebuilt from the
-- run's tries each time (select), and every draw comes from a generator
-- seeded by (seed, try), so a resumed run, or the same run replayed, makes
-- the same choices. The choice is returned with its reasons, for the record.
--
-- A program is a scored try that changed something (the starting point is
-- one, on every island): {seq, score, feasible, metrics, island, commit}.
-- Try n works on island (n - 1) % islands. Every `migration_interval` tries
-- each island sends its best `migration_rate` (at least one) to the next
-- (a ring); a migrant is then a program of both.

local M = {}

M.defaults = { islands = 3, exploration = 0.2, exploitation = 0.7, bins = 10, migration_rate = 0.1,
  inspirations = 2, elites = 5 }

-- rng(seed, n) -> a function giving numbers in [0, 1): xorshift64* from a
-- state mixed from both (SplitMix64's finaliser), so nearby tries differ
function M.rng(seed, n)
  local x = (math.tointeger(seed) or 0) * 0x9E3779B97F4A7C15 + (n or 0) * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB
  x = (x ~ (x >> 30)) * 0xBF58476D1CE4E5B9
  x = (x ~ (x >> 27)) * 0x94D049BB133111EB
  x = x ~ (x >> 31)
  if x == 0 then x = 0x2545F4914F6CDD1D end
  return function()
    x = x ~ (x >> 12)
    x = x ~ (x << 25)
    x = x ~ (x >> 27)
    return ((x * 0x2545F4914F6CDD1D) >> 11) / 2.0 ^ 53
  end
end

-- seed_of("1a2b3c4d5e6f") -> an integer: a run's default seed from its id
function M.seed_of(s)
  local h = 1469598103934665603
  for i = 1, #tostring(s) do h = (h ~ tostring(s):byte(i)) * 1099511628211 end
  return h
end

-- better(a, b, minimize): a ranks above b (feasible first; of two
-- infeasible, the smaller violation; then score)
local function better(a, b, minimize)
  if a.feasible ~= b.feasible then return a.feasible end
  if not a.feasible and (a.violation or 0) ~= (b.violation or 0) then return (a.violation or 0) < (b.violation or 0) end
  if a.score ~= b.score then
    if minimize then return a.score < b.score end
    return a.score > b.score
  end
  return a.seq < b.seq
end

local function sorted(list, minimize)
  local out = table.move(list, 1, #list, 1, {})
  table.sort(out, function(a, b) return better(a, b, minimize) end)
  return out
end

-- options(o) -> the policy's options: the `evolve.population` setting over
-- the defaults
function M.options(o)
  local out = {}
  for k, v in pairs(M.defaults) do out[k] = v end
  for k, v in pairs(o or {}) do out[k] = v end
  local function whole(k, least)
    local v = math.tointeger(out[k])
    if not v or v < least then
      error(("evolve.population: %s must be a whole number of at least %d, not %s"):format(k, least, tostring(out[k])), 0)
    end
    out[k] = v
  end
  whole("islands", 1)
  out.migration_interval = out.migration_interval or 2 * out.islands
  for _, k in ipairs { "migration_interval", "bins", "elites" } do whole(k, 1) end
  whole("inspirations", 0)
  for _, k in ipairs { "exploration", "exploitation", "migration_rate" } do
    if type(out[k]) ~= "number" then error(("evolve.population: %s must be a number"):format(k), 0) end
  end
  if out.exploration < 0 or out.exploitation < 0 or out.exploration + out.exploitation > 1 then
    error("evolve.population: exploration and exploitation are shares that add up to at most 1", 0)
  end
  if out.features ~= nil and type(out.features) ~= "table" then
    error("evolve.population: features is a list of metric names ({\"qps\", \"build_s\"})", 0)
  end
  return out
end

-- cells(programs, features, bins) -> the archive: each program's cell (its
-- bin on each feature, the range being what the programs so far span), and
-- the best of each cell. A feature metric a program lacks puts it in no cell.
function M.cells(programs, features, bins, minimize)
  local lo, hi = {}, {}
  for _, f in ipairs(features) do
    for _, p in ipairs(programs) do
      local v = p.metrics and tonumber(p.metrics[f])
      if v then lo[f], hi[f] = math.min(lo[f] or v, v), math.max(hi[f] or v, v) end
    end
  end
  local best, of = {}, {}
  for _, p in ipairs(programs) do
    local key, cell = {}, {}
    for i, f in ipairs(features) do
      local v = p.metrics and tonumber(p.metrics[f])
      if not v then key = nil break end
      local b = hi[f] > lo[f] and math.floor((v - lo[f]) / (hi[f] - lo[f]) * bins) or 0
      cell[i] = math.min(bins - 1, b)
      key[i] = cell[i]
    end
    if key then
      local k = table.concat(key, ",")
      of[p.seq] = cell
      if not best[k] or better(p, best[k], minimize) then best[k] = p end
    end
  end
  local elites = {}
  for _, p in pairs(best) do elites[#elites + 1] = p end
  return sorted(elites, minimize), of, { lo = lo, hi = hi }
end

-- build(o, programs, upto, minimize) -> islands: {{seq = program}, ...}
-- and the migrations made before try `upto`, replayed from the start
function M.build(o, programs, upto, minimize)
  local islands, migrations = {}, {}
  for i = 1, o.islands do islands[i] = {} end
  local by_seq = {}
  for _, p in ipairs(programs) do by_seq[p.seq] = p end
  local function join(k, p) islands[k][#islands[k] + 1] = p end
  for seq = 0, upto - 1 do
    local p = by_seq[seq]
    if p then
      if seq == 0 then for k = 1, o.islands do join(k, p) end
      else join((seq - 1) % o.islands + 1, p) end
    end
    -- after try `seq`, every interval: each island's best go to the next
    if seq > 0 and o.islands > 1 and seq % o.migration_interval == 0 then
      local moving = {}
      for k = 1, o.islands do
        local list = sorted(islands[k], minimize)
        local n = math.max(1, math.floor(#list * o.migration_rate))
        moving[k] = table.move(list, 1, math.min(n, #list), 1, {})
      end
      for k = 1, o.islands do
        local to = k % o.islands + 1
        for _, p in ipairs(moving[k]) do
          local there = false
          for _, q in ipairs(islands[to]) do if q.seq == p.seq then there = true break end end
          if not there then
            join(to, p)
            migrations[#migrations + 1] = { after = seq, seq = p.seq, from = k - 1, to = to - 1 }
          end
        end
      end
    end
  end
  return islands, migrations
end

-- select(o, programs, seq, seed, minimize, features) -> the choice for
-- try seq: {parent = program, island (from 0), draw, why, cell,
-- inspirations = {programs}, migrations = {those since the last try}}
function M.select(o, programs, seq, seed, minimize, features)
  o = M.options(o)
  features = features or o.features or {}
  local islands, migrations = M.build(o, programs, seq, minimize)
  local k = (seq - 1) % o.islands + 1
  local here = islands[k]
  local rand = M.rng(seed, seq)
  local r = rand()
  local choice = { island = k - 1, draw = r, migrations = {} }
  for _, m in ipairs(migrations) do
    if m.after == seq - 1 then choice.migrations[#choice.migrations + 1] = m end
  end
  local elites, cell_of = M.cells(programs, features, o.bins, minimize)
  if #features == 0 then elites = table.move(sorted(programs, minimize), 1, o.elites, 1, {}) end
  if #here == 0 then here = programs end
  local parent
  if r < o.exploration then
    parent = here[math.floor(rand() * #here) + 1]
    choice.why = ("exploration (draw %.3f < %.2f): a random program of island %d"):format(r, o.exploration, k - 1)
  elseif r < o.exploration + o.exploitation and #elites > 0 then
    parent = elites[math.floor(rand() * #elites) + 1]
    choice.why = #features > 0
      and ("exploitation (draw %.3f): the elite of cell (%s) of %s"):format(r,
        table.concat(cell_of[parent.seq] or {}, ","), table.concat(features, " × "))
      or ("exploitation (draw %.3f): one of the %d best"):format(r, #elites)
  else
    -- by rank on the island: the best weighs n, the worst 1 (scores of any
    -- range and sign)
    local list = sorted(here, minimize)
    local total = #list * (#list + 1) / 2
    local x, acc = rand() * total, 0
    for i, p in ipairs(list) do
      acc = acc + (#list - i + 1)
      if x < acc then parent = p break end
    end
    parent = parent or list[#list]
    choice.why = ("weighted by rank on island %d (draw %.3f)"):format(k - 1, r)
  end
  choice.parent, choice.cell = parent, cell_of[parent.seq]
  -- inspirations: the best of the other islands, not the parent itself
  choice.inspirations = {}
  for j = 1, o.islands do
    if j ~= k and #choice.inspirations < o.inspirations then
      for _, p in ipairs(sorted(islands[j], minimize)) do
        if p.seq ~= parent.seq and p.seq ~= 0 then -- (the start changed nothing to learn from)
          local dup = false
          for _, q in ipairs(choice.inspirations) do if q.seq == p.seq then dup = true end end
          if not dup then choice.inspirations[#choice.inspirations + 1] = p break end
        end
      end
    end
  end
  return choice
end

return M
