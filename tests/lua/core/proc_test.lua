-- procy.proc from recipes: argv only, timeouts that reach grandchildren,
-- streaming lines, stdin.
local T = require "lib.tap"
local core = require "procy.core"
local proc = require "procy.proc"

-- an argv is never a shell command
do
  local r = assert(proc.run { "echo", "$HOME; echo injected" })
  T.is(r.stdout, "$HOME; echo injected\n", "arguments reach the program literally")
  T.is(r.code, 0, "exit code 0")
end

-- a timeout kills the whole process group, grandchildren too
do
  local t0 = core.now()
  local r = assert(proc.run({ "sh", "-c", "sleep 30 & echo $!; sleep 30" }, { timeout = 0.3 }))
  local took = core.now() - t0
  local grandchild = tonumber(r.stdout:match("%d+"))
  T.ok(r.timed_out, "the result says it timed out")
  T.is(r.signal, 15, "the child got SIGTERM")
  T.ok(grandchild and T.gone(grandchild), "the grandchild is gone too")
  T.ok(took < 5, "run returns soon after the timeout", "took " .. took)
end

-- a grandchild gets the whole grace period after SIGTERM, then SIGKILL
do
  local dir = T.tmpdir()
  T.write(dir .. "/inner.sh", [[
    trap 'sleep 0.3; echo cleaned > "$1/clean"; exit 0' TERM
    echo $$
    sleep 30 & wait
  ]])
  local r = assert(proc.run({ "sh", "-c", 'sh "$0/inner.sh" "$0" & wait', dir },
                            { timeout = 0.2, kill_after = 1 }))
  T.ok(r.timed_out, "timed out")
  T.is(T.read(dir .. "/clean"), "cleaned\n", "a grandchild's SIGTERM handler had its grace period")
  T.write(dir .. "/stubborn.sh", "trap '' TERM\necho $$\nsleep 30\n")
  r = assert(proc.run({ "sh", "-c", 'sh "$0/stubborn.sh" & wait', dir }, { timeout = 0.2, kill_after = 0.3 }))
  local stubborn = tonumber(r.stdout:match("%d+"))
  T.ok(stubborn and T.gone(stubborn), "a grandchild ignoring SIGTERM is killed after kill_after")
  proc.run { "rm", "-rf", dir }
end

-- lines arrive while the child still runs
do
  local p = assert(proc.spawn({ "sh", "-c", "echo ready; read x; echo got $x; echo err >&2" }, { stdin = true }))
  local next_line = p:lines()
  T.is(next_line(), "ready", "the first line arrives before the child can exit")
  T.ok(not T.dead(p:pid()), "the child is still running, waiting for input")
  p:write("hello\n")
  T.is(next_line(), "got hello", "a line answering our input")
  T.is(next_line(), nil, "nil at the end of output")
  local r = p:wait()
  T.is(r.code, 0, "clean exit")
  T.is(r.stderr, "err\n", "stderr is still collected while stdout streams")
end

-- many lines, from stdout and stderr, read by two tasks
do
  local p = assert(proc.spawn { "sh", "-c", "for i in $(seq 1 500); do echo o$i; echo e$i >&2; done" })
  local counts = {}
  local function reader(stream)
    local n = 0
    for line in p:lines(stream) do n = n + 1 end
    counts[stream] = n
  end
  local a, b = core.spawn(reader, "stdout"), core.spawn(reader, "stderr")
  core.await(a) core.await(b)
  T.is(counts.stdout, 500, "500 stdout lines")
  T.is(counts.stderr, 500, "500 stderr lines, read at the same time")
end

-- a child on a pty: its own terminal, a size that changes, typed input
do
  local p = assert(proc.spawn({ "sh" }, { pty = { cols = 100, rows = 30 }, env = { PS1 = "$ " } }))
  local screen = ""
  local function expect(pattern)
    local deadline = core.now() + 5
    while not screen:find(pattern) do
      local chunk = p:read("stdout", math.max(0.01, deadline - core.now()))
      if not chunk then return false end
      screen = screen .. chunk
    end
    return true
  end
  T.ok(expect("%$ "), "the shell prompts on its terminal")
  p:write("stty size; tty\r")
  T.ok(expect("30 100"), "it sees the size it was given")
  T.ok(expect("/dev/pts/%d+"), "its stdin is a terminal")
  p:resize(90, 20)
  screen = ""
  p:write("stty size\r")
  T.ok(expect("20 90"), "resize changes what it sees")
  p:write("exit 4\r")
  while p:read() do end
  local r = p:wait(5)
  T.is(r.code, 4, "its exit status")
  T.ok(r.maxrss_kb and r.maxrss_kb > 0, "resource usage comes with the result")
  local q = assert(proc.spawn({ "sleep", "5" }, { pty = true }))
  local chunk, err, code = q:read("stdout", 0.05)
  T.is(code, "ETIMEDOUT", "read with a timeout")
  q:close()
end

-- failure to start is a failure tuple, not an error
do
  local r, err, code = proc.run { "no-such-program-here" }
  T.is(r, nil, "nil for a missing program")
  T.is(code, "ENOENT", "ENOENT")
  T.like(err, "cannot run 'no%-such%-program%-here'", "naming the program")
  local ok = pcall(proc.run, "echo hi")
  T.ok(not ok, "a string instead of an argv raises")
end

-- lines of any length up to max_output come whole, however the reads cut
-- them (a line of 1 MiB and more once hung p:lines(): its reading stopped
-- at 1 MiB with no line to give); past max_output a line is cut there,
-- with an error beside it, and the next line is whole
do
  local function lines_of(script, opts)
    local p = assert(proc.spawn({ "python3", "-c", script }, opts or { stdout = "pipe" }))
    local got = {}
    for line, err in p:lines() do got[#got + 1] = { line = line, err = err } end
    return got, p:wait()
  end
  for _, size in ipairs { 1048575, 1048576, 1048577, 2 * 1048576, 3000000, 20 * 1048576 } do
    local got = lines_of(("import sys; sys.stdout.write('a' * %d + '\\n' + 'next\\n')"):format(size))
    T.ok(#got == 2 and #got[1].line == size and got[1].line:match("^a+$") and not got[1].err and got[2].line == "next",
         ("a line of %d bytes comes whole, and the next one after it"):format(size),
         #got .. " lines: " .. (got[1] and #got[1].line or "none"))
  end
  local got, r = lines_of("import sys; sys.stdout.write('b' * 300 + '\\nafter\\n' + 'c' * 250)", { stdout = "pipe", max_output = 100 })
  T.ok(#got == 3 and #got[1].line == 100 and got[1].err and got[1].err:match("^E2BIG: a line of python3's output passed 100 bytes")
       and got[2].line == "after" and #got[3].line == 100 and got[3].err, "past max_output: cut there, said beside it, the next line whole (at the end too)",
       got[1] and got[1].err)
  T.is(r.cut_lines, 2, "and the result counts the lines cut")
  got = lines_of("import sys\nfor i in range(40): sys.stdout.write('x' * 70000 + '\\n')\nsys.stdout.write('end\\n')", { stdout = "pipe", max_output = 100000 })
  local whole = #got == 41 and got[41].line == "end"
  for i = 1, 40 do whole = whole and #got[i].line == 70000 and not got[i].err end
  T.ok(whole, "many lines near max_output, each whole (2.8 MB in all, more than is read ahead)")
end

return T.done()
