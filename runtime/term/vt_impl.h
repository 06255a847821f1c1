/*
** vt_impl.h — what vt.c (the model and its parser) and vt_draw.c (the
** snapshot, the text, the Lua binding) share.
*/
#ifndef PROCY_VT_IMPL_H
#define PROCY_VT_IMPL_H

#include "vt.h"

#define MAXP 32

typedef struct pen { uint32_t fg, bg; uint16_t attr; } pen_t;

typedef struct saved {
	int   set, x, y, origin;
	pen_t pen;
	int   cs[2], gl;
} saved_t;

typedef struct sbline { vt_cell *c; int n; } sbline;

enum { GROUND, ESC, ESC_CS, ESC_SKIP, CSI, STR, STR_ESC };

struct vt {
	int      cols, rows;
	vt_cell *grid[2];      /* the main screen, the alternate one */
	int      alt;          /* 1 while the alternate one is shown */
	int      x, y, pending; /* pending: a character in the last column waits to wrap */
	int      main_x, main_y;
	pen_t    pen;
	int      top, bot;     /* the scroll region, rows inclusive */
	int      autowrap, visible, origin, insert;
	int      cs[2], gl;    /* G0 and G1: 0 ASCII, 1 DEC line drawing; gl: which is in use */
	saved_t  saved[2];     /* DECSC, per screen */
	uint8_t *tabs;
	sbline  *sb;           /* a ring of sb_max lines, sb_n held, the oldest at sb_head */
	int      sb_max, sb_n, sb_head;
	/* the parser */
	int      state, cs_target;
	int      p[MAXP], sub[MAXP], np; /* parameters; sub: joined to the one before by ':' */
	char     priv, inter;
	uint32_t ucp, umin;    /* a UTF-8 sequence's code point so far, the least it may be */
	int      uneed;
	uint32_t last;         /* the last character drawn, for REP */
};

/* vt_width.c */
int vt_width(uint32_t cp);
/* Where terminals disagree on a width (emoji and symbols) a snapshot puts
   the cursor back where this model has it after the character. */
int vt_doubtful(uint32_t cp, int w);

#endif
