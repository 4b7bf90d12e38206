/* The tracer: charges every live allocation to the stack trace that made it
 * (or, with sample=N, a Poisson sample of them) and writes snapshots.
 * preload/exports.c calls the hooks behind one test of sm_trace_on. */
#ifndef SM_TRACER_TRACER_H
#define SM_TRACER_TRACER_H

#include <stddef.h>
#include <stdint.h>

#include "allocator/base.h"
#include "allocator/types.h"
#include "tracer/snapfmt.h"

extern bool sm_trace_on;   /* new blocks are traced; read on every malloc (tracer.c says how it changes) */
extern bool sm_trace_tags; /* blocks may carry tags: set at the first start, never cleared; read by realloc */
extern bool sm_sampling; /* sample=N given: only some allocations are traced */
/* Sampling below SM_SAMPLE_MOVE_MIN: picked blocks stay in the pools, so
 * every pool block malloc hands out while tracing must lose its free-list
 * link (preload/exports.c, unlinked), and heaps' gates stay shut; the
 * countdown is the thread's own word. Set at the first start, kept. */
extern bool sm_sampling_dense;
/* Tracing is on and the dense sampler is not: malloc hands every block
 * whose heap's gate is spent to the tracer (preload/exports.c). A plain
 * read there; the tracer then reads sm_trace_on with acquire. */
extern bool sm_gate_traces;

/* The thread's countdown to its next sample point: the bytes before it
 * with sampling, minus what the thread allocated since tracing started
 * without (spent for good). Every successful allocation moves it while
 * tracing, sampled or not, by its stream length (sm_stream_len), so its
 * value also tells whether the thread allocated since a given block
 * (tracer.c, temporary blocks). It is the heap's gate when sampling
 * sparsely or not at all (malloc's fast path then moves it, and
 * sm_heaps_gates_shut makes a start reach it), and the thread's word
 * sm_tw.sample_left when sampling densely or before the thread has a heap.
 * A countdown at or below SM_GATE_SHUT / 2 is one a start (or a new heap,
 * or a new thread) set: no draw was made for it yet (sm_sample_point).
 * Only successful allocations count, so no request is near 2^62 and a
 * subtraction cannot wrap. */
static inline int64_t *sm_countdown_unsampled(void) {
  sm_heap_t *h = sm_tw.heap;
  return h == &sm_heap_empty ? &sm_tw.sample_left : &h->gate;
}
static inline int64_t *sm_countdown(void) {
  return sm_sampling_dense ? &sm_tw.sample_left : sm_countdown_unsampled();
}

/* A block's length in the sampled byte stream: its size, and 1 for a
 * zero-byte block, which can be sampled too. malloc's fast path subtracts
 * the size (it never serves size 0: allocator/internal.h, sm_heap_set_cur);
 * sm_tracer_weight scales by the same length. */
static inline int64_t sm_stream_len(size_t req) { return req ? (int64_t)req : 1; }

/* Whether a traced allocation of req bytes (it succeeded) is to be
 * recorded: with sampling when it reaches the next sample point; without,
 * always, since the countdown is spent for good. For every entry point but
 * malloc's fast path, which tests the heap's gate instead. */
static inline bool sm_track_wanted(size_t req) { return sm_countdown_spend(sm_countdown(), sm_stream_len(req)); }

/* ---- tracer.c (hooks, start), table.c (traces), counters.c (live
 * counters), capture.c (stack to trace), sampling.c; what they share
 * among themselves is in tracer/internal.h. */
typedef struct sm_trace sm_trace_t;

/* Starts recording when trace=1 (idempotent): from the process's first
 * allocation, through sm_after_init (preload/init.c). */
void sm_tracer_start(void);
/* From the constructor: sm_tracer_start, then the snapshot triggers and
 * the control channel. */
void sm_tracer_init(void);
/* Whether tracing was ever on in this process (blocks may carry tags). */
bool sm_tracer_started(void);
/* Tracing on in a running process (the control channel's start), from a
 * thread that is not inside the tracer: depth > 0 sets the frames per
 * trace; sample_given sets the sampling rate, which only the first start
 * may choose. Takes write_lock (snapshot.c). 0, or -1 with a reason (a
 * constant string) in *why: already on, or another sampling rate. */
int sm_tracer_switch_on(int depth, bool sample_given, size_t sample, const char **why);
/* Tracing off: new blocks are no longer traced; blocks traced before stay
 * charged to their traces until they are freed. 0, or -1 (not on). */
int sm_tracer_switch_off(const char **why);
/* Where a stack walk starts: a return address and the stack and frame
 * pointers its caller will have. SM_STACK_HERE fills it for the calling
 * function's caller; use it only in a function that is never inlined (it
 * gets a frame pointer from __builtin_frame_address). */
typedef struct sm_stack_start {
  uintptr_t ra, sp, bp;
} sm_stack_start_t;
#define SM_STACK_HERE(s)                                      \
  do {                                                        \
    const uintptr_t *fp_ = __builtin_frame_address(0);        \
    (s).ra = (uintptr_t)__builtin_return_address(0);          \
    (s).sp = (uintptr_t)(fp_ + 2);                            \
    (s).bp = fp_[0];                                          \
  } while (0)

/* Charges block p (req bytes asked for) to the current stack, walked from
 * `from` (or from the tracer's own frame when NULL). page: the pool page p
 * came from when the caller knows it (malloc's fast path), else NULL. Call
 * it only when sm_track_wanted(req) said yes. Returns the block for the
 * caller to hand out: p, or with sparse sampling the large block p was
 * moved to (allocator/tag.c, sm_tag_relocate; p is then freed), which
 * `move` describes (SM_MOVE_*, allocator/internal.h: the alignment the
 * call promised, and whether p's bytes are the caller's). */
struct sm_page;
void *sm_track_alloc(void *p, size_t req, const sm_stack_start_t *from, struct sm_page *page, unsigned move);
/* sm_track_alloc with the start in registers (ra, sp, bp), returning its block:
 * what malloc's traced path jumps to through preload/exports.c's
 * trampoline, which needs no frame of its own to read them. */
void *sm_track_alloc_from(void *p, size_t req, struct sm_page *page, uintptr_t ra, uintptr_t sp, uintptr_t bp);
/* Un-charges block p, which had tag (id, req) (sm_free_traced took it);
 * p is only compared, never read (it may be reused already). */
void sm_track_untag(uint32_t id, size_t req, const void *p);
/* realloc: the old block and its tag (read before the resize), the new
 * block; returns the block to hand out, as sm_track_alloc. */
void *sm_track_realloc(uint32_t old_trace, size_t old_req, const void *p, void *q, size_t req,
                       const sm_stack_start_t *from);
/* Suppresses tracing on this thread while > 0 (the realloc path, the tracer itself). */
void sm_tracer_enter(void);
void sm_tracer_leave(void);
/* True while this thread is inside the tracer (so a signal handler that
 * interrupted it must not wait for the tracer's locks). */
bool sm_tracer_busy_here(void);

size_t sm_tracer_current(size_t *peak);
void sm_tracer_reset_peak(void);

/* A copy of one trace for the snapshot writer. */
typedef struct sm_trace_copy {
  uint32_t id;
  uint16_t nframes;
  uint16_t flags;
  uint64_t size;
  uint64_t count;
  uint64_t peak_size, peak_count;             /* live at the peak */
  uint64_t allocations, allocated, temporary; /* flow since tracing started or the last peak reset */
  const uint64_t (*leak)[2]; /* the live trace's leak classes (the leak scan fills them at exit) */
  const uintptr_t *frames; /* points into the live trace: frames never change */
  const uint16_t *modules; /* 0xffff: no module */
} sm_trace_copy_t;

/* Copies every trace with live blocks, leaks, at-peak or flow figures into
 * an array from the metadata arena; *n gets the count, *cap the allocated
 * length, *current and *peak the traced bytes now and at the peak the
 * at-peak figures belong to. The caller frees it with
 * sm_meta_free(arr, *cap * sizeof *arr). */
sm_trace_copy_t *sm_tracer_copy(size_t *n, size_t *cap, int64_t *current, int64_t *peak);
/* The leak scanner's counters. sm_tracer_leaks_begin makes room for the
 * traces of up to nblocks blocks (false: no memory); then trace id -> its
 * leak counters, [class][bytes, blocks] (NULL: no such trace). */
bool sm_tracer_leaks_begin(size_t nblocks);
uint64_t *sm_tracer_leak_slots(uint32_t id);

/* ---- cfi.c: unwind rules read from .eh_frame */
enum { SM_CFI_NONE, SM_CFI_RSP, SM_CFI_RBP, SM_CFI_END };
typedef struct sm_cfi_rule {
  uint8_t kind;      /* SM_CFI_RSP / SM_CFI_RBP: CFA = that register + cfa_off;
                        SM_CFI_END: no caller; SM_CFI_NONE: not expressible */
  bool rbp_saved;    /* the caller's rbp is at CFA + rbp_off (else rbp is unchanged) */
  int16_t rbp_off;
  int32_t cfa_off;   /* the return address is always at CFA - 8 */
} sm_cfi_rule_t;
/* The rule in force at pc (for a return address, pass the address - 1). */
bool sm_cfi_lookup(uintptr_t pc, sm_cfi_rule_t *rule);

/* ---- unwind.c */
/* A thread's cache of unwind rules by return address (its own, unlocked). */
#define SM_UNWIND_CACHE 2048
typedef struct sm_unwind_cache {
  uint32_t gen; /* sm_unwind_gen when the entries were filled */
  struct {
    uintptr_t ra;
    sm_cfi_rule_t rule;
  } e[SM_UNWIND_CACHE];
} sm_unwind_cache_t;

void sm_unwind_init(void);
/* Fills ips with up to `depth` return addresses of the caller's stack,
 * skipping frames inside libsnapmalloc; *truncated if the stack went on.
 * The walk starts at `from` (NULL: at the caller of sm_unwind). cache may be
 * NULL (then every capture goes through libunwind). */
/* The stack words a walk depended on: offsets from the start sp and the
 * values read there. The same start registers and the same values at those
 * words give the same walk, so a caller may keep the result and reuse it. */
#define SM_WALK_LOG_MAX 40
typedef struct sm_walk_log {
  uint32_t n;
  bool full;    /* too many words, or libunwind walked: not reusable */
  bool bp_used; /* the start rbp mattered */
  uint32_t off[SM_WALK_LOG_MAX];
  uintptr_t val[SM_WALK_LOG_MAX];
} sm_walk_log_t;
/* A walk that knows the thread's Python stack (python.h, capture.c): each
 * native frame that holds anchor[k] (the next one, in order) is a C-level
 * call of the eval loop and becomes SM_PY_EVAL_MARK, standing for
 * weight[k] frames of the depth; once one was found, the interpreter's own
 * frames (lo..hi) further out are dropped. `seen` anchors were looked for
 * in the part of the stack walked, [start sp, end); the first `matched` of
 * them became marks. */
typedef struct sm_py_walk {
  const uintptr_t *anchor;  /* ascending stack addresses */
  const uint16_t *weight;   /* Python frames per anchor */
  unsigned nanchors;
  uintptr_t lo, hi;         /* the interpreter's code */
  unsigned matched, seen;   /* out */
  uintptr_t end;            /* out */
} sm_py_walk_t;
unsigned sm_unwind(sm_unwind_cache_t *cache, const sm_stack_start_t *from, uintptr_t *ips, unsigned depth,
                   bool *truncated, sm_walk_log_t *log, sm_py_walk_t *py);
/* unwind=check: compares a capture with libunwind's, reporting differences. */
void sm_unwind_compare(const uintptr_t *ips, unsigned n, bool truncated, unsigned depth);
extern uint32_t sm_unwind_gen; /* changes whenever cached rules were dropped */
/* Code was unmapped (dlclose): every cached rule is suspect. */
void sm_unwind_invalidate(void);
/* Captures that went to libunwind; with unwind=check, captures compared and
 * how many of them differed. */
void sm_unwind_stats(uint64_t *fell_back, uint64_t *compared, uint64_t *differed);

/* ---- modules.c: loaded objects, kept even after dlclose */
typedef struct sm_module {
  uintptr_t bias;  /* load bias: file vaddr + bias = address */
  uintptr_t start; /* lowest and highest address of its PT_LOAD segments */
  uintptr_t end;
  char path[256];
  uint8_t build_id[64];
  uint32_t build_id_len;
  bool shadowed;   /* a later entry overlaps this one's range (atomic) */
} sm_module_t;

void sm_modules_refresh(void);
/* dl_iterate_phdr for the tracer, under mod_lock. fork() takes every lock
 * of the table (tracer/locks.c) first, so no thread is inside one of these
 * when a process forks: the child finds the loader's lock free. Every call
 * of the tracer's goes through here (modules.c's own under the lock
 * already); mod_lock must not be held by the caller. */
struct dl_phdr_info;
int sm_modules_iterate(int (*fn)(struct dl_phdr_info *info, size_t size, void *arg), void *arg);
/* Index of the module containing addr, or SM_SNAP_NO_MODULE (refreshes once on a miss). */
uint32_t sm_modules_find(uintptr_t addr);
/* The same, and the range [*lo, *hi) of addresses it answers the same for
 * without a search: the module's, unless a later entry overlaps it (then
 * empty). Most frames of a stack are in the module of the frame before. */
uint32_t sm_modules_find_range(uintptr_t addr, uintptr_t *lo, uintptr_t *hi);
const sm_module_t *sm_modules_get(uint32_t idx);
uint32_t sm_modules_count(void);
/* Address range of libsnapmalloc itself. */
void sm_modules_self(uintptr_t *start, uintptr_t *end);

/* ---- snapshot.c */
/* Writes a snapshot to path, or to the next name from the `out` pattern when
 * path is NULL. flags: SM_SNAP_FINAL / SM_SNAP_LEAKS. 0 or -1 with errno. */
int sm_snapshot_write(const char *path, uint32_t flags);
/* The same; when written is not NULL, it gets the file's name as opened
 * (relative if the pattern was), truncated to cap bytes. A snapshot
 * written while tracing is off says so (SM_SNAP_OFF); without tracing ever
 * on, only an armed process writes one (else ENOTSUP). */
int sm_snapshot_write_as(const char *path, uint32_t flags, char *written, size_t cap);

/* ---- triggers.c: signal, interval, exit, fork; the helper thread */
/* From the constructor: the control socket (control=1), the helper thread,
 * the signal handler (trace=1). */
void sm_triggers_init(void);
/* Tracing was switched on by the control channel: the signal trigger too,
 * unless the program has a handler of its own on that signal. */
void sm_triggers_tracing_on(void);
void sm_triggers_at_exit(uintptr_t stack_from);
/* Whether sm_triggers_at_exit has anything to do: a helper thread to
 * drain, or a tracer that started. */
bool sm_triggers_exit_pending(void);
void sm_triggers_postfork_child(void);
void sm_triggers_maybe_restart(void);
/* A fork child's helper thread is to be started again (by the next traced
 * allocation, through sm_triggers_maybe_restart). Atomic. */
extern bool sm_helper_restart;

/* Why the traced malloc's fast path (tracer.c, sm_track_alloc_from) may not
 * run, a bit per process-wide reason; 0: it may. One load and one test
 * there instead of one per flag. Each bit follows its flag: whoever
 * changes the flag changes the bit after it, with sm_fast_path_close. A
 * thread that reads the mask while a flag changes goes one allocation the
 * old way, as it would reading the flag itself. */
enum {
  SM_FAST_OFF = 1,      /* !sm_trace_on (the initial state) */
  SM_FAST_SAMPLING = 2, /* sm_sampling */
  SM_FAST_RESTART = 4,  /* sm_helper_restart */
  SM_FAST_PYTHON = 8,   /* sm_py_on: Python frames to read */
  SM_FAST_UNWIND = 16,  /* sm_opt.unwind is not the own walker alone */
};
extern unsigned sm_fast_closed;
/* Sets (closed) or clears the bit `why` of sm_fast_closed; release, so that
 * a thread that sees the mask at 0 sees what was set up before. */
SM_INLINE void sm_fast_path_close(unsigned why, bool closed) {
  if (closed) __atomic_fetch_or(&sm_fast_closed, why, __ATOMIC_RELEASE);
  else __atomic_fetch_and(&sm_fast_closed, ~why, __ATOMIC_RELEASE);
}
int sm_triggers_helper_tid(void); /* 0 when there is no helper thread */
/* An address in the helper's outermost frame (0 when there is no helper):
 * its stack is in use from there up. */
uintptr_t sm_triggers_helper_sp(void);
/* Where the helper thread's DTV block starts (0 when there is no helper). */
uintptr_t sm_triggers_helper_dtv(void);

/* ---- control.c: the control channel (control=1; protocol in ctlproto.h) */
/* Opens the listening socket under this process's pid when control=1 (and
 * not AT_SECURE); its descriptor, or -1 (with a warning if it failed). */
int sm_control_open(void);
bool sm_control_armed(void); /* the socket is open */
int sm_control_fd(void);     /* the listening socket, or -1 */
void sm_control_close(void);
/* Disarms (with a warning) if the program closed the socket behind our back. */
void sm_control_check(void);
/* The helper thread: accepts one waiting connection and answers it (the
 * answer goes out when the work is done). False if none was waiting. */
bool sm_control_serve_one(void);
/* Fork child: the parent's socket and connection are closed. */
void sm_control_postfork_child(void);

/* ---- locks.c: the one lock table, and taking every lock in its order */
void sm_locks_acquire_all(void);
/* The same, giving up after timeout_ms (then nothing is held): for the
 * exit path, where the exiting thread itself may hold a lock (a signal
 * handler that called exit() while the thread was inside the library). */
bool sm_locks_try_acquire_all(unsigned timeout_ms);
void sm_locks_release_all(void);
void sm_locks_reset_all(void); /* fork child: the holders are gone */

/* ---- leaks.c: reachability analysis at exit (fills the traces' leak counters) */
/* stack_from: where the exiting thread's live stack starts (the frame that
 * called the library's destructor). */
bool sm_leaks_scan(uintptr_t stack_from);
/* Leak counters of blocks with no trace (allocated before tracing started,
 * or by the tracer's dependencies): [class][0 = bytes, 1 = blocks]. */
const uint64_t *sm_leaks_untraced(void);

#endif
