-- procy transcript: a recorded session as a readable conversation, from
-- the record alone. A background agent (the real Claude Code against the
-- fake API) thinks, runs Bash, answers; its transcript is compared with a
-- snapshot (numbers and ids masked), in text and in Markdown, with and
-- without --full; a procy serve session (calls, no turns) too; a secret
-- the agent printed stays masked.
local T = require "lib.tap"
local core = require "procy.core"
local json = require "procy.json"
local agents = require "lib.agents"

local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work = w.dir, w.work
local record, procy = agents.project(w)

local r = procy("agent", "start", "scribe", "--", "--allowedTools", "Bash")
T.is(r.code, 0, "agent start", r.stderr)
local key = "sk-ant-api03-" .. ("TranscriptSecret"):rep(3)
r = procy("agent", "send", "scribe", "THINK then TOOL:bash[echo transcript-ok " .. key .. "]", "--wait")
T.like(r.stdout, "FAKE: got tool result: transcript%-ok", "a turn with thinking and a Bash call", r.stderr)
r = procy("agent", "send", "scribe", "and a second one", "--wait")
procy("agent", "stop", "scribe")
local sid = require("procy.db").open(record):query("SELECT session_id FROM agents WHERE name = 'scribe'")[1].session_id

local function masked(text)
  return (text:gsub("/tmp/procy%-test%-%w+", "DIR"):gsub("Session %x+", "Session ID"):gsub("%d[%d,%.]*", "N"))
end

local text = procy("transcript", sid).stdout
T.is(masked(text), masked(([[
# Session ID · claude · DIR/work · N-N-N N:N · N turns · N in · N out · $N

## Turn 1 · human · 1.0 s · 1 in · 1 out · $1.0
    THINK then TOOL:bash[echo transcript-ok %s]
    [thinking, 1 characters]
### assistant
    FAKE: running a command.
### tool Bash
    {"command":"echo transcript-ok %s","description":"fake command"}
### result from Bash
    transcript-ok %s
### assistant
    FAKE: got tool result: transcript-ok %s

## Turn 2 · human · 1.0 s · 1 in · 1 out · $1.0
    and a second one
### assistant
    FAKE: hello! you said: and a second one

]]):gsub("%%s", "[REDACTED]")),
  "the transcript: prompts, thinking collapsed, the tool call and its result, answers, per-turn figures", text)
T.ok(not text:find("TranscriptSecret", 1, true), "the secret the agent printed is masked")

local full = procy("transcript", sid, "--full").stdout
T.like(full, "### thinking\n    FAKE: let me think about", "--full: the thinking itself")
local mdtext = procy("transcript", sid, "--format", "md").stdout
T.like(mdtext, "^# Session %x+", "Markdown: a heading per session")
T.like(mdtext, "\n## Turn 1 ", "and per turn")
T.like(mdtext, "\n> THINK then TOOL:bash", "prompts as quotes")
T.like(mdtext, "<details><summary>thinking %(%d+ characters%)</summary>", "thinking folded in <details>")
T.like(mdtext, "### tool Bash\n\n```json\n{\"command\":", "tool input in a json block")
T.ok(not mdtext:find("\27[", 1, true), "no escape codes in Markdown")
local col = procy("transcript", sid, "--color").stdout
T.like(col, "\27%[1;%d+m## Turn 1", "--color: the roles coloured")
r = procy("transcript", sid, "-o", dir .. "/t.md", "--format", "md")
T.is(T.read(dir .. "/t.md"), mdtext, "-o FILE writes the same")
T.like(procy("transcript", "abcdef99").stderr, "no session", "an unknown session: an error")
core.sleep(0)
return T.done()
