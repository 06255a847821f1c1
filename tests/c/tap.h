/* tap.h — the few TAP helpers the C tests share. The plan comes last. A
   failure goes to stderr too, with its diagnostics: meson reads stdout
   for the TAP stream, and `meson test --print-errorlogs` shows stderr. */
#ifndef TAP_H
#define TAP_H
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failures;

/* A diagnostic line, on stdout (TAP) and stderr. */
static void tap_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	printf("%sok %d - ", pass ? "" : "not ", ++tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		tap_failures++;
		fprintf(stderr, "not ok %d - ", tap_count);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, "\n");
		tap_diag("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, name) do { \
	const char *g_ = (got), *w_ = (want); \
	int p_ = g_ && w_ && strcmp(g_, w_) == 0; \
	tap_ok(p_, __FILE__, __LINE__, "%s", name); \
	if (!p_) tap_diag("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)
#define is_int(got, want, name) do { \
	long long g_ = (got), w_ = (want); \
	tap_ok(g_ == w_, __FILE__, __LINE__, "%s", name); \
	if (g_ != w_) tap_diag("#   got:  %lld\n#   want: %lld\n", g_, w_); \
} while (0)

static int tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failures ? 1 : 0;
}
#endif
