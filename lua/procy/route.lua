-- procy.route: an agent's API call sent to another provider when a route
-- says so. The proxy relays every call in C; with routes set it shows
-- Lua each POST /v1/messages first (http.serve's `divert`). A call no
-- route takes goes back to C at once (req:relay()); a routed one is made
-- here: to another Anthropic-compatible server, or translated
-- (procy.translate) to an OpenAI-compatible one and its answer translated
-- back as it streams. Either way it is recorded once, with both sides
-- (srv:record), marked with its route.
--
-- A route matches a call by the Claude Code subagent it comes from, the
-- model asked, its role, its size and whether it thinks; routes are
-- tried in order, the first that matches wins. A route may be a function
-- of the call's summary, for anything a table cannot say.

local core = require "procy.core"
local fs = require "procy.fs"
local http = require "procy.http"
local json = require "procy.json"
local request = require "procy.record.request"
local translate = require "procy.translate"

local M = {}

local function str(v) return type(v) == "string" and v or nil end
local function tbl(v) return type(v) == "table" and v or nil end

-- ---- the project's subagents -------------------------------------------------------------

-- Words, whitespace of any kind and amount made one space: an agent
-- file re-indented or re-wrapped still matches.
local function normal(text)
  return (text:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- name, body of an agent file: YAML-ish front matter between `---` lines,
-- then the prompt (a `---` rule inside the prompt is the prompt's)
function M.parse_agent(text, file)
  local name, body = nil, text
  local fm, rest = text:match("^%-%-%-[ \t]*\r?\n(.-)\r?\n%-%-%-[ \t]*\r?\n(.*)$")
  if not fm then fm, rest = text:match("^%-%-%-[ \t]*\r?\n(.-)\r?\n%-%-%-[ \t]*$"), "" end
  if fm then
    body = rest
    for line in (fm .. "\n"):gmatch("(.-)\r?\n") do
      local v = line:match("^name:%s*(.-)%s*$")
      if v then name = v:gsub("^[\"'](.*)[\"']$", "%1") end
    end
  end
  name = name ~= "" and name or (file or ""):match("([^/]+)%.md$")
  return name, body
end

local SHINGLE = 5 -- words: what "the same passage" means to the fuzzy match

local function shingles(words)
  local set, n = {}, 0
  for i = 1, #words - SHINGLE + 1 do
    local k = table.concat(words, " ", i, i + SHINGLE - 1)
    if not set[k] then set[k], n = true, n + 1 end
  end
  return set, n
end

local function words_of(text)
  local w = {}
  for x in text:lower():gmatch("[%w_]+") do w[#w + 1] = x end
  return w
end

local Agents = {}
Agents.__index = Agents

-- agents(dirs) -> the subagents defined in those directories' *.md files,
-- read again when a file is added, removed or changed (looked at once a
-- second at most)
function M.agents(dirs)
  return setmetatable({ dirs = dirs, list = {}, sig = nil, checked = -1 }, Agents)
end

function Agents:load()
  local now = core.now()
  if now - self.checked < 1 then return self.list end
  self.checked = now
  local files, sig = {}, {}
  for _, d in ipairs(self.dirs) do
    local st = fs.stat(d)
    if st and st.type == "dir" then
      for _, n in ipairs(fs.dir(d) or {}) do
        if n:match("%.md$") then
          local p = d .. "/" .. n
          local fst = fs.stat(p)
          if fst and fst.type == "file" then
            files[#files + 1] = p
            sig[#sig + 1] = p .. "\0" .. fst.size .. "\0" .. tostring(fst.mtime)
          end
        end
      end
    end
  end
  sig = table.concat(sig, "\n")
  if sig == self.sig then return self.list end
  self.sig = sig
  local list, seen = {}, {}
  for _, p in ipairs(files) do -- the project's first: it wins over ~/.claude's of the same name
    local f = io.open(p, "rb")
    local text = f and f:read("a")
    if f then f:close() end
    local name, body = M.parse_agent(text or "", p)
    body = normal(body)
    if name and not seen[name] and #body > 0 then
      seen[name] = true
      local set, n = shingles(words_of(body))
      list[#list + 1] = { name = name, file = p, body = body, shingles = set, n = n }
    end
  end
  self.list = list
  return list
end

-- a:match(system_text) -> the name of the agent whose prompt the system
-- prompt holds, or nil. Held word for word (whitespace aside), or, for a
-- prompt changed a little since (an edit not yet reloaded, a client that
-- rewrites a line), 80 % of its five-word passages; the longest wins.
function Agents:match(system)
  local list = self:load()
  if #list == 0 or not system or system == "" then return nil end
  local norm = normal(system)
  local best, score
  for _, a in ipairs(list) do
    if norm:find(a.body, 1, true) and (not score or #a.body > score) then best, score = a.name, #a.body end
  end
  if best then return best end
  local have = shingles(words_of(system))
  for _, a in ipairs(list) do
    if a.n >= 4 then
      local hit = 0
      for k in pairs(a.shingles) do if have[k] then hit = hit + 1 end end
      local s = hit / a.n
      if s >= 0.8 and (not score or s > score) then best, score = a.name, s end
    end
  end
  return best
end

-- ---- providers and routes ----------------------------------------------------------------

local PROVIDER_FIELDS = { api = true, url = true, key_env = true, forward_key = true, headers = true, prices = true,
                          reasoning = true, timeout = true, max_tokens_field = true, max_output = true, models = true }
local ROUTE_FIELDS = { name = true, agent = true, model = true, role = true, min_tokens = true, thinking = true,
                       to = true }
local ROLES = { main = true, side = true, subagent = true }

local function bad(what, msg) error(what .. ": " .. msg, 0) end

-- An Anthropic-compatible provider without a key of its own would be sent
-- the agent's: allowed to Anthropic's API, to the proxy's own upstream
-- (where the agent's calls go anyway), and where the provider says
-- forward_key = true
local function forwards_key(p, url, upstream)
  if p.key_env or p.forward_key == true then return true end
  -- the host, as a client reads the URL (no user part: "api.anthropic.com:@evil.example" is evil.example's)
  local authority = url:match("^https://([^/?#]*)")
  if authority and not authority:find("@", 1, true) and (authority == "api.anthropic.com" or authority == "api.anthropic.com:443") then
    return true
  end
  return upstream ~= nil and url == (upstream:gsub("/+$", ""))
end

local function check_provider(name, p, upstream)
  local what = "providers." .. tostring(name)
  if type(p) ~= "table" then bad(what, "a provider is a table {api =, url =, key_env =}") end
  if p.key ~= nil then
    bad(what, "keys are never read from a config file: export the key and name its variable with key_env = \"VAR\"")
  end
  for k in pairs(p) do
    if not PROVIDER_FIELDS[k] then
      local names = {}
      for f in pairs(PROVIDER_FIELDS) do names[#names + 1] = f end
      table.sort(names)
      bad(what, ("unknown field %q (%s)"):format(tostring(k), table.concat(names, ", ")))
    end
  end
  if p.api ~= "openai" and p.api ~= "anthropic" then bad(what, "api must be \"openai\" or \"anthropic\"") end
  if type(p.url) ~= "string" or not p.url:match("^https?://[^/]") then bad(what, "url must be an http(s) URL") end
  if p.key_env ~= nil and (type(p.key_env) ~= "string" or not p.key_env:match("^[%a_][%w_]*$")) then
    bad(what, "key_env must name an environment variable")
  end
  if p.reasoning ~= nil and type(p.reasoning) ~= "boolean"
     and not (type(p.reasoning) == "string" and pcall(string.find, "", p.reasoning)) then
    bad(what, "reasoning must be true, false or a Lua pattern on the model's name")
  end
  if p.max_tokens_field ~= nil and p.max_tokens_field ~= "max_tokens" and p.max_tokens_field ~= "max_completion_tokens" then
    bad(what, "max_tokens_field must be \"max_tokens\" or \"max_completion_tokens\"")
  end
  if p.max_output ~= nil and type(p.max_output) ~= "number" and type(p.max_output) ~= "table" then
    bad(what, "max_output must be a number of tokens or a table model = tokens")
  end
  if p.models ~= nil and type(p.models) ~= "boolean" then bad(what, "models must be true or false") end
  if p.forward_key ~= nil and type(p.forward_key) ~= "boolean" then bad(what, "forward_key must be true or false") end
  local url = p.url:gsub("/+$", "")
  if p.api == "anthropic" and not forwards_key(p, url, upstream) then
    bad(what, ("%s would be sent the agent's own Anthropic key: give it its own with key_env = \"VAR\", "
      .. "or set forward_key = true to send it the agent's"):format(url))
  end
  -- OpenAI's own API wants max_completion_tokens (its reasoning models
  -- refuse max_tokens); the servers that copy it (vLLM, Ollama,
  -- llama.cpp, OpenRouter) take max_tokens
  local openai = url:match("^https?://api%.openai%.com[:/]") or url:match("^https?://api%.openai%.com$")
  return { name = name, api = p.api, url = url, key_env = p.key_env, headers = tbl(p.headers) or {},
           prices = tbl(p.prices), timeout = tonumber(p.timeout),
           reasoning = p.reasoning,
           max_tokens_field = p.max_tokens_field or (openai and "max_completion_tokens" or "max_tokens"),
           max_output = p.max_output, models = p.models ~= false }
end

-- The models that take reasoning_effort and refuse temperature, top_p and
-- stop, when a provider's `reasoning` does not say: by name, OpenAI's
-- o-series and GPT-5 (also under a vendor prefix, "openai/o3")
local REASONING_NAMES = { "^o%d", "^gpt%-5", "^codex" }

-- reasoning(provider, model) -> whether the model is a reasoning model:
-- the provider's `reasoning` (true, false, or a pattern on the model's
-- name), else by name
function M.reasoning(p, model)
  local r = p.reasoning
  if type(r) == "boolean" then return r end
  local name = (model or ""):match("[^/]*$")
  if type(r) == "string" then return name:find(r) ~= nil end
  for _, pat in ipairs(REASONING_NAMES) do
    if name:find(pat) then return true end
  end
  return false
end

-- The providers every router knows: `anthropic`, the proxy's own upstream
-- (the agent's key), and `openai`, its OpenAI upstream (OPENAI_API_KEY).
-- They are checked and filled in as a configured one is, so every
-- provider a route reaches has the same fields.
local function builtin(o)
  return {
    anthropic = check_provider("anthropic", { api = "anthropic", url = o.upstream or "https://api.anthropic.com" },
      o.upstream),
    openai = check_provider("openai", { api = "openai", key_env = "OPENAI_API_KEY",
      url = (o.openai or "https://api.openai.com"):gsub("/+$", "") .. "/v1" }),
  }
end

-- "PROVIDER" or "PROVIDER:MODEL" (a model may hold ":", as Ollama's do)
local function target(to, providers, what)
  if type(to) ~= "string" then bad(what, "to must be \"PROVIDER\" or \"PROVIDER:MODEL\"") end
  local pname, model = to:match("^([^:]+):(.+)$")
  pname = pname or to
  if not providers[pname] then
    local names = {}
    for k in pairs(providers) do names[#names + 1] = k end
    table.sort(names)
    bad(what, ("no provider %q (there are: %s)"):format(pname, table.concat(names, ", ")))
  end
  return providers[pname], model
end

local function check_route(i, r, providers)
  local what = "routes[" .. i .. "]"
  if type(r) == "function" then return { name = "route " .. i, fn = r } end
  if type(r) ~= "table" then bad(what, "a route is a table {agent =, model =, role =, min_tokens =, thinking =, to =} or a function") end
  for k in pairs(r) do
    if not ROUTE_FIELDS[k] then bad(what, ("unknown field %q (name, agent, model, role, min_tokens, thinking, to)"):format(tostring(k))) end
  end
  local agents = r.agent
  if type(agents) == "string" then agents = { agents } end
  if agents ~= nil and type(agents) ~= "table" then bad(what, "agent must be a name or a list of names") end
  if r.model ~= nil and (type(r.model) ~= "string" or not pcall(string.find, "", r.model)) then
    bad(what, "model must be a Lua pattern")
  end
  if r.role ~= nil and not ROLES[r.role] then bad(what, "role must be \"main\", \"side\" or \"subagent\"") end
  if r.min_tokens ~= nil and type(r.min_tokens) ~= "number" then bad(what, "min_tokens must be a number") end
  if r.thinking ~= nil and type(r.thinking) ~= "boolean" then bad(what, "thinking must be true or false") end
  local p, model = target(r.to, providers, what)
  local set
  if agents then
    set = {}
    for _, a in ipairs(agents) do set[a] = true end
  end
  return { name = str(r.name) or (agents and agents[1]) or r.to, agents = set, model_pattern = r.model, role = r.role,
           min_tokens = r.min_tokens, thinking = r.thinking, provider = p, model = model }
end

-- PROCY_ROUTES: "WHEN=TARGET,..." with WHEN one or more KEY:VALUE joined
-- by "+" (agent:NAME, model:PATTERN, role:ROLE, min_tokens:N,
-- thinking:on|off), e.g. "agent:reviewer=openai:gpt-4o,role:side=local:qwen3"
function M.parse_env_routes(text)
  local out = {}
  for entry in text:gmatch("[^,]+") do
    entry = entry:match("^%s*(.-)%s*$")
    if entry ~= "" then
      local when, to = entry:match("^([^=]+)=(.+)$")
      if not when then bad("PROCY_ROUTES", ("%q is not WHEN=PROVIDER:MODEL"):format(entry)) end
      local r = { to = to, name = entry }
      for cond in when:gmatch("[^+]+") do
        local k, v = cond:match("^%s*([%w_]+):(.-)%s*$")
        if k == "agent" or k == "model" or k == "role" then r[k] = v
        elseif k == "min_tokens" or k == "tokens" then r.min_tokens = tonumber(v)
        elseif k == "thinking" then r.thinking = v == "on" or v == "true" or v == "1"
        else bad("PROCY_ROUTES", ("%q: conditions are agent:, model:, role:, min_tokens:, thinking:"):format(cond)) end
      end
      out[#out + 1] = r
    end
  end
  return out
end

-- SUBAGENT_MAPPINGS (claude-code-proxy's): "NAME:MODEL,...". The provider
-- is the one named first ("reviewer:local:qwen3"), else anthropic for a
-- claude-* model and openai for any other.
function M.parse_mappings(text, providers)
  local out = {}
  for entry in text:gmatch("[^,]+") do
    local name, model = entry:match("^%s*([^:]+):(.-)%s*$")
    if not name or model == "" then bad("SUBAGENT_MAPPINGS", ("%q is not NAME:MODEL"):format(entry)) end
    local pname = model:match("^([^:]+):.+$")
    local to
    if pname and providers[pname] then to = model
    else to = (model:match("^claude") and "anthropic" or "openai") .. ":" .. model end
    out[#out + 1] = { agent = name, to = to, name = name }
  end
  return out
end

local Router = {}
Router.__index = Router

-- new{routes =, providers =, upstream =, openai =, env =, dirs =} -> a
-- router, or raises naming the setting that is wrong. env: a getenv (for
-- PROCY_ROUTES and SUBAGENT_MAPPINGS; their routes come first).
function M.new(o)
  local providers = builtin(o)
  for name, p in pairs(o.providers or {}) do providers[name] = check_provider(name, p, o.upstream) end
  local getenv = o.env or os.getenv
  local list = {}
  local env_routes = getenv("PROCY_ROUTES")
  if env_routes and env_routes ~= "" then
    for _, r in ipairs(M.parse_env_routes(env_routes)) do list[#list + 1] = r end
  end
  local maps = getenv("SUBAGENT_MAPPINGS")
  if maps and maps ~= "" then
    for _, r in ipairs(M.parse_mappings(maps, providers)) do list[#list + 1] = r end
  end
  if o.routes ~= nil and type(o.routes) ~= "table" then bad("routes", "must be a list of routes") end
  for _, r in ipairs(o.routes or {}) do list[#list + 1] = r end
  local routes = {}
  for i, r in ipairs(list) do routes[i] = check_route(i, r, providers) end
  local needs_agents = false
  for _, r in ipairs(routes) do needs_agents = needs_agents or r.agents ~= nil or r.fn ~= nil end
  return setmetatable({ routes = routes, providers = providers, dirs = o.dirs, agents_by_dir = {},
                        needs_agents = needs_agents, said = {} }, Router)
end

function Router:empty() return #self.routes == 0 end

-- The directories a project's agents live in: its .claude/agents, then
-- the user's ~/.claude/agents.
function M.agent_dirs(project)
  local dirs = {}
  if project then dirs[#dirs + 1] = project .. "/.claude/agents" end
  local home = os.getenv("HOME")
  if home and home ~= "" then dirs[#dirs + 1] = home .. "/.claude/agents" end
  return dirs
end

function Router:agents_for(project)
  local key = project or ""
  local a = self.agents_by_dir[key]
  if not a then
    a = M.agents(self.dirs or M.agent_dirs(project))
    self.agents_by_dir[key] = a
  end
  return a
end

local function system_text(sys)
  if type(sys) == "string" then return sys end
  local parts = {}
  for _, b in ipairs(tbl(sys) or {}) do
    if type(b) == "table" and str(b.text) then parts[#parts + 1] = b.text end
  end
  return table.concat(parts, "\n")
end

-- summary(body, headers, path, project) -> what a route is decided on:
-- {model, role, agent, tokens (an estimate: 4 bytes a token), thinking,
-- stream, count_tokens, path, request (the decoded body)}, or nil, why
function Router:summary(body, headers, path, project)
  local req, err = json.decode(body)
  if type(req) ~= "table" then return nil, err or "the body is not a JSON object" end
  local th = tbl(req.thinking)
  local s = { model = str(req.model), stream = req.stream == true, tokens = #body // 4,
              thinking = th ~= nil and th.type ~= "disabled", count_tokens = path:find("/count_tokens", 1, true) ~= nil,
              path = path, request = req }
  s.role = request.role(req, headers)
  if self.needs_agents and s.role == "subagent" then s.agent = self:agents_for(project):match(system_text(req.system)) end
  return s
end

-- pick(summary) -> {name, provider, model} or nil: the first route that
-- matches. A route function that raises is logged and skipped.
function Router:pick(s)
  for _, r in ipairs(self.routes) do
    if r.fn then
      local ok, v = pcall(r.fn, s)
      if not ok then
        if not self.said[r.name] then core.log("error", "routes: " .. r.name .. " failed: " .. tostring(v)) end
        self.said[r.name] = true
      elseif v then
        local to = type(v) == "table" and v.to or v
        local pok, p, model = pcall(target, to, self.providers, r.name)
        if pok then return { name = type(v) == "table" and str(v.name) or r.name, provider = p, model = model } end
        if not self.said[r.name] then core.log("error", "routes: " .. tostring(p)) end
        self.said[r.name] = true
      end
    elseif (not r.agents or (s.agent and r.agents[s.agent]))
       and (not r.model_pattern or (s.model and s.model:find(r.model_pattern)))
       and (not r.role or r.role == s.role)
       and (not r.min_tokens or s.tokens >= r.min_tokens)
       and (r.thinking == nil or r.thinking == s.thinking) then
      return r
    end
  end
end

return M
