/* malloc_trim(0) returns the free memory between survivors. 4096 blocks of
 * 32 KiB (128 MiB, the pool's medium pages: 16 blocks to a 512 KiB page),
 * every byte written; then all but every 16th block are freed, so that
 * every page keeps one survivor and none can be returned whole. After
 * malloc_trim(0), VmRSS must be below 48 MiB: 8 MiB live, plus the first
 * OS page that each free block keeps (its free-list link), about 15 MiB,
 * plus the program. Without the purge inside pages it stays near 128 MiB.
 * glibc's malloc_trim returns the middle of its free chunks too, so the
 * check holds without the preload as well; either returns 1 (memory went
 * back).
 *
 * Then the freed blocks are allocated again, written with new patterns and
 * checked with the survivors: the free lists still hold after their
 * blocks' memory went back. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtest.h"

#define N 4096
#define SIZE ((size_t)32 << 10)
#define LIMIT_KIB (48L * 1024)

int main(void) {
  sm_check_preload();
  static unsigned char *b[N];
  for (size_t i = 0; i < N; i++) {
    b[i] = malloc(SIZE);
    CHECK(b[i] != NULL);
    sm_fill_range(b[i], 0, SIZE, i);
  }
  long full = sm_rss_kib();
  for (size_t i = 0; i < N; i++)
    if (i % 16) {
      free(b[i]);
      b[i] = NULL;
    }
  long freed = sm_rss_kib();
  CHECK_MSG(malloc_trim(0) == 1, "malloc_trim(0) said it returned nothing");
  long trimmed = sm_rss_kib();
  printf("VmRSS: %ld KiB full, %ld KiB after freeing 15 of 16 blocks, %ld KiB after malloc_trim(0)\n", full, freed,
         trimmed);
  CHECK_MSG(trimmed >= 0 && trimmed < LIMIT_KIB, "VmRSS %ld KiB after malloc_trim(0), limit %ld", trimmed,
            LIMIT_KIB);
  for (size_t i = 0; i < N; i += 16) CHECK(sm_check_range(b[i], 0, SIZE, i) == (size_t)-1);
  /* The free blocks again, each written whole with a pattern of its own. */
  for (size_t i = 0; i < N; i++)
    if (!b[i]) {
      b[i] = malloc(SIZE);
      CHECK(b[i] != NULL);
      sm_fill_range(b[i], 0, SIZE, N + i);
    }
  for (size_t i = 0; i < N; i++) CHECK(sm_check_range(b[i], 0, SIZE, i % 16 ? N + i : i) == (size_t)-1);
  for (size_t i = 0; i < N; i++) free(b[i]);
  return test_summary();
}
