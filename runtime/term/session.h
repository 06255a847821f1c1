/*
** session.h — the interactive session's relay (session.c) as its owner,
** the procy.pty binding (pty.c), sees it. See session.c for what it does.
*/
#ifndef PROCY_SESSION_H
#define PROCY_SESSION_H

#include "procy.h"
#include "term_record.h"

typedef struct session session_t;

/* What the relay tells its owner: a `!` command line, a line typed to the
   agent, a failure (already shown on the bottom row), or the end (code:
   the exit status, 128+sig for a signal, -1 when it was hung up), or the
   end of a program session_run started (code, sig as for the exit). */
enum { SESSION_COMMAND, SESSION_LINE, SESSION_ERROR, SESSION_EXIT, SESSION_RAN };
typedef void (*session_event_fn)(void *owner, int type, const char *text, size_t len,
                                 int code, int sig);

typedef struct session_where {
	const char *db;  /* the record to write term_events to, or NULL */
	const char *id;  /* the sessions row they belong to */
	const char *log; /* where procy's stderr goes meanwhile, or NULL */
	rec_rules   rules; /* the recorder's rule set (procy.redact) */
} session_where;

typedef struct session_info {
	pid_t       pid;
	int         cols, rows;
	uint64_t    bytes_in, bytes_out;
	rec_stats_t rec;
	int         alt_screen, running;
	int64_t     quiet_ns;   /* since the agent last wrote (loop clock) */
	char        title[128]; /* the window title it set last */
	int         titles;     /* times it set one */
	char        tail[256];  /* the last bytes it wrote */
	size_t      tail_len;
} session_info_t;

/* Starts spawn's program on a pty the size of our terminal, records as w
   says, and puts the terminal in raw mode. 0, or -1 with err filled: then
   nothing runs and the terminal is untouched. */
int  session_start(runtime_t *rt, const spawn_opts *spawn, const session_where *w,
                   session_event_fn fn, void *owner, session_t **out, err_t *err);
void session_show(session_t *s, const char *text, size_t len); /* the pager */
void session_status(session_t *s, const char *text);           /* the bottom row */
void session_pin(session_t *s, const char *text);              /* a row kept there; NULL: none */
void session_mark(session_t *s, const char *label, size_t len);
int  session_write(session_t *s, const char *p, size_t n);     /* -1 once it ended */
void session_info(session_t *s, session_info_t *out);
/* Runs argv on the person's terminal as a full-screen program of procy's
   own (the editor of !correct): the terminal back in its own mode and the
   program in the foreground, the agent's output held (and recorded)
   meanwhile; after, raw mode again, the held output written and the agent
   made to repaint, then SESSION_RAN. -1 with err: EBUSY while procy draws
   or another program runs, EPIPE once the session ended. */
int  session_run(session_t *s, char *const *argv, char *const *envp, err_t *err);
/* Hangs up the agent if it still runs and ends the session now. */
void session_hang_up(session_t *s);
/* The owner lets go: no more events; freed once the agent is reaped. */
void session_release(session_t *s);

/* procy.pty, the session's Lua binding (pty.c) */
int  luaopen_procy_pty(lua_State *L);
/* After lua_close: puts back any terminal a session left in raw mode. */
void session_shutdown(void);

#endif
