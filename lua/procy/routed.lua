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
  return { session = tag, method = "POST", path = rest, req_headers = req:headers(), req_body = req:body(),
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

local function to_openai(s, req, sum, route, rec)
  local p = route.provider
  if sum.count_tokens then -- chat completions has no count endpoint: an estimate
    rec.facts.estimate = true
    return answer(req, rec, 200, { { "content-type", "application/json" } }, json.encode(translate.count_tokens(sum.request)))
  end
  local key, why = key_of(p)
  if not key then return fail(req, rec, 401, why) end
  local body = json.encode(translate.request(sum.request, { model = rec.facts.model, reasoning = p.reasoning }))
  local url = p.url .. "/chat/completions"
  local headers = { ["content-type"] = "application/json", accept = sum.stream and "text/event-stream" or "application/json" }
  for k, v in pairs(p.headers) do headers[k] = v end
  if key ~= true then headers.authorization = "Bearer " .. key end
  local st, status, rh = call(req, rec, p, url, headers, body)
  if not st then return end
  local _ <close> = st
  if status >= 400 or not sum.stream then
    local text, err = read_all(st)
    rec.up_resp_body = text or ""
    if not text then return fail(req, rec, 502, "the provider " .. p.name .. " broke off: " .. tostring(err)) end
    if status >= 400 then
      rec.error = ("HTTP %d from %s"):format(status, p.name)
      return answer(req, rec, status, { { "content-type", "application/json" } }, json.encode(translate.error(status, text)))
    end
    local v = json.decode(text)
    if type(v) ~= "table" then return fail(req, rec, 502, "the provider " .. p.name .. " answered no JSON object") end
    return answer(req, rec, 200, { { "content-type", "application/json" } },
      json.encode(translate.response(v, { model = sum.model })))
  end
  rec.status = 200
  rec.resp_headers = { { "content-type", "text/event-stream" }, { "cache-control", "no-cache" } }
  req:stream(200, { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" })
  local t = translate.stream { model = sum.model }
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
  while true do
    local d, err = st:read()
    if not d then broke = err break end
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
