-- recipes/deploy.lua — a trained adapter served by the proxy model's vLLM.
--
--   procy train deploy [JOB] [--adapter PATH] [--name NAME] [--url URL]
--
-- Loads the adapter with vLLM's runtime LoRA API: POST /v1/unload_lora_adapter
-- (a name is replaced by unloading it first: loading over a loaded name is
-- unreliable), then POST /v1/load_lora_adapter {lora_name, lora_path}, then
-- checks that GET /v1/models lists it. A server that refuses runtime
-- updates (VLLM_ALLOW_RUNTIME_LORA_UPDATING unset) gets the line to restart
-- it with instead. JOB (default: the newest job that is done) gives the
-- path, JOB's directory/adapter as the trainer's host sees it; --adapter
-- gives another (as the server sees it). NAME defaults to procy-JOB, URL
-- to the model setting's. The adapter's files are hashed where they are,
-- and name, path and hash kept in the record (adapters): with
-- model = { adapter = NAME } in procy.lua, every proxy-model call asks
-- for the adapter, and every try records its name and hash.
-- Steps (train_deploy = { load = ... } in procy.lua): unload, load, check.

local core = require "procy.core"
local http = require "procy.http"
local json = require "procy.json"
local store = require "procy.store"
local train = require "procy.train"

local R = {}
local steps = {}
R.steps = steps
R.setting = "train_deploy"
R.step_names = { "unload", "load", "check" }

-- HASH DIR: a digest of every file under DIR, by path
R.HASH = [[cd -- "$1" && find . -type f -print | LC_ALL=C sort | while IFS= read -r f; do
printf '%s  ' "$f"; sha256sum < "$f" | cut -d' ' -f1; done | sha256sum | cut -d' ' -f1]]

local function post(ctx, path, body)
  local r, err, code = http.request { method = "POST", url = ctx.url .. path, timeout = 120,
    headers = { ["content-type"] = "application/json" }, body = json.encode(body) }
  if not r then return core.wrap("the model server at " .. ctx.url .. " cannot be reached", err, code) end
  return r
end

function steps.unload(ctx, a)
  local r, err, code = post(ctx, "/v1/unload_lora_adapter", { lora_name = a.name })
  if not r then return nil, err, code end
  -- a name not loaded is fine; a server without the API says so at load
  if r.status >= 500 then
    return core.fail("EHTTP", ("unloading %s: the server answered %d: %s"):format(a.name, r.status, r.body:sub(1, 300)))
  end
  return true
end

function steps.load(ctx, a)
  local r, err, code = post(ctx, "/v1/load_lora_adapter", { lora_name = a.name, lora_path = a.path })
  if not r then return nil, err, code end
  if r.status == 404 or r.status == 405 or r.status == 501 then
    ctx.say(("%s does not take adapters at run time (%d). Start it with the adapter instead:"):format(ctx.url, r.status))
    ctx.say(("  VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve %s --enable-lora --lora-modules %s=%s"):format(
      ctx.base or "BASE_MODEL", a.name, a.path))
    return core.fail("EREFUSED", "the server refuses runtime LoRA updates: restart it as shown")
  end
  if r.status >= 300 then
    return core.fail("EHTTP", ("loading %s from %s: the server answered %d: %s"):format(a.name, a.path, r.status,
      r.body:sub(1, 300)))
  end
  return true
end

function steps.check(ctx, a)
  local r, err, code = http.request { url = ctx.url .. "/v1/models", timeout = 30 }
  if not r then return core.wrap("listing the server's models", err, code) end
  local list = r.status == 200 and json.decode(r.body)
  for _, m in ipairs(type(list) == "table" and type(list.data) == "table" and list.data or {}) do
    if type(m) == "table" and m.id == a.name then return true end
  end
  return core.fail("EFAIL", ("%s loaded %s but /v1/models does not list it"):format(ctx.url, a.name))
end

function R.main(args, cmd)
  local recipes = require "procy.recipes"
  local o, words = recipes.flags(args, { adapter = "string", name = "string", url = "string" }, "train deploy")
  if not o then return nil, words, "EINVAL" end
  if #words > 1 then return core.fail("EINVAL", "train deploy: one job at most") end
  local st, serr = recipes.steps(R, require("procy.config").get().train_deploy or {})
  if not st then return core.wrap("train deploy", serr, "EINVAL") end
  local cfg = require("procy.config").get()
  local job
  if words[1] then
    local err, code
    job, err, code = train.job(words[1])
    if not job then return nil, err, code end
  elseif not o.adapter then
    job = store.open():query("SELECT id FROM train_jobs WHERE state = 'done' ORDER BY ended_at DESC LIMIT 1")[1]
    if not job then return core.fail("ENOENT", "no training job is done yet: give JOB or --adapter PATH") end
    job = assert(train.job(job.id))
  end
  if job and job.state ~= "done" then
    return core.fail("EINVAL", ("job %s is %s: only a finished job has an adapter"):format(job.id, job.state))
  end
  local a = { name = o.name or ("procy-" .. (job and job.id or "adapter")), path = o.adapter or (job.dir .. "/adapter"),
              job = job and job.id }
  local url = (o.url or (cfg.model or {}).url or ""):gsub("/+$", ""):gsub("/v1$", "")
  if url == "" then return core.fail("ENOMODEL", "no model server: --url URL or model = { url = ... } in procy.lua") end
  local say = cmd and cmd.print or print
  local ctx = { o = o, url = url, base = (cfg.trainer or {}).base_model, say = say, steps = st, default = steps }
  -- the hash of what is loaded, taken where the files are (the trainer's host)
  local host = job and job.host or (not o.adapter and (cfg.trainer or {}).host) or nil
  local h = train.run(host, R.HASH, { a.path })
  a.sha256 = h and h.stdout:match("^(%x+)") or nil
  for _, name in ipairs(R.step_names) do
    local ok, err, code = st[name](ctx, a)
    if not ok then return nil, err or (name .. " failed"), code end
  end
  store.open():exec([[INSERT INTO adapters(name, url, path, sha256, job_id, deployed_at) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT(name, url) DO UPDATE SET path = excluded.path, sha256 = excluded.sha256, job_id = excluded.job_id,
      deployed_at = excluded.deployed_at]], a.name, url, a.path, a.sha256, a.job, store.now_us())
  say(("%s serves %s (from %s%s)"):format(url, a.name, a.path, a.sha256 and (", sha256 " .. a.sha256:sub(1, 12)) or ""))
  say(("use it: model = { url = %q, adapter = %q } in procy.lua"):format(url, a.name))
  return true
end

return R
