/* http.c — the HTTP request path: any bytes a client sends reach procy's
   server (libmicrohttpd in the loop, http_guard.c's checks, the proxy's
   routing, chunked bodies) over a real loopback socket. The server answers
   or closes the connection, and stays up for the next one. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "server.h"

static runtime_t rt;
static server_t *srv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	err_t err;
	rt.loop = loop_new();
	rt.L = luaL_newstate();
	procy_rt(rt.L) = &rt;
	srv = rt.loop ? server_start(&rt, "127.0.0.1", 0, &err) : NULL;
	if (!srv) {
		fprintf(stderr, "fuzz harness: %s\n", err.msg);
		abort();
	}
	srv->max_body = 1 << 20;
	srv->proxy = proxy_new("http://127.0.0.1:1", "http://127.0.0.1:1", "http://127.0.0.1:1", 1); /* refused: 502 */
	return 0;
}

/* What a Lua handler would do: answer what waits, and let it go. */
static void answer_waiting(void)
{
	while (srv->waiting.head) {
		hreq_t *r = list_item(srv->waiting.head, hreq_t, queued);
		list_remove(&srv->waiting, &r->queued);
		hreq_respond_json(r, 200, "{}");
		hreq_release(r);
	}
}

/* One turn of the loop, then at most 1 ms for the client's socket. */
static void step(int fd)
{
	loop_step(rt.loop, 0);
	if (srv->mhd)
		MHD_run(srv->mhd); /* MHD's edge-triggered events are not always ours to see */
	answer_waiting();
	while (proxy_next_record(srv, rt.L)) /* the finished calls a recorder would take */
		lua_settop(rt.L, 0);
	if (fd >= 0) {
		struct pollfd p = { fd, POLLIN, 0 };
		poll(&p, 1, 1);
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS))
		abort();
	size_t sent = 0, got = 0;
	int closed = 0, quiet = 0;
	char buf[65536];
	/* until the server closes, or has answered and goes quiet (a kept-alive
	   connection), or 20 turns after the last byte went without an answer
	   (libmicrohttpd keeps a connection with half a request line until its
	   idle timeout) */
	int after = 0;
	for (int i = 0; i < 400 && !closed && quiet < 2 && after < 20; i++) {
		after += sent == size && got == 0;
		if (sent < size) {
			ssize_t n = write(fd, data + sent, size - sent);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != ENOTCONN)
				break; /* the server closed on us: fine */
			if (sent == size)
				shutdown(fd, SHUT_WR);
		} else if (size == 0 && i == 0) {
			shutdown(fd, SHUT_WR);
		}
		step(fd);
		ssize_t n;
		size_t before = got;
		while ((n = read(fd, buf, sizeof buf)) > 0)
			got += (size_t)n;
		if (n == 0 || (n < 0 && errno != EAGAIN))
			closed = 1;
		quiet = got > 0 && got == before && sent == size ? quiet + 1 : 0;
	}
	close(fd);
	for (int i = 0; i < 3; i++)
		step(-1);
	if (!srv->running)
		abort(); /* the server must stay up */
	return 0;
}
