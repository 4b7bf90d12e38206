/* The tracer's keys of SNAPMALLOC_OPTIONS. Their rows (name, kind, default,
 * range, printed place) are in tracer/options.c, registered with the
 * option parser (allocator/options.h); their fields are part of the
 * process's options, sm_opt, which the library fills at init. This header
 * declares only those fields and their types: it is included by
 * allocator/options.h, which stores them without knowing what they mean. */
#ifndef SM_TRACER_OPTIONS_H
#define SM_TRACER_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

/* How stacks are captured: our own walker over .eh_frame rules (libunwind
 * where it cannot follow a frame), libunwind alone, or both, compared. */
typedef enum sm_unwinder { SM_UNWIND_FAST = 0, SM_UNWIND_LIBUNWIND = 1, SM_UNWIND_CHECK = 2 } sm_unwinder_t;

#define SM_OUT_MAX 512

/* The tracer's fields of sm_options_t (allocator/options.h). */
#define SM_TRACER_OPTION_FIELDS                                                  \
  bool trace;           /* record stack traces of live allocations */            \
  int depth;            /* frames per trace, 1..128 */                           \
  char out[SM_OUT_MAX]; /* snapshot path pattern (%p pid, %n sequence, %e program) */ \
  bool at_exit;         /* final snapshot at exit */                             \
  int signal;           /* signal number that writes a snapshot, 0 = none */     \
  long interval_ms;     /* milliseconds between snapshots, 0 = off */            \
  size_t sample;        /* mean bytes between samples, 0 = every allocation */   \
  bool leaks;           /* reachability analysis at exit */                      \
  sm_unwinder_t unwind; /* stack capture method */                             \
  bool control;         /* arm the control channel (start, stop, snap by pid) */ \
  bool python;          /* Python frames in traces of a CPython process */

#endif
