/* Exact per-trace sizes and counts for known allocation patterns: plain
 * malloc, calloc, realloc (charged to the realloc call), aligned
 * allocations, large and huge blocks, and threads freeing each other's
 * blocks. Also the API: traced memory, peak and its reset. */
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include "include/snapmalloc.h"
#include "tests/tracer/snaptest.h"

#define NOINLINE __attribute__((noinline))

void *keep_a[1000], *keep_b[500], *keep_c[10], *keep_d[3], *keep_e[300], *keep_f[7], *keep_g[40];
void *keep_t[4][2000];
void *keep_h[40];

NOINLINE void alloc_a(void) { for (int i = 0; i < 1000; i++) keep_a[i] = malloc(48); }
NOINLINE void alloc_b(void) { for (int i = 0; i < 500; i++) keep_b[i] = malloc(1000); }
NOINLINE void alloc_c(void) { for (int i = 0; i < 10; i++) keep_c[i] = malloc(100 * 1024); }
NOINLINE void alloc_d(void) { for (int i = 0; i < 3; i++) keep_d[i] = malloc(3 << 20); }
NOINLINE void alloc_e(void) { for (int i = 0; i < 300; i++) keep_e[i] = calloc(10, 30); }
NOINLINE void alloc_f(void) {
  for (int i = 0; i < 7; i++)
    if (posix_memalign(&keep_f[i], 4096, 5000)) keep_f[i] = NULL;
}
NOINLINE void grow_g(void) {
  for (int i = 0; i < 40; i++) keep_g[i] = realloc(keep_g[i], 70000); /* moved or not: charged here */
}
NOINLINE void alloc_g(void) { for (int i = 0; i < 40; i++) keep_g[i] = malloc(20); }
/* A request that fails (a size near 2^64, a calloc whose product wraps)
 * must not disturb the tracing of what follows on its thread. One kind per
 * thread: two such sizes could cancel out in a broken budget. */
NOINLINE void alloc_h(void **out) { for (int i = 0; i < 10; i++) out[i] = malloc(33); }
NOINLINE void *fail_then_alloc(void *arg) {
  void **out = arg;
  volatile size_t huge = SIZE_MAX / 2 + 2, n = ((size_t)1 << 62) + 1, top = SIZE_MAX - 4095;
  switch ((int)(out - keep_h) / 10) {
  case 0: CHECK(malloc(huge) == NULL); break;
  case 1: CHECK(calloc(n, 2) == NULL); break; /* the product wraps to 2^63 + 2 */
  case 2: CHECK(realloc(NULL, huge) == NULL); break;
  case 3: CHECK(aligned_alloc(64, top) == NULL); break;
  }
  alloc_h(out);
  return NULL;
}
NOINLINE void *alloc_t(void *arg) {
  void **out = arg;
  for (int i = 0; i < 2000; i++) out[i] = malloc(24);
  return NULL;
}
NOINLINE void *free_other(void *arg) { /* frees every other block of another thread */
  void **blocks = arg;
  for (int i = 0; i < 2000; i += 2) free(blocks[i]), blocks[i] = NULL;
  return NULL;
}

int main(int argc, char **argv) {
  if (!snaptest_tracing()) TEST_SKIP("needs LD_PRELOAD=libsnapmalloc.so with trace=1");
  const char *path = argc > 1 ? argv[1] : "exact.snap";
  alloc_a();
  alloc_b();
  for (int i = 0; i < 100; i++) free(keep_b[i]);
  alloc_c();
  alloc_d();
  free(keep_d[1]);
  alloc_e();
  alloc_f();
  alloc_g();
  grow_g();
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, alloc_t, keep_t[i]);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, free_other, keep_t[(i + 1) % 4]);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, fail_then_alloc, &keep_h[10 * i]);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);

  size_t peak = 0;
  size_t cur = snapmalloc_traced_memory(&peak);
  CHECK(cur > 0 && peak >= cur);
  CHECK(snapmalloc_snapshot(path) == 0);
  sm_snap_t s;
  snaptest_read(path, &s);
  uint64_t size, count;
  snaptest_sum(&s, "alloc_a", &size, &count);
  CHECK_MSG(size == 48000 && count == 1000, "alloc_a: %llu bytes in %llu", (unsigned long long)size, (unsigned long long)count);
  snaptest_sum(&s, "alloc_b", &size, &count);
  CHECK_MSG(size == 400000 && count == 400, "alloc_b: %llu bytes in %llu", (unsigned long long)size, (unsigned long long)count);
  snaptest_sum(&s, "alloc_c", &size, &count);
  CHECK_MSG(size == 1024000 && count == 10, "alloc_c: %llu in %llu", (unsigned long long)size, (unsigned long long)count);
  snaptest_sum(&s, "alloc_d", &size, &count);
  CHECK_MSG(size == 2 * (3 << 20) && count == 2, "alloc_d: %llu in %llu", (unsigned long long)size, (unsigned long long)count);
  snaptest_sum(&s, "alloc_e", &size, &count);
  CHECK_MSG(size == 300 * 300 && count == 300, "alloc_e (calloc): %llu in %llu", (unsigned long long)size, (unsigned long long)count);
  snaptest_sum(&s, "alloc_f", &size, &count);
  CHECK_MSG(size == 7 * 5000 && count == 7, "alloc_f (posix_memalign): %llu in %llu", (unsigned long long)size, (unsigned long long)count);
  snaptest_sum(&s, "alloc_g", &size, &count);
  CHECK_MSG(size == 0 && count == 0, "alloc_g still charged after realloc: %llu in %llu", (unsigned long long)size, (unsigned long long)count);
  snaptest_sum(&s, "grow_g", &size, &count);
  CHECK_MSG(size == 40 * 70000 && count == 40, "grow_g (realloc): %llu in %llu", (unsigned long long)size, (unsigned long long)count);
  snaptest_sum(&s, "alloc_h", &size, &count);
  CHECK_MSG(size == 40 * 33 && count == 40, "alloc_h (after failed huge requests): %llu in %llu", (unsigned long long)size,
            (unsigned long long)count);
  snaptest_sum(&s, "alloc_t", &size, &count);
  CHECK_MSG(size == 4 * 1000 * 24 && count == 4000, "alloc_t (threads): %llu in %llu", (unsigned long long)size, (unsigned long long)count);
  /* the per-trace sums are what the global counter says */
  uint64_t total = 0;
  for (size_t i = 0; i < s.ntraces; i++) total += s.traces[i].size;
  CHECK_MSG(total == s.traced_current, "traces sum to %llu, header says %llu", (unsigned long long)total,
            (unsigned long long)s.traced_current);
  CHECK(s.pid == (uint64_t)getpid());
  CHECK(s.depth == 16);
  CHECK(strstr(s.program, "tracer_exact") != NULL);
  sm_snap_free(&s);

  /* peak: falls back to current after a reset, rises with new blocks */
  free(keep_d[0]);
  free(keep_d[2]);
  keep_d[0] = keep_d[1] = keep_d[2] = NULL;
  cur = snapmalloc_traced_memory(&peak);
  CHECK(peak >= cur + 2 * (3 << 20));
  snapmalloc_reset_peak();
  size_t peak2;
  size_t cur2 = snapmalloc_traced_memory(&peak2);
  CHECK(peak2 == cur2);
  void *big = malloc(5 << 20);
  snapmalloc_traced_memory(&peak2);
  CHECK(peak2 >= cur2 + (5 << 20));
  free(big);
  CHECK(snapmalloc_traced_memory(NULL) == cur2);
  return test_summary();
}
