-- The procy command line, run as a real subprocess.
local T = require "lib.tap"
local core = require "procy.core"
local fs = require "procy.fs"
local proc = require "procy.proc"

local dir = T.tmpdir()

-- help, version, bad flags
do
  local r = T.procy { "--help" }
  T.is(r.code, 0, "--help exits 0")
  T.like(r.stdout, "usage: procy %[OPTIONS%] %[%-%- AGENT ARGS%.%.%.%]", "--help prints usage on stdout")
  r = T.procy { "--version" }
  T.is(r.stdout, "procy " .. core.version .. "\n", "--version")
  r = T.procy { "--frobnicate" }
  T.is(r.code, 2, "an unknown flag exits 2")
  T.like(r.stderr, "unknown option '%-%-frobnicate'", "and names it")
  r = T.procy { "frobnicate" }
  T.is(r.code, 2, "an unknown command exits 2")
  T.like(r.stderr, "unknown command 'frobnicate'", "and names it")
  r = T.procy { "run", "--db" }
  T.is(r.code, 2, "a flag missing its value exits 2")
  T.like(r.stderr, "option %-%-db needs PATH", "and says what it needs")
  r = T.procy { "run" }
  T.is(r.code, 2, "run without a file exits 2")
end

-- the README documents every command and option --help lists
do
  local help = T.procy({ "--help" }).stdout
  local readme = assert(T.read(T.src .. "/README.md"))
  local missing = {}
  for word in help:gmatch("\n  (%S+)") do
    word = word:gsub(",$", "")
    if not readme:find(word, 1, true) then missing[#missing + 1] = word end
  end
  T.is(table.concat(missing, " "), "", "every command, option and variable in --help appears in README.md")
end

-- the README's command table is the parser's: every usage line, as made
-- from the table, is a row of it; and each command has its own help
do
  local readme = assert(T.read(T.src .. "/README.md"))
  local cli = require "procy.cli.main"
  local missing, rows = {}, 0
  cli.each(function(c, sub)
    local line = "| `" .. cli.synopsis(c, sub):gsub("|", "\\|") .. "` |"
    if readme:find(line, 1, true) then rows = rows + 1 else missing[#missing + 1] = line end
  end)
  T.is(table.concat(missing, "\n"), "", "every command's usage line (from the parser's table) is a row of README.md")
  local listed = select(2, readme:match("| command | what it does |\n|%-%-%-|%-%-%-|\n(.-)\n\n"):gsub("\n", "\n")) + 1
  T.is(listed, rows, "and the README lists no other")
  local r = T.procy { "help", "serve" }
  T.ok(r.code == 0 and r.stdout:find("--openai-upstream URL", 1, true) and r.stdout:find("where OpenAI calls go", 1, true),
       "procy help serve: its options, each with its help", r.stdout)
  local r2 = T.procy { "serve", "--help" }
  T.is(r2.stdout, r.stdout, "procy serve --help says the same")
  r = T.procy { "play", "--help" }
  T.like(r.stdout, "^usage: procy play ID %[%-%-speed N%] %[%-%-idle%-limit S%]", "procy play --help: play's help, not procy's")
  r = T.procy { "help", "agent" }
  T.ok(r.stdout:find("agent interrupt NAME", 1, true) and r.stdout:find("agent send NAME TEXT|- [--wait] [--timeout S]", 1, true)
       and r.stdout:find("--cwd DIR", 1, true) and r.stdout:find("--color", 1, true), "procy help agent: every subcommand", r.stdout)
  r = T.procy { "help" }
  T.ok(r.code == 0 and r.stdout:find("commands:", 1, true), "procy help is procy's help")
  T.is(T.procy({ "help", "nosuch" }).code, 2, "help for an unknown command exits 2")
  T.is(T.procy({ "agent", "ls", "--wait" }).code, 2, "an option of another subcommand is refused")
end

-- The layout is the contract: lua/procy/NAME.lua (and the C modules but
-- procy.blobs) are the recipe API, each in lua/README.md, each of their
-- functions and fields described there (or, the few procy alone calls, in
-- INTERNALS.md); lua/procy/CONCERN/ holds procy's insides, described in
-- INTERNALS.md under their full names (`record.capture.prepare`) and never
-- offered to recipes. The lists come from the tree, so a module added
-- anywhere is held to its place's rule.
do
  local readme = assert(T.read(T.src .. "/lua/README.md"))
  local internals = assert(T.read(T.src .. "/lua/INTERNALS.md"))
  local public, inside = { "core", "json", "db", "proc", "fs", "pty", "http", "hash", "vt" }, { "blobs" }
  for _, name in ipairs(assert(fs.dir(T.src .. "/lua/procy"))) do
    local mod = name:match("^(.-)%.lua$")
    if mod then public[#public + 1] = mod
    elseif name ~= "agents" then -- agents/: the built-in profiles, data a project's `agents` setting replaces
      for _, f in ipairs(assert(fs.dir(T.src .. "/lua/procy/" .. name))) do
        if f:match("%.lua$") then inside[#inside + 1] = name .. "." .. f:sub(1, -5) end
      end
    end
  end
  table.sort(public)
  table.sort(inside)
  local missing = {}
  local function check(ref, names, prefix, sep)
    for name in pairs(names) do
      if not name:match("^__") and not ref:find("`" .. prefix .. sep .. name, 1, true)
         and not ref:find("| `" .. prefix .. sep .. name, 1, true) then
        missing[#missing + 1] = prefix .. sep .. name
      end
    end
  end
  local offered = {}
  local by_concern = readme:match("The modules by concern:(.-)\n## ") or ""
  for _, m in ipairs(public) do
    T.ok(by_concern:find("`procy." .. m .. "`", 1, true), "procy." .. m .. " is in the recipe reference, under its concern")
    check(readme .. internals, require("procy." .. m), m, ".")
  end
  for _, m in ipairs(inside) do
    T.ok(internals:find("procy." .. m, 1, true), "procy." .. m .. " is in INTERNALS.md")
    local mod = require("procy." .. m)
    if type(mod) == "table" then check(internals, mod, m, ".") end
    if readme:find('require "procy.' .. m, 1, true) then offered[#offered + 1] = m end
  end
  for _, dir in ipairs { "recipes", "examples" } do
    for _, f in ipairs(assert(fs.dir(T.src .. "/" .. dir))) do
      local text = f:match("%.lua$") and T.read(T.src .. "/" .. dir .. "/" .. f) or ""
      for m in text:gmatch('require%s*%(?%s*"procy%.([%w_]+%.[%w_.]+)"') do offered[#offered + 1] = dir .. "/" .. f .. ": " .. m end
    end
  end
  T.is(table.concat(offered, " "), "", "no recipe, example or reference requires one of procy's insides")
  local reg = debug.getregistry()
  local srv = require("procy.http").serve { port = 0 }
  check(readme, getmetatable(srv).__index, "srv", ":")
  srv:close()
  check(readme, reg["procy.http.req"].__index, "req", ":")
  check(readme, reg["procy.http.stream"].__index, "s", ":")
  local h = require("procy.db").open(":memory:", { migrations = false })
  check(readme, getmetatable(h).__index, "h", ":")
  local p = require("procy.proc").spawn { "true" }
  check(readme, getmetatable(p).__index, "p", ":")
  p:wait()
  check(readme, getmetatable(core.current()).__index, "t", ":")
  table.sort(missing)
  T.is(table.concat(missing, " "), "", "lua/README.md describes every function and field of the recipe API, INTERNALS.md those of procy's insides")
end

-- every Lua module and migration is compiled in
do
  local build = assert(T.read(T.src .. "/meson.build"))
  local missing = {}
  local function walk(rel)
    for _, name in ipairs(assert(fs.dir(T.src .. "/" .. rel))) do
      local path = rel .. "/" .. name
      if name == "node_modules" then -- npm's: meson.build checks the files it embeds from there
      elseif fs.stat(T.src .. "/" .. path).type == "dir" then walk(path)
      elseif (name:match("%.lua$") or name:match("%.sql$") or (rel:match("^web") and name:match("%.[jhc]s?s?m?l?$")))
             and not build:find("'" .. path .. "'", 1, true) then
        missing[#missing + 1] = path
      end
    end
  end
  walk("lua")
  walk("store")
  walk("recipes")
  walk("web")
  T.is(table.concat(missing, " "), "", "meson.build embeds every file under lua/, store/, recipes/ and web/")
end

-- running recipes
do
  local function recipe(name, text) return T.write(dir .. "/" .. name, text) end
  local r = T.procy { "run", recipe("seven.lua", "return function(args) return 7 end") }
  T.is(r.code, 7, "a recipe's integer result is the exit status")
  r = T.procy { "run", recipe("args.lua", [[
    local first = ...
    return function(args) print(first, #args, args[1], args[2], args[0]) end]]), "a b", "c" }
  T.like(r.stdout, "^a b\t2\ta b\tc\t.*args.lua\n$", "args reach the chunk and the function")
  r = T.procy { "run", recipe("main.lua", "return { main = function(args) return #args end }"), "x", "y", "z" }
  T.is(r.code, 3, "a table with main() works too")
  r = T.procy { "run", recipe("fail.lua", "return function() return nil, 'the thing broke' end") }
  T.is(r.code, 1, "nil, err exits 1")
  T.like(r.stderr, "procy: the thing broke", "and prints err")
  r = T.procy { "run", recipe("syntax.lua", "local x = = 1\n") }
  T.is(r.code, 1, "a syntax error exits 1")
  T.like(r.stderr, "syntax.lua:1: unexpected symbol near '='", "with file:line and the reason")
  r = T.procy { "run", recipe("boom.lua", "local function f()\n  error('boom')\nend\nf()\n") }
  T.is(r.code, 1, "a runtime error exits 1")
  T.like(r.stderr, "boom.lua:2: boom", "with file:line and the message")
  T.like(r.stderr, "stack traceback:.*boom.lua:4", "and a traceback")
  r = T.procy { "run", dir .. "/missing.lua" }
  T.is(r.code, 1, "a missing recipe exits 1")
  T.like(r.stderr, "no recipe .*missing.lua", "and says so")
  T.write(dir .. "/helper.lua", "return { value = 42 }")
  r = T.procy { "run", recipe("req.lua", "return require('helper').value") }
  T.is(r.code, 42, "a recipe requires modules next to it")
  -- procy exits only when every task has ended
  local marker = dir .. "/late"
  r = T.procy { "run", recipe("bg.lua", [[
    local core = require "procy.core"
    local marker = ...
    core.spawn(function() core.sleep(0.2) local f = io.open(marker, "w") f:write("done") f:close() end)
    return 0]]), marker }
  T.is(r.code, 0, "the recipe returned 0")
  T.is(T.read(marker), "done", "a background task finished before procy exited")
end

-- PROCY_LUA_PATH loads the Lua app from a directory instead of the binary
do
  local tree = dir .. "/lua"
  proc.run { "cp", "-r", T.src .. "/lua", tree }
  local cli = T.read(tree .. "/procy/cli/main.lua")
  T.write(tree .. "/procy/cli/main.lua", (cli:gsub("show this help and exit", "PATCHED HELP")))
  T.write(tree .. "/procy/extra.lua", "return 'extra module'")
  local env = { PROCY_LUA_PATH = tree }
  T.like(T.procy({ "--help" }, { env = env }).stdout, "PATCHED HELP", "an edited cli.lua takes effect without a rebuild")
  local r = T.procy({ "run", T.write(dir .. "/x.lua", "print((require 'procy.extra'))") }, { env = env })
  T.is(r.stdout, "extra module\n", "a new module under PROCY_LUA_PATH is found")
  r = T.procy({ "run", dir .. "/x.lua" })
  T.like(r.stderr, "module 'procy.extra' not found", "without it, only the compiled-in modules exist")
end

-- commands that only read: a missing record, one procy may not write, a
-- session with no API calls
do
  local rec = dir .. "/reading/r.db"
  local r = T.procy { "--db", rec, "sessions" }
  T.is(r.code, 1, "procy sessions without a record fails")
  T.like(r.stderr, "no record at", "saying there is none")
  T.ok(not require("procy.fs").stat(rec), "and creates none")
  r = T.procy { "--db", rec, "run", T.write(dir .. "/mk.lua", [[
    local store = require "procy.store"
    local id = assert(store.new_session { argv = { "x" }, cwd = "/", mode = "serve" })
    store.end_session(id, { status = "exited", code = 0 })
    print(id)]]) }
  local id = r.stdout:match("%x+")
  T.like(r.stderr, "made the directory " .. dir:gsub("%p", "%%%0") .. "/reading for the record", "a record's missing directory is made, and said")
  r = T.procy { "--db", rec, "show", id }
  T.is(r.code, 0, "procy show of a session with no API calls")
  T.like(r.stdout, "api%s+0 calls", "says it had none")
  local count = require("procy.commands").count
  T.is(count(1, "call") .. ", " .. count(2, "call") .. ", " .. count(1, "entry", "entries") .. ", " .. count(3, "entry", "entries"),
    "1 call, 2 calls, 1 entry, 3 entries", "counts said as they are said")
  assert(proc.run { "chmod", "755", dir, dir .. "/reading" })
  -- (procy makes a record 0600, its tape too: this one is shared on purpose)
  assert(proc.run { "sh", "-c", 'chmod 644 "$1" "$1"-*', "sh", rec })
  local as_nobody = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", T.bin, "--db", rec }
  local function nobody(...)
    local argv = table.move(as_nobody, 1, #as_nobody, 1, {})
    for _, a in ipairs { ... } do argv[#argv + 1] = a end
    return assert(proc.run(argv, { env = { HOME = "/tmp", XDG_CONFIG_HOME = "/tmp/none", XDG_STATE_HOME = "/tmp/none" } }))
  end
  r = nobody("sessions")
  T.is(r.code, 0, "procy sessions on a record it may not write", r.stderr)
  T.like(r.stdout, id:sub(1, 10), "lists its sessions")
  r = nobody("show", id)
  T.is(r.code, 0, "and procy show reads it", r.stderr)
end

proc.run { "rm", "-rf", dir }
return T.done()
