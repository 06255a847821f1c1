-- procy.cli.main: the command line. main(args) runs as the first task; the
-- process exits with what it returns once every task has ended.
--
-- Options and commands live in the tables below: parsing, `procy --help`
-- and the README's command list all come from them (tests/lua/cli/cli_test.lua
-- checks the README against --help).
-- What each command does is procy.cli.commands.

require "procy.cli.env"
local core = require "procy.core"
local config = require "procy.config"
local bang = require "procy.commands" -- its text helpers (columns)

local M = {}

M.options = {
  { short = "-h", long = "--help", help = "show this help and exit" },
  { short = "-V", long = "--version", help = "print the version and exit" },
  { long = "--agent", arg = "CMD", help = "the agent to wrap, as one string (setting 'agent')" },
  { long = "--resume", arg = "ID", help = "continue a recorded session: same agent, same directory, its conversation" },
  { long = "--db", arg = "PATH", help = "SQLite file to record into, the terminal's output on PATH-term beside it (setting 'db')" },
  { long = "--config", arg = "FILE", help = "project config to use instead of the nearest procy.lua" },
  { long = "--model-url", arg = "URL", help = "the proxy model's server (setting model.url)" },
  { long = "--qwen-url", arg = "URL", help = "the same as --model-url, for ProCy's users" },
  { long = "--tunnel", arg = "HOST", help = "reach the proxy model through `ssh -N -L` to HOST while procy runs" },
  { long = "--sandbox", help = "run the agent in bubblewrap: files read-only but the project, /tmp and the profile's (setting 'sandbox')" },
  { long = "--cwd", arg = "DIR", help = "where the interactive session's agent works (its procy.lua is the project's)" },
  { long = "--no-ui", help = "no web monitor on the session's (or serve's) server (setting 'ui')" },
  { long = "--ui-port", arg = "PORT", help = "the port the monitor is served on (setting 'port')" },
}

-- Each command: its positional arguments (args), its options (each with
-- its help), what follows "--" (tail), and for agent its subcommands. The
-- usage lines of --help, `procy help CMD` and the README's command table
-- are all made from this (M.synopsis), and the parser takes the options
-- listed here and no others.
M.commands = {
  { name = "run", args = "FILE.lua [ARGS...]", rest = true,
    help = "run a recipe as a task; exit with its status" },
  { name = "sessions", reads = true, options = { { long = "--limit", arg = "N", help = "at most N sessions (50)" } },
    help = "list recorded sessions, newest first" },
  { name = "show", reads = true, args = "ID", options = { { long = "--json", help = "the summary as JSON, for scripts" } },
    help = "a session's summary" },
  { name = "export", reads = true, args = "ID",
    options = { { long = "--format", arg = "cast|cast3|html", help = "asciicast v2 (cast, the default), v3, or one HTML file with the monitor's views" },
                { short = "-o", long = "--output", arg = "FILE", help = "write to FILE, not standard output" } },
    help = "a session as an asciicast recording, or as one self-contained HTML file to share (read-only, offline)" },
  { name = "fork", args = "SESSION",
    options = { { long = "--turn", arg = "N", help = "the turn to go on from: its workspace and the conversation up to it" },
                { long = "--prompt", arg = "TEXT", help = "what the fork does first" },
                { long = "--headless", help = "run that prompt's turn headless and stop (else go on in this terminal)" },
                { long = "--dir", arg = "DIR", help = "where the new worktree goes (default: procy's state directory)" } },
    help = "a new session from turn N of a recorded one, in a git worktree of its own; the person's tree untouched" },
  { name = "transcript", reads = true, args = "ID",
    options = { { long = "--color", help = "colour the roles (also on when stdout is a terminal)" },
                { long = "--full", help = "thinking, subagents' calls and tool results in full" },
                { long = "--format", arg = "text|md", help = "text (the default), or Markdown to paste into an issue" },
                { short = "-o", long = "--output", arg = "FILE", help = "write to FILE, not standard output" } },
    help = "a session as a readable conversation: prompts, answers, tool calls and results, tokens, cost, time" },
  { name = "search", args = "QUERY...",
    options = { { long = "--session", arg = "ID", help = "in one session only" },
                { long = "--kind", arg = "K", help = "only prompt, answer, tool, call or term hits" },
                { long = "--limit", arg = "N", help = "at most N hits (20)" },
                { long = "--raw", help = "QUERY is an FTS5 query (AND, OR, NEAR, \"phrases\", prefix*)" },
                { long = "--json", help = "the hits as JSON" } },
    help = "search prompts, answers, tool calls, API answers and terminal output" },
  { name = "play", reads = true, args = "ID",
    options = { { long = "--speed", arg = "N", help = "N times as fast (1)" },
                { long = "--idle-limit", arg = "S", help = "no pause longer than S seconds" } },
    help = "replay a session in this terminal, with its timing" },
  { name = "serve",
    options = { { long = "--port", arg = "N", help = "the port (7862; 0: a free one)" },
                { long = "--upstream", arg = "URL", help = "where Anthropic calls go (setting 'upstream')" },
                { long = "--openai-upstream", arg = "URL", help = "where OpenAI calls go (setting 'openai_upstream')" },
                { long = "--google-upstream", arg = "URL", help = "where Gemini API calls go (setting 'google_upstream')" },
                { long = "--host", arg = "IP", help = "listen there, not on 127.0.0.1 (needs --token)" },
                { long = "--token", arg = "T", help = "your token, for the monitor's routes (with --host: every route; 16+ characters; PROCY_TOKEN); else one is made" },
                { long = "--replay", arg = "SESSION|RUN", help = "answer API calls from the record, not an upstream (the agent VCR)" },
                { long = "--strict", help = "with --replay: an unmatched call gets a 404 naming the closest and what differs (default)" },
                { long = "--nearest", help = "with --replay: an unmatched call gets the closest recorded answer" },
                { long = "--fast", help = "with --replay: answers at once, not at their recorded pace" } },
    help = "the API proxy alone: ANTHROPIC_BASE_URL=http://127.0.0.1:7862 claude" },
  { name = "link", reads = true,
    options = { { long = "--no-open", help = "print only; do not open the browser" } },
    help = "the monitor's link, with its token, of each running server (the newest opened in the browser)" },
  { name = "usage", reads = true,
    options = { { long = "--since", arg = "T", help = "calls from T on (2026-11-20, 2026-11-20 14:30, 36h, 7d)" },
                { long = "--until", arg = "T", help = "calls before T" },
                { long = "--session", arg = "ID", help = "one session's calls" },
                { long = "--json", help = "the report as JSON" } },
    help = "tokens and cost of the recorded API calls, by model and session" },
  { name = "agent", help = "named background agents, headless, under a detached supervisor", subcommands = {
      { name = "start", args = "NAME", tail = "ARGS",
        options = { { long = "--profile", arg = "P", help = "the agent's profile (claude, codex, or a project's)" },
                    { long = "--cwd", arg = "DIR", help = "where it works (this directory)" },
                    { long = "--sandbox", help = "run it in bubblewrap (the 'sandbox' setting's profile, else default)" } },
        help = "a named agent under a detached supervisor; ARGS go to the agent" },
      { name = "send", args = "NAME TEXT|-",
        options = { { long = "--wait", help = "wait for the turn and print the answer" },
                    { long = "--timeout", arg = "S", help = "with --wait: give up after S seconds (600)" } },
        help = "a prompt (-: from stdin)" },
      { name = "ls", help = "the agents: status, pid, last I/O, turns, tool uses refused" },
      { name = "log", args = "NAME",
        options = { { long = "--follow", help = "go on printing as the agent works" },
                    { long = "--color", help = "colour the roles (also on when stdout is a terminal)" } },
        help = "a readable transcript" },
      { name = "stop", args = "NAME", help = "stop the agent and its supervisor" },
      { name = "restart", args = "NAME", options = { { long = "--resume", help = "continue its conversation" } },
        help = "start the agent again" },
      { name = "interrupt", args = "NAME", help = "interrupt the turn under way" },
    } },
  { name = "claudix", tail = "CLAUDE ARGS",
    options = { { long = "--mirror", arg = "preview|full|off", help = "Claude Code's text on stderr: a line per message (preview), all, or none" },
                { long = "--cwd", arg = "DIR", help = "where the agent works (this directory)" },
                { long = "--sandbox", help = "run it in bubblewrap (the 'sandbox' setting's profile, else default)" },
                { long = "--lproc", help = "claudix4's own defaults: --dangerously-skip-permissions --model sonnet" } },
    help = "lproc's claudix proxy: stream-json in on stdin, Claude Code's out on stdout, its RESTART markers; recorded" },
  { name = "codexx", tail = "CODEX ARGS",
    options = { { long = "--mirror", arg = "preview|full|off", help = "Codex's answers on stderr: their first line (preview), all, or none" },
                { long = "--cwd", arg = "DIR", help = "where the agent works (this directory)" },
                { long = "--sandbox", help = "run it in bubblewrap (the 'sandbox' setting's profile, else default)" },
                { long = "--lproc", help = "codexx4's own defaults: --dangerously-bypass-approvals-and-sandbox -m gpt-5" } },
    help = "the same stdin protocol for Codex: codex exec --json per message, Claude-shaped result lines out" },
  { name = "otel", args = "export",
    options = { { long = "--since", arg = "T", help = "sessions started from T on (2026-11-20, 36h, 7d; default: all)" },
                { long = "--session", arg = "ID", help = "one session" },
                { long = "--endpoint", arg = "URL", help = "the collector (setting otel.endpoint, OTEL_EXPORTER_OTLP_ENDPOINT)" },
                { long = "--content", help = "prompts and answers too, as span events (setting otel.content)" } },
    help = "the record to OpenTelemetry over OTLP/HTTP JSON: a trace per session, spans per turn, API call and tool call" },
  { name = "hook", args = "[JSON]",
    help = "what an agent's hook runs: posts the event (stdin, or JSON) to procy" },
  { name = "runs", reads = true, args = "[RUN...]", options = { { long = "--json", help = "as JSON" },
      { long = "--compare", help = "runs on the same task side by side: best-so-far curves, tries to a target" },
      { long = "--by", arg = "adapter|policy", help = "with --compare: one series per adapter or per policy (the mean of its runs)" },
      { long = "--target", arg = "X", help = "with --compare: the score to reach (default: what every series reached)" } },
    help = "evolve runs, newest first; with RUN, its tries: status, score, metrics, snapshot, prompt" },
  { name = "corrections", help = "people's corrections of prompts: the proxy model's training data", subcommands = {
      { name = "ls", options = { { long = "--session", arg = "ID", help = "one session's" },
                                 { long = "--kind", arg = "K", help = "corrected, edited, accepted or rejected (default: all)" },
                                 { long = "--json", help = "as JSON" } },
        help = "the corrections, newest first" },
      { name = "show", args = "ID", options = { { long = "--json", help = "as JSON" } },
        help = "one correction: original, corrected text, and the messages the proxy model was given" },
      { name = "rm", args = "ID", help = "remove a correction" },
      { name = "add", options = { { long = "--session", arg = "ID", help = "the session (default: the newest)" },
                                  { long = "--turn", arg = "N", help = "the turn whose prompt it corrects (default: its last proxy prompt)" },
                                  { long = "--file", arg = "F", help = "the corrected text (-: standard input)" },
                                  { long = "--note", arg = "TEXT", help = "why" } },
        help = "a correction from a file" },
    } },
  { name = "train", rest = true,
    args = "export [--format F,...] [--category C,...] [--session ID] [--run RUN] [--since T] [--until T] "
      .. "[--min-score X] [--no-dedupe] [--eval-fraction F] [--seed S] [-o DIR] | start [--method sft|dpo|kto] "
      .. "[--export DIR] [--base-model NAME] [-- ARGS] | status [JOB] | log JOB [--follow] | stop JOB "
      .. "| deploy [trained] [JOB] [--adapter PATH] [--name NAME] [--url URL] | deploy base|status [--url URL]",
    help = "training data and training jobs for the proxy model (procy train export|start --help)" },
  { name = "recipes", args = "[copy NAME]",
    help = "the recipes shipped with procy, and which ones this project overrides; copy one here to edit it" },
  { name = "config", help = "print the effective settings and where each came from" },
  { name = "help", args = "[COMMAND]", help = "this help, or one command's" },
}

-- synopsis(c, [sub]) -> "serve [--port N] [--upstream URL] ...": a
-- command's usage line, from its table
function M.synopsis(c, sub)
  local x = sub or c
  local words = { sub and (c.name .. " " .. sub.name) or c.name }
  if x.args then words[#words + 1] = x.args end
  for _, o in ipairs(x.options or {}) do
    words[#words + 1] = "[" .. (o.short or o.long) .. (o.arg and (" " .. o.arg) or "") .. "]"
  end
  if x.tail then words[#words + 1] = "[-- " .. x.tail .. "]" end
  return table.concat(words, " ")
end

-- each(fn): fn(command, sub) for every command and agent subcommand
function M.each(fn)
  for _, c in ipairs(M.commands) do
    if c.subcommands then
      for _, sub in ipairs(c.subcommands) do fn(c, sub) end
    else
      fn(c)
    end
  end
end

M.environment = {
  { name = "PROCY_LUA_PATH", help = "load procy's Lua modules from this lua/ directory, not the binary" },
  { name = "PROCY_LOG", help = "least severe log line to print: debug, info, warn, error" },
  { name = "PROCY_UPSTREAM", help = "where the proxy sends API calls (setting 'upstream')" },
  { name = "PROCY_OPENAI_UPSTREAM", help = "where OpenAI-style calls go (setting 'openai_upstream')" },
  { name = "PROCY_GOOGLE_UPSTREAM", help = "where Gemini API calls go (setting 'google_upstream')" },
  { name = "PROCY_TOKEN", help = "your token for procy serve (the monitor's routes; with --host, every route); never passed to an agent" },
}

local function say(...)
  io.stderr:write("procy: ", ...)
  io.stderr:write("\n")
end

function M.usage()
  local out = {
    "usage: procy [OPTIONS] [-- AGENT ARGS...]    an interactive session with the agent",
    "       procy [OPTIONS] COMMAND [ARGS...]",
    "",
    "procy wraps an AI coding agent in a terminal it records, and runs Lua",
    "recipes on that record. Type ! at the start of an empty line for procy's",
    "commands (!help lists them).",
    "",
    "commands:",
  }
  local function section(rows) -- filled to 100 columns: a wide terminal's, not a pipe's
    for _, l in ipairs(bang.columns(rows, 100, 36)) do out[#out + 1] = l end
  end
  local rows = {}
  M.each(function(c, sub) rows[#rows + 1] = { M.synopsis(c, sub), (sub or c).help } end)
  section(rows)
  out[#out + 1] = ""
  out[#out + 1] = "options:"
  rows = {}
  for _, o in ipairs(M.options) do
    rows[#rows + 1] = { (o.short and (o.short .. ", ") or "") .. o.long .. (o.arg and (" " .. o.arg) or ""), o.help }
  end
  section(rows)
  out[#out + 1] = ""
  out[#out + 1] = "environment:"
  rows = {}
  for _, e in ipairs(M.environment) do rows[#rows + 1] = { e.name, e.help } end
  section(rows)
  return table.concat(out, "\n") .. "\n"
end

-- command_help(c) -> text: one command's usage lines and options
function M.command_help(c)
  local out = {}
  local function opts_of(x)
    for _, o in ipairs(x.options or {}) do
      local left = (o.short and (o.short .. ", ") or "") .. o.long .. (o.arg and (" " .. o.arg) or "")
      out[#out + 1] = ("    %-24s %s"):format(left, o.help or "")
    end
  end
  for _, sub in ipairs(c.subcommands or { false }) do
    out[#out + 1] = "usage: procy " .. M.synopsis(c, sub or nil)
    out[#out + 1] = "  " .. (sub or c).help
    opts_of(sub or c)
    if c.subcommands then out[#out + 1] = "" end
  end
  if c.subcommands then table.remove(out) end
  out[#out + 1] = ""
  out[#out + 1] = "procy's own options (procy --help) go before the command."
  return table.concat(out, "\n") .. "\n"
end

local function find_option(list, name)
  for _, o in ipairs(list or {}) do
    if o.long == name or o.short == name then return o end
  end
end

-- Reads options from args[i] on, stopping at the first word that is not one
-- (or after "--", which it reports). Returns the next index and whether
-- "--" ended it, or nil and a message. extra: the command's own options.
local function parse_options(args, i, opts, extra)
  while i <= #args do
    local a = args[i]
    if a == "--" then return i + 1, true end
    if a:sub(1, 1) ~= "-" or a == "-" then return i end
    local name, value = a:match("^(%-%-[^=]+)=(.*)$")
    name = name or a
    local o = find_option(extra, name) or find_option(M.options, name) -- a command's own first
    if not o then return core.fail("EINVAL", "unknown option '" .. a .. "'") end
    local key = o.long:sub(3)
    if o.arg then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return core.fail("EINVAL", "option " .. o.long .. " needs " .. o.arg) end
      end
      opts[key] = value
    else
      if value ~= nil then return core.fail("EINVAL", "option " .. o.long .. " takes no value") end
      opts[key] = true
    end
    i = i + 1
  end
  return i
end

local handlers = require "procy.cli.commands"
local commands, interactive = handlers.commands, handlers.interactive

-- The words after a command: its options anywhere (until "--"), the rest
-- in order. `run` stops at the recipe: what follows is the recipe's.
local function parse_command(argv, i, opts, spec)
  local rest = {}
  local options = spec.options
  if spec.subcommands then -- the first word names the subcommand, whose options these are
    local word = argv[i]
    for _, sub in ipairs(spec.subcommands) do
      if sub.name == word then options = sub.options end
    end
    if word and word:sub(1, 1) ~= "-" then
      rest[1] = word
      i = i + 1
    end
  end
  while i <= #argv do
    local next_i, dashdash = parse_options(argv, i, opts, options)
    if not next_i then return nil, dashdash end
    i = next_i
    if dashdash or spec.rest then
      table.move(argv, i, #argv, #rest + 1, rest)
      break
    end
    if i <= #argv then
      rest[#rest + 1] = argv[i]
      i = i + 1
    end
  end
  return rest
end

-- run(fn, ...) -> fn(...)'s status. What failed in the world rather than
-- in procy (an assert on a `nil, "ECODE: message"` result: a file gone, a
-- record locked) ends the command with that message, not a traceback; a
-- bug keeps its traceback.
local function run(fn, ...)
  local ok, res = xpcall(fn, function(e)
    local msg = type(e) == "string" and (e:match("^[^\n:]+:%d+: (%u[%u%d_]+: [^\n]*)$") or e:match("^(%u[%u%d_]+: [^\n]*)$"))
    return msg and { said = msg } or debug.traceback(e, 2)
  end, ...)
  if ok then return res end
  if type(res) == "table" then
    say(res.said)
    return 1
  end
  error(res, 0)
end

function M.main(argv)
  local opts, rest, spec = {}, {}, nil
  local i, dashdash = parse_options(argv, 1, opts)
  local session_cwd = opts.cwd -- procy's own --cwd (a command may take one of its own)
  local cmd = i and not dashdash and argv[i]
  if not i then
    say(dashdash, "\nTry 'procy --help'.")
    return 2
  elseif dashdash then
    rest = table.move(argv, i, #argv, 1, {}) -- the agent's argv
  elseif cmd then
    for _, c in ipairs(M.commands) do
      if c.name == cmd then spec = c end
    end
    if spec then i, dashdash = parse_command(argv, i + 1, opts, spec) end
    rest = i or rest
  end
  if not i then
    say(dashdash, "\nTry 'procy --help'.")
    return 2
  end
  if opts.help or cmd == "help" then -- procy help [CMD], procy CMD --help
    local name = cmd
    if cmd == "help" then name = rest[1] end
    if name then
      for _, c in ipairs(M.commands) do
        if c.name == name then
          io.stdout:write(M.command_help(c))
          return 0
        end
      end
      say("no command '", name, "'\nTry 'procy --help'.")
      return 2
    end
    io.stdout:write(M.usage())
    return 0
  end
  if opts.version then
    print("procy " .. core.version)
    return 0
  end
  if cmd and not spec then
    say("unknown command '", cmd, "'\nTry 'procy --help'.")
    return 2
  end
  if cmd == "hook" then return commands.hook(rest) end -- runs for agents: no config needed
  local cwd
  if session_cwd then
    if cmd then
      say("--cwd is the interactive session's: procy --cwd DIR [-- AGENT ARGS] (a command runs where it is started)")
      return 2
    end
    local fs = require "procy.fs"
    cwd = fs.realpath(session_cwd)
    if not cwd or (fs.stat(cwd) or {}).type ~= "dir" then
      say("--cwd ", session_cwd, ": no such directory")
      return 2
    end
    opts.cwd = cwd
  end
  local cfg, cerr = config.load { config = opts.config, cwd = cwd }
  if not cfg then
    say(cerr)
    return 1
  end
  if opts.db then config.set("db", opts.db, "--db") end
  if opts["no-ui"] then config.set("ui", false, "--no-ui") end
  if opts["ui-port"] then
    local port = math.tointeger(tonumber(opts["ui-port"]))
    if not port or port < 1 or port > 65535 then
      say("--ui-port takes a port number (1 to 65535), not ", opts["ui-port"])
      return 2
    end
    config.set("port", port, "--ui-port")
  end
  if opts.sandbox and not config.get().sandbox then config.set("sandbox", true, "--sandbox") end
  local model_url = opts["model-url"] or opts["qwen-url"]
  if model_url then
    local m = {}
    for k, v in pairs(cfg.model or {}) do m[k] = v end
    m.url = model_url
    config.set("model", m, opts["model-url"] and "--model-url" or "--qwen-url")
  end
  local host = opts.tunnel or (cfg.tunnel ~= "" and cfg.tunnel or nil)
  local tunnel
  if host and cmd ~= "config" and cmd ~= "recipes" then
    local terr
    tunnel, terr = require("procy.tunnel").start(host, config.get().model)
    if not tunnel then
      say(terr)
      return 1
    end
  end
  local _ <close> = tunnel
  core.set_run_limit(cfg.task_run_limit)
  if not os.getenv("PROCY_LOG") then core.set_log_level(cfg.log_level) end
  -- procy's log (the terminal's stderr, or the log file while an agent
  -- has the terminal) holds what it was told: the record's rule set first
  core.set_log_filter(require("procy.redact").text)
  if not spec then return interactive(rest, opts) end
  if spec.reads then -- only reading: a record that is missing or not ours to write still reads
    local store = require "procy.store"
    store.read_only = true
    local h, err = store.open()
    if not h then
      say(err)
      return 1
    end
  end
  return run(commands[cmd], rest, opts)
end

return M
