-- procy fork: a three-turn session of the real Claude Code in a git
-- repository (each turn writes a file; each turn's end takes a snapshot
-- under refs/procy/sessions/), forked at turn 1 with a new prompt: the new
-- worktree holds turn 1's files, the person's tree, index and HEAD are
-- untouched, the agent's first request carries the conversation up to
-- turn 1 and no further, and the fork is a session linked to its parent.
local T = require "lib.tap"
local json = require "procy.json"
local fs = require "procy.fs"
local db = require "procy.db"
local agents = require "lib.agents"
local fake = require "lib.fake"

local w = agents.world("claude")
if not w then return agents.skip("claude") end
local _ <close> = w.fake.proc
local dir, work, env = w.dir, w.work, w.env
local record, procy = agents.project(w)
T.write(work .. "/.gitignore", "procy.lua\n")
T.write(work .. "/README", "base\n")
T.git(work, "init", "-q")
T.git(work, "add", "-A")
T.git(work, "commit", "-qm", "base")
local head0 = T.git(work, "rev-parse", "HEAD")

local r = procy("agent", "start", "tree", "--", "--allowedTools", "Write")
T.is(r.code, 0, "agent start", r.stderr)
for i, name in ipairs { "one", "two", "three" } do
  r = procy("agent", "send", "tree", ("turn %s TOOL:write:%s/%s.txt"):format(name, work, name), "--wait")
  T.like(r.stdout, "FAKE: got tool result", "turn " .. i .. " writes " .. name .. ".txt", r.stderr)
end
procy("agent", "stop", "tree")
local h = assert(db.open(record))
local sid = h:query("SELECT session_id FROM agents WHERE name = 'tree'")[1].session_id
local refs = T.git(work, "for-each-ref", "--format=%(refname)", "refs/procy/sessions/" .. sid)
T.is(select(2, refs:gsub("turn%-%d", "")), 3, "each turn's end took a snapshot under refs/procy/sessions/", refs)
local status0 = T.git(work, "status", "--porcelain")
T.like(status0, "one%.txt.*three%.txt.*two%.txt", "(the person's tree holds all three files, uncommitted)")

-- another process (an evolve run) is adding a worktree: the fork waits for
-- it, then goes on. flock(1) holds the repository's lock for a second.
local core, proc = require "procy.core", require "procy.proc"
local holder = assert(proc.spawn { "flock", "-o", work .. "/.git/procy-worktree.lock", "sleep", "60" })
while true do -- until flock(1) has it
  local probe = fs.lock(work .. "/.git/procy-worktree.lock")
  if not probe then break end
  probe:release()
  core.sleep(0.02)
end
local early
core.spawn(function()
  core.sleep(1)
  early = fs.stat(dir .. "/forked") ~= nil
  holder:kill("KILL")
end)
local before = #fake.bodies(dir .. "/fake")
r = procy("fork", sid, "--turn", "1", "--prompt", "forked prompt", "--headless", "--dir", dir .. "/forked")
T.is(r.code, 0, "procy fork --turn 1 --prompt --headless", r.stderr)
T.is(early, false, "the fork added no worktree while another process held the repository's worktree lock")
T.like(r.stdout, "FAKE: hello! you said: forked prompt", "the fork answered its new prompt")
local wt = dir .. "/forked"
T.ok(fs.stat(wt .. "/one.txt") and not fs.stat(wt .. "/two.txt") and not fs.stat(wt .. "/three.txt"),
  "the worktree holds turn 1's files, not later ones")
T.like(T.git(work, "worktree", "list"), "forked", "as a git worktree of the repository")
T.is(T.git(work, "rev-parse", "HEAD"), head0, "the person's HEAD is untouched")
T.is(T.git(work, "status", "--porcelain"), status0, "and their tree and index")
T.ok(fs.stat(work .. "/three.txt"), "their files stay")

local bodies = fake.bodies(dir .. "/fake")
local first
for i = before + 1, #bodies do
  if bodies[i]:find("forked prompt", 1, true) then first = first or json.decode(bodies[i]) end
end
local text = first and json.encode(first.messages) or ""
T.ok(text:find("turn one", 1, true) and not text:find("turn two", 1, true) and not text:find("turn three", 1, true),
  "the fork's first request carries the conversation up to turn 1 only", text:sub(1, 300))

local row = h:query("SELECT id, parent_id, fork_turn, cwd FROM sessions WHERE parent_id = ?", sid)[1] or {}
T.ok(row.id and row.fork_turn == 1 and row.cwd == wt, "the fork is a session of its own, linked to its parent at turn 1")
local show = procy("show", sid).stdout
T.like(show, "fork      " .. row.id .. " at turn 1", "procy show lists the fork")
T.like(procy("show", row.id).stdout, "forked    from " .. sid .. " at turn 1", "and the fork its parent")
local tree = require("procy.fork").tree(row.id, h)
T.ok(tree and tree.id == sid and tree.children[1].id == row.id, "fork.tree: the family from its root")

-- in a terminal: the fork's first turn, then Claude Code resuming it there
local tmux = require "lib.tmux"
local q = tmux.quote
local ienv = {}
for k, v in pairs(env) do if v then ienv[k] = v end end
ienv.IS_SANDBOX = nil
local term = tmux.new { cols = 120, rows = 40, env = ienv, cmd = "cd " .. q(work) .. " && " .. q(T.bin) .. " fork " .. sid
  .. " --turn 2 --prompt " .. q("forked in a terminal") .. " --dir " .. q(dir .. "/tforked") .. "; echo procy-exit=$?" }
term:see("FAKE: hello! you said: forked in a terminal", "an interactive fork: its first turn, then Claude Code on the terminal", 60)
term:see("\n❯", "at its prompt")
require("procy.core").sleep(0.5)
before = #fake.bodies(dir .. "/fake")
term:submit("and then", "FAKE: hello! you said: and then", 30)
term:see("FAKE: hello! you said: and then", "the person goes on in the fork")
bodies = fake.bodies(dir .. "/fake")
local last_req = json.encode((json.decode(bodies[#bodies]) or {}).messages or {})
T.ok(last_req:find("forked in a terminal", 1, true) and last_req:find("turn two", 1, true)
  and not last_req:find("turn three", 1, true), "its conversation: up to turn 2, the fork's prompt, the new one")
T.ok(fs.stat(dir .. "/tforked/two.txt") and not fs.stat(dir .. "/tforked/three.txt"), "in turn 2's worktree")
term:submit("/exit", "procy%-exit=0", 30)
term:see("procy%-exit=0", "/exit ends it", 20)
term:kill()
local irow = h:query("SELECT id, mode, fork_turn FROM sessions WHERE parent_id = ? AND fork_turn = 2", sid)[1] or {}
T.ok(irow.id, "the interactive fork is linked to its parent too")

-- what cannot be done is said
T.like(procy("fork", sid, "--turn", "9", "--prompt", "x", "--headless").stderr, "has no turn 9", "a turn that does not exist")
T.like(procy("fork", sid, "--turn", "1", "--headless").stderr, "%-%-prompt", "a headless fork without a prompt")
return T.done()
