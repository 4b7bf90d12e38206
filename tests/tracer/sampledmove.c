/* Sampling at sample=64K moves each sampled pool block to a large block
 * (allocator/tag.c, sm_tag_relocate) before it is handed out. What the
 * program sees must not change: calloc's blocks are zero, realloc keeps
 * the bytes, memalign and friends keep their alignment, the usable size
 * covers what the call promised (pvalloc: its whole page); and once
 * everything is freed, nothing stays traced
 * (the untraced free takes a moved block's tag).
 *
 * The large blocks the moves take come from memory that held garbage
 * before: mallocs of every size, filled and freed between the callocs, so
 * that a move that did not copy calloc's zeros would show. */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "include/snapmalloc.h"
#include "tests/preload/smtest.h"
#include "tests/tracer/snaptest.h"

#define ROUNDS 20000
#define CHAINS 2000

static sm_rng_t rng = {88172645463325252ull};
static uint64_t next(void) { return sm_rng_next(&rng); }
/* 1 byte to 64 KiB, most of them small, as programs allocate. */
static size_t some_size(void) { return (size_t)1 + next() % ((size_t)1 << (4 + next() % 13)); }

static void *live[ROUNDS];

int main(void) {
  if (!snaptest_tracing()) TEST_SKIP("needs the preloaded library with trace=1,sample=64K");

  /* calloc, between mallocs of garbage. */
  size_t nonzero = 0, short_usable = 0;
  for (int i = 0; i < ROUNDS; i++) {
    size_t n = some_size();
    unsigned char *g = malloc(n);
    CHECK(g != NULL);
    memset(g, 0xA5, n);
    free(g);
    unsigned char *z = calloc(1, n);
    CHECK(z != NULL);
    for (size_t k = 0; k < n; k++) nonzero += z[k] != 0;
    short_usable += malloc_usable_size(z) < n;
    memset(z, 0x5A, n);
    live[i] = z;
    if (next() % 2) { /* half of them die young: their memory is garbage for the next ones */
      free(z);
      live[i] = NULL;
    }
  }
  CHECK_MSG(nonzero == 0, "%zu nonzero bytes in calloc's blocks", nonzero);
  CHECK_MSG(short_usable == 0, "%zu blocks usable for less than their request", short_usable);

  /* realloc chains, growing and shrinking: the bytes stay. */
  size_t lost = 0;
  for (int c = 0; c < CHAINS; c++) {
    size_t n = 1 + next() % 64;
    unsigned char *p = malloc(n);
    for (size_t k = 0; k < n; k++) p[k] = (unsigned char)(c + k);
    for (int step = 0; step < 12; step++) {
      size_t m = step == 11 ? n / 2 + 1 : n * 2 + next() % 100;
      unsigned char *q = realloc(p, m);
      CHECK(q != NULL);
      if (!q) break;
      for (size_t k = 0; k < (m < n ? m : n); k++) lost += q[k] != (unsigned char)(c + k);
      for (size_t k = n; k < m; k++) q[k] = (unsigned char)(c + k);
      p = q;
      n = m;
    }
    free(p);
  }
  CHECK_MSG(lost == 0, "%zu bytes changed across realloc", lost);

  /* memalign and friends. */
  size_t misaligned = 0;
  size_t aligns[] = {16, 32, 64, 128, 256, 1024, 4096};
  for (int i = 0; i < ROUNDS; i++) {
    size_t a = aligns[next() % (sizeof aligns / sizeof aligns[0])], n = some_size();
    void *p = NULL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), owed = n;
    switch (i % 5) {
    case 0: p = aligned_alloc(a, (n + a - 1) / a * a); break;
    case 1: CHECK(posix_memalign(&p, a, n) == 0); break;
    case 2: p = memalign(a, n); break;
    case 3: p = valloc(n), a = page; break;
    default: p = pvalloc(n), a = page, owed = (n + page - 1) / page * page; /* the whole page is the caller's */
    }
    CHECK(p != NULL);
    misaligned += (uintptr_t)p % a != 0;
    bool short_ = malloc_usable_size(p) < owed;
    short_usable += short_;
    memset(p, 0x11, short_ ? n : owed); /* the check reports a short block; writing it would crash */
    free(p);
  }
  CHECK_MSG(misaligned == 0, "%zu blocks misaligned", misaligned);
  CHECK_MSG(short_usable == 0, "%zu aligned blocks usable for less than they promise", short_usable);

  for (int i = 0; i < ROUNDS; i++) free(live[i]);
  size_t cur = snapmalloc_traced_memory(NULL);
  CHECK_MSG(cur == 0, "after freeing everything, %zu bytes still traced", cur);
  return test_summary();
}
