/* At-peak and flow figures per site on a phased program (issue 14):
 *
 *   kept    1000 blocks of 100 bytes, live throughout
 *   pairs   a million malloc/free pairs of 64 bytes: every one temporary
 *   keep50  50 MiB in 1 KiB blocks, then freed: the peak
 *   keep20  20 MiB in 1 KiB blocks, kept: the end
 *   first_of_two, second_of_two  200,000 times: allocate a, allocate b,
 *           free a, free b: a is never temporary (its thread allocated b
 *           first), b always is (frees in between do not matter)
 *
 * The first snapshot must show keep50 at the peak (exactly, one thread)
 * and the flow of every site; then snapmalloc_reset_peak(), 1000 more
 * pairs and a 10 MiB phase (keep10) freed again: the second snapshot's
 * peak is keep20 + keep10 + kept, and the flow counts only what came after
 * the reset. Every trace's at-peak bytes add up to the traced peak.
 *
 * argv[2] "sampled" (run with sample=16K): the same figures are unbiased
 * estimates, checked within a tolerance (see check_near). */
#include <math.h>

#include "tests/tracer/snaptest.h"

#define NOINLINE __attribute__((noinline))
#define KIB 1024u
#define MIB (1024u * 1024u)
#define PAIRS 1000000

static void *kept_blocks[1000];
static void *big[50 * 1024];

NOINLINE void kept(void) { for (int i = 0; i < 1000; i++) kept_blocks[i] = malloc(100); }
NOINLINE void pairs(int n) {
  for (int i = 0; i < n; i++) {
    void *volatile p = malloc(64);
    free(p);
  }
}
/* n blocks of 1 KiB at this site, freed again in allocation order: only
 * the last one is freed before the thread allocates anything else. */
NOINLINE void keep50(int n) { for (int i = 0; i < n; i++) big[i] = malloc(KIB); }
NOINLINE void keep10(int n) { for (int i = 0; i < n; i++) big[i] = malloc(KIB); }
NOINLINE void keep20(void **out, int n) { for (int i = 0; i < n; i++) out[i] = malloc(KIB); }
NOINLINE void *first_of_two(void) { return malloc(64); }
NOINLINE void *second_of_two(void) { return malloc(64); }
static void interleaved(int n) {
  for (int i = 0; i < n; i++) {
    void *volatile a = first_of_two(), *volatile b = second_of_two();
    free(a);
    free(b);
  }
}
static void free_big(int n) { for (int i = 0; i < n; i++) free(big[i]); }

static void check_totals(const sm_snap_t *s) {
  uint64_t live = 0, peak = 0;
  for (size_t i = 0; i < s->ntraces; i++) live += s->traces[i].size, peak += s->traces[i].peak_size;
  CHECK(s->version == SM_SNAP_VERSION && s->has_flow);
  CHECK(s->peak_rss >= s->rss && s->peak_rss > 50u * MIB); /* VmHWM: the 50 MiB phase was resident */
  CHECK_EQ_U(live, s->traced_current);
  CHECK_EQ_U(peak, s->traced_peak); /* one thread: exact, with or without sampling */
}

static bool sampled;

/* Exact, or within tol (a fraction) of want when sampled. The tolerances
 * below are about six standard deviations of the estimate: a site of n
 * blocks of s bytes sampled at rate 1/N has each block kept with chance
 * p = 1 - exp(-max(s, 1)/N), independently (Poisson sampling over bytes), so
 * the estimate's relative deviation is sqrt((1 - p) / (n p)). */
#define check_near(what, got, want, tol)                                                             \
  do {                                                                                               \
    double err_ = fabs((double)(got) - (double)(want)) / (double)(want);                             \
    CHECK_MSG(sampled ? err_ <= (tol) : (uint64_t)(got) == (uint64_t)(want), "%s: %llu, expected %llu%s", \
              what, (unsigned long long)(got), (unsigned long long)(want), sampled ? " within the tolerance" : ""); \
  } while (0)

int main(int argc, char **argv) {
  if (!snaptest_tracing()) TEST_SKIP("needs LD_PRELOAD=libsnapmalloc.so with trace=1");
  const char *path = argc > 1 ? argv[1] : "peak.snap";
  sampled = argc > 2 && strcmp(argv[2], "sampled") == 0;
  char path2[4096];
  snprintf(path2, sizeof path2, "%s.2", path);
  static void *twenty[20 * 1024];

  kept();
  pairs(PAIRS);
  interleaved(200000);
  keep50(50 * 1024);
  free_big(50 * 1024);
  keep20(twenty, 20 * 1024);
  CHECK(snapmalloc_snapshot(path) == 0);

  sm_snap_t s = {0};
  snaptest_read(path, &s);
  check_totals(&s);
  /* 1000 x 100 B: about 6 samples at 16K, too few to estimate; exact only */
  snaptest_site_t k = snaptest_site(&s, "kept");
  if (!sampled) {
    CHECK_EQ_U(k.peak_size, 100000);
    CHECK_EQ_U(k.allocations, 1000);
    CHECK_EQ_U(k.temporary, 0);
  }
  /* pairs, 64 B: p = 0.0040 at 16K, about 4000 samples: 1.6% */
  snaptest_site_t p = snaptest_site(&s, "pairs");
  CHECK_EQ_U(p.size, 0);
  CHECK_EQ_U(p.peak_size, 0);
  check_near("pairs allocations", p.allocations, PAIRS, 0.10);
  check_near("pairs allocated", p.allocated, 64ull * PAIRS, 0.10);
  check_near("pairs temporary", p.temporary, PAIRS, 0.10);
  if (sampled) CHECK_EQ_U(p.temporary, p.allocations); /* every sampled pair is temporary */
  /* 64 B, 200,000: about 790 samples: 3.5%. With sampling, a sampled a
   * is followed by b whether or not b is sampled: still never temporary. */
  snaptest_site_t a = snaptest_site(&s, "first_of_two"), b = snaptest_site(&s, "second_of_two");
  CHECK_EQ_U(a.temporary, 0);
  check_near("first_of_two allocations", a.allocations, 200000, 0.25);
  check_near("second_of_two temporary", b.temporary, 200000, 0.25);
  /* keep50, 1 KiB: p = 0.061, about 3100 samples: 1.7% */
  snaptest_site_t f = snaptest_site(&s, "keep50");
  CHECK_EQ_U(f.size, 0);
  CHECK_EQ_U(f.count, 0);
  check_near("keep50 peak_size", f.peak_size, 50ull * MIB, 0.10);
  check_near("keep50 peak_count", f.peak_count, 50 * 1024, 0.10);
  check_near("keep50 allocations", f.allocations, 50 * 1024, 0.10);
  check_near("keep50 allocated", f.allocated, 50ull * MIB, 0.10);
  if (!sampled) CHECK_EQ_U(f.temporary, 1); /* the last block: frees in between do not count */
  /* keep20: 20 MiB, about 1240 samples: 2.7% */
  snaptest_site_t t = snaptest_site(&s, "keep20");
  check_near("keep20 size", t.size, 20ull * MIB, 0.16);
  CHECK_EQ_U(t.peak_size, 0);
  CHECK_EQ_U(t.temporary, 0);
  CHECK(s.traced_peak >= f.peak_size && s.traced_peak - f.peak_size < 4 * MIB);
  uint64_t end = s.traced_current;
  sm_snap_free(&s);

  /* The peak restarts at the current total; flow counts from here. */
  snapmalloc_reset_peak();
  size_t peak_now = 0, now = snapmalloc_traced_memory(&peak_now);
  CHECK_EQ_U(peak_now, now);
  pairs(1000);
  keep10(10 * 1024);
  free_big(10 * 1024);
  CHECK(snapmalloc_snapshot(path2) == 0);
  snaptest_read(path2, &s);
  check_totals(&s);
  f = snaptest_site(&s, "keep50");
  CHECK_EQ_U(f.peak_size + f.allocations + f.allocated + f.temporary, 0);
  /* keep10: 10 MiB, about 620 samples: 3.9% */
  snaptest_site_t ten = snaptest_site(&s, "keep10");
  check_near("keep10 peak_size", ten.peak_size, 10ull * MIB, 0.25);
  check_near("keep10 allocations", ten.allocations, 10 * 1024, 0.25);
  if (!sampled) CHECK_EQ_U(ten.temporary, 1);
  t = snaptest_site(&s, "keep20");
  CHECK_EQ_U(t.peak_size, t.size); /* live throughout */
  CHECK_EQ_U(t.allocations, 0);
  k = snaptest_site(&s, "kept");
  CHECK_EQ_U(k.allocations, 0);
  CHECK_EQ_U(k.peak_size, k.size);
  p = snaptest_site(&s, "pairs");
  if (!sampled) {
    CHECK_EQ_U(p.allocations, 1000);
    CHECK_EQ_U(p.temporary, 1000);
    CHECK_EQ_U(s.traced_peak, end + 10ull * MIB);
  }
  sm_snap_free(&s);
  return test_summary();
}
