/*
** record.c — the terminal recorder: term_events rows written in batches.
**
** Events are appended to a memory buffer as they happen and written in one
** transaction when the caller flushes (session.c does every ~50 ms) or when
** 64 KB are waiting, so recording costs the relay a memcpy per chunk. It has
** its own connection to the record, so a recipe's transaction never holds
** it up. A failed write keeps the events (up to REC_MAX_PENDING, then it
** drops the newest and counts them) and is retried on the next flush.
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "procy.h"

#define REC_FLUSH_BYTES (64 * 1024)
#define REC_MAX_PENDING (8 * 1024 * 1024)

typedef struct queued {
	int64_t t;
	char    kind;
	size_t  off, len; /* in the data buffer */
} queued;

struct recorder {
	sqlite3      *db;
	sqlite3_stmt *insert;
	char          session[40];
	queued       *ev;
	size_t        nev, capev;
	buf_t         data;
	uint64_t      written, dropped;
	char          error[256];
};

recorder_t *rec_open(const char *path, const char *session, char *err, size_t errlen)
{
	recorder_t *r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(r->session, sizeof r->session, "%s", session);
	int rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(r->db, 2000);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(r->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(r->db,
		        "INSERT INTO term_events(session_id, t, kind, data) VALUES (?, ?, ?, ?)",
		        -1, SQLITE_PREPARE_PERSISTENT, &r->insert, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		sqlite3_close_v2(r->db);
		free(r);
		return NULL;
	}
	return r;
}

void rec_event(recorder_t *r, int64_t t_us, char kind, const void *data, size_t len)
{
	if (!r)
		return;
	if (r->data.len + len > REC_MAX_PENDING) {
		r->dropped++;
		return;
	}
	if (r->nev == r->capev) {
		size_t cap = r->capev ? r->capev * 2 : 256;
		queued *ev = realloc(r->ev, cap * sizeof *ev);
		if (!ev) {
			r->dropped++;
			return;
		}
		r->ev = ev;
		r->capev = cap;
	}
	size_t off = r->data.len;
	if (buf_add(&r->data, data, len) < 0) {
		r->dropped++;
		return;
	}
	r->ev[r->nev++] = (queued){ t_us, kind, off, len };
	if (r->data.len >= REC_FLUSH_BYTES)
		rec_flush(r);
}

int rec_flush(recorder_t *r)
{
	if (!r || r->nev == 0)
		return 0;
	int rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < r->nev; i++) {
		queued *e = &r->ev[i];
		char kind[2] = { e->kind, 0 };
		sqlite3_bind_text(r->insert, 1, r->session, -1, SQLITE_STATIC);
		sqlite3_bind_int64(r->insert, 2, e->t);
		sqlite3_bind_text(r->insert, 3, kind, 1, SQLITE_TRANSIENT);
		sqlite3_bind_blob64(r->insert, 4, r->data.p + e->off, e->len, SQLITE_STATIC);
		rc = sqlite3_step(r->insert);
		sqlite3_reset(r->insert);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(r->error, sizeof r->error, "%s", sqlite3_errmsg(r->db));
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	r->written += r->nev;
	r->nev = 0;
	r->data.len = 0;
	r->error[0] = 0;
	if (r->data.cap > 4 * REC_FLUSH_BYTES) /* give back what a burst took */
		buf_free(&r->data);
	return 0;
}

const char *rec_error(const recorder_t *r) { return r && r->error[0] ? r->error : NULL; }
uint64_t rec_written(const recorder_t *r) { return r ? r->written : 0; }
uint64_t rec_dropped(const recorder_t *r) { return r ? r->dropped : 0; }

int rec_close(recorder_t *r)
{
	if (!r)
		return 0;
	int rc = rec_flush(r);
	sqlite3_finalize(r->insert);
	sqlite3_close_v2(r->db);
	buf_free(&r->data);
	free(r->ev);
	free(r);
	return rc;
}
