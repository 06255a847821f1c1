-- tour.lua — a first look at procy's runtime: tasks that wait at the same
-- time, a child process, JSON, and procy's record.
--
--   procy run examples/tour.lua

local core = require "procy.core"
local proc = require "procy.proc"
local json = require "procy.json"
local store = require "procy.store"

return function(args)
  -- Three tasks wait at once: the whole takes one wait, not three.
  local t0 = core.now()
  local tasks = {}
  for i = 1, 3 do
    tasks[i] = core.spawn(function() core.sleep(0.2) return i * i end)
  end
  local squares = {}
  for i, t in ipairs(tasks) do squares[i] = core.await(t) end
  print(("three tasks slept 0.2 s each; together they took %.2f s"):format(core.now() - t0))

  -- A child process, from an argv (never a shell string), with a timeout.
  local r, err = proc.run({ "uname", "-srm" }, { timeout = 5 })
  if not r then return nil, err end
  print("this machine: " .. r.stdout:gsub("%s+$", ""))

  -- procy's record: created on first use, schema applied.
  local counts, cerr = store.counts()
  if not counts then return nil, cerr end
  print("the record: " .. store.path())
  print(json.encode({ squares = squares, rows = counts, args = json.array { table.unpack(args) } }, { indent = true, sort = true }))
  return 0
end
