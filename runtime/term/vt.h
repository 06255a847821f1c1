/*
** vt.h — a terminal's screen as a model in memory, fed the bytes an agent
** wrote, so a replay can start anywhere: vt_snapshot writes the bytes that
** draw the same screen on a fresh terminal, and a player seeks by drawing
** the snapshot nearest before a moment and the little output after it,
** instead of feeding everything from the start.
**
** It follows what xterm and xterm.js do for the sequences agents and
** shells use (cursor motion, erase, insert/delete, scroll regions, SGR with
** 256 and true colours, the alternate screen, DEC line drawing, UTF-8 with
** wide and combining characters) and ignores the rest: it draws nothing and
** answers nothing. Pure C, no I/O.
*/
#ifndef PROCY_VT_H
#define PROCY_VT_H

#include "procy.h"

#include <stdint.h>

/* a colour: 0 the default, VT_PAL|n palette entry n, VT_RGB|0xrrggbb */
#define VT_PAL 0x01000000u
#define VT_RGB 0x02000000u

enum {
	VT_BOLD = 1, VT_DIM = 2, VT_ITALIC = 4, VT_UNDERLINE = 8, VT_BLINK = 16,
	VT_INVERSE = 32, VT_HIDDEN = 64, VT_STRIKE = 128,
};

typedef struct vt_cell {
	uint32_t cp;       /* the character; 0 blank; for the right half of a wide one, 0 with w == 0 */
	uint32_t comb;     /* one combining character drawn over it, or 0 */
	uint32_t fg, bg;
	uint16_t attr;
	uint8_t  w;        /* 1, 2 (wide: the next cell is its right half), 0 (that half) */
} vt_cell;

typedef struct vt vt_t;

/* A screen of cols x rows (each 1..1000) keeping up to `scrollback` lines
   that scrolled off the main screen. NULL with errno set. */
vt_t *vt_new(int cols, int rows, int scrollback);
void  vt_free(vt_t *v);
void  vt_feed(vt_t *v, const void *p, size_t n);
/* -1 with errno set (ENOMEM, EINVAL); the screen is unchanged then */
int   vt_resize(vt_t *v, int cols, int rows);
/* Appends to out what, written to a fresh terminal of this size, draws this
   screen: up to `lines` lines of scrollback, the main screen, the alternate
   one when it is shown, the cursor, the pen, the scroll region and the
   modes that change how later output lands. -1 (ENOMEM). */
int   vt_snapshot(const vt_t *v, buf_t *out, int lines);
/* The screen's text, rows joined by "\n", trailing blanks dropped (UTF-8). */
int   vt_text(const vt_t *v, buf_t *out);

/* Output as plain text, for search: escape sequences dropped, a cursor
   motion or tab made a space, CR and LF a newline, other controls
   dropped, runs of blanks made one; UTF-8 passes through. -1 (ENOMEM). */
int   vt_strip(const void *p, size_t n, buf_t *out);

/* For tests and the fuzzer: what the screen shows and where the cursor is. */
void  vt_size(const vt_t *v, int *cols, int *rows);
const vt_cell *vt_cell_at(const vt_t *v, int x, int y);
void  vt_cursor(const vt_t *v, int *x, int *y, int *visible);
int   vt_alt(const vt_t *v);
int   vt_scrollback(const vt_t *v); /* lines held */

/* procy.vt, the screen model's Lua binding (vt_draw.c) */
int luaopen_procy_vt(lua_State *L);

#endif
