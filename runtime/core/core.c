/*
** core.c — `procy.core`, the scheduler's Lua face (sched.c): spawning,
** awaiting and cancelling tasks, timers, sleeping and yielding, promises
** between tasks, the clocks, logging, the run limit, and exit.
*/
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sched_impl.h"

/* spawn(fn, ...) -> task */
static int core_spawn(lua_State *L)
{
	runtime_t *rt = procy_rt(L);
	sched_t *S = SCHED(rt);
	luaL_checktype(L, 1, LUA_TFUNCTION);
	int nargs = lua_gettop(L) - 1;
	task_t *t = lua_newuserdatauv(L, sizeof *t, 3);
	memset(t, 0, sizeof *t);
	t->rt = rt;
	t->id = ++S->next_id;
	t->anchor = LUA_NOREF;
	luaL_setmetatable(L, PROCY_TASK_MT);
	lua_Debug ar;
	lua_pushvalue(L, 1);
	lua_getinfo(L, ">S", &ar);
	snprintf(t->label, sizeof t->label, "task %d (%s:%d)", t->id,
	         ar.short_src, ar.linedefined);
	t->co = lua_newthread(L);
	lua_setiuservalue(L, -2, UV_THREAD);
	lua_sethook(t->co, sched_hook, LUA_MASKCOUNT, 10000);
	lua_pushvalue(L, -1);
	t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
	/* fn and args onto the new thread */
	lua_rotate(L, 1, 1); /* task userdata first */
	lua_xmove(L, t->co, nargs + 1);
	t->nargs = nargs;
	list_push(&S->live, &t->live);
	sched_enqueue(S, t);
	return 1;
}


/* await(op | task, [timeout]) -> results of the op or task */
static int core_await(lua_State *L)
{
	double timeout = luaL_optnumber(L, 2, -1);
	task_t *t = luaL_testudata(L, 1, PROCY_TASK_MT);
	if (!t)
		return op_await(L, 1, timeout);
	if (task_ended(t)) {
		lua_getiuservalue(L, 1, UV_RESULTS);
		return sched_unpack(L, -1);
	}
	task_t *self = sched_running_task(L, "await");
	if (self == t)
		return luaL_error(L, "await: a task cannot wait for itself");
	static const op_class join = { "task join", NULL };
	lua_settop(L, 1);
	op_new(L, &join, 0)->data = t;
	if (lua_getiuservalue(L, 1, UV_JOINERS) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setiuservalue(L, 1, UV_JOINERS);
	}
	lua_pushvalue(L, 2);
	lua_rawseti(L, -2, luaL_len(L, -2) + 1);
	lua_pop(L, 1);
	return op_await(L, 2, timeout);
}


/* A timer op carries its loop_timer as payload; the op's own timeout timer
   stays free for await(op, timeout). */
static void timer_cancel(op_t *op)
{
	loop_timer_stop(op->rt->loop, op->data);
}

static const op_class timer_class = { "timer", timer_cancel };

static void timer_done(loop_t *loop, loop_timer *tm)
{
	(void)loop;
	op_t *op = tm->data;
	lua_pushboolean(op->rt->L, 1);
	op_complete(op->rt->L, op, 1);
}

static op_t *timer_op(lua_State *L, double seconds)
{
	runtime_t *rt = procy_rt(L);
	op_t *op = op_new(L, &timer_class, sizeof(loop_timer));
	loop_timer *tm = op->data;
	loop_timer_init(tm);
	int64_t ns = seconds > 0 ? (int64_t)(seconds * 1e9) : 0;
	if (loop_timer_start(rt->loop, tm, ns, timer_done, op) < 0)
		luaL_error(L, "timer: out of memory");
	return op;
}

/* timer(seconds) -> op that completes with true after the delay */
static int core_timer(lua_State *L)
{
	double s = luaL_checknumber(L, 1);
	timer_op(L, s);
	return 1;
}

/* sleep(seconds) -> true */
static int core_sleep(lua_State *L)
{
	double s = luaL_checknumber(L, 1);
	sched_running_task(L, "sleep");
	lua_settop(L, 0);
	timer_op(L, s);
	return op_await(L, 1, -1);
}

/* yield(): lets every other ready task run, then continues. */
static int core_yield(lua_State *L)
{
	sched_running_task(L, "yield");
	return lua_yield(L, 0);
}

/* op() -> an op that Lua completes: complete(op, ...) hands its values to
   the task awaiting it (a promise between tasks). */
static const op_class user_class = { "op", NULL };

static int core_op(lua_State *L)
{
	op_new(L, &user_class, 0);
	return 1;
}

/* complete(op, ...) -> true, or false when it was complete already */
static int core_complete(lua_State *L)
{
	op_t *op = luaL_checkudata(L, 1, PROCY_OP_MT);
	luaL_argcheck(L, op->cls == &user_class, 1, "only an op made by core.op() can be completed");
	int pending = op->state == OP_PENDING;
	if (pending)
		op_complete(L, op, lua_gettop(L) - 1);
	lua_pushboolean(L, pending);
	return 1;
}

static int core_now(lua_State *L)
{
	lua_pushnumber(L, (double)loop_clock() / 1e9);
	return 1;
}

static int core_time(lua_State *L)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	return 1;
}

static int core_current(lua_State *L)
{
	sched_t *S = SCHED(procy_rt(L));
	if (!S->current)
		return 0;
	sched_push_task(L, S->current);
	return 1;
}

static int core_log(lua_State *L)
{
	static const char *const levels[] = { "debug", "info", "warn", "error", NULL };
	int lvl = luaL_checkoption(L, 1, NULL, levels);
	size_t n;
	const char *msg = luaL_tolstring(L, 2, &n);
	procy_log(L, levels[lvl], "%s", msg);
	return 0;
}

/* set_log_level(level): debug, info, warn or error */
static int core_set_log_level(lua_State *L)
{
	static const char *const levels[] = { "debug", "info", "warn", "error", NULL };
	procy_log_level(levels[luaL_checkoption(L, 1, NULL, levels)]);
	return 0;
}

/* set_log_filter(fn | nil): every log line of this state goes through
   fn(line) -> line first (procy.redact's rule set: util.c log_line) */
static int core_set_log_filter(lua_State *L)
{
	if (!lua_isnoneornil(L, 1))
		luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_settop(L, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, "procy.log_filter");
	return 0;
}

/* set_run_limit(seconds) -> previous; 0 turns the watchdog off */
static int core_set_run_limit(lua_State *L)
{
	sched_t *S = SCHED(procy_rt(L));
	double s = luaL_checknumber(L, 1);
	luaL_argcheck(L, s >= 0, 1, "must be >= 0");
	lua_pushnumber(L, (double)S->run_limit / 1e9);
	S->run_limit = (int64_t)(s * 1e9);
	return 1;
}

/* exit([code]): ends procy with code (default 0) once every task has been
   cancelled, their __close handlers run. Called from a task, that task is
   cancelled last and exit does not return. */
static int core_exit(lua_State *L)
{
	runtime_t *rt = procy_rt(L);
	sched_t *S = SCHED(rt);
	int code = lua_isboolean(L, 1) ? !lua_toboolean(L, 1) : (int)luaL_optinteger(L, 1, 0);
	if (!rt->exit_set) {
		rt->exit_code = code & 0xff;
		rt->exit_set = 1;
	}
	task_t *self = S->current;
	sched_tasks(L); /* a snapshot: a __close handler may end other tasks */
	lua_Integer n = luaL_len(L, -1);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_pushcfunction(L, sched_cancel);
		lua_rawgeti(L, -2, i);
		if (lua_touserdata(L, -1) == self)
			lua_pop(L, 2);
		else
			lua_call(L, 1, 0);
	}
	lua_pop(L, 1);
	if (self && self->co == L && lua_isyieldable(L)) {
		self->cancelling = 1;
		return lua_yield(L, 0);
	}
	sched_stop(rt);
	return 0;
}

/* ---- task methods --------------------------------------------------------- */

static int task_tostring(lua_State *L)
{
	task_t *t = check_task(L, 1);
	lua_pushstring(L, t->label);
	return 1;
}

static int task_id(lua_State *L)
{
	lua_pushinteger(L, check_task(L, 1)->id);
	return 1;
}

/* t:label([text]) -> the label shown in logs; sets it when text is given */
static int task_label(lua_State *L)
{
	task_t *t = check_task(L, 1);
	if (!lua_isnoneornil(L, 2))
		snprintf(t->label, sizeof t->label, "task %d (%s)", t->id, luaL_checkstring(L, 2));
	lua_pushstring(L, t->label);
	return 1;
}

static int task_status(lua_State *L)
{
	lua_pushstring(L, sched_state_names[check_task(L, 1)->state]);
	return 1;
}

static int op_tostring(lua_State *L)
{
	op_t *op = luaL_checkudata(L, 1, PROCY_OP_MT);
	lua_pushfstring(L, "op (%s, %s)", op->cls->name,
	                op->state == OP_PENDING ? "pending" : "done");
	return 1;
}

static const luaL_Reg task_methods[] = {
	{ "cancel", sched_cancel },
	{ "wait",   core_await },
	{ "id",     task_id },
	{ "status", task_status },
	{ "label",  task_label },
	{ NULL, NULL }
};

/* fail(code, msg) -> nil, "CODE: msg", code: an operational failure as
   every primitive returns one */
static int core_fail(lua_State *L)
{
	const char *code = luaL_checkstring(L, 1);
	return procy_fail(L, code, "%s", luaL_checkstring(L, 2));
}

/* wrap(context, err, [code]) -> nil, "CODE: context: what", code: a
   failure passed up with what was being done in front, its code kept (code
   when given, else err's own "CODE: " prefix, else EFAIL) */
static int core_wrap(lua_State *L)
{
	const char *context = luaL_checkstring(L, 1);
	size_t n;
	const char *err = luaL_optlstring(L, 2, "failed", &n);
	const char *code = luaL_optstring(L, 3, NULL);
	size_t k = 0;
	while (k < n && k < 63 && ((err[k] >= 'A' && err[k] <= 'Z') || (err[k] >= '0' && err[k] <= '9') || err[k] == '_'))
		k++;
	int has = k > 1 && k + 1 < n && err[k] == ':' && err[k + 1] == ' ';
	char own[64] = "";
	if (has) {
		memcpy(own, err, k);
		own[k] = 0;
	}
	return procy_fail(L, code ? code : has ? own : "EFAIL", "%s: %s", context, has ? err + k + 2 : err);
}

static const luaL_Reg core_funcs[] = {
	{ "spawn",         core_spawn },
	{ "await",         core_await },
	{ "cancel",        sched_cancel },
	{ "sleep",         core_sleep },
	{ "timer",         core_timer },
	{ "op",            core_op },
	{ "complete",      core_complete },
	{ "yield",         core_yield },
	{ "exit",          core_exit },
	{ "now",           core_now },
	{ "time",          core_time },
	{ "current",       core_current },
	{ "tasks",         sched_tasks },
	{ "log",           core_log },
	{ "fail",          core_fail },
	{ "wrap",          core_wrap },
	{ "set_run_limit", core_set_run_limit },
	{ "set_log_filter", core_set_log_filter },
	{ "set_log_level", core_set_log_level },
	{ NULL, NULL }
};

int luaopen_procy_core(lua_State *L)
{
	procy_class(L, PROCY_TASK_MT, task_methods, NULL, task_tostring);
	if (luaL_newmetatable(L, PROCY_OP_MT)) {
		lua_pushcfunction(L, op_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
	luaL_newlib(L, core_funcs);
	lua_pushstring(L, PROCY_VERSION);
	lua_setfield(L, -2, "version");
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		lua_pushlstring(L, exe, (size_t)n);
		lua_setfield(L, -2, "exe");
	}
	return 1;
}

/* ---- the run loop ---------------------------------------------------------- */

