/* Thread churn (suite 'stress'): 10,000 short-lived threads, at most 8 alive
 * at a time. Each allocates blocks of mixed sizes, frees most of them,
 * leaves some in a shared hand-off table for a later thread to check and
 * free, and takes (frees) blocks that earlier, already exited threads left
 * there. Per-thread caches of exited threads must be handed back and reused:
 * at the end the live data is ~0 and VmRSS must stay bounded.
 *
 * The bound: live data at any time is at most HANDOFF blocks (a few MiB);
 * what remains is what the allocator keeps cached. glibc (one arena per
 * core x 8, reused by new threads) ends near 22 MiB here, peaking near
 * 41 MiB; an allocator that leaks the cache of every exited thread would
 * reach hundreds of MiB (10,000 threads x tens of KiB). 64 MiB separates
 * the two with margin. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtest.h"

#define NTHREADS 10000
#define MAXALIVE 8
#define HANDOFF 256
#define PER_THREAD 120
#define RSS_LIMIT_KIB (64L * 1024)

struct block {
  unsigned char *p;
  size_t n;
  uint64_t tag;
};

static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block handoff[HANDOFF];
static atomic_long bad_blocks, failed_allocs, handed_over, threads_done;

static void check_and_free(struct block *b, const char *what) {
  if (sm_check(b->p, b->n, b->tag) != (size_t)-1 && atomic_fetch_add(&bad_blocks, 1) < 10)
    fprintf(stderr, "%s: block %p size %zu corrupt\n", what, (void *)b->p, b->n);
  free(b->p);
  b->p = NULL;
}

static void *life(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  sm_rng_t r = {(uint64_t)id * 2654435761u + 1};
  struct block mine[PER_THREAD];
  for (int i = 0; i < PER_THREAD; i++) {
    unsigned c = (unsigned)sm_rng_below(&r, 1000);
    size_t n = c < 850   ? sm_rng_logsize(&r, 1, 1024)
               : c < 980 ? sm_rng_range(&r, 1025, 256 << 10)
               : c < 998 ? sm_rng_range(&r, (256 << 10) + 1, 1 << 20)
                         : sm_rng_range(&r, (1 << 20) + 1, 3 << 20);
    mine[i].p = malloc(n);
    mine[i].n = n;
    mine[i].tag = ((uint64_t)id << 20) | (uint64_t)i;
    if (!mine[i].p) {
      atomic_fetch_add(&failed_allocs, 1);
      continue;
    }
    sm_fill(mine[i].p, n, mine[i].tag);
    /* Free some right away, in the middle of allocating. */
    if (i > 4 && sm_rng_below(&r, 3) == 0) {
      unsigned k = (unsigned)sm_rng_below(&r, (uint64_t)i);
      if (mine[k].p) check_and_free(&mine[k], "own");
    }
  }
  /* Swap up to 8 blocks with the hand-off table: the block we take was
   * allocated by an earlier thread, most likely one that has exited. */
  for (int j = 0; j < 8; j++) {
    unsigned k = (unsigned)sm_rng_below(&r, PER_THREAD);
    if (!mine[k].p) continue;
    unsigned slot = (unsigned)sm_rng_below(&r, HANDOFF);
    struct block old;
    pthread_mutex_lock(&handoff_lock);
    old = handoff[slot];
    handoff[slot] = mine[k];
    pthread_mutex_unlock(&handoff_lock);
    mine[k].p = NULL;
    if (old.p) {
      check_and_free(&old, "handed over");
      atomic_fetch_add(&handed_over, 1);
    }
  }
  for (int i = 0; i < PER_THREAD; i++)
    if (mine[i].p) check_and_free(&mine[i], "own at exit");
  atomic_fetch_add(&threads_done, 1);
  return NULL;
}

int main(void) {
  pthread_t ring[MAXALIVE];
  int created = 0, create_failed = 0;
  long rss_peak = 0;
  sm_check_preload();
  long rss0 = sm_rss_kib();
  for (int i = 0; i < NTHREADS; i++) {
    int slot = i % MAXALIVE;
    if (i >= MAXALIVE) pthread_join(ring[slot], NULL);
    int rc = pthread_create(&ring[slot], NULL, life, (void *)(uintptr_t)i);
    if (rc != 0) {
      create_failed++;
      /* Try again later with this slot empty. */
      ring[slot] = pthread_self();
      continue;
    }
    created++;
    if (i % 1000 == 999) {
      long rss = sm_rss_kib();
      if (rss > rss_peak) rss_peak = rss;
    }
  }
  for (int i = 0; i < MAXALIVE; i++)
    if (!pthread_equal(ring[i], pthread_self())) pthread_join(ring[i], NULL);

  long rss_threads_done = sm_rss_kib();
  for (int i = 0; i < HANDOFF; i++)
    if (handoff[i].p) check_and_free(&handoff[i], "hand-off table at end");
  long rss_end = sm_rss_kib();
  fprintf(stderr, "threads %ld, handed over %ld; VmRSS start %ld KiB, peak sample %ld KiB, "
                  "after threads %ld KiB, end %ld KiB\n",
          atomic_load(&threads_done), atomic_load(&handed_over), rss0, rss_peak,
          rss_threads_done, rss_end);
  CHECK_MSG(create_failed == 0, "%d pthread_create failures", create_failed);
  CHECK(atomic_load(&threads_done) == created && created == NTHREADS);
  CHECK_MSG(atomic_load(&handed_over) > NTHREADS, "only %ld blocks changed threads",
            atomic_load(&handed_over));
  CHECK_MSG(atomic_load(&bad_blocks) == 0, "%ld corrupt blocks", atomic_load(&bad_blocks));
  CHECK_MSG(atomic_load(&failed_allocs) == 0, "%ld failed allocations", atomic_load(&failed_allocs));
  CHECK_MSG(rss_end > 0 && rss_end < RSS_LIMIT_KIB, "VmRSS %ld KiB at the end (limit %ld KiB)",
            rss_end, RSS_LIMIT_KIB);
  CHECK_MSG(rss_peak < RSS_LIMIT_KIB + 32 * 1024, "VmRSS peaked at %ld KiB", rss_peak);
  return test_summary();
}
