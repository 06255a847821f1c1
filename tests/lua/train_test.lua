-- procy train export on a seeded record: every format, each row checked
-- against its consumer's documented schema; the prompt side rendered as
-- inference (and !correct) renders it; redaction again; dedupe, the split,
-- filters, and an export with nothing in it.
local T = require "lib.tap"
local json = require "procy.json"
local config = require "procy.config"
local store = require "procy.store"

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
T.ok(same(found["make the parser faster"], evolve.messages { task = "make the parser faster", next_seq = 1 }),
  "which is evolve's template on the session at that turn")
T.ok(same(found["write the docs"], evolve.messages { task = "write the docs", next_seq = 1 }), "per session")
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

-- ---- bad input -----------------------------------------------------------------------------
r = procy { "--session", empty:sub(1, 8), "-o", dir .. "/none" }
T.ok(r.code == 1 and r.stderr:find("ENODATA: nothing to export", 1, true), "nothing to export: a clear error, exit 1", r.stderr)
T.ok(not require("procy.fs").stat(dir .. "/none"), "and no file or directory left behind")
r = procy { "--format", "parquet" }
T.ok(r.code == 1 and r.stderr:find("unknown format 'parquet'", 1, true), "an unknown format is named", r.stderr)
r = procy { "--eval-fraction", "1.5" }
T.is(r.code, 1, "an eval fraction out of range is refused")

require("procy.proc").run { "rm", "-rf", dir }
return T.done()
