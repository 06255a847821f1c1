/*
** http.h — HTTP in the loop: transfers on libcurl's multi interface
** (http_client.c), and the server on libmicrohttpd (http_server.c) with the
** API proxy's fast path (proxy.c). Callbacks run in the loop, never in Lua.
*/
#ifndef PROCY_HTTP_H
#define PROCY_HTTP_H

#include "procy.h"

typedef struct xfer xfer_t;

/* What a transfer tells its owner. headers: the status and every response
   header are in. data: a piece of the body, as it arrives. done: the end,
   err 0, or a failure with code ("ECONNREFUSED", "ETIMEDOUT", ...) and
   message. After done (or xfer_abort) the transfer is freed. */
typedef struct xfer_cb {
	void (*headers)(xfer_t *x, void *ud);
	void (*data)(xfer_t *x, void *ud, const char *p, size_t n);
	void (*done)(xfer_t *x, void *ud, const char *code, const char *msg);
} xfer_cb;

typedef struct xfer_req {
	const char  *method, *url;
	char *const *headers;        /* "Name: value", NULL-terminated, or NULL */
	const char  *body;
	size_t       body_len;
	int          body_kept;       /* body outlives the transfer: read in place, not copied */
	double       connect_timeout; /* seconds; 0: 30 */
	double       timeout;         /* whole transfer, seconds; 0: none */
	double       stall_timeout;   /* abort when nothing arrives this long; 0: none */
} xfer_req;

typedef struct xfer_header {
	char *name, *value;
} xfer_header;

struct xfer {
	int           status;
	xfer_header  *hdr;            /* response headers, in order */
	size_t        nhdr;
	int64_t       started, ttfb;  /* loop clock ns; ttfb: first body byte or headers */
	/* private */
	void         *easy;
	struct curl_slist *sent;
	const xfer_cb *cb;
	void         *ud;
	char          err[256];
	int           got_headers, aborting, paused;
	const char   *body;           /* a kept body, and how much curl has read of it */
	size_t        body_len, body_at;
	int64_t       stall_ns;       /* 0: no stall timeout */
	loop_timer    stall;
	list_node     all;
};

/* Starts a transfer. NULL with err filled: ENOENT (no libcurl), ENOMEM,
   EIO. A bad URL fails later, through done (EINVAL). */
xfer_t *xfer_start(runtime_t *rt, const xfer_req *r, const xfer_cb *cb, void *ud, err_t *err);
/* Stops it: no more callbacks; freed. Safe from any callback but its own. */
void    xfer_abort(xfer_t *x);
/* Holds the body back (a slow reader downstream), or lets it flow again. */
void    xfer_pause(xfer_t *x, int paused);
const char *xfer_get_header(const xfer_t *x, const char *name); /* case-insensitive */
/* Frees what curl keeps (after lua_close). */
void    http_shutdown(void);

/* procy.http (http_lua.c, the binding): the client's functions from
   http_client_open (http_request.c), and serve. */
int  luaopen_procy_http(lua_State *L);
void http_client_open(lua_State *L);
/* Stops every server still listening (after lua_close). */
void server_shutdown(void);

#endif
