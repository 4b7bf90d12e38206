/* The internal metadata arena: memory for heaps and for the tracer's tables
 * (uthash routes uthash_malloc/uthash_free here). It never calls the public
 * malloc, so it is safe from inside the allocator and the tracer.
 *
 * Power-of-two size classes from 16 B to 64 KiB, each with a free list,
 * carved from 1 MiB mmap'd chunks; bigger requests get their own mapping.
 * Callers pass the size back to sm_meta_free (uthash does), so blocks carry no
 * header. One lock; metadata allocation is rare next to malloc. */
#include <string.h>

#include "allocator/internal.h"

#define META_MIN_SHIFT 4
#define META_MAX_SHIFT 16
#define META_CHUNK (1u << 20)

static struct {
  sm_lock_t lock; /* lock order: tracer/locks.c */
  void *free[META_MAX_SHIFT + 1]; /* free lists by log2(size) */
  uint8_t *bump;                  /* unused tail of the current chunk */
  size_t bump_left;
  size_t mapped;                  /* bytes mapped for metadata */
} meta = {SM_LOCK_INIT, {0}, NULL, 0, 0};

/* Every mapping of the arena, so the leak scanner can leave them out of its
 * roots (they hold block addresses that are not the program's). */
#define META_RANGES 4096
static SM_BIG_BSS struct {
  uintptr_t start, len;
} ranges[META_RANGES];
static unsigned nranges;

static void range_add_locked(void *p, size_t len) {
  static bool told;
  if (nranges < META_RANGES) {
    ranges[nranges].start = (uintptr_t)p;
    ranges[nranges].len = len;
    nranges++;
  } else if (!told) {
    /* Only the leak scan reads the list; a mapping missing from it is
     * scanned as if it were the program's, so tracer tables there can make
     * leaked blocks look reachable. Said once. */
    told = true;
    sm_warning("more than %u metadata mappings: the leak analysis may miss leaks (tracer tables scanned as "
               "program memory)", (unsigned)META_RANGES);
  }
}

static void range_remove_locked(void *p) {
  for (unsigned i = 0; i < nranges; i++)
    if (ranges[i].start == (uintptr_t)p) {
      ranges[i] = ranges[--nranges];
      return;
    }
}

unsigned sm_meta_ranges(uintptr_t *starts, uintptr_t *lens, unsigned max) {
  unsigned n = nranges < max ? nranges : max;
  for (unsigned i = 0; i < n; i++) {
    starts[i] = ranges[i].start;
    lens[i] = ranges[i].len;
  }
  return n;
}

static unsigned meta_shift(size_t size) {
  if (size <= (1u << META_MIN_SHIFT)) return META_MIN_SHIFT;
  return sm_log2(size - 1) + 1;
}

SM_RUNTIME void *sm_meta_alloc(size_t size) {
  if (size == 0) size = 1;
  if (size > (1u << META_MAX_SHIFT)) {
    size_t len = sm_align_up(size, sm_os_page_size);
    void *p = sm_os_map(len);
    if (p) {
      __atomic_add_fetch(&meta.mapped, len, __ATOMIC_RELAXED);
      sm_lock(&meta.lock);
      range_add_locked(p, len);
      sm_unlock(&meta.lock);
    }
    return p; /* fresh mappings are zeroed */
  }
  unsigned s = meta_shift(size);
  size_t bsize = (size_t)1 << s;
  void *p;
  bool reused;
  sm_lock(&meta.lock);
  p = meta.free[s];
  reused = p != NULL;
  if (p) {
    meta.free[s] = *(void **)p;
  } else {
    if (meta.bump_left < bsize) {
      /* The rest of the old chunk is dropped into the free lists. */
      while (meta.bump_left >= (1u << META_MIN_SHIFT)) {
        unsigned t = sm_log2(meta.bump_left);
        if (t > META_MAX_SHIFT) t = META_MAX_SHIFT;
        *(void **)meta.bump = meta.free[t];
        meta.free[t] = meta.bump;
        meta.bump += (size_t)1 << t;
        meta.bump_left -= (size_t)1 << t;
      }
      uint8_t *chunk = sm_os_map(META_CHUNK);
      if (!chunk) {
        sm_unlock(&meta.lock);
        return NULL;
      }
      __atomic_add_fetch(&meta.mapped, META_CHUNK, __ATOMIC_RELAXED); /* also changed without the lock */
      range_add_locked(chunk, META_CHUNK);
      meta.bump = chunk;
      meta.bump_left = META_CHUNK;
    }
    p = meta.bump;
    meta.bump += bsize;
    meta.bump_left -= bsize;
  }
  sm_unlock(&meta.lock);
  /* A chunk's untouched part is as the kernel mapped it, zero: clearing it
   * would only make its pages resident (a heap's 3 KiB takes a 4 KiB
   * block, a segment-map leaf 8 KiB of which a process uses a few bytes). */
  if (reused) memset(p, 0, size);
  return p;
}

SM_RUNTIME void sm_meta_free(void *p, size_t size) {
  if (!p) return;
  if (size == 0) size = 1;
  if (size > (1u << META_MAX_SHIFT)) {
    size_t len = sm_align_up(size, sm_os_page_size);
    sm_lock(&meta.lock);
    range_remove_locked(p);
    sm_unlock(&meta.lock);
    sm_os_unmap(p, len);
    __atomic_sub_fetch(&meta.mapped, len, __ATOMIC_RELAXED);
    return;
  }
  unsigned s = meta_shift(size);
  sm_lock(&meta.lock);
  *(void **)p = meta.free[s];
  meta.free[s] = p;
  sm_unlock(&meta.lock);
}

size_t sm_meta_mapped(void) { return __atomic_load_n(&meta.mapped, __ATOMIC_RELAXED); }

/* For the lock table (tracer/locks.c), which orders every lock. */
sm_lock_t *const sm_meta_lock_ref = &meta.lock;
