/*
** secrets.c — the cheap first look for secrets: the literals procy.redact
** says every default match holds (redact.literals(): "sk-", "AIza",
** "-----BEGIN", ...). Text holding none of them holds no secret, and is
** written as it is, with no Lua; text holding one goes to procy.redact.
** The terminal recorder (term_record_rules.c) and the record's
** connections (db.c, the write boundary) both look with it.
*/
#include <stdlib.h>
#include <string.h>

#include "procy.h"

/* Does a literal start at u[i]? */
static int literal_at(const secrets_t *r, const unsigned char *u, size_t n, size_t i)
{
	uint32_t m = r->first[u[i]];
	while (m) {
		int k = __builtin_ctz(m);
		m &= m - 1;
		size_t len = r->len[k];
		if (len <= n - i && (len < 2 || u[i + 1] == (unsigned char)r->lits[k][1]) &&
		    memcmp(u + i, r->lits[k], len) == 0)
			return 1;
	}
	return 0;
}

/* Sixteen bytes at a time, the first two bytes of every literal looked for
   at once (GCC vector extensions: SSE2 on x86-64, NEON on arm64); a block
   where a pair starts is looked at byte by byte. Output of base64 or
   compressed text, where the literals' first bytes are common, costs a
   third of the byte-wise scan (measured). */
typedef uint8_t v16u __attribute__((vector_size(16)));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LANE(byte) (size_t)(7 - (byte)) /* a lane's byte within its 64-bit half */
#else
#define LANE(byte) (size_t)(byte)
#endif
typedef int8_t  v16m __attribute__((vector_size(16)));

/* Could text hold a secret? Without rules of its own (the `redact`
   setting) procy.redact names the literals every default match holds
   (redact.literals()): a stream with none of them needs no Lua. */
int secrets_may_hold(const secrets_t *r, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (!r->lits)
		return 1;
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;
	if (r->npairs) {
		v16u first[16], second[16];
		for (size_t k = 0; k < r->npairs; k++) {
			for (int j = 0; j < 16; j++)
				first[k][j] = r->pair[k][0], second[k][j] = r->pair[k][1];
		}
		for (; i + 17 <= n; i += 16) {
			v16u a, b;
			memcpy(&a, u + i, 16);
			memcpy(&b, u + i + 1, 16);
			v16m hit = { 0 };
			for (size_t k = 0; k < r->npairs; k++)
				hit |= (v16m)(a == first[k]) & (v16m)(b == second[k]);
			uint64_t w[2];
			memcpy(w, &hit, sizeof w);
			if (!(w[0] | w[1]))
				continue;
			/* only where a pair starts (a hit lane is 0xff: its low bit) */
			for (int half = 0; half < 2; half++)
				for (uint64_t m = w[half] & 0x0101010101010101ULL; m; m &= m - 1)
					if (literal_at(r, u, n, i + 8 * (size_t)half + LANE(__builtin_ctzll(m) >> 3)))
						return 1;
		}
	}
	for (; i < n; i++)
		if (literal_at(r, u, n, i))
			return 1;
	return 0;
}

/* Does a literal start in p[from..to) and run past to? (A literal a break
   the caller took out had cut: the rest was looked at whole already.) */
int secrets_start_in(const secrets_t *r, const char *p, size_t n, size_t from, size_t to)
{
	if (!r->lits)
		return n > 0;
	const unsigned char *u = (const unsigned char *)p;
	if (to > r->maxlen && from < to - r->maxlen + 1)
		from = to - r->maxlen + 1;
	for (size_t i = from; i < to && i < n; i++)
		if (r->first[u[i]] && literal_at(r, u, n, i))
			return 1;
	return 0;
}

/* The literals' distinct first two bytes, for may_hold's block scan; none
   (the byte-wise scan) if a literal is one byte long or there are more
   than 16 pairs. */
static void pairs(secrets_t *r)
{
	r->npairs = 0;
	for (size_t k = 0; k < r->n; k++) {
		const uint8_t *l = (const uint8_t *)r->lits[k];
		size_t j = 0;
		if (r->len[k] < 2) {
			r->npairs = 0;
			return;
		}
		while (j < r->npairs && !(r->pair[j][0] == l[0] && r->pair[j][1] == l[1]))
			j++;
		if (j < r->npairs)
			continue;
		if (r->npairs == 16) {
			r->npairs = 0;
			return;
		}
		r->pair[r->npairs][0] = l[0];
		r->pair[r->npairs][1] = l[1];
		r->npairs++;
	}
}


int secrets_init(secrets_t *r, const char *literals)
{
	memset(r, 0, sizeof *r);
	if (!literals) /* none given: every text may hold a secret */
		return 0;
	const char *p = literals; /* one per line */
	size_t n = 1;
	for (const char *q = p; *q; q++)
		n += *q == '\n';
	if (!(r->lits = calloc(n, sizeof *r->lits)))
		return -1;
	while (*p && r->n < 32) {
		size_t len = strcspn(p, "\n");
		if (len && (r->lits[r->n] = strndup(p, len))) {
			r->len[r->n] = len;
			if (len > r->maxlen)
				r->maxlen = len;
			r->first[(unsigned char)p[0]] |= 1u << r->n;
			r->n++;
		}
		p += len + (p[len] == '\n');
	}
	if (*p) { /* more than 32: look at every text */
		secrets_free(r);
		return 0;
	}
	pairs(r);
	return 0;
}

void secrets_free(secrets_t *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->lits[i]);
	free(r->lits);
	memset(r, 0, sizeof *r);
}
