/* The tracer's hooks: what preload/exports.c calls on a traced malloc,
 * free and realloc; starting the tracer, and switching it on and off in a
 * running process.
 *
 * A traced allocation captures its stack (capture.c), finds or adds its
 * trace (table.c), tags the block with the trace id and requested size in
 * the allocator's own metadata (allocator/tag.c) and charges the trace's
 * live counters (counters.c); a free un-charges them. With sample=N only
 * some allocations get this far (sampling.c).
 *
 * Locks: none of its own. This file holds the per-thread reentrancy count
 * (sm_ts.busy): while it is above zero the hooks do nothing, so the
 * tracer's own allocations (libunwind's, the loader's) are not traced and
 * cannot re-enter a tracer lock. The locks behind these hooks are taken by
 * table.c and counters.c; their order is the table in tracer/locks.c.
 * Switching tracing on or off holds snapshot.c's write_lock. */
#include <pthread.h>

#include "tracer/internal.h"
#include "tracer/python.h"
#include "tracer/unwlib.h"

bool sm_trace_on;
unsigned sm_fast_closed = SM_FAST_OFF;
SM_TLS sm_tstate_t sm_ts;

void sm_tracer_enter(void) { sm_ts.busy++; }
void sm_tracer_leave(void) { sm_ts.busy--; }
bool sm_tracer_busy_here(void) { return sm_ts.busy > 0; }

/* Captures the current stack and tags p with its trace. p becomes the
 * thread's last traced block: freed by this thread before it allocates
 * anything else, it is temporary. The countdown (sm_countdown) moves with every
 * successful allocation the thread makes, traced or not (with sampling
 * too), so its value just after this one tells whether another came since. */
SM_INLINE void *record(void *p, size_t req, const sm_stack_start_t *from, sm_page_t *page, const bool sampled,
                       const bool memo_missed, unsigned move) {
  sm_tlocal_t *tl = sm_tlocal();
  sm_trace_t *t = memo_missed && tl ? sm_capture_walk(tl, from) : sm_capture(tl, from);
  if (!t) return p;
  if (sampled && __atomic_load_n(&sm_tag_big_only, __ATOMIC_RELAXED)) { /* out of the pools (tag.c says why) */
    void *q = sm_tag_relocate(p, req, move);
    if (!q) return p; /* out of memory: untraced */
    p = q;
    page = NULL;
  }
  bool tagged = page ? sm_tag_set_in_page(page, p, t->id, req) : sm_tag_set(p, t->id, req);
  if (!tagged) return p; /* out of metadata: untraced */
  uint64_t size = req, count_fp = SM_FP_ONE;
  if (sampled) sm_tracer_weight(req, &size, &count_fp);
  sm_counters_change(t->id, (int64_t)size, (int64_t)count_fp, true, 0);
  if (tl) {
    tl->last = p;
    tl->last_left = __atomic_load_n(sampled ? sm_countdown() : sm_countdown_unsampled(), __ATOMIC_RELAXED);
  }
  return p;
}

/* An allocation from inside the tracer: the library's own (SM_TAG_OWN),
 * moved out of the pools first as record() moves the program's. */
static SM_NOINLINE SM_COLD void *track_own(void *p, size_t req, unsigned move) {
  if (__atomic_load_n(&sm_tag_big_only, __ATOMIC_RELAXED)) {
    void *q = sm_tag_relocate(p, req, move);
    if (!q) return p;
    p = q;
  }
  sm_tag_set(p, SM_TAG_OWN, req);
  return p;
}

SM_INLINE void *track(void *p, size_t req, const sm_stack_start_t *from, sm_page_t *page, const bool sampled,
                      const bool memo_missed, unsigned move) {
  if (!p) return p;
  if (SM_UNLIKELY(sm_ts.busy)) return track_own(p, req, move);
  sm_ts.busy++;
  sm_triggers_maybe_restart();
  p = record(p, req, from, page, sampled, memo_missed, move);
  sm_ts.busy--;
  return p;
}

static SM_NOINLINE void *track_sampled(void *p, size_t req, const sm_stack_start_t *from, sm_page_t *page,
                                       unsigned move) {
  if (sm_sample_point(req)) return track(p, req, from, page, true, false, move);
  return p;
}

SM_INLINE void *track_alloc(void *p, size_t req, const sm_stack_start_t *from, sm_page_t *page,
                            const bool memo_missed, unsigned move) {
  /* The hot path's test was a plain load; this one orders everything the
   * start published before it (see "switching" below), and drops the
   * block if tracing stopped meanwhile. */
  if (!__atomic_load_n(&sm_trace_on, __ATOMIC_ACQUIRE)) return p;
  if (SM_UNLIKELY(sm_sampling)) return track_sampled(p, req, from, page, move);
  return track(p, req, from, page, false, memo_missed, move);
}

void *sm_track_alloc(void *p, size_t req, const sm_stack_start_t *from, sm_page_t *page, unsigned move) {
  return track_alloc(p, req, from, page, false, move);
}

/* The whole traced malloc, for whatever the fast path below does not do. */
static SM_NOINLINE void *track_alloc_from_full(void *p, size_t req, sm_page_t *page, uintptr_t ra, uintptr_t sp,
                                               uintptr_t bp) {
  const sm_stack_start_t from = {.ra = ra, .sp = sp, .bp = bp};
  return track_alloc(p, req, &from, page, false, SM_MOVE_MALLOC);
}

/* The same after the fast path's memo test missed: not made again. */
static SM_NOINLINE void *track_alloc_from_missed(void *p, size_t req, sm_page_t *page, uintptr_t ra, uintptr_t sp,
                                                 uintptr_t bp) {
  const sm_stack_start_t from = {.ra = ra, .sp = sp, .bp = bp};
  return track_alloc(p, req, &from, page, true, SM_MOVE_MALLOC);
}

/* The fast path's ends after its block is tagged: the counter entry held
 * by another trace, and a new high of the thread's pending bytes. */
static SM_NOINLINE void *counted_slow(void *p, uint32_t id, size_t req) {
  sm_counters_change_slow(id, (int64_t)req, SM_FP_ONE, true, 0);
  return p;
}
static SM_NOINLINE void *counted_rare(void *p, sm_tlocal_t *tl) {
  sm_counters_change_rare(tl);
  return p;
}

/* malloc's traced path, which preload/exports.c's trampoline jumps to
 * (`used`: link-time optimisation does not see an asm jump). The common
 * case, every allocation from a stack the memo knows into a page that has
 * its side array, without sampling (sm_fast_closed at 0: tracing on, a
 * native walk, no helper to restart), is what record() does for it, made of
 * the same inline parts (sm_capture_memo_mru, sm_tag_slot_plain,
 * sm_counters_change_inline) with nothing but tail calls around them, so
 * that it sets up no frame (it saves two registers for the memo's word
 * compares); a miss in the set's first way goes on in
 * track_alloc_from_ways. It calls nothing that
 * may allocate, so it needs no reentrancy count. (A signal handler that
 * allocates, which POSIX does not allow, could run in the middle of its
 * counter update, as it always could in a traced free's.) Anything else
 * goes to track_alloc_from_full before the first side effect; after it,
 * only the counters' own slow ends remain. */
SM_INLINE void *track_alloc_from_hit(void *p, size_t req, sm_page_t *page, uintptr_t ra, uintptr_t sp, uintptr_t bp,
                                     sm_tlocal_t *tl, sm_trace_t *t);

/* The fast path when the way its memo set tries first missed: the other
 * ways (capture.c), then as the fast path. */
static SM_NOINLINE void *track_alloc_from_ways(void *p, size_t req, sm_page_t *page, uintptr_t ra, uintptr_t sp,
                                               uintptr_t bp) {
  sm_tlocal_t *tl = sm_ts.local;
  const sm_stack_start_t from = {.ra = ra, .sp = sp, .bp = bp};
  sm_trace_t *t = sm_capture_memo_others(tl, &from);
  if (SM_UNLIKELY(!t)) return track_alloc_from_missed(p, req, page, ra, sp, bp);
  return track_alloc_from_hit(p, req, page, ra, sp, bp, tl, t);
}

__attribute__((used)) void *sm_track_alloc_from(void *p, size_t req, sm_page_t *page, uintptr_t ra, uintptr_t sp,
                                                uintptr_t bp) {
  sm_tlocal_t *tl = sm_ts.local;
  /* p and page are never NULL here: the trampoline comes from malloc's
   * fast path, which found both. */
  if (SM_UNLIKELY(!tl || sm_ts.busy || __atomic_load_n(&sm_fast_closed, __ATOMIC_ACQUIRE)))
    return track_alloc_from_full(p, req, page, ra, sp, bp);
  const sm_stack_start_t from = {.ra = ra, .sp = sp, .bp = bp};
  sm_trace_t *t = sm_capture_memo_mru(tl, &from);
  if (SM_UNLIKELY(!t)) return track_alloc_from_ways(p, req, page, ra, sp, bp);
  return track_alloc_from_hit(p, req, page, ra, sp, bp, tl, t);
}

/* The rest of the fast path, after a memo hit: the tag and the counters. */
SM_INLINE void *track_alloc_from_hit(void *p, size_t req, sm_page_t *page, uintptr_t ra, uintptr_t sp, uintptr_t bp,
                                     sm_tlocal_t *tl, sm_trace_t *t) {
  uint64_t *slot = sm_tag_slot_plain(page, p); /* none: a page's first traced block */
  if (SM_UNLIKELY(!slot)) return track_alloc_from_full(p, req, page, ra, sp, bp);
  uint32_t id = t->id;
  *slot = id | (uint64_t)req << 32;
  tl->last = p;
  /* Without sampling, from malloc's fast path: the countdown is the gate
   * of the heap the block came from. */
  tl->last_left = __atomic_load_n(&sm_tw.heap->gate, __ATOMIC_RELAXED);
  sm_change_rest_t rest = sm_counters_change_inline(tl, id, (int64_t)req, SM_FP_ONE, true, 0);
  if (SM_UNLIKELY(rest == SM_CHANGE_SLOW)) return counted_slow(p, id, req);
  if (SM_UNLIKELY(rest == SM_CHANGE_RARE)) return counted_rare(p, tl);
  return p;
}

/* `sampled` is a constant at each call: the common free (no sampling, no
 * watched code object) is a leaf that saves no register. */
SM_INLINE void untag(uint32_t id, size_t req, const void *p, const bool sampled) {
  uint64_t size = req, count_fp = SM_FP_ONE;
  if (sampled) sm_tracer_weight(req, &size, &count_fp);
  sm_tlocal_t *tl = sm_ts.local;
  int64_t temp_fp = 0;
  if (tl && tl->last == p && tl->last_left == __atomic_load_n(sampled ? sm_countdown() : sm_countdown_unsampled(), __ATOMIC_RELAXED)) {
    tl->last = NULL;
    temp_fp = (int64_t)count_fp;
  }
  sm_counters_change(id, -(int64_t)size, -(int64_t)count_fp, false, temp_fp);
}

/* With sampling, a Python code object pyframes.c caches frames of, or one
 * of the library's own blocks (nothing to uncharge). */
static SM_NOINLINE void untag_rare(uint32_t id, size_t req, const void *p) {
  if (id == SM_TAG_OWN) return;
  if (id & SM_TAG_WATCHED) {
    id &= ~SM_TAG_WATCHED;
    sm_pyframes_code_freed();
  }
  untag(id, req, p, true);
}

void sm_track_untag(uint32_t id, size_t req, const void *p) {
  if (SM_UNLIKELY((id & (SM_TAG_WATCHED | SM_TAG_OWN)) || sm_opt.sample)) {
    untag_rare(id, req, p);
    return;
  }
  untag(id, req, p, false);
}

/* A realloc ends the old block as a free does (temporary if it was the
 * thread's last allocation) and counts the result as a new allocation. */
void *sm_track_realloc(uint32_t old_trace, size_t old_req, const void *p, void *q, size_t req,
                       const sm_stack_start_t *from) {
  if (old_trace) sm_track_untag(old_trace, old_req, p);
  if (q && __atomic_load_n(&sm_trace_on, __ATOMIC_RELAXED) && sm_track_wanted(req))
    return sm_track_alloc(q, req, from, NULL, p ? SM_MOVE_COPY : SM_MOVE_MALLOC); /* realloc(NULL, n): a malloc */
  return q;
}

/* ---------------------------------------------------------------- switching
 *
 * Tracing starts at the process's first allocation with trace=1, or later,
 * and any number of times, through the control channel (control=1:
 * control.c calls sm_tracer_switch_on and _off from the helper thread while
 * the program's threads run). The three flags a malloc, realloc and free
 * test are published in this order, each with a release store:
 *
 *   sm_free_trace_start()   free() takes a block's tag: every pool
 *                           segment's map entry becomes POOL_ALT (out
 *                           of free's fast path), then its flag is set
 *                           (not with sparse sampling, where only large
 *                           and huge blocks have tags, and the untraced
 *                           free takes them: tag.c)
 *   sm_trace_tags = true    realloc() takes a block's tag
 *   sm_trace_on = true      malloc() and friends tag new blocks
 *
 * A thread that tags a block has seen sm_trace_on (sm_track_alloc loads it
 * with acquire), so it has seen the entries and flags before; any thread
 * that frees
 * or reallocates that block got the pointer from it, after it, and so sees
 * them too: a tagged pool block never goes through the untraced free,
 * which would leave its tag behind and its bytes counted. (Sparse sampling
 * tags no pool block, and sets sm_tag_big_only before the flags: the
 * untraced free's large and huge path takes the tags.) Stopping clears only
 * sm_trace_on: blocks tagged before stay tagged, and their frees keep
 * uncharging them (the traced free costs an untagged block one load and a
 * test more). A thread that read sm_trace_on just before it changed traces
 * one block more or fewer; that is the only fuzziness at either edge.
 *
 * What is decided once, at the first start, and then kept: whether only
 * large and huge blocks carry tags (sm_tag_big_only), and the sampling
 * rate, since a block's weight is computed again from the rate when it is
 * freed; the control channel refuses a start that would change the rate.
 * The depth may change at every start: traces of either depth coexist, and
 * the memos of captures are dropped (sm_unwind_invalidate).
 *
 * Switching holds write_lock (snapshot.c), which puts it in the lock order
 * (tracer/locks.c) and keeps a fork or a snapshot from seeing it half done. */
bool sm_trace_tags;
static bool started; /* the once-only part ran (init, or under write_lock) */

extern sm_lock_t *const sm_write_lock_ref; /* snapshot.c */

SM_RUNTIME bool sm_tracer_started(void) { return __atomic_load_n(&sm_trace_tags, __ATOMIC_ACQUIRE); }

static bool depth_given; /* a start gave a depth: it stays (write_lock) */

static void turn_on(void) {
  bool started_before = started;
  if (!started) {
    started = true;
    sm_counters_start();
    __atomic_store_n(&sm_tag_big_only, sm_opt.sample >= SM_SAMPLE_MOVE_MIN, __ATOMIC_RELAXED);
    sm_tag_released = sm_track_untag;
    sm_sampling = sm_opt.sample != 0;
    sm_sampling_dense = sm_sampling && !sm_tag_big_only;
    sm_fast_path_close(SM_FAST_SAMPLING, sm_sampling);
    sm_fast_path_close(SM_FAST_UNWIND, sm_opt.unwind != SM_UNWIND_FAST);
    sm_unwind_init();
  }
  sm_zero_carved = sm_opt.leaks && sm_opt.at_exit;
  sm_modules_refresh();
  /* A CPython process (its interpreter was just found, or before): a
   * deeper default depth, unless a depth was given, by the options or by
   * a start. A changed depth stales every memo of a capture, as in
   * sm_tracer_switch_on. */
  if (!depth_given && !sm_options_given(&sm_opt, "depth") && sm_python_deepen() && started_before)
    sm_unwind_invalidate();
  /* Sparse sampling keeps the untraced free: no pool block has a tag then,
   * and the free of a large or huge one takes its tag (allocator/tag.c). */
  if (!sm_tag_big_only) sm_free_trace_start();
  __atomic_store_n(&sm_trace_tags, true, __ATOMIC_RELEASE);
  __atomic_store_n(&sm_gate_traces, !sm_sampling_dense, __ATOMIC_RELAXED);
  __atomic_store_n(&sm_trace_on, true, __ATOMIC_RELEASE);
  sm_heaps_gates_shut(); /* malloc's fast path tests its heap's gate, not the flag */
  sm_fast_path_close(SM_FAST_OFF, false);
}

/* Recording needs no thread, signal or file: it starts with the process's
 * first allocation (another library's constructor, or the loader), so that
 * those blocks have traces too. */
void sm_tracer_start(void) {
  if (!sm_opt.trace || __atomic_load_n(&sm_trace_on, __ATOMIC_ACQUIRE)) return;
  turn_on();
}

int sm_tracer_switch_on(int depth, bool sample_given, size_t sample, const char **why) {
  int rc = -1;
  sm_tracer_enter(); /* libunwind's and the loader's allocations here are not traced */
  sm_lock(sm_write_lock_ref);
  if (__atomic_load_n(&sm_trace_on, __ATOMIC_ACQUIRE)) {
    *why = "tracing is already on";
  } else if (sample_given && started && sample != sm_opt.sample) {
    *why = sm_opt.sample ? "the sampling rate is fixed once tracing has started (start without --sample, or with "
                           "the rate of the first start)"
                         : "the sampling rate is fixed once tracing has started, and this process traces every "
                           "allocation (start without --sample)";
  } else {
    if (sample_given && !started) {
      sm_opt.sample = sample;
      /* The same rule as at start (tracer/options.c): sampled runs scan
       * for leaks at exit only when asked to. */
      if (!sm_options_given(&sm_opt, "leaks")) sm_opt.leaks = sample == 0;
    }
    if (depth > 0) {
      __atomic_store_n(&sm_opt.depth, depth, __ATOMIC_RELAXED);
      depth_given = true;
    }
    /* Code unloaded while tracing was off (dlclose invalidates only while
     * it is on), or a new depth: every memo of a capture is stale. */
    if (started) sm_unwind_invalidate();
    turn_on();
    rc = 0;
  }
  sm_unlock(sm_write_lock_ref);
  /* dlopen, outside write_lock; tracing is on, so the loader's blocks are
   * tagged as the library's own (SM_TAG_OWN). Captures until it returns
   * walk without libunwind (unwlib.c). */
  if (rc == 0) sm_unwlib_load();
  sm_tracer_leave();
  return rc;
}

int sm_tracer_switch_off(const char **why) {
  sm_lock(sm_write_lock_ref);
  __atomic_store_n(&sm_gate_traces, false, __ATOMIC_RELAXED);
  bool was = __atomic_exchange_n(&sm_trace_on, false, __ATOMIC_ACQ_REL);
  if (was) sm_heaps_gates_open();
  sm_fast_path_close(SM_FAST_OFF, true);
  sm_unlock(sm_write_lock_ref);
  if (!was) *why = "tracing is not on";
  return was ? 0 : -1;
}

void sm_tracer_init(void) {
  sm_tracer_start();
  sm_ts.busy++;
  /* Before the helper thread exists (unwlib.c: the two never overlap).
   * libunwind's own allocations are the library's, untraced. */
  if (sm_opt.trace) sm_unwlib_load();
  /* The helper thread's DTV is the library's, not the program's. */
  sm_triggers_init();
  sm_ts.busy--;
}
