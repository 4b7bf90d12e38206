/* Sampling (sample=64K): 100,000 blocks of 1000 bytes (about 95 MiB live)
 * from one site. The snapshot is marked as sampled and its estimate of the
 * site's bytes and blocks is within 15% of the truth: with about 1,500
 * samples the estimator's standard deviation is about 2.6%, so 15% is
 * almost six of them. */
#include "include/snapmalloc.h"
#include "tests/tracer/snaptest.h"

#define N 100000
static void *blocks[N];

__attribute__((noinline)) void sample_site(void) {
  for (int i = 0; i < N; i++) blocks[i] = malloc(1000);
}

int main(int argc, char **argv) {
  if (!snaptest_tracing()) TEST_SKIP("needs the preloaded library with trace=1,sample=64K");
  const char *path = argc > 1 ? argv[1] : "sampling.snap";
  sample_site();
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
  sm_snap_free(&s);
  for (int i = 0; i < N; i++) free(blocks[i]);
  size_t cur = snapmalloc_traced_memory(NULL);
  CHECK_MSG(cur < truth * 0.02, "after freeing everything, %zu bytes still traced", cur);
  return test_summary();
}
