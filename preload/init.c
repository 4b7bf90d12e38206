/* Library constructor and destructor: start the allocator early, register
 * the thread-exit hook and the fork handlers, find the C library's own free
 * for foreign pointers, and print options and statistics when verbose.
 * The allocator also initialises itself lazily on the first call, which may
 * come from the dynamic loader long before this constructor runs. */
#include <dlfcn.h>
#include <pthread.h>

#include "allocator/internal.h"
#include "snapmalloc.h"

SM_EXPORT const char *snapmalloc_version(void) { return "0.1.0"; }

__attribute__((constructor(101))) static void snapmalloc_start(void) {
  sm_init();
  sm_heap_key_init();
  /* pthread_atfork may allocate: registered here, where malloc works, and
   * never from inside an allocation. */
  pthread_atfork(sm_heaps_prefork, sm_heaps_postfork_parent, sm_heaps_postfork_child);
  void *f = dlsym(RTLD_NEXT, "free");
  if (f && f != (void *)sm_free) sm_libc_free = (void (*)(void *))f;
  void *r = dlsym(RTLD_NEXT, "realloc");
  if (r && r != (void *)sm_realloc) sm_libc_realloc = (void *(*)(void *, size_t))r;
  void *u = dlsym(RTLD_NEXT, "malloc_usable_size");
  if (u) sm_libc_usable_size = (size_t(*)(void *))u;
  if (sm_opt.verbose) sm_options_print(&sm_opt);
}

__attribute__((destructor(101))) static void snapmalloc_stop(void) {
  if (sm_opt.verbose) sm_stats_print(2);
}
