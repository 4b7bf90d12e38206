/* Small helpers for the command-line tool: allocation that exits on
 * failure, a growable string, opening untrusted files, saturating sums,
 * and the display and JSON forms of strings that came from a snapshot. */
#ifndef SM_TOOLS_UTIL_H
#define SM_TOOLS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

void *xmalloc(size_t n);
/* The last component of a path (after the last '/'); NULL stays NULL. */
const char *sm_base_name(const char *path);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

typedef struct strbuf {
  char *s;
  size_t len, cap;
} strbuf_t;

void sb_putc(strbuf_t *b, char c);
void sb_puts(strbuf_t *b, const char *s);
void sb_printf(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Opens path read-only if it is a regular file. The open itself uses
 * O_NONBLOCK, so a FIFO cannot block it, and O_CLOEXEC; then fstat decides.
 * Returns the descriptor, or -1 with a reason ("No such file or
 * directory", "not a regular file (a FIFO)") in why (why may be NULL). */
int sm_open_regular(const char *path, char *why, size_t whylen);

/* a + b, or UINT64_MAX when the sum does not fit. */
static inline uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

/* Decodes one UTF-8 character at s; returns its length in bytes, or 0 if
 * the bytes are not a valid shortest-form encoding (a NUL ends it). */
int sm_utf8_char(const unsigned char *s, uint32_t *cp);
/* Characters that must not reach a terminal or a reader raw although they
 * are valid UTF-8: C0 controls, DEL, C1 controls, and the invisible and
 * bidirectional formatting characters that can hide or reorder text. */
bool sm_unsafe_char(uint32_t cp);

/* Display form of a string from a snapshot or a file it names (docs/cli.md,
 * "Untrusted snapshots"): a backslash becomes \\, a byte that is a control
 * character or not part of valid UTF-8 becomes \xHH, an unsafe character
 * above 0x7f (C1, bidirectional) becomes \uHHHH; everything else is kept.
 * With max >= 16 the form is cut to at most max bytes, ending in "...". */
void sm_escape(strbuf_t *b, const char *s, size_t max);
/* True when s's display form is s itself (no escape needed). */
bool sm_plain(const char *s);
/* Writes the display form of s to out (uncut). */
void sm_put_escaped(FILE *out, const char *s);

/* Writes s as a JSON string literal, or null when s is NULL. The output is
 * always valid UTF-8: control and unsafe characters are written as \uXXXX,
 * and each byte that is not part of valid UTF-8 as \ufffd (the
 * replacement character). */
void json_str(FILE *out, const char *s);
/* Removes directory dir and the files in it (a tool's own temporary
 * directory: no subdirectories); one line on stderr, naming the command
 * `who`, if it cannot. */
void sm_remove_dir(const char *who, const char *dir);

#endif
