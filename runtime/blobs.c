/*
** blobs.c — `procy.blobs`: content-addressed storage in the record's
** `blobs` table. Every blob is named by the SHA-256 of its bytes. A large
** JSON request body is kept in parts, so what every request repeats is
** stored once: each big top-level value is its own blob, and a top-level
** array (the conversation's `messages`, `input`, `tools`) becomes a chain:
** a node per element holding "the array up to the previous element" by
** reference plus the new element. Request N+1 then adds only its new
** messages and a node or two; get() rebuilds any blob byte for byte.
**
** A chunked blob's data: "=" .. 64 hex digits (a part stored by hash) or
** "+" .. length .. ":" .. bytes (a part inline), one after another.
**
** This is C because the recorder thread runs it for every call: one pass
** of SHA-256 over the body and one over each array (the prefix digests
** come from the same pass), the structure from jscan.c without decoding a
** value, and cached statements. put_body also tells the caller how much
** of each array was stored already, so the request's analysis (capture)
** can look at the new elements only.
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "procy.h"

#define PIECE_MIN 256            /* values and elements smaller than this stay inline */
#define BODY_MIN  (8 << 10)     /* a body smaller than this is kept whole */
#define SCRATCH_MT "procy.blobs.scratch"
#define READER_MT  "procy.blobs.reader"

typedef struct store {
	lua_State  *L;
	int         db;   /* stack index of the db handle */
	sqlite3    *h;
	const char *s;    /* the body */
} store_t;

/* Does a blob named hex exist? */
static int exists(store_t *st, const char *hex)
{
	sqlite3_stmt *q = db_cached(st->L, st->db, "SELECT 1 FROM blobs WHERE hash = ?");
	sqlite3_bind_text(q, 1, hex, 64, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		db_raise(st->L, st->h, rc);
	return rc == SQLITE_ROW;
}

static void insert(store_t *st, const char *hex, size_t size, const char *data, size_t len, int chunked)
{
	sqlite3_stmt *q = db_cached(st->L, st->db,
		"INSERT OR IGNORE INTO blobs(hash, size, data, chunked) VALUES (?, ?, ?, ?)");
	sqlite3_bind_text(q, 1, hex, 64, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)size);
	sqlite3_bind_blob64(q, 3, len ? data : "", len, SQLITE_STATIC);
	sqlite3_bind_int(q, 4, chunked);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (rc != SQLITE_DONE)
		db_raise(st->L, st->h, rc);
}

/* s[i, j] (inclusive) stored whole; its name in hex. */
static void put_whole(store_t *st, const char *p, size_t n, char hex[65])
{
	sha256_hex_of(p, n, hex);
	insert(st, hex, n, p, n, 0);
}

static void add_lit(lua_State *L, buf_t *parts, const char *p, size_t n)
{
	char head[32];
	int k = snprintf(head, sizeof head, "+%zu:", n);
	if (buf_add(parts, head, (size_t)k) < 0 || buf_add(parts, p, n) < 0)
		luaL_error(L, "blobs: out of memory");
}

static void add_ref(lua_State *L, buf_t *parts, const char hex[65])
{
	if (buf_add(parts, "=", 1) < 0 || buf_add(parts, hex, 64) < 0)
		luaL_error(L, "blobs: out of memory");
}

/* ---- arrays as chains ------------------------------------------------------------- */

typedef struct elems {
	jscan_item *v;
	size_t      n, cap;
} elems_t;

static int add_elem(void *ud, size_t i, const jscan_item *it)
{
	(void)i;
	elems_t *e = ud;
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 16;
		jscan_item *v = realloc(e->v, cap * sizeof *v);
		if (!v)
			return 1;
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = *it;
	return 0;
}

/* What put_body tells about one top-level array. */
typedef struct chain_info {
	size_t n, known; /* elements, and how many of them were stored already */
	char   hex[65];
} chain_info;

/* The array s[first, last] as a chain of nodes (its elements in e). */
static void chain(store_t *st, size_t first, size_t last, const elems_t *e, chain_info *ci)
{
	lua_State *L = st->L;
	const char *s = st->s;
	size_t n = e->n;
	ci->n = n;
	if (n == 0) {
		put_whole(st, s + first, last - first + 1, ci->hex);
		ci->known = 0;
		return;
	}
	/* digests[k]: the array's first k elements (k = 1..n), then the whole */
	char (*dig)[65] = lua_newuserdatauv(L, (n + 1) * sizeof *dig, 0);
	sha256_t h;
	sha256_init(&h);
	size_t at = first;
	for (size_t k = 0; k <= n; k++) {
		size_t end = k < n ? e->v[k].last + 1 : last + 1;
		sha256_update(&h, s + at, end - at);
		sha256_hex(&h, dig[k]);
		at = end;
	}
	memcpy(ci->hex, dig[n], 65);
	if (exists(st, dig[n])) {
		ci->known = n;
		lua_pop(L, 1);
		return;
	}
	/* the longest prefix stored already (the previous request's history) */
	size_t k = n;
	while (k > 0 && !exists(st, dig[k - 1]))
		k--;
	ci->known = k;
	buf_t *parts = buf_push(L);
	for (size_t m = k; m <= n; m++) { /* node m: elements 0..m-1, or the whole at m = n */
		parts->len = 0;
		size_t from = m == 0 ? first : e->v[m - 1].last + 1;
		if (m > 0)
			add_ref(L, parts, dig[m - 1]);
		size_t size;
		if (m < n) {
			const jscan_item *it = &e->v[m];
			size_t len = it->last - it->first + 1;
			add_lit(L, parts, s + from, it->first - from);
			if (len < PIECE_MIN) {
				add_lit(L, parts, s + it->first, len);
			} else {
				char piece[65];
				put_whole(st, s + it->first, len, piece);
				add_ref(L, parts, piece);
			}
			size = it->last - first + 1;
		} else {
			add_lit(L, parts, s + from, last + 1 - from);
			size = last - first + 1;
		}
		insert(st, dig[m], size, parts->p, parts->len, 1);
	}
	lua_pop(L, 2); /* parts, digests */
}

/* ---- bodies ---------------------------------------------------------------------- */

typedef struct member {
	jscan_item it;
	elems_t    elems; /* an array's elements */
	int        array;
} member_t;

typedef struct members {
	member_t *v;
	size_t    n, cap;
	const char *s;
} members_t;

static int add_member(void *ud, size_t i, const jscan_item *it)
{
	(void)i;
	members_t *m = ud;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		member_t *v = realloc(m->v, cap * sizeof *v);
		if (!v)
			return 1;
		m->v = v;
		m->cap = cap;
	}
	member_t *x = &m->v[m->n++];
	memset(x, 0, sizeof *x);
	x->it = *it;
	x->array = m->s[it->first] == '[';
	return 0;
}

static void members_free(members_t *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].elems.v);
	free(m->v);
	memset(m, 0, sizeof *m);
}

static int scratch_gc(lua_State *L)
{
	members_free(luaL_checkudata(L, 1, SCRATCH_MT));
	return 0;
}

/* [-0, +1] info[key] = {n =, known =, hash =, spans = {first, last, ...}} */
static void push_array_info(lua_State *L, const char *s, const member_t *m, const chain_info *ci)
{
	lua_createtable(L, 0, 4);
	lua_pushinteger(L, (lua_Integer)ci->n);
	lua_setfield(L, -2, "n");
	lua_pushinteger(L, (lua_Integer)ci->known);
	lua_setfield(L, -2, "known");
	lua_pushlstring(L, ci->hex, 64);
	lua_setfield(L, -2, "hash");
	lua_createtable(L, (int)(2 * m->elems.n), 0);
	for (size_t k = 0; k < m->elems.n; k++) {
		lua_pushinteger(L, (lua_Integer)m->elems.v[k].first + 1);
		lua_rawseti(L, -2, (lua_Integer)(2 * k + 1));
		lua_pushinteger(L, (lua_Integer)m->elems.v[k].last + 1);
		lua_rawseti(L, -2, (lua_Integer)(2 * k + 2));
	}
	lua_setfield(L, -2, "spans");
	lua_pushlstring(L, s + m->it.key, m->it.key_len);
	lua_insert(L, -2);
	lua_rawset(L, -3);
}

/* put(db, data) -> hash: data kept whole. Raises {err, code} on a
   database error. */
static int blobs_put(lua_State *L)
{
	size_t n;
	const char *p = luaL_checklstring(L, 2, &n);
	store_t st = { L, 1, db_conn(L, 1), p };
	char hex[65];
	put_whole(&st, p, n, hex);
	lua_pushlstring(L, hex, 64);
	return 1;
}

/* put_body(db, body) -> hash, info: a request body, a JSON object kept in
   parts (anything else whole). info[key], for each top-level array of
   PIECE_MIN bytes or more: {n = elements, known = how many of the first
   were stored already, hash = the array's, spans = {first, last, ...} of
   each element (byte positions in body)}. Raises {err =, code =} on a
   database error: run it in a transaction. */
static int blobs_put_body(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	store_t st = { L, 1, db_conn(L, 1), s };
	lua_settop(L, 2);
	char hex[65];
	sha256_hex_of(s, n, hex);
	int seen = exists(&st, hex);
	members_t m = { NULL, 0, 0, s };
	int kind = n >= BODY_MIN ? jscan(s, 0, n, add_member, &m) : -1;
	for (size_t i = 0; kind == JSCAN_OBJECT && i < m.n; i++) {
		member_t *x = &m.v[i];
		if (x->array && x->it.last - x->it.first + 1 >= PIECE_MIN &&
		    jscan(s, x->it.first, x->it.last + 1, add_elem, &x->elems) != JSCAN_ARRAY) {
			kind = -1; /* out of memory */
		}
	}
	lua_newtable(L); /* info */
	if (kind != JSCAN_OBJECT) {
		members_free(&m);
		if (!seen)
			insert(&st, hex, n, s, n, 0);
		lua_pushlstring(L, hex, 64);
		lua_insert(L, -2);
		return 2;
	}
	/* the members are in a userdata's care from here: a raise frees them */
	members_t *keep = lua_newuserdatauv(L, sizeof *keep, 0);
	*keep = m;
	luaL_setmetatable(L, SCRATCH_MT);
	buf_t *parts = buf_push(L);
	size_t at = 0;
	for (size_t i = 0; i < m.n; i++) {
		member_t *x = &m.v[i];
		size_t first = x->it.first, last = x->it.last;
		if (last - first + 1 < PIECE_MIN)
			continue;
		add_lit(L, parts, s + at, first - at);
		char ref[65];
		if (x->array) {
			chain_info ci;
			if (seen) { /* nothing to store: only what the caller is told */
				ci.n = ci.known = x->elems.n;
				sha256_hex_of(s + first, last - first + 1, ci.hex);
			} else {
				chain(&st, first, last, &x->elems, &ci);
			}
			memcpy(ref, ci.hex, 65);
			lua_pushvalue(L, 3);
			push_array_info(L, s, x, &ci);
			lua_pop(L, 1);
		} else if (!seen) {
			put_whole(&st, s + first, last - first + 1, ref);
		} else {
			ref[0] = 0;
		}
		if (!seen)
			add_ref(L, parts, ref);
		at = last + 1;
	}
	add_lit(L, parts, s + at, n - at);
	if (!seen)
		insert(&st, hex, n, parts->p, parts->len, 1);
	lua_pop(L, 2); /* parts, members (freed by their __gc) */
	lua_pushlstring(L, hex, 64);
	lua_insert(L, -2);
	return 2;
}

/* ---- reading ---------------------------------------------------------------------- */

typedef struct frame {
	char  *data;
	size_t len, at;
} frame_t;

typedef struct reader {
	frame_t *v;
	size_t   n, cap;
} reader_t;

static int reader_gc(lua_State *L)
{
	reader_t *r = luaL_checkudata(L, 1, READER_MT);
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].data);
	free(r->v);
	memset(r, 0, sizeof *r);
	return 0;
}

/* The blob named hex: its bytes onto out, or a chunked blob's parts as a
   new frame. 0, or a failure pushed as nil, msg, code (2: not found). */
static int fetch(lua_State *L, sqlite3 *h, reader_t *r, buf_t *out, const char *hex, size_t hexlen)
{
	sqlite3_stmt *q = db_cached(L, 1, "SELECT data, chunked FROM blobs WHERE hash = ?");
	sqlite3_bind_text(q, 1, hex, (int)hexlen, SQLITE_TRANSIENT);
	int rc = sqlite3_step(q);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
		if (rc == SQLITE_DONE) {
			char name[80];
			snprintf(name, sizeof name, "%.*s", (int)(hexlen < 64 ? hexlen : 64), hex);
			procy_fail(L, "ENOENT", "no blob %s", name);
			return 2;
		}
		db_raise(L, h, rc);
	}
	const char *data = sqlite3_column_blob(q, 0);
	size_t len = (size_t)sqlite3_column_bytes(q, 0);
	int chunked = sqlite3_column_int(q, 1), bad = 0;
	if (!chunked) {
		bad = buf_add(out, data, len);
	} else {
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 16;
			frame_t *v = realloc(r->v, cap * sizeof *v);
			bad = !v;
			if (v) {
				r->v = v;
				r->cap = cap;
			}
		}
		char *copy = bad ? NULL : malloc(len ? len : 1);
		if (copy) {
			memcpy(copy, data, len);
			r->v[r->n++] = (frame_t){ copy, len, 0 };
		}
		bad = !copy;
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (bad)
		luaL_error(L, "blobs: out of memory");
	return 0;
}

/* get(db, hash) -> bytes | nil, "ENOENT: ..." | nil, "EBADBLOB: ..." */
static int blobs_get(lua_State *L)
{
	sqlite3 *h = db_conn(L, 1);
	size_t hexlen;
	const char *root = luaL_checklstring(L, 2, &hexlen);
	lua_settop(L, 2);
	reader_t *r = lua_newuserdatauv(L, sizeof *r, 0);
	memset(r, 0, sizeof *r);
	luaL_setmetatable(L, READER_MT);
	buf_t *out = buf_push(L);
	if (fetch(L, h, r, out, root, hexlen))
		return 3;
	while (r->n) {
		frame_t *f = &r->v[r->n - 1];
		if (f->at >= f->len) {
			free(f->data);
			r->n--;
			continue;
		}
		const char *d = f->data + f->at;
		size_t left = f->len - f->at;
		if (*d == '=' && left >= 65) {
			f->at += 65;
			char hex[64];
			memcpy(hex, d + 1, 64); /* fetch may move the frames */
			if (fetch(L, h, r, out, hex, 64))
				return 3;
			continue;
		}
		size_t len = 0, i = 1;
		while (i < left && d[i] >= '0' && d[i] <= '9' && len < ((size_t)1 << 40))
			len = len * 10 + (size_t)(d[i++] - '0');
		if (*d != '+' || i == 1 || i >= left || d[i] != ':' || len > left - i - 1)
			return procy_fail(L, "EBADBLOB", "blob %s has broken parts", root);
		if (buf_add(out, d + i + 1, len) < 0)
			return luaL_error(L, "blobs: out of memory");
		f->at += i + 1 + len;
	}
	lua_pushlstring(L, out->p ? out->p : "", out->len);
	return 1;
}

static const luaL_Reg blobs_funcs[] = {
	{ "put",      blobs_put },
	{ "put_body", blobs_put_body },
	{ "get",      blobs_get },
	{ NULL, NULL }
};

int luaopen_procy_blobs(lua_State *L)
{
	luaL_newmetatable(L, SCRATCH_MT);
	lua_pushcfunction(L, scratch_gc);
	lua_setfield(L, -2, "__gc");
	luaL_newmetatable(L, READER_MT);
	lua_pushcfunction(L, reader_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 2);
	luaL_newlib(L, blobs_funcs);
	lua_pushinteger(L, PIECE_MIN);
	lua_setfield(L, -2, "piece_min");
	return 1;
}
