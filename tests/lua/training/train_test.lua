-- procy train export on a seeded record: every format, each row checked
-- against its consumer's documented schema; the prompt side rendered as
-- inference (and !correct) renders it; redaction again; dedupe, the split,
-- filters, and an export with nothing in it.
local T = require "lib.tap"
local json = require "procy.json"
local config = require "procy.config"
local store = require "procy.store"
local core = require "procy.core"
local proc = require "procy.proc"

local dir = T.tmpdir()
local record = dir .. "/rec.db"
assert(config.load { config = T.write(dir .. "/procy.lua", ("return { db = %q }"):format(record)) })
local h = store.open()
local evolve = require "procy.evolve"
local corrections = require "procy.corrections"

-- ---- the record: two sessions, an evolve run, corrections of every kind ----------------
local key = "sk-ant-api03-" .. ("Q"):rep(40)
local a = assert(store.new_session { argv = { "claude" }, cwd = dir, mode = "pty" })
local b = assert(store.new_session { argv = { "claude" }, cwd = dir, mode = "pty" })
local empty = assert(store.new_session { argv = { "claude" }, cwd = dir, mode = "pty" })
local function turn(session, seq, source, prompt, response)
  h:exec([[INSERT INTO turns(session_id, seq, source, prompt, response, started_at, status)
           VALUES (?, ?, ?, ?, ?, ?, 'done')]], session, seq, source, prompt, response, store.now_us())
end
turn(a, 1, "human", "make the parser faster", "I made it faster.")
turn(a, 2, "proxy", "SET 5", "done: value 5")
turn(a, 3, "proxy", "SET 2", "done: value 2")
-- a secret that reached a turn before the rules knew it (an old record)
turn(a, 4, "human", "use the key " .. key .. " for the test server", nil)
turn(b, 1, "human", "write the docs", "Docs written.")
local run = store.new_run { session = a, cwd = dir, task = "make the parser faster", recipe = "recipes/evolve.lua" }
local m2 = evolve.messages { task = "make the parser faster", next_seq = 1 }
local m3 = evolve.messages { task = "make the parser faster", next_seq = 2, last_response = "done: value 5" }
store.add_try(run.id, { seq = 0, session_id = a, status = "ok" })
store.add_try(run.id, { seq = 1, prompt = "SET 5", session_id = a, messages = m2 })
store.update_try(run.id, 1, { turn_seq = 2, score = 5, status = "ok", improved = true })
store.add_try(run.id, { seq = 2, prompt = "SET 2", session_id = a, messages = m3 })
store.update_try(run.id, 2, { turn_seq = 3, score = 2, status = "ok", improved = false })
store.correct { session = a, run = run.id, try = 1, original = "SET 5", corrected = "SET 5", kind = "accepted",
  source = "proxy", context = m2 }
-- the person corrects the human prompt of turn 1, twice the same (a duplicate)
local t1 = corrections.turn(a, 1)
local ctx1 = corrections.messages(t1)
for _ = 1, 2 do assert(corrections.add { session = a, turn = 1, corrected = "make parse() twice as fast, keep the API" }) end
assert(corrections.add { session = a, turn = 3, corrected = "SET 9: bigger is better" })

local function procy(args)
  local argv = { "--db", record, "train", "export" }
  for _, x in ipairs(args) do argv[#argv + 1] = x end
  return T.procy(argv, { cwd = dir })
end
local function jsonl(path)
  local rows = {}
  for line in (T.read(path) or ""):gmatch("[^\n]+") do rows[#rows + 1] = assert(json.decode(line)) end
  return rows
end
local function keys(t)
  local k = {}
  for name in pairs(t) do k[#k + 1] = name end
  table.sort(k)
  return table.concat(k, ",")
end
-- a chat message as TRL and OpenAI take them
local function is_messages(list, last_role)
  if type(list) ~= "table" or #list == 0 then return false end
  for _, m in ipairs(list) do
    if keys(m) ~= "content,role" or type(m.content) ~= "string"
       or not (m.role == "system" or m.role == "user" or m.role == "assistant") then return false end
  end
  return not last_role or list[#list].role == last_role
end
local function one_assistant(list) return type(list) == "table" and #list == 1 and is_messages(list, "assistant") end

-- ---- every format ----------------------------------------------------------------------
local out = dir .. "/all"
local r = procy { "--format", "trl-sft,trl-dpo,trl-kto,openai-sft,openai-dpo,alpaca", "-o", out }
T.is(r.code, 0, "an export in every format", r.stderr)
local schema = {
  ["trl-sft"] = function(row) return keys(row) == "messages" and is_messages(row.messages, "assistant") end,
  ["openai-sft"] = function(row) return keys(row) == "messages" and is_messages(row.messages, "assistant") end,
  ["trl-dpo"] = function(row)
    return keys(row) == "chosen,prompt,rejected" and is_messages(row.prompt, "user") and one_assistant(row.chosen)
      and one_assistant(row.rejected)
  end,
  ["trl-kto"] = function(row)
    return keys(row) == "completion,label,prompt" and is_messages(row.prompt, "user") and one_assistant(row.completion)
      and type(row.label) == "boolean"
  end,
  ["openai-dpo"] = function(row)
    return keys(row) == "input,non_preferred_output,preferred_output" and keys(row.input) == "messages"
      and is_messages(row.input.messages, "user") and one_assistant(row.preferred_output)
      and one_assistant(row.non_preferred_output)
  end,
  alpaca = function(row)
    return keys(row) == "input,instruction,output" and type(row.instruction) == "string" and type(row.input) == "string"
      and type(row.output) == "string" and row.instruction ~= "" and row.input ~= ""
  end,
}
local rows = {}
for format, ok in pairs(schema) do
  rows[format] = jsonl(out .. "/" .. format .. ".train.jsonl")
  local bad = 0
  for _, row in ipairs(rows[format]) do if not ok(row) then bad = bad + 1 end end
  T.ok(#rows[format] > 0 and bad == 0, ("%s: %d rows, each as its consumer documents it"):format(format, #rows[format]),
    bad .. " bad")
end
-- human a1, a4, b1; corrections of a1 (twice: one a duplicate) and of a3; the try that improved
T.is(#rows["trl-sft"], 6, "SFT: three human prompts, two corrections (the duplicate dropped), one desirable proxy prompt")
T.is(#rows["trl-dpo"], 2, "DPO: one pair per distinct correction")
-- corrections of a1 and a3 twice each (good, bad); try 1 good; try 2 bad is
-- the same row as a3's correction's bad one (same prompt, same text): once
T.is(#rows["trl-kto"], 5, "KTO: each correction twice (good, bad), and the judged tries, a row once")

-- the prompt side is what inference (and !correct) render
local function prompt_of(row) local p = {} for i = 1, #row.messages - 1 do p[i] = row.messages[i] end return p end
local function same(x, y) return json.encode(x, { sort = true }) == json.encode(y, { sort = true }) end
local found = {}
for _, row in ipairs(rows["trl-sft"]) do
  local target = row.messages[#row.messages].content
  found[target] = prompt_of(row)
end
T.ok(same(found["make the parser faster"], ctx1), "a human prompt's prompt side is !correct's context for it")
T.ok(same(found["make the parser faster"], evolve.messages { task = "make the parser faster" }),
  "which is evolve's template on the session at that turn")
T.ok(same(found["write the docs"], evolve.messages { task = "write the docs" }), "per session")
T.ok(not found["make the parser faster"][2].content:find("Objective: ?", 1, true)
  and found["make the parser faster"][2].content:find("Write the next prompt.", 1, true),
  "a person's prompt: no unknown objective, and no turn number passed off as a try's", found["make the parser faster"][2].content)
T.ok(same(found["make parse() twice as fast, keep the API"], ctx1), "a correction's prompt side is its recorded context")
T.ok(same(found["SET 5"], m2), "a proxy prompt's is the messages its try recorded")
T.ok(not found["SET 2"], "a try that did not improve is not an SFT target")
local secret = found["use the key [REDACTED] for the test server"]
T.ok(secret and not T.read(out .. "/trl-sft.train.jsonl"):find(key, 1, true), "a secret is redacted again on the way out")
local dpo = rows["trl-dpo"][1]
T.is(dpo.chosen[1].content .. " | " .. dpo.rejected[1].content, "make parse() twice as fast, keep the API | make the parser faster",
  "DPO: chosen the correction, rejected the original")
local labels = {}
for _, row in ipairs(rows["trl-kto"]) do labels[row.completion[1].content] = row.label end
T.ok(labels["SET 5"] == true and labels["SET 2"] == false and labels["SET 9: bigger is better"] == true,
  "KTO: desirable and undesirable from the tries' outcomes and the corrections")
local alp = {}
for _, row in ipairs(rows.alpaca) do if row.output == "make the parser faster" then alp = row end end
T.ok(alp.instruction == ctx1[1].content and alp.input == ctx1[2].content and alp.output == "make the parser faster",
  "alpaca: instruction the system message, input the user's, output the target")
local card = json.decode(T.read(out .. "/dataset.json"))
T.ok(card.formats["trl-sft"].duplicates == 1 and card.formats["trl-sft"].by_category.human == 3 and card.formats["trl-sft"].by_category.corrected == 2
  and card.sessions == 2
  and card.procy and #card.template_sha256 == 64, "the card: counts, duplicates, sources, version, template hash")
T.like(T.read(out .. "/dataset.md"), "| trl%-sft | 6 | 0 | 1 | 3 | 2 | 1 |", "and dataset.md says the same for people")

-- one prompt and completion get one label in KTO, a person's: an edited
-- prompt ("SET 7" for "SET 6") whose try then did not improve (a record
-- of its own, written as the recipe writes it)
do
  local other = dir .. "/kto.db"
  local k = assert(require("procy.db").open(other))
  local m4 = json.encode(evolve.messages { task = "t", next_seq = 1 })
  k:exec("INSERT INTO evolve_runs(id, cwd, task, started_at) VALUES ('run2', ?, 't', 1)", dir)
  k:exec([[INSERT INTO tries(run_id, seq, prompt, messages, status, score, improved, started_at)
    VALUES ('run2', 1, 'SET 7', ?, 'ok', 1, 0, 1)]], m4)
  k:exec([[INSERT INTO corrections(run_id, try_seq, original, corrected, kind, source, context, created_at)
    VALUES ('run2', 1, 'SET 6', 'SET 7', 'edited', 'proxy', ?, 1)]], m4)
  k:close()
  r = T.procy({ "--db", other, "train", "export", "--format", "trl-kto", "-o", dir .. "/kto" }, { cwd = dir })
  local ks = {}
  for _, row in ipairs(jsonl(dir .. "/kto/trl-kto.train.jsonl")) do
    ks[#ks + 1] = row.completion[1].content .. "=" .. tostring(row.label)
  end
  table.sort(ks)
  T.is(table.concat(ks, " "), "SET 6=false SET 7=true", "KTO: the person's label wins; no row says the opposite", r.stderr)
  T.is(json.decode(T.read(dir .. "/kto/dataset.json")).formats["trl-kto"].conflicts, 1, "the card counts the conflict")
end

-- ---- options -----------------------------------------------------------------------------
r = procy { "--no-dedupe", "-o", dir .. "/dup" }
T.is(#jsonl(dir .. "/dup/trl-sft.train.jsonl"), 7, "--no-dedupe keeps the duplicate")
r = procy { "--category", "human", "--session", b:sub(1, 6), "-o", dir .. "/b" }
T.is(#jsonl(dir .. "/b/trl-sft.train.jsonl"), 1, "--category and --session filter")
r = procy { "--category", "proxy", "--format", "trl-kto", "--min-score", "6", "-o", dir .. "/min" }
local mins = jsonl(dir .. "/min/trl-kto.train.jsonl")
T.ok(#mins == 1 and mins[1].label == false, "--min-score keeps desirable prompts of that score or more (undesirable stay)")
local split = {}
for i = 1, 2 do
  r = procy { "--eval-fraction", "0.5", "--no-dedupe", "-o", dir .. "/split" .. i }
  split[i] = (T.read(dir .. "/split" .. i .. "/trl-sft.eval.jsonl") or "") .. "|" .. (T.read(dir .. "/split" .. i .. "/trl-sft.train.jsonl") or "")
end
local tr, ev = #jsonl(dir .. "/split1/trl-sft.train.jsonl"), #jsonl(dir .. "/split1/trl-sft.eval.jsonl")
T.ok(tr + ev == 7 and tr > 0 and ev > 0, "--eval-fraction holds some rows out", tr .. " + " .. ev)
T.is(split[1], split[2], "the same split every time")

-- no -o: under procy's data directory, never in the project's tree (a
-- snapshot would commit it), and it says where
local proj = dir .. "/project"
require("procy.fs").mkdir(proj)
T.git(proj, "init", "-q")
r = T.procy({ "--db", record, "train", "export" }, { cwd = proj })
local where = r.stdout:match("exported %d+ examples to (%S+)")
local data = os.getenv("XDG_DATA_HOME") .. "/procy/exports/"
T.ok(r.code == 0 and where and where:sub(1, #data) == data and T.read(where .. "/trl-sft.train.jsonl"),
  "without -o the export goes under procy's data directory, and says where", r.stdout .. r.stderr)
T.is(T.git(proj, "status", "--porcelain", "--untracked-files=all"), "", "nothing lands in the project's tree")
r = T.procy({ "--db", record, "train", "export", "-o", "mine" }, { cwd = proj })
T.ok(r.code == 0 and T.read(proj .. "/mine/trl-sft.train.jsonl"), "-o DIR, relative: where it was asked, in the working directory")

-- ---- bad input -----------------------------------------------------------------------------
r = procy { "--session", empty:sub(1, 8), "-o", dir .. "/none" }
T.ok(r.code == 1 and r.stderr:find("ENODATA: nothing to export", 1, true), "nothing to export: a clear error, exit 1", r.stderr)
T.ok(not require("procy.fs").stat(dir .. "/none"), "and no file or directory left behind")
r = procy { "--format", "parquet" }
T.ok(r.code == 1 and r.stderr:find("unknown format 'parquet'", 1, true), "an unknown format is named", r.stderr)
r = procy { "--eval-fraction", "1.5" }
T.is(r.code, 1, "an eval fraction out of range is refused")

-- ---- training jobs: over a fake ssh, a fake trainer ------------------------------------------
local bin = dir .. "/bin"
require("procy.fs").mkdir(bin)
-- ssh as the host sees it: the words after the host are one command for
-- its shell; each call's argv is logged, a word a line
T.write(bin .. "/ssh", [[#!/bin/sh
{ for a in "$@"; do printf '%s\n' "$a"; done; echo ----; } >> "$SSH_LOG"
while [ $# -gt 0 ]; do case "$1" in -o) shift 2;; --) shift; break;; -*) shift;; *) break;; esac; done
host="$1"; shift
if [ "$host" = refuses ]; then echo "ssh: connect to host refuses port 22: Connection refused" >&2; exit 255; fi
exec sh -c "$*"
]])
proc.run { "chmod", "+x", bin .. "/ssh" }
T.write(dir .. "/fake_train.sh", [[
mode=$(cat "$MODE_FILE")
[ -s "$1" ] || { echo "no data at $1" >&2; exit 2; }
echo '{"event": "start", "rows": '"$(wc -l < "$1")"', "method": "'"$2"'"}'
i=1
while :; do
  echo '{"event": "progress", "step": '$i', "total": 4, "loss": '"$(awk "BEGIN { print 2 / $i }")"'}'
  if [ "$mode" = die ] && [ $i = 2 ]; then echo "CUDA error: out of memory" >&2; exit 3; fi
  if [ "$mode" = ok ] && [ $i = 4 ]; then mkdir -p adapter; echo weights > adapter/adapter_model.safetensors; echo '{"event": "done", "output": "adapter"}'; exit 0; fi
  i=$((i + 1)); sleep 0.2
done
]])
T.write(dir .. "/train.lua", ([[return { db = %q, trainer = { host = "gpu1", workdir = %q,
  command = { "sh", %q, "{data}", "{method}" } } }]]):format(record, dir .. "/remote", dir .. "/fake_train.sh"))
local tenv = { PATH = bin .. ":" .. os.getenv("PATH"), SSH_LOG = dir .. "/ssh.log", MODE_FILE = dir .. "/mode", HOME = dir }
local function train(args, conf)
  local argv = { "--config", conf or (dir .. "/train.lua"), "train" }
  for _, x in ipairs(args) do argv[#argv + 1] = x end
  return T.procy(argv, { cwd = dir, env = tenv })
end
local function wait_state(id, want, seconds)
  local deadline, state = core.now() + (seconds or 20), nil
  repeat
    local row = h:query("SELECT state FROM train_jobs WHERE id = ?", id)[1]
    state = row and row.state
    if state == want then return true end
    core.sleep(0.2)
  until core.now() > deadline
  return false, state
end

T.write(dir .. "/mode", "ok")
r = train { "start", "--method", "sft" }
T.is(r.code, 0, "procy train start: over ssh", r.stderr)
local id = r.stdout:match("training job (%x+) started on gpu1")
T.ok(id, "it names the job and the host", r.stdout)
id = id or "none"
T.ok(wait_state(id, "done"), "the job ends done, the watcher having followed it")
local job = h:query("SELECT * FROM train_jobs WHERE id = ?", id)[1] or {}
T.is(job.exit_code, 0, "with the trainer's exit code")
T.like(job.progress or "", '"event":"done"', "its last progress line kept")
local log = {}
for _, l in ipairs(h:query("SELECT line FROM train_log WHERE job_id = ? ORDER BY id", id)) do log[#log + 1] = l.line end
T.like(table.concat(log, "\n"), '"step": 4, "total": 4', "the trainer's log is in the record, line by line")
T.is(T.read(dir .. "/remote/" .. id .. "/data.jsonl"),
  T.read(os.getenv("XDG_DATA_HOME") .. "/procy/exports/train-" .. id .. "/trl-sft.train.jsonl"),
  "a fresh export, staged as it is")
T.ok(T.read(dir .. "/remote/" .. id .. "/train_lora.py"):find("SFTTrainer", 1, true), "with the shipped training script")
local sshlog = T.read(dir .. "/ssh.log") or ""
T.like(sshlog, "\n%-%-\ngpu1\n'sh' '%-c' ", "ssh gets the host after --, and one quoted command for its shell")
T.ok(sshlog:find(" 'procy' '" .. dir .. "/remote/" .. id .. "' ", 1, true) and sshlog:find(require("procy.train").quote(
  require("procy.train").LAUNCH), 1, true), "the scripts are procy's constants; the data (the job's directory) their quoted arguments")
r = train { "status", id }
T.like(r.stdout, "job " .. id .. ": done %(exit 0%), on gpu1", "procy train status JOB")
T.like(r.stdout, "loss:\n", "with the loss curve")
r = train { "log", id }
T.like(r.stdout, '"event": "done"', "procy train log JOB")

T.write(dir .. "/mode", "die")
r = train { "start", "--method", "sft" }
local died = r.stdout:match("training job (%x+) started") or "none"
T.ok(wait_state(died, "failed"), "a trainer that dies mid-run: the job fails")
job = h:query("SELECT * FROM train_jobs WHERE id = ?", died)[1] or {}
T.ok(job.exit_code == 3 and (job.error or ""):find("exited with 3: CUDA error: out of memory", 1, true),
  "with its exit code and the cause it gave", job.error)
T.like(train({ "log", died }).stdout, "CUDA error: out of memory", "and its log kept, the error in it")
T.like(train({ "status", died }).stdout, "error:   the trainer exited with 3: CUDA error: out of memory", "procy train status JOB says the cause")
T.like(train({ "status" }).stdout, died .. "%s+failed%s+gpu1%s+sft%s+the trainer exited with 3: CUDA error", "and the list does")

-- the trainer's libraries are checked where it will run, as it will run
-- (over ssh), before a job starts: a missing one is named at once
T.write(dir .. "/nopkg-python", "#!/bin/sh\nexec python3 -S -I \"$@\"\n") -- a python with no site-packages
proc.run { "chmod", "+x", dir .. "/nopkg-python" }
T.write(dir .. "/train2.lua", ([[return { db = %q, trainer = { host = "gpu1", workdir = %q, python = %q } }]]):format(
  record, dir .. "/remote", dir .. "/nopkg-python"))
local jobs_before = h:query("SELECT count(*) AS n FROM train_jobs")[1].n
r = train({ "start", "--method", "sft" }, dir .. "/train2.lua")
T.is(r.code, 1, "procy train start with the trainer's libraries missing: refused")
T.like(r.stderr, "the trainer cannot run on gpu1: .*No module named 'torch'.*missing: torch, transformers, datasets, peft, trl",
  "naming what is missing, as the host's python said it")
T.like(r.stderr, "checked with: .*nopkg%-python train_lora%.py .*%-%-check", "and how it checked")
local nojob = h:query("SELECT * FROM train_jobs ORDER BY created_at DESC LIMIT 1")[1] or {}
T.ok(h:query("SELECT count(*) AS n FROM train_jobs")[1].n == jobs_before + 1 and nojob.state == "failed" and not nojob.pid,
  "the job never started: it is in the record as failed", nojob.state)
T.like(train({ "status", nojob.id or "none" }, dir .. "/train2.lua").stdout, "error:   the trainer cannot run on gpu1: .*No module named 'torch'",
  "and procy train status says why")

T.write(dir .. "/mode", "long")
r = train { "start", "--method", "kto" }
local long = r.stdout:match("training job (%x+) started") or "none"
local deadline = core.now() + 10
-- until a progress line with a step has come (the trainer's "start" line comes first)
while core.now() < deadline and not ((h:query("SELECT progress FROM train_jobs WHERE id = ?", long)[1] or {}).progress or "")
    :find('"step"', 1, true) do
  core.sleep(0.2)
end
T.like(train({ "status" }).stdout, long .. "%s+running%s+gpu1%s+kto%s+%[", "procy train status: the jobs, one running with progress")
-- the watcher dies (procy's machine rebooted, say): status starts another
local function watcher_pid() return tonumber(((h:query("SELECT watcher FROM train_jobs WHERE id = ?", long)[1] or {}).watcher or ""):match("/(%d+)$")) end
local w1 = watcher_pid()
T.ok(w1 and T.dead(w1) == false, "a watcher follows the running job")
if w1 then proc.run { "kill", "-KILL", tostring(w1) } end
T.ok(w1 and T.gone(w1, 5), "(the watcher killed)")
local lines_before = #h:query("SELECT 1 FROM train_log WHERE job_id = ?", long)
train { "status", long }
deadline = core.now() + 10
while core.now() < deadline and (watcher_pid() == w1 or #h:query("SELECT 1 FROM train_log WHERE job_id = ?", long) <= lines_before + 2) do
  core.sleep(0.2)
end
T.ok(watcher_pid() ~= w1 and #h:query("SELECT 1 FROM train_log WHERE job_id = ?", long) > lines_before + 2,
  "procy train status starts a new watcher (a dead one that init has not reaped counts as dead), and the log goes on")
r = train { "stop", long }
T.is(r.code, 0, "procy train stop JOB", r.stderr .. r.stdout)
T.ok(wait_state(long, "stopped"), "the job is stopped")
local pid = (h:query("SELECT pid FROM train_jobs WHERE id = ?", long)[1] or {}).pid
T.ok(pid and T.gone(pid, 5), "and its trainer is gone")

T.write(dir .. "/refuses.lua", ([[return { db = %q, trainer = { host = "refuses" } }]]):format(record))
r = train({ "start" }, dir .. "/refuses.lua")
T.ok(r.code == 1 and r.stderr:find("ssh to refuses", 1, true) and r.stderr:find("Connection refused", 1, true),
  "a host that refuses ssh: a clear error naming it", r.stderr)
T.write(dir .. "/option.lua", ([[return { db = %q, trainer = { host = "-oProxyCommand=touch /tmp/x" } }]]):format(record))
r = train({ "start" }, dir .. "/option.lua")
T.ok(r.code == 1 and r.stderr:find("is not a host name", 1, true), "a host that looks like an option is refused", r.stderr)

-- ---- deploy: the adapter of the job that is done, to a fake vLLM ---------------------------
local vllm = require("lib.fakevllm").start()
local function deploy(args)
  local argv = { "deploy" }
  for _, x in ipairs(args) do argv[#argv + 1] = x end
  local res
  local t = core.spawn(function() res = train(argv) end) -- the fake server runs in this process
  core.await(t)
  return res
end
r = deploy { "--url", vllm.url }
T.is(r.code, 0, "procy train deploy: the newest job that is done", r.stderr)
T.is(vllm.loaded["procy-" .. id], dir .. "/remote/" .. id .. "/adapter", "loaded under procy-JOB from the job's adapter directory")
T.like(table.concat(vllm.calls, "\n"), "POST /v1/unload_lora_adapter [^\n]*\nPOST /v1/load_lora_adapter [^\n]*\nGET /v1/models",
  "unload first (a name is replaced, not reloaded in place), then load, then /v1/models")
local ad = h:query("SELECT * FROM adapters WHERE name = ?", "procy-" .. id)[1] or {}
T.ok(ad.url == vllm.url and ad.job_id == id and ad.sha256 and #ad.sha256 == 64, "the record keeps the adapter: name, server, job, a hash of its files")
r = deploy { id, "--url", vllm.url, "--name", "procy-" .. id }
T.is(r.code, 0, "deploying the same name again replaces it")
vllm.mode = "refuse"
r = deploy { id, "--url", vllm.url }
T.ok(r.code == 1 and r.stdout:find("--lora-modules procy-" .. id .. "=", 1, true) and r.stderr:find("refuses runtime LoRA", 1, true),
  "a server that refuses runtime updates: the line to restart it with", r.stdout .. r.stderr)
vllm.mode = "error"
r = deploy { id, "--url", vllm.url }
T.ok(r.code == 1 and r.stderr:find("answered 500", 1, true), "a 500 is an error with the server's words", r.stderr)
r = deploy { died, "--url", vllm.url }
T.ok(r.code == 1 and r.stderr:find("is failed", 1, true), "a job that failed has no adapter to deploy", r.stderr)
r = deploy { id, "--url", "http://127.0.0.1:1" }
T.ok(r.code == 1 and r.stderr:find("cannot be reached", 1, true), "a server that is down: said so", r.stderr)
vllm.mode = "ok"
-- with model.adapter set, the proxy model's calls ask for the adapter and carry its hash
assert(config.load { config = T.write(dir .. "/with-adapter.lua", ([[return { db = %q,
  model = { url = %q, adapter = %q } }]]):format(record, vllm.url, "procy-" .. id)) })
local text, info = require("procy.model").chat({ { role = "user", content = "next prompt?" } })
T.is(text, "SET 5", "a proxy-model call after deploy")
T.is(vllm.asked[#vllm.asked], "procy-" .. id, "asks the server for the adapter by name")
T.is(info and info.adapter_sha256, ad.sha256, "and knows the adapter's hash (what a try records)")
T.is((h:query("SELECT model FROM api_calls WHERE role = 'proxy-model' ORDER BY id DESC LIMIT 1")[1] or {}).model,
  "procy-" .. id, "the recorded call names the adapter")

-- a server started with --api-key: every request carries the model's key
vllm.key = "vllm-key-0123456789"
local keyed = T.write(dir .. "/keyed.lua", ([[return { db = %q, model = { url = %q, name = "Qwen/base", key_env = "VLLM_KEY" } }]])
  :format(record, vllm.url))
local function deploy_with(conf, args, env)
  local argv = { "--config", conf, "train", "deploy" }
  for _, x in ipairs(args) do argv[#argv + 1] = x end
  local res
  core.await(core.spawn(function() res = T.procy(argv, { cwd = dir, env = env or tenv }) end))
  return res
end
local kenv = {}
for k, v in pairs(tenv) do kenv[k] = v end
kenv.VLLM_KEY = vllm.key
r = deploy_with(keyed, { id }, tenv)
T.ok(r.code == 1 and r.stderr:find("refused procy (401)", 1, true) and r.stderr:find("key_env", 1, true),
  "without the key a --api-key server refuses: said, naming key_env", r.stderr)
r = deploy_with(keyed, { "trained", id }, kenv)
T.is(r.code, 0, "with model.key_env set, deploy sends the key (Authorization: Bearer)", r.stderr)
-- both directions, and what is served
r = deploy_with(keyed, { "status" }, kenv)
T.like(r.stdout, "procy asks the adapter procy%-" .. id .. " %(set by deploy trained", "deploy status: what procy asks for", r.stdout)
T.like(r.stdout, "served    base, procy%-" .. id, "and what the server lists")
r = deploy_with(keyed, { "base" }, kenv)
T.ok(r.code == 0 and r.stdout:find("procy now asks " .. vllm.url .. " for its base model (Qwen/base)", 1, true),
  "deploy base: the base model from now on", r.stdout .. r.stderr)
assert(config.load { config = keyed })
local function chat_env(key) -- (the key given as the caller's: this process has no VLLM_KEY)
  return require("procy.model").chat({ { role = "user", content = "next?" } }, { key = key })
end
chat_env(vllm.key)
T.is(vllm.asked[#vllm.asked], "Qwen/base", "the proxy model's calls ask for the base model")
T.like(deploy_with(keyed, { "status" }, kenv).stdout, "procy asks the base model Qwen/base %(set by deploy base", "status says so")
r = deploy_with(keyed, { "trained", id }, kenv)
T.is(r.code, 0, "deploy trained: back to the adapter", r.stderr)
chat_env(vllm.key)
T.is(vllm.asked[#vllm.asked], "procy-" .. id, "the calls ask for the adapter again")
vllm.key = nil
vllm.close()

-- ---- the JSON API: corrections and training, as the web UI will read them -------------
do
  local http = require "procy.http"
  local serve = require "procy.serve"
  local srv = assert(serve.start { port = 0, upstream = "http://127.0.0.1:1", openai = "http://127.0.0.1:1" })
  local base = srv.url .. srv.mount -- the monitor's page's own place, where its cookie is sent
  local cookie = ("procy-%d=%s"):format(srv.port, srv.token) -- as the monitor's page has it
  local csrf = json.decode(assert(http.request { headers = { cookie = cookie }, url = base .. "/api/csrf" }).body).csrf
  local function get(path)
    local res = assert(http.request { headers = { cookie = cookie }, url = base .. path })
    return res.status, json.decode(res.body)
  end
  local st, v = get("/api/corrections")
  T.ok(st == 200 and #v.corrections >= 3 and v.corrections[1].context == nil, "GET /api/corrections: the list, without contexts")
  local first = v.corrections[#v.corrections].id
  st, v = get("/api/corrections/" .. first)
  T.ok(st == 200 and type(v.context) == "table" and v.context[1].role == "system", "GET /api/corrections/ID: with its context")
  local post = assert(http.request { method = "POST", url = base .. "/api/corrections",
    headers = { cookie = cookie, ["content-type"] = "application/json", ["x-procy-csrf"] = csrf },
    body = json.encode { session = b:sub(1, 8), turn = 1, corrected = "write the docs, with examples", note = "from the API" } })
  local made = json.decode(post.body) or {}
  T.ok(post.status == 201 and made.id, "POST /api/corrections adds one", post.body)
  local c = made.id and h:query("SELECT * FROM corrections WHERE id = ?", made.id)[1] or {}
  T.ok(c.session_id == b and c.corrected == "write the docs, with examples" and c.context, "with its context, as !correct keeps it")
  local form = assert(http.request { method = "POST", url = base .. "/api/corrections",
    headers = { cookie = cookie, ["content-type"] = "text/plain", ["x-procy-csrf"] = csrf }, body = "{}" })
  T.is(form.status, 415, "a body that is not JSON is refused (what a form on another site could send)")
  local evil = assert(http.request { method = "POST", url = base .. "/api/corrections",
    headers = { cookie = cookie, ["content-type"] = "application/json", origin = "http://evil.example" }, body = "{}" })
  T.is(evil.status, 403, "a request from another origin is refused")
  local del = assert(http.request { method = "DELETE", url = base .. "/api/corrections/" .. tostring(made.id),
    headers = { cookie = cookie, ["x-procy-csrf"] = csrf } })
  T.is(del.status, 200, "DELETE /api/corrections/ID")
  T.is(#h:query("SELECT 1 FROM corrections WHERE id = ?", made.id or 0), 0, "removes it")
  st, v = get("/api/training/jobs")
  T.ok(st == 200 and #v.jobs == 4, "GET /api/training/jobs (the one that never started among them)")
  st, v = get("/api/training/jobs/" .. id)
  T.ok(st == 200 and v.state == "done" and #v.losses == 4, "GET /api/training/jobs/ID: its state and losses")
  st, v = get("/api/training/jobs/" .. id .. "/log?after=0")
  T.ok(st == 200 and #v.lines > 0 and v.lines[1].line:find('"event"', 1, true), "…/log: its lines")
  st, v = get("/api/training/adapters")
  T.ok(st == 200 and v.adapters[1] and v.adapters[1].name == "procy-" .. id, "GET /api/training/adapters")

  -- the monitor's buttons: edit a correction, download an export, start and stop a job, compare runs
  local function send(method, path, value)
    local res = assert(http.request { method = method, url = base .. path, body = value and json.encode(value),
      headers = { cookie = cookie, ["content-type"] = "application/json", ["x-procy-csrf"] = csrf } })
    return res.status, json.decode(res.body) or res.body
  end
  local last = h:query("SELECT id FROM corrections WHERE kind = 'corrected' ORDER BY id DESC LIMIT 1")[1].id
  st = send("PATCH", "/api/corrections/" .. last, { corrected = "SET 9, then check it", note = "second thoughts" })
  local row = h:query("SELECT corrected, note, original FROM corrections WHERE id = ?", last)[1]
  T.ok(st == 200 and row.corrected == "SET 9, then check it" and row.note == "second thoughts" and row.original == "SET 2",
    "PATCH /api/corrections/ID changes the text and note, not the original")
  T.is((send("PATCH", "/api/corrections/" .. last, { corrected = "  " })), 400, "an empty correction is refused")
  local dl = assert(http.request { headers = { cookie = cookie }, url = base .. "/api/training/export?format=trl-sft&session=" .. a })
  T.ok(dl.status == 200 and dl.body:find("SET 9, then check it", 1, true) and (dl.headers["content-disposition"] or ""):find("trl%-sft%.train%.jsonl"),
    "GET /api/training/export: the training file, as a download", dl.status .. " " .. dl.body:sub(1, 200))
  T.is(assert(http.request { headers = { cookie = cookie }, url = base .. "/api/training/export?format=trl-sft&session=" .. empty }).status, 404,
    "an export with nothing in it is 404, said")
  st, v = get("/api/runs/compare?by=adapter")
  T.ok(st == 200 and #v.series >= 1 and v.series[1].curve and v.target, "GET /api/runs/compare?by=adapter: the series", json.encode(v))
  -- a job started from the page runs the trainer of the project's settings (here, this machine's)
  local conf = T.write(dir .. "/local.lua", ([[return { db = %q, trainer = { workdir = %q,
    command = { "sh", %q, "{data}", "{method}" } } }]]):format(record, dir .. "/local", dir .. "/fake_train.sh"))
  assert(config.load { config = conf })
  st, v = send("POST", "/api/training/jobs", { method = "sft" })
  local started = type(v) == "table" and v.id or "none"
  T.ok(st == 201 and started ~= "none", "POST /api/training/jobs starts a job", json.encode(v))
  T.ok(wait_state(started, "running"), "which runs")
  st, v = send("POST", "/api/training/jobs/" .. started .. "/stop")
  T.ok(st == 200 and wait_state(started, "stopped"), "POST /api/training/jobs/ID/stop stops it", json.encode(v))
  T.is((send("POST", "/api/training/jobs", { method = "ppo" })), 400, "a method procy does not know is refused")
  serve.stop(srv)
end

-- the shipped training script's data path, on the real export
local py = proc.run { "sh", "-c", "command -v python3" }
if py and py.code == 0 then
  local script = dir .. "/train_lora.py"
  T.write(script, require("procy.fs").shipped("examples/training/train_lora.py"))
  for _, case in ipairs { { "trl-sft", "sft" }, { "trl-dpo", "dpo" }, { "trl-kto", "kto" } } do
    r = proc.run { "python3", script, "--data", out .. "/" .. case[1] .. ".train.jsonl", "--dry-run" }
    local ev = r and json.decode(r.stdout or "")
    T.ok(r.code == 0 and ev and ev.event == "dry-run" and ev.method == case[2] and ev.rows == #rows[case[1]],
      "train_lora.py --dry-run reads the " .. case[1] .. " export as it is", (r.stdout or "") .. (r.stderr or ""))
  end
  T.write(dir .. "/bad.jsonl", '{"messages": [{"role": "user", "content": "x"}]}\n')
  r = proc.run { "python3", script, "--data", dir .. "/bad.jsonl", "--method", "sft", "--dry-run" }
  T.ok(r.code ~= 0 and r.stderr:find("bad.jsonl:1: not a sft row", 1, true), "a bad row is named by file and line", r.stderr)
else
  T.skip("train_lora.py --dry-run", "python3 is not installed")
end

require("procy.proc").run { "rm", "-rf", dir }
return T.done()
