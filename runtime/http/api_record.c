/*
** api_record.c — the proxy's recorder: finished calls are queued here by the
** loop and recorded on a worker thread (worker.c) by `procy.record.capture`'s
** worker, in a Lua state of its own with its own SQLite connection:
** redaction, parsing, hashing and writing never hold up the loop, which
** keeps relaying bytes (and the terminal) meanwhile. What the worker
** wrote comes back as one summary per call, read with srv:calls().
**
** Nothing is dropped. The queue is bounded by bytes and calls; past the
** bound capture_full() says so and the proxy holds new calls back (their
** clients wait) until the worker catches up. A batch the database refuses
** (locked, full, I/O) is kept and tried again, with a growing pause; only
** calls still unwritten when the server stops after a last try are lost,
** and they are counted. A call the worker cannot parse is recorded as far
** as it can be and marked; it never costs another call its row.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "api_record.h"

#define BATCH_CALLS  256        /* calls per transaction, at most */
#define BATCH_BYTES  (8 << 20)  /* and bytes, unless one call is bigger */
#define FULL_BYTES   (64 << 20) /* queued past this: new calls wait (capture_bound) */
#define FULL_CALLS   4096
#define STOP_TRIES_S 2.0        /* a failing database gets this long at the end */
#define CHECKPOINT_EVERY 64     /* batches between checkpoints under load */

/* A summary for the loop: a flat list of (key, scalar) from the worker's
   Lua table, rebuilt as a table in the loop's state (no JSON between). */
typedef struct note {
	struct note *next;
	size_t       calls; /* 0: a summary; else the end of a batch of this many calls */
	size_t       len;
	char         data[];
} note_t;

struct capture {
	worker_t      w;
	void        (*ready)(void *ud); /* the sink: summaries are waiting */
	void         *ud;
	pcall_t     **in;       /* calls for the worker (under w.mu) */
	size_t        nin, cap, in_bytes;
	size_t        working, working_calls; /* the batch being recorded */
	size_t        full_calls, full_bytes; /* the queue's bound */
	capture_stats stats;    /* under w.mu */
	note_t       *out, **out_tail; /* summaries for the loop (under w.mu) */
	char         *settings;
};

/* ---- summaries as flat notes ------------------------------------------------------ */

/* One field of a flat note: a type byte ('s', 'i', 'n', 'b'), the key's
   and the value's lengths, the key's bytes, the value's. 0 or -1. */
static int flat_put(buf_t *b, char t, const char *k, size_t klen, const void *v, size_t vlen)
{
	size_t head[2] = { klen, vlen };
	return buf_add(b, &t, 1) < 0 || buf_add(b, head, sizeof head) < 0 || buf_add(b, k, klen) < 0 ||
	       buf_add(b, v, vlen) < 0 ? -1 : 0;
}

/* Appends the scalar fields of the table at idx. */
static int flatten(lua_State *L, int idx, buf_t *b)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		size_t klen, vlen = 0;
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
		char t = 0;
		union { lua_Integer i; lua_Number n; } num;
		const void *v = &num;
		switch (lua_type(L, -1)) {
		case LUA_TSTRING: t = 's'; v = lua_tolstring(L, -1, &vlen); break;
		case LUA_TBOOLEAN: t = 'b'; num.i = lua_toboolean(L, -1); vlen = sizeof num; break;
		case LUA_TNUMBER:
			if (lua_isinteger(L, -1))
				t = 'i', num.i = lua_tointeger(L, -1);
			else
				t = 'n', num.n = lua_tonumber(L, -1);
			vlen = sizeof num;
			break;
		}
		if (k && t && flat_put(b, t, k, klen, v, vlen) < 0)
			return -1;
		lua_pop(L, 1);
	}
	return 0;
}

/* [-0, +1] the table a note holds */
static void unflatten(lua_State *L, const note_t *n)
{
	lua_createtable(L, 0, 24);
	const char *p = n->data, *end = n->data + n->len;
	while (p < end) {
		char t = *p++;
		size_t head[2];
		memcpy(head, p, sizeof head);
		p += sizeof head;
		lua_pushlstring(L, p, head[0]);
		p += head[0];
		union { lua_Integer i; lua_Number n; } num;
		if (t != 's')
			memcpy(&num, p, sizeof num); /* vlen is sizeof num for these */
		switch (t) {
		case 's': lua_pushlstring(L, p, head[1]); break;
		case 'b': lua_pushboolean(L, (int)num.i); break;
		case 'i': lua_pushinteger(L, num.i); break;
		default:  lua_pushnumber(L, num.n); break;
		}
		p += head[1];
		lua_rawset(L, -3);
	}
}

/* Queues a note (under w.mu). */
static void note_add(capture_t *cap, const void *data, size_t len, size_t calls)
{
	note_t *n = malloc(sizeof *n + len);
	if (!n)
		return; /* the summary is lost, not the record: it is on disk */
	n->next = NULL;
	n->calls = calls;
	n->len = len;
	if (len)
		memcpy(n->data, data, len);
	*cap->out_tail = n;
	cap->out_tail = &n->next;
}

/* A note for the loop (under w.mu): {not_recorded = lost, error = why},
   or, with lost = 0, {failing = why}: the database refuses the batch now
   and it will be tried again. */
static void note_lost(capture_t *cap, size_t lost, const char *why)
{
	buf_t b = { 0 };
	lua_Integer v = (lua_Integer)lost;
	size_t wl = strlen(why) < 400 ? strlen(why) : 400;
	int bad = lost ? flat_put(&b, 'i', "not_recorded", 12, &v, sizeof v) < 0 ||
	                 flat_put(&b, 's', "error", 5, why, wl) < 0
	               : flat_put(&b, 's', "failing", 7, why, wl) < 0;
	if (!bad)
		note_add(cap, b.p, b.len, 0);
	buf_free(&b);
}

/* ---- the worker ------------------------------------------------------------------------ */

/* [-0, +2] require("procy.record.capture").worker(settings) -> record, checkpoint(idle) */
static int open_worker(lua_State *L)
{
	const char *settings = lua_touserdata(L, 1);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "procy.record.capture");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "worker");
	lua_pushstring(L, settings);
	lua_call(L, 1, 2);
	luaL_checktype(L, -2, LUA_TFUNCTION);
	luaL_checktype(L, -1, LUA_TFUNCTION);
	return 2;
}

/* Takes the next batch off the queue (under w.mu). */
static size_t take(capture_t *cap, pcall_t **batch)
{
	size_t n = 0, bytes = 0;
	while (n < cap->nin && n < BATCH_CALLS) {
		size_t b = pcall_size(cap->in[n]);
		if (n > 0 && bytes + b > BATCH_BYTES)
			break;
		bytes += b;
		batch[n] = cap->in[n];
		n++;
	}
	if (n)
		memmove(cap->in, cap->in + n, (cap->nin - n) * sizeof *cap->in);
	cap->nin -= n;
	cap->in_bytes -= bytes;
	cap->working = bytes;
	cap->working_calls = n;
	return n;
}

/* [-0, +1] The batch as a Lua list of calls (in a protected call: out of
   memory is an error there, not a panic). */
typedef struct batch_ref {
	pcall_t **calls;
	size_t    n;
} batch_ref;

static int push_batch(lua_State *L)
{
	const batch_ref *b = lua_touserdata(L, 1);
	lua_createtable(L, (int)b->n, 0);
	for (size_t i = 0; i < b->n; i++) {
		pcall_push(L, b->calls[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

/* Runs record(calls) in L, calls a list in the registry: 0 with the
   summaries noted, or -1 with the database's complaint in err (the batch
   is to be tried again), or -2 (the worker itself failed). */
static int record_batch(capture_t *cap, lua_State *L, int record, int calls, char *err, size_t errlen)
{
	lua_settop(L, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, record);
	lua_rawgeti(L, LUA_REGISTRYINDEX, calls);
	if (lua_pcall(L, 1, 3, 0) != LUA_OK) { /* a bug in the worker itself: nothing can be kept */
		snprintf(err, errlen, "%s", lua_tostring(L, -1));
		return -2;
	}
	if (!lua_istable(L, 1)) {
		snprintf(err, errlen, "%s", lua_isstring(L, 2) ? lua_tostring(L, 2) : "the record failed");
		return -1;
	}
	buf_t *b = buf_push(L);
	size_t recorded = 0, marked = 0, lost = 0;
	pthread_mutex_lock(&cap->w.mu);
	for (lua_Integer i = 1; lua_rawgeti(L, 1, i) == LUA_TTABLE; i++) {
		b->len = 0;
		if (flatten(L, lua_gettop(L), b) == 0)
			note_add(cap, b->p, b->len, 0);
		lua_getfield(L, -1, "not_recorded");
		lua_getfield(L, -2, "parse_error");
		if (lua_isinteger(L, -2))
			lost += (size_t)lua_tointeger(L, -2);
		else
			recorded++, marked += !lua_isnil(L, -1);
		lua_pop(L, 3);
	}
	cap->stats.recorded += recorded;
	cap->stats.marked += marked;
	cap->stats.lost += lost;
	cap->stats.error[0] = 0;
	pthread_mutex_unlock(&cap->w.mu);
	lua_settop(L, 0);
	return 0;
}

static void work(worker_t *w)
{
	capture_t *cap = w->ud;
	lua_State *L = luaL_newstate();
	int record = LUA_NOREF, checkpoint = LUA_NOREF;
	char err[256] = "out of memory";
	if (L) {
		procy_rt(L) = NULL; /* no loop here: only the modules that need none */
		procy_open_modules(L);
		lua_pushcfunction(L, open_worker);
		lua_pushlightuserdata(L, cap->settings);
		if (lua_pcall(L, 1, 2, 0) == LUA_OK) {
			checkpoint = luaL_ref(L, LUA_REGISTRYINDEX);
			record = luaL_ref(L, LUA_REGISTRYINDEX);
		} else {
			snprintf(err, sizeof err, "%s", lua_tostring(L, -1));
		}
	}
	pcall_t *batch[BATCH_CALLS];
	int batches = 0;
	for (;;) {
		pthread_mutex_lock(&w->mu);
		while (!cap->nin && !w->stopping)
			worker_wait(w, &w->wake, -1);
		size_t n = take(cap, batch);
		pthread_mutex_unlock(&w->mu);
		if (!n)
			break; /* stopping, and nothing left */
		/* The calls become Lua values once, and their C copies go now: a
		   body of 800 KB is not held twice while it is recorded, and a
		   retry is given the same list. */
		int calls = LUA_NOREF;
		if (record != LUA_NOREF) {
			lua_settop(L, 0);
			lua_pushcfunction(L, push_batch);
			lua_pushlightuserdata(L, &(batch_ref){ batch, n });
			if (lua_pcall(L, 1, 1, 0) == LUA_OK)
				calls = luaL_ref(L, LUA_REGISTRYINDEX);
			else
				snprintf(err, sizeof err, "%s", lua_tostring(L, -1));
			lua_settop(L, 0);
		}
		for (size_t i = 0; i < n; i++)
			pcall_free(batch[i]);
		double pause = 0.05;
		int64_t stop_by = 0;
		for (;;) {
			int rc = calls == LUA_NOREF ? -2 : record_batch(cap, L, record, calls, err, sizeof err);
			if (rc == 0)
				break;
			pthread_mutex_lock(&w->mu);
			snprintf(cap->stats.error, sizeof cap->stats.error, "%s", err);
			cap->stats.failures++;
			int64_t now = loop_clock();
			if (w->stopping && !stop_by)
				stop_by = now + (int64_t)(STOP_TRIES_S * 1e9);
			if (rc == -2 || (stop_by && now >= stop_by)) { /* give up: counted, told */
				cap->stats.lost += n;
				char why[300];
				snprintf(why, sizeof why, "%s%s", rc == -2 ? "the recorder failed: " : "", err);
				note_lost(cap, n, why);
				pthread_mutex_unlock(&w->mu);
				break;
			}
			note_lost(cap, 0, err); /* told: failing, nothing lost yet */
			pthread_mutex_unlock(&w->mu);
			worker_notify(w);
			pthread_mutex_lock(&w->mu); /* a pause, cut short by stop */
			if (!w->stopping)
				worker_wait(w, &w->wake, pause);
			pthread_mutex_unlock(&w->mu);
			pause = pause < 1 ? pause * 2 : 1;
		}
		if (calls != LUA_NOREF)
			luaL_unref(L, LUA_REGISTRYINDEX, calls);
		pthread_mutex_lock(&w->mu);
		cap->working = cap->working_calls = 0;
		note_add(cap, "", 0, n); /* the batch is told once Lua has read up to here */
		int idle = cap->nin == 0;
		pthread_mutex_unlock(&w->mu);
		worker_notify(w);
		/* The WAL is copied into the database when the queue is empty, or
		   every so many batches under load, by this thread: not by
		   whichever connection happens to commit past the limit. */
		if (checkpoint != LUA_NOREF && (idle || ++batches >= CHECKPOINT_EVERY)) {
			batches = 0;
			lua_rawgeti(L, LUA_REGISTRYINDEX, checkpoint);
			lua_pushboolean(L, idle);
			lua_pcall(L, 1, 0, 0);
			lua_settop(L, 0);
		}
		/* Idle: what parsing the last calls left (tables of a request of
		   800 KB come to megabytes) goes back to the system now, not
		   when the collector's debt next comes due; the page cache too
		   (checkpoint(true)). */
		if (idle) {
			lua_gc(L, LUA_GCCOLLECT, 0);
			malloc_trim(0);
		}
	}
	if (L)
		lua_close(L);
}

/* ---- the loop's side ------------------------------------------------------------------- */

static void on_notes(worker_t *w)
{
	capture_t *cap = w->ud;
	cap->ready(cap->ud);
}

capture_t *capture_start(loop_t *loop, void (*ready)(void *), void *ud, const char *settings, err_t *err)
{
	capture_t *cap = calloc(1, sizeof *cap);
	if (!cap || !(cap->settings = strdup(settings))) {
		free(cap);
		err_set(err, "ENOMEM", "out of memory");
		return NULL;
	}
	cap->ud = ud;
	cap->ready = ready;
	cap->full_calls = FULL_CALLS;
	cap->full_bytes = FULL_BYTES;
	cap->out_tail = &cap->out;
	if (worker_start(&cap->w, loop, work, on_notes, cap, err) < 0) {
		capture_free(cap);
		return NULL;
	}
	return cap;
}

void capture_add(capture_t *cap, pcall_t *c)
{
	pthread_mutex_lock(&cap->w.mu);
	if (cap->nin == cap->cap) {
		size_t want = cap->cap ? cap->cap * 2 : 64;
		pcall_t **in = realloc(cap->in, want * sizeof *in);
		if (!in) {
			cap->stats.lost++;
			note_lost(cap, 1, "out of memory");
			pthread_mutex_unlock(&cap->w.mu);
			pcall_free(c);
			return;
		}
		cap->in = in;
		cap->cap = want;
	}
	cap->in[cap->nin++] = c;
	cap->in_bytes += pcall_size(c);
	cap->stats.added++;
	pthread_cond_signal(&cap->w.wake);
	pthread_mutex_unlock(&cap->w.mu);
}

void capture_bound(capture_t *cap, size_t calls, size_t bytes)
{
	pthread_mutex_lock(&cap->w.mu);
	cap->full_calls = calls;
	cap->full_bytes = bytes;
	pthread_mutex_unlock(&cap->w.mu);
}

int capture_full(capture_t *cap)
{
	pthread_mutex_lock(&cap->w.mu);
	int full = cap->in_bytes + cap->working > cap->full_bytes || cap->nin + cap->working_calls >= cap->full_calls;
	pthread_mutex_unlock(&cap->w.mu);
	return full;
}

void capture_get_stats(capture_t *cap, capture_stats *out)
{
	pthread_mutex_lock(&cap->w.mu);
	*out = cap->stats;
	out->queued = cap->nin + cap->working_calls;
	out->queued_bytes = cap->in_bytes + cap->working;
	pthread_mutex_unlock(&cap->w.mu);
}

size_t capture_untold(capture_t *cap)
{
	pthread_mutex_lock(&cap->w.mu);
	size_t untold = cap->stats.added - cap->stats.told;
	pthread_mutex_unlock(&cap->w.mu);
	return untold;
}

int capture_next(capture_t *cap, lua_State *L)
{
	note_t *n;
	for (;;) {
		pthread_mutex_lock(&cap->w.mu);
		n = cap->out;
		if (n) {
			cap->out = n->next;
			if (!cap->out)
				cap->out_tail = &cap->out;
			if (n->calls)
				cap->stats.told += n->calls; /* a batch's end */
		}
		pthread_mutex_unlock(&cap->w.mu);
		if (!n || !n->calls)
			break;
		free(n);
	}
	if (!n)
		return 0;
	unflatten(L, n);
	free(n);
	return 1;
}

void capture_stop(capture_t *cap)
{
	worker_stop(&cap->w); /* it records what was queued first */
}

void capture_free(capture_t *cap)
{
	if (!cap)
		return;
	worker_free(&cap->w);
	for (size_t i = 0; i < cap->nin; i++)
		pcall_free(cap->in[i]);
	free(cap->in);
	while (cap->out) {
		note_t *n = cap->out;
		cap->out = n->next;
		free(n);
	}
	free(cap->settings);
	free(cap);
}
