/* json.c — procy.json: decode never raises; what decodes encodes, and
   that encoding decodes back to the same encoding. jscan (json.spans)
   accepts no text the decoder rejects. */
#include "fuzz.h"

FUZZ_LUA(
	"local json = require 'procy.json'\n"
	"return function(s)\n"
	"  local v = json.decode(s)\n"
	"  local kind = json.spans(s)\n"
	"  if kind and v == nil then error('spans accepts what decode rejects') end\n"
	"  json.escaped(s)\n"
	"  if v == nil then return end\n"
	"  local ok, e = pcall(json.encode, v)\n"
	"  if not ok then return end -- a value JSON cannot hold (too deep): a raise is the contract\n"
	"  local w = json.decode(e)\n"
	"  if w == nil then error('an encoding does not decode: ' .. e:sub(1, 80)) end\n"
	"  -- invalid UTF-8 is written as \\ufffd: after one round the text is stable\n"
	"  local S = { sort = true } -- a table's own order is not the text's\n"
	"  local e2 = json.encode(w, S)\n"
	"  if json.encode(json.decode(e2), S) ~= e2 then error('encode/decode does not round-trip: ' .. e2:sub(1, 80)) end\n"
	"  local sorted = json.encode(v, { sort = true, indent = true })\n"
	"  if json.decode(sorted) == nil then error('the indented form does not decode') end\n"
	"end\n")
