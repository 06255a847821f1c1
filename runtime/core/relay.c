/*
** relay.c — the two small programs procy's sandbox runs (procy.sandbox),
** before Lua starts:
**
** `procy __relay LISTEN CONNECT`: every connection made to LISTEN is
** joined to a new one to CONNECT, bytes both ways, until both sides have
** ended. Addresses are tcp:HOST:PORT or unix:PATH. How a sandboxed agent
** whose network is its own reaches procy and nothing else (network =
** "proxy"): outside, procy runs one from a Unix socket in a 0700
** directory to its server's port; the socket is bound into the sandbox,
** where the box below runs another from the namespace's loopback, at the
** port the agent's base URL names, to the socket. A process per
** connection: an agent opens a handful, each a stream that lasts; nothing
** is shared between them and nothing is parsed.
**
** `procy __box [--tty] [--relay LISTEN CONNECT] -- ARGV`: what bwrap runs
** in front of the agent. It forbids TIOCSTI and TIOCLINUX (seccomp: no
** keystrokes pushed into any terminal, the agent's own included), takes
** the agent's terminal as its controlling one with --tty (bwrap's
** --new-session left it none, and procy opened it without making it
** procy's: the agent's job control and SIGWINCH work in its own PID
** namespace), starts the relay with --relay (it dies with the agent:
** PR_SET_PDEATHSIG, and holds none of its descriptors), then runs ARGV.
**
** `procy __net SLIRP4NETNS -- BWRAP ARGS`: network = "full". Starts bwrap
** (whose ARGS hold --info-fd 3 --block-fd 4), learns the sandbox's pid
** from it, joins slirp4netns to its network namespace — the host's
** network without the host's loopback (--disable-host-loopback) — and only
** then lets bwrap run the agent. Signals are passed to bwrap; its status
** is this one's.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/nsfs.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "relay.h"

/* spec -> a socket address; 0, or -1 with errno EINVAL */
static int address(const char *spec, struct sockaddr_storage *sa, socklen_t *len)
{
	memset(sa, 0, sizeof *sa);
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)sa;
		if (strlen(spec + 5) >= sizeof un->sun_path || !spec[5])
			return errno = EINVAL, -1;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, spec + 5);
		*len = sizeof *un;
		return 0;
	}
	const char *colon = strncmp(spec, "tcp:", 4) == 0 ? strrchr(spec + 4, ':') : NULL;
	if (!colon)
		return errno = EINVAL, -1;
	char host[64];
	size_t hn = (size_t)(colon - (spec + 4));
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (hn >= sizeof host || *end || port <= 0 || port > 65535)
		return errno = EINVAL, -1;
	memcpy(host, spec + 4, hn);
	host[hn] = 0;
	struct sockaddr_in *in = (struct sockaddr_in *)sa;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		return errno = EINVAL, -1;
	*len = sizeof *in;
	return 0;
}

static int listen_on(const char *spec)
{
	struct sockaddr_storage sa;
	socklen_t len;
	if (address(spec, &sa, &len) < 0)
		return -1;
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0)
		return -1;
	if (sa.ss_family == AF_UNIX)
		unlink(((struct sockaddr_un *)&sa)->sun_path); /* one a killed procy left */
	else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 128) < 0)
		goto fail;
	return fd;
fail:;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

static int connect_to(const char *spec)
{
	struct sockaddr_storage sa;
	socklen_t len;
	if (address(spec, &sa, &len) < 0)
		return -1;
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Bytes both ways between a and b; each direction's end is passed on
   (shutdown), and it returns when both have ended or either fails. */
static void pump(int a, int b)
{
	int fds[2] = { a, b }, open[2] = { 1, 1 };
	char buf[65536];
	while (open[0] || open[1]) {
		struct pollfd p[2] = { { a, open[0] ? POLLIN : 0, 0 }, { b, open[1] ? POLLIN : 0, 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (int i = 0; i < 2; i++) {
			if (!open[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(fds[i], buf, sizeof buf);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				open[i] = 0;
				shutdown(fds[1 - i], SHUT_WR);
				if (n < 0)
					return;
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(fds[1 - i], buf + off, (size_t)(n - off));
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					return;
				off += w;
			}
		}
	}
}

static void serve(int lfd, const char *to)
{
	signal(SIGCHLD, SIG_IGN); /* each connection's process reaps itself */
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE)
				continue;
			_exit(1);
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(lfd);
			int u = connect_to(to);
			if (u >= 0)
				pump(c, u);
			_exit(0);
		}
		close(c); /* a failed fork drops this connection, not the relay */
	}
}

int relay_main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "procy: usage: procy __relay LISTEN CONNECT (tcp:HOST:PORT or unix:PATH)\n");
		return 2;
	}
	int lfd = listen_on(argv[2]);
	if (lfd < 0) {
		fprintf(stderr, "procy: relay: cannot listen on %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	serve(lfd, argv[3]);
	return 1;
}

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

/* ioctl(fd, TIOCSTI | TIOCLINUX, ...) fails with EPERM, for this process
   and all it starts. The command is an unsigned int to the kernel: its
   low 32 bits are compared, whatever the high ones hold. A system call of
   another architecture (x32, i386) is refused outright: its numbers are
   not these. 0 or -1. */
static int no_keystrokes(void)
{
#ifdef NATIVE_ARCH
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const unsigned lo = offsetof(struct seccomp_data, args[1]);
#else
	const unsigned lo = offsetof(struct seccomp_data, args[1]) + 4;
#endif
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1), /* x32 */
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
#endif
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, lo),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	struct sock_fprog prog = { (unsigned short)(sizeof f / sizeof f[0]), f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
#else
	errno = ENOSYS;
	return -1;
#endif
}

int box_main(int argc, char **argv)
{
	int tty = 0, i = 2;
	const char *listen = NULL, *to = NULL;
	for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--tty") == 0) {
			tty = 1;
		} else if (strcmp(argv[i], "--relay") == 0 && i + 2 < argc) {
			listen = argv[i + 1];
			to = argv[i + 2];
			i += 2;
		} else {
			break;
		}
	}
	if (i + 1 >= argc || strcmp(argv[i], "--") != 0) {
		fprintf(stderr, "procy: usage: procy __box [--tty] [--relay LISTEN CONNECT] -- ARGV...\n");
		return 2;
	}
	char **run = argv + i + 1;
	if (no_keystrokes() < 0) {
		fprintf(stderr, "procy: sandbox: cannot forbid TIOCSTI (seccomp): %s\n", strerror(errno));
		return 1;
	}
	/* bwrap's --new-session made its init the leader: a session of the
	   agent's own, which may then take its terminal */
	if (tty && (setsid() < 0 || ioctl(STDIN_FILENO, TIOCSCTTY, 0) < 0)) {
		fprintf(stderr, "procy: sandbox: cannot take the agent's terminal: %s\n", strerror(errno));
		return 1;
	}
	if (listen) {
		int lfd = listen_on(listen);
		if (lfd < 0) {
			fprintf(stderr, "procy: sandbox: cannot listen on %s: %s\n", listen, strerror(errno));
			return 1;
		}
		pid_t parent = getpid(), pid = fork();
		if (pid < 0) {
			fprintf(stderr, "procy: sandbox: fork: %s\n", strerror(errno));
			return 1;
		}
		if (pid == 0) {
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
				_exit(0);
			setsid(); /* not in the agent's job control */
			int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
			for (int fd = 0; fd < 3; fd++)
				if (nul < 0 || dup2(nul, fd) < 0)
					close(fd);
			serve(lfd, to);
			_exit(1);
		}
		close(lfd);
	}
	execvp(run[0], run);
	fprintf(stderr, "procy: cannot run %s: %s\n", run[0], strerror(errno));
	return 127;
}

static pid_t net_child;

static void pass_on(int sig)
{
	if (net_child > 0)
		kill(net_child, sig);
}

static void into(int from, int to)
{
	if (from != to) {
		dup2(from, to); /* clears close-on-exec on to */
		close(from);
	}
}

int net_main(int argc, char **argv)
{
	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "procy: usage: procy __net SLIRP4NETNS -- BWRAP ARGS...\n");
		return 2;
	}
	int info[2], block[2], ready[2];
	if (pipe2(info, O_CLOEXEC) < 0 || pipe2(block, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0) {
		fprintf(stderr, "procy: sandbox network: pipe: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGTERM, pass_on);
	signal(SIGINT, pass_on);
	signal(SIGHUP, pass_on);
	signal(SIGPIPE, SIG_IGN); /* bwrap gone before it read the go-ahead: its status says why */
	net_child = fork();
	if (net_child < 0) {
		fprintf(stderr, "procy: sandbox network: fork: %s\n", strerror(errno));
		return 1;
	}
	if (net_child == 0) {
		/* fds 3 and 4 as bwrap's ARGS name them; the pipes' other ends stay ours */
		int i = fcntl(info[1], F_DUPFD_CLOEXEC, 10), b = fcntl(block[0], F_DUPFD_CLOEXEC, 10);
		if (i < 0 || b < 0)
			_exit(127);
		into(i, 3);
		into(b, 4);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execvp(argv[4], argv + 4);
		fprintf(stderr, "procy: cannot run %s: %s\n", argv[4], strerror(errno));
		_exit(127);
	}
	close(info[1]);
	close(block[0]);
	/* {"child-pid": N, ...} */
	char text[512];
	size_t n = 0;
	ssize_t got;
	while (n < sizeof text - 1 && (got = read(info[0], text + n, sizeof text - 1 - n)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			break;
		n += (size_t)got;
		text[n] = 0;
		if (strchr(text, '}'))
			break;
	}
	text[n] = 0;
	const char *at = strstr(text, "\"child-pid\"");
	long pid = at ? strtol(at + 11 + strspn(at + 11, ": \t"), NULL, 10) : 0;
	pid_t slirp = -1;
	if (pid > 0) {
		slirp = fork();
		if (slirp == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			int nul = open("/dev/null", O_RDWR);
			if (nul >= 0) {
				dup2(nul, 0), dup2(nul, 1), dup2(nul, 2);
			}
			int r = fcntl(ready[1], F_DUPFD, 10); /* without close-on-exec */
			char ready_arg[32], pid_arg[32], userns[64];
			snprintf(ready_arg, sizeof ready_arg, "--ready-fd=%d", r);
			snprintf(pid_arg, sizeof pid_arg, "%ld", pid);
			/* bwrap made the network namespace in the user namespace around
			   the sandbox's own (a nested one): slirp4netns joins the owner */
			char netns[64];
			snprintf(netns, sizeof netns, "/proc/%ld/ns/net", pid);
			int nfd = open(netns, O_RDONLY | O_CLOEXEC);
			int ufd = nfd >= 0 ? ioctl(nfd, NS_GET_USERNS) : -1;
			snprintf(userns, sizeof userns, "--userns-path=/proc/self/fd/%d", ufd);
			char *args[10];
			int k = 0;
			args[k++] = argv[2];
			args[k++] = "--configure";
			args[k++] = "--mtu=65520";
			args[k++] = "--disable-host-loopback";
			args[k++] = ready_arg;
			if (geteuid() != 0) /* root joins the network namespace as it is */
				args[k++] = userns;
			args[k++] = pid_arg;
			args[k++] = "tap0";
			args[k] = NULL;
			execvp(args[0], args);
			_exit(127);
		}
	}
	close(ready[1]);
	char c;
	ssize_t r;
	do {
		r = read(ready[0], &c, 1); /* slirp4netns is up, or gone */
	} while (r < 0 && errno == EINTR);
	if (slirp < 0 || r != 1)
		fprintf(stderr, "procy: sandbox network: slirp4netns did not start (%s): the agent has no network\n", argv[2]);
	/* the agent runs now */
	if (write(block[1], "1", 1) < 0) {
		/* bwrap is gone already: its status says why */
	}
	close(block[1]);
	int st = 0;
	while (waitpid(net_child, &st, 0) < 0 && errno == EINTR)
		;
	if (slirp > 0) {
		kill(slirp, SIGTERM);
		waitpid(slirp, NULL, 0);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
