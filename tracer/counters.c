/* Live counters: bytes and blocks per trace, traced bytes now and at peak.
 *
 * Atomic adds on shared counters cost as much as the rest of a traced
 * malloc. So each thread accumulates its changes in a delta table of its
 * own, direct-mapped by trace id (sm_counters_change, inline in
 * tracer/internal.h); an entry is added into the trace's shared counters
 * (atomically) only when another trace needs its slot, and the whole table
 * when the thread exits. Readers (snapshots, the API) add every live
 * thread's table to the shared counters: the sums are exact whenever the
 * threads are not in the middle of an allocation, at exit for instance.
 * Traced bytes work the same way; the peak is checked against the shared
 * total plus the thread's own pending bytes, and every thread publishes its
 * pending bytes once they pass SM_DELTA_FLUSH, so the peak is exact for one
 * thread and within SM_DELTA_FLUSH per other thread otherwise.
 *
 * Locks: this file owns delta_lock. It guards the registry of threads'
 * tables (deltas_all and the links), so that a reader walks only tables
 * that stay allocated; the tables' entries, the shared counters and the
 * totals are atomics, written without it. In the lock order
 * (tracer/locks.c) delta_lock sits below trace_lock (sm_tracer_copy holds
 * both) and above the allocator's locks; its holder takes no other lock
 * (tables are allocated before it is taken and freed after it is dropped). A
 * fork child keeps the tables of the threads that did not survive the
 * fork: their pending changes are part of the child's heap state. */
#include <pthread.h>

#include "tracer/internal.h"

static sm_lock_t delta_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
static sm_tlocal_t *deltas_all;
static pthread_key_t delta_key;
static bool delta_key_ok;

static int64_t traced_current;       /* atomic, bytes */
static int64_t traced_peak;          /* atomic, bytes */

static void flush_entry(sm_delta_t *e) {
  sm_trace_t *t = e->id ? sm_trace_by_id(e->id) : NULL;
  if (t) {
    __atomic_add_fetch(&t->size, (uint64_t)e->size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->count_fp, (uint64_t)e->count_fp, __ATOMIC_RELAXED);
  }
  __atomic_store_n(&e->id, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&e->size, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&e->count_fp, 0, __ATOMIC_RELAXED);
}

static void flush_current(sm_tlocal_t *td) {
  __atomic_add_fetch(&traced_current, td->current, __ATOMIC_RELAXED);
  __atomic_store_n(&td->current, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&td->high, 0, __ATOMIC_RELAXED);
}

sm_tlocal_t *sm_tlocal_new(void) {
  sm_tlocal_t *td = sm_meta_alloc(sizeof *td);
  if (!td) return NULL;
  sm_lock(&delta_lock);
  td->next = deltas_all;
  if (deltas_all) deltas_all->prev = td;
  deltas_all = td;
  sm_unlock(&delta_lock);
  sm_ts.local = td;
  if (delta_key_ok) pthread_setspecific(delta_key, td);
  return td;
}

/* Thread exit: publish everything, leave the registry. */
static void deltas_done(void *arg) {
  sm_tlocal_t *td = arg;
  if (!td) return;
  sm_lock(&delta_lock);
  for (unsigned i = 0; i < SM_DELTA_SLOTS; i++)
    if (td->d[i].id) flush_entry(&td->d[i]);
  flush_current(td);
  if (td->prev) td->prev->next = td->next;
  else deltas_all = td->next;
  if (td->next) td->next->prev = td->prev;
  sm_unlock(&delta_lock);
  if (sm_ts.local == td) sm_ts.local = NULL;
  sm_meta_free(td, sizeof *td);
}

void sm_counters_start(void) {
  if (pthread_key_create(&delta_key, deltas_done) == 0) delta_key_ok = true;
}

/* A change without a thread table (no memory for one): straight to the
 * shared counters. */
static void change_shared(uint32_t id, int64_t size, int64_t count_fp) {
  sm_trace_t *t = sm_trace_by_id(id);
  if (t) {
    __atomic_add_fetch(&t->size, (uint64_t)size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->count_fp, (uint64_t)count_fp, __ATOMIC_RELAXED);
  }
  __atomic_add_fetch(&traced_current, size, __ATOMIC_RELAXED);
}

SM_NOINLINE void sm_counters_change_slow(uint32_t id, int64_t size, int64_t count_fp) {
  sm_tlocal_t *td = sm_tlocal();
  if (!td) {
    change_shared(id, size, count_fp);
    return;
  }
  sm_delta_t *e = &td->d[id & (SM_DELTA_SLOTS - 1)];
  if (e->id != id) {
    flush_entry(e);
    __atomic_store_n(&e->id, id, __ATOMIC_RELAXED);
  }
  sm_counters_change(id, size, count_fp); /* the slot is id's now */
}

/* The rare parts of a change: a new high of the thread's pending bytes
 * (maybe a new peak), and publishing them past SM_DELTA_FLUSH. */
SM_NOINLINE void sm_counters_change_rare(sm_tlocal_t *td) {
  if (td->current > __atomic_load_n(&td->high, __ATOMIC_RELAXED)) {
    /* Between this thread's flushes the shared total moves only with the
     * other threads, so a new peak needs a new high of this thread's own
     * pending bytes. */
    __atomic_store_n(&td->high, td->current, __ATOMIC_RELAXED);
    int64_t cur = __atomic_load_n(&traced_current, __ATOMIC_RELAXED) + td->current;
    int64_t peak = __atomic_load_n(&traced_peak, __ATOMIC_RELAXED);
    while (cur > peak && !__atomic_compare_exchange_n(&traced_peak, &peak, cur, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
  }
  if (td->current > SM_DELTA_FLUSH || td->current < -SM_DELTA_FLUSH) flush_current(td);
}

void sm_counters_hold(void) { sm_lock(&delta_lock); }
void sm_counters_release(void) { sm_unlock(&delta_lock); }

/* Shared counters of t plus every thread's pending change. delta_lock held. */
void sm_counters_totals(const sm_trace_t *t, int64_t *size, int64_t *count_fp) {
  int64_t sz = (int64_t)__atomic_load_n(&t->size, __ATOMIC_RELAXED);
  int64_t cf = (int64_t)__atomic_load_n(&t->count_fp, __ATOMIC_RELAXED);
  for (sm_tlocal_t *td = deltas_all; td; td = td->next) {
    const sm_delta_t *e = &td->d[t->id & (SM_DELTA_SLOTS - 1)];
    if (__atomic_load_n(&e->id, __ATOMIC_RELAXED) == t->id) {
      sz += __atomic_load_n(&e->size, __ATOMIC_RELAXED);
      cf += __atomic_load_n(&e->count_fp, __ATOMIC_RELAXED);
    }
  }
  *size = sz;
  *count_fp = cf;
}

static int64_t current_locked(void) {
  int64_t c = __atomic_load_n(&traced_current, __ATOMIC_RELAXED);
  for (sm_tlocal_t *td = deltas_all; td; td = td->next) c += __atomic_load_n(&td->current, __ATOMIC_RELAXED);
  return c;
}

size_t sm_tracer_current(size_t *peak) {
  sm_lock(&delta_lock);
  int64_t c = current_locked();
  sm_unlock(&delta_lock);
  if (peak) {
    int64_t pk = __atomic_load_n(&traced_peak, __ATOMIC_RELAXED);
    if (pk < c) pk = c;
    *peak = pk > 0 ? (size_t)pk : 0;
  }
  return c > 0 ? (size_t)c : 0;
}

void sm_tracer_reset_peak(void) {
  sm_lock(&delta_lock);
  int64_t c = current_locked();
  __atomic_store_n(&traced_peak, c, __ATOMIC_RELAXED);
  /* Every thread must look at the peak again on its next growth. */
  for (sm_tlocal_t *td = deltas_all; td; td = td->next) __atomic_store_n(&td->high, INT64_MIN, __ATOMIC_RELAXED);
  sm_unlock(&delta_lock);
}

/* For the lock table (tracer/locks.c). */
sm_lock_t *const sm_delta_lock_ref = &delta_lock;
