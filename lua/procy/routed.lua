-- procy.routed: a call a route sends elsewhere (procy.route decides),
-- made and recorded. To an Anthropic-compatible provider the call goes
-- as it came, its model replaced and the provider's key put in; to an
-- OpenAI-compatible one it is translated (procy.translate), and so is
-- the answer, event by event as it streams. The record (srv:record) holds
-- what the agent sent and got, and what the provider got and answered.

local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"
local store = require "procy.store"
local translate = require "procy.translate"

local M = {}

-- Never passed on: the proxy's own list (hop-by-hop, what curl sets, procy's token).
local skip = http.hop_by_hop

local function error_body(status, msg)
  return json.encode({ type = "error", error = { type = translate.error_types[status] or "api_error", message = msg } })
end

local function list_of(map)
  local out = {}
  for k, v in pairs(map or {}) do out[#out + 1] = { k, tostring(v) } end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end

-- The record of one routed call, filled in as it goes.
local function new_record(s, req, sum, route, rest, tag)
  return { session = tag, keyed = req:auth() ~= nil, method = "POST", path = rest, req_headers = req:headers(), req_body = req:body(),
           started_at = store.now_us(), t0 = core.now(), resp_headers = {}, resp_body = "",
           facts = { route = route.name, provider = route.provider.name, api = route.provider.api,
                     model = route.model or sum.model, asked = sum.model } }
end

local function finish(s, rec)
  rec.duration_us = math.floor((core.now() - rec.t0) * 1e6)
  rec.t0 = nil
  rec.routed = json.encode(rec.facts, { sort = true })
  rec.facts = nil
  local ok, err = s.srv:record(rec)
  if not ok then core.log("error", "routes: a routed call was not recorded: " .. tostring(err)) end
end

local function answer(req, rec, status, headers, body)
  rec.status, rec.resp_headers, rec.resp_body = status, headers, body
  local map = {}
  for _, h in ipairs(headers) do map[h[1]] = h[2] end
  req:respond(status, map, body)
end

local function fail(req, rec, status, msg)
  rec.error = rec.error or msg
  answer(req, rec, status, { { "content-type", "application/json" } }, error_body(status, "procy: " .. msg))
end

-- The key, or nil and why not.
local function key_of(p)
  if not p.key_env then return true end
  local k = os.getenv(p.key_env)
  if not k or k == "" then return nil, ("the provider %s needs its key in $%s, which is not set"):format(p.name, p.key_env) end
  return k
end

-- Reads an http.stream to its end: body, or nil, err, code (and what came).
local function read_all(st)
  local parts = {}
  while true do
    local d, err, code = st:read()
    if not d then
      if err then return nil, err, code, table.concat(parts) end
      return table.concat(parts)
    end
    parts[#parts + 1] = d
  end
end

local function stall(p) return p.timeout or require("procy.config").get().upstream_timeout end

-- The provider's answer begins: st, status, headers; or nil, the agent
-- answered with the failure.
local function call(req, rec, p, url, headers, body)
  rec.upstream, rec.up_req_body = url, body
  local st, status, rh = http.stream { method = "POST", url = url, headers = headers, body = body,
    connect_timeout = 30, stall_timeout = stall(p) }
  if not st then
    fail(req, rec, status == "ETIMEDOUT" and 504 or 502, "the provider " .. p.name .. " failed: " .. tostring(status))
    return nil
  end
  rec.ttfb_us = math.floor((core.now() - rec.t0) * 1e6)
  rec.facts.status = status
  return st, status, rh
end

-- ---- OpenAI-compatible -------------------------------------------------------------------

-- What a provider's model list (GET URL/models) says of each model's
-- limits: {out = the most it writes, ctx = its context}. vLLM names its
-- context max_model_len, OpenRouter context_length and
-- top_provider.max_completion_tokens, others max_output_tokens. Read
-- once per provider (again 5 minutes after a failure); callers that come
-- meanwhile wait for the first one's answer (10 s at most).
local LIST_RETRY, LIST_WAIT = 300, 10

local function model_list(p, key)
  local l = p.listed
  if l and (l.ok or core.now() - l.at < LIST_RETRY) then
    local deadline = core.now() + LIST_WAIT
    while l.busy and core.now() < deadline do core.sleep(0.05) end
    return l.models
  end
  l = { busy = true, at = core.now(), models = {} }
  p.listed = l
  local _ <close> = setmetatable({}, { __close = function() l.busy = false end }) -- an error or a cancel too
  local headers = { accept = "application/json" }
  for k, v in pairs(p.headers) do headers[k] = v end
  if key and key ~= true then headers.authorization = "Bearer " .. key end
  local list = require("procy.model").list(p.url .. "/models", headers, 10)
  for _, m in ipairs(list or {}) do
    local top = type(m.top_provider) == "table" and m.top_provider or {}
    l.models[m.id] = { out = tonumber(m.max_completion_tokens) or tonumber(m.max_output_tokens)
                         or tonumber(top.max_completion_tokens),
                       ctx = tonumber(m.max_model_len) or tonumber(m.context_length) or tonumber(m.context_window)
                         or tonumber(top.context_length) }
  end
  l.ok = list ~= nil -- a refusal or an error is tried again later
  return l.models
end

-- output_limit(p, model, tokens, key) -> the most the model may be asked
-- to write, or nil: the provider's max_output (a number, or by model),
-- else its model list's output limit, else its context less the request
-- (tokens: an estimate of its size)
local function output_limit(p, model, tokens, key)
  local mo = p.max_output
  if type(mo) == "number" then return mo end
  if type(mo) == "table" and tonumber(mo[model]) then return tonumber(mo[model]) end
  if not p.models then return nil end
  local m = model_list(p, key)[model]
  if not m then return nil end
  if m.out then return m.out end
  if m.ctx and m.ctx - tokens > 0 then return m.ctx - tokens end
end

-- The limit a provider's refusal names ("... supports at most 16384
-- completion tokens", vLLM's "... maximum context length is N tokens"
-- is not one): a second try asks for no more.
local function limit_refused(status, text)
  if status ~= 400 then return nil end
  local n = text:match("at most (%d+) completion tokens") or text:match("max_tokens is too large: %d+%. This model supports at most (%d+)")
  return tonumber(n)
end

local function to_openai(s, req, sum, route, rec)
  local p = route.provider
  if sum.count_tokens then -- chat completions has no count endpoint: an estimate
    rec.facts.estimate = true
    return answer(req, rec, 200, { { "content-type", "application/json" } }, json.encode(translate.count_tokens(sum.request)))
  end
  local key, why = key_of(p)
  if not key then return fail(req, rec, 401, why) end
  local model = rec.facts.model
  local reasoning = require("procy.route").reasoning(p, model)
  local opts = { model = model, reasoning = reasoning, max_tokens_field = p.max_tokens_field,
                 max_output = output_limit(p, model, sum.tokens, key) }
  local up, stops = translate.request(sum.request, opts)
  if #stops > 0 then rec.facts.stops_by_procy = #stops end
  local url = p.url .. "/chat/completions"
  local headers = { ["content-type"] = "application/json", accept = sum.stream and "text/event-stream" or "application/json" }
  for k, v in pairs(p.headers) do headers[k] = v end
  if key ~= true then headers.authorization = "Bearer " .. key end
  local st, status, rh, text, err
  for _ = 1, 2 do
    st, status, rh = call(req, rec, p, url, headers, json.encode(up))
    if not st then return end
    if status < 400 then break end
    text, err = read_all(st)
    st:close()
    rec.up_resp_body = text or ""
    if not text then return fail(req, rec, 502, "the provider " .. p.name .. " broke off: " .. tostring(err)) end
    local most = limit_refused(status, text)
    local field = p.max_tokens_field
    if not most or not up[field] or up[field] <= most then break end
    up[field], rec.facts.clamped = most, most -- asked too much: once more, asking what it allows
    text = nil
  end
  if text then
    rec.error = ("HTTP %d from %s"):format(status, p.name)
    return answer(req, rec, status, { { "content-type", "application/json" } }, json.encode(translate.error(status, text)))
  end
  local _ <close> = st
  local function noted(notes)
    for k, v in pairs(notes) do rec.facts[k] = v end
    if notes.invalid_tool_arguments then
      rec.error = rec.error or ("the provider's tool call arguments were not JSON: " .. table.concat(notes.invalid_tool_arguments, ", "))
    end
  end
  if not sum.stream then
    local err2
    text, err2 = read_all(st)
    rec.up_resp_body = text or ""
    if not text then return fail(req, rec, 502, "the provider " .. p.name .. " broke off: " .. tostring(err2)) end
    local v = json.decode(text)
    if type(v) ~= "table" then return fail(req, rec, 502, "the provider " .. p.name .. " answered no JSON object") end
    local msg, notes = translate.response(v, { model = sum.model, stops = stops })
    noted(notes)
    return answer(req, rec, 200, { { "content-type", "application/json" } }, json.encode(msg))
  end
  rec.status = 200
  rec.resp_headers = { { "content-type", "text/event-stream" }, { "cache-control", "no-cache" } }
  req:stream(200, { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" })
  local t = translate.stream { model = sum.model, stops = stops }
  local got, sent = {}, {}
  local function pass(out)
    if out == "" then return true end
    sent[#sent + 1] = out
    local ok = req:send(out)
    if not ok then
      rec.aborted, rec.error = true, "ECONNRESET: the client closed the connection"
      return false
    end
    return true
  end
  local broke
  while not t.cut do -- a stop sequence procy watches for ends the answer: read no more
    local d, err2 = st:read()
    if not d then broke = err2 break end
    got[#got + 1] = d
    if not pass(t:feed(d)) then break end
  end
  if not rec.aborted then
    if broke then
      rec.error = "the provider " .. p.name .. " broke off: " .. tostring(broke)
      pass('event: error\ndata: ' .. json.encode({ type = "error", error = { type = "api_error",
        message = "procy: " .. rec.error } }) .. "\n\n")
    else
      pass(t:finish())
    end
    req:finish()
  end
  noted(t.notes)
  rec.up_resp_body, rec.resp_body = table.concat(got), table.concat(sent)
end

-- ---- Anthropic-compatible ----------------------------------------------------------------

local function to_anthropic(s, req, sum, route, rec, query)
  local p = route.provider
  local key, why = key_of(p)
  if not key then return fail(req, rec, 401, why) end
  local body = req:body()
  if route.model and route.model ~= sum.model then
    sum.request.model = route.model
    body = json.encode(sum.request)
  end
  local headers = {}
  for _, h in ipairs(req:headers()) do
    local n = h[1]:lower()
    local ours = n == "authorization" and s.token and h[2] == "Bearer " .. s.token
    if not skip(n) and not ours and not (key ~= true and (n == "x-api-key" or n == "authorization")) then headers[n] = h[2] end
  end
  headers["accept-encoding"] = "identity" -- the bytes relayed are the bytes recorded
  for k, v in pairs(p.headers) do headers[k] = v end
  if key ~= true then headers["x-api-key"] = key end
  local url = p.url .. rec.path .. (query and ("?" .. query) or "")
  local st, status, rh = call(req, rec, p, url, headers, body)
  if not st then return end
  local _ <close> = st
  local out = {}
  for k, v in pairs(rh) do if not skip(k) then out[k] = v end end
  rec.status, rec.resp_headers = status, list_of(out)
  req:stream(status, out)
  local got = {}
  while true do
    local d, err = st:read()
    if not d then
      if err then rec.error = "the provider " .. p.name .. " broke off: " .. tostring(err) end
      break
    end
    got[#got + 1] = d
    if not req:send(d) then
      rec.aborted, rec.error = true, "ECONNRESET: the client closed the connection"
      break
    end
  end
  if not rec.aborted then req:finish() end
  rec.resp_body = table.concat(got)
  rec.up_resp_body = rec.resp_body
end

-- send(s, req, sum, route): makes the routed call for the request and
-- records it. s: the server (procy.serve's), with s.srv.
function M.send(s, req, sum, route)
  local rest, tag = require("procy.web").api_path(req:path())
  local rec = new_record(s, req, sum, route, rest, tag)
  local ok, err = pcall(route.provider.api == "openai" and to_openai or to_anthropic, s, req, sum, route, rec, req:query())
  if not ok then
    rec.error = "procy: the routed call failed: " .. tostring(err)
    core.log("error", "routes: " .. route.name .. ": " .. tostring(err))
    if not req:gone() then pcall(fail, req, rec, 502, rec.error) end
  end
  finish(s, rec)
end

return M
