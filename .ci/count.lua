-- count.lua [--failing] LOG... — TAP results from meson's testlog.json
-- files (and plain .tap files): prints "passed failed skipped"; with
-- --failing, the name of each test program that failed instead, a line
-- each. A test program that failed without a failing TAP
-- line (a crash, a timeout, a bad plan) counts as one failure; a skipped
-- check or program is not a pass.
local json = require "procy.json"

return function(args)
  local passed, failed, skipped = 0, 0, 0
  local failing = args[1] == "--failing" and {}
  if failing then table.remove(args, 1) end
  for _, path in ipairs(args) do
    local f = io.open(path)
    if not f then
      failed = failed + 1
    elseif path:match("%.tap$") then -- plain TAP (the fuzzers')
      for l in f:lines() do
        if l:match("^ok %d") then passed = passed + 1
        elseif l:match("^not ok %d") then failed = failed + 1 end
      end
      f:close()
    else
      for line in f:lines() do
        local t = assert(json.decode(line))
        local out = type(t.stdout) == "string" and t.stdout or ""
        local ok, bad, skip = 0, 0, 0
        for l in (out .. "\n"):gmatch("(.-)\n") do
          if l:match("^ok %d.*# SKIP") then skip = skip + 1
          elseif l:match("^ok %d") then ok = ok + 1
          elseif l:match("^not ok %d") then bad = bad + 1
          elseif l:match("^1%.%.0 # SKIP") then skip = skip + 1 end
        end
        if t.result ~= "OK" and t.result ~= "SKIP" and bad == 0 then bad = 1 end
        if failing and bad > 0 then failing[#failing + 1] = tostring(t.name) end
        passed, failed, skipped = passed + ok, failed + bad, skipped + skip
      end
      f:close()
    end
  end
  if failing then
    for _, name in ipairs(failing) do print(name) end
    return
  end
  print(passed .. " " .. failed .. " " .. skipped)
end
