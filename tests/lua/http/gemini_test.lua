-- Google's Gemini API through procy's proxy, the third wire format, over
-- real sockets to the fake upstream: generateContent, streamGenerateContent
-- as SSE (alt=sse) and as one JSON array, countTokens; byte for byte; the
-- record's prompt, thoughts, function calls linked to their responses,
-- normalised usage beside the raw one, a price, the key redacted (header
-- and ?key=); version-less base URLs and the API error shape of a path
-- procy does not serve.
local T = require "lib.tap"
local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"
local hash = require "procy.hash"
local config = require "procy.config"
local store = require "procy.store"
local serve = require "procy.serve"
local blobs = require "procy.blobs"

local dir = T.tmpdir()
local fake = require("lib.fake").start(dir .. "/fake")
local _ <close> = fake.proc
assert(config.load { config = T.write(dir .. "/procy.lua", "return { db = 'rec.db' }") })
local session = assert(store.new_session { argv = { "test" }, cwd = dir, mode = "serve" })
local px = assert(serve.start { port = 0, upstream = fake.url, openai = fake.url, google = fake.url, session = session })
local base = px.url
local h = store.open()
local KEY = "AIzaSyD" .. ("GeminiKey0"):rep(3) .. "xyz1"

local function upstream(n)
  for _ = 1, 100 do
    for line in io.lines(fake.log) do
      local e = json.decode(line)
      if e.n == n then return e end
    end
    core.sleep(0.02)
  end
end

-- logged(pattern) -> the fake's newest log line whose path matches, once
-- it is written (a line is written as its answer ends, after the client has it)
local function logged(pattern, after)
  for _ = 1, 150 do
    local hit
    local i = 0
    for line in io.lines(fake.log) do
      i = i + 1
      local e = json.decode(line)
      if i > (after or 0) and e.path:find(pattern) then hit = e end
    end
    if hit then return hit end
    core.sleep(0.02)
  end
  return {}
end
local function log_size()
  local i = 0
  for _ in io.lines(fake.log) do i = i + 1 end
  return i
end

local function recorded(path_like)
  for _ = 1, 150 do
    local row = h:query("SELECT * FROM api_calls WHERE path LIKE ? ORDER BY id DESC LIMIT 1", path_like)[1]
    if row then return row end
    core.sleep(0.02)
  end
end

local n = 0
local function call(path, body, headers)
  n = n + 1
  local hd = { ["content-type"] = "application/json", ["x-goog-api-client"] = "google-genai-sdk/1.30.0" }
  for k, v in pairs(headers or {}) do hd[k] = v end
  return assert(http.request { method = "POST", url = base .. path, body = json.encode(body), headers = hd }), n
end

local tools = { { functionDeclarations = { { name = "run_shell_command", description = "runs a command",
  parameters = { type = "object", properties = { command = { type = "string" } }, required = { "command" } } } } } }

-- ---- a streamed function call (SSE), then its response --------------------------------------
local first = { { role = "user", parts = { { text = "<session_context>the workspace</session_context>" },
                                          { text = "THINK TOOL:bash[echo gem-ok]" } } } }
local r, id1 = call("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", { contents = first, tools = tools },
  { ["x-goog-api-key"] = KEY })
T.is(r.status, 200, "a Gemini stream (alt=sse) through the proxy")
local up = upstream(id1)
T.is(hash.sha256(r.body), up.resp_sha256, "byte for byte (SHA-256 both ends)")
T.is(up.headers["x-goog-api-key"], KEY:sub(1, 7) .. "...(len " .. #KEY .. ")", "the key went to Google's upstream")
T.like(up.path, "^/v1beta/models/gemini%-2%.5%-flash:streamGenerateContent%?alt=sse$", "to its path, query kept")
local c1 = recorded("%streamGenerateContent%")
T.is(c1.api .. " " .. c1.model .. " " .. c1.stream, "gemini gemini-2.5-flash 1", "recorded as a Gemini call, its model from the path")
local content = json.decode(c1.content)
T.is(content[1].type, "thinking", "its thought as thinking")
local use
for _, b in ipairs(content) do if b.type == "tool_use" then use = b end end
T.ok(use and use.name == "run_shell_command" and use.input.command == "echo gem-ok"
  and use.id:match("^gemini%-%x+%-2%-run_shell_command%-1$"),
  "its function call as a tool use, keyed by where it will stand", json.encode(content))
T.ok(c1.input_tokens > 0 and c1.output_tokens > 0 and c1.reasoning_tokens == 3,
  "usage normalised: in, out (thoughts included), reasoning", json.encode(c1))
local raw = json.decode(c1.usage)
T.ok(raw.promptTokenCount == c1.input_tokens and raw.candidatesTokenCount + raw.thoughtsTokenCount == c1.output_tokens,
  "the provider's usage kept as it came", c1.usage)
T.ok(type(c1.cost) == "number" and c1.cost > 0, "priced (gemini-2.5-flash)")
T.ok(not c1.req_headers:find(KEY, 1, true) and c1.req_headers:find("x-goog-api-key", 1, true), "the key header redacted")

local second = { first[1], { role = "model", parts = { { text = "FAKE: running a command." },
    { functionCall = { id = "cli-own-id-1", name = "run_shell_command", args = { command = "echo gem-ok" } } } } },
  { role = "user", parts = { { functionResponse = { id = "cli-own-id-1", name = "run_shell_command",
    response = { output = "gem-ok\n" } } } } } }
r = call("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", { contents = second, tools = tools },
  { ["x-goog-api-key"] = KEY })
T.like(r.body, "FAKE: got to", "the function's response answered")
local tc
for _ = 1, 100 do
  tc = h:query("SELECT * FROM tool_calls WHERE tool_use_id = ?", use and use.id or "?")[1]
  if tc and tc.result then break end
  core.sleep(0.02)
end
T.ok(tc and tc.result == "gem-ok\n" and tc.result_call_id, "linked to its response (the client's own ids do not matter)",
  json.encode(tc))

-- ---- the JSON-array stream, generateContent, countTokens, ?key= ---------------------------------
r, id1 = call("/v1beta/models/gemini-2.5-pro:streamGenerateContent?key=" .. KEY, { contents = { { role = "user",
  parts = { { text = "array please" } } } } })
T.ok(r.body:match("^%[") and r.body:match("%]$"), "a stream without alt=sse is one JSON array")
local c2 = recorded("%gemini-2.5-pro:streamGenerateContent%")
T.ok(c2 and json.decode(c2.content)[1].text == "FAKE: hello! you said: array please" and c2.output_tokens > 0,
  "parsed as a stream all the same", c2 and c2.content)
T.ok(not c2.path:find(KEY, 1, true) and c2.path:find("key=", 1, true), "?key= redacted in the record's path", c2.path)
r = call("/v1beta/models/gemini-2.5-flash-lite:generateContent", { contents = { { role = "user", parts = { { text = "one" } } } } },
  { ["x-goog-api-key"] = KEY })
local c3 = recorded("%generateContent")
T.is(json.decode(r.body).candidates[1].finishReason .. " " .. c3.stop_reason, "STOP STOP", "generateContent, its finish reason")
r = call("/v1beta/models/gemini-2.5-flash:countTokens", { contents = { { role = "user", parts = { { text = "count" } } } } },
  { ["x-goog-api-key"] = KEY })
T.ok(r.status == 200 and json.decode(r.body).totalTokens, "countTokens relayed")

-- a secret the model writes across the pieces of the JSON-array stream
local ANT = "sk-ant-api03-" .. ("SplitKey9_"):rep(5) -- the fake echoes 80 characters
r = call("/v1beta/models/gemini-2.5-flash:streamGenerateContent", { contents = { { role = "user", parts = { { text = ANT } } } } },
  { ["x-goog-api-key"] = KEY })
local whole = {}
for piece in r.body:gmatch('"text":"([^"]*)"') do whole[#whole + 1] = piece end
T.ok(table.concat(whole):find(ANT, 1, true) and not r.body:find(ANT, 1, true), "(the fake wrote the key in pieces)", r.body:sub(1, 400))
local c4
for _ = 1, 100 do
  c4 = h:query("SELECT * FROM api_calls WHERE path LIKE '%streamGenerateContent' ORDER BY id DESC LIMIT 1")[1]
  if c4 and (blobs.get(h, c4.req_body) or ""):find("REDACTED", 1, true) then break end
  core.sleep(0.02)
end
local kept = blobs.get(h, c4.resp_body) or ""
local kept_text = {}
for piece in kept:gmatch('"text":"([^"]*)"') do kept_text[#kept_text + 1] = piece end
kept_text = table.concat(kept_text)
T.ok(not kept_text:find("SplitKey9_Spl", 1, true) and kept_text:find("[REDACTED]", 1, true),
  "a key split across the array's elements is masked in the record", kept_text)

-- ---- keys go only to their own provider ----------------------------------------------------------
-- OpenAI's fine-tuned models have colons: not Google's
local before = log_size()
r = assert(http.request { method = "GET", url = base .. "/v1/models/ft:gpt-4o-mini:acme::abc123",
  headers = { authorization = "Bearer sk-proj-openai-key" } })
T.ok(r.status == 404 and logged("^/v1/models/ft:", before).path == "/v1/models/ft:gpt-4o-mini:acme::abc123",
  "a colon in a model's name is no Gemini call")
local px2 = assert(serve.start { port = 0, upstream = fake.url, openai = fake.url, google = "http://127.0.0.1:1", session = session })
r = assert(http.request { method = "GET", url = px2.url .. "/v1/models/ft:gpt-4o-mini:acme::abc123",
  headers = { authorization = "Bearer sk-proj-openai-key" } })
T.is(r.status, 404, "(it went to OpenAI's upstream, not Google's, with its key)")
r = assert(http.request { method = "POST", url = base .. "/v1/messages?key=AIzaLeak&beta=true", body = json.encode {
  model = "claude-fake-1", max_tokens = 5, messages = { { role = "user", content = "keyed" } } },
  headers = { ["content-type"] = "application/json", ["anthropic-version"] = "2023-06-01" } })
T.is(logged("^/v1/messages", before).path, "/v1/messages?beta=true", "a Google ?key= never leaves with another provider's call")
before = log_size()
r = call("/v1beta/models/gemini-2.5-flash:generateContent", { contents = { { role = "user", parts = { { text = "b" } } } } },
  { authorization = "Bearer sk-ant-api03-notGoogles" })
local last = logged(":generateContent$", before)
T.ok(last.headers and last.headers.authorization == nil, "nor an sk- bearer key with a Google call", json.encode(last))
serve.stop(px2)

-- ---- base URLs without a version, and paths procy does not serve ---------------------------------
r = assert(http.request { method = "POST", url = base .. "/messages", headers = { ["content-type"] = "application/json",
  ["anthropic-version"] = "2023-06-01", ["x-api-key"] = "sk-ant-x" },
  body = json.encode { model = "claude-fake-1", max_tokens = 5, messages = { { role = "user", content = "no version" } } } })
T.like(r.body, "you said: no version", "/messages is /v1/messages (a base URL without /v1)")
r = assert(http.request { method = "POST", url = base .. "/s/tag1/chat/completions", headers = { ["content-type"] = "application/json" },
  body = json.encode { model = "gpt-small", messages = { { role = "user", content = "tagged" } } } })
T.like(r.body, "you said: tagged", "so is /s/TAG/chat/completions")
r = assert(http.request { method = "GET", url = base .. "/s/tag1/nothing", headers = { ["x-goog-api-key"] = KEY } })
local e = json.decode(r.body) or {}
T.ok(r.status == 404 and e.error and e.error.status == "NOT_FOUND" and e.error.message:find("generateContent", 1, true),
  "a path procy does not serve: Google's error shape for a Google client, naming what is served", r.body)
r = assert(http.request { method = "PUT", url = base .. "/s/tag1/v9/x", headers = { ["anthropic-version"] = "2023-06-01" } })
e = json.decode(r.body) or {}
T.ok(r.status == 405 and e.type == "error" and e.error.type == "not_found_error", "Anthropic's for an Anthropic client", r.body)
r = assert(http.request { method = "GET", url = base .. "/s/tag1/v9/x", headers = { authorization = "Bearer sk-x" } })
e = json.decode(r.body) or {}
T.ok(r.status == 404 and e.error and e.error.type == "invalid_request_error" and e.error.code == "not_found",
  "OpenAI's otherwise", r.body)
T.ok(not (blobs.get(h, c1.req_body) or ""):find(KEY, 1, true), "no key in the stored request body")

serve.stop(px)
return T.done()
