-- The real Claude Code headless (stream-json) driven through procy.agent:
-- turns with exact ends, a graceful and a forced restart, resume, the
-- agent's death, an interrupt, the watchdog, the validator and the mirror.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"
local agents = require "lib.agents"

local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, fake, env, claude = w.dir, w.work, w.fake, w.env, w.cli
local conf = T.write(dir .. "/procy.lua", ("return { db = %q, upstream = %q }"):format(dir .. "/rec.db", fake.url))
assert(config.load { config = conf })
local agent = require "procy.agent"

local function open(extra)
  local o = { profile = "claude", mode = "headless", cwd = work, env = env, mirror = false,
              args = { "--allowedTools", "Bash" } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(agent.open(o))
end

-- the requests the fake got, in order
local function requests()
  local out = {}
  for line in io.lines(fake.log) do out[#out + 1] = json.decode(line) end
  return out
end

local a = open()
local s1 = assert(a:send("say one"))
local t1 = assert(a:wait_turn { seq = s1, timeout = 60 })
T.is(t1.status .. " | " .. t1.prompt .. " | " .. tostring(t1.response), "done | say one | FAKE: hello! you said: say one",
     "turn 1: its result ends it, with the exact prompt and the answer")
local s2 = assert(a:send("TOOL:bash[echo two]"))
local t2 = assert(a:wait_turn { seq = s2, timeout = 60 })
T.is(t2.tools[1] and (t2.tools[1].name .. " " .. t2.tools[1].input.command .. " " .. t2.tools[1].result), "Bash echo two two",
     "turn 2: a Bash round trip, its call and result")
T.is(t2.response, "FAKE: got tool result: two", "and the answer")
local first_id = store.open():query("SELECT agent_session_id AS id FROM sessions WHERE id = ?", a.session)[1].id
T.ok(first_id, "the agent's own session id is kept for resuming")

-- graceful: the restart waits for the turn under way
local s3 = assert(a:send("SLOW words for a while"))
core.sleep(0.5)
local t0 = core.now()
assert(a:restart { resume = false })
local t3 = a:wait_turn { seq = s3, timeout = 1 }
T.is(t3 and t3.status, "done", "a graceful restart waits for the outstanding result")
T.ok(core.now() - t0 > 5, "(which took the slow turn's time)", ("%.1f s"):format(core.now() - t0))
local st = a:status()
T.is(st.expected .. "/" .. st.seen, "3/3", "one result per prompt")
local s4 = assert(a:send("after a fresh start"))
T.is(assert(a:wait_turn { seq = s4, timeout = 60 }).status, "done", "the fresh agent answers")
local fresh_id = store.open():query("SELECT agent_session_id AS id FROM sessions WHERE id = ?", a.session)[1].id
T.ok(fresh_id and fresh_id ~= first_id, "with a new session of its own")

-- forced: the turn under way is lost, with a synthetic result; then resume
local s5 = assert(a:send("SLOW and then forced"))
core.sleep(1)
t0 = core.now()
assert(a:restart { force = true, resume = true })
local t5 = assert(a:wait_turn { seq = s5, timeout = 1 })
T.is(t5.status, "error", "a forced restart ends the turn under way as an error")
T.like(t5.error, "procy restarted the agent", "saying why")
T.ok(core.now() - t0 < 5, "at once, not after the slow turn")
st = a:status()
T.is(st.expected .. "/" .. st.seen, "5/5", "and the counts stay right")
local before = #requests()
local s6 = assert(a:send("remember?"))
T.is(assert(a:wait_turn { seq = s6, timeout = 60 }).status, "done", "the resumed agent answers")
local req = requests()[before + 1] or {}
local body = json.decode(T.read(("%s/fake/bodies/%04d.json"):format(dir, req.n or 0)) or "{}") or {}
local said = json.encode(body.messages or {})
T.ok(said:find("after a fresh start", 1, true), "with its history: it resumed its session",
     #(body.messages or {}) .. " messages")
T.is(store.open():query("SELECT agent_session_id AS id FROM sessions WHERE id = ?", a.session)[1].id, fresh_id,
     "the same session id")

-- prompts sent while a turn runs are held (Claude Code would take them
-- into one turn after it), each a turn with its number; a forced restart
-- ends the held ones as lost too, and the numbers after stay right
local h1 = assert(a:send("SLOW held first"))
local h2 = assert(a:send("held second"))
local h3 = assert(a:send("held third"))
T.ok(h2 == h1 + 1 and h3 == h1 + 2, "each prompt gets the next number", h1 .. " " .. h2 .. " " .. h3)
core.sleep(1)
assert(a:restart { force = true, resume = true })
local lost = {}
for _, sq in ipairs { h1, h2, h3 } do
  local t = a:wait_turn { seq = sq, timeout = 5 }
  lost[#lost + 1] = t and (t.prompt .. "=" .. t.status) or "none"
end
T.is(table.concat(lost, ", "), "SLOW held first=error, held second=error, held third=error",
  "the turn under way and the two held behind it end as lost, each its own turn")
local sx = assert(a:send("after the held ones"))
T.is(sx, h3 + 1, "the next prompt's number follows them")
local tx = assert(a:wait_turn { seq = sx, timeout = 60 })
T.is(tx.prompt .. " | " .. tostring(tx.response), "after the held ones | FAKE: hello! you said: after the held ones",
  "and waiting on it gives its own answer")
local hb = assert(a:send("burst one"))
assert(a:send("burst two"))
local hb3 = assert(a:send("burst three"))
local tb = assert(a:wait_turn { seq = hb3, timeout = 60 })
T.is(tostring(tb.response), "FAKE: hello! you said: burst three", "three at once: the last one's turn is its own answer")
T.is(tostring(assert(a:wait_turn { seq = hb, timeout = 5 }).response), "FAKE: hello! you said: burst one", "and the first's")
st = a:status()
T.is(st.expected - st.seen, 0, "nothing outstanding")

-- interrupt, out of band
local s7 = assert(a:send("SLOW to be interrupted"))
core.sleep(1)
t0 = core.now()
T.ok(a:interrupt(), "an interrupt is answered")
local t7 = assert(a:wait_turn { seq = s7, timeout = 10 })
T.ok(core.now() - t0 < 5, "and the turn ends at once")
T.is(t7.status, "interrupted", "as interrupted, not as an error")

-- the agent dies: noticed now
local s8 = assert(a:send("SLOW until killed"))
core.sleep(1)
proc.run { "kill", "-9", tostring(a:status().pid) }
t0 = core.now()
local t8 = assert(a:wait_turn { seq = s8, timeout = 5 })
T.ok(core.now() - t0 < 2, "a killed agent is noticed at once", ("%.2f s"):format(core.now() - t0))
T.is(t8.status, "error", "its turn ends as an error")
T.like(t8.error, "agent exited", "saying so")
T.is(select(3, a:send("anyone?")), "EPIPE", "sending to it says it is not running")
assert(a:restart { resume = true })
local s9 = assert(a:send("back again"))
T.is(assert(a:wait_turn { seq = s9, timeout = 60 }).status, "done", "restarted, it works again")
a:close()

-- the watchdog and the validator
local fixes = 0
local b = open { watchdog = { idle = 6, action = "restart", nudge = "nudged: go on" },
  validator = function(turn)
    if turn.prompt == "check me" and fixes == 0 then
      fixes = fixes + 1
      return "fix: use fewer words"
    end
  end }
local h1 = assert(b:send("HANG forever"))
local th = assert(b:wait_turn { seq = h1, timeout = 40 })
T.is(th.status, "error", "a turn silent for longer than the watchdog's idle time is restarted")
local tn = assert(b:wait_turn { seq = h1 + 1, timeout = 60 })
T.is(tn.prompt .. " " .. tn.status, "nudged: go on done", "and the nudge goes in after it")
local c1 = assert(b:send("check me"))
assert(b:wait_turn { seq = c1, timeout = 60 })
local fix = assert(b:wait_turn { seq = c1 + 1, timeout = 60 })
T.is(fix.prompt .. " " .. fix.source, "fix: use fewer words recipe", "the validator's correction is sent by itself")
b:close()

-- the nudge action: one nudge per stuck turn, held behind it (Claude Code
-- would take it as a turn after), however long it stays stuck
local d = open { watchdog = { idle = 2, action = "nudge", nudge = "nudged once" } }
assert(d:send("HANG for the nudge"))
local deadline = core.now() + 40
while core.now() < deadline and d:status().expected < 2 do core.sleep(0.2) end
core.sleep(5) -- more than two idle periods more
st = d:status()
T.is(st.expected - st.seen, 2, "a stuck turn gets one nudge, not one per idle period")
d:close()

-- on a terminal of its own (no person): hooks end the turns; a restart
-- resumes its session
local c = open { mode = "pty" }
local p1 = assert(c:send("TOOL:bash[echo on-a-pty]"))
local tp = assert(c:wait_turn { seq = p1, timeout = 120 })
T.is(tp.status .. " " .. tostring(tp.tools[1] and tp.tools[1].result), "done on-a-pty",
     "an agent on its own terminal: a tool turn, ended by its Stop hook")
local out = store.open():query("SELECT count(*) AS n FROM term_events WHERE session_id = ? AND kind = 'o'", c.session)[1].n
T.ok(out > 0, "its terminal is recorded")
local cid = store.open():query("SELECT agent_session_id AS id FROM sessions WHERE id = ?", c.session)[1].id
T.ok(cid, "its own session id came with its hooks")
assert(c:restart { resume = true })
local p2 = assert(c:send("still there?"))
T.is(assert(c:wait_turn { seq = p2, timeout = 60 }).status, "done", "restarted with --resume, it answers")
local last
for line in io.lines(fake.log) do last = json.decode(line) end
local body2 = json.decode(T.read(("%s/fake/bodies/%04d.json"):format(dir, last.n)) or "{}") or {}
T.ok(json.encode(body2.messages or {}):find("on-a-pty", 1, true), "with its history")
c:close()

-- the mirror: the assistant's text, one line per message, on stderr
T.write(dir .. "/env.json", json.encode(env))
local recipe = T.write(dir .. "/mirror.lua", ([[
local json = require "procy.json"
local agent = require "procy.agent"
local f = assert(io.open(%q))
local env = json.decode(f:read("a"))
f:close()
local a = assert(agent.open { profile = "claude", mode = "headless", cwd = %q, env = env })
a:send("say mirrored")
assert(a:wait_turn { timeout = 60 })
a:close()
]]):format(dir .. "/env.json", work))
local r = T.procy({ "--config", conf, "run", recipe }, { timeout = 90 })
T.is(r.code, 0, "a recipe runs a headless agent", r.stderr)
T.like(r.stderr, "%] FAKE: hello! you said: say mirrored", "and the assistant's text is mirrored to stderr")

-- the recipe reference's whole recipe, as printed there: the agent writes
-- the file the tests want, and the first try is green
do
  local readme = T.read(T.src .. "/lua/README.md")
  local code = readme:match("```lua\n(%-%- recipes/fix_until_green%.lua.-)```")
  T.ok(code, "lua/README.md has the whole recipe")
  require("procy.fs").mkdir(work .. "/recipes")
  T.write(work .. "/recipes/fix_until_green.lua", code or "")
  T.write(work .. "/Makefile", "test:\n\ttest -f done.txt\n")
  local prompt = ("TOOL:write:%s/done.txt:%s"):format(work, T.b64("ok\n"))
  local rr = T.procy({ "--config", conf, "run", "recipes/fix_until_green.lua", prompt }, { cwd = work, env = env, timeout = 120 })
  T.is(rr.code, 0, "it runs as written", rr.stdout .. rr.stderr)
  T.like(rr.stdout, "try 1: turn done, tests exit 0", "the agent's edit made the tests pass on the first try")
end

proc.run { "rm", "-rf", dir }
return T.done()
