/* test_record.c — the recorder: batches, the 256 KB flush, a failure that
   keeps events for later, output on the tape, the WAL copied back while it
   writes, close. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include "harness.h"
#include "term_record.h"
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

/* The bytes of the rows where `where`, in order, as readers get them
   (coalesce(data, tape(...))), into out (at most size); their length, or
   -1 if the query fails (err: why). */
static long read_back(const char *path, const char *where, char *out, size_t size, char *err, size_t errlen)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[512];
	long n = 0;
	snprintf(sql, sizeof sql,
	         "SELECT coalesce(data, tape(tape_id, at, len)) FROM term_events WHERE %s ORDER BY id", where);
	sqlite3_open(path, &db);
	tape_sql(db);
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t k = (size_t)sqlite3_column_bytes(st, 0);
		if (k && (size_t)n + k <= size) /* an empty blob is NULL */
			memcpy(out + n, sqlite3_column_blob(st, 0), k);
		n += (long)k;
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		n = -1;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Asks the writer to write until it has spilled something and taken at
   least `waiting` events off the relay's queue (5 s at most: a round may
   spill before it has taken all that was queued). */
static void wait_spilled(recorder_t *r, rec_stats_t *st, uint64_t waiting)
{
	for (int i = 0; i < 500; i++) {
		rec_stats(r, st);
		if (st->spilled > 0 && st->waiting >= waiting)
			return;
		rec_flush(r);
		usleep(10000);
	}
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

	err_t err = { NULL, "" };
	recorder_t *r = rec_open(path, "s1", NULL, &err);
	ok(r != NULL, "rec_open");
	rec_event(r, 1, 'o', "hello", 5);
	rec_event(r, 2, 'i', "x", 1);
	is_int(count(path, "1"), 0, "events wait in memory");
	is_int(rec_sync(r), 0, "a flush, waited for");
	is_int(count(path, "kind IN ('o', 'i')"), 2, "then they are rows");
	char chunk[16384];
	memset(chunk, 'z', sizeof chunk);
	for (int i = 0; i < 16; i++)
		rec_event(r, 10000 * (i + 1), 'o', chunk, sizeof chunk);
	for (int i = 0; i < 200 && count(path, "t >= 10000") < 16; i++)
		usleep(10000);
	is_int(count(path, "t >= 10000"), 16, "256 KB waiting are written without a flush");
	rec_event(r, 170000, 'o', "ab", 2);
	rec_event(r, 170500, 'o', "cd", 2);
	rec_event(r, 172000, 'o', "ef", 2);
	rec_sync(r);
	is_int(count(path, "t >= 170000"), 2, "output within a millisecond is one row");

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
	is_int((long long)st.written, 21, "21 rows written");

	/* 12 MB of output go to the tape beside the record as they come, and
	   the database holds only their rows */
	static char mb[1 << 16];
	memset(mb, 'w', sizeof mb);
	for (int i = 0; i < 12 * 16; i++) {
		rec_event(r, 300000 + 2000 * i, 'o', mb, sizeof mb);
		if (i % 16 == 15)
			rec_sync(r);
	}
	rec_sync(r);
	char tape[300];
	snprintf(tape, sizeof tape, "%s-term", path);
	struct stat sb = { 0 }, db = { 0 };
	ok(stat(tape, &sb) == 0 && sb.st_size >= 12 * (1 << 20), "the output is on the tape before close (%lld bytes)",
	   (long long)sb.st_size);
	is_int(count(path, "kind = 'o' AND data IS NULL AND tape_id > 0 AND at >= 28 AND len > 0"), count(path, "kind = 'o'"),
	       "each output row names the tape and its bytes there");
	FILE *tf = fopen(tape, "rb");
	char head[32] = "";
	ok(tf && fread(head, 1, 28, tf) == 28 && !strncmp(head, "procy tape ", 11) && head[27] == '\n',
	   "the tape's first line names it: %.27s", head);
	if (tf)
		fclose(tf);
	/* 12 MB of input (a paste, say) stay in the database: the checkpointer
	   copies the WAL back into the database file while the writer goes on
	   (the WAL then starts over) */
	memset(mb, 'k', sizeof mb);
	for (int i = 0; i < 12 * 16; i++) {
		rec_event(r, 800000 + 2000 * i, 'i', mb, sizeof mb);
		if (i % 16 == 15)
			rec_sync(r);
	}
	/* the first checkpoint comes at 4 MB of WAL and copies all there is;
	   what the last rounds add may stay in the WAL (under the mark) until
	   close, so 4 MB is what is certain */
	for (int i = 0; i < 3000; i++) {
		rec_stats(r, &st);
		if (stat(path, &db) == 0 && db.st_size >= (4 << 20) && st.checkpoints >= 1)
			break;
		usleep(10000);
	}
	ok(db.st_size >= (4 << 20), "input reaches the database file before close (%lld bytes)", (long long)db.st_size);
	ok(st.checkpoints >= 1, "copied back by the checkpointer");
	/* the database refuses writes while 10 MB of input wait (a paste):
	   past 8 MB in memory the oldest go to a spill file beside the record,
	   written back first once the database takes writes again */
	sqlite3_open(path, &other);
	sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	char spill[300];
	snprintf(spill, sizeof spill, "%s-spill-s1", path);
	memset(mb, 'p', sizeof mb);
	int before = count(path, "kind = 'i'");
	for (int i = 0; i < 160; i++) {
		rec_event(r, 900000 + i, 'i', mb, sizeof mb);
		if (i % 16 == 15)
			rec_flush(r);
	}
	wait_spilled(r, &st, 160);
	ok(st.spilled > 0 && stat(spill, &sb) == 0, "past 8 MB waiting, the oldest events are spilled to a file (%llu)",
	   (unsigned long long)st.spilled);
	ok(st.waiting >= 160 && st.dropped == 0, "nothing is let go");
	sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(other);
	is_int(rec_sync(r), 0, "the database takes writes again");
	is_int(count(path, "kind = 'i'") - before, 160, "every spilled event is written back");
	is_int(count(path, "kind = 'i' AND t BETWEEN 900000 AND 900159 AND length(data) = 65536 AND data = CAST(replace(hex(zeroblob(65536)), '00', 'p') AS BLOB)"), 160, "byte for byte");
	ok(stat(spill, &sb) != 0 || sb.st_size == 0, "and the spill file is empty");
	/* an empty output event (a read redaction left nothing of) after
	   input: a row of no bytes, read as such */
	rec_event(r, 1500000, 'i', "q", 1);
	rec_event(r, 1502000, 'o', "", 0);
	rec_event(r, 1504000, 'i', "r", 1);
	is_int(rec_sync(r), 0, "an empty output event is written");
	char got[64], why[256] = "";
	long back = read_back(path, "t BETWEEN 1500000 AND 1504000", got, sizeof got, why, sizeof why);
	ok(back == 2 && !memcmp(got, "qr", 2), "and reads back as nothing (%ld bytes in all) %s", back, why);

	/* the database refuses writes while 300,000 events of output come
	   (more than EV_MAX): their bytes go to the tape as they come, their
	   rows past EV_MAX to the spill file, and once the database takes
	   writes again every row is written, each naming its own byte */
	sqlite3_open(path, &other);
	sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	enum { MANY = 300000 };
	static char want[MANY], seen[MANY + 1];
	for (int i = 0; i < MANY; i++) {
		want[i] = (char)('a' + i % 26);
		rec_event(r, 2000000 + 2000LL * i, 'o', &want[i], 1); /* 2 ms apart: a row each */
		if (i % 20000 == 19999) {
			rec_flush(r);
			usleep(20000);
		}
	}
	wait_spilled(r, &st, 0);
	ok(st.spilled > 0 && st.dropped == 0, "past EV_MAX rows waiting, the oldest are spilled (%llu), none let go",
	   (unsigned long long)st.spilled);
	ok(stat(tape, &sb) == 0 && sb.st_size >= (off_t)MANY + 12 * (1 << 20), "the output itself is on the tape meanwhile");
	sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(other);
	is_int(rec_sync(r), 0, "the database takes writes again");
	is_int(count(path, "kind = 'o' AND t >= 2000000 AND tape_id > 0"), MANY, "every row is written");
	long n = read_back(path, "kind = 'o' AND t >= 2000000", seen, sizeof seen, why, sizeof why);
	ok(n == MANY && memcmp(seen, want, MANY) == 0, "each reads back its byte, in order (%ld) %s", n, why);
	rec_event(r, 200000, 'x', "0", 1);
	is_int(rec_close(r), 0, "close flushes");
	is_int(count(path, "kind = 'x'"), 1, "the last event is there");
	ok(rec_open("/nonexistent/dir/r.db", "s", NULL, &err) == NULL && strstr(err.msg, "/nonexistent") && !strcmp(err.code, "SQLITE_CANTOPEN"),
	   "a bad path fails with its code and a message");
	lua_close(L);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
