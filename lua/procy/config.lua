-- procy.config: the settings. Defaults first, then the user's file
-- ($XDG_CONFIG_HOME/procy/procy.lua, else ~/.config/procy/procy.lua), then
-- the project's procy.lua, the nearest one from the working directory
-- upwards (or the file given with --config). A config file is Lua that
-- returns a table. Table-valued settings merge key by key; anything else
-- replaces. A broken file stops procy with "file:line: message".

local fs = require "procy.fs"

local M = {}

local function home()
  local h = os.getenv("HOME")
  if not h or h == "" then error("HOME is not set", 0) end
  return h
end

local function data_home()
  local x = os.getenv("XDG_DATA_HOME")
  return (x and x ~= "") and x or home() .. "/.local/share"
end

local function state_home()
  local x = os.getenv("XDG_STATE_HOME")
  return (x and x ~= "") and x or home() .. "/.local/state"
end

local function config_home()
  local x = os.getenv("XDG_CONFIG_HOME")
  return (x and x ~= "") and x or home() .. "/.config"
end

-- The one list of settings: loading checks files against it, and
-- `procy config` prints it. `path` settings expand "~/" and are taken
-- relative to the file that sets them.
M.settings = {
  { name = "db", type = "string", path = true,
    default = function() return data_home() .. "/procy/procy.db" end,
    doc = "SQLite file holding the record (the terminal's output on its tape, PATH-term)" },
  { name = "log_level", type = "string", default = "info",
    choices = { "debug", "info", "warn", "error" },
    doc = "least severe log line written to stderr (PROCY_LOG overrides)" },
  { name = "task_run_limit", type = "number", default = 10,
    doc = "seconds a task may run without waiting before it is stopped (0: no limit); busy tasks are paused every 20 ms either way" },
  { name = "agent", type = "string", default = "claude",
    doc = "the agent command `procy` wraps (words split like a shell, never run by one)" },
  { name = "agents", type = "table", default = {},
    doc = "agent profiles added or replaced: name = {command =, match =, quiet =, idle_title =, ...}" },
  { name = "commands", type = "table", default = {},
    doc = "extra or replaced `!` commands: name = function(ctx, args) or {run =, help =}" },
  { name = "capture", type = "boolean", default = true,
    doc = "in a session, send the agent's API calls through procy's proxy and record them" },
  { name = "ui", type = "boolean", default = true,
    doc = "the web monitor at / of procy serve and of each session's server (on port 7862 when it is free)" },
  { name = "upstream", type = "string", default = "https://api.anthropic.com",
    doc = "where the proxy sends API calls (PROCY_UPSTREAM and --upstream override)" },
  { name = "openai_upstream", type = "string", default = "https://api.openai.com",
    doc = "where /v1/chat/completions and /v1/responses go (PROCY_OPENAI_UPSTREAM overrides)" },
  { name = "google_upstream", type = "string", default = "https://generativelanguage.googleapis.com",
    doc = "where Gemini API calls (/v1beta/models/...) go (PROCY_GOOGLE_UPSTREAM overrides)" },
  { name = "upstream_timeout", type = "number", default = 600,
    doc = "seconds an upstream may send nothing before the call fails with 504" },
  { name = "providers", type = "table", default = {},
    doc = "where routes send calls: name = {api = \"openai\"|\"anthropic\", url =, key_env = (the key's variable; "
      .. "never the key), headers =, prices =, reasoning =, max_tokens_field =, max_output =, models =, timeout =}; anthropic and openai are built in (lua/procy/route.lua)" },
  { name = "routes", type = "table", default = {},
    doc = "calls sent to another provider, the first match wins: {agent =, model = (pattern), role =, min_tokens =, "
      .. "thinking =, to = \"PROVIDER[:MODEL]\"} or function(call) -> \"PROVIDER:MODEL\" (PROCY_ROUTES, SUBAGENT_MAPPINGS add)" },
  { name = "sandbox", type = { "boolean", "string" }, default = false,
    doc = "run agents inside bubblewrap (--sandbox): true for the default profile, or a profile's name" },
  { name = "bwrap", type = "string", default = "bwrap",
    doc = "the bubblewrap program --sandbox runs: a name looked up on PATH, or a path" },
  { name = "slirp4netns", type = "string", default = "slirp4netns",
    doc = "what gives a sandbox with network = \"full\" the host's network without its loopback: a name on PATH, or a path" },
  { name = "sandboxes", type = "table", default = {},
    doc = "sandbox profiles: name = {writable = {\"~/.claude\", ...}, defaults = (the project; true), create =, env =, "
      .. "network = \"proxy\"|\"none\"|\"full\", show = {\"~/.ssh\", ...}} "
      .. "(lua/procy/sandbox.lua)" },
  { name = "otel", type = "table", default = {},
    fields = { endpoint = "string", content = "boolean", headers = "table", batch = "number", interval = "number",
               max_queue = "number", timeout = "number", retries = "number", service = "string" },
    doc = "OpenTelemetry export, live while recording: {endpoint = \"http://collector:4318\" (OTEL_EXPORTER_OTLP_ENDPOINT), "
      .. "content = false (prompts and answers as span events), headers =, batch =, interval =, max_queue =} (lua/procy/otel.lua)" },
  { name = "snapshots", type = "string", default = "git", choices = { "git", "turn", "off" },
    doc = "the workspace after each turn, for procy fork: in git work trees (git), everywhere (turn), or never (off)" },
  { name = "port", type = "number", default = 7862, doc = "the port `procy serve` listens on" },
  { name = "prices", type = "table", default = {},
    doc = "model prices in $ per million tokens, added to the built-in list (lua/procy/prices.lua)" },
  { name = "redact", type = "table", default = {},
    doc = "more Lua patterns to mask in recorded headers and bodies (API keys always are)" },
  { name = "model", type = { "table", "string" }, default = {},
    -- "anthropic:claude-haiku-4-5": a hosted model through the person's key
    from_string = function(v) return { name = v } end,
    fields = { url = "string", name = "string", model = "string", api = { "openai", "anthropic" }, key_env = "string",
               temperature = "number", max_tokens = "number", timeout = "number", retries = "number", backoff = "number",
               max_wait = "number", stream = "boolean", headers = "table", extra = "table", adapter = "string",
               remote_port = "number", connect_timeout = "number" },
    secret = "key",
    doc = "the proxy model: {url =, name =, api = \"openai\"|\"anthropic\", key_env =, temperature =, max_tokens =, "
      .. "...}, or a hosted one by name through the person's key: \"anthropic:claude-haiku-4-5\", \"openai:gpt-5-mini\"; "
      .. "adapter = (a LoRA the server serves under this name: procy train deploy)}" },
  { name = "tunnel", type = "string", default = "",
    doc = "ssh host that serves the proxy model: `ssh -N -L` forwards model.url's port to it (--tunnel)" },
  { name = "evaluator", type = { "string", "table", "function" }, path = true,
    doc = "the project's evaluator: a script path, an argv table, or a Lua function(ctx) -> metrics" },
  { name = "objective", type = "table", default = {},
    doc = "what evolve optimizes: {maximize = \"qps\", subject_to = {recall_at_10 = \">= 0.95\"}}" },
  { name = "evolve", type = "table",
    fields = { iterations = "number", patience = "number", tolerance = "number", noise = "number", remeasure = "number",
               rollback = { "best", "never" }, approve = "boolean", approve_timeout = "number", turn_timeout = "number",
               eval_timeout = "number", budget_time = "number", budget_tokens = "number", history = "number",
               max_prompt = "number", max_words = "number", agent_args = "table", agent = "string", parallel = "number",
               eval_parallel = "number", model_url = "string", evaluator = "string", task = "string",
               more = "number", resume = "string", cwd = "string", worktree_links = "table",
               policy = { "agent", "population", "model" }, model = "string", template = "string",
               template_file = "string", population = "table", diff_budget = "number", trace_budget = "number",
               show_best = "number",
               -- the steps of recipes/evolve.lua a project replaces
               ask = "function", gate = "function", act = "function", judge = "function", keep = "function",
               report = "function" },
    default = {
      iterations = 5, patience = 3, tolerance = 0.02, noise = 0.05, remeasure = 2, rollback = "best", approve = false,
      approve_timeout = 0, turn_timeout = 1800, eval_timeout = 600, budget_time = 0, budget_tokens = 0,
      history = 8, max_prompt = 4000, max_words = 200, agent_args = {} },
    doc = "evolve's defaults (recipes/evolve.lua): iterations, patience, tolerance, noise, remeasure, rollback, approve, budgets, ..." },
  { name = "eval_generate", type = "table", default = {},
    doc = "steps of recipes/eval_generate.lua a project replaces: ask, check, register (function(ctx, gen))" },
  { name = "train_export", type = "table", default = {},
    doc = "steps of recipes/train_export.lua a project replaces: collect, row, card" },
  { name = "trainer", type = "table", default = {},
    fields = { host = "string", workdir = "string", python = "string", base_model = "string", image = "string",
               docker_args = "table", command = "table", check = { "table", "boolean" } },
    doc = "where the proxy model is trained: {host = (ssh; none: here), workdir = \"procy-train\", python = \"python3\", "
      .. "base_model =, image = (docker), docker_args = {}, command = {argv, {data} {method} {output} {base_model} filled in}, "
      .. "check = {argv} (the trainer's check before a job starts; train_lora.py --check by default) or false}" },
  { name = "train", type = "table", default = {},
    doc = "steps of recipes/train.lua a project replaces: export, stage, launch" },
  { name = "train_deploy", type = "table", default = {},
    doc = "steps of recipes/deploy.lua a project replaces: unload, load, check" },
  { name = "log", type = "string", path = true,
    default = function() return state_home() .. "/procy/procy.log" end,
    doc = "where procy's own log lines go while an agent has the terminal" },
}

local by_name = {}
for _, s in ipairs(M.settings) do by_name[s.name] = s end

-- data_dir() -> procy's own data directory ($XDG_DATA_HOME/procy, else
-- ~/.local/share/procy): where what procy makes goes unless a person
-- names a place (training exports, training runs here), never the
-- project's tree
function M.data_dir() return data_home() .. "/procy" end

local function exists(path)
  local st = fs.stat(path)
  return st and st.type == "file"
end

local function find_up(name, dir)
  while true do
    local path = (dir == "/" and "" or dir) .. "/" .. name
    if exists(path) then return path end
    if dir == "/" or dir == "" then return nil end
    dir = dir:match("^(.*)/[^/]*$")
    if dir == "" then dir = "/" end
  end
end

-- Line in path where `name =` first appears, for messages about a key.
local function line_of(path, name)
  local f = io.open(path, "r")
  if not f then return nil end
  local n = 0
  for line in f:lines() do
    n = n + 1
    if line:find("%f[%w_]" .. name .. "%s*=") then f:close() return n end
  end
  f:close()
end

local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function suggest(name)
  local best, bestd
  for _, s in ipairs(M.settings) do
    local d = distance(name, s.name)
    if d <= 2 and (not bestd or d < bestd) then best, bestd = s.name, d end
  end
  return best and (" (did you mean '" .. best .. "'?)") or ""
end

local function where(path, key)
  local line = line_of(path, key)
  return line and (path .. ":" .. line) or path
end

local function expand(path, base)
  if path:sub(1, 2) == "~/" then return home() .. path:sub(2) end
  if path:sub(1, 1) ~= "/" and base then return base .. "/" .. path end
  return path
end

-- Tables with string keys merge key by key; arrays and values replace.
local function merge(into, from)
  for k, v in pairs(from) do
    if type(v) == "table" and type(into[k]) == "table" and v[1] == nil then
      merge(into[k], v)
    else
      into[k] = v
    end
  end
end

local function copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = copy(v) end
  return c
end

-- Runs one config file and returns its table, or nil, "file:line: msg".
local function read_file(path)
  local env = setmetatable({}, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  local ok, t = pcall(chunk)
  if not ok then return nil, tostring(t) end
  if type(t) ~= "table" then
    return nil, path .. ": a config file must return a table (it returned " .. type(t) .. ")"
  end
  return t
end

-- Whether value is of a field's kind: a type name, a list of type names,
-- or a list of the strings it may be; and the kind said for a message.
local TYPES = { string = true, number = true, boolean = true, table = true, ["function"] = true }
local function fits(kind, value)
  if type(kind) == "string" then return type(value) == kind, kind end
  if TYPES[kind[1]] then
    for _, t in ipairs(kind) do if type(value) == t then return true end end
    return false, table.concat(kind, " or a ")
  end
  for _, c in ipairs(kind) do if value == c then return true end end
  return false, "one of \"" .. table.concat(kind, "\", \"") .. "\""
end

local function suggest_in(name, fields)
  local best, bestd
  for k in pairs(fields) do
    local d = distance(name, k)
    if d <= 2 and (not bestd or d < bestd) then best, bestd = k, d end
  end
  return best and (" (did you mean '" .. best .. "'?)") or ""
end

-- A table setting's fields, when the setting names them: each key known,
-- each value of its kind. nil, "message" naming setting.key.
local function check_fields(s, value)
  if s.secret and value[s.secret] ~= nil then
    return nil, ("'%s.%s': keys are never read from a config file: export the key and name its variable "
      .. "with %s.key_env = \"VAR\""):format(s.name, s.secret, s.name)
  end
  for k, v in pairs(value) do
    local kind = type(k) == "string" and s.fields[k]
    if not kind then
      local names = {}
      for n in pairs(s.fields) do names[#names + 1] = n end
      table.sort(names)
      return nil, ("'%s.%s' is not a field of '%s'%s (its fields: %s)"):format(s.name, tostring(k), s.name,
        type(k) == "string" and suggest_in(k, s.fields) or "", table.concat(names, ", ")), k
    end
    local ok, said = fits(kind, v)
    if not ok then
      return nil, ("'%s.%s' must be %s%s, not %s"):format(s.name, k, TYPES[said] and "a " or "", said,
        type(v) == "string" and ("\"" .. v .. "\"") or ("a " .. type(v))), k
    end
  end
  return true
end

-- Checks a file's table against M.settings and folds it into cfg.
local function apply(cfg, origin, t, path)
  local base = path:match("^(.*)/[^/]*$")
  for key, value in pairs(t) do
    local s = type(key) == "string" and by_name[key]
    if not s then
      return nil, where(path, tostring(key)) .. ": unknown setting '" .. tostring(key) .. "'"
        .. suggest(tostring(key))
    end
    local types = type(s.type) == "table" and s.type or { s.type }
    local fits = false
    for _, t in ipairs(types) do fits = fits or type(value) == t end
    if not fits then
      return nil, where(path, key) .. ": setting '" .. key .. "' must be a " .. table.concat(types, " or a ")
        .. ", not a " .. type(value)
    end
    if s.choices then
      local ok = false
      for _, c in ipairs(s.choices) do ok = ok or c == value end
      if not ok then
        return nil, where(path, key) .. ": setting '" .. key .. "' must be one of "
          .. table.concat(s.choices, ", ")
      end
    end
    if s.from_string and type(value) == "string" then value = s.from_string(value) end
    if s.fields and type(value) == "table" then
      local ok, ferr, field = check_fields(s, value)
      if not ok then return nil, where(path, type(field) == "string" and field or key) .. ": " .. ferr end
    end
    if s.path and type(value) == "string" then value = expand(value, base) end
    merge(cfg, { [key] = value })
    origin[key] = path
  end
  return true
end

local function load_files(opts)
  opts = opts or {}
  local cfg, origin, files = {}, {}, {}
  for _, s in ipairs(M.settings) do
    local d = s.default
    if type(d) == "function" then d = d() end
    cfg[s.name] = copy(d)
    origin[s.name] = "default"
  end
  local user = config_home() .. "/procy/procy.lua"
  if exists(user) then files[#files + 1] = user end
  local project = opts.config
  if project then
    if not exists(project) then return nil, project .. ": no such config file" end
  else
    project = find_up("procy.lua", opts.cwd or assert(fs.cwd()))
  end
  if project and project ~= user then files[#files + 1] = project end
  for _, path in ipairs(files) do
    local t, err = read_file(path)
    if not t then return nil, err end
    local ok, aerr = apply(cfg, origin, t, path)
    if not ok then return nil, aerr end
  end
  M.current, M.origin, M.files = cfg, origin, files
  return cfg
end

-- load{config = FILE, cwd = DIR} -> settings | nil, "ECONFIG: file:line:
-- message", "ECONFIG". The result also becomes what get() returns.
function M.load(opts)
  local cfg, err = load_files(opts)
  if not cfg then return nil, "ECONFIG: " .. err, "ECONFIG" end
  return cfg
end

-- get() -> the loaded settings (loading them now if nobody has; raises on a
-- broken file).
function M.get()
  if not M.current then
    local cfg, err = M.load()
    if not cfg then error(err, 0) end
  end
  return M.current
end

-- set(name, value, source): a command-line override.
function M.set(name, value, source)
  local cfg = M.get()
  local s = assert(by_name[name], "unknown setting")
  cfg[name] = (s.path and type(value) == "string") and expand(value) or value
  M.origin[name] = source
end

return M
