-- fakemodel.lua: a fake OpenAI-compatible proxy model, served by the test
-- process itself (the model is what cannot run here). Answers
-- /v1/chat/completions from a script, in order:
--   "text"                          the reply (as JSON, or SSE when asked to stream)
--   {status = 503, retry_after = 1} that error
--   function(body, n) -> either     computed
-- After the script: script.default (or "FAKE PROMPT n").
-- fakemodel.start(script) -> {url, port, requests = {decoded bodies}, close()}
local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"

local M = {}

function M.start(script)
  local srv = assert(http.serve { port = 0 })
  local m = { port = srv:port(), requests = {}, srv = srv }
  m.url = "http://127.0.0.1:" .. m.port
  m.task = core.spawn(function()
    while true do
      local req = srv:accept()
      if not req then return end
      local body = json.decode(req:body()) or {}
      m.requests[#m.requests + 1] = body
      local n = #m.requests
      local r = script[n]
      if r == nil then r = script.default or ("FAKE PROMPT " .. n) end
      if type(r) == "function" then r = r(body, n) end
      if type(r) == "table" then
        req:respond(r.status, { ["content-type"] = "application/json", ["retry-after"] = r.retry_after and tostring(r.retry_after) },
          json.encode { error = { message = "fake error " .. r.status } })
      elseif body.stream then
        req:stream(200, { ["content-type"] = "text/event-stream" })
        local half = #r // 2
        for _, piece in ipairs { r:sub(1, half), r:sub(half + 1) } do
          req:send("data: " .. json.encode { id = "c" .. n, object = "chat.completion.chunk", model = body.model,
            choices = { { index = 0, delta = { content = piece } } } } .. "\n\n")
        end
        req:send("data: " .. json.encode { id = "c" .. n, object = "chat.completion.chunk", model = body.model,
          choices = { { index = 0, delta = {}, finish_reason = "stop" } },
          usage = { prompt_tokens = 10, completion_tokens = 5 } } .. "\n\n")
        req:send("data: [DONE]\n\n")
        req:finish()
      else
        req:respond(200, { ["content-type"] = "application/json" }, json.encode {
          id = "c" .. n, object = "chat.completion", model = body.model,
          choices = { { index = 0, message = { role = "assistant", content = r }, finish_reason = "stop" } },
          usage = { prompt_tokens = 10, completion_tokens = 5, total_tokens = 15 } })
      end
    end
  end)
  function m.close() srv:close() end
  return m
end

return M
