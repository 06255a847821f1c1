-- Configuration: precedence, lookup, and broken files.
local T = require "lib.tap"
local fs = require "procy.fs"
local proc = require "procy.proc"

local dir = T.tmpdir()
local home = dir .. "/home"
local project = dir .. "/project"
assert(fs.mkdir(home .. "/.config/procy"))
assert(fs.mkdir(project .. "/sub/deeper"))
local env = { HOME = home, XDG_CONFIG_HOME = false, XDG_DATA_HOME = false, PROCY_LOG = false }

local function config(cwd, ...)
  return T.procy({ "config", ... }, { cwd = cwd, env = env })
end

-- defaults
do
  local r = config(project)
  T.is(r.code, 0, "procy config runs with no config files")
  T.like(r.stdout, 'db%s+= "' .. home:gsub("%p", "%%%0") .. '/%.local/share/procy/procy%.db"%s+%-%- default',
         "the default db is under ~/.local/share")
  T.like(r.stdout, "no config files found", "and says no files were read")
end

-- user file, then the nearest project file upwards
do
  T.write(home .. "/.config/procy/procy.lua", 'return { log_level = "warn", task_run_limit = 3 }\n')
  T.write(project .. "/procy.lua", '-- project settings\nreturn {\n  task_run_limit = 5,\n  db = "records/p.db",\n}\n')
  local r = config(project .. "/sub/deeper")
  T.like(r.stdout, 'log_level%s+= "warn"%s+%-%- ' .. home:gsub("%p", "%%%0"), "a user setting applies")
  T.like(r.stdout, "task_run_limit%s+= 5%s+%-%- " .. project:gsub("%p", "%%%0") .. "/procy.lua",
         "the project's procy.lua, found upwards, overrides the user's")
  T.like(r.stdout, 'db%s+= "' .. project:gsub("%p", "%%%0") .. '/records/p.db"',
         "a relative db path is taken from the config file's directory")
  r = config(project, "--db", "/tmp/x.db")
  T.like(r.stdout, 'db%s+= "/tmp/x.db"%s+%-%- %-%-db', "--db overrides the config")
  T.write(dir .. "/other.lua", "return { task_run_limit = 9 }")
  r = config(project, "--config", dir .. "/other.lua")
  T.like(r.stdout, "task_run_limit%s+= 9", "--config FILE replaces the project lookup")
  T.write(dir .. "/model.lua", [[return { model = { url = "http://127.0.0.1:8000/v1", name = "qwen",
    api = "openai", key_env = "QWEN_KEY", headers = { Authorization = "Bearer sk-ant-api03-abcdefghijklmnopqrstuvwx" } },
    redact = { "zz%-%w+" } }]])
  r = config(project, "--config", dir .. "/model.lua")
  T.like(r.stdout, 'model%.url%s+= "http://127%.0%.0%.1:8000/v1"%s+%-%- ', "config shows a table setting's fields")
  T.like(r.stdout, 'model%.name%s+= "qwen"', "each on its own line")
  T.like(r.stdout, 'model%.headers%.Authorization%s+= "Bearer %[REDACTED%]"', "a secret in one is masked")
  T.like(r.stdout, 'redact%s+= { "zz%%%-%%w%+" }', "a list is shown inline")
  T.ok(not r.stdout:find("{...}", 1, true), "nothing is left as {...}")
  r = config(project, "--config", dir .. "/absent.lua")
  T.is(r.code, 1, "a missing --config file is an error")
end

-- broken files stop procy with file:line
do
  local function broken(text)
    T.write(project .. "/procy.lua", text)
    return T.procy({ "run", T.write(dir .. "/noop.lua", "return 0") }, { cwd = project, env = env })
  end
  local r = broken("return {\n  log_level = 'debug'\n  task_run_limit = 1,\n}\n")
  T.is(r.code, 1, "a syntax error in procy.lua exits 1")
  T.like(r.stderr, "procy: .*project/procy.lua:3: '}' expected %(to close '{' at line 1%) near 'task_run_limit'",
         "with file:line and the parser's words")
  r = broken("local x = nil\nreturn { db = x.path }\n")
  T.like(r.stderr, "procy.lua:2: attempt to index a nil value", "a runtime error in the file gives file:line")
  r = broken("return {\n  log_level = 'info',\n  task_run_limt = 2,\n}\n")
  T.like(r.stderr, "procy.lua:3: unknown setting 'task_run_limt' %(did you mean 'task_run_limit'%?%)",
         "an unknown setting names its line and suggests the right one")
  r = broken("return { task_run_limit = 'soon' }\n")
  T.like(r.stderr, "procy.lua:1: setting 'task_run_limit' must be a number, not a string", "a wrong type")
  r = broken("return { log_level = 'chatty' }\n")
  T.like(r.stderr, "setting 'log_level' must be one of debug, info, warn, error", "a value outside its choices")
  r = broken("return 42\n")
  T.like(r.stderr, "procy.lua: a config file must return a table %(it returned number%)", "a file not returning a table")
  r = broken("return { db = undefined_name }\n")
  T.like(r.stderr, "procy.lua:1: undefined global 'undefined_name'", "globals are strict in config files too")
  -- the fields of table settings too
  r = broken("return {\n  evolve = {\n    iterations = 'five' } }\n")
  T.like(r.stderr, "procy.lua:3: 'evolve.iterations' must be a number, not \"five\"", "a nested field's type, at its line")
  r = broken("return { evolve = { iteratons = 5 } }\n")
  T.like(r.stderr, "'evolve.iteratons' is not a field of 'evolve' %(did you mean 'iterations'%?%)", "a misspelt nested field")
  r = broken("return { evolve = { rollback = 'last' } }\n")
  T.like(r.stderr, "'evolve.rollback' must be one of \"best\", \"never\"", "a nested field's choices")
  r = broken("return { model = { url = 'http://h', key = 'sk-1' } }\n")
  T.like(r.stderr, "'model.key': keys are never read from a config file", "a key in model is refused")
  r = broken("return { model = { url = 'http://h', connect_timeout = 5, remote_port = 8001 }, "
    .. "evolve = { judge = function() end, worktree_links = { 'data' } }, trainer = { check = false }, otel = { content = true } }\n")
  T.is(r.code, 0, "every field procy reads is taken", r.stderr)
end

proc.run { "rm", "-rf", dir }
return T.done()
