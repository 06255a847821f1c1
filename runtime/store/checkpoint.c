/*
** checkpoint.c — copying a writer's WAL back into the database on a thread
** of its own, while the writer goes on.
**
** A writer that appends quickly (the terminal recorder under a flood of
** output) would otherwise either checkpoint itself, waiting on the copy and
** its fsyncs while its queue fills, or leave the whole WAL to its close
** (50 MB of WAL for 40 MB of output, copied at exit). Here the writer's
** connection reports each commit (sqlite3_wal_hook); past CKPT_FRAMES the
** checkpointer, on a connection of its own, runs a PASSIVE checkpoint: it
** never takes the write lock, so the writer never waits for it. Once it has
** caught up, the writer's next transaction starts the WAL over from its
** beginning (and journal_size_limit trims the file), so the WAL stays the
** size of a few rounds, and the close has only the last of them to copy.
*/
#include <stdlib.h>
#include <stdio.h>

#include <sqlite3.h>

#include "procy.h"
#include "store.h"

#define CKPT_FRAMES 1024 /* 4 MB of 4 KB pages */

struct checkpointer {
	worker_t w;
	sqlite3 *db;
	int      asked;  /* under w.mu */
	uint64_t passes; /* under w.mu */
};

static void run(worker_t *w)
{
	checkpointer_t *c = w->ud;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stopping && !c->asked)
			worker_wait(w, &w->wake, -1);
		if (!c->asked)
			break;
		c->asked = 0;
		pthread_mutex_unlock(&w->mu);
		/* SQLITE_BUSY (another checkpoint under way) or an I/O error:
		   the next commit asks again, and the close checkpoints anyway */
		sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&w->mu);
		c->passes++;
	}
	pthread_mutex_unlock(&w->mu);
}

/* Called by SQLite on the writer's thread after each commit. */
static int on_commit(void *ud, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	checkpointer_t *c = ud;
	if (frames >= CKPT_FRAMES) {
		pthread_mutex_lock(&c->w.mu);
		c->asked = 1;
		pthread_cond_signal(&c->w.wake);
		pthread_mutex_unlock(&c->w.mu);
	}
	return SQLITE_OK;
}

checkpointer_t *ckpt_start(const char *path, sqlite3 *writer, err_t *err)
{
	checkpointer_t *c = calloc(1, sizeof *c);
	if (!c) {
		err_set(err, "ENOMEM", "out of memory");
		return NULL;
	}
	int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	/* a connection learns the database is in WAL mode when it first reads
	   it: until then a checkpoint does nothing (and says -1 frames) */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(c->db, "PRAGMA schema_version", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		err_set(err, db_code_name(rc), "%s: %s", path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		sqlite3_close_v2(c->db);
		free(c);
		return NULL;
	}
	if (worker_start(&c->w, NULL, run, NULL, c, err) < 0) {
		sqlite3_close_v2(c->db);
		free(c);
		return NULL;
	}
	/* the hook replaces SQLite's own autocheckpoint on this connection */
	sqlite3_wal_hook(writer, on_commit, c);
	return c;
}

void ckpt_stop(checkpointer_t *c, sqlite3 *writer)
{
	if (!c)
		return;
	sqlite3_wal_hook(writer, NULL, NULL);
	worker_free(&c->w); /* waits for a pass under way */
	sqlite3_close_v2(c->db);
	free(c);
}

uint64_t ckpt_passes(checkpointer_t *c)
{
	if (!c)
		return 0;
	pthread_mutex_lock(&c->w.mu);
	uint64_t n = c->passes;
	pthread_mutex_unlock(&c->w.mu);
	return n;
}
