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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "procy.h"
#include "store.h"

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
	if (db_redact(L, 1, &p, &n)) /* the record's write boundary (db.c) */
		lua_replace(L, 2);
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
	lua_settop(L, 2);
	if (db_redact(L, 1, &s, &n)) /* the record's write boundary (db.c): the spans are the masked body's */
		lua_replace(L, 2);
	store_t st = { L, 1, db_conn(L, 1), s };
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

/* ---- reading ----------------------------------------------------------------------
**
** A chunked blob names its parts by hash, and a conversation's chain is a
** node per message: read one part at a time, a 200-message request was
** 400 queries. get() reads by levels instead. One query fetches every
** part still missing and, for each, follows its spine (a chain node's
** first part is "the array up to here"), so a whole chain comes in one
** query; the parts those name come in the next. A request is three or
** four queries whatever its length, then put together from memory.
*/

static const char SPINE[] =
	"WITH RECURSIVE s(hash, data, chunked) AS ("
	" SELECT hash, data, chunked FROM blobs WHERE hash IN (SELECT value FROM json_each(?1))"
	" UNION ALL"
	" SELECT b.hash, b.data, b.chunked FROM s JOIN blobs b ON b.hash = CAST(substr(s.data, 2, 64) AS TEXT)"
	" WHERE s.chunked AND substr(s.data, 1, 1) = X'3D')"
	" SELECT hash, data, chunked FROM s";

typedef struct part {
	char   hex[64];
	char  *data;
	size_t len;
	int    chunked, scanned;
	int    open;  /* its frame is on the walk's stack: met again, the record is broken */
} part_t;

typedef struct frame {
	part_t *part;
	size_t  at;
} frame_t;

/* The parts read so far (an open-addressed table of indexes into v), and
   the frames of the walk that puts them together. Freed by its __gc. */
typedef struct reader {
	part_t  *v;
	size_t   n, cap;
	size_t  *slot; /* index + 1; 0 empty */
	size_t   slots;
	frame_t *f;
	size_t   fn, fcap;
} reader_t;

static int reader_gc(lua_State *L)
{
	reader_t *r = luaL_checkudata(L, 1, READER_MT);
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].data);
	free(r->v);
	free(r->slot);
	free(r->f);
	memset(r, 0, sizeof *r);
	return 0;
}

static size_t slot_of(const reader_t *r, const char *hex)
{
	uint64_t k = 0;
	memcpy(&k, hex, sizeof k); /* the digest's hex is uniform enough */
	k *= 0x9E3779B97F4A7C15u;
	size_t i = (size_t)(k >> 20) & (r->slots - 1);
	while (r->slot[i] && memcmp(r->v[r->slot[i] - 1].hex, hex, 64))
		i = (i + 1) & (r->slots - 1);
	return i;
}

static part_t *find(const reader_t *r, const char *hex)
{
	if (!r->slots)
		return NULL;
	size_t i = slot_of(r, hex);
	return r->slot[i] ? &r->v[r->slot[i] - 1] : NULL;
}

/* Keeps a part read (once); 0, or -1 out of memory. */
static int keep(reader_t *r, const char *hex, const void *data, size_t len, int chunked)
{
	if (find(r, hex))
		return 0;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		part_t *v = realloc(r->v, cap * sizeof *v);
		if (!v)
			return -1;
		r->v = v, r->cap = cap;
	}
	if ((r->n + 1) * 2 > r->slots) {
		size_t slots = r->slots ? r->slots * 2 : 128;
		size_t *slot = calloc(slots, sizeof *slot);
		if (!slot)
			return -1;
		free(r->slot);
		r->slot = slot, r->slots = slots;
		for (size_t j = 0; j < r->n; j++)
			r->slot[slot_of(r, r->v[j].hex)] = j + 1;
	}
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return -1;
	memcpy(copy, data, len);
	part_t *p = &r->v[r->n];
	memcpy(p->hex, hex, 64);
	p->data = copy, p->len = len, p->chunked = chunked, p->scanned = 0, p->open = 0;
	r->slot[slot_of(r, hex)] = ++r->n;
	return 0;
}

static int is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* The next part of a chunked blob's data at *at: 1 a reference (its hex at
   *ref), 2 inline bytes (*lit, *litlen), 0 the end, -1 broken. */
static int next_part(const char *d, size_t len, size_t *at, const char **ref, const char **lit, size_t *litlen)
{
	if (*at >= len)
		return 0;
	const char *p = d + *at;
	size_t left = len - *at;
	if (*p == '=') {
		if (left < 65)
			return -1;
		*ref = p + 1;
		*at += 65;
		return 1;
	}
	size_t n = 0, i = 1;
	while (i < left && p[i] >= '0' && p[i] <= '9' && n < ((size_t)1 << 40))
		n = n * 10 + (size_t)(p[i++] - '0');
	if (*p != '+' || i == 1 || i >= left || p[i] != ':' || n > left - i - 1)
		return -1;
	*lit = p + i + 1, *litlen = n;
	*at += i + 1 + n;
	return 2;
}

/* Reads every part reachable from root, a level per query. */
static void fetch_all(lua_State *L, sqlite3 *h, reader_t *r, const char *root)
{
	buf_t *want = buf_push(L);
	if (buf_add(want, "[\"", 2) < 0 || buf_add(want, root, 64) < 0 || buf_add(want, "\"]", 2) < 0)
		luaL_error(L, "blobs: out of memory");
	sqlite3_stmt *q = db_cached(L, 1, SPINE);
	while (want->len) {
		sqlite3_bind_text(q, 1, want->p, (int)want->len, SQLITE_STATIC);
		int rc, bad = 0;
		while (!bad && (rc = sqlite3_step(q)) == SQLITE_ROW) {
			const char *hex = (const char *)sqlite3_column_text(q, 0);
			if (!hex || sqlite3_column_bytes(q, 0) != 64)
				continue;
			if (find(r, hex))
				break; /* a spine met one read already (or a broken record's cycle): the rest is known or comes next */
			bad = keep(r, hex, sqlite3_column_blob(q, 1), (size_t)sqlite3_column_bytes(q, 1),
			           sqlite3_column_int(q, 2));
		}
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
		if (bad)
			luaL_error(L, "blobs: out of memory");
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			db_raise(L, h, rc);
		/* the parts the new ones name that are not here yet */
		want->len = 0;
		for (size_t i = 0; i < r->n; i++) {
			part_t *p = &r->v[i];
			if (!p->chunked || p->scanned)
				continue;
			p->scanned = 1;
			size_t at = 0, litlen;
			const char *ref, *lit;
			int k;
			while ((k = next_part(p->data, p->len, &at, &ref, &lit, &litlen)) > 0) {
				if (k != 1 || find(r, ref) || !is_hex64(ref, 64))
					continue;
				if (buf_add(want, want->len ? ",\"" : "[\"", 2) < 0 || buf_add(want, ref, 64) < 0 ||
				    buf_add(want, "\"", 1) < 0)
					luaL_error(L, "blobs: out of memory");
			}
		}
		if (want->len && buf_add(want, "]", 1) < 0)
			luaL_error(L, "blobs: out of memory");
	}
	lua_pop(L, 1);
}

/* A failure naming a blob (its first 64 bytes: lua_pushfstring has no %.Ns). */
static int bad_blob(lua_State *L, const char *code, const char *what, const char *hex, size_t len)
{
	char name[65];
	snprintf(name, sizeof name, "%.*s", (int)(len < 64 ? len : 64), hex);
	return procy_fail(L, code, what, name);
}

/* A blob as read: through the record's boundary (db.c), as every read is. */
static int push_read(lua_State *L, const char *p, size_t n)
{
	if (!db_redact(L, 1, &p, &n))
		lua_pushlstring(L, p, n);
	return 1;
}

/* get(db, hash) -> bytes | nil, "ENOENT: ..." | nil, "EBADBLOB: ..." */
static int blobs_get(lua_State *L)
{
	sqlite3 *h = db_conn(L, 1);
	size_t hexlen;
	const char *root = luaL_checklstring(L, 2, &hexlen);
	lua_settop(L, 2);
	if (!is_hex64(root, hexlen))
		return bad_blob(L, "ENOENT", "no blob %s", root, hexlen);
	reader_t *r = lua_newuserdatauv(L, sizeof *r, 0);
	memset(r, 0, sizeof *r);
	luaL_setmetatable(L, READER_MT);
	fetch_all(L, h, r, root);
	part_t *top = find(r, root);
	if (!top)
		return bad_blob(L, "ENOENT", "no blob %s", root, 64);
	if (!top->chunked)
		return push_read(L, top->len ? top->data : "", top->len);
	buf_t *out = buf_push(L);
	r->f = malloc(16 * sizeof *r->f);
	if (!r->f)
		return luaL_error(L, "blobs: out of memory");
	r->fcap = 16;
	r->f[r->fn++] = (frame_t){ top, 0 };
	top->open = 1;
	while (r->fn) {
		frame_t *f = &r->f[r->fn - 1];
		size_t litlen;
		const char *ref, *lit;
		int k = next_part(f->part->data, f->part->len, &f->at, &ref, &lit, &litlen);
		if (k == 0) {
			f->part->open = 0;
			r->fn--;
			continue;
		}
		if (k < 0)
			return bad_blob(L, "EBADBLOB", "blob %s has broken parts", root, 64);
		if (k == 2) {
			if (buf_add(out, lit, litlen) < 0)
				return luaL_error(L, "blobs: out of memory");
			continue;
		}
		part_t *p = find(r, ref);
		if (!p)
			return bad_blob(L, "ENOENT", "no blob %s", ref, 64);
		if (!p->chunked) {
			if (buf_add(out, p->data, p->len) < 0)
				return luaL_error(L, "blobs: out of memory");
			continue;
		}
		if (p->open)
			return bad_blob(L, "EBADBLOB", "blob %s holds itself", ref, 64);
		if (r->fn == r->fcap) {
			frame_t *v = realloc(r->f, r->fcap * 2 * sizeof *v);
			if (!v)
				return luaL_error(L, "blobs: out of memory");
			r->f = v, r->fcap *= 2;
		}
		r->f[r->fn++] = (frame_t){ p, 0 };
		p->open = 1;
	}
	return push_read(L, out->p ? out->p : "", out->len);
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
