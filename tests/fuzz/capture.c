/* capture.c — procy.capture.prepare, the whole of what the recorder does
   to a call before it writes it (redaction, the request's analysis, the
   answer's parser), on any request and answer: it never raises. The input
   is split at its first NUL: request body, then answer. */
#include "fuzz.h"

FUZZ_LUA(
	"local capture = require 'procy.record.capture'\n"
	"require('procy.redact').settings = { redact = {} }\n"
	"require('procy.prices').extra = {}\n"
	"local paths = { '/v1/messages', '/v1/chat/completions', '/v1/responses', '/v1/models?key=x',\n"
	"  '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', '/v1beta/models/g%2Fx:generateContent' }\n"
	"return function(s)\n"
	"  local req, resp = s:match('^(.-)%z(.*)$')\n"
	"  req, resp = req or s, resp or s\n"
	"  for i, path in ipairs(paths) do\n"
	"    for _, ctype in ipairs { 'text/event-stream', 'application/json' } do\n"
	"      local row = capture.prepare { method = 'POST', path = path, upstream = 'http://u' .. path,\n"
	"        status = 200 + i, req_headers = { { 'User-Agent', 'claude-cli/2.1.330' }, { 'x-api-key', 'sk-x' } },\n"
	"        resp_headers = { { 'content-type', ctype } }, req_body = req, resp_body = resp,\n"
	"        started_at = 1, duration_us = 2 }\n"
	"      assert(type(row.content) == 'table' and type(row.results) == 'table', 'the row has its shape')\n"
	"    end\n"
	"  end\n"
	"end\n")
