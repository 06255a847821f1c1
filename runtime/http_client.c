/*
** http_client.c — HTTP transfers on libcurl's multi interface, driven by
** the loop (curl tells us which sockets and timeout to watch; we tell curl
** when they fire), and the `procy.http` client functions for Lua.
**
** curl's callbacks only fill buffers and call the owner's C callbacks;
** waiting tasks are woken through ops. Nothing here blocks: no total
** timeout unless asked, a stall timeout for streams instead.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h> /* SEEK_SET */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "http.h"
#include "libload.h"

static CURLM     *multi;
static runtime_t *curl_rt;
static loop_timer curl_timer;
static list_t     xfers;
static int        in_curl; /* inside curl_multi_socket_action */

typedef struct sock {
	loop_io       io;
	curl_socket_t fd;
} sock_t;

static void run_curl(curl_socket_t fd, int ev);

/* ---- the loop's side -------------------------------------------------------------- */

static void on_sock(loop_t *loop, loop_io *w, uint32_t events)
{
	(void)loop;
	sock_t *s = w->data;
	int ev = (events & EPOLLIN ? CURL_CSELECT_IN : 0) | (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
	         (events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
	run_curl(s->fd, ev);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	(void)userp;
	sock_t *s = socketp;
	loop_t *loop = curl_rt->loop;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			loop_io_stop(loop, &s->io);
			free(s);
			curl_multi_assign(multi, fd, NULL);
		}
		return 0;
	}
	uint32_t ev = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (!s) {
		if (!(s = calloc(1, sizeof *s)))
			return -1;
		s->fd = fd;
		if (loop_io_start(loop, &s->io, fd, ev, on_sock, s) < 0) {
			free(s);
			return -1;
		}
		curl_multi_assign(multi, fd, s);
	} else {
		loop_io_modify(loop, &s->io, ev);
	}
	return 0;
}

static void on_timer(loop_t *loop, loop_timer *t)
{
	(void)loop;
	(void)t;
	run_curl(CURL_SOCKET_TIMEOUT, 0);
}

static int timer_cb(CURLM *m, long ms, void *userp)
{
	(void)m;
	(void)userp;
	if (ms < 0)
		loop_timer_stop(curl_rt->loop, &curl_timer);
	else
		loop_timer_start(curl_rt->loop, &curl_timer, (int64_t)ms * 1000000, on_timer, NULL);
	return 0;
}

/* ---- transfers ----------------------------------------------------------------------- */

/* Finished easy handles are kept for the next transfers: a new one costs
   allocations and buffers a reset one already has. */
#define SPARE_MAX 32
static CURL *spare[SPARE_MAX];
static int   nspare;

static void xfer_free(xfer_t *x)
{
	loop_timer_stop(curl_rt->loop, &x->stall);
	curl_multi_remove_handle(multi, x->easy);
	if (nspare < SPARE_MAX) {
		curl_easy_reset(x->easy);
		spare[nspare++] = x->easy;
	} else {
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->sent);
	for (size_t i = 0; i < x->nhdr; i++) {
		free(x->hdr[i].name);
		free(x->hdr[i].value);
	}
	free(x->hdr);
	list_remove(&xfers, &x->all);
	free(x);
}

static const char *failure_code(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT: return "ECONNREFUSED";
	case CURLE_OPERATION_TIMEDOUT: return "ETIMEDOUT";
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY: return "EHOSTUNREACH";
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE: return "ECONNRESET";
	case CURLE_GOT_NOTHING: return "EPROTO";
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL: return "EINVAL";
	default: return "EHTTP";
	}
}

/* Finished transfers are reported and freed; aborted ones just freed. */
static void reap(void)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		xfer_t *x;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CURLcode rc = msg->data.result;
		if (x->cb && !x->aborting) {
			if (rc == CURLE_OK && !x->got_headers && x->cb->headers) {
				x->got_headers = 1; /* a body-less answer */
				x->cb->headers(x, x->ud);
			}
			if (rc == CURLE_OK)
				x->cb->done(x, x->ud, NULL, NULL);
			else
				x->cb->done(x, x->ud, failure_code(rc), x->err[0] ? x->err : curl_easy_strerror(rc));
		}
		xfer_free(x);
	}
	for (list_node *n = xfers.head; n;) {
		xfer_t *x = list_item(n, xfer_t, all);
		n = n->next;
		if (x->aborting)
			xfer_free(x);
	}
}

static void run_curl(curl_socket_t fd, int ev)
{
	int running;
	in_curl++;
	curl_multi_socket_action(multi, fd, ev, &running);
	in_curl--;
	reap();
}

/* Nothing came for stall_ns: the transfer fails with ETIMEDOUT. (curl's
   own low-speed check averages over seconds; this is exact.) */
static void on_stall(loop_t *loop, loop_timer *t)
{
	(void)loop;
	xfer_t *x = t->data;
	char msg[96];
	snprintf(msg, sizeof msg, "nothing arrived for %.3g s", (double)x->stall_ns / 1e9);
	const xfer_cb *cb = x->cb;
	x->aborting = 1; /* freed by reap, after its owner hears */
	in_curl++;
	if (cb)
		cb->done(x, x->ud, "ETIMEDOUT", msg);
	in_curl--;
	reap();
}

static void stall_restart(xfer_t *x)
{
	if (x->stall_ns && !x->paused)
		loop_timer_start(curl_rt->loop, &x->stall, x->stall_ns, on_stall, x);
}

static void headers_in(xfer_t *x)
{
	long status = 0;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	x->status = (int)status;
	x->got_headers = 1;
	x->ttfb = loop_clock() - x->started;
	if (x->cb && x->cb->headers)
		x->cb->headers(x, x->ud);
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
	xfer_t *x = ud;
	size_t len = size * n;
	if (x->aborting || !x->cb)
		return 0;
	stall_restart(x);
	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a (new) response: 100 Continue, then the real one */
		for (size_t i = 0; i < x->nhdr; i++) {
			free(x->hdr[i].name);
			free(x->hdr[i].value);
		}
		x->nhdr = 0;
		return size * n;
	}
	if (len == 0) {
		long status = 0;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && !x->got_headers)
			headers_in(x);
		return size * n;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon)
		return size * n;
	xfer_header *h = realloc(x->hdr, (x->nhdr + 1) * sizeof *h);
	if (!h)
		return 0;
	x->hdr = h;
	const char *v = colon + 1;
	while (v < p + len && (*v == ' ' || *v == '\t'))
		v++;
	h[x->nhdr].name = strndup(p, (size_t)(colon - p));
	h[x->nhdr].value = strndup(v, (size_t)(p + len - v));
	if (!h[x->nhdr].name || !h[x->nhdr].value)
		return 0;
	x->nhdr++;
	return size * n;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
	xfer_t *x = ud;
	if (x->aborting || !x->cb)
		return 0;
	stall_restart(x);
	if (!x->got_headers)
		headers_in(x);
	if (x->cb && x->cb->data && !x->aborting)
		x->cb->data(x, x->ud, p, size * n);
	return x->aborting ? 0 : size * n;
}

/* A kept body (xfer_req.body_kept) goes to curl through these, not as a
   copy: a request of 800 KB is not held twice while it is relayed. curl
   reads only through the callback, so once the transfer is aborted (its
   owner may free the body next) nothing more is read; and it can start
   over, as it does on a reused connection that turned out closed. */
static size_t read_cb(char *p, size_t size, size_t n, void *ud)
{
	xfer_t *x = ud;
	if (x->aborting)
		return CURL_READFUNC_ABORT;
	size_t left = x->body_len - x->body_at, take = size * n < left ? size * n : left;
	memcpy(p, x->body + x->body_at, take);
	x->body_at += take;
	return take;
}

static int seek_cb(void *ud, curl_off_t off, int origin)
{
	xfer_t *x = ud;
	if (origin != SEEK_SET || off < 0 || (curl_off_t)x->body_len < off)
		return CURL_SEEKFUNC_CANTSEEK;
	x->body_at = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

xfer_t *xfer_start(runtime_t *rt, const xfer_req *r, const xfer_cb *cb, void *ud, err_t *err)
{
	if (!multi) {
		if (libload_curl(err) < 0)
			return NULL;
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(multi = curl_multi_init())) {
			err_set(err, "EIO", "cannot start libcurl");
			return NULL;
		}
		curl_rt = rt;
		loop_timer_init(&curl_timer);
		curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
		curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	}
	xfer_t *x = calloc(1, sizeof *x);
	CURL *e = !x ? NULL : nspare ? spare[--nspare] : curl_easy_init();
	if (!e) {
		free(x);
		err_set(err, "ENOMEM", "out of memory");
		return NULL;
	}
	x->easy = e;
	x->cb = cb;
	x->ud = ud;
	x->started = loop_clock();
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"); /* never file:, scp: and the rest */
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)((r->connect_timeout > 0 ? r->connect_timeout : 30) * 1000));
	if (r->timeout > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(r->timeout * 1000));
	loop_timer_init(&x->stall);
	x->stall_ns = r->stall_timeout > 0 ? (int64_t)(r->stall_timeout * 1e9) : 0;
	stall_restart(x);
	const char *method = r->method ? r->method : "GET";
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (r->body && r->body_kept) {
		x->body = r->body;
		x->body_len = r->body_len;
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(e, CURLOPT_READDATA, x);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
	} else if (r->body || (strcmp(method, "GET") && strcmp(method, "HEAD"))) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, r->body ? r->body : "");
	}
	/* curl adds Expect: 100-continue to large bodies and an Accept; the
	   caller's headers are what is sent, and those two are not */
	x->sent = curl_slist_append(NULL, "Expect:");
	x->sent = curl_slist_append(x->sent, "Accept:");
	for (char *const *h = r->headers; h && *h && x->sent; h++)
		x->sent = curl_slist_append(x->sent, *h);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->sent);
	list_push(&xfers, &x->all);
	if (!x->sent || curl_multi_add_handle(multi, e) != CURLM_OK) {
		err_set(err, !x->sent ? "ENOMEM" : "EIO", "cannot start the transfer");
		x->cb = NULL;
		xfer_free(x);
		return NULL;
	}
	return x;
}

void xfer_abort(xfer_t *x)
{
	x->cb = NULL;
	x->aborting = 1;
	if (!in_curl)
		xfer_free(x);
}

void xfer_pause(xfer_t *x, int paused)
{
	if (x->paused == paused)
		return;
	x->paused = paused;
	if (paused) /* a slow reader downstream is not a silent upstream */
		loop_timer_stop(curl_rt->loop, &x->stall);
	curl_easy_pause(x->easy, paused ? CURLPAUSE_RECV : CURLPAUSE_CONT);
	stall_restart(x);
}

const char *xfer_get_header(const xfer_t *x, const char *name)
{
	for (size_t i = 0; i < x->nhdr; i++)
		if (strcasecmp(x->hdr[i].name, name) == 0)
			return x->hdr[i].value;
	return NULL;
}

void http_shutdown(void)
{
	while (xfers.head) {
		xfer_t *x = list_item(xfers.head, xfer_t, all);
		x->cb = NULL;
		xfer_free(x);
	}
	while (nspare)
		curl_easy_cleanup(spare[--nspare]);
	if (multi) {
		curl_multi_cleanup(multi);
		multi = NULL;
		curl_global_cleanup();
	}
}

/* ---- Lua: http.request and http.stream ------------------------------------------------ */

#define PROCY_STREAM_MT "procy.http.stream"

/* One request from Lua. For http.request the op waits for the whole
   answer; for http.stream it waits for the headers, then `reader` waits for
   each piece. */
typedef struct lcall {
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
	lua_State *L = curl_rt->L;
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
	lua_State *L = curl_rt->L;
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
	lua_State *L = curl_rt->L;
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
	lua_State *L = curl_rt->L;
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
	xfer_t *x = xfer_start(procy_rt(L), &r, &lua_cb, c, &err);
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
