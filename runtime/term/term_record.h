/*
** term_record.h — the terminal recorder (term_record.c): term_events rows
** queued by the relay and written by a thread of their own, redacted
** (term_record_rules.c), output on the record's tape (tape.c).
*/
#ifndef PROCY_TERM_RECORD_H
#define PROCY_TERM_RECORD_H

#include "procy.h"

typedef struct recorder recorder_t;

/* The rule set that keeps secrets out (procy.redact): settings, JSON
   {"redact": [patterns]} as the setting has them; literals, what
   redact.literals() says, one per line (NULL: every text is looked at).
   The rules' Lua state is made only when some text holds a literal. */
typedef struct rec_rules {
	const char *settings;
	const char *literals;
} rec_rules;

/* Opens its own connection to the record at path (schema already applied)
   for session, redacting with rules (NULL: no redaction). NULL with err
   filled. */
recorder_t *rec_open(const char *path, const char *session, const rec_rules *rules, err_t *err);
/* Queues one term_events row: t in µs since the epoch, kind o/i/r/m/x/l.
   Never blocks on the disk: the recorder's writer thread writes. */
void rec_event(recorder_t *r, int64_t t_us, char kind, const void *data, size_t len);
/* Bytes queued for the writer: the relay stops reading the agent when the
   writer falls this far behind. */
size_t rec_backlog(recorder_t *r);
/* Asks the writer to write what is queued now, and returns at once: 0, or
   -1 while writes keep failing (see rec_stats). */
int  rec_flush(recorder_t *r);
/* Like rec_flush, but waits for that write (held words too). 0 or -1. */
int  rec_sync(recorder_t *r);
typedef struct rec_stats {
	uint64_t written;       /* rows written */
	uint64_t waiting;       /* events not yet written (in memory or spilled) */
	uint64_t spilled;       /* of those, in the spill file */
	uint64_t dropped;       /* output events let go (a gap event says where) */
	uint64_t dropped_bytes;
	uint64_t checkpoints;   /* WAL copied back while writing (checkpoint.c) */
	char     error[256];    /* the last failure, "" when writes succeed */
} rec_stats_t;
void rec_stats(recorder_t *r, rec_stats_t *out);
int  rec_close(recorder_t *r);         /* writes the rest; 0, or -1 if any was lost */
/* rec_close, and msg (len bytes) says what was lost, if anything: output
   the disk had no room for at the end is counted (a gap event, a losses
   row) in room the recorder kept for it. */
int  rec_finish(recorder_t *r, char *msg, size_t len);

#endif
