/* test_vt.c — the screen model (vt.c): what the sequences agents use do to
   the screen, and the property replay rests on: a screen's snapshot, fed
   to a fresh screen, shows the same (cells, cursor, pen, modes, region,
   saved cursor, scrollback), for hand-picked cases and for thousands of
   generated ones. */
#include <stdlib.h>

#include "tap.h"
#include "vt_same.h"

static char text[8192];

static const char *screen_text(vt_t *v)
{
	buf_t b = { 0 };
	vt_text(v, &b);
	snprintf(text, sizeof text, "%.*s", (int)b.len, b.p ? b.p : "");
	buf_free(&b);
	return text;
}

static vt_t *fed(int cols, int rows, int sb, const char *s)
{
	vt_t *v = vt_new(cols, rows, sb);
	vt_feed(v, s, strlen(s));
	return v;
}

static void test_drawing(void)
{
	vt_t *v = fed(20, 5, 0, "hello\r\nworld");
	is_str(screen_text(v), "hello\nworld", "text and CR LF");
	int x, y, vis;
	vt_cursor(v, &x, &y, &vis);
	ok(x == 5 && y == 1 && vis, "the cursor follows");
	vt_feed(v, "\x1b[3D\x1b[K!", strlen("\x1b[3D\x1b[K!"));
	is_str(screen_text(v), "hello\nwo!", "cursor back, erase to the end of line");
	vt_feed(v, "\x1b[1;3H\x1b[2@", strlen("\x1b[1;3H\x1b[2@"));
	is_str(screen_text(v), "he  llo\nwo!", "insert characters");
	vt_feed(v, "\x1b[3P", strlen("\x1b[3P"));
	is_str(screen_text(v), "helo\nwo!", "delete characters");
	vt_feed(v, "\x1b[2J", strlen("\x1b[2J"));
	is_str(screen_text(v), "", "erase the screen");
	vt_free(v);

	v = fed(10, 3, 0, "0123456789ab");
	is_str(screen_text(v), "0123456789\nab", "autowrap at the edge");
	vt_free(v);
	v = fed(10, 3, 0, "\x1b[?7l0123456789ab");
	is_str(screen_text(v), "012345678b", "no autowrap: the last column is overwritten");
	vt_free(v);

	v = fed(10, 3, 0, "\xe6\x97\xa5\xe6\x9c\xac!");
	is_str(screen_text(v), "\xe6\x97\xa5\xe6\x9c\xac!", "wide characters");
	const vt_cell *c = vt_cell_at(v, 0, 0);
	ok(c->w == 2 && vt_cell_at(v, 1, 0)->w == 0 && vt_cell_at(v, 4, 0)->cp == '!', "a wide character takes two cells");
	vt_feed(v, "\x1b[1;2Hx", strlen("\x1b[1;2Hx"));
	ok(vt_cell_at(v, 0, 0)->cp == 0 && vt_cell_at(v, 1, 0)->cp == 'x', "writing over half of one blanks it");
	vt_free(v);
	v = fed(10, 3, 0, "e\xcc\x81t\xc3\xa9");
	ok(vt_cell_at(v, 0, 0)->comb == 0x301 && vt_cell_at(v, 1, 0)->cp == 't' && vt_cell_at(v, 2, 0)->cp == 0xe9,
	   "a combining character joins the one before");
	vt_free(v);
	v = fed(10, 3, 0, "\x1b(0lqqk\x1b(Bq");
	is_str(screen_text(v), "\xe2\x94\x8c\xe2\x94\x80\xe2\x94\x80\xe2\x94\x90q", "DEC line drawing, then ASCII again");
	vt_free(v);
	v = fed(10, 3, 0, "a\xff\xc3(b");
	is_str(screen_text(v), "a\xef\xbf\xbd\xef\xbf\xbd(b", "bad UTF-8 draws U+FFFD and goes on");
	vt_free(v);
	/* overlong forms are no characters: E0 80 9B drawn as ESC came back
	   out of the snapshot as a control (found by fuzz-vt) */
	v = fed(10, 3, 0, "a\xe0\x80\x9b[2Jb\xf0\x80\x80\xa1" "c\xe0\xa0\x80");
	is_str(screen_text(v), "a\xef\xbf\xbd[2Jb\xef\xbf\xbd" "c\xe0\xa0\x80", "overlong UTF-8 draws U+FFFD; U+0800 is drawn");
	char why[128] = "";
	ok(vt_round_trip(v, 0, why, sizeof why), "and its snapshot shows the same (%s)", why);
	vt_free(v);
	v = fed(10, 3, 0, "a\x1b]0;title\x07" "b\x1bP1$r\x1b\\c\x1b[?2004hd\x1b[>4;1me");
	is_str(screen_text(v), "abcde", "OSC, DCS and private modes draw nothing");
	vt_free(v);
}

static void test_colours(void)
{
	vt_t *v = fed(20, 3, 0, "\x1b[1;3;38;2;1;2;3;48;5;200mA\x1b[0;91;44mB\x1b[38:2::10:20:30;7mC\x1b[m D");
	const vt_cell *a = vt_cell_at(v, 0, 0), *b = vt_cell_at(v, 1, 0), *c = vt_cell_at(v, 2, 0), *d = vt_cell_at(v, 4, 0);
	ok(a->fg == (VT_RGB | 0x010203) && a->bg == (VT_PAL | 200) && a->attr == (VT_BOLD | VT_ITALIC), "true colour, 256 colours, bold, italic");
	ok(b->fg == (VT_PAL | 9) && b->bg == (VT_PAL | 4) && b->attr == 0, "bright and basic colours, reset");
	ok(c->fg == (VT_RGB | 0x0a141e) && (c->attr & VT_INVERSE), "colon form with a colour space, then more attributes");
	ok(d->fg == 0 && d->bg == 0 && d->attr == 0, "SGR with no parameter resets");
	vt_feed(v, "\x1b[41m\x1b[2K", strlen("\x1b[41m\x1b[2K"));
	ok(vt_cell_at(v, 5, 0)->bg == (VT_PAL | 1), "erase fills with the pen's background");
	vt_free(v);
}

static void test_screens(void)
{
	vt_t *v = fed(10, 3, 5, "one\r\ntwo\r\nthree\r\nfour\r\nfive");
	is_str(screen_text(v), "three\nfour\nfive", "the screen scrolls");
	is_int(vt_scrollback(v), 2, "what scrolled off is kept");
	vt_feed(v, "\x1b[?1049h\x1b[Halt", strlen("\x1b[?1049h\x1b[Halt"));
	is_str(screen_text(v), "alt", "the alternate screen starts empty");
	ok(vt_alt(v), "and is shown");
	vt_feed(v, "\r\n\r\n\r\n\r\n", strlen("\r\n\r\n\r\n\r\n"));
	is_int(vt_scrollback(v), 2, "it keeps no scrollback");
	vt_feed(v, "\x1b[?1049l", strlen("\x1b[?1049l"));
	is_str(screen_text(v), "three\nfour\nfive", "leaving it shows the main screen again");
	int x, y, vis;
	vt_cursor(v, &x, &y, &vis);
	ok(x == 4 && y == 2, "with the cursor where it was");
	vt_free(v);

	v = fed(10, 5, 10, "1\r\n2\r\n3\r\n4\r\n5\x1b[2;4r\x1b[4;1H\n\n");
	is_str(screen_text(v), "1\n4\n\n\n5", "a scroll region scrolls alone");
	is_int(vt_scrollback(v), 0, "and keeps no scrollback");
	vt_feed(v, "\x1b[2;1H\x1bM", strlen("\x1b[2;1H\x1bM"));
	is_str(screen_text(v), "1\n\n4\n\n5", "reverse index at the region's top scrolls it down");
	vt_feed(v, "\x1b[r\x1b[3;1H\x1b[2L", strlen("\x1b[r\x1b[3;1H\x1b[2L"));
	is_str(screen_text(v), "1\n\n\n\n4", "insert lines");
	vt_feed(v, "\x1b[2M", strlen("\x1b[2M"));
	is_str(screen_text(v), "1\n\n4", "delete lines");
	vt_free(v);

	v = fed(10, 4, 10, "a\r\nb\r\nc\r\nd");
	ok(vt_resize(v, 6, 2) == 0, "resize");
	is_str(screen_text(v), "c\nd", "fewer rows keep the cursor's line");
	is_int(vt_scrollback(v), 2, "the lines above go to scrollback");
	ok(vt_resize(v, 0, 2) < 0, "a bad size is refused");
	vt_free(v);
	ok(vt_new(0, 10, 0) == NULL && vt_new(10, 2000, 0) == NULL, "vt_new refuses a bad size");
}

static const char *cases[] = {
	"plain",
	"hello\r\nworld\x1b[1;31m red\x1b[0m",
	"0123456789",                                 /* the cursor waits to wrap */
	"01234567\xe6\x97\xa5",                       /* a wide character waits to wrap */
	"\x1b[?1049hfull screen\x1b[5;3Hx\x1b[?25l",
	"a\x1b" "7\x1b[3;4H\x1b[1;32mb\x1b" "8c",
	"\x1b[2;4r\x1b[?6h\x1b[2;2Hin region",
	"\x1b[4hins\x1b[?7l\x1b(0q\x0e",
	"\x1b[44m\x1b[2Jblue",
	"1\r\n2\r\n3\r\n4\r\n5\r\n6\r\n7\r\n8\r\n9\r\n10\r\n11\r\n12 \x1b[7m  \x1b[m",
	"\x1b[?1049h\x1b" "7\x1b[2;2H\x1b[1m\x1b" "7alt\x1b[?47l",
};

/* sequences an agent's output is made of, for the generated cases */
static const char *tokens[] = {
	"a", "word ", "\xe6\x97\xa5", "e\xcc\x81", "\xe2\x9c\xbb", "\xf0\x9f\x98\x80", "\r", "\n", "\r\n", "\b", "\t",
	"\x1b[A", "\x1b[3B", "\x1b[5C", "\x1b[2D", "\x1b[H", "\x1b[3;7H", "\x1b[9;99H", "\x1b[K", "\x1b[1K", "\x1b[2K",
	"\x1b[J", "\x1b[1J", "\x1b[2J", "\x1b[3J", "\x1b[2L", "\x1b[M", "\x1b[3@", "\x1b[2P", "\x1b[4X", "\x1b[2;5r", "\x1b[r",
	"\x1b[?1049h", "\x1b[?1049l", "\x1b[?47h", "\x1b[?47l", "\x1b[?1047h", "\x1b" "7", "\x1b" "8", "\x1bM", "\x1b" "D",
	"\x1b" "E", "\x1b[s", "\x1b[u", "\x1b[1;31m", "\x1b[38;5;123m", "\x1b[48;2;1;2;3m", "\x1b[0m", "\x1b[7m", "\x1b[4;9m",
	"\x1b(0", "\x1b(B", "\x1b)0", "\x0e", "\x0f", "\x1b[?7l", "\x1b[?7h", "\x1b[4h", "\x1b[4l", "\x1b[?6h", "\x1b[?6l",
	"\x1b[S", "\x1b[2T", "\x1b[?25l", "\x1b[?25h", "\x1b[G", "\x1b[20G", "\x1b[5d", "\x1b[I", "\x1b[Z",
	"0123456789abcdefghij", "\x1b[?1048h", "\x1b[?1048l",
};

static void test_round_trip(void)
{
	char why[128];
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		vt_t *v = fed(10, 5, 50, cases[i]);
		int same = vt_round_trip(v, 50, why, sizeof why);
		ok(same, "round trip of case %zu%s%s", i, same ? "" : ": ", same ? "" : why);
		vt_free(v);
	}
	/* generated: a fixed seed, so a failure is there the next run too */
	unsigned seed = 12345;
	int failed = 0, n = 3000;
	for (int i = 0; i < n && failed < 3; i++) {
		int cols = 5 + i % 13, rows = 2 + i % 7;
		vt_t *v = vt_new(cols, rows, 40);
		char input[4096];
		size_t len = 0;
		int count = 1 + (int)(rand_r(&seed) % 60);
		for (int t = 0; t < count; t++) {
			const char *s = tokens[rand_r(&seed) % (sizeof tokens / sizeof *tokens)];
			size_t l = strlen(s);
			if (len + l >= sizeof input)
				break;
			memcpy(input + len, s, l);
			len += l;
		}
		vt_feed(v, input, len);
		if (!vt_round_trip(v, 40, why, sizeof why)) {
			failed++;
			tap_diag("# %dx%d: %s after:", cols, rows, why);
			for (size_t k = 0; k < len; k++)
				tap_diag(input[k] >= 0x20 && input[k] < 0x7f ? "%c" : "\\x%02x", (unsigned char)input[k]);
			tap_diag("\n");
		}
		vt_free(v);
	}
	ok(failed == 0, "round trip of %d generated screens", n);
}

int main(void)
{
	test_drawing();
	test_colours();
	test_screens();
	test_round_trip();
	return tap_done();
}
