-- The terminal's record, with procy on a pty of the test's own: secrets
-- printed or typed never reach the disk (one rule set with the API), input
-- at a hidden prompt of a full-screen program is not recorded, output goes
-- to the record's tape, a database that refuses writes costs bounded
-- memory and nothing else, and a full disk costs only output, with a gap
-- event saying so. (The spill file, for what memory cannot hold while the
-- database refuses writes, is tested in tests/c/term/test_record.c.)
local T = require "lib.tap"
local core = require "procy.core"
local db = require "procy.db"
local json = require "procy.json"
local proc = require "procy.proc"

local dir = T.tmpdir()
local record = dir .. "/record.db"
local env = { HOME = dir, XDG_STATE_HOME = dir .. "/state", XDG_CONFIG_HOME = dir .. "/config" }
local peak_kb = require("lib.measure").peak_kb

local function procy(argv)
  local full = { T.bin, "--db", record, "--" }
  for _, a in ipairs(argv) do full[#full + 1] = a end
  return assert(proc.spawn(full, { pty = { cols = 100, rows = 30 }, env = env }))
end

-- reads what procy shows until pattern appears (or it ends)
local function wait_for(p, pattern, seen)
  seen = seen or ""
  while not seen:find(pattern) do
    local c = p:read()
    if not c then break end
    seen = seen .. c
  end
  return seen
end

local function session_data(kinds)
  local h = assert(db.open(record, { migrations = false }))
  local row = h:query("SELECT id FROM sessions ORDER BY started_at DESC LIMIT 1")[1]
  local out = {}
  for k in kinds:gmatch(".") do
    out[k] = h:query("SELECT group_concat(data, '') AS d FROM (SELECT coalesce(data, tape(tape_id, at, len)) AS data FROM term_events WHERE session_id = ? AND kind = ? ORDER BY id)",
      row.id, k)[1].d or ""
  end
  h:close()
  return out, row.id
end

local KEY = "sk-ant-api03-" .. ("Zq7_Wm3"):rep(6)

-- a key printed in two pieces a moment apart, and one typed and echoed
do
  local half = #KEY // 2
  local p = procy { "sh", "-c", ("printf 'key: %s'; sleep 0.3; printf '%s done\\n'; echo whole %s; read line; echo got $line")
    :format(KEY:sub(1, half), KEY:sub(half + 1), KEY) }
  local seen = wait_for(p, "whole")
  p:write("typed " .. KEY .. "\r")
  seen = wait_for(p, "got", seen)
  while p:read() do end
  p:wait(10)
  T.ok(seen:find(KEY:sub(half + 1), 1, true), "the terminal shows the agent's output as it was")
  local d = session_data("oil")
  local all = d.o .. d.i .. d.l
  T.ok(not all:find(KEY:sub(1, 20), 1, true) and not all:find(KEY:sub(-20), 1, true),
       "no key in the recorded output, input or lines", all:sub(1, 300))
  T.like(d.o, "key: %[REDACTED%] done", "a key split across two writes is masked where it starts")
  T.like(d.o, "whole %[REDACTED%]", "one written whole too")
  T.like(d.i, "typed %[REDACTED%]", "typed input is masked")
  T.like(d.l, "typed %[REDACTED%]", "and so is the typed line")
end

-- every kind of key at every offset of the recorder's 16-byte scan, in
-- text whose letters are the keys' own (base64), and at a stream's very end
do
  local keys = { KEY, "ghp_" .. ("aB3dE5fG7h"):rep(4), "AKIA" .. ("ABCD2345"):rep(2),
    "AIza" .. ("Sy_x-9QwErTy"):rep(3), "xoxb-" .. ("1234-abcDEF"):rep(2) }
  local lines, filler = {}, "skghAKAIxoQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
  for off = 0, 33 do
    for k, key in ipairs(keys) do
      lines[#lines + 1] = ("%02d%d %s%s %s"):format(off, k, filler:sub(1, off), key, filler)
    end
  end
  local text = table.concat(lines, "\n")
  local file = T.write(dir .. "/keys.txt", text .. "\n" .. keys[5])
  local p = procy { "cat", file }
  while p:read() do end
  p:wait(10)
  local d = session_data("o")
  local left = {}
  for _, key in ipairs(keys) do
    if d.o:find(key:sub(1, 16), 1, true) then left[#left + 1] = key:sub(1, 6) end
  end
  T.is(table.concat(left, " "), "", "no key at any offset reaches the record")
  local _, masked = d.o:gsub("%[REDACTED%]", "")
  T.is(masked, 34 * #keys + 1, "each one masked where it was, the last at the very end")
end

-- a full-screen program's password prompt (raw mode, no echo: '*'), then a

-- a key the agent's screen wraps across rows (the pty is 100 columns): at
-- the row's edge and on, inside a box's borders, with a cursor move between
-- its pieces, styled in its middle, and the head written a round before
-- the tail; a short line that ends in a key keeps the next line's words
do
  local g = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4o5p6q" -- fixed length: its head alone matches nothing
  local long = KEY .. ("Xy9_"):rep(10)
  local head = 100 - #"wrapped: "
  local lines = {
    "wrapped: " .. long:sub(1, head) .. "\r\n" .. long:sub(head + 1) .. " after-one\r\n",
    "\226\148\130 boxed: " .. ("p"):rep(65) .. " " .. g:sub(1, 20) .. " \226\148\130\r\n\226\148\130   "
      .. g:sub(21) .. " after-two \226\148\130\r\n",
    ("m"):rep(80) .. g:sub(1, 18) .. "\27[1B\27[1G" .. g:sub(19) .. " after-three\r\n",
    "styled: " .. KEY:sub(1, 30) .. "\27[1m" .. KEY:sub(31) .. "\27[0m after-four\r\n",
    "short " .. KEY .. "\r\nkeepme after-five\r\n",
    ("q"):rep(96) .. " AI\r\n" .. g:sub(3) .. " after-ten\r\n", -- the literal itself cut by the row's end
  }
  -- and rows whose tail comes a round later: a long head, a short one, one
  -- styled and one with its line erased at the row's end
  local slow = {
    { "slow: " .. long:sub(1, 100 - #"slow: ") .. "\r\n", long:sub(100 - #"slow: " + 1) .. " after-six\r\n" },
    { ("s"):rep(87) .. " " .. g:sub(1, 12) .. "\r\n", g:sub(13) .. " after-seven\r\n" },
    { ("s"):rep(69) .. " \27[36m" .. g:sub(1, 30) .. "\27[39m\r\n", "\27[36m" .. g:sub(31) .. "\27[39m after-eight\r\n" },
    { ("s"):rep(69) .. " " .. g:sub(1, 30) .. "\27[K\r\n", g:sub(31) .. " after-nine\r\n" },
  }
  local f = T.write(dir .. "/wrapped.txt", table.concat(lines))
  local argv, script = { "sh", "-c", 'cat "$0"', f }, {}
  for i, sl in ipairs(slow) do
    argv[#argv + 1] = T.write(dir .. "/slow-head-" .. i, sl[1])
    argv[#argv + 1] = T.write(dir .. "/slow-tail-" .. i, sl[2])
    script[#script + 1] = ('; cat "$%d"; sleep 0.3; cat "$%d"'):format(2 * i - 1, 2 * i)
  end
  argv[3] = argv[3] .. table.concat(script)
  local p = procy(argv)
  while p:read() do end
  p:wait(10)
  local d = session_data("o")
  local left = {}
  for _, piece in ipairs { long:sub(head + 1, head + 12), long:sub(-12), g:sub(-12), g:sub(5, 12), g:sub(13, 24), g:sub(3, 14), KEY:sub(-12),
                           KEY:sub(14, 26) } do
    if d.o:find(piece, 1, true) then left[#left + 1] = piece end
  end
  T.is(table.concat(left, " "), "", "no piece of a wrapped, boxed, moved or styled key reaches the record")
  local kept = {}
  for i, word in ipairs { "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten" } do
    if not d.o:find("after-" .. word, 1, true) then kept[#kept + 1] = i end
  end
  T.is(table.concat(kept, " "), "", "the words after each are kept")
  T.ok(d.o:find("\r\nkeepme after-five", 1, true), "a key that ends a short line leaves the next line as it was")
  T.ok(d.o:find("p %[REDACTED%] \226\148\130\r*\n\226\148\130   %[REDACTED%] after%-two"),
    "the rows and borders stay, each piece masked", ("%q"):format(d.o:match("boxed.-after%-two") or ""))
end
-- question it echoes
do
  local prog = T.write(dir .. "/prompt.py", [[
import os, sys, tty
tty.setraw(0)
def ask(label, show):
    os.write(1, label)
    got = b""
    while True:
        c = os.read(0, 1)
        if c in (b"\r", b"\n"):
            return got
        got += c
        os.write(1, show(c))
pw = ask(b"Password: ", lambda c: b"*")
os.write(1, b"\r\nlength %d\r\n" % len(pw))
name = ask(b"Name: ", lambda c: c)
os.write(1, b"\r\nhello " + name + b"\r\n")
]])
  local p = procy { "python3", prog }
  local seen = wait_for(p, "Password: ")
  p:write("hunter2-Passw0rd\r")
  seen = wait_for(p, "length", seen)
  p:write("alice\r")
  seen = wait_for(p, "hello alice", seen)
  while p:read() do end
  p:wait(10)
  T.like(seen, "length 16", "the program got the password")
  local d = session_data("oil")
  T.ok(not (d.i .. d.l .. d.o):find("hunter2", 1, true), "what was typed at the hidden prompt is not recorded",
       ("input %q lines %q"):format(d.i, d.l))
  T.ok(d.i:find("alice", 1, true), "what the program echoed is", ("%q"):format(d.i))
  T.ok(d.i:find("\r", 1, true), "and the keys that submit the answers")
end

-- a busy full-screen agent that echoes a second late (and draws nothing
-- meanwhile): what was typed is no hidden input, it is recorded
do
  local p = procy { "sh", "-c", "stty raw -echo; printf ready; sleep 1; exec head -c 10" }
  wait_for(p, "ready")
  p:write("late line\r") -- ten bytes: head shows them and ends
  while p:read() do end
  p:wait(10)
  local d = session_data("il")
  T.ok(d.i:find("late line", 1, true), "keys a busy agent echoes a second late are recorded", ("%q"):format(d.i))
  T.ok(d.l:find("late line", 1, true), "and so is their line", ("%q"):format(d.l))
end

-- a database another writer holds for 4 s while the agent writes 4 MB/s:
-- the output goes to the tape meanwhile, memory holds only the rows, and
-- everything is recorded
-- ~4 MB/s for that long, of lines with nothing a rule could mask
local burst = T.write(dir .. "/burst.py", [[
import os, sys, time
for i in range(int(sys.argv[1]) * 10):
    os.write(1, (("%06d:" % i) + ("abcdefghijklmnopqrstuvwxyz0123456789" * 11112)[:399993] + "\n").encode())
    time.sleep(0.1)
os.write(1, b"END\n")
]])
-- "ready" once the terminal echoes nothing: "go" typed before that would be
-- echoed, 4 bytes of output more than the burst (seen under load)
local function agent_burst(seconds)
  return ("stty raw -echo; printf ready; read go; exec python3 %s %d"):format(burst, seconds)
end
local function burst_size(seconds) return #"ready" + seconds * 10 * 400001 + 4 end

-- locked(seconds, held, [before], [each]) -> bytes shown, session id: the
-- agent bursts for seconds while another writer holds the record for held
-- seconds; before(sid) runs first, each(p, sid) at every read
local function locked(seconds, held, before, each)
  local p = procy { "sh", "-c", agent_burst(seconds) }
  local shown = ""
  while not shown:find("ready", 1, true) do shown = shown .. assert(p:read(), "the agent never got ready") end
  local _, sid = session_data("")
  if before then before(sid) end
  local other = assert(db.open(record, { migrations = false, busy_timeout = 0 }))
  assert(other:exec("BEGIN IMMEDIATE"))
  p:write("go\n")
  local n, t0 = 0, core.now()
  while true do
    local c = p:read()
    if not c then break end
    n = n + #c
    if each then each(p, sid) end
    if other and core.now() - t0 > held then
      assert(other:exec("COMMIT"))
      other:close()
      other = nil
    end
  end
  if other then other:exec("COMMIT") other:close() end
  p:wait(30)
  return n, sid
end

do
  local peak, spilled, tape = 0, false, 0
  local fs = require "procy.fs"
  local n, sid = locked(5, 4, function() tape = (fs.stat(record .. "-term") or { size = 0 }).size end,
    function(p, id)
      peak = peak_kb(p:pid(), peak)
      if not spilled and fs.stat(record .. "-spill-" .. id) then spilled = true end
    end)
  local d = session_data("og")
  T.ok(n > 15e6, "the agent wrote its output meanwhile", n .. " bytes")
  T.ok(fs.stat(record .. "-term").size - tape >= burst_size(5), "its output went to the record's tape as it came",
       ("%d bytes"):format(fs.stat(record .. "-term").size - tape))
  T.ok(not spilled, "nothing waited in a spill file: memory held only the rows")
  if T.sanitized then T.skip("procy's memory stays bounded", "under " .. os.getenv("PROCY_SANITIZED"))
  else T.ok(peak < 24 * 1024, "procy's memory stays bounded meanwhile", ("peak %d KB"):format(peak)) end
  T.is(#d.o, burst_size(5), "once it can write again, every byte is recorded")
  T.is(d.g, "", "with no gap")
  local h = assert(db.open(record, { migrations = false }))
  local rows = h:query("SELECT count(*) AS n, sum(data IS NULL AND at >= 0) AS taped FROM term_events WHERE session_id = ? AND kind = 'o'", sid)[1]
  h:close()
  T.is(rows.taped, rows.n, "each output row names its bytes on the tape", rows.n .. " rows")
end

-- a full disk (a small tmpfs): the output goes in as far as it fits, the
-- rest waits in memory, and once there is room again it goes in too; with
-- more than memory holds (8 MB), the oldest output is let go, a gap event
-- says how much and when, and the loss is counted
local function full_disk(name, chunks, full_for, check, keep_full)
  local small = dir .. "/" .. name
  proc.run { "mkdir", "-p", small }
  local m = proc.run { "mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", small }
  if not m or m.code ~= 0 then
    T.skip("a full disk: " .. name, "cannot mount a tmpfs here: " .. (m and m.stderr or "?"))
    return
  end
  local rec = small .. "/r.db"
  local chunk = T.write(dir .. "/chunks.py", [[
import os, sys, time
for i in range(int(sys.argv[1])):
    os.write(1, (("%04d:" % i) + "0123456789abcdef" * 16384 + "\n").encode())
    time.sleep(0.15)
os.write(1, b"END\n")
]])
  local p = assert(proc.spawn({ T.bin, "--db", rec, "--", "sh", "-c",
    "stty raw -echo; printf ready; read go; exec python3 " .. chunk .. " " .. chunks }, { pty = { cols = 100, rows = 30 }, env = env }))
  local shown = ""
  while not shown:find("ready", 1, true) do shown = shown .. assert(p:read(), "the agent never got ready") end
  -- fill the disk but for about 1 MB
  local df = proc.run { "df", "--output=avail", "-B1", small }
  local avail = tonumber(df.stdout:match("(%d+)%s*$"))
  assert(proc.run { "sh", "-c", ("head -c %d /dev/zero > %s/filler"):format(avail - (1 << 20), small) })
  p:write("go\n")
  local n, freed, least, full_n = 0, false, avail, 0
  local t0, full_at, tail = core.now(), nil, ""
  while true do
    local c = p:read()
    if not c then break end
    n = n + #c
    tail = (tail .. c):sub(-8192)
    if not freed then
      local d = proc.run { "df", "--output=avail", "-B1", small }
      least = math.min(least, tonumber(d.stdout:match("(%d+)%s*$")) or least)
      if least < 64 * 1024 and not full_at then full_at, full_n = core.now(), n end
    end
    -- the disk has room again once it has been full for full_for seconds,
    -- or (full_for = {bytes = N}) once the agent wrote N bytes while it was:
    -- what waited is measured, not guessed from the clock (a loaded machine
    -- slows the agent down)
    local long_enough = full_at and (type(full_for) == "table" and n - full_n > full_for.bytes
      or type(full_for) == "number" and core.now() - full_at > full_for)
    if not freed and not keep_full and (long_enough or core.now() - t0 > 120) then
      proc.run { "rm", "-f", small .. "/filler" }
      freed = true
    end
  end
  local r = p:wait(30)
  T.ok(least < 64 * 1024, "the disk was full meanwhile", least .. " bytes free at the least")
  if keep_full then proc.run { "rm", "-f", small .. "/filler" } end
  check(rec, #"ready" + chunks * (5 + 16 * 16384 + 1) + 4, r, tail)
  proc.run { "umount", small }
end

full_disk("small", 20, 2, function(rec, size)
  local h = assert(db.open(rec, { migrations = false }))
  local o = h:query("SELECT sum(coalesce(len, length(data))) AS n, count(*) AS c FROM term_events WHERE kind = 'o'")[1]
  local bytes = assert(h:query([[SELECT group_concat(coalesce(data, tape(tape_id, at, len)), '') AS o
    FROM (SELECT data, tape_id, at, len FROM term_events WHERE kind = 'o' ORDER BY id)]]))[1].o
  h:close()
  T.is(o.n, size, "a full disk: every chunk is recorded once it has room again")
  local want = { "ready" }
  for i = 0, 19 do want[#want + 1] = ("%04d:"):format(i) .. ("0123456789abcdef"):rep(16384) .. "\n" end
  want[#want + 1] = "END\n"
  T.ok(bytes == table.concat(want), "byte for byte, in order", ("%d bytes read back"):format(#(bytes or "")))
end)

-- 12 MB written while the disk is full: past the 8 MB the recorder holds
full_disk("tiny", 60, { bytes = 12 << 20 }, function(rec, size)
  local h = assert(db.open(rec, { migrations = false }))
  local sid = h:query("SELECT id FROM sessions ORDER BY started_at DESC LIMIT 1")[1].id
  local o = h:query("SELECT coalesce(sum(coalesce(len, length(data))), 0) AS n FROM term_events WHERE session_id = ? AND kind = 'o'", sid)[1].n
  local g = h:query("SELECT group_concat(data, '') AS g FROM term_events WHERE session_id = ? AND kind = 'g'", sid)[1].g or ""
  local loss = h:query("SELECT sum(count) AS n, sum(bytes) AS b FROM losses WHERE session_id = ? AND what = 'output'", sid)[1]
  h:close()
  local gaps, ok = { bytes = 0, events = 0 }, g ~= ""
  for one in g:gmatch("{[^}]*}") do
    local x = require("procy.json").decode(one)
    ok = ok and x and x.bytes > 0 and x.events > 0 and x.from <= x.to
    gaps.bytes, gaps.events = gaps.bytes + (x and x.bytes or 0), gaps.events + (x and x.events or 0)
  end
  T.ok(ok, "past 8 MB waiting on a full disk, gap events say what output was let go", g)
  T.is(o + gaps.bytes, size, "the rest of the output is recorded")
  T.is(loss.b, gaps.bytes, "and the loss is counted in the record")
  local shown = T.procy { "--db", rec, "show", sid }
  T.like(shown.stdout, "output event", "procy show says so")
end)

-- the disk still full when the agent exits: what waited is not dropped
-- unsaid. The recorder's ballast (a megabyte it kept beside the record)
-- makes room to count it: a gap event and a losses row; procy says so on
-- its way out, and its exit status stays the agent's; the session is
-- closed (or, when even that had no room, the next procy closes it) with
-- an end_reason naming the loss.
full_disk("atend", 12, 0, function(rec, size, r, shown)
  T.is(r and r.code, 0, "full at the end: procy exits with the agent's status")
  T.ok(shown:find("could not be recorded", 1, true), "and says on its way out that the end of the output could not be recorded",
       shown:sub(-300))
  local sid = assert(db.open(rec, { migrations = false })):query("SELECT id FROM sessions ORDER BY started_at DESC LIMIT 1")[1].id
  -- a procy that writes to the record again (and closes what was left open)
  assert(proc.run({ T.bin, "--db", rec, "--agent", "true" }, { pty = true }))
  local h = assert(db.open(rec, { migrations = false }))
  local s = h:query("SELECT status, end_reason FROM sessions WHERE id = ?", sid)[1]
  local loss = h:query("SELECT sum(count) AS n, sum(bytes) AS b FROM losses WHERE session_id = ? AND what = 'output'", sid)[1]
  local gaps = h:query("SELECT count(*) AS n FROM term_events WHERE session_id = ? AND kind = 'g'", sid)[1].n
  local o = h:query("SELECT coalesce(sum(coalesce(len, length(data))), 0) AS n FROM term_events WHERE session_id = ? AND kind = 'o'", sid)[1].n
  h:close()
  T.ok((loss.n or 0) > 0 and gaps > 0, "the loss is in the record: a gap event and a losses row",
       ("%s events lost, %d gap events"):format(tostring(loss.n), gaps))
  T.is(o + (loss.b or 0), size, "what is recorded and what is counted lost add up to all the output")
  T.ok(s.status ~= "running" and (s.end_reason or ""):find("could not be recorded", 1, true),
       "the session is closed, its end_reason naming the loss", json.encode(s))
end, true)

proc.run { "rm", "-rf", dir }
return T.done()
