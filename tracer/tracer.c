/* The tracer's hooks: what preload/exports.c calls on a traced malloc,
 * free and realloc, and starting the tracer.
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
 * table.c and counters.c; their order is the table in tracer/locks.c. */
#include <pthread.h>

#include "tracer/internal.h"

bool sm_trace_on;
SM_TLS sm_tstate_t sm_ts;

void sm_tracer_enter(void) { sm_ts.busy++; }
void sm_tracer_leave(void) { sm_ts.busy--; }
bool sm_tracer_busy_here(void) { return sm_ts.busy > 0; }

/* Captures the current stack and tags p with its trace. p becomes the
 * thread's last traced block: freed by this thread before it allocates
 * anything else, it is temporary. sm_sample_left moves with every
 * successful allocation the thread makes, traced or not (with sampling
 * too), so its value just after this one tells whether another came since. */
static void record(void *p, size_t req, const sm_stack_start_t *from) {
  sm_tlocal_t *tl = sm_tlocal();
  sm_trace_t *t = sm_capture(tl, from);
  if (!t || !sm_tag_set(p, t->id, req)) return; /* out of metadata: untraced */
  uint64_t size, count_fp;
  sm_tracer_weight(req, &size, &count_fp);
  sm_counters_change(t->id, (int64_t)size, (int64_t)count_fp, true, 0);
  if (tl) {
    tl->last = p;
    tl->last_left = sm_sample_left;
  }
}

void sm_track_alloc(void *p, size_t req, const sm_stack_start_t *from) {
  if (sm_sampling && !sm_sample_point(req)) return;
  if (!p || sm_ts.busy) return;
  sm_ts.busy++;
  sm_triggers_maybe_restart();
  record(p, req, from);
  sm_ts.busy--;
}

void sm_track_untag(uint32_t id, size_t req, const void *p) {
  if (SM_UNLIKELY(id & SM_TAG_WATCHED)) { /* a Python code object pyframes.c caches frames of */
    id &= ~SM_TAG_WATCHED;
    sm_pyframes_code_freed();
  }
  uint64_t size, count_fp;
  sm_tracer_weight(req, &size, &count_fp);
  sm_tlocal_t *tl = sm_ts.local;
  int64_t temp_fp = 0;
  if (tl && tl->last == p && tl->last_left == sm_sample_left) {
    tl->last = NULL;
    temp_fp = (int64_t)count_fp;
  }
  sm_counters_change(id, -(int64_t)size, -(int64_t)count_fp, false, temp_fp);
}

/* A realloc ends the old block as a free does (temporary if it was the
 * thread's last allocation) and counts the result as a new allocation. */
void sm_track_realloc(uint32_t old_trace, size_t old_req, const void *p, void *q, size_t req,
                      const sm_stack_start_t *from) {
  if (old_trace) sm_track_untag(old_trace, old_req, p);
  if (q && sm_track_wanted(req)) sm_track_alloc(q, req, from);
}

/* Recording needs no thread, signal or file: it starts with the process's
 * first allocation (another library's constructor, or the loader), so that
 * those blocks have traces too. */
void sm_tracer_start(void) {
  if (!sm_opt.trace || __atomic_load_n(&sm_trace_on, __ATOMIC_ACQUIRE)) return;
  sm_counters_start();
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
  sm_ts.busy++;
  sm_triggers_init();
  sm_ts.busy--;
}
