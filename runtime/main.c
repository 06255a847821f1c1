/*
** main.c — process setup: the loop, the Lua state, module loading, and the
** first task, which runs `procy.cli`'s main(args). The process exits when
** every task has ended, with the status the first task returned.
**
** Modules are found as modules.c says.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procy.h"
#include "store.h"
#include "session.h"
#include "relay.h"
#include "vt.h"
#include "http.h"

/* The C modules a Lua state of any thread gets (procy_open_modules): the
   binary, the top, names them for the layers below. */
static const luaL_Reg worker_modules[] = {
	{ "procy.json",  luaopen_procy_json },
	{ "procy.db",    luaopen_procy_db },
	{ "procy.hash",  luaopen_procy_hash },
	{ "procy.blobs", luaopen_procy_blobs },
	{ "procy.vt",    luaopen_procy_vt },
	{ NULL, NULL }
};

/* SIGINT, SIGTERM, SIGHUP: cancel every task (their __close handlers run)
   and exit 128+signo. A second signal stops without waiting further. */
static void on_signal(loop_t *loop, loop_signal *s, int signo)
{
	(void)loop;
	runtime_t *rt = s->data;
	if (rt->exit_set) {
		sched_stop(rt);
		return;
	}
	rt->exit_code = 128 + signo;
	rt->exit_set = 1;
	procy_log(rt->L, "info", "%s: stopping", strsignal(signo));
	sched_cancel_all(rt);
}

static int pmain(lua_State *L)
{
	runtime_t *rt = procy_rt(L);
	int argc = (int)lua_tointeger(L, 1);
	char **argv = lua_touserdata(L, 2);
	static loop_signal sigs[3];
	static const int signos[3] = { SIGINT, SIGTERM, SIGHUP };
	static const luaL_Reg loop_modules[] = {
		{ "procy.core", luaopen_procy_core },
		{ "procy.proc", luaopen_procy_proc },
		{ "procy.fs",   luaopen_procy_fs },
		{ "procy.pty",  luaopen_procy_pty },
		{ "procy.http", luaopen_procy_http },
		{ NULL, NULL }
	};
	procy_open_modules(L);
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	for (const luaL_Reg *m = loop_modules; m->name; m++) {
		lua_pushcfunction(L, m->func);
		lua_setfield(L, -2, m->name);
	}
	lua_pop(L, 1);
	for (int i = 0; i < 3; i++)
		if (loop_signal_start(rt->loop, &sigs[i], signos[i], on_signal, rt) < 0)
			return luaL_error(L, "signal setup: %s", strerror(errno));
	luaL_requiref(L, "procy.core", luaopen_procy_core, 0);
	lua_getfield(L, -1, "spawn");
	lua_getglobal(L, "require");
	lua_pushliteral(L, "procy.cli.main");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "main");
	lua_remove(L, -2);
	lua_createtable(L, argc, 1);
	for (int i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i);
	}
	lua_call(L, 2, 1); /* core.spawn(cli.main, args) -> task */
	int task = lua_gettop(L);
	if (sched_run(rt) < 0)
		return luaL_error(L, "event loop: %s", strerror(errno));
	if (rt->exit_set)
		return 0;
	/* The first task's results give the status: an integer is the code;
	   nil, err (how a failed task ends) and false are 1; anything else 0. */
	int n = sched_results(L, task);
	if (n < 0)
		rt->exit_code = 1; /* stopped before it ended */
	else if (n >= 1 && lua_isinteger(L, -n))
		rt->exit_code = (int)(lua_tointeger(L, -n) & 0xff);
	else if (n >= 2 && lua_isnil(L, -n))
		rt->exit_code = 1;
	else if (n >= 1 && lua_isboolean(L, -n) && !lua_toboolean(L, -n))
		rt->exit_code = 1;
	return 0;
}

static int pcleanup(lua_State *L)
{
	sched_free(procy_rt(L));
	return 0;
}

int main(int argc, char **argv)
{
	runtime_t rt = { 0 };
	/* the sandbox's relay: no Lua, no loop (relay.c) */
	if (argc > 1 && strcmp(argv[1], "__relay") == 0)
		return relay_main(argc, argv);
	if (argc > 1 && strcmp(argv[1], "__box") == 0)
		return box_main(argc, argv);
	if (argc > 1 && strcmp(argv[1], "__net") == 0)
		return net_main(argc, argv);
	/* A recipe's progress lines should reach a pipe as they are printed. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Big buffers (bodies, batches) come from mmap and go back to the system
	   when freed: glibc would otherwise raise the threshold after the first
	   big free and keep every later burst in the heap for good. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
	procy_preload(worker_modules);
	rt.loop = loop_new();
	if (!rt.loop) {
		fprintf(stderr, "procy: cannot start the event loop: %s\n", strerror(errno));
		return 1;
	}
	lua_State *L = luaL_newstate();
	if (!L || sched_init(&rt) < 0) {
		fprintf(stderr, "procy: out of memory\n");
		return 1;
	}
	rt.L = L;
	procy_rt(L) = &rt;
	lua_pushcfunction(L, pmain);
	lua_pushinteger(L, argc);
	lua_pushlightuserdata(L, argv);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
		fprintf(stderr, "procy: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
		rt.exit_code = 1;
	}
	lua_pushcfunction(L, pcleanup);
	if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
		fprintf(stderr, "procy: shutdown: %s\n", lua_tostring(L, -1));
		rt.exit_code = rt.exit_code ? rt.exit_code : 1;
	}
	fflush(stdout);
	lua_close(L);
	session_shutdown();
	proc_shutdown();
	server_shutdown();
	http_shutdown();
	loop_free(rt.loop);
	return rt.exit_code;
}
