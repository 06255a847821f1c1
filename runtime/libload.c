/*
** libload.c — opens libcurl and libmicrohttpd when first needed (see
** libload.h for why). A library is opened once and never closed.
*/
#define LIBLOAD_IMPL
#include <dlfcn.h>
#include <stdio.h>

#include "libload.h"

#define LIBLOAD_DEFINE(f) __typeof__(libload_##f) libload_##f;
LIBLOAD_CURL(LIBLOAD_DEFINE)
LIBLOAD_MHD(LIBLOAD_DEFINE)

/* Opens the first of names that exists; NULL with dlerror()'s message. */
static void *open_first(const char *const *names, char *err, size_t errlen)
{
	for (const char *const *n = names; *n; n++) {
		void *h = dlopen(*n, RTLD_NOW | RTLD_LOCAL);
		if (h)
			return h;
		snprintf(err, errlen, "%s", dlerror());
	}
	return NULL;
}

#define LIBLOAD_SYM(f) \
	if (!(*(void **)&libload_##f = dlsym(h, #f))) { \
		snprintf(err, errlen, "%s has no %s", what, #f); \
		return -1; \
	}

int libload_curl(char *err, size_t errlen)
{
	static const char *const names[] = { "libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so", NULL };
	static int done;
	const char *what = "libcurl";
	if (done)
		return 0;
	char why[256];
	void *h = open_first(names, why, sizeof why);
	if (!h) {
		snprintf(err, errlen, "cannot open libcurl (Debian: apt install libcurl4): %s", why);
		return -1;
	}
	LIBLOAD_CURL(LIBLOAD_SYM)
	done = 1;
	return 0;
}

int libload_mhd(char *err, size_t errlen)
{
	static const char *const names[] = { "libmicrohttpd.so.12", "libmicrohttpd.so", NULL };
	static int done;
	const char *what = "libmicrohttpd";
	if (done)
		return 0;
	char why[256];
	void *h = open_first(names, why, sizeof why);
	if (!h) {
		snprintf(err, errlen, "cannot open libmicrohttpd (Debian: apt install libmicrohttpd12): %s", why);
		return -1;
	}
	LIBLOAD_MHD(LIBLOAD_SYM)
	done = 1;
	return 0;
}
