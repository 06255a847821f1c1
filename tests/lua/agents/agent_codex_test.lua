-- The real Codex CLI headless (`codex exec --json`) through procy.agent: a
-- shell tool round trip recorded as a turn, then a second turn that
-- resumes the same thread.
local T = require "lib.tap"
local json = require "procy.json"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"
local agents = require "lib.agents"
local core = require "procy.core"

local w = agents.world("codex")
if not w then return agents.skip("codex") end
local _ <close> = w.fake.proc
local dir, work, fake, env, codex = w.dir, w.work, w.fake, w.env, w.cli
assert(config.load { config = T.write(dir .. "/procy.lua",
  ("return { db = %q, openai_upstream = %q }"):format(dir .. "/rec.db", fake.url)) })
local agent = require "procy.agent"

local a = assert(agent.open { profile = "codex", mode = "headless", cwd = work, env = env, mirror = false,
  args = { "-m", "gpt-5-codex" } })
local s1 = assert(a:send("TOOL:shell[echo hello-codex]"))
local t1 = assert(a:wait_turn { seq = s1, timeout = 90 })
T.is(t1.status, "done", "a codex exec turn ends with its turn.completed", json.encode(t1))
T.is(t1.prompt, "TOOL:shell[echo hello-codex]", "with the exact prompt")
local tool = t1.tools[1] or {}
T.is(tool.name .. " " .. (tool.input and tool.input.cmd or "?"), "exec_command echo hello-codex",
     "the shell call with its full input, from the API capture")
T.like(tool.result, "hello%-codex", "and its output, linked as the result")
T.like(t1.response, "^FAKE: got tool result:.*hello%-codex", "the final answer")
T.ok(t1.calls >= 2 and t1.usage.input_tokens > 0, "two main calls, their tokens summed", t1.calls .. " calls")
local thread = store.open():query("SELECT agent_session_id AS id FROM sessions WHERE id = ?", a.session)[1].id
T.ok(thread, "the thread id is kept")

local s2 = assert(a:send("second turn"))
local t2 = assert(a:wait_turn { seq = s2, timeout = 90 })
T.is(t2.status .. " " .. tostring(t2.response), "done FAKE: hello! you said: second turn", "a second turn")
local last
for line in io.lines(fake.log) do last = json.decode(line) end
local body = json.decode(T.read(("%s/fake/bodies/%04d.json"):format(dir .. "", last.n)) or "{}") or {}
T.ok(json.encode(body.input or {}):find("hello-codex", 1, true), "resumes the thread: the history goes with it")
T.is(store.open():query("SELECT agent_session_id AS id FROM sessions WHERE id = ?", a.session)[1].id, thread,
     "the same thread")
local s3 = assert(a:send("SLOW to be interrupted"))
core.sleep(1)
T.ok(a:interrupt(), "an interrupt")
local t3 = assert(a:wait_turn { seq = s3, timeout = 30 })
T.is(t3.status, "interrupted", "ends the turn as interrupted, not as an error")
a:close()

-- interactive: the Codex TUI through procy; its notify ends the turn, its
-- title call is a side call
local tmux = require "lib.tmux"
local record = dir .. "/tui.db"
local q = tmux.quote
local term = tmux.new { cols = 120, rows = 40, env = env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " --config " .. q(dir .. "/procy.lua")
    .. " -- " .. q(codex) .. " -m gpt-5-codex; echo procy-exit=$?" }
T.ok(term:wait_for("Ask Codex to do anything", 30), "the Codex TUI starts inside procy", term:screen())
core.sleep(0.5)
T.ok(term:submit("TOOL:shell[echo tui-tool]", "Worked for"), "it runs the tool and answers", term:screen())
local h = require("procy.db").open(record, { migrations = false })
local row
for _ = 1, 50 do
  row = h:query("SELECT * FROM turns ORDER BY id DESC LIMIT 1")[1]
  if row and row.status ~= "running" then break end
  core.sleep(0.1)
end
T.is(row and (row.status .. " " .. row.prompt), "done TOOL:shell[echo tui-tool]", "one turn, ended by notify, exact prompt")
-- a call recorded a moment after the turn ended is linked to it then
for _ = 1, 50 do
  if row and row.calls >= 2 and row.side_calls >= 1 then break end
  core.sleep(0.1)
  row = h:query("SELECT * FROM turns ORDER BY id DESC LIMIT 1")[1]
end
T.ok(row and row.calls == 2 and row.side_calls >= 1, "its two main calls, and the title call as a side call",
     row and (row.calls .. " / " .. row.side_calls))
T.is(h:query("SELECT count(*) AS n FROM turns")[1].n, 1, "the title is not a turn")
h:close()
term:keys("C-c") -- once idle, one Ctrl-C quits (a second would reach the pane's shell)
local ended, screen = term:wait_for("procy%-exit=", 5)
if not ended then
  term:keys("C-c")
  ended, screen = term:wait_for("procy%-exit=", 10)
end
T.ok(ended, "Ctrl-C ends Codex and procy", screen)
term:kill()

-- --resume: Codex's own conversation goes on (codex resume THREAD)
h = require("procy.db").open(record, { migrations = false })
local srow = h:query("SELECT * FROM sessions ORDER BY started_at DESC LIMIT 1")[1]
h:close()
T.ok(srow.agent_session_id, "procy learned Codex's thread from its notify", tostring(srow.agent_session_id))
term = tmux.new { cols = 120, rows = 40, env = env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " --config " .. q(dir .. "/procy.lua")
    .. " --resume " .. srow.id:sub(1, 8) .. "; echo procy-exit=$?" }
T.ok(term:wait_for("tui%-tool", 30), "the resumed Codex shows the earlier conversation", term:screen())
core.sleep(0.5)
T.ok(term:submit("resumed turn", "you said: resumed turn"), "and answers a new prompt", term:screen())
local asked
for _, b in ipairs(require("lib.fake").bodies(dir .. "/fake")) do
  if b:find("resumed turn", 1, true) and b:find('"tools"', 1, true) and (not asked or b:find("tui-tool", 1, true)) then
    asked = b
  end
end
T.ok(asked and asked:find("tui-tool", 1, true), "sending the earlier conversation with it", (asked or "none"):sub(1, 3000))
term:keys("C-c")
if not term:wait_for("procy%-exit=", 5) then term:keys("C-c") term:wait_for("procy%-exit=", 10) end
term:kill()
local left = proc.run { "pgrep", "-x", "codex" }
T.ok(left.code ~= 0, "nothing of Codex's is left running", left.stdout)
proc.run { "rm", "-rf", dir }
return T.done()
