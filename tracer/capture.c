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
 * A thread running Python code (python.c found an interpreter, and the
 * thread has a thread state) is captured in two parts. The native walk
 * marks each C-level call of the eval loop (unwind.c, sm_py_walk_t) and
 * drops the interpreter's frames further out; that skeleton is memoized as
 * above, since the same native stack runs different Python code, plus the
 * places of the eval calls, which the thread's Python stack gives again at
 * every capture. The Python frames are read afresh every time and spliced
 * in at the marks (pyframes.c turns them into ids); a skeleton that was
 * cut at the depth is used only while the Python frames still fill it.
 *
 * Locks: none of its own. The memo, the cache and the unwind rules are the
 * calling thread's (sm_tlocal_t) and no other thread reads them while it
 * lives (counters.c passes the table of a thread that ended to a new one,
 * memo emptied); a miss goes
 * to sm_trace_intern (table.c), which takes trace_lock itself, and a new
 * Python frame to pyframes.c, which takes py_lock. */
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

/* A memo entry's key: the unwind generation and whether the walk knew a
 * Python stack. */
static uint32_t memo_key(uint32_t gen, bool py) { return gen << 1 | py; }

_Static_assert(SM_WALK_LOG_MAX % 2 == 0, "memo_fill pads a memo's words to an even number");

/* The difference of stack word i from what the walk read there (0: the same). */
#define WORD_DIFF(m, sp, i) ((m)->val[i] ^ *(const uintptr_t *)((sp) + (m)->off[i]))

SM_INLINE bool memo_matches(const sm_memo_t *m, const sm_stack_start_t *from, uint32_t key) {
  /* The start first: in the other ways of a set it differs. An empty way
   * (zeroed, never filled) fails it too, as no start has sp 0; a filled
   * way always has its trace (memo_fill's callers test reusable()). */
  if (m->ra != from->ra || m->sp != from->sp || m->key != key || (m->bp_used && m->bp != from->bp))
    return false;
  /* Then the words, four to a test and the last two together (memo_fill
   * made n even): a hit reads them all anyway, and a deep stack logs 16 to
   * 30, where a test and a branch per word cost a third of a hit's
   * instructions; a miss reads at most three words more. Every word lies
   * between sp and the top of the stack the walk ran on, and a start with
   * the same ra and sp is on that stack, mapped up to that top. (A program
   * that unmapped that stack and mapped a smaller one at the same sp would
   * fault on the first word too.) */
  const uintptr_t sp = from->sp;
  unsigned n = m->n, i = 0;
  for (; i + 4 <= n; i += 4)
    if (WORD_DIFF(m, sp, i) | WORD_DIFF(m, sp, i + 1) | WORD_DIFF(m, sp, i + 2) | WORD_DIFF(m, sp, i + 3)) return false;
  return i == n || (WORD_DIFF(m, sp, i) | WORD_DIFF(m, sp, i + 1)) == 0;
}

/* Which way a lookup tries first (`mru`, in the set's first way). Ways of
 * one start that differ further out (the same call site reached along
 * other paths) each compare words before they fail, so the way likeliest
 * to hit goes first: the one just filled, or one that other ways' hits
 * twice in a row found. Twice: a way that hits once, between hits of the
 * first one (two callers taking turns), does not take its place, and then
 * every other lookup still hits first time. */
SM_INLINE sm_trace_t *memo_lookup_others(sm_memo_t *set, const sm_stack_start_t *from, uint32_t key) {
  unsigned mru = set[0].mru;
  for (unsigned w = 0; w < MEMO_WAYS; w++) {
    if (w == mru || !memo_matches(&set[w], from, key)) continue;
    if (set[0].mru_next == w) set[0].mru = (uint8_t)w;
    else set[0].mru_next = (uint8_t)w;
    return set[w].trace;
  }
  return NULL;
}

/* The trace a memo entry recorded for this start, if the stack still holds
 * what the walk read then; NULL otherwise. */
SM_INLINE sm_trace_t *memo_lookup(sm_tlocal_t *tl, const sm_stack_start_t *from) {
  sm_memo_t *set = memo_set(tl, from);
  uint32_t key = memo_key(__atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE), false);
  unsigned mru = set[0].mru;
  if (memo_matches(&set[mru], from, key)) return set[mru].trace;
  return memo_lookup_others(set, from, key);
}

static sm_memo_t *memo_fill(sm_tlocal_t *tl, const sm_stack_start_t *from, const sm_walk_log_t *log, uint32_t gen,
                            bool py, sm_trace_t *t) {
  /* Replace the way least recently filled (a small clock per set). */
  sm_memo_t *set = memo_set(tl, from);
  unsigned w = set[0].next_victim++ % MEMO_WAYS;
  set[0].mru = (uint8_t)w;
  sm_memo_t *m = &set[w];
  m->ra = from->ra;
  m->sp = from->sp;
  m->bp = from->bp;
  m->bp_used = log->bp_used;
  m->key = memo_key(gen, py);
  memcpy(m->off, log->off, log->n * sizeof log->off[0]);
  memcpy(m->val, log->val, log->n * sizeof log->val[0]);
  /* An even number of words (memo_matches), with a copy of the first:
   * comparing one word twice changes nothing. The log's capacity is even,
   * so the copy fits. */
  unsigned n = log->n;
  if (n % 2) {
    m->off[n] = log->off[0];
    m->val[n] = log->val[0];
    n++;
  }
  m->n = (uint8_t)n;
  m->trace = t;
  return m;
}

/* The trace of frames ips[0..n): from the thread's stack cache, else the
 * table. */
static sm_trace_t *trace_of(sm_tlocal_t *tl, const uintptr_t *ips, unsigned n, bool truncated, uint32_t gen) {
  sm_trace_t *t;
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
  return t;
}

/* Only a walk that was ours alone and whose words all fit is reusable;
 * and only if the trace holds exactly that walk's frames (a trace first
 * seen untruncated keeps that flag). */
static bool reusable(const sm_trace_t *t, const sm_walk_log_t *log, unsigned n, bool truncated) {
  return t && !log->full && t->nframes == n && (bool)(t->flags & SM_SNAP_TRUNCATED) == truncated;
}

/* ---- Python threads */

/* A skeleton for this start whose eval calls are where the thread's
 * Python stack says they are now, and that saw no other one: the walk
 * would mark the same frames again. */
static sm_trace_t *memo_lookup_py(sm_tlocal_t *tl, const sm_stack_start_t *from, const sm_py_stack_t *st) {
  sm_memo_t *set = memo_set(tl, from);
  uint32_t key = memo_key(__atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE), true);
  for (unsigned w = 0; w < MEMO_WAYS; w++) {
    const sm_memo_t *m = &set[w];
    if (!memo_matches(m, from, key) || m->py_seen > st->nevals) continue;
    unsigned i = 0;
    while (i < m->py_seen && st->anchor[i] - from->sp == m->py_anchor[i]) i++;
    if (i < m->py_seen) continue;
    /* An eval call the walk did not see must lie beyond what it walked.
     * (When the Python stack was read only in part, the walk could not
     * have seen the calls not read either.) */
    if (i < st->nevals && st->anchor[i] - from->sp < m->py_end) continue;
    return m->trace;
  }
  return NULL;
}

/* Splices the Python frames into a skeleton: out gets at most `depth`
 * frames. Returns how many; *full: the depth was reached with frames to
 * spare. */
static unsigned splice(sm_tlocal_t *tl, const uintptr_t *skel, unsigned sn, const sm_py_stack_t *st,
                       unsigned depth, uintptr_t *out, bool *full) {
  unsigned m = 0, ev = 0;
  *full = false;
  for (unsigned i = 0; i < sn; i++) {
    if (skel[i] != SM_PY_EVAL_MARK) {
      if (m == depth) goto full;
      out[m++] = skel[i];
      continue;
    }
    if (ev == st->nevals) continue; /* cannot happen: the walk marks only calls it was given */
    for (unsigned j = st->first[ev]; j < st->first[ev + 1]; j++) {
      if (m == depth) goto full;
      uint32_t id = sm_pyframe_id(tl, &st->frame[j]);
      if (id) out[m++] = SM_PY_FRAME_TAG | id;
    }
    ev++;
  }
  return m;
full:
  *full = true;
  return m;
}

/* The trace of a Python thread's stack; NULL when it has no Python frames
 * (the caller then captures it as native code). */
static sm_trace_t *capture_py(sm_tlocal_t *tl, const sm_stack_start_t *from, uintptr_t tstate) {
  sm_py_stack_t st;
  uint32_t gen = __atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE);
  /* After gen, as in sm_capture. */
  unsigned depth = (unsigned)__atomic_load_n(&sm_opt.depth, __ATOMIC_RELAXED);
  sm_py_rt.ops->stack(&sm_py_rt, tstate, depth, &st);
  if (!st.nevals) return NULL;
  uint16_t weight[SM_PY_MAX_EVALS];
  for (unsigned i = 0; i < st.nevals; i++) weight[i] = (uint16_t)(st.first[i + 1] - st.first[i]);
  sm_py_walk_t pw = {.anchor = st.anchor, .weight = weight, .nanchors = st.nevals, .lo = sm_py_rt.lo,
                     .hi = sm_py_rt.hi};
  bool use_memo = tl && from && sm_opt.unwind != SM_UNWIND_LIBUNWIND;
  sm_trace_t *sk = use_memo ? memo_lookup_py(tl, from, &st) : NULL;
  uintptr_t ips[SM_SNAP_MAX_FRAMES], out[SM_SNAP_MAX_FRAMES];
  sm_walk_log_t log;
  unsigned sn, m;
  bool strunc, full;
  if (sk) {
    m = splice(tl, sk->frames, sk->nframes, &st, depth, out, &full);
    strunc = sk->flags & SM_SNAP_TRUNCATED;
    if (!strunc || full) goto done;
    /* Cut at the depth when the Python frames were more: too short now. */
  }
  sn = sm_unwind(tl ? &tl->unwind : NULL, from, ips, depth, &strunc, use_memo ? &log : NULL, &pw);
  m = splice(tl, ips, sn, &st, depth, out, &full);
  if (use_memo && !log.full && pw.seen <= SM_MEMO_ANCHORS && pw.end - from->sp <= UINT32_MAX) {
    sm_trace_t *t = sm_trace_intern(ips, sn, strunc, gen, sm_stack_hash(ips, sn));
    if (reusable(t, &log, sn, strunc)) {
      sm_memo_t *e = memo_fill(tl, from, &log, gen, true, t);
      e->py_seen = (uint8_t)pw.seen;
      e->py_end = (uint32_t)(pw.end - from->sp);
      for (unsigned i = 0; i < pw.seen; i++) e->py_anchor[i] = (uint32_t)(st.anchor[i] - from->sp);
    }
  }
done:
  if (SM_UNLIKELY(sm_opt.unwind == SM_UNWIND_CHECK)) { /* the native walk alone, against libunwind's */
    bool t2;
    sm_unwind(tl ? &tl->unwind : NULL, from, ips, depth, &t2, NULL, NULL);
  }
  /* Frames lost past the depth, or Python frames not read. */
  return trace_of(tl, out, m, strunc || full || st.more, gen);
}

/* Everything but a memo hit of a native stack: Python threads, a walk, the
 * check mode. Out of line, with the walk's buffers in its frame. */
SM_NOINLINE sm_trace_t *sm_capture_walk(sm_tlocal_t *tl, const sm_stack_start_t *from) {
  sm_trace_t *t;
  if (SM_UNLIKELY(__atomic_load_n(&sm_py_on, __ATOMIC_ACQUIRE))) {
    uintptr_t ts = sm_py_rt.ops->thread(&sm_py_rt);
    if (ts && (t = capture_py(tl, from, ts)) != NULL) return t;
  }
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
  if (tl) sm_counters_prefetch_victim(tl);
  uint32_t gen = __atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE);
  /* After gen: a start that changes the depth stores it before it moves
   * gen on, so a walk of the old depth is never memoized under the new gen. */
  unsigned depth = (unsigned)__atomic_load_n(&sm_opt.depth, __ATOMIC_RELAXED);
  unsigned n = sm_unwind(tl ? &tl->unwind : NULL, from, ips, depth, &truncated, use_memo ? &log : NULL, NULL);
  t = trace_of(tl, ips, n, truncated, gen);
  if (use_memo && reusable(t, &log, n, truncated)) memo_fill(tl, from, &log, gen, false, t);
  return t;
}

/* The memo hit alone, for the traced malloc's fast path (tracer.c), in two
 * parts: NULL for anything else, which sm_capture then does. Only when
 * sm_capture's first test holds (a native thread, the own walker).
 * This part: the set's other ways, when the way it tries first missed. */
__attribute__((always_inline)) inline sm_trace_t *sm_capture_memo_others(sm_tlocal_t *tl,
                                                                        const sm_stack_start_t *from) {
  sm_memo_t *set = memo_set(tl, from);
  uint32_t key = memo_key(__atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE), false);
  return memo_lookup_others(set, from, key);
}

/* That part: the way the set tries first alone (memo_lookup_others says
 * which), with the fewest registers live. */
__attribute__((always_inline)) inline sm_trace_t *sm_capture_memo_mru(sm_tlocal_t *tl, const sm_stack_start_t *from) {
  sm_memo_t *set = memo_set(tl, from);
  uint32_t key = memo_key(__atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE), false);
  const sm_memo_t *m = &set[set[0].mru];
  return memo_matches(m, from, key) ? m->trace : NULL;
}

/* The common case first: a native thread, the own walker and a memo hit,
 * inline in the traced allocation's frame (tracer.c, its one caller);
 * everything else goes to capture_walk. */
__attribute__((always_inline)) inline sm_trace_t *sm_capture(sm_tlocal_t *tl, const sm_stack_start_t *from) {
  if (SM_LIKELY(sm_capture_native() && tl && from)) {
    sm_trace_t *t = memo_lookup(tl, from);
    if (SM_LIKELY(t != NULL)) return t;
  }
  return sm_capture_walk(tl, from);
}
