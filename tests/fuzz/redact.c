/* redact.c — procy.redact on any text: never a raise, nothing it returns
   still holds a default secret pattern, and every match a default rule
   has where one of its literals stands is inside a masked span. */
#include "fuzz.h"

FUZZ_LUA(
	"local redact = require 'procy.redact'\n"
	"redact.settings = { redact = {} }\n"
	/* a keyish rule's match is a key only when it looks random (a digit
	   or a capital; both when a word runs into it): as procy.redact says */
	"local function key(t, a, b, p)\n"
	"  if not p.keyish then return true end\n"
	"  local m = t:sub(a, b)\n"
	"  local d, u = m:find('%d'), m:find('%u')\n"
	"  if a > 1 and t:sub(a - 1, a - 1):match('%w') then return d and u end\n"
	"  return d or u\n"
	"end\n"
	"local function clean(t, what)\n"
	"  for _, p in ipairs(redact.default_patterns) do\n"
	"    local a, b = t:find(p[2])\n"
	"    while a do\n"
	"      if key(t, a, b, p) then error(what .. ' still holds a secret: ' .. t:sub(1, 80)) end\n"
	"      a, b = t:find(p[2], a + 1)\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return function(s)\n"
	"  clean(redact.redact(s), 'redact')\n"
	"  redact.text(s)\n"
	"  redact.url('/v1/messages?' .. s)\n"
	"  redact.headers { { 'x-api-key', s }, { 'authorization', s }, { 'x-other', s } }\n"
	/* as the terminal's recorder asks: a screen 80 wide, a line feed
	   said to be straddled; its spans are sorted and apart too, and cover
	   at least what the plain look's do */
	"  local wide = redact.spans(s, 80, { #s // 2 + 1 })\n"
	"  for i = 1, #wide, 2 do assert(wide[i] <= wide[i + 1] and (i == 1 or wide[i] > wide[i - 1]), 'row spans sorted, apart') end\n"
	"  local sp = redact.spans(s)\n"
	"  for i = 1, #sp, 2 do assert(sp[i] <= sp[i + 1] and (i == 1 or sp[i] > sp[i - 1]), 'spans sorted, apart') end\n"
	"  for i = 1, #sp, 2 do\n"
	"    local ok = false\n"
	"    for j = 1, #wide, 2 do if wide[j] <= sp[i] and sp[i + 1] <= wide[j + 1] then ok = true end end\n"
	"    if not ok then error('a span the plain look masks, the rows look does not: ' .. sp[i]) end\n"
	"  end\n"
	/* every match a default rule has at any of its literals lies inside
	   a span: keys that overlap or touch are masked whole */
	"  local function covered(a, b)\n"
	"    for i = 1, #sp, 2 do if sp[i] <= a and b <= sp[i + 1] then return true end end\n"
	"  end\n"
	"  for _, p in ipairs(redact.default_patterns) do\n"
	"    for _, lit in ipairs(p[3]) do\n"
	"      local q = s:find(lit, 1, true)\n"
	"      while q do\n"
	"        local a, b, from = s:find('^' .. p[2], q)\n"
	"        if type(from) == 'number' then a = from end -- the secret starts there (AWS: after its name)\n"
	"        if a and key(s, q, b, p) and not covered(a, b) then error('a match left unmasked at ' .. a .. ': ' .. s:sub(a, b)) end\n"
	"        q = s:find(lit, q + 1, true)\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"end\n")
