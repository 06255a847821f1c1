-- procy.corrections: a person's better text for a prompt, kept with the
-- messages the proxy model was given for it (or, for a prompt a person
-- wrote, the messages an inference would have been given: the same
-- evolve.messages template), so every correction is a training example
-- whose prompt side is what inference sees. !correct opens the person's
-- editor on any turn's prompt; !approve, !edit and !reject are records of
-- the same kind (accepted, edited, rejected).

local core = require "procy.core"
local fs = require "procy.fs"
local json = require "procy.json"
local store = require "procy.store"

local M = {}

local function db() return assert(store.open()) end

-- turn(session, [n]) -> the turn row to correct: turn n, else the last
-- prompt the proxy model wrote, else the last prompt | nil, err, code
function M.turn(session, n)
  local h = db()
  if n then
    local t = h:query("SELECT * FROM turns WHERE session_id = ? AND seq = ?", session, n)[1]
    if not t then
      local last = h:query("SELECT max(seq) AS n FROM turns WHERE session_id = ?", session)[1].n
      return core.fail("ENOENT", ("no turn %s in this session (%s)"):format(tostring(n),
        last and ("turns 1 to " .. last) or "it has no turns yet"))
    end
    return t
  end
  local t = h:query([[SELECT * FROM turns WHERE session_id = ? AND prompt IS NOT NULL
    ORDER BY source = 'proxy' DESC, seq DESC LIMIT 1]], session)[1]
  if not t then return core.fail("ENOENT", "this session has no prompt to correct yet") end
  return t
end

-- try_of(turn) -> the evolve try that turn was, or nil: the try linked to
-- it, else (a try whose act step never linked its turn: an older record,
-- a project's own act) the newest unlinked try of the session that asked
-- for exactly this prompt
function M.try_of(turn)
  local h = db()
  return h:query("SELECT * FROM tries WHERE session_id = ? AND turn_seq = ? ORDER BY id DESC LIMIT 1",
    turn.session_id, turn.seq)[1]
    or (turn.source == "proxy" and turn.prompt and h:query([[SELECT * FROM tries WHERE session_id = ? AND turn_seq IS NULL
      AND prompt = ? AND messages IS NOT NULL ORDER BY id DESC LIMIT 1]], turn.session_id, turn.prompt)[1]) or nil
end

-- state_of(task, last_response, seq) -> what evolve.messages renders for
-- a prompt no proxy model wrote: the session's task (its first prompt a
-- person wrote), the agent's answer before it, and which turn it was. The
-- one place this is said: the export builds the same from its scan.
function M.state_of(task, last_response, seq)
  -- (seq, the turn's number, is no try's: the messages name no try)
  return { task = task, last_response = last_response, turn = seq }
end

-- state(turn) -> state_of for the turn, from the record
function M.state(turn)
  local h = db()
  local first = h:query([[SELECT prompt FROM turns WHERE session_id = ? AND source = 'human' AND prompt IS NOT NULL
    ORDER BY seq LIMIT 1]], turn.session_id)[1]
  local before = h:query([[SELECT response FROM turns WHERE session_id = ? AND seq < ? AND response IS NOT NULL
    ORDER BY seq DESC LIMIT 1]], turn.session_id, turn.seq)[1]
  return M.state_of(first and first.prompt or turn.prompt, before and before.response or nil, turn.seq)
end

-- messages(turn) -> the messages the proxy model was given for the turn's
-- prompt (its try's, as recorded), or those evolve.messages makes of
-- M.state(turn); and the try, when there is one
function M.messages(turn)
  local t = M.try_of(turn)
  if t and t.messages then return json.decode(t.messages), t end
  return require("procy.evolve").messages(M.state(turn)), t
end

-- add{session, turn = n, corrected, note, kind, author} -> id | nil, err,
-- code: the turn's prompt corrected, with its context and its try
function M.add(o)
  local turn, err, code = M.turn(o.session, o.turn)
  if not turn then return nil, err, code end
  if type(o.corrected) ~= "string" or o.corrected:match("^%s*$") then
    return core.fail("EINVAL", "a correction needs text")
  end
  local messages, t = M.messages(turn)
  return store.correct { session = turn.session_id, turn = turn.seq, run = t and t.run_id, try = t and t.seq,
    original = turn.prompt, corrected = o.corrected, note = o.note, context = messages,
    kind = o.kind or "corrected", source = turn.source, author = o.author }
end

-- ---- the editor ---------------------------------------------------------------------

M.marker = "# ---- your prompt below this line (lines above it are left out) ----"

-- file_text(turn, messages) -> what the editor opens: the context as
-- comments, the marker, the prompt
function M.file_text(turn, messages)
  local out = { ("# Correct the prompt of turn %d (%s). Save to keep a correction; leave it"):format(turn.seq,
    turn.source), "# unchanged or empty to keep nothing.", "#",
    "# What the proxy model was given for it (the training example's prompt side):" }
  for _, m in ipairs(messages) do
    out[#out + 1] = "#"
    out[#out + 1] = "# [" .. tostring(m.role) .. "]"
    for line in (tostring(m.content) .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = "#   " .. line end
  end
  out[#out + 1] = M.marker
  out[#out + 1] = turn.prompt or ""
  return table.concat(out, "\n") .. "\n"
end

-- from_file(text) -> the prompt a saved file holds: after the marker (the
-- whole file when the marker was deleted), the last newline dropped
function M.from_file(text)
  local at = text:find(M.marker, 1, true)
  if at then text = text:sub(at + #M.marker):gsub("^\r?\n", "", 1) end
  return (text:gsub("\r?\n$", ""))
end

-- editor() -> the argv of the person's editor: $VISUAL, $EDITOR, vi
-- (split into words as a shell would, nothing expanded)
function M.editor()
  local e = os.getenv("VISUAL")
  if not e or e == "" then e = os.getenv("EDITOR") end
  if not e or e == "" then e = "vi" end
  local words = require("procy.commands").words(e)
  return words and #words > 0 and words or { "vi" }
end

-- edit(session, turn) -> corrected text | nil, why, code: the editor on
-- the prompt (session: the pty session, whose screen waits meanwhile).
-- Unchanged or empty text is nil, "ENOCHANGE: ..."
function M.edit(session, turn)
  local messages = M.messages(turn)
  -- a directory only the person can read: the prompt may be private
  local dir = ("%s/procy-correct-%s"):format(os.getenv("TMPDIR") or "/tmp", store.random_hex(6))
  local ok, err, code = fs.mkdir(dir, 448)
  if not ok then return core.wrap("cannot make a place for the file to edit", err, code) end
  local path = ("%s/turn-%d.md"):format(dir, turn.seq)
  local f, ferr = io.open(path, "wb")
  if not f or not f:write(M.file_text(turn, messages)) or not f:close() then
    os.remove(path)
    os.remove(dir)
    return core.fail("EIO", "cannot write the file to edit: " .. tostring(ferr))
  end
  local argv = M.editor()
  argv[#argv + 1] = path
  local status, sig, rcode = session:run(argv)
  local text
  if status == 0 then
    local r = io.open(path, "rb")
    text = r and r:read("a")
    if r then r:close() end
  end
  os.remove(path)
  os.remove(dir)
  if not status then return core.wrap("cannot run the editor", sig, rcode) end
  if status ~= 0 then
    return core.fail("EEDITOR", ("%s exited with %s: nothing stored"):format(argv[1],
      sig and ("signal " .. sig) or tostring(status)))
  end
  if not text then return core.fail("ENOENT", "the file was deleted: nothing stored") end
  local corrected = M.from_file(text)
  if corrected:match("^%s*$") then return core.fail("ENOCHANGE", "the prompt is empty: nothing stored") end
  if corrected == (turn.prompt or ""):gsub("\r?\n$", "") then
    return core.fail("ENOCHANGE", "the prompt is unchanged: nothing stored")
  end
  return corrected
end

-- ---- ! commands ---------------------------------------------------------------------------

local function first_line(s, n)
  s = tostring(s or ""):match("^[^\n]*")
  return #s > n and (s:sub(1, n - 1) .. "…") or s
end

-- lines(rows) -> a table of corrections as text lines
function M.lines(rows)
  local out = { ("%-5s %-8s %-5s %-9s %-6s %s"):format("id", "session", "turn", "kind", "source", "original → corrected") }
  for _, c in ipairs(rows) do
    out[#out + 1] = ("%-5d %-8s %-5s %-9s %-6s %s → %s"):format(c.id, tostring(c.session_id or "-"):sub(1, 8),
      tostring(c.turn_seq or "-"), c.kind, c.source or "-", first_line(c.original, 40), first_line(c.corrected, 40))
  end
  return out
end

M.commands = {
  correct = { args = "[N] [--note TEXT]", help = "correct the prompt of turn N (default: the last proxy prompt) in your editor",
    run = function(ctx, args)
      local n, note, i = nil, nil, 1
      while args[i] do
        if args[i] == "--note" then note, i = args[i + 1], i + 2
        elseif not n and math.tointeger(tonumber(args[i])) then n, i = math.tointeger(tonumber(args[i])), i + 1
        else ctx.print("usage: !correct [N] [--note TEXT]") return end
      end
      local turn, err = M.turn(ctx.id, n)
      if not turn then ctx.status(err) return end
      local text, why = M.edit(ctx.session, turn)
      if not text then ctx.status(why) return end
      local id, aerr = M.add { session = ctx.id, turn = turn.seq, corrected = text, note = note }
      ctx.status(id and ("correction %d kept for turn %d"):format(id, turn.seq) or aerr)
    end },
  train = { args = "[--format F,...] [--category C,...] ...", help = "export the record as training data (procy train export --help)",
    run = function(ctx, args)
      local argv = {}
      for i, a in ipairs(args) do argv[i] = a end
      require("procy.recipes").command(ctx, "recipes/train_export.lua", argv)
    end },
  deploy = { args = "trained [JOB]|base|status", help = "what the proxy model's server serves procy: a trained adapter, "
      .. "the base model, or what it is now (procy train deploy)",
    run = function(ctx, args)
      local argv = {}
      for i, a in ipairs(args) do argv[i] = a end
      if #argv == 0 then argv[1] = "status" end
      require("procy.recipes").command(ctx, "recipes/deploy.lua", argv)
    end },
  corrections = { help = "this session's corrections (procy corrections for all)", run = function(ctx)
      local rows = store.corrections { session = ctx.id, limit = -1,
        kinds = { "corrected", "edited", "accepted", "rejected" } }
      if #rows == 0 then ctx.print("no corrections in this session yet (!correct [N])") return end
      for _, l in ipairs(M.lines(rows)) do ctx.print(l) end
    end },
}

-- ---- procy corrections ------------------------------------------------------------

local function say(...) io.stderr:write("procy: ", ...) io.stderr:write("\n") end
local KINDS = { "corrected", "edited", "accepted", "rejected" }

local cli = {}

function cli.ls(args, opts)
  if #args > 0 then say("usage: procy corrections ls [--session ID] [--kind K] [--json]") return 2 end
  local session
  if opts.session then
    local row, err = store.find_session(opts.session)
    if not row then say(err) return 1 end
    session = row.id
  end
  local kinds = KINDS
  if opts.kind then
    local ok = false
    for _, k in ipairs(KINDS) do ok = ok or k == opts.kind end
    if not ok then say("--kind is one of ", table.concat(KINDS, ", ")) return 2 end
    kinds = { opts.kind }
  end
  local rows = store.corrections { session = session, kinds = kinds, limit = -1 }
  if opts.json then
    for _, r in ipairs(rows) do r.context = r.context and json.decode(r.context) or nil end
    print(json.encode(json.array(rows)))
  elseif #rows == 0 then
    print("no corrections yet (!correct in a session, or procy corrections add)")
  else
    for _, l in ipairs(M.lines(rows)) do print(l) end
  end
  return 0
end

function cli.show(args, opts)
  if #args ~= 1 then say("usage: procy corrections show ID [--json]") return 2 end
  local c, err = store.correction(args[1])
  if not c then say(err) return 1 end
  if opts.json then print(json.encode(c)) return 0 end
  print(("correction %d: %s, turn %s of session %s (%s prompt), by %s, %s"):format(c.id, c.kind,
    tostring(c.turn_seq or "-"), tostring(c.session_id or "-"), c.source or "?", c.author or "?",
    os.date("%Y-%m-%d %H:%M", c.created_at // 1000000)))
  if c.run_id then print(("evolve run %s, try %s"):format(c.run_id, tostring(c.try_seq))) end
  if c.note then print("note: " .. c.note) end
  print("\n--- original\n" .. c.original .. "\n--- corrected\n" .. c.corrected)
  if c.context then
    print("--- the messages the proxy model was given")
    for _, m in ipairs(c.context) do print("[" .. tostring(m.role) .. "]\n" .. tostring(m.content)) end
  end
  return 0
end

function cli.rm(args)
  if #args ~= 1 then say("usage: procy corrections rm ID") return 2 end
  local ok, err = store.uncorrect(args[1])
  if not ok then say(err) return 1 end
  print("removed correction " .. args[1])
  return 0
end

function cli.add(args, opts)
  if #args > 0 or not opts.file then
    say("usage: procy corrections add [--session ID] [--turn N] --file F [--note TEXT]")
    return 2
  end
  local row, err
  if opts.session then
    row, err = store.find_session(opts.session)
  else
    row = store.sessions(1)[1]
    err = "no session recorded yet"
  end
  if not row then say(err) return 1 end
  local n = opts.turn and math.tointeger(tonumber(opts.turn))
  if opts.turn and not n then say("--turn needs a number") return 2 end
  local text
  if opts.file == "-" then
    text = io.stdin:read("a")
  else
    local f, ferr = io.open(opts.file, "rb")
    if not f then say(ferr) return 1 end
    text = f:read("a")
    f:close()
  end
  local id, aerr = M.add { session = row.id, turn = n, corrected = M.from_file(text or ""), note = opts.note }
  if not id then say(aerr) return 1 end
  print(("correction %d kept"):format(id))
  return 0
end

-- main(args, opts): procy corrections ls|show|rm|add
function M.main(args, opts)
  local sub = table.remove(args, 1) or "ls"
  local f = cli[sub]
  if not f then say("corrections needs one of: ls, show, rm, add (see procy help corrections)") return 2 end
  return f(args, opts)
end

return M
