/* term.c — the terminal's key and escape parsing in C (term.c): the line
   tracker, the key parser and the command-line editor, and the screen
   scanner, on any bytes. */
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
	draw_status(&out, "status", 80, 24);
	buf_free(&out);
	return 0;
}
