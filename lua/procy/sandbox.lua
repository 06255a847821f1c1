-- procy.sandbox: an agent run inside bubblewrap (bwrap), as lproc's `sand`
-- ran it. The whole filesystem is there, read-only; the project
-- directory, /tmp and the profile's writable paths can be written; the
-- network is kept (the agent reaches procy's proxy and its API); SANDBOX=1
-- tells the agent where it is. Only the agent is inside: procy, its
-- record and its proxy stay out.
--
-- Profiles are tables in the `sandboxes` setting; `default` is built in.
-- A missing bwrap is an error, never an unsandboxed run.

local fs = require "procy.fs"
local proc = require "procy.proc"

local M = {}

-- What an agent writes besides the project: its settings and sessions,
-- caches, package managers' stores.
M.defaults = {
  default = { writable = { "~/.claude", "~/.claude.json", "~/.codex", "~/.cache", "~/.npm", "~/.cargo" } },
}

local FIELDS = { writable = true, defaults = true, create = true, env = true }

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
      return nil, ("EINVAL: sandbox profile: unknown field %q (writable, defaults, create, env)"):format(tostring(k)), "EINVAL"
    end
  end
  return p
end

-- find() -> bwrap's path (the `bwrap` setting: a path, or a name on
-- PATH) | nil, err, code
function M.find()
  local name = require("procy.config").get().bwrap or "bwrap"
  local dirs = name:find("/", 1, true) and { "" } or nil
  if not dirs then
    dirs = {}
    for dir in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do dirs[#dirs + 1] = dir .. "/" end
  end
  for _, dir in ipairs(dirs) do
    local st = fs.stat(dir .. name)
    if st and st.type == "file" then return dir .. name end
  end
  return nil, ("ENOENT: --sandbox runs the agent in bubblewrap, and %s is not %s (Debian: apt-get install "
    .. "bubblewrap; or set `bwrap` in procy.lua); procy does not run it unsandboxed")
    :format(name, dirs[1] == "" and "there" or "on PATH"), "ENOENT"
end

local function expand(path, cwd)
  local home = os.getenv("HOME") or ""
  if path == "~" then return home end
  if path:sub(1, 2) == "~/" then return home .. path:sub(2) end
  if path:sub(1, 1) ~= "/" then return cwd .. "/" .. path end
  return path
end

-- wrap(argv, {profile =, cwd =}) -> the argv that runs argv in the
-- sandbox | nil, err, code. profile: a name, true (default) or a table.
-- A writable path that does not exist is left out (made first, as a
-- directory, with create = true).
function M.wrap(argv, o)
  o = o or {}
  local bwrap, err, code = M.find()
  if not bwrap then return nil, err, code end
  local p
  p, err, code = M.profile(o.profile)
  if not p then return nil, err, code end
  local cwd = o.cwd or assert(fs.cwd())
  local out = { bwrap, "--ro-bind", "/", "/", "--dev-bind", "/dev", "/dev", "--proc", "/proc" }
  local seen = {}
  local function bind(path)
    path = expand(path, cwd)
    if seen[path] then return end
    seen[path] = true
    if not fs.stat(path) and p.create then fs.mkdir(path) end
    local real = fs.stat(path) and fs.realpath(path)
    if real then
      out[#out + 1], out[#out + 2], out[#out + 3] = "--bind", real, real
    end
  end
  if p.defaults ~= false then
    bind(cwd)
    bind("/tmp")
  end
  for _, w in ipairs(p.writable or {}) do bind(w) end
  local env = {}
  for k, v in pairs(p.env or {}) do env[#env + 1] = { k, tostring(v) } end
  table.sort(env, function(a, b) return a[1] < b[1] end)
  for _, kv in ipairs(env) do
    out[#out + 1], out[#out + 2], out[#out + 3] = "--setenv", kv[1], kv[2]
  end
  for _, w in ipairs { "--setenv", "SANDBOX", "1", "--die-with-parent", "--chdir", cwd, "--" } do out[#out + 1] = w end
  for _, a in ipairs(argv) do out[#out + 1] = a end
  return out
end

-- check(profile) -> true | nil, err, code: whether a sandbox can start
-- here (bwrap found, the profile known, the kernel lets it make one)
function M.check(profile)
  local argv, err, code = M.wrap({ "true" }, { profile = profile, cwd = "/" })
  if not argv then return nil, err, code end
  local r = proc.run(argv, { timeout = 10 })
  if not r or r.code ~= 0 then
    return nil, "EPERM: bwrap cannot make a sandbox here: " .. ((r and r.stderr or ""):gsub("%s+$", "")), "EPERM"
  end
  return true
end

return M
