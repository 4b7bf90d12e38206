/* The tracer: charges every live allocation to the stack trace that made it
 * (or, with sample=N, a Poisson sample of them) and writes snapshots.
 * preload/exports.c calls the hooks behind one test of sm_trace_on. */
#ifndef SM_TRACER_TRACER_H
#define SM_TRACER_TRACER_H

#include <stddef.h>
#include <stdint.h>

#include "allocator/base.h"
#include "tracer/snapfmt.h"

extern bool sm_trace_on; /* set once at start, read on every malloc/free */

/* ---- tracer.c: trace table and counters */
typedef struct sm_trace sm_trace_t;

void sm_tracer_init(void); /* from the constructor, after the allocator */
/* Charges block p (req bytes asked for) to the current stack. */
void sm_track_alloc(void *p, size_t req);
/* Un-charges block p; call before the block goes back to the allocator. */
void sm_track_free(void *p);
/* realloc: the old block's tag (read before the resize), the new block. */
void sm_track_realloc(uint32_t old_trace, size_t old_req, void *q, size_t req);
/* Suppresses tracing on this thread while > 0 (the realloc path, the tracer itself). */
void sm_tracer_enter(void);
void sm_tracer_leave(void);

size_t sm_tracer_current(size_t *peak);
void sm_tracer_reset_peak(void);
void sm_tracer_prefork(void);
void sm_tracer_postfork_parent(void);
void sm_tracer_postfork_child(void);

/* A copy of one trace for the snapshot writer. */
typedef struct sm_trace_copy {
  uint32_t id;
  uint16_t nframes;
  uint16_t flags;
  uint64_t size;
  uint64_t count;
  uint64_t leak[SM_LEAK_CLASSES][2];
  const uintptr_t *frames; /* points into the live trace: frames never change */
  const uint16_t *modules; /* 0xffff: no module */
} sm_trace_copy_t;

/* Copies every trace with live blocks into an array from the metadata
 * arena; *n gets the count, *cap the allocated length. The caller frees it
 * with sm_meta_free(arr, *cap * sizeof *arr). */
sm_trace_copy_t *sm_tracer_copy(size_t *n, size_t *cap);
/* Trace id -> leak counters, for the leak scanner (may be NULL). */
uint64_t *sm_tracer_leak_slots(uint32_t id);
/* Per-trace live estimates for a block of req bytes (sampling scales them). */
void sm_tracer_weight(size_t req, uint64_t *size, uint64_t *count_fp);

/* ---- unwind.c */
void sm_unwind_init(void);
/* Fills ips with up to `depth` return addresses of the caller's stack,
 * skipping frames inside libsnapmalloc; *truncated if the stack went on. */
unsigned sm_unwind(uintptr_t *ips, unsigned depth, bool *truncated);

/* ---- modules.c: loaded objects, kept even after dlclose */
typedef struct sm_module {
  uintptr_t bias;  /* load bias: file vaddr + bias = address */
  uintptr_t start; /* lowest and highest address of its PT_LOAD segments */
  uintptr_t end;
  char path[256];
  uint8_t build_id[64];
  uint32_t build_id_len;
} sm_module_t;

void sm_modules_refresh(void);
/* Index of the module containing addr, or SM_SNAP_NO_MODULE (refreshes once on a miss). */
uint32_t sm_modules_find(uintptr_t addr);
const sm_module_t *sm_modules_get(uint32_t idx);
uint32_t sm_modules_count(void);
/* Address range of libsnapmalloc itself. */
void sm_modules_self(uintptr_t *start, uintptr_t *end);

/* ---- snapshot.c */
/* Writes a snapshot to path, or to the next name from the `out` pattern when
 * path is NULL. flags: SM_SNAP_FINAL / SM_SNAP_LEAKS. 0 or -1 with errno. */
int sm_snapshot_write(const char *path, uint32_t flags);
void sm_snapshot_postfork_child(void);

/* ---- triggers.c: signal, interval, exit, fork */
void sm_triggers_init(void);
void sm_triggers_at_exit(uintptr_t stack_from);
void sm_triggers_postfork_child(void);
void sm_triggers_maybe_restart(void);
int sm_triggers_helper_tid(void); /* 0 when there is no helper thread */

/* ---- leaks.c: reachability analysis at exit (fills the traces' leak counters) */
/* stack_from: where the exiting thread's live stack starts (the frame that
 * called the library's destructor). */
bool sm_leaks_scan(uintptr_t stack_from);
/* Leak counters of blocks with no trace (allocated before tracing started,
 * or by the tracer's dependencies): [class][0 = bytes, 1 = blocks]. */
const uint64_t *sm_leaks_untraced(void);

#endif
