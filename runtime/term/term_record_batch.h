/*
** term_record_batch.h — the terminal recorder's batches (term_record_batch.c):
** what the relay queues and the writer writes, events and their bytes.
*/
#ifndef PROCY_TERM_RECORD_BATCH_H
#define PROCY_TERM_RECORD_BATCH_H

#include "procy.h"

#define REC_FLUSH_BYTES (64 * 1024)  /* the longest row of output */
#define REC_MERGE_US    1000       /* output this close together is one row */

/* An event: its bytes are in the batch's data (at < 0), or on the tape
   from at (output once written there: the batch holds none of them then,
   and off only marks its place). */
typedef struct queued {
	int64_t t;
	char    kind;
	size_t  off, len; /* in the batch's data */
	int64_t at;       /* on the tape; -1: not there */
} queued;

/* The bytes of q the batch holds. */
static inline size_t held(const queued *q)
{
	return q->at < 0 ? q->len : 0;
}

typedef struct batch {
	queued *ev;
	size_t  nev, capev;
	buf_t   data;
} batch;

/* The clock events are stamped with: µs since the epoch. */
int64_t rec_now_us(void);
/* Appends an event (0, or -1: no memory); merge: output following output
   within REC_MERGE_US joins the last event. */
int     batch_add(batch *b, int64_t t, char kind, const void *data, size_t len, int merge);
int     batch_add_taped(batch *b, int64_t t, char kind, size_t len, int64_t at); /* bytes on the tape */
void    batch_compact(batch *b); /* the bytes of events now on the tape go */
void    batch_clear(batch *b);
void    batch_free(batch *b);
void    batch_drop(batch *b, size_t n); /* the first n events */

#endif
