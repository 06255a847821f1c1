/*
** record.c — the terminal recorder: term_events rows written in batches by
** a worker thread (worker.c) with its own connection to the record.
**
** The relay appends events to a memory queue (a memcpy, under a lock held
** for nothing else). The writer takes what is queued when asked
** (rec_flush, every ~50 ms) or when 64 KB wait, and:
**  - redacts it with procy.redact, the rule set the API capture uses, run
**    in a Lua state of the writer's own: output and input are each one
**    stream, so a secret split across reads is found; a word still being
**    written at the end of a round waits for the next (up to HOLD_US);
**  - writes it in transactions of at most CHUNK bytes, so a nearly full
**    disk still takes what fits, and a refused write keeps the rest;
**  - bounds its memory: past MEM_MAX waiting (the database refuses writes)
**    the oldest events go to a spill file next to the record, written
**    back first once the database takes writes again; if that fails too
**    (a full disk), the oldest output is dropped and a 'g' (gap) event
**    says how much and when, counted in `losses`. Input, markers and the
**    rest are never dropped.
** So SQLite's work, and the disk's, never sits on the relay's path.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "procy.h"

#define REC_FLUSH_BYTES (64 * 1024)
#define REC_MERGE_US    1000       /* output this close together is one row */
#define CHUNK           (1 << 20)  /* bytes per transaction */
#define MEM_MAX         (8 << 20)  /* waiting in memory before spilling */
#define QUEUE_MAX       (16 << 20) /* the relay's queue, if the writer never comes */
#define HOLD_US         1000000    /* a trailing word waits at most this long */
#define HOLD_MAX        512        /* and is at most this long */
#define CLOSE_TRIES_NS  2000000000LL

typedef struct queued {
	int64_t t;
	char    kind;
	size_t  off, len; /* in the batch's data */
} queued;

typedef struct batch {
	queued *ev;
	size_t  nev, capev;
	buf_t   data;
} batch;

struct recorder {
	worker_t        w;
	uint64_t        rounds_started, rounds_done; /* writer rounds, for rec_sync (under mu) */
	int             flush_asked, busy;           /* under mu */
	int             force;     /* under mu: the next round holds no word back (rec_sync) */
	batch           queue;     /* the relay appends here (under mu) */
	batch           spare;     /* an empty batch whose buffers the next queue reuses */
	uint64_t        gap_events, gap_bytes; /* output the queue had no room for (under mu) */
	int64_t         gap_from, gap_to;
	/* the writer's own */
	batch           pending;   /* redacted, not yet written, oldest first */
	lua_State      *L;
	int             spans;     /* registry ref: procy.redact.spans */
	char          **lits;      /* redact.literals(): none in a text, no secret in it */
	size_t          nlits;
	uint32_t        lit_first[256]; /* for each byte, the literals starting with it */
	size_t          lit_len[32];
	int             spill_fd;
	char            spill_path[4096];
	uint64_t        spilled;   /* events in the spill file */
	uint64_t        lost_events, lost_bytes; /* dropped, not yet counted in `losses` */
	sqlite3        *db;
	sqlite3_stmt   *insert, *loss;
	char            session[40];
	char           *settings;
	rec_stats_t     stats;     /* under mu */
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- batches ------------------------------------------------------------------------- */

static void batch_clear(batch *b)
{
	b->nev = 0;
	b->data.len = 0;
	if (b->data.cap > (2 << 20))
		buf_free(&b->data); /* give back what a burst took */
}

static void batch_free(batch *b)
{
	free(b->ev);
	buf_free(&b->data);
	memset(b, 0, sizeof *b);
}

/* Appends an event; merge: output following output within a millisecond
   joins its row (the pty hands output over in pieces of a few KB; one
   row halves what the disk writes and keeps the timing a replay shows). */
static int batch_add(batch *b, int64_t t, char kind, const void *data, size_t len, int merge)
{
	queued *last = b->nev ? &b->ev[b->nev - 1] : NULL;
	if (merge && last && kind == 'o' && last->kind == 'o' && t - last->t < REC_MERGE_US &&
	    last->len + len <= REC_FLUSH_BYTES && last->off + last->len == b->data.len) {
		if (buf_add(&b->data, data, len) < 0)
			return -1;
		last->len += len;
		return 0;
	}
	if (b->nev == b->capev) {
		size_t cap = b->capev ? b->capev * 2 : 256;
		queued *ev = realloc(b->ev, cap * sizeof *ev);
		if (!ev)
			return -1;
		b->ev = ev;
		b->capev = cap;
	}
	size_t off = b->data.len;
	if (buf_add(&b->data, data, len) < 0)
		return -1;
	b->ev[b->nev++] = (queued){ t, kind, off, len };
	return 0;
}

/* Drops the first n events. */
static void batch_drop(batch *b, size_t n)
{
	if (n >= b->nev) {
		batch_clear(b);
		return;
	}
	size_t off = b->ev[n].off;
	if (off && b->data.len > off)
		memmove(b->data.p, b->data.p + off, b->data.len - off);
	b->data.len -= off;
	memmove(b->ev, b->ev + n, (b->nev - n) * sizeof *b->ev);
	b->nev -= n;
	for (size_t i = 0; i < b->nev; i++)
		b->ev[i].off -= off;
}

/* ---- redaction ------------------------------------------------------------------------- */

/* The rule set's Lua state, made when a text first needs it (most
   sessions never print anything a rule could match). */
static int open_redaction(recorder_t *r)
{
	if (r->L)
		return r->spans != LUA_NOREF;
	lua_State *L = r->L = luaL_newstate();
	if (!L)
		return 0;
	procy_rt(L) = NULL;
	procy_open_modules(L, 0);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "procy.redact");
	if (lua_pcall(L, 1, 1, 0) != LUA_OK)
		goto fail;
	lua_getglobal(L, "require");
	lua_pushliteral(L, "procy.json");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "decode");
	lua_pushstring(L, r->settings ? r->settings : "{}");
	lua_call(L, 1, 1);
	if (lua_istable(L, -1))
		lua_setfield(L, 1, "settings"); /* redact.settings = {redact = {...}} */
	lua_settop(L, 1);
	lua_getfield(L, 1, "spans");
	r->spans = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_settop(L, 0);
	return 1;
fail:
	pthread_mutex_lock(&r->w.mu);
	snprintf(r->stats.error, sizeof r->stats.error, "no redaction: %s", lua_tostring(L, -1));
	pthread_mutex_unlock(&r->w.mu);
	lua_settop(L, 0);
	return 0;
}

/* Could text hold a secret? Without rules of its own (the `redact`
   setting) procy.redact names the literals every default match holds
   (redact.literals()): a stream with none of them needs no Lua. */
static int may_hold(const recorder_t *r, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (!r->lits)
		return 1;
	/* one pass for all of them: a literal can start only at a byte some
	   literal starts with (lit_first: a bit per literal) */
	const unsigned char *u = (const unsigned char *)p;
	for (size_t i = 0; i < n; i++) {
		uint32_t m = r->lit_first[u[i]];
		while (m) {
			int k = __builtin_ctz(m);
			m &= m - 1;
			size_t len = r->lit_len[k];
			if (len <= n - i && (len < 2 || u[i + 1] == (unsigned char)r->lits[k][1]) &&
			    memcmp(u + i, r->lits[k], len) == 0)
				return 1;
		}
	}
	return 0;
}

/* [-0, +0] The secrets in the string on top of r->L (popped) as spans
   (1-based, inclusive) into *out; their count, 0 if none (or the rule set
   failed: then nothing is masked, and the failure is kept). */
static size_t spans_of_top(recorder_t *r, size_t **out)
{
	lua_State *L = r->L;
	*out = NULL;
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->spans);
	lua_insert(L, -2);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		pthread_mutex_lock(&r->w.mu);
		snprintf(r->stats.error, sizeof r->stats.error, "redaction failed: %s", lua_tostring(L, -1));
		pthread_mutex_unlock(&r->w.mu);
		lua_settop(L, 0);
		return 0;
	}
	size_t n = lua_istable(L, -1) ? (size_t)luaL_len(L, -1) : 0;
	if (n >= 2 && (*out = malloc(n * sizeof **out))) {
		for (size_t i = 0; i < n; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i + 1);
			(*out)[i] = (size_t)lua_tointeger(L, -1);
			lua_pop(L, 1);
		}
	} else {
		n = 0;
	}
	lua_settop(L, 0);
	return n / 2;
}

static int word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == '+' || c == '/' || c == '=';
}

/* Does the stream of kind in `in` need the rule set? Its events are
   looked at one by one, and across each boundary. */
static int stream_may_hold(const recorder_t *r, const batch *in, char kind)
{
	const char *prev = NULL;
	size_t prevlen = 0;
	for (size_t i = 0; i < in->nev; i++) {
		const queued *q = &in->ev[i];
		if (q->kind != kind)
			continue;
		const char *p = in->data.p + q->off;
		if (may_hold(r, p, q->len))
			return 1;
		if (prev && prevlen && q->len) {
			char edge[64];
			size_t a = prevlen < 31 ? prevlen : 31, b = q->len < 32 ? q->len : 32;
			memcpy(edge, prev + prevlen - a, a);
			memcpy(edge + a, p, b);
			if (may_hold(r, edge, a + b))
				return 1;
		}
		prev = p, prevlen = q->len;
	}
	return 0;
}

/* The events of kind in `in`, redacted as one stream (a secret split
   across reads is found), into *out by index: out[i] is the new data of
   in->ev[i] for the events of kind, in a buffer of its own. */
static void redact_stream(recorder_t *r, const batch *in, char kind, buf_t *out)
{
	lua_State *L = r->L;
	luaL_Buffer lb;
	luaL_buffinit(L, &lb);
	for (size_t i = 0; i < in->nev; i++)
		if (in->ev[i].kind == kind)
			luaL_addlstring(&lb, in->data.p + in->ev[i].off, in->ev[i].len);
	luaL_pushresult(&lb);
	size_t *sp, nsp = spans_of_top(r, &sp);
	/* each event again: the mask where a secret starts, nothing where it
	   goes on */
	size_t at = 0, s = 0;
	for (size_t i = 0; i < in->nev; i++) {
		const queued *q = &in->ev[i];
		if (q->kind != kind)
			continue;
		const char *src = in->data.p + q->off;
		buf_t *piece = &out[i];
		size_t pos = at, end = at + q->len;
		while (pos < end) {
			while (s < nsp && sp[2 * s + 1] - 1 < pos)
				s++;
			size_t a = s < nsp ? sp[2 * s] - 1 : end, b = s < nsp ? sp[2 * s + 1] - 1 : end;
			if (s < nsp && a <= pos) { /* inside a secret */
				if (a == pos)
					buf_add(piece, "[REDACTED]", 10);
				pos = b + 1 < end ? b + 1 : end;
			} else {
				size_t next = a < end ? a : end;
				buf_add(piece, src + (pos - at), next - pos);
				pos = next;
			}
		}
		at = end;
	}
	free(sp);
}

/* The round's events into r->pending, redacted, in order. Output and
   input are each one stream; a typed line is its own text. Streams in
   which no rule can match (the usual case) are not copied at all. */
static void take_in(recorder_t *r, batch *in)
{
	int need[2], lines = 0;
	need[0] = stream_may_hold(r, in, 'o');
	need[1] = stream_may_hold(r, in, 'i');
	for (size_t i = 0; i < in->nev && !lines; i++)
		lines = in->ev[i].kind == 'l' && may_hold(r, in->data.p + in->ev[i].off, in->ev[i].len);
	if ((need[0] || need[1] || lines) && !open_redaction(r))
		need[0] = need[1] = lines = 0; /* the failure is the recorder's error: shown */
	if (!need[0] && !need[1] && !lines) {
		if (!r->pending.nev) { /* nothing to change: the queue's buffers become pending */
			batch t = r->pending;
			r->pending = *in;
			*in = t;
			return;
		}
		for (size_t i = 0; i < in->nev; i++)
			batch_add(&r->pending, in->ev[i].t, in->ev[i].kind, in->data.p + in->ev[i].off, in->ev[i].len, 0);
		return;
	}
	buf_t *redone = calloc(in->nev ? in->nev : 1, sizeof *redone);
	if (!redone)
		return; /* no memory: the round is lost (it cannot be written unredacted) */
	if (need[0])
		redact_stream(r, in, 'o', redone);
	if (need[1])
		redact_stream(r, in, 'i', redone);
	for (size_t i = 0; i < in->nev; i++) {
		const queued *q = &in->ev[i];
		int done = (q->kind == 'o' && need[0]) || (q->kind == 'i' && need[1]);
		if (q->kind == 'l' && lines) {
			batch one = { &in->ev[i], 1, 1, in->data };
			redact_stream(r, &one, 'l', &redone[i]);
			done = 1;
		}
		if (done)
			batch_add(&r->pending, q->t, q->kind, redone[i].p ? redone[i].p : "", redone[i].len, 0);
		else
			batch_add(&r->pending, q->t, q->kind, in->data.p + q->off, q->len, 0);
		buf_free(&redone[i]);
	}
	free(redone);
}

/* A word at the very end of what is queued may be the start of a secret
   whose rest is still to come: it stays in the queue, for the next round
   (unless it has waited HOLD_US already). Under mu: moves it from `in`
   into the relay's fresh queue. */
static void hold_last_word(recorder_t *r, batch *in)
{
	queued *q = in->nev ? &in->ev[in->nev - 1] : NULL;
	if (!q || (q->kind != 'o' && q->kind != 'i') || now_us() - q->t >= HOLD_US)
		return;
	const unsigned char *p = (const unsigned char *)in->data.p + q->off;
	size_t hold = 0;
	while (hold < q->len && hold < HOLD_MAX && word_byte(p[q->len - 1 - hold]))
		hold++;
	if (!hold || batch_add(&r->queue, q->t, q->kind, p + q->len - hold, hold, 0) < 0)
		return;
	q->len -= hold;
	if (!q->len)
		in->nev--;
}

/* ---- writing ---------------------------------------------------------------------------- */

/* Writes b's events from the first, in transactions of at most CHUNK
   bytes, until all are in or one fails; returns how many went in. */
static size_t write_events(recorder_t *r, const batch *b, int *rc, char *err, size_t errlen)
{
	size_t done = 0;
	*rc = SQLITE_OK;
	while (done < b->nev && *rc == SQLITE_OK) {
		*rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		size_t i = done, bytes = 0;
		for (; *rc == SQLITE_OK && i < b->nev && (i == done || bytes + b->ev[i].len <= CHUNK); i++) {
			const queued *e = &b->ev[i];
			char kind[2] = { e->kind, 0 };
			sqlite3_bind_text(r->insert, 1, r->session, -1, SQLITE_STATIC);
			sqlite3_bind_int64(r->insert, 2, e->t);
			sqlite3_bind_text(r->insert, 3, kind, 1, SQLITE_TRANSIENT);
			sqlite3_bind_blob64(r->insert, 4, e->len ? b->data.p + e->off : "", e->len, SQLITE_STATIC);
			*rc = sqlite3_step(r->insert);
			sqlite3_reset(r->insert);
			if (*rc == SQLITE_DONE)
				*rc = SQLITE_OK;
			bytes += e->len;
		}
		if (*rc == SQLITE_OK && r->lost_events && i == b->nev) { /* what was dropped, counted */
			sqlite3_bind_text(r->loss, 1, r->session, -1, SQLITE_STATIC);
			sqlite3_bind_int64(r->loss, 2, now_us());
			sqlite3_bind_int64(r->loss, 3, (sqlite3_int64)r->lost_events);
			sqlite3_bind_int64(r->loss, 4, (sqlite3_int64)r->lost_bytes);
			*rc = sqlite3_step(r->loss);
			sqlite3_reset(r->loss);
			if (*rc == SQLITE_DONE)
				*rc = SQLITE_OK;
		}
		if (*rc == SQLITE_OK)
			*rc = sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
		if (*rc != SQLITE_OK) {
			snprintf(err, errlen, "%s", sqlite3_errmsg(r->db));
			sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
			break;
		}
		if (i == b->nev)
			r->lost_events = r->lost_bytes = 0;
		done = i;
	}
	return done;
}

/* ---- the spill file, and the last resort ------------------------------------------------- */

typedef struct spilled_head {
	int64_t  t;
	uint32_t len;
	char     kind;
} spilled_head;

/* Moves the oldest events of pending to the spill file until less than
   half of MEM_MAX waits. 0, or -1 (the disk refuses too). */
static int spill(recorder_t *r)
{
	if (r->spill_fd < 0) {
		r->spill_fd = open(r->spill_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (r->spill_fd < 0)
			return -1;
	}
	size_t n = 0;
	off_t end = lseek(r->spill_fd, 0, SEEK_END);
	while (end >= 0 && n < r->pending.nev && r->pending.data.len - r->pending.ev[n].off > MEM_MAX / 2) {
		const queued *q = &r->pending.ev[n];
		spilled_head h = { q->t, (uint32_t)q->len, q->kind };
		if (write(r->spill_fd, &h, sizeof h) != (ssize_t)sizeof h ||
		    write(r->spill_fd, r->pending.data.p + q->off, q->len) != (ssize_t)q->len) {
			/* a short write is undone: the file ends at the last whole event */
			if (ftruncate(r->spill_fd, end) < 0 || lseek(r->spill_fd, end, SEEK_SET) < 0)
				end = -1;
			break;
		}
		end += (off_t)(sizeof h + q->len);
		n++;
	}
	r->spilled += n;
	batch_drop(&r->pending, n);
	return n ? 0 : -1;
}

/* Writes the spill file back, oldest first. 0 when it is empty after. */
static int unspill(recorder_t *r, int *rc, char *err, size_t errlen)
{
	if (!r->spilled)
		return 0;
	if (lseek(r->spill_fd, 0, SEEK_SET) < 0)
		return -1;
	batch b = { 0 };
	off_t read_to = 0;
	int failed = 0;
	for (;;) {
		spilled_head h;
		ssize_t got = read(r->spill_fd, &h, sizeof h);
		char *data = got == (ssize_t)sizeof h ? malloc(h.len ? h.len : 1) : NULL;
		if (data && read(r->spill_fd, data, h.len) == (ssize_t)h.len)
			batch_add(&b, h.t, h.kind, data, h.len, 0);
		free(data);
		if (got != (ssize_t)sizeof h || b.data.len >= CHUNK) {
			size_t done = write_events(r, &b, rc, err, errlen);
			r->spilled -= done;
			if (done == 0 && read_to == 0) { /* nothing went in: the file stays as it is */
				batch_free(&b);
				return -1;
			}
			if (done < b.nev) {
				for (size_t k = 0; k < done; k++) /* those are in the record now */
					read_to += (off_t)(sizeof(spilled_head) + b.ev[k].len);
				failed = 1;
				break;
			}
			batch_clear(&b);
			read_to = lseek(r->spill_fd, 0, SEEK_CUR);
			if (got != (ssize_t)sizeof h)
				break;
		}
	}
	batch_free(&b);
	if (failed) {
		/* what went in is out of the file: keep the rest at its start */
		off_t end = lseek(r->spill_fd, 0, SEEK_END);
		char buf[65536];
		off_t from = read_to, to = 0;
		while (from < end) {
			ssize_t k = pread(r->spill_fd, buf, sizeof buf, from);
			if (k <= 0 || pwrite(r->spill_fd, buf, (size_t)k, to) != k)
				break;
			from += k, to += k;
		}
		if (ftruncate(r->spill_fd, to) < 0 || lseek(r->spill_fd, to, SEEK_SET) < 0)
			return -1;
		return -1;
	}
	r->spilled = 0;
	if (ftruncate(r->spill_fd, 0) < 0 || lseek(r->spill_fd, 0, SEEK_SET) < 0)
		return -1;
	return 0;
}

/* Nothing else will take them: the oldest output goes, a gap event in its
   place, until less than half of MEM_MAX waits. Input and the rest stay. */
static void drop_output(recorder_t *r)
{
	size_t left = r->pending.data.len, upto = 0, first = SIZE_MAX;
	uint64_t n = 0, bytes = 0;
	int64_t from = 0, to = 0;
	for (size_t i = 0; i < r->pending.nev && left > MEM_MAX / 2; i++) {
		const queued *q = &r->pending.ev[i];
		if (q->kind != 'o')
			continue;
		if (first == SIZE_MAX)
			first = i, from = q->t;
		to = q->t;
		n++, bytes += q->len, left -= q->len;
		upto = i + 1;
	}
	if (!n)
		return;
	batch kept = { 0 };
	for (size_t i = 0; i < r->pending.nev; i++) {
		const queued *q = &r->pending.ev[i];
		if (i == first) { /* the gap goes where the output was */
			char g[160];
			int len = snprintf(g, sizeof g, "{\"events\":%llu,\"bytes\":%llu,\"from\":%lld,\"to\":%lld}",
			                   (unsigned long long)n, (unsigned long long)bytes, (long long)from, (long long)to);
			batch_add(&kept, from, 'g', g, (size_t)len, 0);
		}
		if (q->kind == 'o' && i < upto)
			continue;
		batch_add(&kept, q->t, q->kind, r->pending.data.p + q->off, q->len, 0);
	}
	batch_free(&r->pending);
	r->pending = kept;
	r->lost_events += n;
	r->lost_bytes += bytes;
	pthread_mutex_lock(&r->w.mu);
	r->stats.dropped += n;
	r->stats.dropped_bytes += bytes;
	pthread_mutex_unlock(&r->w.mu);
}

/* ---- the writer ------------------------------------------------------------------------------ */

static void writer(worker_t *w)
{
	recorder_t *r = w->ud;
	int64_t close_by = 0, fail_since = 0;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stopping && r->queue.data.len < REC_FLUSH_BYTES &&
		       !(r->flush_asked && (r->queue.nev || r->pending.nev || r->spilled)))
			worker_wait(w, &w->wake, -1);
		r->flush_asked = 0;
		int hold = !r->force && !w->stopping;
		r->force = 0;
		batch in = r->queue; /* the relay gets an empty queue (the spare's buffers) */
		r->queue = r->spare;
		memset(&r->spare, 0, sizeof r->spare);
		if (hold)
			hold_last_word(r, &in);
		uint64_t gap_n = r->gap_events, gap_b = r->gap_bytes;
		int64_t gap_from = r->gap_from, gap_to = r->gap_to;
		r->gap_events = r->gap_bytes = 0;
		r->busy = 1;
		r->rounds_started++;
		int closing = w->stopping;
		pthread_mutex_unlock(&w->mu);
		if (closing && !close_by) {
			close_by = 1;
			sqlite3_busy_timeout(r->db, 500); /* the last batches may wait a little */
		}
		if (gap_n) { /* output the queue had no room for */
			char g[160];
			int len = snprintf(g, sizeof g, "{\"events\":%llu,\"bytes\":%llu,\"from\":%lld,\"to\":%lld}",
			                   (unsigned long long)gap_n, (unsigned long long)gap_b, (long long)gap_from,
			                   (long long)gap_to);
			batch_add(&r->pending, gap_from, 'g', g, (size_t)len, 0);
			r->lost_events += gap_n;
			r->lost_bytes += gap_b;
		}
		take_in(r, &in);
		char err[256] = "";
		int rc = SQLITE_OK;
		size_t written = 0;
		if (unspill(r, &rc, err, sizeof err) == 0 && rc == SQLITE_OK) {
			written = write_events(r, &r->pending, &rc, err, sizeof err);
			batch_drop(&r->pending, written);
		}
		if (r->pending.data.len > MEM_MAX && spill(r) < 0)
			drop_output(r);
		pthread_mutex_lock(&w->mu);
		batch_clear(&in); /* empty (its events are pending now): the next queue's buffers */
		if (!r->spare.capev)
			r->spare = in;
		else
			batch_free(&in);
		r->busy = 0;
		r->stats.written += written;
		r->stats.spilled = r->spilled;
		r->stats.waiting = r->pending.nev + r->spilled;
		if (rc == SQLITE_OK && !err[0])
			r->stats.error[0] = 0;
		else if (err[0])
			snprintf(r->stats.error, sizeof r->stats.error, "%s", err);
		r->rounds_done++;
		pthread_cond_broadcast(&w->idle);
		int empty = !r->pending.nev && !r->spilled && !r->queue.nev;
		/* at the end: on while rounds succeed, and 2 s of failures more */
		if (w->stopping && rc == SQLITE_OK)
			fail_since = 0;
		else if (w->stopping && !fail_since)
			fail_since = loop_clock();
		if (w->stopping && (empty || (fail_since && loop_clock() - fail_since >= CLOSE_TRIES_NS)))
			break;
		if (w->stopping && rc != SQLITE_OK) /* a short pause before the next try */
			worker_wait(w, &w->wake, 0.05);
		if (w->stopping)
			r->flush_asked = 1;
	}
	pthread_mutex_unlock(&w->mu);
	if (r->L)
		lua_close(r->L);
	r->L = NULL;
}

/* ---- the relay's side ---------------------------------------------------------------------- */

recorder_t *rec_open(const char *path, const char *session, const rec_rules *rules, char *err, size_t errlen)
{
	recorder_t *r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(r->session, sizeof r->session, "%s", session);
	snprintf(r->spill_path, sizeof r->spill_path, "%s-spill-%s", path, session);
	r->spill_fd = -1;
	r->spans = LUA_NOREF;
	r->settings = rules && rules->settings ? strdup(rules->settings) : NULL;
	if (rules && rules->literals) { /* one per line */
		const char *p = rules->literals;
		size_t n = 1;
		for (const char *q = p; *q; q++)
			n += *q == '\n';
		r->lits = calloc(n, sizeof *r->lits);
		while (r->lits && *p && r->nlits < 32) {
			size_t len = strcspn(p, "\n");
			if (len && (r->lits[r->nlits] = strndup(p, len))) {
				r->lit_len[r->nlits] = len;
				r->lit_first[(unsigned char)p[0]] |= 1u << r->nlits;
				r->nlits++;
			}
			p += len + (p[len] == '\n');
		}
		if (*p) { /* more than 32: look at every text */
			for (size_t i = 0; i < r->nlits; i++)
				free(r->lits[i]);
			free(r->lits);
			r->lits = NULL;
			r->nlits = 0;
		}
	}
	/* No busy wait: a batch that meets another writer's lock is kept for
	   the next round. The checkpoint (copying the WAL into the database,
	   with an fsync) waits for rec_close: done during the session it
	   competes with the relay for the machine (measured: 0.97x -> 0.82x). */
	int rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(r->db, "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0",
		                  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(r->db,
		        "INSERT INTO term_events(session_id, t, kind, data) VALUES (?, ?, ?, ?)",
		        -1, SQLITE_PREPARE_PERSISTENT, &r->insert, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(r->db,
		        "INSERT INTO losses(session_id, t, what, count, bytes) VALUES (?, ?, 'output', ?, ?)",
		        -1, SQLITE_PREPARE_PERSISTENT, &r->loss, NULL);
	char why[256] = "";
	if (rc == SQLITE_OK && worker_start(&r->w, NULL, writer, NULL, r, why, sizeof why) < 0)
		rc = SQLITE_NOMEM;
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, why[0] ? why : r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		sqlite3_finalize(r->insert);
		sqlite3_finalize(r->loss);
		sqlite3_close_v2(r->db);
		free(r->settings);
		free(r);
		return NULL;
	}
	return r;
}

void rec_event(recorder_t *r, int64_t t_us, char kind, const void *data, size_t len)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->w.mu);
	/* Only output is ever let go, and only when the writer has not come
	   for QUEUE_MAX bytes; the gap is written in its place. */
	if ((kind == 'o' && r->queue.data.len + len > QUEUE_MAX) ||
	    batch_add(&r->queue, t_us, kind, data, len, 1) < 0) {
		if (!r->gap_events)
			r->gap_from = t_us;
		r->gap_to = t_us;
		r->gap_events++;
		r->gap_bytes += len;
		r->stats.dropped++;
		r->stats.dropped_bytes += len;
	} else if (r->queue.data.len >= REC_FLUSH_BYTES) {
		pthread_cond_signal(&r->w.wake);
	}
	pthread_mutex_unlock(&r->w.mu);
}

size_t rec_backlog(recorder_t *r)
{
	if (!r)
		return 0;
	pthread_mutex_lock(&r->w.mu);
	size_t n = r->queue.data.len;
	pthread_mutex_unlock(&r->w.mu);
	return n;
}

int rec_flush(recorder_t *r)
{
	if (!r)
		return 0;
	pthread_mutex_lock(&r->w.mu);
	r->flush_asked = 1;
	pthread_cond_signal(&r->w.wake);
	int failing = r->stats.error[0] != 0;
	pthread_mutex_unlock(&r->w.mu);
	return failing ? -1 : 0;
}

int rec_sync(recorder_t *r)
{
	if (!r)
		return 0;
	pthread_mutex_lock(&r->w.mu);
	r->flush_asked = r->force = 1;
	pthread_cond_signal(&r->w.wake);
	/* Done when everything is written, or a round that started after this
	   call has failed: the outcome of a round already under way (a failure
	   an instant ago, say) is not this call's answer. */
	uint64_t target = r->rounds_started + 1;
	for (;;) {
		int left = r->queue.nev || r->busy || r->stats.waiting;
		if (!left || (r->rounds_done >= target && r->stats.error[0]))
			break;
		worker_wait(&r->w, &r->w.idle, -1);
	}
	int failing = r->stats.error[0] != 0;
	pthread_mutex_unlock(&r->w.mu);
	return failing ? -1 : 0;
}

void rec_stats(recorder_t *r, rec_stats_t *out)
{
	memset(out, 0, sizeof *out);
	if (!r)
		return;
	pthread_mutex_lock(&r->w.mu); /* the writer updates these */
	*out = r->stats;
	pthread_mutex_unlock(&r->w.mu);
}

/* Writes the rest (trying for up to 2 s if the record refuses), then
   checkpoints and ends the writer. 0, or -1 if events were lost. */
int rec_close(recorder_t *r)
{
	if (!r)
		return 0;
	worker_stop(&r->w);
	int lost = r->pending.nev || r->spilled || r->queue.nev || r->stats.dropped;
	sqlite3_wal_checkpoint_v2(r->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	sqlite3_finalize(r->insert);
	sqlite3_finalize(r->loss);
	sqlite3_close_v2(r->db);
	if (r->spill_fd >= 0) {
		close(r->spill_fd);
		if (!r->spilled)
			unlink(r->spill_path); /* else it is what is left: kept for a person to see */
	}
	worker_free(&r->w);
	batch_free(&r->queue);
	batch_free(&r->spare);
	batch_free(&r->pending);
	for (size_t i = 0; i < r->nlits; i++)
		free(r->lits[i]);
	free(r->lits);
	free(r->settings);
	free(r);
	return lost ? -1 : 0;
}
