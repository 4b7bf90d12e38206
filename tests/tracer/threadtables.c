/* Threads that start one after another, as a server that starts a thread
 * per task does, each taking the per-thread tables of one that ended
 * (tracer/counters.c keeps those as spares).
 *
 * Counts: 40 threads in turn each keep 64 blocks of 100 B from site `keep`
 * and make 500 temporary pairs from site `pairs`, then end. A table passed
 * on must carry none of its last thread's pending changes: once the threads
 * are gone every figure is exact.
 *
 * Faults (unless the second argument is "nofaults", as under sanitizers):
 * the threads after the first eight may fault at most FAULTS_MAX pages
 * each. A new mapped table, faulted in as the thread fills its deltas,
 * memo and caches, cost about 30 pages per thread before the spares. */
#include <pthread.h>
#include <sys/resource.h>

#include "tests/tracer/snaptest.h"

#define NOINLINE __attribute__((noinline))
#define NT 40
#define WARM 8
#define KEEP 64
#define PAIRS 500
#define FAULTS_MAX 10

static void *kept[NT][KEEP];

NOINLINE void keep(void **out) {
  for (int i = 0; i < KEEP; i++) out[i] = malloc(100);
}
NOINLINE void pairs(void) {
  for (int i = 0; i < PAIRS; i++) {
    void *volatile p = malloc(48);
    free(p);
  }
}

static void *worker(void *arg) {
  keep(kept[(intptr_t)arg]);
  pairs();
  return NULL;
}

static long minflt(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

int main(int argc, char **argv) {
  if (!snaptest_tracing()) TEST_SKIP("needs LD_PRELOAD=libsnapmalloc.so with trace=1");
  const char *path = argc > 1 ? argv[1] : "threadtables.snap";
  bool faults = !(argc > 2 && strcmp(argv[2], "nofaults") == 0);
  long before = 0;
  for (int i = 0; i < NT; i++) {
    if (i == WARM) before = minflt();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, (void *)(intptr_t)i) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  }
  long per = (minflt() - before) / (NT - WARM);
  if (faults) CHECK_MSG(per <= FAULTS_MAX, "%ld page faults per thread after the first %d", per, WARM);
  else printf("%ld page faults per thread (not checked)\n", per);

  CHECK(snapmalloc_snapshot(path) == 0);
  sm_snap_t s = {0};
  snaptest_read(path, &s);
  snaptest_site_t k = snaptest_site(&s, "keep"), p = snaptest_site(&s, "pairs");
  CHECK_EQ_U(k.size, (uint64_t)NT * KEEP * 100);
  CHECK_EQ_U(k.count, NT * KEEP);
  CHECK_EQ_U(k.allocations, NT * KEEP);
  CHECK_EQ_U(p.size, 0);
  CHECK_EQ_U(p.allocations, NT * PAIRS);
  CHECK_EQ_U(p.temporary, NT * PAIRS);
  sm_snap_free(&s);
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < KEEP; j++) free(kept[i][j]);
  return test_summary();
}
