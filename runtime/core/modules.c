/*
** modules.c — how a Lua state finds procy's modules. C modules are
** preloaded. Lua modules named procy.* come from the bytecode compiled
** into the binary, or from the sources in $PROCY_LUA_PATH/procy/... when
** that is set, so the Lua side can be edited without a rebuild.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procy.h"

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
	const char *rel = lua_tostring(L, -1); /* procy/cli/main.lua */
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

static const luaL_Reg *preloaded; /* set once, before any thread starts */

void procy_preload(const luaL_Reg *modules)
{
	preloaded = modules;
}

/* The modules every Lua state may have, loop or not (a worker's too): the
   standard libraries, the C modules the binary named (procy_preload) and
   the procy.* Lua modules. The loop's own (core, proc, fs, pty, http) the
   loop's state adds (main.c), so nothing here reaches up into what a
   worker runs under. */
void procy_open_modules(lua_State *L)
{
	luaL_openlibs(L);
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	for (const luaL_Reg *r = preloaded; r && r->name; r++) {
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

