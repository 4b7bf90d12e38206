/* The only place uthash.h is included from: its tables live in the
 * metadata arena, never in the heap being traced, and running out of
 * memory is not fatal (the allocation just goes untraced). */
#ifndef SM_TRACER_UTHASH_CFG_H
#define SM_TRACER_UTHASH_CFG_H

#include <string.h>

#include "allocator/internal.h"

#define uthash_malloc(sz) sm_meta_alloc(sz)
#define uthash_free(ptr, sz) sm_meta_free((ptr), (sz))
#define HASH_NONFATAL_OOM 1
/* A file that adds to a table (table.c) defines `static int sm_uthash_oom;`
 * and checks it after adds. */
#define uthash_nonfatal_oom(obj) (sm_uthash_oom = 1)

#include <uthash.h>

#endif
