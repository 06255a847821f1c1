/*
** vt.c — the screen model behind the monitor's terminal replay (vt.h).
**
** One cursor per screen as xterm.js keeps it (the alternate screen starts
** where the main one's cursor was; leaving it puts that back), erase with
** the pen's background (xterm's BCE), lines scrolled off the top of the
** main screen's full region into a ring of scrollback.
*/
#include "vt_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DEC special graphics, 0x5f..0x7e */
static const uint16_t dec_graphics[] = {
	0x00a0, 0x25c6, 0x2592, 0x2409, 0x240c, 0x240d, 0x240a, 0x00b0, 0x00b1, 0x2424, 0x240b,
	0x2518, 0x2510, 0x250c, 0x2514, 0x253c, 0x23ba, 0x23bb, 0x2500, 0x23bc, 0x23bd, 0x251c,
	0x2524, 0x2534, 0x252c, 0x2502, 0x2264, 0x2265, 0x03c0, 0x2260, 0x00a3, 0x00b7,
};

/* ---- the grid --------------------------------------------------------------- */

static vt_cell *row_of(vt_t *v, int y) { return v->grid[v->alt] + (size_t)y * v->cols; }

static vt_cell blank(const vt_t *v)
{
	vt_cell c = { 0, 0, 0, v->pen.bg, 0, 1 };
	return c;
}

static void clear_cells(vt_t *v, vt_cell *c, int n)
{
	vt_cell b = blank(v);
	for (int i = 0; i < n; i++)
		c[i] = b;
}

static void sb_push(vt_t *v, const vt_cell *c)
{
	if (v->sb_max == 0)
		return;
	int n = v->cols;
	while (n > 0 && c[n - 1].cp == 0 && c[n - 1].bg == 0 && c[n - 1].attr == 0 && c[n - 1].w == 1)
		n--;
	sbline *slot;
	if (v->sb_n < v->sb_max) {
		slot = &v->sb[(v->sb_head + v->sb_n) % v->sb_max];
		v->sb_n++;
	} else {
		slot = &v->sb[v->sb_head];
		v->sb_head = (v->sb_head + 1) % v->sb_max;
	}
	vt_cell *copy = n ? realloc(slot->c, (size_t)n * sizeof *copy) : NULL;
	if (n && !copy)
		n = 0; /* out of memory: the line is kept empty, the screen goes on */
	else if (!n) {
		free(slot->c);
	}
	if (n)
		memcpy(copy, c, (size_t)n * sizeof *copy);
	slot->c = copy;
	slot->n = n;
}

static void sb_clear(vt_t *v)
{
	for (int i = 0; i < v->sb_max; i++) {
		free(v->sb[i].c);
		v->sb[i].c = NULL;
		v->sb[i].n = 0;
	}
	v->sb_n = v->sb_head = 0;
}

static void scroll_up(vt_t *v, int n)
{
	int h = v->bot - v->top + 1;
	if (n > h)
		n = h;
	if (n <= 0)
		return;
	if (!v->alt && v->top == 0)
		for (int i = 0; i < n; i++)
			sb_push(v, row_of(v, i));
	memmove(row_of(v, v->top), row_of(v, v->top + n), (size_t)(h - n) * v->cols * sizeof(vt_cell));
	clear_cells(v, row_of(v, v->bot - n + 1), n * v->cols);
}

static void scroll_down(vt_t *v, int n)
{
	int h = v->bot - v->top + 1;
	if (n > h)
		n = h;
	if (n <= 0)
		return;
	memmove(row_of(v, v->top + n), row_of(v, v->top), (size_t)(h - n) * v->cols * sizeof(vt_cell));
	clear_cells(v, row_of(v, v->top), n * v->cols);
}

static void linefeed(vt_t *v)
{
	if (v->y == v->bot)
		scroll_up(v, 1);
	else if (v->y < v->rows - 1)
		v->y++;
}

static int clamp(int x, int lo, int hi) { return x < lo ? lo : x > hi ? hi : x; }

static void move_to(vt_t *v, int x, int y)
{
	int lo = v->origin ? v->top : 0, hi = v->origin ? v->bot : v->rows - 1;
	v->x = clamp(x, 0, v->cols - 1);
	v->y = clamp(y, lo, hi);
	v->pending = 0;
}

/* a wide character cut in half by a write or an erase is blanked whole */
static void split_wide(vt_t *v, int x, int y)
{
	vt_cell *r = row_of(v, y);
	if (x < 0 || x >= v->cols)
		return;
	if (r[x].w == 0 && x > 0) {
		r[x - 1] = blank(v);
		r[x] = blank(v);
	} else if (r[x].w == 2 && x + 1 < v->cols) {
		r[x + 1] = blank(v);
		r[x] = blank(v);
	}
}

static void erase(vt_t *v, int y, int x0, int x1) /* [x0, x1) on row y */
{
	if (x0 >= x1)
		return;
	split_wide(v, x0, y);
	split_wide(v, x1 - 1, y);
	clear_cells(v, row_of(v, y) + x0, x1 - x0);
}

static void put(vt_t *v, uint32_t cp)
{
	if (v->cs[v->gl] && cp >= 0x5f && cp <= 0x7e)
		cp = dec_graphics[cp - 0x5f];
	int w = vt_width(cp);
	if (w == 0) {
		int x = v->pending ? v->x : v->x - 1;
		vt_cell *r = row_of(v, v->y);
		if (x >= 0 && r[x].w == 0 && x > 0)
			x--;
		if (x >= 0 && !r[x].comb)
			r[x].comb = cp;
		return;
	}
	if (v->pending && v->autowrap) {
		v->x = 0;
		v->pending = 0;
		linefeed(v);
	}
	if (w == 2 && v->x == v->cols - 1) {
		if (v->cols < 2)
			return;
		if (v->autowrap) {
			erase(v, v->y, v->x, v->x + 1);
			v->x = 0;
			linefeed(v);
		} else {
			v->x = v->cols - 2;
		}
	}
	vt_cell *r = row_of(v, v->y);
	if (v->insert) {
		split_wide(v, v->x, v->y);
		split_wide(v, v->cols - w, v->y);
		memmove(r + v->x + w, r + v->x, (size_t)(v->cols - v->x - w) * sizeof *r);
		clear_cells(v, r + v->x, w);
	}
	split_wide(v, v->x, v->y);
	if (w == 2)
		split_wide(v, v->x + 1, v->y);
	vt_cell c = { cp, 0, v->pen.fg, v->pen.bg, v->pen.attr, (uint8_t)w };
	r[v->x] = c;
	if (w == 2) {
		c.cp = 0;
		c.w = 0;
		r[v->x + 1] = c;
	}
	v->last = cp;
	if (v->x + w >= v->cols) {
		v->x = v->cols - 1;
		v->pending = v->autowrap;
	} else {
		v->x += w;
	}
}

/* ---- modes, saving, screens --------------------------------------------------- */

static void save(vt_t *v)
{
	saved_t *s = &v->saved[v->alt];
	s->set = 1;
	s->x = v->x;
	s->y = v->y;
	s->origin = v->origin;
	s->pen = v->pen;
	s->cs[0] = v->cs[0];
	s->cs[1] = v->cs[1];
	s->gl = v->gl;
}

static void restore(vt_t *v)
{
	saved_t *s = &v->saved[v->alt];
	if (!s->set) {
		memset(&v->pen, 0, sizeof v->pen);
		v->origin = v->cs[0] = v->cs[1] = v->gl = 0;
		move_to(v, 0, 0);
		return;
	}
	v->pen = s->pen;
	v->origin = s->origin;
	v->cs[0] = s->cs[0];
	v->cs[1] = s->cs[1];
	v->gl = s->gl;
	/* in origin mode the cursor stays in the region (a snapshot could not
	   put it back outside) */
	v->x = clamp(s->x, 0, v->cols - 1);
	v->y = clamp(s->y, v->origin ? v->top : 0, v->origin ? v->bot : v->rows - 1);
	v->pending = 0;
}

/* The alternate screen is empty each time it is shown, whichever mode
   shows it (47, 1047, 1049), as in xterm.js: nothing drawn on it before
   comes back. */
static void show_alt(vt_t *v, int on)
{
	if (on && !v->alt) {
		v->main_x = v->x;
		v->main_y = v->y;
		v->alt = 1;
		clear_cells(v, v->grid[1], v->rows * v->cols);
	} else if (!on && v->alt) {
		v->alt = 0;
		v->x = v->main_x;
		v->y = v->origin ? clamp(v->main_y, v->top, v->bot) : v->main_y;
		v->pending = 0;
	}
}

static void reset_tabs(vt_t *v)
{
	for (int i = 0; i < v->cols; i++)
		v->tabs[i] = i % 8 == 0 && i > 0;
}

static void full_reset(vt_t *v)
{
	memset(&v->pen, 0, sizeof v->pen);
	v->alt = 0;
	clear_cells(v, v->grid[0], v->rows * v->cols);
	clear_cells(v, v->grid[1], v->rows * v->cols);
	sb_clear(v);
	v->x = v->y = v->pending = v->main_x = v->main_y = 0;
	v->top = 0;
	v->bot = v->rows - 1;
	v->autowrap = v->visible = 1;
	v->origin = v->insert = v->cs[0] = v->cs[1] = v->gl = 0;
	memset(v->saved, 0, sizeof v->saved);
	reset_tabs(v);
}

static void tab(vt_t *v, int n)
{
	while (n-- > 0 && v->x < v->cols - 1) {
		do
			v->x++;
		while (v->x < v->cols - 1 && !v->tabs[v->x]);
	}
	v->pending = 0;
}

static void back_tab(vt_t *v, int n)
{
	while (n-- > 0 && v->x > 0) {
		do
			v->x--;
		while (v->x > 0 && !v->tabs[v->x]);
	}
	v->pending = 0;
}

/* ---- SGR ------------------------------------------------------------------------ */

static int param(const vt_t *v, int i, int def) { return i < v->np && v->p[i] > 0 ? v->p[i] : def; }

/* 38/48/58: a colour from p[i+1...]; returns how many parameters it took */
static int sgr_color(const vt_t *v, int i, uint32_t *out)
{
	int j = i + 1;
	int colon = j < v->np && v->sub[j];
	if (j >= v->np)
		return 0;
	if (v->p[j] == 5 && j + 1 < v->np) {
		*out = VT_PAL | (uint32_t)(v->p[j + 1] & 0xff);
		return 2;
	}
	if (v->p[j] == 2) {
		int k = j + 1, n = 0;
		if (colon)
			while (k + n < v->np && v->sub[k + n])
				n++;
		if (colon && n == 4) /* 38:2:colourspace:r:g:b */
			k++;
		else if (!colon || n >= 3)
			n = 3;
		if (k + 2 >= v->np)
			return v->np - i - 1;
		uint32_t r = (uint32_t)(v->p[k] < 0 ? 0 : v->p[k]) & 0xff;
		uint32_t g = (uint32_t)(v->p[k + 1] < 0 ? 0 : v->p[k + 1]) & 0xff;
		uint32_t b = (uint32_t)(v->p[k + 2] < 0 ? 0 : v->p[k + 2]) & 0xff;
		*out = VT_RGB | r << 16 | g << 8 | b;
		return k + 2 - i;
	}
	return 1;
}

static void sgr(vt_t *v)
{
	if (v->np == 0) {
		memset(&v->pen, 0, sizeof v->pen);
		return;
	}
	for (int i = 0; i < v->np; i++) {
		int a = v->p[i] < 0 ? 0 : v->p[i];
		uint32_t c = 0;
		switch (a) {
		case 0: memset(&v->pen, 0, sizeof v->pen); break;
		case 1: v->pen.attr |= VT_BOLD; break;
		case 2: v->pen.attr |= VT_DIM; break;
		case 3: v->pen.attr |= VT_ITALIC; break;
		case 4: v->pen.attr |= VT_UNDERLINE; break;
		case 5: case 6: v->pen.attr |= VT_BLINK; break;
		case 7: v->pen.attr |= VT_INVERSE; break;
		case 8: v->pen.attr |= VT_HIDDEN; break;
		case 9: v->pen.attr |= VT_STRIKE; break;
		case 21: v->pen.attr |= VT_UNDERLINE; break;
		case 22: v->pen.attr &= ~(VT_BOLD | VT_DIM); break;
		case 23: v->pen.attr &= ~VT_ITALIC; break;
		case 24: v->pen.attr &= ~VT_UNDERLINE; break;
		case 25: v->pen.attr &= ~VT_BLINK; break;
		case 27: v->pen.attr &= ~VT_INVERSE; break;
		case 28: v->pen.attr &= ~VT_HIDDEN; break;
		case 29: v->pen.attr &= ~VT_STRIKE; break;
		case 38: i += sgr_color(v, i, &c); if (c) v->pen.fg = c; break;
		case 39: v->pen.fg = 0; break;
		case 48: i += sgr_color(v, i, &c); if (c) v->pen.bg = c; break;
		case 49: v->pen.bg = 0; break;
		case 58: i += sgr_color(v, i, &c); break; /* underline colour: not kept */
		default:
			if (a >= 30 && a <= 37) v->pen.fg = VT_PAL | (uint32_t)(a - 30);
			else if (a >= 40 && a <= 47) v->pen.bg = VT_PAL | (uint32_t)(a - 40);
			else if (a >= 90 && a <= 97) v->pen.fg = VT_PAL | (uint32_t)(a - 90 + 8);
			else if (a >= 100 && a <= 107) v->pen.bg = VT_PAL | (uint32_t)(a - 100 + 8);
		}
		/* the rest of a colon group belongs to the attribute just read */
		while (i + 1 < v->np && v->sub[i + 1])
			i++;
	}
}

/* ---- CSI -------------------------------------------------------------------------- */

static void mode(vt_t *v, int on)
{
	for (int i = 0; i < v->np; i++) {
		int m = v->p[i];
		if (v->priv == '?') {
			switch (m) {
			case 6: v->origin = on; move_to(v, 0, on ? v->top : 0); break;
			case 7: v->autowrap = on; if (!on) v->pending = 0; break;
			case 25: v->visible = on; break;
			case 47: case 1047: show_alt(v, on); break;
			case 1048: if (on) save(v); else restore(v); break;
			case 1049:
				if (on) { save(v); show_alt(v, 1); }
				else { show_alt(v, 0); restore(v); }
				break;
			}
		} else if (v->priv == 0 && m == 4) {
			v->insert = on;
		}
	}
}

static void csi(vt_t *v, unsigned char f)
{
	int n = param(v, 0, 1);
	vt_cell *r;
	if (v->priv && f != 'h' && f != 'l')
		return; /* private sequences other than modes change nothing drawn */
	if (v->inter)
		return; /* DECSCUSR and the like */
	switch (f) {
	case 'A': move_to(v, v->x, v->y - n < v->top && v->y >= v->top ? v->top : v->y - n); break;
	case 'B': move_to(v, v->x, v->y + n > v->bot && v->y <= v->bot ? v->bot : v->y + n); break;
	case 'C': case 'a': move_to(v, v->x + n, v->y); break;
	case 'D': move_to(v, v->x - n, v->y); break;
	case 'E': move_to(v, 0, v->y + n > v->bot && v->y <= v->bot ? v->bot : v->y + n); break;
	case 'F': move_to(v, 0, v->y - n < v->top && v->y >= v->top ? v->top : v->y - n); break;
	case 'G': case '`': move_to(v, n - 1, v->y); break;
	case 'H': case 'f':
		move_to(v, param(v, 1, 1) - 1, n - 1 + (v->origin ? v->top : 0));
		break;
	case 'd': move_to(v, v->x, n - 1 + (v->origin ? v->top : 0)); break;
	case 'e': move_to(v, v->x, v->y + n); break;
	case 'I': tab(v, n); break;
	case 'Z': back_tab(v, n); break;
	case 'J': {
		int how = v->np ? (v->p[0] < 0 ? 0 : v->p[0]) : 0;
		if (how == 0) {
			erase(v, v->y, v->x, v->cols);
			for (int y = v->y + 1; y < v->rows; y++)
				erase(v, y, 0, v->cols);
		} else if (how == 1) {
			for (int y = 0; y < v->y; y++)
				erase(v, y, 0, v->cols);
			erase(v, v->y, 0, v->x + 1);
		} else if (how == 2) {
			for (int y = 0; y < v->rows; y++)
				erase(v, y, 0, v->cols);
		} else if (how == 3) {
			sb_clear(v);
		}
		v->pending = 0;
		break;
	}
	case 'K': {
		int how = v->np ? (v->p[0] < 0 ? 0 : v->p[0]) : 0;
		if (how == 0) erase(v, v->y, v->x, v->cols);
		else if (how == 1) erase(v, v->y, 0, v->x + 1);
		else if (how == 2) erase(v, v->y, 0, v->cols);
		v->pending = 0;
		break;
	}
	case 'L': case 'M':
		if (v->y < v->top || v->y > v->bot)
			break;
		{
			int top = v->top;
			v->top = v->y;
			if (f == 'L') scroll_down(v, n); else scroll_up(v, n);
			v->top = top;
		}
		v->x = 0;
		v->pending = 0;
		break;
	case '@':
		r = row_of(v, v->y);
		if (n > v->cols - v->x) n = v->cols - v->x;
		split_wide(v, v->x, v->y);
		split_wide(v, v->cols - n, v->y);
		memmove(r + v->x + n, r + v->x, (size_t)(v->cols - v->x - n) * sizeof *r);
		clear_cells(v, r + v->x, n);
		v->pending = 0;
		break;
	case 'P':
		r = row_of(v, v->y);
		if (n > v->cols - v->x) n = v->cols - v->x;
		split_wide(v, v->x, v->y);
		split_wide(v, v->x + n - 1, v->y);
		memmove(r + v->x, r + v->x + n, (size_t)(v->cols - v->x - n) * sizeof *r);
		clear_cells(v, r + v->cols - n, n);
		v->pending = 0;
		break;
	case 'X':
		erase(v, v->y, v->x, v->x + n > v->cols ? v->cols : v->x + n);
		v->pending = 0;
		break;
	case 'S': scroll_up(v, n); break;
	case 'T': if (v->np <= 1) scroll_down(v, n); break;
	case 'b':
		if (v->last)
			for (int i = 0; i < n && i < 65536; i++)
				put(v, v->last);
		break;
	case 'm': sgr(v); break;
	case 'r': {
		int top = param(v, 0, 1) - 1, bot = param(v, 1, v->rows) - 1;
		if (bot > v->rows - 1) bot = v->rows - 1;
		if (top < bot) {
			v->top = top;
			v->bot = bot;
			move_to(v, 0, v->origin ? top : 0);
		}
		break;
	}
	case 's': if (v->np == 0) save(v); break;
	case 'u': restore(v); break;
	case 'h': mode(v, 1); break;
	case 'l': mode(v, 0); break;
	case 'g': {
		int how = v->np ? (v->p[0] < 0 ? 0 : v->p[0]) : 0;
		if (how == 0) v->tabs[v->x] = 0;
		else if (how == 3) memset(v->tabs, 0, (size_t)v->cols);
		break;
	}
	}
}

/* ---- the parser -------------------------------------------------------------------- */

static void control(vt_t *v, unsigned char c)
{
	switch (c) {
	case 8: if (v->x > 0) v->x--; v->pending = 0; break;
	case 9: tab(v, 1); break;
	case 10: case 11: case 12: linefeed(v); break;
	case 13: v->x = 0; v->pending = 0; break;
	case 14: v->gl = 1; break;
	case 15: v->gl = 0; break;
	}
}

static void esc(vt_t *v, unsigned char c)
{
	v->state = GROUND;
	switch (c) {
	case '[': v->state = CSI; v->np = 0; v->priv = v->inter = 0; v->p[0] = -1; v->sub[0] = 0; break;
	case ']': case 'P': case '_': case '^': case 'X': v->state = STR; break;
	case '(': case ')': case '*': case '+': v->state = ESC_CS; v->cs_target = c - '('; break;
	case '#': case '%': case ' ': v->state = ESC_SKIP; break;
	case '7': save(v); break;
	case '8': restore(v); break;
	case 'D': linefeed(v); v->pending = 0; break;
	case 'E': v->x = 0; v->pending = 0; linefeed(v); break;
	case 'H': v->tabs[v->x] = 1; break;
	case 'M':
		v->pending = 0;
		if (v->y == v->top) scroll_down(v, 1);
		else if (v->y > 0) v->y--;
		break;
	case 'c': full_reset(v); break;
	}
}

static void byte(vt_t *v, unsigned char c)
{
	switch (v->state) {
	case GROUND:
		if (c == 0x1b) v->state = ESC;
		else if (c < 0x20) control(v, c);
		else if (c != 0x7f) put(v, c);
		return;
	case ESC:
		if (c == 0x18 || c == 0x1a) v->state = GROUND;
		else if (c == 0x1b) v->state = ESC;
		else if (c < 0x20) control(v, c);
		else esc(v, c);
		return;
	case ESC_CS:
		if (v->cs_target < 2) v->cs[v->cs_target] = c == '0';
		v->state = GROUND;
		return;
	case ESC_SKIP:
		v->state = GROUND;
		return;
	case CSI:
		if (c >= '0' && c <= '9') {
			if (v->np == 0) v->np = 1;
			int *p = &v->p[v->np - 1];
			*p = (*p < 0 ? 0 : *p) > 99999 ? 99999 : (*p < 0 ? 0 : *p) * 10 + (c - '0');
		} else if (c == ';' || c == ':') {
			if (v->np == 0) v->np = 1;
			if (v->np < MAXP) {
				v->p[v->np] = -1;
				v->sub[v->np] = c == ':';
				v->np++;
			}
		} else if (c >= '<' && c <= '?') {
			v->priv = (char)c;
		} else if (c >= 0x20 && c <= 0x2f) {
			v->inter = (char)c;
		} else if (c >= 0x40 && c <= 0x7e) {
			v->state = GROUND;
			csi(v, c);
		} else if (c == 0x1b) {
			v->state = ESC;
		} else if (c == 0x18 || c == 0x1a) {
			v->state = GROUND;
		} else if (c < 0x20) {
			control(v, c);
		}
		return;
	case STR:
		if (c == 7 || c == 0x18 || c == 0x1a) v->state = GROUND;
		else if (c == 0x1b) v->state = STR_ESC;
		return;
	case STR_ESC:
		v->state = c == 0x1b ? STR_ESC : c == '\\' ? GROUND : STR;
		return;
	}
}

void vt_feed(vt_t *v, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (v->uneed) {
			if ((c & 0xc0) == 0x80) {
				v->ucp = v->ucp << 6 | (c & 0x3f);
				if (--v->uneed == 0) {
					uint32_t cp = v->ucp;
					/* an overlong form (E0 80 9B is ESC) is no character: drawn
					   as one, it would be a control in the snapshot */
					if (cp < v->umin || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
					if (v->state == GROUND) put(v, cp);
				}
				continue;
			}
			v->uneed = 0;
			if (v->state == GROUND) put(v, 0xfffd);
		}
		if (c < 0x80) {
			byte(v, c);
		} else if (v->state != GROUND && v->state != STR) {
			/* a high byte inside a sequence ends it */
			v->state = GROUND;
		} else if (c >= 0xc2 && c <= 0xf4) {
			v->uneed = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
			v->ucp = c & (c >= 0xf0 ? 0x07 : c >= 0xe0 ? 0x0f : 0x1f);
			v->umin = c >= 0xf0 ? 0x10000 : c >= 0xe0 ? 0x800 : 0x80;
		} else if (v->state == GROUND) {
			put(v, 0xfffd);
		}
	}
}

/* ---- life -------------------------------------------------------------------------- */

vt_t *vt_new(int cols, int rows, int scrollback)
{
	if (cols < 1 || rows < 1 || cols > 1000 || rows > 1000 || scrollback < 0 || scrollback > 100000) {
		errno = EINVAL;
		return NULL;
	}
	vt_t *v = calloc(1, sizeof *v);
	if (!v)
		return NULL;
	v->cols = cols;
	v->rows = rows;
	v->grid[0] = calloc((size_t)cols * rows, sizeof(vt_cell));
	v->grid[1] = calloc((size_t)cols * rows, sizeof(vt_cell));
	v->tabs = calloc((size_t)cols, 1);
	v->sb_max = scrollback;
	v->sb = scrollback ? calloc((size_t)scrollback, sizeof *v->sb) : NULL;
	if (!v->grid[0] || !v->grid[1] || !v->tabs || (scrollback && !v->sb)) {
		vt_free(v);
		errno = ENOMEM;
		return NULL;
	}
	full_reset(v);
	return v;
}

void vt_free(vt_t *v)
{
	if (!v)
		return;
	if (v->sb)
		sb_clear(v);
	free(v->sb);
	free(v->grid[0]);
	free(v->grid[1]);
	free(v->tabs);
	free(v);
}

int vt_resize(vt_t *v, int cols, int rows)
{
	if (cols < 1 || rows < 1 || cols > 1000 || rows > 1000) {
		errno = EINVAL;
		return -1;
	}
	if (cols == v->cols && rows == v->rows)
		return 0;
	vt_cell *g[2];
	uint8_t *tabs = calloc((size_t)cols, 1);
	g[0] = calloc((size_t)cols * rows, sizeof(vt_cell));
	g[1] = calloc((size_t)cols * rows, sizeof(vt_cell));
	if (!tabs || !g[0] || !g[1]) {
		free(tabs);
		free(g[0]);
		free(g[1]);
		errno = ENOMEM;
		return -1;
	}
	/* fewer rows: the top lines above the cursor go to scrollback, as
	   xterm.js does, so the cursor's line stays on screen */
	int shown = v->alt;
	int cy[2] = { shown ? v->main_y : v->y, shown ? v->y : v->main_y };
	int drop[2] = { 0, 0 };
	for (int s = 0; s < 2; s++) {
		drop[s] = cy[s] - (rows - 1);
		if (drop[s] < 0) drop[s] = 0;
		if (s == 0)
			for (int i = 0; i < drop[0]; i++)
				sb_push(v, v->grid[0] + (size_t)i * v->cols);
		for (int y = 0; y < rows && y + drop[s] < v->rows; y++) {
			vt_cell *to = g[s] + (size_t)y * cols, *from = v->grid[s] + (size_t)(y + drop[s]) * v->cols;
			int n = cols < v->cols ? cols : v->cols;
			memcpy(to, from, (size_t)n * sizeof *to);
			if (n > 0 && to[n - 1].w == 2) { /* a wide character cut at the new edge */
				to[n - 1].cp = 0;
				to[n - 1].w = 1;
			}
		}
		/* the rest is blank (calloc gives cp 0, w 0: make them w 1) */
		for (size_t i = 0; i < (size_t)cols * rows; i++)
			if (g[s][i].cp == 0 && g[s][i].w == 0 && (i % cols == 0 || g[s][i - 1].w != 2))
				g[s][i].w = 1;
	}
	free(v->grid[0]);
	free(v->grid[1]);
	free(v->tabs);
	v->grid[0] = g[0];
	v->grid[1] = g[1];
	v->tabs = tabs;
	v->cols = cols;
	v->rows = rows;
	reset_tabs(v);
	int x = v->x, mx = v->main_x;
	if (shown) {
		v->y = clamp(cy[1] - drop[1], 0, rows - 1);
		v->main_y = clamp(cy[0] - drop[0], 0, rows - 1);
	} else {
		v->y = clamp(cy[0] - drop[0], 0, rows - 1);
		v->main_y = clamp(cy[1] - drop[1], 0, rows - 1);
	}
	v->x = clamp(x, 0, cols - 1);
	v->main_x = clamp(mx, 0, cols - 1);
	v->pending = 0;
	v->top = 0;
	v->bot = rows - 1;
	for (int s = 0; s < 2; s++) {
		v->saved[s].x = clamp(v->saved[s].x, 0, cols - 1);
		v->saved[s].y = clamp(v->saved[s].y, 0, rows - 1);
	}
	return 0;
}
