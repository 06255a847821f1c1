-- procy.model: one call to the proxy model, the model that writes prompts
-- for the agent. OpenAI-compatible /v1/chat/completions (vLLM, Ollama,
-- llama.cpp's server, OpenAI) or Anthropic /v1/messages, over procy.http.
--
-- The answer is parsed by procy.record.capture, the same code that reads the
-- agent's own calls, and the call is recorded as an API call of role
-- "proxy-model" (redacted like every other). Reasoning (<think>...</think>,
-- thinking blocks) never reaches the caller's text.

local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"

local M = {}

-- Which statuses and failures are worth another attempt.
local retry_status = { [408] = true, [409] = true, [425] = true, [429] = true, [500] = true,
  [502] = true, [503] = true, [504] = true, [529] = true }
local retry_code = { ECONNREFUSED = true, ECONNRESET = true, ETIMEDOUT = true, EHOSTUNREACH = true,
  EPROTO = true, EHTTP = true }

-- endpoint("http://h:8000", "openai") -> "http://h:8000/v1/chat/completions", "/v1/chat/completions"
-- A URL that already names the endpoint, or ends in /v1, is completed, not doubled.
function M.endpoint(url, api)
  local tail = api == "anthropic" and "/v1/messages" or "/v1/chat/completions"
  url = url:gsub("/+$", "")
  if url:sub(-#tail) == tail then return url, tail end
  if url:match("/v1$") then return url .. tail:sub(4), tail end
  return url .. tail, tail
end

-- strip(text) -> the text without reasoning: <think>...</think> blocks,
-- and everything up to a </think> whose opening the server left out.
function M.strip(text)
  text = text:gsub("<think>.-</think>", "")
  local close = text:find("</think>", 1, true)
  if close then text = text:sub(close + 8) end
  local open = text:find("<think>", 1, true)
  if open then text = text:sub(1, open - 1) end -- never closed: all reasoning
  return (text:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- retry-after: seconds, or an HTTP date
local function retry_after(v)
  if not v then return nil end
  local n = tonumber(v)
  if n then return n end
  local months = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
    Oct = 10, Nov = 11, Dec = 12 }
  local d, mon, y, h, mi, s = v:match("%a+, (%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT")
  if not d or not months[mon] then return nil end
  -- os.time reads a table as local time; the difference to UTC is measured
  local t = os.time { year = y, month = months[mon], day = d, hour = h, min = mi, sec = s }
  local now = os.time()
  local utc_now = os.time(os.date("!*t", now))
  return math.max(0, t - (utc_now - now) - now)
end

local function request_body(messages, o)
  local body = { model = o.model, messages = {}, max_tokens = o.max_tokens, temperature = o.temperature,
    stream = o.stream or nil }
  if o.api == "anthropic" then
    for _, m in ipairs(messages) do
      if m.role == "system" then body.system = (body.system and body.system .. "\n\n" or "") .. m.content
      else body.messages[#body.messages + 1] = { role = m.role, content = m.content } end
    end
    body.max_tokens = body.max_tokens or 1024
  else
    for _, m in ipairs(messages) do body.messages[#body.messages + 1] = { role = m.role, content = m.content } end
    if o.stream then body.stream_options = { include_usage = true } end
  end
  for k, v in pairs(o.extra or {}) do body[k] = v end
  return json.encode(body)
end

local function headers_of(o)
  local h = { ["content-type"] = "application/json" }
  local key = o.key or (o.key_env and os.getenv(o.key_env))
  if o.api == "anthropic" then
    h["anthropic-version"] = "2023-06-01"
    if key and key ~= "" then h["x-api-key"] = key end
  elseif key and key ~= "" then
    h.authorization = "Bearer " .. key
  end
  for k, v in pairs(o.headers or {}) do h[k:lower()] = v end
  return h
end

local function list(map)
  local out = {}
  for k, v in pairs(map or {}) do out[#out + 1] = { k, v } end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end

-- One HTTP exchange: status, headers, body, or nil, err, code.
local function exchange(url, headers, body, o)
  if not o.stream then
    local r, err, code = http.request { method = "POST", url = url, headers = headers, body = body,
      timeout = o.timeout, connect_timeout = o.connect_timeout or 10 }
    if not r then return nil, err, code end
    return r.status, r.headers, r.body
  end
  local s, status, rh = http.stream { method = "POST", url = url, headers = headers, body = body,
    connect_timeout = o.connect_timeout or 10, stall_timeout = o.timeout }
  if not s then return nil, status, rh end
  local _ <close> = s
  local parts = {}
  while true do
    local data, err, code = s:read()
    if not data then
      if err then return nil, err, code end
      break
    end
    parts[#parts + 1] = data
    if o.on_data then o.on_data(data) end
  end
  return status, rh, table.concat(parts)
end

local function record(call, row, session)
  local store = require "procy.store"
  local db = store.open()
  if not db then return nil end
  row.role = "proxy-model"
  local ok, id = pcall(db.transaction, db, function()
    return require("procy.record.capture").write(db, row, session)
  end)
  if not ok then
    core.log("warn", "the proxy-model call was not recorded: " .. tostring(type(id) == "table" and id.err or id))
    return nil
  end
  return id
end

-- server_url(url) -> the server's base, as the record keys it (no /v1)
function M.server_url(url)
  return (tostring(url or ""):gsub("/+$", ""):gsub("/v1$", ""))
end

-- serving(url) -> what procy asks url's server for, when a deploy said:
-- {adapter = NAME or nil (the base model), set_at, set_by}; nil when no
-- deploy ever did (then the `model` setting's adapter holds)
function M.serving(url)
  local ok, h = pcall(require("procy.store").open)
  return ok and h and h:query("SELECT * FROM serving WHERE url = ?", M.server_url(url))[1] or nil
end

-- serve(url, adapter, by): from now on procy asks url's server for
-- adapter (nil: its base model)
function M.serve(url, adapter, by)
  require("procy.store").open():exec([[INSERT INTO serving(url, adapter, set_at, set_by) VALUES (?, ?, ?, ?)
    ON CONFLICT(url) DO UPDATE SET adapter = excluded.adapter, set_at = excluded.set_at, set_by = excluded.set_by]],
    M.server_url(url), adapter, require("procy.store").now_us(), by)
end

-- list(url, [headers], [timeout]) -> the entries (tables with a string
-- id) of the model list at url (an OpenAI-style GET .../models: {data =
-- [...]}) | nil, err, code: what vLLM, OpenRouter, Ollama and OpenAI say
-- they serve, with whatever they say of each (limits, parents)
function M.list(url, headers, timeout)
  local r, err, code = require("procy.http").request { url = url, headers = headers, timeout = timeout or 30 }
  if not r then return core.wrap("listing the models at " .. url, err, code) end
  if r.status == 401 or r.status == 403 then
    return core.fail("EAUTH", ("%s refused procy (%d)"):format(url, r.status))
  end
  if r.status ~= 200 then return core.fail("EHTTP", ("%s answered %d: %s"):format(url, r.status, r.body:sub(1, 200))) end
  local v = json.decode(r.body)
  if type(v) ~= "table" or type(v.data) ~= "table" then return core.fail("EJSON", url .. " answered no model list") end
  local out = {}
  for _, m in ipairs(v.data) do
    if type(m) == "table" and type(m.id) == "string" then out[#out + 1] = m end
  end
  return out
end

-- headers(o) -> the headers a call to the model server o describes
-- carries: its key (o.key_env's variable) as the server's API wants it
function M.headers(o)
  return headers_of(o)
end

-- adapter_sha256(o) -> the digest procy train deploy took of the adapter
-- o.adapter names on o.url's server, or nil
function M.adapter_sha256(o)
  if not o.adapter then return nil end
  local ok, h = pcall(require("procy.store").open)
  local row = ok and h and h:query("SELECT sha256 FROM adapters WHERE name = ? AND url = ?", o.adapter, M.server_url(o.url))[1]
  return row and row.sha256 or nil
end

-- Hosted models by name: "PROVIDER:NAME" is that provider's model through
-- the upstream procy sends the agent's calls to and the person's own key.
local hosted = {
  anthropic = { setting = "upstream", api = "anthropic", key_env = "ANTHROPIC_API_KEY" },
  openai = { setting = "openai_upstream", api = "openai", key_env = "OPENAI_API_KEY" },
}

-- resolve(m) -> the model setting m, a hosted name ("anthropic:NAME",
-- "openai:NAME" in name) completed with its url, api and key_env (what m
-- says itself wins); any other m as it is ("ft:gpt-4o:..." is a name)
function M.resolve(m)
  m = m or {}
  local provider, rest = tostring(m.name or m.model or ""):match("^(%a+):(.+)$")
  local h = provider and hosted[provider]
  if not h then return m end
  local out = {}
  for k, v in pairs(m) do out[k] = v end
  out.name, out.model = rest, nil
  out.url = (out.url and out.url ~= "") and out.url or require("procy.config").get()[h.setting]
  out.api, out.key_env = out.api or h.api, out.key_env or h.key_env
  out.hosted = provider
  return out
end

-- settings() -> the `model` setting with --model-url folded in (a hosted
-- name resolved), or nil, why
function M.settings()
  local cfg = require("procy.config").get()
  local m = M.resolve(cfg.model)
  if not m.url or m.url == "" then
    return core.fail("ENOMODEL", "no proxy model is configured: set model = { url = \"http://127.0.0.1:8000\", "
      .. "name = \"MODEL\", api = \"openai\" } in procy.lua, or pass --model-url URL "
      .. "(an OpenAI-compatible server: vLLM, Ollama, llama.cpp; or api = \"anthropic\"), or a hosted model "
      .. "through your key: model = \"anthropic:claude-haiku-4-5\"")
  end
  return m
end

-- chat(messages, opts) -> text, info | nil, err, code
-- messages: {{role = "system"|"user"|"assistant", content = "..."}, ...}
-- opts (over the `model` setting): url, model (or name), api ("openai" |
-- "anthropic"), temperature, max_tokens, stream, timeout (per attempt, s),
-- retries (default 4), backoff (first wait, s; default 1), max_wait (cap
-- per wait, default 30), key or key_env, headers, extra (more body
-- fields), session (whose record the call joins), on_data(bytes).
-- info: {model, usage = {input_tokens, output_tokens}, raw (the text with
-- its reasoning), call (api_calls id), attempts, duration}
function M.chat(messages, opts)
  local o = {}
  local base = M.resolve(require("procy.config").get().model)
  for k, v in pairs(base) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  -- what a deploy made current on this server (!deploy trained|base)
  -- holds over the setting's adapter; a caller's own choice over both
  local served = (opts or {}).adapter == nil and M.serving(o.url)
  if served then o.adapter = served.adapter end
  -- an adapter served under its own name (vLLM's LoRA) is asked for by it
  o.model = o.adapter or o.model or o.name
  o.api = o.api or "openai"
  if o.api ~= "openai" and o.api ~= "anthropic" then error("model api must be \"openai\" or \"anthropic\"", 2) end
  if not o.url or o.url == "" then
    local _, why = M.settings()
    return nil, "ENOMODEL: " .. why, "ENOMODEL"
  end
  if not o.model then o.model = "default" end
  local url, path = M.endpoint(o.url, o.api)
  local headers, body = headers_of(o), request_body(messages, o)
  local retries, wait = o.retries or 4, o.backoff or 1
  local t0, attempt, last_err, last_code = core.now(), 0, nil, nil
  while true do
    attempt = attempt + 1
    local started = require("procy.store").now_us()
    local a0 = core.now()
    local status, rh, rbody = exchange(url, headers, body, o)
    local call = { method = "POST", path = path, upstream = o.url, req_headers = list(headers),
      req_body = body, started_at = started, duration_us = math.floor((core.now() - a0) * 1e6) }
    local retryable, after
    if not status then
      last_err, last_code = rh, rbody
      retryable = retry_code[rbody] or false
      call.error, call.resp_headers, call.resp_body = rh, {}, ""
      call.status = nil
    else
      call.status, call.resp_headers, call.resp_body = status, list(rh), rbody
      retryable = retry_status[status] or false
      after = retry_after(rh["retry-after"])
    end
    local row = require("procy.record.capture").prepare(call)
    local id = record(call, row, o.session)
    if status and status < 300 and not row.error then
      local raw = {}
      for _, b in ipairs(row.content) do
        if b.type == "text" and type(b.text) == "string" then raw[#raw + 1] = b.text end
      end
      raw = table.concat(raw)
      return M.strip(raw), { model = o.model, adapter = o.adapter, adapter_sha256 = M.adapter_sha256(o),
        raw = raw, call = id, attempts = attempt,
        duration = core.now() - t0, usage = { input_tokens = row.input_tokens or 0,
          output_tokens = row.output_tokens or 0 } }
    end
    if status then
      last_code = status == 429 and "ERATELIMIT" or "EHTTP"
      last_err = ("%s: the proxy model at %s answered %d: %s"):format(last_code, url, status,
        tostring(row.error or ""):sub(1, 300))
    end
    if not retryable or attempt > retries then
      if attempt > 1 then last_err = last_err .. (" (after %d attempts)"):format(attempt) end
      return nil, last_err, last_code
    end
    -- exponential backoff with full jitter; retry-after wins when given
    local pause = after or (wait * 2 ^ (attempt - 1)) * (0.5 + math.random() / 2)
    pause = math.min(pause, o.max_wait or 30)
    core.log("info", ("proxy model: %s; retry %d of %d in %.1fs"):format(last_err, attempt, retries, pause))
    core.sleep(pause)
  end
end

return M
