/* Live counters: bytes and blocks per trace, traced bytes now and at peak,
 * each trace's figures at the peak, and its flow (blocks and bytes
 * allocated, temporary blocks).
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
 * At the peak. A trace's live figures are spread over accounts: its shared
 * counters and one entry per thread table. The peak epoch (sm_peak_epoch)
 * moves on at every new peak and at a peak reset; at that moment every
 * account holds its at-peak value, and it keeps holding it until the
 * account is next changed. So each account remembers the epoch of its last
 * save, and whoever changes an account first checks it: under an older
 * epoch, the value it is about to change is saved as the account's at-peak
 * value and the epoch stamped (record before modify). Nothing is copied at
 * a new peak, and a change costs nothing more than before: an entry's key
 * holds its trace id and epoch together, and the one compare the slot test
 * always made now tests both. An account's at-peak value is its saved one
 * when stamped with the current epoch, else its current value; a trace's is
 * the sum over its accounts. An entry published into its trace carries its
 * at-peak value into the trace's (after the trace's own save); a slot
 * given to another trace starts at zero, stamped. With threads, whatever
 * changes an account while another thread moves the epoch falls on either
 * side of the peak, and a trace's first save after a new peak can race
 * with another thread publishing into the same trace (docs/tracer.md gives
 * the bound).
 *
 * Flow. Allocations, bytes allocated and temporary blocks accumulate in the
 * same entries and are published with them; they only grow. A peak reset
 * records every trace's totals as its base, and readers report the totals
 * minus the base.
 *
 * Locks: this file owns delta_lock. It guards the registry of threads'
 * tables (deltas_all and the links), so that a reader walks only tables
 * that stay allocated, and the traces' flow bases; the tables' entries,
 * the shared counters and the totals are atomics, written without it. In
 * the lock order (tracer/locks.c) delta_lock sits below trace_lock
 * (sm_tracer_copy holds both) and above the allocator's locks; its holder
 * takes no other lock (tables are allocated before it is taken and freed
 * after it is dropped). A fork child keeps the tables of the threads that
 * did not survive the fork: their pending changes are part of the child's
 * heap state. */
#include <pthread.h>
#include <string.h>

#include "tracer/internal.h"

static sm_lock_t delta_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
static sm_tlocal_t *deltas_all;
static pthread_key_t delta_key;
static bool delta_key_ok;

static int64_t traced_current;       /* atomic, bytes */
static int64_t traced_peak;          /* atomic, bytes */
uint64_t sm_peak_epoch = SM_EPOCH_ONE; /* atomic; epoch 0 is nobody's (a thread entry starts unstamped) */

static uint64_t epoch_of(uint64_t key) { return key & ~(uint64_t)SM_TRACE_ID_MASK; }

/* A new peak: traced memory as every account holds it now. */
static void new_epoch(void) { __atomic_add_fetch(&sm_peak_epoch, SM_EPOCH_ONE, __ATOMIC_RELEASE); }

/* Record before modify, for a trace's shared counters: under an older
 * epoch their values are the trace's at-peak part; save them once. The
 * values are read before the stamp: whoever changes the trace after seeing
 * the stamp changes it after they were read. The saved figures are moved
 * by adds (not stores), so that another thread's add into them, right
 * after the stamp, is not overwritten. */
static SM_NOINLINE void trace_save(sm_tcounts_t *t, uint64_t seen, uint64_t ep) {
  uint64_t size = __atomic_load_n(&t->size, __ATOMIC_RELAXED);
  uint64_t count_fp = __atomic_load_n(&t->count_fp, __ATOMIC_RELAXED);
  uint64_t psize = __atomic_load_n(&t->peak_size, __ATOMIC_RELAXED);
  uint64_t pcount = __atomic_load_n(&t->peak_count_fp, __ATOMIC_RELAXED);
  if (__atomic_compare_exchange_n(&t->epoch, &seen, ep, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
    __atomic_add_fetch(&t->peak_size, size - psize, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->peak_count_fp, count_fp - pcount, __ATOMIC_RELAXED);
  }
}

SM_INLINE void trace_touch(sm_tcounts_t *t, uint64_t ep) {
  uint64_t seen = __atomic_load_n(&t->epoch, __ATOMIC_ACQUIRE);
  if (SM_UNLIKELY(seen != ep)) trace_save(t, seen, ep);
}

/* Adds an entry into its trace's shared counters, its at-peak part into
 * the trace's (after the trace's own save). */
static void publish_entry(const sm_delta_t *e) {
  uint64_t key = e->key;
  uint32_t id = (uint32_t)(key & SM_TRACE_ID_MASK);
  sm_tcounts_t *t = id ? sm_trace_counts(id) : NULL;
  if (!t) return;
  uint64_t ep = __atomic_load_n(&sm_peak_epoch, __ATOMIC_ACQUIRE);
  trace_touch(t, ep);
  bool saved = epoch_of(key) == ep;
  __atomic_add_fetch(&t->size, (uint64_t)e->size, __ATOMIC_RELAXED);
  __atomic_add_fetch(&t->count_fp, (uint64_t)e->count_fp, __ATOMIC_RELAXED);
  __atomic_add_fetch(&t->peak_size, (uint64_t)(saved ? e->peak_size : e->size), __ATOMIC_RELAXED);
  __atomic_add_fetch(&t->peak_count_fp, (uint64_t)(saved ? e->peak_count_fp : e->count_fp), __ATOMIC_RELAXED);
  __atomic_add_fetch(&t->allocs_fp, e->allocs_fp, __ATOMIC_RELAXED);
  __atomic_add_fetch(&t->allocated, e->allocated, __ATOMIC_RELAXED);
  if (e->temp_fp) __atomic_add_fetch(&t->temp_fp, e->temp_fp, __ATOMIC_RELAXED);
}

/* Sets every field of an entry (readers load them concurrently). */
static void entry_set(sm_delta_t *e, uint64_t key, int64_t size, int64_t count_fp, uint64_t allocs_fp,
                      uint64_t allocated, uint64_t temp_fp) {
  __atomic_store_n(&e->key, key, __ATOMIC_RELAXED);
  __atomic_store_n(&e->size, size, __ATOMIC_RELAXED);
  __atomic_store_n(&e->count_fp, count_fp, __ATOMIC_RELAXED);
  __atomic_store_n(&e->peak_size, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&e->peak_count_fp, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&e->allocs_fp, allocs_fp, __ATOMIC_RELAXED);
  __atomic_store_n(&e->allocated, allocated, __ATOMIC_RELAXED);
  __atomic_store_n(&e->temp_fp, temp_fp, __ATOMIC_RELAXED);
}

static void flush_current(sm_tlocal_t *td) {
  __atomic_add_fetch(&traced_current, td->current, __ATOMIC_RELAXED);
  __atomic_store_n(&td->current, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&td->high, 0, __ATOMIC_RELAXED);
}

/* Raises the peak to cur if it is higher; a new peak starts a new epoch. */
static void raise_peak(int64_t cur) {
  int64_t peak = __atomic_load_n(&traced_peak, __ATOMIC_RELAXED);
  while (cur > peak) {
    if (__atomic_compare_exchange_n(&traced_peak, &peak, cur, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      new_epoch();
      return;
    }
  }
}

/* Tables of threads that ended, kept for the threads that start next (at
 * most SPARES_MAX; delta_lock). A program that starts a thread per task
 * would otherwise map a table for each, fault in its pages as it fills
 * them, and unmap it at the thread's end, which interrupts every other core
 * to drop the mapping from its TLB: larson, which starts two threads per
 * round, faulted twice the pages with tracing on. */
#define SPARES_MAX 8
static sm_tlocal_t *spares;
static unsigned nspares;

/* A spare as a new thread's table. Its deltas were published and cleared
 * and its byte count flushed when its thread ended (deltas_done). Of its
 * caches, the memo is emptied: a memo entry stands for a walk that stopped
 * at its thread's stack top, which another thread's need not share. The
 * others stay, as each entry is checked against what it stands for before
 * any use, whatever thread filled it: the trace cache compares the frames
 * and the code generation, the unwind rules are the code's, keyed by
 * return address and generation, and the Python frame cache compares the
 * code object's identity and generation or location table. */
static void spare_reset(sm_tlocal_t *td) {
  td->last = NULL;
  td->last_left = 0;
  /* An entry with sp 0 is empty, as in a fresh table (no start has sp 0:
   * capture.c, memo_matches): a store per entry instead of clearing 36 KiB. */
  for (unsigned i = 0; i < SM_MEMO_SLOTS; i++) {
    td->memo[i].sp = 0;
    td->memo[i].trace = NULL;
  }
}

sm_tlocal_t *sm_tlocal_new(void) {
  sm_lock(&delta_lock);
  sm_tlocal_t *td = spares;
  if (td) {
    spares = td->next;
    nspares--;
  }
  sm_unlock(&delta_lock);
  if (td) spare_reset(td);
  else if (!(td = sm_meta_alloc(sizeof *td))) return NULL;
  sm_lock(&delta_lock);
  td->prev = NULL;
  td->next = deltas_all;
  if (deltas_all) deltas_all->prev = td;
  deltas_all = td;
  sm_unlock(&delta_lock);
  sm_ts.local = td;
  if (delta_key_ok) pthread_setspecific(delta_key, td);
  return td;
}

/* Thread exit: publish everything, leave the registry, and stay as a
 * spare while there is room. */
static void deltas_done(void *arg) {
  sm_tlocal_t *td = arg;
  if (!td) return;
  /* First: once td is a spare, another thread may take it, and nothing of
   * this one (a signal handler that allocates) may reach it after that. */
  if (sm_ts.local == td) sm_ts.local = NULL;
  sm_lock(&delta_lock);
  for (unsigned i = 0; i < SM_DELTA_SLOTS; i++) {
    if (!td->d[i].key) continue;
    publish_entry(&td->d[i]);
    entry_set(&td->d[i], 0, 0, 0, 0, 0, 0);
  }
  flush_current(td);
  if (td->prev) td->prev->next = td->next;
  else deltas_all = td->next;
  if (td->next) td->next->prev = td->prev;
  bool kept = nspares < SPARES_MAX;
  if (kept) {
    td->next = spares;
    spares = td;
    nspares++;
  }
  sm_unlock(&delta_lock);
  if (!kept) sm_meta_free(td, sizeof *td);
}

void sm_counters_start(void) {
  if (pthread_key_create(&delta_key, deltas_done) == 0) delta_key_ok = true;
}

/* A change without a thread table (no memory for one): straight to the
 * shared counters. */
static void change_shared(uint32_t id, int64_t size, int64_t count_fp, bool alloc, int64_t temp_fp) {
  sm_tcounts_t *t = sm_trace_counts(id);
  if (t) {
    trace_touch(t, __atomic_load_n(&sm_peak_epoch, __ATOMIC_ACQUIRE));
    __atomic_add_fetch(&t->size, (uint64_t)size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->count_fp, (uint64_t)count_fp, __ATOMIC_RELAXED);
    if (alloc) {
      __atomic_add_fetch(&t->allocs_fp, (uint64_t)count_fp, __ATOMIC_RELAXED);
      __atomic_add_fetch(&t->allocated, (uint64_t)size, __ATOMIC_RELAXED);
    }
    __atomic_add_fetch(&t->temp_fp, (uint64_t)temp_fp, __ATOMIC_RELAXED);
  }
  raise_peak(__atomic_add_fetch(&traced_current, size, __ATOMIC_RELAXED));
}

SM_NOINLINE void sm_counters_change_slow(uint32_t id, int64_t size, int64_t count_fp, bool alloc, int64_t temp_fp) {
  sm_tlocal_t *td = sm_tlocal();
  if (!td) {
    change_shared(id, size, count_fp, alloc, temp_fp);
    return;
  }
  sm_delta_t *e = &td->d[id & (SM_DELTA_SLOTS - 1)];
  uint64_t ep = __atomic_load_n(&sm_peak_epoch, __ATOMIC_ACQUIRE);
  if ((e->key & SM_TRACE_ID_MASK) == id) {
    if (e->key != (ep | id)) { /* saved under an older epoch: it holds its at-peak value */
      __atomic_store_n(&e->peak_size, e->size, __ATOMIC_RELAXED);
      __atomic_store_n(&e->peak_count_fp, e->count_fp, __ATOMIC_RELAXED);
      __atomic_store_n(&e->key, ep | id, __ATOMIC_RELEASE);
    }
    sm_delta_add(e, size, count_fp, alloc, temp_fp);
  } else { /* another trace's: publish it; id's entry held nothing at the peak */
    publish_entry(e);
    entry_set(e, ep | id, size, count_fp, alloc ? (uint64_t)count_fp : 0, alloc ? (uint64_t)size : 0,
              (uint64_t)temp_fp);
  }
  if (sm_current_add(td, size, alloc)) sm_counters_change_rare(td);
}

void sm_counters_prefetch_victim(sm_tlocal_t *td) {
  uint32_t next = sm_trace_next_id();
  uint64_t key = __atomic_load_n(&td->d[next & (SM_DELTA_SLOTS - 1)].key, __ATOMIC_RELAXED);
  uint32_t id = (uint32_t)(key & SM_TRACE_ID_MASK);
  if (!id) return;
  const sm_tcounts_t *t = sm_trace_counts(id);
  if (t) __builtin_prefetch(t, 1);
}

/* The rare parts of a change: a new high of the thread's pending bytes
 * (maybe a new peak), and publishing them past SM_DELTA_FLUSH. */
SM_NOINLINE void sm_counters_change_rare(sm_tlocal_t *td) {
  if (td->current > __atomic_load_n(&td->high, __ATOMIC_RELAXED)) {
    /* Between this thread's flushes the shared total moves only with the
     * other threads, so a new peak needs a new high of this thread's own
     * pending bytes. */
    __atomic_store_n(&td->high, td->current, __ATOMIC_RELAXED);
    raise_peak(__atomic_load_n(&traced_current, __ATOMIC_RELAXED) + td->current);
  }
  if (td->current > SM_DELTA_FLUSH || td->current < -SM_DELTA_FLUSH) flush_current(td);
}

void sm_counters_hold(void) { sm_lock(&delta_lock); }
void sm_counters_release(void) { sm_unlock(&delta_lock); }

/* Shared counters of t plus every thread's pending change, the at-peak
 * figures of every account under the current epoch, the flow minus its
 * base. delta_lock held. */
void sm_counters_totals(const sm_trace_t *tr, sm_counts_t *c) {
  uint64_t ep = __atomic_load_n(&sm_peak_epoch, __ATOMIC_ACQUIRE);
  const sm_tcounts_t *t = sm_trace_counts(tr->id);
  c->size = (int64_t)__atomic_load_n(&t->size, __ATOMIC_RELAXED);
  c->count_fp = (int64_t)__atomic_load_n(&t->count_fp, __ATOMIC_RELAXED);
  if (__atomic_load_n(&t->epoch, __ATOMIC_ACQUIRE) == ep) {
    c->peak_size = (int64_t)__atomic_load_n(&t->peak_size, __ATOMIC_RELAXED);
    c->peak_count_fp = (int64_t)__atomic_load_n(&t->peak_count_fp, __ATOMIC_RELAXED);
  } else {
    c->peak_size = c->size;
    c->peak_count_fp = c->count_fp;
  }
  uint64_t flow[3] = {__atomic_load_n(&t->allocs_fp, __ATOMIC_RELAXED), __atomic_load_n(&t->allocated, __ATOMIC_RELAXED),
                      __atomic_load_n(&t->temp_fp, __ATOMIC_RELAXED)};
  for (sm_tlocal_t *td = deltas_all; td; td = td->next) {
    const sm_delta_t *e = &td->d[tr->id & (SM_DELTA_SLOTS - 1)];
    uint64_t key = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
    if ((key & SM_TRACE_ID_MASK) != tr->id) continue;
    int64_t size = __atomic_load_n(&e->size, __ATOMIC_RELAXED);
    int64_t count_fp = __atomic_load_n(&e->count_fp, __ATOMIC_RELAXED);
    c->size += size;
    c->count_fp += count_fp;
    bool saved = epoch_of(key) == ep;
    c->peak_size += saved ? __atomic_load_n(&e->peak_size, __ATOMIC_RELAXED) : size;
    c->peak_count_fp += saved ? __atomic_load_n(&e->peak_count_fp, __ATOMIC_RELAXED) : count_fp;
    flow[0] += __atomic_load_n(&e->allocs_fp, __ATOMIC_RELAXED);
    flow[1] += __atomic_load_n(&e->allocated, __ATOMIC_RELAXED);
    flow[2] += __atomic_load_n(&e->temp_fp, __ATOMIC_RELAXED);
  }
  c->allocs_fp = flow[0] > tr->base[0] ? flow[0] - tr->base[0] : 0;
  c->allocated = flow[1] > tr->base[1] ? flow[1] - tr->base[1] : 0;
  c->temp_fp = flow[2] > tr->base[2] ? flow[2] - tr->base[2] : 0;
}

static int64_t current_locked(void) {
  int64_t c = __atomic_load_n(&traced_current, __ATOMIC_RELAXED);
  for (sm_tlocal_t *td = deltas_all; td; td = td->next) c += __atomic_load_n(&td->current, __ATOMIC_RELAXED);
  return c;
}

void sm_counters_now(int64_t *current, int64_t *peak) {
  int64_t c = current_locked();
  raise_peak(c);
  *current = c;
  *peak = __atomic_load_n(&traced_peak, __ATOMIC_RELAXED);
}

size_t sm_tracer_current(size_t *peak) {
  int64_t c, pk;
  sm_lock(&delta_lock);
  sm_counters_now(&c, &pk);
  sm_unlock(&delta_lock);
  if (peak) *peak = pk > 0 ? (size_t)pk : 0;
  return c > 0 ? (size_t)c : 0;
}

void sm_counters_restart_peak(void) {
  __atomic_store_n(&traced_peak, current_locked(), __ATOMIC_RELAXED);
  new_epoch();
  /* Every thread must look at the peak again on its next growth. */
  for (sm_tlocal_t *td = deltas_all; td; td = td->next) __atomic_store_n(&td->high, INT64_MIN, __ATOMIC_RELAXED);
}

void sm_counters_rebase(sm_trace_t *t) {
  sm_counts_t c;
  memset(t->base, 0, sizeof t->base);
  sm_counters_totals(t, &c);
  t->base[0] = c.allocs_fp;
  t->base[1] = c.allocated;
  t->base[2] = c.temp_fp;
}

void sm_tracer_reset_peak(void) { sm_traces_walk(sm_counters_restart_peak, sm_counters_rebase); }

/* For the lock table (tracer/locks.c). */
sm_lock_t *const sm_delta_lock_ref = &delta_lock;
