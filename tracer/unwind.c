/* Stack capture with libunwind (local unwinding only). unw_backtrace walks
 * the caller's frames using libunwind's per-thread cache of unwind info;
 * frames inside libsnapmalloc itself (the exported malloc, the allocator, the
 * tracer) are dropped by address, so the result starts at the code that
 * called malloc whatever the inlining. libunwind may allocate on first use
 * in a thread; the tracer's reentrancy guard leaves those blocks untraced. */
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "allocator/internal.h"
#include "tracer/tracer.h"

static uintptr_t self_start, self_end;

void sm_unwind_init(void) {
  unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
  sm_modules_self(&self_start, &self_end);
}

unsigned sm_unwind(uintptr_t *ips, unsigned depth, bool *truncated) {
  /* Room for our own frames on top of the depth asked for. */
  void *raw[SM_SNAP_MAX_FRAMES + 24];
  unsigned want = depth + 24;
  if (want > sizeof raw / sizeof raw[0]) want = sizeof raw / sizeof raw[0];
  int got = unw_backtrace(raw, (int)want);
  if (got < 0) got = 0;
  unsigned i = 0;
  while (i < (unsigned)got && (uintptr_t)raw[i] >= self_start && (uintptr_t)raw[i] < self_end) i++;
  unsigned n = 0;
  for (; i < (unsigned)got && n < depth; i++) ips[n++] = (uintptr_t)raw[i];
  *truncated = i < (unsigned)got || (unsigned)got == want;
  return n;
}
