/*
** unask.c — see term.h: recorded terminal output less the sequences a
** terminal answers, for replaying it to a real one (procy play). A pure
** byte filter, no I/O; a sequence split across calls waits for its end.
**
** It follows the DEC parser terminals are built on (xterm, xterm.js, VTE,
** alacritty): a sequence starts at ESC or at a C1 introducer (UTF-8
** encoded, C2 XX, or a raw byte where it cannot belong to a UTF-8
** character; passed on as ESC and its letter), and a string (OSC, DCS, APC, PM, SOS) ends at BEL or ST, or
** wherever something starts another sequence (ESC, a C1 introducer) or
** cancels one (CAN, SUB). Some terminals act on a string cut short, so a
** cut-short query is taken out too. A string longer than UNASK_MAX goes
** on as it comes, to its end — or is dropped whole when what came of it
** already asks, and an OSC going on that comes to a "?" field is cut
** there (CAN); a CSI that long is dropped (no query is).
*/
#define _GNU_SOURCE
#include <string.h>

#include "term.h"

enum { U_GROUND, U_ESC, U_C2, U_CSI, U_STRING, U_STRING_ESC };

/* The 7-bit introducer a C1 control stands for: CSI, OSC, DCS, APC, PM, SOS */
static unsigned char c1_of(unsigned char c)
{
	switch (c) {
	case 0x9b: return '[';
	case 0x9d: return ']';
	case 0x90: return 'P';
	case 0x9f: return '_';
	case 0x9e: return '^';
	case 0x98: return 'X';
	default:   return 0;
	}
}

static int is_string(unsigned char kind)
{
	return kind == ']' || kind == 'P' || kind == '_' || kind == '^' || kind == 'X';
}

/* A complete CSI sequence in s[0..n), its parameters from s[at]: whether a
   terminal answers it. */
static int csi_asks(const unsigned char *s, size_t n, size_t at)
{
	unsigned char final = s[n - 1], prefix = 0, inter = 0;
	size_t i = at;
	if (i < n - 1 && (s[i] == '?' || s[i] == '>' || s[i] == '=' || s[i] == '<'))
		prefix = s[i++];
	int param[2] = { 0, 0 }, np = 0;
	for (; i < n - 1; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			if (np < 2 && param[np] < 100000)
				param[np] = param[np] * 10 + (s[i] - '0');
		} else if (s[i] == ';' || s[i] == ':') {
			np++;
		} else if (s[i] >= 0x20 && s[i] <= 0x2f) {
			inter = s[i];
		}
	}
	if (inter == '$')
		return final == 'p' || final == 'w' || final == 'u'; /* DECRQM, DECRQPSR, DECRQTSR */
	if (inter == '*')
		return final == 'y';                                  /* DECRQCRA */
	if (inter == '#')
		return final == '|';                                  /* XTREPORTSGR */
	if (inter)
		return 0;
	switch (final) {
	case 'c': return 1;               /* device attributes (any form: none is a command) */
	case 'n': return prefix != '>';   /* status, cursor position (CSI > n is XTMODKEYS) */
	case 'q': return prefix == '>';                                 /* XTVERSION */
	case 'u': return prefix == '?';                                 /* kitty keyboard flags */
	case 'm': return prefix == '?';                                 /* XTQMODKEYS */
	case 'S': return prefix == '?' && (param[1] == 1 || param[1] == 4); /* XTSMGRAPHICS reads */
	case 'x': return prefix == 0;                                   /* DECREQTPARM */
	case 't': return prefix == 0 && param[0] >= 11 && param[0] <= 21 && param[0] != 12 && param[0] != 17;
	default:  return 0;
	}
}

/* A string's text p[0..len) (no introducer, no terminator): whether a
   terminal answers it. Of a part (cut short, or the start of a long one):
   whether what is there asks. */
static int string_asks(unsigned char kind, const unsigned char *p, size_t len)
{
	while (len > 0 && p[len - 1] >= 0xc0)
		len--; /* a UTF-8 character cut off after its first byte: a terminal may drop it */
	if (kind == 'P')
		return len >= 2 && (p[0] == '$' || p[0] == '+') && p[1] == 'q'; /* DECRQSS, XTGETTCAP */
	if (kind == '_')
		return len >= 1 && p[0] == 'G' && memmem(p, len, "a=q", 3) != NULL; /* kitty graphics query */
	if (kind != ']')
		return 0;
	if (len >= 11 && memcmp(p, "1337;Report", 11) == 0)
		return 1; /* iTerm2's Report... */
	/* a field that is "?" or ends "=?" asks (10;? 11;? 4;N;? 52;c;? 21;fg=?) */
	const unsigned char *f = p, *end = p + len;
	for (const unsigned char *q = p; q <= end; q++) {
		if (q == end || *q == ';') {
			if (q > f && q[-1] == '?' && (q - f == 1 || q[-2] == '='))
				return 1;
			f = q + 1;
		}
	}
	return 0;
}

/* Passes p[0..n) on, remembering its last byte: what a byte that follows
   comes after on the terminal (whether 9B is a C1 control or part of a
   character depends on it, not on what procy took out between them). */
static int put(unask_t *u, buf_t *out, const void *p, size_t n)
{
	if (!n)
		return 0;
	u->last = ((const unsigned char *)p)[n - 1];
	return buf_add(out, p, n);
}

/* Whether c, after prev, is a C1 control: its UTF-8 form (C2 c) or a raw
   byte where no UTF-8 character is under way */
static int is_c1(unsigned char prev, unsigned char c)
{
	return (c1_of(c) || c == 0x9c) && (prev == 0xc2 || prev < 0x80);
}

/* A sequence begins: intro[0..n) its introducer, kind its letter ('['
   CSI, ']' OSC, ...), or 0 for ESC alone (what follows decides). */
static void begin(unask_t *u, const unsigned char *intro, size_t n, unsigned char kind)
{
	memcpy(u->seq, intro, n);
	u->len = u->at = n;
	u->kind = kind;
	u->over = u->drop = u->c2 = 0;
	u->state = kind == '[' ? U_CSI : is_string(kind) ? U_STRING : U_ESC;
}

/* A C1 introducer c begins a sequence (its C2, if UTF-8, already read).
   It is passed on in its 7-bit form, ESC and the letter: a C1 byte means
   a control or part of a character by what comes before it, and what
   comes before it on the terminal is not always what came before it here
   (procy may have taken a query out between them). */
static void begin_c1(unask_t *u, unsigned char c)
{
	unsigned char intro[2] = { 0x1b, c1_of(c) };
	begin(u, intro, 2, intro[1]);
	u->prev = intro[1]; /* what the next byte comes after, as passed */
}

/* The string under way ends, or is cut short, with its text in seq[at..
   text_end) and, when it is not over long, seq[0..len) what to pass (its
   terminator, if any, included): passed unless it asks. */
static int string_done(unask_t *u, buf_t *out, size_t text_end)
{
	int r = 0;
	if (!u->over && !string_asks(u->kind, u->seq + u->at, text_end - u->at))
		r = put(u, out, u->seq, u->len);
	u->state = U_GROUND;
	return r;
}

/* A string cut short by what begins a new sequence (end: an ST follows
   what is passed of it, so what follows a dropped query cannot run on
   into it) or by CAN or SUB (passed next, as they came): passed unless it
   asks. */
static int cut_short(unask_t *u, buf_t *out, size_t text_end, int end)
{
	int passed = u->over ? !u->drop : !string_asks(u->kind, u->seq + u->at, text_end - u->at);
	int r = string_done(u, out, text_end);
	if (passed && end)
		r |= put(u, out, "\x1b\\", 2);
	return r;
}

/* A byte of an over-long string, passed at once unless it is dropped; a
   C2 waits for the byte after it (a C1 introducer cuts the string there).
   An OSC passed so far that comes to a "?" field is cut there with CAN,
   before the "?" (what a terminal then makes of it asks nothing), and the
   rest is dropped. */
static int long_byte(unask_t *u, buf_t *out, unsigned char c)
{
	int r = 0;
	if (u->kind == ']' && !u->drop && c == '?' && (u->prev_text == ';' || u->prev_text == '=')) {
		r |= put(u, out, u->c2 ? "\xc2\x18" : "\x18", u->c2 ? 2 : 1);
		u->drop = 1;
		u->c2 = 0;
		return r;
	}
	u->prev_text = c;
	if (u->c2 && !u->drop)
		r |= put(u, out, "\xc2", 1);
	u->c2 = c == 0xc2;
	if (!u->c2 && !u->drop)
		r |= put(u, out, &c, 1);
	return r;
}

/* See term.h. */
int unask(unask_t *u, const unsigned char *in, size_t n, buf_t *out)
{
	int r = 0;
	size_t run = 0; /* where the text passed on as it is began */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = in[i], prev = u->prev;
		u->prev = c;
		switch (u->state) {
		case U_GROUND: {
			unsigned char before = i > run ? in[i - 1] : u->last; /* on the terminal */
			if (c == 0x1b || c == 0x05 || c == 0xc2 || (c1_of(c) && before < 0x80)) {
				r |= put(u, out, in + run, i - run);
				run = i + 1;
				if (c == 0x1b)
					begin(u, &c, 1, 0);
				else if (c == 0xc2)
					u->state = U_C2;
				else if (c != 0x05) /* ENQ asks for the answerback: dropped */
					begin_c1(u, c);
			}
			break;
		}
		case U_C2: /* a C1 control in UTF-8, or a character that starts with C2 */
			run = i + 1;
			u->state = U_GROUND;
			if (c1_of(c)) {
				begin_c1(u, c);
			} else if (c >= 0x80 && c < 0xc0) {
				unsigned char ch[2] = { 0xc2, c }; /* a character (or a C1 control that asks nothing) */
				r |= put(u, out, ch, 2);
			} else {
				/* a C2 with nothing after it is no character: dropped (passed, it
				   could make a C1 control of what follows a dropped sequence) */
				run = i;
				i--; /* c again (at i = 0 this wraps; the loop's i++ brings it back) */
			}
			break;
		case U_ESC:
			run = i + 1;
			if (c == '[' || is_string(c)) {
				unsigned char intro[2] = { 0x1b, c };
				begin(u, intro, 2, c);
			} else if (c == 0x1b) {
				/* ESC ESC: terminals drop the first (passed, it could join what follows a dropped query) */
			} else if (c == 0xc2 || c >= 0x80) { /* ESC, then a C1 or a character: the ESC is dropped */
				u->state = U_GROUND;
				run = i;
				u->prev = 0x1b;
				i--;
			} else {
				if (c != 'Z') { /* DECID asks */
					r |= put(u, out, "\x1b", 1);
					r |= put(u, out, &c, 1);
				}
				u->state = U_GROUND;
			}
			break;
		case U_CSI:
			run = i + 1;
			if (c == 0x1b || c == 0x18 || c == 0x1a || is_c1(prev, c)) {
				/* broken off: terminals drop it, and so does procy (passed, it could
				   run on into what follows a dropped query) */
				u->state = U_GROUND;
				if (c == 0x1b)
					begin(u, &c, 1, 0);
				else if (c == 0x18 || c == 0x1a)
					r |= put(u, out, &c, 1);
				else if (c != 0x9c)
					begin_c1(u, c);
			} else if (u->over) {
				if (c >= 0x40 && c <= 0x7e)
					u->state = U_GROUND; /* an over-long CSI is dropped whole */
			} else {
				u->seq[u->len++] = c;
				if (c >= 0x40 && c <= 0x7e) {
					if (!csi_asks(u->seq, u->len, u->at))
						r |= put(u, out, u->seq, u->len);
					u->state = U_GROUND;
				} else if (u->len == UNASK_MAX) {
					u->over = 1;
				}
			}
			break;
		case U_STRING:
			run = i + 1;
			if (c == 0x07 || (c == 0x9c && is_c1(prev, c))) { /* BEL, ST */
				size_t text_end = u->len - (!u->over && c == 0x9c && prev == 0xc2);
				if (u->over) {
					if (!u->drop)
						r |= put(u, out, u->c2 ? "\xc2" : "", u->c2); /* a held C2: text, or ST's */
					if (!u->drop)
						r |= put(u, out, &c, 1);
					u->state = U_GROUND;
					break;
				}
				u->seq[u->len++] = c;
				r |= string_done(u, out, text_end);
			} else if (c == 0x1b) {
				u->state = U_STRING_ESC; /* ST, or a new sequence */
			} else if (c == 0x18 || c == 0x1a || is_c1(prev, c)) { /* cut short */
				int utf8 = prev == 0xc2;
				size_t text_end = u->len - (!u->over && utf8);
				if (!u->over)
					u->len = text_end;
				else if (u->c2 && !u->drop && !utf8)
					r |= put(u, out, "\xc2", 1);
				r |= cut_short(u, out, text_end, c1_of(c) != 0);
				if (c1_of(c))
					begin_c1(u, c);
				else
					r |= put(u, out, &c, 1);
			} else if (u->over) {
				r |= long_byte(u, out, c);
			} else if (u->len == UNASK_MAX) {
				u->over = 1;
				u->prev_text = u->seq[u->len - 1];
				u->drop = string_asks(u->kind, u->seq + u->at, u->len - u->at);
				if (!u->drop)
					r |= put(u, out, u->seq, u->len);
				r |= long_byte(u, out, c);
			} else {
				u->seq[u->len++] = c;
			}
			break;
		case U_STRING_ESC:
			run = i + 1;
			if (c == '\\') { /* ST */
				size_t text_end = u->len;
				if (u->over) {
					if (u->c2 && !u->drop)
						r |= put(u, out, "\xc2", 1);
					if (!u->drop)
						r |= put(u, out, "\x1b\\", 2);
					u->state = U_GROUND;
					break;
				}
				r |= string_done(u, out, text_end);
				if (u->state == U_GROUND && !string_asks(u->kind, u->seq + u->at, text_end - u->at))
					r |= put(u, out, "\x1b\\", 2);
			} else { /* ESC and something else: the string is cut short, a new sequence begins */
				if (u->over && u->c2 && !u->drop)
					r |= put(u, out, "\xc2", 1);
				r |= cut_short(u, out, u->len, 1);
				begin(u, (const unsigned char *)"\x1b", 1, 0);
				u->prev = 0x1b;
				i--;
			}
			break;
		}
	}
	if (u->state == U_GROUND && n > run)
		r |= put(u, out, in + run, n - run);
	return r;
}

/* See term.h. */
int unask_end(unask_t *u, buf_t *out)
{
	int open = (u->state == U_STRING || u->state == U_STRING_ESC) && u->over && !u->drop;
	u->state = U_GROUND;
	return open ? buf_add(out, "\x1b\\", 2) : 0;
}
