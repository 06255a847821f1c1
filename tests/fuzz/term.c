/* term.c — the terminal's key and escape parsing in C (term.c): the line
   tracker, the key parser and the command-line editor, the screen
   scanner, the pager at any width, and unask.c's filter (what it passes
   holds no query: filtering it again changes nothing; fed in pieces it
   passes what it passes fed whole), on any bytes. */
#include <stdlib.h>
#include <string.h>

#include "term.h"

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
	buf_t whole = { 0 }, again = { 0 }, parts = { 0 };
	if (!u || unask(u, data, size, &whole) < 0)
		goto done;
	memset(u, 0, sizeof *u);
	if (unask(u, (const unsigned char *)whole.p, whole.len, &again) < 0)
		goto done;
	/* a sequence left open at the end is held, not passed: compare what is complete */
	if (u->state == 0 && (again.len != whole.len || (whole.len && memcmp(again.p, whole.p, whole.len))))
		__builtin_trap(); /* a query got through the first time */
	memset(u, 0, sizeof *u);
	size_t step = size ? (size_t)data[0] % 7 + 1 : 1;
	for (size_t at = 0; at < size; at += step)
		if (unask(u, data + at, at + step < size ? step : size - at, &parts) < 0)
			goto done;
	u->len = 0;
	if (parts.len != whole.len || (whole.len && memcmp(parts.p, whole.p, whole.len)))
		__builtin_trap(); /* pieces and whole differ */
done:
	free(u);
	buf_free(&whole);
	buf_free(&again);
	buf_free(&parts);
	return 0;
}
