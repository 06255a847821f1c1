-- procy.blobs: content-addressed storage in the record's `blobs` table.
-- Every blob is named by the SHA-256 of its bytes. A large JSON request
-- body is kept in parts, so what every request repeats is stored once:
-- each big top-level value is its own blob, and a top-level array (the
-- conversation's `messages`, `input`, `tools`) becomes a chain: a node per
-- element holding "the array up to the previous element" by reference plus
-- the new element. Request N+1 then adds only its new messages and a node
-- or two. get() rebuilds any blob byte for byte.
--
-- A chunked blob's data: "=" .. 64 hex digits (a part stored by hash) or
-- "+" .. length .. ":" .. bytes (a part inline), one after another.

local hash = require "procy.hash"
local json = require "procy.json"
local blob = require("procy.db").blob

local M = {}

M.piece_min = 256 -- values and elements smaller than this stay inline

local function exists(db, h)
  return #db:query("SELECT 1 FROM blobs WHERE hash = ?", h) > 0
end

local function insert(db, h, size, data, chunked)
  local ok, err, code = db:exec("INSERT OR IGNORE INTO blobs(hash, size, data, chunked) VALUES (?, ?, ?, ?)",
    h, size, blob(data), chunked and 1 or 0)
  if not ok then error({ err = err, code = code }) end
end

-- put(db, data) -> hash: data kept whole
function M.put(db, data)
  local h = hash.sha256(data)
  insert(db, h, #data, data, false)
  return h
end

local function lit(s) return "+" .. #s .. ":" .. s end

-- A piece of body: its own blob if big enough, else inline.
local function piece(db, body, i, j)
  if j - i + 1 < M.piece_min then return lit(body:sub(i, j)) end
  return "=" .. M.put(db, body:sub(i, j))
end

-- The array body:sub(first, last) as a chain of nodes; returns its hash.
local function chain(db, body, first, last)
  local kind, elems = json.spans(body, first, last)
  if kind ~= "array" or #elems == 0 then return M.put(db, body:sub(first, last)) end
  local ends = {}
  for k, e in ipairs(elems) do ends[k] = e[2] end
  ends[#elems + 1] = last
  local _, digests = hash.sha256(body, first, ends)
  if exists(db, digests[#elems + 1]) then return digests[#elems + 1] end
  -- the longest prefix stored already (the previous request's history)
  local k = #elems
  while k > 0 and not exists(db, digests[k]) do k = k - 1 end
  for n = k + 1, #elems + 1 do
    local from = n == 1 and first or elems[n - 1][2] + 1
    local parts = n == 1 and "" or ("=" .. digests[n - 1])
    if n <= #elems then
      parts = parts .. lit(body:sub(from, elems[n][1] - 1)) .. piece(db, body, elems[n][1], elems[n][2])
    else
      parts = parts .. lit(body:sub(from, last))
    end
    local size = (n <= #elems and elems[n][2] or last) - first + 1
    insert(db, digests[n], size, parts, true)
  end
  return digests[#elems + 1]
end

-- put_body(db, body) -> hash: a request body, JSON kept in parts (any
-- other text whole). Raises {err =, code =} on a database error; run it in
-- a transaction.
function M.put_body(db, body)
  local h = hash.sha256(body)
  if exists(db, h) then return h end
  local kind, members = nil, nil
  if #body >= 4 * M.piece_min then kind, members = json.spans(body) end
  if kind ~= "object" then
    insert(db, h, #body, body, false)
    return h
  end
  local parts, at = {}, 1
  for _, m in ipairs(members) do
    local first, last = m[2], m[3]
    if last - first + 1 >= M.piece_min then
      parts[#parts + 1] = lit(body:sub(at, first - 1))
      local ref = body:byte(first) == 91 --[[ [ ]] and chain(db, body, first, last) or M.put(db, body:sub(first, last))
      parts[#parts + 1] = "=" .. ref
      at = last + 1
    end
  end
  parts[#parts + 1] = lit(body:sub(at))
  insert(db, h, #body, table.concat(parts), true)
  return h
end

-- get(db, hash) -> bytes | nil, "ENOENT: ..."
function M.get(db, h)
  local out, stack = {}, { h }
  while #stack > 0 do
    local top = table.remove(stack)
    if top:sub(1, 1) == "+" then
      out[#out + 1] = top:sub(2)
    else
      local row = db:query("SELECT data, chunked FROM blobs WHERE hash = ?", top)[1]
      if not row then return nil, "ENOENT: no blob " .. top, "ENOENT" end
      if row.chunked == 0 then
        out[#out + 1] = row.data
      else
        -- parts in reverse onto the stack, so they come off in order
        local parts, i, d = {}, 1, row.data
        while i <= #d do
          if d:sub(i, i) == "=" then
            parts[#parts + 1] = d:sub(i + 1, i + 64)
            i = i + 65
          else
            local len, colon = d:match("^%+(%d+)():", i)
            len = tonumber(len)
            if not len then return nil, "EBADBLOB: blob " .. top .. " has broken parts", "EBADBLOB" end
            parts[#parts + 1] = "+" .. d:sub(colon + 1, colon + len)
            i = colon + len + 1
          end
        end
        for k = #parts, 1, -1 do stack[#stack + 1] = parts[k] end
      end
    end
  end
  return table.concat(out)
end

return M
