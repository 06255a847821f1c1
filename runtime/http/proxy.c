/*
** proxy.c — the API proxy's fast path, all in C: a request under /v1/ (or
** /s/SESSION/v1/, which ties the call to a session) is sent to the
** upstream with every header but the hop-by-hop ones and its body as it
** came; the answer comes back with its status, headers and body as they
** come, each piece passed on the moment it arrives. A copy of everything
** is kept and, when the call ends, handed to Lua (srv:calls()) to be
** redacted, parsed and recorded, off the path the bytes take.
**
** One change is made to the request: Accept-Encoding becomes identity, so
** the bytes relayed are the bytes recorded (no compressed body to undo).
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "call.h"
#include "api_record.h"
#include "server.h"

#define PAUSE_AT   (4 << 20) /* client this far behind: hold the upstream */
#define RESUME_AT  (1 << 20)
#define MAX_KEPT   (64 << 20) /* response bytes kept for the record */
#define MAX_WAIT   10000      /* finished calls waiting for Lua */
#define WHOLE_MAX  (256 << 10) /* answers up to this size may be sent whole */

struct proxy {
	char  *base[3];            /* upstream bases by family (FAM_*), without a trailing slash */
	double stall;              /* seconds the upstream may send nothing */
	list_t running, finished;
	list_t held;               /* requests waiting for the recorder to catch up */
	size_t nfinished;
	size_t relayed, waited;    /* calls ended; calls that were held first */
	int    divert;             /* 1: POST /v1/messages[/count_tokens] go to Lua first; 2: every /v1/ call */
};



proxy_t *proxy_new(const char *anthropic, const char *openai, const char *google, double stall)
{
	proxy_t *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->stall = stall > 0 ? stall : 600;
	const char *given[3] = { anthropic, openai, google };
	for (int f = 0; f < 3; f++) {
		if (!(p->base[f] = strdup(given[f]))) {
			proxy_free(p);
			return NULL;
		}
		size_t n = strlen(p->base[f]);
		while (n > 0 && p->base[f][n - 1] == '/')
			p->base[f][--n] = 0;
	}
	return p;
}




void proxy_free(proxy_t *p)
{
	while (p->finished.head) {
		pcall_t *c = list_item(p->finished.head, pcall_t, node);
		list_remove(&p->finished, &c->node);
		pcall_free(c);
	}
	for (int f = 0; f < 3; f++)
		free(p->base[f]);
	free(p);
}

/* /v1/..., or /s/SESSION/v1/... with SESSION of letters, digits, - and _ */
static const char *session_end(const char *uri)
{
	if (strncmp(uri, "/s/", 3) != 0)
		return NULL;
	const char *p = uri + 3;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
	       *p == '-' || *p == '_')
		p++;
	return p > uri + 3 && p - uri < 60 ? p : NULL;
}

int proxy_match(const hreq_t *r)
{
	const char *uri = r->uri.p, *rest = session_end(uri);
	return hreq_api_path(rest ? rest : uri);
}

void proxy_divert(proxy_t *p, int mode)
{
	p->divert = mode;
}

/* What a route may send elsewhere: the Messages API's calls. */
static int diverted(const hreq_t *r)
{
	const char *uri = r->uri.p, *rest = session_end(uri), *p = rest ? rest : uri;
	if (strcmp(r->method, "POST") != 0 || strncmp(p, "/v1/messages", 12) != 0)
		return 0;
	p += 12;
	if (strncmp(p, "/count_tokens", 13) == 0)
		p += 13;
	return *p == 0 || *p == '?';
}

int proxy_hop_by_hop(const char *name)
{
	static const char *const skip[] = {
		"connection", "keep-alive", "proxy-connection", "te", "trailer", "trailers",
		"transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate",
		"host", "content-length", "accept-encoding", "expect", "x-procy-token", NULL
	};
	for (const char *const *s = skip; *s; s++)
		if (strcasecmp(name, *s) == 0)
			return 1;
	return 0;
}

static void finish(pcall_t *c);

static void on_drain(hreq_t *r)
{
	pcall_t *c = r->owner;
	if (c && c->x && r->out.len - r->out_off < RESUME_AT)
		xfer_pause(c->x, 0);
}

/* The response headers to pass on: all but the hop-by-hop ones. */
static xfer_header *pass_on(const xfer_header *h, size_t n, size_t *nout)
{
	xfer_header *out = calloc(n ? n : 1, sizeof *out);
	*nout = 0;
	for (size_t i = 0; out && i < n; i++)
		if (!proxy_hop_by_hop(h[i].name))
			out[(*nout)++] = h[i];
	return out;
}

static void on_up_headers(xfer_t *x, void *ud)
{
	pcall_t *c = ud;
	c->status = x->status;
	c->ttfb = x->ttfb;
	c->resp_hdr = calloc(x->nhdr ? x->nhdr : 1, sizeof *c->resp_hdr);
	for (size_t i = 0; c->resp_hdr && i < x->nhdr; i++) {
		c->resp_hdr[c->nresp].name = strdup(x->hdr[i].name);
		c->resp_hdr[c->nresp].value = strdup(x->hdr[i].value);
		c->nresp++;
	}
	if (!c->r)
		return;
	/* A small answer of known length that is not a stream of events is
	   sent whole when it is in (as nginx buffers by default): one wake-up
	   of the client's connection instead of one per piece. Anything else
	   is passed on piece by piece, the moment each piece arrives. */
	const char *len = xfer_get_header(x, "content-length");
	const char *type = xfer_get_header(x, "content-type");
	int64_t size = len && !xfer_get_header(x, "transfer-encoding") ? strtoll(len, NULL, 10) : -1;
	if (size >= 0 && size <= WHOLE_MAX && !(type && strstr(type, "event-stream")) && strcmp(c->method, "HEAD")) {
		c->whole = 1;
		return;
	}
	size_t nout;
	xfer_header *out = pass_on(x->hdr, x->nhdr, &nout);
	hreq_start_stream(c->r, (unsigned)x->status, out, nout, size);
	free(out);
}

static void on_up_data(xfer_t *x, void *ud, const char *p, size_t n)
{
	pcall_t *c = ud;
	/* The record keeps a prefix: once a piece does not fit (or memory
	   runs out), nothing after it is kept, and the call says so. */
	c->resp_total += n;
	if (!c->truncated) {
		size_t room = MAX_KEPT - c->resp_body.len, take = n < room ? n : room;
		if (buf_add(&c->resp_body, p, take) < 0 || take < n)
			c->truncated = 1;
	}
	if (!c->r || c->whole)
		return;
	if (hreq_send(c->r, p, n) < 0) {
		/* The client's buffer could not take the piece (out of memory):
		   what was relayed would no longer be what is recorded, so the
		   call ends here, broken for the client, and says where. */
		snprintf(c->error, sizeof c->error, "ENOMEM: the answer could not be passed on after %zu bytes",
		         c->resp_total - n);
		c->aborted = 1;
		xfer_abort(x);
		c->x = NULL;
		hreq_end(c->r, 1);
		finish(c); /* lets go of the client's request */
		return;
	}
	if (c->r->out.len - c->r->out_off > PAUSE_AT)
		xfer_pause(x, 1);
}

static void answer_failure(pcall_t *c, const char *code, const char *msg)
{
	char body[600], esc[300];
	procy_json_safe(esc, sizeof esc, msg);
	int timeout = strcmp(code, "ETIMEDOUT") == 0;
	snprintf(body, sizeof body, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":"
	         "\"procy: the upstream %s: %s\"}}", timeout ? "timeout_error" : "api_error",
	         timeout ? "timed out" : "failed", esc);
	hreq_respond_json(c->r, timeout ? 504 : 502, body);
}

static void on_up_done(xfer_t *x, void *ud, const char *code, const char *msg)
{
	pcall_t *c = ud;
	c->x = NULL;
	if (code)
		snprintf(c->error, sizeof c->error, "%s: %s", code, msg);
	if (c->r) {
		if (code && !c->r->answered) {
			answer_failure(c, code, msg);
		} else if (c->whole) {
			size_t nout;
			xfer_header *out = pass_on(x->hdr, x->nhdr, &nout);
			hreq_respond(c->r, (unsigned)c->status, out, nout, c->resp_body.p ? c->resp_body.p : "",
			             c->resp_body.len);
			free(out);
		} else {
			hreq_end(c->r, code != NULL); /* a broken upstream breaks the client's body too */
		}
	}
	finish(c);
}

static const xfer_cb upstream_cb = { on_up_headers, on_up_data, on_up_done };

/* The client is done (the answer was sent) or gone (it hung up). */
static void on_client_close(hreq_t *r)
{
	pcall_t *c = r->owner;
	r->owner = NULL;
	if (!c)
		return;
	c->r = NULL;
	if (c->x) { /* gone mid-answer: stop the upstream too */
		xfer_abort(c->x);
		c->x = NULL;
		c->aborted = 1;
		snprintf(c->error, sizeof c->error, "ECONNRESET: the client closed the connection");
	}
	hreq_release(r);
	finish(c);
}

/* Both sides done: the record waits for Lua (srv:calls()). */
static void finish(pcall_t *c)
{
	if (c->recorded || c->x)
		return;
	c->recorded = 1;
	if (c->r) { /* the rest of the answer is MHD's to send; the record goes on without it */
		c->r->owner = NULL;
		c->r->on_drain = NULL;
		hreq_release(c->r);
		c->r = NULL;
	}
	c->duration = loop_clock() - c->t0;
	list_remove(&c->px->running, &c->node);
	proxy_deliver(c->srv, c);
}

void proxy_deliver(server_t *srv, pcall_t *c)
{
	proxy_t *px = srv->proxy;
	c->px = px;
	c->srv = srv;
	px->relayed++;
	if (srv->capture) { /* recorded on the capture thread */
		capture_add(srv->capture, c);
		return;
	}
	list_push(&px->finished, &c->node);
	if (++px->nfinished > MAX_WAIT) { /* nobody reads the records: keep the newest */
		pcall_t *old = list_item(px->finished.head, pcall_t, node);
		list_remove(&px->finished, &old->node);
		px->nfinished--;
		pcall_free(old);
	}
	if (srv->recorded)
		srv->recorded(srv);
}

/* A held request whose client left before its turn. */
static void on_held_close(hreq_t *r)
{
	list_remove(&r->srv->proxy->held, &r->queued);
	r->on_close = NULL;
	hreq_release(r);
}

static void start_call(server_t *srv, hreq_t *r);

static const char *header_of(const xfer_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0)
			return h[i].value;
	return NULL;
}

enum { FAM_ANTHROPIC, FAM_OPENAI, FAM_GOOGLE };

/* Whether the path's query has parameter name (name=... or name alone). */
static int query_has(const char *p, const char *name)
{
	const char *q = strchr(p, '?');
	size_t n = strlen(name);
	while (q && *q) {
		q++;
		if (strncmp(q, name, n) == 0 && (q[n] == '=' || q[n] == '&' || q[n] == 0))
			return 1;
		q = strchr(q, '&');
	}
	return 0;
}

/* /v1/models/NAME:VERB (or tunedModels) with a verb of the Gemini API's:
   a colon alone is not Google's (OpenAI's fine-tuned models are named
   ft:gpt-4o:org::id, Ollama's llama3:8b). */
static int gemini_verb(const char *p)
{
	static const char *const verbs[] = { "generateContent", "streamGenerateContent", "countTokens",
	                                     "embedContent", "batchEmbedContents", NULL };
	if (strncmp(p, "/v1/models/", 11) != 0 && strncmp(p, "/v1/tunedModels/", 16) != 0)
		return 0;
	size_t end = strcspn(p, "?#");
	const char *colon = NULL;
	for (const char *c = p; c < p + end; c++)
		if (*c == ':')
			colon = c;
	if (!colon || memchr(colon, '/', (size_t)(p + end - colon)))
		return 0;
	for (const char *const *v = verbs; *v; v++)
		if (strlen(*v) == (size_t)(p + end - colon - 1) && strncmp(colon + 1, *v, strlen(*v)) == 0)
			return 1;
	return 0;
}

/* Which API a call belongs to, so it goes to that family's upstream: the
   path where it says (the Messages API is Anthropic's; chat completions,
   responses, completions and embeddings are OpenAI's; /v1beta/, /v1alpha/
   and /v1/models/NAME:VERB with a Gemini verb are Google's Gemini API),
   else the client's own marks. Anthropic's: an anthropic-* header (its
   SDKs always send anthropic-version), x-api-key, a bearer key of its
   (sk-ant-...). Google's: x-goog-api-key or x-goog-api-client. OpenAI's:
   an openai-* header, or a bearer key that is one of its (sk-..., not
   sk-ant-). Then a ?key= parameter (Google's way to pass its key).
   Anything else goes where it always went, the Anthropic upstream: a key
   is never sent to another provider on a guess. */
static int family(const char *p, const xfer_header *h, size_t n, const hreq_t *r)
{
	if (strncmp(p, "/v1/messages", 12) == 0 || strncmp(p, "/v1/complete", 12) == 0)
		return strncmp(p, "/v1/completions", 15) == 0 ? FAM_OPENAI : FAM_ANTHROPIC;
	if (strncmp(p, "/v1/chat/completions", 20) == 0 || strncmp(p, "/v1/responses", 13) == 0 ||
	    strncmp(p, "/v1/completions", 15) == 0 || strncmp(p, "/v1/embeddings", 14) == 0)
		return FAM_OPENAI;
	if (strncmp(p, "/v1beta/", 8) == 0 || strncmp(p, "/v1alpha/", 9) == 0)
		return FAM_GOOGLE;
	if (gemini_verb(p))
		return FAM_GOOGLE;
	int openai_mark = 0;
	for (size_t i = 0; i < n; i++) {
		if (strncasecmp(h[i].name, "anthropic-", 10) == 0 || strcasecmp(h[i].name, "x-api-key") == 0)
			return FAM_ANTHROPIC;
		if (strcasecmp(h[i].name, "x-goog-api-key") == 0 || strcasecmp(h[i].name, "x-goog-api-client") == 0)
			return FAM_GOOGLE;
		openai_mark |= strncasecmp(h[i].name, "openai-", 7) == 0;
	}
	const char *auth = header_of(h, n, "authorization");
	if (auth && strncasecmp(auth, "bearer ", 7) == 0 && !hreq_is_our_token(r, auth)) {
		const char *key = auth + 7;
		if (strncmp(key, "sk-ant-", 7) == 0)
			return FAM_ANTHROPIC;
		if (strncmp(key, "sk-", 3) == 0)
			return FAM_OPENAI;
	}
	if (openai_mark)
		return FAM_OPENAI;
	return query_has(p, "key") ? FAM_GOOGLE : FAM_ANTHROPIC; /* ?key= is Google's API key */
}

/* Whether a request header may go to its family's upstream: no call
   carries another family's key header (x-api-key is Anthropic's,
   x-goog-api-key Google's), a Google call no sk- bearer key (Anthropic's,
   OpenAI's), and an Anthropic call that has x-api-key does
   not also pass a bearer token on (it would be another service's key;
   without x-api-key the bearer is the Anthropic auth token,
   ANTHROPIC_AUTH_TOKEN's way, and goes). */
static int family_key(int fam, const char *name, const char *value, const xfer_header *h, size_t n)
{
	if (strcasecmp(name, "x-goog-api-key") == 0)
		return fam == FAM_GOOGLE;
	if (fam == FAM_GOOGLE && strcasecmp(name, "authorization") == 0)
		return !(strncasecmp(value, "bearer sk-", 10) == 0); /* an Anthropic or OpenAI key; Vertex's OAuth token goes */
	if (fam != FAM_ANTHROPIC)
		return strcasecmp(name, "x-api-key") != 0;
	return strcasecmp(name, "authorization") != 0 || !header_of(h, n, "x-api-key");
}

int proxy_route(server_t *srv, hreq_t *r)
{
	if (!srv->proxy || !proxy_match(r))
		return 0;
	if (srv->proxy->divert == 2 || (srv->proxy->divert && diverted(r)))
		return 0; /* Lua looks at it first, and relays it (req:relay()) or answers it */
	proxy_start(srv, r);
	return 1;
}

void proxy_start(server_t *srv, hreq_t *r)
{
	proxy_t *px = srv->proxy;
	/* The recorder is behind: the call waits (its client with it) rather
	   than be relayed and not recorded. */
	if (px->held.head || (srv->capture && capture_full(srv->capture))) {
		list_push(&px->held, &r->queued);
		r->holders++;
		r->on_close = on_held_close;
		px->waited++;
		return;
	}
	start_call(srv, r);
}

void proxy_resume_held(server_t *srv)
{
	proxy_t *px = srv->proxy;
	while (px && px->held.head && !(srv->capture && capture_full(srv->capture))) {
		hreq_t *r = list_item(px->held.head, hreq_t, queued);
		list_remove(&px->held, &r->queued);
		r->on_close = NULL;
		r->holders--;
		start_call(srv, r);
	}
}

static void start_call(server_t *srv, hreq_t *r)
{
	proxy_t *px = srv->proxy;
	pcall_t *c = calloc(1, sizeof *c);
	if (!c) {
		hreq_respond_json(r, 503, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"procy: out of memory\"}}");
		return;
	}
	const char *uri = r->uri.p, *rest = session_end(uri);
	if (rest)
		snprintf(c->session, sizeof c->session, "%.*s", (int)(rest - uri - 3), uri + 3);
	c->keyed = r->auth != AUTH_NONE;
	c->path = strdup(rest ? rest : uri);
	const char *p = c->path ? c->path : "/";
	int fam = family(p, r->hdr, r->nhdr, r);
	if (asprintf(&c->url, "%s%s", px->base[fam], p) < 0)
		c->url = NULL;
	else if (fam != FAM_GOOGLE)
		hreq_drop_param(c->url, "key"); /* a Google key in the query never leaves for another provider */
	snprintf(c->method, sizeof c->method, "%s", r->method);
	c->px = px;
	c->srv = srv;
	c->r = r;
	c->t0 = loop_clock();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->started_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	/* the request's headers and body become the record's */
	c->req_hdr = r->hdr;
	c->nreq = r->nhdr;
	r->hdr = NULL;
	r->nhdr = 0;
	c->req_body = r->body;
	memset(&r->body, 0, sizeof r->body);
	list_push(&px->running, &c->node);
	r->holders++;
	r->owner = c;
	r->on_close = on_client_close;
	r->on_drain = on_drain;

	char **lines = calloc(c->nreq + 2, sizeof *lines);
	size_t n = 0;
	for (size_t i = 0; lines && i < c->nreq; i++) {
		const xfer_header *h = &c->req_hdr[i];
		if (proxy_hop_by_hop(h->name) || (strcasecmp(h->name, "authorization") == 0 && hreq_is_our_token(r, h->value)) ||
		    (strcasecmp(h->name, "cookie") == 0 && r->mounted))
			continue; /* procy's own token stays here (a browser's cookie under the mount holds it) */
		if (!family_key(fam, h->name, h->value, c->req_hdr, c->nreq))
			continue; /* another family's key never leaves for this one's upstream */
		if (asprintf(&lines[n], "%s: %s", h->name, h->value) >= 0)
			n++;
	}
	if (lines && asprintf(&lines[n], "Accept-Encoding: identity") >= 0)
		n++;
	xfer_req req = { .method = c->method, .url = c->url, .headers = lines,
	                 .body = c->req_body.p, .body_len = c->req_body.len, .body_kept = 1, /* until the record's */
	                 .connect_timeout = 30, .stall_timeout = px->stall };
	err_t err = { "ENOMEM", "out of memory" };
	c->x = lines && c->url ? xfer_start(srv->rt, &req, &upstream_cb, c, &err) : NULL;
	for (size_t i = 0; lines && i < n; i++)
		free(lines[i]);
	free(lines);
	if (!c->x) {
		snprintf(c->error, sizeof c->error, "%s: %s", err.code, err.msg);
		answer_failure(c, err.code, err.msg);
	}
}

void proxy_counts(const server_t *srv, size_t *relayed, size_t *waited, size_t *held)
{
	proxy_t *px = srv->proxy;
	*relayed = px ? px->relayed : 0;
	*waited = px ? px->waited : 0;
	*held = px ? (size_t)px->held.len : 0;
}

int proxy_inflight(const server_t *srv, const char *tag)
{
	int n = 0;
	for (list_node *i = srv->proxy ? srv->proxy->running.head : NULL; i; i = i->next) {
		const pcall_t *c = list_item(i, pcall_t, node);
		n += !tag || strcmp(c->session, tag) == 0;
	}
	return n;
}

void proxy_stop_all(server_t *srv)
{
	proxy_t *px = srv->proxy;
	if (!px)
		return;
	while (px->held.head) { /* never sent upstream: refused, not lost */
		hreq_t *r = list_item(px->held.head, hreq_t, queued);
		list_remove(&px->held, &r->queued);
		r->on_close = NULL;
		hreq_respond_json(r, 503, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
		                  "\"message\":\"procy: shutting down\"}}");
		hreq_release(r);
	}
	while (px->running.head) {
		pcall_t *c = list_item(px->running.head, pcall_t, node);
		if (c->x) {
			xfer_abort(c->x);
			c->x = NULL;
			c->aborted = 1;
			snprintf(c->error, sizeof c->error, "ECANCELED: procy stopped");
		}
		if (c->r) {
			c->r->owner = NULL;
			hreq_release(c->r);
			c->r = NULL;
		}
		finish(c);
	}
}




int proxy_next_record(server_t *srv, lua_State *L)
{
	proxy_t *px = srv->proxy;
	if (!px || !px->finished.head)
		return 0;
	pcall_t *c = list_item(px->finished.head, pcall_t, node);
	list_remove(&px->finished, &c->node);
	px->nfinished--;
	pcall_push(L, c);
	pcall_free(c);
	return 1;
}
