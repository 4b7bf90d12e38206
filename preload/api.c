/* The public API of include/snapmalloc.h. */
#include <errno.h>

#include "allocator/internal.h"
#include "snapmalloc.h"
#include "tracer/tracer.h"

SM_EXPORT const char *snapmalloc_version(void) { return SM_PROJECT_VERSION; /* from meson.build */ }

SM_EXPORT int snapmalloc_snapshot(const char *path) { return sm_snapshot_write(path, 0); }

SM_EXPORT size_t snapmalloc_traced_memory(size_t *peak) { return sm_tracer_current(peak); }

SM_EXPORT void snapmalloc_reset_peak(void) { sm_tracer_reset_peak(); }
