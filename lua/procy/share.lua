-- procy.share: a session as one HTML file to share (procy export ID
-- --format html). It holds the monitor's page, its scripts and styles and
-- the API's answers for that session, inlined: it opens from file://,
-- offline, with the same views read-only, and its Content-Security-Policy
-- lets it load nothing and send nothing.
--
-- The answers are the API's own (serve.answer asked with requests of
-- ours), so the export shows what the monitor shows. Two things are left
-- out: a call's request messages (every call repeats the conversation so
-- far; the export keeps what each call added to the one before it, and
-- the turns), and search (an index is not shipped). What it holds is
-- redacted again with the rules in force now.

local core = require "procy.core"
local json = require "procy.json"
local redact = require "procy.redact"
local replay = require "procy.replay"
local store = require "procy.store"
local web = require "procy.web"

local M = {}

-- the API's answer to GET path, from the same routes the server has
local function ask(s, path)
  local p, q = path:match("^([^?]*)%??(.*)$")
  local got
  local req = {}
  function req.method() return "GET" end
  function req.path() return p end
  function req.query() return q ~= "" and q or nil end
  function req.header() return nil end
  function req.auth() return "token" end -- the person's own command
  function req.respond(_, status, _, body) got = { status = status, body = body } end
  require("procy.serve").answer(s, req)
  if not got then return core.fail("EIO", path .. ": no answer") end
  local v = json.decode(got.body)
  if got.status ~= 200 then return core.fail("EIO", path .. ": " .. tostring(type(v) == "table" and v.error or got.status)) end
  return v
end

-- the page's ES modules as one script: each runs in a function of its own
-- and hands its exports to the ones that import it (what a bundler does,
-- for the plain `import {a, b} from "./x.js"` and `export function|const`
-- the monitor's modules are written with)
M.modules = { "vendor/xterm.mjs", "dom.js", "api.js", "terminal.js", "evolve.js", "training.js", "app.js" }

local function module_key(spec)
  return (spec:gsub("^%./", ""):gsub("^/web/", ""))
end

function M.bundle()
  local out = { '"use strict";\nconst __m = {};\n' }
  for _, name in ipairs(M.modules) do
    local src = assert(web.file(name), "no web file " .. name)
    local names = {}
    src = src:gsub('import%s*(%b{})%s*from%s*"([^"]+)";?', function(list, spec)
      return "const " .. list:gsub("(%w+)%s+as%s+(%w+)", "%1: %2") .. " = __m[" .. json.encode(module_key(spec)) .. "];"
    end)
    src = src:gsub("export%s*(%b{})%s*;?", function(list) -- export { a as b, c };
      for item in list:sub(2, -2):gmatch("[^,]+") do
        local from, as = item:match("^%s*([%w_$]+)%s+as%s+([%w_$]+)%s*$")
        if not from then from = item:match("^%s*([%w_$]+)%s*$") as = from end
        if from then names[#names + 1] = as .. ": " .. from end
      end
      return ""
    end)
    src = src:gsub("export%s+(async%s+function%*?%s+)([%w_$]+)", function(kw, n) names[#names + 1] = n return kw .. n end)
    src = src:gsub("export%s+(function%*?%s*)([%w_$]+)", function(kw, n) names[#names + 1] = n return kw .. n end)
    src = src:gsub("export%s+(const%s+)([%w_$]+)", function(kw, n) names[#names + 1] = n return kw .. n end)
    out[#out + 1] = ("__m[%s] = (() => {\n%s\nreturn { %s };\n})();\n"):format(json.encode(name), src, table.concat(names, ", "))
  end
  -- inline: nothing in the script may close its <script> element
  return (table.concat(out):gsub("</([sS][cC][rR][iI][pP][tT])", "<\\/%1"))
end

-- the terminal's frames and events, for the player's export source
local function terminal(s, row, meta, calls)
  local ix = assert(replay.index(row, s.reader))
  local frames = json.array()
  for i, f in ipairs(ix.frames) do
    frames[i] = { t = f.t - ix.start, after = f.after, data = json.base64(replay.record(f.t - ix.start, "r", f.cols .. "x" .. f.rows)
      .. replay.record(f.t - ix.start, "s", redact.text(f.data))) }
  end
  local recs, ids, after = {}, json.array(), 0
  while true do
    local page = assert(store.events_page(row.id, after, "ormxg", 5000, s.reader))
    for _, ev in ipairs(page) do
      local data = ev.data or ""
      if ev.kind == "o" or ev.kind == "m" then data = redact.text(data) end
      recs[#recs + 1] = replay.record(ev.t - ix.start, ev.kind, data)
      ids[#ids + 1] = ev.id
      after = ev.id
    end
    if #page < 5000 then break end
  end
  return { meta = meta, calls = calls, frames = frames, events = json.base64(table.concat(recs)), ids = ids }
end

-- data(row) -> what the page reads: {api = {path = answer}, terminal = {...}, session}
function M.data(row)
  local s = { reader = assert(store.open()), ui = true }
  local api = {}
  local function put(path)
    local v = assert(ask(s, path))
    api[path] = v
    return v
  end
  local id = row.id
  local detail = put("/api/sessions/" .. id)
  local list = assert(ask(s, "/api/sessions?limit=500"))
  local mine = json.array()
  for _, x in ipairs(list.sessions) do if x.id == id then mine[1] = x end end
  if not mine[1] then mine[1] = detail end
  api["/api/sessions?limit=500"] = { sessions = mine }
  -- the calls, in the pages the page asks for them
  local calls, before = {}, nil
  repeat
    local r = put("/api/calls?session=" .. id .. "&limit=1000" .. (before and ("&before=" .. before) or ""))
    for _, c in ipairs(r.calls) do calls[#calls + 1] = c end
    before = r.next ~= json.null and r.next or nil
  until not before
  local oldest = json.array()
  for i = #calls, 1, -1 do oldest[#oldest + 1] = calls[i] end
  for _, c in ipairs(calls) do
    local d = assert(ask(s, "/api/calls/" .. c.id))
    if type(d.request) == "table" and type(d.request.messages) == "table" then
      d.request.messages_omitted = #d.request.messages
      d.request.messages = nil
    end
    api["/api/calls/" .. c.id] = d
    put("/api/calls/" .. c.id .. "/diff")
  end
  put("/api/corrections?session=" .. id .. "&limit=1000")
  for _, r in ipairs(put("/api/runs?session=" .. id).runs) do put("/api/runs/" .. r.id) end
  api["/api/training/jobs"] = { jobs = json.array() }
  api["/api/training/adapters"] = { adapters = json.array() }
  local meta = put("/api/sessions/" .. id .. "/terminal")
  return { api = api, session = id, terminal = terminal(s, row, meta, oldest) }
end

-- html(row) -> the export: one HTML text
function M.html(row)
  local page = assert(web.file("index.html"), "procy was built without its web monitor")
  local data = M.data(row)
  -- the API's answers, redacted with today's rules; "</" cannot close the element
  local text = redact.text(json.encode(data)):gsub("</", "<\\/"):gsub("<!%-%-", "<\\u0021--")
  local csp = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    .. "base-uri 'none'; form-action 'none'"
  page = page:gsub("{{csrf}}", ""):gsub("{{version}}", core.version)
  page = page:gsub('<meta charset="utf%-8">', function(m)
    return m .. '\n<meta http-equiv="Content-Security-Policy" content="' .. csp .. '">'
  end, 1)
  page = page:gsub('<link rel="stylesheet" href="web/([^"]+)">', function(name)
    return "<style>\n" .. assert(web.file(name)):gsub("</", "<\\/") .. "\n</style>"
  end)
  page = page:gsub('<script type="module" src="web/app.js"></script>\n?', "")
  page = page:gsub("<title>[^<]*</title>", function()
    return "<title>procy: session " .. row.id:sub(1, 8) .. "</title>"
  end)
  local start = ('if (!location.hash) history.replaceState(null, "", "#/s/%s/interactions");'):format(row.id)
  local scripts = '<script id="procy-data" type="application/json">' .. text .. "</script>\n"
    .. "<script>" .. start .. "\n" .. M.bundle() .. "</script>\n"
  page = page:gsub("</body>", function() return scripts .. "</body>" end, 1)
  return page
end

return M
