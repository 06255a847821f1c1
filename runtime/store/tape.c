/*
** tape.c — the record's terminal tape: the agent's output, redacted,
** appended to one file beside the SQLite record (PATH-term, as SQLite's
** own PATH-wal sits there), and read back in SQL as tape(id, at, len).
**
** Why a file of its own: in WAL mode SQLite writes every byte twice (into
** the WAL, then into the database when the WAL is copied back) with a sync
** between; a flood of output (a build log, a `cat` of a large file) cost
** the writer threads 0.23 s of CPU per 40 MB, and on two cores the relay
** lost a quarter of its speed to it. Here each byte is written once, at the
** end of a file, and the term_events row (session, time, kind; tape_id, at,
** len) stays in SQLite with everything else: the record is still queried
** in SQL, and the database stays the size of what is worth indexing.
**
** A tape's first line names it ("procy tape ID"), and each row names the
** tape it points into: a record copied without its tape, then recorded
** into again, has a new tape, and its old rows say theirs is gone rather
** than read someone else's bytes. Any number of procy processes append to
** one tape: O_APPEND makes each write land whole at the end (a local file
** system's guarantee), and the file offset after it says where. Bytes a
** failed write left are never referenced by a row: harmless. A tape
** shorter than a row says (a crash of the machine before the kernel wrote
** it) reads as what is there.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "procy.h"
#include "store.h"

#define TAPE_SUFFIX "-term"
#define TAPE_HEAD   "procy tape %016llx\n" /* the first line: the tape's id */
#define TAPE_HEAD_LEN 28

struct tape {
	int     fd;
	int64_t id;
	char    path[PATH_MAX];
};

/* db_path's tape name into out; -1 if it does not fit. */
static int tape_name(char *out, size_t size, const char *db_path)
{
	int n = snprintf(out, size, "%s" TAPE_SUFFIX, db_path);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The id in fd's first line: 0, or -1 if it is not a tape's. */
static int read_id(int fd, int64_t *id)
{
	char head[TAPE_HEAD_LEN + 1] = "";
	unsigned long long v;
	ssize_t n;
	do
		n = pread(fd, head, TAPE_HEAD_LEN, 0);
	while (n < 0 && errno == EINTR);
	if (n != TAPE_HEAD_LEN || sscanf(head, "procy tape %16llx\n", &v) != 1 || head[TAPE_HEAD_LEN - 1] != '\n' ||
	    v == 0 || v > INT64_MAX)
		return -1;
	*id = (int64_t)v;
	return 0;
}

/* Gives tmp the name path unless path exists: 0, or -1 with errno (EEXIST
   when another process made it first). link(2) where the file system has
   hard links, else rename without replacing. */
static int take_name(const char *tmp, const char *path)
{
	if (link(tmp, path) == 0)
		return 0;
	if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS)
		return -1;
	return renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
}

/* Makes path a new tape, whole or not at all: its first line is written
   to a file of its own, which then takes the name (another process making
   it at the same time wins or loses as a whole). 0, or -1 with errno. */
static int make_tape(const char *path, mode_t mode)
{
	char tmp[PATH_MAX + 16];
	snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return -1;
	unsigned long long v = 0;
	int e = 0;
	while (!e && v == 0) { /* a random id, 63 bits: an SQLite integer */
		ssize_t n = getrandom(&v, sizeof v, 0);
		if (n < 0 && errno != EINTR)
			e = errno;
		else if (n >= 0 && n != (ssize_t)sizeof v)
			e = EIO;
		v &= (unsigned long long)INT64_MAX;
	}
	char head[TAPE_HEAD_LEN + 1];
	snprintf(head, sizeof head, TAPE_HEAD, v);
	ssize_t w = 0;
	if (!e && fchmod(fd, mode) < 0)
		e = errno;
	if (!e && (w = write(fd, head, TAPE_HEAD_LEN)) != TAPE_HEAD_LEN)
		e = w < 0 ? errno : ENOSPC;
	if (!e && fsync(fd) < 0)
		e = errno;
	close(fd);
	if (!e && take_name(tmp, path) < 0 && errno != EEXIST)
		e = errno;
	if (unlink(tmp) < 0 && errno != ENOENT && !e) /* renamed: already gone */
		e = errno;
	if (!e) { /* the name lasts a crash, as the database's rows will */
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%s", path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = 0;
		int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd); /* a file system that cannot sync a directory still has the name */
			close(dfd);
		}
	}
	if (e) {
		errno = e;
		return -1;
	}
	return 0;
}

tape_t *tape_open(const char *db_path, err_t *err)
{
	tape_t *t = calloc(1, sizeof *t);
	if (!t) {
		err_set(err, "ENOMEM", "out of memory");
		return NULL;
	}
	if (tape_name(t->path, sizeof t->path, db_path) < 0) {
		free(t);
		err_set(err, "ENAMETOOLONG", "%s: name too long", db_path);
		return NULL;
	}
	/* the database's permissions, as SQLite gives its -wal and -shm */
	struct stat st;
	mode_t mode = stat(db_path, &st) == 0 ? st.st_mode & 0777 : 0600;
	t->fd = open(t->path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (t->fd < 0 && errno == ENOENT && make_tape(t->path, mode) == 0)
		t->fd = open(t->path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (t->fd < 0) {
		err_errno(err, errno, "%s", t->path);
		free(t);
		return NULL;
	}
	if (read_id(t->fd, &t->id) < 0) {
		err_set(err, "EBADTAPE", "%s is not a procy tape (its first line is not 'procy tape ID'): move it away",
		        t->path);
		tape_close(t);
		return NULL;
	}
	return t;
}

int64_t tape_id(const tape_t *t)
{
	return t->id;
}

int tape_append(tape_t *t, const void *p, size_t n, int64_t *at, size_t *written, err_t *err)
{
	*written = 0;
	if (n == 0)
		return err_set(err, "EINVAL", "%s: nothing to append", t->path);
	ssize_t w;
	do
		w = write(t->fd, p, n);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return err_errno(err, errno, "%s", t->path);
	off_t end = lseek(t->fd, 0, SEEK_CUR);
	if (end < 0)
		return err_errno(err, errno, "%s", t->path);
	/* what went in, went in whole at the end: it may be named */
	*written = (size_t)w;
	*at = (int64_t)end - (int64_t)w;
	if ((size_t)w < n) /* a full disk, most likely */
		return err_set(err, "ENOSPC", "%s: %zu of %zu bytes written (the disk is full?)", t->path, (size_t)w, n);
	return 0;
}

void tape_close(tape_t *t)
{
	if (!t)
		return;
	close(t->fd);
	free(t);
}

/* ---- tape(id, at, len) in SQL ---------------------------------------------------------- */

typedef struct tape_reader {
	int     fd;              /* opened on first use; -1 before */
	int64_t id;              /* its id */
	char    path[PATH_MAX];  /* "" for a database in memory */
} tape_reader;

static void reader_free(void *p)
{
	tape_reader *r = p;
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

/* Opens r's tape (again) and reads its id; 0, or -1 with errno. */
static int reader_open(tape_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->id = 0;
	if ((r->fd = open(r->path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (read_id(r->fd, &r->id) < 0)
		r->id = 0;
	return 0;
}

/* tape(id, at, len[, otherwise]) -> the len bytes at offset at of the
   record's tape, as a blob, if the tape there is tape id; NULL when at is
   NULL (the row's bytes are in its data); fewer when the tape ends sooner.
   A tape that cannot be read, or is another, is an error naming it, or
   `otherwise` when that is given (a reader that goes on past it). */
static void sql_tape(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	if (sqlite3_value_type(argv[1]) == SQLITE_NULL)
		return; /* NULL */
	tape_reader *r = sqlite3_user_data(ctx);
	sqlite3_int64 id = sqlite3_value_int64(argv[0]), at = sqlite3_value_int64(argv[1]),
	              len = sqlite3_value_int64(argv[2]);
	if (at < TAPE_HEAD_LEN || len < 0 || len > 1000000000 /* SQLite's longest value */ || at > INT64_MAX - len) {
		sqlite3_result_error(ctx, "tape(id, at, len): at and len must be offsets within the tape", -1);
		return;
	}
	if (len == 0) {
		sqlite3_result_zeroblob(ctx, 0);
		return;
	}
	char why[PATH_MAX + 160] = "";
	if (!r->path[0]) {
		snprintf(why, sizeof why, "tape(): a record in memory has no terminal tape");
	} else if ((r->fd < 0 || r->id != id) && reader_open(r) < 0) { /* a tape replaced meanwhile: its name again */
		snprintf(why, sizeof why, "%s: %s (the record's terminal output)", r->path, strerror(errno));
	} else if (r->id != id) {
		snprintf(why, sizeof why, "%s is not the tape this output was written to (tape %016llx; it is %s%016llx):"
		         " was it moved or replaced?", r->path, (unsigned long long)id, r->id ? "tape " : "no tape, ",
		         (unsigned long long)r->id);
	}
	char *p = why[0] ? NULL : sqlite3_malloc64((sqlite3_uint64)len);
	if (!why[0] && !p) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_int64 got = 0;
	while (p && got < len) {
		ssize_t k = pread(r->fd, p + got, (size_t)(len - got), (off_t)(at + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			snprintf(why, sizeof why, "%s: %s (the record's terminal output)", r->path, strerror(errno));
			sqlite3_free(p);
			p = NULL;
		} else if (k == 0) {
			break; /* the tape ends here */
		}
		got += k > 0 ? k : 0;
	}
	if (p)
		sqlite3_result_blob64(ctx, p, (sqlite3_uint64)got, sqlite3_free);
	else if (argc > 3)
		sqlite3_result_value(ctx, argv[3]);
	else
		sqlite3_result_error(ctx, why, -1);
}

int tape_sql(struct sqlite3 *db)
{
	tape_reader *r = calloc(1, sizeof *r);
	if (!r)
		return SQLITE_NOMEM;
	r->fd = -1;
	const char *file = sqlite3_db_filename(db, "main");
	if (file && file[0] && tape_name(r->path, sizeof r->path, file) < 0)
		r->path[0] = 0;
	/* xDestroy frees r, also when the registration fails */
	int rc = sqlite3_create_function_v2(db, "tape", 3, SQLITE_UTF8, r, sql_tape, NULL, NULL, reader_free);
	if (rc == SQLITE_OK) /* the same reader: the connection frees it once, with the 3-argument form */
		rc = sqlite3_create_function_v2(db, "tape", 4, SQLITE_UTF8, r, sql_tape, NULL, NULL, NULL);
	return rc;
}
