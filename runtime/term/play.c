/*
** play.c — the person's terminal while `procy play` replays a recording
** (procy.pty's player()): the recorded output goes out less the sequences
** that make a terminal answer (unask.c): the agent asked those of the
** terminal it ran on, long ago; played back, the answers would land in
** the person's input and be typed into the shell once play ends.
**
** While it plays, the terminal does not echo what is typed (or the mouse
** reports a recording turned on) and Ctrl-C still stops it; at every end
** (the last event, Ctrl-C, a signal, an error) the modes the recording
** left set are undone (term.c's screen tracking: the main screen, no mouse
** or focus reports, no bracketed paste, the cursor shown, ...), a soft
** reset (DECSTR) puts origin and keypad modes back, the scroll region is
** the whole screen again, input that arrived meanwhile is discarded and
** the terminal's settings are restored — as `asciinema play` does.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "procy.h"
#include "term.h"
#include "tty.h"

#define PLAYER_MT "procy.player"

typedef struct player {
	int            open;
	unask_t        filter;      /* the queries taken out */
	screen_t       screen;      /* the modes the output set, to undo */
	int            tty;         /* stdin is a terminal whose settings we changed */
	int            wrote;       /* something went to the terminal: close undoes what it set */
	struct termios saved;
} player_t;

static player_t *check(lua_State *L)
{
	player_t *p = luaL_checkudata(L, 1, PLAYER_MT);
	if (!p->open)
		luaL_error(L, "the player is closed");
	return p;
}

/* [-0, +1] pty.player() -> a player: the terminal set for playing (when
   stdin is one: no echo, line editing off, Ctrl-C still a signal) */
static int l_player(lua_State *L)
{
	player_t *p = lua_newuserdatauv(L, sizeof *p, 0);
	memset(p, 0, sizeof *p);
	luaL_setmetatable(L, PLAYER_MT);
	p->open = 1;
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &p->saved) == 0) {
		struct termios t = p->saved;
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ECHONL);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		p->tty = tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0;
	}
	return 1;
}

/* [-0, +1] The bytes at stack index 2 through p's filter, in a buffer
   pushed on the stack; NULL when memory ran out. */
static buf_t *filtered(lua_State *L, player_t *p)
{
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	buf_t *b = buf_push(L);
	return unask(&p->filter, (const unsigned char *)s, n, b) < 0 ? NULL : b;
}

/* [-0, +1] p:filter(bytes) -> the bytes that may reach the terminal (for
   tests: write() sends them) */
static int l_filter(lua_State *L)
{
	buf_t *b = filtered(L, check(L));
	if (!b)
		return procy_fail_errno(L, ENOMEM, "play");
	lua_pushlstring(L, b->p ? b->p : "", b->len);
	return 1;
}

/* [-0, +1] p:write(bytes) -> true | nil, err, code: recorded output to the
   terminal, queries taken out, its modes followed */
static int l_write(lua_State *L)
{
	player_t *p = check(L);
	buf_t *b = filtered(L, p);
	if (!b)
		return procy_fail_errno(L, ENOMEM, "play");
	screen_scan(&p->screen, (const unsigned char *)b->p, b->len);
	tty_write(b->p, b->len);
	p->wrote = 1;
	lua_pushboolean(L, 1);
	return 1;
}

/* [-0, +0] p:close(): the terminal as it was (idempotent; also __gc and
   __close) */
static int l_close(lua_State *L)
{
	player_t *p = luaL_checkudata(L, 1, PLAYER_MT);
	if (!p->open)
		return 0;
	p->open = 0;
	if (p->wrote) {
		buf_t b = { 0 };
		unask_end(&p->filter, &b); /* a long string cut off mid-way: ended, or it would take in the rest */
		draw_reset(&b, &p->screen);
		/* DECSTR (origin, keypad, insert, charsets), the scroll region where
		   DECSTR does not reach it (the cursor kept), the cursor, a fresh line */
		static const char tail[] = "\x1b[!p\x1b" "7\x1b[r\x1b" "8\x1b[?25h\r\n";
		buf_add(&b, tail, sizeof tail - 1);
		tty_write(b.p, b.len);
		buf_free(&b);
	}
	if (p->tty) {
		tcflush(STDIN_FILENO, TCIFLUSH); /* what was typed, or reported, while it played */
		tcsetattr(STDIN_FILENO, TCSADRAIN, &p->saved);
	}
	return 0;
}

void play_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "filter", l_filter }, { "write", l_write }, { "close", l_close }, { NULL, NULL },
	};
	procy_class(L, PLAYER_MT, methods, l_close, NULL);
	lua_pushcfunction(L, l_player);
	lua_setfield(L, -2, "player");
}
