/*
** unask.c — see term.h: recorded terminal output less the sequences a
** terminal answers, for replaying it to a real one (procy play). A pure
** byte filter, no I/O; a sequence split across calls waits for its end.
*/
#define _GNU_SOURCE
#include <string.h>

#include "term.h"

enum { U_GROUND, U_ESC, U_C2, U_CSI, U_STRING, U_STRING_ESC, U_PASS_CSI, U_PASS, U_PASS_ESC };

/* The 7-bit introducer a C1 control stands for, UTF-8 encoded as C2 XX
   (xterm takes U+0080..U+009F as controls): CSI, OSC, DCS, APC, PM, SOS */
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

/* A complete string sequence (ESC kind, or its C1 form, then its text,
   ended by BEL, ESC \ or the C1 ST) in s[0..n): whether a terminal
   answers it. */
static int string_asks(unsigned char kind, const unsigned char *s, size_t n)
{
	const unsigned char *p = s + 2, *end = s + n;
	if (end - p >= 2 && end[-2] == 0xc2 && end[-1] == 0x9c)
		end -= 2; /* C1 ST */
	else if (end - p >= 2 && end[-2] == 0x1b && end[-1] == '\\')
		end -= 2; /* ESC \ */
	else if (end > p && end[-1] == 0x07)
		end--; /* BEL */
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

/* See term.h. */
int unask(unask_t *p, const unsigned char *in, size_t n, buf_t *out)
{
	int r = 0;
	size_t run = 0; /* start of the text passed on as it is */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = in[i];
		switch (p->state) {
		case U_GROUND:
			if (c == 0x1b || c == 0x05 || c == 0xc2) {
				r |= keep(out, in + run, i - run);
				run = i + 1;
				if (c != 0x05) { /* ENQ: the answerback, never asked for */
					p->state = c == 0x1b ? U_ESC : U_C2;
					p->seq[0] = c;
					p->len = 1;
				}
			}
			break;
		case U_C2: /* a C1 control, or any other character that starts with C2 */
			run = i + 1;
			if (c1_of(c)) {
				p->seq[p->len++] = c;
				p->kind = c1_of(c);
				p->state = p->kind == '[' ? U_CSI : U_STRING;
			} else {
				r |= keep(out, p->seq, p->len);
				p->state = U_GROUND;
				run = i; /* c is text, or starts what comes next */
				i--;
			}
			break;
		case U_ESC:
			run = i + 1;
			p->seq[p->len++] = c;
			if (c == '[') {
				p->state = U_CSI;
			} else if (c == ']' || c == 'P' || c == '_' || c == '^' || c == 'X') {
				p->state = U_STRING;
				p->kind = c;
			} else if (c == 0x1b) {
				r |= keep(out, p->seq, 1); /* ESC ESC: the first stands alone */
				p->len = 1;
			} else {
				if (c != 'Z') /* DECID asks */
					r |= keep(out, p->seq, p->len);
				p->state = U_GROUND;
			}
			break;
		case U_CSI:
			run = i + 1;
			if (c == 0x1b) { /* a new sequence: this one was broken off */
				r |= keep(out, p->seq, p->len);
				p->seq[0] = c;
				p->len = 1;
				p->state = U_ESC;
				break;
			}
			p->seq[p->len++] = c;
			if (c >= 0x40 && c <= 0x7e) {
				if (!csi_asks(p->seq, p->len))
					r |= keep(out, p->seq, p->len);
				p->state = U_GROUND;
			} else if (p->len == UNASK_MAX) {
				r |= keep(out, p->seq, p->len);
				p->state = U_PASS_CSI;
			}
			break;
		case U_PASS_CSI: /* the rest of an overlong CSI: as it comes, to its final byte */
			if (c >= 0x40 && c <= 0x7e) {
				p->state = U_GROUND;
			} else if (c == 0x1b) {
				r |= keep(out, in + run, i - run);
				run = i + 1;
				p->seq[0] = c;
				p->len = 1;
				p->state = U_ESC;
			}
			break;
		case U_STRING:
		case U_STRING_ESC:
			run = i + 1;
			if (p->state == U_STRING_ESC && c != '\\') { /* ESC then something else: a new sequence */
				r |= keep(out, p->seq, p->len - 1);
				p->seq[0] = 0x1b;
				p->len = 1;
				p->state = U_ESC;
				i--; /* read c again, after the ESC (at i = 0 this wraps, and the loop's i++ brings it back) */
				break;
			}
			p->seq[p->len++] = c;
			if (c == 0x07 || p->state == U_STRING_ESC || (c == 0x9c && p->seq[p->len - 2] == 0xc2)) {
				if (!string_asks(p->kind, p->seq, p->len))
					r |= keep(out, p->seq, p->len);
				p->state = U_GROUND;
			} else if (c == 0x1b) {
				p->state = U_STRING_ESC;
			} else if (p->len == UNASK_MAX) {
				r |= keep(out, p->seq, p->len);
				p->state = U_PASS;
			}
			break;
		case U_PASS: /* the rest of a long string (a clipboard set, an image): as it comes */
			if (c == 0x07 || (c == 0x9c && p->prev == 0xc2)) {
				p->state = U_GROUND;
			} else if (c == 0x1b) { /* its end (ESC \), or a new sequence: held until it is known */
				r |= keep(out, in + run, i - run);
				run = i + 1;
				p->seq[0] = c;
				p->len = 1;
				p->state = U_PASS_ESC;
			}
			break;
		case U_PASS_ESC:
			if (c == '\\') {
				r |= keep(out, p->seq, 1);
				run = i; /* the backslash goes with what follows */
				p->state = U_GROUND;
			} else { /* a new sequence breaks the string off */
				p->state = U_ESC;
				run = i + 1;
				i--;
			}
			break;
		}
		p->prev = c;
	}
	if (p->state == U_GROUND || p->state == U_PASS || p->state == U_PASS_CSI)
		r |= keep(out, in + run, n - run);
	return r;
}
