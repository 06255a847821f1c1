-- procy.redact: the one rule set that keeps secrets off the disk, for both
-- channels the record has: the API capture (headers, URLs, bodies, their
-- decoded content) and the terminal (output, input, typed lines). Both
-- recorder threads run this same module in their Lua states, with the
-- same settings, before anything is written.
--
-- A rule is a Lua pattern. The defaults (API keys and tokens) are always
-- on; the `redact` setting adds more. Each default has the literal text
-- every match starts with, so a plain search rules most text out at once.

local json = require "procy.json"

-- A setting that is no rule (core.fail's shape: this module also runs in
-- the recorders' Lua states, which have no procy.core).
local function invalid(msg) return nil, "EINVAL: " .. msg, "EINVAL" end

local M = {}

M.mask = "[REDACTED]"

local key = "[%w_%-]"
local AWS_SEP = "[\"'\\]*%s*[:=%s]%s*[\"'\\]*()"
local AWS_VALUE = ("\\?[%w/+]"):rep(40)
-- {prefix, pattern, literals}: every match starts with one of literals
-- (so the terminal's recorder skips text without them at once, and a
-- match is looked for only where one is)
M.default_patterns = {
  -- Anthropic, OpenAI and OpenRouter keys: random, so they hold a digit or
  -- a capital, and where a word runs into them, both (a word's end is no
  -- key's start: "task-management-system", "disk-usage-analyzer-v2")
  { "sk-", "sk%-" .. key:rep(16) .. key .. "*", { "sk-" }, keyish = true },
  { "gh", "gh[pousr]_" .. ("[%w]"):rep(30) .. "[%w]*",                -- GitHub tokens
    { "ghp_", "gho_", "ghu_", "ghs_", "ghr_" } },
  { "github_pat_", "github_pat_" .. ("[%w_]"):rep(30) .. "[%w_]*", { "github_pat_" } },
  { "AKIA", "AKIA" .. ("[%u%d]"):rep(16), { "AKIA" } },              -- AWS access key ids
  { "AIza", "AIza" .. key:rep(35), { "AIza" } },                     -- Google API keys
  { "xox", "xox[baprs]%-" .. ("[%w%-]"):rep(10) .. "[%w%-]*",         -- Slack tokens
    { "xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-" } },
  -- JWTs (header.payload.signature), known by their header's first field
  -- ({"alg", {"typ", {"kid"): "eyJ" alone is common in any base64
  { "eyJ", "eyJ" .. key:rep(7) .. key .. "*%.eyJ" .. key:rep(7) .. key .. "*%." .. key:rep(10) .. key .. "*",
    { "eyJhbGci", "eyJ0eXAi", "eyJraWQi" } },
  -- a PEM private key: from its BEGIN line to its END marker (newlines
  -- as they are or JSON-escaped), or, cut short, the key's first run
  { "-----BEGIN", "%-%-%-%-%-BEGIN [%u ]*PRIVATE KEY%-%-%-%-%-.-%-%-%-%-%-END", { "-----BEGIN" } },
  { "-----BEGIN", "%-%-%-%-%-BEGIN [%u ]*PRIVATE KEY%-%-%-%-%-[%w%s+/=]*", { "-----BEGIN" } },
  -- an AWS secret access key: 40 characters (a "/" may be written "\/"),
  -- known by the name before it (= or : or a space between: a setting, a
  -- JSON field, `aws configure set`). The position capture says where the
  -- secret starts: the name and its quotes stay, so JSON stays JSON.
  { "aws_", "aws_secret_access_key" .. AWS_SEP .. AWS_VALUE, { "aws_secret_access_key" } },
  { "AWS_", "AWS_SECRET_ACCESS_KEY" .. AWS_SEP .. AWS_VALUE, { "AWS_SECRET_ACCESS_KEY" } },
  { "ecretAccessKey", "[Ss]ecretAccessKey" .. AWS_SEP .. AWS_VALUE, { "SecretAccessKey", "secretAccessKey" } },
}

-- Headers whose whole value is a secret.
M.secret_headers = {
  ["x-api-key"] = true, ["authorization"] = true, ["proxy-authorization"] = true,
  ["cookie"] = true, ["set-cookie"] = true, ["x-procy-token"] = true,
  ["openai-api-key"] = true, ["x-goog-api-key"] = true, ["api-key"] = true,
}

-- Query parameters whose value is a secret (?key=, ?token=, ...).
M.secret_params = {
  key = true, api_key = true, apikey = true, ["api-key"] = true, token = true, access_token = true,
  auth = true, password = true, passwd = true, secret = true, client_secret = true,
  signature = true, sig = true, ["x-api-key"] = true, code = true,
}

-- The settings both recorders were given ({redact = {patterns...}});
-- nil: procy.config's, in the loop's state.
M.settings = nil

local cached, cached_for = nil, false -- false: not made yet (nil is a setting: none)
-- {{pattern, anchored, literals} or {pattern}, ...}: the defaults, then
-- the setting's
local function patterns()
  local extra = (M.settings or require("procy.config").get()).redact
  if cached_for ~= extra then
    cached = {}
    for i, p in ipairs(M.default_patterns) do cached[i] = { p[2], "^" .. p[2], p[3], p.keyish } end
    for _, p in ipairs(extra or {}) do cached[#cached + 1] = { p } end
    cached_for = extra
  end
  return cached
end

-- each(text, p, f): f(a, b) for matches of rule p in text. A default is
-- tried only where one of its literals is (a plain search, in C), anchored
-- there: the cost goes with how often they occur, not with the text's
-- length times the rules (an unanchored find tries the pattern at every
-- byte). Matches may overlap: spans joins them.
--
-- After a match the search goes on RETRY bytes before its end, not after
-- it: a second key may start inside a fixed-length match ("AKIAAKIA...")
-- and run past it, or a literal may straddle the end of a greedy one
-- ("ghp_...ghp_..."). A fixed-length default is under RETRY bytes long,
-- and a greedy one's match from inside another ends where that one does.
local RETRY = 40
local function each(text, p, f)
  if not p[3] then -- a rule of the setting's: no literal known
    local at = 1
    while true do
      local a, b = text:find(p[1], at)
      if not a then return end
      if b >= a then f(a, b) end
      at = math.max(a, b) + 1 -- past an empty match too
    end
  end
  for _, lit in ipairs(p[3]) do
    local at, ca, cb = 1, nil, nil -- the matches so far that touch, joined
    while true do
      local q = text:find(lit, at, true)
      if not q then break end
      local a, b, from = text:find(p[2], q)
      if type(from) == "number" then a = from end -- the secret starts there
      if a and p[4] then -- a key looks random (see the rule)
        local m = text:sub(a, b)
        local glued = q > 1 and text:sub(q - 1, q - 1):match("%w")
        local d, u = m:find("%d"), m:find("%u")
        if not (glued and d and u or not glued and (d or u)) then a, b = nil, nil end
      end
      if a and ca and a <= cb + 1 then
        cb = math.max(cb, b)
      elseif a then
        if ca then f(ca, cb) end
        ca, cb = a, b
      end
      at = a and math.max(q + 1, b - RETRY) or q + 1
    end
    if ca then f(ca, cb) end
  end
end

-- literals() -> {text, ...} such that a text holding none of them holds
-- no secret; nil when the `redact` setting adds patterns (then every text
-- must be looked at).
function M.literals()
  local extra = (M.settings or require("procy.config").get()).redact
  if extra and #extra > 0 then return nil end
  local out, seen = {}, {}
  for _, p in ipairs(M.default_patterns) do
    for _, l in ipairs(p[3] or {}) do
      if not seen[l] then out[#out + 1], seen[l] = l, true end
    end
  end
  -- a JSON escape can hide a key's characters ("sk\u002dant-..."):
  -- text with one is looked at (text() decodes them)
  out[#out + 1] = "\\u00"
  return out
end

-- check(list) -> true | nil, message: each pattern of a `redact` setting
-- compiles and cannot match the empty string (which would mask nothing,
-- forever).
function M.check(list)
  for i, p in ipairs(list or {}) do
    if type(p) ~= "string" then return invalid(("redact[%d] is a %s, not a pattern"):format(i, type(p))) end
    local ok, a, b = pcall(string.find, "x", p)
    if not ok then return invalid(("redact[%d] %q is not a Lua pattern: %s"):format(i, p, a)) end
    if a and b < a then return invalid(("redact[%d] %q matches the empty string"):format(i, p)) end
  end
  return true
end

-- A terminal's rows. An agent's screen wraps a long key across rows: its
-- head ends one row (perhaps before a border, "│"), its tail starts the
-- next (after a line break or a cursor move, indentation, a border), and
-- styling may sit inside it. Matched as bytes, the head is found (or, for
-- a fixed-length rule, not even that) and the tail stays. rows() joins
-- each such gap: between two key characters, escape sequences alone, or a
-- row change from a row as wide as the screen (within ROW_SLACK columns:
-- borders and padding), which is what wrapping looks like; a key that
-- ends a short line is left where it ends.
local ROW_SLACK = 8
local KEYCH = "[%w_%-%+/=]"

-- Wide characters (CJK, Hangul, fullwidth forms, emoji) take two columns.
local WIDE = { { 0x1100, 0x115F }, { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF }, { 0x4E00, 0x9FFF },
  { 0xA000, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF }, { 0xFE30, 0xFE4F }, { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 } }
local function columns(s)
  s = s:gsub("\27%[[%d;?<>=]*[%a@`~]", ""):gsub("\27[^%[]", "")
  local _, cont = s:gsub("[\128-\191]", "")
  local n = #s - cont
  if cont == 0 then return n end
  for a, b, c in s:gmatch("([\224-\239])([\128-\191])([\128-\191])") do
    local cp = (a:byte() & 15) << 12 | (b:byte() & 63) << 6 | (c:byte() & 63)
    for _, r in ipairs(WIDE) do
      if cp >= r[1] and cp <= r[2] then n = n + 1 break end
    end
  end
  local _, four = s:gsub("[\240-\247]", "")
  return n + four
end

-- widths(text) -> width(k): how wide the row is up to byte k, from its
-- start (after the last line break or carriage return, or the last cursor
-- move that starts a row); k only grows, and each byte is looked at once,
-- so a screenful of cursor moves costs one pass, not one per move
local function widths(text)
  local pos, width = 0, 0
  return function(k)
    local seg = text:sub(pos + 1, k)
    pos = k
    local start = seg:match(".*[\r\n]()")
    for after in seg:gmatch("\27%[[%d;?]*[HfGdEF]()") do
      if not start or after > start then start = after end
    end
    if start then width = columns(seg:sub(start)) else width = width + columns(seg) end
    return width
  end
end

-- gap(text, i) -> the end of the gap starting at i and whether it changes
-- row; nil when none starts there
local function gap(text, i)
  local j, row, n = i, false, #text
  while j <= n do
    local c = text:byte(j)
    if c == 27 then
      local _, e, final = text:find("^\27%[[%d;?<>=]*([%a@`~])", j)
      if not e then _, e = text:find("^\27[^%[]", j) end
      if not e then break end
      if final and final ~= "m" then row = true end
      j = e + 1
    elseif c == 13 or c == 10 then
      row = true
      j = j + 1
    elseif c == 32 then
      j = j + 1
    elseif text:find("^\226\148[\130\131]", j) or text:find("^\226\149[\145\142]", j) then -- │ ┃ ║ ╎
      j = j + 3
    else
      break
    end
  end
  if j == i then return nil end
  return j - 1, row
end

-- rows(text, cols) -> joined text, cuts: {{at, skipped}, ...} (at: the
-- joined text's byte after the cut; skipped: the bytes left out there)
local function rows(text, cols)
  local out, cuts, at, removed = {}, {}, 1, 0
  local i, width = 1, widths(text)
  while true do
    local k = text:find(KEYCH .. "[\27\r\n \226]", i)
    if not k then break end
    local e, row = gap(text, k + 1)
    if e and e < #text and text:sub(e + 1, e + 1):match(KEYCH) then
      local joins
      if row then
        joins = width(k) >= math.max(cols - ROW_SLACK, 16)
      else
        joins = not text:sub(k + 1, e):find(" ", 1, true) -- styling inside a word
      end
      if joins then
        out[#out + 1] = text:sub(at, k)
        removed = removed + (e - k)
        cuts[#cuts + 1] = { k + 1 - (removed - (e - k)), e - k, removed } -- {at, skipped, skipped so far}
        at = e + 1
      end
      i = e + 1
    else
      i = k + 1
    end
  end
  if #cuts == 0 then return nil end
  out[#out + 1] = text:sub(at)
  return table.concat(out), cuts
end

-- the original bytes of joined span [a, b]: one span per piece, the gaps
-- between them (line breaks, borders) left as they are
local function unjoin(a, b, cuts, list)
  local lo, hi = 1, #cuts + 1 -- the first cut after a (binary search)
  while lo < hi do
    local mid = (lo + hi) // 2
    if cuts[mid][1] <= a then lo = mid + 1 else hi = mid end
  end
  local shift, piece = lo > 1 and cuts[lo - 1][3] or 0, a
  for i = lo, #cuts do
    local c = cuts[i]
    if c[1] > b then break end
    list[#list + 1] = { piece + shift, c[1] - 1 + shift }
    piece, shift = c[1], c[3]
  end
  list[#list + 1] = { piece + shift, b + shift }
end

-- windows(text, cols, breaks) -> {{from, to}, ...}: where rows() needs
-- to look. A secret wrapped across rows starts with one of the rules'
-- literals, before the first row's end or across it (breaks: the line
-- feeds the recorder saw a literal straddle); each window runs from the
-- start of that row to WINDOW bytes on. With a pattern of the person's
-- own (no literals known), the whole text. Output whose every row is
-- full (base64, a log on a narrow screen) then costs rows() only near a
-- literal, not a join at every line.
local WINDOW = 8192
local function windows(text, cols, breaks)
  local lits = M.literals()
  if not lits then return { { 1, #text } } end
  local starts = {}
  for _, lit in ipairs(lits) do
    local at = 1
    while true do
      local q = text:find(lit, at, true)
      if not q then break end
      starts[#starts + 1] = q
      at = q + #lit
    end
  end
  for _, b in ipairs(breaks or {}) do starts[#starts + 1] = math.max(1, b - 48) end
  if #starts == 0 then return {} end
  table.sort(starts)
  local out, reach = {}, 8 * cols
  for _, q in ipairs(starts) do
    local back = math.max(1, q - reach)
    local from = text:sub(back, q):match(".*()\n")
    from = from and back + from or back -- the row's start
    local to = math.min(#text, q + WINDOW)
    local last = out[#out]
    if last and from <= last[2] + 1 then
      if to > last[2] then last[2] = to end
    else
      out[#out + 1] = { from, to }
    end
  end
  return out
end

-- spans(text, [cols], [breaks]) -> {a1, b1, a2, b2, ...}: where the
-- secrets are, sorted, overlapping ones joined (byte positions,
-- inclusive). cols: the text is a terminal's stream, its screen that wide
-- (0: not known): a key wrapped across rows is found whole (rows(), where
-- windows() says; breaks: see there), and a JSON string whose escapes
-- hide one is masked whole.
function M.spans(text, cols, breaks)
  local list = {}
  for _, p in ipairs(patterns()) do
    each(text, p, function(a, b) list[#list + 1] = { a, b } end)
  end
  if cols and cols > 0 and text:find("[\27\r\n]") then
    for _, w in ipairs(windows(text, cols, breaks)) do
      local part = w[1] == 1 and w[2] == #text and text or text:sub(w[1], w[2])
      local joined, cuts = rows(part, cols)
      if joined then
        local found = {}
        for _, p in ipairs(patterns()) do
          each(joined, p, function(a, b) unjoin(a, b, cuts, found) end)
        end
        for _, f in ipairs(found) do list[#list + 1] = { f[1] + w[1] - 1, f[2] + w[1] - 1 } end
      end
    end
  end
  -- a terminal's text cannot be re-encoded as text() does a body: a JSON
  -- string whose escapes hide a secret is masked whole (its quotes kept)
  if cols and text:find("\\u00") then
    local lits = json.escaped(text)
    for i = 1, #lits, 2 do
      local a, b = lits[i], lits[i + 1]
      local ok, v = pcall(json.decode, text:sub(a, b))
      if ok and type(v) == "string" and M.text(v) ~= v and b - a >= 2 then list[#list + 1] = { a + 1, b - 1 } end
    end
  end
  if #list == 0 then return list end
  table.sort(list, function(x, y) return x[1] < y[1] end)
  local out = {}
  for _, s in ipairs(list) do
    local n = #out
    if n > 0 and s[1] <= out[n] + 1 then
      if s[2] > out[n] then out[n] = s[2] end
    else
      out[n + 1], out[n + 2] = s[1], s[2]
    end
  end
  return out
end

-- redact(text) -> text with every secret replaced by M.mask: the spans
-- the terminal's recorder masks, so both channels mask alike
function M.redact(text)
  local sp = M.spans(text)
  if #sp == 0 then return text end
  local out, at = {}, 1
  for i = 1, #sp, 2 do
    out[#out + 1] = text:sub(at, sp[i] - 1)
    out[#out + 1] = M.mask
    at = sp[i + 1] + 1
  end
  out[#out + 1] = text:sub(at)
  return table.concat(out)
end

-- headers({{name, value}, ...}) -> a copy, secrets masked. An
-- Authorization header keeps its scheme ("Bearer [REDACTED]").
function M.headers(list)
  local out, values = {}, {}
  for i, h in ipairs(list) do
    local name, value = h[1], h[2]
    local lower = name:lower()
    if M.secret_headers[lower] then
      local scheme = lower:find("authorization", 1, true) and value:match("^(%a+) ")
      value = scheme and (scheme .. " " .. M.mask) or M.mask
    end
    out[i] = { name, value }
    values[i] = value
  end
  local all = table.concat(values, "\n")
  if M.redact(all) ~= all then -- a secret in some other header: find it
    for _, h in ipairs(out) do h[2] = M.redact(h[2]) end
  end
  return out
end

-- url(path) -> the path with secret query values masked (?key=..., and
-- any value a pattern finds)
function M.url(path)
  local base, query = path:match("^([^?]*)%?(.*)$")
  if not query then return M.redact(path) end
  query = query:gsub("([^&=]+)=([^&]*)", function(k, v)
    local name = k:lower():gsub("%%2d", "-"):gsub("%%5f", "_")
    if M.secret_params[name] and v ~= "" then return k .. "=" .. M.mask end
  end)
  return M.redact(base) .. "?" .. M.redact(query)
end

-- json_escapes(text) -> text: a secret written with JSON escapes
-- ("sk\u002dant...", or "sk\\u002dant..." in JSON inside a JSON string)
-- is in no pattern's sight until decoded. Each string literal holding an
-- escape is decoded, redacted (its own escapes too), and written back
-- (re-encoded) only when it held a secret; everything else keeps its bytes.
local ESCAPE_DEPTH = 8 -- JSON in a string in JSON ...: deeper is not looked into
function M.json_escapes(text, depth)
  depth = depth or 1
  if depth > ESCAPE_DEPTH or not text:find("\\", 1, true) then return text end
  local list = json.escaped(text)
  if #list == 0 then return text end
  local out, at = {}, 1
  for i = 1, #list, 2 do
    local a, b = list[i], list[i + 1]
    local s = json.decode(text:sub(a, b))
    if type(s) == "string" then
      -- decoded, it may be JSON itself (a tool's result, a body in a
      -- body): its own escapes too, one level down each time
      local r = M.json_escapes(M.redact(s), depth + 1)
      if r ~= s then
        out[#out + 1] = text:sub(at, a - 1)
        out[#out + 1] = json.encode(r)
        at = b + 1
      end
    end
  end
  if at == 1 then return text end
  out[#out + 1] = text:sub(at)
  return table.concat(out)
end

-- text(s) -> s fully redacted: patterns on the bytes, then on what JSON
-- escapes hide
function M.text(s)
  return M.json_escapes(M.redact(s))
end

-- boundary() -> the `redact` option of db.open for procy's record: every
-- text and blob a write binds goes through text() unless it holds none of
-- literals() (checked in C). procy.store's connection and the API
-- recorder's have it, so no table, column or path writes a secret.
function M.boundary()
  local lits = M.literals()
  return { rule = M.text, literals = lits and table.concat(lits, "\n") or nil }
end

return M
