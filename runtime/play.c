/*
** play.c — the person's terminal while `procy play` replays a recording.
**
** The recorded output goes out as it was, less the sequences that make a
** terminal answer: device attributes (CSI c, > c, = c, ESC Z), status and
** cursor reports (CSI n), mode queries (CSI $ p), XTVERSION (CSI > q),
** window reports (CSI 11..21 t), kitty's keyboard query (CSI ? u),
** DECREQTPARM (CSI x), colour, palette and clipboard queries (an OSC with
** a "?" field), DECRQSS and XTGETTCAP (DCS $ q, DCS + q), kitty graphics
** queries (APC G with a=q) and ENQ. The agent asked those of the terminal
** it ran on, long ago; played back, the answers would land in the
** person's input and be typed into the shell once play ends.
**
** While it plays, the terminal does not echo what is typed (or the mouse
** reports a recording turned on) and Ctrl-C still stops it; at every end
** (the last event, Ctrl-C, a signal, an error) the modes the recording
** left set are undone (term.c's screen tracking: the main screen, no mouse
** or focus reports, no bracketed paste, the cursor shown, ...), a soft
** reset (DECSTR) puts origin and keypad modes back, the scroll region is
** the whole screen again,
** input that arrived meanwhile is discarded and the terminal's settings
** are restored — as `asciinema play` does.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "procy.h"
#include "term.h"

#define PLAYER_MT "procy.player"
#define SEQ_MAX   4096 /* a query is short: a longer sequence is passed on as it comes */

enum { P_GROUND, P_ESC, P_CSI, P_STRING, P_STRING_ESC, P_PASS, P_PASS_ESC };

typedef struct player {
	int            open;
	int            state;
	unsigned char  kind;        /* the string's introducer: ']' OSC, 'P' DCS, '_' APC, '^' PM, 'X' SOS */
	unsigned char  seq[SEQ_MAX];
	size_t         len;         /* bytes of the sequence under way, ESC included */
	screen_t       screen;      /* the modes the output set, to undo */
	int            tty;         /* stdin is a terminal whose settings we changed */
	int            wrote;       /* something went to the terminal: close undoes what it set */
	struct termios saved;
} player_t;

/* A complete CSI sequence in seq[0..len): whether a terminal answers it. */
static int csi_asks(const unsigned char *s, size_t n)
{
	unsigned char final = s[n - 1], prefix = 0, inter = 0;
	size_t i = 2; /* after ESC [ */
	if (i < n - 1 && (s[i] == '?' || s[i] == '>' || s[i] == '=' || s[i] == '<'))
		prefix = s[i++];
	int first = -1, num = 0, digits = 0;
	for (; i < n - 1; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			num = num * 10 + (s[i] - '0');
			digits = 1;
			if (num > 100000)
				num = 100000;
		} else if (s[i] == ';' || s[i] == ':') {
			if (first < 0)
				first = digits ? num : 0;
			num = digits = 0;
		} else if (s[i] >= 0x20 && s[i] <= 0x2f) {
			inter = s[i];
		}
	}
	if (first < 0)
		first = digits ? num : 0;
	if (inter == '$' && final == 'p')
		return 1; /* DECRQM */
	if (inter)
		return 0;
	switch (final) {
	case 'c': return prefix == 0 || prefix == '>' || prefix == '='; /* device attributes */
	case 'n': return prefix == 0 || prefix == '?';                  /* status, cursor position */
	case 'q': return prefix == '>';                                 /* XTVERSION */
	case 'u': return prefix == '?';                                 /* kitty keyboard flags */
	case 'x': return prefix == 0;                                   /* DECREQTPARM */
	case 't': return prefix == 0 && first >= 11 && first <= 21 && first != 12 && first != 17; /* reports */
	default:  return 0;
	}
}

/* A complete string sequence (ESC kind ... ST or BEL) in s[0..n): whether
   a terminal answers it. */
static int string_asks(unsigned char kind, const unsigned char *s, size_t n)
{
	const unsigned char *p = s + 2, *end = s + n;
	while (end > p && (end[-1] == 0x07 || end[-1] == '\\' || end[-1] == 0x1b))
		end--; /* the terminator */
	size_t len = (size_t)(end - p);
	if (kind == 'P')
		return len >= 2 && (p[0] == '$' || p[0] == '+') && p[1] == 'q'; /* DECRQSS, XTGETTCAP */
	if (kind == '_')
		return len >= 1 && p[0] == 'G' && memmem(p, len, "a=q", 3) != NULL; /* kitty graphics query */
	if (kind != ']')
		return 0;
	/* OSC: a field that is "?" asks (10;? 11;? 4;N;? 52;c;? ...) */
	const unsigned char *f = p;
	for (const unsigned char *q = p; q <= end; q++) {
		if (q == end || *q == ';') {
			if (q - f == 1 && *f == '?')
				return 1;
			f = q + 1;
		}
	}
	return 0;
}

static int keep(buf_t *out, const void *p, size_t n)
{
	return n ? buf_add(out, p, n) : 0;
}

/* Feeds output through the filter: what may reach the terminal is added
   to out. A sequence split across calls waits for its end. -1 (ENOMEM). */
static int play_filter(player_t *p, const unsigned char *in, size_t n, buf_t *out)
{
	int r = 0;
	size_t run = 0; /* start of the text passed on as it is */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = in[i];
		switch (p->state) {
		case P_GROUND:
			if (c == 0x1b || c == 0x05) {
				r |= keep(out, in + run, i - run);
				run = i + 1;
				if (c == 0x1b) {
					p->state = P_ESC;
					p->seq[0] = c;
					p->len = 1;
				} /* ENQ: the answerback, never asked for */
			}
			continue;
		case P_ESC:
			p->seq[p->len++] = c;
			if (c == '[') {
				p->state = P_CSI;
			} else if (c == ']' || c == 'P' || c == '_' || c == '^' || c == 'X') {
				p->state = P_STRING;
				p->kind = c;
			} else if (c == 0x1b) {
				r |= keep(out, p->seq, 1); /* ESC ESC: the first stands alone */
				p->len = 1;
			} else {
				if (c != 'Z') /* DECID asks */
					r |= keep(out, p->seq, p->len);
				p->state = P_GROUND;
			}
			run = i + 1;
			continue;
		case P_CSI:
			run = i + 1;
			if (c == 0x1b) { /* a new sequence: this one was broken off */
				r |= keep(out, p->seq, p->len);
				p->seq[0] = c;
				p->len = 1;
				p->state = P_ESC;
				continue;
			}
			p->seq[p->len++] = c;
			if (c >= 0x40 && c <= 0x7e) {
				if (!csi_asks(p->seq, p->len))
					r |= keep(out, p->seq, p->len);
				p->state = P_GROUND;
			} else if (p->len == SEQ_MAX) {
				r |= keep(out, p->seq, p->len);
				p->state = P_PASS;
			}
			continue;
		case P_STRING:
		case P_STRING_ESC:
			run = i + 1;
			if (p->state == P_STRING_ESC && c != '\\') { /* ESC then something else: a new sequence */
				r |= keep(out, p->seq, p->len - 1);
				p->seq[0] = 0x1b;
				p->len = 1;
				p->state = P_ESC;
				i--; /* read c again, after the ESC (at i = 0 this wraps, and the loop's i++ brings it back) */
				continue;
			}
			p->seq[p->len++] = c;
			if (c == 0x07 || p->state == P_STRING_ESC) {
				if (!string_asks(p->kind, p->seq, p->len))
					r |= keep(out, p->seq, p->len);
				p->state = P_GROUND;
			} else if (c == 0x1b) {
				p->state = P_STRING_ESC;
			} else if (p->len == SEQ_MAX) {
				r |= keep(out, p->seq, p->len);
				p->state = P_PASS;
			}
			continue;
		case P_PASS: /* the rest of a long string (a clipboard set, an image): as it comes */
		case P_PASS_ESC:
			if (c == 0x07 || (p->state == P_PASS_ESC && c == '\\'))
				p->state = P_GROUND;
			else
				p->state = c == 0x1b ? P_PASS_ESC : P_PASS;
			continue;
		}
	}
	if (p->state == P_GROUND || p->state == P_PASS || p->state == P_PASS_ESC)
		r |= keep(out, in + run, n - run);
	return r;
}

static player_t *check(lua_State *L)
{
	player_t *p = luaL_checkudata(L, 1, PLAYER_MT);
	if (!p->open)
		luaL_error(L, "the player is closed");
	return p;
}

/* [-0, +1] pty.player() -> a player: the terminal set for playing (when
   stdin is one: no echo, line editing off, Ctrl-C still a signal) */
static int l_player(lua_State *L)
{
	player_t *p = lua_newuserdatauv(L, sizeof *p, 0);
	memset(p, 0, sizeof *p);
	luaL_setmetatable(L, PLAYER_MT);
	p->open = 1;
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &p->saved) == 0) {
		struct termios t = p->saved;
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ECHONL);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		p->tty = tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0;
	}
	return 1;
}

/* [-0, +1] The bytes at stack index 2 through p's filter, in a buffer
   pushed on the stack; NULL when memory ran out. */
static buf_t *filtered(lua_State *L, player_t *p)
{
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	buf_t *b = buf_push(L);
	return play_filter(p, (const unsigned char *)s, n, b) < 0 ? NULL : b;
}

/* [-0, +1] p:filter(bytes) -> the bytes that may reach the terminal (for
   tests: write() sends them) */
static int l_filter(lua_State *L)
{
	buf_t *b = filtered(L, check(L));
	if (!b)
		return procy_fail_errno(L, ENOMEM, "play");
	lua_pushlstring(L, b->p ? b->p : "", b->len);
	return 1;
}

/* [-0, +1] p:write(bytes) -> true | nil, err, code: recorded output to the
   terminal, queries taken out, its modes followed */
static int l_write(lua_State *L)
{
	player_t *p = check(L);
	buf_t *b = filtered(L, p);
	if (!b)
		return procy_fail_errno(L, ENOMEM, "play");
	screen_scan(&p->screen, (const unsigned char *)b->p, b->len);
	tty_write(b->p, b->len);
	p->wrote = 1;
	lua_pushboolean(L, 1);
	return 1;
}

/* [-0, +0] p:close(): the terminal as it was (idempotent; also __gc and
   __close) */
static int l_close(lua_State *L)
{
	player_t *p = luaL_checkudata(L, 1, PLAYER_MT);
	if (!p->open)
		return 0;
	p->open = 0;
	if (p->wrote) {
		buf_t b = { 0 };
		draw_reset(&b, &p->screen);
		/* DECSTR (origin, keypad, insert, charsets), the scroll region where
		   DECSTR does not reach it (the cursor kept), the cursor, a fresh line */
		static const char tail[] = "\x1b[!p\x1b" "7\x1b[r\x1b" "8\x1b[?25h\r\n";
		buf_add(&b, tail, sizeof tail - 1);
		tty_write(b.p, b.len);
		buf_free(&b);
	}
	if (p->tty) {
		tcflush(STDIN_FILENO, TCIFLUSH); /* what was typed, or reported, while it played */
		tcsetattr(STDIN_FILENO, TCSADRAIN, &p->saved);
	}
	return 0;
}

void play_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "filter", l_filter }, { "write", l_write }, { "close", l_close }, { NULL, NULL },
	};
	procy_class(L, PLAYER_MT, methods, l_close, NULL);
	lua_pushcfunction(L, l_player);
	lua_setfield(L, -2, "player");
}
