/*
** http_guard.c — what a request must show before procy's server reads its
** body or answers it: the token (when the server has one), a Host that
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

/* The token, when the server has one: "Authorization: Bearer TOKEN", an
   "x-procy-token" header, or ?token=TOKEN. */
int hreq_authorized(const hreq_t *r)
{
	const char *t = r->srv->token;
	const char *given = hreq_header(r, "x-procy-token");
	if (given && token_matches(t, given, strlen(given)))
		return 1;
	const char *auth = hreq_header(r, "authorization");
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && token_matches(t, auth + 7, strlen(auth + 7)))
		return 1;
	/* the query ends at '#', as strip_token reads it */
	size_t qlen = strcspn(r->uri.p, "#");
	const char *q = memchr(r->uri.p, '?', qlen), *end = r->uri.p + qlen;
	for (const char *p = q; p && p < end; p = memchr(p + 1, '&', (size_t)(end - p - 1)))
		if (strncmp(p + 1, "token=", 6) == 0 && token_matches(t, p + 7, strcspn(p + 7, "&#")))
			return 1;
	return 0;
}

/* Takes every token= parameter out of path's query, in place: procy's
   token is for procy, and a query parameter of that name is never sent on,
   whether or not it matched (an agent's client that puts procy's token
   in its base URL would otherwise hand it to every upstream). Done once,
   by hreq_refusal, for every request it lets in: the proxy, Lua's handlers (routes,
   the API) and the record all see the path without it. */
static void strip_token(char *path)
{
	char *q = strchr(path, '?');
	if (!q)
		return;
	char *w = q + 1, *r = q + 1;
	while (*r && *r != '#') {
		size_t n = strcspn(r, "&#");
		if (!(n >= 6 && strncmp(r, "token=", 6) == 0) && !(n == 5 && strncmp(r, "token", 5) == 0)) {
			if (w > q + 1)
				*w++ = '&';
			memmove(w, r, n);
			w += n;
		}
		r += n;
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
	return r->srv->token && strncasecmp(value, "Bearer ", 7) == 0 &&
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
	if (srv->token && !hreq_authorized(r)) {
		*type = "authentication_error";
		*msg = "procy: a token is needed (Authorization: Bearer ...)";
		return 401;
	}
	/* A server reached by name (another host, with a token) takes any Host;
	   on loopback only names of this server, so a page whose name turns
	   into 127.0.0.1 (DNS rebinding) is refused. */
	const char *host = hreq_header(r, "host");
	if (!srv->token || !srv->public) {
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
	if (has_dot_segment(r->uri.p)) {
		*msg = "procy: a path with . or .. segments is refused";
		return 400;
	}
	/* checked: from here on no handler, upstream or record sees the token */
	strip_token(r->uri.p);
	r->uri.len = strlen(r->uri.p) + 1;
	return 0;
}
