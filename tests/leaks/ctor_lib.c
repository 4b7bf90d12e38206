/* A library whose constructor leaks, and one whose destructor leaks: the
 * leak gate must see both, as valgrind does. Built into libleak_ctor.so and
 * libleak_dtor.so (tests/leaks/meson.build) and linked by leak_libs. */
#include <stdlib.h>
#include <string.h>

/* Referenced by the program, so that the linker keeps the library. */
int LEAK_ANCHOR(void) { return 1; }

#ifdef LEAK_CTOR
/* Runs before libsnapmalloc's own constructor (it is a DT_NEEDED library of
 * the program, initialised before the preloaded one): 4096 B lost. */
__attribute__((constructor)) static void leak_in_ctor(void) {
  char *p = malloc(4096);
  memset(p, 7, 4096);
}
#endif

#ifdef LEAK_DTOR
/* A table kept in a global, holding one 2000-byte entry. The destructor
 * frees the table but forgets the entry: after it ran, the entry is
 * definitely lost. The destructor runs after libsnapmalloc's. */
static void **table;

__attribute__((constructor)) static void make_table(void) {
  table = calloc(4, sizeof *table);
  table[0] = malloc(2000);
  memset(table[0], 1, 2000);
}

__attribute__((destructor)) static void drop_table(void) {
  free(table);
  table = NULL;
}
#endif
