/* Shared module for dlopen.c: allocates from its constructor (kept until its
 * destructor, which checks and frees them), hands out blocks the main program
 * frees, and frees or reallocs blocks the main program allocated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "smtest.h"

#define NCTOR 4
static unsigned char *ctor_blocks[NCTOR];
static const size_t ctor_sizes[NCTOR] = {24, 3000, 200000, 3u << 20};

__attribute__((visibility("default"))) int dlo_ctor_ran;

__attribute__((constructor)) static void dlo_init(void) {
  for (int i = 0; i < NCTOR; i++) {
    ctor_blocks[i] = malloc(ctor_sizes[i]);
    if (ctor_blocks[i]) sm_fill(ctor_blocks[i], ctor_sizes[i], 0xC7000 + (uint64_t)i);
  }
  /* Some allocate-and-free traffic before main sees us. */
  for (int i = 0; i < 100; i++) free(malloc((size_t)i * 100 + 1));
  dlo_ctor_ran = 1;
}

__attribute__((destructor)) static void dlo_fini(void) {
  for (int i = 0; i < NCTOR; i++) {
    if (!ctor_blocks[i] || sm_check(ctor_blocks[i], ctor_sizes[i], 0xC7000 + (uint64_t)i) != (size_t)-1) {
      fprintf(stderr, "dlo_lib: constructor block %d missing or corrupt at unload\n", i);
      abort();
    }
    free(ctor_blocks[i]);
  }
}

/* Number of constructor blocks that are missing or corrupt. */
__attribute__((visibility("default"))) int dlo_ctor_check(void) {
  int bad = 0;
  for (int i = 0; i < NCTOR; i++)
    if (!ctor_blocks[i] || sm_check(ctor_blocks[i], ctor_sizes[i], 0xC7000 + (uint64_t)i) != (size_t)-1) bad++;
  return bad;
}

__attribute__((visibility("default"))) void *dlo_make(size_t n, uint64_t tag) {
  unsigned char *p = malloc(n);
  if (p) sm_fill(p, n, tag);
  return p;
}

/* Checks and frees a block of the main program; 0 when it was intact. */
__attribute__((visibility("default"))) int dlo_check_free(void *p, size_t n, uint64_t tag) {
  int bad = sm_check(p, n, tag) != (size_t)-1;
  free(p);
  return bad;
}

/* Grows or shrinks a block of the main program, keeping its pattern. */
__attribute__((visibility("default"))) void *dlo_resize(void *p, size_t old, size_t n, uint64_t tag) {
  unsigned char *q = realloc(p, n);
  if (!q) return NULL;
  if (sm_check_upto(q, old, tag, n) != (size_t)-1) {
    free(q);
    return NULL;
  }
  sm_fill(q, n, tag);
  return q;
}
