-- procy.db from recipes: large values, blobs, a second process writing at
-- the same time, a bad migration, transactions and tasks.
local T = require "lib.tap"
local core = require "procy.core"
local db = require "procy.db"
local proc = require "procy.proc"
local store = require "procy.store"

local dir = T.tmpdir()

-- 1 MB of text and a blob with NUL bytes
do
  local h = assert(db.open(dir .. "/big.db"))
  h:exec("CREATE TABLE v(id INTEGER PRIMARY KEY, t TEXT, b BLOB)")
  local text = string.rep("procy ✓ ", 1024 * 1024 // 10):sub(1, 1024 * 1024)
  local blob = "\0\1\2" .. string.rep("\0\255", 1000) .. "\0"
  local n, id = h:exec("INSERT INTO v(t, b) VALUES (?, ?)", text, db.blob(blob))
  T.is(n, 1, "one row inserted")
  local row = h:query("SELECT t, b, typeof(b) AS bt, length(t) AS chars FROM v WHERE id = ?", id)[1]
  T.ok(row.t == text, "1 MB text round-trips byte for byte")
  T.ok(row.b == blob, "a blob with NUL bytes round-trips")
  T.is(row.bt, "blob", "db.blob binds as BLOB")
  h:close()
end

-- a second process holds the write lock; the busy timeout waits it out
do
  local path = dir .. "/shared.db"
  local h = assert(db.open(path))
  h:exec("CREATE TABLE w(who TEXT)")
  local holder = T.write(dir .. "/holder.lua", [[
    local core = require "procy.core"
    local db = require "procy.db"
    local h = assert(db.open(...))
    h:exec("BEGIN IMMEDIATE")
    h:exec("INSERT INTO w VALUES ('other')")
    print("locked") io.stdout:flush()
    core.sleep(0.5)
    h:exec("COMMIT")
  ]])
  local p = assert(proc.spawn({ T.bin, "run", holder, path }))
  T.is(p:lines()(), "locked", "the other process holds the write lock")
  local quick = assert(db.open(path, { busy_timeout = 0 }))
  local r, err, code = quick:exec("INSERT INTO w VALUES ('impatient')")
  T.is(code, "SQLITE_BUSY", "without a busy timeout the write fails: the lock is real")
  quick:close()
  local n = h:exec("INSERT INTO w VALUES ('me')")
  T.is(n, 1, "with the busy timeout the write waits and succeeds")
  T.is(p:wait(10).code, 0, "the other process committed")
  local rows = h:query("SELECT group_concat(who, ',') AS s FROM (SELECT who FROM w ORDER BY who)")
  T.is(rows[1].s, "me,other", "both writes are there")
  h:close()
end

-- a bad migration is refused with a clear message and changes nothing
do
  local mig = dir .. "/migrations"
  assert(require("procy.fs").mkdir(mig))
  T.write(mig .. "/0001_ok.sql", "CREATE TABLE a(x);")
  T.write(mig .. "/0002_broken.sql", "CREATE TABLE b(y); CREATE TABL c(z);")
  local h, err, code = db.open(dir .. "/mig.db", { migrations = mig })
  T.is(h, nil, "open refuses")
  T.like(err, "migration .*0002_broken.sql failed: near \"TABL\": syntax error", "naming the file and the error")
  T.is(code, "SQLITE_ERROR", "with the SQLite code")
  local raw = assert(db.open(dir .. "/mig.db", { migrations = false }))
  T.is(raw:query("PRAGMA user_version")[1].user_version, 1, "the good migration stays applied")
  T.is(#raw:query("SELECT name FROM sqlite_master WHERE name = 'b'"), 0, "the broken one left nothing")
  raw:close()
end

-- transactions and tasks
do
  local h = assert(db.open(":memory:", { migrations = false }))
  h:exec("CREATE TABLE t(x)")
  local ok, err = pcall(h.transaction, h, function() h:exec("INSERT INTO t VALUES (1)") core.sleep(0.01) end)
  T.like(err, "cannot wait here", "waiting inside a transaction raises")
  T.is(h:query("SELECT count(*) AS n FROM t")[1].n, 0, "and the transaction was rolled back")
  local tasks = {}
  for i = 1, 5 do
    tasks[i] = core.spawn(function()
      for j = 1, 20 do h:exec("INSERT INTO t VALUES (?)", i * 100 + j) core.yield() end
    end)
  end
  for i = 1, 5 do core.await(tasks[i]) end
  T.is(h:query("SELECT count(*) AS n FROM t")[1].n, 100, "five tasks share one connection")
end

-- db.reader: reads on a thread of their own, the loop going on meanwhile
do
  local path = dir .. "/reader.db"
  local h = assert(db.open(path, { migrations = false }))
  h:exec("CREATE TABLE r(a, b, c)")
  h:exec("INSERT INTO r VALUES (1, 'x', NULL), (2.5, ?, 3)", db.blob("\0\1"))
  local r = assert(db.reader(path))
  local rows = assert(r:query("SELECT * FROM r WHERE a >= ? ORDER BY a", 1))
  T.ok(#rows == 2 and rows[1].a == 1 and math.type(rows[1].a) == "integer" and rows[1].b == "x"
    and rows[1].c == nil and rows[2].a == 2.5 and rows[2].b == "\0\1" and rows[2].c == 3,
    "r:query: the rows as h:query gives them (integers, floats, text, blobs, NULL absent)")
  local none, err, code = r:query("SELECT * FROM nope")
  T.ok(none == nil and code == "SQLITE_ERROR" and err:find("no such table: nope", 1, true), "a failure: nil, err, code", err)
  none, err, code = r:query("DELETE FROM r")
  T.is(code, "SQLITE_READONLY", "a reader refuses to write")
  T.is(#h:query("SELECT * FROM r"), 2, "and nothing was written")
  none, err, code = r:query("SELECT ?", 1, 2)
  T.is(code, "SQLITE_RANGE", "parameters that do not match the statement")
  T.ok(not pcall(r.query, r, "SELECT ?", {}), "a value SQL cannot hold raises")
  -- a long read: another task runs meanwhile, which a read on the loop
  -- would not let it do until the read ended
  local ran, read_done
  local other = core.spawn(function() core.sleep(0.01) ran = not read_done end)
  local big = assert(r:query([[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000)
    SELECT sum(x) AS s FROM c]]))
  read_done = true
  core.await(other)
  T.is(big[1].s, 2000001000000, "a long read's result")
  T.ok(ran, "another task woke and ran while the read ran")
  -- several tasks at once, one queue
  local tasks = {}
  for i = 1, 4 do tasks[i] = core.spawn(function() return r:query("SELECT ? AS i", i)[1].i end) end
  local got = {}
  for i = 1, 4 do got[i] = core.await(tasks[i]) end
  T.is(table.concat(got, " "), "1 2 3 4", "four tasks reading at once each get their own rows")
  h:exec("INSERT INTO r VALUES (9, 'new', 9)")
  T.is(#assert(r:query("SELECT * FROM r")), 3, "it sees what was written since")
  r:close()
  T.ok(not pcall(r.query, r, "SELECT 1"), "a closed reader raises")
  h:close()
end

-- the record's default place
do
  T.like(store.path(), "^" .. os.getenv("XDG_DATA_HOME"):gsub("%p", "%%%0") .. "/procy/procy.db$",
         "the default db is $XDG_DATA_HOME/procy/procy.db")
  local counts = assert(store.counts())
  T.ok(counts.sessions and counts.api_calls and counts.term_events, "store.open applies the schema")
end

-- the boundary on the way out: a rule that fails mid-query fails that
-- query, and the statement starts afresh the next time (not from the row
-- after, with a read left open)
do
  local h = assert(db.open(dir .. "/boom.db", { migrations = false, redact = { rule = function(s)
    if s:find("BOOM", 1, true) then error("the rule failed") end
    return (s:gsub("secret", "[REDACTED]"))
  end } }))
  h:exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
  h:exec("INSERT INTO t(v) VALUES ('a secret'), ('BOOM'), ('c'), ('d')") -- in the SQL text: past the boundary
  local ok1, e1 = pcall(h.query, h, "SELECT v FROM t ORDER BY id")
  local ok2, e2 = pcall(h.query, h, "SELECT v FROM t ORDER BY id")
  T.ok(not ok1 and not ok2 and tostring(e2):find("the rule failed", 1, true), "a rule that fails fails the query, each time",
    tostring(e2))
  local rows = h:query("SELECT v FROM t WHERE id <> ? ORDER BY id", 2)
  T.is(#rows .. " " .. rows[1].v, "3 a [REDACTED]", "and the connection reads on, through the rule")
  h:close()
end

proc.run { "rm", "-rf", dir }
return T.done()
