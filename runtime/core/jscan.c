/*
** jscan.c — JSON's structure without its values: where each member of an
** object or element of an array lies. No Lua and no allocation, so the
** recorder thread can split a 1 MB request body into its parts (blobs.c)
** in one pass, without building the values it does not need; and
** json.spans, the same for Lua; and json.escaped, which finds the string
** literals a redaction must decode to see what they hold.
**
** The scanner accepts exactly the JSON the decoder (json.c) accepts,
** except that it does not look inside strings beyond their escapes: a
** value it passes may still fail to decode (invalid \u digits do not).
*/
#include <string.h>

#include "procy.h"

#define JSCAN_MAX_DEPTH 1000

typedef struct scan {
	const char *s, *end;
	int depth;
} scan_t;

static const char *ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p is past the opening quote; returns past the closing one, or NULL. */
static const char *string_end(const char *p, const char *end)
{
	for (;;) {
		const char *q = p;
		while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
			q++;
		if (q >= end || (unsigned char)*q < 0x20)
			return NULL;
		if (*q == '"')
			return q + 1;
		if (end - q < 2 || !q[1] || !strchr("\"\\/bfnrtu", q[1]))
			return NULL;
		if (q[1] == 'u') {
			if (end - q < 6)
				return NULL;
			for (int i = 2; i < 6; i++)
				if (!q[i] || !strchr("0123456789abcdefABCDEF", q[i]))
					return NULL;
			p = q + 6;
		} else {
			p = q + 2;
		}
	}
}

static const char *digits(const char *p, const char *end)
{
	const char *q = p;
	while (q < end && *q >= '0' && *q <= '9')
		q++;
	return q > p ? q : NULL;
}

static const char *number_end(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (!(p = digits(p, end)))
		return NULL;
	if (p < end && *p == '.' && !(p = digits(p + 1, end)))
		return NULL;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!(p = digits(p, end)))
			return NULL;
	}
	return p;
}

static const char *value_end(scan_t *sc, const char *p, jscan_fn fn, void *ud);

/* The object or array at p; fn (if any) gets each child. */
static const char *children(scan_t *sc, const char *p, jscan_fn fn, void *ud)
{
	int is_obj = *p == '{';
	char close = is_obj ? '}' : ']';
	if (++sc->depth > JSCAN_MAX_DEPTH)
		return NULL;
	p = ws(p + 1, sc->end);
	if (p < sc->end && *p == close) {
		sc->depth--;
		return p + 1;
	}
	for (size_t i = 0;; i++) {
		jscan_item it = { 0 };
		if (is_obj) {
			if (p >= sc->end || *p != '"')
				return NULL;
			const char *k = string_end(p + 1, sc->end);
			if (!k)
				return NULL;
			it.key = (size_t)(p + 1 - sc->s);
			it.key_len = (size_t)(k - 1 - (p + 1));
			p = ws(k, sc->end);
			if (p >= sc->end || *p != ':')
				return NULL;
			p = ws(p + 1, sc->end);
		}
		const char *v = p;
		p = value_end(sc, p, NULL, NULL);
		if (!p)
			return NULL;
		it.first = (size_t)(v - sc->s);
		it.last = (size_t)(p - sc->s) - 1;
		if (fn && fn(ud, i, &it) != 0)
			return NULL;
		p = ws(p, sc->end);
		if (p < sc->end && *p == ',') {
			p = ws(p + 1, sc->end);
			continue;
		}
		if (p < sc->end && *p == close)
			break;
		return NULL;
	}
	sc->depth--;
	return p + 1;
}

static const char *value_end(scan_t *sc, const char *p, jscan_fn fn, void *ud)
{
	if (p >= sc->end)
		return NULL;
	switch (*p) {
	case '{':
	case '[':
		return children(sc, p, fn, ud);
	case '"':
		return string_end(p + 1, sc->end);
	case 't':
		return sc->end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
	case 'f':
		return sc->end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
	case 'n':
		return sc->end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
	default:
		return number_end(p, sc->end);
	}
}

int jscan(const char *s, size_t from, size_t to, jscan_fn fn, void *ud)
{
	if (from > to)
		return -1;
	scan_t sc = { s, s + to, 0 };
	const char *p = ws(s + from, sc.end);
	if (p >= sc.end)
		return -1;
	char first = *p;
	p = value_end(&sc, p, first == '{' || first == '[' ? fn : NULL, ud);
	if (!p || ws(p, sc.end) != sc.end)
		return -1;
	return first == '{' ? JSCAN_OBJECT : first == '[' ? JSCAN_ARRAY : JSCAN_VALUE;
}

/* escaped(s) -> {first, last, ...}: where the string literals holding an
   escape lie in s (byte positions, quotes included), whether s is one
   JSON value or text with JSON in it (an event stream). A literal never
   spans a line (JSON strings cannot hold a raw newline), so stray quotes
   in other text cost at most their line. */
int json_escaped(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n), *end = s + n, *p = s;
	lua_newtable(L);
	lua_Integer k = 0;
	while ((p = memchr(p, '"', (size_t)(end - p)))) {
		const char *q = p + 1;
		int esc = 0;
		while (q < end && *q != '"' && *q != '\n') {
			if (*q == '\\') {
				esc = 1;
				q++;
			}
			q++;
		}
		if (q >= end)
			break;
		if (*q == '\n') { /* not a literal: go on from the next line */
			p = q + 1;
			continue;
		}
		if (esc) {
			lua_pushinteger(L, (lua_Integer)(p - s) + 1);
			lua_rawseti(L, -2, ++k);
			lua_pushinteger(L, (lua_Integer)(q - s) + 1);
			lua_rawseti(L, -2, ++k);
		}
		p = q + 1;
	}
	return 1;
}
