-- procy.cli.commands: what each of procy's commands does, and the
-- interactive session when no command is given. The command line itself
-- (the option and command tables, parsing, help, dispatch) is procy.cli.main,
-- which calls these with the words and options it parsed.

local core = require "procy.core"
local config = require "procy.config"

local function say(...)
  io.stderr:write("procy: ", ...)
  io.stderr:write("\n")
end
local commands = {}

-- procy run FILE.lua [ARGS...]
function commands.run(args)
  local file = args[1]
  if not file then
    say("run needs a recipe file\nusage: procy run FILE.lua [ARGS...]")
    return 2
  end
  local rargs = table.move(args, 2, #args, 1, {})
  local task = core.spawn(function() return require("procy.recipes").run(file, rargs) end)
  task:label(file)
  local r = table.pack(core.await(task))
  -- the agents it opened and left open end with it
  if package.loaded["procy.agent"] then package.loaded["procy.agent"].close_all() end
  -- logged with its traceback; what it started must not keep procy waiting
  if r[1] == nil and r[3] == "ETASK" then core.exit(1) end
  if r[1] == nil and r[2] ~= nil then
    say(tostring(r[2]))
    return 1
  end
  if math.type(r[1]) == "integer" then return r[1] end
  if r[1] == false then return 1 end
  return 0
end

local function one_session(args, what)
  if #args ~= 1 then
    say(what, " needs one session id (see procy sessions)")
    return nil, 2
  end
  local row, err = require("procy.store").find_session(args[1])
  if not row then
    say(err)
    return nil, 1
  end
  return row
end

function commands.sessions(args, opts)
  if #args > 0 then
    say("sessions takes no arguments")
    return 2
  end
  local limit = tonumber(opts.limit or 50)
  if not limit then
    say("--limit needs a number")
    return 2
  end
  io.stdout:write(require("procy.record.sessions").list(limit))
  return 0
end

function commands.show(args, opts)
  local row, code = one_session(args, "show")
  if not row then return code end
  local sessions = require "procy.record.sessions"
  if opts.json then
    print(require("procy.json").encode(sessions.summary(row), { indent = true, sort = true }))
  else
    io.stdout:write(sessions.show(row))
  end
  return 0
end

-- A pager for text meant for a terminal: less, when there is one (a
-- constant command, no data in it: popen's child stays in the terminal's
-- foreground group, so it can read keys), else the text as it is.
local function page(text)
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local st = require("procy.fs").stat(dir .. "/less")
    if st and st.type == "file" then
      local f = io.popen("less -FRX", "w")
      if f then
        f:write(text)
        f:close()
        return
      end
    end
  end
  io.stdout:write(text)
end

function commands.transcript(args, opts)
  local row, code = one_session(args, "transcript")
  if not row then return code end
  local format = opts.format or "text"
  if format ~= "text" and format ~= "md" then
    say("--format is text or md")
    return 2
  end
  local tty = not opts.output and require("procy.pty").isatty(1)
  local text, err = require("procy.record.transcript").session(row.id, { color = opts.color or (tty and format == "text"),
    full = opts.full, format = format })
  if not text then
    say(err)
    return 1
  end
  if opts.output then
    local f, ferr = io.open(opts.output, "wb")
    if not f then
      say(ferr)
      return 1
    end
    f:write(text)
    f:close()
  elseif tty then
    page(text)
  else
    io.stdout:write(text)
  end
  return 0
end

function commands.export(args, opts)
  local row, code = one_session(args, "export")
  if not row then return code end
  local format = opts.format or "cast"
  if format ~= "cast" and format ~= "cast3" and format ~= "html" then
    say("--format is cast (asciicast v2), cast3 (v3) or html, not '", format, "'")
    return 2
  end
  local out = io.stdout
  if opts.output then
    local err
    out, err = io.open(opts.output, "w")
    if not out then
      say(err)
      return 1
    end
  else
    out:setvbuf("full")
  end
  -- a reader that stops early (`| head`) closes the pipe: stop writing,
  -- quietly, as a program SIGPIPE ended would (procy ignores SIGPIPE)
  local failed, errno
  local function write(s)
    if failed then return end
    local ok, err, en = out:write(s)
    if not ok then failed, errno = err, en end
  end
  if format == "html" then
    write(require("procy.share").html(row))
  else
    require("procy.record.sessions").export(row, format, write)
  end
  if not failed then
    local ok, err, en = out:flush()
    if not ok then failed, errno = err, en end
  end
  if opts.output then out:close() end
  if failed and errno == 32 and not opts.output then return 141 end -- EPIPE: 128 + SIGPIPE
  if failed then
    say(opts.output and (opts.output .. ": ") or "", failed)
    return 1
  end
  return 0
end

-- procy search QUERY... [--session ID] [--kind K] [--limit N] [--raw] [--json]
function commands.search(args, opts)
  if #args == 0 then say("usage: procy search QUERY... (procy help search)") return 2 end
  local store = require "procy.store"
  local o = { kind = opts.kind, raw = opts.raw, limit = tonumber(opts.limit or "20") }
  if not o.limit then say("--limit is a number") return 2 end
  if opts.session then
    local row, err = store.find_session(opts.session)
    if not row then say(err) return 1 end
    o.session = row.id
  end
  local hits, err = require("procy.search").search(table.concat(args, " "), o)
  if not hits then say(err) return 1 end
  if opts.json then
    print(require("procy.json").encode(hits, { indent = true, sort = true }))
    return 0
  end
  local tty = require("procy.pty").isatty(1)
  for _, h in ipairs(hits) do
    local parts = {}
    for i, p in ipairs(h.parts) do
      p = p:gsub("%s+", " ")
      parts[i] = i % 2 == 0 and (tty and "\27[1;33m" .. p .. "\27[0m" or "[" .. p .. "]") or p
    end
    local where = h.kind == "term" and ("at %.1f s"):format((h.rel_t or 0) / 1e6)
      or (h.kind == "prompt" or h.kind == "answer") and ("turn %d"):format(h.ref)
      or h.kind == "tool" and ("tool call %d%s"):format(h.ref, h.turn and (", turn " .. h.turn) or "")
      or ("call %d"):format(h.ref)
    print(("%s  %-6s %-22s %s"):format((h.session_id or "-"):sub(1, 8), h.kind, where, table.concat(parts)))
  end
  if #hits == 0 then say("no hit") return 1 end
  return 0
end

function commands.play(args, opts)
  local row, code = one_session(args, "play")
  if not row then return code end
  local speed = tonumber(opts.speed or 1)
  local idle = opts["idle-limit"] and tonumber(opts["idle-limit"])
  if not speed or speed <= 0 or (opts["idle-limit"] and not idle) then
    say("--speed and --idle-limit need positive numbers")
    return 2
  end
  require("procy.record.sessions").play(row, { speed = speed, idle_limit = idle })
  return 0
end

-- procy serve [--port N] [--upstream URL] [--openai-upstream URL] [--host IP --token T]
function commands.serve(args, opts)
  if #args > 0 then
    say("serve takes no arguments")
    return 2
  end
  local port = math.tointeger(tonumber(opts.port or config.get().port))
  if not port or port < 0 or port > 65535 then
    say("--port needs a port number (0: any free port)")
    return 2
  end
  local token = opts.token or os.getenv("PROCY_TOKEN")
  if token == "" then token = nil end
  if opts.host and opts.host ~= "127.0.0.1" and not token then
    say("listening on ", opts.host, " needs --token (or PROCY_TOKEN) of 16 or more characters")
    return 2
  end
  if token and #token < 16 then
    say("--token (or PROCY_TOKEN) is 16 or more characters: a shorter one could be guessed")
    return 2
  end
  local store, serve = require "procy.store", require "procy.serve"
  local argv = { "procy", "serve" }
  for _, k in ipairs { "port", "upstream", "openai-upstream", "host", "replay" } do
    if opts[k] then argv[#argv + 1] = "--" .. k .. "=" .. opts[k] end
  end
  local replay
  if opts.strict and opts.nearest then
    say("--strict or --nearest, not both")
    return 2
  end
  if (opts.strict or opts.nearest or opts.fast) and not opts.replay then
    say("--strict, --nearest and --fast go with --replay SESSION|RUN")
    return 2
  end
  if opts.replay then -- a session id (or prefix), else an evolve run's
    local vcr = require "procy.vcr"
    local c, cerr = vcr.load { session = opts.replay }
    if not c then
      local rc = vcr.load { run = opts.replay }
      if rc then c, cerr = rc, nil end
    end
    if not c then
      say(cerr)
      return 1
    end
    replay = { cassette = c, mode = opts.nearest and "nearest" or "strict", fast = opts.fast and true or false }
  end
  local id, err = store.new_session { argv = argv, cwd = require("procy.fs").cwd(), mode = "serve" }
  if not id then
    say("cannot write to the record: ", err)
    return 1
  end
  local s, serr = serve.start { port = port, host = opts.host, token = token, upstream = opts.upstream,
    openai = opts["openai-upstream"], google = opts["google-upstream"], session = id, replay = replay }
  if not s then
    store.end_session(id, { status = "error" })
    say(serr)
    return 1
  end
  local _ <close> = setmetatable({}, { __close = function()
    serve.stop(s)
    store.end_session(id, { status = "exited", code = 0 })
  end })
  io.stderr:write(("procy serve: listening on %s, recording into %s (session %s)\n"):format(s.url, store.path(), id:sub(1, 8)))
  if replay then
    io.stderr:write(("  replaying %s of %s (%s%s); no call goes upstream\n"):format(
      require("procy.commands").count(#replay.cassette.calls, "recorded call"),
      replay.cassette.label, replay.mode, replay.fast and ", fast" or ", at their recorded pace"))
  else
    io.stderr:write(("  upstream %s, OpenAI upstream %s, Google upstream %s\n"):format(s.upstream, s.openai, s.google))
  end
  -- a replaying server answers from the record: only to a client with
  -- its key (in the base URL it prints) or the person's token
  local base = s.url
  if replay then
    local key = store.random_hex(16)
    s.srv:key(key, id)
    base = s.url .. "/s/" .. key
  end
  io.stderr:write(("  use it:  ANTHROPIC_BASE_URL=%s claude\n"):format(base))
  io.stderr:write(("  monitor: %s  (its token is yours: procy link prints it again)\n"):format(s.link))
  core.await(s.acceptor) -- until a signal stops procy
  return 0
end

-- procy link [--no-open]: the monitor's link (with its token) of every
-- server of this record that runs, newest first; the newest opened in
-- the browser when there is a display
function commands.link(args, opts)
  if #args > 0 then
    say("link takes no arguments")
    return 2
  end
  local list = require("procy.serve").running()
  if #list == 0 then
    say("no procy server of this record runs (procy serve, or a session, starts one)")
    return 1
  end
  for _, e in ipairs(list) do
    print(e.link .. (e.session and ("  (session %s)"):format(tostring(e.session):sub(1, 8)) or ""))
  end
  local display = (os.getenv("DISPLAY") or "") ~= "" or (os.getenv("WAYLAND_DISPLAY") or "") ~= ""
  if display and not opts["no-open"] then
    local proc = require "procy.proc"
    local ok = pcall(proc.daemon, { "xdg-open", list[1].link }, { cwd = "/" })
    if not ok then say("cannot start xdg-open: open the link above") end
  end
  return 0
end

-- procy usage [--since T] [--until T] [--session ID] [--json]
function commands.usage(args, opts)
  if #args > 0 then
    say("usage takes no arguments (see procy --help)")
    return 2
  end
  local usage, store = require "procy.usage", require "procy.store"
  local r = {}
  for _, k in ipairs { "since", "until" } do
    if opts[k] then
      local t, err = usage.time(opts[k])
      if not t then
        say("--", k, ": ", err)
        return 2
      end
      r[k == "until" and "until_" or k] = t
    end
  end
  if opts.session then
    local row, err = store.find_session(opts.session)
    if not row then
      say(err)
      return 1
    end
    r.session = row.id
  end
  local report, rerr = usage.report(r)
  if not report then say(rerr) return 1 end
  if opts.json then
    local json = require "procy.json"
    report.models, report.sessions = json.array(report.models), json.array(report.sessions)
    print(json.encode(report, { indent = true, sort = true }))
  else
    io.stdout:write(usage.format(report))
  end
  return 0
end

-- procy hook [JSON]: the command procy gives an agent as its hook (Claude
-- Code's hooks pass the event on stdin, Codex's notify as the last
-- argument); the event goes to $PROCY_HOOK_URL. It never fails the agent:
-- problems are reported on stderr and the status is 0.
function commands.hook(args)
  local url = os.getenv("PROCY_HOOK_URL")
  if not url or url == "" then
    say("hook: PROCY_HOOK_URL is not set (procy sets it for the agents it runs)")
    return 0
  end
  local body = args[#args]
  if not body or body:sub(1, 1) ~= "{" then body = io.stdin:read("a") or "" end
  local r, err = require("procy.http").request { method = "POST", url = url, body = body, timeout = 10,
    headers = { ["content-type"] = "application/json" } }
  if not r or r.status ~= 200 then say("hook: ", err or ("HTTP " .. r.status .. " " .. r.body)) end
  return 0
end

-- The flags lproc's own proxies start the agent with (claudix4, codexx4):
-- `--lproc` puts them before the ones given, so procy takes a proxy's
-- place in an lproc command line as it is.
local LPROC_ARGS = {
  claude = { "--dangerously-skip-permissions", "--model", "sonnet" },
  codex = { "--dangerously-bypass-approvals-and-sandbox", "-m", "gpt-5" },
}

-- procy claudix / codexx [--mirror M] [--cwd DIR] [--sandbox] [--lproc] [-- AGENT ARGS]
local function stdio_proxy(agent_name, args, opts)
  if opts.lproc then
    local all = {}
    for _, a in ipairs(LPROC_ARGS[agent_name]) do all[#all + 1] = a end
    for _, a in ipairs(args) do all[#all + 1] = a end
    args = all
  end
  local mirror = opts.mirror or "preview"
  if mirror ~= "preview" and mirror ~= "full" and mirror ~= "off" then
    say("--mirror is preview, full or off")
    return 2
  end
  if require("procy.pty").isatty(0) then -- its reader (a `cat` child) could not read a terminal
    say("procy ", agent_name == "claude" and "claudix" or "codexx", " reads stream-json lines from a pipe or a file ",
      "(lproc's .stdin), not from a terminal: echo '{\"type\":\"user\",...}' | procy ...")
    return 2
  end
  local sandbox = config.get().sandbox
  if opts.sandbox and not sandbox then sandbox = true end
  local fs = require "procy.fs"
  local cwd = opts.cwd and fs.realpath(opts.cwd) or fs.cwd()
  if not cwd or (fs.stat(cwd) or {}).type ~= "dir" then
    say("no directory ", tostring(opts.cwd))
    return 2
  end
  return require("procy.claudix").run { agent = agent_name, args = args, cwd = cwd,
    mirror = mirror ~= "off" and mirror or false, sandbox = sandbox or false }
end
function commands.claudix(args, opts) return stdio_proxy("claude", args, opts) end
function commands.codexx(args, opts) return stdio_proxy("codex", args, opts) end

-- procy fork SESSION --turn N [--prompt TEXT] [--headless] [--dir DIR]
function commands.fork(args, opts)
  if #args ~= 1 or not opts.turn then
    say("usage: procy fork SESSION --turn N [--prompt TEXT] [--headless] [--dir DIR]")
    return 2
  end
  local fork = require "procy.fork"
  local prompt = opts.prompt
  local out, err = fork.fork { session = args[1], turn = opts.turn, prompt = prompt, headless = opts.headless,
    dir = opts.dir and (opts.dir:sub(1, 1) == "/" and opts.dir or (require("procy.fs").cwd() .. "/" .. opts.dir)) }
  if not out then
    say(err)
    return 1
  end
  io.stderr:write(("procy: forked session %s at turn %d into %s\n"):format(out.parent:sub(1, 8), out.turn, out.cwd))
  if out.session then
    io.stdout:write(("session %s (%s)\n%s\n"):format(out.session, tostring(out.status), tostring(out.answer or "")))
  end
  if opts.headless then return out.status == "done" and 0 or 1 end
  local store = require "procy.store"
  local code, rerr = require("procy.cli.session").run { argv = out.session and { "claude" } or out.argv, cwd = out.cwd,
    resume = out.session and store.find_session(out.session) or nil,
    parent = not out.session and { id = out.parent, turn = out.turn } or nil }
  if code then return code end
  say(rerr)
  return 1
end

-- procy otel export [--since T] [--session ID] [--endpoint URL] [--content]
function commands.otel(args, opts)
  if args[1] ~= "export" or #args > 1 then
    say("usage: procy otel export [--since T] [--session ID] [--endpoint URL] [--content]")
    return 2
  end
  local otel, store = require "procy.otel", require "procy.store"
  local o = otel.settings()
  o.endpoint = opts.endpoint or o.endpoint
  if not o.endpoint or o.endpoint == "" then
    say("no collector: --endpoint URL, otel = { endpoint = ... } in procy.lua, or OTEL_EXPORTER_OTLP_ENDPOINT")
    return 2
  end
  if opts.content then o.content = true end
  if opts.session then
    local row, err = store.find_session(opts.session)
    if not row then say(err) return 1 end
    o.session = row.id
  end
  if opts.since then
    local t, err = require("procy.usage").time(opts.since)
    if not t then say("--since: ", err) return 2 end
    o.since = t
  end
  local n, err = otel.export(store.open(), o)
  if not n then
    say(err)
    return 1
  end
  io.stdout:write(("exported %s to %s\n"):format(require("procy.commands").count(n, "span"), o.endpoint))
  return 0
end

-- procy agent ...
function commands.agent(args, opts)
  return require("procy.cli.background").main(args, opts)
end

-- procy train export ...: the training recipes, run with the words as given
local train_recipes = { export = "recipes/train_export.lua", start = "recipes/train.lua", deploy = "recipes/deploy.lua" }
function commands.train(args)
  local sub = args[1]
  local recipe = train_recipes[sub]
  if not recipe then
    local code = require("procy.train").main(sub, table.move(args, 2, #args, 1, {}))
    if code then return code end
    say("train needs one of: export, start, status, log, stop, deploy (see procy help train)")
    return 2
  end
  if args[2] == "--help" or args[2] == "-h" then
    local info = require("procy.recipes").find(recipe)
    io.stdout:write((info and info.text or ""):match("^(.-)\n\n") or "", "\n")
    return 0
  end
  return commands.run { recipe, table.unpack(args, 2) }
end

function commands.corrections(args, opts)
  return require("procy.corrections").main(args, opts)
end

-- procy runs [RUN] [--json]
function commands.runs(args, opts)
  local evolve, store = require "procy.evolve", require "procy.store"
  if opts.compare then
    if opts.by and opts.by ~= "adapter" and opts.by ~= "policy" then say("--by takes adapter or policy") return 2 end
    local target = opts.target and tonumber(opts.target)
    if opts.target and not target then say("--target needs a number") return 2 end
    local text, err = evolve.compare(args, { by = opts.by, target = target })
    if not text then say(err) return 1 end
    io.stdout:write(text)
    return 0
  end
  if #args > 1 then say("usage: procy runs [RUN] [--json], or procy runs --compare RUN...") return 2 end
  if opts.json then
    local json = require "procy.json"
    local v, err
    if args[1] then
      v, err = store.run(args[1])
      if v then v.tries = store.tries(v.id) end
    else
      v = store.runs { limit = 1000 }
    end
    if not v then say(err) return 1 end
    print(json.encode(v, { sort = true }))
    return 0
  end
  local text, err = evolve.report(args[1])
  if not text then say(err) return 1 end
  io.stdout:write(text)
  return 0
end

-- procy recipes [copy NAME]
function commands.recipes(args)
  local recipes = require "procy.recipes"
  if args[1] == "copy" and args[2] and #args == 2 then
    local info, err = recipes.find(args[2])
    if not info then say(err) return 1 end
    local fs = require "procy.fs"
    local to = fs.cwd() .. "/" .. (info.shipped and info.name or ("recipes/" .. info.path:match("([^/]+)$")))
    if fs.stat(to) then say(to, " exists already: procy runs that copy") return 1 end
    local ok, merr = fs.mkdir(to:match("^(.*)/[^/]*$"))
    if not ok then say(merr) return 1 end
    local f, oerr = io.open(to, "wb")
    if not f then say(oerr) return 1 end
    f:write(info.text)
    f:close()
    print(to)
    return 0
  elseif #args > 0 then
    say("usage: procy recipes [copy NAME]")
    return 2
  end
  for _, r in ipairs(recipes.list()) do
    print(("%-32s %s"):format(r.name, r.path and ("this project's copy: " .. r.path) or "shipped"))
    -- a recipe of steps: which ones the project's settings replace
    local chunk = recipes.load(r.path or r.name)
    local ok, R = pcall(chunk or error)
    if ok and type(R) == "table" and R.step_names and R.setting then
      local own = config.get()[R.setting] or {}
      local names = {}
      for i, n in ipairs(R.step_names) do
        names[i] = type(own[n]) == "function" and (n .. " (procy.lua's)") or n
      end
      print(("%-32s steps: %s"):format("", table.concat(names, ", ")))
    end
  end
  return 0
end

function commands.config(args)
  if #args > 0 then
    say("config takes no arguments")
    return 2
  end
  local cfg = config.get()
  local redact = require "procy.redact"
  local function scalar(v)
    return type(v) == "string" and ("%q"):format(redact.text(v)) or type(v) == "function" and "function"
      or tostring(v)
  end
  local rows, width = {}, 16
  local function row(name, text, origin)
    rows[#rows + 1] = { name, text, origin }
    width = math.max(width, #name)
  end
  -- a table setting as its fields, one per line (model.url = "..."); a list inline
  local function show(name, v, origin, depth)
    if type(v) ~= "table" then
      row(name, scalar(v), origin)
      return
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    if #keys == #v or depth > 3 then -- a list (or empty)
      local items = {}
      for i = 1, #v do items[i] = type(v[i]) == "table" and "{...}" or scalar(v[i]) end
      row(name, #items == 0 and "{}" or "{ " .. table.concat(items, ", ") .. " }", origin)
      return
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and ("." .. k) or ("[" .. scalar(k) .. "]")
      show(name .. key, v[k], origin, depth + 1)
    end
  end
  for _, s in ipairs(config.settings) do show(s.name, cfg[s.name], config.origin[s.name], 1) end
  for _, r in ipairs(rows) do print(("%-" .. width .. "s = %-40s -- %s"):format(r[1], r[2], r[3])) end
  if #config.files == 0 then print("-- no config files found") end
  return 0
end

-- procy [--agent CMD | --resume ID] [-- AGENT ARGS...]
local function interactive(argv, opts)
  local store = require "procy.store"
  local words = require("procy.commands").words
  local resume
  local own = #argv > 0 -- `-- CMD ARGS`: the person's own command, not an agent procy chose
  if opts.resume then
    local err
    resume, err = store.find_session(opts.resume)
    if not resume then
      say(err)
      return 1
    end
    if #argv == 0 and not opts.agent then argv = resume.argv end
  end
  if #argv == 0 then
    local cmd = opts.agent or config.get().agent
    local err
    argv, err = words(cmd)
    if not argv or #argv == 0 then
      say("the agent command '", cmd, "' is ", err or "empty")
      return 2
    end
  end
  local code, err, ecode = require("procy.cli.session").run {
    argv = argv, cwd = resume and resume.cwd or opts.cwd, resume = resume, explain = not own }
  if code then return code end
  say(err)
  if ecode == "ENOENT" or ecode == "EACCES" then
    say("(set `agent` in procy.lua, or use --agent CMD or -- CMD ARGS)")
    return 127
  end
  return ecode == "ENOTTY" and 2 or 1
end


return { commands = commands, interactive = interactive }
