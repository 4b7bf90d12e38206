/* Shared module for deepbind.c, loaded with RTLD_DEEPBIND: its references to
 * malloc & co. bind to the C library's own allocator (a dependency of this
 * module) rather than to the preloaded one. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT void *deep_malloc_addr(void) { return (void *)&malloc; }
EXPORT void *deep_free_addr(void) { return (void *)&free; }

EXPORT void *deep_malloc(size_t n, int fill) {
  void *p = malloc(n);
  if (p) memset(p, fill, n);
  return p;
}

EXPORT void *deep_calloc(size_t n) { return calloc(1, n); }

EXPORT void *deep_memalign(size_t a, size_t n, int fill) {
  void *p = memalign(a, n);
  if (p) memset(p, fill, n);
  return p;
}

EXPORT char *deep_strdup(const char *s) { return strdup(s); }

EXPORT void deep_free(void *p) { free(p); }
