/*
** overlay.c — what procy draws over the agent in an interactive session,
** and the keys it takes meanwhile: the bottom-row status, the pinned row,
** the `!` command line and the pager. While the command line or the pager
** is open the agent's output is held back (session.c); leaving them gives
** the terminal back to the agent, which is made to repaint.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_impl.h"

void overlay_flush(session_t *s)
{
	tty_write(s->draw.p, s->draw.len);
	s->draw.len = 0;
}

void overlay_pin(session_t *s)
{
	s->pin_seen = s->screen.repaints;
	draw_pin(&s->draw, s->pin, s->cols, s->rows);
	overlay_flush(s);
}

/* ---- a message on the bottom row --------------------------------------------------- */

/* A message stays FLASH_NS (or until the next key). Before the agent
   writes, its row is cleared (the agent's lines must not scroll it up into
   theirs), and after, drawn again (the agent may have painted over it);
   when it goes, the row is given back: the pinned row drawn, or the agent
   made to repaint. */
#define FLASH_NS 4000000000LL

static void draw_flash(session_t *s)
{
	draw_status(&s->draw, s->flash, s->cols, s->rows);
	overlay_flush(s);
}

static void on_flash_end(loop_t *loop, loop_timer *t)
{
	(void)loop;
	overlay_flash_end(t->data, 1);
}

void overlay_status(session_t *s, const char *text)
{
	snprintf(s->flash, sizeof s->flash, "%s", text);
	s->flash_on = 1;
	loop_timer_start(s->rt->loop, &s->flash_timer, FLASH_NS, on_flash_end, s);
	if (s->mode == M_PASS)
		draw_flash(s); /* else when the command line or the pager closes */
}

void overlay_flash_again(session_t *s)
{
	if (s->flash_on && s->mode == M_PASS)
		draw_flash(s);
}

void overlay_flash_hide(session_t *s)
{
	if (s->flash_on && s->mode == M_PASS && !s->pin[0]) {
		draw_unpin(&s->draw, s->rows); /* the bottom row clear, the cursor where it was */
		overlay_flush(s);
	}
}

void overlay_flash_end(session_t *s, int repaint)
{
	if (!s->flash_on)
		return;
	s->flash_on = 0;
	loop_timer_stop(s->rt->loop, &s->flash_timer);
	if (s->mode != M_PASS)
		return; /* not on the screen */
	if (s->pin[0]) {
		overlay_pin(s);
		return;
	}
	draw_unpin(&s->draw, s->rows); /* a clear bottom row, the cursor where it was */
	overlay_flush(s);
	if (repaint)
		s->up.redraw_agent(s); /* the agent's own bottom row comes back */
}

/* Back to passing keys through: output held meanwhile is written, the
   agent repaints, and whatever waited for the command line is shown. */
void overlay_back(session_t *s, int repaint)
{
	s->mode = M_PASS;
	s->up.release_held(s);
	if (repaint)
		s->up.redraw_agent(s);
	if (s->later.len) {
		buf_t t = s->later;
		memset(&s->later, 0, sizeof s->later);
		overlay_pager(s, t.p, t.len);
		buf_free(&t);
	} else if (s->flash_on) {
		draw_flash(s);
	} else if (s->pin[0]) {
		overlay_pin(s);
	}
}

static void draw_page(session_t *s)
{
	s->pager_total = draw_pager(&s->draw, s->pager, s->pager_len, s->pager_first, s->cols, s->rows);
	overlay_flush(s);
}

void overlay_pager(session_t *s, const char *text, size_t len)
{
	if (s->mode == M_EDIT || s->mode == M_RUN || s->finished) {
		if (s->later.len)
			buf_add(&s->later, "\n", 1);
		buf_add(&s->later, text, len);
		return;
	}
	if (s->mode == M_PAGER) { /* more output while the pager is open */
		char *p = realloc(s->pager, s->pager_len + len + 1);
		if (!p)
			return;
		p[s->pager_len] = '\n';
		memcpy(p + s->pager_len + 1, text, len);
		s->pager = p;
		s->pager_len += len + 1;
		draw_page(s);
		return;
	}
	if (!(s->pager = malloc(len ? len : 1)))
		return;
	memcpy(s->pager, text, len);
	s->pager_len = len;
	s->pager_first = 0;
	s->mode = M_PAGER;
	/* On the main screen the pager takes the alternate one, and leaving it
	   gives the terminal back exactly as it was. */
	s->pager_alt = !s->screen.alt;
	if (s->pager_alt)
		tty_write("\x1b[?1049h", 8);
	draw_page(s);
}

static void close_pager(session_t *s)
{
	free(s->pager);
	s->pager = NULL;
	if (s->pager_alt) {
		tty_write("\x1b[?1049l", 8);
		tty_write(s->screen.cursor_hidden ? "\x1b[?25l" : "\x1b[?25h", 6);
	}
	overlay_back(s, !s->pager_alt);
}

void overlay_editor(session_t *s)
{
	s->mode = M_EDIT;
	editor_clear(&s->ed);
	s->nkeys = 0;
	buf_add(&s->draw, "\x1b" "7", 2); /* the agent's cursor, for draw_editor_close */
	draw_editor(&s->draw, &s->ed, s->cols, s->rows);
	overlay_flush(s);
}

static void close_editor(session_t *s)
{
	draw_editor_close(&s->draw, &s->screen, s->rows);
	overlay_flush(s);
	overlay_back(s, 1);
}

/* ---- keys while procy draws --------------------------------------------------------------- */

/* Feeds bytes as keys to fn until it leaves its mode; keeps an unfinished
   sequence for the next read. Returns the bytes of p used. */
static size_t feed_keys(session_t *s, const char *p, size_t n, int (*fn)(session_t *, const term_key *))
{
	unsigned char buf[4096 + sizeof s->keys];
	size_t have = s->nkeys, take = n < 4096 ? n : 4096;
	memcpy(buf, s->keys, have);
	memcpy(buf + have, p, take);
	size_t total = have + take, pos = 0;
	s->nkeys = 0;
	while (pos < total) {
		term_key k;
		size_t used = key_parse(buf + pos, total - pos, &k);
		if (used == 0) { /* cut by the read: keep for the next one */
			size_t rest = total - pos;
			if (rest <= sizeof s->keys) {
				memcpy(s->keys, buf + pos, rest);
				s->nkeys = rest;
			}
			return take;
		}
		pos += used;
		if (fn(s, &k))
			return pos > have ? pos - have : 0;
	}
	return take;
}

static int editor_keys(session_t *s, const term_key *k)
{
	switch (editor_key(&s->ed, k)) {
	case EDIT_SUBMIT:
		close_editor(s);
		session_post(s, SESSION_COMMAND, s->ed.text, s->ed.len, 0, 0);
		return 1;
	case EDIT_CANCEL:
		close_editor(s);
		return 1;
	case EDIT_LITERAL:
		close_editor(s);
		track_byte(&s->track, '!');
		s->up.type(s, "!", 1, 0);
		return 1;
	default:
		draw_editor(&s->draw, &s->ed, s->cols, s->rows);
		overlay_flush(s);
		return 0;
	}
}

static int pager_keys(session_t *s, const term_key *k)
{
	int page = s->rows > 2 ? s->rows - 1 : 1;
	int c = k->type == KEY_CHAR ? k->ch[0] : 0;
	if (k->type == KEY_PGDN || k->type == KEY_DOWN || c == ' ' || c == 'j' || c == 'f') {
		if (s->pager_first + page < s->pager_total) {
			s->pager_first += k->type == KEY_DOWN || c == 'j' ? 1 : page;
			draw_page(s);
		}
		return 0;
	}
	if (k->type == KEY_PGUP || k->type == KEY_UP || c == 'b' || c == 'k') {
		s->pager_first -= k->type == KEY_UP || c == 'k' ? 1 : page;
		if (s->pager_first < 0)
			s->pager_first = 0;
		draw_page(s);
		return 0;
	}
	if (c == 'q' || k->type == KEY_ESC || k->type == KEY_ENTER ||
	    (k->type == KEY_CTRL && k->ch[0] == 'C')) {
		close_pager(s);
		return 1;
	}
	return 0;
}

/* Keys while the command line or the pager is open. Returns the bytes of p used. */
size_t overlay_keys(session_t *s, const char *p, size_t n)
{
	return feed_keys(s, p, n, s->mode == M_EDIT ? editor_keys : pager_keys);
}

/* The terminal changed size: draw again what procy shows. */
void overlay_resized(session_t *s)
{
	if (s->mode == M_PASS && s->pin[0]) {
		overlay_pin(s);
		overlay_flash_again(s);
	} else if (s->mode == M_PASS) {
		overlay_flash_again(s);
	} else if (s->mode == M_EDIT) {
		draw_editor(&s->draw, &s->ed, s->cols, s->rows);
		overlay_flush(s);
	} else if (s->mode == M_PAGER) {
		draw_page(s);
	}
}
