/*
** hash.c — SHA-256 (FIPS 180-4) and `procy.hash`. The record stores
** bodies and messages by the SHA-256 of their bytes; a digest of each
** prefix of a string, taken in the same pass, lets a growing conversation
** be stored as a chain of small pieces without hashing it twice.
**
** libcrypto's SHA-256 (with the CPU's SHA instructions: ~15x faster) is
** used when it can be opened (libload.c); this file's own code otherwise.
*/
#include <stdint.h>
#include <string.h>

#include "procy.h"
#include "libload.h"

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((sha256_t *)0)->ctx), "sha256_t.ctx holds a SHA256_CTX");

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void block(uint32_t h[8], const uint8_t *p)
{
	uint32_t w[64], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		k = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

static void portable_init(sha256_t *s)
{
	static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	                                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
	memcpy(s->h, iv, sizeof iv);
	s->len = 0;
	s->n = 0;
}

static void portable_update(sha256_t *s, const uint8_t *p, size_t n)
{
	s->len += n;
	if (s->n) {
		size_t take = 64 - s->n < n ? 64 - s->n : n;
		memcpy(s->buf + s->n, p, take);
		s->n += take, p += take, n -= take;
		if (s->n < 64)
			return;
		block(s->h, s->buf);
		s->n = 0;
	}
	for (; n >= 64; p += 64, n -= 64)
		block(s->h, p);
	memcpy(s->buf, p, n);
	s->n = n;
}

static void portable_final(const sha256_t *s, uint8_t md[32])
{
	sha256_t t = *s;
	uint64_t bits = t.len * 8;
	uint8_t pad[72] = { 0x80 };
	size_t padn = (t.n < 56 ? 56 : 120) - t.n;
	for (int i = 0; i < 8; i++)
		pad[padn + i] = (uint8_t)(bits >> (56 - 8 * i));
	portable_update(&t, pad, padn + 8);
	for (int i = 0; i < 32; i++)
		md[i] = (uint8_t)(t.h[i / 4] >> (24 - 8 * (i % 4)));
}

void sha256_init(sha256_t *s)
{
	s->fast = libload_crypto();
	if (s->fast)
		SHA256_Init((SHA256_CTX *)(void *)s->ctx);
	else
		portable_init(s);
}

void sha256_update(sha256_t *s, const void *p, size_t n)
{
	if (s->fast)
		SHA256_Update((SHA256_CTX *)(void *)s->ctx, p, n);
	else
		portable_update(s, p, n);
}

void sha256_hex(const sha256_t *s, char out[65])
{
	uint8_t md[32];
	if (s->fast) {
		SHA256_CTX t;
		memcpy(&t, s->ctx, sizeof t); /* a plain struct: the copy goes on alone */
		SHA256_Final(md, &t);
	} else {
		portable_final(s, md);
	}
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = 0;
}

void sha256_hex_of(const void *p, size_t n, char out[65])
{
	sha256_t s;
	sha256_init(&s);
	sha256_update(&s, p, n);
	sha256_hex(&s, out);
}

/* sha256(s [, i [, ends]]) -> hex [, {hex, ...}]: the digest of s:sub(i),
   and with ends (ascending positions) the digest of s:sub(i, e) for each. */
static int hash_sha256(lua_State *L)
{
	size_t n;
	const uint8_t *s = (const uint8_t *)luaL_checklstring(L, 1, &n);
	lua_Integer i = luaL_optinteger(L, 2, 1);
	luaL_argcheck(L, i >= 1 && (size_t)i <= n + 1, 2, "start out of range");
	sha256_t h;
	char hex[65];
	sha256_init(&h);
	size_t at = (size_t)i - 1;
	int with_ends = !lua_isnoneornil(L, 3);
	if (with_ends) {
		luaL_checktype(L, 3, LUA_TTABLE);
		lua_Integer count = luaL_len(L, 3);
		lua_createtable(L, (int)count, 0);
		for (lua_Integer k = 1; k <= count; k++) {
			lua_rawgeti(L, 3, k);
			lua_Integer e = lua_tointeger(L, -1);
			lua_pop(L, 1);
			if (e < (lua_Integer)at || (size_t)e > n)
				return luaL_error(L, "hash.sha256: end %d is out of order or range", (int)e);
			sha256_update(&h, s + at, (size_t)e - at);
			at = (size_t)e;
			sha256_hex(&h, hex);
			lua_pushlstring(L, hex, 64);
			lua_rawseti(L, -2, k);
		}
	}
	sha256_update(&h, s + at, n - at);
	sha256_hex(&h, hex);
	lua_pushlstring(L, hex, 64);
	if (with_ends)
		lua_insert(L, -2);
	return with_ends ? 2 : 1;
}

static const luaL_Reg hash_funcs[] = {
	{ "sha256", hash_sha256 },
	{ NULL, NULL }
};

int luaopen_procy_hash(lua_State *L)
{
	luaL_newlib(L, hash_funcs);
	return 1;
}
