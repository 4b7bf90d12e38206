/* Library constructor and destructor: start the allocator early, register
 * the thread-exit hook and the fork handlers, find the C library's own
 * functions for foreign pointers, start the tracer, and print options and
 * statistics when verbose. The allocator also initialises itself lazily on
 * the first call, which may come from the dynamic loader long before this
 * constructor runs.
 *
 * Fork lock order: tracer locks, then the allocator's (heap.c). */
#include <dlfcn.h>
#include <pthread.h>

#include "allocator/internal.h"
#include "tracer/tracer.h"

static void prefork(void) {
  sm_tracer_prefork();
  sm_heaps_prefork();
}

static void postfork_parent(void) {
  sm_heaps_postfork_parent();
  sm_tracer_postfork_parent();
}

static void postfork_child(void) {
  sm_heaps_postfork_child();
  sm_tracer_postfork_child();
}

__attribute__((constructor(101))) static void snapmalloc_start(void) {
  sm_init();
  sm_heap_key_init();
  /* pthread_atfork may allocate: registered here, where malloc works, and
   * never from inside an allocation. */
  pthread_atfork(prefork, postfork_parent, postfork_child);
  void *f = dlsym(RTLD_NEXT, "free");
  if (f && f != (void *)sm_free) sm_libc_free = (void (*)(void *))f;
  void *r = dlsym(RTLD_NEXT, "realloc");
  if (r && r != (void *)sm_realloc) sm_libc_realloc = (void *(*)(void *, size_t))r;
  void *u = dlsym(RTLD_NEXT, "malloc_usable_size");
  if (u) sm_libc_usable_size = (size_t(*)(void *))u;
  if (sm_opt.verbose) sm_options_print(&sm_opt);
  sm_tracer_init();
}

/* Runs from the loader's exit processing, after the program's atexit
 * handlers: the final snapshot sees what the program left behind. */
__attribute__((destructor(101))) static void snapmalloc_stop(void) {
  /* The leak scan reads the exiting stack from about here when it cannot
   * find exit()'s frames. */
  sm_triggers_at_exit((uintptr_t)__builtin_frame_address(0));
  if (sm_opt.verbose) sm_stats_print(2);
  if (sm_opt.trace && (sm_opt.verbose || sm_opt.unwind == SM_UNWIND_CHECK)) {
    uint64_t fell_back, compared, differed;
    sm_unwind_stats(&fell_back, &compared, &differed);
    sm_info("unwind: %llu captures fell back to libunwind; unwind=check compared %llu, %llu differed",
            (unsigned long long)fell_back, (unsigned long long)compared, (unsigned long long)differed);
  }
}
