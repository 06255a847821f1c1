-- Codex (npm @openai/codex). Codex ignores OPENAI_BASE_URL, so procy adds
-- a model provider with -c overrides: base_url at procy, wire_api
-- "responses", the key from `key_env` (OPENAI_API_KEY). Interactively its
-- `notify` program is `procy hook`, which reports each agent-turn-complete.
-- Headless it runs `codex exec --json` once per prompt (`exec resume
-- THREAD` after the first), mapping thread.started, turn.started, item.*
-- and turn.completed onto turns.

local json = require "procy.json"

local P = setmetatable({
  name = "codex",
  command = { "codex" },
  match = "^codex$",
  headless = "exec",
  parse_done = true, -- a turn counts as done only with its turn.completed
  quiet = 3,
  key_env = "OPENAI_API_KEY",
  edit_args = { "--sandbox", "workspace-write" }, -- `codex exec` is read-only by default
}, { __index = require "procy.agents.generic" })

local function toml(s) return json.encode(s) end -- a JSON string is a TOML basic string

function P.env() return { TMUX = false, STY = false } end

-- Without the key (a ChatGPT login, say) Codex keeps its own provider: its
-- turns are still known (notify, exec events), its calls just not seen.
local function provider(ctx)
  local key = (ctx.env or {})[P.key_env]
  if key == nil then key = os.getenv(P.key_env) end
  if not key or key == "" then return {} end
  return {
    "-c", 'model_provider="procy"',
    "-c", ("model_providers.procy={ name = \"procy\", base_url = %s, env_key = %s, wire_api = \"responses\" }"):format(
      toml(ctx.base_url .. "/v1"), toml(P.key_env)),
  }
end

function P.args(ctx)
  local a = provider(ctx)
  a[#a + 1] = "-c"
  a[#a + 1] = "notify=[" .. toml(ctx.exe) .. ", \"hook\"]"
  return a
end

-- Interactively, `codex resume THREAD ...` continues its conversation.
function P.resume_args(id) return { "resume", id } end

-- One headless turn: `codex exec --json ... [resume THREAD] -`, the prompt on its stdin
function P.exec(ctx, prompt)
  local argv = { "codex", "exec", "--json", "--skip-git-repo-check" }
  for _, a in ipairs(provider(ctx)) do argv[#argv + 1] = a end
  for _, a in ipairs(ctx.args or {}) do argv[#argv + 1] = a end
  if ctx.resume then
    argv[#argv + 1] = "resume"
    argv[#argv + 1] = ctx.resume
  end
  argv[#argv + 1] = "-" -- the prompt on stdin: any size, and not on the process list
  return argv, prompt
end

-- parse(ev) -> what a `codex exec --json` line means for the turn
function P.parse(ev)
  local t = ev.type
  if t == "thread.started" then return { session_id = ev.thread_id } end
  if t == "turn.started" then return { started = true } end
  if t == "item.completed" and type(ev.item) == "table" then
    local it = ev.item
    if it.type == "agent_message" then return { text = it.text } end
    if it.type == "error" then return { note = it.message } end
    if it.type == "command_execution" then return { tool = it.command, output = it.aggregated_output } end
  end
  if t == "turn.completed" then return { done = true, usage = ev.usage } end
  if t == "turn.failed" or t == "error" then
    return { failed = type(ev.error) == "table" and ev.error.message or ev.message or "turn failed" }
  end
  return {}
end

return P
