/*
** call.h — one proxied call as the proxy finished it (call.c): what the
** proxy fills in, the capture records and srv:calls() hands to Lua. Below
** both, so neither calls the other.
*/
#ifndef PROCY_CALL_H
#define PROCY_CALL_H

#include "http.h"

typedef struct proxy proxy_t;
typedef struct server server_t;
typedef struct hreq hreq_t;
typedef struct pcall pcall_t;

struct pcall {
	proxy_t     *px;
	server_t    *srv;
	hreq_t      *r;       /* NULL once the client side is done */
	xfer_t      *x;       /* NULL once the upstream side is done */
	char         session[64];
	int          keyed;   /* the request showed a key of session's or the person's token:
	                         only then may /s/ID/ file the call under session ID */
	char        *path;    /* upstream path and query */
	char        *url;
	char         method[16];
	xfer_header *req_hdr, *resp_hdr;
	size_t       nreq, nresp;
	buf_t        req_body, resp_body;
	int          status, truncated, aborted, recorded;
	size_t       resp_total; /* bytes relayed, kept or not */
	int          whole;   /* answered in one piece at the end */
	int64_t      started_us, t0, ttfb, duration;
	char         error[300];
	/* A call a route sent elsewhere (made in Lua, srv:record): what was
	   decided, as JSON, and what the provider got and answered. */
	char        *routed;
	buf_t        up_req, up_resp;
	list_node    node;
};

/* [-0, +1] A finished call as a table (on any thread's state). */
void   pcall_push(lua_State *L, const pcall_t *c);
/* The call a table of pcall_push's shape describes (a call Lua made);
   NULL when memory runs out. A field of another type is left out. */
pcall_t *pcall_from(lua_State *L, int idx);
void   pcall_free(pcall_t *c);
size_t pcall_size(const pcall_t *c); /* the bytes it holds */

#endif
