-- procy.capture: turns the proxy's finished calls into the record. The
-- bytes went to the client in C; here, off that path, each call is
-- redacted, parsed and written: an api_calls row, its bodies as blobs,
-- and tool_calls linking every tool_use to the tool_result that answers it.
--
-- Parsed content is the same shape for every API: a list of blocks
-- {type = "text", text}, {type = "thinking", thinking, signature},
-- {type = "tool_use", id, name, input}, or a provider's own block (server
-- tools) kept as it came.

local json = require "procy.json"
local blobs = require "procy.blobs"
local prices = require "procy.prices"

local M = {}

-- ---- redaction ---------------------------------------------------------------

M.secret_headers = {
  ["x-api-key"] = true, ["authorization"] = true, ["proxy-authorization"] = true,
  ["cookie"] = true, ["set-cookie"] = true, ["x-procy-token"] = true,
  ["openai-api-key"] = true, ["x-goog-api-key"] = true, ["api-key"] = true,
}

local key = "[%w_%-]"
-- Always on; the `redact` setting adds more (Lua patterns). Each default
-- has the literal text every match starts with: a plain search for it
-- rules out most text at once.
M.default_patterns = {
  { "sk-", "sk%-" .. key:rep(16) .. key .. "*" },                    -- Anthropic and OpenAI keys
  { "gh", "gh[pousr]_" .. ("[%w]"):rep(30) .. "[%w]*" },             -- GitHub tokens
  { "github_pat_", "github_pat_" .. ("[%w_]"):rep(30) .. "[%w_]*" },
  { "AKIA", "AKIA" .. ("[%u%d]"):rep(16) },                         -- AWS access key ids
  { "AIza", "AIza" .. key:rep(35) },                                -- Google API keys
  { "xox", "xox[baprs]%-" .. ("[%w%-]"):rep(10) .. "[%w%-]*" },      -- Slack tokens
}
M.mask = "[REDACTED]"

local cached, cached_for
-- {{prefix or false, pattern}, ...}: the defaults and the setting's
local function patterns()
  local extra = (M.settings or require("procy.config").get()).redact
  if cached_for ~= extra then
    cached = table.move(M.default_patterns, 1, #M.default_patterns, 1, {})
    for _, p in ipairs(extra or {}) do cached[#cached + 1] = { false, p } end
    cached_for = extra
  end
  return cached
end

-- redact(text) -> text with every secret pattern replaced by M.mask
function M.redact(text)
  for _, p in ipairs(patterns()) do
    if (not p[1] or text:find(p[1], 1, true)) and text:find(p[2]) then text = text:gsub(p[2], M.mask) end
  end
  return text
end

-- redact_headers({{name, value}, ...}) -> a copy, secrets masked. An
-- Authorization header keeps its scheme ("Bearer [REDACTED]").
function M.redact_headers(list)
  local out, values = {}, {}
  for i, h in ipairs(list) do
    local name, value = h[1], h[2]
    local lower = name:lower()
    if M.secret_headers[lower] then
      local scheme = lower:find("authorization", 1, true) and value:match("^(%a+) ")
      value = scheme and (scheme .. " " .. M.mask) or M.mask
    end
    out[i] = { name, value }
    values[i] = value
  end
  local all = table.concat(values, "\n")
  if M.redact(all) ~= all then -- a secret in some other header: find it
    for _, h in ipairs(out) do h[2] = M.redact(h[2]) end
  end
  return out
end

-- ---- server-sent events ---------------------------------------------------------

-- The streamed pieces of text an event carries, as {key, holder, field}:
-- holder[field] is a piece of the text named key (a content block, a
-- choice, a tool call's arguments), for Anthropic, OpenAI chat and
-- Responses streams alike.
local function pieces(d)
  local out = {}
  local function add(key, holder, field)
    if type(holder) == "table" and type(holder[field]) == "string" then out[#out + 1] = { key, holder, field } end
  end
  if type(d) ~= "table" then return out end
  if type(d.delta) == "string" then
    add(("r%s:%s:%s"):format(d.item_id, d.output_index, d.content_index), d, "delta")
  elseif type(d.delta) == "table" then
    for _, f in ipairs { "text", "thinking", "partial_json" } do add(("a%s%s"):format(d.index, f), d.delta, f) end
  end
  for k, c in ipairs(type(d.choices) == "table" and d.choices or {}) do
    local dl = type(c) == "table" and c.delta
    if type(dl) == "table" then
      for _, f in ipairs { "content", "reasoning_content", "reasoning" } do add(("c%d%s"):format(k, f), dl, f) end
      for j, tc in ipairs(type(dl.tool_calls) == "table" and dl.tool_calls or {}) do
        add(("t%d:%s"):format(k, tc.index or j), type(tc) == "table" and tc["function"], "arguments")
      end
    end
  end
  return out
end

-- redact_stream(body) -> body: a secret the model wrote across several
-- streamed events is in no single event, so the pattern pass cannot see
-- it. Here each streamed text is put together, secrets found in it, and
-- the events holding their pieces are re-encoded with the secret masked
-- (the first piece gets the mask, the others lose their part of it).
-- Events without a secret keep their bytes.
function M.redact_stream(body)
  local events, texts = {}, {}
  local pos = 1
  while pos <= #body do
    local s, e = body:find("\r?\n\r?\n", pos)
    local raw = body:sub(pos, e or #body)
    pos = (e or #body) + 1
    local ev = { raw = raw }
    events[#events + 1] = ev
    local data = raw:match("^data: ?(.-)\r?\n") or raw:match("\ndata: ?(.-)\r?\n")
    local d = data and data:sub(1, 1) == "{" and json.decode(data)
    for _, p in ipairs(d and pieces(d) or {}) do
      local t = texts[p[1]] or { parts = {}, len = 0 }
      texts[p[1]] = t
      local piece = p[2][p[3]]
      t.parts[#t.parts + 1] = { ev = ev, holder = p[2], field = p[3], from = t.len + 1, to = t.len + #piece }
      t.len = t.len + #piece
      ev.data = d
    end
    if not s then break end
  end
  local changed = false
  for _, t in pairs(texts) do
    local whole = {}
    for i, p in ipairs(t.parts) do whole[i] = p.holder[p.field] end
    whole = table.concat(whole)
    local spans = {}
    for _, pat in ipairs(patterns()) do
      local at = 1
      while not pat[1] or whole:find(pat[1], at, true) do
        local a, b = whole:find(pat[2], at)
        if not a or b < a then break end
        spans[#spans + 1] = { a, b }
        at = b + 1
      end
    end
    table.sort(spans, function(x, y) return x[1] < y[1] end)
    for _, p in ipairs(#spans > 0 and t.parts or {}) do
      local s, out, cur, hit = p.holder[p.field], {}, p.from, false
      for _, sp in ipairs(spans) do
        if sp[2] >= cur and sp[1] <= p.to then
          local lo, hi = math.max(sp[1], cur), math.min(sp[2], p.to)
          out[#out + 1] = s:sub(cur - p.from + 1, lo - p.from)
          if sp[1] >= p.from then out[#out + 1] = M.mask end
          cur, hit = hi + 1, true
        end
      end
      if hit then
        out[#out + 1] = s:sub(cur - p.from + 1)
        p.holder[p.field] = table.concat(out)
        p.ev.dirty, changed = true, true
      end
    end
  end
  if not changed then return body end
  local out = {}
  for i, ev in ipairs(events) do
    if ev.dirty then
      local name = ev.raw:match("^event: ?([^\r\n]*)") or ev.raw:match("\nevent: ?([^\r\n]*)")
      out[i] = (name and ("event: " .. name .. "\n") or "") .. "data: " .. json.encode(ev.data) .. "\n\n"
    else
      out[i] = ev.raw
    end
  end
  return table.concat(out)
end

-- sse(text) -> {{event =, data =}, ...}: the events in a stream as sent
-- (data lines joined with "\n"); a last event without its blank line too.
function M.sse(text)
  local list, event, data = {}, nil, nil
  local function dispatch()
    if data then list[#list + 1] = { event = event or "message", data = table.concat(data, "\n") } end
    event, data = nil, nil
  end
  for line in text:gmatch("([^\n]*)\n?") do
    if line:sub(-1) == "\r" then line = line:sub(1, -2) end
    if line == "" then
      dispatch()
    elseif line:sub(1, 1) ~= ":" then
      local field, value = line:match("^([^:]*):? ?(.*)$")
      if field == "event" then
        event = value
      elseif field == "data" then
        data = data or {}
        data[#data + 1] = value
      end
    end
  end
  dispatch()
  return list
end

-- ---- parsing responses ------------------------------------------------------------

local function num(v) return math.type(v) and v or nil end

-- Anthropic usage into the record's terms (input_tokens excludes the cache).
local function anthropic_usage(into, u)
  if type(u) ~= "table" then return end
  into.input_tokens = num(u.input_tokens) or into.input_tokens
  into.output_tokens = num(u.output_tokens) or into.output_tokens
  into.cache_creation_tokens = num(u.cache_creation_input_tokens) or into.cache_creation_tokens
  into.cache_read_tokens = num(u.cache_read_input_tokens) or into.cache_read_tokens
  if type(u.cache_creation) == "table" then
    into.cache_creation_1h_tokens = num(u.cache_creation.ephemeral_1h_input_tokens) or into.cache_creation_1h_tokens
  end
end

-- OpenAI counts cached tokens inside the prompt's; split them out.
local function openai_usage(into, u)
  if type(u) ~= "table" then return end
  local input = num(u.prompt_tokens) or num(u.input_tokens)
  local details = u.prompt_tokens_details or u.input_tokens_details
  local cached = type(details) == "table" and num(details.cached_tokens) or 0
  if input then
    into.input_tokens = input - cached
    into.cache_read_tokens = cached
  end
  into.output_tokens = num(u.completion_tokens) or num(u.output_tokens) or into.output_tokens
end

-- A tool's input from its streamed JSON pieces; the pieces as a string when
-- they do not make JSON (a stream cut short).
local function tool_input(pieces, given)
  local s = table.concat(pieces or {})
  if s == "" then return given or json.object() end
  local v = json.decode(s)
  if v == nil then return s end
  return v
end

local parse = {}

function parse.anthropic(body, stream)
  local out = { content = {}, usage = {} }
  if not stream then
    local m = json.decode(body)
    if type(m) ~= "table" then return out end
    if m.type == "error" then out.error = m.error end
    out.id, out.model, out.stop_reason = m.id, m.model, m.stop_reason
    out.content = type(m.content) == "table" and m.content or {}
    anthropic_usage(out.usage, m.usage)
    return out
  end
  local blocks, acc, order = {}, {}, {}
  for _, e in ipairs(M.sse(body)) do
    local d = json.decode(e.data)
    local t = type(d) == "table" and d.type
    if t == "message_start" and type(d.message) == "table" then
      out.id, out.model = d.message.id, d.message.model
      anthropic_usage(out.usage, d.message.usage)
    elseif t == "content_block_start" and num(d.index) and type(d.content_block) == "table" then
      if not blocks[d.index] then order[#order + 1] = d.index end
      blocks[d.index] = d.content_block
      acc[d.index] = { text = {}, thinking = {}, json = {}, signature = {} }
    elseif t == "content_block_delta" and acc[d.index] and type(d.delta) == "table" then
      local a, dl = acc[d.index], d.delta
      if dl.type == "text_delta" then a.text[#a.text + 1] = dl.text
      elseif dl.type == "thinking_delta" then a.thinking[#a.thinking + 1] = dl.thinking
      elseif dl.type == "signature_delta" then a.signature[#a.signature + 1] = dl.signature
      elseif dl.type == "input_json_delta" then a.json[#a.json + 1] = dl.partial_json
      elseif dl.type == "citations_delta" then
        local b = blocks[d.index]
        b.citations = b.citations or {}
        b.citations[#b.citations + 1] = dl.citation
      end
    elseif t == "message_delta" then
      if type(d.delta) == "table" then out.stop_reason = d.delta.stop_reason or out.stop_reason end
      anthropic_usage(out.usage, d.usage)
    elseif t == "error" then
      out.error = d.error
    end
  end
  for _, i in ipairs(order) do
    local b, a = blocks[i], acc[i]
    if #a.text > 0 then b.text = (b.text or "") .. table.concat(a.text) end
    if #a.thinking > 0 then b.thinking = (b.thinking or "") .. table.concat(a.thinking) end
    if #a.signature > 0 then b.signature = (b.signature or "") .. table.concat(a.signature) end
    if b.input ~= nil or #a.json > 0 then b.input = tool_input(a.json, b.input) end
    out.content[#out.content + 1] = b
  end
  return out
end

local function chat_message(out, m, finish)
  if type(m) ~= "table" then return end
  local thinking = m.reasoning_content or m.reasoning
  if type(thinking) == "string" and thinking ~= "" then
    out.content[#out.content + 1] = { type = "thinking", thinking = thinking }
  end
  if type(m.content) == "string" and m.content ~= "" then
    out.content[#out.content + 1] = { type = "text", text = m.content }
  end
  for _, tc in ipairs(type(m.tool_calls) == "table" and m.tool_calls or {}) do
    local f = type(tc["function"]) == "table" and tc["function"] or {}
    out.content[#out.content + 1] = { type = "tool_use", id = tc.id, name = f.name,
      input = tool_input({ f.arguments }) }
  end
  out.stop_reason = finish or out.stop_reason
end

parse["openai-chat"] = function(body, stream)
  local out = { content = {}, usage = {} }
  if not stream then
    local m = json.decode(body)
    if type(m) ~= "table" then return out end
    out.id, out.model, out.error = m.id, m.model, m.error
    local c = type(m.choices) == "table" and m.choices[1]
    if type(c) == "table" then chat_message(out, c.message, c.finish_reason) end
    openai_usage(out.usage, m.usage)
    return out
  end
  local text, thinking, tools, finish = {}, {}, {}, nil
  for _, e in ipairs(M.sse(body)) do
    local d = e.data ~= "[DONE]" and json.decode(e.data)
    if type(d) == "table" then
      out.id, out.model = d.id or out.id, d.model or out.model
      if d.error then out.error = d.error end
      for _, c in ipairs(type(d.choices) == "table" and d.choices or {}) do
        local dl = type(c) == "table" and c.delta
        if type(dl) == "table" and (c.index or 0) == 0 then
          if type(dl.content) == "string" then text[#text + 1] = dl.content end
          local r = dl.reasoning_content or dl.reasoning
          if type(r) == "string" then thinking[#thinking + 1] = r end
          for _, tc in ipairs(type(dl.tool_calls) == "table" and dl.tool_calls or {}) do
            local i = (num(tc.index) or #tools) + 1
            local slot = tools[i] or { args = {} }
            tools[i] = slot
            local f = type(tc["function"]) == "table" and tc["function"] or {}
            slot.id, slot.name = tc.id or slot.id, f.name or slot.name
            if type(f.arguments) == "string" then slot.args[#slot.args + 1] = f.arguments end
          end
        end
        if type(c) == "table" and type(c.finish_reason) == "string" then finish = c.finish_reason end
      end
      openai_usage(out.usage, d.usage)
    end
  end
  local m = { content = table.concat(text), reasoning = table.concat(thinking), tool_calls = {} }
  for i = 1, #tools do
    local t = tools[i] or { args = {} }
    m.tool_calls[i] = { id = t.id, ["function"] = { name = t.name, arguments = table.concat(t.args) } }
  end
  chat_message(out, m, finish)
  return out
end

-- A Responses API output item as content blocks.
local function response_item(out, it)
  if type(it) ~= "table" then return end
  local t = it.type
  if t == "message" then
    for _, c in ipairs(type(it.content) == "table" and it.content or {}) do
      if c.type == "output_text" or c.type == "refusal" then
        out.content[#out.content + 1] = { type = "text", text = c.text or c.refusal }
      end
    end
  elseif t == "reasoning" then
    local parts = {}
    for _, s in ipairs(type(it.summary) == "table" and it.summary or {}) do parts[#parts + 1] = s.text end
    out.content[#out.content + 1] = { type = "thinking", thinking = table.concat(parts, "\n\n"),
      signature = it.encrypted_content }
  elseif t == "function_call" then
    out.content[#out.content + 1] = { type = "tool_use", id = it.call_id, name = it.name,
      input = tool_input({ it.arguments }) }
  elseif t == "custom_tool_call" then
    out.content[#out.content + 1] = { type = "tool_use", id = it.call_id, name = it.name, input = it.input }
  elseif t == "local_shell_call" then
    out.content[#out.content + 1] = { type = "tool_use", id = it.call_id, name = "local_shell", input = it.action }
  else
    out.content[#out.content + 1] = it
  end
end

local function response_object(out, r)
  if type(r) ~= "table" then return end
  out.id, out.model = r.id or out.id, r.model or out.model
  if r.error ~= nil and r.error ~= json.null then out.error = r.error end
  local inc = type(r.incomplete_details) == "table" and r.incomplete_details.reason
  out.stop_reason = inc or r.status or out.stop_reason
  openai_usage(out.usage, r.usage)
  return type(r.output) == "table" and #r.output > 0 and r.output or nil
end

parse["openai-responses"] = function(body, stream)
  local out = { content = {}, usage = {} }
  local items = {}
  if not stream then
    items = response_object(out, json.decode(body)) or {}
  else
    for _, e in ipairs(M.sse(body)) do
      local d = json.decode(e.data)
      local t = type(d) == "table" and d.type
      if t == "response.output_item.done" and num(d.output_index) then
        items[d.output_index + 1] = d.item
      elseif t and t:match("^response%.") and type(d.response) == "table" then
        local final = response_object(out, d.response)
        if final then items = final end
      elseif t == "error" then
        out.error = d
      end
    end
  end
  local last = 0
  for i in pairs(items) do last = math.type(i) == "integer" and math.max(last, i) or last end
  for i = 1, last do response_item(out, items[i]) end
  return out
end

function parse.other(body)
  local m = json.decode(body)
  local out = { content = {}, usage = {} }
  if type(m) == "table" and m.error ~= nil and m.error ~= json.null then out.error = m.error end
  return out
end

-- ---- the request ---------------------------------------------------------------

-- A tool result's content as text.
local function result_text(c)
  if type(c) == "string" then return c end
  if type(c) ~= "table" then return c == nil and "" or tostring(c) end
  local parts = {}
  for _, b in ipairs(c) do
    if type(b) == "table" and (b.type == "text" or b.type == "input_text" or b.type == "output_text") then
      parts[#parts + 1] = b.text
    elseif type(b) == "table" then
      parts[#parts + 1] = "[" .. tostring(b.type) .. "]"
    end
  end
  if #parts == 0 and next(c) then return json.encode(c) end
  return table.concat(parts, "\n")
end

-- The tool_use blocks a request's history holds, and the results it sends.
local function tools_in_request(api, req)
  local uses, results = {}, {}
  if api == "anthropic" then
    for _, m in ipairs(type(req.messages) == "table" and req.messages or {}) do
      for _, b in ipairs(type(m) == "table" and type(m.content) == "table" and m.content or {}) do
        if type(b) == "table" and b.type == "tool_use" and b.id then
          uses[b.id] = { name = b.name, input = b.input }
        elseif type(b) == "table" and b.type == "tool_result" and b.tool_use_id then
          results[#results + 1] = { id = b.tool_use_id, text = result_text(b.content), is_error = b.is_error == true }
        end
      end
    end
  elseif api == "openai-chat" then
    for _, m in ipairs(type(req.messages) == "table" and req.messages or {}) do
      if type(m) == "table" and m.role == "tool" and m.tool_call_id then
        results[#results + 1] = { id = m.tool_call_id, text = result_text(m.content), is_error = false }
      end
      for _, tc in ipairs(type(m) == "table" and type(m.tool_calls) == "table" and m.tool_calls or {}) do
        local f = type(tc["function"]) == "table" and tc["function"] or {}
        if tc.id then uses[tc.id] = { name = f.name, input = tool_input({ f.arguments }) } end
      end
    end
  elseif api == "openai-responses" then
    for _, it in ipairs(type(req.input) == "table" and req.input or {}) do
      local t = type(it) == "table" and it.type
      if (t == "function_call_output" or t == "custom_tool_call_output") and it.call_id then
        results[#results + 1] = { id = it.call_id, text = result_text(it.output), is_error = false }
      elseif (t == "function_call" or t == "custom_tool_call") and it.call_id then
        uses[it.call_id] = { name = it.name, input = it.input or tool_input({ it.arguments }) }
      elseif t == "local_shell_call" and it.call_id then
        uses[it.call_id] = { name = "local_shell", input = it.action }
      end
    end
  end
  return uses, results
end

-- ---- who asked, and what ----------------------------------------------------------

local function header(list, name)
  for _, h in ipairs(list) do
    if h[1]:lower() == name then return h[2] end
  end
end

-- The text of a user message, without the <system-reminder> blocks an
-- agent adds; nil when it carries tool results (the agent going on, not a
-- new prompt) or no text.
local function user_text(content)
  if type(content) == "string" then return content end
  if type(content) ~= "table" then return nil end
  local parts = {}
  for _, b in ipairs(content) do
    if type(b) ~= "table" then return nil end
    if b.type == "tool_result" or b.type == "function_call_output" then return nil end
    local t = (b.type == "text" or b.type == "input_text") and b.text
    if type(t) == "string" and not t:match("^%s*<system%-reminder>.*</system%-reminder>%s*$") then
      parts[#parts + 1] = t
    end
  end
  return #parts > 0 and table.concat(parts, "\n") or nil
end

-- The prompt a request carries: its last message, when that is the user's
-- text (a call that sends tool results carries none).
local function prompt_of(api, req)
  local list = api == "openai-responses" and req.input or req.messages
  if type(list) == "string" then return list end
  if type(list) ~= "table" then return nil end
  for i = #list, 1, -1 do
    local m = list[i]
    if type(m) == "table" and m.role ~= "system" and m.role ~= "developer" then
      if m.role == "user" or (m.type == "message" and m.role == "user") then return user_text(m.content) end
      return nil
    end
  end
end

-- main: the agent's own conversation. Claude Code's and Codex's calls say
-- more: one with no tools is a side call (a title, a summary); a Claude
-- Code call with tools but not the Task tool is a subagent's.
local function role_of(req, headers)
  local agent = header(headers, "user-agent") or ""
  local tools = type(req.tools) == "table" and req.tools or {}
  if agent:find("^codex") then return #tools == 0 and "side" or "main" end -- a title has none
  if not agent:find("^claude%-cli/") then return "main" end
  if #tools == 0 then return "side" end
  for _, t in ipairs(tools) do
    local name = type(t) == "table" and t.name
    if name == "Task" or name == "Agent" then return "main" end
  end
  return "subagent"
end

local function text_of(content)
  local parts = {}
  for _, b in ipairs(content) do
    if type(b) == "table" and b.type == "text" and type(b.text) == "string" then parts[#parts + 1] = b.text end
  end
  return #parts > 0 and table.concat(parts, "\n") or nil
end

-- ---- recording -------------------------------------------------------------------

local function api_of(path)
  local p = path:match("^[^?]*")
  if p:match("^/v1/messages/?$") then return "anthropic" end
  if p:match("^/v1/chat/completions/?$") then return "openai-chat" end
  if p:match("^/v1/responses/?$") then return "openai-responses" end
  return "other"
end

local function rate_limits(list)
  local out, any = {}, false
  for _, h in ipairs(list) do
    local n = h[1]
    if n:find("^[aAxXrR]") then
      n = n:lower()
      if n:find("^anthropic%-ratelimit%-") or n:find("^x%-ratelimit%-") or n == "retry-after" then
        out[n], any = h[2], true
      end
    end
  end
  return any and json.encode(out, { sort = true }) or nil
end

local function error_text(e)
  if type(e) ~= "table" then return e ~= nil and tostring(e) or nil end
  local t, msg = e.type or e.code, e.message
  if t and msg then return tostring(t) .. ": " .. tostring(msg) end
  return json.encode(e)
end

-- prepare(call) -> the row to write: redaction and parsing, no database.
function M.prepare(call)
  local api = api_of(call.path)
  local ctype = header(call.resp_headers, "content-type") or ""
  local stream = ctype:find("text/event-stream", 1, true) ~= nil
  local req_body = M.redact(call.req_body)
  local resp_body = M.redact(stream and M.redact_stream(call.resp_body) or call.resp_body)
  local req = json.decode(req_body)
  req = type(req) == "table" and req or {}
  local ok, out = pcall(parse[api], resp_body, stream)
  if not ok then out = { content = {}, usage = {}, error = "procy could not parse the answer: " .. tostring(out) } end
  local model = type(req.model) == "string" and req.model or nil
  local used = type(out.model) == "string" and out.model or model
  local u = out.usage
  local row = {
    api = api, stream = stream, method = call.method, path = call.path, upstream = call.upstream,
    status = call.status, model = model, routed_model = out.model ~= model and out.model or nil,
    started_at = call.started_at, ttfb_us = call.ttfb_us, duration_us = call.duration_us,
    req_headers = json.encode(M.redact_headers(call.req_headers)),
    resp_headers = json.encode(M.redact_headers(call.resp_headers)),
    req_body = req_body, resp_body = resp_body, content = out.content,
    stop_reason = type(out.stop_reason) == "string" and out.stop_reason or nil,
    input_tokens = u.input_tokens, output_tokens = u.output_tokens,
    cache_creation_tokens = u.cache_creation_tokens, cache_read_tokens = u.cache_read_tokens,
    cost = (u.input_tokens or u.output_tokens) and prices.cost(used, u) or nil,
    ratelimit = rate_limits(call.resp_headers), aborted = call.aborted,
    error = call.error or (call.status and call.status >= 400 and (error_text(out.error) or ("HTTP " .. call.status)))
      or error_text(out.error),
    tag = call.session, truncated = call.truncated,
    role = role_of(req, call.req_headers), prompt = prompt_of(api, req), text = text_of(out.content),
  }
  row.uses, row.results = tools_in_request(api, req)
  row.tool_uses = 0
  for _, b in ipairs(row.content) do
    if type(b) == "table" and b.type == "tool_use" then row.tool_uses = row.tool_uses + 1 end
  end
  return row
end

-- write(db, row, session) -> api_calls id. Inside a transaction; raises on
-- a database error.
function M.write(db, row, session)
  local function check(ok, err, code)
    if not ok then error({ err = err, code = code }) end
    return ok
  end
  local req_hash = blobs.put_body(db, row.req_body)
  local resp_hash = blobs.put(db, row.resp_body)
  local inserted, ierr, icode = db:query([[INSERT INTO api_calls(session_id, method, path, upstream, status, model, routed_model,
      started_at, ttfb_us, duration_us, req_headers, resp_headers, req_body, resp_body, content,
      stop_reason, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, cost,
      ratelimit, error, api, stream, aborted, tag, req_size, resp_size, role)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id]],
    session, row.method, row.path, row.upstream, row.status, row.model, row.routed_model,
    row.started_at, row.ttfb_us, row.duration_us, row.req_headers, row.resp_headers, req_hash, resp_hash,
    json.encode(json.array(row.content)), row.stop_reason, row.input_tokens, row.output_tokens,
    row.cache_creation_tokens, row.cache_read_tokens, row.cost, row.ratelimit,
    row.truncated and ((row.error and row.error .. "; " or "") .. "response over 64 MB, kept in part") or row.error,
    row.api, row.stream and 1 or 0, row.aborted and 1 or 0, row.tag, #row.req_body, #row.resp_body, row.role)
  check(inserted, ierr, icode)
  local id = inserted[1].id
  local ended = row.started_at + (row.duration_us or 0)
  -- results first: a tool_use this call asks for cannot be answered by it
  local function known(tid)
    return #db:query("SELECT 1 FROM tool_calls WHERE session_id IS ? AND tool_use_id = ?", session, tid) > 0
  end
  for _, r in ipairs(row.results) do
    local use = row.uses[r.id]
    if use and not known(r.id) then -- asked for before procy saw the conversation
      check(db:exec("INSERT INTO tool_calls(session_id, tool_use_id, name, input) VALUES (?, ?, ?, ?)",
        session, r.id, tostring(use.name or "?"), json.encode(use.input)))
    end
    check(db:exec([[UPDATE tool_calls SET result = ?, is_error = ?, result_call_id = ?, ended_at = ?
                    WHERE session_id IS ? AND tool_use_id = ? AND result_call_id IS NULL]],
      r.text, r.is_error and 1 or 0, id, row.started_at, session, r.id))
  end
  for _, b in ipairs(row.content) do
    if b.type == "tool_use" and b.id then
      local name, input = tostring(b.name or "?"), json.encode(b.input)
      local n = check(db:exec([[UPDATE tool_calls SET api_call_id = ?, name = ?, input = ?, started_at = ?
                                WHERE session_id IS ? AND tool_use_id = ?]], id, name, input, ended, session, b.id))
      if n == 0 then
        check(db:exec([[INSERT INTO tool_calls(session_id, tool_use_id, name, input, api_call_id, started_at)
                        VALUES (?, ?, ?, ?, ?, ?)]], session, b.id, name, input, id, ended))
      end
    end
  end
  return id
end

-- ---- the recorder thread ---------------------------------------------------------

local known = {}

-- The session a call belongs to: its /s/ID/ prefix when that names a
-- session, else the default one (and the prefix is kept as its tag).
local function session_of(db, tag, default)
  if not tag then return default, nil end
  if known[tag] == nil then
    known[tag] = #db:query("SELECT 1 FROM sessions WHERE id = ?", tag) > 0
  end
  if known[tag] then return tag, nil end
  return default, tag
end

-- record(db, default_session, calls) -> {summary JSON, ...}: prepares and
-- writes calls in one transaction. A call that cannot be parsed is still
-- written (with what could be); a database failure reports the calls as
-- not recorded.
function M.record(db, default, calls)
  local rows, out = {}, {}
  for _, call in ipairs(calls) do
    local ok, row = pcall(M.prepare, call)
    if ok then
      rows[#rows + 1] = row
    else
      out[#out + 1] = json.encode { not_recorded = 1, error = "cannot parse a call: " .. tostring(row) }
    end
  end
  local ok, done, err = pcall(db.transaction, db, function()
    for _, row in ipairs(rows) do
      local session, tag = session_of(db, row.tag, default)
      row.tag, row.session = tag, session
      row.id = M.write(db, row, session)
    end
    return true
  end)
  if not ok or not done then
    err = ok and err or done
    out[#out + 1] = json.encode { not_recorded = #rows,
      error = type(err) == "table" and tostring(err.err) or tostring(err) }
    return out
  end
  for _, row in ipairs(rows) do
    out[#out + 1] = json.encode { id = row.id, session = row.session, tag = row.tag, api = row.api,
      method = row.method, path = row.path, status = row.status, model = row.model,
      started_at = row.started_at, ttfb_us = row.ttfb_us, duration_us = row.duration_us,
      stop_reason = row.stop_reason, input_tokens = row.input_tokens, output_tokens = row.output_tokens,
      cache_creation_tokens = row.cache_creation_tokens, cache_read_tokens = row.cache_read_tokens,
      cost = row.cost, error = row.error, aborted = row.aborted, role = row.role, prompt = row.prompt,
      text = row.text, tool_uses = row.tool_uses }
  end
  return out
end

-- worker(settings) -> function(calls) -> {summary JSON, ...}. Runs on the
-- recorder thread (runtime/capture.c), in a Lua state of its own with
-- procy.json, procy.db and procy.hash only. settings (JSON): db, session,
-- redact, prices, as the server was given them.
function M.worker(settings)
  local s = assert(json.decode(settings))
  M.settings = { redact = s.redact, prices = s.prices }
  prices.extra = s.prices or {}
  local h = assert(require("procy.db").open(s.db))
  return function(calls) return M.record(h, s.session, calls) end
end

return M
