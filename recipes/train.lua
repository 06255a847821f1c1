-- recipes/train.lua — a training job for the proxy model, on the trainer.
--
--   procy train start [--method sft|dpo|kto] [--export DIR] [--base-model NAME] [-- TRAINER ARGS]
--
-- The trainer is the `trainer` setting: {host = "gpu1"} runs over ssh
-- (argv only; a host that looks like an option is refused), no host runs
-- here; workdir (default procy-train, under the host's home) holds a
-- directory per job; image runs the trainer in `docker run` (docker_args
-- added); command replaces the default argv
--   python3 train_lora.py --data {data} --method {method} --base-model {base_model} --output {output}
-- ({...} words filled in, nothing run by a shell). The job is detached: it
-- outlives procy, and `procy train status|log|stop JOB` find it by id.
-- Steps (a project replaces one in procy.lua: train = { stage = ... }):
--   export(ctx, job)  the dataset: --export DIR, or a fresh export (recipes/train_export.lua)
--   stage(ctx, job)   the dataset and train_lora.py into the job's directory on the host
--   check(ctx, job)   the trainer's own check, run there as the job will run (train_lora.py --check:
--                     the data, and that torch, transformers, datasets, peft and trl import); a
--                     missing library stops it here, named (trainer.check = ARGV gives a `command`
--                     its check; false skips it)
--   launch(ctx, job)  the trainer started there; its pid

local core = require "procy.core"
local fs = require "procy.fs"
local proc = require "procy.proc"
local store = require "procy.store"
local train = require "procy.train"

local R = {}
local steps = {}
R.steps = steps
R.setting = "train"
R.step_names = { "export", "stage", "check", "launch" }

local files = { sft = "trl-sft.train.jsonl", dpo = "trl-dpo.train.jsonl", kto = "trl-kto.train.jsonl" }

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function steps.export(ctx, job)
  if ctx.o.export then
    job.export_dir = ctx.o.export
  else
    job.export_dir = require("procy.config").data_dir() .. "/exports/train-" .. job.id
    local ok, err, code = require("procy.recipes").run("recipes/train_export.lua",
      { "--format", "trl-" .. job.method, "-o", job.export_dir }, ctx.cmd)
    if not ok then return core.wrap("the export failed", err, code) end
  end
  job.data = read(job.export_dir .. "/" .. files[job.method])
  if not job.data then
    return core.fail("ENOENT", ("%s/%s: no %s dataset there"):format(job.export_dir, files[job.method], job.method))
  end
  return true
end

function steps.stage(ctx, job)
  for _, f in ipairs { { "data.jsonl", job.data }, { "train_lora.py", assert(fs.shipped("examples/training/train_lora.py")) },
                       { "dataset.json", read(job.export_dir .. "/dataset.json") or "{}" } } do
    local ok, err, code = train.run(job.host, train.PUT, { job.dir, f[1] }, { stdin = f[2] })
    if not ok then return core.wrap("staging " .. f[1], err, code) end
  end
  return true
end

function steps.check(ctx, job)
  if not job.check then return true end
  local r, err, code = proc.run(train.argv(job.host, train.CHECK, { job.dir, table.unpack(job.check) }), { timeout = 300 })
  if not r then return core.wrap("the trainer's check did not run", err, code) end
  if r.code == 0 then return true end
  if job.host and r.code == 255 then
    return core.fail("EHOST", ("ssh to %s failed: %s"):format(job.host, (r.stderr:gsub("%s+$", ""))))
  end
  local cause
  for line in (r.stderr .. "\n" .. r.stdout):gmatch("[^\n]+") do
    if line:match("%S") and not line:match("^{") then cause = line end
  end
  return core.fail("ETRAINER", ("the trainer cannot run %s: %s (checked with: %s)"):format(
    job.host and ("on " .. job.host) or "here", cause or ("it exited with " .. r.code), table.concat(job.check, " ")))
end

function steps.launch(ctx, job)
  local r, err, code = train.run(job.host, train.LAUNCH, { job.dir, table.unpack(job.argv) })
  if not r then return core.wrap("the trainer did not start", err, code) end
  job.pid = math.tointeger(tonumber(r.stdout:match("(%d+)")))
  if not job.pid then return core.fail("EFAIL", "the trainer's host did not say its pid: " .. r.stdout) end
  return true
end

-- argv(t, method) -> what runs in the job's directory
function R.argv(t, method, extra)
  local fill = { data = "data.jsonl", method = method, output = "adapter",
                 base_model = t.base_model or "Qwen/Qwen2.5-1.5B-Instruct" }
  local argv = {}
  if t.command then
    for i, w in ipairs(t.command) do argv[i] = (tostring(w):gsub("{([%w_]+)}", function(k) return fill[k] end)) end
  else
    argv = { t.python or "python3", "train_lora.py", "--data", fill.data, "--method", method,
             "--base-model", fill.base_model, "--output", fill.output }
  end
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  if t.image then
    -- the job's directory mounted: its absolute path is the host's to say
    -- (a fixed script, the words its arguments)
    local d = { "sh", "-c", 'exec docker run --rm --gpus all -v "$PWD:/job" -w /job "$@"', "docker" }
    for _, a in ipairs(t.docker_args or {}) do d[#d + 1] = a end
    d[#d + 1] = t.image
    for _, a in ipairs(argv) do d[#d + 1] = a end
    argv = d
  end
  return argv
end

function R.main(args, cmd)
  local recipes = require "procy.recipes"
  local extra = {}
  for i, a in ipairs(args) do
    if a == "--" then
      extra = table.move(args, i + 1, #args, 1, {})
      args = table.move(args, 1, i - 1, 1, {})
      break
    end
  end
  local o, words = recipes.flags(args, { method = "string", export = "string", ["base-model"] = "string" }, "train start")
  if not o then return nil, words, "EINVAL" end
  if #words > 0 then return core.fail("EINVAL", "train start: unexpected '" .. words[1] .. "'") end
  local method = o.method or "sft"
  if not files[method] then return core.fail("EINVAL", "--method is sft, dpo or kto, not " .. method) end
  local st, serr = recipes.steps(R, require("procy.config").get().train or {})
  if not st then return core.wrap("train", serr, "EINVAL") end
  local t = require("procy.config").get().trainer or {}
  if t.host ~= nil then
    local ok, err, code = train.host_ok(t.host)
    if not ok then return nil, err, code end
  end
  if o.base_model then t.base_model = o.base_model end
  local job = { method = method, host = t.host, argv = R.argv(t, method, extra), id = store.random_hex(5) }
  -- the check runs the trainer's argv with --check (train_lora.py's), or trainer.check
  if type(t.check) == "table" then
    job.check = R.argv({ command = t.check, image = t.image, docker_args = t.docker_args, base_model = t.base_model }, method)
  elseif t.check ~= false then
    for _, w in ipairs(job.argv) do
      if tostring(w):match("train_lora%.py$") then job.check = R.argv(t, method, { "--check" }) end
    end
  end
  -- over ssh a relative workdir is under the host's home; here, in procy's data directory
  local workdir = t.workdir or (t.host and "procy-train" or require("procy.config").data_dir() .. "/train")
  if not t.host and workdir:sub(1, 1) ~= "/" then workdir = fs.cwd() .. "/" .. workdir end
  job.dir = workdir .. "/" .. job.id
  local ctx = { o = o, cmd = cmd, trainer = t, steps = st, default = steps }
  local say = cmd and cmd.print or print
  local made = false
  for _, name in ipairs(R.step_names) do
    local ok, err, code = st[name](ctx, job)
    if not ok then
      err = err or (name .. " failed")
      -- a job already in the record says why it never ran (procy train status)
      if made then train.update(job.id, { state = "failed", error = tostring(err):gsub("^E[%u_]+: ", ""), ended_at = store.now_us() }) end
      return nil, err, code
    end
    if name == "stage" then
      made = true
      job.id = train.new { id = job.id, host = job.host, dir = job.dir, argv = job.argv, method = method,
                           export_dir = job.export_dir }
    end
  end
  train.update(job.id, { state = "running", pid = job.pid, started_at = store.now_us() })
  local ok, werr = train.start_watcher(assert(train.job(job.id)))
  if not ok then say("the job runs, but its watcher did not start (procy train status starts one): " .. tostring(werr)) end
  say(("training job %s started%s, in %s (pid %d): procy train status %s"):format(job.id,
    job.host and (" on " .. job.host) or "", job.dir, job.pid, job.id))
  return true
end

return R
