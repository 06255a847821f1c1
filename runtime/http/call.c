/*
** call.c — a finished call's record (call.h): its size, its table for
** Lua, its end.
*/
#include <stdio.h>
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
	size_t n = sizeof *c + c->req_body.len + c->resp_body.len + c->up_req.len + c->up_resp.len;
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
	free(c->routed);
	buf_free(&c->up_req);
	buf_free(&c->up_resp);
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
	if (c->keyed) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "keyed");
	}
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
	if (c->routed) {
		SET_STR("routed", c->routed);
		lua_pushlstring(L, c->up_req.p ? c->up_req.p : "", c->up_req.len);
		lua_setfield(L, -2, "up_req_body");
		lua_pushlstring(L, c->up_resp.p ? c->up_resp.p : "", c->up_resp.len);
		lua_setfield(L, -2, "up_resp_body");
	}
}

/* ---- a call Lua made ------------------------------------------------------------------------ */

static const char *opt_str(lua_State *L, int t, const char *k, size_t *len)
{
	lua_getfield(L, t, k);
	const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, len) : NULL;
	lua_pop(L, 1); /* the table keeps it */
	return s;
}

static int64_t opt_int(lua_State *L, int t, const char *k)
{
	lua_getfield(L, t, k);
	int64_t v = (int64_t)lua_tonumber(L, -1);
	lua_pop(L, 1);
	return v;
}

static int copy_str(char **dst, const char *s)
{
	return !s || (*dst = strdup(s)) ? 0 : -1;
}

static int copy_buf(buf_t *b, const char *s, size_t len)
{
	return s && len ? buf_add(b, s, len) : 0;
}

/* {{name, value}, ...} */
static int headers_from(lua_State *L, int t, const char *k, xfer_header **out, size_t *n)
{
	*n = 0;
	lua_getfield(L, t, k);
	size_t count = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
	*out = calloc(count ? count : 1, sizeof **out);
	if (!*out) {
		lua_pop(L, 1);
		return -1;
	}
	for (size_t i = 1; i <= count; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i);
		if (!lua_istable(L, -1)) {
			lua_pop(L, 1);
			continue;
		}
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		const char *name = lua_tostring(L, -2), *value = lua_tostring(L, -1);
		if (!name || !value) {
			lua_pop(L, 3);
			continue;
		}
		(*out)[*n].name = strdup(name);
		(*out)[*n].value = strdup(value);
		lua_pop(L, 3);
		if (!(*out)[*n].name || !(*out)[*n].value) {
			free((*out)[*n].name);
			free((*out)[*n].value);
			lua_pop(L, 1);
			return -1;
		}
		(*n)++;
	}
	lua_pop(L, 1);
	return 0;
}

pcall_t *pcall_from(lua_State *L, int idx)
{
	int t = lua_absindex(L, idx);
	luaL_checktype(L, t, LUA_TTABLE);
	pcall_t *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	size_t len = 0;
	const char *s = opt_str(L, t, "session", &len);
	snprintf(c->session, sizeof c->session, "%s", s ? s : "");
	lua_getfield(L, t, "keyed");
	c->keyed = lua_toboolean(L, -1);
	lua_pop(L, 1);
	snprintf(c->method, sizeof c->method, "%s", (s = opt_str(L, t, "method", &len)) ? s : "POST");
	if ((s = opt_str(L, t, "error", &len)))
		snprintf(c->error, sizeof c->error, "%s", s);
	c->status = (int)opt_int(L, t, "status");
	c->started_us = opt_int(L, t, "started_at");
	c->ttfb = opt_int(L, t, "ttfb_us") * 1000;
	c->duration = opt_int(L, t, "duration_us") * 1000;
	lua_getfield(L, t, "aborted");
	c->aborted = lua_toboolean(L, -1);
	lua_pop(L, 1);
	int ok = copy_str(&c->path, opt_str(L, t, "path", &len)) == 0 &&
	         copy_str(&c->url, opt_str(L, t, "upstream", &len)) == 0 &&
	         copy_str(&c->routed, opt_str(L, t, "routed", &len)) == 0 &&
	         headers_from(L, t, "req_headers", &c->req_hdr, &c->nreq) == 0 &&
	         headers_from(L, t, "resp_headers", &c->resp_hdr, &c->nresp) == 0;
	s = opt_str(L, t, "req_body", &len);
	ok = ok && copy_buf(&c->req_body, s, len) == 0;
	s = opt_str(L, t, "resp_body", &len);
	ok = ok && copy_buf(&c->resp_body, s, len) == 0;
	c->resp_total = c->resp_body.len;
	s = opt_str(L, t, "up_req_body", &len);
	ok = ok && copy_buf(&c->up_req, s, len) == 0;
	s = opt_str(L, t, "up_resp_body", &len);
	ok = ok && copy_buf(&c->up_resp, s, len) == 0;
	if (!ok) {
		pcall_free(c);
		return NULL;
	}
	return c;
}
