/*
** redraw.c — making the agent paint its screen again: one row shorter,
** then back. Programs redraw on a size change, and many ignore a SIGWINCH
** that changes nothing. The size goes back only once the agent has
** answered the first change (or REDRAW_MAX_NS passed): both changes seen
** at once are no change at all to a program that reads the size when it
** gets to the signal, and a full-screen agent (Claude Code is one, on the
** alternate screen) then repaints only what it thinks changed, leaving
** procy's pager on its screen.
*/
#include <string.h>
#include <sys/ioctl.h>

#include "redraw.h"

#define REDRAW_NS     40000000  /* after the agent answers a shrink, the size goes back */
#define REDRAW_MAX_NS 500000000 /* or after this, if it does not */

void pty_resize(int master, int cols, int rows)
{
	struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
	if (master >= 0)
		ioctl(master, TIOCSWINSZ, &ws);
}

void redraw_init(redraw_t *r, loop_t *loop)
{
	memset(r, 0, sizeof *r);
	r->loop = loop;
	loop_timer_init(&r->timer);
}

static void on_back(loop_t *loop, loop_timer *t)
{
	(void)loop;
	redraw_t *r = t->data;
	r->phase = 0;
	pty_resize(r->master, r->cols, r->rows);
}

void redraw_start(redraw_t *r, int master, int cols, int rows)
{
	if (rows < 2 || r->phase)
		return;
	r->master = master;
	r->cols = cols;
	r->rows = rows;
	pty_resize(master, cols, rows - 1);
	r->phase = 1;
	r->erased = 0;
	loop_timer_start(r->loop, &r->timer, REDRAW_MAX_NS, on_back, r);
}

/* Is p the repaint that answers the shrink (a clear of the screen, or of
   most of its lines)? Then the size goes back once the repaint has had a
   moment to come out. */
void redraw_output(redraw_t *r, const char *p, size_t n, int screen_rows)
{
	if (r->phase != 1)
		return;
	/* one pass, from Esc to Esc: output without any costs a memchr */
	for (const char *q = p, *end = p + n; (q = memchr(q, 0x1b, (size_t)(end - q))); q++) {
		size_t left = (size_t)(end - q);
		if ((left >= 4 && (memcmp(q, "\x1b[2J", 4) == 0 || memcmp(q, "\x1b[0J", 4) == 0)) ||
		    (left >= 3 && memcmp(q, "\x1b[J", 3) == 0))
			r->erased += screen_rows; /* the screen, from here down */
		else if (left >= 4 && memcmp(q, "\x1b[2K", 4) == 0)
			r->erased += 1;           /* a line */
	}
	if (r->erased >= screen_rows / 2) {
		r->phase = 2;
		loop_timer_start(r->loop, &r->timer, REDRAW_NS, on_back, r);
	}
}

void redraw_stop(redraw_t *r)
{
	loop_timer_stop(r->loop, &r->timer);
	r->phase = 0;
}
