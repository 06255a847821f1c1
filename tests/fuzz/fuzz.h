/* fuzz.h — what the libFuzzer harnesses share: a Lua state with procy's
   modules that need no loop (as the recorder threads have), and a Lua
   function of the input that must never raise. A raise is a finding. */
#ifndef PROCY_FUZZ_H
#define PROCY_FUZZ_H
#include <stdio.h>
#include <stdlib.h>

#include "procy.h"
#include "store.h"
#include "vt.h"

static lua_State *fuzz_L;
static int fuzz_fn = LUA_NOREF;

/* script returns function(data) ... end */
static void fuzz_lua_init(const char *script)
{
	/* what the binary hands the recorder threads' states (main.c) */
	static const luaL_Reg worker_modules[] = {
		{ "procy.json", luaopen_procy_json }, { "procy.db", luaopen_procy_db }, { "procy.hash", luaopen_procy_hash },
		{ "procy.blobs", luaopen_procy_blobs }, { "procy.vt", luaopen_procy_vt }, { NULL, NULL }
	};
	procy_preload(worker_modules);
	lua_State *L = fuzz_L = luaL_newstate();
	procy_rt(L) = NULL;
	procy_open_modules(L);
	if (luaL_loadstring(L, script) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
		fprintf(stderr, "fuzz harness: %s\n", lua_tostring(L, -1));
		abort();
	}
	fuzz_fn = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void fuzz_lua_run(const unsigned char *data, size_t size)
{
	static unsigned runs;
	lua_State *L = fuzz_L;
	lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_fn);
	lua_pushlstring(L, (const char *)data, size);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		fprintf(stderr, "raised: %s\n", lua_tostring(L, -1));
		abort();
	}
	lua_settop(L, 0);
	if (++runs % 256 == 0)
		lua_gc(L, LUA_GCCOLLECT);
}
/* The two entry points of a harness whose input goes to the Lua function
   script returns. */
#define FUZZ_LUA(script) \
	int LLVMFuzzerInitialize(int *argc, char ***argv) \
	{ \
		(void)argc, (void)argv; \
		fuzz_lua_init(script); \
		return 0; \
	} \
	int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) \
	{ \
		fuzz_lua_run(data, size); \
		return 0; \
	}
#endif
