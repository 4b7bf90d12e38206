/* dlclose, passed through to the C library's. Unloading code makes the
 * tracer's cached unwind rules for its addresses stale: another object may
 * be mapped there later, and its frames must not be walked with the old
 * rules. Every unload goes through here, so the caches are dropped after
 * each one (rare enough that re-reading the rules costs nothing), and a
 * Python interpreter that was unloaded is no longer read. */
#include <dlfcn.h>

#include "allocator/internal.h"
#include "tracer/python.h"
#include "tracer/tracer.h"

SM_RUNTIME SM_EXPORT int dlclose(void *handle) {
  static int (*real_dlclose)(void *);
  int (*f)(void *) = __atomic_load_n(&real_dlclose, __ATOMIC_ACQUIRE);
  if (!f) {
    f = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    if (!f) sm_fatal("dlclose: the C library's dlclose was not found");
    __atomic_store_n(&real_dlclose, f, __ATOMIC_RELEASE);
  }
  int r = f(handle);
  if (sm_trace_on) {
    sm_unwind_invalidate();
    sm_python_unloaded();
  }
  return r;
}
