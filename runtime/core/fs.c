/*
** fs.c — the `procy.fs` module: the few file-system calls Lua's io and os
** libraries lack (cwd, stat, realpath, mkdir, directory listing, a copy
** that keeps a file's times, a lock between processes). All are synchronous and quick; failures return nil,
** "ECODE: path: reason", code.
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "procy.h"

/* cwd() -> absolute path of the working directory */
static int fs_cwd(lua_State *L)
{
	char *p = getcwd(NULL, 0);
	if (!p)
		return procy_fail_errno(L, errno, "getcwd");
	lua_pushstring(L, p);
	free(p);
	return 1;
}

/* stat(path) -> {type="file"|"dir"|"link"|"other", size, mtime, ctime,
   mode, ino} | nil, err. Links are followed unless the second argument is
   true. ctime: when the inode last changed (no program can set it back). */
static int fs_stat(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct stat sb;
	int r = lua_toboolean(L, 2) ? lstat(path, &sb) : stat(path, &sb);
	if (r < 0)
		return procy_fail_errno(L, errno, path);
	lua_createtable(L, 0, 6);
	const char *type = S_ISREG(sb.st_mode) ? "file" : S_ISDIR(sb.st_mode) ? "dir"
	                 : S_ISLNK(sb.st_mode) ? "link" : "other";
	lua_pushstring(L, type);
	lua_setfield(L, -2, "type");
	lua_pushinteger(L, (lua_Integer)sb.st_size);
	lua_setfield(L, -2, "size");
	lua_pushnumber(L, (double)sb.st_mtim.tv_sec + (double)sb.st_mtim.tv_nsec / 1e9);
	lua_setfield(L, -2, "mtime");
	lua_pushinteger(L, sb.st_mode & 07777);
	lua_setfield(L, -2, "mode");
	lua_pushnumber(L, (double)sb.st_ctim.tv_sec + (double)sb.st_ctim.tv_nsec / 1e9);
	lua_setfield(L, -2, "ctime");
	lua_pushinteger(L, (lua_Integer)sb.st_ino);
	lua_setfield(L, -2, "ino");
	return 1;
}

/* realpath(path) -> absolute path with links resolved | nil, err */
static int fs_realpath(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	char *p = realpath(path, NULL);
	if (!p)
		return procy_fail_errno(L, errno, path);
	lua_pushstring(L, p);
	free(p);
	return 1;
}

int procy_mkdirs(const char *path, mode_t mode)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	for (char *p = copy + 1;; p++) {
		if (*p != '/' && *p != 0)
			continue;
		char c = *p;
		*p = 0;
		struct stat sb;
		if (mkdir(copy, mode) < 0 && errno != EEXIST)
			goto fail;
		if (stat(copy, &sb) < 0)
			goto fail;
		if (!S_ISDIR(sb.st_mode)) {
			errno = ENOTDIR;
			goto fail;
		}
		*p = c;
		if (!c)
			break;
	}
	free(copy);
	return 0;
fail:;
	int e = errno;
	free(copy);
	errno = e;
	return -1;
}

/* mkdir(path, [mode]) -> true | nil, err. Creates missing parents too;
   an existing directory is success. */
static int fs_mkdir(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	mode_t mode = (mode_t)luaL_optinteger(L, 2, 0755);
	if (procy_mkdirs(path, mode) < 0)
		return procy_fail_errno(L, errno, path);
	lua_pushboolean(L, 1);
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dir(path) -> sorted array of entry names (no "." or "..") | nil, err */
static int fs_dir(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	DIR *d = opendir(path);
	if (!d)
		return procy_fail_errno(L, errno, path);
	lua_newtable(L);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		lua_pushstring(L, e->d_name);
		lua_rawseti(L, -2, ++n);
	}
	closedir(d);
	const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n ? n : 1), 0);
	for (int i = 0; i < n; i++) {
		lua_rawgeti(L, -2, i + 1);
		names[i] = lua_tostring(L, -1);
		lua_pop(L, 1); /* the table keeps it alive */
	}
	qsort(names, (size_t)n, sizeof *names, cmp_str);
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_pushstring(L, names[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

/* fs.shipped([path]) -> the text of a file built into procy ("recipes/evolve.lua"),
** or nil; without a path, the array of their names. */
static int fs_shipped(lua_State *L)
{
	const char *path = luaL_optstring(L, 1, NULL);
	if (!path)
		lua_newtable(L);
	for (const embedded_file *f = procy_embedded; f->path; f++) {
		if (!path)
			lua_pushstring(L, f->path), lua_rawseti(L, -2, (lua_Integer)(f - procy_embedded) + 1);
		else if (strcmp(f->path, path) == 0)
			return lua_pushlstring(L, (const char *)f->data, f->len), 1;
	}
	if (path)
		lua_pushnil(L);
	return 1;
}

/* copy(from, to) -> true | nil, err: a regular file's bytes into `to`
   (made 0600, or truncated), then its mode and modification time, as
   `cp -p` does, without a process. Who asks for the time kept: git trusts
   an index entry's stat data only when the file is older than the index,
   so a copied index must keep its own mtime. */
static int fs_copy(lua_State *L)
{
	const char *from = luaL_checkstring(L, 1), *to = luaL_checkstring(L, 2);
	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer */
	int in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (in < 0)
		return procy_fail_errno(L, errno, from);
	struct stat sb;
	if (fstat(in, &sb) < 0) {
		int e = errno;
		close(in);
		return procy_fail_errno(L, e, from);
	}
	if (!S_ISREG(sb.st_mode)) {
		close(in);
		return procy_fail_errno(L, EINVAL, from);
	}
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
	if (out < 0) {
		int e = errno;
		close(in);
		return procy_fail_errno(L, e, to);
	}
	char buf[65536];
	const char *failed = NULL;
	int e = 0;
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno, failed = from;
			break;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				e = errno, failed = to;
				break;
			}
			off += w;
		}
		if (failed)
			break;
	}
	struct timespec times[2] = { sb.st_atim, sb.st_mtim };
	if (!failed && (fchmod(out, sb.st_mode & 07777) < 0 || futimens(out, times) < 0))
		e = errno, failed = to;
	close(in);
	if (close(out) < 0 && !failed)
		e = errno, failed = to;
	if (failed)
		return procy_fail_errno(L, e, failed);
	lua_pushboolean(L, 1);
	return 1;
}

/* A lock is flock(2) on a file of its own: the kernel lets it go when the
   holder exits, however it exits, so a killed procy leaves nothing stale.
   It is a lock per open file, so two holders in one process exclude each
   other too. */
#define LOCK_MT "procy.fs.lock"

static int lock_close(lua_State *L)
{
	int *fd = luaL_checkudata(L, 1, LOCK_MT);
	if (*fd >= 0)
		close(*fd); /* releases the lock; nothing to do if it fails */
	*fd = -1;
	return 0;
}

/* lock(path) -> lock | false (another holds it) | nil, err. Never waits:
   the caller decides how long to try (the Lua loop must not block). */
static int fs_lock(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	int *ud = lua_newuserdatauv(L, sizeof *ud, 0);
	*ud = -1;
	luaL_setmetatable(L, LOCK_MT);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return procy_fail_errno(L, errno, path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return lua_pushboolean(L, 0), 1;
		return procy_fail_errno(L, e, path);
	}
	*ud = fd;
	return 1;
}

static const luaL_Reg fs_funcs[] = {
	{ "cwd",      fs_cwd },
	{ "stat",     fs_stat },
	{ "realpath", fs_realpath },
	{ "mkdir",    fs_mkdir },
	{ "dir",      fs_dir },
	{ "shipped",  fs_shipped },
	{ "lock",     fs_lock },
	{ "copy",     fs_copy },
	{ NULL, NULL }
};

int luaopen_procy_fs(lua_State *L)
{
	if (luaL_newmetatable(L, LOCK_MT)) {
		lua_pushcfunction(L, lock_close);
		lua_setfield(L, -2, "__close");
		lua_pushcfunction(L, lock_close);
		lua_setfield(L, -2, "__gc");
		lua_newtable(L);
		lua_pushcfunction(L, lock_close);
		lua_setfield(L, -2, "release");
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
	luaL_newlib(L, fs_funcs);
	return 1;
}
