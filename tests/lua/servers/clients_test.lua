-- The official npm clients (@anthropic-ai/sdk, openai) through `procy
-- serve` to the fake upstream: what they get, and what procy records.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local db = require "procy.db"

local modules = T.src .. "/tests/node/node_modules"
if not require("procy.fs").stat(modules .. "/openai") then
  print("1..0 # SKIP the npm clients are not installed (.ci/setup installs them into tests/node)")
  return 0
end

local dir = T.tmpdir()
local fake = require("lib.fake").start(dir .. "/fake")
local _ <close> = fake.proc
local record = dir .. "/rec.db"
local KEY = "sk-ant-api03-" .. ("ClientKey_"):rep(5)
local serve = assert(proc.spawn({ T.bin, "--db", record, "serve", "--port", "0", "--upstream", fake.url,
  "--openai-upstream", fake.url }, { stderr = "pipe", stdout = false }))
local _s <close> = serve
local url = (serve:lines("stderr")() or ""):match("listening on (http://[%d.:]+)")
T.ok(url, "procy serve is up")

local r = proc.run({ "node", T.src .. "/tests/node/clients.mjs", url or "http://127.0.0.1:1", KEY }, { timeout = 60 })
T.is(r.code, 0, "the clients ran", r.stderr)
local out = json.decode(r.stdout) or {}

T.is(out.anthropic_text, "FAKE: hello! you said: hello sdk", "@anthropic-ai/sdk: a message")
local st = out.anthropic_stream or {}
T.ok(st.deltas and st.deltas > 0, "a streamed message, text delta by delta")
T.is(st.stop .. " " .. (st.tool and st.tool.command or "-"), "tool_use echo from-sdk", "with its tool_use input whole")
T.is(out.anthropic_tool_final, "FAKE: got tool result: from-sdk", "and the tool result round trip")
T.is(out.anthropic_error and (out.anthropic_error.status .. " " .. out.anthropic_error.type), "529 overloaded_error",
     "an upstream error arrives as the SDK's typed error")
local cs = out.chat_stream or {}
T.is(("%s %s %s %s"):format(cs.name, cs.args and cs.args.command, cs.finish, cs.usage), "Bash ls / tool_calls true",
     "openai: a streamed chat tool call, with usage")
T.like(out.chat_text, "^FAKE: hello! you said: hello chat", "openai: a chat completion")
local rs = out.responses_stream or {}
T.is(("%s %s %s"):format(rs.status, rs.name, rs.args and rs.args.command), "completed Bash uname",
     "openai: a streamed Responses function call")
T.like(out.responses_text, "^FAKE: hello! you said: hello responses", "openai: a Responses answer")

-- byte for byte: the client's hash against the upstream's own
local sent = {}
for line in io.lines(fake.log) do
  local e = json.decode(line)
  sent["req_fake_" .. e.n] = e
end
for _, raw in ipairs(out.raw or {}) do
  local e = sent[raw.request_id]
  T.is(raw.sha256, e and e.resp_sha256, raw.path .. ": the client received exactly what the upstream sent")
end

-- the record
serve:kill("TERM")
serve:wait(10)
local h = assert(db.open(record))
local calls = h:query("SELECT * FROM api_calls ORDER BY id")
local n = 0
for _ in io.lines(fake.log) do n = n + 1 end
T.is(#calls, n, "every call the clients made is recorded")
local tc = h:query("SELECT * FROM tool_calls WHERE name = 'Bash' AND input LIKE '%from-sdk%'")[1]
T.ok(tc and tc.result == "from-sdk" and tc.result_call_id and tc.api_call_id < tc.result_call_id,
     "the SDK's tool_use is linked to its tool_result")
local apis = h:query("SELECT api, count(*) AS n FROM api_calls GROUP BY api ORDER BY api")
local seen = {}
for _, a in ipairs(apis) do seen[#seen + 1] = a.api .. "=" .. a.n end
T.is(table.concat(seen, " "), "anthropic=5 openai-chat=3 openai-responses=3", "calls by API")
for _, raw in ipairs(out.raw or {}) do
  local e = sent[raw.request_id]
  local row = e and h:query("SELECT resp_body FROM api_calls WHERE resp_body = ?", e.resp_sha256)[1]
  T.ok(row, raw.path .. ": the record holds those same bytes")
end
h:close()
local file = T.read(record) .. (T.read(record .. "-wal") or "")
T.ok(not file:find("ClientKey_", 1, true), "the API key is nowhere in the database file")

proc.run { "rm", "-rf", dir }
return T.done()
