-- procy.commands: the `!` command registry of an interactive session.
--
-- A command is a function(ctx, args), or a table {run = function(ctx,
-- args), help = "...", args = "..."}. Each runs as its own task, so a slow
-- command never holds up the terminal; what it prints with ctx.print is
-- shown in a pager over the agent when it ends. A project adds or replaces
-- commands with `commands = { name = ... }` in procy.lua.
--
-- ctx (one per session, shared by its commands):
--   ctx.session  the pty session (s:show, s:status, s:mark, s:write, s:info)
--   ctx.id       the session id;  ctx.argv: the agent command;  ctx.started
--   ctx.proxy    the URL of the session's API proxy, or nil
--   ctx.lines    lines typed to the agent so far: {t =, text =}
--   ctx.print(...)   add a line to the command's output
--   ctx.show(text)   show text now;  ctx.status(text): the bottom-row message
--   ctx.pin(text)    a bottom row kept while the agent runs (nil removes it)
--   ctx.running  the command tasks still running: {[task] = name}

local core = require "procy.core"
local config = require "procy.config"
local store = require "procy.store"

local M = {}

-- words("a 'b c' d\\ e") -> {"a", "b c", "d e"}: split as a shell would,
-- with quotes and backslashes, but nothing expanded and nothing run.
function M.words(s)
  local out, cur, i, quote, any = {}, {}, 1, nil, false
  while i <= #s do
    local c = s:sub(i, i)
    if quote then
      if c == quote then quote = nil
      elseif c == "\\" and quote == '"' and i < #s then i = i + 1 cur[#cur + 1] = s:sub(i, i)
      else cur[#cur + 1] = c end
    elseif c == "'" or c == '"' then quote, any = c, true
    elseif c == "\\" and i < #s then i = i + 1 cur[#cur + 1] = s:sub(i, i) any = true
    elseif c:match("%s") then
      if #cur > 0 or any then out[#out + 1] = table.concat(cur) cur, any = {}, false end
    else cur[#cur + 1] = c any = true end
    i = i + 1
  end
  if quote then return core.fail("EINVAL", "unclosed " .. quote) end
  if #cur > 0 or any then out[#out + 1] = table.concat(cur) end
  return out
end

local function duration(seconds)
  seconds = math.floor(seconds + 0.5)
  if seconds < 60 then return seconds .. "s" end
  if seconds < 3600 then return ("%dm%02ds"):format(seconds // 60, seconds % 60) end
  return ("%dh%02dm"):format(seconds // 3600, seconds % 3600 // 60)
end
M.duration = duration

local function bytes(n)
  if n < 1024 then return n .. " B" end
  if n < 1024 * 1024 then return ("%.1f KiB"):format(n / 1024) end
  return ("%.1f MiB"):format(n / 1024 / 1024)
end
M.bytes = bytes

-- count(n, word, [plural]) -> "1 call", "2 calls": n and its word as it is said
function M.count(n, word, plural)
  return ("%d %s"):format(n, n == 1 and word or (plural or word .. "s"))
end

-- fill(text, width) -> lines of at most width characters (UTF-8), broken
-- at spaces; a word longer than width is cut.
function M.fill(text, width)
  local lines, cur = {}, ""
  for word in tostring(text):gmatch("%S+") do
    while utf8.len(word) and utf8.len(word) > width do
      if cur ~= "" then lines[#lines + 1], cur = cur, "" end
      local cut = utf8.offset(word, width + 1)
      lines[#lines + 1], word = word:sub(1, cut - 1), word:sub(cut)
    end
    local n = utf8.len(cur .. " " .. word) or #cur + 1 + #word
    if cur == "" then cur = word
    elseif n <= width then cur = cur .. " " .. word
    else lines[#lines + 1], cur = cur, word end
  end
  if cur ~= "" or #lines == 0 then lines[#lines + 1] = cur end
  return lines
end

-- columns(rows, width, [max_left]) -> lines: {left, right} pairs as two
-- columns fitting width, the right one filled at word boundaries under
-- itself; a left side wider than max_left (default 28) takes its own line.
function M.columns(rows, width, max_left)
  max_left = max_left or 28
  local lw = 0
  for _, r in ipairs(rows) do
    if #r[1] <= max_left then lw = math.max(lw, #r[1]) end
  end
  local indent = 2 + lw + 2
  local out = {}
  for _, r in ipairs(rows) do
    local text = M.fill(r[2] or "", math.max(20, width - indent))
    if #r[1] > lw then
      out[#out + 1] = "  " .. r[1]
      out[#out + 1] = (" "):rep(indent) .. text[1]
    else
      out[#out + 1] = "  " .. r[1] .. (" "):rep(lw - #r[1] + 2) .. text[1]
    end
    for i = 2, #text do out[#out + 1] = (" "):rep(indent) .. text[i] end
  end
  return out
end

M.builtin = {
  help = { help = "list the commands", run = function(ctx)
    -- logical lines, not filled to a width: the pager wraps them at the
    -- terminal's width (the two columns kept), again when it is resized
    ctx.print("procy commands (type ! at the start of an empty line; !! types a !):")
    local names, rows = {}, {}
    for name in pairs(ctx.commands) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      local c = ctx.commands[name]
      rows[#rows + 1] = { "!" .. name .. (c.args and (" " .. c.args) or ""), c.help or "" }
    end
    for _, l in ipairs(M.columns(rows, math.huge)) do ctx.print(l) end
    ctx.print("")
    ctx.print("In the command line: arrows, Home/End, Ctrl-A/E/U/K/W; Enter runs; Esc or Ctrl-C leaves.")
  end },

  status = { help = "this session: id, agent, time, bytes, where it is recorded", run = function(ctx)
    local i = ctx.session:info()
    ctx.print("session   " .. ctx.id)
    ctx.print("agent     " .. table.concat(ctx.argv, " ") .. "  (pid " .. i.pid .. ")")
    ctx.print("running   " .. duration(core.time() - ctx.started))
    ctx.print(("terminal  %dx%d%s"):format(i.cols, i.rows, i.alt_screen and ", full screen" or ""))
    ctx.print(("bytes     %s typed, %s shown"):format(bytes(i.bytes_in), bytes(i.bytes_out)))
    ctx.print(("recorded  %s in %s%s"):format(M.count(i.events, "event"), store.path(),
      i.dropped > 0 and (" (" .. i.dropped .. " dropped)") or ""))
    if i.record_error then ctx.print("record    FAILING: " .. i.record_error) end
    if ctx.monitor then ctx.print("monitor   " .. ctx.monitor) end
    if ctx.proxy then
      local usage = require "procy.usage"
      local u = usage.report { session = ctx.id }.total
      ctx.print(("api       %s: %s, %s tokens, %s"):format(ctx.proxy, M.count(u.calls, "call"), usage.tokens(u),
        usage.money(u.cost, u.unpriced)))
      local list = require("procy.turns").list(ctx.id)
      if u.calls == 0 and require("procy.turns").from_terminal(list) then
        ctx.print("          " .. require("procy.turns").terminal_note)
      end
    else
      ctx.print("api       not captured (setting capture = false, or the proxy failed: see the log)")
    end
    ctx.print("log       " .. config.get().log)
    local evolve = require "procy.evolve"
    for _, s in pairs(evolve.live) do ctx.print(evolve.status_line(s)) end
    if evolve.pending then ctx.print("evolve    a proposed prompt waits: !approve, !edit TEXT or !reject") end
    local n = 0
    for _, name in pairs(ctx.running) do
      if name ~= "status" then n = n + 1 ctx.print("command   !" .. name .. " is running") end
    end
  end },

  history = { help = "this session's prompts so far, exactly as the agent got them", run = function(ctx)
    local list = require("procy.turns").list(ctx.id)
    if #list == 0 and #ctx.lines == 0 then ctx.print("no prompt yet") return end
    if #list == 0 then -- no turn is known (no API capture): the lines as typed
      for i, l in ipairs(ctx.lines) do
        ctx.print(("%3d  %s  %s"):format(i, os.date("%H:%M:%S", math.floor(l.t)), (l.text:gsub("\n", "\n           "))))
      end
      ctx.print("")
      ctx.print("(as typed; history recall and editing inside the agent are not seen)")
      return
    end
    for _, t in ipairs(list) do
      ctx.print(("%3d  %s  %-6s %s"):format(t.seq, os.date("%H:%M:%S", math.floor(t.started_at)), t.source,
        (tostring(t.prompt):gsub("\n", "\n" .. (" "):rep(21)))))
    end
  end },

  turns = { help = "this session's turns: status, time, tools, tokens, cost", run = function(ctx)
    local list = require("procy.turns").list(ctx.id)
    if #list == 0 then ctx.print("no turn yet") return end
    local usage = require "procy.usage"
    for _, t in ipairs(list) do
      local dur = t.duration ~= require("procy.json").null and duration(t.duration) or "..."
      local figures = t.known_from == "terminal" and "(from the terminal)"
        or (usage.tokens(t.usage) .. "  " .. usage.money(t.cost))
      ctx.print(("%3d  %-11s %-8s %6s  %2d tools  %s  %s"):format(t.seq, t.status, t.source, dur,
        #t.tools, figures, (tostring(t.prompt):gsub("%s+", " ")):sub(1, 50)))
    end
    if require("procy.turns").from_terminal(list) then ctx.print("(" .. require("procy.turns").terminal_note .. ")") end
  end },

  run = { args = "FILE.lua [ARGS...]", help = "run a recipe here: agent.current() is this session's agent",
    run = function(ctx, args)
      local file = args[1]
      if not file then ctx.print("usage: !run FILE.lua [ARGS...]") return end
      -- the recipe's print goes to the command's output, not over the agent
      local r = table.pack(require("procy.recipes").run(file, table.move(args, 2, #args, 1, {}), ctx))
      if r[1] == nil and r[2] then ctx.print("!run: " .. tostring(r[2])) end
    end },

  mark = { args = "[LABEL]", help = "put a marker in the recording, for replay", run = function(ctx, args)
    local label = args.line ~= "" and args.line or os.date("%H:%M:%S")
    ctx.session:mark(label)
    ctx.status("marked: " .. label)
  end },

  stop = { help = "cancel the commands still running", run = function(ctx)
    local n = 0
    for task in pairs(ctx.running) do
      if task ~= core.current() and core.cancel(task) then n = n + 1 end
    end
    ctx.status(n == 0 and "no command is running" or ("stopped " .. n .. " command(s)"))
  end },
}

-- registry() -> name -> {run, help, args}: the built-ins with the project's
-- commands over them
function M.registry()
  local reg = {}
  for name, c in pairs(M.builtin) do reg[name] = c end
  for _, m in ipairs { "procy.evolve", "procy.evaluator", "procy.corrections" } do
    for name, c in pairs(require(m).commands) do reg[name] = c end
  end
  for name, c in pairs(config.get().commands or {}) do
    if type(c) == "function" then c = { run = c, help = "(procy.lua)" } end
    if type(c) ~= "table" or type(c.run) ~= "function" then
      error(("procy.lua: command '%s' must be a function or a table with run"):format(name), 0)
    end
    reg[name] = c
  end
  return reg
end

-- context(session, fields) -> the ctx commands share
function M.context(session, fields)
  local ctx = fields
  ctx.session = session
  ctx.lines = ctx.lines or {}
  ctx.running = {}
  ctx.commands = M.registry()
  ctx.show = function(text) session:show(text) end
  ctx.status = function(text) session:status(text) end
  ctx.pin = function(text) session:pin(text) end
  return ctx
end

-- run(ctx, line): runs "name args..." as a task
function M.run(ctx, line)
  local name, rest = line:match("^%s*(%S+)%s*(.-)%s*$")
  if not name then return end
  local c = ctx.commands[name]
  if not c then
    ctx.status("unknown command !" .. name .. " (try !help)")
    return
  end
  local args, werr = M.words(rest)
  if not args then
    ctx.status("!" .. name .. ": " .. werr)
    return
  end
  args.line = rest
  local out = {}
  local cctx = setmetatable({
    print = function(...)
      local parts = table.pack(...)
      for i = 1, parts.n do parts[i] = tostring(parts[i]) end
      out[#out + 1] = table.concat(parts, "\t")
    end,
  }, { __index = ctx })
  local task
  task = core.spawn(function()
    local _ <close> = setmetatable({}, { __close = function() ctx.running[task] = nil end })
    local ok, err = xpcall(c.run, debug.traceback, cctx, args)
    if not ok then
      out[#out + 1] = "!" .. name .. " failed: " .. tostring(err)
    end
    if #out > 0 then ctx.session:show(table.concat(out, "\n")) end
  end)
  task:label("!" .. name)
  ctx.running[task] = name
  return task
end

-- stop_all(ctx): cancels the commands still running (the session ended)
function M.stop_all(ctx)
  for task in pairs(ctx.running) do core.cancel(task) end
end

return M
