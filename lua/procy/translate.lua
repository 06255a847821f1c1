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
-- of the stop sequences it was given ended an answer (stop_sequence stays
-- null; the ones procy watches for itself, past OpenAI's four or for a
-- reasoning model that takes none, are named).

local json = require "procy.json"
local answer = require "procy.record.answer"

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

-- OpenAI's chat completions take at most four stop sequences.
M.STOP_LIMIT = 4

-- request(body, {model =, reasoning =, max_tokens_field =, max_output =})
-- -> the OpenAI chat completions body for an Anthropic Messages body, and
-- the stop sequences it could not send (procy.translate.stream and
-- response end the answer at them instead). model: the target's name
-- (default the one asked); reasoning: the target is a reasoning model:
-- thinking's budget sets reasoning_effort, and temperature, top_p and
-- stop, which such models refuse, are not sent; max_tokens_field: the
-- name the target wants the output limit under ("max_tokens", the
-- default, or OpenAI's "max_completion_tokens"); max_output: the
-- target's own limit, the request's clamped to it.
--
-- A system message inside `messages` (Claude Code puts its environment
-- there) joins the system prompt, in order: it is never a user turn.
function M.request(b, o)
  o = o or {}
  local msgs, system = json.array(), {}
  if b.system then
    local sys = text_of(b.system)
    if sys ~= "" then system[1] = sys end
  end
  msgs[1] = false -- the system message's place
  for _, m in ipairs(tbl(b.messages) or {}) do
    if type(m) == "table" then
      if m.role == "assistant" then assistant_message(m, msgs)
      elseif m.role == "system" or m.role == "developer" then
        local sys = text_of(m.content)
        if sys ~= "" then system[#system + 1] = sys end
      else user_messages(m, msgs) end
    end
  end
  if #system > 0 then msgs[1] = { role = "system", content = table.concat(system, "\n\n") }
  else table.remove(msgs, 1) end
  local r = { model = o.model or b.model, messages = msgs, stream = b.stream or nil }
  local limit = math.tointeger(b.max_tokens)
  if limit and o.max_output and o.max_output > 0 then limit = math.min(limit, math.floor(o.max_output)) end
  r[o.max_tokens_field or "max_tokens"] = limit
  if b.stream then r.stream_options = { include_usage = true } end
  local stops, rest = json.array(), {}
  if type(b.stop_sequences) == "table" then
    for _, s in ipairs(b.stop_sequences) do
      if str(s) and s ~= "" then
        if not o.reasoning and #stops < M.STOP_LIMIT then stops[#stops + 1] = s else rest[#rest + 1] = s end
      end
    end
  end
  if #stops > 0 then r.stop = stops end
  if not o.reasoning then r.temperature, r.top_p = b.temperature, b.top_p end
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
  return r, rest
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

-- tool_input(arguments) -> the tool's input, the arguments' own JSON text
-- (nil when it had to be made), and false when they are no JSON object:
-- then the text is kept whole under raw_arguments (the client's check of
-- the input then fails, and says so to the model) rather than becoming {}
local function tool_input(arguments)
  if type(arguments) == "table" then -- a server that sends an object
    local enc = json.encode(arguments)
    if json.spans(enc) == "object" then return arguments, enc, true end
    return { raw_arguments = enc }, nil, false
  end
  if arguments == nil or arguments == "" then return json.object(), "{}", true end
  local text = tostring(arguments)
  local v = json.spans(text) == "object" and answer.tool_input({ text }) -- the record's own reading
  if type(v) == "table" then return v, text, true end
  return { raw_arguments = text }, nil, false
end

-- The first of the stop sequences in text: where it starts, which it is.
local function first_stop(text, stops)
  local at, which
  for _, s in ipairs(stops or {}) do
    local i = text:find(s, 1, true)
    if i and (not at or i < at) then at, which = i, s end
  end
  return at, which
end

-- The text an answer holds beside its content: the reasoning models'
-- (vLLM, DeepSeek, OpenRouter name it reasoning_content or reasoning).
local function reasoning_of(m)
  return str(m.reasoning_content) or str(m.reasoning)
end

-- response(body, {model =, stops =}) -> the Anthropic message for an
-- OpenAI chat completion, and notes on what was changed on the way
-- ({invalid_tool_arguments = {ids}, reasoning_as_text = true, stop =
-- the sequence procy stopped at}). model: the name the agent asked for
-- (it is answered with it); stops: the stop sequences the provider was
-- not given (request's second result): the text ends at the first.
-- An answer with reasoning and nothing else gives its reasoning as text
-- rather than no content at all.
function M.response(b, o)
  o = o or {}
  local notes = {}
  local choice = tbl(tbl(b.choices) and b.choices[1]) or {}
  local m = tbl(choice.message) or {}
  local content = json.array()
  local text = str(m.content) or ""
  local stop, stop_seq = M.stop_reasons[choice.finish_reason] or "end_turn", json.null
  local at, which = first_stop(text, o.stops)
  if at then
    text, stop, stop_seq, notes.stop = text:sub(1, at - 1), "stop_sequence", which, which
  end
  if text ~= "" then content[#content + 1] = { type = "text", text = text } end
  for _, c in ipairs(not at and tbl(m.tool_calls) or {}) do
    local f = tbl(c["function"]) or {}
    local input, _, ok = tool_input(f.arguments)
    local id = str(c.id) or ("toolu_procy_" .. #content)
    if not ok then
      notes.invalid_tool_arguments = notes.invalid_tool_arguments or {}
      table.insert(notes.invalid_tool_arguments, id)
    end
    content[#content + 1] = { type = "tool_use", id = id, name = str(f.name) or "", input = input }
  end
  local reasoning = reasoning_of(m)
  if #content == 0 and reasoning and reasoning ~= "" then
    content[1], notes.reasoning_as_text = { type = "text", text = reasoning }, true
  end
  return { id = msg_id(b.id), type = "message", role = "assistant", model = o.model or b.model, content = content,
           stop_reason = stop, stop_sequence = stop_seq, usage = usage_of(b.usage) }, notes
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

-- UTF-8: the length of text's longest prefix of at most n bytes that
-- does not end inside a character
local function whole_chars(text, n)
  while n > 0 and n < #text do
    local c = text:byte(n + 1)
    if c < 0x80 or c >= 0xC0 then break end
    n = n - 1
  end
  return n
end

-- stream({model =, stops =}) -> a translator: t:feed(text) -> the
-- Anthropic events (SSE text) for the OpenAI stream's bytes so far,
-- pieces split anywhere; t:finish() -> the events that end it; t.notes,
-- as response's; t.cut: a stop sequence ended the answer (read no more).
--
-- Text goes out as it arrives (but for the few bytes a stop sequence in
-- `stops` could still begin with). A tool call is gathered by its index
-- for the whole stream, however the provider interleaves the calls'
-- pieces, and goes out whole when the answer ends: each block then
-- starts, holds its complete input (checked, as response does) and
-- stops, in the order of the calls' indexes.
function M.stream(o)
  o = o or {}
  local t = { buf = "", started = false, index = -1, text = nil, pending = "", tools = {}, order = {}, by_id = {},
              reasoning = {}, emitted = false, stop = nil, stop_seq = nil, usage = nil, done = false, cut = false,
              notes = {} }
  local stops = o.stops or {}
  local hold = 0
  for _, s in ipairs(stops) do hold = math.max(hold, #s - 1) end

  local function start(out, id, model)
    if t.started then return end
    t.started = true
    out[#out + 1] = event("message_start", { type = "message_start", message = { id = msg_id(id), type = "message",
      role = "assistant", model = o.model or model, content = json.array(), stop_reason = json.null,
      stop_sequence = json.null, usage = { input_tokens = 0, output_tokens = 0 } } })
    out[#out + 1] = event("ping", { type = "ping" })
  end
  local function open(out, block)
    t.index = t.index + 1
    out[#out + 1] = event("content_block_start", { type = "content_block_start", index = t.index, content_block = block })
    return t.index
  end
  local function stop_block(out, index)
    out[#out + 1] = event("content_block_stop", { type = "content_block_stop", index = index })
  end
  local function emit_text(out, text)
    if text == "" then return end
    if not t.text then t.text = open(out, { type = "text", text = "" }) end
    t.emitted = true
    out[#out + 1] = event("content_block_delta", { type = "content_block_delta", index = t.text,
      delta = { type = "text_delta", text = text } })
  end
  local function close_text(out)
    emit_text(out, t.pending)
    t.pending = ""
    if t.text then stop_block(out, t.text) t.text = nil end
  end

  -- text as it comes; the tail a stop sequence may begin with waits
  local function text_piece(out, piece)
    if t.cut then return end
    if #stops == 0 then return emit_text(out, piece) end
    t.pending = t.pending .. piece
    local at, which = first_stop(t.pending, stops)
    if at then
      t.pending = t.pending:sub(1, at - 1)
      close_text(out)
      t.cut, t.stop, t.stop_seq, t.notes.stop = true, "stop_sequence", which, which
      return
    end
    local n = whole_chars(t.pending, #t.pending - hold)
    if n > 0 then
      emit_text(out, t.pending:sub(1, n))
      t.pending = t.pending:sub(n + 1)
    end
  end

  local function tool_piece(tc)
    if t.cut then return end
    local idx = math.tointeger(tc.index) or (str(tc.id) and t.by_id[tc.id])
    if not idx then -- no index (some servers): a new id is a new call, else the last one goes on
      idx = t.order[#t.order] or 0
      if str(tc.id) and t.tools[idx] then
        for _, i in ipairs(t.order) do idx = math.max(idx, i + 1) end
      end
    end
    local call = t.tools[idx]
    if not call then
      call = { index = idx, parts = {} }
      t.tools[idx] = call
      t.order[#t.order + 1] = idx
    end
    local f = tbl(tc["function"]) or {}
    if str(tc.id) and tc.id ~= "" and not call.id then call.id = tc.id t.by_id[tc.id] = idx end
    if str(f.name) and f.name ~= "" and not call.name then call.name = f.name end
    if type(f.arguments) == "table" then call.object = f.arguments
    elseif str(f.arguments) then call.parts[#call.parts + 1] = f.arguments end
  end

  -- the answer is over: its text ends, its tool calls go out whole
  local function flush(out)
    if not t.cut and not t.emitted and #t.order == 0 and t.pending == "" and #t.reasoning > 0 then
      t.notes.reasoning_as_text = true
      emit_text(out, table.concat(t.reasoning))
      t.reasoning = {}
    end
    close_text(out)
    table.sort(t.order)
    -- a stop sequence ended the answer in its text: the calls after it are
    -- not the answer's (as response drops them)
    for _, idx in ipairs(t.cut and {} or t.order) do
      local call = t.tools[idx]
      local input, raw, ok = tool_input(call.object or table.concat(call.parts))
      local id = call.id or ("toolu_procy_" .. idx)
      if not ok then
        t.notes.invalid_tool_arguments = t.notes.invalid_tool_arguments or {}
        table.insert(t.notes.invalid_tool_arguments, id)
      end
      local index = open(out, { type = "tool_use", id = id, name = call.name or "", input = json.object() })
      out[#out + 1] = event("content_block_delta", { type = "content_block_delta", index = index,
        delta = { type = "input_json_delta", partial_json = raw or json.encode(input) } })
      stop_block(out, index)
      t.emitted = true
    end
    t.order, t.tools = {}, {}
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
      local r = reasoning_of(d)
      if r and r ~= "" and not t.cut then t.reasoning[#t.reasoning + 1] = r end
      if str(d.content) and d.content ~= "" then text_piece(out, d.content) end
      for _, tc in ipairs(tbl(d.tool_calls) or {}) do
        if type(tc) == "table" then tool_piece(tc) end
      end
      if str(ch.finish_reason) then
        if not t.cut then t.stop = M.stop_reasons[ch.finish_reason] or "end_turn" end
        flush(out)
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
    flush(out)
    local u = t.usage or { input_tokens = 0, output_tokens = 0 }
    out[#out + 1] = event("message_delta", { type = "message_delta",
      delta = { stop_reason = t.stop or "end_turn", stop_sequence = t.stop_seq or json.null }, usage = u })
    out[#out + 1] = event("message_stop", { type = "message_stop" })
    return table.concat(out)
  end
  return t
end

return M
