/*
** http_server.c — the HTTP server in the loop: libmicrohttpd in external
** polling mode (its epoll descriptor sits in our loop; a resumed connection
** wakes it), and `procy.http.serve` for Lua.
**
** A request under /v1/ (or /s/SESSION/v1/) goes to the proxy (proxy.c)
** without touching Lua. Any other request is suspended and handed to Lua
** through srv:accept(); the handler answers with req:respond, req:file or
** req:stream, from any task, whenever it is ready. MHD's callbacks never
** call Lua: they fill buffers and complete ops.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "server.h"

#define PROCY_SERVER_MT  "procy.http.server"
#define PROCY_REQUEST_MT "procy.http.req"
#define STREAM_DROP      (1 << 20) /* a streamed response this far behind is dropped */

static list_t all_servers;

/* ---- driving MHD from the loop ------------------------------------------------------- */

static void arm_timer(server_t *srv);

static void run_mhd(server_t *srv)
{
	MHD_run(srv->mhd);
	arm_timer(srv);
}

static void on_mhd_timer(loop_t *loop, loop_timer *t)
{
	(void)loop;
	run_mhd(t->data);
}

static void arm_timer(server_t *srv)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(srv->mhd, &ms) == MHD_YES)
		loop_timer_start(srv->rt->loop, &srv->timer, (int64_t)ms * 1000000, on_mhd_timer, srv);
	else
		loop_timer_stop(srv->rt->loop, &srv->timer);
}

static void on_mhd_fd(loop_t *loop, loop_io *w, uint32_t events)
{
	(void)loop;
	(void)events;
	run_mhd(w->data);
}

/* ---- requests -------------------------------------------------------------------------- */

/* MHD takes a resumed connection back on its next run; in external mode
   nothing wakes it, so a timer due now does. */
void hreq_resume(hreq_t *r)
{
	if (r->suspended && r->conn) {
		r->suspended = 0;
		MHD_resume_connection(r->conn);
		loop_timer_start(r->srv->rt->loop, &r->srv->timer, 0, on_mhd_timer, r->srv);
	}
}

static void hreq_free(hreq_t *r)
{
	buf_free(&r->uri);
	buf_free(&r->body);
	buf_free(&r->out);
	for (size_t i = 0; i < r->nhdr; i++) {
		free(r->hdr[i].name);
		free(r->hdr[i].value);
	}
	free(r->hdr);
	list_remove(&r->srv->live, &r->all);
	free(r);
}

/* Frees r once MHD is done with it and no Lua handle or proxy holds it. */
void hreq_release(hreq_t *r)
{
	if (r->holders > 0)
		r->holders--;
	if (r->holders == 0 && !r->conn)
		hreq_free(r);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	server_t *srv = cls;
	hreq_t *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->srv = srv;
	r->conn = conn;
	r->started = loop_clock();
	buf_add(&r->uri, uri, strlen(uri) + 1);
	list_push(&srv->live, &r->all);
	return r;
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	(void)kind;
	hreq_t *r = cls;
	xfer_header *h = realloc(r->hdr, (r->nhdr + 1) * sizeof *h);
	if (!h)
		return MHD_NO;
	r->hdr = h;
	h[r->nhdr].name = strdup(k);
	h[r->nhdr].value = strdup(v ? v : "");
	r->nhdr++;
	return MHD_YES;
}

const char *hreq_header(const hreq_t *r, const char *name)
{
	for (size_t i = 0; i < r->nhdr; i++)
		if (strcasecmp(r->hdr[i].name, name) == 0)
			return r->hdr[i].value;
	return NULL;
}

int hreq_respond(hreq_t *r, unsigned status, const xfer_header *hdr, size_t nhdr,
                 const char *body, size_t len)
{
	if (!r->conn || r->answered)
		return -1;
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return -1;
	for (size_t i = 0; i < nhdr; i++)
		MHD_add_response_header(resp, hdr[i].name, hdr[i].value);
	r->answered = 1;
	MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	hreq_resume(r);
	return 0;
}

int hreq_respond_json(hreq_t *r, unsigned status, const char *json)
{
	static const xfer_header h = { "Content-Type", "application/json" };
	return hreq_respond(r, status, &h, 1, json, strlen(json));
}

/* The body of a streamed response: what waits in r->out, else (while more
   may come) the connection is suspended until hreq_send or hreq_end. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	hreq_t *r = cls;
	if (r->out.len > r->out_off) {
		size_t n = r->out.len - r->out_off;
		if (n > max)
			n = max;
		memcpy(buf, r->out.p + r->out_off, n);
		r->out_off += n;
		if (r->out_off == r->out.len)
			r->out.len = r->out_off = 0;
		if (r->on_drain)
			r->on_drain(r);
		return (ssize_t)n;
	}
	if (r->out_end)
		return r->out_error ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
	MHD_suspend_connection(r->conn);
	r->suspended = 1;
	return 0;
}

static void stream_gone(void *cls)
{
	(void)cls; /* the response's end; the request's end is on_completed */
}

int hreq_start_stream(hreq_t *r, unsigned status, const xfer_header *hdr, size_t nhdr, int64_t size)
{
	if (!r->conn || r->answered)
		return -1;
	struct MHD_Response *resp = MHD_create_response_from_callback(
		size >= 0 ? (uint64_t)size : MHD_SIZE_UNKNOWN, 64 * 1024, stream_reader, r, stream_gone);
	if (!resp)
		return -1;
	for (size_t i = 0; i < nhdr; i++)
		MHD_add_response_header(resp, hdr[i].name, hdr[i].value);
	r->answered = r->streaming = 1;
	MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	hreq_resume(r);
	return 0;
}

int hreq_send(hreq_t *r, const char *p, size_t n)
{
	if (!r->conn || r->out_end)
		return -1;
	if (buf_add(&r->out, p, n) < 0)
		return -1;
	hreq_resume(r);
	return 0;
}

void hreq_end(hreq_t *r, int error)
{
	r->out_end = 1;
	r->out_error = error;
	hreq_resume(r);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
	(void)url;
	(void)version;
	server_t *srv = cls;
	hreq_t *r = *con_cls;
	if (!r)
		return MHD_NO; /* on_uri had no memory */
	if (!r->method[0]) { /* the headers are in */
		snprintf(r->method, sizeof r->method, "%s", method);
		MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header, r);
		if (srv->token && !hreq_authorized(r)) {
			r->too_big = 2; /* answered when the body is in */
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (r->body.len + *upload_size > srv->max_body || buf_add(&r->body, upload, *upload_size) < 0)
			r->too_big = 1;
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->answered || r->handed)
		return MHD_YES;
	if (r->too_big == 1)
		return hreq_respond_json(r, 413, "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\","
		                         "\"message\":\"procy: request body too large\"}}") ? MHD_NO : MHD_YES;
	if (r->too_big == 2)
		return hreq_respond_json(r, 401, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
		                         "\"message\":\"procy: a token is needed (Authorization: Bearer ...)\"}}")
		       ? MHD_NO : MHD_YES;
	r->handed = 1;
	MHD_suspend_connection(conn);
	r->suspended = 1;
	if (srv->proxy && proxy_match(r))
		proxy_start(srv, r);
	else
		server_hand_to_lua(srv, r);
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	hreq_t *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	r->conn = NULL;
	r->aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK;
	if (r->on_close)
		r->on_close(r);
	if (r->holders == 0)
		hreq_free(r);
}

/* The token, when the server has one: "Authorization: Bearer TOKEN", an
   "x-procy-token" header, or ?token=TOKEN. Compared in constant time. */
int hreq_authorized(const hreq_t *r)
{
	const char *t = r->srv->token, *given = hreq_header(r, "x-procy-token");
	const char *auth = hreq_header(r, "authorization");
	if (!given && auth && strncasecmp(auth, "Bearer ", 7) == 0)
		given = auth + 7;
	const char *q = strstr(r->uri.p, "token=");
	if (!given && q && (q[-1] == '?' || q[-1] == '&'))
		given = q + 6;
	if (!given)
		return 0;
	size_t n = strlen(t);
	unsigned diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)t[i] ^ (unsigned char)given[i];
	char end = given[n];
	return diff == 0 && (end == 0 || end == '&');
}

/* ---- starting and stopping ------------------------------------------------------------------ */

/* MHD takes over the listening socket, and the loop watches MHD's epoll
   descriptor instead. */
static int start_mhd(server_t *srv, char *err, size_t errlen)
{
	if (libload_mhd(err, errlen) < 0)
		return -1;
	srv->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
	                            on_access, srv,
	                            MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
	                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
	                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
	                            MHD_OPTION_END);
	const union MHD_DaemonInfo *info = srv->mhd ? MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!info || loop_io_start(srv->rt->loop, &srv->io, info->epoll_fd, EPOLLIN, on_mhd_fd, srv) < 0) {
		snprintf(err, errlen, "cannot start libmicrohttpd");
		if (srv->mhd)
			MHD_stop_daemon(srv->mhd); /* closes the listening socket */
		srv->mhd = NULL;
		srv->listen_fd = -1;
		return -1;
	}
	srv->listen_fd = -1; /* MHD's now */
	return 0;
}

/* A server is a bound socket until its first client: procy commands that
   listen but are never called (a session whose agent makes no API call)
   never load libmicrohttpd. */
static void on_first_client(loop_t *loop, loop_io *w, uint32_t events)
{
	(void)events;
	server_t *srv = w->data;
	loop_io_stop(loop, &srv->io);
	char err[400];
	if (start_mhd(srv, err, sizeof err) < 0) {
		procy_log(srv->rt->L, "error", "http server on port %d: %s", srv->port, err);
		if (srv->listen_fd >= 0)
			close(srv->listen_fd); /* clients are refused, not left hanging */
		srv->listen_fd = -1;
		return;
	}
	run_mhd(srv);
}

server_t *server_start(runtime_t *rt, const char *host, int port, char *err, size_t errlen)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		snprintf(err, errlen, "'%s' is not an IPv4 address", host);
		return NULL;
	}
	server_t *srv = calloc(1, sizeof *srv);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	socklen_t len = sizeof addr;
	if (!srv || fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 511) < 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(srv ? errno : ENOMEM));
		if (fd >= 0)
			close(fd);
		free(srv);
		return NULL;
	}
	srv->rt = rt;
	srv->listen_fd = fd;
	srv->port = ntohs(addr.sin_port);
	srv->max_body = 64 << 20;
	srv->running = 1;
	loop_timer_init(&srv->timer);
	if (loop_io_start(rt->loop, &srv->io, fd, EPOLLIN, on_first_client, srv) < 0) {
		snprintf(err, errlen, "cannot watch the server: %s", strerror(errno));
		close(fd);
		free(srv);
		return NULL;
	}
	list_push(&all_servers, &srv->all);
	return srv;
}

void server_stop(server_t *srv)
{
	if (!srv->running)
		return;
	srv->running = 0;
	list_remove(&all_servers, &srv->all);
	loop_io_stop(srv->rt->loop, &srv->io);
	loop_timer_stop(srv->rt->loop, &srv->timer);
	if (srv->listen_fd >= 0) { /* nobody ever came */
		close(srv->listen_fd);
		srv->listen_fd = -1;
	}
	if (!srv->mhd)
		return;
	/* MHD must not be stopped with suspended connections: end them all */
	for (list_node *n = srv->live.head; n; n = n->next) {
		hreq_t *r = list_item(n, hreq_t, all);
		if (r->conn && !r->answered)
			hreq_respond_json(r, 503, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
			                  "\"message\":\"procy: shutting down\"}}");
		else if (r->conn)
			hreq_end(r, 1);
	}
	proxy_stop_all(srv);
	loop_timer_stop(srv->rt->loop, &srv->timer); /* the resumes above armed it */
	MHD_stop_daemon(srv->mhd); /* calls on_completed for every connection */
	srv->mhd = NULL;
}

void server_shutdown(void)
{
	while (all_servers.head)
		server_stop(list_item(all_servers.head, server_t, all));
}

/* ---- Lua: http.serve ------------------------------------------------------------------------ */

typedef struct lserver {
	server_t *srv;
} lserver_t;

static void push_request(lua_State *L, hreq_t *r);

void server_hand_to_lua(server_t *srv, hreq_t *r)
{
	r->holders++; /* the Lua handle's, once it exists */
	if (srv->acceptor) {
		op_t *op = srv->acceptor;
		srv->acceptor = NULL;
		push_request(srv->rt->L, r);
		op_complete(srv->rt->L, op, 1);
		return;
	}
	list_push(&srv->waiting, &r->queued);
}

void server_record_ready(server_t *srv)
{
	if (srv->recorder && proxy_next_record(srv, srv->rt->L)) {
		op_t *op = srv->recorder;
		srv->recorder = NULL;
		op_complete(srv->rt->L, op, 1);
	}
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

static void acceptor_cancel(op_t *op)
{
	((server_t *)op->data)->acceptor = NULL;
}

static void recorder_cancel(op_t *op)
{
	((server_t *)op->data)->recorder = NULL;
}

static const op_class accept_class = { "http accept", acceptor_cancel };
static const op_class record_class = { "proxy record", recorder_cancel };

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
	lua_settop(L, 0);
	srv->acceptor = op_new(L, &accept_class, 0);
	srv->acceptor->data = srv;
	return op_await(L, 1, timeout);
}

/* srv:calls([timeout]) -> the next finished proxy call, as a record table
   (timeout 0: only if one is waiting now) */
static int srv_calls(lua_State *L)
{
	server_t *srv = check_server(L, 0);
	double timeout = luaL_optnumber(L, 2, -1);
	if (proxy_next_record(srv, L))
		return 1;
	if (!srv->running)
		return procy_fail(L, "EPIPE", "the server is closed and every call was read");
	if (timeout == 0) /* a look, no wait */
		return procy_fail(L, "ETIMEDOUT", "no call is waiting");
	if (srv->recorder)
		return luaL_error(L, "http: another task is already reading calls");
	lua_settop(L, 0);
	srv->recorder = op_new(L, &record_class, 0);
	srv->recorder->data = srv;
	return op_await(L, 1, timeout);
}

static int srv_port(lua_State *L)
{
	lua_pushinteger(L, check_server(L, 0)->port);
	return 1;
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
	if (srv->proxy)
		proxy_free(srv->proxy);
	free(srv->token);
	/* requests still held by Lua handles keep their memory until collected */
	if (!srv->live.head)
		free(srv);
	else
		srv->rt = NULL; /* freed with its last request (see req_gc) */
	return 0;
}

/* serve{host = "127.0.0.1", port = 7862, token =, max_body =,
   proxy = {anthropic =, openai =}} -> server | nil, err, code */
static int http_serve(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lua_getfield(L, 1, "host");
	const char *host = luaL_optstring(L, -1, "127.0.0.1");
	int port = (int)procy_opt_number(L, 1, "port", 7862);
	lua_getfield(L, 1, "token");
	const char *token = luaL_optstring(L, -1, NULL);
	if (strcmp(host, "127.0.0.1") != 0 && (!token || strlen(token) < 16))
		return luaL_error(L, "http: listening on %s needs a token of 16 or more characters", host);
	char err[300];
	server_t *srv = server_start(procy_rt(L), host, port, err, sizeof err);
	if (!srv)
		return procy_fail(L, "EADDRINUSE", "%s", err);
	srv->max_body = (size_t)procy_opt_number(L, 1, "max_body", 64.0 * 1024 * 1024);
	if (token)
		srv->token = strdup(token);
	if (lua_getfield(L, 1, "proxy") == LUA_TTABLE) {
		lua_getfield(L, -1, "anthropic");
		lua_getfield(L, -2, "openai");
		srv->proxy = proxy_new(luaL_optstring(L, -2, "https://api.anthropic.com"),
		                       luaL_optstring(L, -1, "https://api.openai.com"));
	}
	lserver_t *ls = lua_newuserdatauv(L, sizeof *ls, 0);
	ls->srv = srv;
	luaL_setmetatable(L, PROCY_SERVER_MT);
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
	} else {
		struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
		if (!resp) {
			close(fd);
			return procy_fail(L, "ENOMEM", "cannot answer with %s", path);
		}
		MHD_add_response_header(resp, h[0].name, h[0].value);
		MHD_add_response_header(resp, h[1].name, h[1].value);
		if (!r->conn || r->answered) {
			MHD_destroy_response(resp);
			return procy_fail(L, "EPIPE", "the client is gone or was answered");
		}
		r->answered = 1;
		MHD_queue_response(r->conn, 200, resp);
		MHD_destroy_response(resp);
		hreq_resume(r);
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
	if (r->conn && !r->answered) /* a handler that forgot to answer */
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
	{ "port",   srv_port },
	{ "close",  srv_close },
	{ NULL, NULL }
};

static const luaL_Reg request_methods[] = {
	{ "method",  req_method },
	{ "path",    req_path },
	{ "query",   req_query },
	{ "header",  req_header },
	{ "body",    req_body },
	{ "respond", req_respond },
	{ "file",    req_file },
	{ "stream",  req_stream },
	{ "send",    req_send },
	{ "finish",  req_finish },
	{ "gone",    req_gone },
	{ "close",   req_gc },
	{ NULL, NULL }
};

int luaopen_procy_http_server(lua_State *L)
{
	procy_class(L, PROCY_SERVER_MT, server_methods, srv_gc, NULL);
	procy_class(L, PROCY_REQUEST_MT, request_methods, req_gc, NULL);
	lua_pushcfunction(L, http_serve);
	return 1;
}
