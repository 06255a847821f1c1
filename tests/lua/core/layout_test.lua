-- The tree keeps the architecture INTERNALS.md draws: runtime/ by layer
-- (core, store, then term and http side by side), each file calling only
-- its own folder and those below it, no circle of files, no C or Lua file
-- over 800 lines. Read from what the compiler and linker see: every
-- #include of runtime/, and every symbol one object of the built library
-- takes from another (nm), so a call through a declaration in the wrong
-- place is caught as well as an include.
local T = require "lib.tap"
local fs = require "procy.fs"
local proc = require "procy.proc"

local rank = { core = 0, store = 1, term = 2, http = 2 }
local MAX_LINES = 800

-- every file under dir (relative paths), recursively
local function files(dir, rel, out)
  out = out or {}
  for _, name in ipairs(assert(fs.dir(dir .. (rel and "/" .. rel or "")))) do
    local path = rel and (rel .. "/" .. name) or name
    if fs.stat(dir .. "/" .. path).type == "dir" then files(dir, path, out) else out[#out + 1] = path end
  end
  table.sort(out)
  return out
end

-- may a file of layer `from` use one of layer `to`? (nil: the binary)
local function allowed(from, to)
  if from == nil or from == to then return true end
  if rank[to] == nil or rank[from] == nil then return false end
  return rank[to] < rank[from]
end

-- ---- where each file is ----------------------------------------------------------
local layer_of, header_at, misplaced = {}, {}, {}
for _, path in ipairs(files(T.src .. "/runtime")) do
  local layer, name = path:match("^(%w+)/([%w_]+%.[ch])$")
  if layer and rank[layer] then
    layer_of[path] = layer
    if name:match("%.h$") then
      if header_at[name] then misplaced[#misplaced + 1] = name .. " twice" end
      header_at[name] = layer
    end
  elseif not (path == "main.c" or path == "embed.c" or path:match("^%w+/meson%.build$") or path:match("^%w+/README%.md$")) then
    misplaced[#misplaced + 1] = path
  end
end
T.is(table.concat(misplaced, " "), "", "runtime/ holds main.c, embed.c and the four layers' folders (sources, meson.build, README.md); no header name twice")
T.ok(next(layer_of) ~= nil, "the layers' files are found")

-- ---- includes ---------------------------------------------------------------------
local bad, long, included = {}, {}, {}
local function check_includes(path, layer)
  local n = 0
  for line in (T.read(T.src .. "/runtime/" .. path) .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    local h = line:match('^%s*#%s*include%s+"([^"]+)"')
    if h then
      local to = header_at[h]
      if not to then bad[#bad + 1] = path .. ":" .. n .. " includes " .. h .. ", no header of runtime/"
      elseif not allowed(layer, to) then bad[#bad + 1] = path .. ":" .. n .. " (" .. layer .. ") includes " .. to .. "/" .. h end
      -- a header with a file of its own name (tty.h, tty.c) is that file's:
      -- taking its types ties the includer to it as a call does
      local owner = to and (to .. "/" .. h:gsub("%.h$", ".c"))
      if owner and layer_of[owner] and owner ~= path and path:match("%.c$") then
        included[path] = included[path] or {}
        included[path][owner] = "#include " .. h
      end
    end
  end
  if path:match("%.c$") and n > MAX_LINES then long[#long + 1] = "runtime/" .. path .. " " .. n end
end
for path, layer in pairs(layer_of) do check_includes(path, layer) end
check_includes("main.c", nil)
table.sort(bad)
T.is(table.concat(bad, "\n"), "", "every include reaches down or across its own folder, never up (term and http never each other)")

-- ---- symbols: who calls whom, as linked ---------------------------------------------
local lib = assert(os.getenv("PROCY_BIN"), "PROCY_BIN"):gsub("[^/]+$", "") .. "libprocyrt.a"
local function nm(args)
  local r = assert(proc.run({ "nm", "-A", "-g", table.unpack(args) }))
  T.ok(r.code == 0, "nm " .. table.concat(args, " ") .. " reads the library", r.stderr)
  return r.stdout
end
local function object_file(obj) -- runtime_term_session.c.o -> term/session.c
  local layer, name = obj:match("runtime_(%w+)_([%w_]+%.c)%.o$")
  return layer and rank[layer] and (layer .. "/" .. name) or nil
end
local defined = {}
for obj, sym in nm({ "--defined-only", lib }):gmatch("[^\n]-:[^\n]-/([^/:\n]+):%x*%s+%a%s+([%w_]+)") do
  local f = object_file(obj)
  if f then defined[sym] = f end
end
T.ok(defined.session_start == "term/session.c" and defined.loop_new == "core/loop.c",
     "the library's symbols are read (session_start in term/session.c)")
local uses, wrong = {}, {}
for obj, sym in nm({ "-u", lib }):gmatch("[^\n]-:[^\n]-/([^/:\n]+):%s+U%s+([%w_]+)") do
  local from, to = object_file(obj), defined[sym]
  if from and to and from ~= to then
    uses[from] = uses[from] or {}
    uses[from][to] = uses[from][to] or sym
    local lf, lt = from:match("^%w+"), to:match("^%w+")
    if not allowed(lf, lt) then wrong[#wrong + 1] = from .. " calls " .. to .. " (" .. sym .. ")" end
  end
end
table.sort(wrong)
T.is(table.concat(wrong, "\n"), "", "every call between files goes down a layer or stays in its folder")

-- circles: a depth-first walk over the files' calls and includes
for from, tos in pairs(included) do
  for to, why in pairs(tos) do
    uses[from] = uses[from] or {}
    uses[from][to] = uses[from][to] or why
  end
end
local circles, state = {}, {}
local function walk(f, stack)
  state[f] = "open"
  stack[#stack + 1] = f
  local tos = {}
  for to in pairs(uses[f] or {}) do tos[#tos + 1] = to end
  table.sort(tos)
  for _, to in ipairs(tos) do
    if state[to] == "open" then
      local i = #stack
      while stack[i] ~= to do i = i - 1 end
      local c = {}
      for k = i, #stack do c[#c + 1] = stack[k] .. " (" .. uses[stack[k]][stack[k + 1] or to] .. ")" end
      circles[#circles + 1] = table.concat(c, " -> ") .. " -> " .. to
    elseif not state[to] then
      walk(to, stack)
    end
  end
  stack[#stack] = nil
  state[f] = "done"
end
local all = {}
for f in pairs(uses) do all[#all + 1] = f end
table.sort(all)
for _, f in ipairs(all) do if not state[f] then walk(f, {}) end end
T.is(table.concat(circles, "\n"), "", "no circle of files: no two files of runtime/ call each other or take each other's types, directly or around")

-- ---- sizes --------------------------------------------------------------------------
for _, path in ipairs(files(T.src .. "/lua")) do
  if path:match("%.lua$") then
    local _, n = T.read(T.src .. "/lua/" .. path):gsub("\n", "")
    if n > MAX_LINES then long[#long + 1] = "lua/" .. path .. " " .. n end
  end
end
T.is(table.concat(long, " "), "", "no C or Lua file over " .. MAX_LINES .. " lines (split along a seam)")

-- ---- tests mirror the tree ----------------------------------------------------------
local concerns = { record = true, agents = true, servers = true, evolve = true, training = true, cli = true }
local stray = {}
for _, path in ipairs(files(T.src .. "/tests/c")) do
  local layer = path:match("^(%w+)/test_[%w_]+%.c$")
  if not (layer and rank[layer]) and not path:match("^[%w_]+%.h$") and not path:match("^%w+/[%w_]+%.h$") then stray[#stray + 1] = "tests/c/" .. path end
end
local build = T.read(T.src .. "/tests/meson.build")
for _, path in ipairs(files(T.src .. "/tests/lua")) do
  local folder, name = path:match("^(%w+)/([%w_]+)_test%.lua$")
  if not (folder and (rank[folder] or concerns[folder])) and not path:match("^lib/") then stray[#stray + 1] = "tests/lua/" .. path end
  if folder and not build:find("['" .. folder .. "', '" .. name .. "']", 1, true) then stray[#stray + 1] = path .. " (not in tests/meson.build)" end
end
T.is(table.concat(stray, " "), "", "tests/c by runtime's layers, tests/lua by layer or lua/procy's concern, helpers in tests/lua/lib")

T.done()
