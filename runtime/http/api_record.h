/*
** api_record.h — the API recorder (api_record.c): finished calls in, recorded
** on a worker thread, summaries out to a sink.
*/
#ifndef PROCY_API_RECORD_H
#define PROCY_API_RECORD_H

#include "call.h"

typedef struct capture capture_t;

/* api_record.c: calls recorded on a worker thread, by procy.record.capture's
   worker, so parsing and SQLite never hold up the loop. settings: JSON
   for capture.worker (db, session, redact, prices); ready(ud) is called
   in the loop when summaries wait for capture_next: the sink, whoever it
   is (the capture knows only the calls it is given). */
typedef struct capture_stats {
	size_t added;    /* calls handed to the recorder */
	size_t told;     /* whose summaries Lua has read */
	size_t recorded; /* written (marked ones included) */
	size_t marked;   /* written with a parse error: not parsed, or raw */
	size_t lost;     /* not written, ever */
	size_t failures; /* batches the database refused (and that were tried again) */
	size_t queued, queued_bytes; /* waiting now, and being written */
	char   error[256]; /* the database's last refusal, "" once a batch goes in */
} capture_stats;

capture_t  *capture_start(loop_t *loop, void (*ready)(void *ud), void *ud, const char *settings,
                          err_t *err);
void        capture_add(capture_t *cap, pcall_t *c);     /* takes c */
/* 1 when the queue is past its bound: new calls should wait. */
int         capture_full(capture_t *cap);
/* The bound: calls queued, and bytes queued or being written. */
void        capture_bound(capture_t *cap, size_t calls, size_t bytes);
void        capture_get_stats(capture_t *cap, capture_stats *out);
/* [-0, +1] The next recorded call's summary; 0 if none is waiting. */
int         capture_next(capture_t *cap, lua_State *L);
/* Calls finished but not yet told to Lua (queued, being recorded, or
   recorded and waiting in srv:calls()). */
size_t      capture_untold(capture_t *cap);
/* Records what is queued, then ends the thread. */
void        capture_stop(capture_t *cap);
void        capture_free(capture_t *cap);

#endif
