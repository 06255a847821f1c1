-- The documents' Lua: every ```lua block in README.md and lua/README.md
-- loads, either as a chunk or as fields of a procy.lua table (the
-- fragments the README shows). Each config block is loaded by procy's own
-- settings loader, and what it sets is checked the way procy checks it
-- when used (routes and providers, sandbox profiles, commands); a
-- command it defines is run. Each complete recipe (a chunk returning a
-- function) runs with `procy run`, against the fake upstream and the real
-- Claude Code where it drives an agent.
local T = require "lib.tap"
local json = require "procy.json"
local config = require "procy.config"
local agents = require "lib.agents"

-- blocks(file) -> {{file, line, text}}: the ```lua blocks, their common
-- indentation removed
local function blocks(file)
  local out, cur = {}, nil
  local n = 0
  for line in (T.read(T.src .. "/" .. file) .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    local indent = line:match("^(%s*)```lua%s*$")
    if indent and not cur then
      cur = { file = file, line = n + 1, indent = #indent, lines = {} }
    elseif cur and line:match("^%s*```%s*$") then
      cur.text = table.concat(cur.lines, "\n") .. "\n"
      out[#out + 1] = cur
      cur = nil
    elseif cur then
      cur.lines[#cur.lines + 1] = line:sub(1, cur.indent):match("^%s*$") and line:sub(cur.indent + 1) or line
    end
  end
  T.ok(cur == nil, file .. ": every ```lua block is closed")
  return out
end

-- the Quick start leaves procy runnable by name: .ci/setup installs what
-- meson installs, and every document's commands call it `procy`
local readme = T.read(T.src .. "/README.md")
local quick = readme:match("## Quick start.-```sh\n(.-)\n```")
T.is(quick, ".ci/setup && procy", "the Quick start's first command runs procy by name")
T.like(T.read(T.src .. "/.ci/setup"), "\nif %[ \"%$%(id %-u%)\" = 0 %]; then\n  meson install %-C build", ".ci/setup installs it as root")
local installed = require("procy.proc").run { "meson", "introspect", T.src .. "/build", "--installed" }
if installed and installed.code == 0 then
  T.like(installed.stdout, '/procy": "/[%w/]+/bin/procy"', "as a program in a bin directory", installed.stdout)
else
  T.skip("where meson installs procy", "meson introspect did not run here")
end
for _, f in ipairs { "README.md", "lua/README.md", "examples/text-search/README.md" } do
  local n = 0
  for line in (T.read(T.src .. "/" .. f) or ""):gmatch("[^\n]+") do
    if line:find("^%s*build/procy") or line:find("[`$] *build/procy ") then n = n + 1 end
  end
  T.is(n, 0, f .. ": its commands call procy by name, not build/procy")
end

local all = {}
for _, f in ipairs { "README.md", "lua/README.md" } do
  for _, b in ipairs(blocks(f)) do all[#all + 1] = b end
end
T.ok(#all >= 10, "the documents hold Lua blocks", tostring(#all))

local dir = T.tmpdir()
local recipes = {}
for i, b in ipairs(all) do
  local where = b.file .. ":" .. b.line
  -- the fields of the table a procy.lua returns, or a chunk
  local env = setmetatable({}, { __index = _G })
  local chunk, ferr = load("return {\n" .. b.text .. "\n}", "=" .. where, "t", env)
  local fragment, err = chunk ~= nil, nil
  if not chunk then
    chunk, err = load(b.text, "=" .. where, "t", env)
    err = err and (err .. "; as procy.lua fields: " .. ferr)
  end
  T.ok(chunk, where .. ": the block loads", err)
  -- what it is: a recipe (returns a function) or a config (a table)
  local kind
  if chunk then
    if fragment or b.text:match("^%-%- procy%.lua") or b.text:match("^%s*return%s*{") then
      kind = "config"
    elseif b.text:match("\nreturn function") or b.text:match("^return function") then
      kind = "recipe"
    end
  end
  T.ok(kind, where .. ": a procy.lua (or its fields) or a recipe", b.text)
  if kind == "config" then
    local file = dir .. "/procy" .. i .. ".lua"
    T.write(file, fragment and ("return {\n" .. b.text .. "\n}\n") or b.text)
    local cfg, cerr = config.load { config = file, cwd = dir }
    T.ok(cfg, where .. ": procy loads it as its settings", cerr)
    if cfg then
      if next(cfg.routes) or next(cfg.providers) then
        local ok, rerr = pcall(require("procy.route").new, { routes = cfg.routes, providers = cfg.providers })
        T.ok(ok, where .. ": its routes and providers are accepted", tostring(rerr))
      end
      for name in pairs(cfg.sandboxes) do
        local p, perr = require("procy.sandbox").profile(name)
        T.ok(p, where .. ": its sandbox profile " .. name .. " is accepted", perr)
      end
      if next(cfg.commands) then
        local ok, reg = pcall(require("procy.commands").registry)
        T.ok(ok, where .. ": its commands are accepted", tostring(reg))
        for name in pairs(ok and cfg.commands or {}) do
          local out = {}
          local ctx = { print = function(...) out[#out + 1] = table.concat({ ... }, "\t") end,
                        status = function(s) out[#out + 1] = s end, show = function(s) out[#out + 1] = s end }
          local rok, rerr = pcall(reg[name].run, ctx, { "doc", line = "doc" })
          T.ok(rok and #out > 0, where .. ": !" .. name .. " runs and says something", tostring(rerr) .. " " .. json.encode(out))
        end
      end
    end
  elseif kind == "recipe" then
    recipes[#recipes + 1] = b
  end
end
config.load { cwd = dir }

-- the recipes, each run as the documents say
local w = agents.world("claude")
if not w then
  T.skip("the recipes that drive Claude Code", "the claude CLI is not installed")
else
  local _ <close> = w.fake.proc
  local _, procy = agents.project(w)
  T.git(w.work, "init", "-q")
  T.write(w.work .. "/Makefile", "test:\n\t@echo all tests pass\n")
  for i, b in ipairs(recipes) do
    local where = b.file .. ":" .. b.line
    local file = w.dir .. "/recipe" .. i .. ".lua"
    T.write(file, b.text)
    local r = procy("run", file, "make the tests pass")
    T.is(r.code, 0, where .. ": the recipe runs to its end (exit 0)")
    if r.code ~= 0 then io.stderr:write(where, ":\n", r.stdout, r.stderr, "\n") end
    T.ok(r.stdout ~= "", where .. ": and prints what it did", r.stderr)
  end
end

return T.done()
