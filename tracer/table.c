/* The trace table: interned stacks with stable ids.
 *
 * A trace is an array of return addresses with an id (1, 2, ...). The
 * table (open addressing over the stacks' hashes, below) maps stacks to
 * traces; a two-level id -> trace array lets free() and the counters find
 * a block's trace without a lock. A trace is never freed: blocks and
 * snapshots reach it by id even after it left the table (its code was
 * unloaded). So traces are cut from chunks of their own at their exact
 * size, not from the metadata arena's power-of-two classes: a program
 * whose stacks never repeat makes millions of them. What only the final
 * snapshot has, the leak classes of each trace, lives in a map the leak
 * scan makes at exit.
 *
 * Locks: this file owns trace_lock. It guards the hash, next_id,
 * trace_count, the chunks of the id and counter arrays being added and
 * each trace's `gen`; both arrays are read without it (acquire loads of
 * pointers published with release stores; a counter chunk is published
 * before its id chunk), the counters themselves are counters.c's atomics,
 * and a trace's frames and modules never change once published. In the lock order (tracer/locks.c) trace_lock sits below
 * mod_lock and above delta_lock: sm_tracer_copy takes delta_lock (through
 * sm_counters_hold) inside it, and adding a trace takes the metadata lock.
 * Module resolution asks the loader, so it runs before trace_lock is taken,
 * never under it. */
#include <string.h>

#include "tracer/internal.h"

#define ID_CHUNK_BITS 12
#define ID_CHUNK ((size_t)1 << ID_CHUNK_BITS)
#define ID_CHUNKS 4096 /* up to 16M traces */
_Static_assert(ID_CHUNK * ID_CHUNKS <= (size_t)1 << SM_TRACE_ID_BITS, "trace ids must fit a delta key");
_Static_assert(sizeof(sm_trace_t) == 40, "docs/tracer.md gives the size of a trace");

static sm_lock_t trace_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
static SM_BIG_BSS sm_trace_t **ids[ID_CHUNKS];      /* id -> trace */
static SM_BIG_BSS sm_tcounts_t *counts[ID_CHUNKS];  /* id -> its counters; a chunk before its ids chunk */
static uint32_t next_id = 1;
static size_t trace_count;

/* ---- where traces live (trace_lock) */
#define TRACE_CHUNK ((size_t)1 << 20)
static char *chunk_next; /* the free part of the current chunk */
static size_t chunk_left;

static sm_trace_t *trace_alloc(size_t bytes) {
  bytes = (bytes + 7) & ~(size_t)7;
  if (bytes > chunk_left) {
    size_t len = bytes > TRACE_CHUNK ? bytes : TRACE_CHUNK;
    char *c = sm_meta_alloc(len); /* zeroed; the rest of the old chunk stays unused */
    if (!c) return NULL;
    if ((uintptr_t)(c + len) >> 47) { /* the table's slots need the top bits (never so on Linux) */
      sm_meta_free(c, len);
      return NULL;
    }
    chunk_next = c;
    chunk_left = len;
  }
  sm_trace_t *t = (sm_trace_t *)chunk_next;
  chunk_next += bytes;
  chunk_left -= bytes;
  return t;
}

/* ---- the table (trace_lock): stack -> trace
 *
 * Linear probing over an array of trace pointers; each trace keeps its
 * hash, so a probe compares frames only when the hashes are equal and
 * growing never reads a frame. A slot also holds the top 16 bits of its
 * trace's hash in the pointer's unused top bits (user addresses are below
 * 2^47), so that a probe passes other traces without loading them: in a
 * program whose stacks never repeat, each of those loads was a cache miss.
 * A trace that leaves the table (its code was unloaded) leaves a GONE in
 * its slot, so that probes go on past it. The array is at most half full,
 * GONEs counted: a probe, found or not, usually ends at its first or second
 * slot. (uthash, before, kept up to ten traces per chain before it grew,
 * and 56 bytes of links per trace.) */
#define GONE ((uintptr_t)1)
#define SLOT_TAG_SHIFT 48
#define SLOT_PTR_MASK (((uintptr_t)1 << SLOT_TAG_SHIFT) - 1)
static uintptr_t *slots;
static size_t nslots; /* 0, or a power of two */
static size_t nused;  /* traces and GONEs */

static uintptr_t slot_tag(uint32_t hash) { return (uintptr_t)(hash >> 16) << SLOT_TAG_SHIFT; }
static uintptr_t slot_value(sm_trace_t *t) { return (uintptr_t)t | slot_tag(t->hash); }
static sm_trace_t *slot_trace(uintptr_t v) { return (sm_trace_t *)(v & SLOT_PTR_MASK); }

static uintptr_t *slot_of(const uintptr_t *ips, unsigned n, uint32_t hash) {
  uintptr_t tag = slot_tag(hash);
  for (size_t i = hash & (nslots - 1);; i = (i + 1) & (nslots - 1)) {
    uintptr_t v = slots[i];
    if (!v) return &slots[i];
    if ((v & ~SLOT_PTR_MASK) != tag || v == GONE) continue;
    const sm_trace_t *t = slot_trace(v);
    if (t->hash == hash && t->nframes == n && memcmp(t->frames, ips, n * sizeof *ips) == 0) return &slots[i];
  }
}

/* Room for one more: a new array of twice the live traces' room, without
 * the GONEs. False: no memory. */
static bool table_reserve(void) {
  if (nslots && (nused + 1) * 2 <= nslots) return true;
  size_t live = 0;
  for (size_t i = 0; i < nslots; i++) live += slots[i] && slots[i] != GONE;
  size_t cap = 64;
  while (cap < (live + 1) * 4) cap *= 2;
  uintptr_t *fresh = sm_meta_alloc(cap * sizeof *fresh);
  if (!fresh) return false;
  for (size_t i = 0; i < nslots; i++) {
    uintptr_t v = slots[i];
    if (!v || v == GONE) continue;
    size_t j = slot_trace(v)->hash & (cap - 1);
    while (fresh[j]) j = (j + 1) & (cap - 1);
    fresh[j] = v;
  }
  if (slots) sm_meta_free(slots, nslots * sizeof *slots);
  slots = fresh;
  nslots = cap;
  nused = live;
  return true;
}

uint32_t sm_trace_next_id(void) { return __atomic_load_n(&next_id, __ATOMIC_RELAXED); }

sm_trace_t *sm_trace_by_id(uint32_t id) {
  sm_trace_t **chunk = __atomic_load_n(&ids[id >> ID_CHUNK_BITS], __ATOMIC_ACQUIRE);
  return chunk ? __atomic_load_n(&chunk[id & (ID_CHUNK - 1)], __ATOMIC_ACQUIRE) : NULL;
}

sm_tcounts_t *sm_trace_counts(uint32_t id) {
  sm_tcounts_t *chunk = __atomic_load_n(&counts[id >> ID_CHUNK_BITS], __ATOMIC_ACQUIRE);
  return chunk ? &chunk[id & (ID_CHUNK - 1)] : NULL;
}

/* Code may be unloaded and other code loaded at the same addresses: the
 * same return addresses then name other functions. A trace found under an
 * older sm_unwind_gen is re-checked against the module map; if a frame's
 * module changed, it leaves the table (blocks and snapshots still reach it
 * by id) and the stack becomes a new trace. */
static bool modules_same(const sm_trace_t *t, const uint16_t *mods) {
  return memcmp(sm_trace_modules(t), mods, t->nframes * sizeof *mods) == 0;
}

static void resolve_modules(const uintptr_t *ips, unsigned n, uint16_t *mods) {
  /* Another object may sit where a known one was, so a hit in the module
   * table proves nothing until the loader's count of loads was read (once
   * per new trace, cheap next to the rest of adding one). */
  sm_modules_refresh();
  uint32_t m = SM_SNAP_NO_MODULE;
  uintptr_t lo = 0, hi = 0; /* the addresses m holds for (a tagged frame lies in no module) */
  for (unsigned i = 0; i < n; i++) {
    if (ips[i] - lo >= hi - lo) {
      if (sm_py_is_tagged(ips[i])) { /* a Python frame, or a skeleton's mark (capture.c) */
        mods[i] = SM_PY_MODULE_SLOT;
        continue;
      }
      m = sm_modules_find_range(ips[i], &lo, &hi);
    }
    mods[i] = m >= SM_PY_MODULE_SLOT ? 0xffff : (uint16_t)m;
  }
}

static sm_trace_t *find_locked(const uintptr_t *ips, unsigned n, uint32_t gen, const uint16_t *mods, uint32_t hash) {
  if (!nslots) return NULL;
  uintptr_t *s = slot_of(ips, n, hash);
  sm_trace_t *t = slot_trace(*s);
  if (t && t->gen != gen) {
    if (!mods) return NULL; /* the caller resolves the modules and asks again */
    if (!modules_same(t, mods)) {
      *s = GONE;
      return NULL;
    }
    t->gen = gen;
  }
  return t;
}

/* Adds a new trace; modules[] was resolved by the caller without the lock
 * (resolving may ask the dynamic loader, which may be inside malloc). */
static sm_trace_t *add_locked(const uintptr_t *ips, const uint16_t *modules, unsigned n, bool truncated,
                              uint32_t gen, uint32_t hash) {
  uint32_t id = next_id;
  if ((id >> ID_CHUNK_BITS) >= ID_CHUNKS) return NULL; /* table full: untraced (ids fit SM_TRACE_ID_BITS) */
  if (!table_reserve()) return NULL;
  size_t bytes = sizeof(sm_trace_t) + n * sizeof(uintptr_t) + n * sizeof(uint16_t);
  sm_trace_t **chunk = ids[id >> ID_CHUNK_BITS];
  if (!chunk) {
    /* The counters first: whoever sees the id's trace may count into
     * them. A mapping of its own, so page-aligned: a line per trace. */
    if (!counts[id >> ID_CHUNK_BITS]) {
      sm_tcounts_t *c = sm_meta_alloc(ID_CHUNK * sizeof *c);
      if (!c) return NULL;
      if ((uintptr_t)c % _Alignof(sm_tcounts_t)) {
        sm_meta_free(c, ID_CHUNK * sizeof *c);
        return NULL;
      }
      __atomic_store_n(&counts[id >> ID_CHUNK_BITS], c, __ATOMIC_RELEASE);
    }
    chunk = sm_meta_alloc(ID_CHUNK * sizeof *chunk);
    if (!chunk) return NULL;
    __atomic_store_n(&ids[id >> ID_CHUNK_BITS], chunk, __ATOMIC_RELEASE);
  }
  sm_trace_t *t = trace_alloc(bytes);
  if (!t) return NULL;
  /* Its counters are zero, and it was not there at the last peak: its
   * at-peak figures are already saved (zero) for the current epoch, so
   * its first publish has nothing to save. */
  __atomic_store_n(&sm_trace_counts(id)->epoch, __atomic_load_n(&sm_peak_epoch, __ATOMIC_ACQUIRE), __ATOMIC_RELAXED);
  t->id = id;
  t->nframes = (uint16_t)n;
  t->flags = truncated ? SM_SNAP_TRUNCATED : 0;
  t->gen = gen;
  t->hash = hash;
  memcpy(t->frames, ips, n * sizeof(uintptr_t));
  memcpy(sm_trace_modules(t), modules, n * sizeof(uint16_t));
  uintptr_t *s = slot_of(ips, n, hash); /* the empty slot find_locked stopped at */
  *s = slot_value(t);
  nused++;
  __atomic_store_n(&chunk[id & (ID_CHUNK - 1)], t, __ATOMIC_RELEASE);
  __atomic_store_n(&next_id, next_id + 1, __ATOMIC_RELAXED); /* sm_trace_next_id reads it without the lock */
  trace_count++;
  return t;
}

sm_trace_t *sm_trace_intern(const uintptr_t *ips, unsigned n, bool truncated, uint32_t gen, uint64_t hash64) {
  uint32_t hash = (uint32_t)hash64;
  sm_lock(&trace_lock);
  sm_trace_t *t = find_locked(ips, n, gen, NULL, hash);
  sm_unlock(&trace_lock);
  if (SM_UNLIKELY(!t)) { /* a new stack, or code was unloaded: resolve its modules, then add it */
    uint16_t mods[SM_SNAP_MAX_FRAMES];
    resolve_modules(ips, n, mods);
    sm_lock(&trace_lock);
    t = find_locked(ips, n, gen, mods, hash); /* another thread may have added it meanwhile */
    if (!t) t = add_locked(ips, mods, n, truncated, gen, hash);
    sm_unlock(&trace_lock);
  }
  return t;
}

/* ---- leak classes: an open-addressed map, trace id -> counters, made by
 * the leak scan at exit with room for twice the traces it can meet (one
 * per live block), so it never fills. Only the final snapshot reads it.
 * The scan holds every lock of the library, the metadata arena's too: the
 * map is a mapping of its own. */
typedef struct leak_entry {
  uint32_t id; /* 0: empty */
  uint64_t slots[SM_LEAK_CLASSES][2];
} leak_entry_t;
static leak_entry_t *leak_map;
static size_t leak_cap;  /* a power of two */
static size_t leak_used; /* never above half of leak_cap: a probe always ends */
static const uint64_t no_leaks[SM_LEAK_CLASSES][2];

bool sm_tracer_leaks_begin(size_t nblocks) {
  size_t cap = 16;
  while (cap < 2 * nblocks) cap *= 2;
  leak_entry_t *m = sm_os_map(cap * sizeof *m); /* zeroed */
  if (!m) return false;
  if (leak_map) sm_os_unmap(leak_map, leak_cap * sizeof *leak_map);
  leak_map = m;
  leak_cap = cap;
  leak_used = 0;
  return true;
}

static leak_entry_t *leak_entry(uint32_t id, bool add) {
  if (!leak_map) return NULL;
  for (size_t i = (id * 0x9E3779B1u) & (leak_cap - 1);; i = (i + 1) & (leak_cap - 1)) {
    leak_entry_t *e = &leak_map[i];
    if (e->id == id) return e;
    if (!e->id) {
      if (!add || (leak_used + 1) * 2 > leak_cap) return NULL;
      leak_used++;
      e->id = id;
      return e;
    }
  }
}

uint64_t *sm_tracer_leak_slots(uint32_t id) {
  if (!id || !sm_trace_by_id(id)) return NULL;
  leak_entry_t *e = leak_entry(id, true);
  return e ? &e->slots[0][0] : NULL;
}

static const uint64_t (*leaks_of(uint32_t id))[2] {
  const leak_entry_t *e = leak_entry(id, false);
  return e ? e->slots : no_leaks;
}

static uint64_t fp_round(int64_t fp) { return fp > 0 ? ((uint64_t)fp + SM_FP_ONE / 2) / SM_FP_ONE : 0; }

/* One trace's row of a copy: false when it has nothing to report (no live
 * block, no leak, nothing at the peak, no flow). */
static bool copy_one(const sm_trace_t *t, sm_trace_copy_t *c) {
  sm_counts_t k;
  sm_counters_totals(t, &k);
  const uint64_t(*leak)[2] = leaks_of(t->id);
  uint64_t leaked = 0;
  for (int j = 0; j < SM_LEAK_CLASSES; j++) leaked |= leak[j][1];
  c->count = fp_round(k.count_fp);
  c->size = c->count && k.size > 0 ? (uint64_t)k.size : 0;
  c->peak_count = fp_round(k.peak_count_fp);
  c->peak_size = c->peak_count && k.peak_size > 0 ? (uint64_t)k.peak_size : 0;
  c->allocations = (k.allocs_fp + SM_FP_ONE / 2) / SM_FP_ONE;
  c->allocated = k.allocated;
  c->temporary = (k.temp_fp + SM_FP_ONE / 2) / SM_FP_ONE;
  if (!c->count && !leaked && !c->peak_count && !c->allocations && !c->temporary) return false;
  c->id = t->id;
  c->nframes = t->nframes;
  c->flags = t->flags;
  c->leak = leak;
  c->frames = t->frames;
  c->modules = sm_trace_modules(t);
  return true;
}

sm_trace_copy_t *sm_tracer_copy(size_t *n, size_t *cap, int64_t *current, int64_t *peak) {
  sm_tracer_enter();
  sm_lock(&trace_lock);
  *cap = trace_count;
  sm_trace_copy_t *arr = *cap ? sm_meta_alloc(*cap * sizeof *arr) : NULL;
  size_t k = 0;
  sm_counters_hold();
  sm_counters_now(current, peak); /* first: the epoch the at-peak figures are read under */
  /* By id, not through the hash: traces that left it (unloaded code) may
   * still have live blocks. */
  for (uint32_t id = 1; arr && id < next_id && k < *cap; id++) {
    sm_trace_t *t = sm_trace_by_id(id);
    if (t && copy_one(t, &arr[k])) k++;
  }
  sm_counters_release();
  sm_unlock(&trace_lock);
  sm_tracer_leave();
  if (!arr) *cap = 0;
  *n = k;
  return arr;
}

void sm_traces_walk(void (*first)(void), void (*fn)(sm_trace_t *)) {
  sm_tracer_enter();
  sm_lock(&trace_lock);
  sm_counters_hold();
  first();
  for (uint32_t id = 1; id < next_id; id++) {
    sm_trace_t *t = sm_trace_by_id(id);
    if (t) fn(t);
  }
  sm_counters_release();
  sm_unlock(&trace_lock);
  sm_tracer_leave();
}

/* For the lock table (tracer/locks.c). */
sm_lock_t *const sm_trace_lock_ref = &trace_lock;
