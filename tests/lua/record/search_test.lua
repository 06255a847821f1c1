-- procy.search and `procy search` on a real record: every kind of hit,
-- the index following what is recorded after a search, two processes
-- indexing at once adding nothing twice, words with punctuation, the
-- FTS5 syntax behind --raw, and the terminal's hits opening at the event
-- that holds the words.
local T = require "lib.tap"
local json = require "procy.json"
local proc = require "procy.proc"
local config = require "procy.config"
local store = require "procy.store"
local search = require "procy.search"

local dir = T.tmpdir()
local cfg = T.write(dir .. "/procy.lua", ("return { db = %q }"):format(dir .. "/rec.db"))
assert(config.load { config = cfg })
local h = assert(store.open())

local a = assert(store.new_session { argv = { "claude" }, cwd = dir, mode = "pty" })
local b = assert(store.new_session { argv = { "codex" }, cwd = dir, mode = "pty" })
local t0 = store.find_session(a).started_at
h:exec([[INSERT INTO turns(session_id, seq, source, prompt, response, started_at, ended_at, status)
  VALUES (?, 1, 'human', 'make the tokenizer faster', 'I rewrote the lexer loop.', ?, ?, 'done')]], a, t0 + 10, t0 + 20)
local turn = h:query("SELECT id FROM turns WHERE session_id = ?", a)[1].id
h:exec([[INSERT INTO tool_calls(session_id, turn_id, tool_use_id, name, input, result, started_at, ended_at)
  VALUES (?, ?, 'tu1', 'Bash', ?, 'ran 7 benchmarks: 31% faster', ?, ?)]], a, turn, json.encode { command = "make bench" }, t0 + 12, t0 + 13)
h:exec([[INSERT INTO api_calls(session_id, method, path, started_at, content) VALUES (?, 'POST', '/v1/messages', ?, ?)]],
  a, t0 + 11, json.encode { { type = "text", text = "Let me look at the hot loop." },
    { type = "tool_use", name = "Read", input = { file_path = "lexer.c" } } })
local n = 0
local function out(sid, data)
  n = n + 1
  h:exec("INSERT INTO term_events(session_id, t, kind, data) VALUES (?, ?, 'o', ?)", sid, t0 + 1000 * n, data)
end
for i = 1, 300 do out(a, ("\27[2m%04d padding output to fill the chunks\27[0m\r\n"):format(i)) end
out(a, "\27[1mquartz\27[0m-\27[31mfalcon\27[0m ready\r\n") -- a word split by colours
local falcon_event = n
for i = 1, 50 do out(b, "other session output\r\n") end

local function kinds(hits)
  local k = {}
  for _, x in ipairs(hits) do k[#k + 1] = x.kind end
  table.sort(k)
  return table.concat(k, " ")
end
T.is(kinds(assert(search.search("tokenizer"))), "prompt", "a prompt")
T.is(kinds(assert(search.search("lexer"))), "answer call", "an answer, and an API answer's tool call")
T.is(kinds(assert(search.search("benchmarks"))), "tool", "a tool call's result")
local hit = assert(search.search("quartz-falcon"))[1]
T.ok(hit and hit.kind == "term" and hit.session_id == a, "terminal output, its colours stripped", json.encode(hit or {}))
T.ok(hit and hit.event == falcon_event and hit.rel_t == hit.t - t0, "the hit opens at the event that holds the words",
  hit and ("event %s"):format(hit.event))
T.is(#assert(search.search("other session", { session = a })), 0, "--session keeps to one session")
T.is(#assert(search.search("other session", { session = b, limit = 100 })), 1, "where it is found")
T.is(#assert(search.search("pad*", { kind = "term", limit = 1000 })) > 1, true, "a prefix, and --kind")
local parts = assert(search.search("tokenizer"))[1].parts
T.ok(parts[2] == "tokenizer" and parts[1]:find("make the") and parts[3]:find("faster"), "the snippet around the hit", json.encode(parts))
T.is(search.query('a "b" c*'), '"a" """b""" "c"*', "words are quoted, a trailing * is a prefix")
local none, err = search.search("NEAR(", { raw = true })
T.ok(not none and err:find("^EINVAL"), "--raw passes FTS5 syntax, and says when it is wrong", err)

-- what is recorded after a search is found by the next
local rows = h:query("SELECT count(*) AS n FROM search")[1].n
out(a, "late line: basilisk\r\n")
T.is(#assert(search.search("basilisk")), 1, "output recorded after a search is found by the next")
T.is(h:query("SELECT count(*) AS n FROM search")[1].n, rows + 1, "and only it was added")

-- two processes bring the index up to date at once
for i = 1, 3000 do out(b, ("burst %d of the second session\r\n"):format(i)) end
local script = T.write(dir .. "/index.lua", [[
  local n = assert(require("procy.search").update())
  print(n)
]])
local p1 = assert(proc.spawn({ T.bin, "--config", cfg, "run", script }, { stderr = "stdout" }))
local p2 = assert(proc.spawn({ T.bin, "--config", cfg, "run", script }, { stderr = "stdout" }))
local r1, r2 = p1:wait(), p2:wait()
T.ok(r1.code == 0 and r2.code == 0, "two indexing processes at once", (r1.stdout or "") .. (r2.stdout or ""))
local dup = h:query([[SELECT count(*) AS n FROM (SELECT ref FROM search WHERE kind = 'term' GROUP BY session_id, ref HAVING count(*) > 1)]])[1].n
T.is(dup, 0, "add nothing twice")
T.is(#assert(search.search('"burst 2999"', { raw = true })), 1, "and index everything")

-- the command
local r = T.procy { "--config", cfg, "search", "quartz-falcon" }
T.ok(r.code == 0 and r.stdout:find(a:sub(1, 8), 1, true) and r.stdout:find("[quartz-falcon]", 1, true)
  and r.stdout:find("term", 1, true), "procy search: session, kind, the hit in brackets", r.stdout)
r = T.procy { "--config", cfg, "search", "lexer", "--json" }
local j = json.decode(r.stdout)
T.ok(r.code == 0 and type(j) == "table" and #j == 2, "--json: the hits", r.stdout)
r = T.procy { "--config", cfg, "search", "nothing-like-this" }
T.ok(r.code == 1 and r.stderr:find("no hit", 1, true), "no hit: exit 1, said", r.stderr)
T.is(T.procy({ "--config", cfg, "search" }).code, 2, "no query: a usage error")

-- a secret indexed before its pattern was set: the hit's marks do not
-- break the pattern; the snippet is shown masked, with no hit marked
do
  h:exec([[INSERT INTO turns(session_id, seq, source, prompt, started_at, status)
    VALUES (?, 2, 'human', 'deploy with ACME-INTERNAL-7f3a9c2e11 tonight', ?, 'done')]], b, t0 + 30)
  assert(search.update())
  local own = T.write(dir .. "/own.lua", ("return { db = %q, redact = { 'ACME%%-INTERNAL%%-%%x+' } }"):format(dir .. "/rec.db"))
  for _, q in ipairs { "INTERNAL", "7f3a9c2e11", "tonight" } do
    local r = T.procy { "--config", own, "search", q, "--json" }
    T.ok(r.code == 0 and not r.stdout:find("7f3a9c2e11", 1, true) and r.stdout:find("[REDACTED]", 1, true),
      "searching '" .. q .. "' after the pattern was set: the secret masked in the snippet", r.stdout .. r.stderr)
  end
end

proc.run { "rm", "-rf", dir }
return T.done()
