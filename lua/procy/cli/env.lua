-- procy.cli.env: the Lua environment recipes, commands and config files run in.
--
-- Globals are strict: reading an undefined global, or creating one from
-- inside a function, is an error; a main chunk (a recipe's top level, a
-- config file) may still define globals. Use rawget(_G, name) to test for
-- an optional global.
--
-- Three standard calls would undo the runtime's promises, so they change:
-- os.exit ends procy through core.exit (every task cancelled, every
-- <close> run); os.execute and io.popen, which block every task and run a
-- shell string, raise and point at procy.proc.

local core = require "procy.core"
local getinfo = debug.getinfo

local mt = getmetatable(_G) or {}
setmetatable(_G, mt)

mt.__newindex = function(t, name, value)
  local what = getinfo(2, "S").what
  if what ~= "main" and what ~= "C" then
    error("assignment to undeclared global '" .. tostring(name) .. "'", 2)
  end
  rawset(t, name, value)
end

mt.__index = function(_, name)
  error("undefined global '" .. tostring(name) .. "'", 2)
end

os.exit = function(code) return core.exit(code) end

local function blocking(name)
  return function()
    error(name .. " would block every task and runs a shell string; "
      .. "use procy.proc.run{argv...} (or proc.spawn to stream)", 2)
  end
end
os.execute = blocking("os.execute")
io.popen = blocking("io.popen")

return true
