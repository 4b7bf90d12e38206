/* Library constructor and exit hook: start the allocator early, register
 * the thread-exit hook and the fork handlers, find the C library's own
 * functions for foreign pointers, start the tracer's triggers, and print
 * options and statistics when verbose. The allocator also initialises
 * itself lazily on the first call, which may come from the dynamic loader
 * or another library's constructor long before this constructor runs; the
 * tracer starts recording right then (sm_after_init).
 *
 * Fork: every lock of the library, in the order of the lock table
 * (tracer/locks.c). */
#include <dlfcn.h>
#include <pthread.h>

#include "allocator/check.h"
#include "allocator/internal.h"
#include "tracer/python.h"
#include "tracer/tracer.h"

/* The checked build (-Dchecks=true) verifies the arenas and this thread's
 * pages with every lock held, and again in the child. */
SM_RUNTIME static void prefork(void) {
  sm_locks_acquire_all();
  sm_check_fork();
}

SM_RUNTIME static void postfork_parent(void) { sm_locks_release_all(); }

SM_RUNTIME static void postfork_child(void) {
  sm_locks_reset_all();
  sm_heaps_postfork_child();
  sm_triggers_postfork_child();
}

void sm_after_init(void) { sm_tracer_start(); }

extern int __cxa_atexit(void (*fn)(void *), void *arg, void *dso);
/* The C library's registration that pthread_atfork forwards to.
 * pthread_atfork itself comes from libc_nonshared.a, linked into this
 * library at the far end of its code, where calling it would make every
 * process map one more 64 KiB of the library (SM_RUNTIME). Registered
 * with this library's handle, so a dlclose that unloads the library drops
 * the handlers, as pthread_atfork's registration did. glibc only. */
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);
extern void *__dso_handle __attribute__((visibility("hidden")));

/* The end of the process as the leak scan must see it: after the program's
 * atexit handlers and after every library's destructor, as valgrind does.
 * Registered from our constructor, which the loader runs before the
 * program's entry point; the C library registers the loader's destructor
 * loop (_dl_fini) later, in __libc_start_main, and exit() runs handlers
 * newest first: so this one runs after _dl_fini, just before the C
 * library's final stdio flush. With no DSO handle, no library's unloading
 * runs it early. */
SM_RUNTIME static void at_process_end(void *arg) {
  (void)arg;
  /* The leak scan reads the exiting stack from about here when it cannot
   * find exit()'s frames. */
  if (sm_triggers_exit_pending()) sm_triggers_at_exit((uintptr_t)__builtin_frame_address(0));
  if (sm_opt.verbose) sm_stats_print(2);
  if (sm_tracer_started() && (sm_opt.verbose || sm_opt.unwind == SM_UNWIND_CHECK)) {
    uint64_t fell_back, compared, differed;
    sm_unwind_stats(&fell_back, &compared, &differed);
    sm_info("unwind: %llu captures fell back to libunwind; unwind=check compared %llu, %llu differed",
            (unsigned long long)fell_back, (unsigned long long)compared, (unsigned long long)differed);
  }
}

/* The library's DT_FINI, which the loader calls at exit: the linker's
 * default, _fini, is the C runtime's empty .fini section, which it places
 * after the whole of .text, so calling it made every process map one more
 * 64 KiB window of the library's code (32 KiB resident, up to the end of
 * the segment) just before it exits, where its peak RSS is read
 * (meson.build: -fini). The library's destructors are in .fini_array. */
SM_RUNTIME __attribute__((used)) void sm_dso_fini(void) {}

/* The C library's functions a foreign pointer goes to, by name: strings the
 * loader reads at every start-up (SM_RUNTIME_DATA). */
SM_RUNTIME_DATA static const char name_free[] = "free", name_realloc[] = "realloc",
                                  name_usable_size[] = "malloc_usable_size";

__attribute__((constructor(101))) static void snapmalloc_start(void) {
  sm_init();
  sm_heap_key_init();
  /* __register_atfork may allocate: registered here, where malloc works,
   * and never from inside an allocation. */
  __register_atfork(prefork, postfork_parent, postfork_child, __dso_handle);
  void *f = dlsym(RTLD_NEXT, name_free);
  if (f && f != (void *)sm_free) sm_libc_free = (void (*)(void *))f;
  void *r = dlsym(RTLD_NEXT, name_realloc);
  if (r && r != (void *)sm_realloc) sm_libc_realloc = (void *(*)(void *, size_t))r;
  void *u = dlsym(RTLD_NEXT, name_usable_size);
  if (u) sm_libc_usable_size = (size_t(*)(void *))u;
  if (sm_opt.verbose) sm_options_print(&sm_opt);
  sm_tracer_init();
  /* Before main(), where a Python interpreter reads PYTHONMALLOC. */
  sm_python_environ();
  __cxa_atexit(at_process_end, NULL, NULL);
}
