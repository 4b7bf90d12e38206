/* Threads meeting in the allocator and the tracer, for ThreadSanitizer: CI
 * runs the unit suite in a -fsanitize=thread build (docs/checks.md), where
 * any unsynchronised access on these paths fails the test. Blocks pass
 * round a ring of threads and are freed by the next one (remote frees while
 * their owner carves, collects and retires pages, and while large blocks
 * split and merge); short-lived threads leave blocks behind for others to
 * free (abandoned segments, reused heaps); every block is traced and freed
 * traced, and a reader polls the tracer's totals and the allocator's
 * statistics all along (the per-thread counters that each thread writes and
 * readers sum). Built normally it checks that the totals come back to 0. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "allocator/internal.h"
#include "tests/testhelper.h"
#include "tracer/tracer.h"

#define RING 3
#define ROUNDS 400
#define BATCH 64
#define BOX (4 * BATCH)

typedef struct mailbox {
  pthread_mutex_t m;
  void *b[BOX];
  size_t n;
} mailbox_t;

static mailbox_t box[RING];
static atomic_int stop_reader;

static size_t pick_size(unsigned *seed, int i) {
  *seed = *seed * 1103515245u + 12345u;
  unsigned r = *seed >> 8;
  if (i % 16 == 0) return 33000 + r % 150000; /* large */
  return 1 + r % 2000;                       /* small and medium pools */
}

static void *traced_malloc(size_t n) {
  void *p = sm_malloc(n);
  if (p && sm_trace_on && sm_track_wanted(n)) sm_track_alloc(p, n, NULL, NULL, SM_MOVE_MALLOC);
  if (p) memset(p, 0xab, n < 64 ? n : 64);
  return p;
}

/* Takes what the previous thread left in our box and frees it. */
static void drain(mailbox_t *mb) {
  void *local[BOX];
  pthread_mutex_lock(&mb->m);
  size_t n = mb->n;
  memcpy(local, mb->b, n * sizeof *local);
  mb->n = 0;
  pthread_mutex_unlock(&mb->m);
  for (size_t i = 0; i < n; i++) sm_free_traced(local[i]);
}

static void *ring_thread(void *arg) {
  int me = (int)(intptr_t)arg;
  mailbox_t *next = &box[(me + 1) % RING];
  unsigned seed = (unsigned)me * 7919u + 1;
  for (int round = 0; round < ROUNDS; round++) {
    void *mine[BATCH];
    for (int i = 0; i < BATCH; i++) mine[i] = traced_malloc(pick_size(&seed, i));
    /* Half are freed here (local frees), half by the next thread. */
    for (int i = 0; i < BATCH; i += 2) sm_free_traced(mine[i]);
    /* A full box (its thread is slow, or done): free them here instead. */
    pthread_mutex_lock(&next->m);
    bool room = next->n + BATCH / 2 <= BOX;
    if (room)
      for (int i = 1; i < BATCH; i += 2) next->b[next->n++] = mine[i];
    pthread_mutex_unlock(&next->m);
    if (!room)
      for (int i = 1; i < BATCH; i += 2) sm_free_traced(mine[i]);
    drain(&box[me]);
  }
  return NULL;
}

/* Lives briefly, leaving its blocks to the main thread. */
static void *short_thread(void *arg) {
  void **out = arg;
  unsigned seed = 99;
  for (int i = 0; i < 500; i++) out[i] = traced_malloc(pick_size(&seed, i));
  return NULL;
}

static void *reader(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_reader)) {
    size_t peak;
    sm_tracer_current(&peak);
    size_t n, cap;
    int64_t now, top;
    sm_trace_copy_t *c = sm_tracer_copy(&n, &cap, &now, &top);
    if (c) sm_meta_free(c, cap * sizeof *c);
    sm_stats_t st;
    sm_stats_get(&st);
    (void)sm_heap_count();
  }
  return NULL;
}

int main(void) {
  sm_init();
  sm_heap_key_init();
  sm_tracer_init();
  CHECK_MSG(sm_trace_on, "tracing is off: run with SNAPMALLOC_OPTIONS=trace=1");
  for (int i = 0; i < RING; i++) pthread_mutex_init(&box[i].m, NULL);

  pthread_t rd, ring[RING];
  pthread_create(&rd, NULL, reader, NULL);
  for (int i = 0; i < RING; i++) pthread_create(&ring[i], NULL, ring_thread, (void *)(intptr_t)i);
  static void *left[8][500];
  for (int k = 0; k < 8; k++) {
    pthread_t t;
    pthread_create(&t, NULL, short_thread, left[k]);
    pthread_join(t, NULL);
    if (k > 0)
      for (int i = 0; i < 500; i++) sm_free_traced(left[k - 1][i]);
  }
  for (int i = 0; i < 500; i++) sm_free_traced(left[7][i]);
  for (int i = 0; i < RING; i++) pthread_join(ring[i], NULL);
  for (int i = 0; i < RING; i++) drain(&box[i]);
  atomic_store(&stop_reader, 1);
  pthread_join(rd, NULL);

  size_t peak;
  size_t cur = sm_tracer_current(&peak);
  CHECK_MSG(cur == 0, "traced bytes still live after every free: %zu", cur);
  CHECK_MSG(peak > 0, "no peak recorded");
  sm_stats_t st;
  sm_stats_get(&st);
  /* (Pool blocks freed into exited threads' pages count until adopted.) */
  CHECK_MSG(st.large_inuse == 0, "large bytes in use at the end: %zu", st.large_inuse);
  return test_summary();
}
