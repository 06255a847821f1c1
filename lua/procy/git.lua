-- procy.git: the one way procy runs git on a repository an agent can
-- write (snapshots, restores, forks, evolve's worktrees). The repository's
-- own configuration is the agent's to write, and much of git's config
-- names programs git starts (core.fsmonitor, hooks, filter drivers named
-- by .gitattributes, diff drivers, pagers, credential helpers, gpg, ssh):
-- run as the person, outside any sandbox, that would be the agent's way
-- out. So every command here runs
--
--   * with no system config and a blank global one (the person's
--     core.excludesFile is kept: it only names files to leave out);
--   * with command-line config (GIT_CONFIG_COUNT: keys and values apart,
--     so no name can smuggle an '=') that turns every program-starting key
--     off, and blanks the drivers of every filter and diff driver the
--     repository's config names (includes followed) — git's command-line
--     config outranks the repository's;
--   * with the work tree and git directory procy found itself, never
--     core.worktree's (an agent could point restores elsewhere);
--   * with no pager, prompt, askpass, ssh or external diff from the
--     environment.
--
-- What is left is a race: a process the agent left running could add a
-- new driver to a config file between the look and the command. An
-- agent in procy's sandbox cannot: the sandbox shows it the repository's
-- config, commondir and hooks read-only, its directories unmovable
-- (procy.sandbox), and git is told the common directory (no commondir
-- file is read mid-way).

local fs = require "procy.fs"
local proc = require "procy.proc"

local M = {}

-- Keys whose value is a program git may start, and the value that starts
-- none (or only a harmless one: procy never signs or fetches).
M.off = {
  { "core.fsmonitor", "false" }, { "core.hooksPath", "/dev/null" }, { "core.pager", "cat" },
  { "core.askPass", "" }, { "credential.helper", "" }, { "core.sshCommand", "" }, { "core.gitProxy", "" },
  { "core.alternateRefsCommand", "" }, { "protocol.allow", "never" }, { "diff.external", "" },
  { "commit.gpgSign", "false" }, { "tag.gpgSign", "false" }, { "gpg.program", "false" },
  { "gpg.ssh.program", "false" }, { "gpg.x509.program", "false" }, { "gc.auto", "0" },
  { "maintenance.auto", "false" }, { "core.editor", "false" }, { "sequence.editor", "false" },
  { "uploadpack.packObjectsHook", "" }, { "core.untrackedCache", "false" }, { "submodule.recurse", "false" },
}

-- The keys of a driver section, each blanked for every driver name found.
M.drivers = { filter = { "clean", "smudge", "process" }, diff = { "command", "textconv" }, merge = { "driver" } }

-- Environment git reads programs or config from, unset.
local UNSET = { "GIT_CONFIG_PARAMETERS", "GIT_CONFIG", "GIT_EXTERNAL_DIFF", "GIT_SSH", "GIT_SSH_COMMAND",
  "GIT_ASKPASS", "SSH_ASKPASS", "GIT_EDITOR", "GIT_SEQUENCE_EDITOR", "GIT_PROXY_COMMAND", "GIT_TRACE",
  "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR",
  "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES", "GIT_ATTR_SOURCE", "GIT_EXEC_PATH" }

-- The common directory of a git directory: its `commondir` file's, read
-- once here (a worktree's), else itself.
local function common_of(git_dir)
  local f = io.open(git_dir .. "/commondir", "rb")
  if not f then return git_dir end
  local c = (f:read("l") or ""):gsub("%s+$", "")
  f:close()
  if c == "" then return git_dir end
  if c:sub(1, 1) ~= "/" then c = git_dir .. "/" .. c end
  return fs.realpath(c) or c
end

-- find(dir) -> top, git_dir, common_dir | nil: the work tree holding dir,
-- its git directory and their common one, found by looking for .git
-- upwards (a directory, or a file saying `gitdir: PATH` as a worktree's
-- does) — not by asking git, which would take the repository's
-- core.worktree. run() names all three to git, so that git reads no file
-- that could send it elsewhere in the middle of procy's work.
function M.find(dir)
  dir = fs.realpath(dir) or dir
  while true do
    local dot = (dir == "/" and "" or dir) .. "/.git"
    local st = fs.stat(dot, true)
    if st and st.type == "dir" then return dir, dot, common_of(dot) end
    if st and st.type == "file" then
      local f = io.open(dot, "rb")
      local text = f and f:read(4096) or ""
      if f then f:close() end
      local to = text:match("^gitdir: *([^\r\n]+)")
      if to then
        if to:sub(1, 1) ~= "/" then to = dir .. "/" .. to end
        to = fs.realpath(to) or to
        return dir, to, common_of(to)
      end
    end
    if dir == "/" or dir == "" then return nil end
    dir = dir:match("^(.*)/[^/]*$")
    if dir == "" then dir = "/" end
  end
end

local function base_env(o)
  local e = { LC_ALL = "C", GIT_CONFIG_NOSYSTEM = "1", GIT_ATTR_NOSYSTEM = "1", GIT_TERMINAL_PROMPT = "0",
    GIT_OPTIONAL_LOCKS = "0", GIT_PAGER = "cat", PAGER = "cat", GIT_CONFIG_GLOBAL = "/dev/null",
    GIT_DIR = o.git_dir, GIT_WORK_TREE = o.top or false, GIT_CONFIG_COUNT = false }
  for _, k in ipairs(UNSET) do e[k] = false end
  e.GIT_COMMON_DIR = o.git_dir and (o.common or common_of(o.git_dir)) or false
  return e
end

local function exec(argv, env, o)
  local r, err, code = proc.run(argv, { cwd = o.top or o.cwd or "/", env = env, stdin = o.stdin,
    timeout = o.timeout or 120 })
  if not r then return nil, err, code end
  return r
end

-- The person's global core.excludesFile: what the person leaves out of
-- every repository stays out of procy's snapshots (read once: the
-- person's own file, not the agent's).
local excludes
local function person_excludes()
  if excludes == nil then
    local r = proc.run({ "git", "config", "--global", "--get", "core.excludesFile" },
      { env = { GIT_CONFIG_NOSYSTEM = "1", GIT_CONFIG_PARAMETERS = false, GIT_CONFIG_COUNT = false }, timeout = 10 })
    excludes = r and r.code == 0 and r.stdout:gsub("%s+$", "") or false
    if excludes and excludes:sub(1, 2) == "~/" then excludes = (os.getenv("HOME") or "") .. excludes:sub(2) end
  end
  return excludes or nil
end

-- config_text(path) -> the bytes of a config file ("" when there is
-- none), or nil when it is no regular file of a sane size: an agent may
-- put a FIFO, a device or a link to one there, which reading would hang on
-- (git, asked instead, runs with a timeout)
local function config_text(path)
  local st = fs.stat(path)
  if not st then return fs.stat(path, true) and nil or "" end -- a dangling link: ask git
  if st.type ~= "file" or (st.size or 0) > 1048576 then return nil end
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read(1048577) or ""
  f:close()
  return #text <= 1048576 and text or nil
end

local DRIVER_KEYS = "^(filter|diff|merge)\\."

-- blank(stdout) -> the driver keys to blank for `git config -z
-- --get-regexp` output
local function blank(stdout)
  local list, seen = {}, {}
  for entry in stdout:gmatch("([^%z]*)%z") do
    local key = entry:match("^[^\n]*")
    local section, name = key:match("^(%a+)%.(.+)%.[^.]+$")
    local keys = section and M.drivers[section:lower()]
    if keys and not seen[section:lower() .. "." .. name] then
      seen[section:lower() .. "." .. name] = true
      for _, k in ipairs(keys) do list[#list + 1] = { section:lower() .. "." .. name .. "." .. k, "" } end
      if section:lower() == "filter" then list[#list + 1] = { "filter." .. name .. ".required", "false" } end
    end
  end
  return list
end

-- drivers(o) -> the driver keys to blank for a repository. The list is
-- made from the very bytes it is kept with (git parses them from stdin),
-- and kept while the repository's config files read the same: a config
-- file read at every command instead of a git process. A config with an
-- include (its target may change unseen), or a file procy will not read,
-- is asked of git every time, includes followed, as before.
local driver_cache = {}
local function drivers(o)
  local common = o.common or common_of(o.git_dir)
  local a, b = config_text(common .. "/config"), config_text(o.git_dir .. "/config.worktree")
  local text = a and b and (a .. "\0" .. b)
  if text and text:lower():find("include", 1, true) then text = nil end
  local c = text and driver_cache[o.git_dir]
  if c and c.text == text then return c.list end
  -- asked of git with includes followed; a failure fails the command
  -- (a driver procy could not see must not run)
  local function ask()
    local r, err, code = exec({ "git", "config", "-z", "--get-regexp", DRIVER_KEYS }, base_env(o), o)
    if not r then return nil, err, code end
    if (r.code ~= 0 and r.code ~= 1) or r.truncated then
      return nil, "EGIT: git config: cannot read the repository's drivers: " .. (r.stderr:gsub("%s+$", "")), "EGIT"
    end
    return blank(r.stdout)
  end
  if not text then return ask() end
  local out = {}
  for _, part in ipairs { a, b } do
    if part ~= "" then
      local r = exec({ "git", "config", "-z", "--file", "-", "--get-regexp", DRIVER_KEYS }, base_env(o),
        { top = o.top, cwd = o.cwd, stdin = part, timeout = o.timeout })
      -- 1: no such key; anything else, or a cut output: not kept
      if not r or (r.code ~= 0 and r.code ~= 1) or r.truncated then return ask() end
      out[#out + 1] = r.stdout
    end
  end
  local list = blank(table.concat(out))
  driver_cache[o.git_dir] = { text = text, list = list }
  return list
end

-- overrides(o) -> {{key, value}, ...} | nil, err, code: the command-line
-- config for a repository (o.git_dir, o.top): M.off, then each driver
-- named in its config blanked (nil when those cannot be known)
function M.overrides(o)
  local list = {}
  for _, kv in ipairs(M.off) do list[#list + 1] = kv end
  local ex = person_excludes()
  if ex and ex ~= "" then list[#list + 1] = { "core.excludesFile", ex } end
  if o.top then list[#list + 1] = { "safe.directory", o.top } end
  if o.git_dir then
    local d, err, code = drivers(o)
    if not d then return nil, err, code end
    for _, kv in ipairs(d) do list[#list + 1] = kv end
  end
  return list
end

-- Commands that may diff: told never to run an external diff or textconv.
local DIFFS = { diff = true, ["diff-tree"] = true, ["diff-index"] = true, ["diff-files"] = true, log = true, show = true }

-- run(args, o) -> stdout (its last newline taken off) | nil, err, code.
-- o: top (the work tree), git_dir, common (as M.find gives them, or a
-- private repository's; common defaults to what git_dir's commondir says), cwd (when neither: where git runs), env (more
-- environment: GIT_INDEX_FILE, GIT_WORK_TREE, identity), stdin, timeout.
function M.run(args, o)
  o = o or {}
  local env = base_env(o)
  local list, lerr, lcode = M.overrides(o)
  if not list then return nil, lerr, lcode end
  env.GIT_CONFIG_COUNT = tostring(#list)
  for i, kv in ipairs(list) do
    env["GIT_CONFIG_KEY_" .. (i - 1)], env["GIT_CONFIG_VALUE_" .. (i - 1)] = kv[1], kv[2]
  end
  for k, v in pairs(o.env or {}) do env[k] = v end
  local argv = { "git", "--no-pager" }
  for i, a in ipairs(args) do
    argv[#argv + 1] = a
    if i == 1 and DIFFS[a] then argv[#argv + 1], argv[#argv + 2] = "--no-ext-diff", "--no-textconv" end
  end
  local r, err, code = exec(argv, env, o)
  if not r then return nil, err, code end
  if r.code ~= 0 then
    return nil, ("EGIT: git %s: %s"):format(args[1], (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", "")), "EGIT"
  end
  return (r.stdout:gsub("\n$", ""))
end

return M
