/*
** http_guard.c — what a request must show before procy's server reads its
** body or answers it: the person's token (or its cookie) on the person's
** routes, an agent's session key on its session's (every route beyond
** loopback needs one or the other), a Host that
** names this server (a web page cannot reach it by DNS rebinding), an
** Origin of this server or none (a page the person visits cannot post to
** it), one Content-Length within bounds, and a path with no dot segments
** (nothing reaches an upstream path the proxy did not mean). Checked once
** the headers are in, so a refused request costs no memory for its body.
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server.h"

/* Constant-time comparison of the token with the n bytes given. */
static int token_matches(const char *token, const char *given, size_t n)
{
	size_t tn = strlen(token);
	unsigned diff = tn != n;
	for (size_t i = 0; i < tn; i++)
		diff |= (unsigned char)token[i] ^ (unsigned char)(i < n ? given[i] : 0);
	return diff == 0;
}

/* A request header by name (any case), or NULL. */
const char *hreq_header(const hreq_t *r, const char *name)
{
	for (size_t i = 0; i < r->nhdr; i++)
		if (strcasecmp(r->hdr[i].name, name) == 0)
			return r->hdr[i].value;
	return NULL;
}

/* The n bytes at p are the value of cookie `name` in a Cookie header. */
static const char *cookie_value(const char *header, const char *name, size_t *n)
{
	size_t nl = strlen(name);
	for (const char *p = header; p && *p;) {
		p += strspn(p, " \t;");
		size_t len = strcspn(p, ";");
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			*n = len - nl - 1;
			while (*n && (p[nl + 1 + *n - 1] == ' ' || p[nl + 1 + *n - 1] == '\t'))
				(*n)--;
			return p + nl + 1;
		}
		p += len;
	}
	return NULL;
}

/* How the request shows the person's token: "x-procy-token" or
   "Authorization: Bearer TOKEN" (scripts, procy's own commands), ?token=
   (the link procy prints), or the cookie the monitor's page was given for
   it. AUTH_NONE when it does not. */
static int person_auth(const hreq_t *r)
{
	const char *t = r->srv->token;
	const char *given = hreq_header(r, "x-procy-token");
	if (given && token_matches(t, given, strlen(given)))
		return AUTH_TOKEN;
	const char *auth = hreq_header(r, "authorization");
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && token_matches(t, auth + 7, strlen(auth + 7)))
		return AUTH_TOKEN;
	/* the query ends at '#', as hreq_drop_param reads it */
	size_t qlen = strcspn(r->uri.p, "#");
	const char *q = memchr(r->uri.p, '?', qlen), *end = r->uri.p + qlen;
	for (const char *p = q; p && p < end; p = memchr(p + 1, '&', (size_t)(end - p - 1)))
		if (strncmp(p + 1, "token=", 6) == 0 && token_matches(t, p + 7, strcspn(p + 7, "&#")))
			return AUTH_QUERY;
	/* a browser sends the cookie only under the server's mount (its Path):
	   cookies are not kept apart by port, and any other server on this
	   machine would be sent one that held for every path */
	const char *cookie = r->mounted ? hreq_header(r, "cookie") : NULL;
	size_t n;
	const char *v = cookie ? cookie_value(cookie, r->srv->cookie, &n) : NULL;
	if (v && token_matches(t, v, n))
		return AUTH_COOKIE;
	return AUTH_NONE;
}

/* ---- the agents' session keys ---------------------------------------------------- */

struct skey {
	char key[72];
	char id[72];
};

int server_key(server_t *srv, const char *key, const char *id)
{
	for (size_t i = 0; i < srv->nkeys; i++)
		if (strcmp(srv->keys[i].key, key) == 0) {
			if (id) {
				snprintf(srv->keys[i].id, sizeof srv->keys[i].id, "%s", id);
			} else {
				srv->keys[i] = srv->keys[--srv->nkeys];
			}
			return 0;
		}
	if (!id)
		return 0;
	struct skey *k = realloc(srv->keys, (srv->nkeys + 1) * sizeof *k);
	if (!k)
		return -1;
	srv->keys = k;
	snprintf(k[srv->nkeys].key, sizeof k->key, "%s", key);
	snprintf(k[srv->nkeys].id, sizeof k->id, "%s", id);
	srv->nkeys++;
	return 0;
}

void server_keys_free(server_t *srv)
{
	free(srv->keys);
	srv->keys = NULL;
	srv->nkeys = 0;
}

/* /s/TAG/...: TAG a session's key opens its session (the path becomes
   /s/ID/..., so nothing after this sees the key, the record neither);
   TAG the id of a session that has a key is refused (its routes are its
   agent's alone). Any other TAG is a label, as on /v1/. 0 or 403. */
static int session_key(hreq_t *r)
{
	char *uri = r->uri.p;
	if (strncmp(uri, "/s/", 3) != 0 || !r->srv->nkeys)
		return 0;
	char *tag = uri + 3;
	size_t n = strcspn(tag, "/?#");
	struct skey *hit = NULL;
	for (size_t i = 0; i < r->srv->nkeys; i++) /* every key compared, in constant time */
		if (token_matches(r->srv->keys[i].key, tag, n) && !hit)
			hit = &r->srv->keys[i];
	if (!hit) {
		for (size_t i = 0; i < r->srv->nkeys; i++)
			if (strlen(r->srv->keys[i].id) == n && strncmp(r->srv->keys[i].id, tag, n) == 0)
				return 403;
		return 0;
	}
	size_t idn = strlen(hit->id), tail = strlen(tag + n) + 1;
	if (idn > n && buf_reserve(&r->uri, idn - n) < 0)
		return 403;
	tag = r->uri.p + 3;
	memmove(tag + idn, tag + n, tail);
	memcpy(tag, hit->id, idn);
	r->uri.len = strlen(r->uri.p) + 1;
	r->auth = AUTH_KEY;
	return 0;
}

int hreq_api_path(const char *p)
{
	return strncmp(p, "/v1/", 4) == 0 || strncmp(p, "/v1beta/", 8) == 0 || strncmp(p, "/v1alpha/", 9) == 0;
}

/* A base URL without its API version: clients of the same API disagree on
   whether /v1 belongs to it (Anthropic's SDKs add it, the AI SDK expects
   it in the base), so /messages, /chat/completions, /responses,
   /completions, /embeddings and /models, at the root or under /s/TAG/,
   are the /v1/ ones. 0, or -1 out of memory. */
static int add_version(hreq_t *r)
{
	char *uri = r->uri.p, *rest = uri;
	if (strncmp(uri, "/s/", 3) == 0)
		rest = uri + 3 + strcspn(uri + 3, "/?#");
	if (hreq_api_path(rest))
		return 0;
	static const char *const bare[] = { "/messages", "/chat/completions", "/responses", "/completions",
	                                    "/embeddings", "/models", NULL };
	int hit = 0;
	for (const char *const *b = bare; *b && !hit; b++) {
		size_t n = strlen(*b);
		hit = strncmp(rest, *b, n) == 0 && (rest[n] == 0 || rest[n] == '/' || rest[n] == '?');
	}
	if (!hit)
		return 0;
	size_t at = (size_t)(rest - uri);
	if (buf_reserve(&r->uri, 3) < 0)
		return -1;
	uri = r->uri.p;
	memmove(uri + at + 3, uri + at, strlen(uri + at) + 1);
	memcpy(uri + at, "/v1", 3);
	r->uri.len = strlen(uri) + 1;
	return 0;
}

/* What a route needs: the proxy's (/v1/, /v1beta/, /s/TAG/v1/...) and the routes that
   check a key of their own (an agent's hooks, a background agent's
   control) need no token on loopback; /health says more with one; every
   other route is the person's. */
static int persons_route(const char *uri)
{
	if (strncmp(uri, "/s/", 3) == 0)
		return 0; /* an agent's base URL: its API calls, or an API error naming what is served */
	if (hreq_api_path(uri))
		return 0;
	if (strncmp(uri, "/hooks/", 7) == 0 || strncmp(uri, "/agent/", 7) == 0)
		return 0;
	size_t n = strcspn(uri, "?#");
	return !(n == 7 && strncmp(uri, "/health", 7) == 0);
}

/* Takes every name= (or bare name) parameter out of path's query, in
   place. hreq_refusal takes token= out of every request it lets in:
   procy's token is for procy, never sent on whether or not it matched (an
   agent's client that puts it in its base URL would otherwise hand it to
   every upstream); the proxy, Lua's handlers and the record all see the
   path without it. The proxy takes a Google key= out of other providers'
   URLs. */
void hreq_drop_param(char *path, const char *name)
{
	char *q = strchr(path, '?');
	if (!q)
		return;
	size_t n = strlen(name);
	char *w = q + 1, *r = q + 1;
	while (*r && *r != '#') {
		size_t len = strcspn(r, "&#");
		if (!(len >= n + 1 && strncmp(r, name, n) == 0 && r[n] == '=') && !(len == n && strncmp(r, name, n) == 0)) {
			if (w > q + 1)
				*w++ = '&';
			memmove(w, r, len);
			w += len;
		}
		r += len;
		if (*r == '&')
			r++;
	}
	memmove(w, r, strlen(r) + 1); /* the fragment, if any */
	if (w == q + 1 && !*w)
		*q = 0; /* nothing left: no '?' either */
}

/* Is the Authorization header procy's own token? (Not to be sent on.) */
int hreq_is_our_token(const hreq_t *r, const char *value)
{
	return strncasecmp(value, "Bearer ", 7) == 0 &&
	       token_matches(r->srv->token, value + 7, strlen(value + 7));
}

/* host[:port] names this server: a loopback name or the address it is
   bound to, with its port (or none). */
static int our_host(const server_t *srv, const char *h, size_t n)
{
	const char *colon = NULL;
	if (n && h[0] == '[') { /* [::1]:port */
		const char *close = memchr(h, ']', n);
		if (!close)
			return 0;
		colon = (size_t)(close + 1 - h) < n ? close + 1 : NULL;
		if (colon && *colon != ':')
			return 0;
	} else {
		colon = memchr(h, ':', n);
	}
	size_t name = colon ? (size_t)(colon - h) : n;
	if (colon) {
		char *end;
		long port = strtol(colon + 1, &end, 10);
		if (end != h + n || port != srv->port)
			return 0;
	}
	static const char *const loop[] = { "127.0.0.1", "localhost", "[::1]", NULL };
	for (const char *const *l = loop; *l; l++)
		if (strlen(*l) == name && strncasecmp(h, *l, name) == 0)
			return 1;
	return strlen(srv->host) == name && strncasecmp(h, srv->host, name) == 0;
}

/* A dot segment ("/../", "/./", also %2e-encoded) or a backslash. */
static int has_dot_segment(const char *uri)
{
	size_t n = strcspn(uri, "?#");
	for (size_t i = 0; i < n; i++) {
		if (uri[i] == '\\')
			return 1;
		if (uri[i] != '/')
			continue;
		size_t j = i + 1, dots = 0;
		for (;;) {
			if (j < n && uri[j] == '.') {
				j++, dots++;
			} else if (j + 2 < n && uri[j] == '%' && uri[j + 1] == '2' && (uri[j + 2] == 'e' || uri[j + 2] == 'E')) {
				j += 3, dots++;
			} else {
				break;
			}
		}
		if ((dots == 1 || dots == 2) && (j == n || uri[j] == '/' ||
		    (j + 2 < n && uri[j] == '%' && uri[j + 1] == '2' && (uri[j + 2] == 'f' || uri[j + 2] == 'F'))))
			return 1;
	}
	return 0;
}

int hreq_refusal(hreq_t *r, const char **type, const char **msg)
{
	server_t *srv = r->srv;
	*type = "invalid_request_error";
	if (has_dot_segment(r->uri.p)) { /* first: no route is judged by a path that is not its own */
		*msg = "procy: a path with . or .. segments is refused";
		return 400;
	}
	/* the monitor's pages under its mount: /p/SECRET/x is /x, as a browser
	   holding the cookie asks for it */
	size_t ml = strlen(srv->mount);
	if (ml && strncmp(r->uri.p, srv->mount, ml) == 0 && r->uri.p[ml] == '/') {
		memmove(r->uri.p, r->uri.p + ml, strlen(r->uri.p + ml) + 1);
		r->uri.len = strlen(r->uri.p) + 1;
		r->mounted = 1;
	}
	if (session_key(r)) {
		*type = "permission_error";
		*msg = "procy: this session's routes take its key (the base URL procy gave its agent)";
		return 403;
	}
	if (add_version(r) < 0) {
		*type = "api_error";
		*msg = "procy: out of memory";
		return 503;
	}
	if (r->auth != AUTH_KEY)
		r->auth = person_auth(r);
	int person = persons_route(r->uri.p); /* a key opens its session's proxy alone */
	int shown = r->auth == AUTH_KEY ? !person : r->auth != AUTH_NONE;
	if (!shown && (srv->public || person)) {
		*type = "authentication_error";
		*msg = srv->public ? "procy: a token is needed (Authorization: Bearer ...)"
		                   : "procy: this is its person's monitor: open the link procy printed "
		                     "(procy link prints it again), or send the token (x-procy-token)";
		return 401;
	}
	/* On loopback only names of this server, so a page whose name turns
	   into 127.0.0.1 (DNS rebinding) is refused; a server reached by name
	   (another host) takes any Host, with its token. */
	const char *host = hreq_header(r, "host");
	if (!srv->public) {
		if (!host || !our_host(srv, host, strlen(host))) {
			*type = "permission_error";
			*msg = "procy: this Host is not procy's (a web page cannot reach procy by another name)";
			return 403;
		}
	}
	/* Browsers say where a request comes from; only procy's own pages may
	   send it anything. Agents and scripts send no Origin. */
	const char *origin = hreq_header(r, "origin");
	if (origin) {
		const char *h = strncmp(origin, "http://", 7) == 0 ? origin + 7 : NULL;
		if (!h || !host || strcasecmp(h, host) != 0) {
			*type = "permission_error";
			*msg = "procy: requests from other web pages are refused (Origin)";
			return 403;
		}
	}
	int lengths = 0;
	for (size_t i = 0; i < r->nhdr; i++)
		lengths += strcasecmp(r->hdr[i].name, "content-length") == 0;
	if (lengths > 1) {
		*msg = "procy: more than one Content-Length";
		return 400;
	}
	const char *len = hreq_header(r, "content-length");
	if (len && strtoull(len, NULL, 10) > srv->max_body) {
		*type = "request_too_large";
		*msg = "procy: request body too large";
		return 413;
	}
	/* checked: from here on no handler, upstream or record sees the token */
	hreq_drop_param(r->uri.p, "token");
	r->uri.len = strlen(r->uri.p) + 1;
	return 0;
}
