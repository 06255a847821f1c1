/*
** pty.c — the `procy.pty` module: the interactive session (session.c) as
** Lua sees it. The relay's events wait in a queue here until a task takes
** them with s:event(); a task waiting for one is woken by op.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "tty.h"

#define PROCY_SESSION_MT "procy.session"

typedef struct event {
	struct event *next;
	int           type;
	char         *text;
	int           code, sig;
} event_t;

/* the userdata: the session and what waits for Lua */
typedef struct handle {
	session_t *s;       /* NULL once closed */
	runtime_t *rt;
	event_t   *head, *tail;
	op_t      *waiter;
	op_t      *ran;     /* the task in s:run, waiting for its program */
	int        ended;   /* the exit event has been given */
	char       name[64];
} handle_t;

static void push_event(lua_State *L, const event_t *e)
{
	static const char *const names[] = { "command", "line", "error", "exit" };
	lua_createtable(L, 0, 3);
	lua_pushstring(L, names[e->type]);
	lua_setfield(L, -2, "type");
	if (e->text) {
		lua_pushstring(L, e->text);
		lua_setfield(L, -2, "text");
	}
	if (e->type == SESSION_EXIT && e->code >= 0) {
		lua_pushinteger(L, e->code);
		lua_setfield(L, -2, "code");
	}
	if (e->type == SESSION_EXIT && e->sig) {
		lua_pushinteger(L, e->sig);
		lua_setfield(L, -2, "signal");
	}
}

static void event_free(event_t *e)
{
	free(e->text);
	free(e);
}

/* The relay's callback: straight to a waiting task, else into the queue. */
static void on_event(void *owner, int type, const char *text, size_t len, int code, int sig)
{
	handle_t *h = owner;
	if (type == SESSION_RAN) { /* s:run's program ended */
		op_t *op = waiter_take(&h->ran);
		if (op) {
			lua_State *L = h->rt->L;
			lua_pushinteger(L, code);
			if (sig)
				lua_pushinteger(L, sig);
			else
				lua_pushnil(L);
			op_complete(L, op, 2);
		}
		return;
	}
	event_t *e = calloc(1, sizeof *e);
	if (!e || (text && !(e->text = strndup(text, len)))) {
		free(e);
		return;
	}
	e->type = type;
	e->code = code;
	e->sig = sig;
	op_t *op = waiter_take(&h->waiter);
	if (op) {
		push_event(h->rt->L, e);
		h->ended |= type == SESSION_EXIT;
		op_complete(h->rt->L, op, 1);
		event_free(e);
		return;
	}
	if (h->tail)
		h->tail->next = e;
	else
		h->head = e;
	h->tail = e;
}

static handle_t *check(lua_State *L)
{
	handle_t *h = luaL_checkudata(L, 1, PROCY_SESSION_MT);
	if (!h->s)
		luaL_error(L, "session is closed");
	return h;
}

static const op_class event_class = { "session event", waiter_cancel };

/* s:event([timeout]) -> {type = "command"|"line"|"error"|"exit", ...}, or
   nil once the exit has been given */
static int s_event(lua_State *L)
{
	handle_t *h = check(L);
	double timeout = luaL_optnumber(L, 2, -1);
	if (h->head) {
		event_t *e = h->head;
		h->head = e->next;
		if (!h->head)
			h->tail = NULL;
		push_event(L, e);
		h->ended |= e->type == SESSION_EXIT;
		event_free(e);
		return 1;
	}
	if (h->ended)
		return 0;
	if (h->waiter)
		return luaL_error(L, "another task is already waiting for this session's events");
	return waiter_wait(L, &h->waiter, &event_class, timeout);
}

static const op_class ran_class = { "program on the terminal", waiter_cancel };

/* s:run(argv, [{env =}]) -> code, signal|nil: argv as a full-screen program
   on the person's terminal (the agent's screen suspended, redrawn after);
   waits until it exits. nil, err, code: EBUSY, EPIPE, ENOENT. */
static int s_run(lua_State *L)
{
	handle_t *h = check(L);
	luaL_checktype(L, 2, LUA_TTABLE);
	if (lua_isnoneornil(L, 3))
		lua_newtable(L);
	else
		luaL_checktype(L, 3, LUA_TTABLE);
	lua_settop(L, 3);
	if (h->ran)
		return luaL_error(L, "another task is already running a program on this session's terminal");
	char **argv = spawn_argv(L, 2);
	char **envp = spawn_env(L, 3);
	err_t err;
	if (session_run(h->s, argv, envp, &err) < 0)
		return procy_fail_err(L, &err);
	return waiter_wait(L, &h->ran, &ran_class, -1);
}

/* s:show(text): a pager over the agent until a key closes it */
static int s_show(lua_State *L)
{
	handle_t *h = check(L);
	size_t n;
	const char *text = luaL_checklstring(L, 2, &n);
	session_show(h->s, text, n);
	return 0;
}

/* s:pin([text]): a bottom row kept while the agent runs; nil or "" removes it */
static int s_pin(lua_State *L)
{
	session_pin(check(L)->s, luaL_optstring(L, 2, NULL));
	return 0;
}

/* s:status(text): a one-line message on the bottom row */
static int s_status(lua_State *L)
{
	session_status(check(L)->s, luaL_checkstring(L, 2));
	return 0;
}

/* s:mark([label]): a marker in the recording */
static int s_mark(lua_State *L)
{
	handle_t *h = check(L);
	size_t n;
	const char *label = luaL_optlstring(L, 2, "", &n);
	session_mark(h->s, label, n);
	return 0;
}

/* s:write(bytes): types bytes into the agent (recorded as input) */
static int s_write(lua_State *L)
{
	handle_t *h = check(L);
	size_t n;
	const char *p = luaL_checklstring(L, 2, &n);
	if (session_write(h->s, p, n) < 0)
		return procy_fail(L, "EPIPE", "the agent has exited");
	lua_pushboolean(L, 1);
	return 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

/* s:info() -> {pid, cols, rows, bytes_in, bytes_out, events, dropped,
   record_error, alt_screen, running, quiet (seconds since the agent last
   wrote), title (the window title it set last), titles (how often), tail
   (its last 256 bytes of output)} */
static int s_info(lua_State *L)
{
	session_info_t i;
	session_info(check(L)->s, &i);
	lua_createtable(L, 0, 10);
	set_int(L, "pid", i.pid);
	set_int(L, "cols", i.cols);
	set_int(L, "rows", i.rows);
	set_int(L, "bytes_in", (lua_Integer)i.bytes_in);
	set_int(L, "bytes_out", (lua_Integer)i.bytes_out);
	set_int(L, "events", (lua_Integer)i.rec.written);
	set_int(L, "dropped", (lua_Integer)i.rec.dropped);
	if (i.rec.error[0]) {
		lua_pushstring(L, i.rec.error);
		lua_setfield(L, -2, "record_error");
	}
	lua_pushboolean(L, i.alt_screen);
	lua_setfield(L, -2, "alt_screen");
	lua_pushboolean(L, i.running);
	lua_setfield(L, -2, "running");
	lua_pushnumber(L, (double)i.quiet_ns / 1e9);
	lua_setfield(L, -2, "quiet");
	lua_pushstring(L, i.title);
	lua_setfield(L, -2, "title");
	set_int(L, "titles", i.titles);
	lua_pushlstring(L, i.tail, i.tail_len);
	lua_setfield(L, -2, "tail");
	return 1;
}

/* s:close() (also __gc and __close): hangs up the agent if it still runs
   and gives the terminal back */
static int s_close(lua_State *L)
{
	handle_t *h = luaL_checkudata(L, 1, PROCY_SESSION_MT);
	if (!h->s)
		return 0;
	if (h->waiter)
		op_cancel(L, h->waiter);
	session_t *s = h->s;
	h->s = NULL;
	session_hang_up(s);
	session_release(s);
	while (h->head) {
		event_t *e = h->head;
		h->head = e->next;
		event_free(e);
	}
	h->tail = NULL;
	return 0;
}

static int s_tostring(lua_State *L)
{
	handle_t *h = luaL_checkudata(L, 1, PROCY_SESSION_MT);
	lua_pushfstring(L, "session (%s%s)", h->name, h->s ? "" : ", closed");
	return 1;
}

/* session{argv =, env =, cwd =, ctty =, db = path, id = session id, log = path,
   redact = JSON {"redact": [patterns]}, redact_literals = "sk-\n..."}:
   the record's rule set (procy.redact: settings, literals())
   -> s | nil, err, code. Needs a terminal on stdin. Nothing is changed in
   the terminal, and nothing is left running, unless it all starts. */
static int pty_session(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lua_getfield(L, 1, "argv");
	spawn_opts o = { .argv = spawn_argv(L, -1), .envp = spawn_env(L, 1) };
	lua_getfield(L, 1, "cwd");
	o.cwd = luaL_optstring(L, -1, NULL);
	lua_getfield(L, 1, "ctty"); /* false: the agent's sandbox shim takes the terminal (relay.c) */
	o.noctty = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
	int e = spawn_cwd_ok(o.cwd);
	if (e)
		return procy_fail(L, procy_errname(e), "cwd '%s': %s", o.cwd, strerror(e));
	session_where w;
	lua_getfield(L, 1, "db");
	w.db = luaL_optstring(L, -1, NULL);
	lua_getfield(L, 1, "id");
	w.id = luaL_optstring(L, -1, "");
	lua_getfield(L, 1, "log");
	w.log = luaL_optstring(L, -1, NULL);
	lua_getfield(L, 1, "redact");
	w.rules.settings = luaL_optstring(L, -1, NULL);
	lua_getfield(L, 1, "redact_literals");
	w.rules.literals = luaL_optstring(L, -1, NULL);
	handle_t *h = lua_newuserdatauv(L, sizeof *h, 0);
	memset(h, 0, sizeof *h);
	h->rt = procy_rt(L);
	snprintf(h->name, sizeof h->name, "%s", o.argv[0]);
	luaL_setmetatable(L, PROCY_SESSION_MT);
	err_t err;
	if (session_start(h->rt, &o, &w, on_event, h, &h->s, &err) < 0)
		return procy_fail_err(L, &err);
	return 1;
}

/* isatty([fd]) -> whether fd (default 0, standard input) is a terminal */
static int pty_isatty(lua_State *L)
{
	lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, STDIN_FILENO)));
	return 1;
}

static const luaL_Reg session_methods[] = {
	{ "event",  s_event },
	{ "show",   s_show },
	{ "run",    s_run },
	{ "status", s_status },
	{ "pin", s_pin },
	{ "mark",   s_mark },
	{ "write",  s_write },
	{ "info",   s_info },
	{ "close",  s_close },
	{ NULL, NULL }
};

static const luaL_Reg pty_funcs[] = {
	{ "session", pty_session },
	{ "isatty",  pty_isatty },
	{ NULL, NULL }
};

int luaopen_procy_pty(lua_State *L)
{
	procy_class(L, PROCY_SESSION_MT, session_methods, s_close, s_tostring);
	luaL_newlib(L, pty_funcs);
	play_open(L);
	return 1;
}
