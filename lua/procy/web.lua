-- procy.web: the monitor in the browser, served by procy serve and by
-- every interactive session. The page (web/: HTML, CSS, ES modules) is
-- built into procy like the Lua modules (PROCY_WEB_PATH serves a
-- checkout's web/ instead, for development); nothing is loaded from
-- outside the binary and the record (the Content-Security-Policy says so
-- to the browser). What the page reads is the JSON API (procy.serve) and
-- /api/events; it writes only with the server's CSRF token, which it is
-- given in the page and a page of another site cannot read.

local core = require "procy.core"
local fs = require "procy.fs"
local json = require "procy.json"
local store = require "procy.store"

local M = {}

M.types = { html = "text/html; charset=utf-8", js = "text/javascript; charset=utf-8", css = "text/css; charset=utf-8",
            svg = "image/svg+xml", json = "application/json", mjs = "text/javascript; charset=utf-8" }

-- The third-party files, from npm (web/package.json), as the page names
-- them (/web/vendor/NAME)
M.vendor = {
  ["xterm.mjs"] = "node_modules/@xterm/xterm/lib/xterm.mjs",
  ["xterm.css"] = "node_modules/@xterm/xterm/css/xterm.css",
}

-- Styles may be inline: xterm.js sizes its rows with a <style> element of
-- its own. Scripts may not, and nothing the record holds becomes HTML.
M.csp = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
  .. "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

-- file(name) -> its text, content type | nil: a file of web/ ("app.js"),
-- from PROCY_WEB_PATH when set, else as built into procy
function M.file(name)
  local vendored = name:match("^vendor/(.+)$")
  if vendored then name = M.vendor[vendored] end
  if not name or not vendored and (not name:match("^[%w_%-][%w_%-%./]*$") or name:find("..", 1, true)) then return nil end
  local ext = name:match("%.(%w+)$")
  if not ext or not M.types[ext] then return nil end
  local dir = os.getenv("PROCY_WEB_PATH")
  local text
  if dir and dir ~= "" then
    local f = io.open(dir .. "/" .. name, "rb")
    if f then text = f:read("a") f:close() end
  else
    text = fs.shipped("web/" .. name)
  end
  if not text then return nil end
  -- no source map is shipped: the browser is not sent looking for one
  if vendored then text = text:gsub("\n//# sourceMappingURL=[^\n]*\n?$", "\n") end
  return text, M.types[ext]
end

local function unescape(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- query(req) -> the query string as a table
function M.query(req)
  local q = {}
  for k, v in (req:query() or ""):gmatch("([^&=]+)=?([^&]*)") do q[unescape(k)] = unescape(v) end
  return q
end

-- args(req, spec, [s]) -> the query's values checked, or nil, "EINVAL:
-- ...": the one way the JSON API reads its parameters, as strictly as the
-- CLI reads its flags. spec maps each parameter a route takes to its kind:
-- "count" (a whole number from 1), "index" (from 0), "number", "time" (as
-- --since takes it: 2026-11-20, 36h, 7d; µs), "session" (an id or prefix,
-- resolved with s.reader: the full id), "flag" (1 or 0: a boolean),
-- "string" (not empty), "list" (comma-separated, not empty), or a list of
-- the words it may be. A parameter the route does not take, given twice,
-- or not of its kind, is refused by name: never ignored, never all-time.
function M.args(req, spec, s)
  local out, seen = {}, {}
  for k, v in (req:query() or ""):gmatch("([^&=]+)=?([^&]*)") do
    k, v = unescape(k), unescape(v)
    local kind = spec[k]
    if not kind then
      local names = {}
      for n in pairs(spec) do names[#names + 1] = n end
      table.sort(names)
      return require("procy.core").fail("EINVAL", ("unknown parameter '%s' (this takes: %s)"):format(k,
        #names > 0 and table.concat(names, ", ") or "none"))
    end
    if seen[k] then return require("procy.core").fail("EINVAL", "parameter '" .. k .. "' given twice") end
    seen[k] = true
    local val, err
    if type(kind) == "table" then
      for _, w in ipairs(kind) do if v == w then val = v end end
      err = not val and ("must be one of " .. table.concat(kind, ", ")) or nil
    elseif kind == "count" or kind == "index" then
      val = math.tointeger(tonumber(v))
      if not val or val < (kind == "count" and 1 or 0) or not v:match("^%d+$") then
        val, err = nil, "must be a whole number" .. (kind == "count" and " from 1" or "")
      end
    elseif kind == "number" then
      val = tonumber(v)
      err = not (val and val == val and val ~= math.huge and val ~= -math.huge) and "must be a number" or nil
    elseif kind == "time" then
      val, err = require("procy.usage").time(v)
      err = err and err:gsub("^EINVAL: ", "")
    elseif kind == "session" then
      local row, rerr = require("procy.store").find_session(v, s and s.reader)
      val, err = row and row.id, rerr and rerr:gsub("^E[%u_]+: ", "")
    elseif kind == "flag" then
      if v == "1" or v == "true" then val = true elseif v == "0" or v == "false" then val = false
      else err = "must be 1 or 0" end
    elseif kind == "list" then
      val = {}
      for w in v:gmatch("[^,]+") do val[#val + 1] = w end
      err = #val == 0 and "must not be empty" or nil
    else -- string
      val, err = v, v == "" and "must not be empty" or nil
    end
    if err then return require("procy.core").fail("EINVAL", ("parameter '%s': %s"):format(k, err)) end
    out[k] = val
  end
  return out
end

-- api_path(path) -> path, tag: a request to procy serve's API as the
-- upstream sees it: /s/TAG/v1/... is /v1/... of the session (or tag) TAG;
-- any other path is itself, with no tag
function M.api_path(path)
  local tag, rest = path:match("^/s/([%w_%-]+)(/v1/.*)$")
  if rest then return rest, tag end
  return path
end

-- reply(req, status, value): a JSON answer; fail(req, status, msg): {error = msg}.
-- The monitor's one door for JSON: what it says passes the record's rule
-- set (what comes from the record did already; an error quoting a
-- request, or anything else, does here).
function M.reply(req, status, value)
  req:respond(status, { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" },
    M.json(value) .. "\n")
end

-- json(value) -> the JSON the monitor sends of value, secrets masked
function M.json(value) return require("procy.redact").text(json.encode(value)) end

function M.fail(req, status, msg)
  M.reply(req, status, { error = msg })
end

-- csrf(s) -> the server's token for writes (made once per server)
function M.csrf(s)
  s.csrf = s.csrf or store.random_hex(16)
  return s.csrf
end

-- write_ok(req, s) -> true | nil, why: a request that changes something
-- carries the person's token in a header (a script, procy's commands), or
-- comes from the monitor's page with its cookie and the server's CSRF
-- token (X-Procy-CSRF). The guard (http_guard.c) let in only the person.
function M.write_ok(req, s)
  if req:auth() == "token" then return true end
  local given = req:header("x-procy-csrf")
  if given and given == M.csrf(s) then return true end
  return nil, "a change needs the X-Procy-CSRF header (the token the monitor's page is given; GET /api/csrf)"
end

local function page(req, status, text, ctype)
  return req:respond(status, { ["Content-Type"] = ctype, ["Content-Security-Policy"] = M.csp,
    ["X-Content-Type-Options"] = "nosniff", ["Referrer-Policy"] = "no-referrer", ["Cache-Control"] = "no-store",
    ["X-Frame-Options"] = "DENY" }, text)
end

-- serve(req, s, path) -> true when it answered: the page and its files
function M.serve(req, s, path)
  if req:method() ~= "GET" and req:method() ~= "HEAD" or not s.ui then return false end
  -- the link procy printed (?token=): the browser is given the token as an
  -- HttpOnly, SameSite=Strict cookie for the server's secret mount
  -- (/p/SECRET/: cookies are not kept apart by port, paths are) and sent
  -- there, without the token in its address
  if req:auth() == "link" then
    local q = req:query()
    req:respond(303, { Location = s.mount .. path .. (q and q ~= "" and "?" .. q or ""), ["Set-Cookie"] = req:cookie(),
      ["Cache-Control"] = "no-store", ["Referrer-Policy"] = "no-referrer" }, "")
    return true
  end
  if path == "/" or path == "/index.html" then
    local text = M.file("index.html")
    if not text then return page(req, 404, "procy was built without its web monitor", "text/plain") or true end
    text = text:gsub("{{csrf}}", M.csrf(s)):gsub("{{version}}", core.version)
    page(req, 200, text, M.types.html)
    return true
  end
  local name = path:match("^/web/(.+)$")
  if name then
    local text, ctype = M.file(name)
    if not text then return page(req, 404, "no such file", "text/plain") or true end
    page(req, 200, text, ctype)
    return true
  end
  if path == "/api/csrf" then
    req:respond(200, { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" },
      json.encode { csrf = M.csrf(s) } .. "\n")
    return true
  end
  return false
end

return M
