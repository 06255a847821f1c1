/*
** migrate.c — procy's schema (the .sql files of store/, built into the
** binary, or a directory's) brought onto a record: each migration in a transaction of
** its own, in order, the foreign keys checked after; a read-only record is
** only checked to be new enough. db.c's open calls it.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include <sqlite3.h>

#include "procy.h"
#include "store.h"

/* db_fail(L, h, rc, context) -> nil, "SQLITE_...: context: message", code:
   SQLite's failure as procy's tuple (here, below db.c, which uses it too) */
int db_fail(lua_State *L, sqlite3 *h, int rc, const char *context)
{
	const char *msg = h ? sqlite3_errmsg(h) : sqlite3_errstr(rc);
	if (context)
		return procy_fail(L, db_code_name(rc), "%s: %s", context, msg);
	return procy_fail(L, db_code_name(rc), "%s", msg);
}

/* ---- migrations ------------------------------------------------------------- */

typedef struct migration {
	int         version;
	const char *name;
	const char *sql;
} migration;

static int migration_version(const char *base)
{
	/* NNNN_name.sql */
	int v = 0, digits = 0;
	for (; *base >= '0' && *base <= '9'; base++, digits++)
		v = v * 10 + (*base - '0');
	size_t n = strlen(base);
	if (digits == 0 || *base != '_' || n < 5 || strcmp(base + n - 4, ".sql") != 0)
		return -1;
	return v;
}

static int cmp_migration(const void *a, const void *b)
{
	const migration *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

/* Pushes a table that keeps the names and SQL texts alive and fills *out
   with the migrations from dir (NULL: the embedded store/). Returns the
   count, or raises on an unreadable directory or a duplicate version. */
static int load_migrations(lua_State *L, const char *dir, migration **out)
{
	lua_newtable(L);
	int keep = lua_gettop(L), n = 0;
	if (!dir) {
		for (const embedded_file *f = procy_embedded; f->path; f++) {
			if (strncmp(f->path, "store/", 6) != 0)
				continue;
			lua_pushstring(L, f->path);
			lua_rawseti(L, keep, ++n);
			lua_pushlstring(L, (const char *)f->data, f->len);
			lua_rawseti(L, keep, ++n);
		}
	} else {
		DIR *d = opendir(dir);
		if (!d)
			return luaL_error(L, "db: migrations directory '%s': %s", dir, strerror(errno));
		struct dirent *e;
		while ((e = readdir(d))) {
			if (migration_version(e->d_name) < 0)
				continue;
			lua_pushfstring(L, "%s/%s", dir, e->d_name);
			FILE *fp = fopen(lua_tostring(L, -1), "rb");
			if (!fp) {
				closedir(d);
				return luaL_error(L, "db: %s: %s", lua_tostring(L, -1), strerror(errno));
			}
			luaL_Buffer b;
			luaL_buffinit(L, &b);
			char chunk[4096];
			size_t got;
			while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0)
				luaL_addlstring(&b, chunk, got);
			int bad = ferror(fp);
			fclose(fp);
			luaL_pushresult(&b);
			if (bad) {
				closedir(d);
				return luaL_error(L, "db: reading %s failed", lua_tostring(L, -2));
			}
			lua_rawseti(L, keep, n + 2);
			lua_rawseti(L, keep, n + 1);
			n += 2;
		}
		closedir(d);
	}
	int count = n / 2;
	migration *m = lua_newuserdatauv(L, sizeof *m * (size_t)(count ? count : 1), 0);
	lua_rawseti(L, keep, ++n);
	for (int i = 0; i < count; i++) {
		lua_rawgeti(L, keep, 2 * i + 1);
		m[i].name = lua_tostring(L, -1);
		const char *base = strrchr(m[i].name, '/');
		m[i].version = migration_version(base ? base + 1 : m[i].name);
		lua_rawgeti(L, keep, 2 * i + 2);
		m[i].sql = lua_tostring(L, -1);
		lua_pop(L, 2);
	}
	qsort(m, (size_t)count, sizeof *m, cmp_migration);
	for (int i = 1; i < count; i++)
		if (m[i].version == m[i - 1].version)
			return luaL_error(L, "db: migrations %s and %s share version %d",
			                  m[i - 1].name, m[i].name, m[i].version);
	*out = m;
	return count;
}

static int user_version(sqlite3 *h)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Applies the migrations newer than the database, each in its own
   BEGIN IMMEDIATE transaction; the version is read again under the write
   lock so two processes opening a new database apply each one once.
   Returns 0, or pushes a failure tuple and returns its count. */
static int migrate_each(lua_State *L, sqlite3 *h, migration *m, int count, int latest);

/* A record opened read-only cannot be migrated: it must be current. */
int db_check_schema(lua_State *L, sqlite3 *h, const char *dir, const char *path)
{
	migration *m;
	int count = load_migrations(L, dir, &m);
	int latest = count ? m[count - 1].version : 0, v = user_version(h);
	lua_pop(L, 1);
	if (v < 0)
		return db_fail(L, h, sqlite3_errcode(h), path);
	if (v < latest)
		return procy_fail(L, "ESCHEMA", "the record at %s is from an older procy (schema %d, this one "
		                  "needs %d): run procy once where it may write the file, to bring it up to date",
		                  path, v, latest);
	if (v > latest)
		return procy_fail(L, "ESCHEMA", "database schema version %d is newer than this procy knows (%d); "
		                  "upgrade procy", v, latest);
	return 0;
}

int db_migrate(lua_State *L, sqlite3 *h, const char *dir)
{
	migration *m;
	int count = load_migrations(L, dir, &m);
	int latest = count ? m[count - 1].version : 0;
	int current = user_version(h);
	if (current == latest) {
		lua_pop(L, 1);
		return 0; /* the usual case: no write lock needed */
	}
	/* Foreign keys are off while a migration runs (SQLite cannot rebuild a
	   table they point at otherwise: a DROP would cascade or fail) and
	   checked as a whole before it commits. */
	sqlite3_exec(h, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL);
	int n = migrate_each(L, h, m, count, latest);
	sqlite3_exec(h, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	if (n)
		return n;
	lua_pop(L, 1);
	return 0;
}

/* 1 when the record has no row pointing at a row that is not there. */
static int keys_hold(sqlite3 *h)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(h, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
		return 0;
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE;
}

static int migrate_each(lua_State *L, sqlite3 *h, migration *m, int count, int latest)
{
	for (int i = 0; i < count; i++) {
		int rc = sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return db_fail(L, h, rc, "migrate: begin");
		int v = user_version(h);
		if (v > latest) {
			sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
			return procy_fail(L, "ESCHEMA", "database schema version %d is newer than "
			                  "this procy knows (%d); upgrade procy", v, latest);
		}
		if (m[i].version <= v) {
			sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
			continue;
		}
		char *err = NULL;
		rc = sqlite3_exec(h, m[i].sql, NULL, NULL, &err);
		if (rc == SQLITE_OK && !keys_hold(h)) {
			rc = SQLITE_CONSTRAINT;
			err = sqlite3_mprintf("it leaves rows pointing at rows that are not there");
		}
		if (rc == SQLITE_OK) {
			char pragma[64];
			snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", m[i].version);
			rc = sqlite3_exec(h, pragma, NULL, NULL, NULL);
		}
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			lua_pushstring(L, err ? err : sqlite3_errmsg(h));
			sqlite3_free(err);
			sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
			return procy_fail(L, db_code_name(rc), "migration %s failed: %s",
			                  m[i].name, lua_tostring(L, -1));
		}
	}
	return 0;
}


int db_schema_latest(void)
{
	int v = 0;
	for (const embedded_file *f = procy_embedded; f->path; f++)
		if (strncmp(f->path, "store/", 6) == 0) {
			int x = migration_version(f->path + 6);
			if (x > v)
				v = x;
		}
	return v;
}
