-- procy.transcript: a headless agent's recorded lines (stream-json of
-- Claude Code, `codex exec --json`) as a transcript a person reads: each
-- role in its colour, each tool result under its call, labelled with the
-- tool's name.

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

return M
