-- `procy codexx`: lproc's stdin protocol for the real Codex CLI — a
-- `codex exec --json` per user line, `exec resume` for the next, and
-- Claude-shaped `assistant` and `result` lines out, one result per line,
-- the restart markers honoured.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local agents = require "lib.agents"
local fake = require "lib.fake"

local w = agents.world("codex")
if not w then return agents.skip("codex") end
local _ <close> = w.fake.proc
local dir, work, env = w.dir, w.work, w.env
T.write(work .. "/procy.lua", ("return { db = %q, openai_upstream = %q }"):format(dir .. "/rec.db", w.fake.url))

local p = assert(proc.spawn({ T.bin, "codexx", "--", "-m", "gpt-5-codex" }, { cwd = work, env = env, stdin = true, stderr = "pipe" }))
local _p <close> = p
local out, errs = {}, {}
local reader = core.spawn(function() for line in p:lines() do out[#out + 1] = json.decode(line) or { bad = line } end end)
local ereader = core.spawn(function() for line in p:lines("stderr") do errs[#errs + 1] = line end end)
local function user(text) return json.encode { type = "user", message = { role = "user", content = { { type = "text", text = text } } } } end
local function results(n)
  local t0 = core.now()
  while core.now() - t0 < 90 do
    local r = {}
    for _, e in ipairs(out) do if e.type == "result" then r[#r + 1] = e end end
    if #r >= n then return r end
    core.sleep(0.05)
  end
  return {}
end
local function last_body() local b = fake.bodies(dir .. "/fake") return json.decode(b[#b] or "") or {} end

p:write(user("TOOL:shell[echo from-codexx]") .. "\n")
local r = results(1)
T.ok(r[1] and r[1].subtype == "success" and not r[1].is_error and tostring(r[1].result):find("from%-codexx")
  and r[1].session_id, "a user line: one Claude-shaped result, with the answer and the thread as session_id", json.encode(r[1]))
local asst
for _, e in ipairs(out) do if e.type == "assistant" then asst = e end end
T.ok(asst and asst.message.content[1].text == r[1].result, "an assistant line with the answer's text before it")

p:write("garbage\n")
p:write(user("second") .. "\n")
r = results(3)
T.ok(r[2] and r[2].subtype == "CLAUDIX_FAIL", "a line that is not JSON: CLAUDIX_FAIL")
T.is(r[3] and r[3].result, "FAKE: hello! you said: second", "the second message")
T.ok(json.encode(last_body()):find("from-codexx", 1, true), "sent with exec resume: the thread goes on")

p:write(user("[CLAUDIX:RESTART] third") .. "\n")
r = results(4)
T.is(r[4] and r[4].result, "FAKE: hello! you said: third", "[CLAUDIX:RESTART]: the marker removed")
T.ok(not json.encode(last_body()):find("from-codexx", 1, true), "a fresh thread")

p:write(user("HANG forever") .. "\n")
core.sleep(3)
p:write(user("[CLAUDIX:FORCE_RESTART_NO_SEND] x") .. "\n")
r = results(6)
T.ok(r[5] and r[5].subtype == "CLAUDIX_FAIL" and r[6] and tostring(r[6].result):find("NOT sent"),
  "FORCE_RESTART_NO_SEND during a turn: CLAUDIX_FAIL for it, and the reminder", table.concat(errs, "\n"))
p:write(user("after") .. "\n")
p:close_stdin()
local done = p:wait(90)
r = results(7)
T.is(r[7] and r[7].result, "FAKE: hello! you said: after", "the next message works")
T.is(done and done.code, 0, "end of input: exit 0")
T.is(#r, 7, "one result per line")
local named, other = 0, {}
for _, l in ipairs(errs) do
  if l:find("^%[codexx%]") then named = named + 1 elseif l:find("^%[claudix%]") then other[#other + 1] = l end
end
T.ok(named > 0 and #other == 0, "its stderr says codexx, never claudix", table.concat(errs, "\n"))

-- prompts far past what an argument holds (128 KiB) go to Codex on its
-- stdin, off the process list: one of 1,000,000 characters is answered
-- (the API got all of it); one of 3 MB, past Codex's own limit (1,048,576
-- characters), comes back as a failed result in Codex's words, and codexx
-- goes on to the end of its input
do
  local function run(text)
    local bp = assert(proc.spawn({ T.bin, "codexx", "--", "-m", "gpt-5-codex" }, { cwd = work, env = env, stdin = true, stderr = "pipe" }))
    local berr = core.spawn(function() for _ in bp:lines("stderr") do end end)
    assert(bp:write(user(text) .. "\n"))
    bp:close_stdin()
    local got = {}
    for line in bp:lines() do
      local e = json.decode(line)
      if type(e) == "table" and e.type == "result" then got[#got + 1] = e end
    end
    local bres = bp:wait(120)
    core.cancel(berr)
    return got, bres
  end
  local million = "M" .. string.rep("0123456789", 99999) .. "123456789"
  local got, bres = run(million)
  T.ok(#got == 1 and not got[1].is_error and tostring(got[1].result):find("^FAKE: hello! you said: M0123456789"),
       "a prompt of 1,000,000 characters is answered", json.encode(got[1] or {}):sub(1, 300))
  T.ok(json.encode(last_body()):find(million, 1, true), "the API got all of it")
  local big = "BIG " .. string.rep("0123456789", 300000)
  got, bres = run(big)
  T.ok(#got == 1 and got[1].is_error and tostring(got[1].result):find("Input exceeds the maximum length", 1, true),
       "a 3 MB prompt: one failed result, in Codex's words (its limit), not a backtrace", json.encode(got[1] or {}):sub(1, 400))
  T.is(bres and bres.code, 0, "then codexx exits 0 at the end of its input")
end

core.cancel(reader)
core.cancel(ereader)
return T.done()
