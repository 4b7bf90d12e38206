/* The largest large blocks the options allow, and pointers at every part of
 * their chunk. A large chunk spans several 4 MiB slots of the one-byte
 * segment map, which can say "the header is k slots below" for k up to
 * 253 only; a chunk beyond that (huge=1G once allowed one) made the
 * pointers in its last slots look foreign, and they went to glibc's free.
 * Run with SNAPMALLOC_OPTIONS at the top of the ranges (huge=512M,
 * increment=512M) and with huge=1G (now refused with a warning, so the
 * default applies). Usage: segrange BYTES */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtest.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s BYTES\n", argv[0]);
    return 2;
  }
  size_t h = (size_t)strtoull(argv[1], NULL, 0);
  /* One block of h bytes: its chunk spans h / 4 MiB slots or more. */
  unsigned char *p = malloc(h);
  CHECK(p != NULL);
  if (!p) return test_summary();
  p[0] = 1;
  p[h - 1] = 2;
  CHECK(malloc_usable_size(p) >= h);
  free(p);
  /* Then blocks of about one slot each across the whole chunk, its last
   * slots included. */
  size_t nb = h / (4u << 20) + 8, n = (4u << 20) - 8192;
  unsigned char **v = calloc(nb, sizeof *v);
  for (size_t i = 0; i < nb; i++) {
    v[i] = malloc(n);
    CHECK(v[i] != NULL);
    if (!v[i]) continue;
    v[i][0] = (unsigned char)i;
    v[i][n - 1] = (unsigned char)i;
    CHECK_MSG(malloc_usable_size(v[i]) >= n && malloc_usable_size(v[i]) < 2 * n,
              "block %zu at %p: usable size %zu", i, (void *)v[i], malloc_usable_size(v[i]));
    unsigned char *q = realloc(v[i], n - 4096); /* shrinks in place, or moves: either way ours */
    CHECK(q != NULL && q[0] == (unsigned char)i);
    if (q) v[i] = q;
  }
  for (size_t i = 0; i < nb; i++) free(v[i]);
  free(v);
  return test_summary();
}
