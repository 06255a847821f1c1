/*
** record.c — the terminal recorder: term_events rows written in batches by
** a writer thread of its own.
**
** The relay appends events to a memory queue (a memcpy, under a mutex held
** for nothing else); the writer thread, with its own connection to the
** record, takes what is queued when asked (rec_flush, every ~50 ms) or when
** 64 KB are waiting, and writes it in one transaction. So SQLite's work —
** and the disk's — never sits on the relay's path. The thread touches no
** Lua and nothing of the loop. A failed write (busy, disk full, I/O) keeps
** its batch and is retried; a queue past REC_MAX_PENDING drops the newest
** events and counts them.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "procy.h"

#define REC_FLUSH_BYTES (64 * 1024)
#define REC_MAX_PENDING (8 * 1024 * 1024)
#define REC_MERGE_US    1000  /* output this close together is one row */

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
	pthread_mutex_t lock;
	pthread_cond_t  wake, idle;
	pthread_t       thread;
	int             started, closing, flush_asked, busy;
	uint64_t        rounds_started, rounds_done; /* writer rounds, for rec_sync */
	batch           queue;     /* the relay appends here (under lock) */
	batch           writing;   /* the writer's, outside the lock */
	sqlite3        *db;
	sqlite3_stmt   *insert;
	char            session[40];
	uint64_t        written, dropped; /* under lock */
	char            error[256];       /* under lock */
};

static void batch_clear(batch *b)
{
	b->nev = 0;
	b->data.len = 0;
	if (b->data.cap > 4 * REC_FLUSH_BYTES) /* give back what a burst took */
		buf_free(&b->data);
}

static void batch_free(batch *b)
{
	free(b->ev);
	buf_free(&b->data);
	memset(b, 0, sizeof *b);
}

/* Appends an event (merging output that follows closely). 0 or -1. */
static int batch_add(batch *b, int64_t t, char kind, const void *data, size_t len)
{
	/* A pty hands output over in pieces of a few KB; pieces that arrive
	   within a millisecond of the row's start are one row: it halves what
	   the disk writes (a small blob spills into an overflow page) and keeps
	   the timing a replay can show. */
	queued *last = b->nev ? &b->ev[b->nev - 1] : NULL;
	if (last && kind == 'o' && last->kind == 'o' && t - last->t < REC_MERGE_US &&
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

/* Writes a batch in one transaction (writer thread). SQLITE_OK, or a code
   with the message in err. */
static int write_batch(recorder_t *r, batch *b, char *err, size_t errlen)
{
	int rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < b->nev; i++) {
		queued *e = &b->ev[i];
		char kind[2] = { e->kind, 0 };
		sqlite3_bind_text(r->insert, 1, r->session, -1, SQLITE_STATIC);
		sqlite3_bind_int64(r->insert, 2, e->t);
		sqlite3_bind_text(r->insert, 3, kind, 1, SQLITE_TRANSIENT);
		sqlite3_bind_blob64(r->insert, 4, b->data.p + e->off, e->len, SQLITE_STATIC);
		rc = sqlite3_step(r->insert);
		sqlite3_reset(r->insert);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(r->db));
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc;
}

/* Moves the queue's events after the writer's own (a batch kept after a
   failure comes first). Under lock. */
static int take_queue(recorder_t *r)
{
	batch *q = &r->queue, *w = &r->writing;
	if (w->nev == 0) { /* the usual case: swap buffers, no copy */
		batch t = *w;
		*w = *q;
		*q = t;
		batch_clear(q);
		return 0;
	}
	for (size_t i = 0; i < q->nev; i++)
		if (batch_add(w, q->ev[i].t, q->ev[i].kind, q->data.p + q->ev[i].off, q->ev[i].len) < 0)
			return -1;
	batch_clear(q);
	return 0;
}

static void *writer(void *arg)
{
	recorder_t *r = arg;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->closing && r->queue.data.len < REC_FLUSH_BYTES &&
		       !(r->flush_asked && (r->queue.nev || r->writing.nev)))
			pthread_cond_wait(&r->wake, &r->lock);
		r->flush_asked = 0;
		if (take_queue(r) < 0)
			snprintf(r->error, sizeof r->error, "out of memory");
		r->busy = 1;
		r->rounds_started++;
		int closing = r->closing;
		pthread_mutex_unlock(&r->lock);
		if (closing)
			sqlite3_busy_timeout(r->db, 2000); /* the last batch may wait a little */
		char err[sizeof r->error];
		int rc = r->writing.nev ? write_batch(r, &r->writing, err, sizeof err) : SQLITE_OK;
		pthread_mutex_lock(&r->lock);
		r->busy = 0;
		if (rc == SQLITE_OK) {
			r->written += r->writing.nev;
			r->error[0] = 0;
			batch_clear(&r->writing);
		} else {
			memcpy(r->error, err, sizeof r->error);
		}
		r->rounds_done++;
		pthread_cond_broadcast(&r->idle);
		if (r->closing && (r->queue.nev == 0 || rc != SQLITE_OK))
			break;
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

recorder_t *rec_open(const char *path, const char *session, char *err, size_t errlen)
{
	recorder_t *r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(r->session, sizeof r->session, "%s", session);
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
	if (rc == SQLITE_OK && (pthread_mutex_init(&r->lock, NULL) || pthread_cond_init(&r->wake, NULL) ||
	                        pthread_cond_init(&r->idle, NULL)))
		rc = SQLITE_NOMEM;
	if (rc == SQLITE_OK && pthread_create(&r->thread, NULL, writer, r) != 0)
		rc = SQLITE_NOMEM;
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		sqlite3_finalize(r->insert);
		sqlite3_close_v2(r->db);
		free(r);
		return NULL;
	}
	r->started = 1;
	return r;
}

void rec_event(recorder_t *r, int64_t t_us, char kind, const void *data, size_t len)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	if (r->queue.data.len + len > REC_MAX_PENDING || batch_add(&r->queue, t_us, kind, data, len) < 0)
		r->dropped++;
	else if (r->queue.data.len >= REC_FLUSH_BYTES)
		pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

int rec_flush(recorder_t *r)
{
	if (!r)
		return 0;
	pthread_mutex_lock(&r->lock);
	r->flush_asked = 1;
	pthread_cond_signal(&r->wake);
	int failing = r->error[0] != 0;
	pthread_mutex_unlock(&r->lock);
	return failing ? -1 : 0;
}

int rec_sync(recorder_t *r)
{
	if (!r)
		return 0;
	pthread_mutex_lock(&r->lock);
	r->flush_asked = 1;
	pthread_cond_signal(&r->wake);
	/* Done when everything is written, or a round that started after this
	   call has failed: the outcome of a round already under way (a failure
	   an instant ago, say) is not this call's answer. */
	uint64_t target = r->rounds_started + 1;
	for (;;) {
		int pending = r->queue.nev || r->writing.nev || r->busy;
		if (!pending || (r->rounds_done >= target && r->error[0]))
			break;
		pthread_cond_wait(&r->idle, &r->lock);
	}
	int failing = r->error[0] != 0;
	pthread_mutex_unlock(&r->lock);
	return failing ? -1 : 0;
}

void rec_stats(recorder_t *r, rec_stats_t *out)
{
	memset(out, 0, sizeof *out);
	if (!r)
		return;
	pthread_mutex_lock(&r->lock); /* the writer updates these */
	out->written = r->written;
	out->dropped = r->dropped;
	memcpy(out->error, r->error, sizeof out->error);
	pthread_mutex_unlock(&r->lock);
}

/* Writes what is left (waiting up to 2 s for a lock), checkpoints, and
   ends the writer. 0, or -1 if events were lost. */
int rec_close(recorder_t *r)
{
	if (!r)
		return 0;
	pthread_mutex_lock(&r->lock);
	r->closing = 1;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	int lost = r->queue.nev || r->writing.nev || r->dropped;
	sqlite3_wal_checkpoint_v2(r->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	sqlite3_finalize(r->insert);
	sqlite3_close_v2(r->db);
	batch_free(&r->queue);
	batch_free(&r->writing);
	pthread_cond_destroy(&r->wake);
	pthread_cond_destroy(&r->idle);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return lost ? -1 : 0;
}
