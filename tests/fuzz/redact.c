/* redact.c — procy.redact on any text: never a raise, and nothing it
   returns still holds a default secret pattern. */
#include "fuzz.h"

FUZZ_LUA(
	"local redact = require 'procy.redact'\n"
	"redact.settings = { redact = {} }\n"
	"local function clean(t, what)\n"
	"  for _, p in ipairs(redact.default_patterns) do\n"
	"    if t:find(p[2]) then error(what .. ' still holds a secret: ' .. t:sub(1, 80)) end\n"
	"  end\n"
	"end\n"
	"return function(s)\n"
	"  clean(redact.redact(s), 'redact')\n"
	"  redact.text(s)\n"
	"  redact.url('/v1/messages?' .. s)\n"
	"  redact.headers { { 'x-api-key', s }, { 'authorization', s }, { 'x-other', s } }\n"
	"  local sp = redact.spans(s)\n"
	"  for i = 1, #sp, 2 do assert(sp[i] <= sp[i + 1] and (i == 1 or sp[i] > sp[i - 1]), 'spans sorted, apart') end\n"
	"end\n")
