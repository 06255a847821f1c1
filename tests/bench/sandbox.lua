-- sandbox.lua RUNS — see tests/bench/sandbox. Two agents, each started
-- bare and sandboxed in turn (the order alternating), RUNS pairs:
--   true             the sandbox's own cost: bwrap's namespaces and
--                    mounts, procy's box, the relay (wrap and finish
--                    included: the guarded paths, the procy.lua sweep)
--   claude -p        the real Claude Code, headless, to its answer from
--                    the fake upstream through procy's server (through
--                    the relay when sandboxed)
-- Prints the medians and the ratio sandboxed / bare.
local core = require "procy.core"
local fs = require "procy.fs"
local proc = require "procy.proc"
local config = require "procy.config"

package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local measure = require "lib.measure"

return function(args)
  local runs = tonumber(args[1]) or 10
  local bwrap = os.getenv("PROCY_TEST_BWRAP") or "/usr/local/lib/procy-test/bubblewrap/usr/bin/bwrap"
  if not fs.stat(bwrap) then bwrap = "bwrap" end
  local dir = os.tmpname()
  os.remove(dir)
  fs.mkdir(dir .. "/work")
  local conf = dir .. "/procy.lua"
  local f = assert(io.open(conf, "w"))
  f:write(("return { db = %q, bwrap = %q }"):format(dir .. "/data/rec.db", bwrap))
  f:close()
  assert(config.load { config = conf })
  local store, serve, sandbox = require "procy.store", require "procy.serve", require "procy.sandbox"
  assert(sandbox.check(true))
  local agents = require "lib.agents"
  local cli = agents.find("claude")
  local fake = require("lib.fake").start(dir .. "/fake")
  local _f <close> = fake.proc
  local id = assert(store.new_session { argv = { "bench" }, cwd = dir .. "/work", mode = "headless" })
  local s = assert(serve.start { port = 0, session = id, upstream = fake.url, lazy = false })
  local key = store.random_hex(16)
  s.srv:key(key, id)
  local home = agents.home(dir, dir .. "/work")
  local env = agents.env(dir, home, s.url .. "/s/" .. key)
  local cases = { { name = "true", argv = { "true" } } }
  if cli then
    cases[#cases + 1] = { name = "claude -p", argv = { cli, "-p", "--dangerously-skip-permissions", "hello" } }
  end
  local times = {}
  local function once(c, boxed)
    local argv, box = c.argv, nil
    local t0 = core.now()
    if boxed then argv, box = assert(sandbox.wrap(c.argv, { cwd = dir .. "/work", port = s.port })) end
    local r = assert(proc.run(argv, { env = env, cwd = dir .. "/work", timeout = 120, stdin = "" }))
    if box then box:finish() end
    local dt = core.now() - t0
    assert(r.code == 0, c.name .. (boxed and " (sandboxed)" or "") .. " failed: " .. r.stdout .. r.stderr)
    local key_ = c.name .. (boxed and " sandboxed" or " bare")
    times[key_] = times[key_] or {}
    table.insert(times[key_], dt)
  end
  for _, c in ipairs(cases) do once(c, false) once(c, true) end -- warm the caches
  for k in pairs(times) do times[k] = {} end
  for i = 1, runs do
    for _, c in ipairs(cases) do
      if i % 2 == 1 then once(c, false) once(c, true) else once(c, true) once(c, false) end
    end
  end
  print(("%d paired runs, median ms"):format(runs))
  for _, c in ipairs(cases) do
    local bare, boxed = measure.median(times[c.name .. " bare"]) * 1000, measure.median(times[c.name .. " sandboxed"]) * 1000
    print(("  %-10s bare %8.1f   sandboxed %8.1f   +%.1f ms   %.2fx"):format(c.name, bare, boxed, boxed - bare, boxed / bare))
  end
  if not cli then print("  (Claude Code is not installed: only the sandbox's own cost)") end
  serve.stop(s)
  proc.run { "rm", "-rf", dir }
  return 0
end
