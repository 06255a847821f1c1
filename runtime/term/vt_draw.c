/*
** vt_draw.c — the screen model drawn back out (vt.h): the snapshot a
** replay starts from, the screen's text, and procy.vt for Lua.
*/
#include "vt_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

typedef struct out {
	buf_t *b;
	int    err;
	pen_t  pen;  /* the pen the terminal being drawn has */
} out_t;

static void put_bytes(out_t *o, const void *p, size_t n)
{
	if (!o->err && buf_add(o->b, p, n) < 0)
		o->err = 1;
}

static void put_str(out_t *o, const char *s) { put_bytes(o, s, strlen(s)); }

static void put_fmt(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(out_t *o, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		put_bytes(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_utf8(out_t *o, uint32_t cp)
{
	char s[4];
	size_t n;
	if (cp < 0x80) { s[0] = (char)cp; n = 1; }
	else if (cp < 0x800) { s[0] = (char)(0xc0 | cp >> 6); s[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
	else if (cp < 0x10000) {
		s[0] = (char)(0xe0 | cp >> 12); s[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		s[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
	} else {
		s[0] = (char)(0xf0 | cp >> 18); s[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		s[2] = (char)(0x80 | (cp >> 6 & 0x3f)); s[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
	}
	put_bytes(o, s, n);
}

static void put_color(out_t *o, uint32_t c, int base)
{
	uint32_t n = c & 0xffffff;
	if (c & VT_RGB)
		put_fmt(o, ";%d;2;%u;%u;%u", base + 8, n >> 16, n >> 8 & 0xff, n & 0xff);
	else if (n < 8)
		put_fmt(o, ";%u", base + n);
	else if (n < 16)
		put_fmt(o, ";%u", base + 60 + n - 8);
	else
		put_fmt(o, ";%d;5;%u", base + 8, n);
}

static void set_pen(out_t *o, uint32_t fg, uint32_t bg, uint16_t attr, int force)
{
	if (!force && o->pen.fg == fg && o->pen.bg == bg && o->pen.attr == attr)
		return;
	static const char codes[] = { 1, 2, 3, 4, 5, 7, 8, 9 };
	put_str(o, "\x1b[0");
	for (int i = 0; i < 8; i++)
		if (attr & (1 << i))
			put_fmt(o, ";%d", codes[i]);
	if (fg)
		put_color(o, fg, 30);
	if (bg)
		put_color(o, bg, 40);
	put_str(o, "m");
	o->pen.fg = fg;
	o->pen.bg = bg;
	o->pen.attr = attr;
}

/* a cell that looks like nothing at the end of a line need not be drawn */
static int invisible(const vt_cell *c)
{
	return (c->cp == 0 || c->cp == ' ') && !c->comb && c->bg == 0 &&
	       !(c->attr & (VT_INVERSE | VT_UNDERLINE | VT_STRIKE)) && c->w == 1;
}

static void put_cell(out_t *o, const vt_cell *c)
{
	set_pen(o, c->fg, c->bg, c->attr, 0);
	put_utf8(o, c->cp ? c->cp : ' ');
	if (c->comb)
		put_utf8(o, c->comb);
}

static void put_row(out_t *o, const vt_cell *c, int n, int cols)
{
	if (n > cols)
		n = cols;
	while (n > 0 && invisible(&c[n - 1]))
		n--;
	for (int x = 0; x < n; x++) {
		if (c[x].w == 0)
			continue; /* the right half of a wide character, drawn with it */
		if (x + c[x].w > cols)
			break;    /* a line kept from a wider screen: what does not fit */
		put_cell(o, &c[x]);
		if (c[x].cp && vt_doubtful(c[x].cp, c[x].w) && x + c[x].w < cols)
			put_fmt(o, "\x1b[%dG", x + c[x].w + 1);
	}
}

static int row_blank(const vt_cell *c, int n)
{
	for (int x = 0; x < n; x++)
		if (!invisible(&c[x]))
			return 0;
	return 1;
}

static void put_grid(out_t *o, const vt_t *v, const vt_cell *g)
{
	for (int y = 0; y < v->rows; y++) {
		const vt_cell *r = g + (size_t)y * v->cols;
		if (row_blank(r, v->cols))
			continue;
		put_fmt(o, "\x1b[%d;1H", y + 1);
		put_row(o, r, v->cols, v->cols);
	}
}

static void put_charsets(out_t *o, const int cs[2], int gl)
{
	if (cs[0]) put_str(o, "\x1b(0");
	if (cs[1]) put_str(o, "\x1b)0");
	if (gl) put_str(o, "\x0e");
}

/* DECSC's slot of the screen being drawn, filled by saving for real */
static void put_saved(out_t *o, const saved_t *s)
{
	static const int none[2] = { 0, 0 };
	if (!s->set)
		return;
	if (s->origin)
		put_str(o, "\x1b[?6h");
	put_fmt(o, "\x1b[%d;%dH", s->y + 1, s->x + 1);
	set_pen(o, s->pen.fg, s->pen.bg, s->pen.attr, 0);
	put_charsets(o, s->cs, s->gl);
	put_str(o, "\x1b" "7");
	if (s->origin)
		put_str(o, "\x1b[?6l");
	if (s->cs[0] || s->cs[1] || s->gl)
		put_str(o, "\x1b(B\x1b)B\x0f");
	(void)none;
}

int vt_snapshot(const vt_t *v, buf_t *b, int lines)
{
	out_t o = { b, 0, { 0, 0, 0 } };
	put_str(&o, "\x1b[0m");
	int k = lines < v->sb_n ? lines : v->sb_n;
	if (k < 0)
		k = 0;
	/* scrollback: written as lines, then pushed off the screen */
	for (int i = v->sb_n - k; i < v->sb_n; i++) {
		const sbline *l = &v->sb[(v->sb_head + i) % v->sb_max];
		put_row(&o, l->c, l->n, v->cols);
		set_pen(&o, 0, 0, 0, 0);
		put_str(&o, "\r\n");
	}
	for (int i = 0; k > 0 && i < v->rows - 1; i++)
		put_str(&o, "\n");
	put_grid(&o, v, v->grid[0]);
	put_saved(&o, &v->saved[0]);
	if (v->alt) {
		put_fmt(&o, "\x1b[%d;%dH", v->main_y + 1, v->main_x + 1);
		set_pen(&o, 0, 0, 0, 0);
		put_str(&o, "\x1b[?47h");
		put_grid(&o, v, v->grid[1]);
		put_saved(&o, &v->saved[1]);
	} else if (v->saved[1].set) {
		/* the alternate screen's saved cursor, saved there */
		put_str(&o, "\x1b[?47h");
		put_saved(&o, &v->saved[1]);
		put_str(&o, "\x1b[?47l");
	}
	if (v->top != 0 || v->bot != v->rows - 1)
		put_fmt(&o, "\x1b[%d;%dr", v->top + 1, v->bot + 1);
	if (v->origin)
		put_str(&o, "\x1b[?6h");
	int oy = v->origin ? v->top : 0;
	if (v->pending) {
		/* the character in the last column is drawn again: the terminal then
		   waits to wrap, as this one does */
		const vt_cell *r = v->grid[v->alt] + (size_t)v->y * v->cols;
		int x = v->cols - 1;
		if (r[x].w == 0 && x > 0)
			x--;
		put_fmt(&o, "\x1b[%d;%dH", v->y - oy + 1, x + 1);
		put_cell(&o, &r[x]);
	} else {
		put_fmt(&o, "\x1b[%d;%dH", v->y - oy + 1, v->x + 1);
	}
	set_pen(&o, v->pen.fg, v->pen.bg, v->pen.attr, 1);
	if (!v->autowrap)
		put_str(&o, "\x1b[?7l");
	if (v->insert)
		put_str(&o, "\x1b[4h");
	put_charsets(&o, v->cs, v->gl);
	if (!v->visible)
		put_str(&o, "\x1b[?25l");
	if (o.err) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int vt_text(const vt_t *v, buf_t *b)
{
	out_t o = { b, 0, { 0, 0, 0 } };
	size_t keep = b->len; /* where the text ends, trailing blank rows left out */
	for (int y = 0; y < v->rows; y++) {
		const vt_cell *r = v->grid[v->alt] + (size_t)y * v->cols;
		int n = v->cols;
		while (n > 0 && (r[n - 1].cp == 0 || r[n - 1].cp == ' ') && !r[n - 1].comb)
			n--;
		if (y > 0)
			put_str(&o, "\n");
		for (int x = 0; x < n; x++) {
			if (r[x].w == 0)
				continue;
			put_utf8(&o, r[x].cp ? r[x].cp : ' ');
			if (r[x].comb)
				put_utf8(&o, r[x].comb);
		}
		if (n)
			keep = b->len;
	}
	if (o.err) {
		errno = ENOMEM;
		return -1;
	}
	b->len = keep;
	return 0;
}

void vt_size(const vt_t *v, int *cols, int *rows) { *cols = v->cols; *rows = v->rows; }

const vt_cell *vt_cell_at(const vt_t *v, int x, int y)
{
	if (x < 0 || y < 0 || x >= v->cols || y >= v->rows)
		return NULL;
	return v->grid[v->alt] + (size_t)y * v->cols + x;
}

void vt_cursor(const vt_t *v, int *x, int *y, int *visible)
{
	*x = v->x;
	*y = v->y;
	*visible = v->visible;
}

int vt_alt(const vt_t *v) { return v->alt; }
int vt_scrollback(const vt_t *v) { return v->sb_n; }


int vt_strip(const void *p, size_t n, buf_t *b)
{
	const unsigned char *s = p;
	enum { TEXT, ESC_, CSI_, STR_, STR_ESC_, SKIP_ } st = TEXT;
	char last = '\n'; /* what was put last: no blank after a blank */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		char put = 0;
		switch (st) {
		case TEXT:
			if (c == 0x1b) st = ESC_;
			else if (c == '\r' || c == '\n') put = '\n';
			else if (c == '\t') put = ' ';
			else if (c >= 0x20 && c != 0x7f) {
				if (buf_add(b, &s[i], 1) < 0) return -1;
				last = (char)c;
			}
			break;
		case ESC_:
			st = c == '[' ? CSI_ : c == ']' || c == 'P' || c == '_' || c == '^' || c == 'X' ? STR_
			   : c == '(' || c == ')' || c == '*' || c == '+' || c == '#' || c == '%' || c == ' ' ? SKIP_ : TEXT;
			break;
		case CSI_:
			if (c >= 0x40 && c <= 0x7e) {
				st = TEXT;
				if (strchr("ABCDEFGHIJKLMPSTXZadefr`", c)) put = ' '; /* the cursor moved: a word ended */
			} else if (c == 0x1b) st = ESC_;
			break;
		case STR_:
			if (c == 7) st = TEXT;
			else if (c == 0x1b) st = STR_ESC_;
			break;
		case STR_ESC_: st = c == '\\' ? TEXT : c == 0x1b ? STR_ESC_ : STR_; break;
		case SKIP_: st = TEXT; break;
		}
		if (put && last != ' ' && last != '\n') {
			if (buf_add(b, &put, 1) < 0) return -1;
			last = put;
		} else if (put == '\n' && last == ' ') {
			b->p[b->len - 1] = '\n';
			last = '\n';
		}
	}
	return 0;
}

/* ---- procy.vt ------------------------------------------------------------------------- */

#define VT_MT "procy.vt"

static vt_t **check(lua_State *L)
{
	vt_t **u = luaL_checkudata(L, 1, VT_MT);
	if (!*u)
		luaL_error(L, "the screen is closed");
	return u;
}

static int l_new(lua_State *L)
{
	int cols = (int)luaL_checkinteger(L, 1), rows = (int)luaL_checkinteger(L, 2);
	int sb = (int)luaL_optinteger(L, 3, 0);
	vt_t **u = lua_newuserdatauv(L, sizeof *u, 0);
	*u = NULL;
	luaL_setmetatable(L, VT_MT);
	if (!(*u = vt_new(cols, rows, sb)))
		return procy_fail_errno(L, errno, "vt.new");
	return 1;
}

static int l_feed(lua_State *L)
{
	vt_t **u = check(L);
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	vt_feed(*u, s, n);
	return 0;
}

static int l_resize(lua_State *L)
{
	vt_t **u = check(L);
	if (vt_resize(*u, (int)luaL_checkinteger(L, 2), (int)luaL_checkinteger(L, 3)) < 0)
		return procy_fail_errno(L, errno, "vt resize");
	lua_pushboolean(L, 1);
	return 1;
}

static int drawn(lua_State *L, int (*fn)(const vt_t *, buf_t *, int), int lines)
{
	vt_t **u = check(L);
	buf_t *b = buf_push(L);
	if (fn(*u, b, lines) < 0)
		return procy_fail_errno(L, errno, "vt");
	lua_pushlstring(L, b->p ? b->p : "", b->len);
	return 1;
}

static int text_of(const vt_t *v, buf_t *b, int unused) { (void)unused; return vt_text(v, b); }

static int l_snapshot(lua_State *L)
{
	return drawn(L, vt_snapshot, (int)luaL_optinteger(L, 2, 0));
}

static int l_text(lua_State *L) { return drawn(L, text_of, 0); }

static int l_strip(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	buf_t *b = buf_push(L);
	if (vt_strip(s, n, b) < 0)
		return procy_fail_errno(L, errno, "vt.strip");
	lua_pushlstring(L, b->p ? b->p : "", b->len);
	return 1;
}

static int l_size(lua_State *L)
{
	vt_t **u = check(L);
	lua_pushinteger(L, (*u)->cols);
	lua_pushinteger(L, (*u)->rows);
	return 2;
}

static int l_cursor(lua_State *L)
{
	vt_t **u = check(L);
	lua_pushinteger(L, (*u)->x + 1);
	lua_pushinteger(L, (*u)->y + 1);
	lua_pushboolean(L, (*u)->visible);
	lua_pushboolean(L, (*u)->alt);
	return 4;
}

static int l_close(lua_State *L)
{
	vt_t **u = luaL_checkudata(L, 1, VT_MT);
	vt_free(*u);
	*u = NULL;
	return 0;
}

int luaopen_procy_vt(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "feed", l_feed }, { "resize", l_resize }, { "snapshot", l_snapshot },
		{ "text", l_text }, { "size", l_size }, { "cursor", l_cursor }, { "close", l_close },
		{ NULL, NULL }
	};
	static const luaL_Reg funcs[] = { { "new", l_new }, { "strip", l_strip }, { NULL, NULL } };
	procy_class(L, VT_MT, methods, l_close, NULL);
	luaL_newlib(L, funcs);
	return 1;
}
