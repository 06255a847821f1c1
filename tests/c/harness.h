/* harness.h — for C tests: a Lua evaluator for modules that need no loop,
   and a runtime (loop, Lua state, scheduler, C modules) as main.c sets it
   up, without the CLI. */
#ifndef HARNESS_H
#define HARNESS_H
#include <stdio.h>
#include <stdlib.h>
#include "procy.h"
#include "store.h"

/* Runs code (returning one value) in a plain Lua state; gives the value as
   a string, or "error: <message>". */
static inline const char *lua_eval(lua_State *L, const char *code)
{
	static char out[4096];
	lua_settop(L, 0);
	if (luaL_dostring(L, code) != LUA_OK) {
		snprintf(out, sizeof out, "error: %s", lua_tostring(L, -1));
		return out;
	}
	snprintf(out, sizeof out, "%s", luaL_tolstring(L, 1, NULL));
	return out;
}

static inline runtime_t *rt_new(void)
{
	runtime_t *rt = calloc(1, sizeof *rt);
	rt->loop = loop_new();
	rt->L = luaL_newstate();
	procy_rt(rt->L) = rt;
	sched_init(rt);
	luaL_openlibs(rt->L);
	static const luaL_Reg mods[] = {
		{ "procy.core", luaopen_procy_core }, { "procy.json", luaopen_procy_json },
		{ "procy.db", luaopen_procy_db },     { "procy.proc", luaopen_procy_proc },
		{ "procy.fs", luaopen_procy_fs },     { NULL, NULL }
	};
	for (const luaL_Reg *m = mods; m->name; m++) {
		luaL_requiref(rt->L, m->name, m->func, 0);
		lua_pop(rt->L, 1);
	}
	return rt;
}

static inline void rt_free(runtime_t *rt)
{
	sched_free(rt);
	lua_close(rt->L);
	proc_shutdown();
	loop_free(rt->loop);
	free(rt);
}

/* Runs code as a task until every task has ended; returns its first result
   converted to a string (static storage), or the load error. */
static inline const char *rt_run(runtime_t *rt, const char *code)
{
	static char out[4096];
	lua_State *L = rt->L;
	if (luaL_loadstring(L, code) != LUA_OK) {
		snprintf(out, sizeof out, "load: %s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return out;
	}
	lua_getglobal(L, "require");
	lua_pushliteral(L, "procy.core");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "spawn");
	lua_remove(L, -2);
	lua_insert(L, -2);
	lua_call(L, 1, 1);
	int task = lua_gettop(L);
	sched_run(rt);
	int n = sched_results(L, task);
	snprintf(out, sizeof out, "%s", n > 0 ? luaL_tolstring(L, -n, NULL) : n == 0 ? "(nothing)" : "(still running)");
	lua_settop(L, task - 1);
	return out;
}
#endif
