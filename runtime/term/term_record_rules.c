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

/* [-2, +0] The secrets in the string below the top of r->L as spans (the
   top: the rows' breaks a literal straddles, or nil; both popped)
   (1-based, inclusive) into *out; their count, 0 if none (or the rule set
   failed: then nothing is masked, and the failure is kept). cols: the
   screen's width when the text is its output (a key the agent wrapped
   across rows is found whole), else 0 (typed input). */
static size_t spans_of_top(rules_t *r, int cols, size_t **out)
{
	lua_State *L = r->L;
	*out = NULL;
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->spans);
	lua_insert(L, -3);
	lua_pushinteger(L, cols); /* a terminal's stream (procy.redact.spans) */
	lua_insert(L, -2);
	if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
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

/* A key's characters (a table: the row scan asks for every byte of a row's end) */
static const unsigned char WORD[256] = {
	['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1,
	['_'] = 1, ['-'] = 1, ['.'] = 1, ['+'] = 1, ['/'] = 1, ['='] = 1,
};
static inline int word_byte(unsigned char c) { return WORD[c]; }

/* ---- a row's end ------------------------------------------------------------------------ */

/* What an agent's screen puts between a key's head and its tail when it
   wraps the key onto the next row: a line break, carriage returns,
   spaces, a box's borders (│ ┃ ║ ╎) and escape sequences (ESC [ ... X).
   procy.redact joins them (spans with the screen's width); here the first
   look learns whether a literal straddles one, and the hold keeps a row
   whose end may go on in the next round. */
#define GAP_MAX 64
#define MAX_BREAKS 256 /* straddled breaks handed to redact.spans a round */

static int border_at(const unsigned char *c)
{
	return c[0] == 0xe2 && ((c[1] == 0x94 && (c[2] == 0x82 || c[2] == 0x83)) ||
	                        (c[1] == 0x95 && (c[2] == 0x91 || c[2] == 0x8e)));
}

/* The gap's length ending at p[n - 1] (looking back). */
static size_t gap_back(const unsigned char *p, size_t n)
{
	size_t k = 0;
	while (k < n && k < GAP_MAX) {
		const unsigned char *c = p + n - 1 - k;
		if (*c == '\r' || *c == '\n' || *c == ' ') {
			k++;
		} else if (k + 3 <= n && border_at(c - 2)) {
			k += 3;
		} else if (*c >= '@' && *c <= '~') { /* the final byte of ESC [ params X? */
			size_t j = k + 1;
			while (j < n && p[n - 1 - j] >= '0' && p[n - 1 - j] <= '?')
				j++;
			if (j + 2 <= n && p[n - 1 - j] == '[' && p[n - 2 - j] == 0x1b)
				k = j + 2;
			else
				break;
		} else {
			break;
		}
	}
	return k;
}

/* The gap's length starting at p[0]. */
static size_t gap_fwd(const unsigned char *p, size_t n)
{
	size_t k = 0;
	while (k < n && k < GAP_MAX) {
		if (p[k] == '\r' || p[k] == '\n' || p[k] == ' ') {
			k++;
		} else if (k + 3 <= n && border_at(p + k)) {
			k += 3;
		} else if (p[k] == 0x1b && k + 2 < n && p[k + 1] == '[') {
			size_t j = k + 2;
			while (j < n && p[j] >= '0' && p[j] <= '?')
				j++;
			if (j < n && p[j] >= '@' && p[j] <= '~')
				k = j + 1;
			else
				break;
		} else {
			break;
		}
	}
	return k;
}

/* Does a literal straddle a line break in p[0..n)? The key characters
   before the break's gap and after it, put together, are looked at. full:
   only breaks that end a row as wide as the screen (in bytes, within 8:
   escapes only make a row longer), the rows an agent wraps a word at.
   hits: where (the line feeds), up to max; NULL: whether any. */
static size_t rows_scan(const rules_t *r, const unsigned char *p, size_t n, int full, size_t *hits, size_t max)
{
	size_t row = 0, at = 0, found = 0;
	const unsigned char *nl;
	while (at < n && (nl = memchr(p + at, '\n', n - at))) {
		size_t x = (size_t)(nl - p);
		at = x + 1;
		if (full && (r->cols <= 0 || x - row + 8 < (size_t)r->cols)) {
			row = x + 1;
			continue;
		}
		row = x + 1;
		size_t end = x + 1 - gap_back(p, x + 1), start = x + 1 + gap_fwd(p + x + 1, n - x - 1);
		if (!end || start >= n || !word_byte(p[end - 1]) || !word_byte(p[start]))
			continue;
		char join[48];
		size_t h = 0, t = 0;
		while (h < 24 && h < end && word_byte(p[end - 1 - h]))
			h++;
		while (t < 24 && start + t < n && word_byte(p[start + t]))
			t++;
		memcpy(join, p + end - h, h);
		memcpy(join + h, p + start, t);
		/* a literal wholly on either side was seen by the plain look: one
		   that starts in the head and runs on into the tail is looked for */
		if (secrets_start_in(&r->lits, join, h + t, 0, h)) {
			if (!hits)
				return 1;
			if (found < max)
				hits[found] = x;
			found++;
		}
	}
	return found < max ? found : max;
}

static int rows_may_hold(const rules_t *r, const unsigned char *p, size_t n, int full)
{
	return rows_scan(r, p, n, full, NULL, 0) > 0;
}

/* Does the stream of kind in `in` need the rule set? Its events are
   looked at one by one, and across each boundary; output also across the
   rows its screen wraps. */
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
		if (kind == 'o' && rows_may_hold(r, (const unsigned char *)p, q->len, 1))
			return 1;
		if (prev && prevlen && q->len) {
			char edge[2 * GAP_MAX + 64];
			size_t a = prevlen < GAP_MAX + 31 ? prevlen : GAP_MAX + 31, b = q->len < GAP_MAX + 32 ? q->len : GAP_MAX + 32;
			memcpy(edge, prev + prevlen - a, a);
			memcpy(edge + a, p, b);
			if (secrets_may_hold(&r->lits, edge, a + b))
				return 1;
			if (kind == 'o' && rows_may_hold(r, (const unsigned char *)edge, a + b, 0))
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
	int cols = kind == 'o' ? r->cols : 0;
	size_t n, hits[MAX_BREAKS], nh = 0;
	const char *text = lua_tolstring(L, -1, &n);
	if (cols > 0) /* where a literal straddles a wrapped row's end: redact.spans looks there */
		nh = rows_scan(r, (const unsigned char *)text, n, 1, hits, MAX_BREAKS);
	lua_createtable(L, (int)nh, 0);
	for (size_t i = 0; i < nh; i++) {
		lua_pushinteger(L, (lua_Integer)hits[i] + 1);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	size_t *sp, nsp = spans_of_top(r, cols, &sp);
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

/* The screen's width, from the round's resize events ("COLSxROWS"). */
static void track_cols(rules_t *r, const batch *in)
{
	for (size_t i = 0; i < in->nev; i++)
		if (in->ev[i].kind == 'r') {
			int cols = 0;
			const char *p = in->data.p + in->ev[i].off;
			for (size_t k = 0; k < in->ev[i].len && k < 6 && p[k] >= '0' && p[k] <= '9'; k++)
				cols = cols * 10 + (p[k] - '0');
			if (cols > 0)
				r->cols = cols;
		}
}

/* The round's events into pending, redacted, in order. Output and
   input are each one stream; a typed line is its own text. Streams in
   which no rule can match (the usual case) are not copied at all. */
void rules_take_in(rules_t *r, batch *in, batch *pending)
{
	int need[2], lines = 0;
	track_cols(r, in);
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
   So does a row as wide as the screen that ends in a word and a gap (a
   line break, a border, escapes): the head of a key the agent wraps onto
   the next row, kept whole so its width can be told; with the width not
   known yet, a long word and its gap. */
#define WRAP_MIN 16  /* with no width known: a word that long before a gap may go on */
#define HOLD_ROW 4096 /* a row is held up to this long */
void rules_hold_last_word(rules_t *r, batch *in, batch *queue)
{
	track_cols(r, in);
	queued *q = in->nev ? &in->ev[in->nev - 1] : NULL;
	if (!q || (q->kind != 'o' && q->kind != 'i') || rec_now_us() - q->t >= HOLD_US)
		return;
	const unsigned char *p = (const unsigned char *)in->data.p + q->off;
	size_t hold = 0, word = 0;
	while (word < q->len && word < HOLD_MAX && word_byte(p[q->len - 1 - word]))
		word++;
	if (word) {
		hold = word;
	} else if (q->kind == 'o') {
		size_t gap = gap_back(p, q->len), end = q->len - gap;
		while (word < end && word < HOLD_MAX && word_byte(p[end - 1 - word]))
			word++;
		if (word && r->cols > 0) {
			const unsigned char *nl = NULL; /* the row's start: after the line break before it */
			size_t from = end - word, back = from < HOLD_ROW ? from : HOLD_ROW;
			for (size_t k = 0; k < back && !nl; k++)
				if (p[from - 1 - k] == '\n')
					nl = p + from - 1 - k;
			size_t start = nl ? (size_t)(nl - p) + 1 : from - back;
			if (end - start + 8 >= (size_t)r->cols && (nl || from <= HOLD_ROW))
				hold = q->len - start;
		} else if (word >= WRAP_MIN) {
			hold = gap + word;
		}
	}
	if (!hold || batch_add(queue, q->t, q->kind, p + q->len - hold, hold, 0) < 0)
		return;
	q->len -= hold;
	if (!q->len)
		in->nev--;
}
