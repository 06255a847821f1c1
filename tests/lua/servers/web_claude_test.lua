-- The monitor of a real session: the real Claude Code through procy in a
-- real terminal (tmux), offline against the fake upstream, running a Bash
-- tool; the session's own monitor (the URL !status gives) opened in a
-- real browser (tests/node/ui_claude.mjs) while Claude Code still runs:
-- the turn and its tool call, the terminal as Claude Code drew it, a seek
-- back to the first call, search, and a new prompt's answer arriving live.
local T = require "lib.tap"
local tmux = require "lib.tmux"
local core = require "procy.core"
local db = require "procy.db"
local fs = require "procy.fs"
local proc = require "procy.proc"

local browser = require "lib.browser"
if browser.missing() then
  T.skip("the browser checks", browser.missing())
  return T.done()
end
local agents = require "lib.agents"
local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, env, claude = w.dir, w.work, w.env, w.cli
local record = dir .. "/record.db"
local q = tmux.quote
local term = tmux.new { cols = 120, rows = 40, env = env,
  cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " --db " .. q(record) .. " -- " .. q(claude)
    .. " --permission-mode acceptEdits --allowedTools Bash; echo procy-exit=$?" }

local function see(pattern, name, seconds) return term:see(pattern, name, seconds or 20) end
local function rows(sql, ...)
  local h = assert(db.open(record, { migrations = false }))
  local r = h:query(sql, ...)
  h:close()
  return r
end
local function turns_done(n)
  local deadline = core.now() + 20
  while core.now() < deadline and #rows("SELECT 1 FROM turns WHERE status = 'done'") < n do core.sleep(0.2) end
  return #rows("SELECT 1 FROM turns WHERE status = 'done'") >= n
end

see("\n❯", "Claude Code is ready inside procy")
core.sleep(0.5)
term:submit("TOOL:bash[echo web-monitor-check]", "FAKE: got tool result", 60)
T.ok(turns_done(1), "a turn with a Bash tool call, done")
core.sleep(0.5)
term:type("!status")
term:keys("Enter")
local screen = see("monitor%s+http://127%.0%.0%.1:%d+/%?token=%x+", "!status names the session's monitor, with its token")
local url = (screen or ""):match("monitor%s+(http://127%.0%.0%.1:%d+/%?token=%x+)")
term:keys("q")
core.sleep(0.5)
local sid = rows("SELECT id FROM sessions")[1].id

local screens = fs.cwd() .. "/screens"
fs.mkdir(screens)
local checks, res = browser.run("ui_claude.mjs", { url or "", sid, screens }, {
  ["type-prompt"] = function(p)
    term:type("say live")
    term:keys("Enter")
    p:write("ok\n")
  end,
})
T.ok(res.code == 0 and checks >= 8, "the browser run ended, every check made", checks .. " checks")

term:submit("/exit", "procy%-exit=0", 30)
see("procy%-exit=0", "/exit ends Claude Code, and procy exits 0")
proc.run { "rm", "-rf", dir }
return T.done()
