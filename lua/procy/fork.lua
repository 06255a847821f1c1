-- procy.fork: a session forked at one of its turns. Each turn's end takes
-- a snapshot of the workspace (procy.snapshot: a commit under
-- refs/procy/sessions/SESSION/turn-N; the person's branch, index and
-- HEAD untouched). `procy fork SESSION --turn N` puts turn N's snapshot
-- into a new git worktree — never over the person's working tree — and
-- starts the agent there with its conversation up to turn N, then sends
-- the new prompt. The fork is a session of its own, linked to its parent.
--
-- Claude Code's conversation is cut at turn N with its own flags:
-- `--resume ID --resume-session-at MESSAGE --fork-session` (print mode),
-- MESSAGE the last message of turn N in its session file. An interactive
-- fork runs that first turn headless, then goes on in the terminal with
-- `--resume` of the new session.

local fs = require "procy.fs"
local json = require "procy.json"
local store = require "procy.store"
local snapshot = require "procy.snapshot"

local M = {}

function M.ref(session, seq) return ("refs/procy/sessions/%s/turn-%d"):format(session, seq) end

-- take(session, seq, cwd, mode) -> commit | nil, why: the workspace after
-- turn seq. mode "git" (the default of the `snapshots` setting): only in
-- a git work tree; "turn": anywhere (a directory with no repository gets
-- a private one); "off": never.
function M.take(session, seq, cwd, mode)
  mode = mode or "git"
  if mode == "off" or not cwd then return nil, "snapshots are off" end
  local r, err, code = snapshot.open(cwd)
  if not r then return nil, err, code end
  if r.private and mode ~= "turn" then return nil, "not a git work tree" end
  return r:take(M.ref(session, seq), ("procy: session %s after turn %d"):format(session, seq))
end

-- claude_message(agent_session, n) -> the id of Claude Code's last message
-- of turn n (its n-th prompt's answer) in its session file, or nil, why
function M.claude_message(agent_session, n)
  local base = os.getenv("CLAUDE_CONFIG_DIR")
  if not base or base == "" then base = (os.getenv("HOME") or "") .. "/.claude" end
  local file
  for _, d in ipairs(fs.dir(base .. "/projects") or {}) do
    local p = base .. "/projects/" .. d .. "/" .. agent_session .. ".jsonl"
    if fs.stat(p) then file = p break end
  end
  if not file then return nil, ("ENOENT: Claude Code's session %s is not under %s/projects"):format(agent_session, base), "ENOENT" end
  local prompts, last = 0, nil
  for line in io.lines(file) do
    local e = json.decode(line)
    if type(e) == "table" and not e.isSidechain and type(e.message) == "table" then
      if e.type == "user" and not e.isMeta then
        local c, prompt = e.message.content, false
        if type(c) == "string" then prompt = true
        elseif type(c) == "table" then
          for _, b in ipairs(c) do
            if type(b) == "table" and b.type == "tool_result" then prompt = false break end
            if type(b) == "table" and b.type == "text" then prompt = true end
          end
        end
        if prompt then
          prompts = prompts + 1
          if prompts > n then break end
        end
      elseif e.type == "assistant" and prompts == n and type(e.uuid) == "string" then
        last = e.uuid
      end
    end
  end
  if not last then return nil, ("ENOENT: Claude Code's session %s has no answer to prompt %d"):format(agent_session, n), "ENOENT" end
  return last
end

-- The snapshot of turn n checked out in a new directory: a git worktree
-- of the person's repository (detached), or, for a directory that had
-- none, the files of procy's private one. -> the directory where the
-- agent works (the session's cwd inside it) | nil, err, code
local function checkout(parent, n, into)
  local r, err, code = snapshot.open(parent.cwd)
  if not r then return nil, err, code end
  local commit = r:git { "rev-parse", "-q", "--verify", M.ref(parent.id, n) .. "^{commit}" }
  if not commit then
    return nil, ("ENOENT: turn %d of session %s has no snapshot (snapshots = \"off\", not a git work tree, "
      .. "or a session older than them)"):format(n, parent.id:sub(1, 8)), "ENOENT"
  end
  if fs.stat(into) then return nil, "EEXIST: " .. into .. " exists already", "EEXIST" end
  local _
  if r.private then
    local ok
    ok, err, code = fs.mkdir(into)
    if not ok then return nil, err, code end
    _, err, code = r:with_index(function(env)
      env.GIT_WORK_TREE = into
      return r:git({ "read-tree", "-u", "--reset", commit }, env)
    end)
    if err then return nil, err, code end
    return into
  end
  fs.mkdir(into:match("^(.*)/[^/]*$"))
  local lock
  lock, err, code = r:worktree_lock() -- an evolve run may be adding its own
  if not lock then return nil, err, code end
  _, err, code = r:git { "worktree", "add", "--detach", into, commit }
  lock:release()
  if err then return nil, err, code end
  local rel = parent.cwd:sub(#r.top + 2)
  return rel ~= "" and (into .. "/" .. rel) or into
end

-- fork{session =, turn =, prompt =, headless =, dir =} -> {session, cwd,
-- agent_session, answer, argv} | nil, err, code. headless: the new prompt's
-- turn only (then the fork ends); else the caller goes on with argv in a
-- terminal (procy.cli.session, resuming the fork). dir: where the worktree
-- goes (default: procy's state directory, forks/).
function M.fork(o)
  local parent, err, code = store.find_session(o.session)
  if not parent then return nil, err, code end
  local n = math.tointeger(tonumber(o.turn))
  local turn = n and store.open():query("SELECT * FROM turns WHERE session_id = ? AND seq = ?", parent.id, n)[1]
  if not turn then return nil, ("ENOENT: session %s has no turn %s"):format(parent.id:sub(1, 8), tostring(o.turn)), "ENOENT" end
  if parent.profile ~= "claude" then
    return nil, ("ENOTSUP: a fork goes on with the agent's own conversation cut at the turn, which procy can do for "
      .. "Claude Code; session %s ran %s"):format(parent.id:sub(1, 8), tostring(parent.profile)), "ENOTSUP"
  end
  local aid = store.agent_id(parent.agent_session_id)
  if not aid then return nil, "ENOENT: procy never learned Claude Code's session id for " .. parent.id:sub(1, 8), "ENOENT" end
  local at
  at, err, code = M.claude_message(aid, n)
  if not at then return nil, err, code end
  local last = store.open():query("SELECT max(seq) AS n FROM turns WHERE session_id = ?", parent.id)[1].n
  if not o.prompt and (o.headless or n < last) then
    return nil, "EINVAL: say what the fork is to do with --prompt TEXT (Claude Code cuts a conversation short "
      .. "only as it answers a prompt)", "EINVAL"
  end
  local state = os.getenv("XDG_STATE_HOME")
  if not state or state == "" then state = (os.getenv("HOME") or "") .. "/.local/state" end
  local into = o.dir or ("%s/procy/forks/%s-turn%d-%s"):format(state, parent.id:sub(1, 8), n, store.random_hex(3))
  local cwd
  cwd, err, code = checkout(parent, n, into)
  if not cwd then return nil, err, code end
  local out = { cwd = cwd, worktree = into, parent = parent.id, turn = n }
  if not o.prompt then -- the last turn, in a terminal: the whole conversation, as a new session of Claude Code's
    out.argv = { "claude", "--resume", aid, "--fork-session" }
    return out
  end
  local agent = require "procy.agent"
  local a
  a, err, code = agent.open { profile = "claude", mode = "headless", cwd = cwd, resume = aid, env = o.env,
    args = agent.edit_args(agent.profile("claude"), { "--resume-session-at", at, "--fork-session" }), mirror = false }
  if not a then return nil, err, code end
  store.open():exec("UPDATE sessions SET parent_id = ?, fork_turn = ? WHERE id = ?", parent.id, n, a.session)
  out.session = a.session
  local seq = a:send(o.prompt, "human")
  local t = a:wait_turn { seq = seq, timeout = o.timeout or 1800 }
  out.answer = t and t.response ~= json.null and t.response or nil
  out.status = t and t.status or "error"
  out.agent_session = a:status().agent_session
  a:close()
  if out.agent_session and out.agent_session ~= aid then store.agent_session(a.session, out.agent_session) end
  if not o.headless then out.argv = { "claude", "--resume", out.agent_session or aid } end
  return out
end

-- tree(id) -> {id, parent, fork_turn, children = {...}}: the session's
-- family, from its root
function M.tree(id, h)
  h = h or store.open()
  local row = h:query("SELECT id, parent_id FROM sessions WHERE id = ?", id)[1]
  while row and row.parent_id do row = h:query("SELECT id, parent_id FROM sessions WHERE id = ?", row.parent_id)[1] or nil end
  if not row then return nil end
  local function node(sid)
    local kids = {}
    for _, c in ipairs(h:query("SELECT id, fork_turn FROM sessions WHERE parent_id = ? ORDER BY started_at", sid)) do
      local k = node(c.id)
      k.fork_turn = c.fork_turn
      kids[#kids + 1] = k
    end
    return { id = sid, children = json.array(kids) }
  end
  return node(row.id)
end

return M
