-- procy.strict: reading an undefined global, or creating one from inside a
-- function, is an error. A main chunk (a recipe's top level, a config file)
-- may still define globals by assigning them. Use rawget(_G, name) to test
-- for an optional global.

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

return true
