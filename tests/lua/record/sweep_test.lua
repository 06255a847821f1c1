-- The sweep: a secret of every shape (lib/secrets.lua, a pattern of the
-- person's own among them) planted into every way into the record — typed
-- at the terminal, on the agent's command line, in its environment echoed
-- back, printed and wrapped across rows, in API headers, query strings and
-- bodies (JSON-escaped, split across SSE events), typed to claudix and
-- codexx (the real Claude Code and Codex), in a tool's input and result,
-- in a recipe's call to the proxy model and its answer, in a correction —
-- then every feature that writes or exports run on that record, and every
-- place procy writes searched: the database, its WAL, the tape, procy's
-- log, each export's output. No secret anywhere; the words planted next to
-- each (way-NAME) are still there.
--
-- Then the record is made into what an older procy would have left (the
-- masks written back as a raw secret, past the boundary) and every export
-- and the monitor's JSON run again: what reads the record reads it through
-- the same rules (db.c: the boundary is both ways).
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local http = require "procy.http"
local fs = require "procy.fs"
local agents = require "lib.agents"
local secrets = require "lib.secrets"

local dir = T.tmpdir()
local work = dir .. "/work"
fs.mkdir(work)
local claude = agents.find("claude")
local codex = agents.find("codex")
local home = agents.home(dir, work)
local fake = require("lib.fake").start(dir .. "/fake")
local _ <close> = fake.proc
local env = agents.env(dir, home, fake.url)
env.ANTHROPIC_BASE_URL = false
local record = dir .. "/rec/rec.db"
local log = dir .. "/state/procy.log"
T.write(work .. "/procy.lua", ("return { db = %q, upstream = %q, openai_upstream = %q, log = %q, redact = { %q } }\n")
  :format(record, fake.url, fake.url, log, secrets.own))

-- planted(way) -> one line holding every single-line shape, each after a
-- word that says where it went in ("way-NAME-i")
local function planted(way, sep)
  local parts = {}
  for i, s in ipairs(secrets.list) do
    if not s[2]:find("\n", 1, true) and not s.once then
      parts[#parts + 1] = ("way-%s-%d %s"):format(way, i, s[2])
    end
  end
  return table.concat(parts, sep or " ; ")
end
local ways = {}
local function way(name) ways[#ways + 1] = name return name end

local function run(args, opts)
  opts = opts or {}
  local r = T.procy(args, { cwd = work, env = env, stdin = opts.stdin, timeout = 120 })
  return r
end

-- 1. the terminal: argv, the environment echoed, output (the PEM block
-- too, and a key the screen wraps), typed input; the agent's API calls
-- through the session's proxy: a header, the query, a body with the keys
-- JSON-escaped and a PEM block, and an answer whose key is split across
-- two SSE events
local pem = secrets.list[11][2]
local api_body = json.encode { model = "claude-fake-1", max_tokens = 64, stream = true,
  messages = { { role = "user", content = planted(way "api-body") .. " " .. pem .. " " .. secrets.list[12][2] } } }
local key = secrets.list[1][2]
local split_sse = table.concat {
  'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-fake-1","content":[],"usage":{"input_tokens":5,"output_tokens":0}}}\n\n',
  'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"way-sse-split ' .. key:sub(1, 30) .. '"}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"' .. key:sub(31) .. ' after-split"}}\n\n',
  'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}\n\n',
  'event: message_stop\ndata: {"type":"message_stop"}\n\n' }
way "sse-split"
local raw_body = json.encode { model = "claude-fake-1", max_tokens = 64, stream = true, messages = { { role = "user",
  content = "RAW:200:" .. T.b64("text/event-stream") .. ":" .. T.b64(split_sse) } } }
local printed = T.write(dir .. "/printed.txt", planted(way "printed", "\n") .. "\nway-pem " .. pem .. " after-pem\n"
  .. "wrapped: " .. key .. ("Qw3_"):rep(20) .. "\n")
T.write(dir .. "/api.json", api_body)
T.write(dir .. "/raw.json", raw_body)
local script = [[
printf 'way-argv %s\n' "$1"
printf 'way-env %s\n' "$SWEEP_ENV"
cat "$2"
curl -s -N -H "x-api-key: $3" -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
  "$ANTHROPIC_BASE_URL/v1/messages?key=$3&way=query" --data-binary @"$4"; echo
curl -s -N -o /dev/null -H 'content-type: application/json' "$ANTHROPIC_BASE_URL/v1/messages" --data-binary @"$5"
printf 'after-split\n'
printf 'ready\n'
IFS= read -r line
printf 'way-got %s\n' "$line"
]]
way "argv" way "env" way "typed"
do
  local tenv = {}
  for k, v in pairs(env) do tenv[k] = v end
  tenv.SWEEP_ENV = planted "env"
  local p = assert(proc.spawn({ T.bin, "--", "sh", "-c", script, "sh", planted "argv", printed, secrets.list[5][2],
    dir .. "/api.json", dir .. "/raw.json" }, { pty = { cols = 100, rows = 30 }, env = tenv, cwd = work }))
  local seen = ""
  local t0 = core.now()
  while not seen:find("ready", 1, true) and core.now() - t0 < 60 do
    local c = p:read()
    if not c then break end
    seen = seen .. c
  end
  T.ok(seen:find("after-split", 1, true), "the agent's calls went through procy's proxy", seen:sub(-300))
  p:write(planted "typed" .. "\r")
  while p:read() do end
  p:wait(20)
end

-- 2. claudix and codexx, the real CLIs: a prompt, a tool's input and
-- result (Bash echoing the keys), the answer echoing them
local function stdin_driver(cmd, extra, user_text, want)
  local p = assert(proc.spawn({ T.bin, cmd, "--", table.unpack(extra) }, { cwd = work, env = env, stdin = true, stderr = false }))
  local out = {}
  local reader = core.spawn(function() for line in p:lines() do out[#out + 1] = line end end)
  p:write(json.encode { type = "user", message = { role = "user", content = { { type = "text", text = user_text } } } } .. "\n")
  local t0 = core.now()
  local done = false
  while not done and core.now() - t0 < 120 do
    for _, l in ipairs(out) do if l:find('"type":"result"', 1, true) then done = true end end
    core.sleep(0.1)
  end
  p:close_stdin()
  p:wait(30)
  reader:wait(10)
  T.ok(done, cmd .. ": the turn ended")
  return table.concat(out, "\n")
end
if claude then
  way "claudix" way "tool"
  local said = stdin_driver("claudix", { "--dangerously-skip-permissions" },
    "TOOL:bash[echo " .. planted("tool"):gsub("[;()]", "") .. "] " .. planted "claudix")
  T.ok(said:find("got tool result: way-tool-1 ", 1, true), "claudix: Bash ran the tool with the keys and answered")
  -- a recipe driving the agent headless (procy.agent), a tool call again
  way "headless"
  T.write(dir .. "/headless.lua", ([[
local agent = require "procy.agent"
local a = assert(agent.open { profile = "claude", mode = "headless", cwd = %q, mirror = false, args = { "--allowedTools", "Bash" } })
local t = assert(a:wait_turn { seq = assert(a:send(%q)), timeout = 90 })
print(t.response)
a:close()
return 0
]]):format(work, "TOOL:bash[echo " .. planted("headless"):gsub("[;()]", "") .. "]"))
  local hr = run { "run", dir .. "/headless.lua" }
  T.ok(hr.code == 0 and hr.stdout:find("got tool result: way-headless-1 ", 1, true), "headless: a recipe's agent ran the tool",
    hr.stderr)
  -- a background agent (procy agent): its supervisor's log is procy's too
  way "background"
  local br = run { "agent", "start", "sweeper", "--", "--allowedTools", "Bash" }
  T.ok(br.code == 0, "agent start", br.stderr)
  br = run { "agent", "send", "sweeper", planted "background", "--wait", "--timeout", "90" }
  T.ok(br.code == 0, "agent send: the turn ended", br.stderr)
  run { "agent", "stop", "sweeper" }
else
  T.skip("claudix, headless and background", "no claude CLI here")
end
if codex then
  way "codexx"
  stdin_driver("codexx", { "-m", "gpt-5-codex" }, planted "codexx")
else
  T.skip("codexx", "no codex CLI here")
end

-- 3. a recipe: the proxy model asked (its prompt and answer), a turn and
-- a correction; and a correction from a file
way "recipe" way "correction" way "file"
T.write(dir .. "/recipe.lua", ([[
local model = require "procy.model"
local store = require "procy.store"
local text, info = model.chat({ { role = "user", content = %q } }, { url = %q, api = "anthropic", model = "claude-fake-1", key = "k" })
assert(text, info)
local id = store.new_session { argv = { "recipe" }, cwd = ".", profile = "generic", mode = "headless" }
local t = require("procy.turns").new(id)
t:begin(%q, "recipe")
t:finish { status = "done", response = text }
store.correct { session = id, turn = 1, original = %q, corrected = %q, kind = "corrected" }
print(id)
return 0
]]):format(planted "recipe", fake.url, planted "recipe", planted "correction", planted "correction"))
local r = run { "run", dir .. "/recipe.lua" }
T.ok(r.code == 0, "the recipe ran", r.stderr)
T.write(dir .. "/correction.txt", planted "file")
r = run { "corrections", "add", "--session", (r.stdout:gsub("%s", "")), "--turn", "1", "--file", dir .. "/correction.txt",
  "--note", planted "note" }
way "note"
T.ok(r.code == 0, "a correction from a file", r.stderr)

-- 4. evolve: the task holds keys, the proxy model writes a prompt that
-- holds them (and the try's agent echoes it), the evaluator prints them
way "task" way "evolve" way "eval"
do
  local evo = dir .. "/evo"
  fs.mkdir(evo)
  T.git(evo, "init", "-q", "-b", "main")
  T.write(evo .. "/value.txt", "1")
  T.write(evo .. "/eval.sh", ([[
# METRICS_SCHEMA = [{"name": "value", "goal": "maximize"}]
echo %q >&2
echo "{\"value\": $(cat value.txt)}"
]]):format(planted "eval"))
  T.git(evo, "add", "-A")
  T.git(evo, "commit", "-q", "-m", "start")
  T.write(evo .. "/procy.lua", ([[
return {
  db = %q, log = %q, redact = { %q }, model = { backoff = 0.05 }, evolve = { patience = 0 },
  agents = { setter = { headless = "exec", parse = function() return nil end,
    exec = function(ctx, prompt)
      return { "sh", "-c", 'printf %%s 5 > value.txt; printf "agent-said %%s\n" "$1"', "sh", prompt }
    end } },
}
]]):format(record, log, secrets.own))
  local m = require("lib.fakemodel").start { planted "evolve" .. " SET 5" }
  local p = assert(proc.spawn({ T.bin, "--model-url", m.url, "run", "recipes/evolve.lua", "--task", planted "task",
    "--iterations", "1", "--agent", "setter", "--evaluator", "eval.sh" }, { cwd = evo, env = env }))
  local er = assert(p:wait(120))
  m.close()
  T.ok(er.code == 0 and (er.stdout or ""):find("score 5", 1, true), "evolve: a try, its prompt the proxy model's",
    (er.stderr or "") .. (er.stdout or ""))
end

-- 5. every export, and the monitor's JSON, into outputs
local exports = dir .. "/exports"
fs.mkdir(exports)
local ids_script = T.write(dir .. "/ids.lua", [[
local ids = {}
for _, r in ipairs(require("procy.store").open():query("SELECT id FROM sessions ORDER BY started_at DESC")) do ids[#ids + 1] = r.id end
print(require("procy.json").encode(ids))
return 0
]])
local function sessions() return json.decode(run({ "run", ids_script }).stdout) or {} end

local function export_all(tag)
  local outs = {} -- name -> text
  local ids = sessions()
  outs.sessions = run({ "sessions" }).stdout
  for i, id in ipairs(ids) do
    outs["show " .. i] = run({ "show", id, "--json" }).stdout
    for _, f in ipairs { "cast", "cast3", "html" } do
      outs[f .. " " .. i] = run({ "export", id, "--format", f }).stdout
    end
    outs["transcript " .. i] = run({ "transcript", id, "--full" }).stdout
    outs["transcript md " .. i] = run({ "transcript", id, "--format", "md", "--full" }).stdout
  end
  outs.search = run({ "search", "way", "--json", "--limit", "500" }).stdout
  outs["search raw"] = run({ "search", "way", "--raw", "--limit", "500" }).stdout
  outs.usage = run({ "usage", "--json" }).stdout
  outs.runs = run({ "runs", "--json" }).stdout
  for i, rrow in ipairs(json.decode(outs.runs) or {}) do
    if type(rrow) == "table" and rrow.id then outs["run " .. i] = run({ "runs", rrow.id, "--json" }).stdout end
  end
  outs.corrections = run({ "corrections", "ls", "--json" }).stdout
  outs["correction 1"] = run({ "corrections", "show", "1", "--json" }).stdout
  local tdir = exports .. "/train-" .. tag
  local tr = run { "train", "export", "-o", tdir }
  T.ok(tr.code == 0, tag .. ": train export ran", tr.stderr)
  for f in (assert(proc.run { "sh", "-c", 'ls -1 "$0" 2>/dev/null', tdir }).stdout):gmatch("[^\n]+") do
    outs["train " .. f] = T.read(tdir .. "/" .. f) or ""
  end
  local odir = exports .. "/otlp-" .. tag
  local op, ourl = require("lib.otlp").receiver(odir)
  local orr = run { "otel", "export", "--content", "--endpoint", ourl }
  T.ok(orr.code == 0, tag .. ": otel export ran", orr.stderr)
  op:kill()
  op:wait(5)
  outs.otlp = (T.read(odir .. "/spans.jsonl") or "") .. (T.read(odir .. "/requests.jsonl") or "")
  -- the monitor's JSON API and the VCR, from procy serve
  local sp = assert(proc.spawn({ T.bin, "serve", "--port", "0", "--upstream", fake.url }, { cwd = work, env = env, stderr = "pipe" }))
  local banner = sp:lines("stderr")() or ""
  local surl = banner:match("listening on (http://[%d.:]+)") or "http://127.0.0.1:1"
  local function get(path) local g = http.request { url = surl .. path } return g and g.body or "" end
  outs["api sessions"] = get "/api/sessions"
  outs["api calls"] = get "/api/calls"
  outs["api corrections"] = get "/api/corrections"
  outs["api runs"] = get "/api/runs"
  outs["api search"] = get "/api/search?q=way"
  for i, id in ipairs(ids) do
    outs["api session " .. i] = get("/api/sessions/" .. id)
    outs["api terminal " .. i] = get("/api/sessions/" .. id .. "/terminal/events")
  end
  for _, c in ipairs((json.decode(outs["api calls"]) or {}).calls or json.decode(outs["api calls"]) or {}) do
    if type(c) == "table" and c.id then outs["api call " .. c.id] = get("/api/calls/" .. c.id) end
  end
  sp:kill()
  sp:wait(5)
  local first = ids[#ids] -- the oldest: the terminal session and its calls
  local vp = assert(proc.spawn({ T.bin, "serve", "--port", "0", "--replay", first, "--fast", "--nearest" }, { cwd = work, env = env, stderr = "pipe" }))
  local vurl = (vp:lines("stderr")() or ""):match("listening on (http://[%d.:]+)")
  if vurl then
    local a = http.request { method = "POST", url = vurl .. "/v1/messages", body = api_body,
      headers = { ["content-type"] = "application/json", ["x-api-key"] = "k" } }
    outs.vcr = a and a.body or ""
  end
  T.ok(vurl and #(outs.vcr or "") > 0, tag .. ": the VCR answered a recorded call")
  vp:kill()
  vp:wait(5)
  return outs
end

-- the places procy wrote: its record's files (database, WAL, tape, any
-- spill), everything under its state directory (its log, the background
-- agents' logs)
local function written()
  local out = {}
  for _, d in ipairs { record:match("^(.*)/"), dir .. "/state" } do
    for f in (assert(proc.run { "sh", "-c", 'find "$0" -type f 2>/dev/null', d }).stdout):gmatch("[^\n]+") do
      out[#out + 1] = { f:sub(#dir + 2), T.read(f) or "" }
    end
  end
  return out
end

local function search(places, probes)
  local hits = {}
  for _, p in ipairs(places) do
    for _, s in ipairs(probes) do
      if p[2]:find(s[2], 1, true) then hits[#hits + 1] = s[1] .. " in " .. p[1] end
    end
  end
  table.sort(hits)
  return hits
end

local probes = {}
for _, s in ipairs(secrets.list) do probes[#probes + 1] = { s[1], secrets.probe(s) } end
probes[#probes + 1] = { "a split key's tail", key:sub(31) }
probes[#probes + 1] = { "a wrapped key's tail", ("Qw3_"):rep(20) }

local outs = export_all("written")
local places = written()
for name, text in pairs(outs) do places[#places + 1] = { "export " .. name, text } end
if claude then
  local agent_log = ""
  for _, p in ipairs(places) do if p[1]:find("agents/sweeper.log", 1, true) then agent_log = p[2] end end
  T.ok(agent_log:find("way-background-1 [REDACTED]", 1, true), "the background agent's log mirrors its answer, masked",
    agent_log:sub(1, 400))
end
local hits = search(places, probes)
T.is(table.concat(hits, "\n"), "", ("no secret in %d places (the record's files, the log, %d exports)")
  :format(#places, #places - #written()))
local all = {}
for _, p in ipairs(places) do all[#all + 1] = p[2] end
all = table.concat(all, "\n")
local lost = {}
for _, w in ipairs(ways) do
  if not all:find("way-" .. w, 1, true) then lost[#lost + 1] = w end
end
T.is(table.concat(lost, " "), "", ("the words next to each, from all %d ways in, are still there"):format(#ways))
T.ok(all:find("[REDACTED]", 1, true), "masked as [REDACTED]")
local counted = 0
for _ in pairs(outs) do counted = counted + 1 end
print(("# sweep: %d shapes x %d ways in; searched %d places, %d of them exports"):format(#secrets.list, #ways, #places, counted))

-- an older procy's record: every mask written back as a raw key, past the
-- boundary (a connection without it); the exports read it through the rules
local RAW = "ghp_" .. ("Zz9Yy8Xx7Ww6Vv5Uu4Tt"):rep(2)
local plant = T.write(dir .. "/plant.lua", ([=[
local db = require "procy.db"
local raw = %q
local h = assert(db.open(%q, { migrations = false })) -- no boundary: as an older procy wrote
local n = 0
for _, t in ipairs(h:query([[SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%%'
                             AND name NOT LIKE 'sqlite%%' AND name NOT LIKE 'search%%']])) do
  for _, c in ipairs(h:query("SELECT name, type FROM pragma_table_info(?)", t.name)) do
    local ty = (c.type or ""):upper()
    if ty == "" or ty:find("TEXT") or ty:find("CHAR") or ty:find("JSON") then
      n = n + h:exec(([[UPDATE "%%s" SET "%%s" = replace("%%s", '[REDACTED]', ?) WHERE instr("%%s", '[REDACTED]') > 0]])
        :format(t.name, c.name, c.name, c.name), raw)
    end
  end
end
n = n + h:exec([[UPDATE blobs SET data = CAST(replace(CAST(data AS TEXT), '[REDACTED]', ?) AS BLOB)
                 WHERE chunked = 0 AND instr(CAST(data AS TEXT), '[REDACTED]') > 0]], raw)
print(n)
return 0
]=]):format(RAW, record))
r = run { "run", plant }
T.ok(r.code == 0 and (tonumber(r.stdout) or 0) > 10, "a raw key written back into the record, past the boundary: "
  .. tostring(r.stdout):gsub("%s", "") .. " rows", r.stderr)
outs = export_all("raw")
local places2 = {}
for name, text in pairs(outs) do places2[#places2 + 1] = { "export " .. name, text } end
T.is(table.concat(search(places2, { { "the raw key", RAW } }), "\n"), "",
  ("a record written past the boundary: no export of %d shows its key"):format(#places2))
local all2 = {}
for _, p in ipairs(places2) do all2[#all2 + 1] = p[2] end
all2 = table.concat(all2, "\n")
T.ok(all2:find("way-typed", 1, true) and all2:find("[REDACTED]", 1, true), "and they still show the rest, masked where it was")

return T.done()
