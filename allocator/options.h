/* SNAPMALLOC_OPTIONS: comma-separated key=value pairs, read once at start from
 * environ (getenv may not be usable yet). A bad pair prints one warning line
 * and leaves that option at its default; nothing here ever aborts. */
#ifndef SM_ALLOCATOR_OPTIONS_H
#define SM_ALLOCATOR_OPTIONS_H

#include "allocator/base.h"

typedef enum sm_policy { SM_POLICY_BEST = 0, SM_POLICY_FIRST = 1, SM_POLICY_NEXT = 2 } sm_policy_t;
/* How stacks are captured: our own walker over .eh_frame rules (libunwind
 * where it cannot follow a frame), libunwind alone, or both, compared. */
typedef enum sm_unwinder { SM_UNWIND_FAST = 0, SM_UNWIND_LIBUNWIND = 1, SM_UNWIND_CHECK = 2 } sm_unwinder_t;

#define SM_OUT_MAX 512
#define SM_RUN_MAX 64 /* run=ID: 1..63 of [A-Za-z0-9_-] */

typedef struct sm_options {
  bool trace;           /* record stack traces of live allocations */
  int depth;            /* frames per trace, 1..128 */
  char out[SM_OUT_MAX]; /* snapshot path pattern (%p pid, %n sequence, %e program) */
  bool at_exit;         /* final snapshot at exit */
  int signal;           /* signal number that writes a snapshot, 0 = none */
  long interval;        /* seconds between snapshots, 0 = off */
  size_t sample;        /* mean bytes between samples, 0 = every allocation */
  bool leaks;           /* reachability analysis at exit */
  sm_policy_t policy;   /* large-block placement policy */
  size_t increment;     /* bytes a large arena grows by (multiple of 4 MiB) */
  size_t huge;          /* requests above this get their own mapping */
  size_t retain;        /* free bytes a heap or arena keeps before purging */
  bool verbose;         /* print options at start and statistics at exit */
  sm_unwinder_t unwind; /* stack capture method */
  bool free_checks;     /* free validates small blocks (double free, interior pointer) */
  char run[SM_RUN_MAX]; /* the id `snapmalloc run` gives one run's processes (recorded, not used) */
  /* which options were given explicitly (bit per descriptor index) */
  uint32_t given;
} sm_options_t;

extern sm_options_t sm_opt;
extern const char *sm_options_spec; /* SNAPMALLOC_OPTIONS as given, or NULL */

/* Reset to defaults, then apply `spec` (may be NULL). Returns the number of
 * rejected items (each already reported with one warning line). */
int sm_options_parse(sm_options_t *o, const char *spec);
/* Find SNAPMALLOC_OPTIONS in environ and parse it into sm_opt; under
 * AT_SECURE (setuid, setgid, file capabilities) only set the defaults. */
void sm_options_init(void);
extern bool sm_secure; /* AT_SECURE: the environment was ignored */
/* True if option `name` was set explicitly. */
bool sm_options_given(const sm_options_t *o, const char *name);
/* Print "snapmalloc: option <name> = <value>" lines. */
void sm_options_print(const sm_options_t *o);

#endif
