-- seeds.lua — the fuzzers' first inputs, made fresh in a directory:
--   build/procy run tests/fuzz/seeds.lua OUT_DIR
-- Answers of every shape the fake upstream gives (the shapes of the real
-- APIs: Anthropic, OpenAI chat and Responses, Gemini, streamed and whole, tool
-- calls, thinking, server tools, errors), the requests that asked for
-- them, typed key sequences, and HTTP requests a hostile client sends.
local proc = require "procy.proc"
local http = require "procy.http"
local json = require "procy.json"

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

return function(args)
  local out = assert(args[1], "usage: procy run tests/fuzz/seeds.lua OUT_DIR")
  for _, d in ipairs { "json", "answer", "capture", "redact", "term", "vt", "http", "log" } do
    assert(proc.run { "mkdir", "-p", out .. "/" .. d })
  end
  local src = os.getenv("PROCY_SRC") or "."
  local fake = assert(proc.spawn({ "node", src .. "/tests/fake/upstream.mjs", "--log-dir", out .. "/log", "--delay", "0" },
    { stderr = false }))
  local _ <close> = fake
  local port = assert((fake:lines()() or ""):match("^PORT (%d+)"))
  local tools = { { name = "Bash", input_schema = { type = "object" } }, { name = "Task" } }
  local asks = {
    { "/v1/messages", { model = "claude-sonnet-4-5", stream = true, tools = tools,
        messages = { { role = "user", content = "THINK TOOL:bash[ls -la]" } } } },
    { "/v1/messages", { model = "claude-sonnet-4-5", stream = true, messages = { { role = "user", content = "SERVER_TOOL find it" } } } },
    { "/v1/messages", { model = "claude-haiku-4-5", tools = tools, messages = {
        { role = "user", content = "TOOL:bash[pwd]" },
        { role = "assistant", content = { { type = "tool_use", id = "toolu_1", name = "Bash", input = { command = "pwd" } } } },
        { role = "user", content = { { type = "tool_result", tool_use_id = "toolu_1", content = "/tmp" } } } } } },
    { "/v1/messages", { model = "m", messages = { { role = "user", content = "FAKE_ERROR:529" } } } },
    { "/v1/chat/completions", { model = "gpt-4o", stream = true, stream_options = { include_usage = true },
        tools = { { type = "function", ["function"] = { name = "Bash" } } },
        messages = { { role = "system", content = "be brief" }, { role = "user", content = "TOOL:bash[ls]" } } } },
    { "/v1/chat/completions", { model = "gpt-4o", messages = { { role = "user", content = "THINK hello" } } } },
    { "/v1/responses", { model = "gpt-5", stream = true, tools = { { type = "function", name = "exec_command" } },
        input = { { role = "user", content = { { type = "input_text", text = "TOOL:shell[ls]" } } } } } },
    { "/v1/responses", { model = "gpt-5", input = "hello" } },
    { "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", { tools = { { functionDeclarations = {
        { name = "run_shell_command" } } } }, contents = { { role = "user", parts = { { text = "THINK TOOL:bash[ls]" } } } } } },
    { "/v1beta/models/gemini-2.5-flash:streamGenerateContent", { contents = { { role = "user", parts = { { text = "hi" } } },
        { role = "model", parts = { { functionCall = { name = "f", args = {} } } } },
        { role = "user", parts = { { functionResponse = { name = "f", response = { output = "x" } } } } } } } },
    { "/v1beta/models/gemini-2.5-flash:generateContent", { contents = { { role = "user", parts = { { text = "hello" } } } },
        generationConfig = { responseMimeType = "application/json", responseJsonSchema = { type = "OBJECT",
          properties = { score = { type = "INTEGER" } }, required = { "score" } } } } },
  }
  for i, a in ipairs(asks) do
    local body = json.encode(a[2])
    local r = assert(http.request { method = "POST", url = "http://127.0.0.1:" .. port .. a[1], body = body })
    write(("%s/answer/%02d"):format(out, i), r.body)
    write(("%s/capture/%02d"):format(out, i), body .. "\0" .. r.body)
    write(("%s/json/%02d"):format(out, i), body)
  end
  write(out .. "/json/nested", '{"a":[1,2.5e-3,-0,"\\u00e9\\ud83d\\ude00",null,true,{"b":{}}]}')
  write(out .. "/redact/keys", "key sk-ant-api03-" .. ("Ab1_-"):rep(8) .. " ghp_" .. ("x1"):rep(18)
    .. " AKIAABCDEFGHIJKLMNOP AIza" .. ("k"):rep(35) .. " xoxb-0123456789-abc sk\\u002dant")
  write(out .. "/redact/url", "/v1/messages?key=sk-abc&beta=true&token=t&api%5Fkey=x")
  write(out .. "/term/keys", "hello\27[A\27[B\27[C\27[D\27OA\27[3~\27b\27\127!x\r")
  write(out .. "/term/paste", "\27[200~pasted\rtext\27[201~\r\27]0;title\7\27[?1049h\27[?25l\27[2J")
  write(out .. "/term/lone-esc", "\27!turns\r\3\21\23\8abc")
  -- queries, in every form unask.c knows (short, cut short, C1, long)
  write(out .. "/term/queries", "\27[c\27[6n\27]11;?\7\27P$qm\27\\\194\1556n\27]0;x\27[5n\157\49\49;?\156\24")
  write(out .. "/term/long-osc", "\27]52;c;" .. ("QUJD"):rep(1100) .. ";?\7\27]4;1;?" .. (";2;?"):rep(1100) .. "\7")
  -- an agent's screen: its first two bytes choose the size (vt.c)
  write(out .. "/vt/agent", "\20\8\27[?1049h\27[2J\27[1;1H\27[1;38;2;215;119;87m\226\156\187\27[0m Welcome\r\n"
    .. "\27[2;5r\27[5;1H\27M\27[4h\230\151\165\27[4l\27(0lqk\27(B\27[?7l" .. ("x"):rep(40) .. "\27[?1049l\27[3J")
  write(out .. "/vt/scroll", "\10\4" .. ("line\r\n"):rep(30) .. "\27" .. "7\27[1;31m\27[3;3H\27" .. "8e\204\129\27[2L\27[b")
  write(out .. "/http/get", "GET /api/calls?limit=3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
  write(out .. "/http/chunked", "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "5\r\nhello\r\n0\r\n\r\n")
  write(out .. "/http/two-lengths", "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
  write(out .. "/http/dots", "GET /v1/%2e%2e/x HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\n\r\n")
  write(out .. "/http/versionless", "POST /s/tag-1/messages?beta=true HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"
    .. "POST /s/x/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
  write(out .. "/http/gemini", "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=AIzaX HTTP/1.1\r\n"
    .. "Host: 127.0.0.1\r\nx-goog-api-key: k\r\nContent-Length: 2\r\n\r\n{}")
  write(out .. "/http/pipelined", "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\nGET /x HTTP/1.0\r\n\r\n")
  fake:kill("TERM")
  fake:wait(5)
  proc.run { "rm", "-rf", out .. "/log" }
  return 0
end
