/*
** store.h — the record on disk, below the terminal and HTTP layers: the
** procy.db connections (db.c), the record's reader thread (db_reader.c),
** the WAL checkpointer (checkpoint.c), the terminal tape beside the
** database (tape.c) and content-addressed blobs (blobs.c). It calls only
** core (procy.h).
*/
#ifndef PROCY_STORE_H
#define PROCY_STORE_H

#include "procy.h"

int luaopen_procy_db(lua_State *L);
int luaopen_procy_blobs(lua_State *L);

/* ---- for C modules that work on a procy.db handle (db.c) ------------------- */

struct sqlite3;
struct sqlite3_stmt;
/* The connection of the db userdata at idx; raises if it is closed. */
struct sqlite3 *db_conn(lua_State *L, int idx);
/* A statement from the handle's cache (reset, no bindings left over after
   the caller resets it); raises if sql does not compile. */
struct sqlite3_stmt *db_cached(lua_State *L, int idx, const char *sql);
/* The write boundary of the db userdata at idx, on text a C module is
   about to write: 1 and the masked text pushed (p, n point into it), or
   0 when it is written as it is (nothing pushed). */
int db_redact(lua_State *L, int idx, const char **p, size_t *n);
/* Raises {err = message, code = "SQLITE_..."} for a failed call. */
void db_raise(lua_State *L, struct sqlite3 *h, int rc);

/* migrate.c: procy's migrations (dir NULL: those built in) applied to h,
   or (check) h's schema checked to be theirs; 0, or the failure's values
   pushed (nil, err, code), their count. */
int db_fail(lua_State *L, struct sqlite3 *h, int rc, const char *context); /* migrate.c */
int db_migrate(lua_State *L, struct sqlite3 *h, const char *dir);
int db_check_schema(lua_State *L, struct sqlite3 *h, const char *dir, const char *path);
int db_schema_latest(void); /* the newest migration built in */

/* db_reader.c: db.reader(path), reads on a thread of their own. */
int  db_reader_open(lua_State *L);
void db_reader_register(lua_State *L);

/* ---- the WAL copied back off the writer's thread (checkpoint.c) ---------- */

struct sqlite3;
typedef struct checkpointer checkpointer_t;

/* Watches writer's commits (its WAL hook: no autocheckpoint on it then) and
   past a few MB of WAL runs a PASSIVE checkpoint on a thread and a
   connection of its own to path. NULL with err filled on failure. */
checkpointer_t *ckpt_start(const char *path, struct sqlite3 *writer, err_t *err);
void            ckpt_stop(checkpointer_t *c, struct sqlite3 *writer); /* before writer closes */
uint64_t        ckpt_passes(checkpointer_t *c); /* checkpoints run so far */

/* ---- the terminal tape beside the record (tape.c) ------------------------------ */

typedef struct tape tape_t;

/* Opens the tape of the record at db_path (PATH-term) for appending,
   made (with a new id, and the database's permissions) if missing. NULL
   with err filled (EBADTAPE: a file there that is not a tape). */
tape_t *tape_open(const char *db_path, err_t *err);
int64_t tape_id(const tape_t *t); /* what its first line names it */
/* Appends n (> 0) bytes; *at: where they start, *written: how many went
   (all, or on a short write the first *written, there whole). 0, or -1
   with err filled. */
int     tape_append(tape_t *t, const void *p, size_t n, int64_t *at, size_t *written, err_t *err);
void    tape_close(tape_t *t);
/* Gives a connection tape(id, at, len[, otherwise]): those bytes of its record's tape,
   if that is tape id. An SQLite result code. */
int     tape_sql(struct sqlite3 *db);

#endif
