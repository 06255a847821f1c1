-- procy.record.answer: an API's answer, as the record keeps it. A stream is
-- split into its events; a secret the model wrote across several events
-- is masked (redact_stream); and the answer of each API (Anthropic
-- Messages, OpenAI chat completions and Responses, Google's Gemini,
-- streamed or not) is parsed into one content shape:  a list of blocks {type = "text", text},
-- {type = "thinking", thinking, signature}, {type = "tool_use", id, name,
-- input}, or a provider's own block (server tools) kept as it came.
--
-- Decoded JSON can hold anything anywhere: a null where an id belongs, a
-- number for a name. The helpers below keep what the record binds to its
-- shape; a parser that meets a shape it did not expect leaves what it had.

local json = require "procy.json"
local redact = require "procy.redact"

local M = {}

local function str(v) return type(v) == "string" and v or nil end
local function num(v) return math.type(v) and v or nil end
local function tbl(v) return type(v) == "table" and v or nil end
local EMPTY = setmetatable({}, { __newindex = function() error("EMPTY is read-only") end })
M.str, M.num, M.tbl, M.EMPTY = str, num, tbl, EMPTY

-- ---- server-sent events ---------------------------------------------------------

-- sse(text, [raw]) -> {{event =, data =}, ...}: the events in a stream as
-- sent (data lines joined with "\n"); a last event without its blank line
-- too. The one splitter of event streams in Lua. raw: every block of the
-- text is an entry, with its bytes as `raw` (those without data have data
-- nil), so the entries' raw put together are the text.
function M.sse(text, raw)
  local list, event, data, start, pos = {}, nil, nil, 1, 1
  local function dispatch(stop)
    if data or (raw and stop >= start) then
      list[#list + 1] = { event = event or "message", data = data and table.concat(data, "\n"),
                          raw = raw and text:sub(start, stop) or nil }
    end
    event, data, start = nil, nil, stop + 1
  end
  while pos <= #text do
    local nl = text:find("\n", pos, true)
    local after = nl and nl + 1 or #text + 1
    local line = text:sub(pos, after - (nl and 2 or 1))
    if line:sub(-1) == "\r" then line = line:sub(1, -2) end
    if line == "" then
      dispatch(after - 1)
    elseif line:sub(1, 1) ~= ":" then
      local field, value = line:match("^([^:]*):? ?(.*)$")
      if field == "event" then
        event = value
      elseif field == "data" then
        data = data or {}
        data[#data + 1] = value
      end
    end
    pos = after
  end
  dispatch(#text)
  return list
end

-- The streamed pieces of text an event carries, as {key, holder, field}:
-- holder[field] is a piece of the text named key (a content block, a
-- choice, a tool call's arguments), for Anthropic, OpenAI chat and
-- Responses streams alike.
local function pieces(d)
  local out = {}
  local function add(k, holder, field)
    if type(holder) == "table" and type(holder[field]) == "string" then out[#out + 1] = { k, holder, field } end
  end
  if type(d.delta) == "string" then
    add(("r%s:%s:%s"):format(d.item_id, d.output_index, d.content_index), d, "delta")
  elseif type(d.delta) == "table" then
    for _, f in ipairs { "text", "thinking", "partial_json" } do add(("a%s%s"):format(d.index, f), d.delta, f) end
  end
  for k, c in ipairs(tbl(d.candidates) or EMPTY) do -- Gemini: a part per chunk
    local content = type(c) == "table" and tbl(c.content)
    for _, p in ipairs(content and tbl(content.parts) or EMPTY) do
      if type(p) == "table" then add(("g%d%s"):format(k, p.thought and "t" or ""), p, "text") end
    end
  end
  for k, c in ipairs(tbl(d.choices) or EMPTY) do
    local dl = type(c) == "table" and tbl(c.delta)
    if dl then
      for _, f in ipairs { "content", "reasoning_content", "reasoning" } do add(("c%d%s"):format(k, f), dl, f) end
      for j, tc in ipairs(tbl(dl.tool_calls) or EMPTY) do
        if type(tc) == "table" then add(("t%d:%s"):format(k, num(tc.index) or j), tc["function"], "arguments") end
      end
    end
  end
  return out
end

-- events(body) -> the stream's blocks as sse(body, true) splits them,
-- each with its data decoded: {event =, raw =, text = the data as sent or
-- nil, data = the decoded JSON or nil}. A stream is split and decoded
-- once: redaction and the parsers both work on this list.
function M.events(body)
  local events = M.sse(body, true)
  for _, ev in ipairs(events) do
    ev.text = ev.data
    ev.data = ev.text and ev.text ~= "[DONE]" and json.decode(ev.text) or nil
  end
  return events
end

-- array_events(body) -> the elements of a JSON array as events (Gemini's
-- stream without alt=sse is one array of responses, sent piece by piece):
-- {first =, last = its bytes in body, text =, data = decoded}, the list
-- marked `array`; nil when body is no JSON array.
function M.array_events(body)
  local kind, list = json.spans(body)
  if kind ~= "array" then return nil end
  local events = { array = true }
  for i, sp in ipairs(list) do
    local text = body:sub(sp[1], sp[2])
    events[i] = { first = sp[1], last = sp[2], text = text, data = json.decode(text) }
  end
  return events
end

-- redact_stream(body, [events]) -> body: a secret the model wrote across several
-- streamed events is in no single event, so the pattern pass cannot see
-- it. Here each streamed text is put together, secrets found in it, and
-- the events holding their pieces are re-encoded with the secret masked
-- (the first piece gets the mask, the others lose their part of it).
-- Events without a secret keep their bytes. events: M.events(body), whose
-- decoded data is masked in place (so it stays the body's).
function M.redact_stream(body, events)
  local texts = {}
  events = events or M.events(body)
  for _, ev in ipairs(events) do
    for _, p in ipairs(type(ev.data) == "table" and pieces(ev.data) or EMPTY) do
      local t = texts[p[1]] or { parts = {}, len = 0 }
      texts[p[1]] = t
      local piece = p[2][p[3]]
      t.parts[#t.parts + 1] = { ev = ev, holder = p[2], field = p[3], from = t.len + 1, to = t.len + #piece }
      t.len = t.len + #piece
    end
  end
  local changed = false
  for _, t in pairs(texts) do
    local whole = {}
    for i, p in ipairs(t.parts) do whole[i] = p.holder[p.field] end
    local spans = redact.spans(table.concat(whole))
    for _, p in ipairs(#spans > 0 and t.parts or EMPTY) do
      local s, out, cur, hit = p.holder[p.field], {}, p.from, false
      for i = 1, #spans, 2 do
        local a, b = spans[i], spans[i + 1]
        if b >= cur and a <= p.to then
          local lo, hi = math.max(a, cur), math.min(b, p.to)
          out[#out + 1] = s:sub(cur - p.from + 1, lo - p.from)
          if a >= p.from then out[#out + 1] = redact.mask end
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
  if events.array then -- the array's elements that held a secret, re-encoded in place
    local out, pos = {}, 1
    for _, ev in ipairs(events) do
      if ev.dirty then
        out[#out + 1] = body:sub(pos, ev.first - 1)
        out[#out + 1] = json.encode(ev.data)
        pos = ev.last + 1
      end
    end
    out[#out + 1] = body:sub(pos)
    return table.concat(out)
  end
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

-- ---- parsing responses ------------------------------------------------------------
--
-- parse[api](out, body, stream, [events]) fills out = {content = {}, usage = {},
-- bad = 0, odd = 0, events = 0}: blocks as they come, so a parser that
-- stops on a shape it did not expect leaves what it had (the record keeps
-- it, with the error). out.bad counts events (or a body) that were not
-- JSON objects, out.odd parts of a shape left out, out.events the events.

-- Anthropic usage into the record's terms (input_tokens excludes the cache).
local function anthropic_usage(into, u)
  if type(u) ~= "table" then return end
  local raw = {} -- a stream says it twice (message_start, message_delta): the later wins
  for k, v in pairs(tbl(into.raw) or EMPTY) do raw[k] = v end
  for k, v in pairs(u) do raw[k] = v end
  into.raw = raw
  into.input_tokens = num(u.input_tokens) or into.input_tokens
  into.output_tokens = num(u.output_tokens) or into.output_tokens
  into.cache_creation_tokens = num(u.cache_creation_input_tokens) or into.cache_creation_tokens
  into.cache_read_tokens = num(u.cache_read_input_tokens) or into.cache_read_tokens
  if type(u.cache_creation) == "table" then
    into.cache_creation_1h_tokens = num(u.cache_creation.ephemeral_1h_input_tokens) or into.cache_creation_1h_tokens
  end
end

-- The record's usage, one meaning for every API: input_tokens the input
-- not read from a cache, cache_read_tokens and cache_creation_tokens the
-- cached input read and written, output_tokens all output (reasoning
-- included, as every provider bills it), reasoning_tokens the part of it
-- spent thinking. usage.raw is the provider's own object, as it came.

-- OpenAI counts cached tokens inside the prompt's; split them out.
local function openai_usage(into, u)
  if type(u) ~= "table" then return end
  into.raw = u
  local input = num(u.prompt_tokens) or num(u.input_tokens)
  local details = tbl(u.prompt_tokens_details) or tbl(u.input_tokens_details)
  local cached = details and num(details.cached_tokens) or 0
  if input then
    into.input_tokens = input - cached
    into.cache_read_tokens = cached
  end
  into.output_tokens = num(u.completion_tokens) or num(u.output_tokens) or into.output_tokens
  local out = tbl(u.completion_tokens_details) or tbl(u.output_tokens_details)
  into.reasoning_tokens = out and num(out.reasoning_tokens) or into.reasoning_tokens
end

-- Gemini's promptTokenCount holds the cached part; its thoughts are
-- output outside candidatesTokenCount.
local function gemini_usage(into, u)
  if type(u) ~= "table" then return end
  into.raw = u
  local prompt = num(u.promptTokenCount)
  local cached = num(u.cachedContentTokenCount) or 0
  if prompt then
    into.input_tokens = prompt - cached + (num(u.toolUsePromptTokenCount) or 0)
    into.cache_read_tokens = cached
  end
  local thoughts = num(u.thoughtsTokenCount)
  local out = num(u.candidatesTokenCount)
  if out or thoughts then into.output_tokens = (out or 0) + (thoughts or 0) end
  into.reasoning_tokens = thoughts or into.reasoning_tokens
end

-- A tool's input from its streamed JSON pieces; the pieces as a string when
-- they do not make JSON (a stream cut short).
function M.tool_input(parts, given)
  local s = table.concat(parts or EMPTY)
  if s == "" then return given ~= nil and given or json.object() end
  local v = json.decode(s)
  if v == nil then return s end
  return v
end

-- The decoded events of a stream (events: M.events(body) when the caller
-- has it); events whose data is not a JSON object are counted in out.bad
-- ([DONE] is not one of them).
local function stream_events(out, body, events)
  local list = {}
  for _, e in ipairs(events or M.events(body)) do
    if e.text and e.text ~= "[DONE]" then
      if type(e.data) == "table" then list[#list + 1] = e.data else out.bad = out.bad + 1 end
    end
  end
  out.events = #list
  return list
end

-- The tables of a list; anything else in it is counted in out.odd.
local function blocks_of(out, list)
  local t = {}
  for _, b in ipairs(tbl(list) or EMPTY) do
    if type(b) == "table" then t[#t + 1] = b else out.odd = out.odd + 1 end
  end
  return t
end

local function whole(out, body)
  local m = json.decode(body)
  if type(m) ~= "table" and body ~= "" then out.bad = out.bad + 1 end
  return tbl(m)
end

local parse = {}
M.parse = parse

function parse.anthropic(out, body, stream, events)
  if not stream then
    local m = whole(out, body)
    if not m then return end
    if m.type == "error" then out.error = m.error end
    out.id, out.model, out.stop_reason = str(m.id), str(m.model), str(m.stop_reason)
    for _, b in ipairs(blocks_of(out, m.content)) do out.content[#out.content + 1] = b end
    anthropic_usage(out.usage, m.usage)
    return
  end
  local blocks, acc, order = {}, {}, {}
  for _, d in ipairs(stream_events(out, body, events)) do
    local t, i = d.type, num(d.index)
    if t == "message_start" and type(d.message) == "table" then
      out.id, out.model = str(d.message.id), str(d.message.model)
      anthropic_usage(out.usage, d.message.usage)
    elseif t == "content_block_start" and i and type(d.content_block) == "table" then
      if not blocks[i] then order[#order + 1] = i end
      blocks[i] = d.content_block
      acc[i] = { text = {}, thinking = {}, json = {}, signature = {} }
    elseif t == "content_block_delta" and i and acc[i] and type(d.delta) == "table" then
      local a, dl = acc[i], d.delta
      if dl.type == "text_delta" and str(dl.text) then a.text[#a.text + 1] = dl.text
      elseif dl.type == "thinking_delta" and str(dl.thinking) then a.thinking[#a.thinking + 1] = dl.thinking
      elseif dl.type == "signature_delta" and str(dl.signature) then a.signature[#a.signature + 1] = dl.signature
      elseif dl.type == "input_json_delta" and str(dl.partial_json) then a.json[#a.json + 1] = dl.partial_json
      elseif dl.type == "citations_delta" and dl.citation ~= nil then
        local b = blocks[i]
        b.citations = tbl(b.citations) or {}
        b.citations[#b.citations + 1] = dl.citation
      end
    elseif t == "message_delta" then
      if type(d.delta) == "table" then out.stop_reason = str(d.delta.stop_reason) or out.stop_reason end
      anthropic_usage(out.usage, d.usage)
    elseif t == "error" then
      out.error = d.error
    end
  end
  for _, i in ipairs(order) do
    local b, a = blocks[i], acc[i]
    if #a.text > 0 then b.text = (str(b.text) or "") .. table.concat(a.text) end
    if #a.thinking > 0 then b.thinking = (str(b.thinking) or "") .. table.concat(a.thinking) end
    if #a.signature > 0 then b.signature = (str(b.signature) or "") .. table.concat(a.signature) end
    if b.input ~= nil or #a.json > 0 then b.input = M.tool_input(a.json, b.input) end
    out.content[#out.content + 1] = b
  end
end

local function chat_message(out, m, finish)
  if type(m) ~= "table" then return end
  local thinking = str(m.reasoning_content) or str(m.reasoning)
  if thinking and thinking ~= "" then
    out.content[#out.content + 1] = { type = "thinking", thinking = thinking }
  end
  if str(m.content) and m.content ~= "" then
    out.content[#out.content + 1] = { type = "text", text = m.content }
  end
  for _, tc in ipairs(tbl(m.tool_calls) or EMPTY) do
    if type(tc) == "table" then
      local f = tbl(tc["function"]) or EMPTY
      out.content[#out.content + 1] = { type = "tool_use", id = str(tc.id), name = str(f.name),
        input = M.tool_input({ str(f.arguments) }) }
    end
  end
  out.stop_reason = str(finish) or out.stop_reason
end

parse["openai-chat"] = function(out, body, stream, events)
  if not stream then
    local m = whole(out, body)
    if not m then return end
    out.id, out.model, out.error = str(m.id), str(m.model), m.error
    local c = tbl(m.choices) and m.choices[1]
    if type(c) == "table" then chat_message(out, c.message, c.finish_reason) end
    openai_usage(out.usage, m.usage)
    return
  end
  local text, thinking, tools, finish = {}, {}, {}, nil
  for _, d in ipairs(stream_events(out, body, events)) do
    out.id, out.model = str(d.id) or out.id, str(d.model) or out.model
    if d.error ~= nil and d.error ~= json.null then out.error = d.error end
    for _, c in ipairs(tbl(d.choices) or EMPTY) do
      local dl = type(c) == "table" and tbl(c.delta)
      if dl and (num(c.index) or 0) == 0 then
        if str(dl.content) then text[#text + 1] = dl.content end
        local r = str(dl.reasoning_content) or str(dl.reasoning)
        if r then thinking[#thinking + 1] = r end
        for _, tc in ipairs(tbl(dl.tool_calls) or EMPTY) do
          if type(tc) == "table" then
            local i = (num(tc.index) or #tools) + 1
            local slot = tools[i] or { args = {} }
            tools[i] = slot
            local f = tbl(tc["function"]) or EMPTY
            slot.id, slot.name = str(tc.id) or slot.id, str(f.name) or slot.name
            if str(f.arguments) then slot.args[#slot.args + 1] = f.arguments end
          end
        end
      end
      if type(c) == "table" and str(c.finish_reason) then finish = c.finish_reason end
    end
    openai_usage(out.usage, d.usage)
  end
  local m = { content = table.concat(text), reasoning = table.concat(thinking), tool_calls = {} }
  local last = 0
  for i in pairs(tools) do if math.type(i) == "integer" and i > last and i <= 10000 then last = i end end
  for i = 1, last do
    local t = tools[i] or { args = {} }
    m.tool_calls[#m.tool_calls + 1] = { id = t.id, ["function"] = { name = t.name, arguments = table.concat(t.args) } }
  end
  chat_message(out, m, finish)
end

-- A Responses API output item as content blocks.
local function response_item(out, it)
  if type(it) ~= "table" then return end
  local t = it.type
  if t == "message" then
    for _, c in ipairs(tbl(it.content) or EMPTY) do
      if type(c) == "table" and (c.type == "output_text" or c.type == "refusal") then
        out.content[#out.content + 1] = { type = "text", text = str(c.text) or str(c.refusal) }
      end
    end
  elseif t == "reasoning" then
    local parts = {}
    for _, s in ipairs(tbl(it.summary) or EMPTY) do
      if type(s) == "table" and str(s.text) then parts[#parts + 1] = s.text end
    end
    out.content[#out.content + 1] = { type = "thinking", thinking = table.concat(parts, "\n\n"),
      signature = str(it.encrypted_content) }
  elseif t == "function_call" then
    out.content[#out.content + 1] = { type = "tool_use", id = str(it.call_id), name = str(it.name),
      input = M.tool_input({ str(it.arguments) }) }
  elseif t == "custom_tool_call" then
    out.content[#out.content + 1] = { type = "tool_use", id = str(it.call_id), name = str(it.name), input = it.input }
  elseif t == "local_shell_call" then
    out.content[#out.content + 1] = { type = "tool_use", id = str(it.call_id), name = "local_shell", input = it.action }
  else
    out.content[#out.content + 1] = it
  end
end

local function response_object(out, r)
  if type(r) ~= "table" then return end
  out.id, out.model = str(r.id) or out.id, str(r.model) or out.model
  if r.error ~= nil and r.error ~= json.null then out.error = r.error end
  local inc = tbl(r.incomplete_details) and str(r.incomplete_details.reason)
  out.stop_reason = inc or str(r.status) or out.stop_reason
  openai_usage(out.usage, r.usage)
  return tbl(r.output) and #r.output > 0 and r.output or nil
end

parse["openai-responses"] = function(out, body, stream, events)
  local items = {}
  if not stream then
    items = response_object(out, whole(out, body)) or {}
  else
    for _, d in ipairs(stream_events(out, body, events)) do
      local t = str(d.type)
      if t == "response.output_item.done" and num(d.output_index) and d.output_index >= 0 and d.output_index < 10000 then
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
  for i in pairs(items) do last = math.type(i) == "integer" and i <= 10000 and math.max(last, i) or last end
  for i = 1, last do response_item(out, items[i]) end
end

-- Gemini: a GenerateContentResponse's first candidate, into blocks that
-- grow as the stream goes (text and thoughts joined, each call whole).
local function gemini_chunk(out, d, st)
  out.id = str(d.responseId) or out.id
  out.model = str(d.modelVersion) or out.model
  if d.error ~= nil and d.error ~= json.null then out.error = d.error end
  gemini_usage(out.usage, d.usageMetadata)
  local fb = tbl(d.promptFeedback)
  if fb and str(fb.blockReason) then out.stop_reason = fb.blockReason end
  local c = tbl(d.candidates) and d.candidates[1]
  if type(c) ~= "table" then return end
  out.stop_reason = str(c.finishReason) or out.stop_reason
  local content = tbl(c.content)
  for _, p in ipairs(content and blocks_of(out, content.parts) or EMPTY) do
    local last = out.content[#out.content]
    if tbl(p.functionCall) then
      out.content[#out.content + 1] = { type = "tool_use", id = str(p.functionCall.id), name = str(p.functionCall.name),
        input = p.functionCall.args ~= nil and p.functionCall.args or json.object(), signature = str(p.thoughtSignature) }
    elseif str(p.text) and p.thought then
      if last and last.type == "thinking" and last == st.open then
        last.thinking = last.thinking .. p.text
      else
        out.content[#out.content + 1] = { type = "thinking", thinking = p.text }
        st.open = out.content[#out.content]
      end
      if str(p.thoughtSignature) then out.content[#out.content].signature = p.thoughtSignature end
    elseif str(p.text) then
      if last and last.type == "text" and last == st.open then
        last.text = last.text .. p.text
      elseif p.text ~= "" or str(p.thoughtSignature) then
        out.content[#out.content + 1] = { type = "text", text = p.text }
        st.open = out.content[#out.content]
      end
      if str(p.thoughtSignature) and st.open then st.open.signature = p.thoughtSignature end
    else
      out.content[#out.content + 1] = p -- code execution, inline data: kept as they came
    end
  end
end

-- streamGenerateContent answers SSE (alt=sse) or one JSON array of
-- responses; generateContent one response.
function parse.gemini(out, body, stream, events)
  local st = {}
  if stream then
    for _, d in ipairs(stream_events(out, body, events)) do gemini_chunk(out, d, st) end
    return
  end
  local m = whole(out, body)
  if not m then return end
  if getmetatable(m) == getmetatable(json.array()) or (m[1] ~= nil and next(m) == 1) then
    out.events = #m
    for _, d in ipairs(m) do
      if type(d) == "table" then gemini_chunk(out, d, st) else out.bad = out.bad + 1 end
    end
  else
    gemini_chunk(out, m, st)
  end
end

function parse.other(out, body)
  local m = json.decode(body)
  if type(m) == "table" and m.error ~= nil and m.error ~= json.null then out.error = m.error end
end

return M
