/* term.c — the terminal's key and escape parsing in C (term.c): the line
   tracker, the key parser and the command-line editor, the screen
   scanner, the pager at any width, and unask.c's filter (what it passes
   holds nothing a terminal answers, by an oracle of its own; fed in
   pieces it passes what it passes fed whole), on any bytes. */
#include <stdlib.h>
#include <string.h>

#include "term.h"

/* The oracle: the DEC parser as a terminal runs it over what unask
   passed (a sequence begins at ESC or a C1 introducer; a string ends at
   BEL, ST, CAN, SUB, ESC or a C1 introducer, and is acted on there), and
   whether any sequence it acts on is one of the common queries: a CSI
   ending c or n with no intermediate, a DCS $q or +q, an OSC with a field
   that is "?" or ends "=?". Written apart from unask.c, on purpose. */
static int c1(const unsigned char *s, size_t i, size_t n, unsigned char *kind)
{
	static const char from[] = "\x9b\x9d\x90\x9f\x9e\x98", to[] = "[]P_^X";
	unsigned char c = s[i];
	const char *at = c ? memchr(from, c, 6) : NULL;
	if (!at || (i > 0 && s[i - 1] != 0xc2 && s[i - 1] >= 0x80))
		return 0;
	*kind = (unsigned char)to[at - from];
	(void)n;
	return 1;
}

static int asks(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char kind = 0;
		if (s[i] == 0x1b && i + 1 < n && strchr("[]P_^X", s[i + 1]) && s[i + 1])
			kind = s[i + 1], i += 2;
		else if (c1(s, i, n, &kind))
			i += 1;
		else {
			i++;
			continue;
		}
		size_t start = i;
		if (kind == '[') {
			int inter = 0;
			while (i < n && !(s[i] >= 0x40 && s[i] <= 0x7e) && s[i] != 0x1b && s[i] != 0x18 && s[i] != 0x1a) {
				unsigned char k;
				if (c1(s, i, n, &k))
					break;
				inter |= s[i] >= 0x20 && s[i] <= 0x2f;
				i++;
			}
			if (i < n && !inter && (s[i] == 'c' || s[i] == 'n')) {
				unsigned char p = start < i ? s[start] : 0;
				if (p != '<' && (s[i] == 'c' ? p != '?' : p != '>')) /* what a terminal answers */
					return 1;
			}
			continue;
		}
		while (i < n && s[i] != 0x07 && s[i] != 0x1b && s[i] != 0x18 && s[i] != 0x1a) {
			unsigned char k;
			if (c1(s, i, n, &k) || (s[i] == 0x9c && (s[i - 1] == 0xc2 || s[i - 1] < 0x80)))
				break;
			i++;
		}
		size_t len = i - start;
		const unsigned char *t = s + start;
		if (len && t[len - 1] == 0xc2)
			len--;
		if (kind == 'P' && len >= 2 && (t[0] == '$' || t[0] == '+') && t[1] == 'q')
			return 1;
		if (kind == ']')
			for (size_t j = 0; j < len; j++)
				if (t[j] == '?' && j > 0 && (t[j - 1] == ';' || t[j - 1] == '=') && (j + 1 == len || t[j + 1] == ';'))
					return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	tracker_t t;
	memset(&t, 0, sizeof t);
	for (size_t i = 0; i < size; i++)
		if (track_byte(&t, data[i]) == TRACK_SUBMIT && t.len > LINE_MAX_BYTES)
			__builtin_trap();
	(void)track_at_line_start(&t);
	editor_t e;
	memset(&e, 0, sizeof e);
	for (size_t at = 0; at < size;) {
		term_key k;
		size_t used = key_parse(data + at, size - at, &k);
		if (used == 0)
			break;
		if (used > size - at)
			__builtin_trap();
		editor_key(&e, &k);
		at += used;
	}
	screen_t s;
	memset(&s, 0, sizeof s);
	screen_scan(&s, data, size);
	buf_t out = { 0 };
	draw_editor(&out, &e, 80, 24);
	draw_pager(&out, (const char *)data, size, 0, 80, 24);
	draw_pager(&out, (const char *)data, size, 3, 7, 5);
	draw_pager(&out, (const char *)data, size, 0, 1, 3);
	draw_status(&out, "status", 80, 24);
	buf_free(&out);

	unask_t *u = calloc(1, sizeof *u);
	buf_t whole = { 0 }, parts = { 0 };
	if (!u || unask(u, data, size, &whole) < 0)
		goto done;
	memset(u, 0, sizeof *u);
	size_t step = size ? (size_t)data[0] % 7 + 1 : 1;
	for (size_t at = 0; at < size; at += step)
		if (unask(u, data + at, at + step < size ? step : size - at, &parts) < 0)
			goto done;
	if (parts.len != whole.len || (whole.len && memcmp(parts.p, whole.p, whole.len)))
		__builtin_trap(); /* pieces and whole differ */
	if (asks((const unsigned char *)whole.p, whole.len))
		__builtin_trap(); /* a terminal would answer something unask passed */
done:
	free(u);
	buf_free(&whole);
	buf_free(&parts);
	return 0;
}
