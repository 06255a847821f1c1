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
#include <sys/stat.h>
#include <sys/wait.h>

#include "procy.h"

#define PROCY_PROC_MT "procy.proc"
#define LINGER_NS     250000000 /* after exit, how long to wait for EOF */

extern char **environ;
static char inherit_token; /* proc.inherit */

typedef struct stream {
	int     fd;       /* -1 once closed */
	loop_io io;
	buf_t   buf;
	size_t  off;      /* consumed bytes at the front of buf */
	int     truncated;
	int     captured; /* stdout/stderr was a pipe */
	op_t   *line_op;  /* a task waiting in lines() */
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
		buf_free(&p->out[i].buf);
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
	if (p->exited && p->status >= 0) {
		if (WIFSIGNALED(p->status)) {
			lua_pushinteger(L, WTERMSIG(p->status));
			lua_setfield(L, -2, "signal");
			lua_pushinteger(L, 128 + WTERMSIG(p->status));
		} else {
			lua_pushinteger(L, WEXITSTATUS(p->status));
		}
		lua_setfield(L, -2, "code");
	}
	static const char *const names[2] = { "stdout", "stderr" };
	for (int i = 0; i < 2; i++) {
		stream_t *s = &p->out[i];
		lua_pushlstring(L, s->buf.p ? s->buf.p + s->off : "", s->buf.len - s->off);
		lua_setfield(L, -2, names[i]);
		if (s->truncated) {
			lua_pushboolean(L, 1);
			lua_setfield(L, -2, "truncated");
		}
	}
	lua_pushboolean(L, p->timed_out);
	lua_setfield(L, -2, "timed_out");
	lua_pushinteger(L, p->pid);
	lua_setfield(L, -2, "pid");
}

static int push_line(lua_State *L, stream_t *s);

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
		if (s->line_op) {
			op_t *op = s->line_op;
			s->line_op = NULL;
			if (!push_line(L, s))
				lua_pushnil(L);
			op_complete(L, op, 1);
		}
	}
	if (p->wait_op) {
		op_t *op = p->wait_op;
		p->wait_op = NULL;
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

/* Pushes the next complete line of s (without "\n" or "\r\n"), or at EOF
   what is left. Returns 0 when there is nothing to give yet. */
static int push_line(lua_State *L, stream_t *s)
{
	size_t avail = s->buf.len - s->off;
	char *start = s->buf.p ? s->buf.p + s->off : NULL;
	char *nl = avail ? memchr(start, '\n', avail) : NULL;
	size_t n;
	if (nl) {
		n = (size_t)(nl - start);
		lua_pushlstring(L, start, n > 0 && start[n - 1] == '\r' ? n - 1 : n);
		s->off += n + 1;
	} else if (s->fd < 0 && avail) {
		lua_pushlstring(L, start, avail);
		s->off += avail;
	} else {
		return 0;
	}
	if (s->off == s->buf.len) {
		s->buf.len = s->off = 0;
	} else if (s->off > 65536 && s->off > s->buf.len / 2) {
		buf_consume(&s->buf, s->off);
		s->off = 0;
	}
	return 1;
}

static void on_readable(loop_t *loop, loop_io *w, uint32_t events)
{
	(void)loop;
	(void)events;
	stream_t *s = w->data;
	proc_t *p = s->p;
	char chunk[65536];
	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t n = read(s->fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) { /* EOF, or an error that ends the stream */
			stream_close(p, s);
			break;
		}
		size_t room = p->max_output > s->buf.len - s->off ? p->max_output - (s->buf.len - s->off) : 0;
		size_t keep = (size_t)n < room ? (size_t)n : room;
		if (keep < (size_t)n)
			s->truncated = 1; /* keep draining so the child never blocks */
		if (buf_add(&s->buf, chunk, keep) < 0)
			s->truncated = 1;
	}
	if (s->line_op) {
		lua_State *L = p->rt->L;
		int got = push_line(L, s);
		if (!got && s->fd < 0) {
			lua_pushnil(L); /* EOF: ends the reader's for loop */
			got = 1;
		}
		if (got) {
			op_t *op = s->line_op;
			s->line_op = NULL;
			op_complete(L, op, 1);
		}
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

/* [-0, +1] The n strings of the table at tbl as a NULL-terminated array,
   in a userdata; the table must outlive it (it holds the strings). */
static char **string_array(lua_State *L, int tbl, int n)
{
	char **arr = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
	for (int i = 0; i < n; i++) {
		lua_rawgeti(L, tbl, i + 1);
		arr[i] = (char *)lua_tostring(L, -1);
		lua_pop(L, 1);
	}
	arr[n] = NULL;
	return arr;
}

/* Builds the child's environment: ours, with opts.env applied (a string
   sets, false removes). Pushes a table that keeps the strings alive and
   returns the NULL-terminated array inside a userdata pushed above it. */
static char **build_env(lua_State *L, int opts)
{
	lua_getfield(L, opts, "env");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushnil(L);
		return environ;
	}
	luaL_checktype(L, -1, LUA_TTABLE);
	int env = lua_gettop(L);
	lua_newtable(L);
	int keep = lua_gettop(L), n = 0;
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		lua_pushlstring(L, *e, (size_t)(eq - *e));
		int overridden = lua_rawget(L, env) != LUA_TNIL;
		lua_pop(L, 1);
		if (!overridden) {
			lua_pushstring(L, *e);
			lua_rawseti(L, keep, ++n);
		}
	}
	lua_pushnil(L);
	while (lua_next(L, env)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "proc: env keys must be strings");
		if (lua_isstring(L, -1)) {
			lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
			lua_rawseti(L, keep, ++n);
		} else if (!(lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
			luaL_error(L, "proc: env.%s must be a string or false", lua_tostring(L, -2));
		}
		lua_pop(L, 1);
	}
	lua_remove(L, env);
	return string_array(L, keep - 1, n);
}

static double opt_number(lua_State *L, int opts, const char *field, double def)
{
	lua_getfield(L, opts, field);
	double v = luaL_optnumber(L, -1, def);
	lua_pop(L, 1);
	return v;
}

static int make_pipe(int fds[2], int parent_end)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	int fl = fcntl(fds[parent_end], F_GETFL);
	if (fl < 0 || fcntl(fds[parent_end], F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		errno = e;
		return -1;
	}
	return 0;
}

/* Starts argv (table at index 1) with opts (table or nil at index 2).
   Returns the proc, or NULL after pushing a failure tuple (3 values). */
static proc_t *spawn(lua_State *L)
{
	runtime_t *rt = procy_rt(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	if (lua_isnoneornil(L, 2)) {
		lua_settop(L, 1);
		lua_newtable(L);
	}
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	int argc = (int)luaL_len(L, 1);
	luaL_argcheck(L, argc >= 1, 1, "argv needs at least the program");
	lua_createtable(L, argc, 0); /* our copy: numbers become strings */
	for (int i = 1; i <= argc; i++) {
		lua_rawgeti(L, 1, i);
		if (!lua_isstring(L, -1))
			luaL_error(L, "proc: argv[%d] must be a string", i);
		lua_tostring(L, -1);
		lua_rawseti(L, -2, i);
	}
	char **argv = string_array(L, lua_gettop(L), argc);
	int in_mode = io_mode(L, 2, "stdin", 1);
	int out_mode = io_mode(L, 2, "stdout", 0);
	int err_mode = io_mode(L, 2, "stderr", 0);
	lua_getfield(L, 2, "cwd");
	const char *cwd = luaL_optstring(L, -1, NULL);
	struct stat sb;
	if (cwd) {
		int e = stat(cwd, &sb) < 0 ? errno : S_ISDIR(sb.st_mode) ? 0 : ENOTDIR;
		if (e) {
			procy_fail(L, procy_errname(e), "cwd '%s': %s", cwd, strerror(e));
			return NULL;
		}
	}
	char **envp = build_env(L, 2);

	proc_t *p = calloc(1, sizeof *p);
	if (!p)
		luaL_error(L, "proc: out of memory");
	p->rt = rt;
	p->in_fd = p->out[0].fd = p->out[1].fd = -1;
	p->out[0].p = p->out[1].p = p;
	p->timeout = opt_number(L, 2, "timeout", -1);
	p->grace = opt_number(L, 2, "kill_after", 2);
	p->max_output = (size_t)opt_number(L, 2, "max_output", 64.0 * 1024 * 1024);
	loop_timer_init(&p->deadline);
	loop_timer_init(&p->kill_timer);
	loop_timer_init(&p->linger);
	p->name = strdup(argv[0]);

	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	int err = 0;
	if ((in_mode == IO_PIPE || in_mode == IO_DATA) && make_pipe(pin, 1) < 0)
		err = errno;
	if (!err && out_mode == IO_PIPE && make_pipe(pout, 0) < 0)
		err = errno;
	if (!err && err_mode == IO_PIPE && make_pipe(perr, 0) < 0)
		err = errno;
	if (!err) {
		static const int other[IO_DATA + 1] = { [IO_NULL] = LOOP_FD_NULL, [IO_INHERIT] = LOOP_FD_INHERIT,
		                             [IO_MERGE] = LOOP_FD_STDOUT };
		int fds[3] = { pin[0] >= 0 ? pin[0] : other[in_mode],
		               pout[1] >= 0 ? pout[1] : other[out_mode],
		               perr[1] >= 0 ? perr[1] : other[err_mode] };
		err = loop_spawn(&p->pid, argv, envp, cwd, fds, 0);
	}
	int child_ends[3] = { pin[0], pout[1], perr[1] };
	for (int i = 0; i < 3; i++)
		if (child_ends[i] >= 0)
			close(child_ends[i]);
	if (err) {
		int parent_ends[3] = { pin[1], pout[0], perr[0] };
		for (int i = 0; i < 3; i++)
			if (parent_ends[i] >= 0)
				close(parent_ends[i]);
		free(p->name);
		free(p);
		procy_fail(L, procy_errname(err), "cannot run '%s': %s", argv[0], strerror(err));
		return NULL;
	}

	list_push(&all_procs, &p->all);
	loop_child_start(rt->loop, &p->child, p->pid, child_exited, p);
	int ends[2] = { pout[0], perr[0] };
	for (int i = 0; i < 2; i++) {
		if (ends[i] < 0)
			continue;
		p->out[i].fd = ends[i];
		p->out[i].captured = 1;
		if (loop_io_start(rt->loop, &p->out[i].io, ends[i], EPOLLIN, on_readable, &p->out[i]) < 0) {
			close(ends[i]);
			p->out[i].fd = -1;
		}
	}
	if (pin[1] >= 0) {
		p->in_fd = pin[1];
		uint32_t ev = 0;
		if (in_mode == IO_DATA) {
			size_t n;
			const char *data = (lua_getfield(L, 2, "stdin"), lua_tolstring(L, -1, &n));
			if (buf_add(&p->in_buf, data, n) < 0)
				p->in_error = ENOMEM;
			lua_pop(L, 1);
			p->in_close = 1;
			ev = EPOLLOUT;
		}
		if (loop_io_start(rt->loop, &p->in_io, p->in_fd, ev, on_writable, p) < 0)
			stdin_close(p);
		else if (in_mode == IO_DATA && p->in_buf.len == 0)
			stdin_close(p);
	}
	if (p->timeout >= 0)
		loop_timer_start(rt->loop, &p->deadline, (int64_t)(p->timeout * 1e9), on_deadline, p);
	return p;
}

/* ---- Lua API ----------------------------------------------------------------------- */

static void wait_cancel(op_t *op)
{
	proc_t *p = op->data;
	p->wait_op = NULL; /* p:wait() timed out or its task ended; p goes on */
}

static void run_cancel(op_t *op)
{
	proc_t *p = op->data;
	p->wait_op = NULL;
	terminate(p); /* proc.run's task was cancelled: stop what it started */
}

static const op_class wait_class = { "process wait", wait_cancel };
static const op_class run_class  = { "process run", run_cancel };

static void line_cancel(op_t *op)
{
	stream_t *s = op->data;
	s->line_op = NULL;
}

static const op_class line_class = { "process line", line_cancel };

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
	lua_settop(L, 0);
	p->wait_op = op_new(L, &wait_class, 0);
	p->wait_op->data = p;
	return op_await(L, 1, timeout);
}

static int lines_iter(lua_State *L)
{
	proc_t *p = check_proc(L, lua_upvalueindex(1));
	stream_t *s = &p->out[lua_tointeger(L, lua_upvalueindex(2))];
	if (push_line(L, s))
		return 1;
	if (s->fd < 0)
		return 0;
	if (s->line_op)
		return luaL_error(L, "proc: another task is already reading lines from %s", p->name);
	lua_settop(L, 0);
	s->line_op = op_new(L, &line_class, 0);
	s->line_op->data = s;
	return op_await(L, 1, -1);
}

/* p:lines(["stdout"|"stderr"]) -> iterator over lines as they arrive */
static int p_lines(lua_State *L)
{
	static const char *const names[] = { "stdout", "stderr", NULL };
	proc_t *p = check_proc(L, 1);
	int which = luaL_checkoption(L, 2, "stdout", names);
	if (!p->out[which].captured)
		luaL_error(L, "proc: %s of %s is not captured", names[which], p->name);
	lua_settop(L, 1);
	lua_pushinteger(L, which);
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
		const char *name = luaL_checkstring(L, 2);
		if (strncmp(name, "SIG", 3) == 0)
			name += 3;
		sig = 0;
		for (int i = 1; i < NSIG; i++) {
			const char *abbrev = sigabbrev_np(i);
			if (abbrev && strcmp(abbrev, name) == 0)
				sig = i;
		}
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
		if (p->out[i].line_op)
			op_cancel(L, p->out[i].line_op);
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
