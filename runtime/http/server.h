/*
** server.h — what the HTTP server (http_server.c) and the API proxy
** (proxy.c) share: the server, and one request on it.
*/
#ifndef PROCY_SERVER_H
#define PROCY_SERVER_H

#include "http.h"
#include "libload.h"

typedef struct server server_t;
typedef struct hreq hreq_t;
typedef struct proxy proxy_t;
typedef struct pcall pcall_t;     /* one proxied call (call.h) */
typedef struct capture capture_t; /* the recorder thread (api_record.h) */

struct server {
	runtime_t         *rt;
	struct MHD_Daemon *mhd;     /* NULL until the first client */
	int                listen_fd; /* ours until MHD starts; then -1 */
	int                running;  /* 0 once stopped */
	loop_io            io;      /* the listening socket, then MHD's epoll descriptor */
	loop_timer         timer;   /* MHD's timeout */
	int                port;
	char               host[64]; /* the address it is bound to */
	int                public;  /* bound to an address that is not loopback */
	size_t             max_body;
	unsigned           idle_timeout; /* seconds an idle connection is kept */
	char              *token;   /* the person's: the monitor's routes need it (or its cookie);
	                               beyond loopback every route does */
	char               cookie[24]; /* the cookie a browser keeps it in: procy-PORT */
	char               mount[24]; /* /p/SECRET: the monitor's pages for that cookie (http_guard.c) */
	struct skey       *keys;    /* the agents' session keys (http_guard.c) */
	size_t             nkeys;
	proxy_t           *proxy;   /* NULL: /v1/ is not proxied */
	capture_t         *capture; /* NULL: srv:calls() hands out raw calls */
	/* The layers above, set by whoever builds the server (http_lua.c):
	   the core calls them and never those layers by name. */
	int              (*route)(server_t *srv, hreq_t *r);  /* 1: it took the request (the proxy's /v1/) */
	void             (*to_lua)(server_t *srv, hreq_t *r); /* every request no route took */
	void             (*on_stop)(server_t *srv);           /* before MHD stops: their calls end */
	void             (*recorded)(server_t *srv);          /* a call's record is ready for srv:calls() */
	list_t             live;    /* every request not yet freed */
	list_t             waiting; /* requests for Lua, not yet accepted */
	op_t              *acceptor; /* a task in srv:accept() */
	op_t              *recorder; /* a task in srv:calls() */
	int                anchor;  /* the Lua userdata's registry ref, while running */
	list_node          all;
};

struct hreq {
	server_t              *srv;
	struct MHD_Connection *conn;   /* NULL once MHD is done with it */
	buf_t                  uri;    /* as sent: path and query, NUL-terminated */
	char                   method[16];
	xfer_header           *hdr;    /* request headers as received */
	size_t                 nhdr;
	buf_t                  body;
	int64_t                started; /* loop clock, ns */
	int                    too_big, handed, answered, suspended, aborted;
	int                    holders; /* Lua handle, proxy call */
	int                    relayed; /* Lua passed it to the proxy (req:relay) */
	int                    auth;    /* how it showed who sent it: AUTH_* */
	int                    mounted; /* it came under srv->mount (which is taken off its path) */
	/* a streamed response */
	int                    streaming, out_end, out_error;
	buf_t                  out;
	size_t                 out_off;
	void                 (*on_drain)(hreq_t *r); /* out was read (backpressure) */
	void                 (*on_close)(hreq_t *r); /* the client is gone or done */
	void                  *owner;
	list_node              all;     /* srv->live */
	list_node              queued;  /* srv->waiting */
};

/* NULL with err filled (EINVAL: host is no address; EADDRINUSE, EACCES). */
server_t   *server_start(runtime_t *rt, const char *host, int port, err_t *err);
void        server_stop(server_t *srv);

/* How a request showed who sent it (hreq->auth): nothing, the person's
   token (a header, or ?token= in the link procy prints), the cookie the
   browser was given for it, or an agent's session key (in its base URL). */
enum { AUTH_NONE, AUTH_TOKEN, AUTH_QUERY, AUTH_COOKIE, AUTH_KEY };

const char *hreq_header(const hreq_t *r, const char *name); /* http_guard.c */
/* A session's key opens its routes (/s/KEY/... reaches /s/ID/...); id
   NULL takes the key away. 0, or -1 (ENOMEM). */
int         server_key(server_t *srv, const char *key, const char *id);
void        server_keys_free(server_t *srv);
/* http_guard.c: the checks every request passes once its headers are in.
   0, or the status to refuse it with, and the error's type and message. */
int         hreq_refusal(hreq_t *r, const char **type, const char **msg);
/* Whether an Authorization value is procy's own token (never sent on). */
int         hreq_is_our_token(const hreq_t *r, const char *value);
/* Whether a path (after /s/TAG) is an API's: /v1/, /v1beta/, /v1alpha/. */
int         hreq_api_path(const char *p);
/* Takes every name= (or bare name) parameter out of path's query, in place. */
void        hreq_drop_param(char *path, const char *name);
int         hreq_respond(hreq_t *r, unsigned status, const xfer_header *hdr, size_t nhdr,
                         const char *body, size_t len);
int         hreq_respond_json(hreq_t *r, unsigned status, const char *json);
/* The file open on fd (size bytes) as the body; fd is closed either way. */
int         hreq_respond_fd(hreq_t *r, unsigned status, const xfer_header *hdr, size_t nhdr,
                            int fd, uint64_t size);
/* A response whose body follows: size bytes, or -1 (chunked). */
int         hreq_start_stream(hreq_t *r, unsigned status, const xfer_header *hdr, size_t nhdr,
                              int64_t size);
int         hreq_send(hreq_t *r, const char *p, size_t n);
void        hreq_end(hreq_t *r, int error);
void        hreq_resume(hreq_t *r);
void        hreq_release(hreq_t *r);

/* proxy.c */
proxy_t    *proxy_new(const char *anthropic, const char *openai, const char *google, double stall);
void        proxy_free(proxy_t *p);
int         proxy_match(const hreq_t *r);
/* A header the proxy never passes on, either way: hop-by-hop, what curl
   sets itself, procy's own token (http.hop_by_hop for Lua's relays). */
int         proxy_hop_by_hop(const char *name);
/* 1: POST /v1/messages and /v1/messages/count_tokens are not relayed at
   once but handed to Lua (srv->to_lua), which relays them (proxy_start)
   or answers them itself (a route); 2: every /v1/ request (a replay);
   0: none. */
void        proxy_divert(proxy_t *p, int mode);
/* A finished call, the proxy's or one Lua made (srv:record), goes to the
   record: the capture's queue, or the list srv:calls() reads. */
void        proxy_deliver(server_t *srv, pcall_t *c);
void        proxy_start(server_t *srv, hreq_t *r);
/* srv->route: proxy_start for what proxy_match takes. */
int         proxy_route(server_t *srv, hreq_t *r);
void        proxy_stop_all(server_t *srv);
/* Starts held calls while the recorder has room. */
void        proxy_resume_held(server_t *srv);
/* Calls ended, calls that had to wait for the recorder, calls waiting now. */
void        proxy_counts(const server_t *srv, size_t *relayed, size_t *waited, size_t *held);
/* Proxied calls under way (with /s/TAG/, or all when tag is NULL). */
int         proxy_inflight(const server_t *srv, const char *tag);
/* [-0, +1] Pushes the next finished call as a table; 0 if none is waiting. */
int         proxy_next_record(server_t *srv, lua_State *L);



#endif
