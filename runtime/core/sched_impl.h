/*
** sched_impl.h — the scheduler's insides, shared by its two halves: tasks,
** ops and the run loop (sched.c), and their Lua face, procy.core (core.c).
** Nothing else includes it.
*/
#ifndef PROCY_SCHED_IMPL_H
#define PROCY_SCHED_IMPL_H

#include "procy.h"

#define PROCY_TASK_MT "procy.task"
#define SLICE_NS      20000000 /* a task running this long without yielding is paused */
#define PROCY_OP_MT   "procy.op"

enum { T_READY, T_RUNNING, T_WAITING, T_DONE, T_FAILED, T_CANCELLED };
extern const char *const sched_state_names[];

/* uservalue slots of a task userdata */
enum { UV_THREAD = 1, UV_RESULTS, UV_JOINERS };

struct task {
	lua_State *co;
	runtime_t *rt;
	int        id;
	int        state;
	int        nargs;      /* values on co's stack for the next resume */
	int        anchor;     /* registry ref while the task has not ended */
	int        cancelling; /* cancel() called from inside the task */
	int64_t    busy_since; /* loop clock: when it last went on after waiting (pauses by the hook do not count) */
	op_t      *waiting;
	list_node  ready;      /* in the ready queue */
	list_node  live;       /* in the live list, in spawn order */
	char       label[96];
};

typedef struct sched {
	list_t   ready;         /* tasks to resume, in order */
	list_t   live;          /* tasks not ended, in spawn order */
	list_t   ops;           /* pending ops, for shutdown */
	task_t  *current;
	int      next_id;
	int      stop;
	int64_t  resumed_at;
	int64_t  run_limit;     /* ns a task may run without yielding; 0 = off */
	int      preempting;    /* the hook paused the running task */
} sched_t;

#define SCHED(rt) ((sched_t *)(rt)->sched)

#define READY_TASK(n) list_item((n), task_t, ready)
#define LIVE_TASK(n)  list_item((n), task_t, live)

static inline task_t *check_task(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, PROCY_TASK_MT);
}

static inline int task_ended(const task_t *t) { return t->state >= T_DONE; }

/* sched.c */
void    sched_enqueue(sched_t *S, task_t *t);
int     sched_unpack(lua_State *L, int idx);   /* [-0, +n] a pack()ed table's values */
task_t *sched_running_task(lua_State *L, const char *what); /* raises outside a task */
void    sched_push_task(lua_State *L, task_t *t);
void    sched_resume(runtime_t *rt, task_t *t);
void    sched_task_cancelled(lua_State *L, task_t *t);
void    sched_hook(lua_State *L, lua_Debug *ar); /* the time slice and the watchdog */

/* the scheduler's own Lua functions, which core.c binds as core.cancel and core.tasks */
int sched_cancel(lua_State *L); /* cancel(task): core.cancel */
int sched_tasks(lua_State *L);  /* tasks(): core.tasks */

#endif
