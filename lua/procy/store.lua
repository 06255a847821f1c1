-- procy.store: procy's own record, the SQLite file named by the `db`
-- setting. The queries the app needs live here, in one place.

local core = require "procy.core"
local db = require "procy.db"
local json = require "procy.json"
local config = require "procy.config"

local M = {}

local handle

-- path() -> the record's file name
function M.path()
  return config.get().db
end

-- Commands that only read the record (sessions, show, usage, ...) set
-- this first: the record is then opened read-only, a missing one is not
-- created, and a file procy may not write still reads.
M.read_only = false

-- open() -> db | nil, err, code. One connection per process, opened on
-- first use with procy's migrations applied (read-only: checked).
function M.open()
  if handle then return handle end
  local h, err, code
  if M.read_only then
    h, err, code = db.open(M.path(), { readonly = true, redact = require("procy.redact").boundary() })
  else
    -- the record's directory is made when missing (0700): said, not silent
    local dir = M.path():match("^(.*)/[^/]*$")
    local made = dir and dir ~= "" and not require("procy.fs").stat(dir)
    -- the write boundary: nothing secret is written, whatever the table
    h, err, code = db.open(M.path(), { redact = require("procy.redact").boundary() })
    if h and made then core.log("info", "made the directory " .. dir .. " for the record (setting 'db')") end
  end
  if not h then return nil, err, code end
  handle = h
  if not M.read_only then pcall(M.reap) end
  return h
end

-- process_id(pid) -> "BOOT:START", pid: what names that process for good
-- (the boot, and its start time in clock ticks), or nil when no such
-- process runs: a pid alone may be reused. pid "self": procy itself.
function M.process_id(pid)
  local f = io.open("/proc/" .. tostring(pid) .. "/stat", "rb")
  if not f then return nil end
  local stat = f:read("a")
  f:close()
  local fields = {}
  for w in (stat:match("%) (.*)$") or ""):gmatch("%S+") do fields[#fields + 1] = w end -- after the name, which may hold spaces
  local b = io.open("/proc/sys/kernel/random/boot_id", "rb")
  local boot = b and b:read("l") or "?"
  if b then b:close() end
  if not fields[20] or fields[1] == "Z" then return nil end -- a zombie runs no more (an init that reaps late)
  return boot .. ":" .. fields[20], math.tointeger(tonumber(stat:match("^(%d+)")))
end

-- reap(): sessions left 'running' by a procy that is gone (kill -9, a
-- crash, a power loss) end as 'crashed', at their last recorded moment.
-- Runs when the record is first opened for writing.
function M.reap()
  local h = handle
  for _, r in ipairs(h:query("SELECT id, pid, pid_start, started_at FROM sessions WHERE status = 'running' AND pid IS NOT NULL")) do
    if M.process_id(r.pid) ~= r.pid_start then
      local last = h:query([[SELECT max(t) AS t FROM (
          SELECT max(t) AS t FROM term_events WHERE session_id = ?1
          UNION ALL SELECT max(started_at + coalesce(duration_us, 0)) FROM api_calls WHERE session_id = ?1)]], r.id)[1].t
      -- its byte counts, which a clean end writes, from what it recorded
      local sum = M.event_summary(r.id)
      -- the terminal recorder's ballast, left by a procy that could not end
      os.remove(M.path() .. "-reserve-" .. r.id)
      local lost = M.loss_note(r.id)
      h:exec([[UPDATE sessions SET status = 'crashed', ended_at = ?, end_reason = ?, bytes_in = ?, bytes_out = ?
               WHERE id = ? AND status = 'running']], last or r.started_at,
        ("procy (pid %d) ended without closing it (killed, crashed, or its disk full): the record ends at its last event%s")
          :format(r.pid, lost and ("; " .. lost) or ""),
        sum.input_bytes, sum.output_bytes, r.id)
    end
  end
end

-- lose(session, what, count, bytes, error): what the record could not
-- keep, counted ("api_call" or "output")
function M.lose(session, what, count, bytes, err)
  local h, e, code = M.open()
  if not h then return nil, e, code end
  return h:exec("INSERT INTO losses(session_id, t, what, count, bytes, error) VALUES (?, ?, ?, ?, ?, ?)",
    session, M.now_us(), what, count, bytes, err)
end

-- losses(session) -> {api_calls =, output_events =, output_bytes =}
function M.losses(session)
  local r = M.open():query([[SELECT coalesce(sum(CASE WHEN what = 'api_call' THEN count END), 0) AS api_calls,
      coalesce(sum(CASE WHEN what = 'output' THEN count END), 0) AS output_events,
      coalesce(sum(CASE WHEN what = 'output' THEN bytes END), 0) AS output_bytes
    FROM losses WHERE session_id = ?]], session)[1]
  return r
end

-- counts() -> { table_name = rows } for the record's main tables
function M.counts()
  local h, err, code = M.open()
  if not h then return nil, err, code end
  local out = {}
  for _, name in ipairs { "sessions", "term_events", "turns", "api_calls", "tool_calls", "blobs" } do
    out[name] = h:query("SELECT count(*) AS n FROM " .. name)[1].n
  end
  return out
end

-- now_us() -> microseconds since the epoch, the record's clock
function M.now_us()
  return math.floor(core.time() * 1e6)
end

-- random_hex(bytes) -> that many random bytes as hex: ids, tokens, keys
function M.random_hex(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(n)
  f:close()
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- event(session, kind, data): one term_events row, now (what an agent
-- without procy's pty relay writes: headless lines, its own terminal)
function M.event(session, kind, data)
  return M.open():exec("INSERT INTO term_events(session_id, t, kind, data) VALUES (?, ?, ?, ?)",
    session, M.now_us(), kind, require("procy.db").blob(data))
end

-- ---- sessions ----------------------------------------------------------

-- new_session{argv =, cwd =, cols =, rows =, profile =, mode =, term =} -> id | nil, err, code
-- term: the TERM the agent's terminal had (an export's header says it)
function M.new_session(s)
  local h, err, code = M.open()
  if not h then return nil, err, code end
  local id = M.random_hex(8)
  local me, pid = M.process_id("self")
  local ok, ierr, icode = h:exec([[INSERT INTO sessions(id, started_at, cwd, argv, profile, mode, cols, rows, pid, pid_start,
                                   meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
    id, M.now_us(), s.cwd, json.encode(s.argv), s.profile, s.mode or "pty", s.cols, s.rows, pid, me,
    s.term and json.encode { term = s.term } or nil)
  if not ok then return nil, ierr, icode end
  return id
end

-- reopen_session(id): running again (procy --resume)
function M.reopen_session(id)
  local me, pid = M.process_id("self")
  return M.open():exec([[UPDATE sessions SET status = 'running', ended_at = NULL, end_reason = NULL, pid = ?,
                           pid_start = ? WHERE id = ?]], pid, me, id)
end

-- agent_session(id, agent_id): the agent's own session id, for resuming it
function M.agent_session(id, agent_id)
  if not M.agent_id(agent_id) then
    require("procy.core").log("warn", ("session %s: the agent said its session id is %q, which is none: not kept")
      :format(tostring(id):sub(1, 8), tostring(agent_id):sub(1, 80)))
    return nil
  end
  return M.open():exec("UPDATE sessions SET agent_session_id = ? WHERE id = ?", agent_id, id)
end

-- agent_id(id) -> id when it can be an agent's own session id (letters,
-- digits, - and _; a UUID), else nil. It becomes an argument of the
-- agent's command line (--resume ID, resume ID), sometimes outside any
-- sandbox (procy fork): what a sandboxed agent reports through its hooks
-- must never be an option.
function M.agent_id(id)
  return type(id) == "string" and #id <= 128 and id:match("^[%w][%w_%-]*$") and id or nil
end

-- end_session(id, {status =, code =, signal =, bytes_in =, bytes_out =})
function M.end_session(id, e)
  return M.open():exec([[UPDATE sessions SET ended_at = ?, status = ?, exit_code = ?, exit_signal = ?,
                           bytes_in = bytes_in + ?, bytes_out = bytes_out + ?, end_reason = coalesce(?, end_reason)
                         WHERE id = ?]],
    M.now_us(), e.status, e.code, e.signal, e.bytes_in or 0, e.bytes_out or 0, M.loss_note(id), id)
end

-- loss_note(id) -> what the record could not keep of a session, as its
-- end_reason says it, or nil when it kept everything
function M.loss_note(id)
  local l = M.losses(id)
  local parts = {}
  if l.output_events > 0 then
    parts[#parts + 1] = ("%d terminal event(s), %d bytes of output, could not be recorded (see its gap events)")
      :format(l.output_events, l.output_bytes)
  end
  if l.api_calls > 0 then parts[#parts + 1] = ("%d API call(s) could not be recorded"):format(l.api_calls) end
  return #parts > 0 and table.concat(parts, "; ") or nil
end

local function decode_session(row)
  if row then row.argv = json.decode(row.argv) or {} end
  return row
end

-- self_argv(...) -> procy itself with this process's record and project
-- settings, then the words given: what a detached helper or a button of the
-- monitor runs (argv, no shell)
function M.self_argv(...)
  local argv = { core.exe, "--db", M.path() }
  if config.files and config.files[#config.files] then
    argv[#argv + 1] = "--config"
    argv[#argv + 1] = config.files[#config.files]
  end
  for _, w in ipairs { ... } do argv[#argv + 1] = w end
  return argv
end

-- reader() -> the record's reader (db.reader: queries on a thread of their
-- own, so a long read holds a task, not the loop), opened once | nil, err, code
local reader
function M.reader()
  if reader then return reader end
  local r, err, code = require("procy.db").reader(M.path(), { redact = require("procy.redact").boundary() })
  if not r then return nil, err, code end
  reader = r
  return r
end

-- The read functions below take an optional handle `h` (default: the
-- process's connection, M.open()); M.reader() is one.

-- find_session(prefix, [h]) -> session row | nil, err, code. A unique
-- prefix of the id will do.
function M.find_session(prefix, h)
  local err, code
  if not h then h, err, code = M.open() end
  if not h then return nil, err, code end
  if not prefix:match("^%x+$") then
    return nil, "ENOENT: '" .. prefix .. "' is not a session id (hex digits)", "ENOENT"
  end
  local rows, qerr, qcode = h:query("SELECT * FROM sessions WHERE substr(id, 1, ?) = ? ORDER BY started_at LIMIT 6",
    #prefix, prefix:lower())
  if not rows then return nil, qerr, qcode end
  if #rows == 0 then return nil, "ENOENT: no session " .. prefix, "ENOENT" end
  if #rows > 1 then
    local ids = {}
    for i, r in ipairs(rows) do ids[i] = r.id end
    return nil, "EAMBIGUOUS: " .. prefix .. " matches " .. (#rows > 5 and "many sessions" or #rows .. " sessions")
      .. ": " .. table.concat(ids, ", ", 1, math.min(#ids, 5)), "EAMBIGUOUS"
  end
  return decode_session(rows[1])
end

-- sessions([limit], [h]) -> the newest sessions first | nil, err, code
function M.sessions(limit, h)
  local rows, err, code = (h or M.open()):query("SELECT * FROM sessions ORDER BY started_at DESC LIMIT ?", limit or 50)
  if not rows then return nil, err, code end
  for _, r in ipairs(rows) do decode_session(r) end
  return rows
end

-- events_page(id, after, [kinds], limit, [h], [until_t]) -> up to limit
-- {id, t, kind, data} after event id `after`, in order (at or before
-- until_t, µs, when given) | nil, err, code. kinds: a string of kind
-- letters ("om"), or all. Output the relay recorded is read from the
-- record's tape (tape(tape_id, at, len), runtime/tape.c), the rest from the row.
function M.events_page(session, after, kinds, limit, h, until_t)
  return (h or M.open()):query([[SELECT id, t, kind, coalesce(data, tape(tape_id, at, len)) AS data FROM term_events
      WHERE session_id = ?1 AND id > ?2 AND (?3 IS NULL OR instr(?3, kind) > 0) AND (?4 IS NULL OR t <= ?4)
      ORDER BY id LIMIT ?5]], session, after, kinds, until_t, limit)
end

-- events(id, [kinds]) -> iterator over {id, t, kind, data} in order, read a
-- page at a time so a long recording never sits in memory whole
function M.events(session, kinds)
  local last, page, i = 0, {}, 1
  return function()
    if i > #page then
      page = assert(M.events_page(session, last, kinds, 256))
      i = 1
      if #page == 0 then return nil end
      last = page[#page].id
    end
    i = i + 1
    return page[i - 1]
  end
end

-- event_summary(id) -> {events, output_bytes, input_bytes, first_t, last_t}
function M.event_summary(session)
  return M.open():query([[SELECT count(*) AS events,
      coalesce(sum(CASE kind WHEN 'o' THEN coalesce(len, length(data)) END), 0) AS output_bytes,
      coalesce(sum(CASE kind WHEN 'i' THEN length(data) END), 0) AS input_bytes,
      min(t) AS first_t, max(t) AS last_t
    FROM term_events WHERE session_id = ?]], session)[1]
end


-- ---- API calls -----------------------------------------------------------

local call_columns = [[id, session_id, tag, api, method, path, upstream, status, model, routed_model,
  started_at, ttfb_us, duration_us, stream, stop_reason, input_tokens, output_tokens,
  cache_creation_tokens, cache_read_tokens, reasoning_tokens, cost, error, aborted, req_size, resp_size, route, provider,
  role, turn_id]]

-- session_stats(ids, [db]) -> id -> {turns, calls, input_tokens,
-- output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
-- cost (null when nothing is priced), unpriced, runs, corrections}:
-- what the monitor's list shows of each session, in four queries
function M.session_stats(ids, h)
  h = h or M.open()
  local list = json.encode(json.array(ids))
  local out = {}
  for _, id in ipairs(ids) do
    out[id] = { turns = 0, calls = 0, input_tokens = 0, output_tokens = 0, cache_read_tokens = 0,
                cache_creation_tokens = 0, reasoning_tokens = 0, cost = json.null, unpriced = 0, runs = 0, corrections = 0 }
  end
  local function each(sql, fn)
    for _, r in ipairs(assert(h:query(sql, list))) do if out[r.session_id] then fn(out[r.session_id], r) end end
  end
  local ins = "session_id IN (SELECT value FROM json_each(?1))"
  each("SELECT session_id, count(*) AS n FROM turns WHERE " .. ins .. " GROUP BY session_id",
    function(o, r) o.turns = r.n end)
  -- the record's normalised usage (procy.usage's labels); cost the sum of
  -- what is priced, null when nothing is: never 0 for unknown
  each([[SELECT session_id, count(*) AS n, sum(coalesce(input_tokens, 0)) AS i, sum(coalesce(output_tokens, 0)) AS o,
      sum(coalesce(cache_read_tokens, 0)) AS c, sum(coalesce(cache_creation_tokens, 0)) AS w,
      sum(coalesce(reasoning_tokens, 0)) AS r, sum(cost) AS cost,
      sum(cost IS NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)) AS unpriced
    FROM api_calls WHERE ]] .. ins .. " GROUP BY session_id", function(o, r)
      o.calls, o.input_tokens, o.output_tokens, o.cache_read_tokens, o.unpriced = r.n, r.i, r.o, r.c, r.unpriced
      o.cache_creation_tokens, o.reasoning_tokens, o.cost = r.w, r.r, r.cost or json.null
    end)
  each("SELECT session_id, count(*) AS n FROM evolve_runs WHERE " .. ins .. " GROUP BY session_id",
    function(o, r) o.runs = r.n end)
  each("SELECT session_id, count(*) AS n FROM corrections WHERE " .. ins .. " GROUP BY session_id",
    function(o, r) o.corrections = r.n end)
  return out
end

-- calls{session =, limit =, before =, after =, db =} -> the newest calls
-- first, at most limit (default 50, at most 1000); before: only ids below
-- it (the next page); after: only ids above it (what is new); db: the
-- handle to read with | nil, err, code
function M.calls(o)
  local where, args = { "1" }, {}
  if o.session then where[#where + 1] = "session_id = ?"; args[#args + 1] = o.session end
  if o.before then where[#where + 1] = "id < ?"; args[#args + 1] = o.before end
  if o.after then where[#where + 1] = "id > ?"; args[#args + 1] = o.after end
  args[#args + 1] = math.max(1, math.min(o.limit or 50, 1000))
  return (o.db or M.open()):query("SELECT " .. call_columns .. " FROM api_calls WHERE " .. table.concat(where, " AND ")
    .. " ORDER BY id DESC LIMIT ?", table.unpack(args))
end

-- call(id) -> everything about one call: its row with headers and content
-- decoded, both bodies as recorded, and its tool calls | nil
function M.call(id)
  local h = M.open()
  local row = h:query("SELECT * FROM api_calls WHERE id = ?", id)[1]
  if not row then return nil end
  local blobs = require "procy.blobs"
  for _, k in ipairs { "req_headers", "resp_headers", "content", "ratelimit" } do
    if row[k] then row[k] = json.decode(row[k]) end
  end
  row.request = row.req_body and blobs.get(h, row.req_body)
  row.response = row.resp_body and blobs.get(h, row.resp_body)
  -- a routed call: what its provider got and answered
  row.provider_request = row.up_request and blobs.get(h, row.up_request)
  row.provider_response = row.up_response and blobs.get(h, row.up_response)
  row.tool_calls = h:query([[SELECT * FROM tool_calls WHERE api_call_id = ? OR result_call_id = ?
                             ORDER BY id]], id, id)
  return row
end

-- ---- evolve: runs, tries, corrections ------------------------------------------------

-- JSON with its keys sorted: the same value is the same text (two corrections
-- of one turn carry the same context, byte for byte)
local function enc(v) return v ~= nil and json.encode(v, { sort = true }) or nil end

-- new_run{session, cwd, task, recipe, recipe_sha256, evaluator_id, objective, options, base_commit} -> run
function M.new_run(o)
  local id = M.random_hex(6)
  assert(M.open()):exec([[INSERT INTO evolve_runs(id, session_id, cwd, task, recipe, recipe_sha256, evaluator_id, objective,
      options, base_commit, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
    id, o.session, o.cwd, o.task, o.recipe, o.recipe_sha256, o.evaluator_id, enc(o.objective), enc(o.options),
    o.base_commit, M.now_us())
  return M.run(id)
end

-- run(id or unique prefix, [db]) -> the run row (objective, options decoded), or nil, err
function M.run(id, h)
  local rows = (h or assert(M.open())):query("SELECT * FROM evolve_runs WHERE id LIKE ? || '%' ORDER BY started_at LIMIT 2", id)
  if #rows == 0 then return nil, "ENOENT: no evolve run " .. id, "ENOENT" end
  if #rows > 1 then return nil, "EAMBIGUOUS: more than one run starts with " .. id, "EAMBIGUOUS" end
  local r = rows[1]
  r.objective = r.objective and json.decode(r.objective) or nil
  r.options = r.options and json.decode(r.options) or {}
  return r
end

-- UPDATE tbl SET the fields (tables as JSON, booleans as 1/0) WHERE where
local function update(tbl, where, f, ...)
  local sets, vals = {}, {}
  for k, v in pairs(f) do
    sets[#sets + 1] = k .. " = ?"
    if type(v) == "boolean" then v = v and 1 or 0 elseif type(v) == "table" then v = json.encode(v) end
    vals[#vals + 1] = v
  end
  for _, w in ipairs { ... } do vals[#vals + 1] = w end
  assert(M.open()):exec(("UPDATE %s SET %s WHERE %s"):format(tbl, table.concat(sets, ", "), where), table.unpack(vals))
end

-- update_run(id, fields)
function M.update_run(id, f) update("evolve_runs", "id = ?", f, id) end

-- finish_run(id, status, [err]): no err clears what an earlier end said
function M.finish_run(id, status, err)
  assert(M.open()):exec("UPDATE evolve_runs SET status = ?, error = ?, ended_at = ? WHERE id = ?", status, err,
    M.now_us(), id)
end

-- resume_run(id, fields): the run goes on: running again, its last end forgotten
function M.resume_run(id, f)
  assert(M.open()):exec("UPDATE evolve_runs SET status = 'running', error = NULL, ended_at = NULL WHERE id = ?", id)
  M.update_run(id, f)
end

-- add_try(run_id, fields) -> seq; update_try(run_id, seq, fields)
function M.add_try(run, f)
  local h = assert(M.open())
  h:exec([[INSERT INTO tries(run_id, seq, parent_seq, prompt, model, session_id, status, started_at, messages,
             adapter, adapter_sha256)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]], run, f.seq, f.parent_seq, f.prompt, f.model, f.session_id,
    f.status or "running", M.now_us(), enc(f.messages), f.adapter, f.adapter_sha256)
  return f.seq
end

function M.update_try(run, seq, f) update("tries", "run_id = ? AND seq = ?", f, run, seq) end

-- tries(run_id, [db]) -> the run's tries in order (metrics and messages decoded, feasible a boolean)
function M.tries(run, h)
  local rows = (h or assert(M.open())):query("SELECT * FROM tries WHERE run_id = ? ORDER BY seq", run)
  for _, t in ipairs(rows) do
    t.metrics = t.metrics and json.decode(t.metrics) or nil
    t.messages = t.messages and json.decode(t.messages) or nil
    if t.feasible ~= nil then t.feasible = t.feasible == 1 end
  end
  return rows
end

-- runs{cwd =, session =, limit =, db =} -> runs, newest first
function M.runs(o)
  o = o or {}
  return (o.db or assert(M.open())):query([[SELECT r.*, (SELECT count(*) FROM tries t WHERE t.run_id = r.id AND t.seq > 0) AS tries
    FROM evolve_runs r WHERE (?1 IS NULL OR cwd = ?1) AND (?2 IS NULL OR session_id = ?2)
    ORDER BY started_at DESC LIMIT ?3]], o.cwd, o.session, o.limit or 20)
end

-- correct{session, run, try, turn, original, corrected, note, context,
-- kind, source, author} -> id. kind: corrected (default), edited,
-- accepted, rejected; context: the messages the proxy model was given.
function M.correct(o)
  -- a person's text reaches the disk through the one rule set, as the
  -- terminal's and the API's do
  local redact = require("procy.redact").text
  o.original, o.corrected = redact(o.original or ""), redact(o.corrected or "")
  o.note = o.note and redact(o.note)
  return assert(M.open()):query([[INSERT INTO corrections(session_id, run_id, try_seq, turn_seq, target, original,
      corrected, note, context, created_at, kind, source, author)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id]],
    o.session, o.run, o.try, o.turn, o.target or "prompt", o.original, o.corrected, o.note, enc(o.context),
    M.now_us(), o.kind or "corrected", o.source, o.author or os.getenv("USER") or "person")[1].id
end

-- corrections{cwd =, session =, run =, kinds =, since =, until_ =, limit =, db =}
-- -> prompt corrections, newest first: of sessions in cwd (or anywhere),
-- of a session or run; kinds a list (default: those whose text changed,
-- corrected and edited); since/until_ in µs; limit (default 5, -1: all)
function M.corrections(o)
  o = o or {}
  local kinds = o.kinds or { "corrected", "edited" }
  return (o.db or assert(M.open())):query([[SELECT c.* FROM corrections c LEFT JOIN sessions s ON s.id = c.session_id
    WHERE c.target = 'prompt' AND (?1 IS NULL OR s.cwd = ?1 OR c.session_id IS NULL)
      AND (?2 IS NULL OR c.session_id = ?2) AND (?3 IS NULL OR c.run_id = ?3)
      AND c.kind IN (SELECT value FROM json_each(?4))
      AND (?5 IS NULL OR c.created_at >= ?5) AND (?6 IS NULL OR c.created_at < ?6)
    ORDER BY c.id DESC LIMIT ?7]], o.cwd, o.session, o.run, json.encode(kinds), o.since, o.until_, o.limit or 5)
end

-- correction(id, [db]) -> the row, context decoded | nil, "ENOENT: ...", "ENOENT"
function M.correction(id, h)
  local row = (h or assert(M.open())):query("SELECT * FROM corrections WHERE id = ?", math.tointeger(tonumber(id)) or -1)[1]
  if not row then return core.fail("ENOENT", "no correction " .. tostring(id)) end
  row.context = row.context and json.decode(row.context) or nil
  return row
end

-- uncorrect(id) -> true | nil, "ENOENT: ...": the correction removed
-- edit_correction(id, {corrected =, note =}) -> true | nil, err, code: a
-- person's second thoughts on a correction (the original and the context
-- stay as they were)
function M.edit_correction(id, f)
  local row, err, code = M.correction(id)
  if not row then return nil, err, code end
  if f.corrected ~= nil and (type(f.corrected) ~= "string" or not f.corrected:find("%S")) then
    return core.fail("EINVAL", "a correction's text cannot be empty")
  end
  assert(M.open()):exec("UPDATE corrections SET corrected = coalesce(?, corrected), note = coalesce(?, note) WHERE id = ?",
    f.corrected, f.note, row.id)
  return true
end

function M.uncorrect(id)
  local ok, err, code = M.correction(id)
  if not ok then return nil, err, code end
  assert(M.open()):exec("DELETE FROM corrections WHERE id = ?", ok.id)
  return true
end

return M
