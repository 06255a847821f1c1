-- procy.translate on the shapes real agents send and real servers answer:
-- Claude Code's Messages requests into chat completions, OpenAI answers
-- and streams back into Anthropic's, the stream fed a byte at a time
-- giving the same events as fed whole, procy's own Anthropic parser and
-- the official @anthropic-ai/sdk reading the translated stream.
local T = require "lib.tap"
local core = require "procy.core"
local fs = require "procy.fs"
local http = require "procy.http"
local json = require "procy.json"
local proc = require "procy.proc"
local answer = require "procy.record.answer"
local tr = require "procy.translate"

-- ---- the request ------------------------------------------------------------------------------
local req = tr.request({
  model = "claude-sonnet-4-5", max_tokens = 4096, temperature = 0.2, top_p = 0.9, stream = true,
  stop_sequences = { "\n\nHuman:" }, metadata = { user_id = "user_abc" },
  system = { { type = "text", text = "You are Claude Code." }, { type = "text", text = "Be brief.", cache_control = { type = "ephemeral" } } },
  tools = { { name = "Bash", description = "run a command", input_schema = { type = "object", properties = { command = { type = "string" } } } },
            { type = "web_search_20250305", name = "web_search" } },
  tool_choice = { type = "any", disable_parallel_tool_use = true },
  thinking = { type = "enabled", budget_tokens = 8000 },
  messages = {
    { role = "user", content = { { type = "text", text = "look at this" },
      { type = "image", source = { type = "base64", media_type = "image/png", data = "iVBORw0KGgo=" } } } },
    { role = "assistant", content = { { type = "thinking", thinking = "hmm", signature = "sig" },
      { type = "text", text = "Let me run it." },
      { type = "tool_use", id = "toolu_01", name = "Bash", input = { command = "ls" } } } },
    { role = "user", content = { { type = "tool_result", tool_use_id = "toolu_01", content = { { type = "text", text = "a.c b.c" } } },
      { type = "text", text = "and now?" } } },
  },
}, { model = "gpt-4o", reasoning = true })
T.is(req.model, "gpt-4o", "the target's model")
T.is(req.messages[1].role .. ":" .. req.messages[1].content, "system:You are Claude Code.\nBe brief.", "system blocks: one system message")
T.ok(req.messages[2].content[2].type == "image_url" and req.messages[2].content[2].image_url.url == "data:image/png;base64,iVBORw0KGgo=",
  "an image as a data URL")
local asst = req.messages[3]
T.ok(asst.role == "assistant" and asst.content == "Let me run it." and asst.tool_calls[1].id == "toolu_01"
  and asst.tool_calls[1]["function"].name == "Bash" and json.decode(asst.tool_calls[1]["function"].arguments).command == "ls",
  "tool_use: tool_calls, the id kept, the input as JSON arguments; thinking dropped", json.encode(asst))
T.ok(req.messages[4].role == "tool" and req.messages[4].tool_call_id == "toolu_01" and req.messages[4].content == "a.c b.c",
  "tool_result: a role tool message with its tool_call_id, right after the call")
T.is(req.messages[5].content, "and now?", "then the rest of the user's turn")
T.ok(#req.tools == 1 and req.tools[1]["function"].parameters.properties.command, "tools as functions; a server tool not offered")
T.ok(req.tool_choice == "required" and req.parallel_tool_calls == false, "tool_choice any: required, no parallel calls")
T.ok(req.stop == nil and req.temperature == nil and req.top_p == nil and req.max_tokens == 4096 and req.user == "user_abc",
  "a reasoning target: no stop, temperature or top_p (such models refuse them); max_tokens, the user")
T.ok(req.stream and req.stream_options.include_usage, "a stream asks for its usage")
T.is(req.reasoning_effort, "medium", "thinking's budget: a reasoning target's effort")
local plain, rest = tr.request({ model = "m", max_tokens = 4096, temperature = 0.2, top_p = 0.9, stop_sequences = { "\n\nHuman:" },
  messages = {} }, { model = "gpt-4o" })
T.ok(plain.stop[1] == "\n\nHuman:" and #plain.stop == 1 and #rest == 0 and plain.temperature == 0.2 and plain.top_p == 0.9
  and plain.max_tokens == 4096, "another target: stop sequences, temperature, top_p, max_tokens")

-- Claude Code's environment block, a system message after the prompt
local cc = tr.request({ model = "claude-opus-5-5", system = { { type = "text", text = "You are a reviewer." } }, messages = {
  { role = "user", content = { { type = "text", text = "<system-reminder>attribution</system-reminder>" },
                               { type = "text", text = "review the change" } } },
  { role = "system", content = { { type = "text", text = "# Environment\nPrimary working directory: /w" } } } } }, {})
T.is(#cc.messages, 2, "the system message inside messages is no message of its own", json.encode(cc.messages))
T.ok(cc.messages[1].role == "system" and cc.messages[1].content == "You are a reviewer.\n\n# Environment\nPrimary working directory: /w",
  "it joins the system prompt, after it")
T.ok(cc.messages[2].role == "user" and cc.messages[2].content:find("review the change$"), "the prompt is the last user message")
local only = tr.request({ model = "m", messages = { { role = "system", content = "be brief" }, { role = "user", content = "hi" } } }, {})
T.ok(only.messages[1].role == "system" and only.messages[1].content == "be brief" and #only.messages == 2,
  "a system message with no system prompt becomes it")

-- the output limit: under the name the target wants, clamped to its limit
local big = tr.request({ model = "m", max_tokens = 128000, messages = {} },
  { model = "gpt-4o", max_tokens_field = "max_completion_tokens", max_output = 16384 })
T.ok(big.max_completion_tokens == 16384 and big.max_tokens == nil, "max_completion_tokens, clamped to the target's 16384",
  json.encode(big))
T.is(tr.request({ model = "m", max_tokens = 1000, messages = {} }, { max_output = 16384 }).max_tokens, 1000, "a smaller ask is kept")

-- more stop sequences than OpenAI takes: four sent, the rest procy's to watch for
local six = { "S1", "S2", "S3", "S4", "S5", "S6" }
local r6, rest6 = tr.request({ model = "m", stop_sequences = six, messages = {} }, {})
T.ok(#r6.stop == 4 and r6.stop[4] == "S4" and #rest6 == 2 and rest6[1] == "S5" and rest6[2] == "S6",
  "six stop sequences: four sent, two kept for procy", json.encode { r6.stop, rest6 })
local _, rrest = tr.request({ model = "o3", stop_sequences = { "A", "B" }, messages = {} }, { reasoning = true })
T.is(#rrest, 2, "a reasoning target takes none: procy watches for all")
T.is(tr.request({ model = "m", messages = {}, thinking = { type = "enabled", budget_tokens = 1 } }).reasoning_effort, nil,
  "no reasoning effort for a target without reasoning")
T.is(tr.request({ model = "m", tools = { { name = "x", input_schema = {} } }, tool_choice = { type = "tool", name = "x" }, messages = {} })
  .tool_choice["function"].name, "x", "tool_choice tool: that function")

-- ---- the answer --------------------------------------------------------------------------------
local m = tr.response({ id = "chatcmpl-9x", model = "gpt-4o", choices = { { index = 0, finish_reason = "tool_calls",
  message = { role = "assistant", content = "Running it.", tool_calls = { { id = "call_1", type = "function",
    ["function"] = { name = "Bash", arguments = '{"command":"make test"}' } } } } } },
  usage = { prompt_tokens = 1200, completion_tokens = 30, prompt_tokens_details = { cached_tokens = 1000 } } }, { model = "claude-sonnet-4-5" })
T.ok(m.type == "message" and m.model == "claude-sonnet-4-5" and m.id == "msg_chatcmpl-9x", "an Anthropic message, named as asked")
T.ok(m.content[1].text == "Running it." and m.content[2].type == "tool_use" and m.content[2].id == "call_1"
  and m.content[2].input.command == "make test", "text and tool_use blocks, the id kept")
T.is(m.stop_reason, "tool_use", "finish_reason tool_calls: stop_reason tool_use")
T.ok(m.usage.input_tokens == 200 and m.usage.cache_read_input_tokens == 1000 and m.usage.output_tokens == 30, "usage, cached tokens as cache reads")
T.is(tr.response({ choices = { { finish_reason = "length", message = { content = "cut" } } } }).stop_reason, "max_tokens", "length: max_tokens")
T.is(tr.response({ choices = { { finish_reason = "stop", message = { content = "ok" } } } }).stop_reason, "end_turn", "stop: end_turn")
local e = tr.error(429, '{"error":{"message":"Rate limit reached","type":"requests"}}')
T.ok(e.type == "error" and e.error.type == "rate_limit_error" and e.error.message == "Rate limit reached", "an error, Anthropic-shaped")
T.is(tr.error(502, "<html>bad gateway</html>").error.type, "api_error", "a 5xx that is not JSON: api_error, its text kept")
T.ok(tr.count_tokens({ messages = { { role = "user", content = ("word "):rep(400) } } }).input_tokens > 400, "count_tokens: an estimate")

-- an answer with reasoning only; tool arguments that are no JSON object; a stop sequence procy watches for
local ro, rnotes = tr.response({ choices = { { finish_reason = "stop", message = { content = json.null,
  reasoning_content = "The answer is 42." } } } })
T.ok(#ro.content == 1 and ro.content[1].text == "The answer is 42." and rnotes.reasoning_as_text,
  "reasoning and nothing else: the reasoning as text, not an empty answer", json.encode(ro))
local wa = tr.response({ choices = { { finish_reason = "stop", message = { content = "ok", reasoning_content = "thinking" } } } })
T.ok(#wa.content == 1 and wa.content[1].text == "ok", "with content: the content alone")
local bad, bnotes = tr.response({ choices = { { finish_reason = "tool_calls", message = { tool_calls = {
  { id = "call_x", ["function"] = { name = "Bash", arguments = '{"command": "ls' } },
  { id = "call_y", ["function"] = { name = "Bash", arguments = '["ls"]' } },
  { id = "call_z", ["function"] = { name = "Read", arguments = { file_path = "a.c" } } } } } } } })
T.ok(bad.content[1].input.raw_arguments == '{"command": "ls' and bad.content[2].input.raw_arguments == '["ls"]'
  and bad.content[3].input.file_path == "a.c", "arguments that are no JSON object kept as text (raw_arguments), not {}; an object taken",
  json.encode(bad.content))
T.ok(bnotes.invalid_tool_arguments and bnotes.invalid_tool_arguments[1] == "call_x" and #bnotes.invalid_tool_arguments == 2,
  "and the calls marked", json.encode(bnotes))
local cut, cnotes = tr.response({ choices = { { finish_reason = "stop", message = { content = "one two S5 three" } } } }, { stops = { "S6", "S5" } })
T.ok(cut.content[1].text == "one two " and cut.stop_reason == "stop_sequence" and cut.stop_sequence == "S5" and cnotes.stop == "S5",
  "a stop sequence procy watches for ends the text, and is named", json.encode(cut))

-- ---- the stream ---------------------------------------------------------------------------------
local chunks = {
  { id = "chatcmpl-s1", model = "gpt-4o", choices = { { index = 0, delta = { role = "assistant", content = "" } } } },
  { id = "chatcmpl-s1", choices = { { index = 0, delta = { content = "Let me " } } } },
  { id = "chatcmpl-s1", choices = { { index = 0, delta = { content = "check. é✻" } } } },
  -- two parallel calls, their pieces interleaved (index 0, 1, 0, 1), as some servers send them
  { id = "chatcmpl-s1", choices = { { index = 0, delta = { tool_calls = { { index = 0, id = "call_a", type = "function",
    ["function"] = { name = "Bash", arguments = "" } } } } } } },
  { id = "chatcmpl-s1", choices = { { index = 0, delta = { tool_calls = { { index = 1, id = "call_b", type = "function",
    ["function"] = { name = "Read", arguments = '{"file_' } } } } } } },
  { id = "chatcmpl-s1", choices = { { index = 0, delta = { tool_calls = { { index = 0, ["function"] = { arguments = '{"comm' } } } } } } },
  { id = "chatcmpl-s1", choices = { { index = 0, delta = { tool_calls = { { index = 1, ["function"] = { arguments = 'path":"a.c"}' } } } } } } },
  { id = "chatcmpl-s1", choices = { { index = 0, delta = { tool_calls = { { index = 0, ["function"] = { arguments = 'and":"ls"}' } } } } } } },
  { id = "chatcmpl-s1", choices = { { index = 0, delta = {}, finish_reason = "tool_calls" } } },
  { id = "chatcmpl-s1", choices = {}, usage = { prompt_tokens = 50, completion_tokens = 12 } },
}
local sse = {}
for _, c in ipairs(chunks) do sse[#sse + 1] = "data: " .. json.encode(c) .. "\n\n" end
sse[#sse + 1] = "data: [DONE]\n\n"
sse = table.concat(sse)
local whole = tr.stream { model = "claude-sonnet-4-5" }
local out = whole:feed(sse) .. whole:finish()
local bytewise = tr.stream { model = "claude-sonnet-4-5" }
local parts, early = {}, nil
for i = 1, #sse do
  parts[#parts + 1] = bytewise:feed(sse:sub(i, i))
  if not early and parts[#parts]:find("text_delta", 1, true) then early = i end
end
T.is(table.concat(parts) .. bytewise:finish(), out, "fed a byte at a time: the same events as fed whole")
T.ok(early and early < #sse / 3, "and each event as soon as its chunk is in (nothing waits for the end)", tostring(early))
local names = {}
for _, ev in ipairs(answer.sse(out)) do names[#names + 1] = ev.event end
T.is(table.concat(names, " "), "message_start ping content_block_start content_block_delta content_block_delta content_block_stop "
  .. "content_block_start content_block_delta content_block_stop content_block_start content_block_delta "
  .. "content_block_stop message_delta message_stop", "the Anthropic event sequence: text, then each tool_use whole, one after the other")
local parsed = { content = {}, usage = {}, bad = 0, odd = 0, events = 0 }
answer.parse.anthropic(parsed, out, true)
T.ok(#parsed.content == 3 and parsed.content[1].text == "Let me check. é✻" and parsed.content[2].name == "Bash"
  and parsed.content[2].input.command == "ls" and parsed.content[3].id == "call_b" and parsed.content[3].name == "Read"
  and parsed.content[3].input.file_path == "a.c", "procy's own parser reads it: text and both interleaved tool calls, each whole",
  json.encode(parsed.content))
T.ok(parsed.stop_reason == "tool_use" and parsed.bad == 0, "stop_reason tool_use, no bad event", json.encode(parsed))
local err = tr.stream {}
local eo = err:feed('data: {"error":{"message":"model overloaded"}}\n\n') .. err:finish()
T.ok(eo:find("event: error", 1, true) and eo:find("model overloaded", 1, true) and eo:find("message_stop", 1, true),
  "an error chunk: an Anthropic error event")

local function stream_of(list, o)
  local text = {}
  for _, c in ipairs(list) do text[#text + 1] = "data: " .. json.encode(c) .. "\n\n" end
  local tt = tr.stream(o or {})
  local all = {}
  for _, piece in ipairs(text) do all[#all + 1] = tt:feed(piece) end
  all[#all + 1] = tt:finish()
  local p = { content = {}, usage = {}, bad = 0, odd = 0, events = 0 }
  answer.parse.anthropic(p, table.concat(all), true)
  return p, tt
end
-- a stop sequence procy watches for, split across chunks
local sp, st = stream_of({ { choices = { { delta = { content = "alpha be" } } } }, { choices = { { delta = { content = "ta END" } } } },
  { choices = { { delta = { content = "_MARK gamma" } } } }, { choices = { { delta = { content = " delta" } } } },
  { choices = { { delta = {}, finish_reason = "stop" } } } }, { stops = { "END_MARK" } })
T.ok(sp.content[1].text == "alpha beta " and sp.stop_reason == "stop_sequence" and st.cut and st.notes.stop == "END_MARK",
  "stream: the text ends where a watched stop sequence begins, split across chunks; stop_sequence", json.encode(sp))
local cp = stream_of({ { choices = { { delta = { content = "done END_MARK more" } } } },
  { choices = { { delta = { tool_calls = { { index = 0, id = "call_after", ["function"] = { name = "Bash", arguments = "{}" } } } } } } },
  { choices = { { delta = {}, finish_reason = "tool_calls" } } } }, { stops = { "END_MARK" } })
T.ok(#cp.content == 1 and cp.content[1].text == "done " and cp.stop_reason == "stop_sequence",
  "stream: after a watched stop sequence no tool call is sent (as the whole answer drops them)", json.encode(cp.content))
local rp, rt = stream_of({ { choices = { { delta = { reasoning_content = "Thinking it " } } } },
  { choices = { { delta = { reasoning_content = "over: 42." } } } }, { choices = { { delta = {}, finish_reason = "stop" } } } })
T.ok(#rp.content == 1 and rp.content[1].text == "Thinking it over: 42." and rt.notes.reasoning_as_text,
  "stream: reasoning and nothing else: the reasoning as text", json.encode(rp.content))
local ip, it = stream_of({ { choices = { { delta = { tool_calls = { { index = 0, id = "call_q", ["function"] = { name = "Bash",
  arguments = '{"command":' } } } } } } }, { choices = { { delta = {}, finish_reason = "tool_calls" } } } })
T.ok(ip.content[1] and ip.content[1].input.raw_arguments == '{"command":' and it.notes.invalid_tool_arguments[1] == "call_q"
  and ip.bad == 0, "stream: broken arguments kept as text, the call marked, the stream still valid", json.encode(ip))

-- the official SDK reads the translated stream, served as an upstream would
if fs.stat(T.src .. "/tests/node/node_modules/@anthropic-ai/sdk") then
  local srv = assert(http.serve { port = 0 })
  core.spawn(function()
    while true do
      local r = srv:accept()
      if not r then return end
      r:stream(200, { ["Content-Type"] = "text/event-stream" })
      local t = tr.stream { model = "claude-sonnet-4-5" }
      for i = 1, #sse, 97 do
        r:send(t:feed(sse:sub(i, i + 96)))
        core.sleep(0.001)
      end
      r:send(t:finish())
      r:finish()
    end
  end)
  local script = T.write(T.tmpdir() .. "/read.mjs", ([[
    import Anthropic from %q;
    const c = new Anthropic({ baseURL: process.argv[2], apiKey: "sk-x", maxRetries: 0 });
    const s = c.messages.stream({ model: "claude-sonnet-4-5", max_tokens: 10, messages: [{ role: "user", content: "x" }] });
    let texts = 0; s.on("text", () => texts++);
    const m = await s.finalMessage();
    console.log(JSON.stringify({ texts, m }));
  ]]):format(T.src .. "/tests/node/node_modules/@anthropic-ai/sdk/index.mjs"))
  local r
  local task = core.spawn(function() r = proc.run { "node", script, "http://127.0.0.1:" .. srv:port() } end)
  core.await(task)
  local got = r and json.decode(r.stdout or "")
  T.ok(got and got.texts == 2 and got.m.content[1].text == "Let me check. é✻" and got.m.content[2].input.command == "ls"
    and got.m.content[3].input.file_path == "a.c" and got.m.stop_reason == "tool_use" and got.m.usage.output_tokens == 12,
    "@anthropic-ai/sdk reads the translated stream: text deltas, both tool inputs, stop reason, usage", (r and (r.stdout .. r.stderr)) or "")
  srv:close()
else
  T.skip("the SDK reads the stream", "tests/node has no @anthropic-ai/sdk (.ci/setup installs it)")
end

return T.done()
