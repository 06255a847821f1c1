-- turns.lua TURNS — see tests/bench/turns.
local core = require "procy.core"
local json = require "procy.json"
local proc = require "procy.proc"
local fs = require "procy.fs"
local config = require "procy.config"

package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local measure = require "lib.measure"
local agents = require "lib.agents"

local dir = assert(proc.run { "mktemp", "-d", "/tmp/procy-bench-XXXXXX" }).stdout:gsub("%s+$", "")
local work = dir .. "/work"
fs.mkdir(work)

local function percentile(t, p)
  table.sort(t)
  return t[math.max(1, math.ceil(#t * p))]
end

return function(args)
  local n = tonumber(args[1]) or 20
  if not agents.find("claude") then
    print("the claude CLI is not installed (.ci/setup installs it)")
    return 1
  end
  local p = assert(proc.spawn({ "node", "tests/fake/upstream.mjs", "--log-dir", dir .. "/fake", "--delay", "0" },
    { stderr = false }))
  local _ <close> = p
  local port = assert((p:lines()() or ""):match("^PORT (%d+)"))
  local fake = "http://127.0.0.1:" .. port
  local env = agents.env(dir, agents.home(dir, work), fake)
  env.ANTHROPIC_BASE_URL = false
  local f = assert(io.open(dir .. "/procy.lua", "w"))
  f:write(("return { db = %q, upstream = %q }"):format(dir .. "/rec.db", fake))
  f:close()
  assert(config.load { config = dir .. "/procy.lua" })
  local agent = require "procy.agent"

  -- the fake's stop stamp of the last response before now
  local function last_stop()
    local last
    for line in io.lines(dir .. "/fake/requests.jsonl") do
      local e = json.decode(line)
      if e.stop_ns then last = e end
    end
    return last and tonumber(last.stop_ns) / 1e9
  end

  print(("procy %s, Claude Code, %d turns per mode (half plain, half with a Bash round trip)"):format(core.version, n))
  for _, mode in ipairs { "headless", "pty" } do
    local a = assert(agent.open { profile = "claude", mode = mode, cwd = work, env = env, mirror = false,
      args = { "--allowedTools", "Bash" } })
    local lat = {}
    for i = 1, n do
      local prompt = i % 2 == 0 and ("TOOL:bash[echo turn %d]"):format(i) or ("say %d"):format(i)
      local seq = assert(a:send(prompt))
      local turn = assert(a:wait_turn { seq = seq, timeout = 120 })
      local back = core.now()
      assert(turn.status == "done", "turn " .. i .. ": " .. turn.status .. " " .. tostring(turn.error))
      local stop
      for _ = 1, 100 do
        stop = last_stop()
        if stop and stop <= back then break end
        core.sleep(0.01)
      end
      lat[#lat + 1] = back - stop
    end
    a:close()
    print(("%-8s turn end: median %.1f ms, p90 %.1f ms, max %.1f ms (target: %s)"):format(mode,
      measure.median(lat) * 1e3, percentile(lat, 0.9) * 1e3, percentile(lat, 1) * 1e3,
      mode == "pty" and "<= 300 ms" or "<= 20 ms"))
  end
  proc.run { "rm", "-rf", dir }
  return 0
end
