/*
** libload.c — opens libcurl, libmicrohttpd and libcrypto when first needed
** (see libload.h for why). A library is opened once and never closed.
*/
#define LIBLOAD_IMPL
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "libload.h"
#include "procy.h"

#define LIBLOAD_DEFINE(f) __typeof__(libload_##f) libload_##f;
LIBLOAD_CURL(LIBLOAD_DEFINE)
LIBLOAD_MHD(LIBLOAD_DEFINE)
LIBLOAD_CRYPTO(LIBLOAD_DEFINE)

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
		return err_set(e, "ENOSYS", "%s has no %s", what, #f); \
	}

int libload_curl(err_t *e)
{
	/* GnuTLS's build first: libmicrohttpd brings GnuTLS anyway, and
	   OpenSSL's set-up in curl_global_init costs 1.2 MB more */
	static const char *const names[] = { "libcurl-gnutls.so.4", "libcurl.so.4", "libcurl.so", NULL };
	static int done;
	const char *what = "libcurl";
	if (done)
		return 0;
	char why[256];
	void *h = open_first(names, why, sizeof why);
	if (!h) {
		return err_set(e, "ENOENT", "cannot open libcurl (Debian: apt install libcurl4): %s", why);
	}
	LIBLOAD_CURL(LIBLOAD_SYM)
	/* libssh2 (libcurl's scp: and sftp:, which procy never asks for:
	   CURLOPT_PROTOCOLS_STR) sets all of OpenSSL's ciphers up when curl
	   starts it, 1.2 MB of memory. Started here first without that,
	   curl's own start finds it started and only counts. */
	int (*ssh_init)(int) = (int (*)(int))dlsym(h, "libssh2_init");
	if (ssh_init)
		ssh_init(1 /* LIBSSH2_INIT_NO_CRYPTO */);
	done = 1;
	return 0;
}

int libload_mhd(err_t *e)
{
	static const char *const names[] = { "libmicrohttpd.so.12", "libmicrohttpd.so", NULL };
	static int done;
	const char *what = "libmicrohttpd";
	if (done)
		return 0;
	char why[256];
	void *h = open_first(names, why, sizeof why);
	if (!h) {
		return err_set(e, "ENOENT", "cannot open libmicrohttpd (Debian: apt install libmicrohttpd12): %s", why);
	}
	LIBLOAD_MHD(LIBLOAD_SYM)
	done = 1;
	return 0;
}

static int crypto_ok;

#define LIBLOAD_SYM_OR_NOT(f) \
	if (!(*(void **)&libload_##f = dlsym(h, #f))) \
		return;

static void open_crypto(void)
{
	static const char *const names[] = { "libcrypto.so.3", "libcrypto.so", NULL };
	char why[256];
	const char *off = getenv("PROCY_NO_LIBCRYPTO"); /* tests of hash.c's own code */
	void *h = off && *off ? NULL : open_first(names, why, sizeof why);
	if (!h)
		return; /* hash.c's own SHA-256 then */
	LIBLOAD_CRYPTO(LIBLOAD_SYM_OR_NOT)
	crypto_ok = 1;
}

int libload_crypto(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, open_crypto); /* the recorder threads hash too */
	return crypto_ok;
}
