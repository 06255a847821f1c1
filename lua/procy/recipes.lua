-- procy.recipes: where a recipe comes from. `recipes/evolve.lua` names the
-- file in the working directory, else in the project (the directory of
-- its procy.lua), else the copy shipped inside procy. So a project that
-- copies a recipe into its recipes/ directory (`procy recipes copy NAME`)
-- and edits it runs its own copy, with no rebuild.

local core = require "procy.core"
local fs = require "procy.fs"
local hash = require "procy.hash"

local M = {}

local function is_file(path)
  local st = fs.stat(path)
  return st and st.type == "file"
end

-- project_dir() -> the directory of the project's procy.lua, or nil
function M.project_dir()
  local files = require("procy.config").files or {}
  local last = files[#files]
  local user = (os.getenv("XDG_CONFIG_HOME") or "") .. "/procy/procy.lua"
  if last and last ~= user and not last:match("/%.config/procy/procy%.lua$") then
    return last:match("^(.*)/[^/]*$")
  end
end

-- shipped_name("evolve") / ("recipes/evolve.lua") -> "recipes/evolve.lua"
local function shipped_name(name)
  if not name:match("%.lua$") then name = name .. ".lua" end
  if not name:match("^recipes/") then name = "recipes/" .. name end
  return name
end

-- find(name, [dir]) -> {path = FILE | nil, name, text, sha256, shipped = bool},
-- or nil, "ENOENT: ..."
function M.find(name, dir)
  local tries = {}
  if name:sub(1, 1) == "/" then tries[1] = name
  else
    tries[#tries + 1] = (dir or fs.cwd()) .. "/" .. name
    local p = M.project_dir()
    if p then tries[#tries + 1] = p .. "/" .. name end
    if not name:find("/", 1, true) then
      tries[#tries + 1] = (dir or fs.cwd()) .. "/" .. shipped_name(name)
      if p then tries[#tries + 1] = p .. "/" .. shipped_name(name) end
    end
  end
  for _, path in ipairs(tries) do
    if is_file(path) then
      local f = assert(io.open(path, "rb"))
      local text = f:read("a")
      f:close()
      return { path = path, name = name, text = text, sha256 = hash.sha256(text), shipped = false }
    end
  end
  local sname = shipped_name(name:match("^%./(.*)$") or name)
  local text = fs.shipped(sname)
  if text then return { name = sname, text = text, sha256 = hash.sha256(text), shipped = true } end
  return nil, "ENOENT: no recipe " .. name .. " (looked at " .. table.concat(tries, ", ")
    .. " and the recipes shipped with procy: procy recipes)", "ENOENT"
end

-- load(name, [env], [dir]) -> chunk, info | nil, err, code
function M.load(name, env, dir)
  local info, err, code = M.find(name, dir)
  if not info then return nil, err, code end
  local chunk, lerr = load(info.text, "@" .. (info.path or (info.name .. " (shipped)")), "t", env or _ENV)
  if not chunk then return nil, "ESYNTAX: " .. lerr, "ESYNTAX" end
  return chunk, info
end

-- run(name, args, [cmd]) -> what the recipe returns | nil, err, code: the
-- one way a recipe runs (`procy run`, `!run`, `!evolve`, `!eval generate`).
-- Its chunk runs with the arguments as `...`; a function it returns, or the
-- `main` of a table it returns, is then called with (args, cmd): args the
-- arguments (args[0] the recipe), cmd the `!` command's context in a
-- session, nil under `procy run`. A table gets a `recipe` field first
-- ({path, name, sha256, shipped}). With cmd, names resolve from cmd.cwd
-- and the recipe's print is the command's output. The recipe's directory
-- is searched first by require.
function M.run(name, args, cmd)
  local env = cmd and cmd.print and setmetatable({ print = cmd.print }, { __index = _G }) or nil
  local chunk, info, code = M.load(name, env, cmd and cmd.cwd)
  if not chunk then return nil, info, code end
  local dir = info.path and (info.path:match("^(.*)/[^/]*$") or ".")
  if dir and not package.path:find(dir .. "/?.lua;", 1, true) then package.path = dir .. "/?.lua;" .. package.path end
  local rargs = table.move(args or {}, 1, #(args or {}), 1, {})
  rargs[0] = info.path or info.name
  local main = chunk(table.unpack(rargs))
  if type(main) == "table" and type(main.main) == "function" then
    main.recipe = main.recipe or info
    return main.main(rargs, cmd)
  end
  if type(main) == "function" then return main(rargs, cmd) end
  return main
end

-- command(cmd, name, args): a `!` command that runs a recipe; its failure
-- is the command's output, named for the recipe.
function M.command(cmd, name, args)
  local ok, err = M.run(name, args, cmd)
  if not ok and err then cmd.print("!" .. name:match("([%w_]+)%.lua$") .. ": " .. tostring(err)) end
end

-- steps(R, o) -> the steps in force | nil, err: a recipe of named steps
-- (R.steps, R.step_names, R.setting) with each replaced by a function of
-- the same name in o (the project's R.setting setting); a function there
-- by another name is a mistake worth saying.
function M.steps(R, o)
  local out = {}
  for _, name in ipairs(R.step_names) do
    local f = o[name]
    if f ~= nil and type(f) ~= "function" then
      return core.fail("EINVAL", ("%s: the %s step in procy.lua must be a function(ctx, ...), not a %s"):format(R.setting, name, type(f)))
    end
    out[name] = f or R.steps[name]
  end
  for k, v in pairs(o) do
    if type(v) == "function" and not out[k] then
      return core.fail("EINVAL", ("%s: no step named %s (the steps: %s)"):format(R.setting, tostring(k), table.concat(R.step_names, ", ")))
    end
  end
  return out
end

-- flags(args, spec, [who]) -> opts, words | nil, err: the one flag parser
-- of recipes. spec maps a flag's name to "string", "number" or "boolean":
-- `--name VALUE` (`--name` alone for a boolean) goes into opts with its
-- dashes made underscores; other words stay in order in words. An unknown
-- --flag, a missing value or a number that is none is an error naming who.
function M.flags(args, spec, who)
  who = who or "recipe"
  local opts, words = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name = type(a) == "string" and a:match("^%-%-(.+)$")
    if name then
      local kind = spec[name]
      if not kind then return core.fail("EINVAL", ("%s: unknown argument '%s'"):format(who, a)) end
      local key = name:gsub("%-", "_")
      if kind == "boolean" then
        opts[key] = true
      else
        local v = args[i + 1]
        if v == nil then return core.fail("EINVAL", ("%s: %s needs a value"):format(who, a)) end
        if kind == "number" then
          v = tonumber(v)
          if not v then return core.fail("EINVAL", ("%s: %s needs a number"):format(who, a)) end
        end
        opts[key] = v
        i = i + 1
      end
    else
      words[#words + 1] = a
    end
    i = i + 1
  end
  return opts, words
end

-- list() -> {{name, shipped = true, path = project copy or nil}, ...}
function M.list(dir)
  local out = {}
  for _, name in ipairs(fs.shipped()) do
    if name:match("^recipes/.*%.lua$") then
      local info = M.find(name, dir)
      out[#out + 1] = { name = name, path = info and info.path }
    end
  end
  return out
end

return M
