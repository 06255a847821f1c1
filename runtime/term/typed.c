/*
** typed.c — what the person typed goes into the record once the agent has
** shown it. A program that reads a password in canonical mode turns echo
** off, and nothing typed then is recorded (session.c). A full-screen
** program (Claude Code, any Ink or curses TUI, readline) keeps the terminal
** raw and echoes for itself — or, at its password prompt, does not, or
** draws '*'. So while the agent's terminal is raw, typed bytes (and the
** lines they end) wait here until the agent's output shows the last
** printable byte typed. Output that shows only a mask, output without it
** for ECHO_WAIT_NS, or no output at all for ECHO_SILENT_NS (a busy agent
** echoes late: 300 ms lost a prompt typed into Claude Code under load, and
** so did 300 ms of other drawing first)
** means the input was hidden: its printable bytes are
** not recorded (the keys that edit and submit are) and neither are the
** lines they were part of. More than ECHO_MAX bytes typed unseen is not
** a password (a paste into a program that does not echo): recorded.
**
** The cost of guessing wrong the other way is small: input a program does
** not echo (a paste shown as "[Pasted text]", vim's commands) is not in
** the record's 'i' events; the API capture still has every prompt.
*/
#define _GNU_SOURCE
#include <string.h>
#include <time.h>

#include "typed.h"

#define ECHO_WAIT_NS   2000000000 /* a typed byte not shown this long, while the agent drew, was hidden
                                     (300 ms lost a line typed into Claude Code, which drew its status first,
                                     under load) */
#define ECHO_SILENT_NS 5000000000LL /* the agent drew nothing at all: a busy one may take this long to echo */
#define ECHO_MAX     4096      /* more than this waiting is no password: a paste or a program */

typedef struct waiting {
	int64_t unused; /* unused: released events are stamped when released */
	char    kind;
	size_t  len;
} waiting_t;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int printable(unsigned char c)
{
	return c >= 0x20 && c != 0x7f;
}

/* The last byte of p the agent should show, keys that show nothing and
   escape sequences (arrows, function keys) left out; 0 if none. */
static unsigned char last_shown(const char *p, size_t n)
{
	unsigned char last = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == 0x1b) { /* ESC [ ... final, ESC O x, ESC x */
			if (i + 1 < n && (p[i + 1] == '[' || p[i + 1] == 'O')) {
				i += 2;
				while (i < n && !((unsigned char)p[i] >= 0x40 && (unsigned char)p[i] <= 0x7e))
					i++;
			} else {
				i++;
			}
			continue;
		}
		if (printable(c))
			last = c;
	}
	return last;
}

/* Everything waiting goes to the record, stamped now (so rows stay in time
   order with the output recorded meanwhile): shown, with its bytes; or
   hidden: input without its printable bytes, and no lines. */
static void release(typed_t *t, int hidden)
{
	const char *p = t->echo.p, *end = t->echo.p + t->echo.len;
	int64_t now = now_us();
	while (p < end) {
		waiting_t w;
		memcpy(&w, p, sizeof w);
		p += sizeof w;
		if (!hidden) {
			rec_event(t->rec, now, w.kind, p, w.len);
			if (w.kind == 'l')
				t->line(t->ctx, p, w.len);
		} else if (w.kind == 'i') {
			char keys[4096];
			size_t n = 0;
			for (size_t i = 0; i < w.len && n < sizeof keys; i++)
				if (!printable((unsigned char)p[i]))
					keys[n++] = p[i];
			if (n)
				rec_event(t->rec, now, 'i', keys, n);
		}
		p += w.len;
	}
	t->echo.len = 0;
	t->last = 0;
	t->since = 0;
	t->other = 0;
	if (t->echo.cap > 65536)
		buf_free(&t->echo);
}

void typed_record(typed_t *t, char kind, const char *p, size_t n, int raw)
{
	if (!raw && !t->echo.len) {
		rec_event(t->rec, now_us(), kind, p, n);
		if (kind == 'l')
			t->line(t->ctx, p, n);
		return;
	}
	waiting_t w = { 0, kind, n };
	if (buf_add(&t->echo, &w, sizeof w) < 0 || buf_add(&t->echo, p, n) < 0) {
		t->echo.len = 0; /* no memory: drop it all rather than record it unchecked */
		return;
	}
	if (!t->since)
		t->since = loop_now(t->loop);
	unsigned char last = kind == 'i' ? last_shown(p, n) : 0;
	if (last)
		t->last = last;
	/* A line comes before the keys that end it: it waits for them. Keys
	   with nothing to show (Enter alone), or far too much waiting to be a
	   password, go now, with what waited. */
	if ((kind == 'i' && !t->last) || t->echo.len > ECHO_MAX)
		release(t, 0);
}

/* The agent wrote p: does it show what was typed? */
void typed_output(typed_t *t, const char *p, size_t n)
{
	if (!t->echo.len || !t->last)
		return;
	if (memchr(p, t->last, n)) {
		release(t, 0);
		return;
	}
	static const char *const masks[] = { "*", "\xe2\x80\xa2", "\xe2\x97\x8f", "\xe2\x97\x89", NULL };
	for (const char *const *m = masks; *m; m++)
		if (memmem(p, n, *m, strlen(*m))) {
			release(t, 1);
			return;
		}
	t->other = 1;
}

/* Called now and then (and at the end, with end set): input still not
   shown was hidden. */
void typed_tick(typed_t *t, int end)
{
	if (t->echo.len && (end || loop_now(t->loop) - t->since > (t->other ? ECHO_WAIT_NS : ECHO_SILENT_NS)))
		release(t, t->last != 0);
}

void typed_free(typed_t *t)
{
	buf_free(&t->echo);
}
