/*
** json.c — the `procy.json` module: Lua values to JSON text and back. The
** decoder and the module are here, the encoder in json_encode.c.
**
** A direct one-pass codec between JSON text and Lua values, with no
** intermediate tree, that keeps every integer that fits in 64 bits exact
** both ways (ids and byte counts go past 2^53, where doubles stop).
**
** Conventions, which the recipe reference repeats:
** - JSON null is json.null (a light userdata), so keys and array slots
**   holding null survive a round trip; nil never appears in decoded data.
** - A table is an array when its keys are exactly 1..n (n > 0), or when its
**   metatable has __json = "array"; otherwise an object. The empty table is
**   an object; json.array{} makes an empty array. Decoded arrays carry the
**   array metatable, so `[]` decodes and encodes back as `[]`.
** - Object keys that are numbers are written as their decimal text.
** - Invalid UTF-8 in strings is written as U+FFFD; \u escapes decode to
**   UTF-8, surrogate pairs joined, lone surrogates as U+FFFD.
** - Integers stay integers; floats always carry a '.' or exponent and are
**   printed with the fewest digits that read back to the same double.
** - Nesting is limited to JSON_MAX_DEPTH levels (also catches cycles).
*/
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procy.h"
#include "json_impl.h"


/* ---- decoding -------------------------------------------------------------- */

typedef struct dec {
	const char *s, *p, *end;
	int depth;
} dec_t;

static int dec_error(lua_State *L, dec_t *d, const char *what)
{
	int line = 1;
	const char *bol = d->s;
	for (const char *q = d->s; q < d->p; q++)
		if (*q == '\n') {
			line++;
			bol = q + 1;
		}
	if (d->p >= d->end)
		return luaL_error(L, "%s: unexpected end of input at line %d", what, line);
	unsigned char c = (unsigned char)*d->p;
	char shown[16];
	snprintf(shown, sizeof shown, c >= 0x20 && c < 0x7f ? "'%c'" : "byte 0x%02x", c);
	return luaL_error(L, "%s: unexpected %s at line %d column %d (byte %d)", what, shown,
	                  line, (int)(d->p - bol) + 1, (int)(d->p - d->s) + 1);
}

static void skip_ws(dec_t *d)
{
	while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
		d->p++;
}

static int hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int c = (unsigned char)p[i], x;
		if (c >= '0' && c <= '9') x = c - '0';
		else if (c >= 'a' && c <= 'f') x = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') x = c - 'A' + 10;
		else return -1;
		v = v * 16 + x;
	}
	return v;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
	char u[4];
	int n;
	if (cp < 0x80) { u[0] = (char)cp; n = 1; }
	else if (cp < 0x800) { u[0] = (char)(0xc0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
	else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
	}
	luaL_addlstring(b, u, (size_t)n);
}

/* d->p is past the opening quote. Pushes the string. */
static void dec_string(lua_State *L, dec_t *d)
{
	const char *run = d->p;
	while (d->p < d->end && *d->p != '"' && *d->p != '\\' && (unsigned char)*d->p >= 0x20)
		d->p++;
	if (d->p < d->end && *d->p == '"') { /* the common case: no escapes */
		lua_pushlstring(L, run, (size_t)(d->p - run));
		d->p++;
		return;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	luaL_addlstring(&b, run, (size_t)(d->p - run));
	for (;;) {
		if (d->p >= d->end)
			dec_error(L, d, "unterminated string");
		unsigned char c = (unsigned char)*d->p;
		if (c == '"') {
			d->p++;
			break;
		}
		if (c < 0x20)
			dec_error(L, d, "control character in string");
		if (c != '\\') {
			luaL_addchar(&b, (char)c);
			d->p++;
			continue;
		}
		if (d->end - d->p < 2)
			dec_error(L, d, "bad escape");
		char esc = d->p[1];
		d->p += 2;
		switch (esc) {
		case '"': case '\\': case '/': luaL_addchar(&b, esc); break;
		case 'b': luaL_addchar(&b, '\b'); break;
		case 'f': luaL_addchar(&b, '\f'); break;
		case 'n': luaL_addchar(&b, '\n'); break;
		case 'r': luaL_addchar(&b, '\r'); break;
		case 't': luaL_addchar(&b, '\t'); break;
		case 'u': {
			int cp = d->end - d->p >= 4 ? hex4(d->p) : -1;
			if (cp < 0) {
				d->p -= 2;
				dec_error(L, d, "bad \\u escape");
			}
			d->p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && d->end - d->p >= 6 &&
			    d->p[0] == '\\' && d->p[1] == 'u') {
				int lo = hex4(d->p + 2);
				if (lo >= 0xdc00 && lo <= 0xdfff) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					d->p += 6;
				}
			}
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd; /* lone surrogate */
			add_utf8(&b, (unsigned)cp);
			break;
		}
		default:
			d->p -= 2;
			dec_error(L, d, "bad escape");
		}
	}
	luaL_pushresult(&b);
}

static void dec_number(lua_State *L, dec_t *d)
{
	const char *start = d->p, *p = d->p, *end = d->end;
	int is_float = 0;
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	else {
		d->p = p;
		dec_error(L, d, "bad number");
	}
	if (p < end && *p == '.') {
		is_float = 1;
		p++;
		if (!(p < end && *p >= '0' && *p <= '9')) {
			d->p = p;
			dec_error(L, d, "bad number");
		}
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		is_float = 1;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!(p < end && *p >= '0' && *p <= '9')) {
			d->p = p;
			dec_error(L, d, "bad number");
		}
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	d->p = p;
	if (!is_float) {
		/* exact when it fits in 64 bits */
		const char *q = start;
		int neg = *q == '-';
		q += neg;
		unsigned long long v = 0, limit = neg ? (unsigned long long)INT64_MAX + 1 : INT64_MAX;
		int overflow = 0;
		for (; q < p; q++) {
			unsigned digit = (unsigned)(*q - '0');
			if (v > (limit - digit) / 10) {
				overflow = 1;
				break;
			}
			v = v * 10 + digit;
		}
		if (!overflow) {
			lua_pushinteger(L, neg ? (lua_Integer)(0 - v) : (lua_Integer)v);
			return;
		}
	}
	/* The span is validated JSON, so strtod reads exactly it (no hex, inf
	   or nan can start here); copy it to get a terminator. */
	char tmp[128];
	size_t n = (size_t)(p - start);
	char *s = n < sizeof tmp ? tmp : malloc(n + 1);
	if (!s)
		luaL_error(L, "json: out of memory");
	memcpy(s, start, n);
	s[n] = 0;
	double v = strtod(s, NULL);
	if (s != tmp)
		free(s);
	lua_pushnumber(L, v);
}

static void dec_value(lua_State *L, dec_t *d);

static void dec_expect(lua_State *L, dec_t *d, const char *lit, size_t n)
{
	if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n) != 0)
		dec_error(L, d, "invalid literal");
	d->p += n;
}

/* For each member of the object (its key pushed) or element of the array
   at d->p, child(L, d, i, ud) decodes the value and pops the key. */
typedef void (*child_fn)(lua_State *L, dec_t *d, lua_Integer i, void *ud);

static void dec_children(lua_State *L, dec_t *d, child_fn child, void *ud)
{
	int is_obj = *d->p == '{';
	char close = is_obj ? '}' : ']';
	if (++d->depth > JSON_MAX_DEPTH)
		dec_error(L, d, "nested too deep");
	luaL_checkstack(L, 6, "json: nesting");
	d->p++;
	skip_ws(d);
	if (d->p < d->end && *d->p == close) {
		d->p++;
		d->depth--;
		return;
	}
	for (lua_Integer i = 1;; i++) {
		if (is_obj) {
			skip_ws(d);
			if (d->p >= d->end || *d->p != '"')
				dec_error(L, d, "expected a string key");
			d->p++;
			dec_string(L, d);
			skip_ws(d);
			if (d->p >= d->end || *d->p != ':')
				dec_error(L, d, "expected ':'");
			d->p++;
		}
		skip_ws(d);
		child(L, d, i, ud);
		skip_ws(d);
		if (d->p < d->end && *d->p == ',') {
			d->p++;
			continue;
		}
		if (d->p < d->end && *d->p == close) {
			d->p++;
			break;
		}
		dec_error(L, d, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
	d->depth--;
}

/* A child of the table on the stack (below its key, for an object). */
static void store_child(lua_State *L, dec_t *d, lua_Integer i, void *is_obj)
{
	dec_value(L, d);
	if (is_obj)
		lua_rawset(L, -3);
	else
		lua_rawseti(L, -2, i);
}

static void dec_value(lua_State *L, dec_t *d)
{
	skip_ws(d);
	if (d->p >= d->end)
		dec_error(L, d, "invalid JSON");
	switch (*d->p) {
	case '{':
	case '[':
		lua_newtable(L);
		luaL_setmetatable(L, *d->p == '{' ? OBJECT_MT : ARRAY_MT);
		dec_children(L, d, store_child, *d->p == '{' ? d : NULL);
		return;
	case '"':
		d->p++;
		dec_string(L, d);
		return;
	case 't':
		dec_expect(L, d, "true", 4);
		lua_pushboolean(L, 1);
		return;
	case 'f':
		dec_expect(L, d, "false", 5);
		lua_pushboolean(L, 0);
		return;
	case 'n':
		dec_expect(L, d, "null", 4);
		lua_pushlightuserdata(L, NULL);
		return;
	default:
		if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) {
			dec_number(L, d);
			return;
		}
		dec_error(L, d, "invalid JSON");
	}
}

static int decode_raw(lua_State *L)
{
	size_t n;
	const char *s = lua_tolstring(L, 1, &n);
	dec_t d = { s, s, s + n, 0 };
	dec_value(L, &d);
	skip_ws(&d);
	if (d.p < d.end)
		dec_error(L, &d, "trailing data after JSON value");
	return 1;
}

/* decode(string) -> value | nil, "EJSON: what at line L column C", "EJSON" */
static int json_decode(lua_State *L)
{
	luaL_checkstring(L, 1);
	lua_settop(L, 1);
	lua_pushcfunction(L, decode_raw);
	lua_insert(L, 1);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK)
		return procy_fail(L, "EJSON", "%s", lua_tostring(L, -1));
	return 1;
}

/* Where the children of the value in s:sub(i, j) lie (jscan.c): the record
   keeps bodies in pieces. Nothing is decoded but member keys. */
typedef struct spans_ud {
	lua_State  *L;
	const char *s;
	int         is_obj;
} spans_ud;

static int span_child(void *ud, size_t i, const jscan_item *it)
{
	spans_ud *u = ud;
	lua_State *L = u->L;
	lua_createtable(L, 3, 0);
	int k = 1;
	if (u->is_obj) {
		const char *key = u->s + it->key;
		if (memchr(key, '\\', it->key_len)) { /* escapes: the decoder undoes them */
			dec_t d = { key, key, key + it->key_len + 1, 0 };
			dec_string(L, &d);
		} else {
			lua_pushlstring(L, key, it->key_len);
		}
		lua_rawseti(L, -2, k++);
	}
	lua_pushinteger(L, (lua_Integer)it->first + 1);
	lua_rawseti(L, -2, k++);
	lua_pushinteger(L, (lua_Integer)it->last + 1);
	lua_rawseti(L, -2, k);
	lua_rawseti(L, -2, (lua_Integer)i + 1);
	return 0;
}

/* spans(s [, i [, j]]) -> kind, list | nil, "EJSON: ...", "EJSON": kind is
   "object", "array" or "value"; list holds {key, first, last} per member
   or {first, last} per element, byte positions in s (inclusive). */
static int json_spans(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	lua_Integer i = luaL_optinteger(L, 2, 1), j = luaL_optinteger(L, 3, (lua_Integer)n);
	luaL_argcheck(L, i >= 1 && i <= (lua_Integer)n + 1, 2, "out of range");
	luaL_argcheck(L, j >= i - 1 && j <= (lua_Integer)n, 3, "out of range");
	const char *p = s + i - 1;
	while (p < s + j && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	spans_ud u = { L, s, p < s + j && *p == '{' };
	lua_settop(L, 1);
	lua_newtable(L);
	int kind = jscan(s, (size_t)i - 1, (size_t)j, span_child, &u);
	if (kind < 0)
		return procy_fail(L, "EJSON", "not a JSON value at bytes %d to %d", (int)i, (int)j);
	lua_pushstring(L, kind == JSCAN_OBJECT ? "object" : kind == JSCAN_ARRAY ? "array" : "value");
	lua_insert(L, -2);
	return 2;
}

static int set_kind(lua_State *L, const char *mt)
{
	if (lua_isnoneornil(L, 1))
		lua_newtable(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	luaL_setmetatable(L, mt);
	return 1;
}

/* array([t]) -> t marked to encode as an array (empty: []) */
static int json_array(lua_State *L) { return set_kind(L, ARRAY_MT); }
/* object([t]) -> t marked to encode as an object */
static int json_object(lua_State *L) { return set_kind(L, OBJECT_MT); }

/* base64(bytes) -> the bytes as base64 text (RFC 4648, padded): binary
   inside JSON, where a string must be text */
static int json_base64(lua_State *L)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n;
	const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
	luaL_Buffer b;
	char *o = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4);
	size_t j = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
		o[j++] = abc[v >> 18 & 63];
		o[j++] = abc[v >> 12 & 63];
		o[j++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
		o[j++] = i + 2 < n ? abc[v & 63] : '=';
	}
	luaL_pushresultsize(&b, j);
	return 1;
}

static const luaL_Reg json_funcs[] = {
	{ "base64", json_base64 },
	{ "encode", json_encode },
	{ "decode", json_decode },
	{ "spans",  json_spans },
	{ "escaped", json_escaped },
	{ "array",  json_array },
	{ "object", json_object },
	{ NULL, NULL }
};

int luaopen_procy_json(lua_State *L)
{
	luaL_newmetatable(L, ARRAY_MT);
	lua_pushliteral(L, "array");
	lua_setfield(L, -2, "__json");
	luaL_newmetatable(L, OBJECT_MT);
	lua_pushliteral(L, "object");
	lua_setfield(L, -2, "__json");
	lua_pop(L, 2);
	luaL_newlib(L, json_funcs);
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
	return 1;
}
