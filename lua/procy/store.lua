-- procy.store: procy's own record, the SQLite file named by the `db`
-- setting. The queries the app needs live here, in one place.

local db = require "procy.db"
local config = require "procy.config"

local M = {}

local handle

-- path() -> the record's file name
function M.path()
  return config.get().db
end

-- open() -> db | nil, err, code. One connection per process, opened on
-- first use with procy's migrations applied.
function M.open()
  if handle then return handle end
  local h, err, code = db.open(M.path())
  if not h then return nil, err, code end
  handle = h
  return h
end

-- counts() -> { table_name = rows } for the record's main tables
function M.counts()
  local h, err, code = M.open()
  if not h then return nil, err, code end
  local out = {}
  for _, name in ipairs { "sessions", "term_events", "turns", "api_calls", "tool_calls", "blobs" } do
    out[name] = h:query("SELECT count(*) AS n FROM " .. name)[1].n
  end
  return out
end

return M
