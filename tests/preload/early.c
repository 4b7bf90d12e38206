/* Allocation before main: a constructor with priority 101 (the earliest a
 * program may use) and a linked library's constructor both allocate; main
 * checks the blocks and frees them. Also allocates from a destructor and an
 * atexit handler, after main returned. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtest.h"

int early_lib_check(void);
void early_lib_release(void);

#define NEARLY 200
static unsigned char *early_blocks[NEARLY];
static size_t early_sizes[NEARLY];
static char *early_dup;

__attribute__((constructor(101))) static void very_early(void) {
  for (int i = 0; i < NEARLY; i++) {
    size_t n = i % 50 == 49 ? (size_t)(i + 1) * 20000 : (size_t)(i * 37 % 4000) + 1;
    early_sizes[i] = n;
    early_blocks[i] = malloc(n);
    if (early_blocks[i]) sm_fill(early_blocks[i], n, (uint64_t)i);
  }
  early_dup = strdup("allocated in a constructor");
  early_blocks[0] = realloc(early_blocks[0], early_sizes[0]); /* no-op realloc */
}

static void at_exit_handler(void) {
  /* Allocation after main: must still work (and the process exit 0). */
  void *p = malloc(12345);
  if (!p) _exit(3);
  memset(p, 1, 12345);
  free(p);
}

__attribute__((destructor)) static void late(void) {
  char *p = malloc(100);
  if (!p) _exit(4);
  free(p);
}

int main(void) {
  sm_check_preload();
  int missing = 0, bad = 0;
  for (int i = 0; i < NEARLY; i++) {
    if (!early_blocks[i]) { missing++; continue; }
    if (sm_check(early_blocks[i], early_sizes[i], (uint64_t)i) != (size_t)-1) bad++;
  }
  CHECK_MSG(missing == 0, "%d constructor allocations failed", missing);
  CHECK_MSG(bad == 0, "%d constructor blocks corrupt", bad);
  CHECK(early_dup && strcmp(early_dup, "allocated in a constructor") == 0);
  CHECK_MSG(early_lib_check(), "the linked library's constructor allocations failed or are corrupt");
  /* Allocate more now, in between, then free the early ones. */
  void *more[100];
  for (int i = 0; i < 100; i++) more[i] = malloc((size_t)i * 10 + 1);
  for (int i = 0; i < NEARLY; i++) free(early_blocks[i]);
  free(early_dup);
  early_lib_release();
  for (int i = 0; i < 100; i++) free(more[i]);
  CHECK(atexit(at_exit_handler) == 0);
  return test_summary();
}
