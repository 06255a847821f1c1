-- procy.record.transcript: the record as a conversation a person reads. A
-- headless agent's recorded lines (stream-json of Claude Code, `codex
-- exec --json`: renderer, what `procy agent log` shows), and any session,
-- interactive or headless, from its turns and API calls (session, what
-- `procy transcript` shows): each role in its colour, each tool result
-- under its call, labelled with the tool's name.

local json = require "procy.json"

local M = {}

local colours = { system = 36, user = 34, assistant = 32, tool = 33, result = 35, done = 94, error = 31, dim = 90 }

-- renderer{color = true|false} -> function(kind, line) -> text. kind: 'i'
-- (what went in) or 'o' (what came out).
function M.renderer(o)
  local tools = {} -- tool_use id -> name
  local function head(role, label)
    label = "### " .. label
    if o.color then return ("\27[1;%dm%s\27[0m\n"):format(colours[role] or 0, label) end
    return label .. "\n"
  end
  local function body(text)
    text = tostring(text or "")
    if text == "" then return "" end
    return "    " .. text:gsub("\n", "\n    ") .. "\n"
  end
  local function blocks(content, role)
    local out = {}
    if type(content) == "string" then return head(role, role) .. body(content) end
    for _, b in ipairs(type(content) == "table" and content or {}) do
      if type(b) ~= "table" then
      elseif b.type == "text" then out[#out + 1] = head(role, role) .. body(b.text)
      elseif b.type == "thinking" then out[#out + 1] = head("dim", "thinking") .. body(b.thinking)
      elseif b.type == "tool_use" then
        tools[b.id or ""] = b.name
        out[#out + 1] = head("tool", "tool " .. tostring(b.name)) .. body(json.encode(b.input, { sort = true }))
      elseif b.type == "tool_result" then
        local c = b.content
        if type(c) == "table" then
          local parts = {}
          for _, x in ipairs(c) do parts[#parts + 1] = type(x) == "table" and x.text or tostring(x) end
          c = table.concat(parts, "\n")
        end
        out[#out + 1] = head(b.is_error == true and "error" or "result",
          "result from " .. tostring(tools[b.tool_use_id or ""] or "a tool") .. (b.is_error == true and " (error)" or ""))
          .. body(c)
      end
    end
    return table.concat(out)
  end
  local function denials(list) -- tool uses refused for want of permission
    local out = {}
    for _, d in ipairs(type(list) == "table" and list or {}) do
      if type(d) == "table" then
        out[#out + 1] = head("error", "denied " .. tostring(d.tool_name) .. ": it needs permission")
          .. body(json.encode(d.tool_input, { sort = true }))
      end
    end
    return table.concat(out)
  end
  return function(kind, line)
    line = tostring(line):gsub("\n$", "")
    local ev = json.decode(line)
    if type(ev) ~= "table" then return kind == "o" and body(line) or "" end
    if kind == "i" then
      if ev.type == "user" and type(ev.message) == "table" then return blocks(ev.message.content, "user") end
      if ev.type == "control_request" then return head("dim", "control: " .. tostring(ev.request and ev.request.subtype)) end
      if ev[1] then return head("user", "user") .. body(ev[#ev]) end -- a command line: its last word is the prompt
      return ""
    end
    local t = ev.type
    if t == "system" and ev.subtype == "init" then
      return head("system", ("session %s · %s · %s"):format(tostring(ev.session_id), tostring(ev.model), tostring(ev.cwd)))
    elseif t == "assistant" and type(ev.message) == "table" then
      return blocks(ev.message.content, "assistant")
    elseif t == "user" and type(ev.message) == "table" then
      return blocks(ev.message.content, "user")
    elseif t == "result" then
      local bad = ev.is_error == true
      return head(bad and "error" or "done", ("result: %s%s%s"):format(tostring(ev.subtype),
        ev.num_turns and (" · " .. ev.num_turns .. " turns") or "",
        type(ev.total_cost_usd) == "number" and (" · $%.4f"):format(ev.total_cost_usd) or ""))
        .. (bad and body(ev.result) or "") .. denials(ev.permission_denials)
    elseif t == "thread.started" then
      return head("system", "thread " .. tostring(ev.thread_id))
    elseif t == "item.completed" and type(ev.item) == "table" then
      local it = ev.item
      if it.type == "agent_message" then return head("assistant", "assistant") .. body(it.text) end
      if it.type == "command_execution" then
        return head("tool", "tool shell") .. body(it.command) ..
               head("result", "result from shell (exit " .. tostring(it.exit_code) .. ")") .. body(it.aggregated_output)
      end
      if it.type == "reasoning" then return head("dim", "thinking") .. body(it.text) end
      if it.type == "error" then return head("error", "error") .. body(it.message) end
      return ""
    elseif t == "turn.completed" then
      return head("done", "turn completed")
    elseif t == "turn.failed" then
      return head("error", "turn failed") .. body(type(ev.error) == "table" and ev.error.message or nil)
    end
    return ""
  end
end

-- ---- a session, from the record -----------------------------------------------------------

local function secs(d) return type(d) == "number" and (d >= 60 and ("%dm%02ds"):format(d // 60, math.floor(d % 60)) or ("%.1f s"):format(d)) or "?" end

local usage = require "procy.usage"
local money = usage.money

-- session(id, {color =, full =, format = "text"|"md", db =}) -> text |
-- nil, err, code. Each turn: the prompt; then, call by call, what the
-- agent said, its thinking (collapsed unless full), each tool call with
-- its input and result (the first 20 lines unless full); the turn's
-- tokens, cost and time. Subagents' calls are counted (shown with full).
-- Redacted again with today's rules.
function M.session(id, o)
  o = o or {}
  local store, turns = require "procy.store", require "procy.turns"
  local h = o.db or store.open()
  local row, err, code = store.find_session(id, h)
  if not row then return nil, err, code end
  local md = o.format == "md"
  local colour = o.color and not md
  local out = {}
  local function put(s) out[#out + 1] = s end
  local function paint(role, text)
    if not colour then return text end
    return ("\27[1;%dm%s\27[0m"):format(colours[role] or 0, text)
  end
  local function cap(text, n)
    text = tostring(text or "")
    if o.full then return text end
    local lines, count = {}, 0
    for line in (text .. "\n"):gmatch("(.-)\n") do
      count = count + 1
      if count <= n then lines[#lines + 1] = line end
    end
    if count > n then lines[#lines + 1] = ("… %d more lines (--full shows them)"):format(count - n) end
    return table.concat(lines, "\n")
  end
  local function block(text, fence)
    text = tostring(text or "")
    if md then return (fence and ("```" .. fence .. "\n" .. text .. "\n```\n") or (text .. "\n")) .. "\n" end
    return "    " .. text:gsub("\n", "\n    ") .. "\n"
  end
  local function heading(level, role, text)
    if md then return ("%s %s\n\n"):format(("#"):rep(level), text) end
    return paint(role, (level == 1 and "# " or level == 2 and "## " or "### ") .. text) .. "\n"
  end
  -- What the agent did in these calls, block by block; -> whether it said
  -- anything, the tool uses shown, the subagent calls left out.
  local function render(calls, results)
    local said, shown, subs = false, {}, 0
    for _, c in ipairs(calls) do
      if c.role == "subagent" and not o.full then
        subs = subs + 1
      else
        local who = c.role == "subagent" and "subagent" or "assistant"
        for _, b in ipairs(json.decode(c.content or "[]") or {}) do
          if type(b) ~= "table" then
          elseif b.type == "text" and tostring(b.text) ~= "" then
            put(heading(3, "assistant", who))
            put(block(b.text))
            said = true
          elseif b.type == "thinking" then
            local th = tostring(b.thinking or "")
            if o.full then
              put(heading(3, "dim", "thinking"))
              put(block(th))
            elseif md then
              put(("<details><summary>thinking (%d characters)</summary>\n\n%s\n\n</details>\n\n"):format(#th, th))
            else
              put(paint("dim", ("    [thinking, %d characters]"):format(#th)) .. "\n")
            end
          elseif b.type == "tool_use" then
            local r = results[b.id or ""] or {}
            shown[b.id or ""] = true
            put(heading(3, "tool", "tool " .. tostring(b.name)))
            put(block(json.encode(b.input, { sort = true }), "json"))
            if r.result ~= nil and r.result ~= json.null then
              put(heading(3, r.is_error and "error" or "result", "result from " .. tostring(b.name) .. (r.is_error and " (error)" or "")))
              put(block(cap(r.result, 20), ""))
            end
          end
        end
      end
    end
    if subs > 0 then put(paint("dim", ("    [%d subagent call%s: --full shows them]"):format(subs, subs == 1 and "" or "s")) .. "\n") end
    return said, shown
  end
  local argv = type(row.argv) == "table" and table.concat(row.argv, " ") or tostring(row.argv or "")
  local list = turns.list(row.id, h)
  local total = usage.report({ session = row.id, db = h }).total
  put(heading(1, "system", ("Session %s · %s · %s · %s · %d turn%s · %s · %s"):format(row.id:sub(1, 8), argv, tostring(row.cwd),
    os.date("%Y-%m-%d %H:%M", (row.started_at or 0) // 1000000), #list, #list == 1 and "" or "s", usage.tokens(total),
    money(total.cost, total.unpriced))))
  if total.calls == 0 and turns.from_terminal(list) then put(paint("dim", "(" .. turns.terminal_note .. ")") .. "\n") end
  put("\n")
  for _, t in ipairs(list) do
    local u = t.usage or {}
    put(heading(2, t.status == "done" and "user" or "error", ("Turn %d · %s · %s · %s · %s%s"):format(t.seq,
      tostring(t.source), secs(t.duration), usage.tokens(u), money(t.cost),
      t.status ~= "done" and (" · " .. tostring(t.status)) or "")))
    if md then put("> " .. tostring(t.prompt ~= json.null and t.prompt or ""):gsub("\n", "\n> ") .. "\n\n")
    else put(block(t.prompt ~= json.null and t.prompt or "")) end
    local results = {}
    for _, tc in ipairs(t.tools or {}) do results[tc.id or ""] = tc end
    local trow = h:query("SELECT id FROM turns WHERE session_id = ? AND seq = ?", row.id, t.seq)[1]
    local calls = trow and h:query([[SELECT role, content FROM api_calls WHERE turn_id = ? AND coalesce(role, 'main') <> 'side'
      ORDER BY id]], trow.id) or {}
    local said, shown = render(calls, results)
    for _, tc in ipairs(t.tools or {}) do -- tools whose calls procy did not see (no capture)
      if not shown[tc.id or ""] then
        put(heading(3, "tool", "tool " .. tostring(tc.name)))
        put(block(json.encode(tc.input, { sort = true }), "json"))
        if tc.result ~= json.null then
          put(heading(3, "result", "result from " .. tostring(tc.name)))
          put(block(cap(tc.result, 20), ""))
        end
      end
    end
    if not said and t.response ~= json.null and t.response then
      put(heading(3, "assistant", "assistant"))
      put(block(t.response))
    end
    if t.error ~= json.null and t.error then put(heading(3, "error", "error")) put(block(t.error)) end
    put("\n")
  end
  if #list == 0 then -- calls with no turns (procy serve's): each call's answer, in order
    local results = {}
    for _, tc in ipairs(h:query("SELECT tool_use_id, result, is_error FROM tool_calls WHERE session_id = ?", row.id)) do
      results[tc.tool_use_id] = { result = tc.result or json.null, is_error = tc.is_error == 1 }
    end
    for _, c in ipairs(h:query([[SELECT id, role, model, content, input_tokens, output_tokens, cache_read_tokens,
        cache_creation_tokens, reasoning_tokens, cost, status FROM api_calls
        WHERE session_id = ? AND coalesce(role, 'main') <> 'side' ORDER BY id]], row.id)) do
      put(heading(2, "user", ("Call %d · %s · %s · %s%s"):format(c.id, tostring(c.model), usage.tokens(c),
        money(c.cost), c.status ~= 200 and (" · HTTP " .. tostring(c.status)) or "")))
      render({ c }, results)
      put("\n")
    end
  end
  return require("procy.redact").text(table.concat(out))
end

return M
