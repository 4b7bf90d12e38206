/* Linked (not dlopen'ed) into early.c: its constructor runs before the
 * program's own, and allocates before main; one block stays live until the
 * program checks it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtest.h"

static unsigned char *kept;
static size_t kept_n = 5000;
static int ctor_ok;

__attribute__((constructor)) static void early_lib_init(void) {
  void *tmp[64];
  for (int i = 0; i < 64; i++) {
    tmp[i] = malloc((size_t)(i + 1) * 96);
    if (tmp[i]) memset(tmp[i], i, (size_t)(i + 1) * 96);
  }
  for (int i = 0; i < 64; i += 2) free(tmp[i]);
  kept = malloc(kept_n);
  if (kept) sm_fill(kept, kept_n, 0xE1);
  for (int i = 1; i < 64; i += 2) free(tmp[i]);
  /* A large and a huge block from a constructor too. */
  void *l = malloc(300000), *h = calloc(1, 3u << 20);
  ctor_ok = kept && l && h && ((unsigned char *)h)[(3u << 20) - 1] == 0;
  free(l);
  free(h);
}

__attribute__((visibility("default"))) int early_lib_check(void) {
  return ctor_ok && sm_check(kept, kept_n, 0xE1) == (size_t)-1;
}

__attribute__((visibility("default"))) void early_lib_release(void) {
  free(kept);
  kept = NULL;
}
