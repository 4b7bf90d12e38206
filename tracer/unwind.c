/* Stack capture.
 *
 * The fast path walks the stack itself: each frame's return address keys a
 * per-thread cache of unwind rules (cfi.c reads them from .eh_frame on a
 * miss), so a capture of a stack seen before costs a few loads per frame,
 * where libunwind's unw_backtrace spends most of a traced malloc setting up
 * its cursor. A frame whose rule is beyond a constant offset from rsp or rbp
 * (a signal frame, code without unwind tables, a hand-written expression)
 * sends the whole capture to libunwind, so the result is always what
 * libunwind would give. `unwind=libunwind` uses libunwind alone;
 * `unwind=check` runs both and reports the first capture where they differ.
 *
 * libunwind is loaded only when the process traces (unwlib.c); until then
 * (allocations traced before the library's constructor ran) the walker
 * works alone and a stack it cannot follow gets no frames.
 *
 * Frames inside libsnapmalloc (the exported malloc, the allocator, the
 * tracer) are dropped by address, so a trace starts at the code that called
 * malloc whatever the inlining. libunwind may allocate on first use in a
 * thread; the tracer's reentrancy guard leaves those blocks untraced. */
#include <string.h>

#include "allocator/internal.h"
#include "tracer/python.h"
#include "tracer/tracer.h"
#include "tracer/unwlib.h"

static uintptr_t self_start, self_end;
uint32_t sm_unwind_gen;            /* bumped whenever code may have been unmapped */
static uint64_t fallbacks, checked, mismatches; /* statistics for verbose=1 and unwind=check */

void sm_unwind_init(void) { sm_modules_self(&self_start, &self_end); }

void sm_unwind_invalidate(void) {
  __atomic_add_fetch(&sm_unwind_gen, 1, __ATOMIC_RELEASE);
  if (sm_unwlib_ready()) sm_unw.flush_cache(sm_unw.local_as, 0, 0);
}

static bool in_self(uintptr_t ip) { return ip >= self_start && ip < self_end; }

/* libunwind's capture, our own frames dropped. */
static unsigned capture_libunwind(uintptr_t *ips, unsigned depth, bool *truncated) {
  void *raw[SM_SNAP_MAX_FRAMES + 24];
  unsigned want = depth + 24;
  if (want > sizeof raw / sizeof raw[0]) want = sizeof raw / sizeof raw[0];
  int got = sm_unw.backtrace(raw, (int)want);
  if (got < 0) got = 0;
  unsigned i = 0;
  while (i < (unsigned)got && in_self((uintptr_t)raw[i])) i++;
  unsigned n = 0;
  for (; i < (unsigned)got && n < depth; i++) ips[n++] = (uintptr_t)raw[i];
  *truncated = i < (unsigned)got || (unsigned)got == want;
  return n;
}

static const sm_cfi_rule_t *rule_for(sm_unwind_cache_t *c, uintptr_t ra) {
  size_t i = (ra ^ (ra >> 13)) & (SM_UNWIND_CACHE - 1);
  if (SM_UNLIKELY(c->e[i].ra != ra)) {
    sm_cfi_lookup(ra - 1, &c->e[i].rule); /* ra - 1: still inside the call */
    c->e[i].ra = ra;
  }
  return &c->e[i].rule;
}

/* Frames may not be larger than this; a bigger step means a wrong rule.
 * Every read is also bounded by the top of the thread's stack mapping
 * (sm_os_thread_stack, found once per thread): a rule that puts the CFA
 * past it is wrong, or the stack ends there. */
#define FRAME_MAX ((uintptr_t)1 << 28)

/* Notes a stack word the walk's result depends on (log may be NULL). The
 * words lie between the start sp and the top, whose distance cursor_start
 * checked against the offsets' 32 bits. */
#define log_word(log, k, addr, val) log_word_((log), &(k)->nlog, (k)->sp0, (addr), (val))
static inline void log_word_(sm_walk_log_t *log, unsigned *n, uintptr_t sp0, uintptr_t addr, uintptr_t val) {
  if (!log) return;
  if (SM_UNLIKELY(*n == SM_WALK_LOG_MAX)) {
    log->full = true;
    return;
  }
  log->off[*n] = (uint32_t)(addr - sp0);
  log->val[(*n)++] = val;
}

/* The state of a walk between frames: where it is, and what the log
 * needs to know about how rbp got its value. */
typedef struct cursor {
  uintptr_t ra, sp, bp;
  uintptr_t sp0;       /* sp at the start: log offsets are from here */
  unsigned nlog;       /* words logged: the log's n, kept here during the walk
                        * (a store to the log's words could alias its n) */
  uintptr_t bp_at;     /* where bp was loaded from; 0: the start register */
  bool bp_logged;
  uintptr_t cfa;       /* out of step(): the frame's canonical frame address */
} cursor_t;

enum { STEP_ON, STEP_END, STEP_FAIL };

/* One frame: the rule for k->ra gives its CFA (k->cfa), then the caller's
 * return address, sp and bp become k's. STEP_END: the stack ends with this
 * frame (k->cfa is then the top when unknown); STEP_FAIL: a rule we cannot
 * follow, so libunwind must do the walk.
 *
 * The result is a function of the start registers and of the stack words
 * the walk reads. With a log, every word that mattered is noted: each
 * return address, and a saved rbp only when a later frame's CFA was
 * computed from it (rbp is a general register in most code, and its
 * saved values churn without changing the walk). */
SM_INLINE int step(sm_unwind_cache_t *c, cursor_t *k, uintptr_t top, sm_walk_log_t *log) {
  const sm_cfi_rule_t *r = rule_for(c, k->ra);
  k->cfa = top;
  uintptr_t cfa;
  /* Most frames' CFA is rsp plus a constant: that test first. */
  if (SM_LIKELY(r->kind == SM_CFI_RSP)) {
    cfa = k->sp + (uintptr_t)(intptr_t)r->cfa_off;
  } else if (r->kind == SM_CFI_RBP) {
    cfa = k->bp + (uintptr_t)(intptr_t)r->cfa_off;
    if (log) {
      if (!k->bp_at) log->bp_used = true;
      else if (!k->bp_logged) log_word(log, k, k->bp_at, k->bp);
      k->bp_logged = true;
    }
  } else {
    return r->kind == SM_CFI_END ? STEP_END : STEP_FAIL;
  }
  /* cfa - sp in [1, FRAME_MAX], in one unsigned compare, and aligned. */
  if (SM_UNLIKELY(cfa - k->sp - 1 >= FRAME_MAX || (cfa & 7))) return STEP_FAIL;
  /* Past the top of the stack: the walk stops here. Not libunwind: it
   * would follow the same rule into memory that may not be mapped. */
  if (SM_UNLIKELY(cfa > top)) return STEP_END;
  k->cfa = cfa;
  k->ra = ((const uintptr_t *)cfa)[-1];
  log_word(log, k, cfa - sizeof(uintptr_t), k->ra);
  if (r->rbp_saved) {
    k->bp_at = cfa + r->rbp_off;
    if (SM_UNLIKELY(k->bp_at < k->sp || k->bp_at + sizeof(uintptr_t) > top)) return STEP_END;
    k->bp = *(const uintptr_t *)k->bp_at;
    k->bp_logged = false;
  }
  k->sp = cfa;
  return STEP_ON;
}

static void cursor_start(sm_unwind_cache_t *c, cursor_t *k, uintptr_t ra, uintptr_t sp, uintptr_t bp, uintptr_t top,
                         sm_walk_log_t *log) {
  uint32_t gen = __atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE);
  if (SM_UNLIKELY(c->gen != gen)) {
    memset(c->e, 0, sizeof c->e);
    c->gen = gen;
  }
  k->ra = ra;
  k->sp = k->sp0 = sp;
  k->nlog = 0;
  k->bp = bp;
  k->bp_at = 0;
  k->bp_logged = false;
  if (log) {
    log->n = 0;
    log->bp_used = false;
    /* Offsets are 32 bits: a stack whose top lies further (none that a
     * thread gets) is walked, but not remembered. */
    log->full = top - sp > UINT32_MAX;
  }
}

/* A walk's end: the log gets its count of words. */
static inline int walk_end(const cursor_t *k, sm_walk_log_t *log, int r) {
  if (log) log->n = k->nlog;
  return r;
}

/* Walks from a return address and the stack and frame pointers the caller
 * will see on return. Returns the frame count, or -1 to let libunwind do it. */
static int walk(sm_unwind_cache_t *c, uintptr_t ra, uintptr_t sp, uintptr_t bp, uintptr_t top, uintptr_t *ips,
                unsigned depth, bool *truncated, sm_walk_log_t *log) {
  cursor_t k;
  cursor_start(c, &k, ra, sp, bp, top, log);
  /* libsnapmalloc's own frames come first, and are dropped. Bounded: a
   * rule that loops would otherwise never leave them. */
  for (unsigned steps = 0; k.ra != 0 && in_self(k.ra); steps++) {
    if (steps > SM_SNAP_MAX_FRAMES + 64) return walk_end(&k, log, -1);
    int s = step(c, &k, top, log);
    if (s == STEP_END) {
      *truncated = false;
      return walk_end(&k, log, 0);
    }
    if (SM_UNLIKELY(s == STEP_FAIL)) return walk_end(&k, log, -1);
  }
  /* Then one frame per step; the depth bounds the loop. */
  unsigned n = 0;
  while (k.ra != 0) {
    if (n == depth) {
      *truncated = true;
      return walk_end(&k, log, (int)n);
    }
    ips[n++] = k.ra;
    int s = step(c, &k, top, log);
    if (s == STEP_END) break;
    if (SM_UNLIKELY(s == STEP_FAIL)) return walk_end(&k, log, -1);
  }
  *truncated = false;
  return walk_end(&k, log, (int)n);
}

/* ---- Python-aware walks (sm_py_walk_t, tracer.h) */

/* Native frames a Python-aware walk may pass (the interpreter's dropped
 * frames do not count against the depth, and a C-level recursion through
 * Python code is deep). */
#define PY_STEPS_MAX 4096

enum { PY_KEEP, PY_EVAL, PY_DROP };

/* What becomes of the frame at ra that occupies the stack [sp, end). */
static int py_classify(sm_py_walk_t *py, uintptr_t ra, uintptr_t sp, uintptr_t end) {
  if (py->seen < py->nanchors) {
    uintptr_t a = py->anchor[py->seen];
    if (SM_UNLIKELY(a < sp)) py->nanchors = py->seen; /* in no frame: the stack is not what it seemed */
    else if (a < end) return PY_EVAL;
  }
  if (py->matched && ra >= py->lo && ra < py->hi) return PY_DROP;
  return PY_KEEP;
}

/* Adds a classified frame to ips; false when the depth is reached first
 * (then *truncated). `count` is the frames the trace will have. */
static bool py_add(sm_py_walk_t *py, int kind, uintptr_t ra, uintptr_t end, uintptr_t *ips, unsigned *n,
                   unsigned *count, unsigned depth, bool *truncated) {
  if (kind == PY_DROP) return true;
  if (*count >= depth) {
    if (kind == PY_EVAL) py->seen++;
    py->end = end;
    *truncated = true;
    return false;
  }
  if (kind == PY_EVAL) {
    ips[(*n)++] = SM_PY_EVAL_MARK;
    *count += py->weight[py->matched];
    py->matched++;
    py->seen++;
  } else {
    ips[(*n)++] = ra;
    (*count)++;
  }
  return true;
}

static int walk_py(sm_unwind_cache_t *c, uintptr_t ra, uintptr_t sp, uintptr_t bp, uintptr_t top, uintptr_t *ips,
                   unsigned depth, bool *truncated, sm_walk_log_t *log, sm_py_walk_t *py) {
  cursor_t k;
  cursor_start(c, &k, ra, sp, bp, top, log);
  unsigned n = 0, count = 0;
  bool ours = true;
  py->matched = py->seen = 0;
  for (unsigned steps = 0; k.ra != 0; steps++) {
    if (steps > PY_STEPS_MAX) return walk_end(&k, log, -1);
    if (ours && !in_self(k.ra)) ours = false;
    uintptr_t frame_ra = k.ra, frame_sp = k.sp;
    int s = step(c, &k, top, log);
    if (SM_UNLIKELY(s == STEP_FAIL)) return walk_end(&k, log, -1);
    if (!ours && !py_add(py, py_classify(py, frame_ra, frame_sp, k.cfa), frame_ra, k.cfa, ips, &n, &count,
                         depth, truncated))
      return walk_end(&k, log, (int)n);
    if (s == STEP_END) {
      py->end = k.cfa;
      break;
    }
  }
  if (!k.ra) py->end = k.sp;
  *truncated = false;
  return walk_end(&k, log, (int)n);
}

/* libunwind's walk of a Python thread: the same classification, from the
 * stack pointers libunwind reports (a frame lies between its sp and its
 * caller's). */
#define PY_RAW_MAX 256
static unsigned capture_libunwind_py(uintptr_t *ips, unsigned depth, bool *truncated, sm_py_walk_t *py) {
  uintptr_t ip[PY_RAW_MAX], sp[PY_RAW_MAX + 1];
  unw_context_t uc;
  unw_cursor_t cur;
  unsigned raw = 0;
  bool more = false;
  if (sm_unw.getcontext(&uc) == 0 && sm_unw.init_local(&cur, &uc) == 0) {
    do {
      if (raw == PY_RAW_MAX) {
        more = true;
        break;
      }
      unw_word_t w_ip, w_sp;
      if (sm_unw.get_reg(&cur, UNW_REG_IP, &w_ip) < 0 || sm_unw.get_reg(&cur, UNW_REG_SP, &w_sp) < 0 || !w_ip) break;
      ip[raw] = (uintptr_t)w_ip;
      sp[raw++] = (uintptr_t)w_sp;
    } while (sm_unw.step(&cur) > 0);
  }
  sp[raw] = UINTPTR_MAX;
  unsigned i = 0, n = 0, count = 0;
  py->matched = py->seen = 0;
  while (i < raw && in_self(ip[i])) i++;
  for (; i < raw; i++)
    if (!py_add(py, py_classify(py, ip[i], sp[i], sp[i + 1]), ip[i], sp[i + 1], ips, &n, &count, depth, truncated))
      return n;
  py->end = sp[raw ? raw - 1 : 0];
  *truncated = more;
  return n;
}

static void report_mismatch(const uintptr_t *a, unsigned na, const uintptr_t *b, unsigned nb) {
  if (__atomic_add_fetch(&mismatches, 1, __ATOMIC_RELAXED) > 5) return;
  char buf[SM_SNAP_MAX_FRAMES * 20];
  size_t k = 0;
  for (unsigned i = 0; i < na && k + 20 < sizeof buf; i++) k += (size_t)sm_snprintf(buf + k, sizeof buf - k, " %lx", (unsigned long)a[i]);
  buf[k] = '\0';
  sm_warning("unwind=check: own walker gave%s", buf);
  k = 0;
  for (unsigned i = 0; i < nb && k + 20 < sizeof buf; i++) k += (size_t)sm_snprintf(buf + k, sizeof buf - k, " %lx", (unsigned long)b[i]);
  buf[k] = '\0';
  sm_warning("unwind=check: libunwind gave%s", buf);
}

/* Runs libunwind as well and reports a capture that differs (unwind=check). */
void sm_unwind_compare(const uintptr_t *ips, unsigned n, bool truncated, unsigned depth) {
  if (!sm_unwlib_ready()) return; /* not loaded yet (unwlib.c): nothing to compare with */
  uintptr_t other[SM_SNAP_MAX_FRAMES];
  bool t2;
  unsigned m = capture_libunwind(other, depth, &t2);
  __atomic_add_fetch(&checked, 1, __ATOMIC_RELAXED);
  if (m != n || t2 != truncated || memcmp(other, ips, m * sizeof *ips) != 0) report_mismatch(ips, n, other, m);
}

/* Not inlined: without `from`, the walk starts from this function's own
 * frame, which the frame pointer it sets up (for __builtin_frame_address)
 * describes exactly. */
SM_NOINLINE unsigned sm_unwind(sm_unwind_cache_t *cache, const sm_stack_start_t *from, uintptr_t *ips,
                               unsigned depth, bool *truncated, sm_walk_log_t *log, sm_py_walk_t *py) {
  bool have_libunwind = sm_unwlib_ready();
  if (cache && (sm_opt.unwind != SM_UNWIND_LIBUNWIND || !have_libunwind)) {
    sm_stack_start_t here;
    if (!from) {
      SM_STACK_HERE(here);
      from = &here;
    }
    uintptr_t lo, top;
    if (!sm_os_thread_stack(&lo, &top) || from->sp < lo || from->sp >= top) top = from->sp + FRAME_MAX;
    int n = py ? walk_py(cache, from->ra, from->sp, from->bp, top, ips, depth, truncated, log, py)
               : walk(cache, from->ra, from->sp, from->bp, top, ips, depth, truncated, log);
    if (SM_LIKELY(n >= 0)) {
      /* With Python frames the walk is not libunwind's plain backtrace;
       * capture.c compares the plain walk separately. */
      if (SM_UNLIKELY(sm_opt.unwind == SM_UNWIND_CHECK) && !py)
        sm_unwind_compare(ips, (unsigned)n, *truncated, depth);
      return (unsigned)n;
    }
    __atomic_add_fetch(&fallbacks, 1, __ATOMIC_RELAXED);
  }
  if (log) log->full = true; /* nothing to remember */
  if (SM_UNLIKELY(!have_libunwind)) { /* before unwlib.c loaded it: no frames */
    *truncated = true;
    if (py) py->matched = py->seen = 0;
    return 0;
  }
  return py ? capture_libunwind_py(ips, depth, truncated, py) : capture_libunwind(ips, depth, truncated);
}

void sm_unwind_stats(uint64_t *fell_back, uint64_t *compared, uint64_t *differed) {
  *fell_back = __atomic_load_n(&fallbacks, __ATOMIC_RELAXED);
  *compared = __atomic_load_n(&checked, __ATOMIC_RELAXED);
  *differed = __atomic_load_n(&mismatches, __ATOMIC_RELAXED);
}
