-- procy.json from a recipe: round trips and the failure tuple.
local T = require "lib.tap"
local json = require "procy.json"

local text = "naïve café — 日本語 — Ελληνικά — 😀 — \"quoted\" \\ back\tslash\n"
local doc = { text = text, list = { 1, 2.5, -3, json.null, true, false }, empty = json.array(),
              nested = { deeper = { big = 9007199254740993, tiny = 1e-300 } }, obj = {} }
local s = json.encode(doc, { sort = true })
local back = assert(json.decode(s))
T.is(back.text, text, "unicode text survives a round trip")
T.is(json.encode(back, { sort = true }), s, "the whole document survives a round trip")
T.is(back.nested.deeper.big, 9007199254740993, "integers beyond 2^53 stay exact")
T.is(back.list[4], json.null, "null is json.null")
T.is(#back.list, 6, "an array with null keeps its length")
T.like(s, '"empty":%[%]', "json.array() encodes as []")
T.like(s, '"obj":{}', "an empty table encodes as {}")
T.is(json.decode('"\\u65e5\\u672c\\ud83d\\ude00"'), "日本😀", "\\u escapes decode to UTF-8")

local v, err, code = json.decode('{"a": [1, 2,, 3]}')
T.is(v, nil, "broken input gives nil")
T.is(code, "EJSON", "with the EJSON code")
T.like(err, "^EJSON: .* at line 1 column 13", "and the place")
T.ok(not pcall(json.encode, { f = function() end }), "encoding a function raises")

local pretty = json.encode({ a = { 1, 2 }, b = "x" }, { indent = true, sort = true })
T.is(pretty, '{\n  "a": [\n    1,\n    2\n  ],\n  "b": "x"\n}', "indent = true pretty-prints with two spaces")

return T.done()
