-- procy.replay: a recorded terminal for a player that seeks. The output is
-- fed once through a screen model (procy.vt) and a snapshot of the screen
-- is kept every FRAME_BYTES of output and at each resize; a seek to any
-- moment is then one snapshot and at most FRAME_BYTES of output after it,
-- however long the session, instead of everything from the start.
--
-- Frames live in memory (the newest CACHE sessions), are made on the
-- first request and grow as a running session records more.
--
-- Bytes travel as records (the monitor's player reads them with a
-- DataView): t (µs since the session's start, float64), the data's length
-- (uint32), its kind (one byte: o output, r "COLSxROWS", s a snapshot to
-- draw on a reset terminal, m a marker, x the exit, g a gap), the data;
-- little-endian.

local store = require "procy.store"
local vt = require "procy.vt"

local M = {}

M.FRAME_BYTES = 64 * 1024
M.SCROLLBACK = 200   -- lines of scrollback a snapshot carries
M.CACHE = 8
M.PAGE = 2000        -- events read at a time

-- record(t, kind, data) -> one record of the byte stream
function M.record(t, kind, data)
  return string.pack("<dI4c1", t, #data, kind) .. data
end

-- records(s) -> iterator over t, kind, data (for tests and the export)
function M.records(s)
  local at = 1
  return function()
    if at > #s then return nil end
    local t, n, kind, next_at = string.unpack("<dI4c1", s, at)
    at = next_at + n
    return t, kind, s:sub(next_at, next_at + n - 1)
  end
end

local cache, order = {}, {}

local function size_of(data)
  local c, r = tostring(data or ""):match("^(%d+)x(%d+)$")
  c, r = tonumber(c), tonumber(r)
  if c and r and c >= 1 and r >= 1 and c <= 1000 and r <= 1000 then return c, r end
end

local function frame(ix, after, t)
  local data = assert(ix.screen:snapshot(M.SCROLLBACK))
  ix.frames[#ix.frames + 1] = { after = after, t = t, cols = ix.cols, rows = ix.rows, data = data }
  ix.since = 0
end

-- update(ix, [h]): reads what was recorded since and makes its frames
local function update(ix, h)
  while true do
    local page, err, code = store.events_page(ix.session, ix.last, "or", M.PAGE, h)
    if not page then return nil, err, code end
    for _, ev in ipairs(page) do
      if ev.kind == "r" then
        local c, r = size_of(ev.data)
        if c and (c ~= ix.cols or r ~= ix.rows) then
          ix.screen:resize(c, r)
          ix.cols, ix.rows = c, r
          frame(ix, ev.id, ev.t)
        end
      else
        ix.screen:feed(ev.data)
        ix.since = ix.since + #ev.data
        ix.bytes = ix.bytes + #ev.data
        if ix.since >= M.FRAME_BYTES then frame(ix, ev.id, ev.t) end
      end
      ix.last, ix.last_t = ev.id, ev.t
    end
    if #page < M.PAGE then return ix end
  end
end

-- index(session row, [h]) -> the session's frames, brought up to date:
-- {session, cols, rows, frames = {{after =, t =, cols =, rows =, data =}}, last, last_t, bytes}
-- | nil, err, code
function M.index(row, h)
  local ix = cache[row.id]
  if not ix then
    local c, r = row.cols or 80, row.rows or 24
    local first = store.events_page(row.id, 0, "r", 1, h)
    if first and first[1] then
      local fc, fr = size_of(first[1].data)
      if fc then c, r = fc, fr end
    end
    local screen, err, code = vt.new(c, r, M.SCROLLBACK)
    if not screen then return nil, err, code end
    ix = { session = row.id, start = row.started_at, cols = c, rows = r, screen = screen, frames = {},
           last = 0, last_t = row.started_at, bytes = 0, since = 0 }
    frame(ix, 0, row.started_at)
    cache[row.id] = ix
    order[#order + 1] = row.id
    if #order > M.CACHE then
      local old = table.remove(order, 1)
      if cache[old] then cache[old].screen:close() end
      cache[old] = nil
    end
  end
  local ok, err, code = update(ix, h)
  if not ok then return nil, err, code end
  return ix
end

-- forget(id): drops a session's frames (a test, a removed session)
function M.forget(id)
  if cache[id] then cache[id].screen:close() end
  cache[id] = nil
  for i, x in ipairs(order) do
    if x == id then table.remove(order, i) break end
  end
end

-- seek(ix, t, [h]) -> records that draw the screen at t (µs, absolute):
-- the size, the frame's snapshot, the output after it up to t; and the id
-- of the last event they hold
function M.seek(ix, t, h)
  local f = ix.frames[1]
  for _, x in ipairs(ix.frames) do
    if x.t > t then break end
    f = x
  end
  local out = { M.record(f.t - ix.start, "r", f.cols .. "x" .. f.rows), M.record(f.t - ix.start, "s", f.data) }
  local last = f.after
  while true do
    local page, err, code = store.events_page(ix.session, last, "or", M.PAGE, h, t)
    if not page then return nil, err, code end
    for _, ev in ipairs(page) do
      out[#out + 1] = M.record(ev.t - ix.start, ev.kind, ev.data)
      last = ev.id
    end
    if #page < M.PAGE then break end
  end
  return table.concat(out), last
end

-- events(ix, after, max_bytes, [h]) -> records of the events after id
-- `after` (output, resizes, markers, the exit, gaps), up to about
-- max_bytes; the last id they hold; whether more were recorded
function M.events(ix, after, max_bytes, h)
  local out, n, last = {}, 0, after
  while n < max_bytes do
    local page, err, code = store.events_page(ix.session, last, "ormxg", 500, h)
    if not page then return nil, err, code end
    for i, ev in ipairs(page) do
      out[#out + 1] = M.record(ev.t - ix.start, ev.kind, ev.data or "")
      n, last = n + #(ev.data or "") + 13, ev.id
      if n >= max_bytes then return table.concat(out), last, i < #page or #page == 500 end
    end
    if #page < 500 then return table.concat(out), last, false end
  end
  return table.concat(out), last, true
end

return M
