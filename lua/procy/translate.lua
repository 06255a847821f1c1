-- procy.translate: Anthropic Messages <-> OpenAI chat completions, for
-- sending an agent's call to an OpenAI-compatible server (OpenAI, vLLM,
-- Ollama, llama.cpp, OpenRouter) and giving the agent back what the
-- Anthropic API would have sent: the request one way, the answer, its
-- stream (event by event, as it comes) and its errors the other.
--
-- What has no counterpart is said here, not guessed: thinking blocks are
-- dropped from the history (a reasoning target gets reasoning_effort
-- instead), server tools (web search and the like) are not offered, a
-- tool result's images become "[image]", and OpenAI does not say which
-- stop sequence ended an answer (stop_sequence stays null).

local json = require "procy.json"
local answer = require "procy.answer"

local str, tbl = answer.str, answer.tbl

local M = {}

local function text_of(content)
  if type(content) == "string" then return content end
  local out = {}
  for _, b in ipairs(tbl(content) or {}) do
    if type(b) == "table" then
      if b.type == "text" and str(b.text) then out[#out + 1] = b.text
      elseif b.type == "image" then out[#out + 1] = "[image]" end
    end
  end
  return table.concat(out, "\n")
end

local function image_part(b)
  local src = tbl(b.source) or {}
  if src.type == "base64" then
    return { type = "image_url", image_url = { url = ("data:%s;base64,%s"):format(src.media_type or "image/png", src.data or "") } }
  elseif src.type == "url" then
    return { type = "image_url", image_url = { url = src.url } }
  end
end

-- the user's blocks: tool results first (each a role "tool" message, as
-- OpenAI wants them right after the assistant's tool_calls), then the rest
local function user_messages(m, out)
  if type(m.content) == "string" then
    out[#out + 1] = { role = "user", content = m.content }
    return
  end
  local parts, only_text = json.array(), true
  for _, b in ipairs(tbl(m.content) or {}) do
    if type(b) == "table" then
      if b.type == "tool_result" then
        local content = text_of(b.content)
        if b.is_error then content = "[error] " .. content end
        out[#out + 1] = { role = "tool", tool_call_id = str(b.tool_use_id) or "", content = content }
      elseif b.type == "text" then
        parts[#parts + 1] = { type = "text", text = str(b.text) or "" }
      elseif b.type == "image" then
        local p = image_part(b)
        if p then parts[#parts + 1] = p only_text = false end
      end
    end
  end
  if #parts == 0 then return end
  if only_text then
    local texts = {}
    for i, p in ipairs(parts) do texts[i] = p.text end
    out[#out + 1] = { role = "user", content = table.concat(texts, "\n") }
  else
    out[#out + 1] = { role = "user", content = parts }
  end
end

local function assistant_message(m, out)
  if type(m.content) == "string" then
    out[#out + 1] = { role = "assistant", content = m.content }
    return
  end
  local texts, calls = {}, json.array()
  for _, b in ipairs(tbl(m.content) or {}) do
    if type(b) == "table" then
      if b.type == "text" then texts[#texts + 1] = str(b.text) or ""
      elseif b.type == "tool_use" then
        calls[#calls + 1] = { id = str(b.id) or "", type = "function",
          ["function"] = { name = str(b.name) or "", arguments = json.encode(b.input or json.object()) } }
      end -- thinking, redacted_thinking: no counterpart
    end
  end
  local msg = { role = "assistant", content = #texts > 0 and table.concat(texts, "\n") or json.null }
  if #calls > 0 then msg.tool_calls = calls end
  if #texts > 0 or #calls > 0 then out[#out + 1] = msg end
end

local function tool_choice(tc)
  if type(tc) ~= "table" then return nil end
  if tc.type == "auto" then return "auto"
  elseif tc.type == "any" then return "required"
  elseif tc.type == "none" then return "none"
  elseif tc.type == "tool" then return { type = "function", ["function"] = { name = tc.name } } end
end

-- request(body, {model =, reasoning =}) -> the OpenAI chat completions
-- body for an Anthropic Messages body. model: the target's name (default
-- the one asked); reasoning: the target takes reasoning_effort, which
-- thinking's budget sets
function M.request(b, o)
  o = o or {}
  local msgs = json.array()
  if b.system then
    local sys = text_of(b.system)
    if sys ~= "" then msgs[1] = { role = "system", content = sys } end
  end
  for _, m in ipairs(tbl(b.messages) or {}) do
    if type(m) == "table" then
      if m.role == "assistant" then assistant_message(m, msgs) else user_messages(m, msgs) end
    end
  end
  local r = { model = o.model or b.model, messages = msgs, max_tokens = b.max_tokens, temperature = b.temperature,
              top_p = b.top_p, stream = b.stream or nil }
  if b.stream then r.stream_options = { include_usage = true } end
  if type(b.stop_sequences) == "table" and #b.stop_sequences > 0 then r.stop = b.stop_sequences end
  local tools = json.array()
  for _, t in ipairs(tbl(b.tools) or {}) do
    if type(t) == "table" and t.input_schema then -- a server tool has none
      tools[#tools + 1] = { type = "function", ["function"] = { name = t.name, description = t.description,
        parameters = t.input_schema } }
    end
  end
  if #tools > 0 then
    r.tools = tools
    r.tool_choice = tool_choice(b.tool_choice)
    if type(b.tool_choice) == "table" and b.tool_choice.disable_parallel_tool_use then r.parallel_tool_calls = false end
  end
  if type(b.metadata) == "table" and str(b.metadata.user_id) then r.user = b.metadata.user_id end
  local th = tbl(b.thinking)
  if o.reasoning and th and th.type == "enabled" then
    local budget = tonumber(th.budget_tokens) or 0
    r.reasoning_effort = budget >= 16000 and "high" or budget >= 4000 and "medium" or "low"
  end
  return r
end

M.stop_reasons = { stop = "end_turn", length = "max_tokens", tool_calls = "tool_use", function_call = "tool_use",
                   content_filter = "refusal" }

local function usage_of(u)
  u = tbl(u) or {}
  local cached = tbl(u.prompt_tokens_details) and tonumber(u.prompt_tokens_details.cached_tokens) or 0
  return { input_tokens = math.max(0, (tonumber(u.prompt_tokens) or 0) - cached),
           output_tokens = tonumber(u.completion_tokens) or 0, cache_read_input_tokens = cached,
           cache_creation_input_tokens = 0 }
end

local function msg_id(id) return "msg_" .. (str(id) or "procy"):gsub("[^%w_%-]", "") end

local function tool_input(arguments)
  local v = type(arguments) == "string" and json.decode(arguments)
  return type(v) == "table" and v or json.object()
end

-- response(body, {model =}) -> the Anthropic message for an OpenAI chat
-- completion. model: the name the agent asked for (it is answered with it)
function M.response(b, o)
  o = o or {}
  local choice = tbl(tbl(b.choices) and b.choices[1]) or {}
  local m = tbl(choice.message) or {}
  local content = json.array()
  if str(m.content) and m.content ~= "" then content[#content + 1] = { type = "text", text = m.content } end
  for _, c in ipairs(tbl(m.tool_calls) or {}) do
    local f = tbl(c["function"]) or {}
    content[#content + 1] = { type = "tool_use", id = str(c.id) or "", name = str(f.name) or "", input = tool_input(f.arguments) }
  end
  return { id = msg_id(b.id), type = "message", role = "assistant", model = o.model or b.model, content = content,
           stop_reason = M.stop_reasons[choice.finish_reason] or "end_turn", stop_sequence = json.null,
           usage = usage_of(b.usage) }
end

M.error_types = { [400] = "invalid_request_error", [401] = "authentication_error", [403] = "permission_error",
                  [404] = "not_found_error", [413] = "request_too_large", [429] = "rate_limit_error",
                  [500] = "api_error", [529] = "overloaded_error" }

-- error(status, body) -> the Anthropic error body for a provider's error
-- answer (its status kept by the caller)
function M.error(status, body)
  local v = type(body) == "string" and json.decode(body) or body
  local e = tbl(v) and (tbl(v.error) or v) or {}
  local msg = str(e.message) or (type(body) == "string" and body ~= "" and body:sub(1, 500)) or ("status " .. status)
  return { type = "error", error = { type = M.error_types[status] or (status >= 500 and "api_error" or "invalid_request_error"),
    message = msg } }
end

-- count_tokens(body) -> {input_tokens}: an estimate for a model that has
-- no count endpoint (about 4 bytes a token over what the request holds)
function M.count_tokens(b)
  local n = #json.encode(b.messages or json.array()) + #json.encode(b.system or "") + #json.encode(b.tools or json.array())
  return { input_tokens = math.max(1, math.floor(n / 4 + 0.5)) }
end

-- ---- the stream ------------------------------------------------------------------------

local function event(name, value)
  return "event: " .. name .. "\ndata: " .. json.encode(value) .. "\n\n"
end

-- stream({model =}) -> a translator: t:feed(text) -> the Anthropic events
-- (SSE text) for the OpenAI stream's bytes so far, pieces split anywhere;
-- t:finish() -> the events that end it. Each chunk is translated as it
-- arrives: nothing waits for the end.
function M.stream(o)
  o = o or {}
  local t = { buf = "", started = false, open = nil, index = -1, blocks = {}, stop = nil, usage = nil, done = false }

  local function start(out, id, model)
    if t.started then return end
    t.started = true
    out[#out + 1] = event("message_start", { type = "message_start", message = { id = msg_id(id), type = "message",
      role = "assistant", model = o.model or model, content = json.array(), stop_reason = json.null,
      stop_sequence = json.null, usage = { input_tokens = 0, output_tokens = 0 } } })
    out[#out + 1] = event("ping", { type = "ping" })
  end
  local function close(out)
    if t.open then
      out[#out + 1] = event("content_block_stop", { type = "content_block_stop", index = t.open.index })
      t.open = nil
    end
  end
  local function open(out, key, block)
    close(out)
    t.index = t.index + 1
    t.open = { key = key, index = t.index }
    out[#out + 1] = event("content_block_start", { type = "content_block_start", index = t.index, content_block = block })
  end

  local function chunk(out, c)
    if tbl(c.error) then
      start(out, nil, nil)
      out[#out + 1] = event("error", { type = "error", error = { type = "api_error", message = str(c.error.message) or "the provider failed" } })
      return
    end
    start(out, c.id, c.model)
    if tbl(c.usage) then t.usage = usage_of(c.usage) end
    for _, ch in ipairs(tbl(c.choices) or {}) do
      local d = tbl(ch.delta) or {}
      if str(d.content) and d.content ~= "" then
        if not t.open or t.open.key ~= "text" then open(out, "text", { type = "text", text = "" }) end
        out[#out + 1] = event("content_block_delta", { type = "content_block_delta", index = t.open.index,
          delta = { type = "text_delta", text = d.content } })
      end
      for _, tc in ipairs(tbl(d.tool_calls) or {}) do
        local key = "tool" .. tostring(math.tointeger(tc.index) or 0)
        local f = tbl(tc["function"]) or {}
        if not t.open or t.open.key ~= key then
          open(out, key, { type = "tool_use", id = str(tc.id) or ("toolu_" .. key), name = str(f.name) or "",
            input = json.object() })
        end
        if str(f.arguments) and f.arguments ~= "" then
          out[#out + 1] = event("content_block_delta", { type = "content_block_delta", index = t.open.index,
            delta = { type = "input_json_delta", partial_json = f.arguments } })
        end
      end
      if str(ch.finish_reason) then
        t.stop = M.stop_reasons[ch.finish_reason] or "end_turn"
        close(out)
      end
    end
  end

  function t.feed(_, text)
    local out = {}
    t.buf = t.buf .. text
    while true do
      local nl = t.buf:find("\n", 1, true)
      if not nl then break end
      local line = t.buf:sub(1, nl - 1):gsub("\r$", "")
      t.buf = t.buf:sub(nl + 1)
      local data = line:match("^data:%s?(.*)$")
      if data == "[DONE]" then
        t.done = true
      elseif data and data ~= "" then
        local c = json.decode(data)
        if type(c) == "table" then chunk(out, c) end
      end
    end
    return table.concat(out)
  end

  function t.finish()
    local out = { t:feed("\n") }
    start(out, nil, nil)
    close(out)
    local u = t.usage or { input_tokens = 0, output_tokens = 0 }
    out[#out + 1] = event("message_delta", { type = "message_delta",
      delta = { stop_reason = t.stop or "end_turn", stop_sequence = json.null }, usage = u })
    out[#out + 1] = event("message_stop", { type = "message_stop" })
    return table.concat(out)
  end
  return t
end

return M
