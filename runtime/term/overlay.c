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

#include "overlay.h"
#include "tty.h"

void overlay_flush(overlay_t *o)
{
	tty_write(o->draw.p, o->draw.len);
	o->draw.len = 0;
}

void overlay_pin(overlay_t *o)
{
	o->pin_seen = o->screen->repaints;
	draw_pin(&o->draw, o->pin, o->cols, o->rows);
	overlay_flush(o);
}

/* ---- a message on the bottom row --------------------------------------------------- */

/* A message stays FLASH_NS (or until the next key). Before the agent
   writes, its row is cleared (the agent's lines must not scroll it up into
   theirs), and after, drawn again (the agent may have painted over it);
   when it goes, the row is given back: the pinned row drawn, or the agent
   made to repaint. */
#define FLASH_NS 4000000000LL

static void draw_flash(overlay_t *o)
{
	draw_status(&o->draw, o->flash, o->cols, o->rows);
	overlay_flush(o);
}

static void on_flash_end(loop_t *loop, loop_timer *t)
{
	(void)loop;
	overlay_flash_end(t->data, 1);
}

void overlay_status(overlay_t *o, const char *text)
{
	snprintf(o->flash, sizeof o->flash, "%s", text);
	o->flash_on = 1;
	loop_timer_start(o->loop, &o->flash_timer, FLASH_NS, on_flash_end, o);
	if (o->mode == M_PASS)
		draw_flash(o); /* else when the command line or the pager closes */
}

void overlay_flash_again(overlay_t *o)
{
	if (o->flash_on && o->mode == M_PASS)
		draw_flash(o);
}

void overlay_flash_hide(overlay_t *o)
{
	if (o->flash_on && o->mode == M_PASS && !o->pin[0]) {
		draw_unpin(&o->draw, o->rows); /* the bottom row clear, the cursor where it was */
		overlay_flush(o);
	}
}

void overlay_flash_end(overlay_t *o, int repaint)
{
	if (!o->flash_on)
		return;
	o->flash_on = 0;
	loop_timer_stop(o->loop, &o->flash_timer);
	if (o->mode != M_PASS)
		return; /* not on the screen */
	if (o->pin[0]) {
		overlay_pin(o);
		return;
	}
	draw_unpin(&o->draw, o->rows); /* a clear bottom row, the cursor where it was */
	overlay_flush(o);
	if (repaint)
		o->up.redraw_agent(o->up.ctx); /* the agent's own bottom row comes back */
}

/* Back to passing keys through: output held meanwhile is written, the
   agent repaints, and whatever waited for the command line is shown. */
void overlay_back(overlay_t *o, int repaint)
{
	o->mode = M_PASS;
	o->up.release_held(o->up.ctx);
	if (repaint)
		o->up.redraw_agent(o->up.ctx);
	if (o->later.len) {
		buf_t t = o->later;
		memset(&o->later, 0, sizeof o->later);
		overlay_pager(o, t.p, t.len);
		buf_free(&t);
	} else if (o->flash_on) {
		draw_flash(o);
	} else if (o->pin[0]) {
		overlay_pin(o);
	}
}

static void draw_page(overlay_t *o)
{
	o->pager_total = draw_pager(&o->draw, o->pager, o->pager_len, o->pager_first, o->cols, o->rows);
	overlay_flush(o);
}

void overlay_pager(overlay_t *o, const char *text, size_t len)
{
	if (o->mode == M_EDIT || o->mode == M_RUN || o->closed) {
		if (o->later.len)
			buf_add(&o->later, "\n", 1);
		buf_add(&o->later, text, len);
		return;
	}
	if (o->mode == M_PAGER) { /* more output while the pager is open */
		char *p = realloc(o->pager, o->pager_len + len + 1);
		if (!p)
			return;
		p[o->pager_len] = '\n';
		memcpy(p + o->pager_len + 1, text, len);
		o->pager = p;
		o->pager_len += len + 1;
		draw_page(o);
		return;
	}
	if (!(o->pager = malloc(len ? len : 1)))
		return;
	memcpy(o->pager, text, len);
	o->pager_len = len;
	o->pager_first = 0;
	o->mode = M_PAGER;
	/* On the main screen the pager takes the alternate one, and leaving it
	   gives the terminal back exactly as it was. */
	o->pager_alt = !o->screen->alt;
	if (o->pager_alt)
		tty_write("\x1b[?1049h", 8);
	draw_page(o);
}

static void close_pager(overlay_t *o)
{
	free(o->pager);
	o->pager = NULL;
	if (o->pager_alt) {
		tty_write("\x1b[?1049l", 8);
		tty_write(o->screen->cursor_hidden ? "\x1b[?25l" : "\x1b[?25h", 6);
	}
	overlay_back(o, !o->pager_alt);
}

void overlay_editor(overlay_t *o)
{
	o->mode = M_EDIT;
	editor_clear(&o->ed);
	o->nkeys = 0;
	buf_add(&o->draw, "\x1b" "7", 2); /* the agent's cursor, for draw_editor_close */
	draw_editor(&o->draw, &o->ed, o->cols, o->rows);
	overlay_flush(o);
}

static void close_editor(overlay_t *o)
{
	draw_editor_close(&o->draw, o->screen, o->rows);
	overlay_flush(o);
	overlay_back(o, 1);
}

/* ---- keys while procy draws --------------------------------------------------------------- */

/* Feeds bytes as keys to fn until it leaves its mode; keeps an unfinished
   sequence for the next read. Returns the bytes of p used. */
static size_t feed_keys(overlay_t *o, const char *p, size_t n, int (*fn)(overlay_t *, const term_key *))
{
	unsigned char buf[4096 + sizeof o->keys];
	size_t have = o->nkeys, take = n < 4096 ? n : 4096;
	memcpy(buf, o->keys, have);
	memcpy(buf + have, p, take);
	size_t total = have + take, pos = 0;
	o->nkeys = 0;
	while (pos < total) {
		term_key k;
		size_t used = key_parse(buf + pos, total - pos, &k);
		if (used == 0) { /* cut by the read: keep for the next one */
			size_t rest = total - pos;
			if (rest <= sizeof o->keys) {
				memcpy(o->keys, buf + pos, rest);
				o->nkeys = rest;
			}
			return take;
		}
		pos += used;
		if (fn(o, &k))
			return pos > have ? pos - have : 0;
	}
	return take;
}

static int editor_keys(overlay_t *o, const term_key *k)
{
	switch (editor_key(&o->ed, k)) {
	case EDIT_SUBMIT:
		close_editor(o);
		o->up.command(o->up.ctx, o->ed.text, o->ed.len);
		return 1;
	case EDIT_CANCEL:
		close_editor(o);
		return 1;
	case EDIT_LITERAL:
		close_editor(o);
		o->up.type(o->up.ctx, "!", 1);
		return 1;
	default:
		draw_editor(&o->draw, &o->ed, o->cols, o->rows);
		overlay_flush(o);
		return 0;
	}
}

static int pager_keys(overlay_t *o, const term_key *k)
{
	int page = o->rows > 2 ? o->rows - 1 : 1;
	int c = k->type == KEY_CHAR ? k->ch[0] : 0;
	if (k->type == KEY_PGDN || k->type == KEY_DOWN || c == ' ' || c == 'j' || c == 'f') {
		if (o->pager_first + page < o->pager_total) {
			o->pager_first += k->type == KEY_DOWN || c == 'j' ? 1 : page;
			draw_page(o);
		}
		return 0;
	}
	if (k->type == KEY_PGUP || k->type == KEY_UP || c == 'b' || c == 'k') {
		o->pager_first -= k->type == KEY_UP || c == 'k' ? 1 : page;
		if (o->pager_first < 0)
			o->pager_first = 0;
		draw_page(o);
		return 0;
	}
	if (c == 'q' || k->type == KEY_ESC || k->type == KEY_ENTER ||
	    (k->type == KEY_CTRL && k->ch[0] == 'C')) {
		close_pager(o);
		return 1;
	}
	return 0;
}

/* Keys while the command line or the pager is open. Returns the bytes of p used. */
size_t overlay_keys(overlay_t *o, const char *p, size_t n)
{
	return feed_keys(o, p, n, o->mode == M_EDIT ? editor_keys : pager_keys);
}

/* The terminal changed size: draw again what procy shows. */
void overlay_resized(overlay_t *o)
{
	if (o->mode == M_PASS && o->pin[0]) {
		overlay_pin(o);
		overlay_flash_again(o);
	} else if (o->mode == M_PASS) {
		overlay_flash_again(o);
	} else if (o->mode == M_EDIT) {
		draw_editor(&o->draw, &o->ed, o->cols, o->rows);
		overlay_flush(o);
	} else if (o->mode == M_PAGER) {
		draw_page(o);
	}
}

void overlay_init(overlay_t *o, loop_t *loop, const screen_t *screen)
{
	memset(o, 0, sizeof *o);
	o->loop = loop;
	o->screen = screen;
	o->mode = M_PASS;
	loop_timer_init(&o->flash_timer);
}

void overlay_free(overlay_t *o)
{
	loop_timer_stop(o->loop, &o->flash_timer);
	buf_free(&o->draw);
	buf_free(&o->later);
	free(o->pager);
	o->pager = NULL;
}
