-- procy.core as recipes see it: concurrency, cancel, errors, signals,
-- strict globals, the run limit.
local T = require "lib.tap"
local core = require "procy.core"
local proc = require "procy.proc"

-- two tasks that each sleep 0.3 s finish together
do
  local t0 = core.now()
  local a = core.spawn(function() core.sleep(0.3) return "a" end)
  local b = core.spawn(function() core.sleep(0.3) return "b" end)
  local ra, rb = core.await(a), core.await(b)
  local took = core.now() - t0
  T.is(ra .. rb, "ab", "both tasks return their results")
  T.ok(took >= 0.3 and took < 0.55, "two 0.3 s sleeps finish together", "took " .. took)
end

-- a cancelled task runs its <close>
do
  local log = {}
  local t = core.spawn(function()
    local guard <close> = setmetatable({}, { __close = function(_, err) log[#log + 1] = "closed:" .. tostring(err) end })
    core.sleep(30)
    log[#log + 1] = "not reached"
  end)
  core.sleep(0.01)
  T.is(t:status(), "waiting", "the task waits in sleep")
  T.ok(core.cancel(t), "cancel says the task was live")
  T.is(table.concat(log, ","), "closed:nil", "its <close> ran, once, and nothing after the await")
  local r, err, code = core.await(t)
  T.is(code, "ECANCELED", "awaiting it gives ECANCELED")
end

-- a failing task ends alone, with its error available to whoever waits
do
  local t = core.spawn(function() local x = nil return x.field end)
  local r, err = core.await(t)
  T.like(err, "^ETASK: .-core_test.lua:%d+: attempt to index a nil value", "await gives the error with its place")
  T.is(core.await(core.spawn(function() return "still fine" end)), "still fine", "other tasks go on")
end

-- strict globals
do
  local ok, err = pcall(function() return no_such_global end)
  T.like(err, "undefined global 'no_such_global'", "reading an undefined global raises")
  ok, err = pcall(function() new_global_in_function = 1 end)
  T.like(err, "assignment to undeclared global 'new_global_in_function'", "creating a global in a function raises")
end

-- os.exit goes through core.exit: every task's <close> runs first
do
  local dir = T.tmpdir()
  local recipe = T.write(dir .. "/exit.lua", [[
    local core = require "procy.core"
    local marker = ...
    core.spawn(function()
      local guard <close> = setmetatable({}, { __close = function()
        local f = io.open(marker, "w") f:write("closed") f:close()
      end })
      core.sleep(30)
    end)
    core.sleep(0.05)
    os.exit(3)
    error("not reached")
  ]])
  local r = T.procy({ "run", recipe, dir .. "/closed" }, { timeout = 10 })
  T.is(r.code, 3, "os.exit(3) exits 3")
  T.is(T.read(dir .. "/closed"), "closed", "after the other task's <close> ran")
  T.is(r.stderr, "", "quietly")
  local ok, err = pcall(os.execute, "true")
  T.like(err, "os.execute would block every task.*procy.proc", "os.execute points at procy.proc")
  ok, err = pcall(io.popen, "ls")
  T.like(err, "io.popen would block every task", "so does io.popen")
end

-- SIGTERM to `procy run`: tasks are cancelled, their <close> runs, exit 143
do
  local dir = T.tmpdir()
  local recipe = T.write(dir .. "/wait.lua", [[
    local core = require "procy.core"
    local marker = ...
    local guard <close> = setmetatable({}, { __close = function()
      local f = io.open(marker, "w") f:write("closed") f:close()
    end })
    print("ready") io.stdout:flush()
    core.sleep(30)
  ]])
  local p = assert(proc.spawn({ T.bin, "run", recipe, dir .. "/closed" }))
  local line = p:lines()()
  T.is(line, "ready", "the recipe is running")
  p:kill("TERM")
  local r = p:wait(10)
  T.is(r.code, 143, "procy exits 128+SIGTERM")
  T.is(T.read(dir .. "/closed"), "closed", "the recipe's <close> ran on SIGTERM")
end

-- a deadlock is reported instead of hanging forever
do
  local dir = T.tmpdir()
  local recipe = T.write(dir .. "/dead.lua", [[
    local core = require "procy.core"
    local a, b
    a = core.spawn(function() core.sleep(0) return core.await(b) end)
    b = core.spawn(function() core.sleep(0) return core.await(a) end)
    core.await(a)
  ]])
  local r = T.procy({ "run", recipe }, { timeout = 20 })
  T.is(r.code, 1, "a deadlocked recipe exits 1")
  T.like(r.stderr, "deadlock: %d+ task%(s%) wait and nothing can wake them", "and says why")
end

-- the run-limit hook, set from the project's procy.lua
do
  local dir = T.tmpdir()
  T.write(dir .. "/procy.lua", "return { task_run_limit = 0.2 }\n")
  local recipe = T.write(dir .. "/spin.lua", "local n = 0 while true do n = n + 1 end\n")
  local r = T.procy({ "run", recipe }, { cwd = dir, timeout = 20 })
  T.is(r.code, 1, "a recipe that never yields fails")
  T.like(r.stderr, "ran for more than 0.2 s without yielding", "with a clear message naming the limit")
end

-- a task that computes for a long time is paused now and then: the
-- others (and the loop) run meanwhile
do
  local order = {}
  local spin = core.spawn(function()
    local t = core.now()
    while core.now() - t < 0.5 do end
    order[#order + 1] = "spin"
  end)
  local nap = core.spawn(function()
    core.sleep(0.05)
    order[#order + 1] = "nap"
  end)
  core.await(spin)
  core.await(nap)
  T.is(table.concat(order, " "), "nap spin", "a busy task does not keep another from waking")
end

-- signals reach a busy recipe, with no run limit
do
  local dir = T.tmpdir()
  T.write(dir .. "/procy.lua", "return { task_run_limit = 0 }\n")
  local spin = T.write(dir .. "/spin.lua", "local n = 0 while true do n = n + 1 end\n")
  local sort = T.write(dir .. "/sort.lua", [[
    table.sort({ 3, 2, 1 }, function(a, b) while true do end end) -- cannot be paused: a C call
  ]])
  for _, recipe in ipairs { spin, sort } do
    local p = assert(require("procy.proc").spawn({ T.bin, "run", recipe }, { cwd = dir, stderr = "pipe" }))
    core.sleep(0.3)
    p:kill("TERM")
    local r = p:wait(20)
    T.is(r and r.code, 143, "SIGTERM ends a busy recipe" .. (recipe == sort and " inside a C call" or ""))
  end
end

-- one way to fail, and to pass a failure up with context, its code kept
do
  local core = require "procy.core"
  T.is(table.concat({ select(2, core.fail("ENOENT", "no such thing")) }, "|"), "ENOENT: no such thing|ENOENT",
    "core.fail: nil, \"CODE: msg\", code")
  local v, err, code = core.wrap("cannot open the record", "SQLITE_CANTOPEN: x.db: unable to open")
  T.ok(v == nil and err == "SQLITE_CANTOPEN: cannot open the record: x.db: unable to open" and code == "SQLITE_CANTOPEN",
    "core.wrap: the context in front, the error's own code kept", err)
  T.is(select(3, core.wrap("starting", "EPIPE: gone", "EAGENT")), "EAGENT", "a code given wins")
  T.is(table.concat({ select(2, core.wrap("reading", "plain words")) }, "|"), "EFAIL: reading: plain words|EFAIL",
    "an error without a code gets EFAIL")
end

return T.done()
