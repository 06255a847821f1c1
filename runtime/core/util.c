/*
** util.c — the few helpers every module shares: a growable byte buffer, the
** failure tuple `nil, "CODE: message", "CODE"`, and the log line.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <strings.h>
#include <sys/wait.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procy.h"

/* ---- buf ---------------------------------------------------------------------- */

int buf_reserve(buf_t *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < extra) {
		if (cap > SIZE_MAX / 2) {
			errno = ENOMEM;
			return -1;
		}
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int buf_add(buf_t *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

void buf_consume(buf_t *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

void buf_free(buf_t *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

void keep_last(char *dst, size_t cap, size_t *len, const char *p, size_t n)
{
	if (n >= cap) {
		memcpy(dst, p + n - cap, cap);
		*len = cap;
		return;
	}
	size_t keep = *len + n > cap ? cap - n : *len;
	memmove(dst, dst + *len - keep, keep);
	memcpy(dst + keep, p, n);
	*len = keep + n;
}

static int buf_gc(lua_State *L)
{
	buf_free(lua_touserdata(L, 1));
	return 0;
}

buf_t *buf_push(lua_State *L)
{
	buf_t *b = lua_newuserdatauv(L, sizeof *b, 0);
	memset(b, 0, sizeof *b);
	if (luaL_newmetatable(L, "procy.buf")) {
		lua_pushcfunction(L, buf_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	return b;
}

/* A message made safe to put between quotes in JSON text: quotes,
   backslashes and control characters are left out. Fits in size. */
void procy_json_safe(char *out, size_t size, const char *msg)
{
	size_t j = 0;
	for (const char *s = msg; *s && j + 1 < size; s++)
		if (*s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
			out[j++] = *s;
	out[j] = 0;
}

/* ---- list ----------------------------------------------------------------------- */

void list_push(list_t *l, list_node *n)
{
	n->next = NULL;
	n->prev = l->tail;
	if (l->tail)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
	l->len++;
}

void list_remove(list_t *l, list_node *n)
{
	if (!n->prev && l->head != n)
		return; /* not linked */
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
	l->len--;
}

double procy_opt_number(lua_State *L, int idx, const char *field, double def)
{
	lua_getfield(L, idx, field);
	double v = luaL_optnumber(L, -1, def);
	lua_pop(L, 1);
	return v;
}

/* ---- classes ------------------------------------------------------------------ */

void procy_class(lua_State *L, const char *name, const luaL_Reg *methods,
                 lua_CFunction close, lua_CFunction tostring)
{
	if (!luaL_newmetatable(L, name)) {
		lua_pop(L, 1);
		return;
	}
	lua_newtable(L); /* luaL_newlib needs an array, not a pointer */
	luaL_setfuncs(L, methods, 0);
	lua_setfield(L, -2, "__index");
	if (close) {
		lua_pushcfunction(L, close);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, close);
		lua_setfield(L, -2, "__close");
	}
	if (tostring) {
		lua_pushcfunction(L, tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
}

/* ---- failure tuples -------------------------------------------------------------- */

int procy_vfail(lua_State *L, const char *code, const char *fmt, va_list ap)
{
	lua_pushnil(L);
	lua_pushfstring(L, "%s: ", code);
	lua_pushvfstring(L, fmt, ap);
	lua_concat(L, 2);
	lua_pushstring(L, code);
	return 3;
}

int procy_fail(lua_State *L, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = procy_vfail(L, code, fmt, ap);
	va_end(ap);
	return n;
}

const char *procy_errname(int err)
{
	const char *name = strerrorname_np(err);
	return name ? name : "EIO";
}

int procy_exit_code(int status, int *sig)
{
	*sig = 0;
	if (status < 0)
		return -1;
	if (WIFSIGNALED(status)) {
		*sig = WTERMSIG(status);
		return 128 + *sig;
	}
	return WEXITSTATUS(status);
}

int procy_signal(const char *name)
{
	if (strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	for (int i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);
		if (abbrev && strcasecmp(abbrev, name) == 0)
			return i;
	}
	return 0;
}

int err_set(err_t *e, const char *code, const char *fmt, ...)
{
	if (!e)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	e->code = code;
	return -1;
}

int err_errno(err_t *e, int errnum, const char *fmt, ...)
{
	if (!e)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof e->msg)
		snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", strerror(errnum));
	e->code = procy_errname(errnum);
	return -1;
}

int procy_fail_err(lua_State *L, const err_t *e)
{
	return procy_fail(L, e->code ? e->code : "EIO", "%s", e->msg);
}

int procy_fail_errno(lua_State *L, int err, const char *what)
{
	return procy_fail(L, procy_errname(err), "%s: %s", what, strerror(err));
}

/* ---- log ---------------------------------------------------------------------- */

static int threshold = -2; /* -2: not read from PROCY_LOG yet */

static int level_rank(const char *level)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	for (int i = 0; i < 4; i++)
		if (strcmp(level, names[i]) == 0)
			return i;
	return -1;
}

int procy_log_level(const char *level)
{
	int rank = level_rank(level);
	if (rank >= 0)
		threshold = rank;
	return rank;
}

/* A log line holds what procy was told (a bad line of JSON, an agent's
   error), so it goes through the record's rule set like everything else
   procy writes: the function procy.redact put in L's registry
   (core.set_log_filter), when there is one. A line the filter cannot
   take is written as "[unfiltered log line withheld]", never as it is. */
static void log_line(lua_State *L, const char *level, const char *msg)
{
	static int filtering; /* a filter that logs is not filtered again */
	if (!L || filtering || !lua_checkstack(L, 3)) {
		fprintf(stderr, "procy: %s: %s\n", level, msg);
		return;
	}
	if (lua_getfield(L, LUA_REGISTRYINDEX, "procy.log_filter") != LUA_TFUNCTION) {
		lua_pop(L, 1);
		fprintf(stderr, "procy: %s: %s\n", level, msg);
		return;
	}
	filtering = 1;
	lua_pushstring(L, msg);
	int ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING;
	filtering = 0;
	fprintf(stderr, "procy: %s: %s\n", level, ok ? lua_tostring(L, -1) : "[unfiltered log line withheld]");
	lua_pop(L, 1);
}

void procy_log(lua_State *L, const char *level, const char *fmt, ...)
{
	if (threshold == -2) {
		const char *env = getenv("PROCY_LOG");
		threshold = env ? level_rank(env) : 1;
		if (threshold < 0)
			threshold = 1;
	}
	int rank = level_rank(level);
	if (rank >= 0 && rank < threshold)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	log_line(L, level, n < 0 ? "(a log line that could not be made: out of memory)" : msg);
	free(msg);
}

/* ---- SQLite result codes, by name (db.c and db_reader.c share them) ---------- */

const char *db_code_name(int rc)
{
	static const char *const names[] = {
		"SQLITE_OK", "SQLITE_ERROR", "SQLITE_INTERNAL", "SQLITE_PERM",
		"SQLITE_ABORT", "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_NOMEM",
		"SQLITE_READONLY", "SQLITE_INTERRUPT", "SQLITE_IOERR",
		"SQLITE_CORRUPT", "SQLITE_NOTFOUND", "SQLITE_FULL",
		"SQLITE_CANTOPEN", "SQLITE_PROTOCOL", "SQLITE_EMPTY",
		"SQLITE_SCHEMA", "SQLITE_TOOBIG", "SQLITE_CONSTRAINT",
		"SQLITE_MISMATCH", "SQLITE_MISUSE", "SQLITE_NOLFS", "SQLITE_AUTH",
		"SQLITE_FORMAT", "SQLITE_RANGE", "SQLITE_NOTADB",
	};
	rc &= 0xff;
	return rc >= 0 && rc < (int)(sizeof names / sizeof *names) ? names[rc] : "SQLITE_ERROR";
}
