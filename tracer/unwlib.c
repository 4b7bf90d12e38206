/* Loading libunwind when the process traces. The tracer's own walker
 * (unwind.c) needs libunwind only for frames it cannot follow, for
 * `unwind=libunwind` and `unwind=check`, and the exit-time leak scan to
 * find exit()'s frames; a process that never traces never needs it. So
 * the library does not link it (linked, it cost each process 0.1 to 0.4
 * MiB of resident memory: libunwind and its liblzma mapped and relocated;
 * docs/allocator.md, "Footprint"), and this file opens it with dlopen when
 * tracing starts: from the library's constructor with trace=1, and on the
 * control channel's helper thread once a `start` switched tracing on. Both
 * run outside any allocation.
 *
 * Before it is loaded (the allocations of the loader and of other
 * libraries' constructors, traced from the process's first malloc with
 * trace=1), unwind.c walks with its own walker alone, and a stack it cannot
 * follow is recorded without frames.
 *
 * The names are taken from libunwind.h's own macros (unw_init_local is
 * _ULx86_64_init_local on x86-64), so that they follow the header built
 * against.
 *
 * Locks: none. The two callers never overlap: the constructor loads
 * before it starts the helper thread, and only that thread loads after.
 * An atomic flag makes the attempt happen once all the same; the table is
 * published with a release store of `ready`. */
#include <dlfcn.h>

#include "allocator/internal.h"
#include "tracer/unwlib.h"

sm_unwlib_t sm_unw;
static bool ready; /* atomic */
static bool tried; /* atomic */

#define NAME_(x) #x
#define NAME(x) NAME_(x) /* the name a libunwind.h macro stands for */

bool sm_unwlib_ready(void) { return __atomic_load_n(&ready, __ATOMIC_ACQUIRE); }

static bool resolve(void *h, const char *name, void **out) {
  *out = dlsym(h, name);
  if (!*out) sm_warning("libunwind has no %s: stacks it would unwind are recorded without frames", name);
  return *out != NULL;
}

bool sm_unwlib_load(void) {
  if (sm_unwlib_ready()) return true;
  if (!__atomic_exchange_n(&tried, true, __ATOMIC_ACQ_REL)) {
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      sm_warning("cannot load libunwind.so.8 (%s): stacks the tracer cannot walk itself are recorded without "
                 "frames", dlerror());
    } else {
      void *as = NULL;
      sm_unwlib_t u;
      bool ok = resolve(h, NAME(unw_tdep_getcontext), (void **)&u.getcontext) &&
                resolve(h, NAME(unw_init_local), (void **)&u.init_local) &&
                resolve(h, NAME(unw_step), (void **)&u.step) && resolve(h, NAME(unw_get_reg), (void **)&u.get_reg) &&
                resolve(h, "unw_backtrace", (void **)&u.backtrace) &&
                resolve(h, NAME(unw_set_caching_policy), (void **)&u.set_caching_policy) &&
                resolve(h, NAME(unw_flush_cache), (void **)&u.flush_cache) &&
                resolve(h, NAME(unw_local_addr_space), &as);
      if (ok) {
        u.local_as = *(unw_addr_space_t *)as;
        u.set_caching_policy(u.local_as, UNW_CACHE_PER_THREAD);
        sm_unw = u;
        __atomic_store_n(&ready, true, __ATOMIC_RELEASE);
      }
    }
  }
  return sm_unwlib_ready();
}
