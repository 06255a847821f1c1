/*
** lines.c — a child's output as procy.proc reads it: bytes kept until they
** are taken, as they came or a line at a time. A long line costs one pass
** however many reads bring it; a line longer than the caller's limit is
** cut there and the rest of it dropped as it comes, so no line can hold
** the reader up or take memory without bound. Pure C, no I/O.
*/
#include <string.h>

#include "procy.h"

size_t lines_waiting(const lines_t *l)
{
	return l->buf.len - l->off;
}

/* The end of the line at off, looked for only in what came since the
   last look. */
static char *line_end(lines_t *l)
{
	size_t avail = lines_waiting(l);
	if (l->scan >= avail)
		return NULL;
	char *from = l->buf.p + l->off;
	char *nl = memchr(from + l->scan, '\n', avail - l->scan);
	l->scan = nl ? (size_t)(nl - from) : avail;
	return nl;
}

static void consumed(lines_t *l, size_t n)
{
	l->off += n;
	l->scan = 0;
	if (l->off == l->buf.len) {
		l->buf.len = l->off = 0;
	} else if (l->off > 65536 && l->off > l->buf.len / 2) {
		buf_consume(&l->buf, l->off);
		l->off = 0;
	}
}

int lines_add(lines_t *l, const char *p, size_t n, size_t cap)
{
	if (l->skip) { /* the rest of a cut line */
		const char *nl = memchr(p, '\n', n);
		if (!nl)
			return 0;
		l->skip = 0;
		n -= (size_t)(nl + 1 - p);
		p = nl + 1;
	}
	size_t have = lines_waiting(l), room = cap > have ? cap - have : 0;
	size_t keep = n < room ? n : room;
	if (buf_add(&l->buf, p, keep) < 0)
		return 1;
	return keep < n;
}

int lines_ready(lines_t *l, size_t max)
{
	return line_end(l) != NULL || lines_waiting(l) > max;
}

int lines_next(lines_t *l, size_t max, int eof, const char **p, size_t *n)
{
	size_t avail = lines_waiting(l);
	char *start = l->buf.p ? l->buf.p + l->off : NULL;
	char *nl = line_end(l);
	*p = start;
	if (nl && (size_t)(nl - start) <= max) {
		*n = (size_t)(nl - start);
		l->taking = *n + 1;
		if (*n > 0 && start[*n - 1] == '\r')
			(*n)--;
		return LINE_WHOLE;
	}
	if (nl || avail > max) {
		*n = max;
		l->taking = max;
		l->cut++;
		l->skip = 1; /* lines_take drops the rest, here and as it comes */
		return LINE_CUT;
	}
	if (eof && avail) {
		*n = l->taking = avail;
		return LINE_LAST;
	}
	return 0;
}

void lines_take(lines_t *l)
{
	consumed(l, l->taking);
	l->taking = 0;
	if (!l->skip)
		return;
	char *nl = line_end(l); /* what is here of the cut line's rest */
	if (!nl) {
		consumed(l, lines_waiting(l));
		return;
	}
	consumed(l, (size_t)(nl - (l->buf.p + l->off)) + 1);
	l->skip = 0;
}

void lines_drain(lines_t *l)
{
	l->buf.len = l->off = l->scan = 0;
}

void lines_free(lines_t *l)
{
	buf_free(&l->buf);
	memset(l, 0, sizeof *l);
}
