/* A program that cycles: it fills 128 MiB (blocks of 64 KiB - 1 MiB and of
 * 16 B - 1 KiB, every page written), frees all but a few blocks, and fills
 * again, five times. The first trough gives the memory back (nothing yet
 * says the program will grow again); after the program grew back within a
 * second, snapmalloc takes it for cycling and holds the memory of the
 * next troughs for the fill that follows: fills 3 to 5 together must
 * fault in less than one and a half times what the first one did (counted
 * with getrusage; each faults about as much as the first when nothing is
 * held). The cycles run in a thread that then exits, without any
 * allocation after its last frees: the held memory must go back at its
 * exit (VmRSS under 48 MiB after the join). Under glibc the figures are
 * printed, not checked. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "smtest.h"

#define FILL ((size_t)128 << 20)
#define CYCLES 5
#define MAXB 40000
#define LIMIT_KIB (48L * 1024)

static long faults[CYCLES];
static void *kept[CYCLES][4];

static long minflt(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

static void *cycles(void *arg) {
  (void)arg;
  static void *b[MAXB];
  sm_rng_t r = {4242};
  for (int c = 0; c < CYCLES; c++) {
    size_t n = 0, total = 0;
    long before = minflt();
    while (total < FILL && n < MAXB) {
      size_t sz = n % 2 ? sm_rng_range(&r, 64 << 10, 1 << 20) : sm_rng_range(&r, 16, 1024);
      b[n] = malloc(sz);
      if (!b[n]) return (void *)1;
      memset(b[n], c + 1, sz);
      total += sz;
      n++;
    }
    faults[c] = minflt() - before;
    for (size_t i = 0; i < n; i++) {
      if (i < 4) kept[c][i] = b[i];
      else free(b[i]);
    }
  }
  return NULL;
}

int main(void) {
  sm_check_preload();
  pthread_t t;
  void *ret = NULL;
  CHECK(pthread_create(&t, NULL, cycles, NULL) == 0 && pthread_join(t, &ret) == 0 && ret == NULL);
  long rss = sm_rss_kib();
  for (int c = 0; c < CYCLES; c++) fprintf(stderr, "fill %d: %ld minor faults\n", c + 1, faults[c]);
  fprintf(stderr, "VmRSS after the thread's exit: %ld KiB\n", rss);
  if (sm_preloaded()) {
    /* Together, not each: a thread stalled for the whole grace period in
     * the middle of its frees (a loaded machine) has its memory given back
     * once, and the fill after it faults again; two such stalls in a run
     * are not to be expected. Without the hold they fault about three
     * times the first. */
    long later = faults[2] + faults[3] + faults[4];
    CHECK_MSG(2 * later < 3 * faults[0],
              "fills 3-5 faulted %ld, %ld and %ld pages, the first %ld: the troughs' memory was not held", faults[2],
              faults[3], faults[4], faults[0]);
    CHECK_MSG(rss >= 0 && rss < LIMIT_KIB, "VmRSS %ld KiB after the cycling thread exited (limit %ld)", rss,
              LIMIT_KIB);
  }
  for (int c = 0; c < CYCLES; c++)
    for (int i = 0; i < 4; i++) free(kept[c][i]);
  return test_summary();
}
