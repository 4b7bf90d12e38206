/* From the current stack to its trace: the memo of whole captures, the
 * per-thread cache of stacks, then the trace table.
 *
 * The memo is keyed by where the walk starts (the return address and stack
 * pointer at the entry point). A program calling malloc from the same place
 * at the same stack depth (a loop) gets its trace back by comparing the few
 * stack words the earlier walk read, which the processor can load in
 * parallel, instead of walking frame by frame. Equal start registers and
 * equal words mean an equal walk (unwind.c), so the memo is exact.
 *
 * Locks: none of its own. The memo, the cache and the unwind rules are the
 * calling thread's (sm_tlocal_t) and no other thread reads them; a miss goes
 * to sm_trace_intern (table.c), which takes trace_lock itself. */
#include <string.h>

#include "tracer/internal.h"

/* The memo is 4-way set associative: one call site reached from several
 * callers at the same depth (a wrapper, an inlined helper) keeps one entry
 * per caller instead of evicting them in turn. */
#define MEMO_WAYS 4
static sm_memo_t *memo_set(sm_tlocal_t *tl, const sm_stack_start_t *from) {
  uintptr_t h = (from->ra ^ (from->sp >> 4)) * 0x9E3779B97F4A7C15ull;
  return &tl->memo[(h >> 32) & (SM_MEMO_SLOTS - MEMO_WAYS)];
}

static bool memo_matches(const sm_memo_t *m, const sm_stack_start_t *from, uint32_t gen) {
  if (!m->trace || m->ra != from->ra || m->sp != from->sp || (m->bp_used && m->bp != from->bp) || m->gen != gen)
    return false;
  for (unsigned i = 0; i < m->n; i++)
    if (*(const uintptr_t *)(from->sp + m->off[i]) != m->val[i]) return false;
  return true;
}

/* The trace a memo entry recorded for this start, if the stack still holds
 * what the walk read then; NULL otherwise. */
static sm_trace_t *memo_lookup(sm_tlocal_t *tl, const sm_stack_start_t *from) {
  sm_memo_t *set = memo_set(tl, from);
  uint32_t gen = __atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE);
  for (unsigned w = 0; w < MEMO_WAYS; w++)
    if (memo_matches(&set[w], from, gen)) return set[w].trace;
  return NULL;
}

static void memo_fill(sm_tlocal_t *tl, const sm_stack_start_t *from, const sm_walk_log_t *log, uint32_t gen,
                      sm_trace_t *t) {
  /* Replace the way least recently filled (a small clock per set). */
  sm_memo_t *set = memo_set(tl, from);
  sm_memo_t *m = &set[set[0].next_victim++ % MEMO_WAYS];
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

sm_trace_t *sm_capture(sm_tlocal_t *tl, const sm_stack_start_t *from) {
  sm_trace_t *t;
  bool use_memo = tl && from && sm_opt.unwind != SM_UNWIND_LIBUNWIND;
  if (use_memo && (t = memo_lookup(tl, from)) != NULL) {
    if (SM_UNLIKELY(sm_opt.unwind == SM_UNWIND_CHECK))
      sm_unwind_compare(t->frames, t->nframes, t->flags & SM_SNAP_TRUNCATED,
                        (unsigned)__atomic_load_n(&sm_opt.depth, __ATOMIC_RELAXED));
    return t;
  }
  uintptr_t ips[SM_SNAP_MAX_FRAMES];
  bool truncated = false;
  sm_walk_log_t log;
  uint32_t gen = __atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE);
  /* After gen: a start that changes the depth stores it before it moves
   * gen on, so a walk of the old depth is never memoized under the new gen. */
  unsigned depth = (unsigned)__atomic_load_n(&sm_opt.depth, __ATOMIC_RELAXED);
  unsigned n = sm_unwind(tl ? &tl->unwind : NULL, from, ips, depth, &truncated, use_memo ? &log : NULL);
  uint64_t h = sm_stack_hash(ips, n);
  sm_tcache_entry_t *ce = tl ? &tl->cache[h & (SM_TCACHE_SIZE - 1)] : NULL;
  if (ce && ce->hash == h && ce->trace && ce->trace->nframes == n && ce->trace->gen == gen &&
      memcmp(ce->trace->frames, ips, n * sizeof *ips) == 0) {
    t = ce->trace;
  } else {
    t = sm_trace_intern(ips, n, truncated, gen, h);
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
