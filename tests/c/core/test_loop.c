/* test_loop.c — the event loop's C contract: timer order, stopping a timer
   and a watcher mid-batch, signals through the signalfd, children reaped
   by pid. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include "procy.h"
#include "tap.h"

static int order[2000], norder;

static void record(loop_t *loop, loop_timer *t)
{
	(void)loop;
	order[norder++] = (int)(intptr_t)t->data;
}

static void run_until_idle(loop_t *loop)
{
	for (int i = 0; i < 10000 && loop_pending(loop); i++)
		loop_step(loop, 100000000);
}

static void test_timer_order(loop_t *loop)
{
	loop_timer t[3];
	int64_t after[3] = { 30000000, 10000000, 20000000 };
	for (int i = 0; i < 3; i++) {
		loop_timer_init(&t[i]);
		loop_timer_start(loop, &t[i], after[i], record, (void *)(intptr_t)i);
	}
	norder = 0;
	int64_t t0 = loop_clock();
	run_until_idle(loop);
	int64_t took = loop_clock() - t0;
	ok(norder == 3 && order[0] == 1 && order[1] == 2 && order[2] == 0,
	   "timers fire in deadline order, not start order");
	ok(took >= 30000000, "the last timer does not fire early");
}

static void test_timer_heap(loop_t *loop)
{
	static loop_timer t[1000];
	static int64_t due[1000];
	srand(7);
	for (int i = 0; i < 1000; i++) {
		loop_timer_init(&t[i]);
		due[i] = (rand() % 5000) * 1000; /* up to 5 ms */
		loop_timer_start(loop, &t[i], due[i], record, (void *)(intptr_t)i);
	}
	/* stop every third one */
	for (int i = 0; i < 1000; i += 3)
		loop_timer_stop(loop, &t[i]);
	norder = 0;
	run_until_idle(loop);
	int sorted = 1, stopped_fired = 0;
	for (int i = 0; i < norder; i++) {
		if (order[i] % 3 == 0)
			stopped_fired = 1;
		if (i && t[order[i]].deadline < t[order[i - 1]].deadline)
			sorted = 0;
	}
	is_int(norder, 666, "every timer not stopped fires once");
	ok(!stopped_fired, "stopped timers never fire");
	ok(sorted, "1000 timers fire in deadline order");
}

static loop_io ios[2];
static int io_calls[2];

static void on_io(loop_t *loop, loop_io *w, uint32_t ev)
{
	int i = w == &ios[0] ? 0 : 1;
	io_calls[i]++;
	ok(ev & EPOLLIN, "watcher %d sees EPOLLIN", i);
	char c;
	if (read(w->fd, &c, 1) != 1)
		ok(0, "read from the ready pipe");
	loop_io_stop(loop, &ios[1 - i]); /* the other one must not run now */
}

static void test_io_stop_mid_batch(loop_t *loop)
{
	int a[2], b[2];
	if (pipe(a) || pipe(b))
		abort();
	if (write(a[1], "x", 1) != 1 || write(b[1], "y", 1) != 1)
		abort();
	loop_io_start(loop, &ios[0], a[0], EPOLLIN, on_io, NULL);
	loop_io_start(loop, &ios[1], b[0], EPOLLIN, on_io, NULL);
	loop_step(loop, 0);
	is_int(io_calls[0] + io_calls[1], 1,
	       "a watcher stopped by an earlier callback in the same batch is not called");
	loop_io_stop(loop, &ios[0]);
	loop_io_stop(loop, &ios[1]);
	is_int(loop_pending(loop), 0, "no watchers left active");
	close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

static int got_signal;
static void on_sig(loop_t *loop, loop_signal *s, int signo)
{
	(void)loop; (void)s;
	got_signal = signo;
}

static void test_signal(loop_t *loop)
{
	loop_signal s;
	ok(loop_signal_start(loop, &s, SIGUSR1, on_sig, NULL) < 0, "an unhandled signal is refused");
	loop_signal_start(loop, &s, SIGWINCH, on_sig, NULL);
	raise(SIGWINCH);
	for (int i = 0; i < 10 && !got_signal; i++)
		loop_step(loop, 10000000);
	is_int(got_signal, SIGWINCH, "SIGWINCH arrives through the signalfd");
	loop_signal_stop(loop, &s);
}

static int child_status = -2;
static void on_child(loop_t *loop, loop_child *c, int status)
{
	(void)loop; (void)c;
	child_status = status;
}

static void test_child(loop_t *loop)
{
	pid_t other = fork();
	if (other == 0)
		_exit(3);
	pid_t pid = fork();
	if (pid == 0)
		_exit(7);
	loop_child c;
	loop_child_start(loop, &c, pid, on_child, NULL);
	for (int i = 0; i < 100 && child_status == -2; i++)
		loop_step(loop, 10000000);
	ok(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 7, "the watched child's status");
	int st;
	ok(waitpid(other, &st, 0) == other && WEXITSTATUS(st) == 3,
	   "an unwatched child is left for its owner to reap");
}

int main(void)
{
	loop_t *loop = loop_new();
	ok(loop != NULL, "loop_new");
	test_timer_order(loop);
	test_timer_heap(loop);
	test_io_stop_mid_batch(loop);
	test_signal(loop);
	test_child(loop);
	loop_free(loop);
	return tap_done();
}
