/* vt.c — the screen model (runtime/vt.c) on any bytes: the first two
   bytes choose the screen's size, the rest is output, with a resize half
   way. Traps when the snapshot, fed to a fresh screen, does not show the
   same (tests/c/term/vt_same.h), or when anything reads or writes out of bounds. */
#include "vt_same.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (size < 2)
		return 0;
	int cols = 1 + data[0] % 40, rows = 1 + data[1] % 12;
	vt_t *v = vt_new(cols, rows, 20);
	if (!v)
		return 0;
	size_t half = 2 + (size - 2) / 2;
	vt_feed(v, data + 2, half - 2);
	if (size > 3 && vt_resize(v, 1 + data[2] % 40, 1 + data[3] % 12) < 0)
		__builtin_trap();
	vt_feed(v, data + half, size - half);
	char why[128];
	if (!vt_round_trip(v, 20, why, sizeof why))
		__builtin_trap();
	buf_t text = { 0 };
	if (vt_text(v, &text) < 0)
		__builtin_trap();
	buf_free(&text);
	vt_free(v);
	return 0;
}
