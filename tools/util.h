/* Small helpers for the command-line tool: allocation that exits on
 * failure, a growable string, JSON string output. */
#ifndef SM_TOOLS_UTIL_H
#define SM_TOOLS_UTIL_H

#include <stddef.h>
#include <stdio.h>

void *xmalloc(size_t n);
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

/* Writes s as a JSON string literal, or null when s is NULL. */
void json_str(FILE *out, const char *s);

#endif
