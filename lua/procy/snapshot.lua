-- procy.snapshot: the workspace in git, without touching the person's
-- branch, index or HEAD. A snapshot is a commit under a private ref
-- (refs/procy/RUN/TRY) built in an index file of procy's own (a copy of
-- the real one with its mtime, so git's stat cache makes it quick and its
-- racy-entry check still holds); .gitignore is
-- honoured because `git add -A` does the choosing. Restoring writes only
-- the files that differ between two snapshots, and removes the files the
-- newer one added. A directory that is no git repository gets a private
-- one under procy's data directory, with the directory as its work tree.

local core = require "procy.core"
local fs = require "procy.fs"
local gitx = require "procy.git"
local hash = require "procy.hash"
local store = require "procy.store"

local M = {}
local R = {}
R.__index = R

local identity = { GIT_AUTHOR_NAME = "procy", GIT_AUTHOR_EMAIL = "procy@localhost",
  GIT_COMMITTER_NAME = "procy", GIT_COMMITTER_EMAIL = "procy@localhost" }

-- Every git command goes through procy.git: the repository's own config
-- (the agent's to write) starts no program.
local function git(r, args, env, stdin)
  return gitx.run(args, { top = r.top, git_dir = r.git_dir, common = r.common_dir, env = env, stdin = stdin })
end

-- The copy keeps the index's mtime: git trusts an entry's stat data only
-- when the file is older than the index file, and a fresh mtime would make
-- a file rewritten within the same second (same size) look unchanged.
local function copy_index(from, to)
  if not fs.stat(from) then return end
  if not fs.copy(from, to) then os.remove(to) end
end

-- The index files of procies that are gone (killed mid-snapshot): the
-- pid its name holds runs no more (or it is of the older kind, with no
-- pid), and it has not changed for ten minutes — a snapshot under way
-- touches its file, so one from a procy whose pid this one cannot see
-- (another pid namespace) is left alone.
local STALE = 600

local function sweep(git_dir)
  local now = os.time()
  for _, name in ipairs(fs.dir(git_dir) or {}) do
    local base = name:gsub("%.lock$", "")
    local pid = base:match("^procy%-index%-(%d+)%-%x+$")
    local old = base:match("^procy%-index%-%x+$")
    if pid or old then
      local st = fs.stat(git_dir .. "/" .. name)
      local idle = st and st.mtime and now - st.mtime >= STALE
      if idle and (old or not store.process_id(tonumber(pid))) then os.remove(git_dir .. "/" .. name) end
    end
  end
end

-- open(dir) -> repo, or nil, err, code
function M.open(dir)
  dir = assert(fs.realpath(dir or fs.cwd()))
  local r = setmetatable({ dir = dir, env = {} }, R)
  r.top, r.git_dir, r.common_dir = gitx.find(dir)
  if not r.top then
    -- not a repository: a private one, keyed by the directory
    local data = store.path():match("^(.*)/[^/]*$") or "."
    r.git_dir = ("%s/git/%s.git"):format(data, hash.sha256(dir):sub(1, 16))
    r.top, r.private, r.common_dir = dir, true, r.git_dir
    if not fs.stat(r.git_dir) then
      local ok, err, code = fs.mkdir(r.git_dir)
      if not ok then return nil, err, code end
      local _, ierr, icode = git(r, { "init", "-q" })
      if ierr then return nil, ierr, icode end
    end
  end
  sweep(r.git_dir)
  return r
end

function R:git(args, extra, stdin)
  return git(self, args, extra, stdin)
end

-- An index file of procy's own for one operation, removed after however
-- the operation ends: an error, or its task cancelled (procy told to stop
-- mid-snapshot: the coroutine is closed, and <close> runs). Its name
-- holds procy's pid, so one a killed procy left is removed by the next
-- (M.open).
function R:with_index(fn)
  local idx = ("%s/procy-index-%d-%s"):format(self.git_dir, select(2, store.process_id("self")) or 0, store.random_hex(6))
  local _ <close> = setmetatable({}, { __close = function()
    os.remove(idx)
    os.remove(idx .. ".lock")
  end })
  copy_index(self.git_dir .. "/index", idx)
  return fn({ GIT_INDEX_FILE = idx })
end

-- head() -> the commit HEAD names, or nil in a repository with none
function R:head()
  return (self:git { "rev-parse", "-q", "--verify", "HEAD^{commit}" })
end

-- take(ref, message, [parent]) -> commit, or nil, err, code: the
-- workspace as it is now, as a commit that ref names; r.exclude (paths
-- from the top) are left out
function R:take(ref, message, parent)
  return self:with_index(function(env)
    local add = { "add", "-A" }
    if self.exclude and #self.exclude > 0 then
      add[#add + 1], add[#add + 2] = "--", ":/"
      for _, path in ipairs(self.exclude) do add[#add + 1] = ":(top,exclude,literal)" .. path end
    end
    local _, err, code = self:git(add, env)
    if err then return nil, err, code end
    local tree
    tree, err, code = self:git({ "write-tree" }, env)
    if not tree then return nil, err, code end
    local args = { "commit-tree", tree, "-m", message }
    parent = parent or self:head()
    if parent then args[#args + 1] = "-p" args[#args + 1] = parent end
    local commit
    commit, err, code = self:git(args, identity)
    if not commit then return nil, err, code end
    _, err, code = self:git { "update-ref", ref, commit }
    if err then return nil, err, code end
    return commit
  end)
end

-- changes(from, to) -> {{status = "A"|"M"|"D"|"T", path}, ...} between two commits
function R:changes(from, to)
  local out, err, code = self:git { "diff-tree", "-r", "-z", "--no-renames", "--name-status", from, to }
  if not out then return nil, err, code end
  local list, fields = {}, {}
  for f in out:gmatch("([^%z]*)%z?") do fields[#fields + 1] = f end
  for i = 1, #fields - 1, 2 do
    if fields[i] ~= "" then list[#list + 1] = { status = fields[i]:sub(1, 1), path = fields[i + 1] } end
  end
  return list
end

-- diff(from, to, [budget]) -> text: what changed between two snapshots,
-- a stat line per file and then the patch (two lines of context), cut at
-- budget bytes (default 4000) with a note of what was left out. Plumbing
-- (diff-tree): no external diff or textconv the repository names runs.
function R:diff(from, to, budget)
  budget = budget or 4000
  local out, err, code = self:git { "diff-tree", "-r", "--no-renames", "--stat=100", "-p", "-U2", "--no-color", from, to }
  if not out then return nil, err, code end
  if #out <= budget then return out end
  local cut = out:sub(1, budget):match("^(.*\n)") or out:sub(1, budget)
  return cut .. ("[… %d more bytes of the diff left out]\n"):format(#out - #cut)
end

-- plain(top, rel) -> whether every directory on the way from top to rel
-- is one (no symbolic link the agent put there: a removal must not
-- follow it out of the work tree)
local function plain(top, rel)
  local at = top
  for part in rel:gmatch("([^/]+)/") do
    at = at .. "/" .. part
    local st = fs.stat(at, true)
    if not st or st.type ~= "dir" then return false end
  end
  return true
end

-- restore(from, to) -> {written = n, removed = n}, or nil, err, code: the
-- workspace, which is snapshot `from`, becomes snapshot `to`
function R:restore(from, to)
  local list, err, code = self:changes(from, to)
  if not list then return nil, err, code end
  local write, removed = {}, 0
  for _, c in ipairs(list) do
    if c.status == "D" then
      local path = self.top .. "/" .. c.path
      if plain(self.top, c.path) and os.remove(path) then removed = removed + 1 end
      -- directories the removal left empty go too (os.remove fails on the first that is not)
      local d = path:match("^(.*)/[^/]*$")
      while d and #d > #self.top and plain(self.top, d:sub(#self.top + 2) .. "/") and os.remove(d) do
        d = d:match("^(.*)/[^/]*$")
      end
    else
      write[#write + 1] = c.path
    end
  end
  if #write > 0 then
    local ok, werr, wcode = self:with_index(function(env)
      local _, e, c = self:git({ "read-tree", to }, env)
      if e then return nil, e, c end
      _, e, c = self:git({ "checkout-index", "-f", "-z", "--stdin" }, env, table.concat(write, "\0") .. "\0")
      if e then return nil, e, c end
      return true
    end)
    if not ok then return nil, werr, wcode end
  end
  return { written = #write, removed = removed }
end

-- worktree_lock() -> lock (close it, or hold it in a <close> local), or
-- nil, err, code: the repository's `git worktree add` to oneself. Two at
-- once can read each other's half-written records ("failed to read
-- commondir"), and they may come from two procy processes (an evolve run
-- and a `procy fork`), so the lock is a file in git's common directory
-- that the kernel lets go when its holder exits. Waits up to a minute.
function R:worktree_lock()
  if not self.common then
    local dir, err, code = self:git { "rev-parse", "--path-format=absolute", "--git-common-dir" }
    if not dir then return nil, err, code end
    self.common = dir
  end
  local path, t0 = self.common .. "/procy-worktree.lock", core.now()
  while true do
    local lock, err, code = fs.lock(path)
    if lock then return lock end
    if lock == nil then return nil, err, code end
    if core.now() - t0 > 60 then
      return nil, "ETIMEDOUT: another process has held " .. path .. " for a minute", "ETIMEDOUT"
    end
    core.sleep(0.02)
  end
end

-- worktree(path, commit) -> repo, or nil, err, code: a git worktree at
-- path holding commit, detached (no branch moves), sharing this
-- repository's objects and refs (a snapshot taken in it is one here too).
-- The person's hooks do not run for it. One at a time on a repository,
-- across processes too (worktree_lock).
function R:worktree(path, commit)
  local lock, err, code = self:worktree_lock()
  if not lock then return nil, err, code end
  local _ <close> = lock
  local _, gerr, gcode = self:git { "worktree", "add", "--detach", "-q", path, commit }
  if gerr then return nil, gerr, gcode end
  return M.open(path)
end

-- remove_worktree(path) -> true, or nil, err, code: the worktree's files
-- and git's record of it (also when its directory is gone already);
-- symlinks in it are removed, not followed
function R:remove_worktree(path)
  local _, err, code = self:git { "worktree", "remove", "--force", "--force", path }
  if err then return nil, err, code end
  return true
end

-- refs(prefix) -> {ref = commit} under refs/procy/PREFIX
function R:refs(prefix)
  local out = self:git { "for-each-ref", "--format=%(refname) %(objectname)", "refs/procy/" .. (prefix or "") }
  local map = {}
  for ref, id in (out or ""):gmatch("(%S+) (%x+)") do map[ref] = id end
  return map
end

return M
