/* Messages to stderr without allocating: a fixed buffer, our own formatter,
 * write(2). Every line starts with "snapmalloc: ". Supported conversions:
 * %s %.*s %c %d %u %x %p %zu %zd %zx %lu %ld %llu %lld %%. */
#ifndef SM_ALLOCATOR_MSG_H
#define SM_ALLOCATOR_MSG_H

#include <stdarg.h>
#include <stddef.h>

#include "allocator/base.h"

/* Format into buf (always NUL-terminated); returns the length written. */
size_t sm_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap);
size_t sm_snprintf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "snapmalloc: <text>\n" */
void sm_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "snapmalloc: warning: <text>\n", at most 16 per process */
void sm_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "snapmalloc: warning: <text>\n", not counted against the 16: for callers
 * that rate-limit their own warnings (snapshot write failures). */
void sm_warning_always(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "snapmalloc: error: <text>\n", then abort(): the heap is no longer
 * trustworthy (double free, invalid pointer, corrupted metadata). */
SM_NORETURN SM_COLD void sm_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes all of buf to fd, retrying on EINTR; errno is preserved. */
void sm_write_all(int fd, const char *buf, size_t len);

#endif
