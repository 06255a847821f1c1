/*
** json_encode.c — procy.json's encoder: Lua values to JSON text in one
** pass (json.c has the conventions, the decoder and the module).
*/
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procy.h"
#include "json_impl.h"

/* ---- encoding -------------------------------------------------------------- */

typedef struct enc {
	buf_t *b;
	int    indent; /* spaces per level; 0 = compact */
	int    sort;
} enc_t;

static void enc_add(lua_State *L, enc_t *e, const char *s, size_t n)
{
	if (buf_add(e->b, s, n) < 0)
		luaL_error(L, "json: out of memory");
}

#define enc_lit(L, e, s) enc_add((L), (e), (s), sizeof(s) - 1)

static void enc_newline(lua_State *L, enc_t *e, int depth)
{
	if (!e->indent)
		return;
	enc_lit(L, e, "\n");
	for (int i = 0; i < depth * e->indent; i++)
		enc_lit(L, e, " ");
}

/* Length of a valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) { len = 2; min = 0x80; }
	else if (c >= 0xe0 && c <= 0xef) { len = 3; min = 0x800; }
	else if (c >= 0xf0 && c <= 0xf4) { len = 4; min = 0x10000; }
	else return 0;
	if (n < len)
		return 0;
	unsigned cp = c & (0x3f >> (len - 1));
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void enc_string(lua_State *L, enc_t *e, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	enc_lit(L, e, "\"");
	while (p < end) {
		const unsigned char *run = p;
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		enc_add(L, e, (const char *)run, (size_t)(p - run));
		if (p == end)
			break;
		unsigned c = *p;
		if (c >= 0x80) {
			size_t len = utf8_len(p, (size_t)(end - p));
			if (len) {
				enc_add(L, e, (const char *)p, len);
				p += len;
			} else {
				enc_lit(L, e, "\\ufffd");
				p++;
			}
			continue;
		}
		p++;
		switch (c) {
		case '"':  enc_lit(L, e, "\\\""); break;
		case '\\': enc_lit(L, e, "\\\\"); break;
		case '\n': enc_lit(L, e, "\\n"); break;
		case '\r': enc_lit(L, e, "\\r"); break;
		case '\t': enc_lit(L, e, "\\t"); break;
		case '\b': enc_lit(L, e, "\\b"); break;
		case '\f': enc_lit(L, e, "\\f"); break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			enc_add(L, e, u, 6);
		}
		}
	}
	enc_lit(L, e, "\"");
}

/* Fewest significant digits (15..17) that read back as the same double. */
static int format_float(char *out, size_t size, double d)
{
	int n = 0;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(out, size, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			break;
	}
	if (!strpbrk(out, ".eEn"))
		n += snprintf(out + n, size - (size_t)n, ".0");
	return n;
}

static void enc_number(lua_State *L, enc_t *e, int idx)
{
	char tmp[64];
	int n;
	if (lua_isinteger(L, idx)) {
		n = snprintf(tmp, sizeof tmp, "%lld", (long long)lua_tointeger(L, idx));
	} else {
		double d = lua_tonumber(L, idx);
		if (isnan(d) || isinf(d))
			luaL_error(L, "json: cannot encode %s", isnan(d) ? "NaN" : "an infinite number");
		n = format_float(tmp, sizeof tmp, d);
	}
	enc_add(L, e, tmp, (size_t)n);
}

/* The __json field of the value's metatable: "array", "object" or NULL. */
static const char *marked_kind(lua_State *L, int idx)
{
	const char *kind = NULL;
	if (lua_getmetatable(L, idx)) {
		if (lua_getfield(L, -1, "__json") == LUA_TSTRING)
			kind = lua_tostring(L, -1); /* the metatable keeps it alive */
		lua_pop(L, 2);
	}
	return kind;
}

/* Array length if the table at idx should be written as an array, else -1. */
static lua_Integer array_length(lua_State *L, int idx)
{
	const char *kind = marked_kind(L, idx);
	if (kind)
		return strcmp(kind, "array") == 0 ? (lua_Integer)lua_rawlen(L, idx) : -1;
	lua_Integer count = 0, max = 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
			lua_pop(L, 1);
			return -1;
		}
		lua_Integer k = lua_tointeger(L, -1);
		if (k > max)
			max = k;
		count++;
	}
	return count > 0 && count == max ? count : -1;
}

static void enc_value(lua_State *L, enc_t *e, int idx, int depth);

/* Pushes the JSON key text for the key at idx. */
static const char *key_text(lua_State *L, int idx, size_t *n)
{
	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		lua_pushvalue(L, idx);
		break;
	case LUA_TNUMBER: {
		char tmp[64];
		if (lua_isinteger(L, idx))
			snprintf(tmp, sizeof tmp, "%lld", (long long)lua_tointeger(L, idx));
		else
			format_float(tmp, sizeof tmp, lua_tonumber(L, idx));
		lua_pushstring(L, tmp);
		break;
	}
	default:
		luaL_error(L, "json: cannot use a %s as an object key", luaL_typename(L, idx));
	}
	return lua_tolstring(L, -1, n);
}

typedef struct keyref {
	const char *s;
	size_t      n;
	int         slot; /* index in the key table, or on the stack */
} keyref;

static int keycmp(const void *a, const void *b)
{
	const keyref *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->s, y->s, n);
	return c ? c : (x->n > y->n) - (x->n < y->n);
}

static void enc_member(lua_State *L, enc_t *e, int key, int val, int depth, int *first)
{
	size_t n;
	const char *k = key_text(L, key, &n);
	if (!*first)
		enc_lit(L, e, ",");
	*first = 0;
	enc_newline(L, e, depth + 1);
	enc_string(L, e, k, n);
	lua_pop(L, 1);
	enc_add(L, e, ": ", e->indent ? 2 : 1);
	enc_value(L, e, val, depth + 1);
}

/* An object of a few string keys, sorted without allocating: the keys
   stay on the stack, pointers to them are sorted on the C stack. (Most
   objects are: an export sorts a message's two keys a million times.)
   0, with nothing written, when it has many keys or one that is no string. */
#define SMALL_KEYS 16
static int enc_sorted_small(lua_State *L, enc_t *e, int idx, int depth, int *first)
{
	int base = lua_gettop(L), nkeys = 0;
	luaL_checkstack(L, SMALL_KEYS + 4, NULL);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (nkeys == SMALL_KEYS || lua_type(L, -1) != LUA_TSTRING) {
			lua_settop(L, base);
			return 0;
		}
		nkeys++;
		lua_pushvalue(L, -1); /* the copy goes on iterating; the key stays */
	}
	keyref refs[SMALL_KEYS];
	for (int i = 0; i < nkeys; i++) {
		refs[i].s = lua_tolstring(L, base + 1 + i, &refs[i].n);
		refs[i].slot = base + 1 + i;
	}
	qsort(refs, (size_t)nkeys, sizeof *refs, keycmp);
	for (int i = 0; i < nkeys; i++) {
		lua_pushvalue(L, refs[i].slot);
		lua_pushvalue(L, -1);
		lua_rawget(L, idx);
		int top = lua_gettop(L);
		enc_member(L, e, top - 1, top, depth, first);
		lua_pop(L, 2);
	}
	lua_settop(L, base);
	return 1;
}

static void enc_object(lua_State *L, enc_t *e, int idx, int depth)
{
	int first = 1;
	enc_lit(L, e, "{");
	if (!e->sort) {
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			int top = lua_gettop(L);
			enc_member(L, e, top - 1, top, depth, &first);
			lua_pop(L, 1);
		}
	} else if (!enc_sorted_small(L, e, idx, depth, &first)) {
		/* Collect the keys' texts in a table (which keeps them alive),
		   sort pointers to them, then look each value up. */
		lua_newtable(L);
		int keys = lua_gettop(L);
		int nkeys = 0;
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			lua_pop(L, 1);
			lua_pushvalue(L, -1);
			lua_rawseti(L, keys, ++nkeys);
		}
		keyref *refs = lua_newuserdatauv(L, sizeof(keyref) * (size_t)(nkeys ? nkeys : 1), 0);
		for (int i = 0; i < nkeys; i++) {
			lua_rawgeti(L, keys, i + 1);
			size_t n;
			key_text(L, -1, &n);
			lua_rawseti(L, keys, nkeys + i + 1); /* keep the text */
			lua_pop(L, 1);
			lua_rawgeti(L, keys, nkeys + i + 1);
			refs[i].s = lua_tolstring(L, -1, &refs[i].n);
			refs[i].slot = i + 1;
			lua_pop(L, 1);
		}
		qsort(refs, (size_t)nkeys, sizeof *refs, keycmp);
		for (int i = 0; i < nkeys; i++) {
			lua_rawgeti(L, keys, refs[i].slot);
			lua_pushvalue(L, -1);
			lua_rawget(L, idx);
			int top = lua_gettop(L);
			enc_member(L, e, top - 1, top, depth, &first);
			lua_pop(L, 2);
		}
		lua_settop(L, keys - 1);
	}
	if (!first)
		enc_newline(L, e, depth);
	enc_lit(L, e, "}");
}

static void enc_value(lua_State *L, enc_t *e, int idx, int depth)
{
	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		enc_lit(L, e, "null");
		return;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, idx))
			enc_lit(L, e, "true");
		else
			enc_lit(L, e, "false");
		return;
	case LUA_TNUMBER:
		enc_number(L, e, idx);
		return;
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, idx, &n);
		enc_string(L, e, s, n);
		return;
	}
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == NULL) {
			enc_lit(L, e, "null");
			return;
		}
		break;
	case LUA_TTABLE: {
		if (depth >= JSON_MAX_DEPTH)
			luaL_error(L, "json: tables nested deeper than %d levels (a cycle?)", JSON_MAX_DEPTH);
		luaL_checkstack(L, 8, "json: nesting");
		lua_Integer n = array_length(L, idx);
		if (n < 0) {
			enc_object(L, e, idx, depth);
			return;
		}
		enc_lit(L, e, "[");
		for (lua_Integer i = 1; i <= n; i++) {
			if (i > 1)
				enc_lit(L, e, ",");
			enc_newline(L, e, depth + 1);
			lua_rawgeti(L, idx, i);
			enc_value(L, e, -1, depth + 1);
			lua_pop(L, 1);
		}
		if (n > 0)
			enc_newline(L, e, depth);
		enc_lit(L, e, "]");
		return;
	}
	default:
		break;
	}
	luaL_error(L, "json: cannot encode a %s value", luaL_typename(L, idx));
}

/* encode(value, [opts]) -> string. opts.indent (true or a number of spaces)
   pretty-prints; opts.sort writes object keys in byte order. Raises on
   values JSON cannot hold. */
int json_encode(lua_State *L)
{
	enc_t e = { 0 };
	luaL_checkany(L, 1);
	if (lua_istable(L, 2)) {
		lua_getfield(L, 2, "indent");
		e.indent = lua_isboolean(L, -1) ? 2 * lua_toboolean(L, -1) : (int)lua_tointeger(L, -1);
		lua_getfield(L, 2, "sort");
		e.sort = lua_toboolean(L, -1);
		lua_pop(L, 2);
	}
	lua_settop(L, 1);
	e.b = buf_push(L);
	enc_value(L, &e, 1, 0);
	lua_pushlstring(L, e.b->p, e.b->len);
	buf_free(e.b);
	return 1;
}

