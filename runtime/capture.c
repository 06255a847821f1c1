/*
** capture.c — the proxy's recorder thread. Finished calls are queued here
** by the loop and recorded by `procy.capture`'s worker, in a Lua state of
** its own on this thread with its own SQLite connection: redaction, stream
** parsing, hashing and writing never hold up the loop, which keeps
** relaying bytes (and the terminal) meanwhile. What the worker writes comes
** back as one JSON summary per call, read with srv:calls().
**
** The loop's side and the thread share only the two queues under the
** mutex, and an eventfd that tells the loop summaries are waiting.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "server.h"

#define BATCH     64     /* calls per worker transaction */
#define QUEUE_MAX 10000  /* calls waiting before new ones are dropped */

typedef struct note {
	struct note *next;
	size_t       calls;  /* 0: a summary; else the end of a batch of this many calls */
	char         text[]; /* a JSON summary */
} note_t;

struct capture {
	server_t       *srv;
	pthread_t       thread;
	pthread_mutex_t mu;
	pthread_cond_t  cond;
	pcall_t       **in;       /* calls for the worker */
	size_t          nin, cap;
	size_t          dropped;  /* calls not queued: the worker fell behind */
	size_t          added, told; /* calls queued; calls whose summaries Lua has read (loop side) */
	note_t         *out, **out_tail; /* summaries for the loop */
	int             stopping, running;
	int             efd;
	loop_io         io;
	char           *settings;
};

/* ---- the thread ---------------------------------------------------------------------- */

static void note_add(capture_t *cap, const char *text, size_t len, size_t calls)
{
	note_t *n = malloc(sizeof *n + len + 1);
	if (!n)
		return;
	n->next = NULL;
	n->calls = calls;
	memcpy(n->text, text, len);
	n->text[len] = 0;
	pthread_mutex_lock(&cap->mu);
	*cap->out_tail = n;
	cap->out_tail = &n->next;
	pthread_mutex_unlock(&cap->mu);
}

static void note_error(capture_t *cap, const char *what, size_t lost)
{
	char text[600], esc[400];
	procy_json_safe(esc, sizeof esc, what);
	int n = snprintf(text, sizeof text, "{\"not_recorded\":%zu,\"error\":\"%s\"}", lost, esc);
	note_add(cap, text, (size_t)n, 0);
}

static void wake_loop(capture_t *cap)
{
	uint64_t one = 1;
	while (write(cap->efd, &one, sizeof one) < 0 && errno == EINTR)
		;
}

/* [-0, +1] require("procy.capture").worker(settings) -> record(batch) */
static int open_worker(lua_State *L)
{
	const char *settings = lua_touserdata(L, 1);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "procy.capture");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "worker");
	lua_pushstring(L, settings);
	lua_call(L, 1, 1);
	luaL_checktype(L, -1, LUA_TFUNCTION);
	return 1;
}

static void *work(void *arg)
{
	capture_t *cap = arg;
	lua_State *L = luaL_newstate();
	int record = LUA_NOREF;
	if (L) {
		procy_rt(L) = NULL; /* no loop here: only the modules that need none */
		procy_open_modules(L, 0);
		lua_pushcfunction(L, open_worker);
		lua_pushlightuserdata(L, cap->settings);
		if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
			record = luaL_ref(L, LUA_REGISTRYINDEX);
		} else {
			note_error(cap, lua_tostring(L, -1), 0);
			lua_pop(L, 1);
		}
	}
	pcall_t *batch[BATCH];
	for (;;) {
		pthread_mutex_lock(&cap->mu);
		while (!cap->nin && !cap->stopping)
			pthread_cond_wait(&cap->cond, &cap->mu);
		size_t n = cap->nin < BATCH ? cap->nin : BATCH;
		if (n) {
			memcpy(batch, cap->in, n * sizeof *batch);
			memmove(cap->in, cap->in + n, (cap->nin - n) * sizeof *cap->in);
			cap->nin -= n;
		}
		size_t dropped = cap->dropped;
		cap->dropped = 0;
		pthread_mutex_unlock(&cap->mu);
		if (!n)
			break; /* stopping, and nothing left */
		if (dropped)
			note_error(cap, "the recorder fell behind", dropped);
		if (record == LUA_NOREF) {
			note_error(cap, "the recorder did not start", n);
			for (size_t i = 0; i < n; i++)
				pcall_free(batch[i]);
		} else {
			lua_rawgeti(L, LUA_REGISTRYINDEX, record);
			lua_createtable(L, (int)n, 0);
			for (size_t i = 0; i < n; i++) {
				pcall_push(L, batch[i]);
				lua_rawseti(L, -2, (lua_Integer)i + 1);
				pcall_free(batch[i]);
			}
			if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
				note_error(cap, lua_tostring(L, -1), n);
			} else if (lua_istable(L, -1)) {
				for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
					size_t len;
					const char *s = lua_tolstring(L, -1, &len);
					note_add(cap, s, len, 0);
					lua_pop(L, 1);
				}
				lua_pop(L, 1);
			}
			lua_settop(L, 0);
		}
		note_add(cap, "", 0, n); /* the batch is told once Lua has read up to here */
		wake_loop(cap);
	}
	if (L)
		lua_close(L);
	return NULL;
}

/* ---- the loop's side ------------------------------------------------------------------- */

static void on_notes(loop_t *loop, loop_io *w, uint32_t events)
{
	(void)loop;
	(void)events;
	capture_t *cap = w->data;
	uint64_t n;
	while (read(cap->efd, &n, sizeof n) < 0 && errno == EINTR)
		;
	server_record_ready(cap->srv);
}

capture_t *capture_start(server_t *srv, const char *settings, char *err, size_t errlen)
{
	capture_t *cap = calloc(1, sizeof *cap);
	if (!cap || !(cap->settings = strdup(settings))) {
		free(cap);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cap->srv = srv;
	cap->out_tail = &cap->out;
	pthread_mutex_init(&cap->mu, NULL);
	pthread_cond_init(&cap->cond, NULL);
	cap->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cap->efd < 0 || loop_io_start(srv->rt->loop, &cap->io, cap->efd, EPOLLIN, on_notes, cap) < 0) {
		snprintf(err, errlen, "cannot start the recorder: %s", strerror(errno));
		capture_free(cap);
		return NULL;
	}
	int e = pthread_create(&cap->thread, NULL, work, cap);
	if (e) {
		snprintf(err, errlen, "cannot start the recorder thread: %s", strerror(e));
		loop_io_stop(srv->rt->loop, &cap->io);
		capture_free(cap);
		return NULL;
	}
	cap->running = 1;
	return cap;
}

void capture_add(capture_t *cap, pcall_t *c)
{
	pthread_mutex_lock(&cap->mu);
	if (cap->stopping || cap->nin >= QUEUE_MAX) {
		cap->dropped++;
		pthread_mutex_unlock(&cap->mu);
		pcall_free(c);
		return;
	}
	if (cap->nin == cap->cap) {
		size_t want = cap->cap ? cap->cap * 2 : 64;
		pcall_t **in = realloc(cap->in, want * sizeof *in);
		if (!in) {
			cap->dropped++;
			pthread_mutex_unlock(&cap->mu);
			pcall_free(c);
			return;
		}
		cap->in = in;
		cap->cap = want;
	}
	cap->in[cap->nin++] = c;
	cap->added++;
	pthread_cond_signal(&cap->cond);
	pthread_mutex_unlock(&cap->mu);
}

size_t capture_untold(capture_t *cap)
{
	pthread_mutex_lock(&cap->mu);
	size_t untold = cap->added - cap->told;
	pthread_mutex_unlock(&cap->mu);
	return untold;
}

int capture_next(capture_t *cap, lua_State *L)
{
	note_t *n;
	for (;;) {
		pthread_mutex_lock(&cap->mu);
		n = cap->out;
		if (n) {
			cap->out = n->next;
			if (!cap->out)
				cap->out_tail = &cap->out;
		}
		pthread_mutex_unlock(&cap->mu);
		if (!n || !n->calls)
			break;
		cap->told += n->calls; /* a batch's end */
		free(n);
	}
	if (!n)
		return 0;
	lua_getglobal(L, "require");
	lua_pushliteral(L, "procy.json");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "decode");
	lua_remove(L, -2);
	lua_pushstring(L, n->text);
	free(n);
	lua_call(L, 1, 1);
	return 1;
}

void capture_stop(capture_t *cap)
{
	if (!cap->running)
		return;
	pthread_mutex_lock(&cap->mu);
	cap->stopping = 1;
	pthread_cond_signal(&cap->cond);
	pthread_mutex_unlock(&cap->mu);
	pthread_join(cap->thread, NULL); /* it records what was queued first */
	cap->running = 0;
	loop_io_stop(cap->srv->rt->loop, &cap->io);
}

void capture_free(capture_t *cap)
{
	if (!cap)
		return;
	capture_stop(cap);
	for (size_t i = 0; i < cap->nin; i++)
		pcall_free(cap->in[i]);
	free(cap->in);
	while (cap->out) {
		note_t *n = cap->out;
		cap->out = n->next;
		free(n);
	}
	if (cap->efd >= 0)
		close(cap->efd);
	pthread_mutex_destroy(&cap->mu);
	pthread_cond_destroy(&cap->cond);
	free(cap->settings);
	free(cap);
}
