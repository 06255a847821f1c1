/*
** proc.c — the `procy.proc` module: child processes from an argv, never a
** shell string.
**
** Each child leads its own process group, so a timeout or a cancel reaches
** everything it started: SIGTERM to the group, SIGKILL after a grace
** period. Pipes are non-blocking fds in the loop; output is collected in C
** buffers (bounded by max_output) and handed to Lua whole (run, wait) or a
** line at a time (lines). A proc_t outlives its Lua handle until the child
** is reaped and its pipes are closed; proc_shutdown frees what is left.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "procy.h"

#define PROCY_PROC_MT "procy.proc"
#define LINGER_NS     250000000 /* after exit, how long to wait for EOF */
#define STREAM_AHEAD  (1 << 20) /* read ahead of a read()/lines() consumer */

extern char **environ;
static char inherit_token; /* proc.inherit */

typedef struct stream {
	int     fd;       /* -1 once closed */
	loop_io io;
	lines_t in;       /* what came and was not yet taken (lines.c) */
	int     truncated;
	int     told;     /* p:lines() has said that bytes were dropped */
	int     captured; /* stdout/stderr was a pipe (or the pty) */
	op_t   *reader;   /* a task waiting in lines() or read() */
	int     by_line;  /* what the reader wants: a line, or any bytes */
	int     streamed; /* read by read()/lines(): read ahead at most STREAM_AHEAD */
	int     paused;   /* EPOLLIN off until the consumer catches up */
	struct proc *p;
} stream_t;

typedef struct proc {
	runtime_t  *rt;
	pid_t       pid;
	int         exited, status, done;
	loop_child  child;
	stream_t    out[2];      /* stdout, stderr */
	int         in_fd;
	loop_io     in_io;
	buf_t       in_buf;
	size_t      in_off;
	int         in_close;    /* close stdin once in_buf is written */
	int         in_error;    /* errno of a failed stdin write */
	loop_timer  deadline, kill_timer, linger;
	double      timeout, grace;
	size_t      max_output;
	int         timed_out, signalled;
	int         pty;         /* out[0].fd is the pty master, in_fd a dup */
	op_t       *wait_op;
	int         has_handle;
	char       *name;
	list_node   all;
} proc_t;

static list_t all_procs; /* every proc_t not yet freed */

/* ---- lifetime ----------------------------------------------------------------- */

static void stream_close(proc_t *p, stream_t *s)
{
	if (s->fd < 0)
		return;
	loop_io_stop(p->rt->loop, &s->io);
	close(s->fd);
	s->fd = -1;
}

static void stdin_close(proc_t *p)
{
	if (p->in_fd < 0)
		return;
	loop_io_stop(p->rt->loop, &p->in_io);
	close(p->in_fd);
	p->in_fd = -1;
}

static void proc_free(proc_t *p)
{
	loop_t *loop = p->rt->loop;
	for (int i = 0; i < 2; i++) {
		stream_close(p, &p->out[i]);
		lines_free(&p->out[i].in);
	}
	stdin_close(p);
	buf_free(&p->in_buf);
	loop_timer_stop(loop, &p->deadline);
	loop_timer_stop(loop, &p->kill_timer);
	loop_timer_stop(loop, &p->linger);
	if (!p->exited)
		loop_child_stop(loop, &p->child);
	list_remove(&all_procs, &p->all);
	free(p->name);
	free(p);
}

/* Signals the child's whole group. */
static void signal_group(proc_t *p, int sig)
{
	if (kill(-p->pid, sig) < 0 && errno == ESRCH && !p->exited)
		kill(p->pid, sig);
}

static void on_linger(loop_t *loop, loop_timer *t);

static int pipes_open(proc_t *p) { return p->out[0].fd >= 0 || p->out[1].fd >= 0; }

static void on_kill_timer(loop_t *loop, loop_timer *t)
{
	proc_t *p = t->data;
	signal_group(p, SIGKILL);
	if (p->exited && pipes_open(p)) /* held by a process outside the group? */
		loop_timer_start(loop, &p->linger, LINGER_NS, on_linger, p);
}

/* SIGTERM now, SIGKILL after the grace period: the stop used by timeouts,
   cancels and a dropped handle. */
static void terminate(proc_t *p)
{
	if (p->done || p->signalled)
		return;
	p->signalled = 1;
	signal_group(p, SIGTERM);
	loop_timer_start(p->rt->loop, &p->kill_timer, (int64_t)(p->grace * 1e9), on_kill_timer, p);
}

static void push_result(lua_State *L, proc_t *p)
{
	lua_createtable(L, 0, 8);
	int sig, code = p->exited ? procy_exit_code(p->status, &sig) : -1;
	if (code >= 0) {
		lua_pushinteger(L, code);
		lua_setfield(L, -2, "code");
	}
	if (code >= 0 && sig) {
		lua_pushinteger(L, sig);
		lua_setfield(L, -2, "signal");
	}
	static const char *const names[2] = { "stdout", "stderr" };
	for (int i = 0; i < 2; i++) {
		stream_t *s = &p->out[i];
		lua_pushlstring(L, s->in.buf.p ? s->in.buf.p + s->in.off : "", lines_waiting(&s->in));
		lua_setfield(L, -2, names[i]);
		if (s->truncated) {
			lua_pushboolean(L, 1);
			lua_setfield(L, -2, "truncated");
		}
	}
	if (p->out[0].in.cut + p->out[1].in.cut) { /* lines p:lines() gave cut */
		lua_pushinteger(L, (lua_Integer)(p->out[0].in.cut + p->out[1].in.cut));
		lua_setfield(L, -2, "cut_lines");
	}
	lua_pushboolean(L, p->timed_out);
	lua_setfield(L, -2, "timed_out");
	lua_pushinteger(L, p->pid);
	lua_setfield(L, -2, "pid");
	if (p->exited) {
		const struct rusage *u = &p->child.usage;
		lua_pushinteger(L, u->ru_maxrss);
		lua_setfield(L, -2, "maxrss_kb");
		lua_pushnumber(L, (double)u->ru_utime.tv_sec + (double)u->ru_utime.tv_usec / 1e6);
		lua_setfield(L, -2, "user_s");
		lua_pushnumber(L, (double)u->ru_stime.tv_sec + (double)u->ru_stime.tv_usec / 1e6);
		lua_setfield(L, -2, "sys_s");
	}
}

static int push_next(lua_State *L, stream_t *s);

/* Called whenever something ends; finishes once the child is reaped and
   both pipes are closed: wakes the waiter and any line readers. */
static void maybe_done(proc_t *p)
{
	if (p->done || !p->exited || pipes_open(p))
		return;
	lua_State *L = p->rt->L;
	loop_t *loop = p->rt->loop;
	p->done = 1;
	stdin_close(p);
	loop_timer_stop(loop, &p->deadline);
	loop_timer_stop(loop, &p->linger);
	if (p->signalled && kill(-p->pid, 0) == 0)
		signal_group(p, SIGKILL); /* stragglers of a stopped group */
	loop_timer_stop(loop, &p->kill_timer);
	for (int i = 0; i < 2; i++) {
		stream_t *s = &p->out[i];
		op_t *op = waiter_take(&s->reader);
		if (op) {
			if (!push_next(L, s))
				lua_pushnil(L);
			op_complete(L, op, 1);
		}
	}
	op_t *op = waiter_take(&p->wait_op);
	if (op) {
		push_result(L, p);
		op_complete(L, op, 1);
	}
	if (!p->has_handle)
		proc_free(p);
}

static void on_linger(loop_t *loop, loop_timer *t)
{
	(void)loop;
	proc_t *p = t->data;
	/* A grandchild still holds the pipes; stop waiting for their EOF. */
	stream_close(p, &p->out[0]);
	stream_close(p, &p->out[1]);
	maybe_done(p);
}

static void child_exited(loop_t *loop, loop_child *c, int status)
{
	proc_t *p = c->data;
	p->exited = 1;
	p->status = status;
	/* Grandchildren may hold the pipes. A stopped group gets its whole
	   grace period (the kill timer then lingers); otherwise wait briefly. */
	if (pipes_open(p) && !loop_timer_active(&p->kill_timer))
		loop_timer_start(loop, &p->linger, LINGER_NS, on_linger, p);
	maybe_done(p);
}

static void on_deadline(loop_t *loop, loop_timer *t)
{
	(void)loop;
	proc_t *p = t->data;
	p->timed_out = 1;
	terminate(p);
}

/* ---- pipes -------------------------------------------------------------------- */

/* Pushes the next line of s, or at EOF what is left; a line longer than
   max_output goes cut there, with "E2BIG: ..." beside it. Returns the
   values pushed: 0 when there is nothing to give yet. */
static int push_line(lua_State *L, stream_t *s)
{
	const char *p;
	size_t n, max = s->p->max_output;
	int got = lines_next(&s->in, max, s->fd < 0, &p, &n);
	if (!got)
		return 0;
	lua_pushlstring(L, p, n);
	lines_take(&s->in);
	if (got != LINE_CUT && s->truncated && !s->told) {
		/* output came faster than anyone read it, past max_output, before
		   the lines were asked for: some of it is gone, and the reader hears so */
		s->told = 1;
		lua_pushfstring(L, "E2BIG: %s wrote more than max_output (%I bytes) before its lines were read: some were dropped",
		                s->p->name, (lua_Integer)max);
		return 2;
	}
	if (got != LINE_CUT)
		return 1;
	lua_pushfstring(L, "E2BIG: a line of %s's output passed %I bytes (max_output): cut there, its rest dropped",
	                s->p->name, (lua_Integer)max);
	procy_log(L, "error", "proc: a line of %s's output passed %lld bytes: cut", s->p->name, (long long)max);
	return 2;
}

/* Pushes everything buffered in s, or at EOF nothing. Returns 0 when
   there is nothing to give yet. */
static int push_chunk(lua_State *L, stream_t *s)
{
	size_t avail = lines_waiting(&s->in);
	if (!avail)
		return 0;
	lua_pushlstring(L, s->in.buf.p + s->in.off, avail);
	lines_drain(&s->in);
	return 1;
}

/* A consumer reading as it goes sets the pace: reading stops while
   STREAM_AHEAD bytes wait for it, and starts again when it took them. One
   reading lines waits only with a line to take (a whole one, or one too
   long to hold): a long line is read to its end first. */
static void pace(stream_t *s)
{
	int full = s->streamed && lines_waiting(&s->in) >= STREAM_AHEAD &&
	           (!s->by_line || lines_ready(&s->in, s->p->max_output));
	if (s->fd >= 0 && full != s->paused) {
		s->paused = full;
		loop_io_modify(s->p->rt->loop, &s->io, full ? 0 : EPOLLIN);
	}
}

static int push_next(lua_State *L, stream_t *s)
{
	int got = s->by_line ? push_line(L, s) : push_chunk(L, s);
	pace(s);
	return got;
}

static void on_readable(loop_t *loop, loop_io *w, uint32_t events)
{
	(void)loop;
	(void)events;
	stream_t *s = w->data;
	proc_t *p = s->p;
	char chunk[65536];
	for (int rounds = 0; rounds < 16 && !s->paused; rounds++) {
		ssize_t n = read(s->fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) { /* EOF, or an error that ends the stream */
			stream_close(p, s);
			break;
		}
		/* a line reader holds up to STREAM_AHEAD of whole lines (pace)
		   and a line up to a read past max_output (cut there, what
		   follows it kept); past the cap bytes are read and dropped,
		   so the child never blocks */
		size_t cap = p->max_output + (s->by_line && s->streamed ? STREAM_AHEAD + sizeof chunk : 0);
		if (lines_add(&s->in, chunk, (size_t)n, cap))
			s->truncated = 1;
		pace(s);
	}
	if (s->reader) {
		lua_State *L = p->rt->L;
		int got = push_next(L, s);
		if (!got && s->fd < 0) {
			lua_pushnil(L); /* EOF: ends the reader's for loop */
			got = 1;
		}
		if (got)
			op_complete(L, waiter_take(&s->reader), got);
	}
	maybe_done(p);
}

static void on_writable(loop_t *loop, loop_io *w, uint32_t events)
{
	(void)events;
	proc_t *p = w->data;
	while (p->in_off < p->in_buf.len) {
		ssize_t n = write(p->in_fd, p->in_buf.p + p->in_off, p->in_buf.len - p->in_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) { /* EPIPE: the child stopped reading */
			p->in_error = errno;
			p->in_buf.len = p->in_off = 0;
			stdin_close(p);
			return;
		}
		p->in_off += (size_t)n;
	}
	p->in_buf.len = p->in_off = 0;
	if (p->in_close)
		stdin_close(p);
	else
		loop_io_modify(loop, &p->in_io, 0);
}

/* ---- spawning ------------------------------------------------------------------- */

enum { IO_PIPE, IO_NULL, IO_INHERIT, IO_MERGE, IO_DATA };

/* Reads opts[field] as an I/O mode. stdin: string = data to feed, true =
   pipe for p:write(), nil/false = /dev/null, proc.inherit. stdout/stderr:
   nil/"pipe" = captured, false = /dev/null, proc.inherit, and for stderr
   "stdout" = merged into stdout. */
static int io_mode(lua_State *L, int opts, const char *field, int is_stdin)
{
	int mode;
	lua_getfield(L, opts, field);
	const char *word = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
	if (lua_touserdata(L, -1) == &inherit_token)
		mode = IO_INHERIT;
	else if (is_stdin)
		mode = lua_isstring(L, -1) ? IO_DATA : lua_toboolean(L, -1) ? IO_PIPE : IO_NULL;
	else if (lua_isnil(L, -1) || strcmp(word, "pipe") == 0)
		mode = IO_PIPE;
	else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
		mode = IO_NULL;
	else if (strcmp(word, "stdout") == 0 && strcmp(field, "stderr") == 0)
		mode = IO_MERGE;
	else
		return luaL_error(L, "proc: bad %s option", field);
	lua_pop(L, 1);
	return mode;
}

/* Reads opts.pty: nil/false, true (80x24) or {cols=, rows=, ctty=}. 1 if
   set; *noctty when ctty = false (the child's shim makes it its own). */
static int pty_size(lua_State *L, int opts, int *cols, int *rows, int *noctty)
{
	lua_getfield(L, opts, "pty");
	int on = lua_toboolean(L, -1), sized = lua_istable(L, -1);
	if (sized) {
		lua_getfield(L, -1, "ctty");
		*noctty = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	*cols = sized ? (int)procy_opt_number(L, -1, "cols", 80) : 80;
	*rows = sized ? (int)procy_opt_number(L, -1, "rows", 24) : 24;
	luaL_argcheck(L, *cols > 0 && *rows > 0 && *cols < 10000 && *rows < 10000, 2, "bad pty size");
	lua_pop(L, 1);
	return on;
}

/* Starts argv (table at index 1) with opts (table or nil at index 2).
   Returns the proc, or NULL after pushing a failure tuple (3 values). */
static proc_t *spawn(lua_State *L)
{
	runtime_t *rt = procy_rt(L);
	if (lua_isnoneornil(L, 2)) {
		lua_settop(L, 1);
		lua_newtable(L);
	}
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	char **argv = spawn_argv(L, 1);
	int cols, rows, noctty = 0, use_pty = pty_size(L, 2, &cols, &rows, &noctty);
	int in_mode = io_mode(L, 2, "stdin", 1);
	int out_mode = use_pty ? IO_PIPE : io_mode(L, 2, "stdout", 0);
	int err_mode = use_pty ? IO_PIPE : io_mode(L, 2, "stderr", 0);
	lua_getfield(L, 2, "cwd");
	const char *cwd = luaL_optstring(L, -1, NULL);
	int e = spawn_cwd_ok(cwd);
	if (e) {
		procy_fail(L, procy_errname(e), "cwd '%s': %s", cwd, strerror(e));
		return NULL;
	}
	spawn_opts o = { .argv = argv, .envp = spawn_env(L, 2), .cwd = cwd };
	proc_t *p = calloc(1, sizeof *p);
	if (!p)
		luaL_error(L, "proc: out of memory");
	p->rt = rt;
	p->in_fd = p->out[0].fd = p->out[1].fd = -1;
	p->out[0].p = p->out[1].p = p;
	p->timeout = procy_opt_number(L, 2, "timeout", -1);
	p->grace = procy_opt_number(L, 2, "kill_after", 2);
	p->max_output = (size_t)procy_opt_number(L, 2, "max_output", 64.0 * 1024 * 1024);
	loop_timer_init(&p->deadline);
	loop_timer_init(&p->kill_timer);
	loop_timer_init(&p->linger);
	p->name = strdup(argv[0]);

	/* parent ends: [0] writes the child's input, [1] and [2] read its output */
	int ours[3] = { -1, -1, -1 }, theirs[3] = { -1, -1, -1 }, err = 0;
	char slave[128];
	if (use_pty) {
		p->pty = 1;
		err = pty_open(cols, rows, &ours[1], slave, sizeof slave);
		if (!err && (ours[0] = fcntl(ours[1], F_DUPFD_CLOEXEC, 0)) < 0)
			err = errno;
		o.tty = slave;
		o.noctty = noctty;
	} else {
		int pp[2];
		if ((in_mode == IO_PIPE || in_mode == IO_DATA) && !(err = spawn_pipe(pp, 1) < 0 ? errno : 0))
			ours[0] = pp[1], theirs[0] = pp[0];
		if (!err && out_mode == IO_PIPE && !(err = spawn_pipe(pp, 0) < 0 ? errno : 0))
			ours[1] = pp[0], theirs[1] = pp[1];
		if (!err && err_mode == IO_PIPE && !(err = spawn_pipe(pp, 0) < 0 ? errno : 0))
			ours[2] = pp[0], theirs[2] = pp[1];
		static const int other[IO_DATA + 1] = { [IO_NULL] = SPAWN_FD_NULL,
			[IO_INHERIT] = SPAWN_FD_INHERIT, [IO_MERGE] = SPAWN_FD_STDOUT };
		int modes[3] = { in_mode, out_mode, err_mode };
		for (int i = 0; i < 3; i++)
			o.fds[i] = theirs[i] >= 0 ? theirs[i] : other[modes[i]];
	}
	if (!err)
		err = procy_spawn(&p->pid, &o);
	for (int i = 0; i < 3; i++)
		if (theirs[i] >= 0)
			close(theirs[i]);
	if (err) {
		for (int i = 0; i < 3; i++)
			if (ours[i] >= 0)
				close(ours[i]);
		free(p->name);
		free(p);
		procy_fail(L, procy_errname(err), "cannot run '%s': %s", argv[0], strerror(err));
		return NULL;
	}

	list_push(&all_procs, &p->all);
	loop_child_start(rt->loop, &p->child, p->pid, child_exited, p);
	for (int i = 0; i < 2; i++) {
		stream_t *st = &p->out[i];
		if (ours[i + 1] < 0)
			continue;
		st->fd = ours[i + 1];
		st->captured = 1;
		if (loop_io_start(rt->loop, &st->io, st->fd, EPOLLIN, on_readable, st) < 0) {
			close(st->fd);
			st->fd = -1;
		}
	}
	if (ours[0] >= 0) {
		p->in_fd = ours[0];
		uint32_t ev = 0;
		if (in_mode == IO_DATA) {
			size_t n;
			lua_getfield(L, 2, "stdin");
			const char *data = lua_tolstring(L, -1, &n);
			if (buf_add(&p->in_buf, data, n) < 0)
				p->in_error = ENOMEM;
			lua_pop(L, 1);
			p->in_close = !use_pty; /* a pty stays open for more input */
			ev = EPOLLOUT;
		}
		if (loop_io_start(rt->loop, &p->in_io, p->in_fd, ev, on_writable, p) < 0)
			stdin_close(p);
		else if (p->in_close && p->in_buf.len == 0)
			stdin_close(p);
	}
	if (p->timeout >= 0)
		loop_timer_start(rt->loop, &p->deadline, (int64_t)(p->timeout * 1e9), on_deadline, p);
	return p;
}

/* ---- Lua API ----------------------------------------------------------------------- */

static void run_cancel(op_t *op)
{
	proc_t *p = op->data;
	p->wait_op = NULL;
	terminate(p); /* proc.run's task was cancelled: stop what it started */
}

/* p:wait() timed out or its task ended: p goes on */
static const op_class wait_class = { "process wait", waiter_cancel };
static const op_class run_class  = { "process run", run_cancel };

static const op_class line_class = { "process output", waiter_cancel };

/* run(argv, [opts]) -> {code, signal, stdout, stderr, timed_out, pid}
   | nil, err, code when it cannot start. Waits for the exit. */
static int proc_run(lua_State *L)
{
	proc_t *p = spawn(L);
	if (!p)
		return 3;
	lua_settop(L, 0);
	p->wait_op = op_new(L, &run_class, 0);
	p->wait_op->data = p;
	maybe_done(p);
	return op_await(L, 1, -1);
}

/* spawn(argv, [opts]) -> handle | nil, err, code */
static int proc_spawn(lua_State *L)
{
	proc_t *p = spawn(L);
	if (!p)
		return 3;
	proc_t **h = lua_newuserdatauv(L, sizeof *h, 0);
	*h = p;
	p->has_handle = 1;
	luaL_setmetatable(L, PROCY_PROC_MT);
	return 1;
}

static proc_t *check_proc(lua_State *L, int idx)
{
	proc_t **h = luaL_checkudata(L, idx, PROCY_PROC_MT);
	if (!*h)
		luaL_error(L, "proc: handle is closed");
	return *h;
}

/* p:wait([timeout]) -> result table | nil, "ETIMEDOUT: ...". A timeout
   leaves the process running. */
static int p_wait(lua_State *L)
{
	proc_t *p = check_proc(L, 1);
	double timeout = luaL_optnumber(L, 2, -1);
	if (p->done) {
		push_result(L, p);
		return 1;
	}
	if (p->wait_op)
		return luaL_error(L, "proc: another task is already waiting for %s", p->name);
	return waiter_wait(L, &p->wait_op, &wait_class, timeout);
}

/* Gives the next line (or chunk) of s now, or waits for it. */
static int next_from(lua_State *L, proc_t *p, stream_t *s, int by_line, double timeout)
{
	s->by_line = by_line;
	s->streamed = 1;
	int got = push_next(L, s);
	if (got)
		return got;
	if (s->fd < 0)
		return 0;
	if (s->reader)
		return luaL_error(L, "proc: another task is already reading from %s", p->name);
	return waiter_wait(L, &s->reader, &line_class, timeout);
}

static int lines_iter(lua_State *L)
{
	proc_t *p = check_proc(L, lua_upvalueindex(1));
	return next_from(L, p, &p->out[lua_tointeger(L, lua_upvalueindex(2))], 1, -1);
}

static stream_t *check_stream(lua_State *L, proc_t *p, int idx)
{
	static const char *const names[] = { "stdout", "stderr", NULL };
	int which = luaL_checkoption(L, idx, "stdout", names);
	if (!p->out[which].captured)
		luaL_error(L, "proc: %s of %s is not captured", names[which], p->name);
	return &p->out[which];
}

/* p:read([stream], [timeout]) -> the bytes that have arrived (waiting for
   some), nil at the end, or nil, "ETIMEDOUT: ..." */
static int p_read(lua_State *L)
{
	proc_t *p = check_proc(L, 1);
	stream_t *s = check_stream(L, p, 2);
	return next_from(L, p, s, 0, luaL_optnumber(L, 3, -1));
}

/* p:resize(cols, rows): the pty's size (its foreground job gets SIGWINCH) */
static int p_resize(lua_State *L)
{
	proc_t *p = check_proc(L, 1);
	struct winsize ws = { .ws_col = (unsigned short)luaL_checkinteger(L, 2),
	                      .ws_row = (unsigned short)luaL_checkinteger(L, 3) };
	if (!p->pty)
		return luaL_error(L, "proc: %s has no pty", p->name);
	if (p->out[0].fd < 0)
		return procy_fail(L, "EIO", "the pty of %s is closed", p->name);
	if (ioctl(p->out[0].fd, TIOCSWINSZ, &ws) < 0)
		return procy_fail_errno(L, errno, "resize");
	lua_pushboolean(L, 1);
	return 1;
}

/* p:lines(["stdout"|"stderr"]) -> iterator over lines as they arrive */
static int p_lines(lua_State *L)
{
	proc_t *p = check_proc(L, 1);
	stream_t *s = check_stream(L, p, 2);
	lua_settop(L, 1);
	lua_pushinteger(L, s - p->out);
	lua_pushcclosure(L, lines_iter, 2);
	return 1;
}

/* p:write(s) -> true | nil, err. Needs stdin = true. Never blocks: data is
   queued and written as the child reads. */
static int p_write(lua_State *L)
{
	proc_t *p = check_proc(L, 1);
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	if (p->in_error)
		return procy_fail_errno(L, p->in_error, "stdin");
	if (p->in_fd < 0 || p->in_close)
		return procy_fail(L, "EPIPE", "stdin of %s is closed", p->name);
	if (buf_add(&p->in_buf, s, n) < 0)
		return procy_fail_errno(L, errno, "stdin");
	loop_io_modify(p->rt->loop, &p->in_io, EPOLLOUT);
	lua_pushboolean(L, 1);
	return 1;
}

/* p:close_stdin(): EOF for the child once queued input is written */
static int p_close_stdin(lua_State *L)
{
	proc_t *p = check_proc(L, 1);
	p->in_close = 1;
	if (p->in_buf.len == p->in_off)
		stdin_close(p);
	return 0;
}

/* p:kill([sig]) -> true | nil, err. sig: number or name ("TERM", "KILL",
   "INT", "HUP"...); default TERM. Reaches the whole process group. */
static int p_kill(lua_State *L)
{
	proc_t *p = check_proc(L, 1);
	int sig = SIGTERM;
	if (lua_type(L, 2) == LUA_TNUMBER) {
		sig = (int)lua_tointeger(L, 2);
	} else if (!lua_isnoneornil(L, 2)) {
		sig = procy_signal(luaL_checkstring(L, 2));
		luaL_argcheck(L, sig > 0, 2, "unknown signal");
	}
	if (p->done)
		return procy_fail(L, "ESRCH", "%s has exited", p->name);
	if (kill(-p->pid, sig) < 0)
		return procy_fail_errno(L, errno, p->name);
	lua_pushboolean(L, 1);
	return 1;
}

static int p_pid(lua_State *L)
{
	lua_pushinteger(L, check_proc(L, 1)->pid);
	return 1;
}

/* p:close() (also __gc/__close): a process still running is stopped
   (SIGTERM, then SIGKILL after the grace period). */
static int p_close(lua_State *L)
{
	proc_t **h = luaL_checkudata(L, 1, PROCY_PROC_MT);
	proc_t *p = *h;
	if (!p)
		return 0;
	*h = NULL;
	p->has_handle = 0;
	if (p->done) {
		proc_free(p);
		return 0;
	}
	for (int i = 0; i < 2; i++)
		if (p->out[i].reader)
			op_cancel(L, p->out[i].reader);
	if (p->wait_op)
		op_cancel(L, p->wait_op);
	terminate(p);
	return 0;
}

static int p_tostring(lua_State *L)
{
	proc_t **h = luaL_checkudata(L, 1, PROCY_PROC_MT);
	if (*h)
		lua_pushfstring(L, "proc %d (%s)", (int)(*h)->pid, (*h)->name);
	else
		lua_pushliteral(L, "proc (closed)");
	return 1;
}

void proc_shutdown(void)
{
	while (all_procs.head) {
		proc_t *p = list_item(all_procs.head, proc_t, all);
		if (!p->done)
			signal_group(p, p->signalled ? SIGKILL : SIGTERM);
		proc_free(p);
	}
}

static const luaL_Reg proc_methods[] = {
	{ "wait",        p_wait },
	{ "lines",       p_lines },
	{ "read",        p_read },
	{ "resize",      p_resize },
	{ "write",       p_write },
	{ "close_stdin", p_close_stdin },
	{ "kill",        p_kill },
	{ "pid",         p_pid },
	{ "close",       p_close },
	{ NULL, NULL }
};

static const luaL_Reg proc_funcs[] = {
	{ "run",   proc_run },
	{ "spawn", proc_spawn },
	{ "daemon", proc_daemon }, /* spawn.c */
	{ NULL, NULL }
};

int luaopen_procy_proc(lua_State *L)
{
	procy_class(L, PROCY_PROC_MT, proc_methods, p_close, p_tostring);
	luaL_newlib(L, proc_funcs);
	lua_pushlightuserdata(L, &inherit_token);
	lua_setfield(L, -2, "inherit");
	return 1;
}
