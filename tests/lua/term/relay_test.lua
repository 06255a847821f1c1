-- The session relay's edges, with procy on a pty of the test's own (no
-- tmux): bytes passed exactly, huge lines, an agent killed by a signal,
-- signals to procy, and a Lua error in the middle of a session.
local T = require "lib.tap"
local core = require "procy.core"
local db = require "procy.db"
local fs = require "procy.fs"
local proc = require "procy.proc"

local dir = T.tmpdir()
local record = dir .. "/record.db"
local env = { HOME = dir, XDG_STATE_HOME = dir .. "/state", XDG_CONFIG_HOME = dir .. "/config" }
-- the relay's bytes are the agent's: procy's own bottom-row message at the
-- start (the monitor's address) is not, so the monitor is off here
fs.mkdir(dir .. "/config/procy")
T.write(dir .. "/config/procy/procy.lua", "return { ui = false }\n")

local function procy(argv, opts)
  local full = { T.bin, "--db", record, "--" }
  for _, a in ipairs(argv) do full[#full + 1] = a end
  opts = opts or {}
  opts.pty = opts.pty or { cols = 100, rows = 30 }
  opts.env = opts.env or env
  return assert(proc.spawn(full, opts))
end

local peak_kb = require("lib.measure").peak_kb

-- reads everything procy shows; returns it (or its size, for huge output)
-- and procy's peak memory, sampled as it runs
local function drain(p, count_only)
  local parts, n, peak, next_sample = {}, 0, 0, 0
  while true do
    local chunk = p:read()
    if not chunk then break end
    n = n + #chunk
    if n >= next_sample then
      peak = peak_kb(p:pid(), peak)
      next_sample = n + 1024 * 1024
    end
    if not count_only then parts[#parts + 1] = chunk end
  end
  return count_only and n or table.concat(parts), peak
end

local function last_session()
  local h = assert(db.open(record, { migrations = false }))
  local row = h:query("SELECT * FROM sessions ORDER BY started_at DESC LIMIT 1")[1]
  local out = h:query("SELECT group_concat(coalesce(data, tape(tape_id, at, len)), '') AS o, count(*) AS n FROM term_events WHERE session_id = ? AND kind = 'o'", row.id)[1]
  h:close()
  return row, out
end

-- binary output, invalid UTF-8 and all, passes byte for byte
do
  local bytes = {}
  for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
  local blob = table.concat(bytes):rep(64) .. "\xff\xfe\xc3(\xe2\x82" -- and broken UTF-8
  T.write(dir .. "/binary", blob)
  local p = procy { "sh", "-c", "stty raw -echo; cat " .. dir .. "/binary" }
  local shown = drain(p)
  local r = p:wait(10)
  T.is(r.code, 0, "the agent and procy exit 0")
  T.ok(shown == blob, "what the agent wrote reaches the terminal byte for byte",
       ("%d bytes shown, %d written"):format(#shown, #blob))
  local _, out = last_session()
  T.ok(out.o == blob, "and the recording holds the same bytes")
end

-- the output is on the record's tape, beside it: search, export and the
-- summary read it there; a tape that is gone is named, not guessed at
do
  local p = procy { "sh", "-c", "stty raw -echo; printf 'tape-word-%s\\r\\n' 7 11" }
  drain(p)
  p:wait(10)
  local row, out = last_session()
  T.ok(fs.stat(record .. "-term"), "the output went to the tape beside the record")
  T.is(out.o, "tape-word-7\r\ntape-word-11\r\n", "its rows read back from it")
  local found = T.procy({ "--db", record, "search", "tape-word-11", "--json" }, { env = env })
  T.ok(found.code == 0 and found.stdout:find(row.id, 1, true), "procy search finds it", found.stdout .. found.stderr)
  local cast = T.procy({ "--db", record, "export", row.id }, { env = env })
  T.ok(cast.code == 0 and cast.stdout:find("tape-word-7", 1, true), "procy export has it")
  local h = assert(db.open(record, { migrations = false }))
  local rows = h:query("SELECT count(*) AS n, sum(len) AS bytes FROM term_events WHERE session_id = ? AND kind = 'o' AND data IS NULL", row.id)[1]
  h:close()
  T.ok(rows.n >= 1 and rows.bytes == 27, "its rows hold where the bytes are, not the bytes", ("%d rows, %s bytes"):format(rows.n, rows.bytes))
  assert(os.rename(record .. "-term", record .. "-term.away"))
  local lost = T.procy({ "--db", record, "export", row.id }, { env = env })
  T.ok(lost.code ~= 0 and lost.stderr:find(record .. "-term", 1, true) and lost.stderr:find("No such file", 1, true),
       "without its tape, export says which file is missing", lost.stderr)
  local shown = T.procy({ "--db", record, "show", row.id }, { env = env })
  T.ok(shown.code == 0, "and procy show still summarises the session", shown.stderr)
  -- recorded into again meanwhile: a new tape, and the old rows know it is not theirs
  p = procy { "sh", "-c", "stty raw -echo; printf 'new-tape-word\\r\\n'" }
  drain(p)
  p:wait(10)
  local new_row, new_out = last_session()
  T.is(new_out.o, "new-tape-word\r\n", "a session after that records on a new tape")
  lost = T.procy({ "--db", record, "export", row.id }, { env = env })
  T.ok(lost.code ~= 0 and lost.stderr:find("is not the tape this output was written to", 1, true),
       "and the old session's output is not read from it", lost.stderr)
  assert(os.rename(record .. "-term", record .. "-term.new"))
  assert(os.rename(record .. "-term.away", record .. "-term"))
  cast = T.procy({ "--db", record, "export", row.id }, { env = env })
  T.ok(cast.code == 0 and cast.stdout:find("tape-word-7", 1, true), "with its own tape back, it reads again")
  assert(os.rename(record .. "-term", record .. "-term.away"))
  assert(os.rename(record .. "-term.new", record .. "-term"))
  cast = T.procy({ "--db", record, "export", new_row.id }, { env = env })
  T.ok(cast.code == 0 and cast.stdout:find("new-tape-word", 1, true), "as the new session does from its own")
  -- a file at the tape's name that is no tape is not written into
  assert(os.rename(record .. "-term", record .. "-term.new"))
  T.write(record .. "-term", "someone's notes\n")
  p = procy { "sh", "-c", "echo never" }
  local said = drain(p)
  local r = p:wait(10)
  T.ok(r.code ~= 0 and said:find("is not a procy tape", 1, true) and said:find(record .. "-term", 1, true),
       "procy refuses to record into a file that is not a tape, and names it", said)
  T.is(io.open(record .. "-term"):read("a"), "someone's notes\n", "and leaves it as it was")
  assert(os.remove(record .. "-term"))
  assert(os.rename(record .. "-term.new", record .. "-term"))
end

-- a search index brought up to date over rows whose tape is gone goes on
-- past them: one lost tape does not stop search
do
  local rec2 = dir .. "/second.db"
  local function session(word)
    local p = assert(proc.spawn({ T.bin, "--db", rec2, "--", "sh", "-c", "stty raw -echo; echo " .. word },
      { pty = { cols = 100, rows = 30 }, env = env }))
    drain(p)
    p:wait(10)
  end
  session("first-tape-word")
  assert(os.rename(rec2 .. "-term", rec2 .. "-term.away"))
  session("second-tape-word")
  local found = T.procy({ "--db", rec2, "search", "second-tape-word" }, { env = env })
  T.ok(found.code == 0 and found.stdout:find("second-tape-word", 1, true),
       "procy search finds what is on the tape there, past output whose tape is gone", found.stdout .. found.stderr)
end

-- a record named through a link: the writer and the readers name one tape,
-- beside the file the link points to, as SQLite names the database
do
  fs.mkdir(dir .. "/real")
  local real, link = dir .. "/real/linked.db", dir .. "/linked.db"
  assert(db.open(real)):close()
  assert(proc.run { "ln", "-s", real, link }.code == 0)
  local p = assert(proc.spawn({ T.bin, "--db", link, "--", "sh", "-c", "stty raw -echo; echo through-a-link" },
    { pty = { cols = 100, rows = 30 }, env = env }))
  drain(p)
  p:wait(10)
  local id = T.procy({ "--db", link, "sessions" }, { env = env }).stdout:match("\n(%x+)")
  local cast = T.procy({ "--db", link, "export", id or "?" }, { env = env })
  T.ok(fs.stat(real .. "-term") and not fs.stat(link .. "-term") and cast.stdout:find("through-a-link", 1, true),
       "--db through a link: the tape is beside the real file, and reads back", cast.stderr)
end

-- two sessions recording at once into one record append to one tape:
-- each session's rows read back its own bytes, whole and in order
do
  -- 6 MB each, over a second: the two overlap whatever their start
  local function pattern(c)
    return ("stty raw -echo; for i in $(seq 20); do head -c 300000 /dev/zero | tr '\\0' %s; sleep 0.05; done"):format(c)
  end
  local a, b = procy { "sh", "-c", pattern("a") }, procy { "sh", "-c", pattern("b") }
  local na, nb = 0, 0
  local ra, rb
  while not (ra and rb) do -- read both as they come, or one would wait on its terminal
    if not ra then
      local c = a:read("stdout", 0.01)
      if c then na = na + #c elseif a:wait(0) then ra = true end
    end
    if not rb then
      local c = b:read("stdout", 0.01)
      if c then nb = nb + #c elseif b:wait(0) then rb = true end
    end
  end
  local h = assert(db.open(record, { migrations = false }))
  local good, spans = true, {}
  for _, s in ipairs(h:query("SELECT id, argv FROM sessions ORDER BY started_at DESC LIMIT 2")) do
    local letter = s.argv:match("tr '\\\\0' (%a)")
    local r = h:query([[SELECT group_concat(CAST(tape(tape_id, at, len) AS TEXT), '') AS o, min(at) AS first, max(at) AS last
      FROM (SELECT tape_id, at, len FROM term_events WHERE session_id = ? AND kind = 'o' ORDER BY id)]], s.id)[1]
    good = good and letter and r.o == letter:rep(6000000)
    spans[#spans + 1] = r
  end
  h:close()
  T.ok(na == 6000000 and nb == 6000000 and good, "two sessions at once: each one's rows hold its 6 MB, no byte of the other's")
  T.ok(#spans == 2 and spans[1].first < spans[2].last and spans[2].first < spans[1].last,
       "written into one tape at the same time")
end

-- a 100 MB line with no newline neither stalls nor balloons
do
  local mb = 100
  local p = procy { "sh", "-c", ("stty raw -echo; head -c %d /dev/zero | tr '\\0' x"):format(mb * 1024 * 1024) }
  local t0 = core.now()
  local n, peak = drain(p, true)
  p:wait(60)
  T.is(n, mb * 1024 * 1024, "all 100 MB of one line reach the terminal")
  if T.sanitized then T.skip("procy's memory stays under 10 MB", "under " .. os.getenv("PROCY_SANITIZED"))
  else T.ok(peak > 0 and peak < 10 * 1024, "procy's memory stays under 10 MB", ("peak %d KB"):format(peak)) end
  T.ok(core.now() - t0 < 60, "and it does not stall")
  local _, out = last_session()
  T.is(#out.o, n, "the recording has it all")
  T.ok(out.n >= mb * 1024 / 64, "in rows of at most 64 KB", out.n .. " rows")
end

-- 20 MB typed into an agent that reads it: procy keeps up without hoarding it
do
  local p = procy { "sh", "-c", "stty raw -echo; echo ready; exec head -c 20971520 > /dev/null" }
  local seen = ""
  while not seen:find("ready") do seen = seen .. assert(p:read()) end
  local chunk = ("y"):rep(64 * 1024)
  local peak = 0
  for i = 1, 320 do
    p:write(chunk)
    if i % 16 == 0 then
      core.sleep(0.01)
      peak = peak_kb(p:pid(), peak)
    end
  end
  drain(p)
  local r = p:wait(60)
  T.is(r.code, 0, "the agent got its 20 MB")
  if T.sanitized then T.skip("procy's memory stays under 10 MB", "under " .. os.getenv("PROCY_SANITIZED"))
  else T.ok(peak > 0 and peak < 10 * 1024, "procy's memory stays under 10 MB", ("peak %d KB"):format(peak)) end
end

-- an agent killed by a signal: procy exits 128+N
do
  local p = procy { "sh", "-c", "kill -TERM $$" }
  drain(p)
  T.is(p:wait(10).code, 143, "procy exits 128+SIGTERM like the agent")
  local row = last_session()
  T.is(row.exit_signal, 15, "the session row has the signal")
  T.is(row.status, "killed", "and its status")
end

-- SIGHUP to procy (the terminal went away): the agent is hung up too
do
  local p = procy { "sh", "-c", "trap 'echo hup > " .. dir .. "/hup; exit 1' HUP; echo ready; while :; do sleep 0.1; done" }
  local seen = ""
  while not seen:find("ready") do seen = seen .. assert(p:read()) end
  proc.run { "kill", "-HUP", tostring(p:pid()) }
  drain(p)
  T.is(p:wait(10).code, 129, "procy exits 128+SIGHUP")
  local deadline = core.now() + 3 -- procy does not wait for the agent's handler
  while not T.read(dir .. "/hup") and core.now() < deadline do core.sleep(0.02) end
  T.is(T.read(dir .. "/hup"), "hup\n", "the agent got SIGHUP")
end

-- a Lua error in the middle of a session: the terminal is given back and
-- the agent does not linger
do
  local tree = dir .. "/lua"
  proc.run { "cp", "-r", T.src .. "/lua", tree }
  local src = T.read(tree .. "/procy/commands.lua")
  T.write(tree .. "/procy/commands.lua",
          (src:gsub("\nfunction M%.run%(ctx, line%)\n", "\nfunction M.run(ctx, line)\n  error('broken on purpose')\n", 1)))
  local lua_env = { PROCY_LUA_PATH = tree }
  for k, v in pairs(env) do lua_env[k] = v end
  local p = procy({ "sh", "-c", "echo $$ > " .. dir .. "/agent.pid; stty -a; echo ready; while :; do sleep 0.1; done" },
                  { env = lua_env })
  local seen = ""
  while not seen:find("ready") do seen = seen .. assert(p:read()) end
  p:write("!anything\r")
  local rest = drain(p)
  local r = p:wait(10)
  T.is(r.code, 1, "procy exits 1")
  T.like(rest, "broken on purpose", "naming the error")
  local pid = tonumber(T.read(dir .. "/agent.pid"))
  T.ok(pid and T.gone(pid, 3), "the agent was hung up")
  T.is(last_session().status, "killed", "the session is closed in the record")
end

-- what comes before `!`: the Esc key alone, an Alt-key, an arrow
do
  local p = assert(proc.spawn({ T.bin, "--db", record, "--", "cat" }, { pty = { cols = 100, rows = 30 }, env = env }))
  local seen = ""
  local function until_seen(pattern)
    local deadline = core.now() + 10
    while not seen:find(pattern) do
      local c = p:read("stdout", math.max(0.05, deadline - core.now()))
      if c then seen = seen .. c elseif core.now() > deadline then return false end
    end
    return true
  end
  core.sleep(0.5)
  p:write("\27")
  core.sleep(0.2)
  p:write("!help\r")
  T.ok(until_seen("procy commands"), "Esc, a pause, then !help: procy's command, not the agent's input")
  p:write("q")
  core.sleep(0.3)
  seen = ""
  p:write("\27x")
  core.sleep(0.2)
  p:write("!help\r")
  T.ok(until_seen("procy commands"), "after an Alt-key on an empty line, ! is procy's too")
  p:write("q")
  core.sleep(0.3)
  seen = ""
  p:write("\27[A")
  core.sleep(0.2)
  p:write("!up-then-bang\r")
  T.ok(until_seen("!up%-then%-bang"), "after an arrow (the line unknown) ! goes to the agent")
  T.ok(not seen:find("procy commands", 1, true), "and opens nothing")
  p:write("\4")
  drain(p)
  p:wait(20)
end

-- a `!` command that computes for seconds: the relay goes on meanwhile,
-- and keys typed then reach the agent
do
  local project = dir .. "/busy"
  proc.run { "mkdir", "-p", project }
  T.write(project .. "/procy.lua", ([[
    return { commands = { spin = function()
      local t = os.clock()
      while os.clock() - t < 3 do end
      local f = io.open(%q, "w") f:write("done") f:close()
    end } }
  ]]):format(project .. "/done"))
  local p = assert(proc.spawn({ T.bin, "--db", record, "--", "cat" }, { pty = { cols = 100, rows = 30 }, env = env,
    cwd = project }))
  core.sleep(0.5)
  p:write("!spin\r")
  core.sleep(0.3)
  p:write("typed while it ran\r")
  local seen = ""
  while not seen:find("typed while it ran") do
    local c = p:read()
    if not c then break end
    seen = seen .. c
  end
  T.ok(seen:find("typed while it ran", 1, true) and not T.read(project .. "/done"),
       "keys typed while a ! command computes reach the agent before it ends")
  p:write("\4")
  drain(p)
  p:wait(20)
end

-- and the terminal: a session leaves procy's terminal as it found it
do
  local p = assert(proc.spawn({ "sh", "-c", ("stty -g; %s --db %s -- sh -c 'stty raw -echo; exit 3'; stty -g")
      :format(T.bin, record) }, { pty = { cols = 80, rows = 24 }, env = env }))
  local out = drain(p)
  p:wait(10)
  local before, after = out:match("^(%S+)\r?\n(.-)\r?\n$")
  T.ok(before and before == after, "the terminal's settings are the same after procy", out)
end

proc.run { "rm", "-rf", dir }
return T.done()
