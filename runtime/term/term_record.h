/*
** term_record.h — the terminal recorder's insides, shared by its two
** halves: the queue, the writer and the disk (term_record.c), and the rule set
** the writer masks output and input with (term_record_rules.c).
*/
#ifndef PROCY_TERM_RECORD_H
#define PROCY_TERM_RECORD_H

#include <sqlite3.h>

#include "procy.h"

#define REC_FLUSH_BYTES (64 * 1024)  /* the longest row of output */
#define REC_WAKE_BYTES  (256 * 1024) /* queued, the writer comes without being asked */
#define REC_MERGE_US    1000       /* output this close together is one row */
#define CHUNK           (1 << 20)  /* bytes per transaction, and per write to the tape */
#define MEM_MAX         (8 << 20)  /* waiting in memory before spilling */
#define EV_MAX          (1 << 18)  /* events waiting, those on the tape too (40 bytes each) */
#define QUEUE_MAX       (16 << 20) /* the relay's queue, if the writer never comes */
#define HOLD_US         1000000    /* a trailing word waits at most this long */
#define HOLD_MAX        512        /* and is at most this long */
#define CLOSE_TRIES_NS  2000000000LL

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
	uint8_t         pair[16][2];  /* the literals' distinct first two bytes (npairs 0: none, */
	size_t          npairs;       /* or a literal of one byte: the byte-wise scan) */
	int             spill_fd;
	char            spill_path[4096];
	uint64_t        spilled;   /* events in the spill file, and in carry */
	off_t           spill_from; /* where its events not yet read back start */
	batch           carry;     /* read back from it, refused by the database */
	uint64_t        lost_events, lost_bytes; /* dropped, not yet counted in `losses` */
	tape_t         *tape;      /* where output goes (tape.c) */
	sqlite3        *db;
	checkpointer_t *ckpt;      /* copies db's WAL back while the writer writes */
	sqlite3_stmt   *insert, *loss;
	char            session[40];
	char           *settings;
	rec_stats_t     stats;     /* under mu */
};

/* term_record_rules.c: the clock, and batches (merge: output close in
   time joins the last event) */
int64_t rec_now_us(void);
int     batch_add(batch *b, int64_t t, char kind, const void *data, size_t len, int merge);
int     batch_add_taped(batch *b, int64_t t, char kind, size_t len, int64_t at); /* bytes on the tape */
void    batch_compact(batch *b); /* the bytes of events now on the tape go */
void    batch_clear(batch *b);
void    batch_free(batch *b);
void    batch_drop(batch *b, size_t n); /* the first n events */

/* term_record_rules.c: the round's events into r->pending, redacted; a word the
   queue ends in, left in the relay's queue for the next round */
void    rules_pairs(recorder_t *r);
void    rules_take_in(recorder_t *r, batch *in);
void    rules_hold_last_word(recorder_t *r, batch *in);

#endif
