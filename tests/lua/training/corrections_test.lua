-- Corrections: the records (kinds, context), the file the editor opens,
-- procy corrections from the shell, and !correct with the real Claude
-- Code in a real terminal, the person's editor played by scripts.
local T = require "lib.tap"
local tmux = require "lib.tmux"
local core = require "procy.core"
local db = require "procy.db"
local json = require "procy.json"

local corrections = require "procy.corrections"

-- the file the editor opens, and what a saved one holds
do
  local turn = { seq = 3, source = "human", prompt = "fix the bug\nin parse()" }
  local text = corrections.file_text(turn, { { role = "system", content = "You write prompts." },
    { role = "user", content = "Task (pinned):\nfix it\n\nWrite the prompt for try 3." } })
  T.like(text, "^# Correct the prompt of turn 3 %(human%)", "the file says which turn it is")
  T.like(text, "#   Task %(pinned%):\n#   fix it\n", "the messages the proxy model had, as comments, line by line")
  T.is(corrections.from_file(text), "fix the bug\nin parse()", "an unchanged file gives the prompt back, lines and all")
  T.is(corrections.from_file(text .. "# not a comment: part of the prompt\n"),
       "fix the bug\nin parse()\n# not a comment: part of the prompt", "after the marker, a # line is the prompt's")
  T.is(corrections.from_file("no marker\nat all\n"), "no marker\nat all", "without the marker, the whole file")
end

local agents = require "lib.agents"
local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, env, claude = w.dir, w.work, w.env, w.cli
local record = dir .. "/record.db"
env.IS_SANDBOX = nil
local q = tmux.quote

-- the person's editor, played by scripts: one rewrites the prompt, one
-- changes nothing, one fails, one deletes the file
T.write(dir .. "/rewrite.sh", [[
f="$1"
grep -q 'Task (pinned):' "$f" || { echo "no context in the file" >&2; exit 3; }
printf '\033[2J\033[HEDITOR-IS-HERE, type a line: '
# the line the test types; what else is read (nothing, in a good run) is logged
while IFS= read -r extra; do
  printf 'read: [%s]\n' "$extra" >> "$(dirname "$0")/editor.log"
  case "$extra" in *weather*) break;; esac
done
sed -i 's/^say hi$/say hello, properly/' "$f"
printf '%s\n' "$extra" >> "$f"
]])
T.write(dir .. "/same.sh", "exit 0\n")
T.write(dir .. "/fail.sh", "exit 1\n")
T.write(dir .. "/gone.sh", "rm -f \"$1\"\n")
env.EDITOR = "sh " .. dir .. "/rewrite.sh"
env.VISUAL = nil

local term = tmux.new { cols = 120, rows = 40, env = env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " -- " .. q(claude) .. "; echo procy-exit=$?" }

local function see(pattern, name, seconds) return term:see(pattern, name, seconds or 20) end

local function rows(sql, ...)
  local h = assert(db.open(record, { migrations = false }))
  local r = h:query(sql, ...)
  h:close()
  return r
end

see("\n❯", "Claude Code is ready inside procy")
core.sleep(0.5)
term:submit("say hi", "FAKE: hello! you said: say hi", 30)
see("FAKE: hello! you said: say hi", "a first prompt, answered")
-- the turn is recorded once Claude Code's Stop hook has come
local deadline = core.now() + 15
while core.now() < deadline and #rows("SELECT 1 FROM turns WHERE status = 'done'") == 0 do core.sleep(0.2) end
core.sleep(0.5)

term:type("!correct")
term:keys("Enter")
see("EDITOR%-IS%-HERE, type a line:", "!correct: the editor has the screen")
term:type("and mention the weather")
term:keys("Enter")
see("correction 1 kept for turn 1", "the editor's changes kept, with what was typed to it")
see("FAKE: hello! you said: say hi", "Claude Code's screen is back after the editor")
local c = rows("SELECT * FROM corrections")[1]
T.ok(c and c.kind == "corrected" and c.source == "human" and c.turn_seq == 1, "a correction of the human prompt of turn 1",
  json.encode(c or {}))
T.is(c and c.original, "say hi", "it keeps the original")
T.is(c and c.corrected, "say hello, properly\nand mention the weather", "and the corrected text, every line of it")
T.is(#rows("SELECT 1 FROM turns"), 1, "the keys typed to the editor never reached the agent")
T.is(T.read(dir .. "/editor.log"), "read: [and mention the weather]\n", "and the editor read only what was typed to it")
local ctx = c and json.decode(c.context)
local want = require("procy.evolve").messages { task = "say hi" } -- (a person's prompt: no try to name)
T.is(ctx and json.encode(ctx, { sort = true }), json.encode(want, { sort = true }),
  "with the messages the template makes of the session at that turn (what inference would have been given)")


for _, case in ipairs {
  { "same.sh", "the prompt is unchanged: nothing stored", "an unchanged file keeps nothing, and says so" },
  { "fail.sh", "exited with 1: nothing stored", "an editor that fails keeps nothing, and says so" },
  { "gone.sh", "the file was deleted: nothing stored", "a deleted file keeps nothing, and says so" },
} do
  term:type("!correct 1")
  -- the editor comes from the environment procy was started with: swap
  -- the script in place
  T.write(dir .. "/rewrite.sh", T.read(dir .. "/" .. case[1]))
  term:keys("Enter")
  see(case[2], case[3])
  core.sleep(0.3)
  term:type(" ")
  term:keys("BSpace")
end
T.is(#rows("SELECT * FROM corrections"), 1, "and no correction was added by them")
term:type("!correct 9")
term:keys("Enter")
see("no turn 9 in this session %(turns 1 to 1%)", "a turn that does not exist is named")
core.sleep(0.3)
term:type("!corrections")
term:keys("Enter")
see("1%s+%x+%s+1%s+corrected%s+human%s+say hi → say hello, properly", "!corrections lists the session's")
term:keys("q")
core.sleep(0.5)
term:submit("/exit", "procy%-exit=0", 30)
see("procy%-exit=0", "the session ends as usual")
term:kill()

-- procy corrections from the shell
local function procy(args, stdin)
  local argv = { T.bin, "--db", record }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return require("procy.proc").run(argv, { stdin = stdin, env = { HOME = dir } })
end
local r = procy { "corrections" }
T.like(r.stdout, "corrected%s+human%s+say hi", "procy corrections lists them")
r = procy { "corrections", "show", "1" }
T.like(r.stdout, "%-%-%- corrected\nsay hello, properly\nand mention the weather", "show: the corrected text")
T.like(r.stdout, "%[user%]\nTask %(pinned%):\nsay hi", "and the messages the proxy model was given")
r = procy({ "corrections", "add", "--turn", "1", "--file", "-", "--note", "shorter" }, "say hi, briefly\n")
T.like(r.stdout, "correction 2 kept", "add: a correction from standard input")
local two = rows("SELECT * FROM corrections WHERE id = 2")[1]
T.ok(two and two.corrected == "say hi, briefly" and two.note == "shorter" and two.context == c.context,
  "with its note, and the same context as the first", json.encode(two or {}))
r = procy { "corrections", "add", "--turn", "7", "--file", "-" }
T.ok(r.code == 1 and r.stderr:find("no turn 7", 1, true), "add for a turn that does not exist fails, naming it", r.stderr)
r = procy { "corrections", "ls", "--json" }
local list = json.decode(r.stdout)
T.ok(type(list) == "table" and #list == 2 and list[1].id == 2 and type(list[1].context) == "table",
  "ls --json: newest first, the context decoded")
r = procy { "corrections", "rm", "2" }
T.is(r.code, 0, "rm removes one")
T.is(procy({ "corrections", "rm", "2" }).code, 1, "and a second rm of it fails")
T.is(procy({ "corrections", "ls", "--kind", "nosuch" }).code, 2, "an unknown kind is refused")

require("procy.proc").run { "rm", "-rf", dir }
return T.done()
