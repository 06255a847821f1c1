/*
** tty.c — the person's terminal, as an interactive session uses it: raw
** mode and back, writes that never drop a byte, and procy's own stderr
** sent to a log file while the agent owns the screen.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "tty.h"

int tty_raw(struct termios *saved)
{
	if (tcgetattr(STDIN_FILENO, saved) < 0)
		return -1;
	struct termios raw = *saved;
	cfmakeraw(&raw);
	return tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
}

int tty_restore(const struct termios *saved)
{
	return tcsetattr(STDIN_FILENO, TCSADRAIN, saved);
}

/* The descriptor is shared with the shell that started procy, so it stays
   blocking; should someone have made it non-blocking, wait for room rather
   than drop bytes. A terminal that is gone (EIO, EPIPE) gets nothing. */
void tty_write(const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, c, n);
		if (w > 0) {
			c += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = STDOUT_FILENO, .events = POLLOUT };
			poll(&pfd, 1, 1000);
		} else if (!(w < 0 && errno == EINTR)) {
			return;
		}
	}
}

int tty_divert_stderr(const char *log)
{
	if (!log)
		return -1;
	int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
	if (saved >= 0 && dup2(fd, STDERR_FILENO) < 0) {
		close(saved);
		saved = -1;
	}
	close(fd);
	return saved;
}

void tty_restore_stderr(int saved)
{
	if (saved < 0)
		return;
	dup2(saved, STDERR_FILENO);
	close(saved);
}
