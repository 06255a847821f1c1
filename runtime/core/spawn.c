/*
** spawn.c — starting children: an argv and an environment from Lua
** values, a pseudo-terminal, and the launch itself. Every child procy starts
** goes through procy_spawn, because every child must get back the signals
** the loop blocks for itself and leads its own process group or session,
** so a stop can reach all it started.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "procy.h"

extern char **environ;

int procy_spawn(pid_t *pid, const spawn_opts *o)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int err = posix_spawn_file_actions_init(&fa);
	if (err)
		return err;
	if ((err = posix_spawnattr_init(&attr))) {
		posix_spawn_file_actions_destroy(&fa);
		return err;
	}
	static const int modes[3] = { O_RDONLY, O_WRONLY, O_WRONLY };
	if (o->tty) {
		/* After setsid, opening a terminal makes it the controlling one. */
		err = posix_spawn_file_actions_addopen(&fa, 0, o->tty, O_RDWR | (o->noctty ? O_NOCTTY : 0), 0);
		if (!err)
			err = posix_spawn_file_actions_adddup2(&fa, 0, 1);
		if (!err)
			err = posix_spawn_file_actions_adddup2(&fa, 0, 2);
	} else {
		for (int i = 0; i < 3 && !err; i++) {
			if (o->fds[i] >= 0)
				err = posix_spawn_file_actions_adddup2(&fa, o->fds[i], i);
			else if (o->fds[i] == SPAWN_FD_NULL)
				err = posix_spawn_file_actions_addopen(&fa, i, "/dev/null", modes[i], 0);
			else if (o->fds[i] == SPAWN_FD_STDOUT)
				err = posix_spawn_file_actions_adddup2(&fa, 1, i);
		}
	}
	if (!err && o->cwd)
		err = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
	/* In the child, after it leads its group and before it runs: had the
	   parent handed the terminal over after the launch, a program that read
	   it first would find itself in the background (glibc 2.35). */
	if (!err && o->foreground && !o->noctty)
		err = posix_spawn_file_actions_addtcsetpgrp_np(&fa, STDIN_FILENO);
	sigset_t none, def = *loop_child_sigmask();
	sigemptyset(&none);
	sigaddset(&def, SIGPIPE);
	/* One that has the terminal gets job control's defaults: procy may have
	   been started with them ignored (tmux's panes are). The others keep
	   what procy has, so that touching the terminal from the background is
	   an error, not a stop that nothing would continue. */
	if (o->foreground) {
		sigaddset(&def, SIGTTIN);
		sigaddset(&def, SIGTTOU);
	}
	int session = o->session || o->tty;
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
	              (session ? POSIX_SPAWN_SETSID : POSIX_SPAWN_SETPGROUP);
	if (!err)
		err = posix_spawnattr_setflags(&attr, flags);
	if (!err)
		err = posix_spawnattr_setpgroup(&attr, 0);
	if (!err)
		err = posix_spawnattr_setsigmask(&attr, &none);
	if (!err)
		err = posix_spawnattr_setsigdefault(&attr, &def);
	if (!err)
		err = posix_spawnp(pid, o->argv[0], &fa, &attr, o->argv, o->envp ? o->envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return err;
}

int spawn_cwd_ok(const char *cwd)
{
	struct stat sb;
	if (!cwd)
		return 0;
	if (stat(cwd, &sb) < 0)
		return errno;
	return S_ISDIR(sb.st_mode) ? 0 : ENOTDIR;
}

int spawn_pipe(int fds[2], int parent_end)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	int fl = fcntl(fds[parent_end], F_GETFL);
	if (fl < 0 || fcntl(fds[parent_end], F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		errno = e;
		return -1;
	}
	return 0;
}

/* [-0, +1] The n strings of the table at tbl as a NULL-terminated array,
   in a userdata; the table must outlive it (it holds the strings). */
static char **string_array(lua_State *L, int tbl, int n)
{
	char **arr = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
	for (int i = 0; i < n; i++) {
		lua_rawgeti(L, tbl, i + 1);
		arr[i] = (char *)lua_tostring(L, -1);
		lua_pop(L, 1);
	}
	arr[n] = NULL;
	return arr;
}

char **spawn_argv(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	int argc = (int)luaL_len(L, idx);
	luaL_argcheck(L, argc >= 1, idx, "argv needs at least the program");
	lua_createtable(L, argc, 0); /* our copy: numbers become strings */
	for (int i = 1; i <= argc; i++) {
		lua_rawgeti(L, idx, i);
		if (!lua_isstring(L, -1))
			luaL_error(L, "argv[%d] must be a string", i);
		lua_tostring(L, -1);
		lua_rawseti(L, -2, i);
	}
	return string_array(L, lua_gettop(L), argc);
}

char **spawn_env(lua_State *L, int opts)
{
	opts = lua_absindex(L, opts);
	lua_getfield(L, opts, "env");
	if (lua_isnil(L, -1)) {
		lua_pushnil(L);
		return environ;
	}
	luaL_checktype(L, -1, LUA_TTABLE);
	int env = lua_gettop(L);
	lua_newtable(L);
	int keep = lua_gettop(L), n = 0;
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		lua_pushlstring(L, *e, (size_t)(eq - *e));
		int overridden = lua_rawget(L, env) != LUA_TNIL;
		lua_pop(L, 1);
		if (!overridden) {
			lua_pushstring(L, *e);
			lua_rawseti(L, keep, ++n);
		}
	}
	lua_pushnil(L);
	while (lua_next(L, env)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "env keys must be strings");
		if (lua_isstring(L, -1)) {
			lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
			lua_rawseti(L, keep, ++n);
		} else if (!(lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
			luaL_error(L, "env.%s must be a string or false", lua_tostring(L, -2));
		}
		lua_pop(L, 1);
	}
	lua_remove(L, env);
	return string_array(L, keep - 1, n);
}

int pty_open(int cols, int rows, int *master, char *slave, size_t len)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return errno;
	struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
	int fl;
	if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, len) != 0 ||
	    ioctl(m, TIOCSWINSZ, &ws) < 0 || (fl = fcntl(m, F_GETFL)) < 0 ||
	    fcntl(m, F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		close(m);
		return e;
	}
	*master = m;
	return 0;
}

/* Starts a program detached from procy: a new session, stdin from
   /dev/null, stdout and stderr appended to log (or /dev/null), and a
   double fork, so init is its parent and procy never has to reap it. The
   child side only makes async-signal-safe calls (procy has threads).
   Returns 0 with *pid, or an errno (the exec's, when that failed). */
static int daemon_start(const char *path, char *const argv[], char *const envp[], const char *cwd,
                        const char *log, pid_t *pid)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return errno;
	sigset_t none;
	sigemptyset(&none);
	pid_t c = fork();
	if (c < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		return e;
	}
	if (c == 0) {
		setsid();
		pid_t g = fork();
		if (g != 0) {
			(void)!write(fds[1], &g, sizeof g);
			_exit(0);
		}
		int e = 0, nul = open("/dev/null", O_RDWR);
		int out = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0600) : nul;
		if (nul < 0 || out < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 ||
		    (cwd && chdir(cwd) < 0))
			e = errno;
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (!e) {
			execve(path, argv, envp);
			e = errno;
		}
		(void)!write(fds[1], &e, sizeof e);
		_exit(127);
	}
	close(fds[1]);
	pid_t g = -1;
	int e = 0;
	ssize_t n;
	while ((n = read(fds[0], &g, sizeof g)) < 0 && errno == EINTR)
		;
	if (n != sizeof g || g < 0)
		e = ECHILD;
	else /* then EOF (the exec worked) or its errno */
		while ((n = read(fds[0], &e, sizeof e)) < 0 && errno == EINTR)
			;
	close(fds[0]);
	while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
		;
	if (n > 0 && e)
		return e;
	*pid = g;
	return e;
}

/* daemon(argv, {cwd =, env =, log =}) -> pid | nil, err, code: argv[1] is
   a path (no PATH search after the fork). The program outlives procy. */
int proc_daemon(lua_State *L)
{
	if (lua_isnoneornil(L, 2)) {
		lua_settop(L, 1);
		lua_newtable(L);
	}
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	char **argv = spawn_argv(L, 1);
	luaL_argcheck(L, strchr(argv[0], '/') != NULL, 1, "daemon: the program must be a path");
	char **envp = spawn_env(L, 2);
	lua_getfield(L, 2, "cwd");
	const char *cwd = luaL_optstring(L, -1, NULL);
	lua_getfield(L, 2, "log");
	const char *log = luaL_optstring(L, -1, NULL);
	int e = spawn_cwd_ok(cwd);
	pid_t pid = -1;
	if (!e)
		e = daemon_start(argv[0], argv, envp, cwd, log, &pid);
	if (e)
		return procy_fail(L, procy_errname(e), "cannot start '%s': %s", argv[0], strerror(e));
	lua_pushinteger(L, pid);
	return 1;
}
