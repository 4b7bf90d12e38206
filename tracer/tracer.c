/* Trace table and live counters.
 *
 * A trace is an interned array of return addresses with a stable id (1, 2,
 * ...). The table (uthash over the address bytes) maps stacks to traces and
 * is guarded by trace_lock; a two-level id -> trace array lets free() find a
 * block's trace without the lock. Per-trace counters are updated with
 * atomics, so frees never take a lock.
 *
 * Blocks carry their trace id and requested size in the allocator's own
 * metadata (allocator/tag.c). With sample=N only a Poisson sample of the
 * allocations is traced: each thread counts bytes down from an exponentially
 * distributed budget of mean N, and a sampled block of s bytes stands for
 * 1/p blocks with p = 1 - exp(-(s|1)/N) (the estimator tcmalloc and jemalloc
 * use; s|1 lets a zero-byte block be sampled).
 * Counts are kept in fixed point (x 65536) so those estimates stay unbiased.
 *
 * Lock order: the table in tracer/locks.c. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "allocator/internal.h"
#include "tracer/tracer.h"

static int sm_uthash_oom; /* set by uthash when an add ran out of memory */
#include "tracer/uthash_cfg.h"

bool sm_trace_on;
bool sm_sampling;
SM_TLS int64_t sm_sample_left;

#define FP_ONE 65536u
#define ID_CHUNK_BITS 12
#define ID_CHUNK ((size_t)1 << ID_CHUNK_BITS)
#define ID_CHUNKS 4096 /* up to 16M traces */

struct sm_trace {
  UT_hash_handle hh;
  uint32_t id;
  uint16_t nframes;
  uint16_t flags;          /* SM_SNAP_TRUNCATED */
  uint32_t gen;            /* sm_unwind_gen when its modules were last checked */
  uint64_t size;           /* atomic: live bytes (an estimate when sampling) */
  uint64_t count_fp;       /* atomic: live blocks x FP_ONE */
  uint64_t leak[SM_LEAK_CLASSES][2]; /* filled by the leak scanner at exit */
  uint16_t *modules;       /* module index per frame (into the same allocation) */
  uintptr_t frames[];      /* innermost first; the hash key */
};

/* A per-thread direct-mapped cache of recently seen stacks, so that the
 * common case (a stack seen before) needs neither the table lock nor
 * uthash's hash of the whole frame array. */
#define TCACHE_SIZE 512
typedef struct tcache_entry {
  uint64_t hash;
  sm_trace_t *trace;
} tcache_entry_t;

typedef struct tstate {
  int busy;              /* >0: inside the tracer or a suppressed region */
  uint64_t rng;          /* xorshift state for the sampler */
  struct tlocal *local;  /* this thread's caches and pending counter changes */
} tstate_t;

static SM_TLS tstate_t ts;

static sm_lock_t trace_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
static sm_trace_t *table;            /* uthash head */
static sm_trace_t **ids[ID_CHUNKS];  /* id -> trace */
static uint32_t next_id = 1;
static size_t trace_count;

static int64_t traced_current;       /* atomic, bytes */
static int64_t traced_peak;          /* atomic, bytes */

void sm_tracer_enter(void) { ts.busy++; }
void sm_tracer_leave(void) { ts.busy--; }
bool sm_tracer_busy_here(void) { return ts.busy > 0; }

static sm_trace_t *trace_by_id(uint32_t id) {
  sm_trace_t **chunk = __atomic_load_n(&ids[id >> ID_CHUNK_BITS], __ATOMIC_ACQUIRE);
  return chunk ? __atomic_load_n(&chunk[id & (ID_CHUNK - 1)], __ATOMIC_ACQUIRE) : NULL;
}

/* ---------------------------------------------------------------- sampling */

static uint64_t rng_next(void) {
  if (!ts.rng) ts.rng = (sm_os_tid() * 0x9E3779B97F4A7C15ull) ^ sm_os_now_ms() ^ 0x5DEECE66Dull;
  uint64_t x = ts.rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return ts.rng = x;
}

/* Bytes until the next sample: exponential with mean sm_opt.sample. */
static int64_t next_budget(void) {
  double u = ((double)(rng_next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); /* (0, 1) */
  double b = -log(u) * (double)sm_opt.sample;
  return b < 1 ? 1 : (int64_t)b;
}

void sm_tracer_weight(size_t req, uint64_t *size, uint64_t *count_fp) {
  if (!sm_opt.sample) {
    *size = req;
    *count_fp = FP_ONE;
    return;
  }
  double s = (double)(req | 1); /* the block's length in the sampled stream (sm_track_wanted) */
  double p = -expm1(-s / (double)sm_opt.sample); /* 1 - exp(-s/N), exact for small s */
  *size = (uint64_t)llround((double)req / p);
  *count_fp = (uint64_t)llround((double)FP_ONE / p);
}

/* ---------------------------------------------------------------- table */

/* Code may be unloaded and other code loaded at the same addresses: the
 * same return addresses then name other functions. A trace found under an
 * older sm_unwind_gen is re-checked against the module map; if a frame's
 * module changed, it leaves the table (blocks and snapshots still reach it
 * by id) and the stack becomes a new trace. */
static bool modules_same(const sm_trace_t *t, const uint16_t *mods) {
  return memcmp(t->modules, mods, t->nframes * sizeof *mods) == 0;
}

static void resolve_modules(const uintptr_t *ips, unsigned n, uint16_t *mods) {
  /* Another object may sit where a known one was, so a hit in the module
   * table proves nothing until the loader's count of loads was read (once
   * per new trace, cheap next to the rest of adding one). */
  sm_modules_refresh();
  for (unsigned i = 0; i < n; i++) {
    uint32_t m = sm_modules_find(ips[i]);
    mods[i] = m >= 0xffff ? 0xffff : (uint16_t)m;
  }
}

static sm_trace_t *find_locked(const uintptr_t *ips, unsigned n, uint32_t gen, const uint16_t *mods) {
  sm_trace_t *t;
  HASH_FIND(hh, table, ips, n * sizeof(uintptr_t), t);
  if (t && t->gen != gen) {
    if (!mods) return NULL; /* the caller resolves the modules and asks again */
    if (!modules_same(t, mods)) {
      HASH_DELETE(hh, table, t);
      return NULL;
    }
    t->gen = gen;
  }
  return t;
}

/* Adds a new trace; modules[] was resolved by the caller without the lock
 * (resolving may ask the dynamic loader, which may be inside malloc). */
static sm_trace_t *add_locked(const uintptr_t *ips, const uint16_t *modules, unsigned n, bool truncated,
                              uint32_t gen) {
  uint32_t id = next_id;
  if ((id >> ID_CHUNK_BITS) >= ID_CHUNKS) return NULL; /* table full: untraced */
  size_t bytes = sizeof(sm_trace_t) + n * sizeof(uintptr_t) + n * sizeof(uint16_t);
  sm_trace_t *t = sm_meta_alloc(bytes);
  if (!t) return NULL;
  t->id = id;
  t->nframes = (uint16_t)n;
  t->flags = truncated ? SM_SNAP_TRUNCATED : 0;
  t->gen = gen;
  memcpy(t->frames, ips, n * sizeof(uintptr_t));
  t->modules = (uint16_t *)&t->frames[n];
  memcpy(t->modules, modules, n * sizeof(uint16_t));
  sm_trace_t **chunk = ids[id >> ID_CHUNK_BITS];
  if (!chunk) {
    chunk = sm_meta_alloc(ID_CHUNK * sizeof *chunk);
    if (!chunk) {
      sm_meta_free(t, bytes);
      return NULL;
    }
    __atomic_store_n(&ids[id >> ID_CHUNK_BITS], chunk, __ATOMIC_RELEASE);
  }
  sm_uthash_oom = 0;
  HASH_ADD_KEYPTR(hh, table, t->frames, n * sizeof(uintptr_t), t);
  if (sm_uthash_oom) {
    sm_meta_free(t, bytes);
    return NULL;
  }
  __atomic_store_n(&chunk[id & (ID_CHUNK - 1)], t, __ATOMIC_RELEASE);
  next_id++;
  trace_count++;
  return t;
}

/* ---------------------------------------------------------------- counters
 *
 * Atomic adds on shared counters cost as much as the rest of a traced
 * malloc. So each thread accumulates its changes in a delta table of its
 * own, direct-mapped by trace id; an entry is added into the trace's shared
 * counters (atomically) only when another trace needs its slot, and the
 * whole table when the thread exits. Readers (snapshots, the API) add every
 * live thread's table to the shared counters: the sums are exact whenever
 * the threads are not in the middle of an allocation, at exit for instance.
 * Traced bytes work the same way; the peak is checked against the shared
 * total plus the thread's own pending bytes, and every thread publishes its
 * pending bytes once they pass DELTA_FLUSH, so the peak is exact for one
 * thread and within DELTA_FLUSH per other thread otherwise. */
#define DELTA_SLOTS 1024
#define DELTA_FLUSH (256 * 1024)

typedef struct delta {
  uint32_t id;       /* trace id, 0 = empty */
  int64_t size;      /* pending change of the trace's bytes */
  int64_t count_fp;  /* pending change of its blocks x FP_ONE */
} delta_t;

/* A per-thread memo of whole captures, keyed by where the walk starts (the
 * return address and stack pointer at the entry point). A program calling
 * malloc from the same place at the same stack depth (a loop) gets its
 * trace back by comparing the few stack words the earlier walk read, which
 * the processor can load in parallel, instead of walking frame by frame.
 * Equal start registers and equal words mean an equal walk (unwind.c), so
 * the memo is exact. */
#define MEMO_SLOTS 64
typedef struct memo {
  uintptr_t ra, sp, bp;
  sm_trace_t *trace;   /* NULL: empty */
  uint32_t gen;        /* sm_unwind_gen when filled */
  bool bp_used;
  uint8_t n;
  uint8_t next_victim; /* in a set's first way: the way to fill next */
  uint32_t off[SM_WALK_LOG_MAX];
  uintptr_t val[SM_WALK_LOG_MAX];
} memo_t;

/* Everything a tracing thread keeps to itself, allocated from the metadata
 * arena on its first traced allocation (TLS stays small) and returned when
 * the thread exits. */
typedef struct tlocal {
  struct tlocal *next, *prev;  /* registry (delta_lock) */
  int64_t current;             /* pending change of traced bytes */
  int64_t high;                /* highest `current` since the last flush or peak reset */
  delta_t d[DELTA_SLOTS];
  tcache_entry_t cache[TCACHE_SIZE];
  memo_t memo[MEMO_SLOTS];
  sm_unwind_cache_t unwind;
} tlocal_t;

static sm_lock_t delta_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
static tlocal_t *deltas_all;
static pthread_key_t delta_key;
static bool delta_key_ok;

static void flush_entry(delta_t *e) {
  sm_trace_t *t = e->id ? trace_by_id(e->id) : NULL;
  if (t) {
    __atomic_add_fetch(&t->size, (uint64_t)e->size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->count_fp, (uint64_t)e->count_fp, __ATOMIC_RELAXED);
  }
  __atomic_store_n(&e->id, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&e->size, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&e->count_fp, 0, __ATOMIC_RELAXED);
}

static void flush_current(tlocal_t *td) {
  __atomic_add_fetch(&traced_current, td->current, __ATOMIC_RELAXED);
  __atomic_store_n(&td->current, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&td->high, 0, __ATOMIC_RELAXED);
}

static tlocal_t *thread_local_state(void) {
  tlocal_t *td = ts.local;
  if (SM_LIKELY(td != NULL)) return td;
  td = sm_meta_alloc(sizeof *td);
  if (!td) return NULL;
  sm_lock(&delta_lock);
  td->next = deltas_all;
  if (deltas_all) deltas_all->prev = td;
  deltas_all = td;
  sm_unlock(&delta_lock);
  ts.local = td;
  if (delta_key_ok) pthread_setspecific(delta_key, td);
  return td;
}

/* Thread exit: publish everything, leave the registry. */
static void deltas_done(void *arg) {
  tlocal_t *td = arg;
  if (!td) return;
  sm_lock(&delta_lock);
  for (unsigned i = 0; i < DELTA_SLOTS; i++)
    if (td->d[i].id) flush_entry(&td->d[i]);
  flush_current(td);
  if (td->prev) td->prev->next = td->next;
  else deltas_all = td->next;
  if (td->next) td->next->prev = td->prev;
  sm_unlock(&delta_lock);
  if (ts.local == td) ts.local = NULL;
  sm_meta_free(td, sizeof *td);
}

/* change() without a thread table (no memory for one): straight to the
 * shared counters. */
static SM_NOINLINE void change_shared(uint32_t id, int64_t size, int64_t count_fp) {
  sm_trace_t *t = trace_by_id(id);
  if (t) {
    __atomic_add_fetch(&t->size, (uint64_t)size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->count_fp, (uint64_t)count_fp, __ATOMIC_RELAXED);
  }
  __atomic_add_fetch(&traced_current, size, __ATOMIC_RELAXED);
}

/* The rare parts of change(): a new high of the thread's pending bytes
 * (maybe a new peak), and publishing them past DELTA_FLUSH. */
static SM_NOINLINE void change_rare(tlocal_t *td) {
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
  if (td->current > DELTA_FLUSH || td->current < -DELTA_FLUSH) flush_current(td);
}

static SM_NOINLINE void change_evict(delta_t *e, uint32_t id) {
  flush_entry(e);
  __atomic_store_n(&e->id, id, __ATOMIC_RELAXED);
}

/* Adds a change to the thread's table; inline, with everything uncommon out
 * of line: in the common case a table test, a slot test and one test of the
 * new total against the high-water mark and the flush bound. */
SM_INLINE void change(uint32_t id, int64_t size, int64_t count_fp) {
  tlocal_t *td = thread_local_state();
  if (SM_UNLIKELY(!td)) {
    change_shared(id, size, count_fp);
    return;
  }
  delta_t *e = &td->d[id & (DELTA_SLOTS - 1)];
  if (SM_UNLIKELY(e->id != id)) change_evict(e, id);
  /* Only this thread writes its table, but readers load it concurrently
   * (trace_totals_locked): relaxed stores, plain moves on x86. */
  __atomic_store_n(&e->size, e->size + size, __ATOMIC_RELAXED);
  __atomic_store_n(&e->count_fp, e->count_fp + count_fp, __ATOMIC_RELAXED);
  int64_t cur = td->current + size;
  __atomic_store_n(&td->current, cur, __ATOMIC_RELAXED);
  if (SM_UNLIKELY(cur > __atomic_load_n(&td->high, __ATOMIC_RELAXED) || cur < -DELTA_FLUSH)) change_rare(td);
}

static void charge(uint32_t id, uint64_t size, uint64_t count_fp) { change(id, (int64_t)size, (int64_t)count_fp); }
static void discharge(uint32_t id, uint64_t size, uint64_t count_fp) { change(id, -(int64_t)size, -(int64_t)count_fp); }

/* Shared counters of t plus every thread's pending change. delta_lock held. */
static void trace_totals_locked(const sm_trace_t *t, int64_t *size, int64_t *count_fp) {
  int64_t sz = (int64_t)__atomic_load_n(&t->size, __ATOMIC_RELAXED);
  int64_t cf = (int64_t)__atomic_load_n(&t->count_fp, __ATOMIC_RELAXED);
  for (tlocal_t *td = deltas_all; td; td = td->next) {
    const delta_t *e = &td->d[t->id & (DELTA_SLOTS - 1)];
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
  for (tlocal_t *td = deltas_all; td; td = td->next) c += __atomic_load_n(&td->current, __ATOMIC_RELAXED);
  return c;
}

static uint64_t stack_hash(const uintptr_t *ips, unsigned n) {
  uint64_t h = n;
  for (unsigned i = 0; i < n; i++) h = (h ^ ips[i]) * 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 29);
}

/* The memo is 4-way set associative: one call site reached from several
 * callers at the same depth (a wrapper, an inlined helper) keeps one entry
 * per caller instead of evicting them in turn. */
#define MEMO_WAYS 4
static memo_t *memo_set(tlocal_t *tl, const sm_stack_start_t *from) {
  uintptr_t h = (from->ra ^ (from->sp >> 4)) * 0x9E3779B97F4A7C15ull;
  return &tl->memo[(h >> 32) & (MEMO_SLOTS - MEMO_WAYS)];
}

static bool memo_matches(const memo_t *m, const sm_stack_start_t *from, uint32_t gen) {
  if (!m->trace || m->ra != from->ra || m->sp != from->sp || (m->bp_used && m->bp != from->bp) || m->gen != gen)
    return false;
  for (unsigned i = 0; i < m->n; i++)
    if (*(const uintptr_t *)(from->sp + m->off[i]) != m->val[i]) return false;
  return true;
}

/* The trace a memo entry recorded for this start, if the stack still holds
 * what the walk read then; NULL otherwise. */
static sm_trace_t *memo_lookup(tlocal_t *tl, const sm_stack_start_t *from) {
  memo_t *set = memo_set(tl, from);
  uint32_t gen = __atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE);
  for (unsigned w = 0; w < MEMO_WAYS; w++)
    if (memo_matches(&set[w], from, gen)) return set[w].trace;
  return NULL;
}

static void memo_fill(tlocal_t *tl, const sm_stack_start_t *from, const sm_walk_log_t *log, uint32_t gen,
                      sm_trace_t *t) {
  /* Replace the way least recently filled (a small clock per set). */
  memo_t *set = memo_set(tl, from);
  memo_t *m = &set[set[0].next_victim++ % MEMO_WAYS];
  m->ra = from->ra;
  m->sp = from->sp;
  m->bp = from->bp;
  m->bp_used = log->bp_used;
  m->gen = gen;
  m->n = (uint8_t)log->n;
  memcpy(m->off, log->off, log->n * sizeof log->off[0]);
  memcpy(m->val, log->val, log->n * sizeof log->val[0]);
  m->trace = t;
}

/* The trace of the current stack, from the memo, the per-thread cache or
 * the table; NULL when there is no memory for a new one. */
static sm_trace_t *current_trace(tlocal_t *tl, const sm_stack_start_t *from) {
  sm_trace_t *t;
  bool use_memo = tl && from && sm_opt.unwind != SM_UNWIND_LIBUNWIND;
  if (use_memo && (t = memo_lookup(tl, from)) != NULL) {
    if (SM_UNLIKELY(sm_opt.unwind == SM_UNWIND_CHECK))
      sm_unwind_compare(t->frames, t->nframes, t->flags & SM_SNAP_TRUNCATED, (unsigned)sm_opt.depth);
    return t;
  }
  uintptr_t ips[SM_SNAP_MAX_FRAMES];
  bool truncated = false;
  sm_walk_log_t log;
  uint32_t gen = __atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE);
  unsigned n = sm_unwind(tl ? &tl->unwind : NULL, from, ips, (unsigned)sm_opt.depth, &truncated,
                         use_memo ? &log : NULL);
  uint64_t h = stack_hash(ips, n);
  tcache_entry_t *ce = tl ? &tl->cache[h & (TCACHE_SIZE - 1)] : NULL;
  t = NULL;
  if (ce && ce->hash == h && ce->trace && ce->trace->nframes == n && ce->trace->gen == gen &&
      memcmp(ce->trace->frames, ips, n * sizeof *ips) == 0) {
    t = ce->trace;
  } else {
    sm_lock(&trace_lock);
    t = find_locked(ips, n, gen, NULL);
    sm_unlock(&trace_lock);
  }
  if (SM_UNLIKELY(!t)) { /* a new stack, or code was unloaded: resolve its modules, then add it */
    uint16_t mods[SM_SNAP_MAX_FRAMES];
    resolve_modules(ips, n, mods);
    sm_lock(&trace_lock);
    t = find_locked(ips, n, gen, mods); /* another thread may have added it meanwhile */
    if (!t) t = add_locked(ips, mods, n, truncated, gen);
    sm_unlock(&trace_lock);
  }
  if (t && ce) {
    ce->hash = h;
    ce->trace = t;
  }
  /* Only a walk that was ours alone and whose words all fit is reusable;
   * and only if the trace holds exactly that walk's frames (a trace first
   * seen untruncated keeps that flag). */
  if (t && use_memo && !log.full && t->nframes == n && (bool)(t->flags & SM_SNAP_TRUNCATED) == truncated)
    memo_fill(tl, from, &log, gen, t);
  return t;
}

/* Captures the current stack and tags p with its trace. */
static void record(void *p, size_t req, const sm_stack_start_t *from) {
  tlocal_t *tl = thread_local_state();
  sm_trace_t *t = current_trace(tl, from);
  if (!t || !sm_tag_set(p, t->id, req)) return; /* out of metadata: untraced */
  uint64_t size, count_fp;
  sm_tracer_weight(req, &size, &count_fp);
  charge(t->id, size, count_fp);
}

/* sm_track_wanted() took req from the thread's sampling budget and found it
 * spent. A new thread starts at 0 and lands here on its first allocation:
 * draw its first budget before deciding, so thread starts are not
 * over-sampled. Otherwise this block holds a sample point; by
 * memorylessness the distance to the next one is a fresh draw. False: the
 * block is not sampled after all. */
static SM_NOINLINE bool sample_point(size_t req) {
  int64_t r = (int64_t)(req | 1);
  bool fresh = sm_sample_left == -r;
  sm_sample_left = next_budget();
  if (fresh && (sm_sample_left -= r) > 0) return false;
  while (sm_sample_left <= 0) sm_sample_left += next_budget();
  return true;
}

void sm_track_alloc(void *p, size_t req, const sm_stack_start_t *from) {
  if (sm_sampling && !sample_point(req)) return;
  if (!p || ts.busy) return;
  ts.busy++;
  sm_triggers_maybe_restart();
  record(p, req, from);
  ts.busy--;
}

void sm_track_untag(uint32_t id, size_t req) {
  uint64_t size, count_fp;
  sm_tracer_weight(req, &size, &count_fp);
  discharge(id, size, count_fp);
}

void sm_track_realloc(uint32_t old_trace, size_t old_req, void *q, size_t req, const sm_stack_start_t *from) {
  if (old_trace) sm_track_untag(old_trace, old_req);
  if (q && sm_track_wanted(req)) sm_track_alloc(q, req, from);
}

/* ---------------------------------------------------------------- queries */

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
  for (tlocal_t *td = deltas_all; td; td = td->next) __atomic_store_n(&td->high, INT64_MIN, __ATOMIC_RELAXED);
  sm_unlock(&delta_lock);
}

uint64_t *sm_tracer_leak_slots(uint32_t id) {
  sm_trace_t *t = id ? trace_by_id(id) : NULL;
  return t ? &t->leak[0][0] : NULL;
}

sm_trace_copy_t *sm_tracer_copy(size_t *n, size_t *cap) {
  ts.busy++;
  sm_lock(&trace_lock);
  *cap = trace_count;
  sm_trace_copy_t *arr = *cap ? sm_meta_alloc(*cap * sizeof *arr) : NULL;
  size_t k = 0;
  sm_lock(&delta_lock);
  /* By id, not through the hash: traces that left it (unloaded code) may
   * still have live blocks. */
  for (uint32_t id = 1; arr && id < next_id && k < *cap; id++) {
    sm_trace_t *t = trace_by_id(id);
    if (!t) continue;
    int64_t size, cfp;
    trace_totals_locked(t, &size, &cfp);
    uint64_t leaked = t->leak[0][1] | t->leak[1][1] | t->leak[2][1] | t->leak[3][1];
    if (cfp < (int64_t)FP_ONE / 2 && !leaked) continue; /* nothing live */
    sm_trace_copy_t *c = &arr[k++];
    c->id = t->id;
    c->nframes = t->nframes;
    c->flags = t->flags;
    c->size = size > 0 ? (uint64_t)size : 0;
    c->count = ((uint64_t)cfp + FP_ONE / 2) / FP_ONE;
    memcpy(c->leak, t->leak, sizeof c->leak);
    c->frames = t->frames;
    c->modules = t->modules;
  }
  sm_unlock(&delta_lock);
  sm_unlock(&trace_lock);
  ts.busy--;
  if (!arr) *cap = 0;
  *n = k;
  return arr;
}

/* Recording needs no thread, signal or file: it starts with the process's
 * first allocation (another library's constructor, or the loader), so that
 * those blocks have traces too. */
void sm_tracer_start(void) {
  if (!sm_opt.trace || __atomic_load_n(&sm_trace_on, __ATOMIC_ACQUIRE)) return;
  if (pthread_key_create(&delta_key, deltas_done) == 0) delta_key_ok = true;
  sm_tag_counted = sm_opt.sample != 0;
  sm_zero_carved = sm_opt.leaks && sm_opt.at_exit;
  sm_tag_released = sm_track_untag;
  sm_sampling = sm_opt.sample != 0;
  sm_unwind_init();
  sm_modules_refresh();
  __atomic_store_n(&sm_trace_on, true, __ATOMIC_RELEASE);
  __atomic_store_n(&sm_free_hook, sm_free_traced, __ATOMIC_RELEASE); /* free() goes to the traced free */
}

void sm_tracer_init(void) {
  sm_tracer_start();
  if (!sm_trace_on) return;
  /* The helper thread's DTV is the library's, not the program's. */
  ts.busy++;
  sm_triggers_init();
  ts.busy--;
}

/* For the lock table (tracer/locks.c). A fork child keeps the tables of
 * the threads that did not survive the fork: their pending changes are part
 * of the child's heap state. */
sm_lock_t *const sm_trace_lock_ref = &trace_lock;
sm_lock_t *const sm_delta_lock_ref = &delta_lock;
