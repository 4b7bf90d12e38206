/* Heap integrity under a long random workload: many live blocks of
 * log-uniform sizes from 1 B to 4 MiB, each filled with a pattern derived
 * from its id, random frees and reallocs, the pattern of every block checked
 * whenever it is touched and all blocks checked periodically. A block that
 * overlaps another, memory handed out twice, or a realloc that loses bytes
 * shows up as a pattern mismatch. Deterministic (fixed seed). */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtest.h"

#define NSLOTS 2000
#define NOPS 200000
#define MAXSIZE ((size_t)4 << 20)

struct slot {
  unsigned char *p;
  size_t n;
  uint64_t tag;
};

static struct slot slots[NSLOTS];
static uint64_t next_tag = 1;
static long mismatches;

static void verify(struct slot *s, const char *when, long op) {
  size_t bad = sm_check(s->p, s->n, s->tag);
  if (bad != (size_t)-1) {
    if (mismatches < 10)
      fprintf(stderr, "op %ld (%s): block %p size %zu tag %llu: byte %zu is %#x, want %#x\n",
              op, when, (void *)s->p, s->n, (unsigned long long)s->tag, bad, s->p[bad],
              sm_pat_byte(s->tag, bad));
    mismatches++;
  }
}

int main(int argc, char **argv) {
  sm_rng_t r = {argc > 1 ? strtoull(argv[1], NULL, 0) : 20240601};
  long allocs = 0, frees = 0, reallocs = 0, fails = 0, misaligned = 0, small_usable = 0;
  sm_check_preload();
  for (long op = 0; op < NOPS; op++) {
    struct slot *s = &slots[sm_rng_below(&r, NSLOTS)];
    unsigned what = (unsigned)sm_rng_below(&r, 10);
    if (s->p == NULL) {
      /* Empty slot: allocate (malloc, calloc or an aligned variant). */
      size_t n = sm_rng_logsize(&r, 1, MAXSIZE);
      unsigned char *p;
      if (what < 7) {
        p = malloc(n);
      } else if (what < 9) {
        p = calloc(1, n);
        if (p) {
          size_t nz = 0;
          for (size_t i = 0; i < n && i < 65536; i++) nz += p[i] != 0;
          if (n > 65536) nz += p[n - 1] != 0;
          if (nz) {
            mismatches++;
            fprintf(stderr, "op %ld: calloc(1, %zu) not zeroed\n", op, n);
          }
        }
      } else {
        size_t a = (size_t)1 << sm_rng_range(&r, 4, 13);
        p = aligned_alloc(a, n);
        if (p && ((uintptr_t)p & (a - 1))) misaligned++;
      }
      if (!p) { fails++; continue; }
      if (n >= 16 && ((uintptr_t)p & 15)) misaligned++;
      if (malloc_usable_size(p) < n) small_usable++;
      s->p = p;
      s->n = n;
      s->tag = next_tag++;
      sm_fill(p, n, s->tag);
      allocs++;
    } else if (what < 6) {
      verify(s, "free", op);
      free(s->p);
      s->p = NULL;
      frees++;
    } else if (what < 9) {
      /* realloc: sometimes a little, sometimes to a new random size. */
      size_t n = what == 6 ? s->n + sm_rng_below(&r, 64) + 1
                           : sm_rng_logsize(&r, 1, MAXSIZE);
      if (n > MAXSIZE) n = MAXSIZE;
      verify(s, "before realloc", op);
      unsigned char *q = realloc(s->p, n);
      if (!q) { fails++; continue; }
      size_t bad = sm_check_upto(q, s->n, s->tag, n);
      if (bad != (size_t)-1) {
        if (mismatches < 10)
          fprintf(stderr, "op %ld: realloc %zu -> %zu (%p -> %p) lost byte %zu\n", op, s->n, n,
                  (void *)s->p, (void *)q, bad);
        mismatches++;
      }
      if (n >= 16 && ((uintptr_t)q & 15)) misaligned++;
      if (malloc_usable_size(q) < n) small_usable++;
      s->p = q;
      s->n = n;
      sm_fill(q, n, s->tag);
      reallocs++;
    } else {
      verify(s, "touch", op);
    }
    if (op % 25000 == 24999)
      for (int i = 0; i < NSLOTS; i++)
        if (slots[i].p) verify(&slots[i], "sweep", op);
  }
  for (int i = 0; i < NSLOTS; i++) {
    if (!slots[i].p) continue;
    verify(&slots[i], "final", NOPS);
    free(slots[i].p);
  }
  fprintf(stderr, "%ld allocs, %ld frees, %ld reallocs\n", allocs, frees, reallocs);
  CHECK_MSG(mismatches == 0, "%ld pattern mismatches", mismatches);
  CHECK_MSG(fails == 0, "%ld allocations failed", fails);
  CHECK_MSG(misaligned == 0, "%ld misaligned blocks", misaligned);
  CHECK_MSG(small_usable == 0, "%ld blocks with usable size below the request", small_usable);
  CHECK(allocs + frees + reallocs > NOPS / 2);
  return test_summary();
}
