/*
** term_record_rules.h — the rule set the terminal recorder's writer masks
** output and input with (term_record_rules.c): procy.redact, in a Lua
** state of its own made on first need. Used on the writer's thread only.
*/
#ifndef PROCY_TERM_RECORD_RULES_H
#define PROCY_TERM_RECORD_RULES_H

#include "procy.h"
#include "term_record_batch.h"

#define HOLD_US  1000000 /* a trailing word waits at most this long */
#define HOLD_MAX 512     /* and is at most this long */

typedef struct rules {
	lua_State *L;
	int        spans;         /* registry ref: procy.redact.spans */
	secrets_t  lits;          /* the first look (secrets.c) */
	char      *settings;      /* JSON {"redact": [patterns]}, as the setting has them */
	char       error[256];    /* the last failure ("": none); the owner takes it and clears it */
	int        cols;          /* the screen's width, from the last 'r' event (0: not known) */
} rules_t;

/* Copies the settings (JSON) and the literals (one a line); NULL: none.
   0, or -1: no memory. */
int  rules_init(rules_t *r, const char *settings, const char *literals);
void rules_close_state(rules_t *r); /* the Lua state, on the thread that used it */
void rules_free(rules_t *r);
/* The round's events in `in` into `pending`, redacted, in order. */
void rules_take_in(rules_t *r, batch *in, batch *pending);
/* A word `in` ends in (or a full row ending in a word and a gap), moved
   to `queue` for the next round. */
void rules_hold_last_word(rules_t *r, batch *in, batch *queue);

#endif
