-- procy.record.capture: turns the proxy's finished calls into the record. The
-- bytes went to the client in C; here, off that path, each call is
-- redacted, parsed and written: an api_calls row, its bodies as blobs,
-- and tool_calls linking every tool_use to the tool_result that answers it.
-- The rules are procy.redact's, the answer's parsers procy.record.answer's, what
-- a request says procy.record.request's; this file is the recording.
--
-- Parsed content is the same shape for every API: a list of blocks
-- {type = "text", text}, {type = "thinking", thinking, signature},
-- {type = "tool_use", id, name, input}, or a provider's own block (server
-- tools) kept as it came.

local json = require "procy.json"
local blobs = require "procy.blobs"
local prices = require "procy.prices"
local redact = require "procy.redact"
local answer = require "procy.record.answer"
local request = require "procy.record.request"

local M = {}

local parse = answer.parse
local str, num, tbl, EMPTY = answer.str, answer.num, answer.tbl, answer.EMPTY

local header, request_view = request.header, request.view
local prompt_of, role_of, results_in_request = request.prompt, request.role, request.results

local function text_of(content)
  local parts = {}
  for _, b in ipairs(content) do
    if type(b) == "table" and b.type == "text" and str(b.text) then parts[#parts + 1] = b.text end
  end
  return #parts > 0 and table.concat(parts, "\n") or nil
end

-- ---- recording -------------------------------------------------------------------

-- Gemini's calls: /v1beta/models/MODEL:VERB (v1, v1alpha too).
local function gemini_path(p)
  local model, verb = p:match("^/v1[a-z]*/models/([^/:]+):(%a+)$")
  if not model then model, verb = p:match("^/v1[a-z]*/tunedModels/([^/:]+):(%a+)$") end
  return model, verb
end

local function api_of(path)
  local p = path:match("^[^?]*")
  local _, verb = gemini_path(p)
  if verb == "generateContent" or verb == "streamGenerateContent" then return "gemini" end
  if p:match("^/v1/messages/?$") then return "anthropic" end
  if p:match("^/v1/chat/completions/?$") then return "openai-chat" end
  if p:match("^/v1/responses/?$") then return "openai-responses" end
  return "other"
end

local function rate_limits(list)
  local out, any = {}, false
  for _, h in ipairs(list) do
    local n = h[1]
    if n:find("^[aAxXrR]") then
      n = n:lower()
      if n:find("^anthropic%-ratelimit%-") or n:find("^x%-ratelimit%-") or n == "retry-after" then
        out[n], any = h[2], true
      end
    end
  end
  return any and json.encode(out, { sort = true }) or nil
end

local function error_text(e)
  if e == nil or e == json.null then return nil end
  if type(e) ~= "table" then return tostring(e) end
  local t, msg = e.type or e.code, e.message
  if (type(t) == "string" or math.type(t)) and type(msg) == "string" then return tostring(t) .. ": " .. msg end
  return json.encode(e)
end

-- Answers bigger than this are kept whole but not parsed: one call must
-- not hold the recorder (and every call behind it) for seconds.
M.parse_max = 16 << 20

-- prepare(call, store) -> the row to write. Redaction first, then, when
-- store is given (store(req_body) -> hash, info: blobs.put_body), the
-- request is stored and looked at through what that says; then the
-- answer is parsed. Nothing about the bodies' shape can make it raise:
-- what could not be parsed is said in row.parse_error.
function M.prepare(call, store)
  local api = api_of(call.path)
  local ctype = header(call.resp_headers, "content-type") or ""
  local stream = ctype:find("text/event-stream", 1, true) ~= nil
  local gemini_model, verb = gemini_path(call.path:match("^[^?]*"))
  local errors = {}
  local function guard(what, fn, ...)
    local ok, err = pcall(fn, ...)
    if not ok then errors[#errors + 1] = what .. ": " .. tostring(type(err) == "table" and err.err or err) end
    return ok
  end
  local row = {
    api = api, stream = stream, method = call.method, path = redact.url(call.path),
    upstream = redact.url(call.upstream or ""), status = call.status, started_at = call.started_at,
    ttfb_us = call.ttfb_us, duration_us = call.duration_us, aborted = call.aborted, tag = call.session,
    truncated = call.truncated, req_size = #call.req_body, resp_size = call.resp_total or #call.resp_body,
    req_headers = json.encode(redact.headers(call.req_headers)),
    resp_headers = json.encode(redact.headers(call.resp_headers)),
  }
  row.req_body = redact.text(call.req_body)
  local resp = call.resp_body
  local parsable = #resp <= M.parse_max
  -- A stream is split and decoded once, for its redaction and its parser.
  local events = stream and parsable and answer.events(resp) or nil
  if events and not guard("stream redaction", function() resp = answer.redact_stream(resp, events) end) then
    resp, events = call.resp_body, nil
  end
  -- Gemini's stream without alt=sse: one JSON array, a secret possibly
  -- split across its elements as across SSE events (parsed whole after)
  if not stream and parsable and verb == "streamGenerateContent" then
    guard("stream redaction", function()
      local elements = answer.array_events(resp)
      if elements then resp = answer.redact_stream(resp, elements) end
    end)
  end
  row.resp_body = redact.text(resp)
  if row.resp_body ~= resp then events = nil end -- the pattern pass changed it: parse what is kept
  local info
  if store then row.req_hash, info = store(row.req_body) end -- a database error goes up: the batch is retried
  local req
  if not guard("request", function() req = request_view(row.req_body, info) end) then req = nil end
  if not req and api ~= "other" and #row.req_body > 0 then
    errors[#errors + 1] = "request: not a JSON object"
  end
  req = req or {}
  local out = { content = {}, usage = {}, bad = 0, odd = 0, events = 0 }
  if not parsable then
    errors[#errors + 1] = ("answer: %d bytes, over the %d parsed"):format(#resp, M.parse_max)
  elseif guard("answer", parse[api], out, row.resp_body, stream, events) and api ~= "other" then
    if out.bad > 0 then
      errors[#errors + 1] = stream and ("answer: %d event(s) not JSON objects"):format(out.bad) or "answer: not JSON"
    elseif out.odd > 0 then
      errors[#errors + 1] = ("answer: %d part(s) of an unexpected shape left out"):format(out.odd)
    elseif stream and out.events == 0 and #row.resp_body > 0 then
      errors[#errors + 1] = "answer: a stream with no events"
    end
  end
  local model = str(req.model) or (gemini_model and gemini_model:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16)) end))
  local used = str(out.model) or model
  local u = out.usage
  row.model, row.routed_model = model, out.model ~= model and str(out.model) or nil
  -- A routed call (procy.routed): the provider's model is what it cost,
  -- and what that provider got and answered is kept beside the agent's.
  local routed = str(call.routed) and json.decode(call.routed)
  if type(routed) == "table" then
    row.route, row.provider, row.up_status = str(routed.route), str(routed.provider), num(routed.status)
    used = str(routed.model) or used
    row.routed_model = used ~= model and used or nil
    if call.up_req_body and call.up_req_body ~= "" then row.up_request = redact.text(call.up_req_body) end
    if call.up_resp_body and call.up_resp_body ~= "" then row.up_response = redact.text(call.up_resp_body) end
  end
  row.content = out.content
  row.stop_reason = str(out.stop_reason)
  if api == "gemini" then
    -- a function call's id, when the model gave none: where it will stand
    -- in the next request (procy.record.request.gemini_calls)
    local list = request.list(api, req)
    local at, seen, head = (type(list) == "table" and #list or 0) + 1, {}, request.thread(api, req).head
    for _, b in ipairs(out.content) do
      if type(b) == "table" and b.type == "tool_use" then
        local name = str(b.name) or "?"
        seen[name] = (seen[name] or 0) + 1
        b.call_id = b.id -- the model's own, if it gave one
        b.id = request.gemini_id(head, at, name, seen[name])
      end
    end
    row.stream = stream or verb == "streamGenerateContent"
  end
  row.input_tokens, row.output_tokens = u.input_tokens, u.output_tokens
  row.reasoning_tokens = u.reasoning_tokens
  row.usage = type(u.raw) == "table" and json.encode(u.raw, { sort = true }) or nil
  row.cache_creation_tokens, row.cache_read_tokens = u.cache_creation_tokens, u.cache_read_tokens
  guard("cost", function() row.cost = (u.input_tokens or u.output_tokens) and prices.cost(used, u) or nil end)
  row.ratelimit = rate_limits(call.resp_headers)
  row.error = str(call.error) or (num(call.status) and call.status >= 400 and (error_text(out.error) or ("HTTP " .. call.status)))
    or error_text(out.error)
  if row.truncated then
    row.error = (row.error and row.error .. "; " or "") ..
      ("response of %d bytes: the first %d kept"):format(row.resp_size, #call.resp_body)
  end
  guard("request analysis", function()
    row.role, row.prompt = role_of(req, call.req_headers), prompt_of(api, req)
    row.thread = request.thread(api, req)
    row.client_session = request.client_session(call.req_headers)
    row.results = results_in_request(api, req)
  end)
  row.results = row.results or {}
  row.text = text_of(row.content)
  row.tool_uses = 0
  for _, b in ipairs(row.content) do
    if type(b) == "table" and b.type == "tool_use" then row.tool_uses = row.tool_uses + 1 end
  end
  row.parse_error = #errors > 0 and table.concat(errors, "; ") or nil
  return row
end

-- Tool results already linked, by session and tool_use id: a result the
-- agent sends again (a retried request) costs no query.
local answered, answered_n = {}, 0

local function check(ok, err, code)
  if not ok then error({ err = err, code = code }) end
  return ok
end

local INSERT_CALL = [[INSERT INTO api_calls(session_id, method, path, upstream, status, model, routed_model,
    started_at, ttfb_us, duration_us, req_headers, resp_headers, req_body, resp_body, content,
    stop_reason, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, cost,
    ratelimit, error, api, stream, aborted, tag, req_size, resp_size, role, parse_error,
    route, provider, up_status, up_request, up_response, reasoning_tokens, usage)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
    ?, ?, ?, ?, ?, ?, ?) RETURNING id]]

-- write(db, row, session) -> api_calls id. Inside a transaction; raises
-- {err =, code =} on a database error.
function M.write(db, row, session)
  local req_hash = row.req_hash or blobs.put_body(db, row.req_body)
  local resp_hash = blobs.put(db, row.resp_body)
  local inserted, ierr, icode = db:query(INSERT_CALL,
    session, row.method, row.path, row.upstream, num(row.status), row.model, row.routed_model,
    num(row.started_at) or 0, num(row.ttfb_us), num(row.duration_us), row.req_headers, row.resp_headers,
    req_hash, resp_hash, json.encode(json.array(row.content)), row.stop_reason, num(row.input_tokens),
    num(row.output_tokens), num(row.cache_creation_tokens), num(row.cache_read_tokens), num(row.cost),
    row.ratelimit, str(row.error), row.api, row.stream and 1 or 0, row.aborted and 1 or 0, row.tag,
    row.req_size or #row.req_body, row.resp_size or #row.resp_body, row.role, row.parse_error,
    row.route, row.provider, row.up_status, row.up_request and blobs.put(db, row.up_request),
    row.up_response and blobs.put(db, row.up_response), num(row.reasoning_tokens), row.usage)
  check(inserted, ierr, icode)
  local id = inserted[1].id
  local ended = (num(row.started_at) or 0) + (num(row.duration_us) or 0)
  -- results first: a tool_use this call asks for cannot be answered by it
  for _, r in ipairs(row.results) do
    local k = tostring(session) .. "\0" .. r.id
    if not answered[k] then
      local n = check(db:exec([[UPDATE tool_calls SET result = ?, is_error = ?, result_call_id = ?, ended_at = ?
                                WHERE session_id IS ? AND tool_use_id = ? AND result_call_id IS NULL]],
        r.text, r.is_error and 1 or 0, id, row.started_at, session, r.id))
      if n == 0 and #db:query("SELECT 1 FROM tool_calls WHERE session_id IS ? AND tool_use_id = ?", session, r.id) == 0 then
        local use = r.find() or {} -- asked for before procy saw the conversation
        check(db:exec([[INSERT INTO tool_calls(session_id, tool_use_id, name, input, result, is_error, result_call_id, ended_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)]], session, r.id, use.name or "?", json.encode(use.input),
          r.text, r.is_error and 1 or 0, id, row.started_at))
      end
      if answered_n >= 100000 then answered, answered_n = {}, 0 end
      answered[k], answered_n = true, answered_n + 1
    end
  end
  for _, b in ipairs(row.content) do
    local tid = type(b) == "table" and b.type == "tool_use" and str(b.id)
    if tid then
      local name, input = str(b.name) or "?", json.encode(b.input)
      local n = check(db:exec([[UPDATE tool_calls SET api_call_id = ?, name = ?, input = ?, started_at = ?
                                WHERE session_id IS ? AND tool_use_id = ?]], id, name, input, ended, session, tid))
      if n == 0 then
        check(db:exec([[INSERT INTO tool_calls(session_id, tool_use_id, name, input, api_call_id, started_at)
                        VALUES (?, ?, ?, ?, ?, ?)]], session, tid, name, input, id, ended))
      end
    end
  end
  return id
end

-- write_raw(db, call, session, why) -> api_calls id: a call whose record
-- could not be made the usual way, kept with its bytes (redacted) and why.
function M.write_raw(db, call, session, tag, why)
  local function safe(fn, ...)
    local ok, v = pcall(fn, ...)
    return ok and v or nil
  end
  local function body(b)
    return safe(redact.text, b) or ("procy: this body was not kept: redacting it failed: " .. tostring(select(2, pcall(redact.text, b))))
  end
  local req_body, resp_body = body(call.req_body), body(call.resp_body)
  local inserted, err, code = db:query([[INSERT INTO api_calls(session_id, method, path, upstream, status, started_at,
      ttfb_us, duration_us, req_headers, resp_headers, req_body, resp_body, error, api, aborted, tag, req_size,
      resp_size, parse_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id]],
    session, call.method, safe(redact.url, call.path) or "?", safe(redact.url, call.upstream or ""), num(call.status),
    num(call.started_at) or 0, num(call.ttfb_us), num(call.duration_us),
    safe(function() return json.encode(redact.headers(call.req_headers)) end) or "[]",
    safe(function() return json.encode(redact.headers(call.resp_headers)) end) or "[]",
    blobs.put(db, req_body), blobs.put(db, resp_body), str(call.error), safe(api_of, call.path),
    call.aborted and 1 or 0, tag, #call.req_body, #call.resp_body, why)
  check(inserted, err, code)
  return inserted[1].id
end

-- ---- the recorder thread ---------------------------------------------------------

local known = {}

-- The session a call belongs to: its /s/ID/ prefix when that names a
-- session and the request showed that session's key (or the person's
-- token), else the default one (and the prefix is kept as its tag): a
-- client cannot file calls under another session by naming it.
local function session_of(db, tag, default, keyed)
  if not tag then return default, nil end
  if not keyed then return default, tag end
  if known[tag] == nil then
    known[tag] = #db:query("SELECT 1 FROM sessions WHERE id = ?", tag) > 0
  end
  if known[tag] then return tag, nil end
  return default, tag
end

-- A database failure that may pass (a lock, a full disk, I/O): the batch
-- is kept and tried again. Anything else is the call's own fault.
local passing = { SQLITE_BUSY = true, SQLITE_LOCKED = true, SQLITE_FULL = true, SQLITE_IOERR = true,
  SQLITE_NOMEM = true, SQLITE_PROTOCOL = true, SQLITE_CANTOPEN = true, SQLITE_READONLY = true,
  SQLITE_INTERRUPT = true, SQLITE_ABORT = true }
local function db_failure(e) return type(e) == "table" and passing[e.code] and e end

local function summary(row)
  return { id = row.id, session = row.session, tag = row.tag, api = row.api,
    method = row.method, path = row.path, status = row.status, model = row.model,
    started_at = row.started_at, ttfb_us = row.ttfb_us, duration_us = row.duration_us,
    stop_reason = row.stop_reason, input_tokens = row.input_tokens, output_tokens = row.output_tokens,
    cache_creation_tokens = row.cache_creation_tokens, cache_read_tokens = row.cache_read_tokens,
    reasoning_tokens = row.reasoning_tokens, cost = row.cost,
    -- the conversation it carries, for procy.turns (a summary's values are scalars)
    thread_n = row.thread and row.thread.n, thread_head = row.thread and row.thread.head,
    thread_tools = row.thread and row.thread.tools, thread_sig = row.thread and row.thread.sig,
    client_session = row.client_session, error = row.error, aborted = row.aborted, role = row.role, prompt = row.prompt,
    text = row.text, tool_uses = row.tool_uses, parse_error = row.parse_error, route = row.route,
    provider = row.provider, routed_model = row.routed_model }
end

-- One call, in a savepoint of its own: it never costs another its row.
local function record_one(db, default, call)
  local session, tag = session_of(db, call.session, default, call.keyed)
  local ok, row = pcall(db.transaction, db, function()
    local r = M.prepare(call, function(b) return blobs.put_body(db, b) end)
    r.session, r.tag = session, tag
    r.id = M.write(db, r, session)
    return r
  end)
  if ok and row then return summary(row) end
  local e = db_failure(row)
  if e then error(e) end
  local why = "procy could not record this call: " .. tostring(type(row) == "table" and row.err or row)
  local ok2, id = pcall(db.transaction, db, function() return M.write_raw(db, call, session, tag, why) end)
  if ok2 and id then
    return { id = id, session = session, tag = tag, method = call.method, status = call.status,
      started_at = call.started_at, duration_us = call.duration_us, parse_error = why, error = str(call.error) }
  end
  e = db_failure(id)
  if e then error(e) end
  return { not_recorded = 1, error = why .. "; and its raw record failed: " .. tostring(type(id) == "table" and id.err or id) }
end

-- record(db, default_session, calls) -> {summary, ...} | nil, err, code:
-- the calls in one transaction, each in its own savepoint. A call that
-- cannot be parsed is written with what could be, and marked; one whose
-- record fails for any other reason is written raw. A database failure
-- that may pass (busy, full, I/O) fails the whole batch: nothing of it is
-- kept, and the caller tries it again.
function M.record(db, default, calls)
  local out = {}
  local ok, done, err, code = pcall(db.transaction, db, function()
    for i, call in ipairs(calls) do out[i] = record_one(db, default, call) end
    return true
  end)
  if ok and done then return out end
  if ok then return nil, err, code end
  local e = type(done) == "table" and done or { err = tostring(done), code = "EFAULT" }
  return nil, tostring(e.err), e.code
end

-- worker(settings) -> function(calls) -> summaries | nil, err, code. Runs
-- on the recorder thread (runtime/api_record.c), in a Lua state of its own
-- with procy.json, procy.db, procy.hash and procy.blobs only. settings
-- (JSON): db, session, redact, prices, as the server was given them.
function M.worker(settings)
  local s = assert(json.decode(settings))
  redact.settings = { redact = s.redact }
  prices.extra = s.prices or {}
  -- a short busy wait: a refusal is reported and tried again (api_record.c)
  local h = assert(require("procy.db").open(s.db, { migrations = false, busy_timeout = 0.5,
    redact = redact.boundary() })) -- the record's write boundary, as procy.store's
  -- this connection writes in batches and checkpoints itself (api_record.c)
  h:exec("PRAGMA wal_autocheckpoint = 0")
  -- a page cache of 2 MB: what the blob lookups touch again (the index's
  -- upper pages); rows are appended, their pages not read again
  h:exec("PRAGMA cache_size = -2048")
  return function(calls) return M.record(h, s.session, calls) end, function(idle)
    h:exec("PRAGMA wal_checkpoint(PASSIVE)")
    if idle then h:exec("PRAGMA shrink_memory") end -- the page cache, until the next call
  end
end

return M
