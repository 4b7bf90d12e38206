/* Tags: the tracer's per-block record (trace id and requested size), kept in
 * the allocator's own metadata so that free() finds it where it already
 * looks (DESIGN.md section 1): a side array per pool page, allocated from the
 * metadata arena the first time a block of the page is tagged; fields of the
 * header for large and huge blocks. Trace id 0 means "not traced".
 *
 * A tag is written by the thread that allocated the block (the page owner)
 * before the pointer is returned, and taken (read and cleared) by whichever
 * thread frees it, before the block goes back to a free list. */
#include <errno.h>

#include "allocator/internal.h"

bool sm_tag_big_only;

/* Why sampling moves the blocks it picks. Tracing every block, free() goes
 * through the traced free (SM_FREE_TRACED, alloc.c), which reads the page's side
 * array. Sampling picks one block in thousands; if those stayed in their
 * pages, every free would have to look for a tag, and most frees of a page
 * that holds one (a busy page, often) would find none. Moved to a large
 * block, a sampled block is found by the free's own lookup of its segment
 * kind, and every pool block's free is the untraced one. What the move
 * costs, once per sampled block: a large block (32 bytes of header, and a
 * payload the pool block's size, 32 bytes at least; most often one that
 * an earlier sampled block of the class left on the large allocator's
 * quick list, large.c) and a pool free; and
 * for calloc and realloc, whose bytes are the caller's, a copy of the
 * request (a malloc's are not: copying them cost the sampled `mixed` bench
 * 80% more instructions, its sampled blocks being mostly the largest). The
 * alignment is what the call promised (16, or memalign's): the block's
 * address is often aligned far more, and asking the arena for that would
 * cut a free gap in front of the block each time. */
void *sm_tag_relocate(void *p, size_t req, unsigned move) {
  sm_segment_t *seg = sm_segment_of(p);
  if (!seg || seg->kind != SM_SEG_POOL) return p;
  /* As usable as the pool block, so that what the call promised beyond
   * the request (pvalloc's page) still holds; and a large block frees into
   * a tree node of 32 bytes: at least that much. */
  size_t n = sm_page_of(seg, p)->block_size;
  size_t align = move & ~(unsigned)SM_MOVE_COPY;
  int saved = errno;
  sm_heap_t *h = sm_heap_get_or_create();
  void *q = h ? sm_large_malloc_moved(h, n < 32 ? 32 : n, align) : NULL;
  errno = saved;
  if (!q) return NULL;
  if (move & SM_MOVE_COPY) __builtin_memcpy(q, p, req);
  sm_free(p);
  return q;
}

static sm_page_t *page_of(sm_segment_t *seg, const void *p) {
  return sm_page_of(seg, p);
}

static uint64_t *pool_tag_slot(sm_segment_t *seg, const void *p, bool create) {
  sm_page_t *pg = page_of(seg, p);
  uint64_t *tags = __atomic_load_n(&pg->tags, __ATOMIC_ACQUIRE);
  if (!tags) {
    if (!create) return NULL;
    tags = sm_meta_alloc((size_t)pg->reserved * sizeof(uint64_t));
    if (!tags) return NULL;
    __atomic_store_n(&pg->tags, tags, __ATOMIC_RELEASE);
  }
  size_t idx = sm_class_div((size_t)((const uint8_t *)p - pg->start), pg->cls);
  return &tags[idx];
}

static SM_NOINLINE bool tag_set_slow(sm_segment_t *seg, void *p, uint32_t trace, size_t request);

/* The common case inline and without a frame: a pool block, its page's side
 * array already there, and no count to keep (every block traced). */
bool sm_tag_set(void *p, uint32_t trace, size_t request) {
  sm_segment_t *seg = sm_segment_of(p);
  if (SM_LIKELY(seg && seg->kind == SM_SEG_POOL && !__atomic_load_n(&sm_tag_big_only, __ATOMIC_RELAXED))) {
    sm_page_t *pg = page_of(seg, p);
    uint64_t *tags = __atomic_load_n(&pg->tags, __ATOMIC_ACQUIRE);
    if (SM_LIKELY(tags != NULL)) {
      tags[sm_class_div((size_t)((const uint8_t *)p - pg->start), pg->cls)] = trace | (uint64_t)request << 32;
      return true;
    }
  }
  return tag_set_slow(seg, p, trace, request);
}

static bool tag_set_slow(sm_segment_t *seg, void *p, uint32_t trace, size_t request) {
  if (!seg) return false;
  switch (seg->kind) {
  case SM_SEG_POOL: {
    /* No pool block has a tag while sampling: the untraced free would
     * leave it behind. */
    if (__atomic_load_n(&sm_tag_big_only, __ATOMIC_RELAXED)) return trace == 0;
    uint64_t *slot = pool_tag_slot(seg, p, trace != 0);
    if (!slot) return trace == 0;
    *slot = trace | (uint64_t)request << 32;
    return true;
  }
  case SM_SEG_LARGE: {
    sm_lblock_t *b = sm_lblock_of(p);
    b->trace = trace;
    b->request = request;
    return true;
  }
  case SM_SEG_HUGE:
    seg->huge_trace = trace;
    seg->huge_request = request;
    return true;
  }
  return false;
}

bool sm_tag_watch(const void *p) {
  sm_segment_t *seg = sm_segment_of(p);
  if (!seg || seg->kind != SM_SEG_POOL) return false;
  sm_page_t *pg = page_of(seg, p);
  uint64_t *tags = __atomic_load_n(&pg->tags, __ATOMIC_ACQUIRE);
  if (!tags || (const uint8_t *)p < pg->start || !pg->block_size) return false;
  size_t off = (size_t)((const uint8_t *)p - pg->start);
  size_t idx = sm_class_div(off, pg->cls);
  if (idx >= __atomic_load_n(&pg->capacity, __ATOMIC_RELAXED) || idx * pg->block_size != off) return false;
  /* Only a free writes the slot of a live block: the block is live, so the
   * bit cannot be lost to a concurrent store. */
  uint64_t v = __atomic_load_n(&tags[idx], __ATOMIC_RELAXED);
  if (!(uint32_t)v) return false;
  if (!(v & SM_TAG_WATCHED)) __atomic_fetch_or(&tags[idx], (uint64_t)SM_TAG_WATCHED, __ATOMIC_RELAXED);
  return true;
}

uint32_t sm_tag_take_pool(sm_page_t *pg, const void *p, size_t *request) {
  uint64_t *tags = __atomic_load_n(&pg->tags, __ATOMIC_ACQUIRE);
  if (!tags) return 0;
  uint64_t *slot = &tags[sm_class_div((size_t)((const uint8_t *)p - pg->start), pg->cls)];
  uint64_t v = *slot;
  if (!v) return 0;
  sm_tag_clear(slot);
  *request = (size_t)(v >> 32);
  return (uint32_t)v;
}

uint32_t sm_tag_take(void *p, size_t *request) {
  sm_segment_t *seg = sm_segment_of(p);
  if (!seg) return 0;
  uint32_t trace = 0;
  switch (seg->kind) {
  case SM_SEG_POOL:
    trace = sm_tag_take_pool(page_of(seg, p), p, request);
    break;
  case SM_SEG_LARGE: {
    sm_lblock_t *b = sm_lblock_of(p);
    trace = b->trace;
    *request = b->request;
    b->trace = 0;
    break;
  }
  case SM_SEG_HUGE:
    trace = seg->huge_trace;
    *request = seg->huge_request;
    seg->huge_trace = 0;
    break;
  }
  return trace;
}
