-- fakevllm.lua: a fake vLLM OpenAI-compatible server with the runtime LoRA
-- API, served by the test process (the model is what cannot run here):
-- POST /v1/load_lora_adapter, /v1/unload_lora_adapter, GET /v1/models,
-- POST /v1/chat/completions (answers "SET 5", remembering the model asked).
-- m.mode: "ok", "refuse" (no runtime updates: 404 on the LoRA routes),
-- "error" (500 on load). m.key: a key every request must carry as
-- Authorization: Bearer (vLLM's --api-key), else 401.
-- fakevllm.start() -> {url, port, mode, loaded = {name = path}, calls = {"METHOD PATH body"}, asked = {model}, close()}
local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"

local M = {}

function M.start()
  local srv = assert(http.serve { port = 0 })
  local m = { port = srv:port(), mode = "ok", loaded = {}, calls = {}, asked = {}, srv = srv }
  m.url = "http://127.0.0.1:" .. m.port
  local function reply(req, status, v) req:respond(status, { ["content-type"] = "application/json" }, json.encode(v)) end
  m.task = core.spawn(function()
    while true do
      local req = srv:accept()
      if not req then return end
      local body = req:body()
      m.calls[#m.calls + 1] = req:method() .. " " .. req:path() .. " " .. body
      local b = json.decode(body) or {}
      local lora = req:path():find("lora_adapter", 1, true)
      if m.key and req:header("authorization") ~= "Bearer " .. m.key then
        reply(req, 401, { error = "Unauthorized" })
      elseif lora and m.mode == "refuse" then
        reply(req, 404, { detail = "Not Found" })
      elseif req:path() == "/v1/load_lora_adapter" and m.mode == "error" then
        reply(req, 500, { error = { message = "CUDA out of memory while loading" } })
      elseif req:path() == "/v1/load_lora_adapter" then
        m.loaded[b.lora_name] = b.lora_path
        req:respond(200, { ["content-type"] = "text/plain" }, "Success: LoRA adapter '" .. b.lora_name .. "' added successfully.")
      elseif req:path() == "/v1/unload_lora_adapter" then
        if m.loaded[b.lora_name] then
          m.loaded[b.lora_name] = nil
          req:respond(200, { ["content-type"] = "text/plain" }, "Success")
        else
          reply(req, 404, { error = { message = "The lora adapter '" .. tostring(b.lora_name) .. "' cannot be found." } })
        end
      elseif req:path() == "/v1/models" then
        local data = { { id = "base", object = "model" } }
        for name in pairs(m.loaded) do data[#data + 1] = { id = name, object = "model", parent = "base" } end
        reply(req, 200, { object = "list", data = data })
      elseif req:path() == "/v1/chat/completions" then
        m.asked[#m.asked + 1] = b.model
        reply(req, 200, { id = "c", object = "chat.completion", model = b.model,
          choices = { { index = 0, message = { role = "assistant", content = "SET 5" }, finish_reason = "stop" } },
          usage = { prompt_tokens = 10, completion_tokens = 2 } })
      else
        reply(req, 404, { detail = "Not Found" })
      end
    end
  end)
  function m.close() srv:close() end
  return m
end

return M
