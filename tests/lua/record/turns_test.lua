-- procy.turns with recorded calls, and agents that need no model: the
-- generic profile on a terminal (bash: a turn ends on quiet output, not
-- before a `sleep`), an exec profile of a project's, and profile lookup.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local fs = require "procy.fs"
local config = require "procy.config"
local store = require "procy.store"

local dir = T.tmpdir()
assert(config.load { config = T.write(dir .. "/procy.lua", ([[
return {
  db = %q,
  agents = {
    echoer = {
      headless = "exec",
      exec = function(ctx, prompt) return { "/bin/echo", "echoed: " .. prompt } end,
      parse = function() return nil end, -- plain text, no JSON events
    },
    sheller = { base = "generic", command = { "bash", "--norc", "--noprofile" }, match = "^sheller$", quiet = 0.3,
                idle_output = "sheller%%$ $" },
  },
}
]]):format(dir .. "/rec.db")) })
local turns = require "procy.turns"
local agent = require "procy.agent"
local h = store.open()

-- ---- the tracker, fed by hand ------------------------------------------------------------
local session = assert(store.new_session { argv = { "x" }, cwd = dir, mode = "headless" })
local function call(id, o)
  local us = o.started or store.now_us()
  h:exec([[INSERT INTO api_calls(id, session_id, method, path, started_at, input_tokens, output_tokens, cost, model)
           VALUES (?, ?, 'POST', '/v1/messages', ?, ?, ?, ?, ?)]], id, session, us, o.input or 10, o.output or 5,
    o.cost, o.model or "m")
  local c = { id = id, session = session, role = o.role or "main", started_at = us, stop_reason = o.stop,
              tool_uses = o.tool_uses or 0, prompt = o.prompt, text = o.text }
  return c
end
local t = turns.new(session)
t:call(call(1, { prompt = "from the API", stop = "tool_use", tool_uses = 1, cost = 0.01 }))
T.is(t.open and t.open.prompt, "from the API", "a main call with a prompt begins a turn when none is open")
T.ok(not t:api_done(0), "a call that asked for a tool does not end it")
t:call(call(2, { role = "side", cost = 0.001 }))
t:call(call(3, { stop = "end_turn", text = "all done", cost = 0.02 }))
T.ok(t:api_done(0), "a call that ended the turn, with nothing in flight, does")
T.ok(not t:api_done(1), "but not while a call is under way")
local waiter = core.spawn(function() return t:wait(1, 5) end)
t:finish { status = "done" }
local got = core.await(waiter)
T.is(got.status .. " " .. got.response .. " " .. got.calls .. " " .. got.side_calls, "done all done 2 1",
     "finish: the last answer, main and side calls counted, waiters woken")
T.is(got.usage.input_tokens .. " " .. got.usage.output_tokens, "30 15", "tokens summed over the turn's calls")
T.ok(math.abs(got.cost - 0.031) < 1e-9, "and the cost", tostring(got.cost))
t:call(call(4, { role = "side", cost = 0.001, started = got.started_at * 1e6 + 1 })) -- a title that finished late
T.is(turns.get(session, 1).side_calls, 2, "a call that started before the turn ended is linked to it")
t:begin("first", "recipe")
t:begin("second")
T.is(turns.get(session, 2).status, "interrupted", "a new prompt before the end: the old turn was interrupted")
t:call(call(5, { stop = "end_turn", cost = nil, model = "unpriced" }))
t:finish { status = "done" }
T.is(turns.get(session, 3).cost, json.null, "a turn with a call of unknown price has an unknown cost")
t:expect("proxy")
t:begin("fourth")
T.is(turns.get(session, 4).source, "proxy", "expect() names the source of the next turn")
local none, err, code = t:wait(4, 0.05)
T.is(code, "ETIMEDOUT", "waiting for a turn that does not end times out")
t:finish { status = "error", error = "boom" }
T.is(turns.get(session, 4).error, "boom", "an error turn keeps its error")
T.is(#turns.list(session), 4, "list() has every turn")

-- ---- profiles -----------------------------------------------------------------------------
T.is(agent.profile("claude").name, "claude", "a built-in profile")
T.is(agent.profile("sheller").quiet, 0.3, "a project's profile")
T.is(agent.profile("sheller").env({ base_url = "http://x/s/1" }).ANTHROPIC_BASE_URL, "http://x/s/1",
     "starting from the generic one")
T.is(select(3, agent.profile("nope")), "ENOENT", "an unknown profile is ENOENT")
T.is(agent.profile_for({ "/usr/local/bin/claude", "--x" }).name, "claude", "the program's name picks the profile")
T.is(agent.profile_for({ "sheller" }).name, "sheller", "a project's match too")
T.is(agent.profile_for({ "vim" }).name, "generic", "else generic")

-- ---- a generic agent on a terminal: bash ---------------------------------------------------
local a = assert(agent.open { profile = "sheller", mode = "pty", cwd = dir, env = { PS1 = "sheller$ " } })
local seq = assert(a:send("echo first; sleep 1.5; echo second"))
local turn = assert(a:wait_turn { seq = seq, timeout = 20 })
T.is(turn.status, "done", "a generic agent's turn ends on quiet output and its idle pattern")
T.ok(turn.duration >= 1.5, "not during its sleep", ("%.2f s"):format(turn.duration))
T.is(turn.prompt, "echo first; sleep 1.5; echo second", "with the prompt it was sent")
local out = h:query("SELECT group_concat(coalesce(data, tape(tape_id, at, len)), '') AS o FROM term_events WHERE session_id = ? AND kind = 'o'",
  a.session)[1].o or ""
T.ok(out:find("second", 1, true), "its terminal is recorded")
a:close()

-- ---- a project's exec profile ----------------------------------------------------------------
local e = assert(agent.open { profile = "echoer", mode = "headless", cwd = dir, mirror = false })
local s1 = e:send("hi there")
local s2 = e:send("and again")
T.is(assert(e:wait_turn { seq = s1, timeout = 10 }).response, "echoed: hi there", "an exec profile: a process per prompt")
T.is(assert(e:wait_turn { seq = s2, timeout = 10 }).response, "echoed: and again", "prompts queue in order")
e:close()

require("procy.proc").run { "rm", "-rf", dir }
return T.done()
