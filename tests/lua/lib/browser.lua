-- browser.lua: the tests' real browser. Debian's chromium, driven by npm's
-- playwright-core from a script in tests/node that prints one JSON line
-- per check ({ok, name, diag}) and "WAIT what" when the Lua test must do
-- something (its answer: a line on the script's stdin).
local T = require "lib.tap"
local fs = require "procy.fs"
local json = require "procy.json"
local proc = require "procy.proc"

local M = {}

M.chromium = os.getenv("CHROMIUM") or "/usr/bin/chromium"

-- missing() -> why the browser checks cannot run here, or nil
function M.missing()
  if not fs.stat(M.chromium) or not fs.stat(T.src .. "/tests/node/node_modules/playwright-core") then
    return "chromium or playwright-core is not installed (.ci/setup installs them)"
  end
end

-- run(script, args, waits) -> checks made, the script's exit: runs
-- tests/node/SCRIPT with args, each check a TAP check ("browser: NAME");
-- waits[what](p) answers a WAIT (p:write the line)
function M.run(script, args, waits)
  local argv = { "node", T.src .. "/tests/node/" .. script }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local p = assert(proc.spawn(argv, { stdin = true, stderr = "stdout", env = { CHROMIUM = M.chromium } }))
  local checks = 0
  for line in p:lines() do
    local what = line:match("^WAIT (%S+)")
    local c = not what and line:sub(1, 1) == "{" and json.decode(line)
    if what then
      local fn = waits[what]
      if fn then fn(p) else p:write("\n") end
    elseif c then
      checks = checks + 1
      T.ok(c.ok, "browser: " .. c.name, c.diag)
    else
      io.stderr:write(script, ": ", line, "\n")
    end
  end
  return checks, p:wait()
end

return M
