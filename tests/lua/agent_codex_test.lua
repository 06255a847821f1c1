-- The real Codex CLI headless (`codex exec --json`) through procy.agent: a
-- shell tool round trip recorded as a turn, then a second turn that
-- resumes the same thread.
local T = require "tap"
local json = require "procy.json"
local proc = require "procy.proc"
local fs = require "procy.fs"
local config = require "procy.config"
local store = require "procy.store"
local agents = require "agents"

local codex = agents.find("codex")
if not codex then
  print("1..0 # SKIP the codex CLI is not installed (.ci/setup installs it)")
  return 0
end

local dir = T.tmpdir()
local work = dir .. "/work"
fs.mkdir(work)
local home = agents.home(dir, work)
local fake = require("fake").start(dir .. "/fake")
local _ <close> = fake.proc
local env = agents.env(dir, home, fake.url)
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
a:close()
proc.run { "rm", "-rf", dir }
return T.done()
