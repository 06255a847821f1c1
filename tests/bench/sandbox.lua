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
  local json = require "procy.json"
  local found = proc.run { "sh", "-c", "command -v claude" }
  local cli = found and found.code == 0 and found.stdout:gsub("%s+$", "") or nil
  local fake_p = assert(proc.spawn({ "node", "tests/fake/upstream.mjs", "--log-dir", dir .. "/fake" }, { stderr = false }))
  local _f <close> = fake_p
  local fake = { url = "http://127.0.0.1:" .. assert((fake_p:lines()() or ""):match("^PORT (%d+)"), "the fake API did not start") }
  local id = assert(store.new_session { argv = { "bench" }, cwd = dir .. "/work", mode = "headless" })
  local s = assert(serve.start { port = 0, session = id, upstream = fake.url, lazy = false })
  local key = store.random_hex(16)
  s.srv:key(key, id)
  -- a home where Claude Code starts at once, offline (as tests/lua/lib/agents.lua makes)
  local home = dir .. "/home"
  fs.mkdir(home)
  local hf = assert(io.open(home .. "/.claude.json", "w"))
  hf:write(json.encode { hasCompletedOnboarding = true,
    customApiKeyResponses = { approved = json.array { "sk-test-fake" }, rejected = json.array() },
    projects = { [dir .. "/work"] = { hasTrustDialogAccepted = true } } })
  hf:close()
  local env = { HOME = home, XDG_STATE_HOME = dir .. "/state", XDG_CONFIG_HOME = dir .. "/config",
    ANTHROPIC_BASE_URL = s.url .. "/s/" .. key, ANTHROPIC_API_KEY = "sk-test-fake", DISABLE_TELEMETRY = "1",
    DISABLE_ERROR_REPORTING = "1", DISABLE_AUTOUPDATER = "1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1",
    IS_SANDBOX = "1" }
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
