-- measure.lua: what the benchmarks and the resource tests share.
local M = {}

function M.median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

-- peak_kb(pid, so_far) -> the larger of so_far and pid's peak resident
-- memory (VmHWM). Sampled while the process runs: the rusage of a spawned
-- child also counts its parent's size at the spawn.
function M.peak_kb(pid, so_far)
  local f = io.open("/proc/" .. pid .. "/status")
  local text = f and f:read("a") -- nil if it has just gone
  local kb = text and tonumber(text:match("VmHWM:%s*(%d+)"))
  if f then f:close() end
  return math.max(so_far or 0, kb or 0)
end

return M
