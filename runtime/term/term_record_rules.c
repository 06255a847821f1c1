/*
** term_record_rules.c — the rule set the terminal's writer applies before it
** writes: procy.redact, the same rules as the API capture's, run in a Lua
** state of the writer's own that is made only when some text holds one of
** the rules' literals (most sessions never print anything a rule could
** match, and most rounds are not copied at all). Output and input are
** each one stream, so a secret split across reads is found; a word the
** queue ends in waits for the next round (up to HOLD_US). It works on
** batches (term_record_batch.c) and knows nothing of the recorder.
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term_record_rules.h"

/* ---- the rule set ------------------------------------------------------------------------ */

int rules_init(rules_t *r, const char *settings, const char *literals)
{
	memset(r, 0, sizeof *r);
	r->spans = LUA_NOREF;
	if (settings && !(r->settings = strdup(settings)))
		return -1;
	return secrets_init(&r->lits, literals);
}

void rules_close_state(rules_t *r)
{
	if (r->L)
		lua_close(r->L);
	r->L = NULL;
	r->spans = LUA_NOREF;
}

void rules_free(rules_t *r)
{
	rules_close_state(r);
	secrets_free(&r->lits);
	free(r->settings);
	memset(r, 0, sizeof *r);
}

/* The rule set's Lua state, made when a text first needs it (most
   sessions never print anything a rule could match). */
static int open_redaction(rules_t *r)
{
	if (r->L)
		return r->spans != LUA_NOREF;
	lua_State *L = r->L = luaL_newstate();
	if (!L)
		return 0;
	procy_rt(L) = NULL;
	procy_open_modules(L);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "procy.redact");
	if (lua_pcall(L, 1, 1, 0) != LUA_OK)
		goto fail;
	lua_getglobal(L, "require");
	lua_pushliteral(L, "procy.json");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "decode");
	lua_pushstring(L, r->settings ? r->settings : "{}");
	lua_call(L, 1, 1);
	if (lua_istable(L, -1))
		lua_setfield(L, 1, "settings"); /* redact.settings = {redact = {...}} */
	lua_settop(L, 1);
	lua_getfield(L, 1, "spans");
	r->spans = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_settop(L, 0);
	return 1;
fail:
	snprintf(r->error, sizeof r->error, "no redaction: %s", lua_tostring(L, -1));
	lua_settop(L, 0);
	return 0;
}

/* [-0, +0] The secrets in the string on top of r->L (popped) as spans
   (1-based, inclusive) into *out; their count, 0 if none (or the rule set
   failed: then nothing is masked, and the failure is kept). cols: the
   screen's width when the text is its output (a key the agent wrapped
   across rows is found whole), else 0. */
static size_t spans_of_top(rules_t *r, int cols, size_t **out)
{
	lua_State *L = r->L;
	*out = NULL;
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->spans);
	lua_insert(L, -2);
	if (cols > 0)
		lua_pushinteger(L, cols);
	else
		lua_pushnil(L);
	if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
		snprintf(r->error, sizeof r->error, "redaction failed: %s", lua_tostring(L, -1));
		lua_settop(L, 0);
		return 0;
	}
	size_t n = lua_istable(L, -1) ? (size_t)luaL_len(L, -1) : 0;
	if (n >= 2 && (*out = malloc(n * sizeof **out))) {
		for (size_t i = 0; i < n; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i + 1);
			(*out)[i] = (size_t)lua_tointeger(L, -1);
			lua_pop(L, 1);
		}
	} else {
		n = 0;
	}
	lua_settop(L, 0);
	return n / 2;
}

static int word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == '+' || c == '/' || c == '=';
}

/* Does the stream of kind in `in` need the rule set? Its events are
   looked at one by one, and across each boundary. */
static int stream_may_hold(const rules_t *r, const batch *in, char kind)
{
	const char *prev = NULL;
	size_t prevlen = 0;
	for (size_t i = 0; i < in->nev; i++) {
		const queued *q = &in->ev[i];
		if (q->kind != kind)
			continue;
		const char *p = in->data.p + q->off;
		if (secrets_may_hold(&r->lits, p, q->len))
			return 1;
		if (prev && prevlen && q->len) {
			char edge[64];
			size_t a = prevlen < 31 ? prevlen : 31, b = q->len < 32 ? q->len : 32;
			memcpy(edge, prev + prevlen - a, a);
			memcpy(edge + a, p, b);
			if (secrets_may_hold(&r->lits, edge, a + b))
				return 1;
		}
		prev = p, prevlen = q->len;
	}
	return 0;
}

/* The events of kind in `in`, redacted as one stream (a secret split
   across reads is found), into *out by index: out[i] is the new data of
   in->ev[i] for the events of kind, in a buffer of its own. */
static void redact_stream(rules_t *r, const batch *in, char kind, buf_t *out)
{
	lua_State *L = r->L;
	luaL_Buffer lb;
	luaL_buffinit(L, &lb);
	for (size_t i = 0; i < in->nev; i++)
		if (in->ev[i].kind == kind)
			luaL_addlstring(&lb, in->data.p + in->ev[i].off, in->ev[i].len);
	luaL_pushresult(&lb);
	size_t *sp, nsp = spans_of_top(r, kind == 'o' ? r->cols : 0, &sp);
	/* each event again: the mask where a secret starts, nothing where it
	   goes on */
	size_t at = 0, s = 0;
	for (size_t i = 0; i < in->nev; i++) {
		const queued *q = &in->ev[i];
		if (q->kind != kind)
			continue;
		const char *src = in->data.p + q->off;
		buf_t *piece = &out[i];
		size_t pos = at, end = at + q->len;
		while (pos < end) {
			while (s < nsp && sp[2 * s + 1] - 1 < pos)
				s++;
			size_t a = s < nsp ? sp[2 * s] - 1 : end, b = s < nsp ? sp[2 * s + 1] - 1 : end;
			if (s < nsp && a <= pos) { /* inside a secret */
				if (a == pos)
					buf_add(piece, "[REDACTED]", 10);
				pos = b + 1 < end ? b + 1 : end;
			} else {
				size_t next = a < end ? a : end;
				buf_add(piece, src + (pos - at), next - pos);
				pos = next;
			}
		}
		at = end;
	}
	free(sp);
}

/* The round's events into pending, redacted, in order. Output and
   input are each one stream; a typed line is its own text. Streams in
   which no rule can match (the usual case) are not copied at all. */
void rules_take_in(rules_t *r, batch *in, batch *pending)
{
	int need[2], lines = 0;
	for (size_t i = 0; i < in->nev; i++) /* the screen's width: "COLSxROWS" */
		if (in->ev[i].kind == 'r') {
			int cols = 0;
			const char *p = in->data.p + in->ev[i].off;
			for (size_t k = 0; k < in->ev[i].len && k < 6 && p[k] >= '0' && p[k] <= '9'; k++)
				cols = cols * 10 + (p[k] - '0');
			if (cols > 0)
				r->cols = cols;
		}
	need[0] = stream_may_hold(r, in, 'o');
	need[1] = stream_may_hold(r, in, 'i');
	for (size_t i = 0; i < in->nev && !lines; i++)
		lines = in->ev[i].kind == 'l' && secrets_may_hold(&r->lits, in->data.p + in->ev[i].off, in->ev[i].len);
	if ((need[0] || need[1] || lines) && !open_redaction(r))
		need[0] = need[1] = lines = 0; /* the failure is the recorder's error: shown */
	if (!need[0] && !need[1] && !lines) {
		if (!pending->nev) { /* nothing to change: the queue's buffers become pending */
			batch t = *pending;
			*pending = *in;
			*in = t;
			return;
		}
		for (size_t i = 0; i < in->nev; i++)
			batch_add(pending, in->ev[i].t, in->ev[i].kind, in->data.p + in->ev[i].off, in->ev[i].len, 0);
		return;
	}
	buf_t *redone = calloc(in->nev ? in->nev : 1, sizeof *redone);
	if (!redone)
		return; /* no memory: the round is lost (it cannot be written unredacted) */
	if (need[0])
		redact_stream(r, in, 'o', redone);
	if (need[1])
		redact_stream(r, in, 'i', redone);
	for (size_t i = 0; i < in->nev; i++) {
		const queued *q = &in->ev[i];
		int done = (q->kind == 'o' && need[0]) || (q->kind == 'i' && need[1]);
		if (q->kind == 'l' && lines) {
			batch one = { &in->ev[i], 1, 1, in->data };
			redact_stream(r, &one, 'l', &redone[i]);
			done = 1;
		}
		if (done)
			batch_add(pending, q->t, q->kind, redone[i].p ? redone[i].p : "", redone[i].len, 0);
		else
			batch_add(pending, q->t, q->kind, in->data.p + q->off, q->len, 0);
		buf_free(&redone[i]);
	}
	free(redone);
}

/* A word at the very end of what is queued may be the start of a secret
   whose rest is still to come: it stays in the queue, for the next round
   (unless it has waited HOLD_US already): moved from `in` into `queue`.
   So does a long word before a row's end (a line break, spaces, a border
   "│"): the head of a key the agent wraps onto the next row. */
#define WRAP_MIN 16 /* a word that long before a row's end may go on on the next */
void rules_hold_last_word(batch *in, batch *queue)
{
	queued *q = in->nev ? &in->ev[in->nev - 1] : NULL;
	if (!q || (q->kind != 'o' && q->kind != 'i') || rec_now_us() - q->t >= HOLD_US)
		return;
	const unsigned char *p = (const unsigned char *)in->data.p + q->off;
	size_t hold = 0, edge = 0, word;
	while (edge < q->len && edge < 16) { /* the row's end: \r \n spaces │ */
		const unsigned char *c = p + q->len - 1 - edge;
		if (*c == '\r' || *c == '\n' || *c == ' ')
			edge++;
		else if (edge + 3 <= q->len && c[-2] == 0xe2 && c[-1] == 0x94 && c[0] == 0x82)
			edge += 3;
		else
			break;
	}
	for (int pass = 0; pass < 2; pass++) { /* the word right at the end, else one before the row's end */
		size_t skip = pass ? edge : 0;
		if (pass && !edge)
			break;
		for (word = 0; skip + word < q->len && skip + word < HOLD_MAX && word_byte(p[q->len - 1 - skip - word]);)
			word++;
		if (word && (!pass || word >= WRAP_MIN)) {
			hold = skip + word;
			break;
		}
	}
	if (!hold || batch_add(queue, q->t, q->kind, p + q->len - hold, hold, 0) < 0)
		return;
	q->len -= hold;
	if (!q->len)
		in->nev--;
}

