-- recipes/deploy.lua — what the proxy model's vLLM serves procy: a trained
-- adapter, or the base model.
--
--   procy train deploy [trained] [JOB] [--adapter PATH] [--name NAME] [--url URL]
--   procy train deploy base [--url URL]
--   procy train deploy status [--url URL]
--   !deploy trained [JOB] | base | status     (in a session)
--
-- trained (the default) loads the adapter with vLLM's runtime LoRA API:
-- POST /v1/unload_lora_adapter (a name is replaced by unloading it first:
-- loading over a loaded name is unreliable), then POST
-- /v1/load_lora_adapter {lora_name, lora_path}, then checks that GET
-- /v1/models lists it, and makes it what procy asks the server for from
-- then on (the record's `serving`: every proxy-model call asks for it,
-- every try records its name and hash). A server that refuses runtime
-- updates (VLLM_ALLOW_RUNTIME_LORA_UPDATING unset) gets the line to
-- restart it with instead. JOB (default: the newest job that is done)
-- gives the path, JOB's directory/adapter as the trainer's host sees it;
-- --adapter gives another (as the server sees it). NAME defaults to
-- procy-JOB, URL to the model setting's. The adapter's files are hashed
-- where they are, and name, path and hash kept in the record (adapters).
-- base: procy asks the server for its base model again (the adapter stays
-- loaded, ready for `trained`). status: what procy asks for, and what
-- the server lists. Every request to the server carries the model
-- setting's key (key_env), as the proxy model's calls do, when URL is the
-- setting's server.
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
    headers = ctx.headers, body = json.encode(body) }
  if not r then return core.wrap("the model server at " .. ctx.url .. " cannot be reached", err, code) end
  if r.status == 401 or r.status == 403 then
    return core.fail("EAUTH", ("%s refused procy (%d): %s"):format(ctx.url, r.status, ctx.keyed
      and "the key in the model setting's key_env is not one it takes"
      or ctx.own and "it wants a key: name its variable with model.key_env"
      or "it wants a key, and procy sends model.key_env's key to model.url's server only"))
  end
  return r
end

-- models(ctx) -> the ids the server's /v1/models lists | nil, err, code
local function models(ctx)
  local list, err, code = require("procy.model").list(ctx.url .. "/v1/models", ctx.headers)
  if not list then return nil, err, code end
  local ids = {}
  for i, m in ipairs(list) do ids[i] = m.id end
  return ids
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
  local ids, err, code = models(ctx)
  if not ids then return nil, err, code end
  for _, id in ipairs(ids) do
    if id == a.name then return true end
  end
  return core.fail("EFAIL", ("%s loaded %s but /v1/models does not list it"):format(ctx.url, a.name))
end

-- base: the server's base model, asked for from now on
local function base(ctx)
  local model = require "procy.model"
  model.serve(ctx.url, nil, "deploy base")
  local name = (ctx.cfg.model or {}).name or (ctx.cfg.model or {}).model or "default"
  ctx.say(("procy now asks %s for its base model (%s); the adapters stay loaded: deploy trained to go back"):format(ctx.url, name))
  return true
end

-- status: what procy asks the server for, and what it lists
local function status(ctx)
  local model = require "procy.model"
  local served = model.serving(ctx.url)
  local m = ctx.cfg.model or {}
  local asked, why
  if served then asked, why = served.adapter, ("set by %s, %s"):format(served.set_by or "?", os.date("%Y-%m-%d %H:%M", served.set_at // 1000000))
  else asked, why = m.adapter, "the model setting" end
  local row = asked and store.open():query("SELECT * FROM adapters WHERE name = ? AND url = ?", asked, ctx.url)[1]
  ctx.say("server    " .. ctx.url)
  ctx.say(("procy asks %s (%s)"):format(asked and ("the adapter " .. asked) or ("the base model " .. (m.name or m.model or "default")), why))
  if row then
    ctx.say(("adapter   %s%s%s"):format(row.path, row.sha256 and ("  sha256 " .. row.sha256:sub(1, 12)) or "",
      row.job_id and ("  job " .. row.job_id) or ""))
  end
  local ids, err = models(ctx)
  if not ids then
    ctx.say("served    ? (" .. tostring(err):gsub("^E[%u_]+: ", "") .. ")")
    return true
  end
  local listed = false
  for _, id in ipairs(ids) do listed = listed or id == asked end
  ctx.say("served    " .. (#ids > 0 and table.concat(ids, ", ") or "nothing listed"))
  if asked and not listed then ctx.say("warning   the server does not list " .. asked .. ": deploy trained loads it again") end
  return true
end

function R.main(args, cmd)
  local recipes = require "procy.recipes"
  local o, words = recipes.flags(args, { adapter = "string", name = "string", url = "string" }, "train deploy")
  if not o then return nil, words, "EINVAL" end
  local what = "trained"
  if words[1] == "trained" or words[1] == "base" or words[1] == "status" then what = table.remove(words, 1) end
  if #words > 1 or (what ~= "trained" and #words > 0) then
    return core.fail("EINVAL", "train deploy [trained] [JOB] | base | status: one job at most, and only for trained")
  end
  local st, serr = recipes.steps(R, require("procy.config").get().train_deploy or {})
  if not st then return core.wrap("train deploy", serr, "EINVAL") end
  local cfg = require("procy.config").get()
  local model = require "procy.model"
  local url = model.server_url(o.url or (cfg.model or {}).url or "")
  if url == "" then return core.fail("ENOMODEL", "no model server: --url URL or model = { url = ... } in procy.lua") end
  -- the setting's key goes to the setting's server only
  local m = cfg.model or {}
  local own = url == model.server_url(m.url)
  local headers = model.headers { api = "openai", key_env = own and m.key_env or nil, headers = own and m.headers or nil }
  local say = cmd and cmd.print or print
  local ctx = { o = o, url = url, base = (cfg.trainer or {}).base_model, say = say, steps = st, default = steps,
                headers = headers, keyed = headers.authorization ~= nil, own = own, cfg = cfg }
  if what == "base" then return base(ctx) end
  if what == "status" then return status(ctx) end
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
  model.serve(url, a.name, "deploy trained")
  say(("%s serves %s (from %s%s)"):format(url, a.name, a.path, a.sha256 and (", sha256 " .. a.sha256:sub(1, 12)) or ""))
  say(("procy asks for it from now on (deploy base: the base model again; deploy status: what is served)"))
  return true
end

return R
