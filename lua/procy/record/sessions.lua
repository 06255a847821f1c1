-- procy.record.sessions: recorded sessions — listing, summaries, asciicast export
-- and replay in the terminal.

local core = require "procy.core"
local json = require "procy.json"
local store = require "procy.store"
local commands = require "procy.commands"

local M = {}

local function secs(us) return us and us / 1e6 end

local function started(row)
  return os.date("%Y-%m-%d %H:%M", math.floor(row.started_at / 1e6))
end

local function exit_text(row)
  if row.status == "running" then return "running" end
  if row.exit_signal then return "sig " .. row.exit_signal end
  if row.exit_code then return tostring(row.exit_code) end
  return row.status
end

-- list([limit]) -> text: one line per session, newest first
function M.list(limit)
  local rows = store.sessions(limit)
  if #rows == 0 then return "no sessions recorded in " .. store.path() .. "\n" end
  local out = { ("%-10s %-16s %8s %-7s %-9s %9s  %-24s %s"):format(
    "ID", "STARTED", "DURATION", "EXIT", "SIZE", "OUTPUT", "AGENT", "CWD") }
  for _, r in ipairs(rows) do
    local dur = r.ended_at and commands.duration((r.ended_at - r.started_at) / 1e6) or "-"
    local agent = table.concat(r.argv, " ")
    if #agent > 24 then agent = agent:sub(1, 23) .. "…" end
    out[#out + 1] = ("%-10s %-16s %8s %-7s %-9s %9s  %-24s %s"):format(
      r.id:sub(1, 10), started(r), dur, exit_text(r),
      r.cols and (r.cols .. "x" .. r.rows) or "-", commands.bytes(r.bytes_out), agent, r.cwd)
  end
  return table.concat(out, "\n") .. "\n"
end

-- summary(row) -> a table for `procy show --json`
function M.summary(row)
  local sum = store.event_summary(row.id)
  local markers, lines = json.array(), json.array()
  for ev in store.events(row.id, "ml") do
    local item = { t = secs(ev.t), text = ev.data }
    if ev.kind == "m" then markers[#markers + 1] = item else lines[#lines + 1] = item end
  end
  local turns = require("procy.turns").list(row.id)
  local api = require("procy.usage").report { session = row.id }.total
  local lost = store.losses(row.id)
  return {
    id = row.id, status = row.status, cwd = row.cwd, argv = json.array(row.argv),
    profile = row.profile or json.null, mode = row.mode,
    -- the agent's own id for this session (Claude Code's, Codex's thread):
    -- what joins the record with the agent's own logs
    agent_session_id = row.agent_session_id or json.null,
    started_at = secs(row.started_at), ended_at = secs(row.ended_at) or json.null,
    duration = row.ended_at and (row.ended_at - row.started_at) / 1e6 or json.null,
    exit_code = row.exit_code or json.null, exit_signal = row.exit_signal or json.null,
    cols = row.cols or json.null, rows = row.rows or json.null,
    bytes_in = row.bytes_in, bytes_out = row.bytes_out,
    events = sum.events, markers = markers, typed_lines = lines, turns = turns,
    -- false: no API call of the agent reached procy while it had turns
    -- (they come from the terminal: no tokens, no tools, no cost)
    api_visible = api.calls > 0 or not require("procy.turns").from_terminal(turns),
    api = { calls = api.calls, input_tokens = api.input_tokens, output_tokens = api.output_tokens,
            cache_creation_tokens = api.cache_creation_tokens, cache_read_tokens = api.cache_read_tokens,
            reasoning_tokens = api.reasoning_tokens,
            cost = api.cost or json.null, unpriced = api.unpriced, errors = api.errors,
            marked = api.marked },
    lost = lost, end_reason = row.end_reason or json.null,
  }
end

-- show(row) -> text for a person
function M.show(row)
  local s = M.summary(row)
  local out = {
    "session   " .. s.id,
    "agent     " .. table.concat(row.argv, " ") .. (row.agent_session_id and ("  (its session " .. row.agent_session_id .. ")") or ""),
    "cwd       " .. s.cwd,
    "started   " .. started(row) .. (row.ended_at and ("  (" .. commands.duration(s.duration) .. ")") or ""),
    "status    " .. s.status .. (row.exit_code and ("  exit " .. exit_text(row)) or ""),
    ("terminal  %s, %s typed, %s shown, %s"):format(
      row.cols and (row.cols .. "x" .. row.rows) or "?", commands.bytes(s.bytes_in),
      commands.bytes(s.bytes_out), commands.count(s.events, "event")),
    s.api_visible and ("api       %s, %s tokens, %s"):format(commands.count(s.api.calls, "call"),
      require("procy.usage").tokens(s.api), require("procy.usage").money(s.api.cost, s.api.unpriced))
      or ("api       none seen: " .. require("procy.turns").terminal_note),
  }
  if row.end_reason then out[#out + 1] = "ended     " .. row.end_reason end
  -- its family: the session it was forked from, and its forks (procy fork)
  local h = require("procy.store").open()
  if row.parent_id then out[#out + 1] = ("forked    from %s at turn %s"):format(row.parent_id, tostring(row.fork_turn)) end
  for _, k in ipairs(h:query("SELECT id, fork_turn, cwd FROM sessions WHERE parent_id = ? ORDER BY started_at", row.id)) do
    out[#out + 1] = ("fork      %s at turn %s, in %s"):format(k.id, tostring(k.fork_turn), k.cwd)
  end
  if s.api.marked > 0 or s.lost.api_calls > 0 or s.lost.output_events > 0 then
    local count = commands.count
    out[#out + 1] = ("record    %s kept with a parse error, %s lost, %s (%s) lost"):format(count(s.api.marked, "call"),
      count(s.lost.api_calls, "call"), count(s.lost.output_events, "output event"), commands.bytes(s.lost.output_bytes))
  end
  for _, m in ipairs(s.markers) do
    out[#out + 1] = ("marker    %s  %s"):format(os.date("%H:%M:%S", math.floor(m.t)), m.text)
  end
  for _, l in ipairs(s.typed_lines) do
    out[#out + 1] = ("typed     %s  %s"):format(os.date("%H:%M:%S", math.floor(l.t)), l.text:gsub("\n", " "))
  end
  return table.concat(out, "\n") .. "\n"
end

-- Holds back the incomplete UTF-8 sequence at the end of a chunk: asciicast
-- events are JSON strings, and a character split across two reads must not
-- turn into two replacement characters.
local function utf8_split(s)
  local n = #s
  for back = 1, math.min(3, n) do
    local c = s:byte(n - back + 1)
    if c >= 0xc0 then
      local need = c >= 0xf0 and 4 or c >= 0xe0 and 3 or 2
      if back < need then return s:sub(1, n - back), s:sub(n - back + 1) end
      return s, ""
    elseif c < 0x80 then
      return s, ""
    end
  end
  return s, ""
end

-- export(row, format, write): asciicast "cast" (v2) or "cast3" (v3),
-- written a line at a time through write(text)
function M.export(row, format, write)
  local t0 = row.started_at
  local first = true
  local cols, rows = row.cols or 80, row.rows or 24
  -- the size in effect at the start is the first resize event
  for ev in store.events(row.id, "r") do
    local c, r = ev.data:match("^(%d+)x(%d+)$")
    if c then cols, rows = tonumber(c), tonumber(r) end
    break
  end
  local meta = row.meta and json.decode(row.meta)
  -- the recorded terminal's type; the exporting shell's says nothing of it
  local env = { TERM = type(meta) == "table" and type(meta.term) == "string" and meta.term or "xterm-256color" }
  local title = "procy: " .. table.concat(row.argv, " ")
  if format == "cast3" then
    write(json.encode({ version = 3, term = { cols = cols, rows = rows, type = env.TERM },
      timestamp = t0 // 1000000, title = title, command = table.concat(row.argv, " ") }) .. "\n")
  else
    write(json.encode({ version = 2, width = cols, height = rows, timestamp = t0 // 1000000,
      env = env, title = title }) .. "\n")
  end
  local carry, last = "", t0
  for ev in store.events(row.id) do
    local code, data = ev.kind, ev.data
    if code == "o" then
      data, carry = utf8_split(carry .. data)
    elseif code == "r" and first then
      code = nil -- the header has it
    elseif code == "x" then
      code = format == "cast3" and "x" or nil
    elseif code == "l" then
      code = nil -- a typing hint, not terminal data
    end
    first = false
    if code and (#data > 0 or code ~= "o") then
      local t = format == "cast3" and (ev.t - last) / 1e6 or (ev.t - t0) / 1e6
      last = ev.t
      write(("[%.6f, %s, %s]\n"):format(t, json.encode(code), json.encode(data)))
    end
  end
end

-- play(row, {speed =, idle_limit =}): the output again, with its timing
function M.play(row, opts)
  local speed = opts.speed or 1
  local idle = opts.idle_limit
  -- the recording's queries never reach the terminal, and the terminal is
  -- given back as it was however play ends (procy.pty's player)
  local player <close> = require("procy.pty").player()
  local prev
  for ev in store.events(row.id, "ox") do
    if prev then
      local gap = (ev.t - prev) / 1e6
      if idle and gap > idle then gap = idle end
      if gap > 0 then core.sleep(gap / speed) end
    end
    prev = ev.t
    if ev.kind == "o" then player:write(ev.data) end
  end
end

return M
