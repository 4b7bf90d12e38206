/* Exact figures across many traces: 2^14 distinct stacks (a recursion that
 * takes one of two call sites at each of 14 levels), each allocating a
 * block of a size of its own, twice over (the second sweep frees each block
 * and allocates it again from the same stack, long after the per-thread
 * caches of stacks forgot it, so the trace table itself must find it).
 * Trace ids then span several of the table's chunks of 4096 (and their
 * counter lines), the table grows several times, and probes pass many
 * neighbours. Each trace must report exactly its own block: live for the
 * even paths, freed for the odd ones; at the peak (all blocks live) every
 * trace held its block; every trace made two allocations. A size counted
 * into the wrong trace's counters changes the sorted lists compared here,
 * and a stack the table failed to find again is a trace too many. */
#include <stdlib.h>
#include <string.h>

#include "tests/tracer/snaptest.h"

#define LEVELS 14
#define PATHS (1u << LEVELS)

static void *blocks[PATHS];

static size_t size_of(unsigned path) { return 8 + (size_t)path; }

/* Two call sites per level, neither a tail call (the result is used), so
 * each path is a stack of its own. */
__attribute__((noinline)) unsigned level(int depth, unsigned path);
__attribute__((noinline)) unsigned level(int depth, unsigned path) {
  if (depth == LEVELS) {
    free(blocks[path]);
    blocks[path] = malloc(size_of(path));
    if (!blocks[path]) abort();
    return 1;
  }
  unsigned bit = 1u << depth;
  if (path & bit) return level(depth + 1, path) * 2 - 1; /* 1 either way, but not a tail call */
  return level(depth + 1, path) * 3 - 2;
}

/* One call site for both sweeps: the frame it makes is part of every
 * stack (main's is beyond the depth of 16). */
__attribute__((noinline)) unsigned sweep(void);
__attribute__((noinline)) unsigned sweep(void) {
  unsigned calls = 0;
  for (unsigned p = 0; p < PATHS; p++) calls += level(0, p);
  return calls;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Sorts n values and compares them with want[0..n) (sorted). */
static int same_sorted(uint64_t *got, size_t n, const uint64_t *want, const char *what) {
  qsort(got, n, sizeof *got, cmp_u64);
  for (size_t i = 0; i < n; i++)
    if (got[i] != want[i]) {
      fprintf(stderr, "manystacks: %s: item %zu is %llu, want %llu\n", what, i, (unsigned long long)got[i],
              (unsigned long long)want[i]);
      return 0;
    }
  return 1;
}

int main(int argc, char **argv) {
  if (!snaptest_tracing()) {
    fprintf(stderr, "manystacks: run it under the preload with trace=1\n");
    return 77;
  }
  const char *path = argc > 1 ? argv[1] : "manystacks.snap";
  unsigned calls = 0;
  for (volatile int i = 0; i < 2; i++) calls += sweep();
  CHECK(calls == 2 * PATHS);
  for (unsigned p = 1; p < PATHS; p += 2) free(blocks[p]);
  CHECK(snapmalloc_snapshot(path) == 0);

  sm_snap_t s;
  snaptest_read(path, &s);
  uint64_t *live = calloc(PATHS, sizeof *live), *peak = calloc(PATHS, sizeof *peak);
  uint64_t *want_live = calloc(PATHS / 2, sizeof *want_live), *want_peak = calloc(PATHS, sizeof *want_peak);
  CHECK(live && peak && want_live && want_peak);
  size_t nlive = 0, npeak = 0, freed = 0;
  for (size_t i = 0; i < s.ntraces; i++) {
    const sm_snap_trace_t *t = &s.traces[i];
    /* only the recursion's traces: the leaf frame is level's call of malloc */
    int ours = t->nframes > 0 && strcmp(snaptest_func(snaptest_addr(&s, t, 0)), "level") == 0;
    if (!ours) continue;
    CHECK_MSG(t->allocations == 2 && t->allocated == 2 * t->peak_size,
              "trace %u: %llu allocations of %llu bytes, %llu at the peak", t->id,
              (unsigned long long)t->allocations, (unsigned long long)t->allocated, (unsigned long long)t->peak_size);
    CHECK_MSG(t->peak_count == 1, "trace %u: %llu blocks at the peak", t->id, (unsigned long long)t->peak_count);
    if (npeak < PATHS) peak[npeak++] = t->peak_size;
    if (t->count == 1) {
      if (nlive < PATHS / 2) live[nlive++] = t->size;
    } else {
      CHECK_MSG(t->count == 0 && t->size == 0, "trace %u: %llu bytes in %llu blocks", t->id,
                (unsigned long long)t->size, (unsigned long long)t->count);
      freed++;
    }
  }
  CHECK_MSG(npeak == PATHS && nlive == PATHS / 2 && freed == PATHS / 2,
            "%zu traces of the recursion (want %u), %zu live (want %u), %zu freed", npeak, PATHS, nlive, PATHS / 2,
            freed);
  for (unsigned p = 0; p < PATHS; p++) want_peak[p] = size_of(p);
  for (unsigned p = 0; p < PATHS / 2; p++) want_live[p] = size_of(2 * p);
  if (npeak == PATHS) CHECK(same_sorted(peak, PATHS, want_peak, "sizes at the peak"));
  if (nlive == PATHS / 2) CHECK(same_sorted(live, PATHS / 2, want_live, "live sizes"));
  sm_snap_free(&s);
  for (unsigned p = 0; p < PATHS; p += 2) free(blocks[p]);
  free(live);
  free(peak);
  free(want_live);
  free(want_peak);
  return test_summary();
}
