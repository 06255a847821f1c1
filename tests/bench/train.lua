-- tests/bench/train: see the shell script next to it.
package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local measure = require "lib.measure"
local core = require "procy.core"
local db = require "procy.db"
local json = require "procy.json"
local proc = require "procy.proc"
local evolve = require "procy.evolve"

local a = { ... }
local turns_n, corr_n = tonumber(a[1]) or 100000, tonumber(a[2]) or 10000
local bin = os.getenv("PROCY_BENCH_BIN") or "build/procy"
local dir = os.tmpname()
os.remove(dir)
assert(require("procy.fs").mkdir(dir))
local record = dir .. "/rec.db"

-- the record: sessions of 1,000 turns, prompts of a few hundred bytes
local h = assert(db.open(record))
local per = 1000
h:transaction(function()
  local now = math.floor(core.time() * 1e6)
  for s = 1, math.ceil(turns_n / per) do
    local sid = ("bench%011d"):format(s)
    h:exec([[INSERT INTO sessions(id, started_at, cwd, argv, status, mode) VALUES (?, ?, '/w', '["claude"]', 'exited', 'pty')]],
      sid, now)
    for t = 1, math.min(per, turns_n - (s - 1) * per) do
      h:exec([[INSERT INTO turns(session_id, seq, source, prompt, response, started_at, status) VALUES (?, ?, ?, ?, ?, ?, 'done')]],
        sid, t, t % 10 == 0 and "proxy" or "human",
        ("turn %d of session %d: make the parser handle nested quotes and report the column of the error. "):format(t, s):rep(2),
        ("I changed parse() in turn %d; the tests pass. "):format(t):rep(4), now + t)
    end
  end
  local run_id = "benchrun0001"
  h:exec([[INSERT INTO evolve_runs(id, session_id, cwd, task, recipe, started_at, status) VALUES (?, ?, '/w', 't', 'r', ?, 'done')]],
    run_id, ("bench%011d"):format(1), now)
  for i = 1, 2000 do
    local msgs = json.encode(evolve.messages { task = "make the parser faster", next_seq = i,
      last_response = "answer " .. i }, { sort = true })
    h:exec([[INSERT INTO tries(run_id, seq, prompt, session_id, turn_seq, status, score, improved, messages, started_at)
      VALUES (?, ?, ?, ?, ?, 'ok', ?, ?, ?, ?)]], run_id, i, "SET " .. i, ("bench%011d"):format(1), i, i % 7, i % 3 == 0 and 1 or 0,
      msgs, now + i)
  end
  for i = 1, corr_n do
    local s, t = (i % math.ceil(turns_n / per)) + 1, (i % per) + 1
    local ctx = json.encode(evolve.messages { task = "session task " .. s, next_seq = t, last_response = "answer " .. t },
      { sort = true })
    h:exec([[INSERT INTO corrections(session_id, turn_seq, original, corrected, context, created_at, kind, source)
      VALUES (?, ?, ?, ?, ?, ?, 'corrected', 'human')]], ("bench%011d"):format(s), t, "the prompt " .. i,
      ("a better prompt, number %d, that says what to test"):format(i), ctx, now + i)
  end
end)
h:close()

local function timed(argv, opts)
  local t0 = core.now()
  local p = assert(proc.spawn(argv, opts))
  local peak = 0
  while true do
    local r = p:wait(0.05)
    peak = measure.peak_kb(p:pid(), peak)
    if r then return r, core.now() - t0, peak end
  end
end

print(("procy %s: %d turns in %d sessions, %d corrections, 2000 tries"):format(core.version, turns_n,
  math.ceil(turns_n / per), corr_n))
local r, secs, peak = timed { bin, "--db", record, "train", "export", "--format", "trl-sft,trl-kto", "-o", dir .. "/out" }
assert(r.code == 0, r.stderr)
local rows = 0
for _, name in ipairs { "trl-sft.train.jsonl", "trl-kto.train.jsonl" } do
  local f = assert(io.open(dir .. "/out/" .. name))
  for _ in f:lines() do rows = rows + 1 end
  f:close()
end
print(("procy train export (trl-sft, trl-kto): %.2f s, peak RSS %.1f MB, %d rows (target <= 5 s, <= 100 MB)"):format(
  secs, peak / 1024, rows))
local have = proc.run { "sh", "-c", "command -v sqlite3" }
if have and have.code == 0 then
  local _, s2 = timed({ "sqlite3", "-json", record,
    "SELECT * FROM turns; SELECT * FROM corrections; SELECT * FROM tries;" }, { stdout = false })
  print(("sqlite3 -json of the same rows: %.2f s; procy / sqlite3: %.1fx"):format(s2, secs / s2))
else
  print("sqlite3 -json: not installed (apt-get install sqlite3)")
end
proc.run { "rm", "-rf", dir }
