-- procy.usage: tokens and cost from the recorded API calls, by model and
-- by session (`procy usage`, and /api/usage of `procy serve`).

local core = require "procy.core"
local store = require "procy.store"

local M = {}

-- time(text) -> microseconds since the epoch | nil, err. Accepts
-- "2026-11-20", "2026-11-20 14:30", "2026-11-20T14:30:05" (local time),
-- an age ("90m", "36h", "7d", "2w": that long ago) or epoch seconds.
function M.time(text, now_us)
  now_us = now_us or store.now_us()
  local n, unit = text:match("^(%d+%.?%d*)([smhdw])$")
  if n then
    local secs = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }
    return now_us - math.floor(tonumber(n) * secs[unit] * 1e6)
  end
  if text:match("^%d+%.?%d*$") and #text >= 9 then return math.floor(tonumber(text) * 1e6) end
  local y, mo, d, rest = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if y then
    local h, mi, s = 0, 0, 0
    if rest ~= "" then
      h, mi, s = rest:match("^[T ](%d%d):(%d%d):?(%d*)$")
      if not h then return core.fail("EINVAL", "'" .. text .. "' is not a time (use 2026-11-20, 2026-11-20 14:30, 36h or 7d)") end
    end
    local t = os.time { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h),
                        min = tonumber(mi), sec = tonumber(s) or 0 }
    return t * 1000000
  end
  return core.fail("EINVAL", "'" .. text .. "' is not a time (use 2026-11-20, 2026-11-20 14:30, 36h or 7d)")
end

local sums = [[count(*) AS calls,
  coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
  coalesce(sum(cache_creation_tokens), 0) AS cache_creation_tokens,
  coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
  coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens,
  sum(cost) AS cost,
  coalesce(sum(cost IS NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)), 0) AS unpriced,
  coalesce(sum(error IS NOT NULL), 0) AS errors,
  coalesce(sum(parse_error IS NOT NULL), 0) AS marked]]

-- report{since =, until_ =, session =, db =} -> {since, until_, total,
-- models, sessions} | nil, err, code (times in µs; session a full id; db
-- the handle to read with, default the process's connection). cost is nil
-- when no call in a group has a known price; unpriced counts the calls
-- whose price is unknown.
function M.report(opts)
  local h = opts.db or assert(store.open())
  local where, args = { "1" }, {}
  if opts.since then where[#where + 1] = "started_at >= ?"; args[#args + 1] = opts.since end
  if opts.until_ then where[#where + 1] = "started_at < ?"; args[#args + 1] = opts.until_ end
  if opts.session then where[#where + 1] = "session_id = ?"; args[#args + 1] = opts.session end
  local w = table.concat(where, " AND ")
  local out = { since = opts.since, until_ = opts.until_, session = opts.session }
  for _, part in ipairs {
    { "total", "SELECT " .. sums .. " FROM api_calls WHERE " .. w },
    { "models", "SELECT coalesce(routed_model, model, '(none)') AS model, " .. sums ..
      " FROM api_calls WHERE " .. w .. " GROUP BY 1 ORDER BY coalesce(sum(cost), 0) DESC, calls DESC" },
    { "sessions", "SELECT a.session_id AS session, s.started_at, s.cwd, " .. sums ..
      " FROM api_calls a LEFT JOIN sessions s ON s.id = a.session_id WHERE "
      .. (w:gsub("started_at", "a.started_at"):gsub("session_id", "a.session_id"))
      .. " GROUP BY a.session_id ORDER BY s.started_at DESC" },
  } do
    local rows, err, code = h:query(part[2], table.unpack(args))
    if not rows then return nil, err, code end
    out[part[1]] = part[1] == "total" and rows[1] or rows
  end
  return out
end

local function commas(n)
  n = math.type(n) and n or tonumber(n) or 0
  local s = tostring(math.floor(n or 0))
  while true do
    local k
    s, k = s:gsub("^(%d+)(%d%d%d)", "%1,%2")
    if k == 0 then return s end
  end
end

-- ---- one meaning per number ---------------------------------------------------------
--
-- Every view (`!turns`, `!status`, `procy show`, transcripts, `procy
-- usage`, the monitor) names the record's normalised usage the same way:
-- "in" the input not read from a cache, "cache read", "cache write", "out"
-- all output (reasoning included), "reasoning" the part of it spent
-- thinking. A cost is never shown as 0 when it is not known.

M.labels = { input_tokens = "in", cache_read_tokens = "cache read", cache_creation_tokens = "cache write",
             output_tokens = "out", reasoning_tokens = "reasoning" }

local function n_of(v) return math.type(v) and v or 0 end

-- tokens(u) -> "12,345 in · 67,890 cache read · 1,234 out (56 reasoning)":
-- the cache and reasoning parts only when there are some.
function M.tokens(u)
  u = u or {}
  local parts = { commas(n_of(u.input_tokens)) .. " in" }
  if n_of(u.cache_read_tokens) > 0 then parts[#parts + 1] = commas(u.cache_read_tokens) .. " cache read" end
  if n_of(u.cache_creation_tokens) > 0 then parts[#parts + 1] = commas(u.cache_creation_tokens) .. " cache write" end
  local out = commas(n_of(u.output_tokens)) .. " out"
  if n_of(u.reasoning_tokens) > 0 then out = out .. " (" .. commas(u.reasoning_tokens) .. " reasoning)" end
  parts[#parts + 1] = out
  return table.concat(parts, " · ")
end

-- money(cost, [unpriced]) -> "$0.0123"; "$?" when nothing is priced;
-- "≥ $0.0123 (2 calls unpriced)" when some calls are not. cost may be nil
-- or json.null.
function M.money(cost, unpriced)
  unpriced = math.type(unpriced) and unpriced or 0
  local known = type(cost) == "number" and cost or nil
  if not known or (known == 0 and unpriced > 0) then return "$?" end
  if unpriced > 0 then
    return ("≥ $%.4f (%d call%s unpriced)"):format(known, unpriced, unpriced == 1 and "" or "s")
  end
  return ("$%.4f"):format(known)
end

local function dollars(r)
  if r.cost == nil and r.unpriced == 0 then return "-" end
  return M.money(r.cost, r.unpriced)
end

local function when(us)
  return us and os.date("%Y-%m-%d %H:%M", us // 1000000) or "-"
end

-- format(report) -> text for the terminal
function M.format(r)
  local out = {}
  local function line(...) out[#out + 1] = string.format(...) end
  line("usage from %s to %s%s", r.since and when(r.since) or "the start", r.until_ and when(r.until_) or "now",
    r.session and (" in session " .. r.session:sub(1, 8)) or "")
  local cols = "%-30s %6s %12s %12s %12s %10s %10s  %s"
  local function row(name, x)
    line(cols, name, commas(x.calls), commas(x.input_tokens), commas(x.cache_read_tokens),
      commas(x.cache_creation_tokens), commas(x.output_tokens), commas(x.reasoning_tokens), dollars(x))
  end
  local L = M.labels
  line("")
  line(cols, "model", "calls", L.input_tokens, L.cache_read_tokens, L.cache_creation_tokens, L.output_tokens,
    L.reasoning_tokens, "cost")
  for _, m in ipairs(r.models) do row(m.model:sub(1, 30), m) end
  row("total", r.total)
  if #r.sessions > 1 or (#r.sessions == 1 and not r.session) then
    line("")
    line(cols, "session", "calls", L.input_tokens, L.cache_read_tokens, L.cache_creation_tokens, L.output_tokens,
      L.reasoning_tokens, "cost")
    for _, s in ipairs(r.sessions) do
      row((s.session or "(none)"):sub(1, 8) .. "  " .. when(s.started_at), s)
    end
  end
  if r.total.unpriced > 0 then
    local names, first = {}, nil
    for _, m in ipairs(r.models) do
      if m.unpriced > 0 then
        first = first or m.model
        names[#names + 1] = ("%s (%d call%s)"):format(m.model, m.unpriced, m.unpriced == 1 and "" or "s")
      end
    end
    line("")
    line("No known price for: %s. A cost marked ≥ leaves them out.", table.concat(names, ", "))
    line("Add prices to procy.lua ($ per million tokens):")
    line("  prices = { [\"%s\"] = { input = 3, output = 15, cache_read = 0.3 } }", first or "model-name")
  end
  if r.total.errors > 0 then line("%s ended in an error.", require("procy.commands").count(r.total.errors, "call")) end
  return table.concat(out, "\n") .. "\n"
end

return M
