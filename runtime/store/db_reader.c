/*
** db_reader.c — reads of the record off the loop: db.reader(path) is a
** worker thread (worker.c) with a read-only connection of its own, and
** r:query(sql, ...) from a task runs there and completes as an op.
**
** The relay and the proxy share the loop with everything Lua does: a read
** on the loop's connection that takes half a second (a usage report over a
** large record) held every proxied stream for that long. Here the query
** runs on the thread while the loop goes on; the rows come back as plain
** C values and become Lua tables on the loop. A WAL reader never waits for
** the writers, so the thread needs no lock but its queue's.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "procy.h"
#include "store.h"

#define PROCY_READER_MT "procy.db.reader"

typedef struct cell {
	int           type; /* SQLITE_NULL, _INTEGER, _FLOAT, _TEXT, _BLOB */
	sqlite3_int64 i;
	double        d;
	char         *p;    /* text or blob bytes (malloc'd) */
	size_t        n;
} cell_t;

typedef struct reader reader_t;

typedef struct job {
	struct job *next;
	reader_t   *r;
	op_t       *op;      /* NULL once its task gave up (under r->w.mu) */
	int         anchor;  /* the reader's userdata, kept alive while this waits */
	char       *sql;
	cell_t     *params;
	int         nparams;
	int         ncol;
	char      **cols;    /* column names */
	cell_t     *cells;   /* ncol per row */
	size_t      ncells, capcells;
	int         rc;      /* SQLITE_OK, or the failure */
	char        err[256];
} job_t;

struct reader {
	worker_t w;
	runtime_t *rt;
	sqlite3 *db;
	job_t   *queue, *queue_tail; /* for the thread (under w.mu) */
	job_t   *done, *done_tail;   /* for the loop (under w.mu) */
	int      closed;
	int      redact;  /* the record's boundary (db.c): its rule is the userdata's user value 1 */
	secrets_t lits;
};

static void cells_free(cell_t *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].p);
	free(c);
}

static void job_free(job_t *j)
{
	if (!j)
		return;
	free(j->sql);
	cells_free(j->params, (size_t)j->nparams);
	cells_free(j->cells, j->ncells);
	for (int i = 0; i < j->ncol; i++)
		free(j->cols[i]);
	free(j->cols);
	free(j);
}

static void push_back(job_t **head, job_t **tail, job_t *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

/* ---- the thread ------------------------------------------------------------------------- */

static int bind(sqlite3_stmt *st, const job_t *j)
{
	int want = sqlite3_bind_parameter_count(st);
	if (want != j->nparams)
		return SQLITE_RANGE;
	for (int i = 0; i < want; i++) {
		const cell_t *c = &j->params[i];
		int rc = c->type == SQLITE_INTEGER ? sqlite3_bind_int64(st, i + 1, c->i)
		       : c->type == SQLITE_FLOAT   ? sqlite3_bind_double(st, i + 1, c->d)
		       : c->type == SQLITE_TEXT    ? sqlite3_bind_text64(st, i + 1, c->p ? c->p : "", c->n, SQLITE_STATIC, SQLITE_UTF8)
		       : c->type == SQLITE_BLOB    ? sqlite3_bind_blob64(st, i + 1, c->p ? c->p : "", c->n, SQLITE_STATIC)
		       : sqlite3_bind_null(st, i + 1);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

static int keep_row(job_t *j, sqlite3_stmt *st)
{
	if (j->ncells + (size_t)j->ncol > j->capcells) {
		size_t cap = j->capcells ? j->capcells * 2 : (size_t)j->ncol * 16;
		while (cap < j->ncells + (size_t)j->ncol)
			cap *= 2;
		cell_t *c = realloc(j->cells, cap * sizeof *c);
		if (!c)
			return SQLITE_NOMEM;
		j->cells = c;
		j->capcells = cap;
	}
	for (int k = 0; k < j->ncol; k++) {
		cell_t *c = &j->cells[j->ncells + (size_t)k];
		memset(c, 0, sizeof *c);
		c->type = sqlite3_column_type(st, k);
		if (c->type == SQLITE_INTEGER) {
			c->i = sqlite3_column_int64(st, k);
		} else if (c->type == SQLITE_FLOAT) {
			c->d = sqlite3_column_double(st, k);
		} else if (c->type == SQLITE_TEXT || c->type == SQLITE_BLOB) {
			const void *p = c->type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, k) : sqlite3_column_blob(st, k);
			c->n = (size_t)sqlite3_column_bytes(st, k);
			if (!(c->p = malloc(c->n + 1))) {
				cells_free(j->cells + j->ncells, (size_t)k); /* the row's cells so far */
				return SQLITE_NOMEM;
			}
			if (c->n)
				memcpy(c->p, p, c->n);
			c->p[c->n] = 0;
		}
	}
	j->ncells += (size_t)j->ncol;
	return SQLITE_OK;
}

static void execute(reader_t *r, job_t *j)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(r->db, j->sql, -1, &st, NULL);
	if (rc == SQLITE_OK && !st)
		rc = SQLITE_MISUSE; /* nothing but blanks or comments */
	if (rc == SQLITE_OK && !sqlite3_stmt_readonly(st))
		rc = SQLITE_READONLY;
	if (rc == SQLITE_OK)
		rc = bind(st, j);
	if (rc == SQLITE_OK) {
		j->ncol = sqlite3_column_count(st);
		if (j->ncol && !(j->cols = calloc((size_t)j->ncol, sizeof *j->cols)))
			rc = SQLITE_NOMEM;
		for (int k = 0; rc == SQLITE_OK && k < j->ncol; k++)
			if (!(j->cols[k] = strdup(sqlite3_column_name(st, k))))
				rc = SQLITE_NOMEM;
	}
	while (rc == SQLITE_OK) {
		int s = sqlite3_step(st);
		if (s == SQLITE_DONE)
			break;
		rc = s == SQLITE_ROW ? keep_row(j, st) : s;
	}
	j->rc = rc;
	if (rc != SQLITE_OK)
		snprintf(j->err, sizeof j->err, "%s", rc == SQLITE_RANGE ? "the statement's parameters and the values given differ in number"
		         : rc == SQLITE_READONLY ? "a reader only reads" : rc == SQLITE_MISUSE && !st ? "no statement"
		         : sqlite3_errmsg(r->db));
	sqlite3_finalize(st);
}

static void run(worker_t *w)
{
	reader_t *r = w->ud;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!r->queue && !w->stopping)
			worker_wait(w, &w->wake, -1);
		job_t *j = r->queue;
		if (!j || w->stopping)
			break; /* what is still queued, rd_close fails */
		r->queue = j->next;
		if (!r->queue)
			r->queue_tail = NULL;
		int wanted = j->op != NULL;
		pthread_mutex_unlock(&w->mu);
		if (wanted)
			execute(r, j);
		pthread_mutex_lock(&w->mu);
		push_back(&r->done, &r->done_tail, j);
		pthread_mutex_unlock(&w->mu);
		worker_notify(w);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
}

/* ---- the loop's side ------------------------------------------------------------------------ */

/* push_rows(job, reader's userdata) -> rows: text and blobs through the
   record's boundary, as db:query reads them (a protected call: the rule
   may fail, the loop must not) */
static int push_rows(lua_State *L)
{
	const job_t *j = lua_touserdata(L, 1);
	int redact = j->r->redact;
	if (redact)
		lua_getiuservalue(L, 2, 1);
	int rule = lua_gettop(L);
	size_t rows = j->ncol ? j->ncells / (size_t)j->ncol : 0;
	lua_createtable(L, (int)rows, 0);
	for (size_t i = 0; i < rows; i++) {
		lua_createtable(L, 0, j->ncol);
		for (int k = 0; k < j->ncol; k++) {
			const cell_t *c = &j->cells[i * (size_t)j->ncol + (size_t)k];
			if (c->type == SQLITE_INTEGER)
				lua_pushinteger(L, c->i);
			else if (c->type == SQLITE_FLOAT)
				lua_pushnumber(L, c->d);
			else if ((c->type == SQLITE_TEXT || c->type == SQLITE_BLOB) && redact &&
			         secrets_may_hold(&j->r->lits, c->p, c->n)) {
				lua_pushvalue(L, rule);
				lua_pushlstring(L, c->p, c->n);
				lua_call(L, 1, 1);
				if (lua_type(L, -1) != LUA_TSTRING)
					luaL_error(L, "db: the record's redaction rule gave a %s, not text", luaL_typename(L, -1));
			} else if (c->type == SQLITE_TEXT || c->type == SQLITE_BLOB)
				lua_pushlstring(L, c->p, c->n);
			else
				continue; /* NULL: no field, as db:query gives it */
			lua_setfield(L, -2, j->cols[k]);
		}
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

/* The results the thread finished, to the tasks that wait for them. */
static void on_done(worker_t *w)
{
	reader_t *r = w->ud;
	lua_State *L = r->rt->L;
	pthread_mutex_lock(&w->mu);
	job_t *j = r->done;
	r->done = r->done_tail = NULL;
	pthread_mutex_unlock(&w->mu);
	while (j) {
		job_t *next = j->next;
		pthread_mutex_lock(&w->mu);
		op_t *op = j->op;
		j->op = NULL;
		pthread_mutex_unlock(&w->mu);
		if (op && j->rc == SQLITE_OK) {
			lua_pushcfunction(L, push_rows);
			lua_pushlightuserdata(L, j);
			lua_rawgeti(L, LUA_REGISTRYINDEX, j->anchor);
			if (lua_pcall(L, 2, 1, 0) == LUA_OK) {
				op_complete(L, op, 1);
			} else {
				op_fail(L, op, "EINVAL", "%s", lua_tostring(L, -1));
				lua_pop(L, 1);
			}
		} else if (op) {
			op_fail(L, op, db_code_name(j->rc), "%s", j->err);
		}
		luaL_unref(L, LUA_REGISTRYINDEX, j->anchor);
		job_free(j);
		j = next;
	}
}

/* A task that stopped waiting (its end, a timeout): the result, when it
   comes, goes nowhere. */
static void query_cancel(op_t *op)
{
	job_t *j = op->data;
	pthread_mutex_lock(&j->r->w.mu);
	j->op = NULL;
	pthread_mutex_unlock(&j->r->w.mu);
}

static const op_class query_class = { "record read", query_cancel };

static reader_t *check_reader(lua_State *L)
{
	reader_t **h = luaL_checkudata(L, 1, PROCY_READER_MT);
	if (!*h)
		luaL_error(L, "db: reader is closed");
	return *h;
}

/* Copies the value at idx into c; 0, or -1 for a value SQL cannot hold. */
static int take_value(lua_State *L, int idx, cell_t *c)
{
	memset(c, 0, sizeof *c);
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		c->type = SQLITE_NULL;
		return 0;
	case LUA_TLIGHTUSERDATA: /* json.null */
		c->type = SQLITE_NULL;
		return lua_touserdata(L, idx) == NULL ? 0 : -1;
	case LUA_TBOOLEAN:
		c->type = SQLITE_INTEGER;
		c->i = lua_toboolean(L, idx);
		return 0;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			c->type = SQLITE_INTEGER;
			c->i = lua_tointeger(L, idx);
		} else {
			c->type = SQLITE_FLOAT;
			c->d = lua_tonumber(L, idx);
		}
		return 0;
	case LUA_TSTRING: {
		const char *s = lua_tolstring(L, idx, &c->n);
		c->type = SQLITE_TEXT;
		if (!(c->p = malloc(c->n + 1)))
			return -1;
		memcpy(c->p, s, c->n + 1);
		return 0;
	}
	default:
		return -1;
	}
}

/* r:query(sql, ...) -> rows | nil, "SQLITE_...: msg", code. From a task:
   the task waits, the loop does not. Positional parameters only. */
static int rd_query(lua_State *L)
{
	reader_t *r = check_reader(L);
	size_t n;
	const char *sql = luaL_checklstring(L, 2, &n);
	int nparams = lua_gettop(L) - 2;
	job_t *j = calloc(1, sizeof *j);
	if (!j || !(j->sql = strndup(sql, n)) ||
	    (nparams && !(j->params = calloc((size_t)nparams, sizeof *j->params)))) {
		job_free(j);
		return luaL_error(L, "db: out of memory");
	}
	j->r = r;
	for (int i = 0; i < nparams; i++) {
		j->nparams = i + 1; /* what job_free frees */
		if (take_value(L, 3 + i, &j->params[i]) < 0) {
			job_free(j);
			return luaL_error(L, "db: cannot bind a %s to parameter %d", luaL_typename(L, 3 + i), i + 1);
		}
	}
	j->nparams = nparams;
	lua_pushvalue(L, 1);
	j->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_settop(L, 0);
	j->op = op_new(L, &query_class, 0);
	j->op->data = j;
	pthread_mutex_lock(&r->w.mu);
	push_back(&r->queue, &r->queue_tail, j);
	pthread_cond_signal(&r->w.wake);
	pthread_mutex_unlock(&r->w.mu);
	return op_await(L, 1, -1);
}

/* Ends the thread (a query under way is interrupted) and fails what waits. */
static int rd_close(lua_State *L)
{
	reader_t **h = luaL_checkudata(L, 1, PROCY_READER_MT);
	reader_t *r = *h;
	if (!r)
		return 0;
	*h = NULL;
	sqlite3_interrupt(r->db);
	worker_stop(&r->w);
	on_done(&r->w); /* finished ones go to their tasks */
	for (job_t *j = r->queue, *next; j; j = next) {
		next = j->next;
		if (j->op)
			op_fail(L, j->op, "EPIPE", "the record's reader is closed");
		luaL_unref(L, LUA_REGISTRYINDEX, j->anchor);
		job_free(j);
	}
	worker_free(&r->w);
	sqlite3_close_v2(r->db);
	secrets_free(&r->lits);
	free(r);
	return 0;
}

/* db.reader(path, [opts]) -> reader | nil, err, code
   opts.redact: as db.open's, for what queries read */
int db_reader_open(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	runtime_t *rt = procy_rt(L);
	if (!rt || !rt->loop)
		return luaL_error(L, "db.reader needs the loop (not on a worker)");
	int rule = 0;
	if (lua_istable(L, 2) && lua_getfield(L, 2, "redact") != LUA_TNIL) {
		luaL_checktype(L, -1, LUA_TTABLE);
		lua_getfield(L, -1, "rule");
		luaL_checktype(L, -1, LUA_TFUNCTION);
		rule = lua_gettop(L);
		lua_getfield(L, -2, "literals");
	}
	reader_t *r = calloc(1, sizeof *r);
	if (!r)
		return luaL_error(L, "db: out of memory");
	if (rule && secrets_init(&r->lits, lua_tostring(L, rule + 1)) < 0) {
		free(r);
		return luaL_error(L, "db: out of memory");
	}
	r->redact = rule != 0;
	r->rt = rt;
	int rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) /* a first read: where a record we cannot read fails */
		rc = sqlite3_exec(r->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(r->db, 5000);
	if (rc == SQLITE_OK) /* tape(tape_id, at, len): the terminal's output (tape.c) */
		rc = tape_sql(r->db);
	if (rc != SQLITE_OK) {
		int n = procy_fail(L, db_code_name(rc), "%s: %s", path, r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		sqlite3_close_v2(r->db);
		secrets_free(&r->lits);
		free(r);
		return n;
	}
	err_t err;
	if (worker_start(&r->w, rt->loop, run, on_done, r, &err) < 0) {
		sqlite3_close_v2(r->db);
		secrets_free(&r->lits);
		free(r);
		return procy_fail_err(L, &err);
	}
	reader_t **h = lua_newuserdatauv(L, sizeof *h, 1);
	*h = r;
	if (rule) {
		lua_pushvalue(L, rule);
		lua_setiuservalue(L, -2, 1);
	}
	luaL_setmetatable(L, PROCY_READER_MT);
	return 1;
}

static int rd_tostring(lua_State *L)
{
	reader_t **h = luaL_checkudata(L, 1, PROCY_READER_MT);
	lua_pushfstring(L, "db.reader (%s)", *h ? sqlite3_db_filename((*h)->db, "main") : "closed");
	return 1;
}

static const luaL_Reg rd_methods[] = {
	{ "query", rd_query },
	{ "close", rd_close },
	{ NULL, NULL }
};

void db_reader_register(lua_State *L)
{
	procy_class(L, PROCY_READER_MT, rd_methods, rd_close, rd_tostring);
}
