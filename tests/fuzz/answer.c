/* answer.c — procy.answer: the SSE splitter, the stream redaction and the
   parser of each API, streamed and whole, on any bytes: never a raise. */
#include "fuzz.h"

FUZZ_LUA(
	"local answer = require 'procy.record.answer'\n"
	"require('procy.redact').settings = { redact = {} }\n"
	"return function(s)\n"
	"  answer.sse(s)\n"
	"  answer.redact_stream(s)\n"
	"  for _, api in ipairs { 'anthropic', 'openai-chat', 'openai-responses', 'gemini', 'other' } do\n"
	"    for _, stream in ipairs { true, false } do\n"
	"      local out = { content = {}, usage = {}, bad = 0, odd = 0, events = 0 }\n"
	"      answer.parse[api](out, s, stream)\n"
	"    end\n"
	"  end\n"
	"end\n")
