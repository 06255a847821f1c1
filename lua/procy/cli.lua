-- procy.cli: the command line. main(args) runs as the first task; the
-- process exits with what it returns once every task has ended.
--
-- Options and commands live in the two tables below: parsing, `procy
-- --help` and the README's command list all come from them
-- (tests/lua/cli_test.lua checks the README against --help).

require "procy.env"
local core = require "procy.core"
local config = require "procy.config"

local M = {}

M.options = {
  { short = "-h", long = "--help", help = "show this help and exit" },
  { short = "-V", long = "--version", help = "print the version and exit" },
  { long = "--db", arg = "PATH", help = "SQLite file to record into (setting 'db')" },
  { long = "--config", arg = "FILE", help = "project config to use instead of the nearest procy.lua" },
}

M.commands = {
  { name = "run", args = "FILE.lua [ARGS...]",
    help = "run a recipe as a task; exit with its status" },
  { name = "config", args = "",
    help = "print the effective settings and where each came from" },
}

M.environment = {
  { name = "PROCY_LUA_PATH", help = "load procy's Lua modules from this lua/ directory, not the binary" },
  { name = "PROCY_LOG", help = "least severe log line to print: debug, info, warn, error" },
}

local function say(...)
  io.stderr:write("procy: ", ...)
  io.stderr:write("\n")
end

function M.usage()
  local out = {
    "usage: procy [OPTIONS] COMMAND [ARGS...]",
    "",
    "procy records what an AI coding agent is asked and does, and runs",
    "Lua recipes on that record.",
    "",
    "commands:",
  }
  local function row(left, right)
    out[#out + 1] = ("  %-24s %s"):format(left, right)
  end
  for _, c in ipairs(M.commands) do
    row(c.name .. (c.args ~= "" and (" " .. c.args) or ""), c.help)
  end
  out[#out + 1] = ""
  out[#out + 1] = "options:"
  for _, o in ipairs(M.options) do
    local left = (o.short and (o.short .. ", ") or "") .. o.long .. (o.arg and (" " .. o.arg) or "")
    row(left, o.help)
  end
  out[#out + 1] = ""
  out[#out + 1] = "environment:"
  for _, e in ipairs(M.environment) do row(e.name, e.help) end
  return table.concat(out, "\n") .. "\n"
end

local function find_option(name)
  for _, o in ipairs(M.options) do
    if o.long == name or o.short == name then return o end
  end
end

-- Reads options from args[i] on, stopping at the first word that is not
-- one. Returns the next index, or nil and a message.
local function parse_options(args, i, opts)
  while i <= #args do
    local a = args[i]
    if a == "--" then return i + 1 end
    if a:sub(1, 1) ~= "-" or a == "-" then return i end
    local name, value = a:match("^(%-%-[^=]+)=(.*)$")
    name = name or a
    local o = find_option(name)
    if not o then return nil, "unknown option '" .. a .. "'" end
    local key = o.long:sub(3)
    if o.arg then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return nil, "option " .. o.long .. " needs " .. o.arg end
      end
      opts[key] = value
    else
      if value ~= nil then return nil, "option " .. o.long .. " takes no value" end
      opts[key] = true
    end
    i = i + 1
  end
  return i
end

local commands = {}

-- procy run FILE.lua [ARGS...]
function commands.run(args)
  local file = args[1]
  if not file then
    say("run needs a recipe file\nusage: procy run FILE.lua [ARGS...]")
    return 2
  end
  local chunk, err = loadfile(file, "t")
  if not chunk then
    say(err)
    return 1
  end
  -- a recipe can require the modules that sit next to it
  local dir = file:match("^(.*)/[^/]*$") or "."
  package.path = dir .. "/?.lua;" .. package.path
  local rargs = table.move(args, 2, #args, 1, {})
  rargs[0] = file
  local task = core.spawn(function(...)
    local main = chunk(...)
    if type(main) == "table" and type(main.main) == "function" then main = main.main end
    if type(main) == "function" then return main(rargs) end
    return main
  end, table.unpack(rargs))
  task:label(file)
  local r = table.pack(core.await(task))
  if r[1] == nil and r[3] == "ETASK" then return 1 end -- logged with its traceback
  if r[1] == nil and r[2] ~= nil then
    say(tostring(r[2]))
    return 1
  end
  if math.type(r[1]) == "integer" then return r[1] end
  if r[1] == false then return 1 end
  return 0
end

-- procy config
function commands.config(args)
  if #args > 0 then
    say("config takes no arguments")
    return 2
  end
  local cfg = config.get()
  for _, s in ipairs(config.settings) do
    local v = cfg[s.name]
    local text = type(v) == "string" and ("%q"):format(v) or tostring(v)
    print(("%-16s = %-40s -- %s"):format(s.name, text, config.origin[s.name]))
  end
  if #config.files == 0 then print("-- no config files found") end
  return 0
end

function M.main(argv)
  local opts = {}
  local i, err = parse_options(argv, 1, opts)
  local cmd = i and argv[i]
  if i and cmd and commands[cmd] then
    i, err = parse_options(argv, i + 1, opts) -- options may follow the command
  end
  if not i then
    say(err, "\nTry 'procy --help'.")
    return 2
  end
  if opts.help then
    io.stdout:write(M.usage())
    return 0
  end
  if opts.version then
    print("procy " .. core.version)
    return 0
  end
  if not cmd then
    io.stderr:write(M.usage())
    return 2
  end
  if not commands[cmd] then
    say("unknown command '", cmd, "'\nTry 'procy --help'.")
    return 2
  end
  local cfg, cerr = config.load { config = opts.config }
  if not cfg then
    say(cerr)
    return 1
  end
  if opts.db then config.set("db", opts.db, "--db") end
  core.set_run_limit(cfg.task_run_limit)
  if not os.getenv("PROCY_LOG") then core.set_log_level(cfg.log_level) end
  return commands[cmd](table.move(argv, i, #argv, 1, {}))
end

return M
