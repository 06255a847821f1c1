/*
** loop.c — the one event loop.
**
** epoll for file descriptors, a binary min-heap of monotonic timers, a
** signalfd for the signals procy handles, and child reaping by pid. Every
** other module (proc, pty, http) plugs its fds, timers and children in here;
** nothing else in the process waits. Watchers are embedded in their owners'
** structs; the loop never allocates per watcher except to grow the heap.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "procy.h"

#define MAX_EVENTS 64

struct loop {
	int            epfd;
	int            sigfd;
	int64_t        now;
	loop_timer   **heap;
	size_t         nheap, capheap;
	int            nio;          /* active fd watchers */
	loop_signal   *signals;
	loop_child    *children;
	/* The batch being dispatched: a watcher stopped mid-batch is cleared
	   from here so its later events are never delivered. */
	struct epoll_event events[MAX_EVENTS];
	int            nevents, cur;
};

static sigset_t handled;

int64_t loop_clock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

const sigset_t *loop_child_sigmask(void) { return &handled; }

loop_t *loop_new(void)
{
	loop_t *loop = calloc(1, sizeof *loop);
	if (!loop)
		return NULL;
	/* SIGPIPE would kill us on a write to a closed pipe or socket; we want
	   EPIPE instead. Children get the default back (see proc.c). */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		goto fail;
	sigemptyset(&handled);
	sigaddset(&handled, SIGCHLD);
	sigaddset(&handled, SIGINT);
	sigaddset(&handled, SIGTERM);
	sigaddset(&handled, SIGHUP);
	sigaddset(&handled, SIGWINCH);
	if (sigprocmask(SIG_BLOCK, &handled, NULL) < 0)
		goto fail;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		goto fail;
	loop->sigfd = signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);
	if (loop->sigfd < 0) {
		int e = errno;
		close(loop->epfd);
		errno = e;
		goto fail;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->sigfd, &ev) < 0) {
		int e = errno;
		close(loop->sigfd);
		close(loop->epfd);
		errno = e;
		goto fail;
	}
	loop->now = loop_clock();
	return loop;
fail:;
	int e = errno;
	free(loop);
	errno = e;
	return NULL;
}

void loop_free(loop_t *loop)
{
	if (!loop)
		return;
	close(loop->sigfd);
	close(loop->epfd);
	free(loop->heap);
	free(loop);
	sigprocmask(SIG_UNBLOCK, &handled, NULL);
}

int64_t loop_now(loop_t *loop) { return loop->now; }

int loop_pending(loop_t *loop)
{
	int n = (int)loop->nheap + loop->nio;
	for (loop_child *c = loop->children; c; c = c->next)
		n++;
	return n;
}

/* ---- fd watchers ---------------------------------------------------------- */

int loop_io_start(loop_t *loop, loop_io *w, int fd, uint32_t events,
                  loop_io_cb cb, void *data)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->data = data;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -1;
	w->active = 1;
	loop->nio++;
	return 0;
}

int loop_io_modify(loop_t *loop, loop_io *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	if (!w->active)
		return 0;
	if (events == w->events)
		return 0;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return -1;
	w->events = events;
	return 0;
}

void loop_io_stop(loop_t *loop, loop_io *w)
{
	if (!w->active)
		return;
	/* The fd may already be closed by its owner (epoll dropped it then);
	   ENOENT/EBADF are expected and harmless. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->active = 0;
	loop->nio--;
	for (int i = loop->cur + 1; i < loop->nevents; i++)
		if (loop->events[i].data.ptr == w)
			loop->events[i].data.ptr = loop; /* tombstone */
}

/* ---- timers: a binary min-heap keyed by deadline ---------------------------- */

void loop_timer_init(loop_timer *t) { t->slot = SIZE_MAX; }
int  loop_timer_active(const loop_timer *t) { return t->slot != SIZE_MAX; }

static void heap_set(loop_t *loop, size_t i, loop_timer *t)
{
	loop->heap[i] = t;
	t->slot = i;
}

static void heap_up(loop_t *loop, size_t i)
{
	loop_timer *t = loop->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (loop->heap[parent]->deadline <= t->deadline)
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void heap_down(loop_t *loop, size_t i)
{
	loop_timer *t = loop->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= loop->nheap)
			break;
		if (c + 1 < loop->nheap &&
		    loop->heap[c + 1]->deadline < loop->heap[c]->deadline)
			c++;
		if (t->deadline <= loop->heap[c]->deadline)
			break;
		heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	heap_set(loop, i, t);
}

int loop_timer_start(loop_t *loop, loop_timer *t, int64_t after_ns,
                     loop_timer_cb cb, void *data)
{
	loop_timer_stop(loop, t);
	if (loop->nheap == loop->capheap) {
		size_t cap = loop->capheap ? loop->capheap * 2 : 16;
		loop_timer **h = realloc(loop->heap, cap * sizeof *h);
		if (!h)
			return -1;
		loop->heap = h;
		loop->capheap = cap;
	}
	if (after_ns < 0)
		after_ns = 0;
	t->deadline = loop_clock() + after_ns;
	t->cb = cb;
	t->data = data;
	heap_set(loop, loop->nheap++, t);
	heap_up(loop, t->slot);
	return 0;
}

void loop_timer_stop(loop_t *loop, loop_timer *t)
{
	size_t i = t->slot;
	if (i == SIZE_MAX)
		return;
	t->slot = SIZE_MAX;
	loop_timer *last = loop->heap[--loop->nheap];
	if (last == t)
		return;
	heap_set(loop, i, last);
	heap_up(loop, i);
	heap_down(loop, last->slot);
}

static void run_timers(loop_t *loop)
{
	/* Timers started by a callback are due no earlier than now + their
	   delay, so a zero-delay timer started here runs on the next step. */
	int64_t now = loop->now;
	while (loop->nheap && loop->heap[0]->deadline <= now) {
		loop_timer *t = loop->heap[0];
		loop_timer_stop(loop, t);
		t->cb(loop, t);
	}
}

/* ---- signals and children ----------------------------------------------------- */

int loop_signal_start(loop_t *loop, loop_signal *s, int signo,
                      loop_signal_cb cb, void *data)
{
	if (!sigismember(&handled, signo)) {
		errno = EINVAL;
		return -1;
	}
	s->signo = signo;
	s->cb = cb;
	s->data = data;
	s->next = loop->signals;
	loop->signals = s;
	return 0;
}

void loop_signal_stop(loop_t *loop, loop_signal *s)
{
	for (loop_signal **p = &loop->signals; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			return;
		}
}

void loop_child_start(loop_t *loop, loop_child *c, pid_t pid,
                      loop_child_cb cb, void *data)
{
	c->pid = pid;
	c->cb = cb;
	c->data = data;
	c->next = loop->children;
	loop->children = c;
}

void loop_child_stop(loop_t *loop, loop_child *c)
{
	for (loop_child **p = &loop->children; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			return;
		}
}

static void reap_children(loop_t *loop)
{
	/* SIGCHLD coalesces, so every watched pid is polled. Unwatched children
	   are left alone: waitpid(-1) would steal another owner's status. */
	loop_child **p = &loop->children;
	while (*p) {
		loop_child *c = *p;
		int status;
		pid_t r = wait4(c->pid, &status, WNOHANG, &c->usage);
		if (r == c->pid || (r < 0 && errno == ECHILD)) {
			*p = c->next;
			c->cb(loop, c, r < 0 ? -1 : status);
			p = &loop->children; /* the list may have changed */
		} else {
			p = &c->next;
		}
	}
}

static void read_signals(loop_t *loop)
{
	struct signalfd_siginfo si;
	for (;;) {
		ssize_t n = read(loop->sigfd, &si, sizeof si);
		if (n != (ssize_t)sizeof si)
			break; /* EAGAIN: drained */
		int signo = (int)si.ssi_signo;
		if (signo == SIGCHLD) {
			reap_children(loop);
			continue;
		}
		loop_signal *s = loop->signals;
		while (s) {
			loop_signal *next = s->next; /* cb may stop s */
			if (s->signo == signo)
				s->cb(loop, s, signo);
			s = next;
		}
	}
}

/* ---- the step ---------------------------------------------------------------- */

int loop_step(loop_t *loop, int64_t max_wait_ns)
{
	int64_t wait = max_wait_ns;
	loop->now = loop_clock();
	if (loop->nheap) {
		int64_t due = loop->heap[0]->deadline - loop->now;
		if (due < 0)
			due = 0;
		if (wait < 0 || due < wait)
			wait = due;
	}
	/* Round up so a timer is never woken for just before its deadline. */
	int ms = wait < 0 ? -1 : (int)((wait + 999999) / 1000000);
	int n = epoll_wait(loop->epfd, loop->events, MAX_EVENTS, ms);
	if (n < 0) {
		if (errno != EINTR)
			return -1;
		n = 0;
	}
	loop->now = loop_clock();
	loop->nevents = n;
	for (loop->cur = 0; loop->cur < n; loop->cur++) {
		struct epoll_event *ev = &loop->events[loop->cur];
		if (ev->data.ptr == NULL) {
			read_signals(loop);
		} else if (ev->data.ptr != loop) {
			loop_io *w = ev->data.ptr;
			w->cb(loop, w, ev->events);
		}
	}
	loop->nevents = 0;
	loop->cur = 0;
	run_timers(loop);
	return 0;
}
