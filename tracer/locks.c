/* The lock table: every lock in libsnapmalloc, outermost first. A thread
 * holding one of them may take only locks further down the table, never one
 * above. fork() and the exit-time leak scan take them all, in this order,
 * and so know that no other thread is inside any of them afterwards.
 *
 *   lock         file                 guards (and what its holder takes)
 *   init_lock    allocator/alloc.c    one-time setup: options, arenas
 *   write_lock   tracer/snapshot.c    one snapshot at a time (every tracer
 *                                     lock below, the metadata arena)
 *   mod_lock     tracer/modules.c     the module table, and every call of
 *                                     dl_iterate_phdr the tracer makes (the
 *                                     loader's lock: fork must not find a
 *                                     thread of ours inside it; metadata)
 *   trace_lock   tracer/table.c       the trace table (delta_lock, metadata)
 *   py_lock      tracer/pyframes.c    the Python frame table (metadata)
 *   delta_lock   tracer/counters.c    the registry of threads' pending
 *                                     counters (takes nothing)
 *   heaps_lock   allocator/heap.c     the heap registry and spare heaps
 *   arena locks  allocator/large.c    each arena's tree and chunks, by index
 *                                     (segment registry, metadata)
 *   seg_lock     allocator/segment.c  segment registry, cache, abandoned lists
 *   meta lock    allocator/meta.c     the metadata arena
 *
 * Nothing else in the library blocks: the pools' cross-thread frees are
 * lock-free lists, the trace table's id index and counters are atomics.
 * The loader's own lock (taken by dl_iterate_phdr and held around dlopen,
 * which may call malloc) ranks below mod_lock and above the allocator's
 * locks; the tracer never takes it while holding trace_lock or below. */
#include <time.h>

#include "allocator/internal.h"
#include "tracer/tracer.h"

extern sm_lock_t *const sm_write_lock_ref; /* snapshot.c */
extern sm_lock_t *const sm_mod_lock_ref;   /* modules.c */
extern sm_lock_t *const sm_trace_lock_ref; /* table.c */
extern sm_lock_t *const sm_py_lock_ref;    /* pyframes.c */
extern sm_lock_t *const sm_delta_lock_ref; /* counters.c */

#define NLOCKS (9 + SM_ARENA_COUNT)

/* Fills locks[] in table order; returns how many. */
static unsigned lock_table(sm_lock_t **locks) {
  unsigned n = 0;
  locks[n++] = sm_init_lock_ref;
  locks[n++] = sm_write_lock_ref;
  locks[n++] = sm_mod_lock_ref;
  locks[n++] = sm_trace_lock_ref;
  locks[n++] = sm_py_lock_ref;
  locks[n++] = sm_delta_lock_ref;
  locks[n++] = sm_heaps_lock_ref;
  for (unsigned i = 0; i < SM_ARENA_COUNT; i++) locks[n++] = &sm_arenas[i].lock;
  locks[n++] = sm_seg_lock_ref;
  locks[n++] = sm_meta_lock_ref;
  return n;
}

SM_RUNTIME void sm_locks_acquire_all(void) {
  sm_lock_t *locks[NLOCKS];
  unsigned n = lock_table(locks);
  for (unsigned i = 0; i < n; i++) sm_lock(locks[i]);
}

bool sm_locks_try_acquire_all(unsigned timeout_ms) {
  sm_lock_t *locks[NLOCKS];
  unsigned n = lock_table(locks);
  uint64_t deadline = sm_os_now_ms() + timeout_ms;
  for (unsigned i = 0; i < n; i++) {
    for (unsigned tries = 0; !sm_trylock(locks[i]); tries++) {
      if (tries < 100) continue; /* a short critical section: spin first */
      if (sm_os_now_ms() >= deadline) {
        while (i-- > 0) sm_unlock(locks[i]);
        return false;
      }
      struct timespec ms = {0, 1000000};
      nanosleep(&ms, NULL);
    }
  }
  return true;
}

SM_RUNTIME void sm_locks_release_all(void) {
  sm_lock_t *locks[NLOCKS];
  unsigned n = lock_table(locks);
  while (n-- > 0) sm_unlock(locks[n]);
}

SM_RUNTIME void sm_locks_reset_all(void) {
  sm_lock_t *locks[NLOCKS];
  unsigned n = lock_table(locks);
  for (unsigned i = 0; i < n; i++) sm_lock_reset(locks[i]);
}
