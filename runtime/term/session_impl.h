/*
** session_impl.h — the interactive session's insides, shared by its two
** halves: the relay (session.c) and what procy draws over it (overlay.c).
** Nothing else includes it; the owner's view is session.h.
*/
#ifndef PROCY_SESSION_IMPL_H
#define PROCY_SESSION_IMPL_H

#include <termios.h>

#include "session.h"
#include "term.h"

enum { M_PASS, M_EDIT, M_PAGER, M_RUN }; /* M_RUN: a program of procy's own has the terminal */

struct session {
	runtime_t  *rt;
	pid_t       pid;
	int         master;       /* -1 once closed */
	int         master_eof, exited, status, finished;
	int         owned;        /* the owner (pty.c) still holds it */
	session_event_fn on_event;
	void       *owner;
	/* What the overlay asks of the relay beneath it, filled in by
	   session.c: overlay.c draws over the session and never names it */
	struct {
		void (*release_held)(session_t *s);  /* write the output held meanwhile */
		void (*redraw_agent)(session_t *s);  /* make the agent repaint */
		void (*type)(session_t *s, const char *p, size_t n, int secret); /* bytes for the agent */
	} up;
	loop_child  child;
	loop_io     in_io, m_io;
	loop_signal winch;
	loop_timer  flush, linger, redraw, rec_wait;
	int         rec_paused;   /* the recorder is behind: the agent's output waits */
	int         redraw_phase; /* 1: one row shorter, waiting for the agent; 2: it answered */
	int         redraw_erased; /* rows the agent cleared since the shrink */
	struct termios saved;
	int         raw;
	int         cols, rows;
	buf_t       typed;        /* for the agent, not yet taken by the pty */
	buf_t       held;         /* agent output held back while procy draws */
	buf_t       partial;      /* an escape sequence the agent's output ended in (to_terminal) */
	buf_t       draw;         /* scratch for what procy draws */
	int         mode;
	tracker_t   track;
	editor_t    ed;
	unsigned char keys[32];   /* the start of a key sequence cut by a read */
	size_t      nkeys;
	char       *pager;
	size_t      pager_len;
	int         pager_first, pager_total, pager_alt;
	buf_t       later;        /* pager text waiting for the command line to close */
	char        flash[256];   /* a message on the bottom row (overlay_status) */
	int         flash_on;
	loop_timer  flash_timer;  /* when it goes */
	char        pin[256];     /* the pinned bottom row ("": none) */
	int         pin_seen;     /* screen.repaints when it was last drawn */
	screen_t    screen;
	recorder_t *rec;
	buf_t       echo;         /* typed events waiting to be shown (typed.c) */
	unsigned char echo_last;  /* the last byte they should show */
	int64_t     echo_since;   /* loop clock: the first of them */
	int         echo_other;   /* the agent has drawn since, without showing them */
	int         rec_reported;
	int64_t     rec_failing;   /* since when flushes fail (0: they don't) */
	int64_t     started, last_output; /* loop clock */
	int64_t     last_key;     /* loop clock: the last read from the keyboard */
	char        tail[256];    /* the agent's last output bytes (idle patterns) */
	size_t      tail_len;
	uint64_t    bytes_in, bytes_out;
	int         saved_stderr; /* procy's stderr, while it goes to the log */
	pid_t       run_pid;      /* session_run's program, 0: none */
	loop_child  run_child;
	int         finish_after_run; /* the agent ended while it ran */
	list_node   all;
};

/* An event for the session's owner (a command, a typed line, the end) */
static inline void session_post(session_t *s, int type, const char *text, size_t len, int code, int sig)
{
	if (s->on_event)
		s->on_event(s->owner, type, text, len, code, sig);
}

/* typed.c: typed input into the record once the agent has shown it */
void typed_record(session_t *s, char kind, const char *p, size_t n, int raw);
void typed_output(session_t *s, const char *p, size_t n);
void typed_tick(session_t *s, int end);

/* overlay.c, for the relay */
void   overlay_flush(session_t *s);                    /* write what was drawn into s->draw */
void   overlay_status(session_t *s, const char *text); /* a message on the bottom row, for a while */
void   overlay_flash_again(session_t *s);              /* draw it again (the agent wrote) */
void   overlay_flash_hide(session_t *s);               /* clear its row (the agent will write) */
void   overlay_flash_end(session_t *s, int repaint);   /* take it away now */
void   overlay_pin(session_t *s);                      /* draw the pinned row */
void   overlay_pager(session_t *s, const char *text, size_t len);
void   overlay_editor(session_t *s);                   /* open the `!` command line */
size_t overlay_keys(session_t *s, const char *p, size_t n);
void   overlay_resized(session_t *s);
void   overlay_back(session_t *s, int repaint);        /* pass keys again: held output, then what waited */

#endif
