/* test_term.c — the session's terminal logic without a terminal: the typed
   line, key parsing, the command-line editor, the screen-mode scanner and
   what the drawing functions emit. */
#include "term.h"
#include "tap.h"

static int feed(tracker_t *t, const char *s, char *submitted, size_t size)
{
	int n = 0;
	for (; *s; s++)
		if (track_byte(t, (unsigned char)*s) == TRACK_SUBMIT) {
			snprintf(submitted, size, "%.*s", (int)t->len, t->line);
			n++;
		}
	return n;
}

static void test_tracker(void)
{
	tracker_t t = { 0 };
	char got[256] = "";
	ok(track_at_line_start(&t), "a new line is empty");
	is_int(feed(&t, "ls -l\r", got, sizeof got), 1, "Enter submits");
	is_str(got, "ls -l", "the submitted text");
	ok(track_at_line_start(&t), "after Enter the line is empty again");
	feed(&t, "a", got, sizeof got);
	ok(!track_at_line_start(&t), "after a character it is not");
	feed(&t, "\x7f", got, sizeof got);
	ok(track_at_line_start(&t), "backspace empties it again");
	feed(&t, "caf\xc3\xa9" "\x7f" "e\r", got, sizeof got);
	is_str(got, "cafe", "backspace removes a whole UTF-8 character");
	feed(&t, "one two\x17three\r", got, sizeof got);
	is_str(got, "one three", "Ctrl-W deletes a word");
	feed(&t, "junk\x15kept\r", got, sizeof got);
	is_str(got, "kept", "Ctrl-U clears the line");
	feed(&t, "x\x03", got, sizeof got);
	ok(track_at_line_start(&t), "Ctrl-C drops the line");
	feed(&t, "\x1b[A", got, sizeof got);
	ok(!track_at_line_start(&t), "after history recall (Up) the line is unknown");
	got[0] = 0;
	is_int(feed(&t, "\r", got, sizeof got), 0, "an unknown line is not reported as submitted");
	ok(track_at_line_start(&t), "Enter settles it");
	feed(&t, "\x1b[?62;22c\x1b[I\x1b]11;rgb:0/0/0\x07", got, sizeof got);
	ok(track_at_line_start(&t), "terminal replies (DA, focus, OSC) leave the line alone");
	feed(&t, "\x1b[200~first\rsecond\x1b[201~\r", got, sizeof got);
	is_str(got, "first\nsecond", "a paste keeps its newlines and does not submit early");
	feed(&t, "\x1b[200~", got, sizeof got);
	ok(!track_at_line_start(&t), "inside a paste is never a line start");
	feed(&t, "\x1b[201~\r", got, sizeof got);
	char big[LINE_MAX_BYTES + 100];
	memset(big, 'x', sizeof big - 2);
	big[sizeof big - 2] = '\r';
	big[sizeof big - 1] = 0;
	feed(&t, big, got, sizeof got);
	is_int((long long)t.len, LINE_MAX_BYTES, "a long line is bounded");
	/* what comes before a `!`: Esc alone, Alt-key, arrows, a paste */
	tracker_t e = { 0 };
	feed(&e, "\x1b", got, sizeof got);
	ok(!track_at_line_start(&e), "an ESC may start a sequence: no line start yet");
	track_esc_alone(&e);
	ok(track_at_line_start(&e), "the Esc key alone leaves the line start where it was");
	feed(&e, "ab\x1b", got, sizeof got);
	track_esc_alone(&e);
	ok(!track_at_line_start(&e), "and a line with text stays one");
	tracker_t a = { 0 };
	feed(&a, "\x1bx", got, sizeof got);
	ok(track_at_line_start(&a), "an Alt-key on an empty line leaves it empty");
	tracker_t u = { 0 };
	feed(&u, "\x1b[A", got, sizeof got);
	track_esc_alone(&u);
	ok(!track_at_line_start(&u), "an arrow (a whole sequence) is not undone by the Esc rule");
	tracker_t pst = { 0 };
	feed(&pst, "\x1b[200~pasted\x1b[201~", got, sizeof got);
	track_esc_alone(&pst);
	ok(!track_at_line_start(&pst), "after a paste the line holds the paste");
}

static void test_keys(void)
{
	term_key k;
	is_int(key_parse((const unsigned char *)"\x1b[D", 3, &k), 3, "CSI D is three bytes");
	is_int(k.type, KEY_LEFT, "left");
	is_int(key_parse((const unsigned char *)"\x1bOH", 3, &k), 3, "SS3 H");
	is_int(k.type, KEY_HOME, "home");
	key_parse((const unsigned char *)"\x1b[3~", 4, &k);
	is_int(k.type, KEY_DELETE, "delete");
	key_parse((const unsigned char *)"\x1b[200~", 6, &k);
	is_int(k.type, KEY_PASTE_START, "paste start");
	is_int(key_parse((const unsigned char *)"\x1b[", 2, &k), 0, "an unfinished sequence asks for more");
	is_int(key_parse((const unsigned char *)"\x1b", 1, &k), 1, "a lone ESC at the end is Esc");
	is_int(k.type, KEY_ESC, "Esc");
	is_int(key_parse((const unsigned char *)"\xc3\xa9x", 3, &k), 2, "a UTF-8 character");
	ok(k.type == KEY_CHAR && k.len == 2, "is one key");
	is_int(key_parse((const unsigned char *)"\xe2\x82", 2, &k), 0, "a cut UTF-8 character asks for more");
	key_parse((const unsigned char *)"\x17", 1, &k);
	ok(k.type == KEY_CTRL && k.ch[0] == 'W', "Ctrl-W");
}

static int type_keys(editor_t *e, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	int r = EDIT_KEEP;
	while (n > 0 && r == EDIT_KEEP) {
		term_key k;
		size_t used = key_parse(p, n, &k);
		if (!used)
			break;
		r = editor_key(e, &k);
		p += used;
		n -= used;
	}
	return r;
}

static void test_editor(void)
{
	editor_t e = { 0 };
	is_int(type_keys(&e, "hello wrld"), EDIT_KEEP, "typing keeps editing");
	type_keys(&e, "\x1b[D\x1b[D\x1b[Do");
	ok(e.len == 11 && memcmp(e.text, "hello world", 11) == 0, "left arrows and an insert");
	type_keys(&e, "\x01X\x05Y");
	ok(e.len == 13 && memcmp(e.text, "Xhello worldY", 13) == 0, "Ctrl-A and Ctrl-E");
	type_keys(&e, "\x17");
	ok(e.len == 7 && memcmp(e.text, "Xhello ", 7) == 0, "Ctrl-W");
	type_keys(&e, "\x01\x1b[C\x0b");
	ok(e.len == 1 && e.text[0] == 'X', "Ctrl-K kills to the end");
	type_keys(&e, "\x15");
	is_int((long long)e.len, 0, "Ctrl-U kills to the start");
	type_keys(&e, "\x1b[200~a\rb\x1b[201~");
	ok(e.len == 3 && memcmp(e.text, "a b", 3) == 0, "a paste is inserted, newlines as spaces");
	is_int(type_keys(&e, "\r"), EDIT_SUBMIT, "Enter runs");
	editor_clear(&e);
	is_int(type_keys(&e, "\x1b"), EDIT_CANCEL, "Esc leaves");
	is_int(type_keys(&e, "\x03"), EDIT_CANCEL, "Ctrl-C leaves");
	is_int(type_keys(&e, "\x7f"), EDIT_CANCEL, "backspace on an empty line leaves");
	is_int(type_keys(&e, "!"), EDIT_LITERAL, "! on an empty line types a literal !");
	type_keys(&e, "ab\xc3\xa9");
	type_keys(&e, "\x7f");
	ok(e.len == 2, "backspace removes a whole UTF-8 character");
}

static void test_screen(void)
{
	screen_t s = { 0 };
	const char *out = "text\x1b[?1049h\x1b[?25l\x1b[?1000;1006h\x1b[?2004h\x1b[>1u\x1b[>4;2m more";
	/* fed in two pieces, cut inside a sequence */
	screen_scan(&s, (const unsigned char *)out, 12);
	screen_scan(&s, (const unsigned char *)out + 12, strlen(out) - 12);
	ok(s.alt && s.cursor_hidden && s.paste && s.kitty == 1 && s.modkeys, "modes set, across a cut");
	ok(s.mouse == (1 | 1 << 4), "mouse modes 1000 and 1006");
	buf_t b = { 0 };
	draw_reset(&b, &s);
	buf_add(&b, "", 1);
	ok(strstr(b.p, "\x1b[?1049l") && strstr(b.p, "\x1b[?25h") && strstr(b.p, "\x1b[?1000l") &&
	   strstr(b.p, "\x1b[?1006l") && strstr(b.p, "\x1b[?2004l") && strstr(b.p, "\x1b[<u") &&
	   strstr(b.p, "\x1b[>4m"), "reset undoes every mode left set");
	screen_scan(&s, (const unsigned char *)"\x1b[?1049l\x1b[?25h\x1b[<u", 19);
	ok(!s.alt && !s.cursor_hidden && s.kitty == 0, "and they are cleared when the agent clears them");
	b.len = 0;
	screen_t clean = { 0 };
	draw_reset(&b, &clean);
	is_int((long long)b.len, 0, "a clean screen needs nothing");
	screen_scan(&clean, (const unsigned char *)"\x1b[1;31mred", 10);
	draw_reset(&b, &clean);
	is_int((long long)b.len, 4, "colour left on gets an SGR reset");
	screen_scan(&clean, (const unsigned char *)"\x1b[m", 3);
	ok(!clean.sgr, "CSI m resets it");
	buf_free(&b);

	screen_t t = { 0 };
	const char *title = "x\x1b]0;\xe2\x9c\xb3 Claude Code\x07y\x1b]2;busy\x1b\\z\x1b]8;;http://a\x07";
	screen_scan(&t, (const unsigned char *)title, 10); /* cut inside the title */
	screen_scan(&t, (const unsigned char *)title + 10, strlen(title) - 10);
	is_str(t.title, "busy", "OSC 2 ended by ST sets the title");
	is_int(t.titles, 2, "two titles seen; an OSC 8 link is not one");
	screen_scan(&t, (const unsigned char *)"\x1b]0;\xe2\x9c\xb3 Claude Code\x07", 20);
	is_str(t.title, "\xe2\x9c\xb3 Claude Code", "OSC 0 ended by BEL, UTF-8 kept");
	screen_scan(&t, (const unsigned char *)"\x1b]0;cut\x1b[?1049h", 15);
	ok(t.alt && !strcmp(t.title, "\xe2\x9c\xb3 Claude Code"), "an OSC cut by a new sequence sets nothing, the sequence counts");
}

static void test_draw(void)
{
	buf_t b = { 0 };
	editor_t e = { 0 };
	memcpy(e.text, "status", 6);
	e.len = e.cur = 6;
	draw_editor(&b, &e, 80, 24);
	buf_add(&b, "", 1);
	ok(strstr(b.p, "\x1b[24;1H") && strstr(b.p, "status") && strstr(b.p, "\x1b[24;15H"),
	   "the editor on the bottom row, cursor after the text");
	b.len = 0;
	const char *text = "one\ntwo\nthree\nfour\nfive";
	int total = draw_pager(&b, text, strlen(text), 0, 80, 4);
	buf_add(&b, "", 1);
	is_int(total, 5, "five lines");
	ok(strstr(b.p, "one") && strstr(b.p, "three") && !strstr(b.p, "four") && strstr(b.p, "lines 1-3 of 5"),
	   "a page of three lines and a footer on a four-row terminal");
	b.len = 0;
	char wide[200];
	memset(wide, 'w', 150);
	total = draw_pager(&b, wide, 150, 0, 80, 10);
	is_int(total, 2, "a long line wraps");

	/* a two-column line (as !help prints it) at two widths: words kept
	   whole, continuations under the second column */
	const char *row = "  !correct [N]    correct the prompt of turn N in your editor and keep it";
	b.len = 0;
	total = draw_pager(&b, row, strlen(row), 0, 40, 10);
	buf_add(&b, "", 1);
	is_int(total, 3, "a two-column line at 40 columns: three display lines");
	ok(strstr(b.p, "\x1b[1;1H  !correct [N]    correct the prompt of\x1b[2;19Hturn N in your editor\x1b[3;19Hand keep it"),
	   "broken at spaces, each continuation under the second column");
	b.len = 0;
	total = draw_pager(&b, row, strlen(row), 0, 100, 10);
	buf_add(&b, "", 1);
	is_int(total, 1, "the same page at 100 columns (a resize): one line again");
	const char *para = "In the command line: arrows, Home/End; Enter runs; Esc leaves.";
	b.len = 0;
	total = draw_pager(&b, para, strlen(para), 0, 30, 10);
	buf_add(&b, "", 1);
	ok(total == 3 && strstr(b.p, "\x1b[1;1HIn the command line: arrows,\x1b[2;1HHome/End; Enter runs; Esc\x1b[3;1Hleaves."),
	   "a paragraph wraps at its words, under its own indent");
	const char *prose = "Two spaces  after a stop do not make a column of prose at all here";
	b.len = 0;
	draw_pager(&b, prose, strlen(prose), 0, 30, 10);
	buf_add(&b, "", 1);
	ok(strstr(b.p, "\x1b[2;1H") != NULL, "prose with two spaces in it continues under its own indent, not a column");
	const char *longword = "    abcdefghijklmnopqrstuvwxyz0123456789";
	b.len = 0;
	draw_pager(&b, longword, strlen(longword), 0, 20, 10);
	buf_add(&b, "", 1);
	ok(strstr(b.p, "\x1b[1;1H    abcdefghijklmnop") != NULL, "an indented word too long for the line is cut, not left for an empty line");
	buf_free(&b);
}

int main(void)
{
	test_tracker();
	test_keys();
	test_editor();
	test_screen();
	test_draw();
	return tap_done();
}
