-- session.lua MEGABYTES — see tests/bench/session. Every program under test
-- runs on a pty of our own (proc.spawn with pty), whose output we read and
-- drop as fast as it comes: the same reader for procy and its baselines.
-- Runs are interleaved, so drift in the machine hits every case alike.
local core = require "procy.core"
local proc = require "procy.proc"

package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local measure = require "measure"
local median = measure.median

local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")

-- Runs argv on a pty and reads everything. Returns the seconds until the
-- last byte of `size` arrived, until the program exited, its result, and
-- its peak memory sampled every MB.
local function drain(argv, size)
  local t0 = core.now()
  local p = assert(proc.spawn(argv, { pty = { cols = 120, rows = 40 } }))
  local got, last, peak, sample = 0, nil, 0, 0
  while true do
    local chunk = p:read()
    if not chunk then break end
    got = got + #chunk
    if got >= sample then peak, sample = measure.peak_kb(p:pid(), peak), got + 1024 * 1024 end
    if not last and got >= size then last = core.now() - t0 end
  end
  local r = p:wait(60)
  return last or (core.now() - t0), core.now() - t0, r, peak
end

-- Round trip of one keystroke: write a byte, wait for it to come back.
-- Returns the median and the program's CPU seconds per keystroke.
local function keystrokes(argv, n)
  local p = assert(proc.spawn(argv, { pty = { cols = 120, rows = 40 } }))
  p:write("r") -- the echo program is ready when this comes back
  local seen = ""
  while not seen:find("r") do seen = seen .. assert(p:read()) end
  local times = {}
  for i = 1, n do
    local t0 = core.now()
    p:write("x")
    local got = assert(p:read("stdout", 5))
    times[i] = core.now() - t0
    assert(got:find("x"), "echo expected, got " .. got)
  end
  p:kill("HUP")
  local r = p:wait(10)
  return median(times), r and { user = r.user_s / n, sys = r.sys_s / n }
end

return function(args)
  local mb = tonumber(args[1]) or 40
  local file = dir .. "/text.txt"
  local f = assert(io.open(file, "w"))
  local line = "procy throughput line %08d: the quick brown fox jumps over the lazy dog\n"
  local lines, size = 0, 0
  while size < mb * 1024 * 1024 do
    lines = lines + 1
    local l = line:format(lines)
    f:write(l)
    size = size + #l + 1 -- the pty turns \n into \r\n
  end
  f:close()
  local function procy(cmd)
    local t = { core.exe, "--db", dir .. "/record.db", "--" }
    for _, a in ipairs(cmd) do t[#t + 1] = a end
    return t
  end

  local runs = 5
  print(("throughput: cat of a %d MB text file (%d lines), %d runs each, median"):format(mb, lines, runs))
  local s_last, s_exit, p_last, p_exit, rss = {}, {}, {}, {}, {}
  for run = 1, runs do
    os.remove(dir .. "/record.db")
    os.remove(dir .. "/record.db-wal")
    s_last[run], s_exit[run] = drain({ "script", "-q", "-c", "cat " .. file, dir .. "/typescript" }, size)
    local last, exit, r, peak = drain(procy { "cat", file }, size)
    assert(r.code == 0, "procy failed: " .. tostring(r.code))
    p_last[run], p_exit[run], rss[run] = last, exit, peak
  end
  local sl, se, pl, pe = median(s_last), median(s_exit), median(p_last), median(p_exit)
  print(("  %-28s %8s %8s"):format("", "relayed", "exited"))
  print(("  %-28s %7.3fs %7.3fs"):format("script -q -c cat", sl, se))
  print(("  %-28s %7.3fs %7.3fs"):format("procy -- cat (into SQLite)", pl, pe))
  print(("  procy / script: %.2fx to the last byte relayed, %.2fx to the exit"):format(sl / pl, se / pe))
  print("    (target >= 0.9x; the exit includes the WAL checkpoint of the whole recording)")
  print(("  procy peak RSS: %.1f MB (target <= 10 MB)"):format(math.max(table.unpack(rss)) / 1024))

  print("keystroke echo round trip, 2000 keys, median (program: stty raw -echo; cat)")
  local echo = { "sh", "-c", "stty raw -echo; exec cat" }
  local bare, via_script, via_procy, cpu = {}, {}, {}, {}
  for round = 1, 3 do
    bare[round] = keystrokes(echo, 2000)
    via_script[round] = keystrokes({ "script", "-q", "-c", "sh -c 'stty raw -echo; exec cat'", "/dev/null" }, 2000)
    via_procy[round], cpu[round] = keystrokes(procy(echo), 2000)
  end
  local b, s, p = median(bare), median(via_script), median(via_procy)
  print(("  bare pty        %6.1f us"):format(b * 1e6))
  print(("  through script  %6.1f us  (+%.1f)"):format(s * 1e6, (s - b) * 1e6))
  print(("  through procy   %6.1f us  (+%.1f)   (target: <= 50 us added)"):format(p * 1e6, (p - b) * 1e6))
  local user, sys = {}, {}
  for i, c in ipairs(cpu) do user[i], sys[i] = c.user, c.sys end
  print(("  procy's CPU per keystroke: %.1f us in procy, %.1f us in the kernel for it (pty reads and writes)")
    :format(median(user) * 1e6, median(sys) * 1e6))
  proc.run { "rm", "-rf", dir }
  return 0
end
