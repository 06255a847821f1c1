-- procy.capture's parts without the network: redaction, SSE, the three
-- stream parsers, content-addressed bodies, prices and hashing.
local T = require "lib.tap"
local json = require "procy.json"
local hash = require "procy.hash"
local db = require "procy.db"
local config = require "procy.config"
local capture = require "procy.record.capture"
local answer = require "procy.record.answer"
local redact = require "procy.redact"
local blobs = require "procy.blobs"
local prices = require "procy.prices"

local dir = T.tmpdir()
assert(config.load { config = T.write(dir .. "/procy.lua", [[
return { db = "rec.db", redact = { "ACME%-%d%d%d%d%d%d" }, prices = { ["my-model"] = { input = 2, output = 4 } } }
]]) })

-- ---- hashing -----------------------------------------------------------------------
T.is(hash.sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256 of nothing")
T.is(hash.sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256 of abc")
do
  local s = ("0123456789"):rep(1000)
  local r = require("procy.proc").run({ "sha256sum" }, { stdin = s })
  T.is(hash.sha256(s), r.stdout:match("^%x+"), "sha256 agrees with sha256sum on 10 kB")
  local whole, ends = hash.sha256(s, 5, { 4, 64, 65, 9999 })
  T.ok(whole == hash.sha256(s:sub(5)) and ends[1] == hash.sha256("") and ends[2] == hash.sha256(s:sub(5, 64))
       and ends[3] == hash.sha256(s:sub(5, 65)) and ends[4] == hash.sha256(s:sub(5, 9999)),
       "prefix digests in one pass equal separate digests")
  T.ok(not pcall(hash.sha256, s, 5, { 100, 50 }), "ends out of order raise")
  -- libcrypto's SHA-256 is used when it is there; procy's own code otherwise
  local script = T.write(T.tmpdir() .. "/h.lua", [[
    local hash = require "procy.hash"
    local s = io.read("a")
    local whole, ends = hash.sha256(s, 5, { 4, 64, 65, 9999 })
    print(hash.sha256(s), whole, table.concat(ends, " "))]])
  local fast = T.procy({ "run", script }, { stdin = s }).stdout
  local own = T.procy({ "run", script }, { stdin = s, env = { PROCY_NO_LIBCRYPTO = "1" } }).stdout
  T.ok(fast ~= "" and fast == own, "procy's own SHA-256 (no libcrypto) gives the same digests, prefixes too")
  T.is(own:match("^%x+"), r.stdout:match("^%x+"), "and agrees with sha256sum")
end

-- ---- json.spans -------------------------------------------------------------------
do
  local s = ' {"a": [1, {"b": 2}] , "c":"x\\"y" } '
  local kind, list = json.spans(s)
  T.is(kind, "object", "spans of an object")
  T.is(list[1][1] .. "=" .. s:sub(list[1][2], list[1][3]) .. " " .. list[2][1] .. "=" .. s:sub(list[2][2], list[2][3]),
       'a=[1, {"b": 2}] c="x\\"y"', "each member's value, byte for byte")
  local k2, elems = json.spans(s, list[1][2], list[1][3])
  T.is(k2 .. " " .. s:sub(elems[1][1], elems[1][2]) .. " " .. s:sub(elems[2][1], elems[2][2]), 'array 1 {"b": 2}',
       "spans of a nested array")
  local _, err, code = json.spans('{"a": tru}')
  T.is(code, "EJSON", "invalid JSON is an EJSON failure")
  T.like(err, "byte", "that says where")
end

-- ---- redaction -----------------------------------------------------------------------
do
  local key = "sk-ant-api03-" .. ("Ab1_-"):rep(8)
  local text = redact.redact('{"k":"' .. key .. '","p":"sk-proj-ABCDEFGHIJKLMNOPQRSTUV","gh":"ghp_'
    .. ("x1"):rep(18) .. '","custom":"ACME-123456","short":"sk-abc"}')
  T.ok(not text:find(key, 1, true) and not text:find("sk-proj-", 1, true) and not text:find("ghp_", 1, true),
       "API keys and tokens in a body are masked")
  T.ok(not text:find("ACME-123456", 1, true), "a pattern from the redact setting is masked")
  T.like(text, '"short":"sk%-abc"', "short look-alikes are left alone")

  -- a default rule is looked for only where one of its literals is: each
  -- rule's match starts with one, wherever it stands in the text
  local examples = { "sk-ant-api03-" .. ("Ab1_-"):rep(8), "ghs_" .. ("a1"):rep(18), "github_pat_" .. ("B_2"):rep(12),
                     "AKIA" .. ("Q7"):rep(8), "AIza" .. ("c-_9"):rep(8) .. "xyz", "xoxp-" .. ("12ab-"):rep(3),
                     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                     "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB+/xyz\n-----END",
                     "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB+/xyz0123456789abcdef==",
                     "aws_secret_access_key = " .. ("wJalrXUtnF"):rep(4), "AWS_SECRET_ACCESS_KEY=" .. ("wJalrXUtnF"):rep(4),
                     'SecretAccessKey":"' .. ("K7MDENG/bP"):rep(4) }
  T.is(#examples, #redact.default_patterns, "an example for every default rule")
  local english = ("the knight thought it might rain through the night; "):rep(40)
  for i, p in ipairs(redact.default_patterns) do
    local ex, starts = examples[i], false
    for _, lit in ipairs(p[3]) do starts = starts or ex:sub(1, #lit) == lit end
    local a, b = ex:find(p[2])
    T.ok(starts and a == 1 and b == #ex, ("rule %d's match starts with one of its literals (%s)"):format(i, ex:sub(1, 6)))
    for _, t in ipairs { ex, "x " .. ex, english .. ex .. english, ex .. " " .. ex, "(" .. ex .. ")" } do
      local r = redact.redact(t)
      T.ok(not r:find(p[2]) and r:find(redact.mask, 1, true), ("rule %d masks %q"):format(i, t:sub(1, 24)))
    end
  end
  T.is(redact.redact(english), english, "text with none of the literals is returned as it is")
  for _, word in ipairs { "/home/u/task-management-system", "flask-react-boilerplate", "disk-usage-analyzer-tool-v2",
                          "risk-assessment-framework-docs" } do
    T.is(redact.text(word), word, "a word's end is no key's start: " .. word)
  end
  local body = '{"c":"grep \\"-----BEGIN PRIVATE KEY-----\\" key.pem"}'
  T.ok(json.decode(redact.text(body)), "a PEM marker inside a JSON string leaves the JSON valid", redact.text(body))
  T.is(redact.text('{"k":"sk\\u002dant-api03-Ab1_Ab1_Ab1_Ab1_Ab1_"}'), '{"k":"[REDACTED]"}', "a key behind a JSON escape")
  T.is(redact.redact("AKIA" .. examples[1]), "AKIA[REDACTED]", "an AKIA too short next to a key: the key alone")
  T.is(json.encode(redact.spans("ab " .. examples[4] .. examples[4])), json.encode { 4, 3 + 2 * #examples[4] },
       "matches side by side are joined into one span")
  -- an AWS secret: the value masked, its name and quotes kept (JSON stays
  -- JSON), with "\/" for "/", and after a space (aws configure set)
  local aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
  T.is(redact.text('{"aws_secret_access_key":"' .. aws .. '","region":"us-east-1"}'),
       '{"aws_secret_access_key":"[REDACTED]","region":"us-east-1"}', "an AWS secret in JSON: the value alone")
  T.is(redact.text('{"aws_secret_access_key":"' .. aws:gsub("/", "\\/") .. '"}'), '{"aws_secret_access_key":"[REDACTED]"}',
       "and written with \\/")
  T.is(redact.text("aws configure set aws_secret_access_key " .. aws), "aws configure set aws_secret_access_key [REDACTED]",
       "and after a space")
  -- JSON inside a JSON string inside a JSON string: each level decoded
  local inner = '{"k":"sk\\u002dant-api03-' .. ("Ab1_"):rep(8) .. '"}'
  T.ok(not redact.text(json.encode { c = json.encode { r = inner } }):find("Ab1_Ab1_", 1, true), "a key escaped three levels down")
  -- a terminal's output (spans with the screen's width): a key wrapped
  -- after a row of wide characters, a row placed by a cursor move, a key
  -- JSON-escaped in printed JSON
  local g = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4o5p6q"
  local function masked(t, cols)
    local sp, out, at = redact.spans(t, cols), {}, 1
    for i = 1, #sp, 2 do out[#out + 1] = t:sub(at, sp[i] - 1) .. "#" at = sp[i + 1] + 1 end
    return table.concat(out) .. t:sub(at)
  end
  T.is(masked(("密"):rep(34) .. " " .. g:sub(1, 31) .. "\r\n" .. g:sub(32) .. " next", 100),
       ("密"):rep(34) .. " #\r\n# next", "a key wrapped after wide characters (two columns each)")
  T.is(masked("\27[5;1H" .. ("m"):rep(80) .. g:sub(1, 18) .. "\27[6;1H" .. g:sub(19) .. " next", 100),
       "\27[5;1H" .. ("m"):rep(80) .. "#\27[6;1H# next", "a row a cursor move starts, the key on the next")
  T.is(masked("short " .. g:sub(1, 18) .. "\27[6;1H" .. g:sub(19) .. " next", 100),
       "short " .. g:sub(1, 18) .. "\27[6;1H" .. g:sub(19) .. " next", "a short row is no wrapped one")
  T.is(masked('cat creds.json\r\n{"k": "sk\\u002dant-api03-' .. ("Ab1_"):rep(8) .. '"}\r\n', 0),
       'cat creds.json\r\n{"k": "#"}\r\n', "a terminal's JSON string whose escapes hide a key: masked whole")
  -- a full screen of cursor moves holding a literal: measured once, not
  -- once per move (this took minutes when each gap measured its row again)
  local screen = "sk-" .. ("ab\27[Ccd\27[C"):rep(40000)
  T.ok(#redact.spans(screen, 100) >= 0, "a screenful of cursor moves with a literal is looked at in one pass")
  -- a key that starts inside another's match, or a literal across its end
  local A, B, C = ("a"):rep(30), ("b"):rep(30), ("c"):rep(30)
  for _, t in ipairs { "AKIAAKIAQQQQWWWWEEEERRRR", "AIzaAIza" .. ("k"):rep(35), "gho_" .. A .. "ghp_" .. B .. "ghp_" .. C,
                       "ghp_" .. A .. "ghp_" .. B } do
    T.is(redact.redact(t), "[REDACTED]", ("a key overlapping another is masked whole (%s...)"):format(t:sub(1, 8)))
  end
  local saved = redact.settings
  T.ok(redact.check { "[x%d]*" }, "a rule that matches the empty string elsewhere than in \"x\" is accepted")
  redact.settings = { redact = { "[x%d]*" } }
  T.is(redact.redact("pin 1234 and 99"), "pin [REDACTED] and [REDACTED]",
       "such a rule still masks every match after an empty one")
  redact.settings = saved
  local h = redact.headers { { "X-Api-Key", key }, { "Authorization", "Bearer " .. key },
    { "Cookie", "a=b" }, { "Proxy-Authorization", "Basic eA==" }, { "anthropic-version", "2023-06-01" },
    { "x-note", "key " .. key } }
  T.is(json.encode(h), json.encode { { "X-Api-Key", "[REDACTED]" }, { "Authorization", "Bearer [REDACTED]" },
    { "Cookie", "[REDACTED]" }, { "Proxy-Authorization", "Basic [REDACTED]" },
    { "anthropic-version", "2023-06-01" }, { "x-note", "key [REDACTED]" } }, "secret headers are masked, others kept")

  -- a key the model writes across several streamed events
  local function ev(t) return "event: content_block_delta\ndata: " .. json.encode { type = "content_block_delta", index = 0,
    delta = { type = "text_delta", text = t } } .. "\n\n" end
  local body = "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    .. 'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    .. ev("your key: sk-ant-") .. ev("api03-abcdefghij")
    .. ev("klmnop, and more") .. ev(" text")
  local red = answer.redact_stream(body)
  T.ok(not red:find("abcdefghij", 1, true) and not red:find("klmnop", 1, true), "a key split across events is masked")
  local parsed = capture.prepare { path = "/v1/messages", method = "POST", req_body = "{}", resp_body = body,
    req_headers = {}, resp_headers = { { "content-type", "text/event-stream" } }, started_at = 0 }
  T.is(parsed.content[1].text, "your key: [REDACTED], and more text", "and the parsed text reads right")
  T.is(red:sub(1, 34), "event: ping\ndata: {\"type\": \"ping\"}", "events without a secret keep their bytes")
  -- an event whose JSON spans two data lines is one event to the
  -- redaction as to the parser (one splitter)
  local two = ev("your key: sk-ant-"):gsub('"delta":', '\ndata: "delta":', 1)
  red = answer.redact_stream(two .. ev("api03-abcdefghijklmnop"))
  T.ok(not red:find("abcdefghij", 1, true), "a key split across events, one of them on two data lines, is masked", red)
end

-- ---- server-sent events ----------------------------------------------------------------
do
  local ev = answer.sse("event: a\r\ndata: 1\r\ndata: 2\r\n\r\n: comment\n\ndata: x\n\nevent: last\ndata: cut")
  T.is(#ev, 3, "events, comments skipped, a cut-off last event kept")
  T.is(ev[1].event .. "|" .. ev[1].data .. "|" .. ev[2].event .. "|" .. ev[3].data, "a|1\n2|message|cut",
       "CRLF lines, data lines joined, default event name")
  local text = "event: a\r\ndata: 1\r\n\r\n: comment\n\n\n\ndata: x\n\nevent: last\ndata: cut"
  local blocks, raw = answer.sse(text, true), {}
  for i, b in ipairs(blocks) do raw[i] = b.raw end
  T.is(table.concat(raw), text, "sse(text, true): every block with its bytes, which make the text again")
  T.ok(blocks[2].data == nil and blocks[#blocks].data == "cut", "blocks without data have none")
end

-- ---- parsing the three APIs (bodies as the fake upstream sends them) ----------------------
local function stream(events)
  local out = {}
  for _, e in ipairs(events) do
    out[#out + 1] = (e[1] and ("event: " .. e[1] .. "\n") or "") .. "data: " .. (type(e[2]) == "string" and e[2] or json.encode(e[2])) .. "\n\n"
  end
  return table.concat(out)
end

local function prep(path, req, body, ctype)
  return capture.prepare { path = path, method = "POST", req_body = json.encode(req), resp_body = body,
    req_headers = {}, resp_headers = { { "content-type", ctype or "text/event-stream" },
      { "anthropic-ratelimit-tokens-remaining", "1000" } }, started_at = 1, duration_us = 5, status = 200 }
end

do
  local body = stream {
    { "message_start", { type = "message_start", message = { id = "msg_1", model = "claude-sonnet-4-5-20250929",
      usage = { input_tokens = 100, output_tokens = 1, cache_creation_input_tokens = 1000, cache_read_input_tokens = 5000,
                cache_creation = { ephemeral_1h_input_tokens = 400 } } } } },
    { "content_block_start", { type = "content_block_start", index = 0, content_block = { type = "thinking", thinking = "", signature = "" } } },
    { "ping", { type = "ping" } },
    { "content_block_delta", { type = "content_block_delta", index = 0, delta = { type = "thinking_delta", thinking = "hmm, " } } },
    { "content_block_delta", { type = "content_block_delta", index = 0, delta = { type = "thinking_delta", thinking = "ok" } } },
    { "content_block_delta", { type = "content_block_delta", index = 0, delta = { type = "signature_delta", signature = "SIG" } } },
    { "content_block_stop", { type = "content_block_stop", index = 0 } },
    { "content_block_start", { type = "content_block_start", index = 1, content_block = { type = "text", text = "" } } },
    { "content_block_delta", { type = "content_block_delta", index = 1, delta = { type = "text_delta", text = "Let me " } } },
    { "content_block_delta", { type = "content_block_delta", index = 1, delta = { type = "text_delta", text = "look." } } },
    { "content_block_stop", { type = "content_block_stop", index = 1 } },
    { "content_block_start", { type = "content_block_start", index = 2, content_block = { type = "tool_use", id = "toolu_1", name = "Bash", input = json.object() } } },
    { "content_block_delta", { type = "content_block_delta", index = 2, delta = { type = "input_json_delta", partial_json = '{"comm' } } },
    { "content_block_delta", { type = "content_block_delta", index = 2, delta = { type = "input_json_delta", partial_json = 'and": "ls -l"}' } } },
    { "content_block_stop", { type = "content_block_stop", index = 2 } },
    { "content_block_start", { type = "content_block_start", index = 3, content_block = { type = "server_tool_use", id = "srv_1", name = "web_search", input = json.object() } } },
    { "content_block_delta", { type = "content_block_delta", index = 3, delta = { type = "input_json_delta", partial_json = '{"query":"x"}' } } },
    { "content_block_stop", { type = "content_block_stop", index = 3 } },
    { "message_delta", { type = "message_delta", delta = { stop_reason = "tool_use" }, usage = { output_tokens = 42 } } },
    { "message_stop", { type = "message_stop" } },
  }
  local row = prep("/v1/messages?beta=true", { model = "claude-sonnet-4-5", stream = true,
    messages = { { role = "user", content = "hi" } } }, body)
  local c = row.content
  T.is(row.api, "anthropic", "an Anthropic call")
  T.is(#c, 4, "four content blocks, by index")
  T.is(c[1].type .. ":" .. c[1].thinking .. ":" .. c[1].signature, "thinking:hmm, ok:SIG", "thinking with its signature")
  T.is(c[2].text, "Let me look.", "text put together")
  T.is(json.encode(c[3].input), '{"command":"ls -l"}', "tool_use input from its partial_json pieces, as JSON")
  T.is(c[4].type .. " " .. json.encode(c[4].input), 'server_tool_use {"query":"x"}', "server tool blocks too")
  T.is(row.stop_reason, "tool_use", "stop reason from message_delta")
  T.is(("%d %d %d %d"):format(row.input_tokens, row.output_tokens, row.cache_creation_tokens, row.cache_read_tokens),
       "100 42 1000 5000", "usage from message_start and message_delta")
  T.is(row.routed_model, "claude-sonnet-4-5-20250929", "the model that answered")
  -- 100*3 + 42*15 + 600*3.75 + 400*6 + 5000*0.3, per million
  T.ok(math.abs(row.cost - (300 + 630 + 2250 + 2400 + 1500) / 1e6) < 1e-12, "cost with 5-minute and 1-hour cache writes",
       tostring(row.cost))
  T.like(row.ratelimit, '"anthropic%-ratelimit%-tokens%-remaining":"1000"', "rate-limit headers kept")

  local _, e = body:find("\n\n", body:find("partial_json", 1, true), true)
  local cut = prep("/v1/messages", { model = "m" }, body:sub(1, e))
  T.is(cut.content[3].input, '{"comm', "a stream cut mid-tool keeps the input it got, as text")
end

do
  local chunk = function(delta, finish) return { id = "c1", model = "gpt-4.1-2025", choices = { { index = 0, delta = delta, finish_reason = finish } } } end
  local body = stream {
    { nil, chunk { role = "assistant", content = "" } },
    { nil, chunk { content = "Sure" } }, { nil, chunk { content = ", running." } },
    { nil, chunk { tool_calls = { { index = 0, id = "call_1", type = "function", ["function"] = { name = "Bash", arguments = "" } } } } },
    { nil, chunk { tool_calls = { { index = 0, ["function"] = { arguments = '{"command":' } } } } },
    { nil, chunk { tool_calls = { { index = 0, ["function"] = { arguments = '"pwd"}' } } } } },
    { nil, chunk({}, "tool_calls") },
    { nil, { id = "c1", choices = json.array(), usage = { prompt_tokens = 1000, completion_tokens = 20,
      prompt_tokens_details = { cached_tokens = 600 } } } },
    { nil, "[DONE]" },
  }
  local row = prep("/v1/chat/completions", { model = "gpt-4.1", stream = true }, body)
  T.is(row.api, "openai-chat", "an OpenAI chat call")
  T.is(row.content[1].text, "Sure, running.", "chat content put together")
  T.is(row.content[2].type .. " " .. row.content[2].id .. " " .. row.content[2].name .. " " .. json.encode(row.content[2].input),
       'tool_use call_1 Bash {"command":"pwd"}', "tool calls by index, arguments as JSON")
  T.is(row.stop_reason, "tool_calls", "finish_reason")
  T.is(("%d %d %d"):format(row.input_tokens, row.cache_read_tokens, row.output_tokens), "400 600 20",
       "usage chunk; cached prompt tokens counted apart")
  T.ok(math.abs(row.cost - (400 * 2 + 600 * 0.5 + 20 * 8) / 1e6) < 1e-12, "gpt-4.1 cost", tostring(row.cost))
  local plain = prep("/v1/chat/completions", { model = "gpt-4o" }, json.encode { id = "c2", model = "gpt-4o",
    choices = { { index = 0, message = { role = "assistant", content = "hi" }, finish_reason = "stop" } },
    usage = { prompt_tokens = 10, completion_tokens = 2 } }, "application/json")
  T.is(plain.content[1].text .. " " .. plain.stop_reason .. " " .. plain.output_tokens, "hi stop 2", "a chat answer without streaming")
end

do
  local item = { type = "function_call", id = "fc_1", call_id = "call_9", name = "shell", arguments = '{"cmd":["ls"]}' }
  local msg = { type = "message", role = "assistant", content = { { type = "output_text", text = "Done." } } }
  local body = stream {
    { "response.created", { type = "response.created", response = { id = "resp_1", model = "gpt-5-codex", status = "in_progress", output = json.array() } } },
    { "response.output_item.added", { type = "response.output_item.added", output_index = 0, item = { type = "reasoning", summary = json.array() } } },
    { "response.output_item.done", { type = "response.output_item.done", output_index = 0,
      item = { type = "reasoning", summary = { { type = "summary_text", text = "Thinking." } } } } },
    { "response.output_text.delta", { type = "response.output_text.delta", item_id = "m", output_index = 1, content_index = 0, delta = "Do" } },
    { "response.output_item.done", { type = "response.output_item.done", output_index = 1, item = msg } },
    { "response.function_call_arguments.delta", { type = "response.function_call_arguments.delta", item_id = "fc_1", output_index = 2, delta = '{"cmd"' } },
    { "response.output_item.done", { type = "response.output_item.done", output_index = 2, item = item } },
    { "response.completed", { type = "response.completed", response = { id = "resp_1", model = "gpt-5-codex", status = "completed",
      output = json.array(), usage = { input_tokens = 2000, input_tokens_details = { cached_tokens = 1500 }, output_tokens = 30 } } } },
  }
  local row = prep("/v1/responses", { model = "gpt-5-codex", stream = true,
    input = { { type = "function_call_output", call_id = "call_0", output = "prev result" } } }, body)
  T.is(row.api, "openai-responses", "a Responses call")
  T.is(row.content[1].type .. "|" .. row.content[1].thinking .. "|" .. row.content[2].text, "thinking|Thinking.|Done.",
       "reasoning and message items")
  T.is(row.content[3].type .. " " .. row.content[3].id .. " " .. json.encode(row.content[3].input),
       'tool_use call_9 {"cmd":["ls"]}', "function_call items are tool uses")
  T.is(("%s %d %d %d"):format(row.stop_reason, row.input_tokens, row.cache_read_tokens, row.output_tokens),
       "completed 500 1500 30", "status and usage from response.completed")
  T.is(row.results[1] and row.results[1].id .. "=" .. row.results[1].text, "call_0=prev result",
       "function_call_output in the request is a tool result")
end

do -- who asked: the main agent, a side call, a subagent; and the prompt it carried
  local function role(req, agent)
    local row = capture.prepare { path = "/v1/messages", method = "POST", status = 200, started_at = 0,
      req_body = json.encode(req), resp_body = "{}", resp_headers = { { "content-type", "application/json" } },
      req_headers = { { "User-Agent", agent or "claude-cli/2.1.330 (external, cli)" } } }
    return row.role, row.prompt
  end
  local tools = { { name = "Task" }, { name = "Bash" } }
  local r, p = role { tools = tools, messages = { { role = "user", content = { { type = "text", text = "<system-reminder>x</system-reminder>" },
    { type = "text", text = "fix it" } } }, { role = "system", content = "note" } } }
  T.is(r .. " " .. p, "main fix it", "Claude Code with the Task tool: the main agent; its prompt without reminders")
  T.is(role { messages = { { role = "user", content = "title please" } } }, "side", "no tools: a side call (a title)")
  T.is(role { tools = { { name = "Bash" } }, messages = {} }, "subagent", "tools but no Task: a subagent")
  T.is(role({ tools = tools, messages = {} }, "codex-tui/0.169.0"), "main", "Codex with tools: main")
  T.is(role({ tools = json.array(), messages = {} }, "codex-tui/0.169.0"), "side", "Codex without: its title call")
  T.is(role({ messages = {} }, "OpenAI/JS 7.57.0"), "main", "other clients: main")
  r, p = role { tools = tools, messages = { { role = "user", content = "fix it" },
    { role = "assistant", content = { { type = "tool_use", id = "t1", name = "Bash", input = {} } } },
    { role = "user", content = { { type = "tool_result", tool_use_id = "t1", content = "ok" } } } } }
  T.is(p, nil, "a call that carries tool results carries no prompt")
end

do -- an error answer and an unknown model
  local row = capture.prepare { path = "/v1/messages", method = "POST", status = 529, started_at = 0,
    req_body = json.encode { model = "claude-haiku-4-5" }, req_headers = {},
    resp_body = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    resp_headers = { { "content-type", "application/json" } } }
  T.is(row.error, "overloaded_error: Overloaded", "an error status keeps the API's error")
  T.is(prices.cost("no-such-model", { input_tokens = 10, output_tokens = 10 }), nil, "an unknown model's cost is unknown")
  T.is(prices.cost("my-model", { input_tokens = 1e6, output_tokens = 1e6 }), 6, "a price from procy.lua")
  T.is(select(2, prices.find("claude-haiku-4-5-20251001")), "claude-haiku-4-5", "a dated model name finds its price")
  T.is(prices.find("claude-haiku-4-50"), nil, "but a longer name is another model")
  T.is(select(2, prices.find("claude-opus-5-5")), "claude-opus-5-5", "Claude Code 2.1.330's default model has a price")
  T.is(prices.cost("claude-opus-5-5", { input_tokens = 1e6, output_tokens = 1e6, cache_read_tokens = 1e6 }), 24.2,
       "as Claude Code prices it ($4 in, $20 out, $0.20 cache reads)")
  for _, id in ipairs { "claude-opus-5-5-20261015", "us.anthropic.claude-opus-5-5", "claude-opus-5-5[1m]",
                        "claude-opus-4-5@20251101", "anthropic.claude-haiku-4-5-20251001-v1:0", "claude-opus-5-5-fast" } do
    T.ok(prices.find(id), "a dated, suffixed or provider's id finds its family: " .. id)
  end
  T.is(prices.find("claude-opus-5-6"), nil, "another version is not the family's")
  T.is(select(2, prices.find("claude-opus-5-20260101")), "claude-opus-5", "and claude-opus-5's dated id is not 5-5's")
  local long = prices.cost("claude-sonnet-4-5", { input_tokens = 250000, output_tokens = 1000 })
  T.ok(math.abs(long - (250000 * 6 + 1000 * 22.5) / 1e6) < 1e-12, "long prompts use the long-context price", tostring(long))
end

-- ---- content-addressed bodies ---------------------------------------------------------
do
  local h = assert(db.open(dir .. "/blobs.db"))
  local msgs, sizes, naive = {}, {}, 0
  local tools = {}
  for i = 1, 20 do tools[i] = { name = "tool" .. i, description = ("describe %d "):format(i):rep(40) } end
  for i = 1, 30 do
    msgs[#msgs + 1] = { role = i % 2 == 1 and "user" or "assistant", content = ("message %d "):format(i):rep(50) }
    local body = json.encode { model = "m", system = ("system prompt "):rep(200), tools = tools, messages = msgs, stream = true }
    naive = naive + #body
    local id = h:transaction(function() return blobs.put_body(h, body) end)
    T.ok(id == hash.sha256(body), "request " .. i .. " is named by its SHA-256")
    sizes[i] = h:query("SELECT sum(length(data)) AS n FROM blobs")[1].n
    local back = assert(blobs.get(h, id))
    if back ~= body then T.ok(false, "request " .. i .. " rebuilds byte for byte") end
  end
  T.ok(true, "every request rebuilds byte for byte")
  local growth = sizes[30] - sizes[29]
  T.ok(growth < #msgs[30].content + 1000, "a request adds about its new message, not its history",
       ("grew %d bytes for a %d-byte message"):format(growth, #msgs[30].content))
  T.ok(sizes[30] < naive / 5, "stored once: far less than the sum of the bodies", sizes[30] .. " vs " .. naive)
  local small = "not json at all"
  local sid = h:transaction(function() return blobs.put_body(h, small) end)
  T.is(blobs.get(h, sid), small, "a body that is not JSON is kept whole")
  T.is(select(3, blobs.get(h, ("0"):rep(64))), "ENOENT", "a missing blob is ENOENT")
  T.is(select(3, blobs.get(h, "nothex")), "ENOENT", "so is a name that is no digest")
  -- a broken record: a part gone, a blob that holds itself, parts that do not parse
  local function raw(hex, data) h:exec("INSERT INTO blobs(hash, size, chunked, data) VALUES (?, 0, 1, ?)", hex, data) end
  local a, b, c = ("a"):rep(64), ("b"):rep(64), ("c"):rep(64)
  raw(a, "+2:{}=" .. ("d"):rep(64))
  local _, err, code = blobs.get(h, a)
  T.ok(code == "ENOENT" and err:find(("d"):rep(64), 1, true), "a part gone is ENOENT naming it", err)
  raw(b, "=" .. c .. "+1:x")
  raw(c, "=" .. b)
  _, err, code = blobs.get(h, b)
  T.is(code, "EBADBLOB", "a blob that holds itself is EBADBLOB, not a loop")
  raw(("e"):rep(64), "+9:short")
  T.is(select(3, blobs.get(h, ("e"):rep(64))), "EBADBLOB", "parts that do not parse are EBADBLOB")
  h:close()
end

require("procy.proc").run { "rm", "-rf", dir }
return T.done()
