/*
** main.c — process setup: the loop, the Lua state, module loading, and the
** first task, which runs `procy.cli`'s main(args). The process exits when
** every task has ended, with the status the first task returned.
**
** Lua modules named procy.* come from the bytecode compiled into the binary,
** or from the sources in $PROCY_LUA_PATH/procy/... when that is set, so the
** Lua side can be edited without a rebuild. C modules are preloaded.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procy.h"
#include "http.h"

static const embedded_file *find_embedded(const char *path)
{
	for (const embedded_file *f = procy_embedded; f->path; f++)
		if (strcmp(f->path, path) == 0)
			return f;
	return NULL;
}

/* package.searchers entry for procy.* Lua modules. */
static int search_procy(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	if (strncmp(name, "procy.", 6) != 0)
		return 0;
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (const char *p = name; *p; p++)
		luaL_addchar(&b, *p == '.' ? '/' : *p);
	luaL_addstring(&b, ".lua");
	luaL_pushresult(&b);
	const char *rel = lua_tostring(L, -1); /* procy/cli.lua */
	const char *dir = getenv("PROCY_LUA_PATH");
	int status;
	if (dir && *dir) {
		const char *file = lua_pushfstring(L, "%s/%s", dir, rel);
		FILE *fp = fopen(file, "r");
		if (!fp) {
			lua_pushfstring(L, "no file '%s' (PROCY_LUA_PATH)", file);
			return 1;
		}
		fclose(fp);
		status = luaL_loadfilex(L, file, "t");
	} else {
		const char *path = lua_pushfstring(L, "lua/%s", rel);
		const embedded_file *f = find_embedded(path);
		if (!f) {
			lua_pushfstring(L, "no embedded module '%s'", path);
			return 1;
		}
		/* compiled by procy-embed, which gave it this chunk name */
		status = luaL_loadbufferx(L, (const char *)f->data, f->len, path, "b");
	}
	if (status != LUA_OK)
		return luaL_error(L, "error loading module '%s':\n\t%s", name,
		                  lua_tostring(L, -1));
	lua_insert(L, -2); /* loader, then its file name as loader data */
	return 2;
}

static void open_modules(lua_State *L)
{
	static const luaL_Reg preload[] = {
		{ "procy.core", luaopen_procy_core },
		{ "procy.json", luaopen_procy_json },
		{ "procy.db",   luaopen_procy_db },
		{ "procy.proc", luaopen_procy_proc },
		{ "procy.fs",   luaopen_procy_fs },
		{ "procy.pty",  luaopen_procy_pty },
		{ "procy.http", luaopen_procy_http },
		{ "procy.hash", luaopen_procy_hash },
		{ NULL, NULL }
	};
	luaL_openlibs(L);
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	for (const luaL_Reg *r = preload; r->name; r++) {
		lua_pushcfunction(L, r->func);
		lua_setfield(L, -2, r->name);
	}
	lua_pop(L, 1);
	/* our searcher goes right after preload, before package.path */
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "searchers");
	lua_pushcfunction(L, search_procy);
	for (lua_Integer i = luaL_len(L, -2) + 1; i > 2; i--) {
		lua_rawgeti(L, -2, i - 1);
		lua_rawseti(L, -3, i);
	}
	lua_rawseti(L, -2, 2);
	lua_pop(L, 2);
}

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
	open_modules(L);
	for (int i = 0; i < 3; i++)
		if (loop_signal_start(rt->loop, &sigs[i], signos[i], on_signal, rt) < 0)
			return luaL_error(L, "signal setup: %s", strerror(errno));
	luaL_requiref(L, "procy.core", luaopen_procy_core, 0);
	lua_getfield(L, -1, "spawn");
	lua_getglobal(L, "require");
	lua_pushliteral(L, "procy.cli");
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
	/* A recipe's progress lines should reach a pipe as they are printed. */
	setvbuf(stdout, NULL, _IOLBF, 0);
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
