/*
** http_server.c — the HTTP server in the loop: libmicrohttpd in external
** polling mode (its epoll descriptor sits in our loop; a resumed connection
** wakes it). Lua's side of it is http_lua.c.
**
** Every request is checked once its headers are in (http_guard.c: token,
** Host, Origin, Content-Length, path) and refused before its body is read.
** A request is offered to srv->route (the proxy takes /v1/ and
** /s/SESSION/v1/, without touching Lua); any other is suspended and handed
** to srv->to_lua (http_lua.c), which answers it whenever it is ready
** through the hreq_* calls. The core knows no layer above it by name: they
** set those callbacks. MHD's callbacks never call Lua: they fill buffers and
** complete ops.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "server.h"


#define MAX_CONNECTIONS 1000 /* in all */
#define MAX_PER_CLIENT  512  /* from one address (every local agent is 127.0.0.1) */

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
	if (buf_add(&r->uri, uri, strlen(uri) + 1) < 0) {
		free(r);
		return NULL; /* on_access refuses it */
	}
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
	if (!h[r->nhdr].name || !h[r->nhdr].value) {
		free(h[r->nhdr].name);
		free(h[r->nhdr].value);
		return MHD_NO; /* no memory: the headers end here */
	}
	r->nhdr++;
	return MHD_YES;
}

/* Sends resp (with the headers) as r's answer: the one way every answer
   goes out. NULL resp (or a client gone, or answered): -1. */
static int queue_response(hreq_t *r, unsigned status, struct MHD_Response *resp,
                          const xfer_header *hdr, size_t nhdr)
{
	if (!resp)
		return -1;
	if (!r->conn || r->answered) {
		MHD_destroy_response(resp);
		return -1;
	}
	for (size_t i = 0; i < nhdr; i++)
		MHD_add_response_header(resp, hdr[i].name, hdr[i].value);
	r->answered = 1;
	MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	hreq_resume(r);
	return 0;
}

int hreq_respond(hreq_t *r, unsigned status, const xfer_header *hdr, size_t nhdr,
                 const char *body, size_t len)
{
	if (!r->conn || r->answered)
		return -1;
	return queue_response(r, status, MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY),
	                      hdr, nhdr);
}

/* The file open on fd (size bytes) as the body; fd is closed either way. */
int hreq_respond_fd(hreq_t *r, unsigned status, const xfer_header *hdr, size_t nhdr, int fd, uint64_t size)
{
	struct MHD_Response *resp = r->conn && !r->answered ? MHD_create_response_from_fd(size, fd) : NULL;
	if (!resp)
		close(fd);
	return queue_response(r, status, resp, hdr, nhdr);
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
	if (queue_response(r, status, resp, hdr, nhdr) < 0)
		return -1;
	r->streaming = 1;
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
	if (!r->method[0]) { /* the headers are in: refused now, the body is never read */
		snprintf(r->method, sizeof r->method, "%s", method);
		MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header, r);
		const char *type, *msg;
		unsigned status = (unsigned)hreq_refusal(r, &type, &msg);
		if (status) {
			char body[400];
			snprintf(body, sizeof body, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}",
			         type, msg);
			return hreq_respond_json(r, status, body) ? MHD_NO : MHD_YES;
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
	if (r->too_big)
		return hreq_respond_json(r, 413, "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\","
		                         "\"message\":\"procy: request body too large\"}}") ? MHD_NO : MHD_YES;
	r->handed = 1;
	MHD_suspend_connection(conn);
	r->suspended = 1;
	if (!(srv->route && srv->route(srv, r)) && srv->to_lua)
		srv->to_lua(srv, r);
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
	r->holders++; /* on_close may release the proxy's hold */
	if (r->on_close)
		r->on_close(r);
	hreq_release(r);
}

/* ---- starting and stopping ------------------------------------------------------------------ */

/* MHD takes over the listening socket, and the loop watches MHD's epoll
   descriptor instead. */
static int start_mhd(server_t *srv, err_t *err)
{
	if (libload_mhd(err) < 0)
		return -1;
	srv->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
	                            on_access, srv,
	                            MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
	                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
	                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	                            /* idle keep-alive connections go; one waiting for
	                               an upstream is suspended and does not time out */
	                            MHD_OPTION_CONNECTION_TIMEOUT, srv->idle_timeout,
	                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
	                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)MAX_PER_CLIENT,
	                            MHD_OPTION_END);
	const union MHD_DaemonInfo *info = srv->mhd ? MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!info || loop_io_start(srv->rt->loop, &srv->io, info->epoll_fd, EPOLLIN, on_mhd_fd, srv) < 0) {
		err_set(err, "EIO", "cannot start libmicrohttpd");
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
	err_t err;
	if (start_mhd(srv, &err) < 0) {
		procy_log(srv->rt->L, "error", "http server on port %d: %s: %s", srv->port, err.code, err.msg);
		if (srv->listen_fd >= 0)
			close(srv->listen_fd); /* clients are refused, not left hanging */
		srv->listen_fd = -1;
		return;
	}
	run_mhd(srv);
}

server_t *server_start(runtime_t *rt, const char *host, int port, err_t *err)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		err_set(err, "EINVAL", "'%s' is not an IPv4 address", host);
		return NULL;
	}
	server_t *srv = calloc(1, sizeof *srv);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	socklen_t len = sizeof addr;
	if (!srv || fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 511) < 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
		err_errno(err, srv ? errno : ENOMEM, "cannot listen on %s:%d", host, port);
		if (fd >= 0)
			close(fd);
		free(srv);
		return NULL;
	}
	srv->rt = rt;
	srv->listen_fd = fd;
	snprintf(srv->host, sizeof srv->host, "%s", host);
	srv->public = (ntohl(addr.sin_addr.s_addr) >> 24) != 127;
	srv->port = ntohs(addr.sin_port);
	srv->max_body = 64 << 20;
	srv->idle_timeout = 30;
	srv->running = 1;
	loop_timer_init(&srv->timer);
	if (loop_io_start(rt->loop, &srv->io, fd, EPOLLIN, on_first_client, srv) < 0) {
		err_errno(err, errno, "cannot watch the server");
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
	if (srv->on_stop)
		srv->on_stop(srv); /* the proxy's calls end, and are recorded */
	loop_timer_stop(srv->rt->loop, &srv->timer); /* the resumes above armed it */
	MHD_stop_daemon(srv->mhd); /* calls on_completed for every connection */
	srv->mhd = NULL;
}

void server_shutdown(void)
{
	while (all_servers.head)
		server_stop(list_item(all_servers.head, server_t, all));
}
