-- The record's write boundary (procy.redact.boundary, on procy.store's
-- connection and the API recorder's): every text and blob column of every
-- table of procy's schema — read from a migrated record, so a table or
-- column added later is covered without touching this test — written
-- through procy.store holds no secret of any shape, in the database, its
-- WAL or anywhere else in the files, and keeps the text around each one.
-- Run twice: with the default rules (the C prefilter on the literals
-- decides what reaches Lua) and with a pattern of the person's own (every
-- text looked at).
local T = require "lib.tap"
local json = require "procy.json"
local proc = require "procy.proc"

local SECRETS = require("lib.secrets").list

-- One run in a child procy (its own settings, its own store connection):
-- plants `text` in every column it can and reports what it did.
local SWEEP = [=[
local store = require "procy.store"
local json = require "procy.json"
local db = require "procy.db"
return function(args)
  local text = assert(io.open(args[1])):read("a")
  local h = assert(store.open())
  h:exec("PRAGMA foreign_keys = OFF")
  h:exec("PRAGMA ignore_check_constraints = ON")
  local tables = h:query("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
  local virtual = {}
  for _, t in ipairs(tables) do if (t.sql or ""):match("^CREATE VIRTUAL") then virtual[t.name] = true end end
  local out = { planted = {}, failed = {}, columns = 0 }
  local n = 0
  for _, t in ipairs(tables) do
    local shadow = false
    for v in pairs(virtual) do
      if t.name ~= v and t.name:sub(1, #v + 1) == v .. "_" then shadow = true end
    end
    if not shadow then -- an FTS5 table's own tables are written by FTS5, from what goes into it
      local names, marks, values = {}, {}, {}
      for _, c in ipairs(h:query("SELECT name, type, hidden FROM pragma_table_xinfo(?)", t.name)) do
        if (c.hidden or 0) == 0 then
          local ty = (c.type or ""):upper()
          n = n + 1
          local v
          if ty:find("INT") then v = n
          elseif ty:find("REAL") or ty:find("FLOA") or ty:find("DOUB") then v = n + 0.5
          elseif ty:find("BLOB") then v = db.blob(("before-%d %s after-%d"):format(n, text, n)); out.columns = out.columns + 1
          else v = ("before-%d %s after-%d"):format(n, text, n); out.columns = out.columns + 1 end
          names[#names + 1] = '"' .. c.name .. '"'
          marks[#marks + 1] = "?"
          values[#values + 1] = v
        end
      end
      local ok, err = pcall(h.exec, h, ("INSERT INTO \"%s\" (%s) VALUES (%s)"):format(t.name, table.concat(names, ", "),
        table.concat(marks, ", ")), table.unpack(values))
      if ok then out.planted[#out.planted + 1] = t.name else out.failed[#out.failed + 1] = t.name .. ": " .. tostring(err) end
    end
  end
  -- everything the database holds now, every table, every value
  local dump = {}
  for _, t in ipairs(h:query("SELECT name FROM sqlite_master WHERE type = 'table'")) do
    for _, row in ipairs(h:query(('SELECT * FROM "%s"'):format(t.name))) do
      for _, v in pairs(row) do if type(v) == "string" then dump[#dump + 1] = v end end
    end
  end
  out.markers = 0
  local all = table.concat(dump, "\n")
  for i = 1, n do
    if all:find("before-" .. i .. " ", 1, true) and all:find(" after-" .. i, 1, true) then out.markers = out.markers + 1 end
  end
  out.dump = all
  h:exec("PRAGMA wal_checkpoint(PASSIVE)")
  print(json.encode(out))
  return 0
end
]=]

local dir = T.tmpdir()
local script = T.write(dir .. "/sweep.lua", SWEEP)

local function run(name, with_own)
  local d = dir .. "/" .. name
  assert(proc.run { "mkdir", "-p", d })
  local parts, once = {}, {}
  for _, s in ipairs(SECRETS) do
    if s.once then once[#once + 1] = s[2]
    elseif with_own or not s.own then parts[#parts + 1] = "[" .. s[1] .. ": " .. s[2] .. "]" end
  end
  local planted = T.write(d .. "/planted.txt", table.concat(parts, " | ") .. " | in JSON: " .. json.encode(table.concat(parts, " "))
    .. " | " .. table.concat(once, " | "))
  local cfg = T.write(d .. "/procy.lua", ("return { db = %q%s }"):format(d .. "/rec.db",
    with_own and ', redact = { "ACME%-INTERNAL%-%x+" }' or ""))
  local r = T.procy({ "--config", cfg, "run", script, planted }, { cwd = d })
  local out = json.decode(r.stdout)
  T.ok(r.code == 0 and out, name .. ": the sweep ran", r.stderr)
  if not out then return end
  T.is(table.concat(out.failed, "\n"), "", name .. ": a row went into every table of the schema")
  T.ok(#out.planted >= 15 and out.columns >= 100, name .. (": %d tables, %d text and blob columns planted"):format(#out.planted, out.columns))
  -- the files themselves: the database, its WAL and whatever else is there
  local files = {}
  for f in (assert(proc.run { "sh", "-c", 'ls -1 "$0"', d }).stdout):gmatch("[^\n]+") do
    if f:match("^rec%.db") then files[#files + 1] = d .. "/" .. f end
  end
  local seen = {}
  for _, s in ipairs(SECRETS) do
    if with_own or not s.own then
      local probe = s[3] or s[2]
      local where = {}
      if out.dump:find(probe, 1, true) then where[#where + 1] = "a column" end
      for _, f in ipairs(files) do
        local bytes = T.read(f) or ""
        if bytes:find(probe, 1, true) then where[#where + 1] = f:match("[^/]+$") end
      end
      if #where > 0 then seen[#seen + 1] = s[1] .. " in " .. table.concat(where, ", ") end
    end
  end
  T.is(table.concat(seen, "; "), "", name .. ": no secret of any shape in any column, nor in the record's files")
  T.ok(out.markers >= out.columns, name .. ": and the text around them is still there in every column",
       ("%d of %d"):format(out.markers, out.columns))
  T.ok(out.dump:find("[REDACTED]", 1, true), name .. ": masked as [REDACTED]")
end

run("defaults", false)
run("own pattern", true)

-- The paths the review named, as procy itself writes them: a key on the
-- agent's command line (sessions.argv), typed in a prompt and answered
-- back (turns.prompt, turns.response), a headless agent's input and output
-- lines (term_events via store.event), a correction; then the search
-- index built from them. None keeps the key; the words around it are found.
do
  local config = require "procy.config"
  local store = require "procy.store"
  local turns = require "procy.turns"
  local search = require "procy.search"
  local d = dir .. "/paths"
  assert(proc.run { "mkdir", "-p", d })
  assert(config.load { config = T.write(d .. "/procy.lua", ("return { db = %q }"):format(d .. "/rec.db")) })
  local key = "sk-ant-api03-" .. ("Pp9Qq8Rr"):rep(8)
  local id = store.new_session { argv = { "sh", "-c", "curl -H 'x-api-key: " .. key .. "' https://example.invalid" },
    cwd = d, profile = "generic", mode = "headless" }
  store.event(id, "i", '{"type":"user","message":{"content":"use the key ' .. key .. ' please"}}')
  store.event(id, "o", '{"type":"assistant","text":"the key is \\"' .. key .. '\\" indeed"}')
  local t = turns.new(id)
  t:begin("deploy with " .. key .. " tonight", "human")
  t:finish { status = "done", response = "done, I used " .. key .. " as asked" }
  store.correct { session = id, turn = 1, original = "with " .. key, corrected = "without the key " .. key, kind = "corrected" }
  assert(search.update())
  local h = assert(store.open())
  local where = {}
  for _, q in ipairs {
    { "sessions.argv", "SELECT argv AS v FROM sessions" },
    { "term_events", "SELECT data AS v FROM term_events" },
    { "turns.prompt", "SELECT prompt AS v FROM turns" },
    { "turns.response", "SELECT response AS v FROM turns" },
    { "corrections", "SELECT original || corrected AS v FROM corrections" },
  } do
    for _, row in ipairs(h:query(q[2])) do
      if type(row.v) == "string" and row.v:find(key, 1, true) then where[#where + 1] = q[1] end
    end
  end
  h:exec("PRAGMA wal_checkpoint(PASSIVE)")
  for _, f in ipairs { d .. "/rec.db", d .. "/rec.db-wal" } do
    if (T.read(f) or ""):find(key, 1, true) then where[#where + 1] = f:match("[^/]+$") end
  end
  T.is(table.concat(where, ", "), "", "a key in argv, a prompt, an answer, headless lines and a correction: kept nowhere")
  local hits = search.search("tonight") or {}
  T.ok(#hits > 0, "the words around it are in the search index")
  T.is(#(search.search("Pp9Qq8Rr") or {}), 0, "the key is not")
  local row = h:query("SELECT prompt, response FROM turns")[1] or {}
  T.ok((row.prompt or ""):find("deploy with [REDACTED] tonight", 1, true)
       and (row.response or ""):find("I used [REDACTED] as asked", 1, true), "masked in place, the rest as typed", row.prompt)
end

return T.done()
