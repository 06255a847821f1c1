/*
** term_record.c — the terminal recorder: term_events rows written in batches by
** a worker thread (worker.c) with its own connection to the record.
**
** The relay appends events to a memory queue (a memcpy, under a lock held
** for nothing else). The writer takes what is queued when asked
** (rec_flush, every ~50 ms) or when 256 KB wait, and:
**  - redacts it (term_record_rules.c: procy.redact, the rule set the API capture uses, run
**    in a Lua state of the writer's own): output and input are each one
**    stream, so a secret split across reads is found; a word still being
**    written at the end of a round waits for the next (up to HOLD_US);
**  - appends the output to the record's tape (tape.c: written once, at the
**    end of a file beside the database), then writes the rows, the
**    output's naming the tape and where on it (output the tape refused
**    keeps its bytes in its row), in transactions of at most CHUNK bytes,
**    so a nearly full disk still takes what fits, and a refused write
**    keeps the rest;
**  - bounds its memory: past MEM_MAX bytes or EV_MAX events waiting (the
**    database refuses writes) the oldest events go to a spill file next to
**    the record, written back first once the database takes writes again;
**    if that fails too (a full disk), the oldest output is dropped (output
**    on the tape only when there are too many events, its bytes then left
**    unnamed there) and a 'g' (gap) event says how much and when, counted
**    in `losses`. Input, markers and the rest are never dropped.
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
#include <sys/stat.h>

#include <sqlite3.h>

#include "store.h"
#include "term_record.h"
#include "term_record_batch.h"
#include "term_record_rules.h"

#define REC_WAKE_BYTES  (256 * 1024) /* queued, the writer comes without being asked */
#define CHUNK           (1 << 20)  /* bytes per transaction, and per write to the tape */
#define MEM_MAX         (8 << 20)  /* waiting in memory before spilling */
#define EV_MAX          (1 << 18)  /* events waiting, those on the tape too (40 bytes each) */
#define QUEUE_MAX       (16 << 20) /* the relay's queue, if the writer never comes */
#define CLOSE_TRIES_NS  2000000000LL
#define RESERVE_BYTES   (1 << 20)  /* the ballast: room for the last words on a full disk */

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
	rules_t         rules;     /* what it is redacted with (term_record_rules.c) */
	int             spill_fd;
	char            spill_path[4096];
	char            reserve[4096]; /* the ballast beside the record ("": none; see rec_finish) */
	uint64_t        spilled;   /* events in the spill file, and in carry */
	off_t           spill_from; /* where its events not yet read back start */
	batch           carry;     /* read back from it, refused by the database */
	uint64_t        lost_events, lost_bytes; /* dropped, not yet counted in `losses` */
	tape_t         *tape;      /* where output goes (tape.c) */
	sqlite3        *db;
	checkpointer_t *ckpt;      /* copies db's WAL back while the writer writes */
	sqlite3_stmt   *insert, *loss;
	char            session[40];
	rec_stats_t     stats;     /* under mu */
};


/* ---- writing ---------------------------------------------------------------------------- */

/* Appends b's output that is not on the tape yet to it, a run of adjacent
   output at a time (its bytes lie together in b's data), and lets go of
   those bytes. What the tape refuses keeps its bytes: its row holds them
   (the database may well take what the tape did not), and the next round
   tries the tape again if the row could not be written either. */
static void tape_out(recorder_t *r, batch *b)
{
	size_t i = 0;
	while (i < b->nev) {
		const queued *q = &b->ev[i];
		if (q->kind != 'o' || q->at >= 0 || !q->len) { /* nothing to write: an empty row keeps '' */
			i++;
			continue;
		}
		size_t j = i + 1, bytes = q->len;
		while (j < b->nev && b->ev[j].kind == 'o' && b->ev[j].at < 0 && bytes + b->ev[j].len <= CHUNK &&
		       b->ev[j].off == b->ev[j - 1].off + b->ev[j - 1].len)
			bytes += b->ev[j++].len;
		int64_t at;
		size_t went;
		err_t why = { NULL, "" };
		int ok = tape_append(r->tape, b->data.p + q->off, bytes, &at, &went, &why) == 0;
		for (size_t k = i; k < j && b->ev[k].len <= went; k++) { /* whole on the tape: named there */
			went -= b->ev[k].len;
			if (b->ev[k].len)
				b->ev[k].at = at;
			at += (int64_t)b->ev[k].len;
		}
		if (!ok)
			break; /* the rest waits for the next round */
		i = j;
	}
	batch_compact(b);
}

/* What a row costs the database: its bytes, and about this much more. */
#define ROW_COST(e) (held(e) + 64)

/* Writes b's events from the first (their output to the tape first), in
   transactions of at most CHUNK bytes, until all are in or one fails;
   returns how many went in. */
static size_t write_events(recorder_t *r, batch *b, int *rc, char *err, size_t errlen)
{
	size_t done = 0;
	tape_out(r, b);
	*rc = SQLITE_OK;
	while (done < b->nev && *rc == SQLITE_OK) {
		*rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		size_t i = done, bytes = 0;
		for (; *rc == SQLITE_OK && i < b->nev && (i == done || bytes + ROW_COST(&b->ev[i]) <= CHUNK); i++) {
			const queued *e = &b->ev[i];
			char kind[2] = { e->kind, 0 };
			sqlite3_bind_text(r->insert, 1, r->session, -1, SQLITE_STATIC);
			sqlite3_bind_int64(r->insert, 2, e->t);
			sqlite3_bind_text(r->insert, 3, kind, 1, SQLITE_TRANSIENT);
			if (e->at >= 0) { /* on the tape */
				sqlite3_bind_null(r->insert, 4);
				sqlite3_bind_int64(r->insert, 5, tape_id(r->tape));
				sqlite3_bind_int64(r->insert, 6, e->at);
				sqlite3_bind_int64(r->insert, 7, (sqlite3_int64)e->len);
			} else {
				sqlite3_bind_blob64(r->insert, 4, e->len ? b->data.p + e->off : "", e->len, SQLITE_STATIC);
				sqlite3_bind_null(r->insert, 5);
				sqlite3_bind_null(r->insert, 6);
				sqlite3_bind_null(r->insert, 7);
			}
			*rc = sqlite3_step(r->insert);
			sqlite3_reset(r->insert);
			if (*rc == SQLITE_DONE)
				*rc = SQLITE_OK;
			bytes += ROW_COST(e);
		}
		if (*rc == SQLITE_OK && r->lost_events && i == b->nev) { /* what was dropped, counted */
			sqlite3_bind_text(r->loss, 1, r->session, -1, SQLITE_STATIC);
			sqlite3_bind_int64(r->loss, 2, rec_now_us());
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
	int64_t  at;  /* on the tape (no bytes follow); -1: len bytes follow */
	uint32_t len;
	char     kind;
} spilled_head;

/* Is more waiting than memory should hold? */
static int too_much(const batch *b)
{
	return b->data.len > MEM_MAX || b->nev > EV_MAX;
}

/* Moves the oldest events of pending to the spill file until less than
   half of MEM_MAX and of EV_MAX waits. 0, or -1 (the disk refuses too). */
static int spill(recorder_t *r)
{
	if (r->spill_fd < 0) {
		r->spill_fd = open(r->spill_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (r->spill_fd < 0)
			return -1;
	}
	size_t n = 0;
	off_t end = lseek(r->spill_fd, 0, SEEK_END);
	while (end >= 0 && n < r->pending.nev &&
	       (r->pending.data.len - r->pending.ev[n].off > MEM_MAX / 2 || r->pending.nev - n > EV_MAX / 2)) {
		const queued *q = &r->pending.ev[n];
		spilled_head h = { q->t, q->at, (uint32_t)q->len, q->kind };
		if (write(r->spill_fd, &h, sizeof h) != (ssize_t)sizeof h ||
		    write(r->spill_fd, r->pending.data.p + q->off, held(q)) != (ssize_t)held(q)) {
			/* a short write is undone: the file ends at the last whole event */
			if (ftruncate(r->spill_fd, end) < 0 || lseek(r->spill_fd, end, SEEK_SET) < 0)
				end = -1;
			break;
		}
		end += (off_t)(sizeof h + held(q));
		n++;
	}
	r->spilled += n;
	batch_drop(&r->pending, n);
	return n ? 0 : -1;
}

/* Reads the spill file's event at *off into b, and moves *off past it: 1;
   0 at the file's end; -1 when it cannot be read (errno), or no memory. */
static int read_spilled(int fd, batch *b, off_t *off)
{
	spilled_head h;
	ssize_t n;
	while ((n = pread(fd, &h, sizeof h, *off)) < 0 && errno == EINTR)
		;
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof h) {
		if (n >= 0)
			errno = EIO; /* torn: spill() undoes a short write, so something else cut it */
		return -1;
	}
	if (h.at >= 0) {
		if (batch_add_taped(b, h.t, h.kind, h.len, h.at) < 0)
			return -1;
	} else {
		char *data = malloc(h.len ? h.len : 1);
		if (!data)
			return -1;
		while ((n = pread(fd, data, h.len, *off + (off_t)sizeof h)) < 0 && errno == EINTR)
			;
		int added = n == (ssize_t)h.len && batch_add(b, h.t, h.kind, data, h.len, 0) == 0;
		free(data);
		if (!added) {
			if (n >= 0 && n != (ssize_t)h.len)
				errno = EIO;
			return -1;
		}
	}
	*off += (off_t)(sizeof h + held(&b->ev[b->nev - 1]));
	return 1;
}

/* Writes the spill file back, oldest first, a batch at a time: first what
   a round read before and the database refused (r->carry, its output on
   the tape by now), then the file from r->spill_from. 0 when all is in;
   -1 when some is left for the next round. */
static int unspill(recorder_t *r, int *rc, char *err, size_t errlen)
{
	*rc = SQLITE_OK;
	if (!r->spilled)
		return 0;
	batch *b = &r->carry;
	for (;;) {
		if (b->nev) {
			size_t done = write_events(r, b, rc, err, errlen);
			r->spilled -= done;
			batch_drop(b, done);
			if (b->nev)
				return -1;
		}
		int got = 1;
		while (b->data.len < CHUNK && b->nev < EV_MAX / 2 && (got = read_spilled(r->spill_fd, b, &r->spill_from)) > 0)
			;
		if (got < 0 && !b->nev) {
			int e = errno;
			snprintf(err, errlen, "%s (the spill file %.*s)", strerror(e), (int)(errlen / 2), r->spill_path);
			*rc = SQLITE_IOERR;
			return -1;
		}
		if (!b->nev)
			break; /* its end */
	}
	batch_free(b);
	if (r->spilled) { /* events the file said it held and did not give: lost */
		r->lost_events += r->spilled;
		pthread_mutex_lock(&r->w.mu);
		r->stats.dropped += r->spilled;
		pthread_mutex_unlock(&r->w.mu);
		r->spilled = 0;
	}
	if (ftruncate(r->spill_fd, 0) < 0)
		return -1; /* what it holds stays behind spill_from, never read again */
	r->spill_from = 0;
	return 0;
}

/* Nothing else will take them: the oldest output goes, a gap event in its
   place, until less than half of MEM_MAX and of EV_MAX waits. Output on
   the tape goes only for the count (dropping it frees no bytes). Input
   and the rest stay. */
static void drop_output(recorder_t *r)
{
	batch *p = &r->pending;
	char *drop = calloc(p->nev ? p->nev : 1, 1);
	if (!drop)
		return;
	size_t left = p->data.len, events = p->nev, first = SIZE_MAX;
	uint64_t n = 0, bytes = 0;
	int64_t from = 0, to = 0;
	for (size_t i = 0; i < p->nev && (left > MEM_MAX / 2 || events > EV_MAX / 2); i++) {
		const queued *q = &p->ev[i];
		if (q->kind != 'o' || (events <= EV_MAX / 2 && !held(q)))
			continue;
		if (first == SIZE_MAX)
			first = i, from = q->t;
		to = q->t;
		n++, bytes += q->len, left -= held(q), events--;
		drop[i] = 1;
	}
	if (!n) {
		free(drop);
		return;
	}
	batch kept = { 0 };
	for (size_t i = 0; i < p->nev; i++) {
		const queued *q = &p->ev[i];
		if (i == first) { /* the gap goes where the output was */
			char g[160];
			int len = snprintf(g, sizeof g, "{\"events\":%llu,\"bytes\":%llu,\"from\":%lld,\"to\":%lld}",
			                   (unsigned long long)n, (unsigned long long)bytes, (long long)from, (long long)to);
			batch_add(&kept, from, 'g', g, (size_t)len, 0);
		}
		if (drop[i])
			continue;
		if (q->at >= 0)
			batch_add_taped(&kept, q->t, q->kind, q->len, q->at);
		else
			batch_add(&kept, q->t, q->kind, p->data.p + q->off, q->len, 0);
	}
	free(drop);
	batch_free(p);
	*p = kept;
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
		while (!w->stopping && r->queue.data.len < REC_WAKE_BYTES &&
		       !(r->flush_asked && (r->queue.nev || r->pending.nev || r->spilled)))
			worker_wait(w, &w->wake, -1);
		r->flush_asked = 0;
		int hold = !r->force && !w->stopping;
		r->force = 0;
		batch in = r->queue; /* the relay gets an empty queue (the spare's buffers) */
		r->queue = r->spare;
		memset(&r->spare, 0, sizeof r->spare);
		if (hold)
			rules_hold_last_word(&r->rules, &in, &r->queue);
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
		rules_take_in(&r->rules, &in, &r->pending);
		if (r->rules.error[0]) { /* shown as the recorder's failure */
			pthread_mutex_lock(&w->mu);
			snprintf(r->stats.error, sizeof r->stats.error, "%s", r->rules.error);
			pthread_mutex_unlock(&w->mu);
			r->rules.error[0] = 0;
		}
		tape_out(r, &r->pending); /* whatever the database does: output waits as rows, not bytes */
		char err[256] = "";
		int rc = SQLITE_OK;
		size_t written = 0;
		if (unspill(r, &rc, err, sizeof err) == 0 && rc == SQLITE_OK) {
			written = write_events(r, &r->pending, &rc, err, sizeof err);
			batch_drop(&r->pending, written);
		}
		if (too_much(&r->pending) && spill(r) < 0)
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
	rules_close_state(&r->rules);
}

/* ---- the relay's side ---------------------------------------------------------------------- */

recorder_t *rec_open(const char *path, const char *session, const rec_rules *rules, err_t *err)
{
	recorder_t *r = calloc(1, sizeof *r);
	if (!r) {
		err_set(err, "ENOMEM", "out of memory");
		return NULL;
	}
	snprintf(r->session, sizeof r->session, "%s", session);
	snprintf(r->spill_path, sizeof r->spill_path, "%s-spill-%s", path, session);
	r->spill_fd = -1;
	/* A megabyte of ballast, given back when the disk is full at the end,
	   so what could not be written is at least counted in the record. No
	   room for it now: none. */
	snprintf(r->reserve, sizeof r->reserve, "%s-reserve-%s", path, session);
	int rfd = strcmp(path, ":memory:") == 0 ? -1 : open(r->reserve, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (rfd < 0 || posix_fallocate(rfd, 0, RESERVE_BYTES) != 0) {
		if (rfd >= 0)
			unlink(r->reserve);
		r->reserve[0] = 0;
	}
	if (rfd >= 0)
		close(rfd);
	else
		r->reserve[0] = 0;
	if (rules_init(&r->rules, rules ? rules->settings : NULL, rules ? rules->literals : NULL) < 0) {
		err_set(err, "ENOMEM", "out of memory");
		rules_free(&r->rules);
		if (r->reserve[0])
			unlink(r->reserve);
		free(r);
		return NULL;
	}
	/* No busy wait: a batch that meets another writer's lock is kept for
	   the next round. The checkpoint (copying the WAL into the database,
	   with its fsyncs) is not the writer's: done on its thread, the relay
	   waits whenever the writer does; left to rec_close, 40 MB of output
	   took 0.12 s more to exit. checkpoint.c does it alongside. */
	err_t why = { NULL, "" };
	int rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		/* rows are only appended: a small page cache will do (the default
		   2 MB filled with pages of output already written); a WAL a flood
		   grew is cut back when it starts over */
		rc = sqlite3_exec(r->db, "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; "
		                  "PRAGMA cache_size = -512; PRAGMA journal_size_limit = 16777216", NULL, NULL, NULL);
	if (rc == SQLITE_OK && !(r->ckpt = ckpt_start(path, r->db, &why)))
		rc = SQLITE_CANTOPEN;
	/* named as SQLite names the database (links resolved), as readers do */
	if (rc == SQLITE_OK && !(r->tape = tape_open(sqlite3_db_filename(r->db, "main"), &why)))
		rc = SQLITE_CANTOPEN;
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(r->db,
		        "INSERT INTO term_events(session_id, t, kind, data, tape_id, at, len) VALUES (?, ?, ?, ?, ?, ?, ?)",
		        -1, SQLITE_PREPARE_PERSISTENT, &r->insert, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(r->db,
		        "INSERT INTO losses(session_id, t, what, count, bytes) VALUES (?, ?, 'output', ?, ?)",
		        -1, SQLITE_PREPARE_PERSISTENT, &r->loss, NULL);
	if (rc == SQLITE_OK && worker_start(&r->w, NULL, writer, NULL, r, &why) < 0)
		rc = SQLITE_NOMEM;
	if (rc != SQLITE_OK) {
		if (why.code)
			err_set(err, why.code, "%s: %s", path, why.msg);
		else
			err_set(err, db_code_name(rc), "%s: %s", path, r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		ckpt_stop(r->ckpt, r->db);
		tape_close(r->tape);
		sqlite3_finalize(r->insert);
		sqlite3_finalize(r->loss);
		sqlite3_close_v2(r->db);
		rules_free(&r->rules);
		if (r->reserve[0])
			unlink(r->reserve);
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
	} else if (r->queue.data.len >= REC_WAKE_BYTES) {
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
	out->checkpoints = ckpt_passes(r->ckpt);
}

/* Writes the rest (trying for up to 2 s if the record refuses), ends the
   writer, then checkpoints what the checkpointer has not. 0, or -1 if events were lost. */
/* What the writer could not write by the end (the disk full, the database
   refusing): the ballast goes, to make room, and it is tried once more;
   what still does not go is dropped, and a gap event and a `losses` row
   say how much, when there is room for them. msg says what happened. */
static int last_words(recorder_t *r, char *msg, size_t len)
{
	int rc = SQLITE_OK;
	char err[256] = "";
	/* the queue is empty, as a rule (the last round took it); what is
	   there never met the rule set, so it is counted, never written */
	uint64_t unread = r->queue.nev, unread_bytes = 0;
	for (size_t i = 0; i < r->queue.nev; i++)
		unread_bytes += r->queue.ev[i].len;
	batch_clear(&r->queue);
	if (!r->pending.nev && !r->carry.nev && !r->spilled && !unread)
		return 0;
	/* once more, as it is (the writer has tried for CLOSE_TRIES_NS) */
	if (unspill(r, &rc, err, sizeof err) == 0 && rc == SQLITE_OK)
		batch_drop(&r->pending, write_events(r, &r->pending, &rc, err, sizeof err));
	/* the output among them is counted as output lost (gap, losses); the
	   rest (the exit, input typed at the very end) only in msg */
	uint64_t events = r->spilled + unread, bytes = unread_bytes, other = 0;
	for (int k = 0; k < 2; k++) {
		const batch *b = k ? &r->carry : &r->pending;
		for (size_t i = 0; i < b->nev; i++) {
			if (b->ev[i].kind == 'o')
				events++, bytes += b->ev[i].len;
			else
				other++;
		}
	}
	if (!events && !other)
		return 0;
	/* what is left is let go; the ballast makes room to say so */
	if (r->reserve[0]) {
		unlink(r->reserve);
		r->reserve[0] = 0;
	}
	int64_t from = r->carry.nev ? r->carry.ev[0].t : r->pending.nev ? r->pending.ev[0].t : rec_now_us();
	batch_clear(&r->pending);
	batch_clear(&r->carry);
	uint64_t spilled = r->spilled;
	r->spilled = 0; /* those stay in the spill file, for a person */
	r->lost_events += events;
	r->lost_bytes += bytes;
	batch gap = { 0 };
	char g[160], err2[256];
	int n = snprintf(g, sizeof g, "{\"events\":%llu,\"bytes\":%llu,\"from\":%lld,\"to\":%lld}",
	                 (unsigned long long)events, (unsigned long long)bytes, (long long)from, (long long)rec_now_us());
	int told = batch_add(&gap, rec_now_us(), 'g', g, (size_t)n, 0) == 0 &&
	           write_events(r, &gap, &rc, err2, sizeof err2) == 1;
	batch_free(&gap);
	if (msg)
		snprintf(msg, len, "the last %llu output event(s) of the terminal (%llu bytes) and %llu other(s) could not be recorded%s%s%s; %s",
		         (unsigned long long)events, (unsigned long long)bytes, (unsigned long long)other,
		         err[0] ? " (" : "", err, err[0] ? ")" : "",
		         told ? "a gap event and the losses table say so" :
		         spilled ? "what waited in the spill file is still there" : "the record could not even say so");
	return -1;
}

int rec_finish(recorder_t *r, char *msg, size_t len)
{
	if (msg && len)
		msg[0] = 0;
	if (!r)
		return 0;
	worker_stop(&r->w);
	int lost = last_words(r, msg, len) < 0 || r->stats.dropped;
	if (lost && msg && !msg[0])
		snprintf(msg, len, "%llu output event(s) were let go while the disk was full (gap events say where)",
		         (unsigned long long)r->stats.dropped);
	if (r->reserve[0])
		unlink(r->reserve);
	ckpt_stop(r->ckpt, r->db);
	sqlite3_wal_checkpoint_v2(r->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL); /* the rest */
	sqlite3_finalize(r->insert);
	sqlite3_finalize(r->loss);
	sqlite3_close_v2(r->db);
	tape_close(r->tape);
	if (r->spill_fd >= 0) {
		close(r->spill_fd);
		struct stat st;
		if (stat(r->spill_path, &st) == 0 && st.st_size == 0)
			unlink(r->spill_path); /* else it is what is left: kept for a person to see */
	}
	worker_free(&r->w);
	batch_free(&r->queue);
	batch_free(&r->spare);
	batch_free(&r->pending);
	batch_free(&r->carry);
	rules_free(&r->rules);
	free(r);
	return lost ? -1 : 0;
}

int rec_close(recorder_t *r)
{
	return rec_finish(r, NULL, 0);
}
