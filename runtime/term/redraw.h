/*
** redraw.h — making the agent paint its screen again after procy drew
** over it (redraw.c): a size change it must answer, undone once it has.
*/
#ifndef PROCY_REDRAW_H
#define PROCY_REDRAW_H

#include "procy.h"

typedef struct redraw {
	loop_t     *loop;
	int         master;     /* the agent's pty */
	int         cols, rows; /* its size, to go back to */
	int         phase;      /* 1: one row shorter, waiting for the agent; 2: it answered */
	int         erased;     /* rows the agent cleared since the shrink */
	loop_timer  timer;
} redraw_t;

void redraw_init(redraw_t *r, loop_t *loop);
/* The agent of pty master, cols x rows, repaints (nothing if one is under way). */
void redraw_start(redraw_t *r, int master, int cols, int rows);
/* The agent wrote p on a terminal of screen_rows: the repaint that answers? */
void redraw_output(redraw_t *r, const char *p, size_t n, int screen_rows);
void redraw_stop(redraw_t *r); /* the size is set anew: nothing to put back */
/* Sets the pty's size (the agent gets SIGWINCH); ignored once master < 0. */
void pty_resize(int master, int cols, int rows);

#endif
