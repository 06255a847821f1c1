-- Claude Code (npm @anthropic-ai/claude-code). Its API goes through procy
-- with ANTHROPIC_BASE_URL. Interactively, procy passes hooks with
-- --settings: UserPromptSubmit gives the exact prompt, Stop the end of the
-- turn (checked against the API: the main call ended the turn and nothing
-- is under way), PostToolUse each tool's end. The hook command is procy's
-- own binary (`procy hook`), which posts the hook's JSON to procy: no data
-- is ever put in a command string. Headless it runs `claude -p` with
-- stream-json in and out: one user line per prompt, one `result` per turn.

local json = require "procy.json"

local P = setmetatable({
  name = "claude",
  command = { "claude" },
  match = "^claude$",
  headless = "stream-json",
  hooks = true, -- its turns begin and end with its own hooks
  quiet = 3,
  edit_args = { "--permission-mode", "acceptEdits" }, -- a recipe's headless agent edits without asking
  -- "✳ Claude Code" while it waits; a spinner (◐◑ or braille) while busy
  idle_title = "^\226\156\179",
}, { __index = require "procy.agents.generic" })

-- TMUX (and STY) make Claude Code stop updating its window title, one of
-- the signals procy reads; the agent does not need them.
function P.env(ctx)
  return { ANTHROPIC_BASE_URL = ctx.base_url, TMUX = false, STY = false }
end

-- The shell quoting of procy's own path, for the hook command line.
local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function P.args(ctx)
  local hook = { { hooks = { { type = "command", command = quote(ctx.exe) .. " hook" } } } }
  local hooks = {}
  for _, name in ipairs { "UserPromptSubmit", "Stop", "PostToolUse" } do hooks[name] = hook end
  hooks.PostToolUse = { { matcher = "*", hooks = hook[1].hooks } }
  return { "--settings", json.encode { hooks = hooks } }
end

function P.headless_args(ctx)
  local argv = { "claude", "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose" }
  if ctx.resume then
    argv[#argv + 1] = "--resume"
    argv[#argv + 1] = ctx.resume
  end
  for _, a in ipairs(ctx.args or {}) do argv[#argv + 1] = a end
  return argv
end

function P.resume_args(id) return { "--resume", id } end

return P
