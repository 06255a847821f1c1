-- startup.lua RUNS — see tests/bench/startup. Each run is a fork+exec+wait
-- through proc.run; /bin/true measures that cost, so the table shows both
-- the raw medians and the medians with it taken away.
local core = require "procy.core"
local proc = require "procy.proc"

package.path = "tests/lua/?.lua;" .. package.path -- run from the top directory
local measure = require "lib.measure"
local median = measure.median

return function(args)
  local runs = tonumber(args[1]) or 300
  local empty = os.tmpname()
  io.open(empty, "w"):close()
  local cases = {
    { name = "true (spawn cost)", argv = { "true" } },
    { name = "lua5.4 -e ''", argv = { "lua5.4", "-e", "" } },
    { name = "procy run empty.lua", argv = { core.exe, "run", empty } },
  }
  local times = {}
  for _, c in ipairs(cases) do
    times[c.name] = {}
    assert(proc.run(c.argv)) -- warm the page cache
  end
  for _ = 1, runs do
    for _, c in ipairs(cases) do -- interleaved, so drift hits every case alike
      local t0 = core.now()
      local r = assert(proc.run(c.argv, { stdout = false, stderr = false }))
      assert(r.code == 0, c.name .. " failed")
      table.insert(times[c.name], core.now() - t0)
    end
  end
  os.remove(empty)
  local m = {}
  for _, c in ipairs(cases) do m[c.name] = median(times[c.name]) * 1000 end
  local spawn = m["true (spawn cost)"]
  print(("%d runs each, median ms (raw / minus spawn cost)"):format(runs))
  for _, c in ipairs(cases) do
    print(("  %-22s %7.3f / %7.3f"):format(c.name, m[c.name], m[c.name] - spawn))
  end
  local lua, procy = m["lua5.4 -e ''"], m["procy run empty.lua"]
  print(("procy / lua5.4: %.2fx raw, %.2fx minus spawn cost (target: within 2x, under 10 ms)"):format(
    procy / lua, (procy - spawn) / (lua - spawn)))
  return 0
end
