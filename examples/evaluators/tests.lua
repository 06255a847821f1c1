-- examples/evaluators/tests.lua — a Lua evaluator recipe: run the project's
-- tests and score the try by how many pass. Copy it to your project's
-- recipes/evaluators/, then `!eval set recipes/evaluators/tests.lua` (or
-- evaluator = "recipes/evaluators/tests.lua" in procy.lua) with
--   objective = { maximize = "pass_rate", subject_to = { failed = "<= 0" } }
--
-- It runs TEST_CMD (words, no shell; default "make check") in the project
-- (a recipe calling evaluator.run may pass ctx.test_cmd instead)
-- and reads TAP lines ("ok N", "not ok N") or a summary line ("12 passed,
-- 1 failed", as pytest, meson and procy's CI print). A Lua evaluator gets
-- ctx: cwd, session, run, try, iteration, files_changed, env, print.
local proc = require "procy.proc"

return function(ctx)
  local argv = {}
  for w in (ctx.test_cmd or os.getenv("TEST_CMD") or "make check"):gmatch("%S+") do argv[#argv + 1] = w end
  local r, err = proc.run(argv, { cwd = ctx.cwd, env = ctx.env, timeout = 900, stderr = "stdout" })
  if not r then return nil, "cannot run " .. argv[1] .. ": " .. err end
  local passed, failed = 0, 0
  for line in r.stdout:gmatch("[^\n]+") do
    if line:match("^ok%s") then passed = passed + 1
    elseif line:match("^not ok%s") then failed = failed + 1 end
  end
  local p, f = r.stdout:match("(%d+) passed.-(%d+) failed")
  if passed + failed == 0 and p then passed, failed = tonumber(p), tonumber(f) end
  if passed + failed == 0 then
    ctx.print(r.stdout:sub(-2000)) -- feedback for the next prompt
    return nil, "no test results in the output of " .. table.concat(argv, " ")
  end
  ctx.print(("%d passed, %d failed, exit %d"):format(passed, failed, r.code))
  return { passed = passed, failed = failed, pass_rate = passed / (passed + failed), seconds = r.user_s + r.sys_s }
end
