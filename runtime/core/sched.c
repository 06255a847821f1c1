/*
** sched.c — tasks, ops and the run loop; their Lua face, `procy.core`, is
** core.c.
**
** A task is a Lua coroutine that only this file resumes. A primitive that
** waits creates an op (op_new), arranges for loop callbacks to complete it
** (op_complete / op_fail), and yields through op_await. Completion moves the
** results onto the waiting task's stack and queues it; sched_run resumes
** queued tasks between loop steps, so no library callback ever runs Lua.
**
** Ending a task, however it ends, goes through task_end: results are kept on
** the task (for later awaits), every joiner is woken, and the coroutine is
** closed so its pending `<close>` variables run on cancel and on error.
*/
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "sched_impl.h"

const char *const sched_state_names[] = {
	"ready", "running", "waiting", "done", "failed", "cancelled"
};

/* ---- lists ------------------------------------------------------------------- */

void sched_enqueue(sched_t *S, task_t *t)
{
	t->state = T_READY;
	list_push(&S->ready, &t->ready);
}

/* [-n, +1] Replaces the n values on top with the table {n = n, ...}. */
static void pack(lua_State *L, int n)
{
	lua_createtable(L, n, 1);
	lua_insert(L, -n - 1);
	for (int i = n; i >= 1; i--)
		lua_rawseti(L, -i - 1, i);
	lua_pushinteger(L, n);
	lua_setfield(L, -2, "n");
}

/* [-0, +n] Pushes the values of the pack()ed table at idx; returns n. */
int sched_unpack(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_getfield(L, idx, "n");
	int n = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	luaL_checkstack(L, n, "results");
	for (int i = 1; i <= n; i++)
		lua_rawgeti(L, idx, i);
	return n;
}

/* ---- ops ------------------------------------------------------------------- */

op_t *op_new(lua_State *L, const op_class *cls, size_t extra)
{
	runtime_t *rt = procy_rt(L);
	sched_t *S = SCHED(rt);
	op_t *op = lua_newuserdatauv(L, sizeof *op + extra, 1);
	memset(op, 0, sizeof *op + extra);
	op->cls = cls;
	op->data = extra ? op->payload : NULL;
	op->rt = rt;
	op->state = OP_PENDING;
	loop_timer_init(&op->timeout);
	luaL_setmetatable(L, PROCY_OP_MT);
	lua_pushvalue(L, -1);
	op->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
	list_push(&S->ops, &op->pending);
	return op;
}

void op_complete(lua_State *L, op_t *op, int n)
{
	runtime_t *rt = procy_rt(L);
	sched_t *S = SCHED(rt);
	if (op->state != OP_PENDING) {
		lua_pop(L, n);
		return;
	}
	op->state = OP_DONE;
	loop_timer_stop(rt->loop, &op->timeout);
	list_remove(&S->ops, &op->pending);
	task_t *t = op->waiter;
	if (t) {
		op->waiter = NULL;
		t->waiting = NULL;
		luaL_checkstack(t->co, n, "op results");
		lua_xmove(L, t->co, n);
		t->nargs = n;
		sched_enqueue(S, t);
	} else {
		/* Nobody waits yet: keep the results for a later await. */
		pack(L, n);
		lua_rawgeti(L, LUA_REGISTRYINDEX, op->anchor);
		lua_insert(L, -2);
		lua_setiuservalue(L, -2, 1);
		lua_pop(L, 1);
	}
	luaL_unref(L, LUA_REGISTRYINDEX, op->anchor);
	op->anchor = LUA_NOREF;
}

void op_fail(lua_State *L, op_t *op, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = procy_vfail(L, code, fmt, ap);
	va_end(ap);
	op_complete(L, op, n);
}

void op_cancel(lua_State *L, op_t *op)
{
	if (op->state != OP_PENDING)
		return;
	if (op->cls->cancel)
		op->cls->cancel(op);
	op_fail(L, op, "ECANCELED", "%s cancelled", op->cls->name);
}

static void op_timeout(loop_t *loop, loop_timer *tm)
{
	(void)loop;
	op_t *op = tm->data;
	if (op->cls->cancel)
		op->cls->cancel(op);
	char secs[32]; /* lua_pushfstring has no %g */
	snprintf(secs, sizeof secs, "%g", op->timeout_s);
	op_fail(op->rt->L, op, "ETIMEDOUT", "%s timed out after %s s", op->cls->name, secs);
}

/* [-0, +n] Pushes the results a finished op kept for a later await. */
static int op_results(lua_State *L, int idx)
{
	if (lua_getiuservalue(L, idx, 1) != LUA_TTABLE)
		return luaL_error(L, "op was already awaited; its results were delivered");
	return sched_unpack(L, -1);
}

task_t *sched_running_task(lua_State *L, const char *what)
{
	sched_t *S = SCHED(procy_rt(L));
	task_t *t = S->current;
	if (!t)
		luaL_error(L, "%s: not inside a task (start one with core.spawn)", what);
	if (t->co != L)
		luaL_error(L, "%s: called from a nested coroutine; only the task itself can wait", what);
	if (!lua_isyieldable(L))
		luaL_error(L, "%s: cannot wait here (inside a metamethod, a C iterator or db:transaction)", what);
	return t;
}

int op_await(lua_State *L, int idx, double timeout)
{
	idx = lua_absindex(L, idx);
	op_t *op = luaL_checkudata(L, idx, PROCY_OP_MT);
	if (op->state == OP_DONE)
		return op_results(L, idx);
	task_t *t = sched_running_task(L, "await");
	if (op->waiter)
		return luaL_error(L, "await: %s is already awaited by %s",
		                  op->cls->name, op->waiter->label);
	op->waiter = t;
	t->waiting = op;
	t->state = T_WAITING;
	if (timeout >= 0 && !isinf(timeout)) {
		int64_t ns = (int64_t)(timeout * 1e9);
		op->timeout_s = timeout;
		if (loop_timer_start(t->rt->loop, &op->timeout, ns, op_timeout, op) < 0) {
			op->waiter = NULL;
			t->waiting = NULL;
			t->state = T_RUNNING;
			return luaL_error(L, "await: out of memory for the timer");
		}
	}
	return lua_yield(L, 0);
}

/* ---- waiters: one task on a slot --------------------------------------------------------- */

void waiter_cancel(op_t *op)
{
	*(op_t **)op->data = NULL;
}

int waiter_wait(lua_State *L, op_t **slot, const op_class *cls, double timeout)
{
	lua_settop(L, 0);
	*slot = op_new(L, cls, 0);
	(*slot)->data = slot;
	return op_await(L, 1, timeout);
}

op_t *waiter_take(op_t **slot)
{
	op_t *op = *slot;
	*slot = NULL;
	return op;
}

/* ---- tasks --------------------------------------------------------------- */

/* Pushes the userdata of a live task (anchored in the registry). */
void sched_push_task(lua_State *L, task_t *t)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor);
}

static const char *error_text(lua_State *co)
{
	int tt = lua_type(co, -1);
	if (tt == LUA_TSTRING || tt == LUA_TNUMBER)
		return lua_tostring(co, -1);
	return lua_pushfstring(co, "(error object is a %s value)", lua_typename(co, tt));
}

/* Ends t with the n values on top of L (the thread that ends it) as its
   results: closes the coroutine (running pending __close), keeps the
   results on the task, wakes every joiner, and drops the anchor. */
static void task_end(lua_State *L, task_t *t, int state, int n)
{
	sched_t *S = SCHED(t->rt);
	list_remove(&S->ready, &t->ready);
	list_remove(&S->live, &t->live);
	t->state = state;
	/* A coroutine that died by error reports that same error again when
	   closed; it was logged already. */
	int status = procy_closethread(t->co, L);
	if (status != LUA_OK && state != T_FAILED)
		procy_log(L, "error", "%s: error in a __close handler: %s",
		          t->label, error_text(t->co));
	lua_settop(t->co, 0);
	pack(L, n);
	int results = lua_gettop(L);
	sched_push_task(L, t);
	int ud = lua_gettop(L);
	lua_pushvalue(L, results);
	lua_setiuservalue(L, ud, UV_RESULTS);
	if (lua_getiuservalue(L, ud, UV_JOINERS) == LUA_TTABLE) {
		lua_Integer nj = luaL_len(L, -1);
		for (lua_Integer j = 1; j <= nj; j++) {
			lua_rawgeti(L, -1, j);
			op_t *op = lua_touserdata(L, -1);
			lua_pop(L, 1);
			op_complete(L, op, sched_unpack(L, results)); /* a copy each */
		}
	}
	lua_pushnil(L);
	lua_setiuservalue(L, ud, UV_JOINERS);
	lua_settop(L, results - 1);
	luaL_unref(L, LUA_REGISTRYINDEX, t->anchor);
	t->anchor = LUA_NOREF;
}

static void task_fail(lua_State *L, task_t *t)
{
	const char *msg = error_text(t->co);
	luaL_traceback(L, t->co, msg, 0);
	int trace = lua_gettop(L);
	procy_fail(L, "ETASK", "%s", msg);
	/* Logged after the task's __close handlers ran: one of them may give
	   stderr back (an interactive session diverts it while it runs). */
	task_end(L, t, T_FAILED, 3);
	procy_log(L, "error", "%s failed: %s", t->label, lua_tostring(L, trace));
	lua_settop(L, trace - 1);
}

void sched_task_cancelled(lua_State *L, task_t *t)
{
	task_end(L, t, T_CANCELLED, procy_fail(L, "ECANCELED", "%s cancelled", t->label));
}

void sched_resume(runtime_t *rt, task_t *t)
{
	sched_t *S = SCHED(rt);
	lua_State *L = rt->L;
	int nres = 0, nargs = t->nargs;
	t->nargs = 0;
	t->state = T_RUNNING;
	S->current = t;
	S->resumed_at = loop_clock();
	if (!t->busy_since)
		t->busy_since = S->resumed_at;
	int status = lua_resume(t->co, L, nargs, &nres);
	S->current = NULL;
	if (!S->preempting)
		t->busy_since = 0; /* it waited, or ended: busy no more */
	S->preempting = 0;
	if (status == LUA_YIELD) {
		lua_pop(t->co, nres);
		if (t->cancelling)
			sched_task_cancelled(L, t);
		else if (t->state == T_RUNNING)
			sched_enqueue(S, t); /* a bare coroutine.yield(): run again later */
	} else if (status == LUA_OK) {
		luaL_checkstack(L, nres, "task results");
		lua_xmove(t->co, L, nres);
		task_end(L, t, T_DONE, nres);
	} else {
		task_fail(L, t);
	}
}

/* A terminating signal waits (they are blocked and read from the loop's
   signalfd)? */
static int signal_waits(void)
{
	sigset_t set;
	return sigpending(&set) == 0 &&
	       (sigismember(&set, SIGTERM) == 1 || sigismember(&set, SIGINT) == 1 || sigismember(&set, SIGHUP) == 1);
}

/* Every 10000 instructions of a task. A task that has run SLICE_NS without
   yielding is paused at this point, when it can be (not inside a C call:
   a pcall, a transaction, a sort), so the loop runs meanwhile: the relay
   never waits for Lua, and signals are handled. It goes on after the
   other ready tasks and one turn of the loop. Where it cannot yield, a
   terminating signal ends it; and the watchdog ends it past run_limit. */
void sched_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	sched_t *S = SCHED(procy_rt(L));
	if (!S->current)
		return;
	task_t *t = S->current;
	int64_t now = loop_clock();
	if (now - S->resumed_at < SLICE_NS)
		return;
	if (S->run_limit > 0 && now - t->busy_since > S->run_limit) {
		char secs[32];
		snprintf(secs, sizeof secs, "%g", (double)S->run_limit / 1e9);
		luaL_error(L, "%s ran for more than %s s without yielding "
		           "(call core.yield() in long loops, or raise task_run_limit)",
		           t->label, secs);
	}
	if (lua_isyieldable(L) && t->co == L) {
		S->preempting = 1;
		lua_yield(L, 0); /* sched_resume() queues it again, as after coroutine.yield() */
		return;
	}
	if (signal_waits())
		luaL_error(L, "%s was stopped: procy got a signal to end", t->label);
}

int sched_init(runtime_t *rt)
{
	sched_t *S = calloc(1, sizeof *S);
	if (!S)
		return -1;
	S->run_limit = (int64_t)10 * 1000000000;
	rt->sched = S;
	return 0;
}

int sched_live(runtime_t *rt) { return SCHED(rt)->live.len; }
void sched_stop(runtime_t *rt) { SCHED(rt)->stop = 1; }

/* cancel(task) -> true if it was still running, false if it had ended */
int sched_cancel(lua_State *L)
{
	runtime_t *rt = procy_rt(L);
	sched_t *S = SCHED(rt);
	task_t *t = check_task(L, 1);
	if (task_ended(t)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (t == S->current) {
		if (t->co != L || !lua_isyieldable(L))
			return luaL_error(L, "cancel: the running task can only cancel itself from its own body");
		t->cancelling = 1;
		return lua_yield(L, 0); /* sched_resume() sees the flag and ends it */
	}
	if (t->waiting) {
		op_t *op = t->waiting;
		op->waiter = NULL;
		t->waiting = NULL;
		op_cancel(L, op);
	}
	sched_task_cancelled(L, t);
	lua_pushboolean(L, 1);
	return 1;
}

/* tasks() -> array of the live tasks, in spawn order */
int sched_tasks(lua_State *L)
{
	sched_t *S = SCHED(procy_rt(L));
	lua_createtable(L, S->live.len, 0);
	int i = 0;
	for (list_node *n = S->live.head; n; n = n->next) {
		sched_push_task(L, LIVE_TASK(n));
		lua_rawseti(L, -2, ++i);
	}
	return 1;
}

void sched_cancel_all(runtime_t *rt)
{
	lua_State *L = rt->L;
	luaL_checkstack(L, 4, NULL);
	sched_tasks(L);
	lua_Integer n = luaL_len(L, -1);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_pushcfunction(L, sched_cancel);
		lua_rawgeti(L, -2, i);
		if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
			procy_log(L, "error", "cancel: %s", lua_tostring(L, -1));
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
}

/* Runs the tasks that were ready when the pass began; tasks made ready
   meanwhile wait for the next pass, after the loop has been polled. */
static void run_ready(runtime_t *rt)
{
	sched_t *S = SCHED(rt);
	for (int n = S->ready.len; n > 0 && S->ready.head && !S->stop; n--) {
		task_t *t = READY_TASK(S->ready.head);
		list_remove(&S->ready, &t->ready);
		sched_resume(rt, t);
	}
}

static void report_deadlock(runtime_t *rt)
{
	lua_State *L = rt->L;
	sched_tasks(L);
	lua_Integer n = luaL_len(L, -1);
	procy_log(L, "error", "deadlock: %d task(s) wait and nothing can wake them", (int)n);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		task_t *t = lua_touserdata(L, -1);
		procy_log(L, "error", "  %s waits on %s", t->label,
		          t->waiting ? t->waiting->cls->name : "nothing");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

int sched_run(runtime_t *rt)
{
	sched_t *S = SCHED(rt);
	while (!S->stop) {
		run_ready(rt);
		if (S->stop || S->live.len == 0)
			break;
		if (!S->ready.head && loop_pending(rt->loop) == 0) {
			report_deadlock(rt);
			sched_cancel_all(rt);
			rt->exit_code = 1;
			rt->exit_set = 1;
			continue;
		}
		if (loop_step(rt->loop, S->ready.head ? 0 : -1) < 0)
			return -1;
	}
	return 0;
}

void sched_free(runtime_t *rt)
{
	sched_t *S = SCHED(rt);
	if (!S)
		return;
	/* __close handlers may spawn; a few passes end those too. */
	for (int pass = 0; pass < 8 && S->live.len; pass++)
		sched_cancel_all(rt);
	while (S->ops.head)
		op_cancel(rt->L, list_item(S->ops.head, op_t, pending));
	free(S);
	rt->sched = NULL;
}

int sched_results(lua_State *L, int idx)
{
	task_t *t = check_task(L, idx);
	if (!task_ended(t))
		return -1;
	lua_getiuservalue(L, idx, UV_RESULTS);
	int n = sched_unpack(L, -1);
	lua_remove(L, -n - 1);
	return n;
}
