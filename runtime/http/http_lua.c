/*
** http_lua.c — `procy.http.serve`: the server (http_server.c) for Lua.
** srv:accept() hands out the requests the proxy does not take, each
** answered with req:respond, req:file or req:stream from any task;
** srv:calls() hands out the proxy's finished calls (recorded, when the
** server records them).
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "api_record.h"
#include "server.h"

#define PROCY_SERVER_MT  "procy.http.server"
#define PROCY_REQUEST_MT "procy.http.req"
#define STREAM_DROP      (1 << 20) /* a streamed response this far behind is dropped */

/* ---- Lua: http.serve ------------------------------------------------------------------------ */

typedef struct lserver {
	server_t *srv;
} lserver_t;

static void push_request(lua_State *L, hreq_t *r);

/* srv->to_lua: a request no one in C answers, for srv:accept() */
static void hand_to_lua(server_t *srv, hreq_t *r)
{
	r->holders++; /* the Lua handle's, once it exists */
	op_t *op = waiter_take(&srv->acceptor);
	if (op) {
		push_request(srv->rt->L, r);
		op_complete(srv->rt->L, op, 1);
		return;
	}
	list_push(&srv->waiting, &r->queued);
}

/* [-0, +1] The next call for srv:calls(): recorded, or raw */
static int next_call(server_t *srv, lua_State *L)
{
	return srv->capture ? capture_next(srv->capture, L) : proxy_next_record(srv, L);
}

/* srv->recorded, and the capture's sink: a call's record is ready */
static void record_ready(server_t *srv)
{
	if (srv->capture && srv->running)
		proxy_resume_held(srv); /* the recorder made room */
	if (srv->recorder && next_call(srv, srv->rt->L))
		op_complete(srv->rt->L, waiter_take(&srv->recorder), 1);
}

static void capture_ready(void *srv)
{
	record_ready(srv);
}

/* srv->on_stop: the proxy's calls end, and the capture records them */
static void stop_layers(server_t *srv)
{
	proxy_stop_all(srv);
	if (srv->capture)
		capture_stop(srv->capture);
}

/* A closed server is stopped (server_stop) but kept until collected, so
   the calls it finished can still be read. */
static server_t *check_server(lua_State *L, int open)
{
	lserver_t *ls = luaL_checkudata(L, 1, PROCY_SERVER_MT);
	if (!ls->srv || (open && !ls->srv->running))
		luaL_error(L, "http: server is closed");
	return ls->srv;
}

static const op_class accept_class = { "http accept", waiter_cancel };
static const op_class record_class = { "proxy record", waiter_cancel };

/* srv:accept([timeout]) -> the next request not for the proxy */
static int srv_accept(lua_State *L)
{
	server_t *srv = check_server(L, 1);
	double timeout = luaL_optnumber(L, 2, -1);
	if (srv->waiting.head) {
		hreq_t *r = list_item(srv->waiting.head, hreq_t, queued);
		list_remove(&srv->waiting, &r->queued);
		push_request(L, r);
		return 1;
	}
	if (srv->acceptor)
		return luaL_error(L, "http: another task is already accepting");
	return waiter_wait(L, &srv->acceptor, &accept_class, timeout);
}

/* srv:calls([timeout]) -> the next finished proxy call, as a record table
   (timeout 0: only if one is waiting now) */
static int srv_calls(lua_State *L)
{
	server_t *srv = check_server(L, 0);
	double timeout = luaL_optnumber(L, 2, -1);
	if (next_call(srv, L))
		return 1;
	if (!srv->running)
		return procy_fail(L, "EPIPE", "the server is closed and every call was read");
	if (timeout == 0) /* a look, no wait */
		return procy_fail(L, "ETIMEDOUT", "no call is waiting");
	if (srv->recorder)
		return luaL_error(L, "http: another task is already reading calls");
	return waiter_wait(L, &srv->recorder, &record_class, timeout);
}

/* srv:inflight([tag]) -> how many proxied calls are under way (for tag);
   and how many more have ended but are not yet told by srv:calls() */
static int srv_inflight(lua_State *L)
{
	server_t *srv = check_server(L, 0);
	lua_pushinteger(L, proxy_inflight(srv, luaL_optstring(L, 2, NULL)));
	lua_pushinteger(L, srv->capture ? (lua_Integer)capture_untold(srv->capture) : 0);
	return 2;
}

/* srv:stats() -> {relayed, waited, held, recorded, marked, lost, queued,
   queued_bytes, failures, failing}: what the proxy relayed and what the
   record made of it */
static int srv_stats(lua_State *L)
{
	server_t *srv = check_server(L, 0);
	size_t relayed, waited, held;
	proxy_counts(srv, &relayed, &waited, &held);
	capture_stats cs = { 0 };
	if (srv->capture)
		capture_get_stats(srv->capture, &cs);
	lua_createtable(L, 0, 10);
#define STAT(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
	STAT("relayed", relayed);
	STAT("waited", waited);
	STAT("held", held);
	STAT("recorded", cs.recorded);
	STAT("marked", cs.marked);
	STAT("lost", cs.lost);
	STAT("queued", cs.queued);
	STAT("queued_bytes", cs.queued_bytes);
	STAT("failures", cs.failures);
#undef STAT
	if (cs.error[0]) {
		lua_pushstring(L, cs.error);
		lua_setfield(L, -2, "failing");
	}
	return 1;
}

/* srv:record(call): a call Lua made itself (a routed one: procy.route),
   recorded like the proxy's own and told by srv:calls() */
static int srv_record(lua_State *L)
{
	server_t *srv = check_server(L, 0);
	if (!srv->proxy)
		return luaL_error(L, "http: srv:record needs a server with a proxy");
	pcall_t *c = pcall_from(L, 2);
	if (!c)
		return procy_fail(L, "ENOMEM", "out of memory");
	proxy_deliver(srv, c);
	lua_pushboolean(L, 1);
	return 1;
}

static int srv_port(lua_State *L)
{
	lua_pushinteger(L, check_server(L, 0)->port);
	return 1;
}

/* srv:token() -> the person's token (given to serve, or made there) */
static int srv_token(lua_State *L)
{
	lua_pushstring(L, check_server(L, 0)->token);
	return 1;
}

/* srv:mount() -> "/p/SECRET": where the monitor's pages are for a browser
   with the cookie (req:cookie() sets it for that path alone) */
static int srv_mount(lua_State *L)
{
	lua_pushstring(L, check_server(L, 0)->mount);
	return 1;
}

/* srv:key(key, id): /s/KEY/... opens session id's routes (and /s/ID/...
   is refused from now on); srv:key(key) takes it away. key: 16 to 64
   characters of letters and digits. */
static int srv_key(lua_State *L)
{
	server_t *srv = check_server(L, 0);
	const char *key = luaL_checkstring(L, 2), *id = luaL_optstring(L, 3, NULL);
	size_t n = strlen(key);
	if (n < 16 || n > 64 || strspn(key, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != n)
		return luaL_error(L, "http: a session key is 16 to 64 letters and digits");
	if (id && (strlen(id) > 64 || !*id))
		return luaL_error(L, "http: a session id is 1 to 64 characters");
	if (server_key(srv, key, id) < 0)
		return procy_fail_errno(L, ENOMEM, "session key");
	return 0;
}

/* srv:close() (also __close): stops listening; open requests end, and
   the calls they were making are finished for srv:calls(). */
static int srv_close(lua_State *L)
{
	server_t *srv = check_server(L, 0);
	if (!srv->running)
		return 0;
	if (srv->acceptor)
		op_cancel(L, srv->acceptor);
	server_stop(srv); /* wakes a reader with the last calls */
	if (srv->recorder)
		op_fail(L, srv->recorder, "EPIPE", "the server is closed");
	luaL_unref(L, LUA_REGISTRYINDEX, srv->anchor);
	srv->anchor = LUA_NOREF;
	return 0;
}

static int srv_gc(lua_State *L)
{
	lserver_t *ls = luaL_checkudata(L, 1, PROCY_SERVER_MT);
	server_t *srv = ls->srv;
	if (!srv)
		return 0;
	srv_close(L);
	ls->srv = NULL;
	capture_free(srv->capture);
	if (srv->proxy)
		proxy_free(srv->proxy);
	free(srv->token);
	server_keys_free(srv);
	/* requests still held by Lua handles keep their memory until collected */
	if (!srv->live.head)
		free(srv);
	else
		srv->rt = NULL; /* freed with its last request (see req_gc) */
	return 0;
}

/* serve{host = "127.0.0.1", port = 7862, token =, max_body =, idle_timeout = 30, lazy =,
   proxy = {anthropic =, openai =, google =, stall_timeout = 600, divert = false},
   record = {db =, session =, redact =, prices =, max_queued = 4096,
   max_queued_bytes = 64 MB}} -> server | nil, err, code */
static int http_serve(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lua_getfield(L, 1, "host");
	const char *host = luaL_optstring(L, -1, "127.0.0.1");
	int port = (int)procy_opt_number(L, 1, "port", 7862);
	lua_getfield(L, 1, "token");
	const char *token = luaL_optstring(L, -1, NULL);
	if (strcmp(host, "127.0.0.1") != 0 && !token)
		return luaL_error(L, "http: listening on %s needs a token of 16 or more characters", host);
	if (token && strlen(token) < 16) /* a guessable one opens the person's routes */
		return luaL_error(L, "http: a token is 16 or more characters");
	err_t err;
	server_t *srv = server_start(procy_rt(L), host, port, &err);
	if (!srv)
		return procy_fail_err(L, &err);
	/* libmicrohttpd is loaded at the first client (a session whose agent
	   never calls costs nothing); unless lazy, whether it can be is known
	   now, not when a client is refused */
	lua_getfield(L, 1, "lazy");
	int lazy = lua_toboolean(L, -1);
	lua_pop(L, 1);
	if (!lazy && libload_mhd(&err) < 0) {
		server_stop(srv);
		free(srv);
		return procy_fail_err(L, &err);
	}
	srv->max_body = (size_t)procy_opt_number(L, 1, "max_body", 64.0 * 1024 * 1024);
	srv->idle_timeout = (unsigned)procy_opt_number(L, 1, "idle_timeout", 30);
	srv->route = proxy_route;
	srv->to_lua = hand_to_lua;
	srv->on_stop = stop_layers;
	srv->recorded = record_ready;
	/* the person's token: given, or made here (the monitor is never open) */
	char made[33];
	if (!token) {
		unsigned char raw[16];
		if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
			server_stop(srv);
			free(srv);
			return procy_fail_errno(L, errno, "getrandom");
		}
		for (int i = 0; i < 16; i++)
			snprintf(made + 2 * i, 3, "%02x", raw[i]);
		token = made;
	}
	srv->token = strdup(token);
	snprintf(srv->cookie, sizeof srv->cookie, "procy-%d", srv->port);
	unsigned char m[8];
	if (getrandom(m, sizeof m, 0) != (ssize_t)sizeof m) {
		server_stop(srv);
		free(srv);
		return procy_fail_errno(L, errno, "getrandom");
	}
	snprintf(srv->mount, sizeof srv->mount, "/p/%02x%02x%02x%02x%02x%02x%02x%02x", m[0], m[1], m[2], m[3], m[4], m[5],
	         m[6], m[7]);
	if (!srv->token) {
		server_stop(srv);
		free(srv);
		return procy_fail_errno(L, ENOMEM, "token");
	}
	if (lua_getfield(L, 1, "proxy") == LUA_TTABLE) {
		int t = lua_gettop(L);
		lua_getfield(L, t, "anthropic");
		lua_getfield(L, t, "openai");
		lua_getfield(L, t, "google");
		srv->proxy = proxy_new(luaL_optstring(L, -3, "https://api.anthropic.com"),
		                       luaL_optstring(L, -2, "https://api.openai.com"),
		                       luaL_optstring(L, -1, "https://generativelanguage.googleapis.com"),
		                       procy_opt_number(L, t, "stall_timeout", 600));
		lua_getfield(L, t, "divert"); /* true: the Messages calls; "all": every one */
		if (srv->proxy)
			proxy_divert(srv->proxy, lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "all") == 0 ? 2
			             : lua_toboolean(L, -1));
	}
	if (srv->proxy && lua_getfield(L, 1, "record") == LUA_TTABLE) {
		int rec = lua_gettop(L);
		lua_getglobal(L, "require"); /* the worker's settings, as JSON */
		lua_pushliteral(L, "procy.json");
		lua_call(L, 1, 1);
		lua_getfield(L, -1, "encode");
		lua_pushvalue(L, -3);
		lua_call(L, 1, 1);
		srv->capture = capture_start(srv->rt->loop, capture_ready, srv, lua_tostring(L, -1), &err);
		if (srv->capture)
			capture_bound(srv->capture, (size_t)procy_opt_number(L, rec, "max_queued", 4096),
			              (size_t)procy_opt_number(L, rec, "max_queued_bytes", 64.0 * 1024 * 1024));
		if (!srv->capture) {
			server_stop(srv);
			proxy_free(srv->proxy);
			free(srv->token);
			free(srv);
			return procy_fail_err(L, &err);
		}
	}
	lserver_t *ls = lua_newuserdatauv(L, sizeof *ls, 0);
	ls->srv = srv;
	luaL_setmetatable(L, PROCY_SERVER_MT);
	/* registered with the loop: kept until closed, not dropped with its
	   last reference (a server nobody holds still serves) */
	lua_pushvalue(L, -1);
	srv->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
	return 1;
}

/* ---- Lua: a request ---------------------------------------------------------------- */

typedef struct lreq {
	hreq_t *r;
} lreq_t;

static void push_request(lua_State *L, hreq_t *r)
{
	lreq_t *h = lua_newuserdatauv(L, sizeof *h, 0);
	h->r = r;
	luaL_setmetatable(L, PROCY_REQUEST_MT);
}

static hreq_t *check_req(lua_State *L)
{
	lreq_t *h = luaL_checkudata(L, 1, PROCY_REQUEST_MT);
	if (!h->r)
		luaL_error(L, "http: request is closed");
	return h->r;
}

/* req:auth() -> how it showed who sent it: "token" (a header), "link"
   (?token=), "cookie", "key" (a session's), or nil */
static int req_auth(lua_State *L)
{
	static const char *const names[] = { NULL, "token", "link", "cookie", "key" };
	int a = check_req(L)->auth;
	if (a > 0 && a < 5)
		lua_pushstring(L, names[a]);
	else
		lua_pushnil(L);
	return 1;
}

/* req:cookie() -> the cookie the person's browser keeps the token in, as
   a Set-Cookie value: HttpOnly, SameSite=Strict, this server's name, sent
   only under this server's secret mount (srv:mount()) */
static int req_cookie(lua_State *L)
{
	server_t *srv = check_req(L)->srv;
	lua_pushfstring(L, "%s=%s; Path=%s/; HttpOnly; SameSite=Strict", srv->cookie, srv->token, srv->mount);
	return 1;
}

static int req_method(lua_State *L)
{
	lua_pushstring(L, check_req(L)->method);
	return 1;
}

/* req:path() -> the path, without the query; req:query() -> the query or nil */
static int req_path(lua_State *L)
{
	const char *uri = check_req(L)->uri.p, *q = strchr(uri, '?');
	lua_pushlstring(L, uri, q ? (size_t)(q - uri) : strlen(uri));
	return 1;
}

static int req_query(lua_State *L)
{
	const char *q = strchr(check_req(L)->uri.p, '?');
	if (!q)
		return 0;
	lua_pushstring(L, q + 1);
	return 1;
}

static int req_header(lua_State *L)
{
	const char *v = hreq_header(check_req(L), luaL_checkstring(L, 2));
	if (!v)
		return 0;
	lua_pushstring(L, v);
	return 1;
}

/* req:headers() -> {{name, value}, ...}: every header, as received */
static int req_headers(lua_State *L)
{
	hreq_t *r = check_req(L);
	lua_createtable(L, (int)r->nhdr, 0);
	for (size_t i = 0; i < r->nhdr; i++) {
		lua_createtable(L, 2, 0);
		lua_pushstring(L, r->hdr[i].name);
		lua_rawseti(L, -2, 1);
		lua_pushstring(L, r->hdr[i].value);
		lua_rawseti(L, -2, 2);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

static int req_body(lua_State *L)
{
	hreq_t *r = check_req(L);
	lua_pushlstring(L, r->body.p ? r->body.p : "", r->body.len);
	return 1;
}

/* Headers from a Lua table {name = value} into a C array. The array and a
   table keeping the value strings alive are left on the stack. */
static xfer_header *headers_from(lua_State *L, int idx, size_t *n)
{
	*n = 0;
	size_t count = 0;
	if (lua_istable(L, idx)) {
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			count++;
			lua_pop(L, 1);
		}
	}
	xfer_header *h = lua_newuserdatauv(L, sizeof *h * (count ? count : 1), 0);
	lua_createtable(L, (int)count, 0);
	int keep = lua_gettop(L);
	if (!count)
		return h;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "http: header names must be strings");
		h[*n].name = (char *)lua_tostring(L, -2);
		h[*n].value = (char *)luaL_tolstring(L, -1, NULL);
		lua_rawseti(L, keep, (lua_Integer)*n + 1);
		lua_pop(L, 1);
		(*n)++;
	}
	return h;
}

/* req:respond(status, headers, body) */
static int req_respond(lua_State *L)
{
	hreq_t *r = check_req(L);
	unsigned status = (unsigned)luaL_checkinteger(L, 2);
	size_t len;
	const char *body = luaL_optlstring(L, 4, "", &len);
	size_t n;
	xfer_header *h = headers_from(L, 3, &n);
	if (hreq_respond(r, status, h, n, body, len) < 0)
		return procy_fail(L, "EPIPE", "the client is gone or was answered");
	lua_pushboolean(L, 1);
	return 1;
}

static const char *mime_type(const char *path)
{
	static const char *const types[][2] = {
		{ ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
		{ ".json", "application/json" }, { ".svg", "image/svg+xml" }, { ".png", "image/png" },
		{ ".ico", "image/x-icon" }, { ".txt", "text/plain; charset=utf-8" },
		{ ".map", "application/json" }, { ".woff2", "font/woff2" }, { ".wasm", "application/wasm" },
	};
	const char *dot = strrchr(path, '.');
	for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
		if (strcmp(dot, types[i][0]) == 0)
			return types[i][1];
	return "application/octet-stream";
}

/* req:file(path, [content_type]) -> true | nil, err: the file, with its MIME
   type and an ETag; 304 when the client has it already */
static int req_file(lua_State *L)
{
	hreq_t *r = check_req(L);
	const char *path = luaL_checkstring(L, 2);
	const char *type = luaL_optstring(L, 3, mime_type(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		int e = fd < 0 ? errno : EISDIR;
		if (fd >= 0)
			close(fd);
		return procy_fail_errno(L, e, path);
	}
	char etag[64];
	snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)sb.st_size,
	         (unsigned long long)sb.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)sb.st_mtim.tv_nsec);
	const char *inm = hreq_header(r, "if-none-match");
	xfer_header h[2] = { { "Content-Type", (char *)type }, { "ETag", etag } };
	if (inm && strcmp(inm, etag) == 0) {
		close(fd);
		hreq_respond(r, 304, h + 1, 1, "", 0);
	} else if (hreq_respond_fd(r, 200, h, 2, fd, (uint64_t)sb.st_size) < 0) {
		return procy_fail(L, "EPIPE", "the client is gone or was answered");
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* req:stream(status, headers): starts an answer whose body req:send writes */
static int req_stream(lua_State *L)
{
	hreq_t *r = check_req(L);
	unsigned status = (unsigned)luaL_checkinteger(L, 2);
	size_t n;
	xfer_header *h = headers_from(L, 3, &n);
	if (hreq_start_stream(r, status, h, n, -1) < 0)
		return procy_fail(L, "EPIPE", "the client is gone or was answered");
	lua_pushboolean(L, 1);
	return 1;
}

/* req:send(data) -> true | nil, "EPIPE: ..." (the client left, or fell more
   than 1 MB behind and was dropped) */
static int req_send(lua_State *L)
{
	hreq_t *r = check_req(L);
	size_t n;
	const char *p = luaL_checklstring(L, 2, &n);
	if (!r->conn || !r->streaming || r->out_end)
		return procy_fail(L, "EPIPE", "the client is gone");
	if (r->out.len - r->out_off > STREAM_DROP) {
		hreq_end(r, 1);
		return procy_fail(L, "EPIPE", "the client fell too far behind and was dropped");
	}
	hreq_send(r, p, n);
	lua_pushboolean(L, 1);
	return 1;
}

/* req:finish(): the end of a streamed answer */
static int req_finish(lua_State *L)
{
	hreq_t *r = check_req(L);
	if (r->streaming && !r->out_end)
		hreq_end(r, 0);
	return 0;
}

/* req:relay() -> true | nil, err: a diverted /v1/ request (serve{proxy =
   {divert = true}}) goes the proxy's own way after all, recorded as usual.
   Its headers and body are the proxy's call's from here on. */
static int req_relay(lua_State *L)
{
	hreq_t *r = check_req(L);
	if (!r->srv->proxy || !proxy_match(r))
		return luaL_error(L, "http: req:relay() is for the proxy's /v1/ requests");
	if (!r->conn || r->answered || r->relayed)
		return procy_fail(L, "EPIPE", "the client is gone or was answered");
	r->relayed = 1;
	proxy_start(r->srv, r);
	lua_pushboolean(L, 1);
	return 1;
}

/* req:gone() -> whether the client has left */
static int req_gone(lua_State *L)
{
	lua_pushboolean(L, !check_req(L)->conn);
	return 1;
}

static int req_gc(lua_State *L)
{
	lreq_t *h = luaL_checkudata(L, 1, PROCY_REQUEST_MT);
	hreq_t *r = h->r;
	if (!r)
		return 0;
	h->r = NULL;
	if (r->relayed)
		; /* the proxy answers it */
	else if (r->conn && !r->answered) /* a handler that forgot to answer */
		hreq_respond_json(r, 500, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
		                  "\"message\":\"procy: the handler did not answer\"}}");
	else if (r->conn && r->streaming && !r->out_end)
		hreq_end(r, 0);
	server_t *srv = r->srv;
	hreq_release(r);
	if (srv && !srv->running && !srv->live.head && !srv->rt)
		free(srv); /* the server closed before its last request */
	return 0;
}

static const luaL_Reg server_methods[] = {
	{ "accept", srv_accept },
	{ "calls",  srv_calls },
	{ "inflight", srv_inflight },
	{ "stats",  srv_stats },
	{ "record", srv_record },
	{ "port",   srv_port },
	{ "token",  srv_token },
	{ "mount",  srv_mount },
	{ "key",    srv_key },
	{ "close",  srv_close },
	{ NULL, NULL }
};

static const luaL_Reg request_methods[] = {
	{ "method",  req_method },
	{ "auth",    req_auth },
	{ "cookie",  req_cookie },
	{ "path",    req_path },
	{ "query",   req_query },
	{ "header",  req_header },
	{ "headers", req_headers },
	{ "body",    req_body },
	{ "respond", req_respond },
	{ "file",    req_file },
	{ "stream",  req_stream },
	{ "send",    req_send },
	{ "finish",  req_finish },
	{ "relay",   req_relay },
	{ "gone",    req_gone },
	{ "close",   req_gc },
	{ NULL, NULL }
};

/* http.hop_by_hop(name) -> whether the proxy never passes the header on */
static int http_hop_by_hop(lua_State *L)
{
	lua_pushboolean(L, proxy_hop_by_hop(luaL_checkstring(L, 1)));
	return 1;
}

/* procy.http: the client's request and stream (http_request.c), and serve */
int luaopen_procy_http(lua_State *L)
{
	procy_class(L, PROCY_SERVER_MT, server_methods, srv_gc, NULL);
	procy_class(L, PROCY_REQUEST_MT, request_methods, req_gc, NULL);
	http_client_open(L);
	lua_pushcfunction(L, http_serve);
	lua_setfield(L, -2, "serve");
	lua_pushcfunction(L, http_hop_by_hop);
	lua_setfield(L, -2, "hop_by_hop");
	return 1;
}
