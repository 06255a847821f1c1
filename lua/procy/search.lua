-- procy.search: one full-text index (SQLite FTS5, store/0007_search.sql)
-- over what the record holds: prompts, answers, tool calls (name, input,
-- result), API answers (their text and tool calls) and the terminal's
-- output as text. Requests are not indexed whole: their new prompt is the
-- turn's, their tool results the tool calls', and the history they repeat
-- would fill the index with copies.
--
-- The index follows the record from watermarks (search_state): update()
-- adds what was recorded since, in batches of one transaction each, and
-- search() runs it first, so a search sees everything recorded until
-- then. Nothing here runs on the relay's path.

local core = require "procy.core"
local json = require "procy.json"
local store = require "procy.store"
local vt = require "procy.vt"

local M = {}

M.BATCH = 2000          -- rows read per source per transaction
M.CHUNK = 4096          -- bytes of terminal text a hit stands for

local function text_of(v)
  if v == nil or v == json.null then return "" end
  if type(v) == "string" then return v end
  return json.encode(v)
end

-- an answer's content blocks as text: the words, and what tools it asked for
local function content_text(content)
  local blocks = type(content) == "string" and json.decode(content) or content
  if type(blocks) ~= "table" then return text_of(content) end
  local out = {}
  for _, b in ipairs(blocks) do
    if type(b) == "table" then
      if b.text then out[#out + 1] = b.text
      elseif b.thinking then out[#out + 1] = b.thinking
      elseif b.type == "tool_use" then out[#out + 1] = (b.name or "") .. " " .. text_of(b.input) end
    end
  end
  return table.concat(out, "\n")
end

-- Each source: the rows past its watermark, ordered by the watermark's
-- column, and what to index of each. `mark` is the column the watermark
-- follows; rows sharing its last value in a full batch wait for the next.
local sources = {
  { name = "prompt", mark = "id",
    sql = [[SELECT id AS mark, session_id, seq AS ref, started_at AS t, prompt AS text FROM turns
            WHERE id > ? ORDER BY id LIMIT ?]] },
  { name = "answer", mark = "ended_at",
    sql = [[SELECT ended_at AS mark, session_id, seq AS ref, ended_at AS t, coalesce(response, '') || ' ' || coalesce(error, '') AS text
            FROM turns WHERE ended_at > ? ORDER BY ended_at LIMIT ?]] },
  { name = "tool", mark = "ended_at",
    sql = [[SELECT ended_at AS mark, session_id, id AS ref, coalesce(started_at, ended_at) AS t,
              name || ' ' || coalesce(input, '') || ' ' || coalesce(result, '') AS text
            FROM tool_calls WHERE ended_at > ? ORDER BY ended_at LIMIT ?]] },
  { name = "call", mark = "id",
    sql = [[SELECT id AS mark, session_id, id AS ref, started_at AS t, content, error FROM api_calls
            WHERE id > ? ORDER BY id LIMIT ?]],
    text = function(r) return content_text(r.content) .. (r.error and ("\n" .. r.error) or "") end },
}

local function watermark(h, name)
  local row = h:query("SELECT last FROM search_state WHERE source = ?", name)[1]
  return row and row.last or 0
end

local function set_watermark(h, name, last)
  assert(h:exec("INSERT INTO search_state(source, last) VALUES (?, ?) ON CONFLICT(source) DO UPDATE SET last = excluded.last",
    name, last))
end

M.MAX_TEXT = 256 * 1024 -- of one row (a tool's result may be a whole file)

local function add(h, text, kind, session, ref, t)
  if #text > M.MAX_TEXT then text = text:sub(1, M.MAX_TEXT) end
  if text:find("%S") then
    assert(h:exec("INSERT INTO search(text, kind, session_id, ref, t) VALUES (?, ?, ?, ?, ?)", text, kind, session, ref, t))
  end
end

-- one batch of a source; true when more may wait
local function batch(h, src)
  local rows = assert(h:query(src.sql, watermark(h, src.name), M.BATCH))
  local n = #rows
  if n == 0 then return false end
  if n == M.BATCH and rows[1].mark ~= rows[n].mark then
    local last = rows[n].mark
    while n > 0 and rows[n].mark == last do n = n - 1 end
  end
  for i = 1, n do
    local r = rows[i]
    add(h, src.text and src.text(r) or text_of(r.text), src.name, r.session_id, r.ref, r.t)
  end
  set_watermark(h, src.name, rows[n].mark)
  return #rows == M.BATCH
end

-- the terminal: consecutive output of a session as text, a hit per CHUNK
-- (output whose tape is gone is left out: one lost tape does not stop the
-- index)
local function term_batch(h)
  local rows = assert(h:query([[SELECT id, session_id, t, coalesce(data, tape(tape_id, at, len, '')) AS data FROM term_events WHERE kind = 'o' AND id > ?
    ORDER BY id LIMIT ?]], watermark(h, "term"), M.BATCH))
  if #rows == 0 then return false end
  local open = {} -- session -> {parts, size, ref, t}
  local function flush(sid)
    local c = open[sid]
    if c then add(h, table.concat(c.parts), "term", sid, c.ref, c.t) end
    open[sid] = nil
  end
  for _, r in ipairs(rows) do
    local c = open[r.session_id]
    if not c then
      c = { parts = {}, size = 0, ref = r.id, t = r.t }
      open[r.session_id] = c
    end
    local text = vt.strip(r.data)
    c.parts[#c.parts + 1] = text
    c.size = c.size + #text
    if c.size >= M.CHUNK then flush(r.session_id) end
  end
  for sid in pairs(open) do flush(sid) end
  set_watermark(h, "term", rows[#rows].id)
  return #rows == M.BATCH
end

-- one batch in h:transaction (BEGIN IMMEDIATE): raises on failure
local function in_transaction(h, fn)
  local more, err = h:transaction(fn)
  if more == nil and err then error(err, 0) end
  return more
end

-- update([h]) -> rows of the record indexed (the count of batches run) |
-- nil, err, code. Each batch is a transaction that reads its watermark
-- inside it, so two procy processes indexing at once add nothing twice.
function M.update(h)
  h = h or store.open()
  local batches = 0
  local ok, err = pcall(function()
    for _, src in ipairs(sources) do
      while in_transaction(h, function() return batch(h, src) end) do
        batches = batches + 1
        core.sleep(0) -- the loop's other tasks run between batches
      end
      batches = batches + 1
    end
    while in_transaction(h, function() return term_batch(h) end) do
      batches = batches + 1
      core.sleep(0)
    end
  end)
  if not ok then return core.fail("EDB", "search index: " .. tostring(err)) end
  return batches + 1
end

-- A terminal hit stands for up to CHUNK bytes of text: the moment it
-- opens is that of the event where the matched words appear
local function at_event(h, r, words)
  local want, acc = words:lower(), ""
  local page = store.events_page(r.session_id, r.ref - 1, "o", 5000, h) or {}
  for _, ev in ipairs(page) do
    acc = (acc .. vt.strip(ev.data)):lower()
    if acc:find(want, 1, true) then
      r.rel_t, r.t, r.event = r.rel_t and r.rel_t + (ev.t - r.t) or nil, ev.t, ev.id
      return
    end
    if #acc > 2 * M.CHUNK then acc = acc:sub(-#want) end
  end
end

-- query(text) -> an FTS5 query matching every word of text (each quoted,
-- so punctuation is a word's, not FTS5's syntax); a word ending in * is a
-- prefix
function M.query(text)
  local words = {}
  for w in tostring(text):gmatch("%S+") do
    local prefix = w:match("^(.-)%*$")
    local body = (prefix or w):gsub('"', '""')
    if body ~= "" then words[#words + 1] = '"' .. body .. '"' .. (prefix and "*" or "") end
  end
  return table.concat(words, " ")
end

-- search(text, {session =, kind =, limit =, raw =}, [h]) -> hits, best
-- first: {kind, session_id, ref, t, rel_t (µs since the session's start),
-- parts = {text, hit, text, hit, ...}, turn (the turn's seq, for a tool
-- call), event (for the terminal: the event the words are in, t its time)}
-- | nil, err, code. raw: text is an FTS5 query as it is.
function M.search(text, o, h)
  o = o or {}
  local ok, err, code = M.update()
  h = h or store.open()
  if not ok then return nil, err, code end
  local q = o.raw and text or M.query(text)
  if q == "" then return core.fail("EINVAL", "nothing to search for") end
  local rows, qerr = h:query([[SELECT s.kind, s.session_id, s.ref, s.t, s.t - ss.started_at AS rel_t,
      snippet(search, 0, char(2), char(3), '…', 24) AS snippet,
      (SELECT tu.seq FROM tool_calls tc JOIN turns tu ON tu.id = tc.turn_id WHERE s.kind = 'tool' AND tc.id = s.ref) AS turn
    FROM search s LEFT JOIN sessions ss ON ss.id = s.session_id
    WHERE search MATCH ?1 AND (?2 IS NULL OR s.session_id = ?2) AND (?3 IS NULL OR s.kind = ?3)
    ORDER BY bm25(search) LIMIT ?4]], q, o.session, o.kind, math.max(1, math.min(o.limit or 50, 1000)))
  if not rows then return core.fail("EINVAL", "search: " .. tostring(qerr):gsub("^%u+: ", "")) end
  for _, r in ipairs(rows) do
    local parts, at = json.array(), 1
    local s = r.snippet or ""
    -- the marks around the hits are in the text before the boundary reads
    -- it, and could break a secret in two: looked at without them, and
    -- when anything is masked, shown masked with no hit marked
    local plain = s:gsub("[\2\3]", "")
    local masked = require("procy.redact").text(plain)
    if masked ~= plain then s = masked:gsub("[\2\3]", "") end
    while true do
      local a, b = s:find("\2", at, true)
      if not a then parts[#parts + 1] = s:sub(at) break end
      local c = s:find("\3", b + 1, true) or #s + 1
      parts[#parts + 1] = s:sub(at, a - 1)
      parts[#parts + 1] = s:sub(b + 1, c - 1)
      at = c + 1
    end
    r.parts, r.snippet = parts, nil
    if r.kind == "term" and parts[2] then at_event(h, r, parts[2]) end
  end
  return json.array(rows)
end

return M
