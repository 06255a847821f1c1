-- The real Claude Code, interactive, in a real terminal (tmux) through
-- procy: a recipe run with !run drives three turns through agent.current()
-- (plain text; two Bash round trips that sleep 2 s each; a Write tool), then a person
-- types a prompt and recalls and edits it. Every turn is recorded with its
-- exact prompt, its tool calls and its real end.
local T = require "lib.tap"
local tmux = require "lib.tmux"
local core = require "procy.core"
local db = require "procy.db"
local json = require "procy.json"
local proc = require "procy.proc"
local agents = require "lib.agents"

local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, env, claude = w.dir, w.work, w.env, w.cli
local record = dir .. "/record.db"

-- the recipe a person would write
T.write(work .. "/drive.lua", [[
local core = require "procy.core"
local json = require "procy.json"
local agent = require "procy.agent"
return function(args)
  local a = assert(agent.current(), "no agent in this session")
  local out = {}
  for i, prompt in ipairs { "say hello", "TOOLS:2:bash[sleep 2; echo slept]", "TOOL:write:" .. args[1] } do
    local seq = assert(a:send(prompt))
    local turn = assert(a:wait_turn { seq = seq, timeout = 90 })
    turn.returned = core.time()
    out[i] = turn
  end
  local f = assert(io.open(args[2], "w"))
  f:write(json.encode(out))
  f:close()
end
]])

local q = tmux.quote
local term = tmux.new { cols = 120, rows = 40, env = env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " -- " .. q(claude)
    .. " --permission-mode acceptEdits --allowedTools Bash Write; echo procy-exit=$?" }

local function see(pattern, name, seconds) return term:see(pattern, name, seconds or 30) end

see("\n❯", "Claude Code starts inside procy")
core.sleep(0.5)
local target, result = work .. "/written.txt", dir .. "/turns.json"
term:type("!run drive.lua " .. target .. " " .. result)
term:keys("Enter")
local got
for _ = 1, 1200 do
  got = T.read(result)
  if got then break end
  core.sleep(0.1)
end
local turns = json.decode(got or "[]") or {}
T.is(#turns, 3, "the recipe drove three turns and got each one back", T.read(result) or term:screen())
local t1, t2, t3 = turns[1] or {}, turns[2] or {}, turns[3] or {}
T.is(t1.status .. " " .. t1.prompt, "done say hello", "turn 1: done, with its exact prompt")
T.is(t1.response, "FAKE: hello! you said: say hello", "and the final answer")
T.is(#t1.tools, 0, "and no tool")
local bash = t2.tools and t2.tools[1] or {}
T.is(bash.name .. " " .. (bash.input and bash.input.command or "?"), "Bash sleep 2; echo slept",
     "turn 2: the Bash calls with their full input")
T.like(bash.result, "slept", "and their results")
T.is(t2.tools and #t2.tools, 2, "two round trips, in order")
T.ok(t2.ended_at and t2.ended_at - t2.started_at >= 4, "turn 2 ended after both 2 s sleeps, not before",
     ("%.2f s"):format((t2.ended_at or 0) - (t2.started_at or 0)))
T.ok(t2.returned and t2.returned >= t2.ended_at, "wait_turn returned only after the turn ended")
T.is(t2.response, "FAKE: got tool result: slept", "and the answer to the result")
local write = t3.tools and t3.tools[1] or {}
T.is(write.name .. " " .. (write.input and write.input.file_path or "?"), "Write " .. target, "turn 3: the Write call")
T.is(T.read(target), "hello from fake\n", "and the file it wrote")
T.ok(t1.source == "recipe" and t2.source == "recipe" and t3.source == "recipe", "the recipe's turns say so")

-- a person types a prompt, then recalls it and edits it
see("\n❯", "Claude Code waits again")
term:type("typed by a person")
term:keys("Enter")
see("you said: typed by a person", "a typed prompt gets its answer")
core.sleep(1)
term:keys("Up")
see("❯ typed by a person", "Up recalls it")
for _ = 1, #"person" do
  term:keys("BSpace")
  core.sleep(0.1) -- a person's pace: keys in one burst read as a paste
end
-- under load the agent may take a key late: look before typing on
for _ = 1, 20 do
  local input -- the prompt line: the last one with ❯ (earlier ones are the transcript)
  for line in term:screen():gmatch("[^\n]+") do
    if line:find("❯", 1, true) then input = line end
  end
  if not input or not input:find("typed by a p", 1, true) then break end
  term:keys("BSpace")
  core.sleep(0.3)
end
term:type("human")
term:keys("Enter")
see("you said: typed by a human", "the edited prompt gets its answer")
core.sleep(1.5)
term:type("/exit")
term:keys("Enter")
see("procy%-exit=0", "/exit ends Claude Code and procy")

local h = assert(db.open(record, { migrations = false }))
local session = h:query("SELECT * FROM sessions ORDER BY started_at DESC LIMIT 1")[1]
T.is(session.profile, "claude", "the session knows its agent's profile")
local rows = h:query("SELECT * FROM turns WHERE session_id = ? ORDER BY seq", session.id)
T.is(#rows, 5, "five turns recorded")
local r4, r5 = rows[4] or {}, rows[5] or {}
T.is(r4.prompt .. "|" .. r4.source .. "|" .. r4.status, "typed by a person|human|done", "the person's turn")
T.is(r5.prompt, "typed by a human", "the recalled, edited prompt is recorded as sent, not as typed")
local typed = h:query("SELECT group_concat(data, '|') AS l FROM term_events WHERE session_id = ? AND kind = 'l'",
  session.id)[1].l or ""
T.ok(not typed:find("typed by a human", 1, true), "(the keystrokes never spelled it)", typed)
local unlinked = h:query([[SELECT count(*) AS n FROM api_calls WHERE session_id = ? AND role = 'main'
  AND turn_id IS NULL]], session.id)[1].n
T.is(unlinked, 0, "every main API call belongs to a turn")
T.ok(rows[2] and rows[2].calls == 3 and rows[2].input_tokens > 0, "turn 2: three main calls, their tokens summed",
     rows[2] and (rows[2].calls .. " calls"))
local shown = json.decode(T.procy({ "--db", record, "show", session.id, "--json" }).stdout) or {}
T.is(shown.turns and #shown.turns, 5, "procy show --json lists the turns")
T.is(shown.turns and shown.turns[2].tools[1].name, "Bash", "with their tool calls")
h:close()
term:kill()
proc.run { "rm", "-rf", dir }
return T.done()
