/* test_db.c — procy.db in a bare Lua state: migrations (applied once,
   refused when broken or too new), the statement cache, parameters and
   transactions. Multi-process behaviour is in tests/lua/store/db_test.lua. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include "harness.h"
#include "tap.h"

static lua_State *L;

#define eval(code) lua_eval(L, (code))

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

int main(void)
{
	char dir[] = "/tmp/procy-test-db-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	L = luaL_newstate();
	luaL_openlibs(L);
	luaL_requiref(L, "db", luaopen_procy_db, 1);
	lua_pop(L, 1);
	lua_pushstring(L, dir);
	lua_setglobal(L, "DIR");

	is_str(eval("H = assert(db.open(DIR .. '/a/b/procy.db')) return H:query('PRAGMA journal_mode')[1].journal_mode"),
	       "wal", "open creates the parent directories and turns WAL on");
	is_str(eval("return H:query('PRAGMA user_version')[1].user_version == db.schema_version()"), "true",
	       "procy's migrations are applied");
	is_str(eval("return #H:query(\"SELECT name FROM sqlite_master WHERE name IN "
	            "('sessions','term_events','turns','api_calls','blobs','tool_calls')\")"),
	       "6", "the record's tables exist");
	is_str(eval("return H:query('PRAGMA foreign_keys')[1].foreign_keys"), "1", "foreign keys on");
	is_str(eval("H:close() H:close() H = assert(db.open(DIR .. '/a/b/procy.db')) return 'ok'"), "ok",
	       "close is idempotent and reopening applies nothing twice");
	ok(strstr(eval("H:close() return H:query('SELECT 1')"), "db is closed") != NULL, "a closed db raises");

	/* a migration directory of our own */
	char mig[512];
	snprintf(mig, sizeof mig, "%s/mig", dir);
	mkdir(mig, 0755);
	char path[600];
	snprintf(path, sizeof path, "%s/0001_one.sql", mig);
	write_file(path, "CREATE TABLE one(x);");
	snprintf(path, sizeof path, "%s/0002_two.sql", mig);
	write_file(path, "CREATE TABLE two(y); INSERT INTO two VALUES (1);");
	snprintf(path, sizeof path, "%s/notes.txt", mig);
	write_file(path, "not a migration");
	lua_pushstring(L, mig);
	lua_setglobal(L, "MIG");
	is_str(eval("H = assert(db.open(DIR .. '/m.db', {migrations = MIG})) "
	            "return H:query('PRAGMA user_version')[1].user_version"), "2", "migrations from a directory, in order");
	snprintf(path, sizeof path, "%s/0003_bad.sql", mig);
	write_file(path, "CREATE TABLE three(z); INSERT INTO nowhere VALUES (1);");
	lua_settop(L, 0);
	(void)luaL_dostring(L, "H:close() local h, err, code = db.open(DIR .. '/m.db', {migrations = MIG}) return err, code");
	const char *err = lua_tostring(L, 1);
	ok(err && strstr(err, "0003_bad.sql failed: no such table: nowhere"), "a bad migration is refused, naming the file");
	is_str(lua_tostring(L, 2), "SQLITE_ERROR", "with the SQLite code");
	is_str(eval("local h = assert(db.open(DIR .. '/m.db', {migrations = false})) "
	            "local v = h:query('PRAGMA user_version')[1].user_version "
	            "local t = #h:query(\"SELECT 1 FROM sqlite_master WHERE name = 'three'\") h:close() return v .. '/' .. t"),
	       "2/0", "the failed migration left nothing behind");
	is_str(eval("local h = assert(db.open(DIR .. '/new.db', {migrations = false})) h:exec('PRAGMA user_version = 99') h:close() "
	            "return select(3, db.open(DIR .. '/new.db'))"), "ESCHEMA", "a database newer than procy is refused");

	/* statements, parameters, values */
	eval("H = assert(db.open(':memory:', {migrations = false})) H:exec('CREATE TABLE t(a, b)')");
	is_str(eval("local n, id = H:exec('INSERT INTO t VALUES (?, ?)', 1, nil) return n .. ',' .. id"), "1,1",
	       "exec returns changes and the rowid");
	is_str(eval("return H:query('SELECT a, b FROM t')[1].b == nil"), "true", "NULL comes back as an absent key");
	is_str(eval("H:exec('INSERT INTO t VALUES (:x, $y)', {x = 'named', y = 2.5}) "
	            "local r = H:query('SELECT * FROM t WHERE a = ?', 'named')[1] return r.a .. r.b"),
	       "named2.5", "named parameters from a table");
	ok(strstr(eval("return H:exec('INSERT INTO t VALUES (?, ?)', 1)"), "takes 2 parameter(s), got 1") != NULL,
	   "a wrong parameter count raises");
	ok(strstr(eval("return H:exec('INSERT INTO t VALUES (?, ?)', 1, {})"), "cannot bind a table") != NULL,
	   "a table value raises");
	is_str(eval("local s = 0 for i = 1, 300 do s = s + H:query('SELECT ' .. i .. ' AS v')[1].v end return s"),
	       "45150", "300 distinct statements through the 64-entry cache");
	is_str(eval("return math.type(H:query('SELECT 9007199254740993 AS v')[1].v)"), "integer", "integers stay integers");
	ok(strstr(eval("return select(3, H:exec('INSERT INTO nope VALUES (1)'))"),
	          "db: no such table: nope (in: INSERT INTO nope VALUES (1))") != NULL,
	   "SQL that does not compile raises with the statement");
	is_str(eval("H:exec('CREATE TABLE u(k UNIQUE)') H:exec('INSERT INTO u VALUES (1)') "
	            "return select(3, H:exec('INSERT INTO u VALUES (1)'))"), "SQLITE_CONSTRAINT", "a constraint is a failure tuple");
	is_str(eval("H:exec('CREATE TABLE m(x); INSERT INTO m VALUES (1); INSERT INTO m VALUES (2);') "
	            "return H:query('SELECT count(*) AS n FROM m')[1].n"), "2", "several statements in one exec");

	/* transactions */
	is_str(eval("local ok = pcall(H.transaction, H, function() H:exec('INSERT INTO m VALUES (3)') error('x') end) "
	            "return tostring(ok) .. H:query('SELECT count(*) AS n FROM m')[1].n"), "false2",
	       "an error in the function rolls back and is raised");
	is_str(eval("local a, b = H:transaction(function() H:exec('INSERT INTO m VALUES (4)') "
	            "  pcall(H.transaction, H, function() H:exec('INSERT INTO m VALUES (5)') error('inner') end) "
	            "  return 'a', 'b' end) "
	            "return a .. b .. H:query('SELECT group_concat(x) AS s FROM m')[1].s"), "ab1,2,4",
	       "a nested transaction rolls back alone; results are returned");

	lua_close(L);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
