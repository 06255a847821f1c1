/*
** http_request.c — procy.http's client for Lua: http.request (the whole
** answer) and http.stream (the headers, then the body piece by piece or
** as server-sent events), each a transfer of http_client.c. The task
** waits on an op; the transfer's callbacks fill buffers and complete it.
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define PROCY_STREAM_MT "procy.http.stream"

/* One request from Lua. For http.request the op waits for the whole
   answer; for http.stream it waits for the headers, then `reader` waits for
   each piece. */
typedef struct lcall {
	runtime_t *rt;
	xfer_t *x;          /* NULL once finished */
	op_t   *op, *reader;
	int     stream, by_event, has_handle, anchor;
	buf_t   body;       /* the answer (request), or what waits for a read (stream) */
	size_t  off;
	char    code[32], msg[256]; /* how it failed */
	int     ended;
	/* SSE: the event being assembled */
	buf_t   ev_type, ev_data, ev_id;
	int     ev_any, ev_lines;
} lcall_t;

static void lcall_free(lcall_t *c)
{
	buf_free(&c->body);
	buf_free(&c->ev_type);
	buf_free(&c->ev_data);
	buf_free(&c->ev_id);
	free(c);
}

static void push_headers(lua_State *L, const xfer_t *x)
{
	lua_createtable(L, 0, (int)x->nhdr);
	for (size_t i = 0; i < x->nhdr; i++) {
		luaL_Buffer b;
		luaL_buffinit(L, &b);
		for (const char *p = x->hdr[i].name; *p; p++)
			luaL_addchar(&b, (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p));
		luaL_pushresult(&b);
		lua_pushvalue(L, -1);
		if (lua_rawget(L, -3) == LUA_TSTRING) { /* repeated: joined as HTTP allows */
			lua_pushfstring(L, "%s, %s", lua_tostring(L, -1), x->hdr[i].value);
			lua_remove(L, -2);
		} else {
			lua_pop(L, 1);
			lua_pushstring(L, x->hdr[i].value);
		}
		lua_rawset(L, -3);
	}
}

/* Pushes one complete SSE event from c->body as {event, data, id}, or
   returns 0 when none is complete yet (or, at the end, the last one). */
static int next_event(lua_State *L, lcall_t *c)
{
	for (;;) {
		const char *start = c->body.p ? c->body.p + c->off : NULL;
		size_t avail = c->body.len - c->off;
		const char *nl = avail ? memchr(start, '\n', avail) : NULL;
		if (!nl && !(c->ended && avail))
			break;
		size_t n = nl ? (size_t)(nl - start) : avail;
		c->off += nl ? n + 1 : n;
		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (n == 0) { /* blank line: dispatch */
			if (!c->ev_any)
				continue;
			lua_createtable(L, 0, 3);
			lua_pushlstring(L, c->ev_type.len ? c->ev_type.p : "message", c->ev_type.len ? c->ev_type.len : 7);
			lua_setfield(L, -2, "event");
			lua_pushlstring(L, c->ev_data.p ? c->ev_data.p : "", c->ev_data.len);
			lua_setfield(L, -2, "data");
			if (c->ev_id.len) {
				lua_pushlstring(L, c->ev_id.p, c->ev_id.len);
				lua_setfield(L, -2, "id");
			}
			c->ev_type.len = c->ev_data.len = c->ev_id.len = 0;
			c->ev_any = c->ev_lines = 0;
			return 1;
		}
		if (start[0] == ':')
			continue; /* a comment */
		const char *colon = memchr(start, ':', n);
		size_t flen = colon ? (size_t)(colon - start) : n;
		const char *v = colon ? colon + 1 : start + n;
		if (v < start + n && *v == ' ')
			v++;
		size_t vlen = (size_t)(start + n - v);
		if (flen == 5 && memcmp(start, "event", 5) == 0) {
			c->ev_type.len = 0;
			buf_add(&c->ev_type, v, vlen);
		} else if (flen == 4 && memcmp(start, "data", 4) == 0) {
			if (c->ev_lines++) /* several data lines join with newlines */
				buf_add(&c->ev_data, "\n", 1);
			buf_add(&c->ev_data, v, vlen);
		} else if (flen == 2 && memcmp(start, "id", 2) == 0) {
			c->ev_id.len = 0;
			buf_add(&c->ev_id, v, vlen);
		}
		c->ev_any = 1;
	}
	if (c->off == c->body.len)
		c->body.len = c->off = 0;
	return 0;
}

/* Pushes what a stream reader gets now (a chunk or an event); 0 if none. */
static int give(lua_State *L, lcall_t *c)
{
	if (c->by_event)
		return next_event(L, c);
	if (c->body.len == c->off)
		return 0;
	lua_pushlstring(L, c->body.p + c->off, c->body.len - c->off);
	c->body.len = c->off = 0;
	return 1;
}

static void push_ending(lua_State *L, lcall_t *c)
{
	if (c->code[0])
		procy_fail(L, c->code, "%s", c->msg);
	else
		lua_pushnil(L);
}

static void stream_wake(lcall_t *c)
{
	lua_State *L = c->rt->L;
	if (!c->reader)
		return;
	if (give(L, c)) {
		op_complete(L, waiter_take(&c->reader), 1);
	} else if (c->ended) {
		op_t *op = waiter_take(&c->reader);
		push_ending(L, c);
		op_complete(L, op, c->code[0] ? 3 : 1);
	}
}

static void on_headers(xfer_t *x, void *ud)
{
	lcall_t *c = ud;
	if (!c->stream || !c->op)
		return;
	lua_State *L = c->rt->L;
	op_t *op = c->op;
	c->op = NULL;
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->anchor); /* the handle */
	lua_pushinteger(L, x->status);
	push_headers(L, x);
	op_complete(L, op, 3);
}

static void on_data(xfer_t *x, void *ud, const char *p, size_t n)
{
	(void)x;
	lcall_t *c = ud;
	if (buf_add(&c->body, p, n) < 0) {
		snprintf(c->code, sizeof c->code, "ENOMEM");
		xfer_abort(x);
		return;
	}
	if (c->stream)
		stream_wake(c);
}

static void on_done(xfer_t *x, void *ud, const char *code, const char *msg)
{
	lcall_t *c = ud;
	lua_State *L = c->rt->L;
	c->x = NULL;
	c->ended = 1;
	if (code) {
		snprintf(c->code, sizeof c->code, "%s", code);
		snprintf(c->msg, sizeof c->msg, "%s", msg);
	}
	if (c->op) { /* http.request, or a stream that never got headers */
		op_t *op = c->op;
		c->op = NULL;
		if (code) {
			op_fail(L, op, code, "%s", msg);
		} else {
			lua_createtable(L, 0, 4);
			lua_pushinteger(L, x->status);
			lua_setfield(L, -2, "status");
			push_headers(L, x);
			lua_setfield(L, -2, "headers");
			lua_pushlstring(L, c->body.p ? c->body.p : "", c->body.len);
			lua_setfield(L, -2, "body");
			op_complete(L, op, 1);
		}
	}
	if (c->stream) {
		stream_wake(c);
		luaL_unref(L, LUA_REGISTRYINDEX, c->anchor); /* the handle may go now */
		c->anchor = LUA_NOREF;
	} else {
		lcall_free(c);
	}
}

static const xfer_cb lua_cb = { on_headers, on_data, on_done };

static void request_cancel(op_t *op)
{
	lcall_t *c = op->data;
	lua_State *L = c->rt->L;
	c->op = NULL;
	if (c->x) {
		xfer_abort(c->x);
		c->x = NULL;
	}
	if (!c->stream) {
		lcall_free(c);
	} else { /* the handle was never given out: let it be collected */
		luaL_unref(L, LUA_REGISTRYINDEX, c->anchor);
		c->anchor = LUA_NOREF;
	}
}

static const op_class request_class = { "http request", request_cancel };

static const op_class reader_class = { "http read", waiter_cancel }; /* a read timed out: the stream goes on */

/* Reads {method, url, headers = {name = value | {values}}, body, timeout,
   connect_timeout, stall_timeout} at idx and starts the transfer. Pushes
   a failure tuple and returns NULL if it cannot start. */
static xfer_t *start_from(lua_State *L, int idx, lcall_t *c)
{
	xfer_req r = { 0 };
	c->rt = procy_rt(L);
	lua_getfield(L, idx, "url");
	r.url = luaL_checkstring(L, -1);
	lua_getfield(L, idx, "method");
	r.method = luaL_optstring(L, -1, NULL);
	lua_getfield(L, idx, "body");
	r.body = luaL_optlstring(L, -1, NULL, &r.body_len);
	r.timeout = procy_opt_number(L, idx, "timeout", 0);
	r.connect_timeout = procy_opt_number(L, idx, "connect_timeout", 30);
	r.stall_timeout = procy_opt_number(L, idx, "stall_timeout", c->stream ? 300 : 0);
	lua_newtable(L); /* keeps the header lines alive */
	int keep = lua_gettop(L), n = 0;
	if (lua_getfield(L, idx, "headers") == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			if (lua_type(L, -2) != LUA_TSTRING)
				luaL_error(L, "http: header names must be strings");
			const char *name = lua_tostring(L, -2);
			int many = lua_istable(L, -1);
			for (lua_Integer i = 1; !many || lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
				const char *value = luaL_tolstring(L, -1, NULL);
				lua_pushfstring(L, "%s: %s", name, value);
				lua_rawseti(L, keep, ++n);
				lua_pop(L, many ? 2 : 1);
				if (!many)
					break;
			}
			lua_pop(L, many ? 2 : 1);
		}
	}
	lua_pop(L, 1);
	char **lines = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
	for (int i = 0; i < n; i++) {
		lua_rawgeti(L, keep, i + 1);
		lines[i] = (char *)lua_tostring(L, -1);
		lua_pop(L, 1);
	}
	lines[n] = NULL;
	r.headers = lines;
	err_t err;
	xfer_t *x = xfer_start(c->rt, &r, &lua_cb, c, &err);
	if (!x)
		procy_fail(L, err.code, "%s: %s", r.url, err.msg);
	return x;
}

/* request{method, url, headers, body, timeout, ...} -> {status, headers, body}
   | nil, err, code. Headers come back with lower-case names. */
static int http_request(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lcall_t *c = calloc(1, sizeof *c);
	if (!c)
		return luaL_error(L, "http: out of memory");
	if (!(c->x = start_from(L, 1, c))) {
		lcall_free(c);
		return 3;
	}
	lua_settop(L, 0);
	c->op = op_new(L, &request_class, 0);
	c->op->data = c;
	return op_await(L, 1, -1);
}

/* stream{...} -> handle, status, headers | nil, err, code. Waits for the
   headers; the body is read with handle:read() or handle:events(). */
static int http_stream(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lcall_t *c = calloc(1, sizeof *c);
	if (!c)
		return luaL_error(L, "http: out of memory");
	c->stream = 1;
	c->anchor = LUA_NOREF;
	if (!(c->x = start_from(L, 1, c))) {
		lcall_free(c);
		return 3;
	}
	lua_settop(L, 0);
	lcall_t **h = lua_newuserdatauv(L, sizeof *h, 0);
	*h = c;
	c->has_handle = 1;
	luaL_setmetatable(L, PROCY_STREAM_MT);
	c->anchor = luaL_ref(L, LUA_REGISTRYINDEX); /* alive while the transfer runs */
	c->op = op_new(L, &request_class, 0);
	c->op->data = c;
	return op_await(L, 1, -1);
}

static lcall_t *check_stream(lua_State *L)
{
	lcall_t **h = luaL_checkudata(L, 1, PROCY_STREAM_MT);
	if (!*h)
		luaL_error(L, "http: stream is closed");
	return *h;
}

static int next_piece(lua_State *L, lcall_t *c, int by_event, double timeout)
{
	c->by_event = by_event;
	if (give(L, c))
		return 1;
	if (c->ended) {
		push_ending(L, c);
		return c->code[0] ? 3 : 1;
	}
	if (c->reader)
		return luaL_error(L, "http: another task is already reading this stream");
	return waiter_wait(L, &c->reader, &reader_class, timeout);
}

/* s:read([timeout]) -> the bytes that arrived (waiting for some), nil at
   the end, or nil, err, code (the transfer failed, or the timeout) */
static int s_read(lua_State *L)
{
	lcall_t *c = check_stream(L);
	return next_piece(L, c, 0, luaL_optnumber(L, 2, -1));
}

static int events_iter(lua_State *L)
{
	lcall_t **h = luaL_checkudata(L, lua_upvalueindex(1), PROCY_STREAM_MT);
	if (!*h)
		return 0;
	int n = next_piece(L, *h, 1, -1);
	if (n == 3)
		return luaL_error(L, "%s", lua_tostring(L, -2)); /* a broken stream ends the loop loudly */
	return n;
}

/* s:events() -> iterator over server-sent events {event, data, id} */
static int s_events(lua_State *L)
{
	check_stream(L);
	lua_settop(L, 1);
	lua_pushcclosure(L, events_iter, 1);
	return 1;
}

/* s:close() (also __gc, __close): stops the transfer */
static int s_close(lua_State *L)
{
	lcall_t **h = luaL_checkudata(L, 1, PROCY_STREAM_MT);
	lcall_t *c = *h;
	if (!c)
		return 0;
	*h = NULL;
	if (c->reader)
		op_cancel(L, c->reader);
	if (c->x) {
		xfer_abort(c->x);
		c->x = NULL;
	}
	if (c->anchor != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, c->anchor);
	lcall_free(c);
	return 0;
}

static const luaL_Reg stream_methods[] = {
	{ "read",   s_read },
	{ "events", s_events },
	{ "close",  s_close },
	{ NULL, NULL }
};

static const luaL_Reg http_funcs[] = {
	{ "request", http_request },
	{ "stream",  http_stream },
	{ NULL, NULL }
};

/* [-0, +1] The client's functions, as a new table (luaopen_procy_http). */
void http_client_open(lua_State *L)
{
	procy_class(L, PROCY_STREAM_MT, stream_methods, s_close, NULL);
	luaL_newlib(L, http_funcs);
}
