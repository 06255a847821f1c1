/*
** overlay.h — what procy draws over the agent in an interactive session
** (overlay.c): the bottom-row status, the pinned row, the `!` command
** line and the pager, and the keys they take. The relay (session.c) owns
** one and calls down into it; what the overlay needs of the relay comes
** up only through the callbacks in `up`.
*/
#ifndef PROCY_OVERLAY_H
#define PROCY_OVERLAY_H

#include "term.h"

enum { M_PASS, M_EDIT, M_PAGER, M_RUN }; /* M_RUN: a program of procy's own has the terminal */

typedef struct overlay {
	loop_t         *loop;
	const screen_t *screen;   /* the agent's screen, as the relay follows it */
	int             cols, rows; /* the person's terminal */
	int             mode;
	int             closed;   /* the session ended: pager text waits in later */
	struct {                  /* what it asks of the relay beneath it */
		void  *ctx;
		void (*release_held)(void *ctx); /* write the output held meanwhile */
		void (*redraw_agent)(void *ctx); /* make the agent repaint */
		void (*type)(void *ctx, const char *p, size_t n); /* keys for the agent */
		void (*command)(void *ctx, const char *line, size_t len); /* a `!` line submitted */
	} up;
	buf_t           draw;     /* scratch for what is drawn */
	editor_t        ed;
	unsigned char   keys[32]; /* the start of a key sequence cut by a read */
	size_t          nkeys;
	char           *pager;
	size_t          pager_len;
	int             pager_first, pager_total, pager_alt;
	buf_t           later;    /* pager text waiting for the command line to close */
	char            flash[256]; /* a message on the bottom row (overlay_status) */
	int             flash_on;
	loop_timer      flash_timer; /* when it goes */
	char            pin[256]; /* the pinned bottom row ("": none) */
	int             pin_seen; /* screen->repaints when it was last drawn */
} overlay_t;

void   overlay_init(overlay_t *o, loop_t *loop, const screen_t *screen);
void   overlay_free(overlay_t *o);
void   overlay_flush(overlay_t *o);                    /* write what was drawn into o->draw */
void   overlay_status(overlay_t *o, const char *text); /* a message on the bottom row, for a while */
void   overlay_flash_again(overlay_t *o);              /* draw it again (the agent wrote) */
void   overlay_flash_hide(overlay_t *o);               /* clear its row (the agent will write) */
void   overlay_flash_end(overlay_t *o, int repaint);   /* take it away now */
void   overlay_pin(overlay_t *o);                      /* draw the pinned row */
void   overlay_pager(overlay_t *o, const char *text, size_t len);
void   overlay_editor(overlay_t *o);                   /* open the `!` command line */
size_t overlay_keys(overlay_t *o, const char *p, size_t n);
void   overlay_resized(overlay_t *o);
void   overlay_back(overlay_t *o, int repaint);        /* pass keys again: held output, then what waited */

#endif
