/*
** db.c — the `procy.db` module: SQLite for recipes and for procy itself.
**
** A db handle is one connection in WAL mode with a busy timeout and foreign
** keys on. open() applies the schema migrations (store/NNNN_*.sql compiled
** into the binary, or a directory the caller names) inside one write
** transaction each, tracked by PRAGMA user_version. Statements are prepared
** once and kept in a small per-connection cache keyed by their SQL text.
**
** Errors: a statement that does not compile (a bug in the caller) raises;
** an operational failure (busy, constraint, disk full, I/O) returns
** nil, "SQLITE_<CODE>: message", "SQLITE_<CODE>". SQLite calls are
** synchronous: a busy wait blocks the loop for at most the busy timeout.
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "procy.h"
#include "store.h"

#define PROCY_DB_MT "procy.db"
#define BLOB_MT     "procy.db.blob"
#define CACHE_SIZE  64

typedef struct cached {
	sqlite3_stmt *st;
	char         *sql;
	size_t        len;
	uint64_t      used;
} cached;

typedef struct db {
	sqlite3  *h;
	cached    cache[CACHE_SIZE];
	int       ncache;
	uint64_t  tick;
	int       txdepth;
	int       redact;  /* the boundary, both ways: its rule is the handle's user value 1 */
	secrets_t lits;    /* what the rule can match holds one of these (secrets.c) */
} db_t;


static db_t *check_db(lua_State *L)
{
	db_t *db = luaL_checkudata(L, 1, PROCY_DB_MT);
	if (!db->h)
		luaL_error(L, "db is closed");
	return db;
}

/* ---- the boundary ------------------------------------------------------------- */

/* A connection opened with `redact` (procy's record: procy.store, the API
   recorder, the monitor's reader) masks every text and blob a write binds,
   and every one a query reads: whatever table or column it goes to,
   nothing secret reaches the file, and whatever reads the record (every
   export, the monitor, a recipe) sees it through today's rules — a record
   an older procy wrote, or a pattern added since, included. Text holding
   none of the rule's literals (the usual case) passes as it is, no Lua. */
/* st: the statement under way, reset before a failure of the rule is
   raised (a raise would leave it mid-step: its next use would go on from
   there, and its read would hold the WAL back meanwhile). */
static int redact_value(lua_State *L, db_t *db, int handle, const char **p, size_t *n, sqlite3_stmt *st)
{
	if (!db->redact || !secrets_may_hold(&db->lits, *p, *n))
		return 0;
	lua_getiuservalue(L, handle, 1);
	lua_pushlstring(L, *p, *n);
	int rc = lua_pcall(L, 1, 1, 0);
	if (rc == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
		*p = lua_tolstring(L, -1, n);
		return 1;
	}
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	if (rc != LUA_OK)
		return lua_error(L);
	return luaL_error(L, "db: the record's redaction rule gave a %s, not text", luaL_typename(L, -1));
}

int db_redact(lua_State *L, int idx, const char **p, size_t *n)
{
	db_t *db = luaL_checkudata(L, idx, PROCY_DB_MT);
	return redact_value(L, db, lua_absindex(L, idx), p, n, NULL);
}

/* ---- statements ------------------------------------------------------------- */

static int blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != ';')
			return 0;
	return 1;
}

/* Returns the cached statement for sql, preparing it on a miss. Raises when
   the SQL does not compile. *multi is set when sql holds more than one
   statement (then nothing is cached and NULL is returned). */
static sqlite3_stmt *stmt_get(lua_State *L, db_t *db, const char *sql, size_t len, int *multi)
{
	*multi = 0;
	for (int i = 0; i < db->ncache; i++) {
		cached *c = &db->cache[i];
		if (c->len == len && memcmp(c->sql, sql, len) == 0) {
			c->used = ++db->tick;
			return c->st;
		}
	}
	sqlite3_stmt *st;
	const char *tail;
	int rc = sqlite3_prepare_v3(db->h, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &st, &tail);
	if (rc != SQLITE_OK) {
		if ((rc & 0xff) == SQLITE_ERROR)
			luaL_error(L, "db: %s (in: %s)", sqlite3_errmsg(db->h), sql);
		return NULL;
	}
	if (!st || !blank(tail)) {
		sqlite3_finalize(st);
		*multi = 1;
		return NULL;
	}
	cached *slot;
	if (db->ncache < CACHE_SIZE) {
		slot = &db->cache[db->ncache++];
	} else {
		slot = &db->cache[0];
		for (int i = 1; i < CACHE_SIZE; i++)
			if (db->cache[i].used < slot->used)
				slot = &db->cache[i];
		sqlite3_finalize(slot->st);
		free(slot->sql);
	}
	slot->sql = malloc(len + 1);
	if (!slot->sql) {
		sqlite3_finalize(st);
		db->ncache--;
		*slot = db->cache[db->ncache];
		luaL_error(L, "db: out of memory");
	}
	memcpy(slot->sql, sql, len + 1);
	slot->len = len;
	slot->st = st;
	slot->used = ++db->tick;
	return st;
}

struct sqlite3 *db_conn(lua_State *L, int idx)
{
	db_t *db = luaL_checkudata(L, idx, PROCY_DB_MT);
	if (!db->h)
		luaL_error(L, "db is closed");
	return db->h;
}

struct sqlite3_stmt *db_cached(lua_State *L, int idx, const char *sql)
{
	db_t *db = luaL_checkudata(L, idx, PROCY_DB_MT);
	if (!db->h)
		luaL_error(L, "db is closed");
	int multi;
	sqlite3_stmt *st = stmt_get(L, db, sql, strlen(sql), &multi);
	if (!st)
		luaL_error(L, "db: cannot prepare %s: %s", sql, sqlite3_errmsg(db->h));
	return st;
}

void db_raise(lua_State *L, struct sqlite3 *h, int rc)
{
	lua_createtable(L, 0, 2);
	lua_pushstring(L, h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
	lua_setfield(L, -2, "err");
	lua_pushstring(L, db_code_name(rc));
	lua_setfield(L, -2, "code");
	lua_error(L);
}

static void cache_clear(db_t *db)
{
	for (int i = 0; i < db->ncache; i++) {
		sqlite3_finalize(db->cache[i].st);
		free(db->cache[i].sql);
	}
	db->ncache = 0;
}

static int is_blob(lua_State *L, int idx)
{
	if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
		return 0;
	luaL_getmetatable(L, BLOB_MT);
	int yes = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return yes;
}

/* Binds the value at idx to parameter i. The values stay on the stack for
   the statement's whole run, so strings are bound without copying; one the
   boundary masked (write: a writing statement on a redacting connection)
   is bound as a copy. */
static void bind_one(lua_State *L, db_t *db, sqlite3_stmt *st, int i, int idx, int write)
{
	int rc;
	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
	case LUA_TNONE:
		rc = sqlite3_bind_null(st, i);
		break;
	case LUA_TLIGHTUSERDATA: /* json.null */
		if (lua_touserdata(L, idx) != NULL)
			goto bad;
		rc = sqlite3_bind_null(st, i);
		break;
	case LUA_TBOOLEAN:
		rc = sqlite3_bind_int(st, i, lua_toboolean(L, idx));
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			rc = sqlite3_bind_int64(st, i, lua_tointeger(L, idx));
		else
			rc = sqlite3_bind_double(st, i, lua_tonumber(L, idx));
		break;
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, idx, &n);
		if (write && redact_value(L, db, 1, &s, &n, st)) {
			rc = sqlite3_bind_text64(st, i, s, n, SQLITE_TRANSIENT, SQLITE_UTF8);
			lua_pop(L, 1);
			break;
		}
		rc = sqlite3_bind_text64(st, i, s, n, SQLITE_STATIC, SQLITE_UTF8);
		break;
	}
	case LUA_TTABLE:
		if (is_blob(L, idx)) {
			lua_rawgeti(L, idx, 1);
			size_t n;
			const char *s = lua_tolstring(L, -1, &n);
			lua_pop(L, 1); /* the blob table still holds the string */
			if (write && redact_value(L, db, 1, &s, &n, st)) {
				rc = sqlite3_bind_blob64(st, i, s, n, SQLITE_TRANSIENT);
				lua_pop(L, 1);
				break;
			}
			rc = sqlite3_bind_blob64(st, i, s, n, SQLITE_STATIC);
			break;
		}
		/* fallthrough */
	default:
	bad:
		luaL_error(L, "db: cannot bind a %s to parameter %d", luaL_typename(L, idx), i);
		return;
	}
	if (rc != SQLITE_OK)
		luaL_error(L, "db: binding parameter %d: %s", i, sqlite3_errstr(rc));
}

/* Binds the arguments from index first on: one table binds by name
   (:name, $name, @name) or by position for '?', else one value each. */
static void bind_args(lua_State *L, db_t *db, sqlite3_stmt *st, int first)
{
	int write = db->redact && !sqlite3_stmt_readonly(st);
	int top = lua_gettop(L);
	int want = sqlite3_bind_parameter_count(st);
	if (top == first && lua_istable(L, first) && !is_blob(L, first)) {
		for (int i = 1; i <= want; i++) {
			const char *name = sqlite3_bind_parameter_name(st, i);
			if (name)
				lua_getfield(L, first, name + 1);
			else
				lua_rawgeti(L, first, i);
			bind_one(L, db, st, i, -1, write);
			lua_pop(L, 1); /* the table keeps the value alive */
		}
		return;
	}
	int have = top - first + 1;
	if (have != want)
		luaL_error(L, "db: statement takes %d parameter(s), got %d", want, have);
	for (int i = 1; i <= want; i++)
		bind_one(L, db, st, i, first + i - 1, write);
}

/* Pushes column c; text and blobs through the boundary (db at index 1). */
static void push_column(lua_State *L, db_t *db, sqlite3_stmt *st, int c)
{
	switch (sqlite3_column_type(st, c)) {
	case SQLITE_INTEGER:
		lua_pushinteger(L, sqlite3_column_int64(st, c));
		break;
	case SQLITE_FLOAT:
		lua_pushnumber(L, sqlite3_column_double(st, c));
		break;
	case SQLITE_TEXT:
	case SQLITE_BLOB: {
		const char *p = sqlite3_column_type(st, c) == SQLITE_TEXT ? (const char *)sqlite3_column_text(st, c)
		                                                           : sqlite3_column_blob(st, c);
		size_t n = (size_t)sqlite3_column_bytes(st, c);
		if (!p)
			p = "";
		if (!redact_value(L, db, 1, &p, &n, st)) /* else the rule's text is pushed */
			lua_pushlstring(L, p, n);
		break;
	}
	default:
		lua_pushnil(L);
	}
}

/* Runs st to completion. rows: push an array of row tables. Returns 0 or an
   SQLite error code (st is reset either way). */
static int run(lua_State *L, db_t *db, sqlite3_stmt *st, int rows)
{
	int rc, n = 0, ncol = sqlite3_column_count(st);
	if (rows)
		lua_newtable(L);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!rows)
			continue;
		lua_createtable(L, 0, ncol);
		for (int c = 0; c < ncol; c++) {
			push_column(L, db, st, c);
			lua_setfield(L, -2, sqlite3_column_name(st, c));
		}
		lua_rawseti(L, -2, ++n);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : rc;
}

/* db:exec(sql, ...) -> changes, last_insert_rowid. Several statements in
   one string run in order when no parameters are given. */
static int db_exec(lua_State *L)
{
	db_t *db = check_db(L);
	size_t len;
	const char *sql = luaL_checklstring(L, 2, &len);
	int multi;
	sqlite3_stmt *st = stmt_get(L, db, sql, len, &multi);
	if (multi) {
		if (lua_gettop(L) > 2)
			return luaL_error(L, "db: parameters need a single statement (in: %s)", sql);
		char *err = NULL;
		int rc = sqlite3_exec(db->h, sql, NULL, NULL, &err);
		if (rc != SQLITE_OK) {
			lua_pushstring(L, err ? err : sqlite3_errstr(rc));
			sqlite3_free(err);
			if ((rc & 0xff) == SQLITE_ERROR)
				return luaL_error(L, "db: %s (in: %s)", lua_tostring(L, -1), sql);
			return procy_fail(L, db_code_name(rc), "%s", lua_tostring(L, -1));
		}
	} else {
		if (!st)
			return db_fail(L, db->h, sqlite3_errcode(db->h), NULL);
		bind_args(L, db, st, 3);
		int rc = run(L, db, st, 0);
		if (rc)
			return db_fail(L, db->h, rc, NULL);
	}
	lua_pushinteger(L, sqlite3_changes64(db->h));
	lua_pushinteger(L, sqlite3_last_insert_rowid(db->h));
	return 2;
}

/* db:query(sql, ...) -> array of rows keyed by column name (NULL: absent) */
static int db_query(lua_State *L)
{
	db_t *db = check_db(L);
	size_t len;
	const char *sql = luaL_checklstring(L, 2, &len);
	int multi;
	sqlite3_stmt *st = stmt_get(L, db, sql, len, &multi);
	if (multi)
		return luaL_error(L, "db: query takes a single statement (in: %s)", sql);
	if (!st)
		return db_fail(L, db->h, sqlite3_errcode(db->h), NULL);
	bind_args(L, db, st, 3);
	int rc = run(L, db, st, 1);
	if (rc)
		return db_fail(L, db->h, rc, NULL);
	return 1;
}

static int exec_plain(db_t *db, const char *sql)
{
	return sqlite3_exec(db->h, sql, NULL, NULL, NULL);
}

/* db:transaction(fn, ...) -> fn's results. Nested calls use savepoints.
   An error in fn rolls back and is raised again; a failed COMMIT returns
   nil, err. fn cannot wait (await raises): other tasks share this
   connection and must not see, or write into, a half-done transaction. */
static int db_transaction(lua_State *L)
{
	db_t *db = check_db(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	char sp[48];
	int depth = db->txdepth;
	snprintf(sp, sizeof sp, "SAVEPOINT procy_%d", depth);
	int rc = exec_plain(db, depth ? sp : "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		return db_fail(L, db->h, rc, "begin");
	db->txdepth++;
	int base = 1;
	int status = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
	db->txdepth--;
	if (status != LUA_OK) {
		if (depth) {
			snprintf(sp, sizeof sp, "ROLLBACK TO procy_%d; RELEASE procy_%d", depth, depth);
			exec_plain(db, sp);
		} else {
			exec_plain(db, "ROLLBACK");
		}
		return lua_error(L);
	}
	snprintf(sp, sizeof sp, "RELEASE procy_%d", depth);
	rc = exec_plain(db, depth ? sp : "COMMIT");
	if (rc != SQLITE_OK) {
		int n = db_fail(L, db->h, rc, "commit");
		if (!depth)
			exec_plain(db, "ROLLBACK");
		return n;
	}
	return lua_gettop(L) - base;
}

static int db_close(lua_State *L)
{
	db_t *db = luaL_checkudata(L, 1, PROCY_DB_MT);
	if (db->h) {
		cache_clear(db);
		sqlite3_close_v2(db->h);
		db->h = NULL;
	}
	secrets_free(&db->lits); /* a closed handle writes nothing */
	return 0;
}

static int db_tostring(lua_State *L)
{
	db_t *db = luaL_checkudata(L, 1, PROCY_DB_MT);
	if (db->h)
		lua_pushfstring(L, "db (%s)", sqlite3_db_filename(db->h, "main"));
	else
		lua_pushliteral(L, "db (closed)");
	return 1;
}

/* db:path() -> the database file's path */
static int db_path(lua_State *L)
{
	db_t *db = check_db(L);
	lua_pushstring(L, sqlite3_db_filename(db->h, "main"));
	return 1;
}

/* Creates the directory that will hold path (mode 0700: it holds
   everything the agent was told and answered). */
static int make_parents(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0;
	char *dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -1;
	int r = procy_mkdirs(dir, 0700);
	int e = errno;
	free(dir);
	errno = e;
	return r;
}

/* open(path, [opts]) -> db | nil, err, code
   opts.busy_timeout: seconds to wait for another writer (default 5);
   opts.migrations: false (none), a directory, or nil (procy's store/);
   opts.redact: {rule = fn(text) -> text, literals = "a\nb"|nil}: the
   boundary (every text and blob a write binds or a query reads goes
   through rule, unless it holds none of the literals). */
static int db_open(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	double busy = 5;
	const char *dir = NULL;
	int do_migrate = 1, readonly = 0;
	if (lua_istable(L, 2)) {
		busy = procy_opt_number(L, 2, "busy_timeout", busy);
		lua_getfield(L, 2, "readonly");
		readonly = lua_toboolean(L, -1);
		lua_pop(L, 1);
		lua_getfield(L, 2, "migrations");
		if (lua_isboolean(L, -1))
			do_migrate = lua_toboolean(L, -1);
		else if (!lua_isnil(L, -1))
			dir = luaL_checkstring(L, -1);
		lua_pop(L, 1);
	}
	if (readonly && strcmp(path, ":memory:") != 0 && access(path, F_OK) != 0)
		return procy_fail(L, "ENOENT", "no record at %s (nothing was recorded there yet)", path);
	if (!readonly && strcmp(path, ":memory:") != 0 && make_parents(path) < 0)
		return procy_fail_errno(L, errno, path);
	db_t *db = lua_newuserdatauv(L, sizeof *db, 1);
	memset(db, 0, sizeof *db);
	luaL_setmetatable(L, PROCY_DB_MT);
	int udx = lua_gettop(L);
	if (lua_istable(L, 2) && lua_getfield(L, 2, "redact") != LUA_TNIL) {
		luaL_checktype(L, -1, LUA_TTABLE);
		lua_getfield(L, -1, "rule");
		luaL_checktype(L, -1, LUA_TFUNCTION);
		lua_setiuservalue(L, udx, 1);
		lua_getfield(L, -1, "literals");
		const char *lits = lua_tostring(L, -1);
		if (secrets_init(&db->lits, lits) < 0)
			return luaL_error(L, "db: out of memory");
		db->redact = 1;
		lua_pop(L, 1);
	}
	lua_settop(L, udx);
	/* a new record is its person's alone (0600; SQLite gives its -wal and
	   -shm the same), whatever the umask */
	if (!readonly && path[0] && path[0] != ':' && strncmp(path, "file:", 5) != 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
	}
	int rc = sqlite3_open_v2(path, &db->h, (readonly ? SQLITE_OPEN_READONLY :
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int n = procy_fail(L, db_code_name(rc), "%s: %s", path,
		                   db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
		sqlite3_close_v2(db->h);
		db->h = NULL;
		return n;
	}
	sqlite3_busy_timeout(db->h, (int)(busy * 1000));
	/* journal_mode answers with a row; exec discards it. A read-only or
	   locked file fails here first, with the clearest message. */
	/* read-only: a first read, which is where a record we cannot open fails */
	rc = exec_plain(db, readonly ? "PRAGMA foreign_keys = ON; SELECT count(*) FROM sqlite_master"
	                             : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON");
	if (readonly && (rc & 0xff) == SQLITE_READONLY) {
		/* A WAL record in a directory we may not write: its -shm cannot be
		   made. Nobody writes it then (nor may we): read it as it is. */
		sqlite3_close_v2(db->h);
		db->h = NULL;
		char *uri = sqlite3_mprintf("file:%s?immutable=1", path);
		rc = uri ? sqlite3_open_v2(uri, &db->h, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL)
		         : SQLITE_NOMEM;
		sqlite3_free(uri);
		if (rc == SQLITE_OK)
			rc = exec_plain(db, "PRAGMA foreign_keys = ON; SELECT count(*) FROM sqlite_master");
	}
	if (rc == SQLITE_OK) /* tape(tape_id, at, len): the terminal's output (tape.c) */
		rc = tape_sql(db->h);
	int n = rc != SQLITE_OK ? db_fail(L, db->h, rc, path)
	      : readonly && do_migrate ? db_check_schema(L, db->h, dir, path)
	      : do_migrate ? db_migrate(L, db->h, dir) : 0;
	if (n) {
		cache_clear(db);
		sqlite3_close_v2(db->h);
		db->h = NULL;
		return n;
	}
	lua_settop(L, udx);
	return 1;
}

/* blob(s) -> a value that binds as a BLOB (strings bind as TEXT) */
static int db_blob(lua_State *L)
{
	luaL_checkstring(L, 1);
	lua_createtable(L, 1, 0);
	lua_pushvalue(L, 1);
	lua_rawseti(L, -2, 1);
	luaL_setmetatable(L, BLOB_MT);
	return 1;
}

/* version() -> the newest schema version compiled into procy */
static int db_schema_version(lua_State *L)
{
	lua_pushinteger(L, db_schema_latest());
	return 1;
}

static const luaL_Reg db_methods[] = {
	{ "exec",        db_exec },
	{ "query",       db_query },
	{ "transaction", db_transaction },
	{ "path",        db_path },
	{ "close",       db_close },
	{ NULL, NULL }
};

static const luaL_Reg db_funcs[] = {
	{ "open",           db_open },
	{ "blob",           db_blob },
	{ "schema_version", db_schema_version },
	{ "reader",         db_reader_open },
	{ NULL, NULL }
};

int luaopen_procy_db(lua_State *L)
{
	procy_class(L, PROCY_DB_MT, db_methods, db_close, db_tostring);
	db_reader_register(L);
	luaL_newmetatable(L, BLOB_MT);
	lua_pop(L, 1);
	luaL_newlib(L, db_funcs);
	return 1;
}
