/*
** http_client.c — HTTP transfers on libcurl's multi interface, driven by
** the loop (curl tells us which sockets and timeout to watch; we tell curl
** when they fire). procy.http's request and stream are its Lua side
** (http_request.c).
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
