-- recipes/train_export.lua — the record as training data for the proxy model.
--
--   procy train export [--format F[,F...]] [--category C[,C...]] [--session ID] [--run RUN]
--                      [--since T] [--until T] [--min-score X] [--no-dedupe]
--                      [--eval-fraction F] [--seed N] [-o DIR]
--   !train [the same options]
--
-- Three categories, as examples {category, prompt = messages, target, ...}:
--   human      a person's own prompts: SFT targets;
--   corrected  a person's corrections: SFT target the correction; a DPO
--              pair (chosen the correction, rejected the original);
--   proxy      prompts the proxy model wrote that a person accepted or that
--              were kept because the try improved the score: SFT; for KTO
--              also the rejected ones and those that did not improve
--              (desirable and undesirable).
-- The prompt side of every row is the messages the proxy model is given at
-- inference (evolve.messages, or what a try recorded it was given), byte
-- for byte. Formats:
--   trl-sft     {"messages": [..., {"role": "assistant", "content": TARGET}]}
--   trl-dpo     {"prompt": [...], "chosen": [assistant], "rejected": [assistant]}
--   trl-kto     {"prompt": [...], "completion": [assistant], "label": true|false}
--   openai-sft  {"messages": [...]} (OpenAI fine-tuning, supervised)
--   openai-dpo  {"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}
--   alpaca      {"instruction": SYSTEM, "input": USER, "output": TARGET}
-- Every text is redacted again (the export is share-safe). DIR gets
-- FORMAT.train.jsonl (and FORMAT.eval.jsonl with --eval-fraction), and
-- dataset.md / dataset.json: counts, sources, procy's version, the
-- template's hash. Steps (a project replaces one in procy.lua:
-- train_export = { collect = function(ctx, out) ... end }):
--   collect(ctx, emit)   emit(example) for each example found in the record
--   row(ctx, format, ex) -> the JSON object(s) of ex in format (none: not for it)
--   card(ctx, out)       dataset.md and dataset.json (out.sink: what was written)

local core = require "procy.core"
local fs = require "procy.fs"
local hash = require "procy.hash"
local json = require "procy.json"
local redact = require "procy.redact"
local store = require "procy.store"
local corrections = require "procy.corrections"
local evolve = require "procy.evolve"

local R = {}
local steps = {}
R.steps = steps
R.setting = "train_export"
R.step_names = { "collect", "row", "card" }

R.formats = { "trl-sft", "trl-dpo", "trl-kto", "openai-sft", "openai-dpo", "alpaca" }
R.categories = { "human", "corrected", "proxy" }

-- template_hash() -> the digest of what the template renders for a fixed
-- state: it changes exactly when the prompt side of a new export would
function R.template_hash()
  local probe = evolve.messages { task = "probe task", objective = "maximize probe", last_response = "probe answer",
    feedback = "probe feedback", next_seq = 2, corrections = { { original = "a", corrected = "b" } } }
  return hash.sha256(json.encode(probe, { sort = true }))
end

-- redact.text, remembered: every row repeats the template's system text,
-- and a conversation its task (a bounded memo, forgotten when full)
local memo, memo_n = {}, 0
local function scrub(text)
  local r = memo[text]
  if r then return r end
  r = redact.text(text)
  if memo_n >= 4096 then memo, memo_n = {}, 0 end
  memo[text], memo_n = r, memo_n + 1
  return r
end

-- messages with every text redacted (role and content, as the model takes
-- them), made once per example whatever the number of formats
local function clean(ex)
  if ex.clean then return ex.clean end
  local out = json.array()
  for i, m in ipairs(ex.prompt) do out[i] = { role = m.role, content = scrub(tostring(m.content or "")) } end
  ex.clean = out
  return out
end

local function decode_messages(text)
  local m = text and json.decode(text)
  return type(m) == "table" and #m > 0 and m or nil
end

-- pages(h, sql, keys, args) -> an iterator over the rows of sql, a page
-- at a time (so a record of any size is read in bounded memory): sql has
-- "%s" where the keyset condition goes and orders by the key columns
local PAGE = 2000
local function pages(h, sql, keys, ...)
  local args, after, buf, i = table.pack(...), nil, {}, 0
  local cond = "(" .. table.concat(keys, ", ") .. ") > (" .. ("?, "):rep(#keys):sub(1, -3) .. ")"
  return function()
    i = i + 1
    if i > #buf then
      if buf.done then return nil end
      local a, k = table.move(args, 1, args.n, 1, {}), args.n
      if after then for j = 1, #keys do a[k + j] = after[j] end k = k + #keys end
      a[k + 1] = PAGE
      buf = assert(h:query(sql:format(after and cond or "1") .. " LIMIT ?", table.unpack(a, 1, k + 1)))
      buf.done, i = #buf < PAGE, 1
      if #buf == 0 then return nil end
      local last = buf[#buf]
      after = {}
      for k, col in ipairs(keys) do after[k] = last[col:match("[%w_]+$")] end
    end
    return buf[i]
  end
end

-- collect: the examples the options ask for, from the record, each handed
-- to emit(example) as it is found
function steps.collect(ctx, emit)
  local o, h = ctx.o, ctx.db
  local since, until_ = o.since_us, o.until_us
  if ctx.want.human and not o.run then
    -- the state each human prompt's inference would have had, built in one
    -- pass as corrections.state builds it for one turn
    local first = {}
    for _, r in ipairs(assert(h:query([[SELECT session_id, prompt, min(seq) FROM turns WHERE source = 'human'
        AND prompt IS NOT NULL AND (?1 IS NULL OR session_id = ?1) GROUP BY session_id]], o.session))) do
      first[r.session_id] = r.prompt
    end
    local session, last
    for r in pages(h, [[SELECT session_id, seq, source, prompt, response, started_at FROM turns
        WHERE (?1 IS NULL OR session_id = ?1) AND %s ORDER BY session_id, seq]], { "session_id", "seq" }, o.session) do
      if r.session_id ~= session then session, last = r.session_id, nil end
      if r.source == "human" and r.prompt and (not since or r.started_at >= since) and (not until_ or r.started_at < until_) then
        emit { category = "human", prompt = evolve.messages(corrections.state_of(first[session] or r.prompt, last, r.seq)),
               target = r.prompt, source = { session = session, turn = r.seq } }
      end
      if r.response then last = r.response end
    end
  end
  if ctx.want.corrected then
    for r in pages(h, [[SELECT * FROM corrections WHERE target = 'prompt' AND kind IN ('corrected', 'edited')
        AND (?1 IS NULL OR session_id = ?1) AND (?2 IS NULL OR run_id = ?2)
        AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR created_at < ?4) AND %s ORDER BY id]], { "id" },
        o.session, o.run, since, until_) do
      local msgs = decode_messages(r.context)
      if not msgs and r.session_id and r.turn_seq then
        local turn = corrections.turn(r.session_id, r.turn_seq)
        msgs = turn and corrections.messages(turn)
      end
      if msgs then
        emit { category = "corrected", prompt = msgs, target = r.corrected, rejected = r.original,
               source = { session = r.session_id, turn = r.turn_seq, run = r.run_id, try = r.try_seq, correction = r.id } }
      else
        ctx.skipped.no_context = (ctx.skipped.no_context or 0) + 1
      end
    end
  end
  if ctx.want.proxy then
    for r in pages(h, [[SELECT t.*, (SELECT kind FROM corrections c WHERE c.run_id = t.run_id AND c.try_seq = t.seq
          AND c.kind IN ('accepted', 'rejected') ORDER BY c.id DESC LIMIT 1) AS person_verdict
        FROM tries t WHERE t.seq > 0 AND t.prompt IS NOT NULL AND t.messages IS NOT NULL
        AND (?1 IS NULL OR t.session_id = ?1) AND (?2 IS NULL OR t.run_id = ?2)
        AND (?3 IS NULL OR t.started_at >= ?3) AND (?4 IS NULL OR t.started_at < ?4) AND %s
        ORDER BY t.run_id, t.seq]], { "t.run_id", "t.seq" }, o.session, o.run, since, until_) do
      -- desirable: accepted, or kept as the new best; undesirable: rejected,
      -- failed, or scored and not better; neither: not judged (stopped)
      local good
      if r.intervened == 1 and r.person_verdict == nil then
        -- a person added to what the agent was told: its score is not the
        -- prompt's alone (the prompt with the addition is a correction row)
        ctx.skipped.intervened = (ctx.skipped.intervened or 0) + 1
      elseif r.person_verdict == "accepted" or r.improved == 1 then good = true
      elseif r.person_verdict == "rejected" or r.status == "agent-failed" or r.status == "eval-failed" or r.improved == 0 then
        good = false
      end
      local msgs = decode_messages(r.messages)
      if msgs and good ~= nil and (not o.min_score or not good or (r.score and r.score >= o.min_score)) then
        emit { category = "proxy", prompt = msgs, target = r.prompt, label = good, score = r.score,
               source = { session = r.session_id, turn = r.turn_seq, run = r.run_id, try = r.seq } }
      end
    end
  end
  return true
end

local function assistant(text) return json.array { { role = "assistant", content = text } } end
local function with(msgs, text)
  local out = json.array()
  for i, m in ipairs(msgs) do out[i] = m end
  out[#out + 1] = { role = "assistant", content = text }
  return out
end

-- row: the JSON object of an example in a format, or nil when the format
-- does not take it (a pair format takes pairs; SFT takes desirable ones)
function steps.row(ctx, format, ex)
  local p, target = clean(ex), scrub(ex.target)
  local sft = ex.label ~= false
  local pair = ex.rejected and scrub(ex.rejected)
  if format == "trl-sft" or format == "openai-sft" then
    return sft and { messages = with(p, target) } or nil
  elseif format == "trl-dpo" then
    return pair and { prompt = p, chosen = assistant(target), rejected = assistant(pair) } or nil
  elseif format == "openai-dpo" then
    return pair and { input = { messages = p }, preferred_output = assistant(target),
                      non_preferred_output = assistant(pair) } or nil
  elseif format == "trl-kto" then
    if pair then -- a correction is two examples: the corrected text good, the original not
      return { prompt = p, completion = assistant(target), label = true },
             { prompt = p, completion = assistant(pair), label = false }
    end
    -- a person's own prompt has no verdict: it is an SFT target only
    return ex.label ~= nil and { prompt = p, completion = assistant(target), label = ex.label } or nil
  elseif format == "alpaca" then
    if not sft then return nil end
    local system, user = {}, {}
    for _, m in ipairs(p) do
      if m.role == "system" then system[#system + 1] = m.content else user[#user + 1] = m.content end
    end
    return { instruction = table.concat(system, "\n\n"), input = table.concat(user, "\n\n"), output = target }
  end
end

-- The files of an export, opened at their first row (an export with no
-- rows leaves no file), each row deduplicated within its format and put on
-- its side of the split.
local function sink(ctx)
  local o = ctx.o
  local S = { files = {}, list = {}, counts = {}, seen = {}, labels = {}, total = 0, examples = 0, sessions = {}, runs = {} }
  for _, f in ipairs(ctx.formats) do
    S.counts[f], S.seen[f] = { train = 0, eval = 0, duplicates = 0, by_category = {} }, {}
  end
  local function file(name)
    local f = S.files[name]
    if f then return f end
    if #S.list == 0 then
      local ok, err, code = fs.mkdir(o.o)
      if not ok then error(select(2, core.wrap("cannot make the export's directory", err, code)), 0) end
    end
    local path = o.o .. "/" .. name
    local fh, ferr = io.open(path, "wb")
    if not fh then error("EIO: cannot write " .. tostring(ferr), 0) end
    f = { name = name, path = path, fh = fh, rows = 0 }
    S.files[name], S.list[#S.list + 1] = f, f
    return f
  end
  function S.add(ex)
    S.examples = S.examples + 1
    if ex.source.session then S.sessions[ex.source.session] = true end
    if ex.source.run then S.runs[ex.source.run] = true end
    for _, format in ipairs(ctx.formats) do
      local c, seen = S.counts[format], S.seen[format]
      for _, row in ipairs { ctx.steps.row(ctx, format, ex) } do
        -- keys sorted: the same row is the same text in every export (its
        -- digest decides duplicates and the split)
        local text = json.encode(row, { sort = true })
        local key = hash.sha256(text):sub(1, 20)
        -- a labelled row (KTO): one prompt and completion get one label, the
        -- first found — a person's (corrections come before tries' scores)
        local pc = row.label ~= nil and hash.sha256(json.encode({ row.prompt, row.completion }, { sort = true })):sub(1, 20)
          or nil
        local other = pc and S.labels[format .. pc]
        if other ~= nil and other ~= row.label then
          c.conflicts = (c.conflicts or 0) + 1
        elseif o.dedupe and seen[key] then
          c.duplicates = c.duplicates + 1
        else
          seen[key] = true
          if pc then S.labels[format .. pc] = row.label end
          -- the split follows the row, not its place: the same example is
          -- on the same side in every export with the same seed
          local side = (o.eval_fraction > 0 and tonumber(hash.sha256(key .. o.seed):sub(1, 8), 16) / 2 ^ 32
            < o.eval_fraction) and "eval" or "train"
          local f = file(format .. "." .. side .. ".jsonl")
          if not f.fh:write(text, "\n") then error("EIO: cannot write " .. f.path, 0) end
          f.rows = f.rows + 1
          c[side] = c[side] + 1
          c.by_category[ex.category] = (c.by_category[ex.category] or 0) + 1
          S.total = S.total + 1
        end
      end
    end
  end
  function S.close()
    for _, f in ipairs(S.list) do
      if not f.fh:close() then error("EIO: cannot write " .. f.path, 0) end
    end
  end
  function S.abort()
    for _, f in ipairs(S.list) do pcall(f.fh.close, f.fh) os.remove(f.path) end
    if #S.list > 0 then os.remove(o.o) end
  end
  return S
end

-- card: dataset.md and dataset.json next to the rows: counts per format
-- and category, sources, procy's version, the template's hash, the options
function steps.card(ctx, out)
  local o, S = ctx.o, out.sink
  local function n(t) local k = 0 for _ in pairs(t) do k = k + 1 end return k end
  local card = {
    created_at = os.date("!%Y-%m-%dT%H:%M:%SZ"), procy = core.version, template_sha256 = R.template_hash(),
    record = store.path(), sessions = n(S.sessions), runs = n(S.runs), examples = S.examples,
    skipped = ctx.skipped, categories = ctx.categories, formats = S.counts,
    options = { session = o.session, run = o.run, since = o.since, ["until"] = o["until"], min_score = o.min_score,
                dedupe = o.dedupe, eval_fraction = o.eval_fraction, seed = o.seed },
    files = json.array(), redaction = "procy.redact, applied again to every text",
  }
  for _, f in ipairs(S.list) do card.files[#card.files + 1] = { name = f.name, rows = f.rows } end
  local md = { "# procy training export", "",
    ("Made %s by procy %s from %s: %d examples from %d sessions and %d evolve runs."):format(card.created_at,
      card.procy, card.record, card.examples, card.sessions, card.runs), "",
    "The prompt side of every row is the messages the proxy model is given at inference (template " ..
      card.template_sha256:sub(1, 16) .. "). Every text was redacted again.", "",
    "| format | train | eval | duplicates dropped | human | corrected | proxy |", "|---|---|---|---|---|---|---|" }
  for _, format in ipairs(ctx.formats) do
    local c = S.counts[format]
    md[#md + 1] = ("| %s | %d | %d | %d | %d | %d | %d |"):format(format, c.train, c.eval, c.duplicates,
      c.by_category.human or 0, c.by_category.corrected or 0, c.by_category.proxy or 0)
  end
  md[#md + 1] = ""
  for _, f in ipairs(card.files) do md[#md + 1] = ("- `%s`: %d rows"):format(f.name, f.rows) end
  for _, pair in ipairs { { "dataset.md", table.concat(md, "\n") .. "\n" },
                          { "dataset.json", json.encode(card, { sort = true }) .. "\n" } } do
    local fh, ferr = io.open(o.o .. "/" .. pair[1], "wb")
    if not fh or not fh:write(pair[2]) or not fh:close() then
      return core.fail("EIO", ("cannot write %s/%s: %s"):format(o.o, pair[1], tostring(ferr)))
    end
  end
  out.card = card
  return true
end

-- list("a,b", allowed, what) -> {a, b} | nil, err
local function list(text, allowed, what)
  local out, ok = {}, {}
  for _, a in ipairs(allowed) do ok[a] = true end
  for w in tostring(text):gmatch("[^,%s]+") do
    if not ok[w] then return core.fail("EINVAL", ("unknown %s '%s' (one of %s)"):format(what, w, table.concat(allowed, ", "))) end
    out[#out + 1] = w
  end
  if #out == 0 then return core.fail("EINVAL", what .. " needs a value") end
  return out
end

function R.main(args, cmd)
  local recipes = require "procy.recipes"
  local spec = { format = "string", category = "string", session = "string", run = "string", since = "string",
                 ["until"] = "string", ["min-score"] = "number", ["no-dedupe"] = "boolean",
                 ["eval-fraction"] = "number", seed = "string", o = "string", output = "string" }
  local argv = {}
  for i, a in ipairs(args) do argv[i] = a == "-o" and "--o" or a end
  local o, words = recipes.flags(argv, spec, "train export")
  if not o then return nil, words, "EINVAL" end
  if #words > 0 then return core.fail("EINVAL", "train export: unexpected '" .. words[1] .. "' (see procy help train)") end
  local st, serr = recipes.steps(R, require("procy.config").get().train_export or {})
  if not st then return core.wrap("train export", serr, "EINVAL") end
  local formats, ferr, fcode = list(o.format or "trl-sft", R.formats, "format")
  if not formats then return nil, ferr, fcode end
  local categories, cerr, ccode = list(o.category or "human,corrected,proxy", R.categories, "category")
  if not categories then return nil, cerr, ccode end
  o.dedupe = not o.no_dedupe
  o.eval_fraction = o.eval_fraction or 0
  if o.eval_fraction < 0 or o.eval_fraction >= 1 then return core.fail("EINVAL", "--eval-fraction is from 0 to below 1") end
  o.seed = o.seed or "procy"
  -- procy's own output: under its data directory, never in the project's
  -- tree (where a snapshot would commit it), unless -o names a place
  o.o = o.output or o.o or (require("procy.config").data_dir() .. "/exports/" .. os.date("%Y%m%d-%H%M%S") .. "-"
    .. store.random_hex(2))
  if o.o:sub(1, 1) ~= "/" then o.o = (cmd and cmd.cwd or fs.cwd()) .. "/" .. o.o end
  local usage = require "procy.usage"
  for _, k in ipairs { "since", "until" } do
    if o[k] then
      local t, terr, tcode = usage.time(o[k])
      if not t then return nil, terr, tcode end
      o[k == "since" and "since_us" or "until_us"] = t
    end
  end
  local h, derr, dcode = store.open()
  if not h then return core.wrap("cannot open the record", derr, dcode) end
  if o.session then
    local row, err, code = store.find_session(o.session)
    if not row then return nil, err, code end
    o.session = row.id
  end
  if o.run then
    local run, err, code = store.run(o.run)
    if not run then return nil, err, code end
    o.run = run.id
  end
  local want = {}
  for _, c in ipairs(categories) do want[c] = true end
  local ctx = { o = o, db = h, formats = formats, categories = categories, want = want, steps = st, default = steps,
                cmd = cmd }
  ctx.skipped = {}
  local S = sink(ctx)
  local ok, r1, r2, r3 = pcall(st.collect, ctx, S.add)
  local err, code = r1, nil
  if ok and r1 ~= true then ok, err, code = false, r2 or "collect failed", r3 end
  if ok then ok, err = pcall(S.close) end
  if ok and S.total == 0 then
    local left = {}
    if ctx.skipped.intervened then left[#left + 1] = ctx.skipped.intervened .. " tries a person added to" end
    if ctx.skipped.no_context then left[#left + 1] = ctx.skipped.no_context .. " corrections without their context" end
    ok, err, code = false, ("ENODATA: nothing to export: %d example(s) found, none fits %s (categories %s)%s"):format(
      S.examples, table.concat(formats, ", "), table.concat(categories, ", "),
      #left > 0 and ("; left out: " .. table.concat(left, ", ")) or ""), "ENODATA"
  end
  local out = { sink = S }
  if ok then ok, err, code = st.card(ctx, out) end
  if not ok then
    S.abort()
    os.remove(o.o .. "/dataset.md")
    os.remove(o.o .. "/dataset.json")
    os.remove(o.o)
    return nil, tostring(err), code or (tostring(err):match("^(E[%u_]+):"))
  end
  local say = cmd and cmd.print or print
  local count = require("procy.commands").count
  say(("exported %s to %s"):format(count(S.examples, "example"), o.o))
  for _, f in ipairs(S.list) do say(("  %-28s %s"):format(f.name, count(f.rows, "row"))) end
  say("  dataset.md, dataset.json")
  return true
end

return R
