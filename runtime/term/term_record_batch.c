/*
** term_record_batch.c — the terminal recorder's batches: events and their
** bytes, as the relay queues them and the writer writes them. Below both
** the recorder (term_record.c) and its rule set (term_record_rules.c).
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "term_record_batch.h"

/* ---- the clock ---------------------------------------------------------------------- */

int64_t rec_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- batches ------------------------------------------------------------------------- */

void batch_clear(batch *b)
{
	b->nev = 0;
	b->data.len = 0;
	if (b->data.cap > (1 << 20))
		buf_free(&b->data); /* give back what a burst took */
}

void batch_free(batch *b)
{
	free(b->ev);
	buf_free(&b->data);
	memset(b, 0, sizeof *b);
}

/* Room for one more event: 0, or -1. */
static int room(batch *b)
{
	if (b->nev < b->capev)
		return 0;
	size_t cap = b->capev ? b->capev * 2 : 256;
	queued *ev = realloc(b->ev, cap * sizeof *ev);
	if (!ev)
		return -1;
	b->ev = ev;
	b->capev = cap;
	return 0;
}

/* Appends an event; merge: output following output within a millisecond
   joins its row (the pty hands output over in pieces of a few KB; one
   row halves what the disk writes and keeps the timing a replay shows). */
int batch_add(batch *b, int64_t t, char kind, const void *data, size_t len, int merge)
{
	queued *last = b->nev ? &b->ev[b->nev - 1] : NULL;
	if (merge && last && kind == 'o' && last->kind == 'o' && last->at < 0 && t - last->t < REC_MERGE_US &&
	    last->len + len <= REC_FLUSH_BYTES && last->off + last->len == b->data.len) {
		if (buf_add(&b->data, data, len) < 0)
			return -1;
		last->len += len;
		return 0;
	}
	if (room(b) < 0)
		return -1;
	size_t off = b->data.len;
	if (buf_add(&b->data, data, len) < 0)
		return -1;
	b->ev[b->nev++] = (queued){ t, kind, off, len, -1 };
	return 0;
}

int batch_add_taped(batch *b, int64_t t, char kind, size_t len, int64_t at)
{
	if (room(b) < 0)
		return -1;
	b->ev[b->nev++] = (queued){ t, kind, b->data.len, len, at };
	return 0;
}

void batch_compact(batch *b)
{
	size_t w = 0;
	for (size_t i = 0; i < b->nev; i++) {
		queued *q = &b->ev[i];
		size_t h = held(q);
		if (h && q->off != w)
			memmove(b->data.p + w, b->data.p + q->off, h);
		q->off = w;
		w += h;
	}
	b->data.len = w;
}

/* Drops the first n events. */
void batch_drop(batch *b, size_t n)
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
