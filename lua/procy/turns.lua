-- procy.turns: a turn is one prompt and everything the agent did for it.
-- A tracker per session folds what procy hears into `turns` rows: the
-- prompt (from the agent's own hook, from the driver that sent it, or from
-- the API call that carried it), the API calls (the main agent's, and side
-- calls — titles, subagents — linked but not counted as turns), and the
-- end (a Stop hook checked against the API, a stream-json result, a Codex
-- turn.completed, quiet time). Waiting for a turn waits on an op the
-- tracker completes: no polling.

local core = require "procy.core"
local json = require "procy.json"
local store = require "procy.store"

local M = {}
local T = {}
T.__index = T

-- new(session) -> tracker, numbering on from the session's last turn
function M.new(session)
  local last = store.open():query("SELECT coalesce(max(seq), 0) AS n FROM turns WHERE session_id = ?", session)[1].n
  return setmetatable({ session = session, seq = last, waiters = {}, watchers = {} }, T)
end

-- Wakes the tasks in watch() (something changed: a call, a begin, an end).
local function changed(self)
  local w = self.watchers
  self.watchers = {}
  for _, op in ipairs(w) do core.complete(op) end
end

-- watch([timeout]): waits until the tracker hears something
function T:watch(timeout)
  local op = core.op()
  self.watchers[#self.watchers + 1] = op
  return core.await(op, timeout)
end

-- begin(prompt, [source], [known_from]) -> the new open turn. A turn still
-- open ends as interrupted: a new prompt came before its end. source: what
-- was given, else what expect() announced, else "human". known_from
-- "terminal": the prompt is a line the person typed, all procy knows until
-- an API call brings the exact one.
function T:begin(prompt, source, known_from)
  if self.open then self:finish { status = "interrupted" } end
  source = source or self.next_source or "human"
  local now = store.now_us()
  local row = assert(store.open():query([[INSERT INTO turns(session_id, seq, source, prompt, started_at, status, known_from)
    VALUES (?, ?, ?, ?, ?, 'running', ?) RETURNING id]], self.session, self.seq + 1, source, prompt, now, known_from))[1]
  self.next_source = nil
  self.seq = self.seq + 1
  self.open = { id = row.id, seq = self.seq, source = source, prompt = prompt, started_at = now,
                calls = 0, side_calls = 0, known_from = known_from, typed = known_from == "terminal" }
  changed(self)
  return self.open
end

-- add(text): the person added text to the open turn while the agent
-- worked (Claude Code takes a line typed then into the turn under way): it
-- is kept with the turn, which goes on to the agent's end
function T:add(text)
  local turn = self.open
  if not turn then return end
  turn.added = turn.added or {}
  turn.added[#turn.added + 1] = { at = store.now_us(), text = text }
  store.open():exec("UPDATE turns SET added = ? WHERE id = ?", json.encode(turn.added), turn.id)
  changed(self)
end

-- expect(source): the next turn that begins without saying (a prompt seen
-- by a hook or the API) was sent by this source ("recipe", "proxy").
function T:expect(source)
  self.next_source = source
end

-- Sums a turn's calls into its row: tokens, cost (unknown when any call's
-- price is), call counts.
local function resum(turn)
  local h = store.open()
  local s = h:query([[SELECT sum(input_tokens) AS i, sum(output_tokens) AS o, sum(cache_creation_tokens) AS cw,
      sum(cache_read_tokens) AS cr, sum(reasoning_tokens) AS r, sum(cost) AS cost,
      sum(cost IS NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)) AS unpriced
    FROM api_calls WHERE turn_id = ?]], turn.id)[1]
  h:exec([[UPDATE turns SET input_tokens = ?, output_tokens = ?, cache_creation_tokens = ?, cache_read_tokens = ?,
      reasoning_tokens = ?, cost = ?, calls = ?, side_calls = ? WHERE id = ?]], s.i, s.o, s.cw, s.cr, s.r,
    (s.unpriced or 0) == 0 and s.cost or nil, turn.calls, turn.side_calls, turn.id)
end

-- ---- main or side: decided from the wire ------------------------------------------
--
-- The agent's own conversation (main) is told from the calls on the side
-- by what every API's traffic shows, not by who sent it: a call carries a
-- conversation (its first message's digest, `head`) and a tool set.
--   * a call of the main conversation (same head) with at least its tools
--     goes on with it: main; with fewer tools (the conversation handed to
--     a helper: memory extraction, a summary) it is a side call;
--   * a new conversation with the main's very tool set is the agent
--     starting afresh (a new session, /clear): main;
--   * with no tools, while the main has some (a title, a classifier, a
--     router's check): side; with tools of its own (a subagent, or a
--     helper agent): subagent;
--   * before any main, a call with tools is the main; one without is main
--     only for now: when a call with tools comes in the same turn, that one
--     is, and the first becomes the side call it was (opencode's title
--     comes before its first answer; Gemini CLI's classifier too);
--   * a call of the main conversation that brings a new user text of its
--     own is the agent asking for itself (Qwen Code's "suggest the next
--     prompt"), a side call: within a turn whose main call has been seen,
--     when its text is not the turn's prompt; outside any turn, when the
--     person's prompts come from the terminal (they begin the turns).
-- The profile's guess (c.role: Claude Code's and Codex's traffic) counts
-- only where the wire says nothing (a call with no conversation).

local function set_role(c, role)
  if c.role ~= role then
    store.open():exec("UPDATE api_calls SET role = ? WHERE id = ?", role, c.id)
    c.role = role
  end
end

function T:judge(c)
  local main = self.main
  if not c.thread_head or c.api == "other" then return c.role or "main" end
  local th = { head = c.thread_head, tools = c.thread_tools or 0, sig = c.thread_sig or "" }
  if not main or (main.provisional and th.tools > 0 and main.tools == 0) then
    if c.role == "side" and th.tools == 0 then return "side" end -- the profile knows it (a title)
    local demoted = main and main.call
    self.main = { head = th.head, tools = th.tools, sig = th.sig, provisional = th.tools == 0, call = c }
    if demoted then self:demote(demoted, c) end
    return "main"
  end
  if th.head == main.head then
    if th.tools < main.tools then return "side" end
    local open = self.open
    if c.prompt and ((open and open.calls > 0 and open.prompt and c.prompt ~= open.prompt)
                     or (not open and self.typed)) then
      return "side" -- a request of the agent's own, appended to the conversation
    end
    main.tools, main.sig, main.call = th.tools, th.sig, c
    return "main"
  end
  if th.sig == main.sig and (th.tools > 0 or not self.open) then
    main.head, main.call = th.head, c
    return "main"
  end
  if th.tools == 0 then return "side" end
  return "subagent"
end

-- demote(old, new): a call taken for the main one (before any call with
-- tools came) was on the side: it leaves the turn's main calls, and the
-- turn's prompt becomes the real main call's. A turn that call began and
-- that has ended with no other main call was none (a summary an agent
-- asks for as it starts): it goes. Turn numbers are not reused (waiters,
-- snapshots and the person know turns by them): the next is one more.
function T:demote(old, new)
  set_role(old, "side")
  local turn = self.open
  -- the person typed that turn's prompt and it ended on the side call's
  -- answer: it goes on, with the main call
  if not turn and self.last and old.turn_id == self.last.id and self.last.typed then
    self:reopen(self.last)
    turn = self.open
  end
  if old.turn_id and (not turn or old.turn_id ~= turn.id) then
    local h = store.open()
    local ok, err = pcall(h.transaction, h, function()
      local t = h:query("SELECT id FROM turns WHERE id = ? AND session_id = ?", old.turn_id, self.session)[1]
      if not t or #h:query("SELECT 1 FROM api_calls WHERE turn_id = ? AND role = 'main'", t.id) > 0 then return end
      for _, sql in ipairs { "UPDATE api_calls SET turn_id = NULL WHERE turn_id = ?",
                             "UPDATE tool_calls SET turn_id = NULL WHERE turn_id = ?", "DELETE FROM turns WHERE id = ?" } do
        local done, e, code = h:exec(sql, t.id)
        if not done then error({ err = e, code = code }) end
      end
    end)
    if not ok then core.log("warn", "a side call's turn stays: " .. tostring(type(err) == "table" and err.err or err)) end
    if ok and self.last and self.last.id == old.turn_id then self.last = nil end
    return
  end
  if not turn or old.turn_id ~= turn.id then return end
  turn.calls, turn.side_calls = turn.calls - 1, turn.side_calls + 1
  if turn.last_main == old then turn.last_main = nil end
  if turn.prompt_from == old and new.prompt then
    turn.prompt, turn.prompt_from = new.prompt, new
    store.open():exec("UPDATE turns SET prompt = ? WHERE id = ?", new.prompt, turn.id)
  end
end

-- reopen(turn): an ended turn goes on (its status back to running)
function T:reopen(turn)
  local done = store.open():exec("UPDATE turns SET status = 'running', ended_at = NULL, response = NULL WHERE id = ?", turn.id)
  if not done then return end
  turn.status, turn.ended_at = "running", nil
  self.open, self.last = turn, nil
  changed(self)
end

-- call(summary): a recorded API call of this session (serve.on_call)
function T:call(c)
  self.api_seen = true
  -- a turn typed on the terminal that ended on quiet before the session
  -- showed its API (the first API call may come seconds after the Enter):
  -- the call that carries its very prompt is that turn's, which goes on
  local last = self.last
  if not self.open and last and last.known_from == "terminal" and last.calls == 0 and last.side_calls == 0
     and type(c.prompt) == "string" and last.prompt and last.prompt:find("%S")
     and c.prompt:find(last.prompt:match("^%s*(.-)%s*$"), 1, true) then
    self:reopen(last)
  end
  set_role(c, self:judge(c))
  local turn = self.open
  -- calls are recorded a moment after they end: one that started before
  -- the last turn ended belongs to it (a title, or its final answer)
  local late = not turn and self.last and c.started_at <= (self.last.ended_at or 0) and self.last
  if late then turn = late end
  if not turn and c.role == "main" and c.prompt and not self.typed then
    turn = self:begin(c.prompt)
    turn.prompt_from = c
  end
  if not turn then return end
  c.turn_id = turn.id
  local h = store.open()
  h:exec("UPDATE api_calls SET turn_id = ? WHERE id = ?", turn.id, c.id)
  h:exec("UPDATE tool_calls SET turn_id = ? WHERE api_call_id = ? AND turn_id IS NULL", turn.id, c.id)
  if c.role == "main" then
    turn.calls = turn.calls + 1
    turn.last_main = c
    if turn.known_from == "terminal" and c.prompt then
      -- the line as typed was all procy knew: the API has the exact prompt
      turn.prompt, turn.prompt_from, turn.known_from = c.prompt, c, nil
      h:exec("UPDATE turns SET prompt = ?, known_from = NULL WHERE id = ?", c.prompt, turn.id)
    elseif not turn.prompt and c.prompt then
      turn.prompt, turn.prompt_from = c.prompt, c
      h:exec("UPDATE turns SET prompt = ? WHERE id = ?", c.prompt, turn.id)
    end
  else
    turn.side_calls = turn.side_calls + 1
  end
  if late then resum(turn) end
  changed(self)
end

-- Stop reasons that end an answer (a call that asks for a tool says so
-- too: Gemini's is STOP): Anthropic's, OpenAI's, Responses' statuses,
-- Gemini's finish reasons (compared in lower case).
local ended_reasons = { end_turn = true, stop_sequence = true, max_tokens = true, refusal = true,
                        stop = true, length = true, completed = true, incomplete = true,
                        safety = true, recitation = true, blocklist = true, prohibited_content = true,
                        spii = true, language = true, other = true, malformed_function_call = true }

-- api_done(inflight) -> whether the API says the open turn is over: its
-- last main call ended without asking for a tool, and no call of the
-- session is under way (inflight: srv:inflight(tag)).
function T:api_done(inflight)
  local m = self.open and self.open.last_main
  return m ~= nil and not m.aborted and ended_reasons[(m.stop_reason or ""):lower()] == true and (m.tool_uses or 0) == 0
    and (inflight or 0) == 0
end

-- finish{status = "done"|"interrupted"|"error", response =, error =,
-- denied =}: ends the open turn, with its tokens and cost summed over its
-- calls (the cost is unknown when any call's price is). denied: the tool
-- uses the agent refused for want of permission, {{tool =, input =}, ...},
-- kept in the turn's meta.
function T:finish(o)
  local turn = self.open
  if not turn then return end
  if turn.known_from == "terminal" and turn.calls == 0 and turn.side_calls == 0 and self.api_seen
     and store.open():exec("DELETE FROM turns WHERE id = ?", turn.id) then
    -- a line the agent handled without its model (/quit, /help), in a
    -- session whose API procy sees: a command to the agent, not a turn
    -- (its number is not reused; a record that refuses the delete keeps it)
    self.open = nil
    for i = #self.waiters, 1, -1 do
      if self.waiters[i].seq <= turn.seq then core.complete(table.remove(self.waiters, i).op) end
    end
    changed(self)
    return
  end
  self.open, self.last = nil, turn
  turn.status, turn.ended_at = o.status or "done", store.now_us()
  local response = o.response or (turn.last_main and turn.last_main.text)
  store.open():exec("UPDATE turns SET ended_at = ?, status = ?, response = ?, error = ?, meta = ? WHERE id = ?",
    turn.ended_at, turn.status, response, o.error, o.denied and json.encode { denied = o.denied } or nil, turn.id)
  resum(turn)
  -- the turn's end hook (the workspace snapshot a fork starts from) runs
  -- before anyone waiting hears of the end: what they do next comes after it
  if self.on_end then
    local ok, err = pcall(self.on_end, turn)
    if not ok then core.log("warn", "turn " .. turn.seq .. ": " .. tostring(err)) end
  end
  for i = #self.waiters, 1, -1 do
    local w = self.waiters[i]
    if w.seq <= turn.seq then
      table.remove(self.waiters, i)
      core.complete(w.op)
    end
  end
  changed(self)
end

-- wait(seq, [timeout]) -> the turn (M.get) once turn seq has ended, or
-- nil, "ETIMEDOUT: ...", "ETIMEDOUT"
function T:wait(seq, timeout)
  local ended = (not self.open or self.open.seq > seq) and seq <= self.seq
  if not ended then
    local op = core.op()
    local w = { seq = seq, op = op }
    self.waiters[#self.waiters + 1] = w
    local ok, err, code = core.await(op, timeout)
    if ok == nil and code then
      for i, x in ipairs(self.waiters) do
        if x == w then table.remove(self.waiters, i) break end
      end
      return nil, err, code
    end
  end
  return M.get(self.session, seq)
end

-- ---- reading turns ------------------------------------------------------------------

-- What every view says of turns known from the terminal alone.
M.terminal_note = "procy does not see this agent's API: its turns come from the terminal (the line the person "
  .. "typed, until the agent was idle again), with no tokens, no tool calls and no cost"

-- from_terminal(list) -> whether any turn of the list (M.list) was known
-- from the terminal alone
function M.from_terminal(list)
  for _, t in ipairs(list) do if t.known_from == "terminal" then return true end end
  return false
end

local function secs(us) return us and us / 1e6 or json.null end

-- The shape scripts rely on (procy show ID --json).
local function shape(t, tools)
  local meta = t.meta and json.decode(t.meta)
  return {
    denied = json.array(type(meta) == "table" and meta.denied or {}),
    seq = t.seq, source = t.source, status = t.status, prompt = t.prompt or json.null,
    response = t.response or json.null, error = t.error or json.null,
    started_at = secs(t.started_at), ended_at = secs(t.ended_at),
    duration = t.ended_at and (t.ended_at - t.started_at) / 1e6 or json.null,
    tools = json.array(tools),
    usage = { input_tokens = t.input_tokens or 0, output_tokens = t.output_tokens or 0,
              cache_creation_tokens = t.cache_creation_tokens or 0, cache_read_tokens = t.cache_read_tokens or 0,
              reasoning_tokens = t.reasoning_tokens or 0 },
    cost = t.cost or json.null, calls = t.calls, side_calls = t.side_calls,
    -- "terminal": procy saw only the terminal (no API: no tokens, no tools)
    known_from = t.known_from or "api",
    -- what the person added to the turn while the agent worked ({at, text})
    added = t.added and json.decode(t.added) or nil,
  }
end

local function tools_of(h, turn_id)
  local out = {}
  for _, c in ipairs(h:query([[SELECT * FROM tool_calls WHERE turn_id = ? ORDER BY coalesce(started_at, 0), id]], turn_id)) do
    local input = c.input and json.decode(c.input)
    out[#out + 1] = { id = c.tool_use_id, name = c.name, input = input == nil and json.null or input,
                      result = c.result or json.null, is_error = c.is_error == 1 }
  end
  return out
end

-- get(session, seq) -> one turn in the shape above, or nil
function M.get(session, seq)
  local h = store.open()
  local t = h:query("SELECT * FROM turns WHERE session_id = ? AND seq = ?", session, seq)[1]
  return t and shape(t, tools_of(h, t.id))
end

-- list(session, [db]) -> every turn of the session, in order
function M.list(session, h)
  h = h or store.open()
  local out = json.array()
  for _, t in ipairs(h:query("SELECT * FROM turns WHERE session_id = ? ORDER BY seq", session)) do
    out[#out + 1] = shape(t, tools_of(h, t.id))
  end
  return out
end

return M
