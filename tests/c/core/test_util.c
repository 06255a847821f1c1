/* test_util.c — the shared buffer and the failure tuple. */
#include <errno.h>
#include "procy.h"
#include "tap.h"

int main(void)
{
	buf_t b = { 0 };
	for (int i = 0; i < 100000; i++)
		buf_add(&b, "abc", 3);
	is_int((long long)b.len, 300000, "buf grows to hold every byte");
	ok(memcmp(b.p + 299997, "abc", 3) == 0, "buf keeps the bytes in order");
	buf_consume(&b, 299998);
	ok(b.len == 2 && memcmp(b.p, "bc", 2) == 0, "consume drops from the front");
	buf_consume(&b, 10);
	is_int((long long)b.len, 0, "consuming more than held empties it");
	buf_free(&b);
	ok(b.p == NULL && b.cap == 0, "free resets");

	char last[4];
	size_t used = 0;
	keep_last(last, sizeof last, &used, "ab", 2);
	keep_last(last, sizeof last, &used, "cde", 3);
	ok(used == 4 && memcmp(last, "bcde", 4) == 0, "keep_last keeps the last bytes across calls");
	keep_last(last, sizeof last, &used, "0123456789", 10);
	ok(used == 4 && memcmp(last, "6789", 4) == 0, "and of a piece longer than it holds");

	lua_State *L = luaL_newstate();
	is_int(procy_fail(L, "EBUSY", "db %s is %d%% full", "x", 99), 3, "failure tuple has three values");
	ok(lua_isnil(L, 1), "first is nil");
	is_str(lua_tostring(L, 2), "EBUSY: db x is 99% full", "second is CODE: message");
	is_str(lua_tostring(L, 3), "EBUSY", "third is the code");
	lua_settop(L, 0);
	procy_fail_errno(L, ENOENT, "/nope");
	is_str(lua_tostring(L, 2), "ENOENT: /nope: No such file or directory", "errno tuple");
	is_str(procy_errname(EPIPE), "EPIPE", "errno names");
	lua_close(L);

	char safe[8];
	procy_json_safe(safe, sizeof safe, "a\"b\\c\nd");
	is_str(safe, "abcd", "json_safe drops quotes, backslashes and control characters");
	procy_json_safe(safe, sizeof safe, "0123456789");
	is_str(safe, "0123456", "and fits what it writes in the buffer");
	return tap_done();
}
