/* test_record.c — the recorder: batches, the 64 KB flush, a failure that
   keeps events for later, close. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>
#include <sqlite3.h>
#include "harness.h"
#include "tap.h"

static int count(const char *path, const char *where)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[256];
	int n = -1;
	snprintf(sql, sizeof sql, "SELECT count(*) FROM term_events WHERE %s", where);
	sqlite3_open(path, &db);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

int main(void)
{
	char dir[] = "/tmp/procy-test-rec-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char path[256];
	snprintf(path, sizeof path, "%s/r.db", dir);
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	luaL_requiref(L, "db", luaopen_procy_db, 1);
	lua_pushstring(L, path);
	lua_setglobal(L, "PATH");
	is_str(lua_eval(L, "local h = assert(db.open(PATH)) "
	                   "h:exec(\"INSERT INTO sessions(id, started_at, cwd, argv) VALUES ('s1', 0, '/', '[]')\") "
	                   "h:close() return 'ok'"), "ok", "a record with one session");

	char err[256] = "";
	recorder_t *r = rec_open(path, "s1", NULL, err, sizeof err);
	ok(r != NULL, "rec_open");
	rec_event(r, 1, 'o', "hello", 5);
	rec_event(r, 2, 'i', "x", 1);
	is_int(count(path, "1"), 0, "events wait in memory");
	is_int(rec_sync(r), 0, "a flush, waited for");
	is_int(count(path, "kind IN ('o', 'i')"), 2, "then they are rows");
	char chunk[16384];
	memset(chunk, 'z', sizeof chunk);
	for (int i = 0; i < 4; i++)
		rec_event(r, 10000 * (i + 1), 'o', chunk, sizeof chunk);
	for (int i = 0; i < 200 && count(path, "t >= 10000") < 4; i++)
		usleep(10000);
	is_int(count(path, "t >= 10000"), 4, "64 KB waiting are written without a flush");
	rec_event(r, 90000, 'o', "ab", 2);
	rec_event(r, 90500, 'o', "cd", 2);
	rec_event(r, 92000, 'o', "ef", 2);
	rec_sync(r);
	is_int(count(path, "t >= 90000"), 2, "output within a millisecond is one row");

	/* another connection holds the write lock: flush fails, keeps events */
	sqlite3 *other;
	sqlite3_open(path, &other);
	sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	rec_event(r, 100000, 'm', "kept", 4);
	is_int(rec_sync(r), -1, "a write under another writer's lock fails at once");
	rec_stats_t st;
	rec_stats(r, &st);
	ok(strstr(st.error, "locked") != NULL, "and says why");
	is_int(rec_flush(r), -1, "flush reports the failure while it lasts");
	sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(other);
	is_int(rec_sync(r), 0, "the next write succeeds");
	is_int(count(path, "kind = 'm' AND CAST(data AS TEXT) = 'kept'"), 1, "with the events kept meanwhile");
	rec_stats(r, &st);
	ok(st.error[0] == 0, "and the error is cleared");
	is_int((long long)st.written, 9, "nine rows written");
	rec_event(r, 200000, 'x', "0", 1);
	is_int(rec_close(r), 0, "close flushes");
	is_int(count(path, "kind = 'x'"), 1, "the last event is there");
	ok(rec_open("/nonexistent/dir/r.db", "s", NULL, err, sizeof err) == NULL && strstr(err, "/nonexistent"),
	   "a bad path fails with a message");
	lua_close(L);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
