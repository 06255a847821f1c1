/*
** worker.c — the one way work runs off the loop thread: a thread, a lock
** and a condition for its queue (the owner's), and an eventfd that wakes
** the loop when the thread has something to tell it.
**
** What may run on a worker: C, SQLite on the worker's own connection, and
** a Lua state of the worker's own (procy.json/db/hash/blobs and the pure
** Lua modules: no loop, no tasks). Never the loop's Lua state, the loop,
** or a server. The owner's queue is shared under w->mu only; the loop
** learns of results through on_loop, called in the loop after the thread
** called worker_notify.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "procy.h"

static void on_event(loop_t *loop, loop_io *io, uint32_t events)
{
	(void)loop;
	(void)events;
	worker_t *w = io->data;
	uint64_t n;
	while (read(w->efd, &n, sizeof n) < 0 && errno == EINTR)
		;
	if (w->on_loop)
		w->on_loop(w);
}

static void *thread_main(void *arg)
{
	worker_t *w = arg;
	w->main(w);
	return NULL;
}

int worker_start(worker_t *w, loop_t *loop, void (*main)(worker_t *), void (*on_loop)(worker_t *),
                 void *ud, err_t *err)
{
	memset(w, 0, sizeof *w);
	w->loop = loop;
	w->main = main;
	w->on_loop = on_loop;
	w->ud = ud;
	w->efd = -1;
	int e = pthread_mutex_init(&w->mu, NULL);
	if (!e) {
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* timed waits on the loop's clock */
		e = pthread_cond_init(&w->wake, &ca);
		if (!e && (e = pthread_cond_init(&w->idle, &ca)))
			pthread_cond_destroy(&w->wake);
		pthread_condattr_destroy(&ca);
		if (e)
			pthread_mutex_destroy(&w->mu);
	}
	if (e) {
		return err_errno(err, e, "cannot start a worker");
	}
	w->inited = 1;
	if (loop) {
		w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->efd < 0 || loop_io_start(loop, &w->io, w->efd, EPOLLIN, on_event, w) < 0) {
			err_errno(err, errno, "cannot start a worker");
			worker_free(w);
			return -1;
		}
	}
	e = pthread_create(&w->thread, NULL, thread_main, w);
	if (e) {
		err_errno(err, e, "cannot start a worker thread");
		worker_free(w);
		return -1;
	}
	w->running = 1;
	return 0;
}

void worker_notify(worker_t *w)
{
	uint64_t one = 1;
	if (w->efd < 0)
		return;
	while (write(w->efd, &one, sizeof one) < 0 && errno == EINTR)
		;
}

int worker_wait(worker_t *w, pthread_cond_t *cond, double seconds)
{
	if (seconds < 0)
		return pthread_cond_wait(cond, &w->mu);
	int64_t at = loop_clock() + (int64_t)(seconds * 1e9);
	struct timespec ts = { (time_t)(at / 1000000000), (long)(at % 1000000000) };
	return pthread_cond_timedwait(cond, &w->mu, &ts);
}

void worker_stop(worker_t *w)
{
	if (!w->running)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = 1;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL); /* main() finishes what its owner asks of it first */
	w->running = 0;
}

void worker_free(worker_t *w)
{
	if (!w->inited)
		return;
	worker_stop(w);
	if (w->loop && w->efd >= 0)
		loop_io_stop(w->loop, &w->io);
	if (w->efd >= 0)
		close(w->efd);
	w->efd = -1;
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->idle);
	pthread_mutex_destroy(&w->mu);
	w->inited = 0;
}
