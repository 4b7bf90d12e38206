/* Tags: the tracer's per-block record (trace id and requested size), kept in
 * the allocator's own metadata so that free() finds it where it already
 * looks (DESIGN.md section 1): a side array per pool page, allocated from the
 * metadata arena the first time a block of the page is tagged; fields of the
 * header for large and huge blocks. Trace id 0 means "not traced".
 *
 * A tag is written by the thread that allocated the block (the page owner)
 * before the pointer is returned, and taken (read and cleared) by whichever
 * thread frees it, before the block goes back to a free list. */
#include "allocator/internal.h"

/* With sampling, few blocks carry a tag: each page counts its tagged blocks
 * so that free() skips the side array of a page without any. When every
 * block is traced the count would only cost two atomic operations per
 * block, so it is kept only when sampling. */
bool sm_tag_counted;

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
    /* Uncounted, `tagged` is 1 from the page's first tag on, so that free()
     * tests one field in both modes. */
    if (!sm_tag_counted) __atomic_store_n(&pg->tagged, 1, __ATOMIC_RELEASE);
  }
  size_t idx = sm_class_div((size_t)((const uint8_t *)p - pg->start), pg->cls);
  return &tags[idx];
}

static SM_NOINLINE bool tag_set_slow(sm_segment_t *seg, void *p, uint32_t trace, size_t request);

/* The common case inline and without a frame: a pool block, its page's side
 * array already there, and no count to keep (every block traced). */
bool sm_tag_set(void *p, uint32_t trace, size_t request) {
  sm_segment_t *seg = sm_segment_of(p);
  if (SM_LIKELY(seg && seg->kind == SM_SEG_POOL && !sm_tag_counted)) {
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
    uint64_t *slot = pool_tag_slot(seg, p, trace != 0);
    if (!slot) return trace == 0;
    int delta = (trace != 0) - ((uint32_t)*slot != 0);
    *slot = trace | (uint64_t)request << 32;
    if (delta && sm_tag_counted) __atomic_add_fetch(&page_of(seg, p)->tagged, (uint32_t)delta, __ATOMIC_RELAXED);
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
  /* Sampling tags few blocks: most frees stop at the counter, without
   * touching the side array. */
  if (sm_tag_counted && !__atomic_load_n(&pg->tagged, __ATOMIC_RELAXED)) return 0;
  uint64_t *tags = __atomic_load_n(&pg->tags, __ATOMIC_ACQUIRE);
  if (!tags) return 0;
  uint64_t *slot = &tags[sm_class_div((size_t)((const uint8_t *)p - pg->start), pg->cls)];
  uint64_t v = *slot;
  if (!v) return 0;
  sm_tag_clear(pg, slot);
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
