/*
** term.h — the terminal logic of an interactive session, in plain C with
** no I/O: following the line the person types, parsing keys, the `!`
** command-line editor, the pager, and the screen state procy must know
** about the agent (alternate screen, cursor shown). session.c feeds bytes
** in and writes what these functions draw.
*/
#ifndef PROCY_TERM_H
#define PROCY_TERM_H

#include "procy.h"

/* ---- the typed line ---------------------------------------------------------- */

#define LINE_MAX_BYTES 4096

typedef struct tracker {
	int    state;      /* ground, escape, CSI, SS3, string */
	char   csi[16];    /* parameters of the CSI being read */
	int    ncsi;
	int    paste;      /* inside bracketed paste */
	int    dirty;      /* cursor moved or history recalled: content unknown */
	char   line[LINE_MAX_BYTES];
	size_t len;        /* bytes in line (more may have been typed) */
	size_t typed;      /* characters typed on this line, stored or not */
	int    submitted;  /* line holds a submitted line until the next byte */
} tracker_t;

enum { TRACK_NONE, TRACK_SUBMIT };

/* Follows one byte the person typed toward the agent. TRACK_SUBMIT when it
   submitted a non-empty line: the text is in t->line (t->len bytes) until
   the next call. */
int  track_byte(tracker_t *t, unsigned char c);
/* True when nothing is typed on the line, the cursor never moved, and no
   escape sequence or paste is half-way: where `!` opens command mode. */
int  track_at_line_start(const tracker_t *t);
void track_reset(tracker_t *t);
/* An ESC typed last, with nothing after it for a while (ESC_ALONE_NS):
   the Esc key, not the start of a sequence. */
void track_esc_alone(tracker_t *t);
#define ESC_ALONE_NS 50000000 /* terminals send a key's sequence in one write */

/* ---- keys ---------------------------------------------------------------------- */

enum {
	KEY_NONE, KEY_CHAR, KEY_ENTER, KEY_ESC, KEY_BACKSPACE, KEY_DELETE,
	KEY_LEFT, KEY_RIGHT, KEY_UP, KEY_DOWN, KEY_HOME, KEY_END, KEY_PGUP,
	KEY_PGDN, KEY_CTRL, KEY_PASTE_START, KEY_PASTE_END, KEY_OTHER
};

typedef struct key {
	int           type;
	unsigned char ch[4];  /* KEY_CHAR: one UTF-8 character; KEY_CTRL: the letter */
	size_t        len;
} term_key;

/* Parses one key from p[0..n). Returns the bytes it took, or 0 when the
   bytes end inside a sequence and more may come. A lone ESC as the last
   byte is the Esc key. */
size_t key_parse(const unsigned char *p, size_t n, term_key *k);

/* ---- the command-line editor ------------------------------------------------------ */

#define EDIT_MAX_BYTES 1024

typedef struct editor {
	char   text[EDIT_MAX_BYTES];
	size_t len, cur;   /* bytes; cur sits on a character boundary */
	int    paste;      /* inside a bracketed paste */
} editor_t;

enum { EDIT_KEEP, EDIT_SUBMIT, EDIT_CANCEL, EDIT_LITERAL };

/* Applies one key. EDIT_SUBMIT: run text; EDIT_CANCEL: leave;
   EDIT_LITERAL: leave and send the command key itself to the agent. */
int  editor_key(editor_t *e, const term_key *k);
void editor_clear(editor_t *e);

/* ---- the agent's screen, as far as procy needs it ------------------------------- */

typedef struct screen {
	int  alt;           /* on the alternate screen */
	int  cursor_hidden;
	int  mouse;         /* bit per mouse mode set: 1000 1002 1003 1005 1006 1015 */
	int  paste, focus;  /* bracketed paste (2004), focus events (1004) */
	int  kitty;         /* kitty keyboard flags pushed (CSI > u) and not popped */
	int  modkeys;       /* xterm modifyOtherKeys set (CSI > 4 ; n m) */
	int  sgr;           /* colours or attributes left on (CSI ... m) */
	int  state, prefix, num; /* the scanner, inside CSI [?<>] Pn ; ... final */
	int  params[8], nparams;
	char osc[160];      /* an OSC string being read (ESC ] ... BEL or ESC \\) */
	int  osclen;
	char title[128];    /* the window title the agent set last (OSC 0 or 2) */
	int  titles;        /* how many times it was set */
	int  repaints;      /* erases, scroll regions, resets, screen switches: what can
	                       wipe or move a pinned bottom row */
	uint64_t scanned;   /* bytes scanned so far */
	uint64_t seq_at;    /* where the escape sequence under way began (while in one) */
	uint64_t esc_at;    /* the last ESC inside an OSC string */
} screen_t;

/* Notes the mode changes and the window title in bytes the agent wrote. */
void screen_scan(screen_t *s, const unsigned char *p, size_t n);
/* The bytes scanned end inside an escape sequence (begun at seq_at):
   procy must not write its own between them and the rest of it. */
int  screen_in_sequence(const screen_t *s);
/* Undoes the modes an agent left set (it was killed, say): attributes off,
   the main screen, a visible cursor, no mouse or focus reports, no
   bracketed paste, the keyboard protocols popped. Nothing if none is set. */
int  draw_reset(buf_t *out, const screen_t *s);

/* ---- replaying to a real terminal (unask.c) ------------------------------------- */

#define UNASK_MAX 4096 /* a query is short: a longer sequence is passed on as it comes */

typedef struct unask {
	int           state;
	unsigned char kind;            /* the sequence's letter: '[' CSI, ']' OSC, 'P' DCS, '_' APC, '^' PM, 'X' SOS */
	unsigned char seq[UNASK_MAX + 1]; /* the sequence under way, its introducer first (and room for a string's
	                                     terminator after UNASK_MAX bytes of it) */
	size_t        len, at;         /* bytes in seq; where its parameters or text begin */
	int           over, drop;      /* longer than seq: passed on as it comes, or (drop) dropped to its end */
	int           c2;              /* an over-long string's last byte was C2, held (a C1 may follow) */
	unsigned char prev_text;       /* an over-long string's last byte passed ("?" after ";" or "=" asks) */
	unsigned char prev;            /* the byte before (C2 XX is a C1 control) */
	unsigned char last;            /* the last byte passed on: what the terminal sees before what comes */
} unask_t;

/* Adds to out the bytes of in that may reach a real terminal: everything
   but the sequences a terminal answers — device attributes (CSI c, > c,
   = c, ESC Z), status and cursor reports (CSI n), mode queries (CSI $ p),
   XTVERSION (CSI > q), window reports (CSI 11..21 t), kitty's keyboard
   query (CSI ? u), DECREQTPARM (CSI x), colour, palette and clipboard
   queries (an OSC with a "?" field), DECRQSS and XTGETTCAP (DCS $ q,
   DCS + q), kitty graphics queries (APC G with a=q) and ENQ; in their
   7-bit form or with a C1 introducer (U+009B for CSI, ...), whole or cut
   short. A string longer than UNASK_MAX goes on as it comes, unless its
   start already asks (then it is dropped whole); a CSI that long is
   dropped. A sequence split across calls waits for its end. Start from a
   zeroed unask_t.
   0, or -1 (ENOMEM). */
int unask(unask_t *u, const unsigned char *in, size_t n, buf_t *out);
/* The output stops here (the end, Ctrl-C): adds to out what ends a string
   a part of which was passed on (ST), so what is written next is not taken
   into it. 0, or -1 (ENOMEM). */
int unask_end(unask_t *u, buf_t *out);

/* ---- drawing (into a buffer, written by the caller) ------------------------------- */

/* The editor on the bottom row, cursor placed in it. The caller saves the
   agent's cursor (ESC 7) once, before the first draw. */
int draw_editor(buf_t *out, const editor_t *e, int cols, int rows);
/* Clears the bottom row and puts the agent's cursor back. */
int draw_editor_close(buf_t *out, const screen_t *s, int rows);
/* One page of text (a pager): lines from `first`, footer on the bottom row.
   Returns the number of lines in text, after wrapping to cols. */
int draw_pager(buf_t *out, const char *text, size_t len, int first, int cols, int rows);
/* A one-line message on the bottom row; the agent's cursor is kept. */
int draw_status(buf_t *out, const char *text, int cols, int rows);
/* A pinned bottom row: the rows above become the scroll region (the agent
   is told it has one row less), the text goes below; unpin undoes it. */
int draw_pin(buf_t *out, const char *text, int cols, int rows);
int draw_unpin(buf_t *out, int rows);

#endif
