/* Sampling (sample=64K): 100,000 blocks of 1000 bytes (about 95 MiB live)
 * from one site. The snapshot is marked as sampled and its estimate of the
 * site's bytes and blocks is within 15% of the truth: with about 1,500
 * samples the estimator's standard deviation is about 2.6%, so 15% is
 * almost six of them.
 *
 * Zero-byte blocks count 1 byte of the sampled stream each (they never
 * take malloc's fast path, which subtracts a request's size from the
 * countdown): 16 million malloc(0)s, each freed at once, hold about 244
 * sample points, so the site's estimated allocations are within 35% of
 * the truth (a standard deviation of 6.4%). Counted as 0 bytes, none would
 * be sampled. */
#include "include/snapmalloc.h"
#include "tests/tracer/snaptest.h"

#define N 100000
static void *blocks[N];

__attribute__((noinline)) void sample_site(void) {
  for (int i = 0; i < N; i++) blocks[i] = malloc(1000);
}

#define ZEROS 16000000
__attribute__((noinline)) void zero_site(void) {
  for (int i = 0; i < ZEROS; i++) {
    void *volatile p = malloc(0);
    CHECK(p != NULL);
    free(p);
  }
}

int main(int argc, char **argv) {
  if (!snaptest_tracing()) TEST_SKIP("needs the preloaded library with trace=1,sample=64K");
  const char *path = argc > 1 ? argv[1] : "sampling.snap";
  sample_site();
  zero_site();
  CHECK(snapmalloc_snapshot(path) == 0);
  sm_snap_t s;
  snaptest_read(path, &s);
  CHECK_MSG(s.flags & SM_SNAP_SAMPLED, "snapshot not marked as sampled");
  CHECK(s.sample_bytes == 65536);
  uint64_t size, count;
  snaptest_sum(&s, "sample_site", &size, &count);
  double truth = 1000.0 * N;
  CHECK_MSG(size > truth * 0.85 && size < truth * 1.15, "estimated %llu bytes, truth %.0f", (unsigned long long)size, truth);
  CHECK_MSG(count > N * 0.85 && count < N * 1.15, "estimated %llu blocks, truth %d", (unsigned long long)count, N);
  CHECK_MSG(s.traced_current > truth * 0.85, "traced current %llu", (unsigned long long)s.traced_current);
  snaptest_site_t z = snaptest_site(&s, "zero_site");
  CHECK_MSG(z.allocations > ZEROS * 0.65 && z.allocations < ZEROS * 1.35,
            "estimated %llu zero-byte allocations, truth %d", (unsigned long long)z.allocations, ZEROS);
  CHECK_MSG(z.allocated == 0 && z.size == 0, "zero-byte blocks estimated at %llu bytes allocated, %llu live",
            (unsigned long long)z.allocated, (unsigned long long)z.size);
  sm_snap_free(&s);
  for (int i = 0; i < N; i++) free(blocks[i]);
  size_t cur = snapmalloc_traced_memory(NULL);
  CHECK_MSG(cur < truth * 0.02, "after freeing everything, %zu bytes still traced", cur);
  return test_summary();
}
