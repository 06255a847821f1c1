/*
** term.c — see term.h. Nothing here reads or writes a file descriptor:
** every function takes bytes and state and gives state and bytes back.
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term.h"

/* ---- the typed line ---------------------------------------------------------- */

enum { T_GROUND, T_ESC, T_CSI, T_SS3, T_STRING, T_STRING_ESC };

void track_reset(tracker_t *t)
{
	t->len = t->typed = 0;
	t->dirty = 0;
}

int track_at_line_start(const tracker_t *t)
{
	return t->state == T_GROUND && !t->paste && !t->dirty && t->typed == 0;
}

static void line_add(tracker_t *t, unsigned char c)
{
	if ((c & 0xc0) != 0x80)
		t->typed++;
	if (t->len < LINE_MAX_BYTES)
		t->line[t->len++] = (char)c;
}

static void line_backspace(tracker_t *t)
{
	if (t->typed > 0)
		t->typed--;
	while (t->len > 0 && (t->line[--t->len] & 0xc0) == 0x80)
		; /* drop a whole UTF-8 character */
}

static void line_delete_word(tracker_t *t)
{
	while (t->len > 0 && t->line[t->len - 1] == ' ')
		line_backspace(t);
	while (t->len > 0 && t->line[t->len - 1] != ' ')
		line_backspace(t);
	if (t->len == 0)
		t->typed = 0;
}

void track_esc_alone(tracker_t *t)
{
	if (t->state == T_ESC)
		t->state = T_GROUND; /* the Esc key: the line is where it was */
}

int track_byte(tracker_t *t, unsigned char c)
{
	if (t->submitted) { /* the line given with TRACK_SUBMIT has been read */
		t->submitted = 0;
		t->len = 0;
	}
	switch (t->state) {
	case T_ESC:
		t->state = c == '[' ? T_CSI : c == 'O' ? T_SS3
		         : (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') ? T_STRING
		         : T_GROUND;
		t->ncsi = 0;
		return TRACK_NONE;
	case T_CSI:
		if (c >= 0x40 && c <= 0x7e) { /* final byte */
			t->state = T_GROUND;
			t->csi[t->ncsi] = 0;
			if (c == '~' && strcmp(t->csi, "200") == 0)
				t->paste = 1;
			else if (c == '~' && strcmp(t->csi, "201") == 0)
				t->paste = 0;
			else if (!t->paste && (strchr("ABCDHFZ", c) ||
			                       (c == '~' && t->ncsi && strchr("123478", t->csi[0]))))
				t->dirty = 1; /* arrows, history, Home, Delete...: the line is unknown now */
			/* anything else is a terminal's reply (device attributes,
			   focus, cursor reports) and leaves the line alone */
		} else if (t->ncsi < (int)sizeof t->csi - 1) {
			t->csi[t->ncsi++] = (char)c;
		}
		return TRACK_NONE;
	case T_SS3:
		t->state = T_GROUND;
		t->dirty = 1;
		return TRACK_NONE;
	case T_STRING:
		if (c == 0x07)
			t->state = T_GROUND;
		else if (c == 0x1b)
			t->state = T_STRING_ESC;
		return TRACK_NONE;
	case T_STRING_ESC:
		t->state = c == '\\' ? T_GROUND : T_STRING;
		return TRACK_NONE;
	}
	/* ground */
	if (c == 0x1b) {
		t->state = T_ESC;
		return TRACK_NONE;
	}
	if (t->paste) {
		line_add(t, c == '\r' ? '\n' : c);
		return TRACK_NONE;
	}
	switch (c) {
	case '\r':
	case '\n': {
		int submit = t->len > 0 && !t->dirty;
		t->typed = 0;
		t->dirty = 0;
		if (!submit) {
			t->len = 0;
			return TRACK_NONE;
		}
		t->submitted = 1;
		return TRACK_SUBMIT;
	}
	case 0x7f:
	case 0x08:
		line_backspace(t);
		return TRACK_NONE;
	case 0x15: /* Ctrl-U */
	case 0x03: /* Ctrl-C: agents and shells drop the line */
		track_reset(t);
		return TRACK_NONE;
	case 0x17: /* Ctrl-W */
		line_delete_word(t);
		return TRACK_NONE;
	default:
		if (c < 0x20)
			t->dirty = 1; /* Ctrl-A, Tab completion...: content unknown */
		else
			line_add(t, c);
		return TRACK_NONE;
	}
}

/* ---- keys ---------------------------------------------------------------------- */

static size_t utf8_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf8 ? 4 : 1;
}

size_t key_parse(const unsigned char *p, size_t n, term_key *k)
{
	memset(k, 0, sizeof *k);
	if (n == 0)
		return 0;
	unsigned char c = p[0];
	if (c == 0x1b) {
		if (n == 1) {
			k->type = KEY_ESC;
			return 1;
		}
		if (p[1] == 'O') {
			if (n < 3)
				return 0;
			static const char ss3[] = "ABCDHF";
			static const int types[] = { KEY_UP, KEY_DOWN, KEY_RIGHT, KEY_LEFT, KEY_HOME, KEY_END };
			const char *hit = memchr(ss3, p[2], 6);
			k->type = hit ? types[hit - ss3] : KEY_OTHER;
			return 3;
		}
		if (p[1] != '[') {
			k->type = KEY_OTHER; /* Alt+key */
			return p[1] == 0x1b ? 1 : 2;
		}
		size_t i = 2;
		while (i < n && !(p[i] >= 0x40 && p[i] <= 0x7e))
			i++;
		if (i == n)
			return i > 32 ? (k->type = KEY_OTHER, n) : 0;
		char params[32] = "";
		size_t plen = i - 2 < sizeof params - 1 ? i - 2 : sizeof params - 1;
		memcpy(params, p + 2, plen);
		switch (p[i]) {
		case 'A': k->type = KEY_UP; break;
		case 'B': k->type = KEY_DOWN; break;
		case 'C': k->type = KEY_RIGHT; break;
		case 'D': k->type = KEY_LEFT; break;
		case 'H': k->type = KEY_HOME; break;
		case 'F': k->type = KEY_END; break;
		case '~': {
			int code = atoi(params);
			k->type = code == 1 || code == 7 ? KEY_HOME : code == 4 || code == 8 ? KEY_END
			        : code == 3 ? KEY_DELETE : code == 5 ? KEY_PGUP : code == 6 ? KEY_PGDN
			        : code == 200 ? KEY_PASTE_START : code == 201 ? KEY_PASTE_END : KEY_OTHER;
			break;
		}
		default: k->type = KEY_OTHER;
		}
		return i + 1;
	}
	if (c == '\r' || c == '\n') {
		k->type = KEY_ENTER;
		k->ch[0] = c;
		k->len = 1;
		return 1;
	}
	if (c == 0x7f || c == 0x08) {
		k->type = KEY_BACKSPACE;
		return 1;
	}
	if (c < 0x20) {
		k->type = KEY_CTRL;
		k->ch[0] = (unsigned char)(c + '@'); /* 0x01 -> 'A' */
		k->len = 1;
		return 1;
	}
	size_t len = utf8_len(c);
	if (len > n)
		return 0;
	k->type = KEY_CHAR;
	memcpy(k->ch, p, len);
	k->len = len;
	return len;
}

/* ---- the command-line editor ------------------------------------------------------ */

void editor_clear(editor_t *e)
{
	e->len = e->cur = 0;
	e->paste = 0;
}

static size_t prev_char(const editor_t *e, size_t i)
{
	while (i > 0 && (e->text[--i] & 0xc0) == 0x80)
		;
	return i;
}

static size_t next_char(const editor_t *e, size_t i)
{
	if (i >= e->len)
		return e->len;
	i++;
	while (i < e->len && (e->text[i] & 0xc0) == 0x80)
		i++;
	return i;
}

static void erase(editor_t *e, size_t from, size_t to)
{
	memmove(e->text + from, e->text + to, e->len - to);
	e->len -= to - from;
	e->cur = from;
}

static void insert(editor_t *e, const unsigned char *p, size_t n)
{
	if (e->len + n > EDIT_MAX_BYTES)
		return;
	memmove(e->text + e->cur + n, e->text + e->cur, e->len - e->cur);
	memcpy(e->text + e->cur, p, n);
	e->len += n;
	e->cur += n;
}

int editor_key(editor_t *e, const term_key *k)
{
	if (e->paste) { /* pasted text is inserted as it is, newlines as spaces */
		if (k->type == KEY_PASTE_END)
			e->paste = 0;
		else if (k->type == KEY_CHAR)
			insert(e, k->ch, k->len);
		else if (k->type == KEY_ENTER || k->type == KEY_CTRL)
			insert(e, (const unsigned char *)" ", 1);
		return EDIT_KEEP;
	}
	switch (k->type) {
	case KEY_CHAR:
		if (e->len == 0 && k->len == 1 && k->ch[0] == '!')
			return EDIT_LITERAL; /* "!!" types one "!" for the agent */
		insert(e, k->ch, k->len);
		return EDIT_KEEP;
	case KEY_ENTER:
		return EDIT_SUBMIT;
	case KEY_ESC:
		return EDIT_CANCEL;
	case KEY_BACKSPACE:
		if (e->len == 0)
			return EDIT_CANCEL;
		if (e->cur > 0)
			erase(e, prev_char(e, e->cur), e->cur);
		return EDIT_KEEP;
	case KEY_DELETE:
		if (e->cur < e->len)
			erase(e, e->cur, next_char(e, e->cur));
		return EDIT_KEEP;
	case KEY_LEFT:
		e->cur = prev_char(e, e->cur);
		return EDIT_KEEP;
	case KEY_RIGHT:
		e->cur = next_char(e, e->cur);
		return EDIT_KEEP;
	case KEY_HOME:
		e->cur = 0;
		return EDIT_KEEP;
	case KEY_END:
		e->cur = e->len;
		return EDIT_KEEP;
	case KEY_PASTE_START:
		e->paste = 1;
		return EDIT_KEEP;
	case KEY_CTRL:
		switch (k->ch[0]) {
		case 'C':
			return EDIT_CANCEL;
		case 'A':
			e->cur = 0;
			break;
		case 'E':
			e->cur = e->len;
			break;
		case 'B':
			e->cur = prev_char(e, e->cur);
			break;
		case 'F':
			e->cur = next_char(e, e->cur);
			break;
		case 'U':
			erase(e, 0, e->cur);
			break;
		case 'K':
			e->len = e->cur;
			break;
		case 'W': {
			size_t i = e->cur;
			while (i > 0 && e->text[i - 1] == ' ')
				i--;
			while (i > 0 && e->text[i - 1] != ' ')
				i--;
			erase(e, i, e->cur);
			break;
		}
		}
		return EDIT_KEEP;
	default:
		return EDIT_KEEP;
	}
}

/* ---- the agent's screen ----------------------------------------------------------- */

enum { S_GROUND, S_ESC, S_CSI, S_OSC, S_OSC_ESC };

static const int mouse_modes[] = { 1000, 1002, 1003, 1005, 1006, 1015 };

static void screen_mode(screen_t *s, int set)
{
	for (int i = 0; i < s->nparams; i++) {
		int m = s->params[i];
		if (m == 1049 || m == 1047 || m == 47)
			s->alt = set, s->repaints++;
		else if (m == 25)
			s->cursor_hidden = !set;
		else if (m == 2004)
			s->paste = set;
		else if (m == 1004)
			s->focus = set;
		for (int b = 0; b < 6; b++)
			if (m == mouse_modes[b])
				s->mouse = set ? s->mouse | 1 << b : s->mouse & ~(1 << b);
	}
}

static void screen_csi(screen_t *s, unsigned char final)
{
	if (s->prefix == '?' && (final == 'h' || final == 'l'))
		screen_mode(s, final == 'h');
	else if (s->prefix == '>' && final == 'u')
		s->kitty++;
	else if (s->prefix == '<' && final == 'u')
		s->kitty -= s->kitty > 0;
	else if (s->prefix == '>' && final == 'm' && s->nparams >= 1 && s->params[0] == 4)
		s->modkeys = s->nparams >= 2 && s->params[1] > 0;
	else if (s->prefix == 0 && final == 'm')
		s->sgr = !(s->nparams == 1 && s->params[0] == 0); /* CSI m and CSI 0 m reset */
	else if (s->prefix == 0 && (final == 'J' || final == 'r'))
		s->repaints++; /* erase in display, scroll region */
}

/* An OSC string ended: "0;TITLE" or "2;TITLE" sets the window title. */
static void osc_end(screen_t *s)
{
	if (s->osclen >= 2 && (s->osc[0] == '0' || s->osc[0] == '2') && s->osc[1] == ';') {
		int n = s->osclen - 2 < (int)sizeof s->title - 1 ? s->osclen - 2 : (int)sizeof s->title - 1;
		memcpy(s->title, s->osc + 2, (size_t)n);
		s->title[n] = 0;
		s->titles++;
	}
	s->osclen = 0;
}

void screen_scan(screen_t *s, const unsigned char *p, size_t n)
{
	const unsigned char *start = p, *end = p + n;
	uint64_t base = s->scanned;
	s->scanned += n;
#define AT(q) (base + (uint64_t)((q) - start))
	while (p < end) {
		if (s->state == S_GROUND) {
			p = memchr(p, 0x1b, (size_t)(end - p)); /* most bytes are text */
			if (!p)
				return;
			s->state = S_ESC;
			s->seq_at = AT(p);
			p++;
			continue;
		}
		unsigned char c = *p++;
		if (s->state == S_ESC) {
			s->repaints += c == 'c'; /* a full reset */
			s->state = c == '[' ? S_CSI : c == ']' ? S_OSC : S_GROUND;
			s->prefix = s->num = s->nparams = s->osclen = 0;
			continue;
		}
		if (s->state == S_OSC || s->state == S_OSC_ESC) {
			if (c == 0x07 || (s->state == S_OSC_ESC && c == '\\')) {
				osc_end(s);
				s->state = S_GROUND;
			} else if (c == 0x1b) {
				s->state = S_OSC_ESC;
				s->esc_at = AT(p - 1);
			} else if (s->state == S_OSC_ESC) { /* ESC then something else: a new sequence */
				s->state = c == '[' ? S_CSI : c == ']' ? S_OSC : S_GROUND;
				s->prefix = s->num = s->nparams = s->osclen = 0;
				s->seq_at = s->esc_at;
			} else if (s->osclen < (int)sizeof s->osc) {
				s->osc[s->osclen++] = (char)c;
			}
			continue;
		}
		if ((c == '?' || c == '>' || c == '<' || c == '=') && s->nparams == 0 && s->num == 0) {
			s->prefix = c;
		} else if (c >= '0' && c <= '9') {
			s->num = s->num * 10 + (c - '0');
			if (s->num > 100000)
				s->num = 100000;
		} else if (c == ';') {
			if (s->nparams < 8)
				s->params[s->nparams++] = s->num;
			s->num = 0;
		} else if (c >= 0x40 && c <= 0x7e) {
			if (s->nparams < 8)
				s->params[s->nparams++] = s->num;
			screen_csi(s, c);
			s->state = S_GROUND;
		} else if (c == 0x1b) {
			s->state = S_ESC;
			s->seq_at = AT(p - 1);
		} /* intermediates are skipped */
	}
#undef AT
}

int screen_in_sequence(const screen_t *s)
{
	return s->state != S_GROUND;
}

/* ---- drawing -------------------------------------------------------------------- */

static int addf(buf_t *b, const char *fmt, int a, int c)
{
	char tmp[64];
	int n = snprintf(tmp, sizeof tmp, fmt, a, c);
	return buf_add(b, tmp, (size_t)n);
}

#define ADD(b, lit) buf_add((b), (lit), sizeof(lit) - 1)

/* Bytes of s that fit in cols columns (one column a character). */
static size_t fit(const char *s, size_t len, int cols, int *used)
{
	size_t i = 0;
	int c = 0;
	while (i < len && c < cols) {
		i += utf8_len((unsigned char)s[i]);
		c++;
	}
	if (i > len)
		i = len;
	if (used)
		*used = c;
	return i;
}

static int columns(const char *s, size_t len)
{
	int c = 0;
	for (size_t i = 0; i < len; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

#define TAG "\x1b[0;7m procy \x1b[0m "
#define TAG_COLS 8

int draw_editor(buf_t *out, const editor_t *e, int cols, int rows)
{
	int room = cols - TAG_COLS - 1;
	if (room < 4)
		room = 4;
	/* scroll sideways so the cursor stays in view */
	int before = columns(e->text, e->cur);
	int skip = before >= room ? before - room + 1 : 0;
	size_t start = fit(e->text, e->len, skip, NULL);
	int shown;
	size_t n = fit(e->text + start, e->len - start, room, &shown);
	int r = 0;
	r |= ADD(out, "\x1b[?25l");
	r |= addf(out, "\x1b[%d;%dH\x1b[0m\x1b[2K", rows, 1);
	r |= ADD(out, TAG);
	r |= buf_add(out, e->text + start, n);
	r |= addf(out, "\x1b[%d;%dH\x1b[?25h", rows, TAG_COLS + 1 + before - skip);
	return r;
}

int draw_editor_close(buf_t *out, const screen_t *s, int rows)
{
	int r = addf(out, "\x1b[%d;%dH\x1b[0m\x1b[2K\x1b" "8", rows, 1);
	if (s->cursor_hidden)
		r |= ADD(out, "\x1b[?25l");
	else
		r |= ADD(out, "\x1b[?25h");
	return r;
}

/* Where a logical line's continuation lines start, in columns: an indented
   line laid out in two columns (text, two or more spaces, text: a row of
   !help) hangs under its second column; other lines under their own indent. Too deep to leave room for
   text (half the width), it starts at 0. */
static int hang(const char *s, size_t len, int cols)
{
	size_t i = 0;
	while (i < len && s[i] == ' ')
		i++;
	size_t lead = i;
	for (size_t j = i; i >= 2 && j + 2 < len; j++) /* a row of a table is indented; prose is not */
		if (s[j] != ' ' && s[j + 1] == ' ' && s[j + 2] == ' ') {
			size_t k = j + 1;
			while (k < len && s[k] == ' ')
				k++;
			if (k < len) {
				lead = k;
				break;
			}
		}
	int c = columns(s, lead);
	if (c * 2 > cols) {
		c = columns(s, i);
		if (c * 2 > cols)
			c = 0;
	}
	return c;
}

/* Calls fn for each display line of text wrapped at cols, with the indent
   its text goes after; stops early when fn returns non-zero. A line breaks
   after its last space that fits (a word wider than the room is cut), and
   continues at its hang(). Returns the number of display lines. So a
   page laid out for one width reads right at any other: procy wraps it
   again when the terminal is resized. */
static int wrap(const char *text, size_t len, int cols,
                int (*fn)(void *, int, int, const char *, size_t), void *ud)
{
	int line = 0;
	size_t i = 0;
	if (cols < 1)
		cols = 1;
	while (i < len || (i == 0 && len == 0)) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len;
		int indent = 0, under = hang(text + i, end - i, cols);
		do { /* one logical line, maybe several display lines */
			int room = cols - indent;
			size_t n = fit(text + i, end - i, room, NULL);
			if (i + n < end && text[i + n] != ' ') { /* inside a word: break at a space */
				size_t b = n, lead = 0;
				while (lead < n && text[i + lead] == ' ')
					lead++;
				while (b > 0 && text[i + b - 1] != ' ')
					b--;
				if (b > lead) /* (a word too long for the line, after its indent: cut) */
					n = b;
			}
			size_t shown = n;
			while (i + n < end && shown > 0 && text[i + shown - 1] == ' ')
				shown--; /* the space it broke at stays off the screen */
			if (fn && fn(ud, line, indent, text + i, shown))
				return line;
			line++;
			i += n;
			while (i < end && text[i] == ' ')
				i++; /* a continuation starts at its text */
			indent = under;
		} while (i < end);
		i = end + 1;
		if (!nl)
			break;
	}
	return line;
}

typedef struct page {
	buf_t *out;
	int    first, rows, err;
} page_t;

static int page_line(void *ud, int line, int indent, const char *s, size_t n)
{
	page_t *pg = ud;
	if (line < pg->first)
		return 0;
	if (line >= pg->first + pg->rows - 1)
		return 1;
	pg->err |= addf(pg->out, "\x1b[%d;%dH", line - pg->first + 1, 1 + indent);
	pg->err |= buf_add(pg->out, s, n);
	return 0;
}

int draw_pager(buf_t *out, const char *text, size_t len, int first, int cols, int rows)
{
	int total = wrap(text, len, cols, NULL, NULL);
	page_t pg = { out, first, rows, 0 };
	pg.err |= ADD(out, "\x1b[0m\x1b[H\x1b[2J\x1b[?25l");
	wrap(text, len, cols, page_line, &pg);
	int last = first + rows - 1 < total ? first + rows - 1 : total;
	char footer[160];
	snprintf(footer, sizeof footer, " lines %d-%d of %d   %s", total ? first + 1 : 0, last, total,
	         last < total ? "space: more  b: back  q: close" : "q or Enter: close");
	pg.err |= addf(out, "\x1b[%d;%dH", rows, 1);
	pg.err |= ADD(out, TAG);
	size_t flen = strlen(footer);
	pg.err |= buf_add(out, footer, fit(footer, flen, cols - TAG_COLS, NULL));
	return pg.err ? -1 : total;
}

int draw_reset(buf_t *out, const screen_t *s)
{
	int r = 0;
	if (s->sgr)
		r |= ADD(out, "\x1b[0m");
	if (s->alt)
		r |= ADD(out, "\x1b[?1049l");
	for (int b = 0; b < 6; b++)
		if (s->mouse & 1 << b)
			r |= addf(out, "\x1b[?%dl", mouse_modes[b], 0);
	if (s->paste)
		r |= ADD(out, "\x1b[?2004l");
	if (s->focus)
		r |= ADD(out, "\x1b[?1004l");
	for (int i = 0; i < s->kitty; i++)
		r |= ADD(out, "\x1b[<u");
	if (s->modkeys)
		r |= ADD(out, "\x1b[>4m");
	if (s->cursor_hidden)
		r |= ADD(out, "\x1b[?25h");
	return r;
}

int draw_status(buf_t *out, const char *text, int cols, int rows)
{
	int r = ADD(out, "\x1b" "7");
	r |= addf(out, "\x1b[%d;%dH\x1b[0m\x1b[2K", rows, 1);
	r |= ADD(out, TAG);
	r |= buf_add(out, text, fit(text, strlen(text), cols - TAG_COLS, NULL));
	r |= ADD(out, "\x1b" "8");
	return r;
}

int draw_pin(buf_t *out, const char *text, int cols, int rows)
{
	int r = ADD(out, "\x1b" "7");
	r |= addf(out, "\x1b[1;%dr", rows - 1, 0); /* homes the cursor: saved and restored */
	r |= addf(out, "\x1b[%d;%dH\x1b[0m\x1b[2K", rows, 1);
	r |= ADD(out, TAG);
	r |= buf_add(out, text, fit(text, strlen(text), cols - TAG_COLS, NULL));
	r |= ADD(out, "\x1b" "8");
	return r;
}

int draw_unpin(buf_t *out, int rows)
{
	int r = ADD(out, "\x1b" "7" "\x1b[r");
	r |= addf(out, "\x1b[%d;%dH\x1b[2K", rows, 1);
	return r | ADD(out, "\x1b" "8");
}
