/* libunwind, loaded only by a process that traces (unwlib.c). The library
 * does not link it: linked, it cost every process 0.1 to 0.4 MiB of
 * resident memory, traced or not. Callers test sm_unwlib_ready() and do
 * without libunwind while it is not loaded. */
#ifndef SM_TRACER_UNWLIB_H
#define SM_TRACER_UNWLIB_H

#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <stdbool.h>

typedef struct sm_unwlib {
  int (*getcontext)(unw_context_t *);
  int (*init_local)(unw_cursor_t *, unw_context_t *);
  int (*step)(unw_cursor_t *);
  int (*get_reg)(unw_cursor_t *, unw_regnum_t, unw_word_t *);
  int (*backtrace)(void **, int);
  int (*set_caching_policy)(unw_addr_space_t, unw_caching_policy_t);
  void (*flush_cache)(unw_addr_space_t, unw_word_t, unw_word_t);
  unw_addr_space_t local_as;
} sm_unwlib_t;

extern sm_unwlib_t sm_unw; /* filled in before sm_unwlib_ready() turns true */

/* Loads libunwind once; true when it is there. Not from inside an
 * allocation: it calls dlopen (the constructor and the control channel's
 * helper thread call it, with the tracer's reentrancy guard up). */
bool sm_unwlib_load(void);

/* Whether sm_unw may be used (acquire: every pointer was stored before). */
bool sm_unwlib_ready(void);

#endif
