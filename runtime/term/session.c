/*
** session.c — the interactive session's relay (procy.pty is its Lua face,
** in pty.c).
**
** procy puts the person's terminal in raw mode, runs the agent on a new
** pseudo-terminal of the same size, and copies bytes both ways in C. What
** the agent writes goes to the terminal and to the recorder; what the
** person types goes to the agent and the recorder (not while the agent's
** terminal reads a password: echo off in canonical mode), except `!` at the
** start of an empty line, which opens procy's command line on the bottom
** row. While procy draws (the command line, a pager: overlay.c) the agent's
** output is held back, and afterwards the agent is made to redraw. The owner (pty.c)
** hears of commands, typed lines, errors and the exit through a callback,
** and draws with session_show, session_status and session_pin (a bottom
** row kept out of the agent's reach: its terminal is a row shorter and the
** rows above scroll on their own). Nothing here touches Lua.
**
** The terminal is put back on every way out: the agent's exit,
** session_hang_up (s:close, garbage collection of a cancelled or failed
** task), and session_shutdown after lua_close. If procy is killed outright,
** the kernel closes the pty master and the agent, which leads the pty's
** session, gets SIGHUP.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "session.h"
#include "term.h"
#include "tty.h"
#include "overlay.h"
#include "typed.h"
#include "redraw.h"

struct session {
	runtime_t  *rt;
	pid_t       pid;
	int         master;       /* -1 once closed */
	int         master_eof, exited, status, finished;
	int         owned;        /* the owner (pty.c) still holds it */
	session_event_fn on_event;
	void       *owner;
	loop_child  child;
	loop_io     in_io, m_io;
	loop_signal winch;
	loop_timer  flush, linger, rec_wait;
	int         rec_paused;   /* the recorder is behind: the agent's output waits */
	redraw_t    redraw;       /* making the agent repaint (redraw.c) */
	struct termios saved;
	int         raw;
	buf_t       typed;        /* for the agent, not yet taken by the pty */
	buf_t       held;         /* agent output held back while procy draws */
	buf_t       partial;      /* an escape sequence the agent's output ended in (to_terminal) */
	tracker_t   track;
	screen_t    screen;       /* the agent's, as its output says */
	overlay_t   ov;           /* what procy draws over it (overlay.c) */
	typed_t     in;           /* what the person typed, waiting to be shown (typed.c) */
	recorder_t *rec;
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
static void session_post(session_t *s, int type, const char *text, size_t len, int code, int sig)
{
	if (s->on_event)
		s->on_event(s->owner, type, text, len, code, sig);
}

#define HOLD_MAX   (4 << 20)   /* agent output held back while procy draws */
#define PARTIAL_MAX 4096       /* an escape sequence the output ends in, held for its rest */
#define TYPED_MAX  (1 << 20)   /* typed bytes the agent has not read yet */
#define LINGER_NS  200000000   /* after the exit, wait this long for the last output */
#define FLUSH_NS   50000000    /* recorder flush period */
#define REC_PATIENCE 2000000000 /* recording failing this long gets reported */
#define REC_PAUSE_AT  (2 << 20) /* output queued for the recorder: stop reading the agent */
#define REC_RESUME_AT (512 << 10)
#define REC_WAIT_NS   2000000   /* how often a paused relay looks again */

static list_t all_sessions;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void session_release_held(session_t *s);
static void session_redraw_agent(session_t *s);
static void session_type(session_t *s, const char *p, size_t n, int secret);

/* ---- recording ------------------------------------------------------------------- */

static void report(session_t *s, const char *fmt, const char *what)
{
	char msg[512];
	snprintf(msg, sizeof msg, fmt, what ? what : "");
	overlay_status(&s->ov, msg);
	session_post(s, SESSION_ERROR, msg, strlen(msg), 0, 0);
}

static void rec(session_t *s, char kind, const void *p, size_t n)
{
	rec_event(s->rec, now_us(), kind, p, n);
}

/* Flushes the recorder. A lock held by another writer fails a flush now and
   then; only a failure that lasts (REC_PATIENCE) is worth telling, once. */
static void on_flush(loop_t *loop, loop_timer *t)
{
	session_t *s = t->data;
	typed_tick(&s->in, 0);
	if (rec_flush(s->rec) == 0) {
		s->rec_failing = 0;
	} else if (!s->rec_failing) {
		s->rec_failing = loop_now(loop);
	} else if (!s->rec_reported && loop_now(loop) - s->rec_failing > REC_PATIENCE) {
		rec_stats_t st;
		rec_stats(s->rec, &st);
		s->rec_reported = 1;
		report(s, "recording failed: %s (the agent keeps running; procy keeps trying)", st.error);
	}
	if (!s->finished)
		loop_timer_start(loop, &s->flush, FLUSH_NS, on_flush, s);
}

/* ---- output: agent -> terminal ---------------------------------------------------- */

/* The agent's output to the terminal. What procy draws (the command line,
   the pager, the pinned row, a status) must never land inside one of the
   agent's escape sequences (a title's OSC cut by a read would swallow the
   pager's switch to the alternate screen): a sequence the output ends in
   waits in s->partial for the rest of it (up to PARTIAL_MAX). */
static void to_terminal(session_t *s, const char *p, size_t n)
{
	overlay_flash_hide(&s->ov); /* the message must not scroll up with the agent's lines */
	screen_scan(&s->screen, (const unsigned char *)p, n);
	size_t keep = screen_in_sequence(&s->screen) ? (size_t)(s->screen.scanned - s->screen.seq_at) : 0;
	if (keep > PARTIAL_MAX)
		keep = 0;
	if (!s->partial.len) { /* the usual case: nothing held */
		tty_write(p, n - keep);
		if (keep)
			buf_add(&s->partial, p + n - keep, keep);
	} else if (buf_add(&s->partial, p, n) == 0) {
		tty_write(s->partial.p, s->partial.len - keep);
		buf_consume(&s->partial, s->partial.len - keep);
	} else { /* no memory: write it all */
		tty_write(s->partial.p, s->partial.len);
		tty_write(p, n);
		s->partial.len = 0;
	}
	if (s->ov.pin[0] && s->screen.repaints != s->ov.pin_seen)
		overlay_pin(&s->ov); /* the agent may have wiped it, or reset the scroll region */
	overlay_flash_again(&s->ov); /* or painted over the message */
}

static void agent_output(session_t *s, const char *p, size_t n)
{
	redraw_output(&s->redraw, p, n, s->ov.rows);
	typed_output(&s->in, p, n); /* what it shows of the input goes first */
	rec(s, 'o', p, n);
	s->bytes_out += n;
	s->last_output = loop_now(s->rt->loop);
	keep_last(s->tail, sizeof s->tail, &s->tail_len, p, n);
	if (s->ov.mode == M_PASS)
		to_terminal(s, p, n);
	else if (buf_add(&s->held, p, n) < 0)
		to_terminal(s, p, n); /* out of memory: show it rather than lose it */
}

/* What the relay waits for on the pty: output, unless procy is drawing
   with much held back, or the recorder is behind (like a terminal that is
   paused, the agent blocks on its writes meanwhile); room for input. */
static uint32_t master_events(session_t *s)
{
	int out = (s->ov.mode == M_PASS || s->held.len < HOLD_MAX) && !s->rec_paused;
	return (out ? EPOLLIN : 0) | (s->typed.len ? EPOLLOUT : 0);
}

static void session_release_held(session_t *s)
{
	to_terminal(s, s->held.p, s->held.len);
	s->held.len = 0;
	if (s->held.cap > HOLD_MAX)
		buf_free(&s->held);
	if (s->master >= 0 && !s->master_eof)
		loop_io_modify(s->rt->loop, &s->m_io, master_events(s));
}

/* The recorder is behind (its writer has not come for a while): the relay
   reads nothing more from the agent until it has caught up. */
static void on_rec_wait(loop_t *loop, loop_timer *t)
{
	session_t *s = t->data;
	if (rec_backlog(s->rec) > REC_RESUME_AT) {
		loop_timer_start(loop, t, REC_WAIT_NS, on_rec_wait, s);
		return;
	}
	s->rec_paused = 0;
	if (s->master >= 0 && !s->master_eof)
		loop_io_modify(loop, &s->m_io, master_events(s));
}

static void finish(session_t *s);

static void read_agent(session_t *s)
{
	char chunk[65536];
	for (int i = 0; i < 16 && !s->master_eof; i++) {
		if (s->ov.mode != M_PASS && s->held.len >= HOLD_MAX) {
			/* like a paused terminal: the agent blocks until we draw less */
			loop_io_modify(s->rt->loop, &s->m_io, master_events(s));
			return;
		}
		if (!s->rec_paused && rec_backlog(s->rec) > REC_PAUSE_AT) {
			s->rec_paused = 1;
			loop_io_modify(s->rt->loop, &s->m_io, master_events(s));
			loop_timer_start(s->rt->loop, &s->rec_wait, REC_WAIT_NS, on_rec_wait, s);
			return;
		}
		ssize_t n = read(s->master, chunk, sizeof chunk);
		if (n > 0) {
			agent_output(s, chunk, (size_t)n);
			if (n < 512)
				return; /* a keystroke's echo, most likely all there is: skip the EAGAIN read */
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			return;
		} else { /* EIO: every slave descriptor is closed */
			s->master_eof = 1;
			loop_io_stop(s->rt->loop, &s->m_io);
			if (s->exited)
				finish(s);
			return;
		}
	}
}

/* ---- input: terminal -> agent ---------------------------------------------------- */

static void write_agent(session_t *s)
{
	while (s->typed.len > 0 && s->master >= 0) {
		ssize_t n = write(s->master, s->typed.p, s->typed.len);
		if (n > 0)
			buf_consume(&s->typed, (size_t)n);
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && errno == EAGAIN)
			break;
		else {
			s->typed.len = 0; /* the pty is gone */
			break;
		}
	}
	if (s->master < 0 || s->master_eof)
		return;
	loop_io_modify(s->rt->loop, &s->m_io, master_events(s));
	/* stop reading the keyboard while the agent is not reading us */
	if (s->in_io.active)
		loop_io_modify(s->rt->loop, &s->in_io, s->typed.len < TYPED_MAX ? EPOLLIN : 0);
}

static void on_master(loop_t *loop, loop_io *w, uint32_t events)
{
	(void)loop;
	session_t *s = w->data;
	if (events & EPOLLOUT)
		write_agent(s);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		read_agent(s);
}

/* Password prompts turn echo off but keep canonical mode (SECRET);
   full-screen programs turn both off and echo for themselves (RAW: what
   they do not show is not recorded either, typed.c). */
enum { COOKED, RAW, SECRET };
static int agent_reads(session_t *s)
{
	struct termios t;
	if (s->master < 0 || tcgetattr(s->master, &t) < 0)
		return COOKED;
	if (!(t.c_lflag & ICANON))
		return RAW;
	return t.c_lflag & ECHO ? COOKED : SECRET;
}

static void session_type(session_t *s, const char *p, size_t n, int secret)
{
	if (n == 0)
		return;
	if (!secret)
		typed_record(&s->in, 'i', p, n, agent_reads(s) == RAW);
	s->bytes_in += n;
	if (buf_add(&s->typed, p, n) < 0)
		return;
	write_agent(s);
}

/* ---- the agent's size ------------------------------------------------------------- */

/* The rows the agent has: one less while a row is pinned. */
static int agent_rows(session_t *s)
{
	return s->ov.rows - (s->ov.pin[0] && s->ov.rows > 2);
}

static void set_size(session_t *s, int rows)
{
	redraw_stop(&s->redraw); /* a real change repaints anyway */
	pty_resize(s->master, s->ov.cols, rows);
}

/* What procy drew is gone: the agent paints its screen again (redraw.c). */
static void session_redraw_agent(session_t *s)
{
	redraw_start(&s->redraw, s->master, s->ov.cols, agent_rows(s));
}

/* ---- keys ------------------------------------------------------------------------------ */

/* Passes typed bytes on, watching for `!` at the start of an empty line.
   Returns the bytes used (the `!` included when it opened the editor). */
static size_t pass_keys(session_t *s, const char *p, size_t n)
{
	overlay_flash_end(&s->ov, 1); /* a message stays until the next key */
	int reads = agent_reads(s), secret = reads == SECRET;
	size_t i = 0;
	for (; i < n; i++) {
		if (secret)
			continue; /* neither tracked nor recorded */
		if (p[i] == '!' && track_at_line_start(&s->track))
			break;
		if (track_byte(&s->track, (unsigned char)p[i]) == TRACK_SUBMIT)
			typed_record(&s->in, 'l', s->track.line, s->track.len, reads == RAW);
	}
	session_type(s, p, i, secret);
	if (i == n)
		return n;
	overlay_editor(&s->ov);
	return i + 1;
}

static void on_keyboard(loop_t *loop, loop_io *w, uint32_t events)
{
	(void)events;
	session_t *s = w->data;
	char chunk[4096];
	ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) { /* the terminal is gone; SIGHUP follows */
		loop_io_stop(loop, w);
		return;
	}
	/* an ESC that ended the last read and was followed by nothing for a
	   while was the Esc key: `!` may start a command after it */
	int64_t now = loop_now(loop);
	if (now - s->last_key > ESC_ALONE_NS)
		track_esc_alone(&s->track);
	s->last_key = now;
	const char *p = chunk;
	size_t left = (size_t)n;
	while (left > 0 && !s->finished) {
		size_t used = s->ov.mode == M_PASS ? pass_keys(s, p, left)
		            : overlay_keys(&s->ov, p, left);
		p += used;
		left -= used;
	}
}

static void on_winch(loop_t *loop, loop_signal *sig, int signo)
{
	(void)loop;
	(void)signo;
	session_t *s = sig->data;
	struct winsize ws;
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0 || ws.ws_row == 0)
		return;
	if (ws.ws_col == s->ov.cols && ws.ws_row == s->ov.rows)
		return;
	s->ov.cols = ws.ws_col;
	s->ov.rows = ws.ws_row;
	set_size(s, agent_rows(s));
	char size[32];
	int len = snprintf(size, sizeof size, "%dx%d", s->ov.cols, s->ov.rows);
	rec(s, 'r', size, (size_t)len);
	overlay_resized(&s->ov);
}

/* ---- the end ------------------------------------------------------------------------ */

static void restore_terminal(session_t *s)
{
	if (s->raw && tty_restore(&s->saved) == 0)
		s->raw = 0;
	tty_restore_stderr(s->saved_stderr);
	s->saved_stderr = -1;
}

static void session_free(session_t *s)
{
	loop_t *loop = s->rt->loop;
	if (!s->exited)
		loop_child_stop(loop, &s->child);
	if (s->run_pid)
		loop_child_stop(loop, &s->run_child);
	list_remove(&all_sessions, &s->all);
	buf_free(&s->typed);
	buf_free(&s->held);
	buf_free(&s->partial);
	typed_free(&s->in);
	overlay_free(&s->ov);
	free(s);
}

/* Ends the session for good: the last output shown, the screen and the
   terminal's modes put back, the recording closed, the exit posted. */
static void finish(session_t *s)
{
	if (s->finished)
		return;
	if (s->run_pid) { /* the terminal is the program's: the end waits for it */
		s->finish_after_run = 1;
		return;
	}
	loop_t *loop = s->rt->loop;
	if (s->master >= 0 && !s->master_eof)
		read_agent(s);
	s->finished = 1;
	if (s->ov.mode == M_EDIT) {
		draw_editor_close(&s->ov.draw, &s->screen, s->ov.rows);
		overlay_flush(&s->ov);
	} else if (s->ov.mode == M_PAGER && s->ov.pager_alt) {
		tty_write("\x1b[?1049l", 8);
	}
	s->ov.mode = M_PASS;
	session_release_held(s);
	overlay_flash_end(&s->ov, 0); /* no message outlives procy */
	if (s->partial.len) { /* the agent ended inside a sequence: it is written as it is */
		tty_write(s->partial.p, s->partial.len);
		s->partial.len = 0;
	}
	if (s->ov.pin[0])
		draw_unpin(&s->ov.draw, s->ov.rows);
	draw_reset(&s->ov.draw, &s->screen); /* what a killed agent left set */
	overlay_flush(&s->ov);
	restore_terminal(s);
	loop_io_stop(loop, &s->in_io);
	loop_io_stop(loop, &s->m_io);
	loop_signal_stop(loop, &s->winch);
	loop_timer_stop(loop, &s->linger);
	redraw_stop(&s->redraw);
	loop_timer_stop(loop, &s->flush);
	loop_timer_stop(loop, &s->rec_wait);
	loop_timer_stop(loop, &s->ov.flash_timer);
	if (s->master >= 0) {
		close(s->master);
		s->master = -1;
	}
	int sig = 0, code = s->exited ? procy_exit_code(s->status, &sig) : -1;
	char what[32] = "closed";
	if (code >= 0)
		snprintf(what, sizeof what, "%d", code);
	typed_tick(&s->in, 1); /* input never shown by now was hidden */
	rec(s, 'x', what, strlen(what));
	char lost[512];
	if (rec_finish(s->rec, lost, sizeof lost) < 0) /* said even when a failure was said before */
		session_post(s, SESSION_ERROR, lost, strlen(lost), 0, 0);
	s->rec = NULL;
	session_post(s, SESSION_EXIT, NULL, 0, code, sig);
	if (s->ov.later.len) /* output for a pager that never opened */
		tty_write(s->ov.later.p, s->ov.later.len);
}

static void on_linger(loop_t *loop, loop_timer *t)
{
	(void)loop;
	finish(t->data); /* a background job still holds the pty */
}

static void on_exit_child(loop_t *loop, loop_child *c, int status)
{
	session_t *s = c->data;
	s->exited = 1;
	s->status = status;
	if (s->finished) {
		if (!s->owned)
			session_free(s);
		return;
	}
	if (s->master_eof)
		finish(s);
	else
		loop_timer_start(loop, &s->linger, LINGER_NS, on_linger, s);
}

void session_hang_up(session_t *s)
{
	if (!s->finished && !s->exited)
		kill(-s->pid, SIGHUP); /* and closing the master hangs up its terminal */
	finish(s);
}

void session_release(session_t *s)
{
	s->owned = 0;
	s->on_event = NULL;
	if (s->finished && s->exited)
		session_free(s);
}

void session_shutdown(void)
{
	while (all_sessions.head) {
		session_t *s = list_item(all_sessions.head, session_t, all);
		session_hang_up(s);
		session_free(s);
	}
}

void session_show(session_t *s, const char *text, size_t len)
{
	while (len > 0 && text[len - 1] == '\n')
		len--;
	overlay_pager(&s->ov, text, len);
}

void session_status(session_t *s, const char *text)
{
	if (!s->finished)
		overlay_status(&s->ov, text);
}

/* A pinned bottom row (text), or none (NULL or ""): the agent's terminal
   is one row shorter meanwhile, so nothing it draws covers the row. */
void session_pin(session_t *s, const char *text)
{
	int was = s->ov.pin[0] != 0;
	if (s->finished)
		return;
	snprintf(s->ov.pin, sizeof s->ov.pin, "%s", text ? text : "");
	if (!s->ov.pin[0] && was && draw_unpin(&s->ov.draw, s->ov.rows) == 0)
		overlay_flush(&s->ov);
	if (!s->ov.pin[0] != !was)
		set_size(s, agent_rows(s)); /* the agent repaints for its new size */
	if (s->ov.pin[0] && s->ov.mode == M_PASS)
		overlay_pin(&s->ov);
}

void session_mark(session_t *s, const char *label, size_t len)
{
	rec(s, 'm', label, len);
}

int session_write(session_t *s, const char *p, size_t n)
{
	if (s->finished)
		return -1;
	session_type(s, p, n, 0);
	return 0;
}

/* ---- a program of procy's own on the terminal ------------------------------------ */

/* The terminal's foreground group, from a process that may be in the
   background: SIGTTOU (which would stop procy) blocked meanwhile. */
static int give_terminal(pid_t pgrp)
{
	sigset_t ttou, old;
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	pthread_sigmask(SIG_BLOCK, &ttou, &old);
	int rc = tcsetpgrp(STDIN_FILENO, pgrp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static void on_run_exit(loop_t *loop, loop_child *c, int status)
{
	session_t *s = c->data;
	s->run_pid = 0;
	if (give_terminal(getpgrp()) < 0)
		procy_log(s->rt->L, "warn", "cannot take the terminal back: %s", strerror(errno));
	struct termios now;
	if (s->raw && tty_raw(&now) < 0)
		procy_log(s->rt->L, "warn", "cannot put the terminal in raw mode again: %s", strerror(errno));
	loop_io_start(loop, &s->in_io, STDIN_FILENO, EPOLLIN, on_keyboard, s);
	overlay_back(&s->ov, 1); /* the program drew over everything: the agent repaints, the pinned row too */
	int sig = 0, code = procy_exit_code(status, &sig);
	session_post(s, SESSION_RAN, NULL, 0, code, sig);
	if (s->finish_after_run)
		finish(s);
}

int session_run(session_t *s, char *const *argv, char *const *envp, err_t *err)
{
	if (s->finished)
		return err_set(err, "EPIPE", "the session has ended");
	if (s->run_pid || s->ov.mode != M_PASS)
		return err_set(err, "EBUSY", s->run_pid ? "another program has the terminal" : "procy is drawing over the agent");
	overlay_flash_end(&s->ov, 0);
	/* the program gets the terminal as procy found it, and its stderr
	   (procy's own goes to the log meanwhile) */
	spawn_opts o = { .argv = argv, .envp = envp, .foreground = 1,
	                 .fds = { STDIN_FILENO, STDOUT_FILENO, s->saved_stderr >= 0 ? s->saved_stderr : STDERR_FILENO } };
	loop_io_stop(s->rt->loop, &s->in_io);
	s->ov.mode = M_RUN;
	/* keys typed before the program had the terminal are not its own: a
	   stray Enter would be its first line */
	if (tcflush(STDIN_FILENO, TCIFLUSH) < 0)
		procy_log(s->rt->L, "warn", "cannot flush the terminal's input: %s", strerror(errno));
	if (s->raw && tty_restore(&s->saved) < 0)
		procy_log(s->rt->L, "warn", "cannot give the terminal its own mode: %s", strerror(errno));
	pid_t pid = 0;
	int e = procy_spawn(&pid, &o);
	if (e) {
		struct termios now;
		if (s->raw && tty_raw(&now) < 0)
			procy_log(s->rt->L, "warn", "cannot put the terminal in raw mode again: %s", strerror(errno));
		loop_io_start(s->rt->loop, &s->in_io, STDIN_FILENO, EPOLLIN, on_keyboard, s);
		overlay_back(&s->ov, 0);
		return err_errno(err, e, "cannot run '%s'", argv[0]);
	}
	s->run_pid = pid;
	loop_child_start(s->rt->loop, &s->run_child, pid, on_run_exit, s);
	return 0;
}

void session_info(session_t *s, session_info_t *out)
{
	out->pid = s->pid;
	out->cols = s->ov.cols;
	out->rows = s->ov.rows;
	out->bytes_in = s->bytes_in;
	out->bytes_out = s->bytes_out;
	rec_stats(s->rec, &out->rec);
	out->alt_screen = s->screen.alt;
	out->running = !s->finished;
	out->quiet_ns = loop_clock() - (s->last_output ? s->last_output : s->started);
	memcpy(out->title, s->screen.title, sizeof out->title);
	out->titles = s->screen.titles;
	memcpy(out->tail, s->tail, s->tail_len);
	out->tail_len = s->tail_len;
}

/* ---- what the overlay and the typed input ask of the relay ------------------------- */

static void up_release_held(void *ctx)
{
	session_release_held(ctx);
}

static void up_redraw_agent(void *ctx)
{
	session_redraw_agent(ctx);
}

/* A key the command line hands back (a `!` typed twice): the agent's, and
   the typed line's. */
static void up_type(void *ctx, const char *p, size_t n)
{
	session_t *s = ctx;
	for (size_t i = 0; i < n; i++)
		track_byte(&s->track, (unsigned char)p[i]);
	session_type(s, p, n, 0);
}

static void up_command(void *ctx, const char *line, size_t len)
{
	session_post(ctx, SESSION_COMMAND, line, len, 0, 0);
}

static void up_line(void *ctx, const char *p, size_t n)
{
	session_post(ctx, SESSION_LINE, p, n, 0, 0);
}

int session_start(runtime_t *rt, const spawn_opts *spawn, const session_where *w,
                  session_event_fn fn, void *owner, session_t **out, err_t *err)
{
	if (!isatty(STDIN_FILENO))
		return err_set(err, "ENOTTY", "standard input is not a terminal");
	struct winsize ws;
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0 || ws.ws_row == 0) {
		ws.ws_col = 80;
		ws.ws_row = 24;
	}
	recorder_t *r = NULL;
	if (w->db) {
		err_t why;
		if (!(r = rec_open(w->db, w->id, &w->rules, &why)))
			return err_set(err, why.code, "cannot record: %s", why.msg);
	}
	int master, e;
	char slave[128];
	pid_t pid;
	spawn_opts o = *spawn;
	if ((e = pty_open(ws.ws_col, ws.ws_row, &master, slave, sizeof slave))) {
		err_errno(err, e, "cannot open a pty");
		rec_close(r);
		return -1;
	}
	o.tty = slave;
	session_t *s = NULL;
	if ((e = procy_spawn(&pid, &o)) || !(s = calloc(1, sizeof *s))) {
		if (!e)
			kill(-pid, SIGHUP), e = ENOMEM;
		err_errno(err, e, "cannot run '%s'", o.argv[0]);
		close(master);
		rec_close(r);
		return -1;
	}
	s->rt = rt;
	s->started = loop_clock();
	s->pid = pid;
	s->master = master;
	s->rec = r;
	s->owned = 1;
	s->on_event = fn;
	s->owner = owner;
	overlay_init(&s->ov, rt->loop, &s->screen);
	s->ov.cols = ws.ws_col;
	s->ov.rows = ws.ws_row;
	s->ov.up.ctx = s;
	s->ov.up.release_held = up_release_held;
	s->ov.up.redraw_agent = up_redraw_agent;
	s->ov.up.type = up_type;
	s->ov.up.command = up_command;
	s->in.loop = rt->loop;
	s->in.rec = r;
	s->in.ctx = s;
	s->in.line = up_line;
	loop_timer_init(&s->flush);
	loop_timer_init(&s->linger);
	redraw_init(&s->redraw, rt->loop);
	loop_timer_init(&s->rec_wait);
	list_push(&all_sessions, &s->all);
	/* While the terminal belongs to the agent, procy's own log lines
	   would scribble over its screen: they go to the log file. */
	s->saved_stderr = tty_divert_stderr(w->log);
	s->raw = tty_raw(&s->saved) == 0;
	loop_t *loop = rt->loop;
	loop_child_start(loop, &s->child, pid, on_exit_child, s);
	loop_io_start(loop, &s->in_io, STDIN_FILENO, EPOLLIN, on_keyboard, s);
	loop_io_start(loop, &s->m_io, master, EPOLLIN, on_master, s);
	loop_signal_start(loop, &s->winch, SIGWINCH, on_winch, s);
	if (r)
		loop_timer_start(loop, &s->flush, FLUSH_NS, on_flush, s);
	char size[32];
	int len = snprintf(size, sizeof size, "%dx%d", s->ov.cols, s->ov.rows);
	rec(s, 'r', size, (size_t)len);
	*out = s;
	return 0;
}

