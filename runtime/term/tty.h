/*
** tty.h — the person's own terminal (tty.c): raw mode, writing to it,
** stderr sent to a log while a session has the screen.
*/
#ifndef PROCY_TTY_H
#define PROCY_TTY_H

#include <termios.h>

#include "procy.h"

/* Saves stdin's terminal settings in saved and makes it raw. 0 or -1. */
int  tty_raw(struct termios *saved);
int  tty_restore(const struct termios *saved);
/* Writes all of p to stdout, waiting for room if it must. */
void tty_write(const void *p, size_t n);
/* Sends stderr to the file log (appended); returns the old stderr to give
   back to tty_restore_stderr, or -1 (nothing changed). */
int  tty_divert_stderr(const char *log);
void tty_restore_stderr(int saved);


/* [-0, +0] Adds player() to the module table on top of the stack
   (procy.pty): a recording replayed on this terminal (play.c). */
void play_open(lua_State *L);

#endif
