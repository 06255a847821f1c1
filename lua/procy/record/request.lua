-- procy.record.request: what a recorded request says: its view (only the new
-- part of a conversation decoded), the prompt it carries, the role of the
-- call (the agent's own, a side call, a subagent's) and the tool results
-- it sends. The recorder uses it on every call; routing asks the same
-- questions of a request before it is sent.

local json = require "procy.json"
local answer = require "procy.record.answer"

local M = {}

local tool_input = answer.tool_input
local str, tbl, EMPTY = answer.str, answer.tbl, answer.EMPTY

-- ---- the view ---------------------------------------------------------------
--
-- A request is looked at through a view: with what blobs.put_body said of
-- its big arrays, the elements an earlier request stored already (the
-- conversation so far) are not decoded, and only the new ones are looked
-- at. Such an array's length is its full length; from(list) is where its
-- new elements start, and an old element is decoded when asked for.

local lazy_mt = {
  __index = function(t, i)
    local m = getmetatable(t)
    local a = m.spans and math.type(i) == "integer" and m.spans[2 * i - 1]
    if not a then return nil end
    local v = json.decode(m.body:sub(a, m.spans[2 * i]))
    rawset(t, i, v)
    return v
  end,
  __len = function(t) return getmetatable(t).n end,
}

local function lazy_array(body, a)
  local first = math.min(a.known + 1, a.n) -- the last element is always looked at
  local t = setmetatable({}, { __index = lazy_mt.__index, __len = lazy_mt.__len, body = body,
    spans = a.spans, n = a.n, first = math.max(first, 1), hash = a.hash })
  for i = math.max(first, 1), a.n do
    rawset(t, i, json.decode(body:sub(a.spans[2 * i - 1], a.spans[2 * i])))
  end
  return t
end

-- The first index of list worth looking at: its first new element.
local function from(list)
  local m = getmetatable(list)
  return m and m.first or 1
end

-- request_view(body, info) -> the request as a table, as far as needed
local array_mt = getmetatable(json.array())

local function request_view(body, info)
  if not info or not next(info) then
    local v = json.decode(body)
    return type(v) == "table" and getmetatable(v) ~= array_mt and v or nil
  end
  local kind, members = json.spans(body)
  if kind ~= "object" then return nil end
  local req = {}
  for _, m in ipairs(members) do
    local a = info[m[1]]
    if a then
      req[m[1]] = lazy_array(body, a)
    else
      req[m[1]] = json.decode(body:sub(m[2], m[3]))
    end
  end
  return req
end

-- The conversation a request carries: messages (Anthropic, OpenAI chat),
-- input (Responses), contents (Gemini).
local function list_of(api, req)
  if api == "openai-responses" then return req.input end
  if api == "gemini" then return req.contents end
  return req.messages
end

-- head_of(list) -> a digest of a conversation's first message (16 hex):
-- which conversation a request carries. A lazy list's first element is
-- hashed as it stands in the body, without decoding it.
local hash = require "procy.hash"

local function head_of(list)
  local m = getmetatable(list)
  if m and m.spans and m.spans[1] then return hash.sha256(m.body:sub(m.spans[1], m.spans[2])):sub(1, 16) end
  local first = list[1]
  if first == nil then return nil end
  return hash.sha256(json.encode(first, { sort = true })):sub(1, 16)
end

-- A tool result's content as text.
local function result_text(c)
  if type(c) == "string" then return c end
  if type(c) ~= "table" then return (c == nil or c == json.null) and "" or tostring(c) end
  local parts = {}
  for _, b in ipairs(c) do
    if type(b) == "table" and (b.type == "text" or b.type == "input_text" or b.type == "output_text") then
      parts[#parts + 1] = str(b.text) or ""
    elseif type(b) == "table" then
      parts[#parts + 1] = "[" .. tostring(b.type) .. "]"
    end
  end
  if #parts == 0 and next(c) then return json.encode(c) end
  return table.concat(parts, "\n")
end

-- A tool_use a result answers, looked for in the elements before i (the
-- old part of a view is decoded only here, when procy did not see the
-- call that asked for it).
local function find_use(api, list, i, id)
  local head = api == "gemini" and head_of(list)
  for k = i, 1, -1 do
    local m = list[k]
    if api == "anthropic" then
      for _, b in ipairs(type(m) == "table" and tbl(m.content) or EMPTY) do
        if type(b) == "table" and b.type == "tool_use" and b.id == id then return { name = str(b.name), input = b.input } end
      end
    elseif api == "openai-chat" then
      for _, tc in ipairs(type(m) == "table" and tbl(m.tool_calls) or EMPTY) do
        if type(tc) == "table" and tc.id == id then
          local f = tbl(tc["function"]) or EMPTY
          return { name = str(f.name), input = tool_input({ str(f.arguments) }) }
        end
      end
    elseif api == "gemini" then
      for _, c in ipairs(type(m) == "table" and M.gemini_calls(m, k, head) or EMPTY) do
        if c.id == id then return { name = str(c.fc.name), input = c.fc.args } end
      end
    elseif type(m) == "table" and m.call_id == id then
      if m.type == "local_shell_call" then return { name = "local_shell", input = m.action } end
      if m.type == "function_call" or m.type == "custom_tool_call" then
        return { name = str(m.name), input = m.input ~= nil and m.input or tool_input({ str(m.arguments) }) }
      end
    end
  end
end

-- The tool results a request sends in its new elements: {id, text,
-- is_error, use = the tool_use asked for, when found}.
local function results_in_request(api, req)
  local results = {}
  local list = list_of(api, req)
  if type(list) ~= "table" then return results end
  local calls = api == "gemini" and {} -- a function response answers the call of its name before it
  local head = calls and head_of(list)
  if calls then
    for k = math.max(from(list) - 1, 1), #list do -- the model's calls the new responses answer
      local m = list[k]
      for _, c in ipairs(type(m) == "table" and m.role == "model" and M.gemini_calls(m, k, head) or EMPTY) do
        local q = calls[str(c.fc.name) or "?"] or {}
        calls[str(c.fc.name) or "?"] = q
        q[#q + 1] = c.id
      end
    end
  end
  for i = from(list), #list do
    local m = list[i]
    if type(m) == "table" then
      local function add(id, content, is_error)
        id = str(id)
        if id then results[#results + 1] = { id = id, text = result_text(content), is_error = is_error == true, at = i } end
      end
      if api == "anthropic" then
        for _, b in ipairs(tbl(m.content) or EMPTY) do
          if type(b) == "table" and b.type == "tool_result" then add(b.tool_use_id, b.content, b.is_error) end
        end
      elseif api == "openai-chat" then
        if m.role == "tool" then add(m.tool_call_id, m.content, false) end
      elseif api == "gemini" then
        for _, p in ipairs(m.role ~= "model" and tbl(m.parts) or EMPTY) do
          local fr = type(p) == "table" and tbl(p.functionResponse)
          if fr then
            local q = calls[str(fr.name) or "?"]
            local r = fr.response
            local err = type(r) == "table" and r.error ~= nil and r.output == nil
            local id = q and table.remove(q, 1)
            -- a call further back, decoded only now (8 contents at most: an
            -- answer to a name never called costs no walk through the history)
            for k = math.max(from(list) - 2, 0), math.max(from(list) - 10, 1), -1 do
              if id then break end
              for _, c in ipairs(type(list[k]) == "table" and list[k].role == "model" and M.gemini_calls(list[k], k, head) or EMPTY) do
                if c.fc.name == fr.name then id = c.id break end
              end
            end
            add(id, type(r) == "table" and (r.output or r.error or r) or r, err)
          end
        end
      elseif m.type == "function_call_output" or m.type == "custom_tool_call_output" then
        add(m.call_id, m.output, false)
      end
    end
  end
  for _, r in ipairs(results) do
    r.find = function() return find_use(api, list, r.at - 1, r.id) end
  end
  return results
end

-- ---- who asked, and what ----------------------------------------------------------

local function header(list, name)
  for _, h in ipairs(list) do
    if h[1]:lower() == name then return h[2] end
  end
end

-- A text part that is wholly one tagged block (<system-reminder>…</system-reminder>,
-- <session_context>…</session_context>): context the agent put beside the
-- person's words, not them.
local function tagged(t)
  local tag = t:match("^%s*<([%w_%-]+)>")
  return tag ~= nil and t:match("</" .. tag:gsub("%-", "%%-") .. ">%s*$") ~= nil
end

-- The person's text among a message's text parts: the parts that are not
-- a tagged context block (all of them when every one is).
local function words(parts)
  local out = {}
  for _, t in ipairs(parts) do if not tagged(t) then out[#out + 1] = t end end
  if #out == 0 then out = parts end -- nothing but tagged blocks: they are what was said
  return #out > 0 and table.concat(out, "\n") or nil
end

-- The text of a user message, without the <system-reminder> blocks an
-- agent adds; nil when it carries tool results (the agent going on, not a
-- new prompt) or no text.
local function user_text(content)
  if type(content) == "string" then return content end
  if type(content) ~= "table" then return nil end
  local parts = {}
  if content.parts then -- a Gemini content
    for _, p in ipairs(tbl(content.parts) or EMPTY) do
      if type(p) ~= "table" or p.functionResponse then return nil end
      if str(p.text) and not p.thought then parts[#parts + 1] = p.text end
    end
    return words(parts)
  end
  for _, b in ipairs(content) do
    if type(b) ~= "table" then return nil end
    if b.type == "tool_result" or b.type == "function_call_output" then return nil end
    local t = (b.type == "text" or b.type == "input_text") and str(b.text)
    if t and not t:match("^%s*<system%-reminder>.*</system%-reminder>%s*$") then
      parts[#parts + 1] = t
    end
  end
  return words(parts)
end

-- The prompt a request carries: its last message, when that is the user's
-- text (a call that sends tool results carries none).
local function prompt_of(api, req)
  local list = list_of(api, req)
  if type(list) == "string" then return list end
  if type(list) ~= "table" then return nil end
  for i = #list, 1, -1 do
    local m = list[i]
    if type(m) == "table" and m.role ~= "system" and m.role ~= "developer" then
      if api == "gemini" then return m.role ~= "model" and user_text(m) or nil end
      if m.role == "user" then return user_text(m.content) end
      return nil
    end
  end
end

-- What role_of needs of a request's tools, kept by the tools' hash: a
-- conversation sends the same 20-odd tools (tens of KB) with every call.
local tool_facts, tool_facts_n = {}, 0

local function tools_of(req)
  local tools = tbl(req.tools)
  if not tools then return { n = 0 } end
  local m = getmetatable(tools)
  local key = m and m.hash
  local f = key and tool_facts[key]
  if f then return f end
  f = { n = 0 }
  local names = {}
  local function add(name)
    f.n = f.n + 1
    names[#names + 1] = type(name) == "string" and name or "?"
    if name == "Task" or name == "Agent" then f.task = true end
  end
  for i = 1, #tools do
    local t = tools[i]
    if type(t) == "table" and tbl(t.functionDeclarations) then -- Gemini: declarations grouped
      for _, d in ipairs(t.functionDeclarations) do add(type(d) == "table" and d.name) end
    elseif type(t) == "table" then
      add(t.name or (tbl(t["function"]) and t["function"].name) or t.type)
    end
  end
  table.sort(names)
  f.sig = table.concat(names, ",")
  if key then
    if tool_facts_n >= 1000 then tool_facts, tool_facts_n = {}, 0 end
    tool_facts[key], tool_facts_n = f, tool_facts_n + 1
  end
  return f
end

-- main: the agent's own conversation. Claude Code's and Codex's calls say
-- more: one with no tools is a side call (a title, a summary); a Claude
-- Code call with tools but not the Task tool is a subagent's.
local function role_of(req, headers)
  local agent = header(headers, "user-agent") or ""
  local tools = tools_of(req)
  if agent:find("^codex") then return tools.n == 0 and "side" or "main" end -- a title has none
  if not agent:find("^claude%-cli/") then return "main" end
  if tools.n == 0 then return "side" end
  return tools.task and "main" or "subagent"
end

-- gemini_calls(content, k, head) -> {{fc =, id =}, ...}: the function calls
-- of a Gemini content that stands k-th in its conversation (head: the
-- conversation's, head_of: two conversations' calls never share an id). Gemini's calls
-- often carry no id, and a client may give them its own (Gemini CLI does)
-- that the answer never had: their id in the record is made of where the
-- call stands (the content, its name, how many of that name came before
-- it there), the same when the answer is recorded (k: the request's
-- length + 1) and when the next request sends the call back with its
-- response.
function M.gemini_id(head, k, name, nth) return ("gemini-%s-%d-%s-%d"):format(head or "-", k, name, nth) end

function M.gemini_calls(content, k, head)
  local out, seen = {}, {}
  for _, p in ipairs(tbl(content.parts) or EMPTY) do
    local fc = type(p) == "table" and tbl(p.functionCall)
    if fc then
      local name = str(fc.name) or "?"
      seen[name] = (seen[name] or 0) + 1
      out[#out + 1] = { fc = fc, id = M.gemini_id(head, k, name, seen[name]) }
    end
  end
  return out
end

-- thread(api, req) -> what says which conversation a request belongs to:
-- {n = its messages, head = a digest of the first, tools = how many tools
-- it offers, sig = their names}. procy.turns compares calls by these.

local function thread_of(api, req)
  local list = list_of(api, req)
  local t = tools_of(req)
  local n, head = 0, nil
  if type(list) == "table" then n, head = #list, head_of(list)
  elseif type(list) == "string" then n, head = 1, hash.sha256(list):sub(1, 16) end
  return { n = n, head = head, tools = t.n, sig = t.sig or "" }
end

-- client_session(headers) -> the client's own session id, when its
-- requests say it: Claude Code's X-Claude-Code-Session-Id, Codex's
-- session-id, the AI SDK's (opencode's) x-session-id; any header whose
-- name ends in session-id.
local function client_session(headers)
  local best
  for _, h in ipairs(headers) do
    local n = h[1]:lower()
    if n == "x-claude-code-session-id" then return h[2] end
    if not best and (n == "session-id" or n == "session_id" or n:find("[%-_]session[%-_]id$")) then best = h[2] end
  end
  return best
end

M.header = header
M.client_session = client_session
M.list = list_of
M.thread = thread_of
-- view(body, info) -> the request as a table (info: what blobs.put_body
-- said of its big arrays), or nil when it is no JSON object.
M.view = request_view
-- prompt(api, req) -> the user's text its last message carries, or nil.
M.prompt = prompt_of
-- role(req, headers) -> "main", "side" or "subagent".
M.role = role_of
-- results(api, req) -> the tool results in its new elements.
M.results = results_in_request

return M
