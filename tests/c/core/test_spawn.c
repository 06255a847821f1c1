/* test_spawn.c — procy_spawn's contract (group or session, signals back to
   normal, a controlling terminal) and the argv/env builders. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "harness.h"
#include "tap.h"

extern char **environ;

static void read_all(int fd, char *out, size_t size)
{
	size_t n = 0;
	ssize_t r;
	while (n < size - 1 && ((r = read(fd, out + n, size - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
		if (r > 0)
			n += (size_t)r;
	out[n] = 0;
}

/* What the shell reports about itself: blocked and ignored signals, pid,
   process group, session, and its terminal. */
static const char probe[] = "grep -E '^(SigBlk|SigIgn)' /proc/self/status; "
                            "set -- $(cat /proc/$$/stat); echo ids $1 $5 $6; tty";

static void test_group(loop_t *loop)
{
	int p[2];
	if (pipe(p))
		abort();
	char *argv[] = { "sh", "-c", (char *)probe, NULL };
	spawn_opts o = { .argv = argv, .cwd = "/", .fds = { SPAWN_FD_NULL, p[1], SPAWN_FD_STDOUT } };
	pid_t pid;
	is_int(procy_spawn(&pid, &o), 0, "procy_spawn starts sh");
	close(p[1]);
	char out[4096];
	read_all(p[0], out, sizeof out);
	close(p[0]);
	waitpid(pid, NULL, 0);
	ok(strstr(out, "SigBlk:\t0000000000000000") != NULL, "the child blocks no signal");
	/* Dispositions procy inherited (nohup's SIGHUP, a runner's SIGXFSZ)
	   pass on; only the SIGPIPE procy ignores for itself is restored. */
	const char *ign = strstr(out, "SigIgn:\t");
	unsigned long long mask = ign ? strtoull(ign + 8, NULL, 16) : ~0ULL;
	ok(!(mask & (1ULL << (SIGPIPE - 1))), "the child does not ignore SIGPIPE");
	long cpid = 0, pgid = 0, sid = 0;
	const char *ids = strstr(out, "ids ");
	if (ids)
		sscanf(ids + 4, "%ld %ld %ld", &cpid, &pgid, &sid);
	ok(cpid == pid && pgid == pid && sid != pid, "it leads its own process group");
	ok(strstr(out, "not a tty") != NULL, "with no terminal");
	(void)loop;
}

static void test_tty(void)
{
	int master;
	char slave[128];
	is_int(pty_open(100, 30, &master, slave, sizeof slave), 0, "pty_open");
	char *argv[] = { "sh", "-c", "stty size; set -- $(cat /proc/$$/stat); echo ids $1 $5 $6 $7", NULL };
	spawn_opts o = { .argv = argv, .tty = slave };
	pid_t pid;
	is_int(procy_spawn(&pid, &o), 0, "procy_spawn on a pty");
	int st;
	waitpid(pid, &st, 0);
	char out[4096] = "";
	size_t n = 0;
	ssize_t r;
	while ((r = read(master, out + n, sizeof out - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = 0;
	close(master);
	ok(strstr(out, "30 100") != NULL, "the child sees the pty's size");
	long cpid = 0, pgid = 0, sid = 0, ttynr = 0;
	const char *ids = strstr(out, "ids ");
	if (ids)
		sscanf(ids + 4, "%ld %ld %ld %ld", &cpid, &pgid, &sid, &ttynr);
	ok(cpid == pid && sid == pid, "it leads a new session");
	ok(ttynr != 0, "with the pty as its controlling terminal");
	char *bad[] = { "/nonexistent/program", NULL };
	spawn_opts none = { .argv = bad, .fds = { SPAWN_FD_NULL, SPAWN_FD_NULL, SPAWN_FD_NULL } };
	is_int(procy_spawn(&pid, &none), ENOENT, "a missing program is ENOENT");
}

static void test_builders(void)
{
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	setenv("PROCY_TEST_KEEP", "kept", 1);
	setenv("PROCY_TEST_DROP", "dropped", 1);
	(void)luaL_dostring(L, "return {'echo', 42, 'x'}, {env = {PROCY_TEST_DROP = false, PROCY_TEST_NEW = 'new'}}");
	char **argv = spawn_argv(L, 1);
	ok(argv[0] && strcmp(argv[0], "echo") == 0 && strcmp(argv[1], "42") == 0 && argv[3] == NULL,
	   "argv: numbers become strings, NULL-terminated");
	char **envp = spawn_env(L, 2);
	int keep = 0, drop = 0, add = 0;
	for (char **e = envp; *e; e++) {
		keep += strcmp(*e, "PROCY_TEST_KEEP=kept") == 0;
		drop += strncmp(*e, "PROCY_TEST_DROP=", 16) == 0;
		add += strcmp(*e, "PROCY_TEST_NEW=new") == 0;
	}
	ok(keep == 1 && drop == 0 && add == 1, "env: ours, with false removing and strings setting");
	lua_close(L);
}

int main(void)
{
	loop_t *loop = loop_new(); /* procy's mask: the handled signals blocked */
	test_group(loop);
	test_tty();
	test_builders();
	loop_free(loop);
	return tap_done();
}
