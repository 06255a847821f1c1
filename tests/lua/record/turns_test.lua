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

-- ---- main, side or subagent: from the wire -------------------------------------------------
-- Calls as any agent's traffic shows them (a conversation's first-message
-- digest, its tools), with no profile's help: the rules of procy.turns.
do
  local s2 = assert(store.new_session { argv = { "x" }, cwd = dir, mode = "headless" })
  local n = 100
  local function wire(o)
    n = n + 1
    local us = store.now_us()
    h:exec([[INSERT INTO api_calls(id, session_id, method, path, started_at, role) VALUES (?, ?, 'POST', '/v1/messages', ?, ?)]],
      n, s2, us, o.hint or "main") -- as the recorder writes it: the profile's guess
    return { id = n, session = s2, role = o.hint or "main", api = "anthropic", started_at = us, stop_reason = o.stop or "end_turn",
             tool_uses = o.tool_uses or 0, prompt = o.prompt, text = o.text, thread_head = o.head, thread_tools = o.tools or 0,
             thread_sig = o.sig or "", thread_n = o.n or 1 }
  end
  local function role(id) return h:query("SELECT role FROM api_calls WHERE id = ?", id)[1].role end
  -- wire_in(session) -> wire() for calls of that session
  local function wire_in(sid)
    return function(o)
      local c = wire(o)
      c.session = sid
      h:exec("UPDATE api_calls SET session_id = ? WHERE id = ?", sid, c.id)
      return c
    end
  end
  local tr = turns.new(s2)
  local ten = "bash,edit,glob,grep,read,skill,task,todowrite,webfetch,write"
  -- a title comes first (no tools), then the agent's first answer
  local title = wire { head = "t1", prompt = "Generate a title for this conversation: fix it", text = "Fixing" }
  tr:call(title)
  T.is(tr.open and tr.open.prompt, "Generate a title for this conversation: fix it",
       "before any call with tools, one without is taken for the main one")
  tr:call(wire { head = "m1", tools = 10, sig = ten, prompt = "fix it", stop = "tool_use", tool_uses = 1 })
  T.is(role(title.id) .. " " .. tr.open.prompt, "side fix it",
       "the first call with tools is the main one: the title becomes a side call, the turn's prompt the real one")
  T.is(tr.open.calls .. " " .. tr.open.side_calls, "1 1", "and the turn counts them so")
  local helper = wire { head = "m1", tools = 7, sig = "edit,glob,grep,read,write,x,y", prompt = "fix it", text = "memories" }
  tr:call(helper)
  T.is(role(helper.id), "side", "the same conversation with fewer tools (memory extraction) is a side call")
  local sub = wire { head = "s1", tools = 5, sig = "bash,glob,grep,read,write", prompt = "look around", stop = "tool_use", tool_uses = 1 }
  tr:call(sub)
  T.is(role(sub.id), "subagent", "a conversation of its own with tools of its own: a subagent")
  local check = wire { head = "c1", tools = 0, prompt = "is the answer done?", text = "{}" }
  tr:call(check)
  T.is(role(check.id), "side", "a one-off with no tools while the main has some (a classifier): side")
  local last = wire { head = "m1", tools = 11, sig = ten .. ",more", text = "fixed" }
  tr:call(last)
  T.is(role(last.id), "main", "the main conversation goes on (its tools may grow)")
  T.ok(tr:api_done(0), "its answer ends the turn")
  tr:finish { status = "done" }
  local got = turns.get(s2, 1)
  T.is(got.prompt .. " | " .. got.response .. " | " .. got.calls .. " " .. got.side_calls, "fix it | fixed | 2 4",
       "the turn: the person's prompt, the main conversation's answer; side calls counted, never its prompt or answer")
  -- a new conversation with the agent's very tools: a new prompt (after /clear)
  local again = wire { head = "m2", tools = 11, sig = ten .. ",more", prompt = "now the docs", stop = "tool_use", tool_uses = 1 }
  tr:call(again)
  T.is(role(again.id) .. " " .. (tr.open and tr.open.prompt or "-"), "main now the docs",
       "a new conversation with the main's tools is the agent starting afresh: a new turn")
  tr:finish { status = "done" }
  -- Gemini's finish reason ends a turn as Anthropic's does
  tr:call(wire { head = "m3", tools = 11, sig = ten .. ",more", prompt = "and again", stop = "STOP", text = "ok" })
  T.ok(tr:api_done(0), "Gemini's STOP (no function call) ends the turn")
  tr:finish { status = "done" }
  -- an agent that asks for a summary as it starts, before the person types
  local s3 = assert(store.new_session { argv = { "x" }, cwd = dir, mode = "headless" })
  local tr3 = turns.new(s3)
  local on3 = wire_in(s3)
  local startup = on3 { head = "sum", prompt = "Summarize the user's primary intent", text = "nothing yet" }
  tr3:call(startup)
  tr3:finish { status = "done" } -- quiet: the driver ends it
  tr3:begin("fix the bug", "human", "terminal") -- the person types
  tr3:call(on3 { head = "g1", tools = 15, sig = "a,b,c", prompt = "fix the bug", stop = "tool_use", tool_uses = 1 })
  local list3 = turns.list(s3)
  T.is(#list3 .. " " .. list3[1].seq .. " " .. list3[1].prompt .. " " .. list3[1].known_from .. " " .. role(startup.id),
       "1 2 fix the bug api side",
       "a turn a side call began on its own (no main call in it) goes once the main calls show (numbers are not reused)")
  -- the agent appends a request of its own to the conversation (Qwen Code's
  -- next-prompt suggestion): not the person's
  local s4 = assert(store.new_session { argv = { "x" }, cwd = dir, mode = "headless" })
  local tr4 = turns.new(s4)
  local on4 = wire_in(s4)
  tr4.typed = true
  tr4:begin("run the tests", "human", "terminal")
  tr4:call(on4 { head = "q1", tools = 20, sig = "q", prompt = "run the tests", stop = "tool_use", tool_uses = 1 })
  tr4:call(on4 { head = "q1", tools = 20, sig = "q", text = "all pass" })
  local suggest = on4 { head = "q1", tools = 20, sig = "q", prompt = "[SUGGESTION MODE: what would the user type next?]",
                        text = "commit it" }
  tr4:call(suggest)
  T.is(role(suggest.id) .. " " .. tr4.open.prompt, "side run the tests",
       "a new user text the agent appends mid-turn is a side call; the turn keeps the person's prompt")
  tr4:finish { status = "done" }
  T.is(turns.get(s4, 1).response, "all pass", "and its answer is the main conversation's")
  local later = on4 { head = "q1", tools = 20, sig = "q", prompt = "[SUGGESTION MODE: again]", text = "push it" }
  tr4:call(later)
  T.is(role(later.id) .. " " .. #turns.list(s4), "side 1",
       "after the turn, with the person's prompts typed, such a call begins no turn")
  -- a typed turn that ended on quiet before the agent's first API call came
  local s5 = assert(store.new_session { argv = { "x" }, cwd = dir, mode = "headless" })
  local tr5 = turns.new(s5)
  local on5 = wire_in(s5)
  tr5.typed = true
  tr5:begin("fix the docs ", "human", "terminal")
  tr5:finish { status = "done" } -- quiet, and no API seen yet
  tr5:call(on5 { head = "t", tools = 0, prompt = "Generate a title for: fix the docs", text = "Docs" })
  local real = on5 { head = "o1", tools = 10, sig = "o", prompt = "fix the docs", stop = "tool_use", tool_uses = 1 }
  tr5:call(real)
  T.ok(tr5.open and tr5.open.seq == 1 and role(real.id) == "main", "the call carrying its prompt takes the turn up again")
  tr5:call(on5 { head = "o1", tools = 10, sig = "o", text = "docs fixed" })
  tr5:finish { status = "done" }
  local t5 = turns.get(s5, 1)
  T.is(#turns.list(s5) .. " " .. t5.status .. " " .. t5.response .. " " .. t5.calls, "1 done docs fixed 2",
       "one turn, ended by the API's answer, with its calls")
  -- a typed turn that ended on a title call's answer, before the main call
  local s6 = assert(store.new_session { argv = { "x" }, cwd = dir, mode = "headless" })
  local tr6 = turns.new(s6)
  local on6 = wire_in(s6)
  tr6.typed = true
  tr6:begin("tidy up", "human", "terminal")
  tr6:call(on6 { head = "t6", tools = 0, prompt = "Generate a title for this conversation:", text = "Tidying" })
  tr6:finish { status = "done" } -- the title's answer, and quiet
  local main6 = on6 { head = "m6", tools = 10, sig = "o", prompt = "tidy up", stop = "tool_use", tool_uses = 1 }
  tr6:call(main6)
  tr6:call(on6 { head = "m6", tools = 10, sig = "o", text = "tidied" })
  tr6:finish { status = "done" }
  local t6 = turns.get(s6, 1)
  T.is(#turns.list(s6) .. " " .. (t6 and (t6.prompt .. " " .. t6.response .. " " .. t6.calls .. " " .. t6.side_calls) or "none"),
       "1 tidy up tidied 2 1", "the main call takes the person's typed turn up again; the title is its side call")
  -- a profile that knows its title call says so before any main call
  local tr2 = turns.new(assert(store.new_session { argv = { "x" }, cwd = dir, mode = "headless" }))
  local t2 = wire { hint = "side", head = "x", prompt = "Generate a concise title" }
  t2.session = tr2.session
  tr2:call(t2)
  T.is(tostring(tr2.open) .. " " .. role(t2.id), "nil side", "a profile's hint counts where the wire says nothing yet")
end

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
