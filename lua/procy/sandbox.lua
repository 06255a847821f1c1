-- procy.sandbox: an agent run inside bubblewrap (bwrap). What it holds:
--
--   * the whole filesystem read-only; the project directory and the
--     profile's writable paths writable, except what procy or the person
--     later runs or loads as configuration (procy.lua, the project's
--     .git/config and hooks, agents' settings, hooks, commands and MCP
--     lists), which stay read-only over them; one of those the agent
--     makes where there was none is moved aside when it ends (finish);
--   * procy's record, its tape and procy's data directory hidden, and so
--     are ~/.ssh, ~/.aws, ~/.gnupg, ~/.config/gcloud, ~/.netrc, ~/.docker,
--     ~/.kube and the other credential stores in M.hidden (a profile's
--     `show` lists the ones to keep);
--   * a /tmp, /dev/shm and /run/user of its own, a /dev with only the
--     harmless devices (not the person's terminals), a /proc of its own;
--   * new PID, IPC and UTS namespaces (procy and the person's processes
--     are not there to signal or ptrace), every capability dropped, no new
--     privileges, a user namespace of its own when procy runs as root;
--     killed with procy (--die-with-parent); in a session
--     of its own (--new-session), taking its terminal (procy's, never the
--     person's) as its own controlling one inside; TIOCSTI and TIOCLINUX
--     refused (seccomp);
--   * the network (the profile's `network`): "proxy" (default) — a
--     network namespace whose only way out is procy's server, through a
--     Unix socket bound into the sandbox and procy's relay on its
--     loopback at the port of the agent's base URL; "none" — no way out
--     at all; "full" — the host's network without the host's loopback
--     (slirp4netns), procy's server through the relay as with "proxy".
--
-- Profiles are tables in the `sandboxes` setting; `default` is built in.
-- A missing bwrap is an error, never an unsandboxed run.

local core = require "procy.core"
local fs = require "procy.fs"
local proc = require "procy.proc"

local M = {}

-- What an agent writes besides the project: its own settings and
-- sessions. Caches and package stores the person later runs from
-- (~/.cache, ~/.npm, ~/.cargo) are not among them: the agent gets
-- ~/.cache and npm's cache of its own, empty, in its /tmp.
M.defaults = {
  default = { writable = { "~/.claude", "~/.claude.json", "~/.codex" }, network = "proxy" },
}

-- Where credentials live: hidden unless the profile's `show` names one.
M.hidden = { "~/.ssh", "~/.aws", "~/.gnupg", "~/.config/gcloud", "~/.netrc", "~/.docker", "~/.kube",
  "~/.config/gh", "~/.git-credentials", "~/.config/git/credentials", "~/.npmrc", "~/.pypirc",
  "~/.cargo/credentials.toml", "~/.cargo/credentials", "~/.azure", "~/.config/doctl", "~/.terraform.d",
  "~/.vault-token", "~/.password-store", "~/.local/share/keyrings", "~/.mozilla", "~/.config/chromium",
  "~/.config/google-chrome", "~/.bash_history", "~/.zsh_history", "~/.local/share/fish", "~/.python_history",
  "~/.psql_history", "~/.mysql_history", "~/.config/procy" }

-- What procy or the person later runs or loads, relative to the project
-- and to each writable path: read-only inside.
M.guarded = { "procy.lua", ".procy", ".git/config", ".git/hooks", ".git/info", ".gitmodules",
  ".claude/settings.json", ".claude/settings.local.json", ".claude/commands", ".claude/agents",
  ".claude/hooks", ".claude/skills", ".claude/plugins", ".claude/output-styles", ".mcp.json",
  ".codex/config.toml", ".codex/prompts", ".codex/rules", ".gemini/settings.json", ".qwen/settings.json",
  ".opencode.json", "opencode.json", ".vscode/tasks.json", ".vscode/settings.json", ".envrc",
  ".husky", ".pre-commit-config.yaml", "lefthook.yml", ".lefthook.yml" }

-- The same, by an agent's home directory (its settings, hooks, commands,
-- plugins, MCP servers and instructions).
M.guarded_home = { "~/.claude/settings.json", "~/.claude/settings.local.json", "~/.claude/commands",
  "~/.claude/agents", "~/.claude/hooks", "~/.claude/skills", "~/.claude/plugins", "~/.claude/output-styles",
  "~/.claude/CLAUDE.md", "~/.claude/local", "~/.codex/config.toml", "~/.codex/AGENTS.md", "~/.codex/prompts", "~/.codex/rules",
  "~/.bashrc", "~/.profile", "~/.bash_profile", "~/.zshrc", "~/.gitconfig", "~/.config/git" }

-- Files the agent rewrites as it runs, but which also hold what the
-- person's next agent runs (~/.claude.json: its MCP servers): the agent
-- writes a copy of its own, dropped when it ends.
M.private_copies = { "~/.claude.json" }

-- In a git directory (and each submodule's): its config, hooks, and what
-- sends git elsewhere (commondir, gitdir) or adds config.
M.guarded_git = { "config", "hooks", "info", "commondir", "gitdir", "config.worktree" }

-- What a file directly in an agent's home is run as, by its name
local SCRIPT = { sh = true, bash = true, zsh = true, py = true, js = true, mjs = true, cjs = true, ts = true,
  rb = true, pl = true, lua = true }

local FIELDS = { writable = true, defaults = true, create = true, env = true, network = true, show = true }
local NETWORKS = { proxy = true, none = true, full = true }

-- profile(p) -> the profile table for a name (the `sandboxes` setting,
-- then the built-in ones) or a table | nil, err, code
function M.profile(p)
  if type(p) ~= "table" then
    local name = (p == nil or p == true) and "default" or tostring(p)
    local cfg = require("procy.config").get()
    p = (cfg.sandboxes or {})[name] or M.defaults[name]
    if not p then
      local names = {}
      for k in pairs(M.defaults) do names[k] = true end
      for k in pairs(cfg.sandboxes or {}) do names[k] = true end
      local list = {}
      for k in pairs(names) do list[#list + 1] = k end
      table.sort(list)
      return nil, ("EINVAL: no sandbox profile %q (there are: %s; add one to `sandboxes` in procy.lua)")
        :format(name, table.concat(list, ", ")), "EINVAL"
    end
  end
  for k in pairs(p) do
    if not FIELDS[k] then
      return nil, ("EINVAL: sandbox profile: unknown field %q (writable, defaults, create, env, network, show)")
        :format(tostring(k)), "EINVAL"
    end
  end
  if p.network ~= nil and not NETWORKS[p.network] then
    return nil, ("EINVAL: sandbox profile: network is \"proxy\", \"none\" or \"full\", not %q"):format(tostring(p.network)),
      "EINVAL"
  end
  return p
end

-- program(setting) -> the path of the program a setting names (a path, or
-- a name looked up on PATH), or nil; and where it was looked for
local function program(setting)
  local name = require("procy.config").get()[setting] or setting
  if name:find("/", 1, true) then
    local st = fs.stat(name)
    return st and st.type == "file" and name or nil, name .. " is not there"
  end
  for dir in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
    local st = fs.stat(dir .. "/" .. name)
    if st and st.type == "file" then return dir .. "/" .. name end
  end
  return nil, name .. " is not on PATH"
end

-- find() -> bwrap's path (the `bwrap` setting: a path, or a name on
-- PATH) | nil, err, code
function M.find()
  local path, where = program("bwrap")
  if path then return path end
  return nil, ("ENOENT: --sandbox runs the agent in bubblewrap, and %s (Debian: apt-get install "
    .. "bubblewrap; or set `bwrap` in procy.lua); procy does not run it unsandboxed"):format(where), "ENOENT"
end

-- find_slirp() -> slirp4netns's path (the `slirp4netns` setting, or on
-- PATH) | nil, err, code: what network = "full" needs
function M.find_slirp()
  local path, where = program("slirp4netns")
  if path then return path end
  return nil, ("ENOENT: a sandbox with network = \"full\" reaches the network through slirp4netns, and %s "
    .. "(Debian: apt-get install slirp4netns; or set `slirp4netns` in procy.lua)"):format(where), "ENOENT"
end

local function home() return os.getenv("HOME") or "" end

-- procy's effective user id (from /proc: no call for it is worth a binding)
local function euid()
  for line in io.lines("/proc/self/status") do
    local e = line:match("^Uid:%s+%d+%s+(%d+)")
    if e then return tonumber(e) end
  end
end

local function expand(path, cwd)
  if path == "~" then return home() end
  if path:sub(1, 2) == "~/" then return home() .. path:sub(2) end
  if path:sub(1, 1) ~= "/" then return cwd .. "/" .. path end
  return path
end

local function under(path, dir)
  return path == dir or path:sub(1, #dir + 1) == dir .. "/"
end

local function dirname(p) return p:match("^(.*)/[^/]*$") or "/" end

-- The directories procy keeps what it trusts in: the record's (its tape,
-- its servers' links, the private git repositories), and procy's data
-- and config directories.
local function procy_dirs()
  local list = {}
  local ok, store = pcall(require, "procy.store")
  if ok and store.path then list[#list + 1] = dirname(fs.realpath(store.path()) or store.path()) end
  local data = os.getenv("XDG_DATA_HOME")
  list[#list + 1] = ((data and data ~= "") and data or home() .. "/.local/share") .. "/procy"
  return list
end

-- A box: what one sandboxed run needs around it, and what is done when it
-- ends (box:finish()).
local B = {}
B.__index = B

-- finish(): the run is over. A guarded path that was not there before and
-- is now (the agent made it) is moved aside as NAME.sandboxed-TIME and
-- said; the relay and the private copies go.
-- scan(root) -> {path = stat}, whether it stopped short: every path under
-- root named as a guarded path ends (procy.lua, .claude/settings.json,
-- .mcp.json, ...) or `.git`; links are not followed, .git directories not
-- entered (at most a million entries)
local function scan(root)
  local names = {}
  for _, g in ipairs(M.guarded) do names[g:match("[^/]+$")] = true end
  local found, left = {}, 1000000
  local function walk(d)
    for _, name in ipairs(fs.dir(d) or {}) do
      left = left - 1
      if left < 0 then return end
      local path = d .. "/" .. name
      local st = fs.stat(path, true)
      if st then
        if name == ".git" then
          found[path] = st
        elseif names[name] then
          for _, g in ipairs(M.guarded) do
            if path:sub(-#g - 1) == "/" .. g then found[path] = st break end
          end
        end
        if st.type == "dir" and name ~= ".git" then walk(path) end
      end
    end
  end
  walk(root)
  return found, left < 0
end

-- The first link on the way to path inside a writable path (what must be
-- moved aside in its place: never what the link names), else path.
local function first_link(path, roots)
  for _, root in ipairs(roots) do
    if path ~= root and path:sub(1, #root + 1) == root .. "/" then
      local at = root
      for part in path:sub(#root + 2):gmatch("[^/]+") do
        at = at .. "/" .. part
        local st = fs.stat(at, true)
        if not st then return path end
        if st.type == "link" then return at end
      end
    end
  end
  return path
end

-- finish(): the run is over. What procy or the person would later run or
-- load that the agent made or changed is moved aside as NAME.sandboxed-TIME
-- and said: a guarded path that was not there before; a guarded link that
-- now is another, or names another file; anywhere in the project, a path
-- named as a guarded one (a procy.lua, agent settings, a .git) that was
-- not there before the run or (a file) changed during it. The relay and
-- the private copies go.
function B:finish()
  if self.finished then return end
  self.finished = true
  if self.relay then
    self.relay:kill("KILL")
    pcall(self.relay.wait, self.relay, 2)
  end
  local aside = {}
  for _, path in ipairs(self.absent) do aside[#aside + 1] = first_link(path, self.roots or {}) end
  for path, st in pairs(self.present) do
    if st.type == "link" then
      local now = fs.stat(path, true)
      local target = fs.realpath(path)
      local tst = target and fs.stat(target, true)
      if now and (now.ino ~= st.ino or now.type ~= st.type or target ~= st.target or (tst and tst.ino) ~= st.target_ino) then
        aside[#aside + 1] = first_link(path, self.roots or {})
      end
    end
  end
  for _, root in ipairs(self.writable or {}) do
    local after, short = scan(root)
    local before = self.before and self.before[root] or {}
    for path, st in pairs(after) do
      local was = before[path]
      if not was or (st.type ~= "dir" and was.type ~= "dir" and (st.ctime ~= was.ctime or st.ino ~= was.ino)) then
        if not self.present[path] then aside[#aside + 1] = path end
      end
    end
    if short then
      io.stderr:write("procy: the sandboxed agent's project holds over a million files: procy did not look at them all "
        .. "for a procy.lua, agent settings or a .git it made\n")
    end
  end
  local moved = {}
  for _, path in ipairs(aside) do
    if not moved[path] and fs.stat(path, true) then
      moved[path] = true
      local to = ("%s.sandboxed-%d"):format(path, os.time())
      if os.rename(path, to) then
        io.stderr:write(("procy: the sandboxed agent made %s, which procy or you would later run or load: "
          .. "moved to %s\n"):format(path, to))
      end
    end
  end
  if self.private then proc.run { "rm", "-rf", self.private } end
end

-- box:dir() -> the run's private directory (0700: the relay's socket,
-- private copies, a resolv.conf), made once | nil, err, code
function B:dir()
  if self.private then return self.private end
  local base = os.getenv("XDG_RUNTIME_DIR")
  if not base or base == "" or not fs.stat(base) then base = "/tmp" end
  local dir = ("%s/procy-sandbox-%s"):format(base, require("procy.store").random_hex(8))
  local ok, err, code = fs.mkdir(dir, 448) -- 0700
  if not ok then return nil, err, code end
  self.private = dir
  return dir
end

-- wrap(argv, {profile =, cwd =, port =, pty =}) -> the argv that runs argv
-- in the sandbox, box | nil, err, code. profile: a name, true (default)
-- or a table. port: procy's server, the agent's way out with network
-- "proxy" (none: no way out). pty: the agent runs in a terminal procy
-- opened for it without making it its controlling one (pty.session{ctty
-- = false}, proc.spawn{pty = {ctty = false}}): procy's box inside takes
-- it. A writable path that does not exist is left out (made first, as a
-- directory, with create = true). Call box:finish() once the agent has
-- ended.
function M.wrap(argv, o)
  o = o or {}
  local bwrap, err, code = M.find()
  if not bwrap then return nil, err, code end
  local p
  p, err, code = M.profile(o.profile)
  if not p then return nil, err, code end
  local cwd = fs.realpath(o.cwd or assert(fs.cwd())) or o.cwd
  local network = p.network or "proxy"
  local box = setmetatable({ absent = {}, present = {}, started = os.time() - 1 }, B)
  local out = { bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--cap-drop", "ALL", "--die-with-parent" }
  local function add(...) for _, w in ipairs { ... } do out[#out + 1] = w end end
  if euid() == 0 then -- root keeps no capability over the host: a user namespace of its own
    add("--unshare-user", "--uid", "0", "--gid", "0")
  end
  add("--unshare-net")
  local slirp
  if network == "full" then -- the host's network without its loopback: slirp4netns (relay.c's __net)
    slirp, err, code = M.find_slirp()
    if not slirp then return nil, err, code end
    local tun = io.open("/dev/net/tun", "r+b")
    if not tun then
      return nil, "EACCES: a sandbox with network = \"full\" needs /dev/net/tun, which this user cannot open "
        .. "(slirp4netns makes the sandbox's network device with it)", "EACCES"
    end
    tun:close()
    add("--info-fd", "3", "--block-fd", "4")
    -- slirp4netns's resolver: the host's (127.0.0.53, or under /run) is
    -- not there
    local dir
    dir, err, code = box:dir()
    if not dir then return nil, err, code end
    local rf = assert(io.open(dir .. "/resolv.conf", "w"))
    rf:write("nameserver 10.0.2.3\n")
    rf:close()
    box.resolv = dir .. "/resolv.conf"
  end
  add("--new-session") -- no terminal of the person's: a terminal's keystrokes are the agent's own (relay.c's box)
  add("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm")
  -- /run holds the host's sockets (D-Bus, systemd, docker, databases): a
  -- network namespace does not keep a program from a socket's path
  add("--tmpfs", "/run")
  if fs.stat("/var/run", true) and fs.stat("/var/run", true).type == "dir" then add("--tmpfs", "/var/run") end
  -- writable: the project and the profile's paths
  local writable, seen = {}, {}
  local function bind(path)
    path = expand(path, cwd)
    if seen[path] then return end
    seen[path] = true
    if not fs.stat(path) and p.create then fs.mkdir(path) end
    local real = fs.stat(path) and fs.realpath(path)
    if real then
      writable[#writable + 1] = real
      add("--bind", real, real)
    end
  end
  if p.defaults ~= false then bind(cwd) end
  for _, w in ipairs(p.writable or {}) do bind(w) end
  -- the project, where procy starts from (not for check()'s probe of "/"):
  -- what is named as a guarded path there now, to compare at finish
  box.writable = (p.defaults ~= false and not o.probe) and { writable[1] } or {}
  box.roots = writable
  box.before = {}
  for _, root in ipairs(box.writable) do box.before[root] = scan(root) end
  local function in_writable(path)
    for _, w in ipairs(writable) do if under(path, w) then return true end end
    return false
  end
  local function is_root(d) for _, w in ipairs(writable) do if d == w then return true end end end
  -- procy's own directories (the record, its tape, its servers' links, its
  -- private repositories): hidden. One that is a writable path, or holds
  -- one, cannot be: procy refuses rather than let the agent write the
  -- record (or read the monitor's link)
  local hide = {}
  for _, d in ipairs(procy_dirs()) do
    d = fs.realpath(d) or d
    local holds = is_root(d)
    for _, w in ipairs(writable) do holds = holds or under(w, d) end
    if holds then
      return nil, ("EINVAL: procy's record is in %s, which the sandboxed agent could write: give the record a "
        .. "directory of its own (db = \".procy/record.db\" in procy.lua)"):format(d), "EINVAL"
    end
    hide[#hide + 1] = d
  end
  -- a private copy for the files the agent rewrites but the person's
  -- next agent trusts (a link: a copy of what it names)
  local copies = {}
  for _, f in ipairs(M.private_copies) do
    local path = expand(f, cwd)
    local real = fs.realpath(path)
    local st = real and fs.stat(real)
    if in_writable(path) or (real and in_writable(real)) then
      if st and st.type == "file" then
        local dir
        dir, err, code = box:dir()
        if not dir then return nil, err, code end
        local copy = dir .. "/" .. path:gsub("/", "_")
        local r = proc.run { "cp", "-pL", path, copy }
        if not r or r.code ~= 0 then return nil, "EIO: cannot copy " .. path .. " for the sandbox", "EIO" end
        copies[#copies + 1] = { copy, real }
      end
    end
  end
  -- guarded: what procy or the person later runs or loads, read-only over
  -- the writable paths; found where it really is (a linked directory)
  local guarded, gseen = {}, {}
  local function guard(path)
    local real = fs.realpath(dirname(path))
    if real then path = (real == "/" and "" or real) .. "/" .. path:match("[^/]*$") end
    if not gseen[path] then
      gseen[path] = true
      guarded[#guarded + 1] = path
    end
  end
  for _, w in ipairs(writable) do
    for _, g in ipairs(M.guarded) do guard(w .. "/" .. g) end
  end
  for _, g in ipairs(M.guarded_home) do guard(expand(g, cwd)) end
  -- programs an agent's settings run from its home (a status line script,
  -- a local install): every program or script directly in it
  for _, d in ipairs { "~/.claude", "~/.codex" } do
    local dir = expand(d, cwd)
    for _, name in ipairs(fs.dir(dir) or {}) do
      local st = fs.stat(dir .. "/" .. name, true)
      if st and st.type == "file" and (st.mode & 73 ~= 0 or SCRIPT[name:match("%.(%w+)$") or ""]) then
        guard(dir .. "/" .. name)
      end
    end
  end
  -- git: procy.lua from the project up to the repository's top (procy
  -- takes the nearest one); the git directories' config, hooks and what
  -- points git elsewhere, submodules' too; a .git file; core.hooksPath
  local gitx = require "procy.git"
  local top, git_dir, common = gitx.find(cwd)
  if top then
    local d = cwd
    while under(d, top) do
      guard(d .. "/procy.lua")
      if d == top then break end
      d = dirname(d)
    end
    local dot = fs.stat(top .. "/.git", true)
    if dot and dot.type == "file" then guard(top .. "/.git") end
    local function git_dir_guard(gd, depth)
      for _, g in ipairs(M.guarded_git) do guard(gd .. "/" .. g) end
      if depth > 4 then return end
      for _, name in ipairs(fs.dir(gd .. "/modules") or {}) do git_dir_guard(gd .. "/modules/" .. name, depth + 1) end
    end
    git_dir_guard(git_dir, 0)
    if common ~= git_dir then git_dir_guard(common, 0) end
    local hooks = gitx.run({ "config", "--file", common .. "/config", "--includes", "--get", "core.hooksPath" }, { cwd = top })
    if hooks and hooks ~= "" then
      if hooks:sub(1, 2) == "~/" then hooks = home() .. hooks:sub(2) end
      guard(hooks:sub(1, 1) == "/" and hooks or top .. "/" .. hooks)
    end
    -- every file the repository's config includes (a shared config kept in
    -- the work tree): as much the repository's config as .git/config
    local list = gitx.run({ "config", "--file", common .. "/config", "--includes", "--list", "--show-origin", "-z" },
      { cwd = common })
    local fields = {}
    for f in (list or ""):gmatch("([^%z]*)%z") do fields[#fields + 1] = f end
    for i = 1, #fields - 1, 2 do -- origin, then "key\nvalue"
      local origin = fields[i]:match("^file:(.+)$")
      if origin then guard(origin:sub(1, 1) == "/" and origin or common .. "/" .. origin) end
    end
  end
  table.sort(guarded)
  local parents, ro = {}, {}
  for _, path in ipairs(guarded) do
    if in_writable(path) then
      local st = fs.stat(path, true)
      if st then
        box.present[path] = st
        if st.type == "link" then
          st.target = fs.realpath(path)
          local tst = st.target and fs.stat(st.target, true)
          st.target_ino = tst and tst.ino
        end
        -- its directories below the writable path: mount points (bound
        -- onto themselves), which the agent cannot rename away
        local d = dirname(path)
        while in_writable(d) and not is_root(d) do
          parents[d] = true
          d = dirname(d)
        end
        if st.type ~= "link" then
          ro[#ro + 1] = path
        else -- a link: where it points, read-only; the link itself is checked at finish
          local real = fs.realpath(path)
          if real and in_writable(real) then ro[#ro + 1] = real end
        end
      else
        box.absent[#box.absent + 1] = path
      end
    end
  end
  local plist = {}
  for d in pairs(parents) do plist[#plist + 1] = d end
  table.sort(plist, function(x, y) return #x < #y or #x == #y and x < y end)
  for _, d in ipairs(plist) do add("--bind", d, d) end
  for _, c in ipairs(copies) do add("--bind", c[1], c[2]) end
  for _, path in ipairs(ro) do add("--ro-bind", path, path) end
  -- hidden: credentials (unless shown), and procy's own directories
  local show = {}
  for _, sh in ipairs(p.show or {}) do show[expand(sh, cwd)] = true end
  for _, h in ipairs(M.hidden) do
    local path = expand(h, cwd)
    if not show[path] then hide[#hide + 1] = path end
  end
  for _, path in ipairs(hide) do
    local st = fs.stat(path)
    if st and st.type == "dir" then
      add("--tmpfs", fs.realpath(path) or path, "--remount-ro", fs.realpath(path) or path)
    elseif st then
      add("--ro-bind", "/dev/null", fs.realpath(path) or path)
    end
  end
  if box.resolv then add("--ro-bind", box.resolv, "/etc/resolv.conf") end
  -- procy itself where it is (its relay, and `procy hook` that an agent's
  -- hooks run), whatever the mounts above hid
  local exe = fs.realpath(core.exe) or core.exe
  add("--ro-bind", exe, exe)
  -- an agent's caches of its own
  add("--setenv", "XDG_CACHE_HOME", "/tmp/.cache", "--setenv", "npm_config_cache", "/tmp/.npm")
  local env = {}
  for k, v in pairs(p.env or {}) do env[#env + 1] = { k, tostring(v) } end
  table.sort(env, function(a, b) return a[1] < b[1] end)
  for _, kv in ipairs(env) do add("--setenv", kv[1], kv[2]) end
  add("--setenv", "SANDBOX", "1", "--chdir", cwd)
  -- procy's box in front of the agent (relay.c): no TIOCSTI, the
  -- terminal its own, and with network "proxy" the way out: procy's
  -- relay, outside from a Unix socket to procy's server, inside from the
  -- namespace's loopback to it
  local shim = { exe, "__box" }
  if o.pty then shim[#shim + 1] = "--tty" end
  if network ~= "none" and o.port then
    local dir
    dir, err, code = box:dir()
    if not dir then return nil, err, code end
    local sock = dir .. "/api.sock"
    local relay
    relay, err, code = proc.spawn({ exe, "__relay", "unix:" .. sock, "tcp:127.0.0.1:" .. o.port },
      { stdout = false, stderr = false })
    if not relay then return nil, err, code end
    box.relay = relay
    local deadline = core.now() + 20 -- until it listens (a loaded machine, a sanitized build: slow)
    while not fs.stat(sock) and core.now() < deadline do core.sleep(0.005) end
    if not fs.stat(sock) then
      box:finish()
      return nil, "EIO: procy's relay for the sandbox did not start", "EIO"
    end
    add("--dir", "/tmp/.procy", "--bind", sock, "/tmp/.procy/api.sock")
    for _, w in ipairs { "--relay", "tcp:127.0.0.1:" .. o.port, "unix:/tmp/.procy/api.sock" } do shim[#shim + 1] = w end
  end
  add("--")
  for _, w in ipairs(shim) do out[#out + 1] = w end
  out[#out + 1] = "--"
  for _, a in ipairs(argv) do out[#out + 1] = a end
  if slirp then out = table.move(out, 1, #out, 5, { exe, "__net", slirp, "--" }) end
  return out, box
end

-- check(profile) -> true | nil, err, code: whether a sandbox can start
-- here (bwrap found, the profile known, the kernel lets it make one)
function M.check(profile)
  local argv, box, code = M.wrap({ "true" }, { profile = profile, cwd = "/", probe = true })
  if not argv then return nil, box, code end
  local r = proc.run(argv, { timeout = 10 })
  box:finish()
  if not r or r.code ~= 0 then
    return nil, "EPERM: bwrap cannot make a sandbox here: " .. ((r and r.stderr or ""):gsub("%s+$", "")), "EPERM"
  end
  return true
end

return M
