-- The interactive session, in a real terminal (tmux): programs wrapped and
-- recorded, `!` commands, resizes, the ways out, and what reaches the disk.
local T = require "lib.tap"
local tmux = require "lib.tmux"
local core = require "procy.core"
local db = require "procy.db"
local proc = require "procy.proc"

local dir = T.tmpdir()
local record = dir .. "/record.db"
local q = tmux.quote
local procy = q(T.bin) .. " --db " .. q(record)
local bash = "bash --norc --noprofile"
local env = { PS1 = "$ ", HOME = dir, XDG_STATE_HOME = dir .. "/state", XDG_CONFIG_HOME = dir .. "/config" }

-- see(term, pattern, name): the screen shows pattern (within seconds);
-- a failure prints the last screen
local function see(term, pattern, name, seconds)
  local screen, last = term:wait_for(pattern, seconds)
  T.ok(screen, name, last)
  return screen
end

local function events(kinds)
  local h = assert(db.open(record, { migrations = false }))
  local rows = h:query([[SELECT kind, coalesce(data, tape(tape_id, at, len)) AS data FROM term_events WHERE session_id =
    (SELECT id FROM sessions ORDER BY started_at DESC LIMIT 1) AND instr(?, kind) > 0 ORDER BY id]], kinds)
  h:close()
  local parts = {}
  for i, r in ipairs(rows) do parts[i] = r.data end
  return table.concat(parts), rows
end

local function last_session()
  local h = assert(db.open(record, { migrations = false }))
  local row = h:query("SELECT * FROM sessions ORDER BY started_at DESC LIMIT 1")[1]
  h:close()
  return row
end

-- !help's layout: filled at word boundaries to the terminal's width
do
  local commands = require "procy.commands"
  T.is(table.concat(commands.fill("one two three four", 9), "|"), "one two|three|four", "fill breaks at spaces")
  T.is(table.concat(commands.fill("ab abcdefghij", 4), "|"), "ab|abcd|efgh|ij", "a word wider than the line is cut")
  T.is(table.concat(commands.fill("été éàü", 7), "|"), "été éàü", "widths count characters, not bytes")
  local lines = commands.columns({ { "!a", "short help" }, { "!long-name-with-args ARGS...", "its help" },
    { "!b", "a help too long for one line of it" } }, 30, 10)
  T.is(table.concat(lines, "|"), "  !a  short help|  !long-name-with-args ARGS...|      its help|"
    .. "  !b  a help too long for one|      line of it", "columns: a wide left side takes its own line")
  for _, l in ipairs(lines) do T.ok(utf8.len(l) <= 30, "no line is wider than asked: " .. l) end
end

-- bash: type a command, see its output; resize; `!help`; exit 7
do
  local term = tmux.new { cmd = procy .. " -- " .. bash .. "; echo procy-exit=$?", env = env, cols = 100, rows = 30 }
  see(term, "^%$", "bash prompts inside procy")
  term:type("echo hello-$((6*7))") term:keys("Enter")
  see(term, "\nhello%-42", "a command's output shows")
  term:resize(90, 20)
  core.sleep(0.2)
  term:type("stty size") term:keys("Enter")
  see(term, "\n20 90", "tmux resize-window changes the agent's terminal size")
  term:type("!help") term:keys("Enter")
  see(term, "procy commands", "!help opens its output over the agent")
  see(term, "\n  !eval set|generate|show|run|metrics\n%s+the project's evaluator: set PATH %[%-%-name N%],",
    "a long command name takes its own line, its help under the others'")
  term:keys("q")
  term:type("echo after-help") term:keys("Enter")
  local screen = term:wait_for("\nafter%-help")
  T.ok(screen, "after the pager, typing reaches the agent again")
  T.ok(screen and not screen:find("event not found"), "bash never saw the !")
  term:type("!nosuch") term:keys("Enter")
  see(term, "unknown command !nosuch %(try !help%)", "an unknown command says so")
  term:type("!mark before-exit") term:keys("Enter")
  core.sleep(0.2)
  term:type("exit 7") term:keys("Enter")
  see(term, "procy%-exit=7", "procy exits with the agent's status")
  local typed = events("i")
  T.ok(typed:find("echo hello", 1, true), "input is recorded")
  T.ok(not typed:find("!help", 1, true) and not typed:find("nosuch", 1, true),
       "nothing typed in command mode is recorded as the agent's input", typed)
  T.ok(events("o"):find("hello-42", 1, true), "output is recorded")
  local _, rows = events("rm")
  local kinds = {}
  for _, r in ipairs(rows) do kinds[#kinds + 1] = r.kind .. ":" .. r.data end
  local seen = table.concat(kinds, " ")
  T.like(seen, "^r:100x30 r:90x20 m:before%-exit$", "resizes and the marker are recorded")
  local s = last_session()
  T.is(s.exit_code, 7, "the session row has the exit status")
  T.is(s.status, "exited", "and its status")
  T.ok(s.ended_at and s.ended_at > s.started_at, "and its end")
  term:kill()
end

-- a full-screen program draws and redraws at a new size
do
  local nums = T.write(dir .. "/nums.txt", table.concat((function()
    local t = {} for i = 1, 300 do t[i] = "line " .. i end return t end)(), "\n") .. "\n")
  local term = tmux.new { cmd = procy .. " -- less " .. q(nums) .. "; echo procy-exit=$?", env = env, cols = 80, rows = 24 }
  local screen = term:wait_for("line 23\n")
  T.ok(screen and screen:find("^line 1\n"), "less draws its first page")
  term:resize(80, 12)
  see(term, "line 11\n[^\n]*\n*$", "and redraws for 12 rows")
  T.ok(not term:screen():find("line 20"), "showing less of the file")
  term:type("!status") term:keys("Enter")
  see(term, "session%s+%x+", "!status opens over a full-screen program")
  see(term, "api%s+http://127%.0%.0%.1:%d+: 0 calls", "and shows the session's API proxy")
  term:keys("q")
  see(term, "^line 1\n", "which redraws when the pager closes")
  term:keys("q")
  see(term, "procy%-exit=0", "less exits, procy exits 0")
  T.ok(events("o"):find("\27[?1049h", 1, true), "the alternate screen switch is in the recording")
  term:kill()
end

-- a password typed with echo off is not recorded
do
  local term = tmux.new { cmd = procy .. " -- " .. bash, env = env }
  see(term, "^%$", "bash ready")
  term:type("read -s SECRET; echo length=${#SECRET}") term:keys("Enter")
  core.sleep(0.3)
  term:type("hunter2") term:keys("Enter")
  see(term, "length=7", "bash read the secret")
  term:type("exit") term:keys("Enter")
  core.sleep(0.5)
  local typed = events("il")
  T.ok(typed:find("read -s SECRET", 1, true), "the command line is recorded")
  T.ok(not typed:find("hunter2", 1, true), "the secret is not")
  term:kill()
end

-- SIGTERM to procy: the terminal comes back, the agent gets SIGHUP
do
  local script = T.write(dir .. "/agent.sh", [[
    trap 'echo hup > "$1/hup"; exit 1' HUP
    echo agent-ready
    while :; do sleep 0.1; done
  ]])
  local cmd = ("stty -g > %s; %s -- sh %s %s; echo $? > %s; stty -g > %s"):format(
    q(dir .. "/before"), procy, q(script), q(dir), q(dir .. "/rc"), q(dir .. "/after"))
  local term = tmux.new { cmd = cmd, env = env }
  see(term, "agent%-ready", "the agent runs")
  local pid = term:find("procy")
  T.ok(pid, "procy's pid")
  proc.run { "kill", "-TERM", tostring(pid) }
  local deadline = core.now() + 15 -- until stty has written the settings (the file is made before)
  while not (T.read(dir .. "/after") or ""):find("\n$") and core.now() < deadline do core.sleep(0.05) end
  T.is(T.read(dir .. "/rc"), "143\n", "procy exits 128+SIGTERM")
  T.is(T.read(dir .. "/after"), T.read(dir .. "/before"), "the terminal's settings are back as they were")
  deadline = core.now() + 3 -- procy does not wait for the agent's handler
  while not T.read(dir .. "/hup") and core.now() < deadline do core.sleep(0.02) end
  T.is(T.read(dir .. "/hup"), "hup\n", "the agent got SIGHUP")
  T.is(last_session().status, "killed", "the session is recorded as killed")
  term:kill()
end

-- an agent that fails at once: procy says what it saw and what to try
do
  local term = tmux.new { cmd = procy .. [[ --agent "sh -c 'echo cannot start; exit 3'"; echo procy-exit=$?]], env = env }
  local screen = see(term, "procy%-exit=3", "the agent's status is procy's")
  T.like(screen or "", "procy: sh ended after [%d.]+ s %(exit 3%)", "procy says the agent ended at once")
  T.like(screen or "", "No API call reached procy", "what it saw of the agent's API calls")
  T.like(screen or "", "procy %-%- bash", "and what to try")
  term:kill()
  -- a command of the person's own (after --) is theirs to explain
  term = tmux.new { cmd = procy .. " -- sh -c 'echo cannot start; exit 3'; echo procy-exit=$?", env = env }
  screen = see(term, "procy%-exit=3", "a command after -- that fails at once")
  T.ok(screen and not screen:find("ended after", 1, true), "gets no word from procy", screen)
  term:kill()
end

-- a message on the bottom row stays a few seconds whatever the agent
-- prints, goes at the next key, and never outlives procy
do
  local term = tmux.new { cmd = procy .. " -- " .. bash .. "; echo procy-exit=$?", env = env, cols = 80, rows = 12 }
  see(term, "^%$", "bash ready")
  term:type("(for i in $(seq 30); do echo tick-$i; sleep 0.1; done) &") term:keys("Enter")
  see(term, "tick%-3", "the agent prints on its own")
  term:type("!mark here") term:keys("Enter")
  see(term, "marked: here", "!mark says so on the bottom row")
  core.sleep(1.5) -- ticks scroll the screen meanwhile
  local screen = term:screen()
  T.ok(screen:find("marked: here", 1, true) and screen:find("tick%-1%d"), "and the message is still there 1.5 s later",
       screen)
  see(term, "tick%-30", "the agent goes on")
  core.sleep(3)
  T.ok(not term:screen():find("marked: here", 1, true), "after a few seconds it is gone", term:screen())
  term:type("!nosuch") term:keys("Enter")
  see(term, "unknown command !nosuch", "an unknown command says so")
  term:type("echo next") -- a key takes the message away
  see(term, "echo next", "typing goes on")
  T.ok(not term:screen():find("unknown command", 1, true), "and the next key took the message away", term:screen())
  term:keys("Enter")
  term:type("!mark last") term:keys("Enter")
  see(term, "marked: last", "one more message")
  term:type("exit") -- typed after the message: the message goes, then procy
  term:keys("Enter")
  see(term, "procy%-exit=0", "procy exits")
  T.ok(not term:screen():find("marked: last", 1, true), "no message is left on the screen after procy", term:screen())
  term:kill()
end

-- a program procy runs on the terminal (s:run, !correct's editor) has it from its
-- first instruction, with the job-control signals a shell's child has,
-- whatever procy was started with (tmux's panes ignore SIGTTIN): else a
-- read before procy handed the terminal over was EIO, and the editor gone
do
  T.write(dir .. "/fg.sh", [==[
read -r _ _ _ _ pgrp _ _ tpgid _ < /proc/$$/stat
ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status)
printf 'fg=%s ign=%s\n' "$([ "$pgrp" = "$tpgid" ] && echo yes || echo no)" "$ign" > "$(dirname "$0")/fg.log"
IFS= read -r line
printf 'read=%s\n' "$line" >> "$(dirname "$0")/fg.log"
]==])
  T.write(dir .. "/fg.lua", ("return { commands = { fg = function(ctx)\n" ..
    "  local code = ctx.session:run { 'sh', %q }\n  ctx.status('fg ran: ' .. tostring(code))\nend } }\n"):format(dir .. "/fg.sh"))
  local term = tmux.new { cmd = procy .. " --config " .. q(dir .. "/fg.lua") .. " -- " .. bash .. "; echo procy-exit=$?",
    env = env, cols = 80, rows = 24 }
  see(term, "^%$", "bash ready")
  term:type("!fg") term:keys("Enter")
  local deadline = core.now() + 10
  while core.now() < deadline and not (T.read(dir .. "/fg.log") or ""):find("\n") do core.sleep(0.05) end
  term:type("weather-line") term:keys("Enter")
  see(term, "fg ran: 0", "the program ran and ended")
  local log = T.read(dir .. "/fg.log") or ""
  T.like(log, "^fg=yes ", "the program's group had the terminal before its first instruction", log)
  local ign = tonumber(log:match("ign=(%x+)") or "", 16)
  T.ok(ign and (ign >> 20) & 3 == 0, "SIGTTIN and SIGTTOU at their defaults in it", log)
  T.like(log, "\nread=weather%-line\n", "the line typed went to the program", log)
  T.ok(not term:screen():find("weather-line: command not found", 1, true), "and not to the agent", term:screen())
  term:type("exit") term:keys("Enter")
  see(term, "procy%-exit=0", "procy exits")
  term:kill()
end

-- kill -9 of procy: what was shown before the last flush is on disk, the
-- record is whole, the agent does not linger, and the next procy ends the
-- session as crashed
do
  local term = tmux.new { cmd = procy .. " -- sh -c " .. q("i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.02; done"), env = env }
  see(term, "tick%-30", "the agent ticks")
  local pid = term:find("procy")
  local agent = pid and next(tmux.children(pid))
  local shown = tonumber(term:screen():match("tick%-(%d+)%s*$") or term:screen():match(".*tick%-(%d+)"))
  core.sleep(0.12) -- two flushes (every 50 ms) after tick-`shown` was on the screen
  proc.run { "kill", "-KILL", tostring(pid) }
  T.ok(agent and T.gone(agent, 3), "the agent died with procy (SIGHUP from the closed pty)",
       ("procy %s, agent %s"):format(pid, agent))
  local h = assert(db.open(record, { migrations = false }))
  T.is(h:query("PRAGMA integrity_check")[1].integrity_check, "ok", "the record passes integrity_check after kill -9")
  local sid = h:query("SELECT id FROM sessions ORDER BY started_at DESC LIMIT 1")[1].id
  local out = h:query("SELECT group_concat(coalesce(data, tape(tape_id, at, len)), '') AS o, max(t) AS t FROM term_events WHERE kind = 'o' AND session_id = ?", sid)[1]
  T.ok(shown and (out.o or ""):find("tick-" .. shown .. "\r\n", 1, true), "what was on the screen before the last flush is on disk",
       ("tick-%s shown"):format(tostring(shown)))
  T.is(h:query("SELECT status FROM sessions WHERE id = ?", sid)[1].status, "running", "the session is left running")
  h:close()
  T.procy { "--db", record, "run", T.write(dir .. "/nothing.lua", "require('procy.store').open()") }
  h = assert(db.open(record, { migrations = false }))
  local row = h:query("SELECT status, ended_at, end_reason, bytes_out FROM sessions WHERE id = ?", sid)[1]
  local recorded = h:query("SELECT sum(coalesce(len, length(data))) AS n FROM term_events WHERE kind = 'o' AND session_id = ?", sid)[1].n
  h:close()
  T.is(row.status, "crashed", "the next procy marks it crashed")
  T.ok(row.bytes_out and row.bytes_out > 0 and row.bytes_out == recorded, "with the bytes it recorded as its output (not 0 B)",
    tostring(row.bytes_out) .. " / " .. tostring(recorded))
  T.is(row.ended_at, out.t, "ended at its last recorded event")
  T.like(row.end_reason or "", "killed, crashed, or its disk full", "and says so")
  term:kill()
end

-- export to asciicast: asciinema plays it
do
  local term = tmux.new { cmd = procy .. " -- " .. bash, env = env }
  see(term, "^%$", "bash ready")
  term:type("printf 'caf\\xc3\\xa9 cast-check\\n'") term:keys("Enter")
  see(term, "café cast%-check", "output with UTF-8")
  term:type("echo term-is-$TERM") term:keys("Enter")
  local seen_term = (term:wait_for("\nterm%-is%-%S+") or ""):match("\nterm%-is%-(%S+)")
  term:type("exit") term:keys("Enter")
  core.sleep(0.5)
  term:kill()
  local id = last_session().id
  local r = T.procy({ "--db", record, "export", id:sub(1, 6), "-o", dir .. "/s.cast" }, { env = { TERM = "vt52" } })
  T.is(r.code, 0, "export by id prefix")
  local cast = T.read(dir .. "/s.cast") or ""
  local json = require "procy.json"
  local header = json.decode(cast:match("^[^\n]+"))
  T.ok(header and header.version == 2 and header.width == 100 and header.height == 30, "an asciicast v2 header")
  T.ok(seen_term and seen_term ~= "vt52", "the session's TERM: " .. tostring(seen_term))
  T.is(header and header.env.TERM, seen_term, "the header's TERM is the recorded session's, not the exporting shell's")
  -- asciinema opens /dev/tty: give it a terminal
  local cat = proc.run({ "asciinema", "cat", dir .. "/s.cast" }, { timeout = 20, pty = { cols = 100, rows = 30 } })
  T.ok(cat and cat.code == 0 and cat.stdout:find("café cast-check", 1, true),
       "asciinema cat plays it", cat and (cat.stderr or ""):sub(1, 300))
  local player = tmux.new { cmd = "asciinema play -i 0.2 " .. q(dir .. "/s.cast") .. "; sleep 30" }
  see(player, "café cast%-check", "asciinema play shows it in a terminal")
  player:kill()
  -- a reader that stops early: procy stops writing, quietly
  local big = assert(proc.run { "bash", "-c", "set -o pipefail; " .. q(T.bin) .. " --db " .. q(record) .. " export " .. id
    .. " --format html | head -c 1 > /dev/null; echo $?" })
  T.ok(big.stderr == "" and big.stdout:match("^(%d+)") == "141",
    "procy export | head: no 'Broken pipe' or other complaint, and it ends as SIGPIPE would end it (141)", big.stdout .. big.stderr)
  r = T.procy { "--db", record, "export", id, "--format", "cast3" }
  local h3 = json.decode(r.stdout:match("^[^\n]+"))
  T.ok(h3 and h3.version == 3 and h3.term.cols == 100, "--format cast3 gives a v3 header")
  T.like(r.stdout, '\n%[%d+%.%d%d%d%d%d%d, "x", "0"%]\n$', "and ends with the exit event")
  r = T.procy { "--db", record, "show", id:sub(1, 8), "--json" }
  local shown = json.decode(r.stdout)
  T.ok(shown and shown.id == id and shown.exit_code == 0 and #shown.typed_lines == 3, "show --json",
       r.stdout:sub(1, 600)) -- printf, echo, exit
  r = T.procy { "--db", record, "sessions" }
  T.like(r.stdout, id:sub(1, 10) .. ".-bash", "sessions lists it")
  r = T.procy { "--db", record, "show", "ffffffffffff" }
  T.is(r.code, 1, "an unknown id fails")
  T.like(r.stderr, "no session ffffffffffff", "and says so")
end

-- replay with the original timing
do
  local id = last_session().id
  local term = tmux.new { cmd = procy .. " play " .. id:sub(1, 8) .. " --speed 4 --idle-limit 0.5; echo played", env = env }
  see(term, "café cast%-check.*played", "procy play replays the session", 10)
  term:kill()
end

-- the record locked by another writer: the agent keeps going, the failure
-- is shown once it lasts, and nothing is lost once the lock is gone
do
  local term = tmux.new { cmd = procy .. " -- " .. bash, env = env }
  see(term, "^%$", "bash ready")
  local holder = T.write(dir .. "/hold.lua", [[
    local core = require "procy.core"
    local h = assert(require("procy.db").open(..., { migrations = false }))
    h:exec("BEGIN IMMEDIATE")
    print("locked") io.stdout:flush()
    core.sleep(3.5)
    h:exec("COMMIT")
  ]])
  local p = assert(proc.spawn { T.bin, "run", holder, record })
  T.is(p:lines()(), "locked", "another process holds the record's write lock")
  term:type("echo while-locked") term:keys("Enter")
  see(term, "\nwhile%-locked", "the agent keeps running")
  see(term, "recording failed: database is locked", "a failure that lasts is shown on the bottom row", 6)
  T.is(p:wait(10).code, 0, "the lock is released")
  term:type("echo after-lock") term:keys("Enter")
  see(term, "\nafter%-lock", "the agent still runs")
  term:type("exit") term:keys("Enter")
  core.sleep(0.5)
  local out = events("o")
  T.ok(out:find("while-locked", 1, true) and out:find("after-lock", 1, true),
       "what happened while the record was locked was kept and written")
  term:kill()
end

-- a project's own commands, from its procy.lua; !history, !stop
do
  local project = dir .. "/project"
  require("procy.fs").mkdir(project)
  T.write(project .. "/procy.lua", [[
    local core = require "procy.core"
    return { commands = {
      hello = function(ctx, args) ctx.print("hello, " .. args[1] .. " (" .. #args .. " words: " .. args.line .. ")") end,
      slow = { help = "waits", run = function(ctx) core.sleep(60) ctx.print("slow finished") end },
      broken = function(ctx) error("this command is broken") end,
    } }
  ]])
  local term = tmux.new { cmd = "cd " .. q(project) .. " && " .. procy .. " -- " .. bash, env = env }
  see(term, "^%$", "bash ready")
  term:type("!help") term:keys("Enter")
  see(term, "!slow%s+waits", "!help lists the project's commands")
  term:keys("q")
  term:type("!hello 'big world' again") term:keys("Enter")
  see(term, "hello, big world %(2 words: 'big world' again%)", "a project command runs with its words")
  term:keys("q")
  term:type("!broken") term:keys("Enter")
  see(term, "!broken failed: .*this command is broken", "a failing command shows its error")
  term:keys("q")
  term:type("!slow") term:keys("Enter")
  core.sleep(0.2)
  term:type("echo typing-while-slow") term:keys("Enter")
  see(term, "\ntyping%-while%-slow", "a slow command does not hold up the terminal")
  term:type("!status") term:keys("Enter")
  see(term, "command%s+!slow is running", "!status shows it running")
  term:keys("q")
  term:type("!stop") term:keys("Enter")
  see(term, "stopped 1 command%(s%)", "!stop cancels it")
  term:type("!history") term:keys("Enter")
  see(term, "echo typing%-while%-slow", "!history lists the lines typed to the agent")
  term:keys("q")
  T.ok(not term:screen():find("slow finished"), "the stopped command never finished")
  term:type("exit 3") term:keys("Enter")
  core.sleep(0.5)
  term:kill()
end

-- --resume: the same agent in the same directory, recorded in the same session
do
  local id = last_session().id
  local term = tmux.new { cmd = procy .. " --resume " .. id:sub(1, 8) .. "; echo procy-exit=$?", env = env }
  see(term, "^%$", "the session's agent starts again")
  term:type("pwd") term:keys("Enter")
  see(term, "\n" .. (dir .. "/project"):gsub("%p", "%%%0") .. "\n", "in the session's directory")
  term:type("exit 4") term:keys("Enter")
  see(term, "procy%-exit=4", "and exits with its status")
  local h = assert(db.open(record, { migrations = false }))
  local marks = h:query("SELECT data FROM term_events WHERE session_id = ? AND kind = 'm'", id)
  local row = h:query("SELECT exit_code, status FROM sessions WHERE id = ?", id)[1]
  h:close()
  T.is(marks[#marks] and marks[#marks].data, "resumed", "a marker shows where it was resumed")
  T.is(row.exit_code, 4, "the session row has the new exit status")
  term:kill()
end

-- ProCy's flags: --cwd (where the agent works, and its project's
-- procy.lua), --no-ui and --ui-port; !deploy in a session
do
  local proj = dir .. "/elsewhere"
  require("procy.fs").mkdir(proj)
  T.write(proj .. "/procy.lua", "return { log_level = 'warn' }\n")
  local term = tmux.new { cmd = "cd / && " .. procy .. " --cwd " .. q(proj) .. " --no-ui -- sh -c 'pwd; exec sh'", env = env }
  see(term, proj:gsub("%p", "%%%0") .. "\n", "--cwd DIR: the agent works there")
  term:type("!status") term:keys("Enter")
  local st = see(term, "session%s+%x+", "!status")
  T.ok(st and not st:find("monitor ", 1, true), "--no-ui: no monitor on the session's server", st)
  term:keys("q")
  core.sleep(0.3)
  term:type("!deploy status") term:keys("Enter")
  see(term, "!deploy: ENOMODEL: no model server", "!deploy is a session command (here: no proxy model configured, said)")
  term:keys("q")
  core.sleep(0.3)
  term:type("exit") term:keys("Enter")
  core.sleep(0.5)
  term:kill()
  local row = last_session()
  T.is(row.cwd, proj, "the session is recorded in that directory")
  local free = require("procy.http").serve { port = 0 }
  local port = free:port()
  free:close()
  term = tmux.new { cmd = procy .. " --ui-port " .. port .. " -- sh", env = env }
  core.sleep(0.5)
  term:type("!status") term:keys("Enter")
  see(term, "monitor%s+http://127%.0%.0%.1:" .. port .. "/", "--ui-port PORT: the monitor on that port")
  term:keys("q")
  core.sleep(0.3)
  term:type("exit") term:keys("Enter")
  core.sleep(0.5)
  term:kill()
  local bad = T.procy { "--cwd", proj, "sessions" }
  T.ok(bad.code == 2 and bad.stderr:find("--cwd is the interactive session's", 1, true), "--cwd with a command: refused, saying why")
  bad = T.procy { "--ui-port", "99999", "--", "true" }
  T.ok(bad.code == 2 and bad.stderr:find("--ui-port takes a port number", 1, true), "--ui-port out of range: refused")
end


-- bad starts: no terminal, no agent, no writable record
do
  local r = T.procy({ "--db", record, "--", "bash" }, { env = env })
  T.is(r.code, 2, "without a terminal on stdin procy exits 2")
  T.like(r.stderr, "not a terminal.*procy run", "and points at procy run")
  local term = tmux.new { cmd = procy .. " -- no-such-agent-here; echo procy-exit=$?; stty -a | head -1", env = env }
  -- the stty line comes after the exit line: wait for both (waiting for the
  -- first alone raced the second under load)
  local screen = term:wait_for("procy%-exit=127.*speed")
  T.ok(screen and screen:find("procy%-exit=127"), "a missing agent exits 127")
  T.ok(screen and screen:find("cannot run 'no%-such%-agent%-here': No such file or directory"),
       "with a clear message", screen)
  T.ok(screen and screen:find("speed"), "and the terminal is as it was (stty works)")
  term:kill()
  -- (root ignores file modes, so: a record whose directory is a file)
  T.write(dir .. "/not-a-dir", "")
  term = tmux.new { cmd = q(T.bin) .. " --db " .. q(dir .. "/not-a-dir/record.db")
    .. " -- sh -c 'echo spawned; sleep 5'; echo procy-exit=$?", env = env }
  screen = term:wait_for("procy%-exit=%d")
  T.ok(screen and screen:find("procy%-exit=1"), "an unusable record stops procy")
  T.ok(screen and not screen:find("spawned"), "before the agent is started")
  T.ok(screen and screen:find("cannot open the record"), "saying what is wrong")
  term:kill()
end

proc.run { "rm", "-rf", dir }
-- a pinned bottom row (!evolve's progress line): the agent has one row
-- less, its scrolling and erasing leave the row alone, unpinning gives the
-- row back
do
  local project = dir .. "/pinned"
  require("procy.fs").mkdir(project)
  T.write(project .. "/procy.lua", [[
    return { commands = { pin = function(ctx, args) ctx.pin(args.line ~= "" and args.line or nil) end } }
  ]])
  local term = tmux.new { cmd = "cd " .. q(project) .. " && " .. procy .. " -- " .. bash, env = env, cols = 80, rows = 20 }
  local function row(n)
    local i = 0
    for line in (term:screen() .. "\n"):gmatch("([^\n]*)\n") do
      i = i + 1
      if i == n then return line end
    end
  end
  see(term, "^%$", "bash ready")
  term:type("!pin try 2/5 best 1.5") term:keys("Enter")
  core.sleep(0.5)
  term:type("stty size") term:keys("Enter")
  see(term, "\n19 80", "a pinned row: the agent's terminal is a row shorter")
  term:type("seq 1 60") term:keys("Enter")
  see(term, "\n60\n", "the agent scrolls")
  core.sleep(0.3)
  T.like(row(20), "try 2/5 best 1%.5", "the pinned row stays put under scrolling output")
  T.like(row(19), "^%$", "the agent's prompt is on the row above")
  term:type("clear") term:keys("Enter")
  core.sleep(0.5)
  T.like(row(20), "try 2/5 best 1%.5", "and comes back after the agent erases the screen")
  term:type("!pin try 3/5") term:keys("Enter")
  core.sleep(0.5)
  T.like(row(20), "try 3/5", "a new text replaces it")
  term:type("!pin") term:keys("Enter")
  core.sleep(0.5)
  term:type("stty size") term:keys("Enter")
  see(term, "\n20 80", "unpinned: the agent has every row again")
  T.ok(not term:screen():find("try 3/5", 1, true), "and the row is gone")
  term:type("seq 1 40") term:keys("Enter")
  see(term, "\n40\n", "the whole screen scrolls again")
  core.sleep(0.3)
  T.like(row(20), "^%$", "down to the bottom row")
  term:type("exit 0") term:keys("Enter")
  core.sleep(0.5)
  term:kill()
end

return T.done()
