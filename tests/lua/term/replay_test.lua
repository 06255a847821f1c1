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
local person = { ["x-procy-token"] = srv.token } -- the person's monitor routes need its token
local r = assert(http.request { headers = person, url = srv.url .. "/api/sessions/" .. sid:sub(1, 8) .. "/terminal" })
local meta = json.decode(r.body)
T.ok(r.status == 200 and meta.cols == 100 and #meta.frames == #ix.frames and meta.marks[1].label == "here",
  "GET /api/sessions/ID/terminal: size, frames, markers", r.body:sub(1, 200))
r = assert(http.request { headers = person, url = srv.url .. "/api/sessions/" .. sid .. "/terminal/seek?t=" .. (900 * 1000) })
T.ok(r.status == 200 and r.headers["content-type"] == "application/octet-stream" and tonumber(r.headers["x-procy-last"]) <= 900,
  "…/terminal/seek?t=: the records that draw that moment")
T.is(drawn(r.body):text(), truth(t0 + 900 * 1000):text(), "which draw the screen at t")
r = assert(http.request { headers = person, url = srv.url .. "/api/sessions/" .. sid .. "/terminal/events?after=" .. (before - 5) })
local count = 0
for _ in replay.records(r.body) do count = count + 1 end
T.ok(count == 405 and r.headers["x-procy-more"] == "0", "…/terminal/events?after=: what came after", count)
T.is(assert(http.request { headers = person, url = srv.url .. "/api/sessions/" .. sid .. "/terminal/seek" }).status, 400, "a seek without t is refused")
T.is(assert(http.request { headers = person, url = srv.url .. "/api/sessions/ffff0000/terminal" }).status, 404, "an unknown session is 404")
serve.stop(srv)

-- ---- procy play: queries never reach the terminal, which is given back ---------------------
local pty = require "procy.pty"
local pl = pty.player()
local queries = {
  { "\27[c", "DA1" }, { "\27[0c", "DA1 with 0" }, { "\27[>c", "DA2" }, { "\27[=c", "DA3" }, { "\27Z", "DECID" },
  { "\27[5n", "status report" }, { "\27[6n", "cursor position" }, { "\27[?6n", "DEC cursor position" },
  { "\27[?2004$p", "DECRQM" }, { "\27[12$p", "ANSI DECRQM" }, { "\27[>0q", "XTVERSION" }, { "\27[14t", "window size in pixels" },
  { "\27[18t", "text area size" }, { "\27[21t", "title report" }, { "\27[?u", "kitty keyboard flags" },
  { "\27]10;?\7", "foreground colour (BEL)" }, { "\27]11;?\27\\", "background colour (ST)" },
  { "\27]4;1;?\7", "palette entry" }, { "\27]52;c;?\7", "clipboard" }, { "\27P$qm\27\\", "DECRQSS" },
  { "\27P+q544e\27\\", "XTGETTCAP" }, { "\27_Gi=31,a=q;AAAA\27\\", "kitty graphics query" }, { "\5", "ENQ" },
}
for _, q in ipairs(queries) do
  T.is(pl:filter("a" .. q[1] .. "b"), "ab", "play: a " .. q[2] .. " is not passed on")
end
local kept = "\27[?1049h\27[?1000h\27[1;31mred\27[0m\27[2J\27[H\27[5;10H\27]0;title\7\27]8;;http://x\27\\link\27]8;;\27\\"
  .. "\27[22t\27[23t\27[>4;1m\27[>1u\27[3 q\27(0lq\27(B\27P1;2|17/ab\27\\\27[?25l"
T.is(pl:filter(kept), kept, "play: everything else passes as recorded (modes, colours, titles, links, pushes, DCS data)")
local split = ""
for i = 1, #"x\27[6ny\27]11;?\7z" do split = split .. pl:filter(("x\27[6ny\27]11;?\7z"):sub(i, i)) end
T.is(split, "xyz", "play: a query split across writes is still taken out")
local long = "\27]52;c;" .. ("QUJD"):rep(3000) .. "\7"
T.is(pl:filter("<" .. long .. ">"), "<" .. long .. ">", "play: a long string (a clipboard set) passes whole")
T.ok(pl:filter("a\27[" .. ("1;"):rep(3000) .. "m\27[6nb") == "ab",
  "play: an overlong CSI (no query is) is dropped to its final byte, and a query after it still taken out")
for _, q in ipairs {
  { "\27]11;?\27[m", "\27[m", "a query cut short by a new sequence (terminals may act on it)" },
  { "\27P$qm\24", "\24", "a DCS query cut short by CAN" },
  { "\27[>\194\1556n", "", "a UTF-8 C1 CSI inside a CSI starts a new one (the one cut short is dropped, as terminals drop it)" },
  { "\27]0;x\194\1556n\7", "\27]0;x\27\\\7", "... and inside an OSC, which ends there (an ST, so nothing after runs on into it)" },
  { "\27]11\27[6n;?\7", "\27]11\27\\;?\7", "a string cut short, its cutter a dropped query: what follows does not become its text" },
  { "\27\27[6nZ", "Z", "an ESC another one cut short does not join what follows (ESC Z would ask)" },
  { "\27]4;0;?;1;?" .. (";2;?"):rep(2000) .. "\7", "", "a query longer than the buffer is dropped whole" },
  { "\27P+q" .. ("544e;"):rep(2000) .. "\27\\", "", "a long XTGETTCAP too" },
  { "\27[1$w\27[2$u\27[1;1;2;2*y\27[#|\27[?4m\27[?1;1S", "", "DECRQPSR, DECRQTSR, DECRQCRA, XTREPORTSGR, XTQMODKEYS, XTSMGRAPHICS" },
  { "\27]21;fg=?;bg=?\27\\\27]1337;ReportCellSize\7", "", "kitty's key=? and iTerm2's Report" },
  { " \1556n", " ", "a raw 8-bit C1 CSI where no UTF-8 character is under way" },
  { "\226\156\1556n", "\226\156\1556n", "but the same byte inside a UTF-8 character is text" },
} do
  T.is(pl:filter("<" .. q[1] .. ">"), "<" .. q[2] .. ">", "play: " .. q[3])
end
T.is(pl:filter("a" .. long:sub(1, -2) .. "\27[6nb"), "a" .. long:sub(1, -2) .. "\27\\b",
  "play: a long string broken off by a new sequence (as terminals take it): ended there, that query taken out")
T.is(pl:filter("a\194\15556n\194\157\49\49;?\194\156b"), "ab", "play: queries with UTF-8 C1 introducers (U+009B CSI, U+009D OSC ... U+009C ST) too")
T.is(pl:filter("price \194\162 5"), "price \194\162 5", "play: other characters that start with C2 pass")
for _, at in ipairs { 4090, 4091, 4092, 4093, 4094 } do -- a string that ends right where the buffer does
  local osc = "\27]0;" .. ("x"):rep(at) .. "\7"
  T.is(pl:filter("<" .. osc .. ">"), "<" .. osc .. ">", "play: a string of " .. #osc .. " bytes ending at the buffer's edge passes whole")
end
pl:close()
pl:close()
T.ok(not pcall(pl.filter, pl, "x"), "play: a closed player raises")

-- in a real terminal (tmux answers the queries a terminal answers): to the
-- end, and stopped by Ctrl-C halfway
local tmux = require "lib.tmux"
local function recording(late)
  local id = assert(store.new_session { argv = { "agent" }, cwd = dir, cols = 80, rows = 24, mode = "pty" })
  local st = store.find_session(id).started_at
  local function ev(dt, kind, data)
    assert(h:exec("INSERT INTO term_events(session_id, t, kind, data) VALUES (?, ?, ?, ?)", id, st + dt, kind, data))
  end
  ev(0, "r", "80x24")
  ev(1000, "o", "\27[?1049h\27[?1000h\27[?1006h\27[?2004h\27[?25l\27[3;10rplaying here\27[c\27[>c\27[6n\27]11;?\7\27[14t")
  ev(300000, "o", " and more")
  if late then ev(60e6, "o", " much later") end
  return id
end
local q = tmux.quote
for _, case in ipairs { { "to its end", false }, { "stopped by Ctrl-C", true } } do
  local id = recording(case[2])
  local term = tmux.new { cols = 80, rows = 24, cmd = "bash -c " .. q(q(T.bin) .. " --db " .. q(dir .. "/rec.db") .. " play " .. id
    .. "; stty -icanon min 0 time 10; x=$(dd bs=256 count=1 2>/dev/null | od -An -c | tr -s ' \\n' ' '); stty icanon;"
    .. " echo \"got[$x]\"; echo end-of-test") }
  term:see("playing here", "procy play " .. case[1] .. ": the recording shows", 10)
  if case[2] then term:keys("C-c") end
  local screen = term:see("end%-of%-test", "procy play " .. case[1] .. ": it ends and the shell goes on", 15) or ""
  T.like(screen, "got%[%]", "procy play " .. case[1] .. ": nothing was typed into the shell (no terminal answered a query)")
  local flags = term:tmux { "display-message", "-p", "-t", "main", "#{alternate_on} #{mouse_any_flag} #{cursor_flag} #{scroll_region_upper}" }
  T.is(flags and flags:gsub("%s+$", ""), "0 0 1 0", "procy play " .. case[1] .. ": main screen, no mouse tracking, cursor shown, no scroll region")
  term:kill()
end

proc.run { "rm", "-rf", dir }
return T.done()
