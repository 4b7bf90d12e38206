/* Huge blocks: one mapping each, released with munmap on free, resized with
 * mremap. The mapping starts at a segment boundary with an sm_segment_t
 * header; the payload follows the header, or for alignments above the
 * segment size sits exactly one segment in, so that (p - 1) still falls in
 * the header's segment. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "allocator/internal.h"

static size_t huge_live_bytes; /* atomic: bytes mapped for huge blocks */

static size_t payload_offset(size_t align) {
  if (align > SM_SEGMENT_SIZE) return SM_SEGMENT_SIZE;
  size_t off = sm_align_up(sizeof(sm_segment_t), 64);
  return align > 16 ? sm_align_up(off, align) : off;
}

SM_RUNTIME void *sm_huge_malloc(size_t size, size_t align) {
  size_t off = payload_offset(align);
  size_t total = sm_align_up(off + size, sm_os_page_size);
  if (total < size) {
    errno = ENOMEM;
    return NULL;
  }
  sm_segment_t *seg = align > SM_SEGMENT_SIZE ? sm_os_map_aligned(total, align, SM_SEGMENT_SIZE)
                                              : sm_os_map_aligned(total, SM_SEGMENT_SIZE, 0);
  if (!seg) {
    errno = ENOMEM;
    return NULL;
  }
  seg->kind = SM_SEG_HUGE;
  seg->size = total;
  seg->huge_request = size;
  seg->huge_offset = off;
  seg->huge_magic = SM_HUGE_MAGIC;
  if (!sm_segmap_set(seg, 1)) {
    sm_os_unmap(seg, total);
    errno = ENOMEM;
    return NULL;
  }
  sm_segment_register(seg);
  __atomic_add_fetch(&huge_live_bytes, total, __ATOMIC_RELAXED);
  return (uint8_t *)seg + off; /* fresh anonymous memory: already zero */
}

static void check_huge(const sm_segment_t *seg, const void *p) {
  if (seg->huge_magic != SM_HUGE_MAGIC || (const uint8_t *)seg + seg->huge_offset != p)
    sm_fatal("free(): invalid pointer %p (inside a huge block that starts at %p)", p,
             (const void *)((const uint8_t *)seg + seg->huge_offset));
}

SM_RUNTIME void sm_huge_free(sm_segment_t *seg, void *p) {
  check_huge(seg, p);
  size_t total = seg->size;
  seg->huge_magic = 0;
  sm_segment_unregister(seg);
  sm_segmap_clear(seg, 1, SM_SEGMAP_FREED);
  __atomic_sub_fetch(&huge_live_bytes, total, __ATOMIC_RELAXED);
  sm_os_unmap(seg, total);
}

size_t sm_huge_usable(const sm_segment_t *seg) { return seg->size - seg->huge_offset; }

/* Resizes in place, or moves the pages (not the bytes) with mremap to a new
 * segment-aligned address. NULL if neither worked; p is then untouched. */
void *sm_huge_realloc(sm_segment_t *seg, void *p, size_t size) {
  check_huge(seg, p);
  size_t off = seg->huge_offset;
  size_t old_total = seg->size;
  size_t total = sm_align_up(off + size, sm_os_page_size);
  if (total < size) return NULL;
  if (total == old_total) {
    seg->huge_request = size;
    return p;
  }
  if (total < old_total || mremap(seg, old_total, total, 0) != MAP_FAILED) {
    if (total < old_total) sm_os_unmap((uint8_t *)seg + total, old_total - total);
    sm_segment_unregister(seg); /* keeps the registry's byte count right */
    seg->size = total;
    seg->huge_request = size;
    sm_segment_register(seg);
    if (total > old_total) __atomic_add_fetch(&huge_live_bytes, total - old_total, __ATOMIC_RELAXED);
    else __atomic_sub_fetch(&huge_live_bytes, old_total - total, __ATOMIC_RELAXED);
    return p;
  }
  /* Reserve an aligned range, then move the mapping onto it. The alignment
   * a caller asked for is not kept (realloc promises only malloc's). */
  uint8_t *raw = sm_os_reserve(total + SM_SEGMENT_SIZE);
  if (!raw) return NULL;
  uint8_t *dst = (uint8_t *)sm_align_up((uintptr_t)raw, SM_SEGMENT_SIZE);
  sm_segment_unregister(seg); /* the header moves: unlink it first */
  /* Forget the old address before it is unmapped: once it is, another
   * thread may map a new segment there and register it. */
  sm_segmap_clear(seg, 1, SM_SEGMAP_FREED);
  void *moved = mremap(seg, old_total, total, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
  if (moved == MAP_FAILED) {
    sm_segmap_set(seg, 1); /* its leaf exists: cannot fail */
    sm_segment_register(seg);
    sm_os_unmap(raw, total + SM_SEGMENT_SIZE);
    return NULL;
  }
  /* MREMAP_FIXED replaced [dst, dst+total) of the reservation; drop the rest. */
  if (dst > raw) sm_os_unmap(raw, (size_t)(dst - raw));
  uint8_t *rend = raw + total + SM_SEGMENT_SIZE;
  if (dst + total < rend) sm_os_unmap(dst + total, (size_t)(rend - (dst + total)));
  sm_segment_t *nseg = (sm_segment_t *)dst;
  nseg->size = total;
  nseg->huge_request = size;
  if (!sm_segmap_set(nseg, 1)) sm_fatal("realloc(): out of memory for the segment map");
  sm_segment_register(nseg);
  __atomic_add_fetch(&huge_live_bytes, total - old_total, __ATOMIC_RELAXED);
  return dst + off;
}

size_t sm_huge_mapped(void) { return __atomic_load_n(&huge_live_bytes, __ATOMIC_RELAXED); }
