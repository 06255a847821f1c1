/* test_json.c — the codec's edge cases, driven through its Lua functions in
   a bare Lua state (json.c needs no loop). */
#include "harness.h"
#include "tap.h"

static lua_State *L;

/* Runs a chunk that returns one value; gives it as a string. */
#define eval(code) lua_eval(L, (code))

int main(void)
{
	L = luaL_newstate();
	luaL_openlibs(L);
	luaL_requiref(L, "json", luaopen_procy_json, 1);
	lua_pop(L, 1);

	/* tables: arrays, objects, empties */
	is_str(eval("return json.encode({})"), "{}", "empty table is an object");
	is_str(eval("return json.encode(json.array())"), "[]", "json.array() is an empty array");
	is_str(eval("return json.encode(json.decode('[]'))"), "[]", "decoded [] stays an array");
	is_str(eval("return json.encode(json.decode('{}'))"), "{}", "decoded {} stays an object");
	is_str(eval("return json.encode({1, 2, 'x'})"), "[1,2,\"x\"]", "a sequence is an array");
	is_str(eval("return json.encode({[1]=1, [3]=3}, {sort=true})"), "{\"1\":1,\"3\":3}",
	       "a sparse table is an object with string keys");
	is_str(eval("return json.encode({b=1, a={c=json.null}}, {sort=true})"),
	       "{\"a\":{\"c\":null},\"b\":1}", "sort orders keys; null survives");
	is_str(eval("return json.encode({a={1}}, {indent=2})"), "{\n  \"a\": [\n    1\n  ]\n}", "indent");
	is_str(eval("local t = json.decode('[1,null,3]') return #t .. tostring(t[2] == json.null)"),
	       "3true", "null keeps array slots");

	/* numbers */
	is_str(eval("return json.encode(9007199254740993)"), "9007199254740993", "2^53+1 encodes exactly");
	is_str(eval("return math.type(json.decode('9223372036854775807'))"), "integer", "int64 max decodes as an integer");
	is_str(eval("return json.decode('9223372036854775807') == math.maxinteger"), "true", "int64 max exact");
	is_str(eval("return json.decode('-9223372036854775808') == math.mininteger"), "true", "int64 min exact");
	is_str(eval("return math.type(json.decode('9223372036854775808'))"), "float", "beyond int64 becomes a float");
	is_str(eval("return json.encode(0.1)"), "0.1", "shortest float text");
	is_str(eval("return json.encode(1.0)"), "1.0", "an integral float stays a float");
	is_str(eval("return math.type(json.decode('1.0'))"), "float", "1.0 decodes as a float");
	is_str(eval("return json.decode('-1.5e3')"), "-1500.0", "exponent");
	ok(strstr(eval("return json.encode(0/0)"), "json: cannot encode NaN") != NULL, "NaN raises");
	for (const char *const *bad = (const char *const[]){ "01", "1.", "-", ".5", "+1", "1e", "0x10", "NaN", NULL }; *bad; bad++) {
		char code[128];
		snprintf(code, sizeof code, "return select(3, json.decode('%s'))", *bad);
		is_str(eval(code), "EJSON", *bad);
	}

	/* strings and unicode */
	is_str(eval("return json.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\"')"), "\xc3\xa9\xf0\x9f\x98\x80",
	       "\\u escapes and a surrogate pair decode to UTF-8");
	is_str(eval("return json.decode('\"\\\\ud800x\"')"), "\xef\xbf\xbdx", "a lone surrogate becomes U+FFFD");
	is_str(eval("return json.encode('\\0\\1\\n\"\\\\')"), "\"\\u0000\\u0001\\n\\\"\\\\\"", "control characters escaped");
	is_str(eval("return json.encode('caf\\xc3\\xa9 \\xf0\\x9f\\x98\\x80')"), "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"",
	       "valid UTF-8 passes through");
	is_str(eval("return json.encode('a\\xffb\\xc3')"), "\"a\\ufffdb\\ufffd\"", "invalid UTF-8 becomes \\ufffd");
	is_str(eval("local s = string.rep('\\xe2\\x82\\xac', 1000) return json.decode(json.encode(s)) == s"),
	       "true", "round trip of a long UTF-8 string");

	/* errors */
	is_str(eval("return select(2, json.decode('{\"a\":1,}'))"),
	       "EJSON: expected a string key: unexpected '}' at line 1 column 8 (byte 8)", "error names the place");
	is_str(eval("return select(2, json.decode('[1,\\n 2 x]'))"),
	       "EJSON: expected ',' or ']': unexpected 'x' at line 2 column 4 (byte 8)", "line and column");
	is_str(eval("return select(2, json.decode('\"abc'))"),
	       "EJSON: unterminated string: unexpected end of input at line 1", "unterminated string");
	is_str(eval("return select(2, json.decode('1 2'))"),
	       "EJSON: trailing data after JSON value: unexpected '2' at line 1 column 3 (byte 3)", "trailing data");
	is_str(eval("return select(2, json.decode(''))"), "EJSON: invalid JSON: unexpected end of input at line 1", "empty input");
	is_str(eval("return select(3, json.decode(string.rep('[', 1001) .. string.rep(']', 1001)))"), "EJSON", "depth limit on decode");
	ok(strstr(eval("local t = {} t.t = t return json.encode(t)"), "nested deeper") != NULL, "a cycle raises");
	ok(strstr(eval("return json.encode({f = print})"), "cannot encode a function") != NULL, "functions raise");
	ok(strstr(eval("return json.encode({[true] = 1})"), "as an object key") != NULL, "boolean keys raise");
	is_str(eval("return json.decode(' {\"a\" : [ true , false , null ] } ').a[2]"), "false", "whitespace everywhere");

	lua_close(L);
	return tap_done();
}
