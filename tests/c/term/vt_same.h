/* vt_same.h — whether two screen models show the same thing: what the
   round trip through vt_snapshot must keep (tests/c/test_vt.c and the
   fuzzer tests/fuzz/vt.c). A blank cell and a space look alike, and so do
   the attributes of a space that draw nothing. */
#ifndef VT_SAME_H
#define VT_SAME_H
#include <stdio.h>

#include "vt_impl.h"

static int vt_cell_same(const vt_cell *a, const vt_cell *b)
{
	uint32_t ca = a->cp ? a->cp : ' ', cb = b->cp ? b->cp : ' ';
	int blank_a = ca == ' ' && !a->comb && a->w == 1, blank_b = cb == ' ' && !b->comb && b->w == 1;
	uint16_t shown = VT_INVERSE | VT_UNDERLINE | VT_STRIKE;
	if (blank_a && blank_b)
		return a->bg == b->bg && (a->attr & shown) == (b->attr & shown) &&
		       (!(a->attr & VT_INVERSE) || a->fg == b->fg);
	if (a->w == 0 && b->w == 0)
		return 1;
	return ca == cb && a->comb == b->comb && a->fg == b->fg && a->bg == b->bg &&
	       a->attr == b->attr && a->w == b->w;
}

static const vt_cell vt_nothing = { 0, 0, 0, 0, 0, 1 };

static int vt_line_same(const vt_cell *a, int na, const vt_cell *b, int nb, int cols)
{
	for (int x = 0; x < cols; x++) {
		/* a wide character cut by the edge (a line kept from a wider screen) is not drawn */
		const vt_cell *p = x < na && !(a[x].w == 2 && x + 1 >= cols) ? &a[x] : &vt_nothing;
		const vt_cell *q = x < nb && !(b[x].w == 2 && x + 1 >= cols) ? &b[x] : &vt_nothing;
		if (!vt_cell_same(p, q))
			return 0;
	}
	return 1;
}

/* 1 when a and b look the same (and the last `lines` lines of scrollback);
   else 0 with what differs in why */
static int vt_same(const vt_t *a, const vt_t *b, int lines, char *why, size_t size)
{
#define DIFF(...) do { snprintf(why, size, __VA_ARGS__); return 0; } while (0)
	if (a->cols != b->cols || a->rows != b->rows) DIFF("size");
	for (int s = 0; s <= a->alt; s++) /* the alternate screen is cleared each time it is shown */
		for (int y = 0; y < a->rows; y++)
			if (!vt_line_same(a->grid[s] + (size_t)y * a->cols, a->cols, b->grid[s] + (size_t)y * b->cols, b->cols, a->cols))
				DIFF("screen %d row %d", s, y);
	if (a->alt != b->alt) DIFF("alt %d/%d", a->alt, b->alt);
	if (a->x != b->x || a->y != b->y) DIFF("cursor %d,%d / %d,%d", a->x, a->y, b->x, b->y);
	if (a->pending != b->pending) DIFF("pending wrap %d/%d", a->pending, b->pending);
	if (a->alt && (a->main_x != b->main_x || a->main_y != b->main_y)) DIFF("main cursor");
	if (a->pen.fg != b->pen.fg || a->pen.bg != b->pen.bg || a->pen.attr != b->pen.attr) DIFF("pen");
	if (a->top != b->top || a->bot != b->bot) DIFF("region %d-%d / %d-%d", a->top, a->bot, b->top, b->bot);
	if (a->autowrap != b->autowrap || a->visible != b->visible || a->origin != b->origin || a->insert != b->insert)
		DIFF("modes");
	if (a->cs[0] != b->cs[0] || a->cs[1] != b->cs[1] || a->gl != b->gl) DIFF("charsets");
	for (int s = 0; s < 2; s++) {
		const saved_t *p = &a->saved[s], *q = &b->saved[s];
		if (p->set != q->set) DIFF("saved %d set", s);
		if (p->set && (p->x != q->x || p->y != q->y || p->origin != q->origin || p->pen.fg != q->pen.fg ||
		               p->pen.bg != q->pen.bg || p->pen.attr != q->pen.attr || p->cs[0] != q->cs[0] ||
		               p->cs[1] != q->cs[1] || p->gl != q->gl))
			DIFF("saved %d", s);
	}
	int k = lines < a->sb_n ? lines : a->sb_n;
	if (b->sb_n < k) DIFF("scrollback %d < %d", b->sb_n, k);
	for (int i = 0; i < k; i++) {
		const sbline *p = &a->sb[(a->sb_head + a->sb_n - 1 - i) % a->sb_max];
		const sbline *q = &b->sb[(b->sb_head + b->sb_n - 1 - i) % b->sb_max];
		if (!vt_line_same(p->c, p->n, q->c, q->n, a->cols)) DIFF("scrollback line -%d", i + 1);
	}
	return 1;
#undef DIFF
}

/* feeds a to a fresh screen of its size through its snapshot */
static int vt_round_trip(const vt_t *a, int lines, char *why, size_t size)
{
	buf_t snap = { 0 };
	if (vt_snapshot(a, &snap, lines) < 0) { snprintf(why, size, "snapshot failed"); return 0; }
	vt_t *b = vt_new(a->cols, a->rows, lines > 0 ? lines + a->rows : 0);
	if (!b) { buf_free(&snap); snprintf(why, size, "vt_new failed"); return 0; }
	vt_feed(b, snap.p, snap.len);
	int same = vt_same(a, b, lines, why, size);
	vt_free(b);
	buf_free(&snap);
	return same;
}
#endif
