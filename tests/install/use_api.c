/* Compiled by tests/install/install.sh against the installed header and
 * library, found through `pkg-config snapmalloc`: linking the library
 * makes it this program's malloc, so with trace=1 its own allocation shows
 * in snapmalloc_traced_memory(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snapmalloc.h>

int main(void) {
  size_t peak = 0;
  char *block = malloc(1 << 20);
  if (!block) return 1;
  memset(block, 1, 1 << 20);
  size_t now = snapmalloc_traced_memory(&peak);
  printf("version=%s traced=%zu peak=%zu\n", snapmalloc_version(), now, peak);
  if (strcmp(snapmalloc_version(), SNAPMALLOC_VERSION_STRING) != 0) return 1;
  int ok = now >= (1 << 20) && peak >= now;
  free(block);
  return ok ? 0 : 1;
}
