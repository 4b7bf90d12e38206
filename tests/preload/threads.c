/* Cross-thread allocation: blocks allocated in one thread are checked,
 * realloc'd and freed in others, for small, medium, large and huge sizes.
 *  phase 1: 4 workers pass blocks to each other through locked queues;
 *  phase 2: a thread allocates blocks and exits; 4 threads free them after
 *           the owner is gone (the owner's cached memory must be handed on);
 *  phase 3: the main thread keeps allocating in the same size classes while
 *           4 threads free blocks it allocated (remote frees to a live owner);
 *  phase 4: 8 threads swap large blocks through a shared table and free or
 *           realloc what they get, so the large-block arena locks are
 *           contended by more threads than there are cores.
 * Every block carries a pattern checked by whoever frees it. A watchdog
 * aborts with a clear message when no thread makes progress for 20 s
 * (a deadlock), instead of waiting for the test timeout. */
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtest.h"

#define NWORKERS 4
#define OPS_PER_WORKER 120000
#define QCAP 256

struct block {
  unsigned char *p;
  size_t n;
  uint64_t tag;
};

struct queue {
  pthread_mutex_t lock;
  struct block items[QCAP];
  unsigned head, count;
};

static struct queue queues[NWORKERS];
static atomic_long bad_blocks, failed_allocs, total_passed, progress;
static atomic_int all_done;
static const char *volatile phase_name = "start";

static size_t pick_size(sm_rng_t *r) {
  unsigned c = (unsigned)sm_rng_below(r, 100);
  if (c < 60) return sm_rng_logsize(r, 1, 1024);              /* small */
  if (c < 85) return sm_rng_range(r, 1025, 64 << 10);         /* medium */
  if (c < 97) return sm_rng_range(r, (64 << 10) + 1, 1 << 20); /* large */
  return sm_rng_range(r, (1 << 20) + 1, 6 << 20);             /* huge */
}

static int q_push(struct queue *q, struct block b) {
  int ok = 0;
  pthread_mutex_lock(&q->lock);
  if (q->count < QCAP) {
    q->items[(q->head + q->count) % QCAP] = b;
    q->count++;
    ok = 1;
  }
  pthread_mutex_unlock(&q->lock);
  return ok;
}

static int q_pop(struct queue *q, struct block *b) {
  int ok = 0;
  pthread_mutex_lock(&q->lock);
  if (q->count) {
    *b = q->items[q->head];
    q->head = (q->head + 1) % QCAP;
    q->count--;
    ok = 1;
  }
  pthread_mutex_unlock(&q->lock);
  return ok;
}

static void check_block(const struct block *b, const char *where) {
  size_t bad = sm_check(b->p, b->n, b->tag);
  if (bad != (size_t)-1) {
    if (atomic_fetch_add(&bad_blocks, 1) < 10)
      fprintf(stderr, "%s: block %p size %zu tag %llx: byte %zu corrupt\n", where, (void *)b->p,
              b->n, (unsigned long long)b->tag, bad);
  }
}

static int new_block(struct block *b, sm_rng_t *r, uint64_t tag) {
  b->n = pick_size(r);
  b->p = malloc(b->n);
  if (!b->p) {
    atomic_fetch_add(&failed_allocs, 1);
    return 0;
  }
  b->tag = tag;
  sm_fill(b->p, b->n, tag);
  return 1;
}

/* ---- phase 1 ---- */
static void *worker(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  sm_rng_t r = {1000 + id};
  struct block local[256];
  uint64_t counter = 0;
  long passed = 0;
  memset(local, 0, sizeof local);
  for (long op = 0; op < OPS_PER_WORKER; op++) {
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
    unsigned c = (unsigned)sm_rng_below(&r, 10);
    struct block b;
    if (c < 4) {
      if (!new_block(&b, &r, ((uint64_t)id << 48) | counter++)) continue;
      unsigned to = (unsigned)sm_rng_below(&r, NWORKERS);
      if (to == id) to = (to + 1) % NWORKERS;
      if (q_push(&queues[to], b)) { passed++; continue; }
      check_block(&b, "own (queue full)");
      free(b.p);
    } else if (c < 8) {
      if (!q_pop(&queues[id], &b)) continue;
      check_block(&b, "received");
      unsigned what = (unsigned)sm_rng_below(&r, 10);
      if (what < 6) {
        free(b.p);
      } else if (what < 8) {
        /* realloc a block another thread allocated, then pass it on. */
        size_t n = pick_size(&r);
        unsigned char *q = realloc(b.p, n);
        if (!q) { atomic_fetch_add(&failed_allocs, 1); free(b.p); continue; }
        size_t bad = sm_check_upto(q, b.n, b.tag, n);
        if (bad != (size_t)-1 && atomic_fetch_add(&bad_blocks, 1) < 10)
          fprintf(stderr, "cross-thread realloc %zu -> %zu lost byte %zu\n", b.n, n, bad);
        b.p = q;
        b.n = n;
        sm_fill(q, n, b.tag);
        unsigned to = (unsigned)sm_rng_below(&r, NWORKERS);
        if (!q_push(&queues[to], b)) free(b.p);
      } else {
        unsigned k = (unsigned)sm_rng_below(&r, 256);
        if (local[k].p) {
          check_block(&local[k], "kept");
          free(local[k].p);
        }
        local[k] = b;
      }
    } else {
      unsigned k = (unsigned)sm_rng_below(&r, 256);
      if (local[k].p) {
        check_block(&local[k], "kept");
        free(local[k].p);
        local[k].p = NULL;
      }
    }
  }
  for (int k = 0; k < 256; k++)
    if (local[k].p) {
      check_block(&local[k], "kept at end");
      free(local[k].p);
    }
  atomic_fetch_add(&total_passed, passed);
  return NULL;
}

/* ---- phase 2 ---- */
#define ORPHANS 20000
static struct block orphans[ORPHANS];

static void *orphan_maker(void *arg) {
  sm_rng_t r = {(uint64_t)(uintptr_t)arg};
  for (int i = 0; i < ORPHANS; i++) {
    /* Mostly small blocks, so that the exiting thread's pages are full of
     * live blocks owned by a dead thread. */
    if (sm_rng_below(&r, 20) == 0) {
      if (!new_block(&orphans[i], &r, 0x0A00000000000000ull + (uint64_t)i)) orphans[i].p = NULL;
    } else {
      orphans[i].n = sm_rng_logsize(&r, 1, 2048);
      orphans[i].p = malloc(orphans[i].n);
      orphans[i].tag = 0x0B00000000000000ull + (uint64_t)i;
      if (orphans[i].p) sm_fill(orphans[i].p, orphans[i].n, orphans[i].tag);
      else atomic_fetch_add(&failed_allocs, 1);
    }
  }
  /* Free a few of its own so it also leaves partly used pages. */
  for (int i = 0; i < ORPHANS; i += 7) {
    if (orphans[i].p) {
      check_block(&orphans[i], "orphan maker");
      free(orphans[i].p);
      orphans[i].p = NULL;
    }
  }
  return NULL;
}

static void *orphan_freer(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  sm_rng_t r = {77 + id};
  void *mine[512];
  int nmine = 0;
  for (int i = (int)id; i < ORPHANS; i += NWORKERS) {
    if (!orphans[i].p) continue;
    check_block(&orphans[i], "orphan");
    free(orphans[i].p);
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
    /* Interleave our own allocations so that freed memory gets reused. */
    if (nmine < 512) {
      size_t n = sm_rng_logsize(&r, 1, 2048);
      mine[nmine] = malloc(n);
      if (mine[nmine]) memset(mine[nmine], 0xEE, n);
      nmine++;
    }
  }
  for (int i = 0; i < nmine; i++) free(mine[i]);
  return NULL;
}

/* ---- phase 3 ---- */
#define REMOTE 60000
static struct block remote[REMOTE];
static atomic_int remote_ready;

static void *remote_freer(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  for (int i = (int)id; i < REMOTE; i += NWORKERS) {
    while (atomic_load_explicit(&remote_ready, memory_order_acquire) <= i) {
      sched_yield(); /* wait for the main thread to publish block i */
    }
    check_block(&remote[i], "remote");
    free(remote[i].p);
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
  }
  return NULL;
}

/* ---- phase 4 ---- */
#define SWAPPERS 8
#define SWAP_SLOTS 64
#define SWAP_OPS 25000
static _Atomic(struct block *) swap_table[SWAP_SLOTS];

static void *swapper(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  sm_rng_t r = {31 + id};
  for (long op = 0; op < SWAP_OPS; op++) {
    /* The descriptor is malloc'd too: small blocks cross threads as well. */
    struct block *b = malloc(sizeof *b);
    if (!b) { atomic_fetch_add(&failed_allocs, 1); continue; }
    b->n = sm_rng_range(&r, 70000, 270000);
    b->p = malloc(b->n);
    b->tag = ((uint64_t)(id + 16) << 48) | (uint64_t)op;
    if (!b->p) { atomic_fetch_add(&failed_allocs, 1); free(b); continue; }
    sm_fill(b->p, b->n, b->tag);
    struct block *old = atomic_exchange(&swap_table[sm_rng_below(&r, SWAP_SLOTS)], b);
    if (old) {
      check_block(old, "swapped");
      if (sm_rng_below(&r, 4) == 0) {
        size_t n = sm_rng_range(&r, 70000, 370000);
        unsigned char *q = realloc(old->p, n);
        if (!q) {
          atomic_fetch_add(&failed_allocs, 1);
        } else {
          if (sm_check_upto(q, old->n, old->tag, n) != (size_t)-1 &&
              atomic_fetch_add(&bad_blocks, 1) < 10)
            fprintf(stderr, "swapped realloc %zu -> %zu lost bytes\n", old->n, n);
          old->p = q;
        }
      }
      free(old->p);
      free(old);
    }
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
  }
  return NULL;
}

/* Aborts the test when no worker made progress for 20 s. */
static void *watchdog(void *arg) {
  (void)arg;
  long last = -1;
  int still = 0;
  while (!atomic_load(&all_done)) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    long now = atomic_load(&progress);
    if (now != last) {
      last = now;
      still = 0;
    } else if (++still == 200) {
      fprintf(stderr, "threads: no progress for 20 s in phase '%s' (%ld steps done): deadlock\n",
              phase_name, now);
      abort();
    }
  }
  return NULL;
}

int main(void) {
  pthread_t th[SWAPPERS + 1], dog;
  sm_check_preload();
  CHECK(pthread_create(&dog, NULL, watchdog, NULL) == 0);

  fprintf(stderr, "phase 1: queues\n");
  phase_name = "queues";
  for (int i = 0; i < NWORKERS; i++) pthread_mutex_init(&queues[i].lock, NULL);
  for (int i = 0; i < NWORKERS; i++)
    CHECK(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i) == 0);
  for (int i = 0; i < NWORKERS; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < NWORKERS; i++) {
    struct block b;
    while (q_pop(&queues[i], &b)) {
      check_block(&b, "drained");
      free(b.p);
    }
  }
  CHECK_MSG(atomic_load(&total_passed) > NWORKERS * OPS_PER_WORKER / 10,
            "only %ld blocks changed threads", atomic_load(&total_passed));

  fprintf(stderr, "phase 2: blocks of exited threads\n");
  phase_name = "blocks of exited threads";
  for (int round = 0; round < 3; round++) {
    CHECK(pthread_create(&th[0], NULL, orphan_maker, (void *)(uintptr_t)(round + 5)) == 0);
    pthread_join(th[0], NULL);
    for (int i = 0; i < NWORKERS; i++)
      CHECK(pthread_create(&th[i], NULL, orphan_freer, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < NWORKERS; i++) pthread_join(th[i], NULL);
  }

  fprintf(stderr, "phase 3: remote frees to a live owner\n");
  phase_name = "remote frees";
  for (int i = 0; i < NWORKERS; i++)
    CHECK(pthread_create(&th[i], NULL, remote_freer, (void *)(uintptr_t)i) == 0);
  {
    sm_rng_t r = {4242};
    void *scratch[64] = {0};
    for (int i = 0; i < REMOTE; i++) {
      remote[i].n = i % 50 == 0 ? pick_size(&r) : sm_rng_logsize(&r, 8, 512);
      remote[i].p = malloc(remote[i].n);
      remote[i].tag = 0x0C00000000000000ull + (uint64_t)i;
      if (!remote[i].p) {
        atomic_fetch_add(&failed_allocs, 1);
        remote[i].p = malloc(1);
        remote[i].n = 0;
      }
      sm_fill(remote[i].p, remote[i].n, remote[i].tag);
      atomic_store_explicit(&remote_ready, i + 1, memory_order_release);
      /* Local churn in the same classes, reusing what the others freed. */
      unsigned k = (unsigned)sm_rng_below(&r, 64);
      free(scratch[k]);
      size_t sn = sm_rng_logsize(&r, 8, 512);
      scratch[k] = malloc(sn);
      if (scratch[k]) memset(scratch[k], 0x11, sn);
    }
    for (int k = 0; k < 64; k++) free(scratch[k]);
  }
  for (int i = 0; i < NWORKERS; i++) pthread_join(th[i], NULL);

  fprintf(stderr, "phase 4: contended large-block arenas\n");
  phase_name = "contended large blocks";
  for (int i = 0; i < SWAPPERS; i++)
    CHECK(pthread_create(&th[i], NULL, swapper, (void *)(uintptr_t)i) == 0);
  for (int i = 0; i < SWAPPERS; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < SWAP_SLOTS; i++) {
    struct block *b = atomic_exchange(&swap_table[i], NULL);
    if (!b) continue;
    check_block(b, "swap table at end");
    free(b->p);
    free(b);
  }
  atomic_store(&all_done, 1);
  pthread_join(dog, NULL);

  CHECK_MSG(atomic_load(&bad_blocks) == 0, "%ld corrupt blocks", atomic_load(&bad_blocks));
  CHECK_MSG(atomic_load(&failed_allocs) == 0, "%ld failed allocations", atomic_load(&failed_allocs));
  return test_summary();
}
