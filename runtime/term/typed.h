/*
** typed.h — what the person typed, into the record once the agent has
** shown it (typed.c says why). The relay (session.c) owns one.
*/
#ifndef PROCY_TYPED_H
#define PROCY_TYPED_H

#include "procy.h"
#include "term_record.h"

typedef struct typed {
	loop_t        *loop;
	recorder_t    *rec;
	void         (*line)(void *ctx, const char *p, size_t n); /* a typed line, recorded */
	void          *ctx;
	buf_t          echo;  /* events waiting to be shown */
	unsigned char  last;  /* the last byte they should show */
	int64_t        since; /* loop clock: the first of them */
	int            other; /* the agent has drawn since, without showing them */
} typed_t;

/* Input (kind 'i') or a line ('l'); raw: the agent's terminal is raw, so
   it waits to be shown. */
void typed_record(typed_t *t, char kind, const char *p, size_t n, int raw);
void typed_output(typed_t *t, const char *p, size_t n); /* the agent wrote p */
void typed_tick(typed_t *t, int end); /* now and then; at the end, end set */
void typed_free(typed_t *t);

#endif
