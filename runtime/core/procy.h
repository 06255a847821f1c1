/*
** procy.h — the runtime's shared declarations.
**
** One loop (loop.c) and one Lua state on one thread, whose recipes run as
** coroutine tasks (sched.c). Primitive modules (json.c, db.c, proc.c, ...)
** start operations in C, hand Lua an op, and complete the op from loop
** callbacks; the scheduler resumes the waiting task after the poll returns.
** Everything here is for that thread alone, except what worker.c says may
** run off it: the terminal recorder's writer (term_record.c) and the WAL
** checkpointer (checkpoint.c), the API recorder (api_record.c, with a Lua
** state of its own that has no loop) and the record's reader
** (db_reader.c) — each with its own SQLite connection, sharing with the
** loop only a queue under its worker's lock.
*/
#ifndef PROCY_H
#define PROCY_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/resource.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* Lua 5.4.4 (Debian 12) has lua_resetthread; 5.4.6 renamed it. */
#if LUA_VERSION_RELEASE_NUM >= 50406
#define procy_closethread(co, from) lua_closethread((co), (from))
#else
#define procy_closethread(co, from) ((void)(from), lua_resetthread(co))
#endif

/* ---- failures (util.c) ------------------------------------------------- */

/* The one way a C core call says what failed, carried out to the binding:
   a code (an errno's name, "EADDRINUSE", or procy's own, "EBADBLOB") and a
   message naming what and where. The call returns NULL or -1 and fills
   it; the binding passes it on with procy_fail_err (below), so Lua
   always gets the true code. */
typedef struct err {
	const char *code;      /* a static string */
	char        msg[256];
} err_t;

/* Fill e (NULL: ignored); both return -1. err_errno: the code is errnum's
   name and ": strerror" ends the message. */
int err_set(err_t *e, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int err_errno(err_t *e, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- growable byte buffer (util.c) -------------------------------------- */

typedef struct buf {
	char  *p;
	size_t len, cap;
} buf_t;

int  buf_reserve(buf_t *b, size_t extra); /* 0, or -1 with errno=ENOMEM */
int  buf_add(buf_t *b, const void *p, size_t n);
void buf_consume(buf_t *b, size_t n);     /* drop n bytes from the front */
void buf_free(buf_t *b);
/* dst (cap bytes, *len used) keeps the last cap bytes of what it held and p. */
void keep_last(char *dst, size_t cap, size_t *len, const char *p, size_t n);
/* A buf_t owned by a userdata pushed on the stack, freed by __gc if a Lua
   error unwinds past it: safe scratch space for code that may raise. */
buf_t *buf_push(lua_State *L);

/* ---- a child's output, kept until taken (lines.c) ------------------------ */

typedef struct lines {
	buf_t    buf;
	size_t   off;    /* taken bytes at the front of buf */
	size_t   scan;   /* bytes after off known to hold no newline */
	size_t   taking; /* what the last lines_next gave, for lines_take */
	int      skip;   /* a line was cut: its rest is dropped up to its newline */
	uint64_t cut;    /* lines cut so far */
} lines_t;

enum { LINE_WHOLE = 1, LINE_CUT, LINE_LAST };
size_t lines_waiting(const lines_t *l);
/* Keeps n bytes of p, up to cap waiting in all (the rest of a cut line
   dropped first): 1 when some were not kept, else 0. */
int    lines_add(lines_t *l, const char *p, size_t n, size_t cap);
/* A line to give: a whole one, or one longer than max (to be cut). */
int    lines_ready(lines_t *l, size_t max);
/* The next line in *p, *n (without "\n" or "\r\n"), valid until
   lines_take: LINE_WHOLE; LINE_CUT, its first max bytes (its rest is
   dropped by lines_take and as it comes); LINE_LAST, at eof what is left;
   0 when there is none yet. */
int    lines_next(lines_t *l, size_t max, int eof, const char **p, size_t *n);
void   lines_take(lines_t *l);
void   lines_drain(lines_t *l); /* everything waiting taken at once */
void   lines_free(lines_t *l);

/* ---- SHA-256 (hash.c) ------------------------------------------------------ */

typedef struct sha256 {
	int      fast;      /* libcrypto's state in ctx, else the fields below */
	uint32_t h[8];
	uint64_t len;       /* bytes so far */
	uint8_t  buf[64];
	size_t   n;         /* bytes waiting in buf */
	_Alignas(8) unsigned char ctx[112]; /* SHA256_CTX (static_assert'd in hash.c) */
} sha256_t;

void sha256_init(sha256_t *s);
void sha256_update(sha256_t *s, const void *p, size_t n);
/* The digest so far as 64 hex digits and a NUL; s is left as it was, so
   hashing can go on past this point (the prefix digests of a chain). */
void sha256_hex(const sha256_t *s, char out[65]);
void sha256_hex_of(const void *p, size_t n, char out[65]);

/* ---- JSON's structure (jscan.c) ------------------------------------------- */

/* A child of an object or array: byte offsets into the scanned text, the
   value's first and last byte (inclusive); for a member, its key's raw
   text between the quotes (escapes not undone). */
typedef struct jscan_item {
	size_t key, key_len;
	size_t first, last;
} jscan_item;

/* Called for each child, i counting from 0; non-zero stops the scan. */
typedef int (*jscan_fn)(void *ud, size_t i, const jscan_item *it);

enum { JSCAN_VALUE = 1, JSCAN_OBJECT, JSCAN_ARRAY };

/* Checks that s[from, to) is one JSON value (whitespace around it allowed)
   and, for an object or array, calls fn (if any) for each of its children.
   JSCAN_VALUE/OBJECT/ARRAY, or -1 if it is not JSON (or fn stopped it). */
int jscan(const char *s, size_t from, size_t to, jscan_fn fn, void *ud);
/* json.escaped (Lua): where the string literals with escapes are. */
int json_escaped(lua_State *L);

/* ---- intrusive doubly-linked list (util.c) -------------------------------- */

typedef struct list_node {
	struct list_node *prev, *next;
} list_node;

typedef struct list {
	list_node *head, *tail;
	int        len;
} list_t;

void list_push(list_t *l, list_node *n);   /* append */
void list_remove(list_t *l, list_node *n); /* unlink; a no-op if not linked */
#define list_item(node, type, member) \
	((type *)(void *)((char *)(node) - offsetof(type, member)))

/* ---- secrets' literals, the cheap first look (secrets.c) ------------------ */

typedef struct secrets {
	char   **lits;      /* none in a text: no secret in it (NULL: look at every text) */
	size_t   n;
	uint32_t first[256]; /* for each byte, the literals starting with it */
	size_t   len[32];
	size_t   maxlen;      /* the longest literal */
	uint8_t  pair[16][2]; /* the literals' distinct first two bytes (npairs 0: none, */
	size_t   npairs;      /* or a literal of one byte: the byte-wise scan) */
} secrets_t;

/* literals: redact.literals(), one a line, or NULL (every text is looked
   at). 0, or -1: no memory. */
int  secrets_init(secrets_t *s, const char *literals);
void secrets_free(secrets_t *s);
/* Could p hold a secret? 0 only when it holds none of the literals. */
int  secrets_may_hold(const secrets_t *s, const char *p, size_t n);
int  secrets_start_in(const secrets_t *s, const char *p, size_t n, size_t from, size_t to);

/* ---- the event loop (loop.c) --------------------------------------------- */

typedef struct loop loop_t;
typedef struct loop_io loop_io;
typedef struct loop_timer loop_timer;
typedef struct loop_signal loop_signal;
typedef struct loop_child loop_child;

typedef void (*loop_io_cb)(loop_t *loop, loop_io *w, uint32_t revents);
typedef void (*loop_timer_cb)(loop_t *loop, loop_timer *t);
typedef void (*loop_signal_cb)(loop_t *loop, loop_signal *s, int signo);
typedef void (*loop_child_cb)(loop_t *loop, loop_child *c, int status);

struct loop_io {
	int        fd;
	uint32_t   events;   /* EPOLLIN | EPOLLOUT ... */
	loop_io_cb cb;
	void      *data;
	int        active;
};

struct loop_timer {
	int64_t       deadline; /* CLOCK_MONOTONIC, ns */
	size_t        slot;     /* index in the heap, or SIZE_MAX when idle */
	loop_timer_cb cb;
	void         *data;
};

struct loop_signal {
	int             signo;
	loop_signal_cb  cb;
	void           *data;
	loop_signal    *next;
};

struct loop_child {
	pid_t          pid;
	loop_child_cb  cb;
	void          *data;
	loop_child    *next;
	struct rusage  usage;   /* the child's, filled when it is reaped */
};

loop_t *loop_new(void);                 /* NULL with errno set */
void    loop_free(loop_t *loop);
int64_t loop_now(loop_t *loop);         /* monotonic ns, cached per iteration */
int64_t loop_clock(void);               /* monotonic ns, read now */
/* Waits at most max_wait_ns (-1: until something happens) and dispatches
   every ready watcher, expired timer, signal and child exit. 0 or -1/errno. */
int     loop_step(loop_t *loop, int64_t max_wait_ns);
int     loop_pending(loop_t *loop);     /* active timers + fds + children */

int  loop_io_start(loop_t *loop, loop_io *w, int fd, uint32_t events,
                   loop_io_cb cb, void *data);
int  loop_io_modify(loop_t *loop, loop_io *w, uint32_t events);
void loop_io_stop(loop_t *loop, loop_io *w);

void loop_timer_init(loop_timer *t);
int  loop_timer_start(loop_t *loop, loop_timer *t, int64_t after_ns,
                      loop_timer_cb cb, void *data);
void loop_timer_stop(loop_t *loop, loop_timer *t);
int  loop_timer_active(const loop_timer *t);

/* Signals the loop handles: SIGCHLD SIGINT SIGTERM SIGHUP SIGWINCH. They are
   blocked for the whole process and read from a signalfd; children get them
   back unblocked through loop_child_sigmask(). */
int  loop_signal_start(loop_t *loop, loop_signal *s, int signo,
                       loop_signal_cb cb, void *data);
void loop_signal_stop(loop_t *loop, loop_signal *s);
const sigset_t *loop_child_sigmask(void); /* the set to unblock in a child */

/* Reaps pid (and only pid) when it exits; cb gets the waitpid status. */
void loop_child_start(loop_t *loop, loop_child *c, pid_t pid,
                      loop_child_cb cb, void *data);
void loop_child_stop(loop_t *loop, loop_child *c);

/* ---- starting children (spawn.c) ------------------------------------------ */

enum { SPAWN_FD_NULL = -1, SPAWN_FD_INHERIT = -2, SPAWN_FD_STDOUT = -3 };

typedef struct spawn_opts {
	char *const *argv;  /* argv[0] is looked up in PATH unless it has a '/' */
	char *const *envp;
	const char  *cwd;   /* NULL: ours */
	int          fds[3]; /* the child's 0, 1, 2: an fd to dup, or SPAWN_FD_* */
	const char  *tty;   /* a terminal to open as 0, 1, 2 and control */
	int          noctty; /* with tty: not its controlling one (a sandbox's shim takes it: relay.c) */
	int          session; /* a new session (implied by tty), else a new group */
	int          foreground; /* its group takes the terminal on fd 0 before it runs */
} spawn_opts;

/* Starts a child in its own process group (or session), with the loop's
   blocked signals unblocked and SIGPIPE at its default; other dispositions
   it inherits (nohup's SIGHUP stays ignored). 0 with *pid, or an errno. */
int procy_spawn(pid_t *pid, const spawn_opts *o);

/* [-0, +2] The array at idx as a NULL-terminated argv; raises unless every
   element is a string (or number). Pushes what keeps the strings alive. */
char **spawn_argv(lua_State *L, int idx);
/* [-0, +2] Our environment with opts.env applied: a string sets, false
   removes. Pushes what keeps the strings alive. */
char **spawn_env(lua_State *L, int opts);

/* 0 when cwd (NULL: ours) is a directory we can name, else an errno. */
int spawn_cwd_ok(const char *cwd);
/* pipe2 with close-on-exec, our end (parent_end) non-blocking; the child's
   end stays blocking (it shares the file description). 0 or -1/errno. */
int spawn_pipe(int fds[2], int parent_end);

/* Opens a pseudo-terminal of cols x rows: *master (non-blocking,
   close-on-exec) and the slave's path. 0, or an errno. */
int pty_open(int cols, int rows, int *master, char *slave, size_t len);

/* ---- work off the loop thread (worker.c) ---------------------------------- */

#include <pthread.h>

/* A thread with a queue its owner keeps under mu. What may run there:
   C, SQLite on a connection of its own, a Lua state of its own with the
   modules that need no loop (procy_open_modules(L)). Never the loop's
   Lua state, the loop, or a server. */
typedef struct worker {
	pthread_t       thread;
	pthread_mutex_t mu;       /* guards the owner's queue and `stopping` */
	pthread_cond_t  wake;     /* the thread waits on it for work */
	pthread_cond_t  idle;     /* others wait on it for the thread */
	int             stopping; /* under mu: finish what is queued, then return */
	int             running, inited;
	int             efd;
	loop_io         io;
	loop_t         *loop;
	void          (*main)(struct worker *w);    /* the thread's body */
	void          (*on_loop)(struct worker *w); /* in the loop, after worker_notify */
	void           *ud;
} worker_t;

/* Starts main(w) on a thread; loop may be NULL (then no on_loop). 0, or
   -1 with err filled. */
int  worker_start(worker_t *w, loop_t *loop, void (*main)(worker_t *), void (*on_loop)(worker_t *),
                  void *ud, err_t *err);
/* From the thread: have on_loop called in the loop soon. */
void worker_notify(worker_t *w);
/* pthread_cond_wait on cond with mu held, at most seconds (< 0: no limit). */
int  worker_wait(worker_t *w, pthread_cond_t *cond, double seconds);
/* Sets stopping, wakes the thread and joins it. */
void worker_stop(worker_t *w);
void worker_free(worker_t *w);   /* stops it first; safe on a worker never started */

/* ---- tasks and ops (sched.c) --------------------------------------------- */

typedef struct task task_t;
typedef struct op op_t;

/* What a primitive tells the scheduler about its ops. cancel() releases the
   operation (stops timers, kills, aborts) and must drop every C pointer to
   the op: the op may be collected right after. */
typedef struct op_class {
	const char *name;
	void (*cancel)(op_t *op);
} op_class;

struct op {
	const op_class   *cls;
	void             *data;   /* the primitive's state: payload or its own */
	struct runtime   *rt;
	int               state;  /* OP_PENDING, OP_DONE */
	task_t           *waiter;
	loop_timer        timeout;
	double            timeout_s;
	int               anchor; /* registry ref while pending */
	list_node         pending; /* in the scheduler's list, for shutdown */
	/* Lua aligns userdata to 8 bytes, not to max_align_t */
	_Alignas(int64_t) unsigned char payload[];
};

enum { OP_PENDING, OP_DONE };

typedef struct runtime {
	lua_State *L;
	loop_t    *loop;
	void      *sched;  /* sched.c's private state */
	int        exit_code;
	int        exit_set; /* exit_code is final (a signal, core.exit) */
} runtime_t;

/* The runtime reaches every thread through LUA_EXTRASPACE. */
#define procy_rt(L) (*(runtime_t **)lua_getextraspace(L))

int  sched_init(runtime_t *rt);
void sched_free(runtime_t *rt);     /* cancels everything still pending */
/* Runs until no task is left, or sched_stop(). Returns 0 or -1 (loop error). */
int  sched_run(runtime_t *rt);
void sched_stop(runtime_t *rt);
void sched_cancel_all(runtime_t *rt);
int  sched_live(runtime_t *rt);     /* tasks not yet ended */
/* [-0, +n] Pushes the results of the ended task at idx; -1 if still live. */
int  sched_results(lua_State *L, int idx);

/* [-0, +1] Pushes a new pending op (a userdata) and anchors it; op->data
   points at `extra` zeroed bytes of payload (NULL when extra is 0). */
op_t *op_new(lua_State *L, const op_class *cls, size_t extra);
/* [-n, +0] Completes op with the n values on top of L's stack and wakes its
   waiter. Completing a finished op drops the values and does nothing else. */
void op_complete(lua_State *L, op_t *op, int n);
/* [-0, +0] Completes op with nil, "CODE: msg", "CODE". */
void op_fail(lua_State *L, op_t *op, const char *code, const char *fmt, ...);
/* Cancels a pending op (cls->cancel, then ECANCELED for any waiter). */
void op_cancel(lua_State *L, op_t *op);
/* Tail-call from a primitive: waits for the op at index idx inside the
   running task, at most timeout seconds (< 0: no limit). Returns what the
   op completes with. Raises if not called from a task. */
int  op_await(lua_State *L, int idx, double timeout);

/* One task waiting on a slot (the next request, event, line, chunk): the
   common op. waiter_wait puts a new op of cls in *slot and awaits it
   (tail-call it; the slot must be empty: say so yourself when it is not).
   cls->cancel is waiter_cancel, which empties the slot (a timeout, the
   task's end). The producer takes the op with waiter_take, pushes the
   results and calls op_complete. */
int   waiter_wait(lua_State *L, op_t **slot, const op_class *cls, double timeout);
op_t *waiter_take(op_t **slot); /* NULL if none waits */
void  waiter_cancel(op_t *op);

/* ---- errors -------------------------------------------------------------- */

/* [-0, +3] nil, "CODE: msg", "CODE". */
int procy_fail_err(lua_State *L, const err_t *e);

/* [-0, +3] Pushes nil, "CODE: msg", "CODE" and returns 3. */
int procy_fail(lua_State *L, const char *code, const char *fmt, ...);
int procy_vfail(lua_State *L, const char *code, const char *fmt, va_list ap);
/* The same for an errno value: "ENOENT: what: No such file or directory". */
int procy_fail_errno(lua_State *L, int err, const char *what);
const char *procy_errname(int err);
/* A waitpid status as a shell shows it: the exit code, or 128+N for signal
   N (also stored in *sig, else 0); -1 for an unknown status. */
int procy_exit_code(int status, int *sig);
/* A signal's number from its name ("TERM", "SIGTERM", "kill"): 0 if none. */
int procy_signal(const char *name);

/* [-0, +0] The number at t[field] for the table at idx, or def if nil;
   raises if it is something else. */
double procy_opt_number(lua_State *L, int idx, const char *field, double def);

/* [-0, +0] Defines the metatable `name`: methods as __index, close as
   both __gc and __close (one idempotent function, as in Lua's io library),
   and tostring. close and tostring may be NULL. */
void procy_class(lua_State *L, const char *name, const luaL_Reg *methods,
                 lua_CFunction close, lua_CFunction tostring);

/* Writes "procy: LEVEL: message" to stderr when level (debug, info, warn,
   error) reaches the threshold: PROCY_LOG, else set_log_level, else info. */
void procy_log(lua_State *L, const char *level, const char *fmt, ...);
int  procy_log_level(const char *level); /* sets the threshold; -1 if unknown */

/* msg without the quotes, backslashes and control characters that would
   break a JSON string, into out (size bytes). */
void procy_json_safe(char *out, size_t size, const char *msg);

/* "SQLITE_BUSY" and the like, for an SQLite result code (util.c). */
const char *db_code_name(int rc);

/* ---- modules --------------------------------------------------------------- */

int luaopen_procy_core(lua_State *L);
int luaopen_procy_json(lua_State *L);
int luaopen_procy_proc(lua_State *L);
/* proc.daemon (spawn.c): a program detached from procy, for good. */
int proc_daemon(lua_State *L);
int luaopen_procy_fs(lua_State *L);
int luaopen_procy_hash(lua_State *L);
/* The C modules every Lua state gets, a worker's too (those that need no
   loop), named by the binary at startup, before any thread starts: the
   layers above core are named from above, never from here. */
void procy_preload(const luaL_Reg *modules); /* {name, luaopen}, ..., {NULL, NULL} */
/* Makes procy's modules loadable in L: the standard libraries, the
   preloaded C modules and the procy.* Lua modules (modules.c). */
void procy_open_modules(lua_State *L);
/* mkdir -p: creates path and its missing parents. 0 or -1 with errno. */
int procy_mkdirs(const char *path, mode_t mode);
/* After lua_close, before loop_free: signals and frees leftover children. */
void proc_shutdown(void);

/* Embedded files (generated from lua/ and store/ at build time). */
typedef struct embedded_file {
	const char          *path;  /* "lua/procy/cli/main.lua", "store/0001_init.sql" */
	const unsigned char *data;
	size_t               len;
} embedded_file;
extern const embedded_file procy_embedded[];

#endif
