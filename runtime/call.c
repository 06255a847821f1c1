/*
** call.c — a finished call's record (call.h): its size, its table for
** Lua, its end.
*/
#include <stdlib.h>
#include <string.h>

#include "call.h"

static void headers_free(xfer_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

size_t pcall_size(const pcall_t *c)
{
	size_t n = sizeof *c + c->req_body.len + c->resp_body.len;
	for (size_t i = 0; i < c->nreq; i++)
		n += strlen(c->req_hdr[i].name) + strlen(c->req_hdr[i].value) + 2;
	for (size_t i = 0; i < c->nresp; i++)
		n += strlen(c->resp_hdr[i].name) + strlen(c->resp_hdr[i].value) + 2;
	return n;
}

void pcall_free(pcall_t *c)
{
	free(c->path);
	free(c->url);
	headers_free(c->req_hdr, c->nreq);
	headers_free(c->resp_hdr, c->nresp);
	buf_free(&c->req_body);
	buf_free(&c->resp_body);
	free(c);
}

static void push_headers(lua_State *L, const xfer_header *h, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_createtable(L, 2, 0);
		lua_pushstring(L, h[i].name);
		lua_rawseti(L, -2, 1);
		lua_pushstring(L, h[i].value);
		lua_rawseti(L, -2, 2);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

#define SET_STR(k, v) (lua_pushstring(L, (v)), lua_setfield(L, -2, (k)))
#define SET_INT(k, v) (lua_pushinteger(L, (v)), lua_setfield(L, -2, (k)))

void pcall_push(lua_State *L, const pcall_t *c)
{
	lua_createtable(L, 0, 18);
	if (c->session[0])
		SET_STR("session", c->session);
	SET_STR("method", c->method);
	SET_STR("path", c->path ? c->path : "");
	SET_STR("upstream", c->url ? c->url : "");
	if (c->status)
		SET_INT("status", c->status);
	push_headers(L, c->req_hdr, c->nreq);
	lua_setfield(L, -2, "req_headers");
	push_headers(L, c->resp_hdr, c->nresp);
	lua_setfield(L, -2, "resp_headers");
	lua_pushlstring(L, c->req_body.p ? c->req_body.p : "", c->req_body.len);
	lua_setfield(L, -2, "req_body");
	lua_pushlstring(L, c->resp_body.p ? c->resp_body.p : "", c->resp_body.len);
	lua_setfield(L, -2, "resp_body");
	SET_INT("started_at", c->started_us);
	if (c->status)
		SET_INT("ttfb_us", c->ttfb / 1000);
	SET_INT("duration_us", c->duration / 1000);
	if (c->error[0])
		SET_STR("error", c->error);
	lua_pushboolean(L, c->aborted);
	lua_setfield(L, -2, "aborted");
	lua_pushboolean(L, c->truncated);
	lua_setfield(L, -2, "truncated");
	SET_INT("resp_total", (lua_Integer)c->resp_total);
}
