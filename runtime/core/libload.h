/*
** libload.h — libcurl, libmicrohttpd and libcrypto, opened on first use.
**
** Linked at startup, the two libraries and the TLS stacks they pull in
** (OpenSSL, GnuTLS, Kerberos, p11-kit) cost every procy command about 6 ms
** and 5 MB of resident memory before main() runs, though most commands
** never speak HTTP. So they are opened with dlopen when a transfer or a
** connection first needs them, and called through pointers that have the
** libraries' own prototypes (typeof), so every call is still type-checked.
** Debian builds libcurl on GnuTLS (libcurl3-gnutls, which git needs too)
** and on OpenSSL (libcurl4); the first is taken when both are there, as
** libmicrohttpd brings GnuTLS anyway (libload.c).
** libcrypto (OpenSSL, which libcurl's libssh2 brings anyway) is there only for its
** SHA-256, which uses the CPU's SHA instructions: the record names every
** body by its digest, and the portable code in hash.c costs ~60
** instructions a byte. Without libcrypto hash.c's own code is used.
*/
#ifndef PROCY_LIBLOAD_H
#define PROCY_LIBLOAD_H

#include <stddef.h>

#define CURL_DISABLE_TYPECHECK /* its checks are macros named like the functions */
#include <curl/curl.h>
#include <microhttpd.h>
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co: the plain, copyable state */
#include <openssl/sha.h>

#define LIBLOAD_CURL(X) \
	X(curl_global_init) X(curl_global_cleanup) X(curl_easy_init) X(curl_easy_cleanup) X(curl_easy_reset) \
	X(curl_easy_setopt) X(curl_easy_getinfo) X(curl_easy_pause) X(curl_easy_strerror) \
	X(curl_multi_init) X(curl_multi_cleanup) X(curl_multi_setopt) X(curl_multi_assign) \
	X(curl_multi_add_handle) X(curl_multi_remove_handle) X(curl_multi_socket_action) \
	X(curl_multi_info_read) X(curl_slist_append) X(curl_slist_free_all)

#define LIBLOAD_MHD(X) \
	X(MHD_start_daemon) X(MHD_stop_daemon) X(MHD_run) X(MHD_get_timeout) X(MHD_get_daemon_info) \
	X(MHD_get_connection_values) X(MHD_suspend_connection) X(MHD_resume_connection) \
	X(MHD_create_response_from_buffer) X(MHD_create_response_from_callback) \
	X(MHD_create_response_from_fd) X(MHD_add_response_header) X(MHD_queue_response) \
	X(MHD_destroy_response)

#define LIBLOAD_CRYPTO(X) X(SHA256_Init) X(SHA256_Update) X(SHA256_Final)

#define LIBLOAD_DECLARE(f) extern __typeof__(f) *libload_##f;
LIBLOAD_CURL(LIBLOAD_DECLARE)
LIBLOAD_MHD(LIBLOAD_DECLARE)
LIBLOAD_CRYPTO(LIBLOAD_DECLARE)

/* 0 once the library is open; -1 with what is missing in e (ENOENT: the
   library, ENOSYS: a function of it). */
struct err;
int libload_curl(struct err *e);
int libload_mhd(struct err *e);
/* 1 when libcrypto's SHA-256 is there, else 0. Safe from any thread. */
int libload_crypto(void);

#ifndef LIBLOAD_IMPL
#undef curl_easy_setopt /* curl.h's argument-count checks */
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init          (*libload_curl_global_init)
#define curl_global_cleanup       (*libload_curl_global_cleanup)
#define curl_easy_init            (*libload_curl_easy_init)
#define curl_easy_cleanup         (*libload_curl_easy_cleanup)
#define curl_easy_reset           (*libload_curl_easy_reset)
#define curl_easy_setopt          (*libload_curl_easy_setopt)
#define curl_easy_getinfo         (*libload_curl_easy_getinfo)
#define curl_easy_pause           (*libload_curl_easy_pause)
#define curl_easy_strerror        (*libload_curl_easy_strerror)
#define curl_multi_init           (*libload_curl_multi_init)
#define curl_multi_cleanup        (*libload_curl_multi_cleanup)
#define curl_multi_setopt         (*libload_curl_multi_setopt)
#define curl_multi_assign         (*libload_curl_multi_assign)
#define curl_multi_add_handle     (*libload_curl_multi_add_handle)
#define curl_multi_remove_handle  (*libload_curl_multi_remove_handle)
#define curl_multi_socket_action  (*libload_curl_multi_socket_action)
#define curl_multi_info_read      (*libload_curl_multi_info_read)
#define curl_slist_append         (*libload_curl_slist_append)
#define curl_slist_free_all       (*libload_curl_slist_free_all)
#define MHD_start_daemon                  (*libload_MHD_start_daemon)
#define MHD_stop_daemon                   (*libload_MHD_stop_daemon)
#define MHD_run                           (*libload_MHD_run)
#define MHD_get_timeout                   (*libload_MHD_get_timeout)
#define MHD_get_daemon_info               (*libload_MHD_get_daemon_info)
#define MHD_get_connection_values         (*libload_MHD_get_connection_values)
#define MHD_suspend_connection            (*libload_MHD_suspend_connection)
#define MHD_resume_connection             (*libload_MHD_resume_connection)
#define MHD_create_response_from_buffer   (*libload_MHD_create_response_from_buffer)
#define MHD_create_response_from_callback (*libload_MHD_create_response_from_callback)
#define MHD_create_response_from_fd       (*libload_MHD_create_response_from_fd)
#define MHD_add_response_header           (*libload_MHD_add_response_header)
#define MHD_queue_response                (*libload_MHD_queue_response)
#define MHD_destroy_response              (*libload_MHD_destroy_response)
#define SHA256_Init                       (*libload_SHA256_Init)
#define SHA256_Update                     (*libload_SHA256_Update)
#define SHA256_Final                      (*libload_SHA256_Final)
#endif

#endif
