/* What the tracer's own files share beyond tracer.h: the trace record, a
 * tracing thread's state, and the parts of the counters and the sampler
 * that a traced malloc or free needs inline (so that splitting the tracer
 * into files cost the hot path nothing). Not for the allocator, the preload
 * layer or the tools. Declarations are grouped by the file that defines
 * them; each of those files says at its top which locks it owns. */
#ifndef SM_TRACER_INTERNAL_H
#define SM_TRACER_INTERNAL_H

#include "allocator/internal.h"
#include "tracer/python.h"
#include "tracer/tracer.h"
#include "tracer/uthash_cfg.h" /* UT_hash_handle, for pyframes.c */

/* Live counts are kept in fixed point (blocks x SM_FP_ONE), so that the
 * estimates of a sampled run stay unbiased. */
#define SM_FP_ONE 65536u

/* ---- table.c: the trace table (owns trace_lock) */
struct sm_trace {
  uint32_t id;
  uint16_t nframes;
  uint16_t flags;          /* SM_SNAP_TRUNCATED */
  uint32_t gen;            /* sm_unwind_gen when its modules were last checked (trace_lock) */
  uint32_t hash;           /* of its frames (sm_stack_hash): table.c's probes compare it first */
  uint64_t base[3];        /* the flow totals at the last peak reset (trace_lock and delta_lock) */
  uintptr_t frames[];      /* innermost first; the hash key; never changes;
                            * then a module index (uint16_t) per frame */
};

/* A trace's shared counters (counters.c), all atomic. They live apart from
 * the trace, one cache line each in arrays by id (table.c): publishing a
 * thread's pending changes, which a program whose stacks never repeat does
 * for a trace nobody touched for a while, then waits for one line, not for
 * the id array, the trace's header and its counters. */
typedef struct sm_tcounts {
  uint64_t size;           /* live bytes (an estimate when sampling) */
  uint64_t count_fp;       /* live blocks x SM_FP_ONE */
  /* the at-peak part of size and count_fp, valid when `epoch` is the
   * current peak epoch (else they equal size and count_fp) */
  uint64_t epoch;          /* sm_peak_epoch when peak_size was last saved */
  uint64_t peak_size, peak_count_fp;
  uint64_t allocs_fp, allocated, temp_fp; /* the flow published so far */
} __attribute__((aligned(64))) sm_tcounts_t;
_Static_assert(sizeof(sm_tcounts_t) == 64, "a trace's counters are one cache line");

/* The counters of trace id, without a lock (NULL: no id of its chunk was given yet). */
sm_tcounts_t *sm_trace_counts(uint32_t id);

/* A trace's module index per frame (0xffff: none), after its frames. */
SM_INLINE uint16_t *sm_trace_modules(const sm_trace_t *t) { return (uint16_t *)&t->frames[t->nframes]; }

/* Trace ids fit in 24 bits (table.c's id array holds 2^24), so that a
 * delta entry's id and the peak epoch of its saved figures share one word
 * and the hot path tests both with one compare (counters.c). */
#define SM_TRACE_ID_BITS 24
#define SM_TRACE_ID_MASK ((1u << SM_TRACE_ID_BITS) - 1)
#define SM_EPOCH_ONE ((uint64_t)1 << SM_TRACE_ID_BITS)

/* The trace with that id, without a lock (NULL: none). */
sm_trace_t *sm_trace_by_id(uint32_t id);
/* The id the next new trace will get (a hint: read without the lock). */
uint32_t sm_trace_next_id(void);
/* The hash of a stack, computed once per walk: the key of the capture's
 * stack cache and the trace table's hash value (uthash would otherwise hash
 * the frames again, with a slower function, for every find and add). */
SM_INLINE uint64_t sm_stack_hash(const uintptr_t *ips, unsigned n) {
  uint64_t h = n;
  for (unsigned i = 0; i < n; i++) h = (h ^ ips[i]) * 0x9E3779B97F4A7C15ull;
  h ^= h >> 32; /* the table takes the low bits: mix the high ones down */
  h *= 0xD6E8FEB86659FD93ull;
  return h ^ (h >> 29);
}

/* The trace of stack ips[0..n) as walked under module generation gen, whose
 * sm_stack_hash is hash: found in the table or added to it (takes
 * trace_lock; may resolve modules, which asks the loader, so never call it
 * holding a tracer lock). NULL when the table is full or there is no
 * memory for a new trace. */
sm_trace_t *sm_trace_intern(const uintptr_t *ips, unsigned n, bool truncated, uint32_t gen, uint64_t hash);

/* ---- capture.c: from a stack to its trace (no lock of its own) */
/* A per-thread direct-mapped cache of recently seen stacks, so that the
 * common case (a stack seen before) needs neither the table lock nor
 * uthash's hash of the whole frame array. */
#define SM_TCACHE_SIZE 512
typedef struct sm_tcache_entry {
  uint64_t hash;
  sm_trace_t *trace;
} sm_tcache_entry_t;

/* A per-thread memo of whole captures, keyed by where the walk starts (the
 * return address and stack pointer at the entry point); capture.c says how
 * it stays exact. */
#define SM_MEMO_SLOTS 64
#define SM_MEMO_ANCHORS 8 /* Python eval calls a memo entry can check */
typedef struct sm_memo {
  /* What a lookup compares first, on the entry's first cache line. */
  uintptr_t ra, sp, bp;
  sm_trace_t *trace;   /* NULL: empty; a `py` key: the native skeleton (capture.c) */
  uint32_t key;        /* sm_unwind_gen when filled, times two, plus one if the
                        * walk knew a Python stack: one compare tests both */
  bool bp_used;
  uint8_t n;
  uint8_t next_victim; /* in a set's first way: the way to fill next */
  uint8_t mru;         /* in a set's first way: the way looked at first (capture.c) */
  uint8_t mru_next;    /* in a set's first way: the other way hit last */
  uint8_t py_seen;     /* a `py` key: eval calls looked for in the walked part */
  uint32_t off[SM_WALK_LOG_MAX];
  uintptr_t val[SM_WALK_LOG_MAX];
  uint32_t py_end;     /* a `py` key: the walked part's end, from sp */
  uint32_t py_anchor[SM_MEMO_ANCHORS]; /* a `py` key: where they were, from sp */
} sm_memo_t;

/* A per-thread cache of Python frames (pyframes.c): code object and
 * instruction -> frame id, valid while the code object is the same. */
#define SM_PYCACHE_BITS 9
typedef struct sm_pycache_entry {
  uintptr_t code;
  sm_py_ident_t ident;
  int32_t lasti;
  uint32_t id;         /* 0: empty */
  uint64_t gen;        /* the code generation it was filled in, the code object watched; 0: not watched */
  uint64_t table_hash; /* not watched: the hash of the location table's bytes */
} sm_pycache_entry_t;

struct sm_tlocal;
/* The trace of the current stack, walked from `from` (NULL: from here),
 * through the thread's memo and cache when it has them (tl may be NULL);
 * NULL when there is no memory for a new trace. */
sm_trace_t *sm_capture(struct sm_tlocal *tl, const sm_stack_start_t *from);
/* Whether sm_capture may answer from its memo inline: a native thread
 * (no Python frames to read) walked by the own walker. */
SM_INLINE bool sm_capture_native(void) {
  return !__atomic_load_n(&sm_py_on, __ATOMIC_RELAXED) && sm_opt.unwind == SM_UNWIND_FAST;
}
/* sm_capture's memo hit alone (NULL: anything else), when
 * sm_capture_native(); tl not NULL. */
sm_trace_t *sm_capture_memo_mru(struct sm_tlocal *tl, const sm_stack_start_t *from);
sm_trace_t *sm_capture_memo_others(struct sm_tlocal *tl, const sm_stack_start_t *from);
/* sm_capture past its inline memo test (the caller made it, and missed):
 * Python threads, the walk, the check mode. */
sm_trace_t *sm_capture_walk(struct sm_tlocal *tl, const sm_stack_start_t *from);

/* ---- pyframes.c: Python frames (owns py_lock) */
/* The id of Python frame f, through this thread's cache (tl may be NULL);
 * 0 when it cannot be described or there is no memory. May take py_lock
 * and the metadata lock: call it holding no tracer lock. */
uint32_t sm_pyframe_id(struct sm_tlocal *tl, const sm_py_frame_t *f);
/* From a traced free of a watched block (tracer.c): a code object whose
 * frames the caches may hold died. */
void sm_pyframes_code_freed(void);
/* Frames interned so far (ids 1..count); for the snapshot writer. */
uint32_t sm_pyframes_count(void);
typedef struct sm_pyframe_info {
  const char *file, *name; /* not NUL-ended; valid for the process's life */
  uint32_t file_len, name_len, line;
} sm_pyframe_info_t;
bool sm_pyframe_get(uint32_t id, sm_pyframe_info_t *out);

/* ---- counters.c: live bytes and blocks, at-peak figures and flow (owns delta_lock) */
/* Each thread accumulates its changes in a table of its own, direct-mapped
 * by trace id, and publishes them lazily (counters.c says when). */
#define SM_DELTA_SLOTS 1024
#define SM_DELTA_FLUSH (256 * 1024)

/* The peak epoch, shifted left by SM_TRACE_ID_BITS: it moves on whenever
 * traced memory reaches a new peak or the peak is reset. Figures saved
 * under an older epoch are stale (counters.c). Atomic. */
extern uint64_t sm_peak_epoch;

/* One cache line. */
typedef struct sm_delta {
  uint64_t key;            /* trace id | the peak epoch of peak_*; 0 = empty */
  int64_t size;            /* pending change of the trace's bytes */
  int64_t count_fp;        /* pending change of its blocks x SM_FP_ONE */
  int64_t peak_size;       /* size and count_fp when the epoch of `key` began */
  int64_t peak_count_fp;
  uint64_t allocs_fp;      /* pending flow: blocks allocated x SM_FP_ONE, */
  uint64_t allocated;      /* bytes allocated, */
  uint64_t temp_fp;        /* temporary blocks x SM_FP_ONE */
} sm_delta_t;

/* Everything a tracing thread keeps to itself, allocated from the metadata
 * arena on its first traced allocation (TLS stays small) and given back
 * when the thread exits, to a short list of spares that the next threads
 * take before a new mapping (counters.c). The registry links and the
 * deltas are counters.c's; the cache, memo and unwind rules are
 * capture.c's and unwind.c's, and no other thread reads them while their
 * thread lives (after it, a spare passes to the next thread). The deltas
 * come first: the structure is larger than the arena's biggest class, so
 * it is a mapping of its own, and every entry sits on one cache line. */
typedef struct sm_tlocal {
  sm_delta_t d[SM_DELTA_SLOTS];
  struct sm_tlocal *next, *prev; /* registry (delta_lock) */
  int64_t current;               /* pending change of traced bytes */
  int64_t high;                  /* highest `current` since the last flush or peak reset */
  const void *last;              /* this thread's last traced block while it may be temporary (tracer.c) */
  int64_t last_left;             /* *sm_countdown() just after that allocation */
  sm_tcache_entry_t cache[SM_TCACHE_SIZE];
  sm_memo_t memo[SM_MEMO_SLOTS];
  sm_unwind_cache_t unwind;
  sm_pycache_entry_t pycache[1u << SM_PYCACHE_BITS]; /* untouched unless the thread runs Python */
} sm_tlocal_t;

/* This thread's tracer state, one TLS block so that the hooks reach all of
 * it through one thread-pointer offset. */
typedef struct sm_tstate {
  int busy;                /* >0: inside the tracer or a suppressed region (tracer.c) */
  uint64_t rng;            /* xorshift state of the sampler (sampling.c) */
  struct sm_tlocal *local; /* this thread's tables, NULL until its first traced block (counters.c) */
} sm_tstate_t;
extern SM_TLS sm_tstate_t sm_ts; /* tracer.c */

/* Registers a new thread's tables (NULL: no memory; the caller then goes
 * straight to the shared counters). */
sm_tlocal_t *sm_tlocal_new(void);
/* The rare parts of sm_counters_change, out of line: a thread without its
 * tables yet, a slot held by another trace or saved under an older peak
 * epoch (the whole change is made there, so that no value lives across the
 * call), and a new high or a flush of the thread's pending bytes. */
SM_NOINLINE void sm_counters_change_slow(uint32_t id, int64_t size, int64_t count_fp, bool alloc, int64_t temp_fp);
/* Before a walk that may end in a new trace: starts loading the trace
 * whose entry that trace would take from td (a program whose stacks keep
 * changing makes a new trace per walk, and publishing the entry it
 * replaces then waits for a trace nobody touched for a while). */
void sm_counters_prefetch_victim(sm_tlocal_t *td);
SM_NOINLINE void sm_counters_change_rare(sm_tlocal_t *td);
/* From sm_tracer_start: counters publish a thread's tables when it exits. */
void sm_counters_start(void);
/* Readers' side: while held (delta_lock, below trace_lock), the registry
 * stands still and sm_counters_totals adds every thread's pending changes. */
void sm_counters_hold(void);
void sm_counters_release(void);
/* A trace's figures: live now, live at the peak, flow since the last reset. */
typedef struct sm_counts {
  int64_t size, count_fp, peak_size, peak_count_fp;
  uint64_t allocs_fp, allocated, temp_fp;
} sm_counts_t;
void sm_counters_totals(const sm_trace_t *t, sm_counts_t *c);
/* Traced bytes now and at peak (delta_lock held). When the threads'
 * pending bytes put the total above the recorded peak, now becomes the
 * peak, so that the traces' at-peak figures always add up to it. */
void sm_counters_now(int64_t *current, int64_t *peak);
/* sm_tracer_reset_peak's parts (delta_lock held): the peak restarts at the
 * current total; then each trace's flow is counted from here. */
void sm_counters_restart_peak(void);
void sm_counters_rebase(sm_trace_t *t);

/* ---- table.c */
/* Calls fn on every trace (by id, so traces of unloaded code too) holding
 * trace_lock and delta_lock, after calling first() under both. */
void sm_traces_walk(void (*first)(void), void (*fn)(sm_trace_t *));

SM_INLINE sm_tlocal_t *sm_tlocal(void) {
  sm_tlocal_t *td = sm_ts.local;
  if (SM_LIKELY(td != NULL)) return td;
  return sm_tlocal_new();
}

/* The parts of a change, shared by the inline and the out-of-line path:
 * into an entry that is id's and stamped with the current epoch, then into
 * the thread's pending total. Only this thread writes its table, but
 * readers load it concurrently (sm_counters_totals): relaxed stores,
 * plain moves on x86. */
#if defined(__SANITIZE_THREAD__)
#define SM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SM_TSAN 1
#endif
#endif

/* Adds v to a 64-bit counter that only this thread writes and others read.
 * On x86-64, one add to memory: not a locked one (nobody else writes), and
 * an aligned 8-byte store cannot tear, so a reader sees the old value or
 * the new, as with a relaxed store; the compiler makes a relaxed store of
 * a sum a load, an add and a store. Under ThreadSanitizer the relaxed
 * store, which it can see. */
SM_INLINE void sm_owned_add(int64_t *p, int64_t v) {
#if defined(__x86_64__) && !defined(SM_TSAN)
  __asm__("addq %1, %0" : "+m"(*p) : "er"(v));
#else
  __atomic_store_n(p, *p + v, __ATOMIC_RELAXED);
#endif
}

SM_INLINE void sm_delta_add(sm_delta_t *e, int64_t size, int64_t count_fp, const bool alloc, int64_t temp_fp) {
  sm_owned_add(&e->size, size);
  sm_owned_add(&e->count_fp, count_fp);
  if (alloc) {
    sm_owned_add((int64_t *)&e->allocs_fp, count_fp);
    sm_owned_add((int64_t *)&e->allocated, size);
  } else if (temp_fp) {
    sm_owned_add((int64_t *)&e->temp_fp, temp_fp);
  }
}

/* Into the thread's pending total; true when the total needs
 * sm_counters_change_rare (a new high, or past the flush bound). An
 * allocation only raises the total, which every change leaves at or above
 * -SM_DELTA_FLUSH, so only a free can pass the lower bound. */
SM_INLINE bool sm_current_add(sm_tlocal_t *td, int64_t size, const bool alloc) {
  int64_t cur = td->current + size;
  __atomic_store_n(&td->current, cur, __ATOMIC_RELAXED);
  return SM_UNLIKELY(cur > __atomic_load_n(&td->high, __ATOMIC_RELAXED) || (!alloc && cur < -SM_DELTA_FLUSH));
}

/* The inline part of sm_counters_change, for a thread with its tables:
 * what is left for the caller to call. */
typedef enum sm_change_rest { SM_CHANGE_DONE, SM_CHANGE_SLOW, SM_CHANGE_RARE } sm_change_rest_t;
SM_INLINE sm_change_rest_t sm_counters_change_inline(sm_tlocal_t *td, uint32_t id, int64_t size, int64_t count_fp,
                                                      const bool alloc, int64_t temp_fp) {
  uint64_t key = __atomic_load_n(&sm_peak_epoch, __ATOMIC_RELAXED) | id;
  sm_delta_t *e = &td->d[id & (SM_DELTA_SLOTS - 1)];
  if (SM_UNLIKELY(e->key != key)) return SM_CHANGE_SLOW;
  sm_delta_add(e, size, count_fp, alloc, temp_fp);
  return sm_current_add(td, size, alloc) ? SM_CHANGE_RARE : SM_CHANGE_DONE;
}

/* Adds a change to the thread's table: `alloc` (a constant at every call)
 * also counts the block as allocated; a free passes the weight of a
 * temporary block in temp_fp (else 0). Inline, with everything uncommon
 * out of line: in the common case a table test, one compare of the slot's
 * key (the trace and the peak epoch together: the record-before-modify of
 * the at-peak figures costs nothing until a new peak) and one test of the
 * new total against the high-water mark and the flush bound. */
SM_INLINE void sm_counters_change(uint32_t id, int64_t size, int64_t count_fp, const bool alloc, int64_t temp_fp) {
  sm_tlocal_t *td = sm_ts.local;
  sm_change_rest_t rest = td ? sm_counters_change_inline(td, id, size, count_fp, alloc, temp_fp) : SM_CHANGE_SLOW;
  if (SM_UNLIKELY(rest == SM_CHANGE_SLOW)) sm_counters_change_slow(id, size, count_fp, alloc, temp_fp);
  else if (SM_UNLIKELY(rest == SM_CHANGE_RARE)) sm_counters_change_rare(td);
}

/* ---- fmath.c: what the sampler needs of libm, without linking it */
double sm_fmath_expm1_neg(double x); /* e^x - 1, for x <= 0 */
double sm_fmath_log(double u);       /* ln u, for a normal u > 0 */
uint64_t sm_fmath_round(double v);   /* v >= 0 to the nearest integer, halves up (llround) */

/* ---- sampling.c: which allocations are traced, and what each stands for */
/* sm_track_wanted() found the thread's budget spent: false if the block is
 * not sampled after all (sampling.c). */
SM_NOINLINE bool sm_sample_point(size_t req);

/* Per-trace live estimates for a block of req bytes: itself without
 * sampling; with sample=N, 1/p blocks of req/p bytes, p = 1 - exp(-(req+1)/N)
 * the chance that the sampler picked it (sampling.c says why). The sampled
 * case is out of line: inline, its call of expm1 made every traced malloc
 * and free save registers and set up a frame for it. */
typedef struct sm_weight {
  uint64_t size, count_fp;
} sm_weight_t;
SM_NOINLINE sm_weight_t sm_tracer_weight_sampled(size_t req);
SM_INLINE void sm_tracer_weight(size_t req, uint64_t *size, uint64_t *count_fp) {
  if (SM_LIKELY(!sm_opt.sample)) {
    *size = req;
    *count_fp = SM_FP_ONE;
    return;
  }
  sm_weight_t w = sm_tracer_weight_sampled(req);
  *size = w.size;
  *count_fp = w.count_fp;
}

#endif
