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
 * 1/p blocks with p = 1 - exp(-s/N) (the estimator tcmalloc and jemalloc use).
 * Counts are kept in fixed point (x 65536) so those estimates stay unbiased.
 *
 * Lock order: trace_lock comes before every allocator lock (see heap.c). */
#include <math.h>
#include <string.h>

#include "allocator/internal.h"
#include "tracer/tracer.h"

static int sm_uthash_oom; /* set by uthash when an add ran out of memory */
#include "tracer/uthash_cfg.h"

bool sm_trace_on;

#define FP_ONE 65536u
#define ID_CHUNK_BITS 12
#define ID_CHUNK ((size_t)1 << ID_CHUNK_BITS)
#define ID_CHUNKS 4096 /* up to 16M traces */

struct sm_trace {
  UT_hash_handle hh;
  uint32_t id;
  uint16_t nframes;
  uint16_t flags;          /* SM_SNAP_TRUNCATED */
  uint64_t size;           /* atomic: live bytes (an estimate when sampling) */
  uint64_t count_fp;       /* atomic: live blocks x FP_ONE */
  uint64_t leak[SM_LEAK_CLASSES][2]; /* filled by the leak scanner at exit */
  uint16_t *modules;       /* module index per frame (into the same allocation) */
  uintptr_t frames[];      /* innermost first; the hash key */
};

typedef struct tstate {
  int busy;          /* >0: inside the tracer or a suppressed region */
  int64_t countdown; /* sampling: bytes left before the next sample */
  uint64_t rng;      /* xorshift state for the sampler */
} tstate_t;

static SM_TLS tstate_t ts;

static sm_lock_t trace_lock = SM_LOCK_INIT;
static sm_trace_t *table;            /* uthash head */
static sm_trace_t **ids[ID_CHUNKS];  /* id -> trace */
static uint32_t next_id = 1;
static size_t trace_count;

static int64_t traced_current;       /* atomic, bytes */
static int64_t traced_peak;          /* atomic, bytes */

void sm_tracer_enter(void) { ts.busy++; }
void sm_tracer_leave(void) { ts.busy--; }

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
  double s = req ? (double)req : 1.0;
  double p = -expm1(-s / (double)sm_opt.sample); /* 1 - exp(-s/N), exact for small s */
  *size = (uint64_t)llround((double)req / p);
  *count_fp = (uint64_t)llround((double)FP_ONE / p);
}

/* ---------------------------------------------------------------- table */

static sm_trace_t *find_locked(const uintptr_t *ips, unsigned n) {
  sm_trace_t *t;
  HASH_FIND(hh, table, ips, n * sizeof(uintptr_t), t);
  return t;
}

/* Adds a new trace; modules[] was resolved by the caller without the lock
 * (resolving may ask the dynamic loader, which may be inside malloc). */
static sm_trace_t *add_locked(const uintptr_t *ips, const uint16_t *modules, unsigned n, bool truncated) {
  uint32_t id = next_id;
  if ((id >> ID_CHUNK_BITS) >= ID_CHUNKS) return NULL; /* table full: untraced */
  size_t bytes = sizeof(sm_trace_t) + n * sizeof(uintptr_t) + n * sizeof(uint16_t);
  sm_trace_t *t = sm_meta_alloc(bytes);
  if (!t) return NULL;
  t->id = id;
  t->nframes = (uint16_t)n;
  t->flags = truncated ? SM_SNAP_TRUNCATED : 0;
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

static void charge(sm_trace_t *t, uint64_t size, uint64_t count_fp) {
  __atomic_add_fetch(&t->size, size, __ATOMIC_RELAXED);
  __atomic_add_fetch(&t->count_fp, count_fp, __ATOMIC_RELAXED);
  int64_t cur = __atomic_add_fetch(&traced_current, (int64_t)size, __ATOMIC_RELAXED);
  int64_t peak = __atomic_load_n(&traced_peak, __ATOMIC_RELAXED);
  while (cur > peak && !__atomic_compare_exchange_n(&traced_peak, &peak, cur, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

static void discharge(sm_trace_t *t, uint64_t size, uint64_t count_fp) {
  __atomic_sub_fetch(&t->size, size, __ATOMIC_RELAXED);
  __atomic_sub_fetch(&t->count_fp, count_fp, __ATOMIC_RELAXED);
  __atomic_sub_fetch(&traced_current, (int64_t)size, __ATOMIC_RELAXED);
}

/* Captures the current stack and tags p with its trace. */
static void record(void *p, size_t req) {
  uintptr_t ips[SM_SNAP_MAX_FRAMES];
  bool truncated = false;
  unsigned n = sm_unwind(ips, (unsigned)sm_opt.depth, &truncated);
  sm_lock(&trace_lock);
  sm_trace_t *t = find_locked(ips, n);
  sm_unlock(&trace_lock);
  if (SM_UNLIKELY(!t)) { /* a new stack: resolve its modules, then add it */
    uint16_t mods[SM_SNAP_MAX_FRAMES];
    for (unsigned i = 0; i < n; i++) {
      uint32_t m = sm_modules_find(ips[i]);
      mods[i] = m >= 0xffff ? 0xffff : (uint16_t)m;
    }
    sm_lock(&trace_lock);
    t = find_locked(ips, n); /* another thread may have added it meanwhile */
    if (!t) t = add_locked(ips, mods, n, truncated);
    sm_unlock(&trace_lock);
  }
  if (!t || !sm_tag_set(p, t->id, req)) return; /* out of metadata: untraced */
  uint64_t size, count_fp;
  sm_tracer_weight(req, &size, &count_fp);
  charge(t, size, count_fp);
}

void sm_track_alloc(void *p, size_t req) {
  if (!p || ts.busy) return;
  if (sm_opt.sample) {
    ts.countdown -= (int64_t)(req ? req : 1);
    if (SM_LIKELY(ts.countdown > 0)) return;
    /* A new thread starts at 0 and lands here once: draw its first budget
     * before deciding, so thread starts are not over-sampled. */
    bool fresh = ts.countdown == -(int64_t)(req ? req : 1);
    ts.countdown = next_budget();
    if (fresh && (ts.countdown -= (int64_t)(req ? req : 1)) > 0) return;
    while (ts.countdown <= 0) ts.countdown += next_budget();
  }
  ts.busy++;
  sm_triggers_maybe_restart();
  record(p, req);
  ts.busy--;
}

void sm_track_free(void *p) {
  if (!p) return;
  size_t req = 0;
  uint32_t id = sm_tag_take(p, &req);
  if (!id) return;
  sm_trace_t *t = trace_by_id(id);
  if (!t) return;
  uint64_t size, count_fp;
  sm_tracer_weight(req, &size, &count_fp);
  discharge(t, size, count_fp);
}

void sm_track_realloc(uint32_t old_trace, size_t old_req, void *q, size_t req) {
  if (old_trace) {
    sm_trace_t *t = trace_by_id(old_trace);
    uint64_t size, count_fp;
    sm_tracer_weight(old_req, &size, &count_fp);
    if (t) discharge(t, size, count_fp);
  }
  sm_track_alloc(q, req);
}

/* ---------------------------------------------------------------- queries */

size_t sm_tracer_current(size_t *peak) {
  int64_t c = __atomic_load_n(&traced_current, __ATOMIC_RELAXED);
  if (peak) {
    int64_t pk = __atomic_load_n(&traced_peak, __ATOMIC_RELAXED);
    *peak = pk > 0 ? (size_t)pk : 0;
  }
  return c > 0 ? (size_t)c : 0;
}

void sm_tracer_reset_peak(void) {
  __atomic_store_n(&traced_peak, __atomic_load_n(&traced_current, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
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
  for (sm_trace_t *t = arr ? table : NULL; t && k < *cap; t = t->hh.next) {
    uint64_t cfp = __atomic_load_n(&t->count_fp, __ATOMIC_RELAXED);
    uint64_t leaked = t->leak[0][1] | t->leak[1][1] | t->leak[2][1] | t->leak[3][1];
    if (cfp < FP_ONE / 2 && !leaked) continue; /* nothing live */
    sm_trace_copy_t *c = &arr[k++];
    c->id = t->id;
    c->nframes = t->nframes;
    c->flags = t->flags;
    c->size = __atomic_load_n(&t->size, __ATOMIC_RELAXED);
    c->count = (cfp + FP_ONE / 2) / FP_ONE;
    memcpy(c->leak, t->leak, sizeof c->leak);
    c->frames = t->frames;
    c->modules = t->modules;
  }
  sm_unlock(&trace_lock);
  ts.busy--;
  if (!arr) *cap = 0;
  *n = k;
  return arr;
}

void sm_tracer_init(void) {
  if (!sm_opt.trace) return;
  sm_unwind_init();
  sm_modules_refresh();
  sm_triggers_init();
  __atomic_store_n(&sm_trace_on, true, __ATOMIC_RELEASE);
}

void sm_tracer_prefork(void) { sm_lock(&trace_lock); }
void sm_tracer_postfork_parent(void) { sm_unlock(&trace_lock); }
void sm_tracer_postfork_child(void) {
  sm_lock_reset(&trace_lock);
  sm_triggers_postfork_child();
}
