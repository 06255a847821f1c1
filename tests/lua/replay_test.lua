-- procy.replay against a real record: a session's output made of the
-- sequences agents write (colours, the alternate screen, scroll regions,
-- wide characters, resizes), its frames, and seeks checked against the
-- screen fed everything from the start (what a player without snapshots
-- does). Also the growth of a running session, the events' paging, and
-- the monitor's routes for the player.
local T = require "lib.tap"
local http = require "procy.http"
local json = require "procy.json"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"
local replay = require "procy.replay"
local vt = require "procy.vt"

local dir = T.tmpdir()
assert(config.load { config = T.write(dir .. "/procy.lua", ("return { db = %q }"):format(dir .. "/rec.db")) })
local h = assert(store.open())

-- ---- procy.vt ---------------------------------------------------------------------------------
local v = assert(vt.new(20, 3))
v:feed("hello\r\n\27[1;31mworld\27[0m")
T.is(v:text(), "hello\nworld", "vt: the screen's text")
local x, y, shown, alt = v:cursor()
T.ok(x == 6 and y == 2 and shown and not alt, "vt: the cursor, 1-based", ("%s %s"):format(x, y))
local w = assert(vt.new(20, 3))
w:feed(v:snapshot())
T.is(w:text(), v:text(), "vt: a snapshot draws the same screen")
T.ok(select(3, vt.new(0, 3)) == "EINVAL", "vt: a bad size is EINVAL")
T.ok(v:resize(10, 2) and v:text() == "hello\nworld", "vt: resize keeps what fits")
v:close()
T.ok(not pcall(v.feed, v, "x"), "vt: a closed screen raises")

-- ---- a session's output ---------------------------------------------------------------------
local sid = assert(store.new_session { argv = { "agent" }, cwd = dir, cols = 80, rows = 24, mode = "pty" })
local row = store.find_session(sid)
local t0 = row.started_at
local n = 0
local function out(kind, data)
  n = n + 1
  assert(h:exec("INSERT INTO term_events(session_id, t, kind, data) VALUES (?, ?, ?, ?)", sid, t0 + n * 1000, kind, data))
end
out("r", "80x24")
local pieces = {
  "\27[1;38;2;215;119;87m✻\27[0m Welcome to the agent\r\n",
  "\27[?1049h\27[2J\27[H\27[44m full screen \27[0m\27[5;10Hthere\27[?1049l",
  "\27[3;20r\27[20;1H\27M\27[4hins 日本\27[4l\27[r",
  "\27(0lqqqk\27(B plain\r\n",
  "line with a wide 漢字 and e\204\129 combining\r\n",
}
for i = 1, 1500 do
  out("o", pieces[i % #pieces + 1] .. ("%05d "):format(i) .. ("x"):rep(i % 70) .. "\r\n")
  if i == 700 then out("r", "100x30") end
  if i == 900 then out("m", "here") end
end
local total = h:query("SELECT sum(length(data)) AS n FROM term_events WHERE session_id = ? AND kind = 'o'", sid)[1].n

local ix = assert(replay.index(row))
T.ok(#ix.frames >= total // replay.FRAME_BYTES, "a frame every 64 KB of output, and at the resize",
  #ix.frames .. " frames for " .. total .. " bytes")
T.is(ix.cols .. "x" .. ix.rows, "100x30", "the index follows the resize")

-- the screen at t the slow way: everything from the start
local function truth(t)
  local s = assert(vt.new(80, 24, replay.SCROLLBACK))
  for ev in store.events(sid, "or") do
    if ev.t > t then break end
    if ev.kind == "r" then s:resize(ev.data:match("^(%d+)x(%d+)$")) else s:feed(ev.data) end
  end
  return s
end
local function drawn(records)
  local s
  for _, kind, data in replay.records(records) do
    if kind == "r" then
      local c, r = data:match("^(%d+)x(%d+)$")
      s = s or assert(vt.new(tonumber(c), tonumber(r), replay.SCROLLBACK))
      s:resize(tonumber(c), tonumber(r))
    elseif kind == "s" or kind == "o" then
      s:feed(data)
    end
  end
  return s
end
local bad = {}
for _, k in ipairs { 1, 2, 350, 699, 700, 701, 702, 1000, 1400, n } do
  local t = t0 + k * 1000
  local records, last = assert(replay.seek(ix, t))
  local got, want = drawn(records), truth(t)
  local gx, gy = got:cursor()
  local wx, wy = want:cursor()
  if got:text() ~= want:text() or gx ~= wx or gy ~= wy or last > k then bad[#bad + 1] = k end
end
T.ok(#bad == 0, "a seek anywhere draws what feeding everything from the start draws", "differs at events " .. table.concat(bad, ", "))
local records = assert(replay.seek(ix, t0 + n * 1000))
local bytes = 0
for _, kind, data in replay.records(records) do if kind == "o" then bytes = bytes + #data end end
T.ok(bytes <= replay.FRAME_BYTES + 4096, "and needs at most a frame's worth of output", bytes .. " bytes")

-- paging, and a session that goes on
local seen, after, pages = 0, 0, 0
repeat
  local body, last, more = assert(replay.events(ix, after, 64 * 1024))
  for _ in replay.records(body) do seen = seen + 1 end
  after, pages = last, pages + 1
until not more
T.is(seen, n, "events() pages through every event")
T.ok(pages > 1, "in pages of about the size asked", pages .. " pages")
local frames, before = #ix.frames, n
for i = 1, 400 do out("o", ("more output %d "):format(i) .. ("y"):rep(200) .. "\r\n") end
ix = assert(replay.index(row))
T.ok(#ix.frames > frames and ix.last == n, "a running session's new output makes new frames", #ix.frames .. " frames")

-- ---- the routes -------------------------------------------------------------------------------
local serve = require "procy.serve"
local srv = assert(serve.start { port = 0, upstream = "http://127.0.0.1:9", session = sid })
local r = assert(http.request { url = srv.url .. "/api/sessions/" .. sid:sub(1, 8) .. "/terminal" })
local meta = json.decode(r.body)
T.ok(r.status == 200 and meta.cols == 100 and #meta.frames == #ix.frames and meta.marks[1].label == "here",
  "GET /api/sessions/ID/terminal: size, frames, markers", r.body:sub(1, 200))
r = assert(http.request { url = srv.url .. "/api/sessions/" .. sid .. "/terminal/seek?t=" .. (900 * 1000) })
T.ok(r.status == 200 and r.headers["content-type"] == "application/octet-stream" and tonumber(r.headers["x-procy-last"]) <= 900,
  "…/terminal/seek?t=: the records that draw that moment")
T.is(drawn(r.body):text(), truth(t0 + 900 * 1000):text(), "which draw the screen at t")
r = assert(http.request { url = srv.url .. "/api/sessions/" .. sid .. "/terminal/events?after=" .. (before - 5) })
local count = 0
for _ in replay.records(r.body) do count = count + 1 end
T.ok(count == 405 and r.headers["x-procy-more"] == "0", "…/terminal/events?after=: what came after", count)
T.is(assert(http.request { url = srv.url .. "/api/sessions/" .. sid .. "/terminal/seek" }).status, 400, "a seek without t is refused")
T.is(assert(http.request { url = srv.url .. "/api/sessions/ffff0000/terminal" }).status, 404, "an unknown session is 404")
serve.stop(srv)

proc.run { "rm", "-rf", dir }
return T.done()
