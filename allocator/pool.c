/* Small and medium blocks: pages of one size class inside pool segments.
 *
 * The fast paths (alloc.c) pop from and push to page->free (LIFO: a block
 * freed is the page's next one handed out, while it is still in cache)
 * with no lock and no atomic; the owner's slow-path frees go to
 * page->local_free. This file is everything else: finding a page
 * with free blocks, carving new pages, collecting blocks other threads freed
 * (page->thread_free, an atomic stack), retiring empty pages, purging their
 * memory, and handing segments over when a thread exits.
 *
 * A page is on exactly one of its heap's lists: avail[cls] (may have free
 * blocks; its first page is heap->cur[cls]) or full[cls] (exhausted when last
 * looked at). A remote free to a page on a full list bumps heap->full_pending
 * so that the owner sweeps its full lists before carving a new page; every
 * eighth fresh page sweeps them anyway, for the frees that raced with a page
 * going full.
 * Only the owner thread touches a page's lists and counters. */
#include <errno.h>

#include "allocator/check.h"
#include "allocator/internal.h"

/* ---------------------------------------------------------------- lists */

static void update_cur(sm_heap_t *h, unsigned cls) {
  sm_heap_set_cur(h, cls, h->avail[cls].first ? h->avail[cls].first : &sm_page_empty);
}

static void seg_list_remove(sm_heap_t *h, sm_segment_t *seg) {
  sm_list_remove(&h->segs[sm_pool_kind(seg->page_shift)], seg, next, prev);
}

static void seg_list_push(sm_heap_t *h, sm_segment_t *seg, bool front) {
  sm_seglist_t *l = &h->segs[sm_pool_kind(seg->page_shift)];
  if (front) sm_list_push_front(l, seg, next, prev);
  else sm_list_push_back(l, seg, next, prev);
}

bool sm_zero_carved;
size_t sm_pool_assigned_bytes;

/* ---------------------------------------------------------------- pages */

static size_t page_index(const sm_segment_t *seg, const sm_page_t *pg) { return (size_t)(pg - seg->pages); }
/* Page descriptors live in their segment's header. */
static sm_segment_t *page_segment(const sm_page_t *pg) {
  return (sm_segment_t *)sm_align_down((uintptr_t)pg, SM_SEGMENT_SIZE);
}
static size_t page_bytes(const sm_segment_t *seg) { return (size_t)1 << seg->page_shift; }

static uint8_t *page_end(const sm_segment_t *seg, const sm_page_t *pg) {
  return (uint8_t *)seg + ((page_index(seg, pg) + 1) << seg->page_shift);
}

/* Carves up to 4 KiB of new blocks onto the free list (at least one), so a
 * page's memory is touched only as it is used: a small program that uses
 * a dozen classes commits a dozen OS pages, not a dozen times 16 KiB
 * (bench `loop 1`: peak RSS 1.89 -> 1.75 MiB); a page that fills calls
 * this again every 4 KiB of blocks. Every block on a list is
 * marked free, fresh ones included: a free of a block never handed out is a
 * double free too. */
SM_RUNTIME static void page_extend(sm_page_t *pg) {
  uint32_t n = pg->reserved - pg->capacity;
  uint32_t step = (uint32_t)(4 * SM_KiB / pg->block_size);
  if (step == 0) step = 1;
  if (n > step) n = step;
  uint8_t *p = pg->start + (size_t)pg->capacity * pg->block_size;
  size_t bs = pg->block_size;
  /* A page that served another size class before holds that class's free
   * links at offsets the new blocks' own link does not overwrite; while a
   * leak scan may run they would pass for the program's pointers. */
  if (SM_UNLIKELY(sm_zero_carved)) __builtin_memset(p, 0, (size_t)n * bs);
  for (uint32_t i = 0; i < n; i++) {
    sm_block_t *b = (sm_block_t *)(p + i * bs);
    b->next = i + 1 < n ? (sm_block_t *)(p + (i + 1) * bs) : pg->free;
    b->mark = sm_marks.local;
  }
  pg->free = (sm_block_t *)p;
  __atomic_store_n(&pg->capacity, pg->capacity + n, __ATOMIC_RELAXED); /* remote frees read it */
  __atomic_store_n(&pg->qlimit, pg->capacity * sm_block_excess(pg->block_size), __ATOMIC_RELAXED);
}

/* A remote list that does not hold up: a block on it twice, or one the
 * owner freed as well (a double free that raced), or more blocks than are
 * in use. Reported before any of them can be handed out again. */
static SM_NOINLINE SM_COLD SM_NORETURN void bad_remote_list(const sm_page_t *pg, const sm_block_t *b, uint32_t n) {
  if (n > pg->used)
    sm_fatal("free(): double free detected in a %u-byte pool page at %p (at least %u blocks freed from other "
             "threads, %u in use; %p among them)", pg->block_size, (void *)pg->start, n, pg->used, (const void *)b);
  sm_fatal("free(): double free of %p (%u-byte block, freed by its owner thread and by another)", (const void *)b,
           pg->block_size);
}

/* Appends list (head..tail) to the page's free list. */
static void free_append(sm_page_t *pg, sm_block_t *head, sm_block_t *tail) {
  tail->next = pg->free;
  pg->free = head;
}

/* Moves local_free and thread_free onto free. Returns true if any block came back.
 * The remote list is walked anyway (for its tail and length); the walk
 * also checks each block's mark and stops after `used` blocks, so a list
 * made circular by a double free is reported, never followed forever. */
SM_RUNTIME static bool page_collect(sm_page_t *pg) {
  bool got = false;
  if (pg->local_free) {
    if (!pg->free) { /* the usual case: just swap the lists */
      pg->free = pg->local_free;
    } else {
      sm_block_t *tail = pg->local_free;
      for (uint32_t n = 1; tail->next; n++) {
        if (SM_UNLIKELY(n > pg->capacity))
          sm_fatal("free(): double free detected in a %u-byte pool page at %p (its free list is circular)",
                   pg->block_size, (void *)pg->start);
        tail = tail->next;
      }
      free_append(pg, pg->local_free, tail);
    }
    pg->local_free = NULL;
    got = true;
  }
  if (__atomic_load_n(&pg->thread_free, __ATOMIC_RELAXED)) {
    sm_block_t *list = __atomic_exchange_n(&pg->thread_free, NULL, __ATOMIC_ACQUIRE);
    if (list) {
      uint32_t n = 0;
      sm_block_t *tail = NULL;
      for (sm_block_t *b = list; b; b = b->next) {
        if (SM_UNLIKELY(++n > pg->used || b->mark != sm_marks.remote)) bad_remote_list(pg, b, n);
        b->mark = sm_marks.local;
        tail = b;
      }
      sm_page_set_used(pg, pg->used - n);
      free_append(pg, list, tail);
      got = true;
    }
  }
  sm_check_page(pg);
  return got;
}

/* Takes an unassigned page of the heap's segments of this page size, or
 * NULL. Prefers pages still committed from earlier use. */
SM_RUNTIME static sm_page_t *take_free_page(sm_heap_t *h, unsigned kind) {
  sm_segment_t *seg = h->segs[kind].first;
  if (!seg || !seg->free_mask) return NULL; /* segments with free pages come first */
  uint64_t pick = seg->free_mask & seg->dirty_mask;
  if (!pick) pick = seg->free_mask;
  unsigned i = (unsigned)__builtin_ctzll(pick);
  uint64_t bit = (uint64_t)1 << i;
  if (seg->dirty_mask & bit) h->dirty_bytes -= page_bytes(seg);
  seg->free_mask &= ~bit;
  seg->dirty_mask &= ~bit;
  seg->pages_used++;
  if (!seg->free_mask && seg->next) { /* full: to the back */
    seg_list_remove(h, seg);
    seg_list_push(h, seg, false);
  }
  return &seg->pages[i];
}

static void page_assign(sm_segment_t *seg, sm_page_t *pg, unsigned cls) {
  uint32_t bs = sm_class_size[cls];
  /* pool_layout leaves it zero (segment.c): written here, at the page's
   * first assignment and again, the same address, at every later one;
   * like mulc, before qlimit says that the page has blocks. */
  size_t i = page_index(seg, pg);
  pg->start = (uint8_t *)seg + (i == 0 ? sm_segment_header_size() : i << seg->page_shift);
  __atomic_store_n(&pg->block_size, bs, __ATOMIC_RELAXED); /* statistics read it */
  pg->cls = (uint8_t)cls;
  pg->reserved = (uint32_t)((size_t)(page_end(seg, pg) - pg->start) / bs);
  __atomic_store_n(&pg->capacity, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&pg->qlimit, 0, __ATOMIC_RELAXED);
  pg->mulc = sm_block_mulc(bs);
  sm_page_set_used(pg, 0);
  pg->free = NULL;
  pg->local_free = NULL;
  __atomic_store_n(&pg->thread_free, NULL, __ATOMIC_RELAXED);
  /* Remote frees read these two atomically (sm_pool_free_remote). */
  __atomic_store_n(&pg->in_full, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&pg->assigned, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&sm_pool_assigned_bytes, page_bytes(seg), __ATOMIC_RELAXED);
  pg->next = pg->prev = NULL;
}

static void segment_release(sm_heap_t *h, sm_segment_t *seg) {
  seg_list_remove(h, seg);
  h->dirty_bytes -= (size_t)sm_popcount64(seg->dirty_mask) * page_bytes(seg);
  sm_segment_pool_free(seg);
}

static void purge_pages(sm_heap_t *h, bool all, uint32_t cutoff);

/* Gives an empty page back to its segment; its memory stays committed until
 * sm_purge_due() says otherwise. */
SM_RUNTIME static void page_unassign(sm_heap_t *h, sm_segment_t *seg, sm_page_t *pg) {
  sm_check_page(pg);
  sm_assert(pg->used == 0 && __atomic_load_n(&pg->thread_free, __ATOMIC_RELAXED) == NULL);
  uint64_t bit = (uint64_t)1 << page_index(seg, pg);
  if (pg->tags) {
    sm_meta_free(pg->tags, (size_t)pg->reserved * sizeof(uint64_t));
    pg->tags = NULL;
  }
  __atomic_store_n(&pg->assigned, 0, __ATOMIC_RELAXED);
  __atomic_sub_fetch(&sm_pool_assigned_bytes, page_bytes(seg), __ATOMIC_RELAXED);
  __atomic_store_n(&pg->block_size, 0, __ATOMIC_RELAXED);
  pg->reserved = 0;
  sm_page_set_used(pg, 0);
  __atomic_store_n(&pg->capacity, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&pg->qlimit, 0, __ATOMIC_RELAXED); /* a free into the page now fails the block test */
  pg->free = pg->local_free = NULL;
  bool was_full = seg->free_mask == 0;
  size_t bytes = page_bytes(seg);
  pg->freed_at = sm_now32();
  seg->free_mask |= bit;
  seg->dirty_mask |= bit;
  seg->pages_used--;
  h->dirty_bytes += bytes;
  h->pages_bytes -= bytes;
  if (seg->pages_used == 0) {
    segment_release(h, seg); /* seg and pg are gone after this */
  } else if (was_full) { /* has a free page again: to the front */
    seg_list_remove(h, seg);
    seg_list_push(h, seg, true);
  }
  uint32_t cutoff = 0;
  sm_purge_t how = sm_purge_due(h->dirty_bytes, h->pages_bytes, sm_opt.retain, &h->purge, &cutoff);
  if (how != SM_PURGE_NONE) purge_pages(h, how == SM_PURGE_ALL, cutoff);
  sm_heaps_expire_parked(); /* the heaps of exited threads nobody replaced */
}

/* Purges the heap's unassigned committed pages: all, or those retired by
 * `cutoff`. */
static void purge_pages(sm_heap_t *h, bool all, uint32_t cutoff) {
  for (unsigned k = 0; k < 2; k++) {
    for (sm_segment_t *seg = h->segs[k].first; seg; seg = seg->next) {
      uint64_t due = all ? seg->dirty_mask : 0;
      for (uint64_t d = all ? 0 : seg->dirty_mask; d; d &= d - 1) {
        unsigned i = (unsigned)__builtin_ctzll(d);
        if (sm_freed_by(seg->pages[i].freed_at, cutoff)) due |= (uint64_t)1 << i;
      }
      if (due) h->dirty_bytes -= sm_segment_purge_pages(seg, due) * page_bytes(seg);
    }
  }
}

void sm_pool_purge(sm_heap_t *h) { purge_pages(h, true, 0); }

/* Purges [lo, hi) of seg, barring huge pages from seg first (segment.c). */
static size_t purge_span(sm_segment_t *seg, uintptr_t lo, uintptr_t hi) {
  sm_segment_thp_purging(seg);
  sm_os_purge((void *)lo, hi - lo);
  return hi - lo;
}

/* malloc_trim's part inside the pages that stay assigned: as glibc's
 * malloc_trim returns the middle of its free chunks. After a program
 * shrinks, a few survivors pin their pages (512 KiB each for the medium
 * classes) and everything free around them stays committed: on bench/peak,
 * 6.8 MB in use held 352 MB of pages. This returns the whole OS pages
 * inside each free block past its link and mark (the block's first page
 * keeps them, so the lists stay as they are), and each page's end beyond
 * the blocks carved so far. Blocks of 4 KiB or less hold no whole OS page
 * past their first 16 bytes: a small page pinned by one survivor stays.
 * The owner's lists only: blocks other threads freed since the last
 * collect wait for the next trim. One call per block. A link that is not a
 * free block of the page (a carved block's start, with the owner's free
 * mark) ends the walk of its list: memory is purged only where a block of
 * ours is known to be free. */
static size_t purge_in_pages(sm_heap_t *h) {
  const uintptr_t os = sm_os_page_size;
  size_t purged = 0;
  for (unsigned k = 0; k < 2; k++) {
    for (sm_segment_t *seg = h->segs[k].first; seg; seg = seg->next) {
      for (uint32_t i = 0; i < seg->page_count; i++) {
        sm_page_t *pg = &seg->pages[i];
        if (!pg->assigned) continue;
        uintptr_t bs = pg->block_size, start = (uintptr_t)pg->start, end = (uintptr_t)page_end(seg, pg);
        uintptr_t carved = start + (uintptr_t)pg->capacity * bs, tail = sm_align_up(carved, os);
        if (tail < end) purged += purge_span(seg, tail, end);
        if (bs <= os) continue; /* no block holds a whole OS page */
        sm_block_t *lists[2] = {pg->free, pg->local_free};
        for (unsigned l = 0; l < 2; l++) {
          uint32_t n = 0;
          for (sm_block_t *b = lists[l]; b && n < pg->capacity; b = b->next, n++) {
            uintptr_t a = (uintptr_t)b;
            if (a < start || a >= carved || (a - start) % bs || b->mark != sm_marks.local) break;
            uintptr_t lo = sm_align_up(a + sizeof *b, os), hi = sm_align_down(a + bs, os);
            if (lo < hi) purged += purge_span(seg, lo, hi);
          }
        }
      }
    }
  }
  return purged;
}

size_t sm_pool_trim(sm_heap_t *h) {
  size_t dirty = h->dirty_bytes;
  purge_pages(h, true, 0);
  return dirty + purge_in_pages(h);
}

static void count_assigned(sm_segment_t *seg, void *arg) {
  if (seg->kind != SM_SEG_POOL) return;
  for (uint32_t i = 0; i < seg->page_count; i++)
    if (seg->pages[i].assigned) *(size_t *)arg += page_bytes(seg);
}

void sm_pool_recount_assigned(void) {
  size_t bytes = 0;
  sm_segment_foreach(count_assigned, &bytes);
  __atomic_store_n(&sm_pool_assigned_bytes, bytes, __ATOMIC_RELAXED);
}

/* Moves a page to the full list. No fence: a remote free that misses the
 * flag is caught by the periodic sweep (see find_page). */
static void page_to_full(sm_heap_t *h, sm_page_t *pg) {
  unsigned cls = pg->cls;
  sm_list_remove(&h->avail[cls], pg, next, prev);
  sm_list_push_back(&h->full[cls], pg, next, prev);
  __atomic_store_n(&pg->in_full, 1, __ATOMIC_RELAXED);
}

SM_RUNTIME static void page_from_full(sm_heap_t *h, sm_page_t *pg, bool front) {
  unsigned cls = pg->cls;
  sm_list_remove(&h->full[cls], pg, next, prev);
  __atomic_store_n(&pg->in_full, 0, __ATOMIC_RELAXED);
  if (front) sm_list_push_front(&h->avail[cls], pg, next, prev);
  else sm_list_push_back(&h->avail[cls], pg, next, prev);
}

/* Collects every page of the full lists that other threads freed into. */
static void sweep_full(sm_heap_t *h) {
  for (unsigned cls = 0; cls < SM_CLASS_COUNT; cls++) {
    sm_page_t *pg = h->full[cls].first;
    while (pg) {
      sm_page_t *next = pg->next;
      if (__atomic_load_n(&pg->thread_free, __ATOMIC_RELAXED) && page_collect(pg)) {
        page_from_full(h, pg, false);
        update_cur(h, cls);
      }
      pg = next;
    }
  }
}

/* A page of class cls with at least one free block, made heap->cur[cls]. */
SM_RUNTIME static sm_page_t *find_page(sm_heap_t *h, unsigned cls) {
  sm_pagelist_t *q = &h->avail[cls];
  for (int round = 0; round < 2; round++) {
    sm_page_t *pg = q->first;
    while (pg) {
      sm_page_t *next = pg->next;
      if (!pg->free) page_collect(pg);
      if (!pg->free && pg->capacity < pg->reserved) page_extend(pg);
      if (pg->free) {
        if (pg != q->first) {
          sm_list_remove(q, pg, next, prev);
          sm_list_push_front(q, pg, next, prev);
        }
        if (h->cur[cls] != pg) sm_heap_set_cur(h, cls, pg);
        return pg;
      }
      page_to_full(h, pg);
      pg = next;
    }
    if (round == 0 && __atomic_load_n(&h->full_pending, __ATOMIC_RELAXED)) {
      __atomic_store_n(&h->full_pending, 0, __ATOMIC_RELAXED);
      sweep_full(h);
    } else {
      break;
    }
  }
  /* Before a fresh page, now and then look at the full lists even unasked:
   * a remote free can miss the in_full flag of a page going full. */
  if ((++h->fresh_pages & 7) == 0) {
    sweep_full(h);
    if (q->first) return find_page(h, cls);
  }
  /* A fresh page: from our segments, an abandoned one, or a new segment. */
  unsigned shift = cls <= SM_CLASS_SMALL_LAST ? SM_SMALL_PAGE_SHIFT : SM_MEDIUM_PAGE_SHIFT;
  unsigned kind = sm_pool_kind(shift);
  sm_page_t *pg = take_free_page(h, kind);
  bool released = false;
  while (!pg) {
    sm_segment_t *seg = sm_segment_take_abandoned(shift);
    if (seg) {
      sm_pool_adopt(h, seg);
      if (q->first) { /* the adopted segment had pages of this class */
        update_cur(h, cls);
        return find_page(h, cls);
      }
      pg = take_free_page(h, kind);
      continue;
    }
    seg = sm_segment_pool_alloc(shift);
    if (!seg && !released && sm_release_reserves()) {
      released = true; /* once: parked heaps' segments may be adoptable now */
      continue;
    }
    if (!seg) {
      update_cur(h, cls);
      return NULL;
    }
    __atomic_store_n(&seg->heap, h, __ATOMIC_RELEASE);
    seg_list_push(h, seg, true);
    pg = take_free_page(h, kind);
  }
  sm_segment_t *seg = page_segment(pg);
  page_assign(seg, pg, cls);
  h->pages_bytes += page_bytes(seg);
  page_extend(pg);
  sm_list_push_front(q, pg, next, prev);
  sm_heap_set_cur(h, cls, pg);
  return pg;
}

SM_RUNTIME SM_NOINLINE void *sm_pool_malloc_slow(sm_heap_t *h, size_t size) {
  if (h == &sm_heap_empty) {
    h = sm_heap_get_or_create();
    if (!h) {
      errno = ENOMEM;
      return NULL;
    }
  }
  unsigned cls = sm_size_class(size);
  sm_page_t *pg = h->cur[cls];
  if (!pg->free) pg = find_page(h, cls);
  if (SM_UNLIKELY(!pg)) {
    errno = ENOMEM;
    return NULL;
  }
  sm_block_t *b = pg->free;
  pg->free = b->next;
  sm_page_set_used(pg, pg->used + 1);
  b->mark = 0;
  return b;
}

/* ---------------------------------------------------------------- frees */

static bool is_block_start(const sm_page_t *pg, const void *p) {
  if ((const uint8_t *)p < pg->start) return false;
  size_t off = (size_t)((const uint8_t *)p - pg->start);
  uint32_t idx = sm_class_div(off, pg->cls);
  return (size_t)idx * pg->block_size == off && idx < __atomic_load_n(&pg->capacity, __ATOMIC_RELAXED);
}

/* Names what is wrong with a pointer the checks of free (or, with
 * `realloc`, of realloc) rejected, in one line, and aborts. pg and p come
 * where sm_pool_bad_free has them (the second and third arguments), so
 * that it only sets the first: with them first, link-time optimisation
 * gave the traced free two moves more per tagged block. */
static SM_NORETURN SM_COLD void bad_block(bool realloc, sm_page_t *pg, void *p) {
  const char *call = realloc ? "realloc()" : "free()";
  const uint8_t *q = p;
  if (!__atomic_load_n(&pg->assigned, __ATOMIC_RELAXED))
    sm_fatal("%s: invalid pointer %p (in a pool page that is not in use: freed already, or never allocated)", call, p);
  if (q < pg->start) sm_fatal("%s: invalid pointer %p (inside a pool segment's header, not a block)", call, p);
  size_t off = (size_t)(q - pg->start);
  uint32_t idx = sm_class_div(off, pg->cls);
  const uint8_t *block = pg->start + (size_t)idx * pg->block_size;
  if (idx >= pg->capacity)
    sm_fatal("%s: invalid pointer %p (past the blocks handed out in its %u-byte pool page)", call, p,
             pg->block_size);
  if (block != q)
    sm_fatal("%s: invalid pointer %p (%s: %zu bytes into the %u-byte block at %p)", call, p,
             ((uintptr_t)q & (SM_MIN_ALIGN - 1)) ? "misaligned" : "not the start of a block", (size_t)(q - block),
             pg->block_size, (const void *)block);
  if (realloc) sm_fatal("realloc(): invalid pointer %p (a %u-byte block freed already)", p, pg->block_size);
  sm_fatal("free(): double free of %p (%u-byte block)", p, pg->block_size);
}

/* A free the checks rejected (pool_misuse in alloc.c, the remote path,
 * the slow path). */
SM_NORETURN SM_COLD void sm_pool_bad_free(sm_segment_t *seg, sm_page_t *pg, void *p) {
  (void)seg;
  bad_block(false, pg, p);
}

/* realloc's test of a pool block, made in every mode: a realloc is no fast
 * path, and a block it keeps in place must not be a free one (a traced
 * realloc would tag it, and a tagged block is taken for a live one by the
 * traced free). Not a block start, or marked free by its owner or by
 * another thread: reported, and the process aborts. */
void sm_pool_check_realloc(sm_page_t *pg, void *p) {
  if (SM_UNLIKELY(sm_pool_not_block(pg, (uintptr_t)p - (uintptr_t)pg->start))) bad_block(true, pg, p);
  uintptr_t mark = __atomic_load_n(&((const sm_block_t *)p)->mark, __ATOMIC_RELAXED);
  if (SM_UNLIKELY(mark == sm_marks.local || mark == sm_marks.remote)) bad_block(true, pg, p);
}

/* The owner frees a block and the cheap checks in the fast path flagged it:
 * the page may become empty, may be on the full list, or this is misuse. */
SM_RUNTIME SM_NOINLINE void sm_pool_free_local_slow(sm_segment_t *seg, sm_page_t *pg, sm_block_t *b) {
  if (SM_UNLIKELY(!pg->assigned || pg->used == 0 || !is_block_start(pg, b) || b->mark == sm_marks.local ||
                  b == pg->local_free || b == pg->free))
    sm_pool_bad_free(seg, pg, b);
  sm_heap_t *h = seg->heap;
  b->mark = sm_marks.local;
  b->next = pg->local_free;
  pg->local_free = b;
  sm_page_set_used(pg, pg->used - 1);
  if (pg->in_full) {
    page_from_full(h, pg, false);
    update_cur(h, pg->cls);
  }
  if (pg->used == 0) {
    unsigned cls = pg->cls;
    /* Keep the last page of a class, so a loop that allocates and frees one
     * block does not retire and re-carve a page every time. */
    if (h->avail[cls].first == pg && !pg->next) return;
    sm_list_remove(&h->avail[cls], pg, next, prev);
    update_cur(h, cls);
    page_unassign(h, seg, pg);
  }
}

/* Another thread's free. The block is checked as the owner would (its page
 * fields only grow while it has live blocks, and the caller's own block
 * keeps the page assigned), then marked with an atomic swap: of two threads
 * freeing one block at once, one sees the other's mark. */
SM_RUNTIME SM_NOINLINE void sm_pool_free_remote(sm_segment_t *seg, sm_page_t *pg, sm_block_t *b) {
  if (SM_UNLIKELY(sm_pool_not_block(pg, (uintptr_t)b - (uintptr_t)pg->start))) sm_pool_bad_free(seg, pg, b);
  /* Everything needed from the segment is read while b is still live: once
   * b is pushed, the owner may collect it, empty the page and release the
   * segment. */
  sm_heap_t *owner = __atomic_load_n(&seg->heap, __ATOMIC_ACQUIRE);
  if (!owner) {
    /* The owner exited. Rather than leave the block until some thread needs
     * a fresh segment, the freeing thread adopts the segment, then frees b
     * as its own. */
    sm_heap_t *me = sm_heap_tls;
    if (me != &sm_heap_empty && sm_segment_claim_abandoned(seg)) {
      sm_pool_adopt(me, seg);
      sm_free(b);
      return;
    }
  } else if (SM_UNLIKELY(__atomic_load_n(&owner->is_parked, __ATOMIC_RELAXED))) {
    /* A thread with no heap yet frees a block of a parked heap: it takes
     * that heap rather than another, and its frees of that heap's blocks
     * are its own from here on (a thread taking over an exited thread's
     * work, as in a server's connection handlers). */
    if (sm_heap_tls == &sm_heap_empty && sm_heap_take_parked(owner)) {
      sm_free(b);
      return;
    }
    /* Frees into a parked heap wait until it is taken or released: release
     * it if it was parked long enough (a program whose workers exited and
     * whose main thread only frees what they left). */
    sm_heaps_expire_parked();
  }
  /* With free_checks=0 the mark is read and written without the locked
   * swap: a double free is still caught unless its two frees race, and
   * then page_collect's walk reports the list it made circular. */
  uintptr_t was;
  if (SM_LIKELY(sm_opt.free_checks)) {
    was = __atomic_exchange_n(&b->mark, sm_marks.remote, __ATOMIC_RELAXED);
  } else {
    was = __atomic_load_n(&b->mark, __ATOMIC_RELAXED);
    __atomic_store_n(&b->mark, sm_marks.remote, __ATOMIC_RELAXED);
  }
  if (SM_UNLIKELY(was == sm_marks.local || was == sm_marks.remote)) sm_pool_bad_free(seg, pg, b);
  bool full = __atomic_load_n(&pg->in_full, __ATOMIC_RELAXED);
  sm_block_t *old = __atomic_load_n(&pg->thread_free, __ATOMIC_RELAXED);
  do {
    b->next = old;
  } while (!__atomic_compare_exchange_n(&pg->thread_free, &old, b, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
  /* A page on a full list is not looked at until told: bump the owner's
   * counter. Heap structures are only ever reused as heaps (heap.c), so
   * even a heap that exited meanwhile is safe to bump; it costs a sweep.
   * A page that went full just after we looked is found by the periodic
   * sweep in find_page. */
  if (full && owner) __atomic_add_fetch(&owner->full_pending, 1, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- thread exit */

/* Takes over an abandoned segment: collects every page, frees the empty
 * ones, and queues the rest on h's lists. */
SM_RUNTIME void sm_pool_adopt(sm_heap_t *h, sm_segment_t *seg) {
  __atomic_store_n(&seg->heap, h, __ATOMIC_RELEASE);
  seg->next = seg->prev = NULL;
  seg_list_push(h, seg, seg->free_mask != 0);
  h->dirty_bytes += (size_t)sm_popcount64(seg->dirty_mask) * page_bytes(seg);
  for (uint32_t i = 0; i < seg->page_count; i++) {
    sm_page_t *pg = &seg->pages[i];
    if (!pg->assigned) continue;
    h->pages_bytes += page_bytes(seg);
    pg->next = pg->prev = NULL;
    __atomic_store_n(&pg->in_full, 0, __ATOMIC_RELAXED);
    page_collect(pg);
    if (pg->used == 0) {
      bool last = seg->pages_used == 1;
      page_unassign(h, seg, pg); /* may release the whole segment */
      if (last) return;
      continue;
    }
    if (pg->free || pg->capacity < pg->reserved) {
      sm_list_push_back(&h->avail[pg->cls], pg, next, prev);
      update_cur(h, pg->cls);
    } else {
      sm_list_push_back(&h->full[pg->cls], pg, next, prev);
      __atomic_store_n(&pg->in_full, 1, __ATOMIC_RELAXED);
    }
  }
}

/* The number of blocks on one of a page's lists, or, negated, the
 * sm_pool_check code of why the list does not walk cleanly: a link that is
 * not a block start of the page (1), a block not marked free (5), more
 * blocks than the page has carved: a cycle, or a block listed twice (2). */
static int64_t list_length(const sm_page_t *pg, const sm_block_t *b) {
  int64_t n = 0;
  for (; b; b = b->next) {
    if (!is_block_start(pg, b)) return -1;
    if (b->mark != sm_marks.local) return -5;
    if (++n > pg->capacity) return -2;
  }
  return n;
}

/* In a fork child, for the heap of a thread the fork left behind. That
 * thread may have stopped anywhere: between linking a block onto a list and
 * counting it (a free's push), or between unlinking one and counting it (a
 * malloc's pop). Every page of the heap's segments gets its used count back
 * from its lists, so that releasing the heap and every later check see
 * pages that agree with themselves. A block caught halfway through a pop
 * counts as used (so does a thread_free block, until it is collected): a
 * leak of a block the dead thread held, never one handed out twice. One
 * caught halfway through a push is on a list already, so it counts as free.
 * The free blocks of a page whose lists do not walk cleanly are dropped
 * (leaked). */
void sm_pool_recount_heap(sm_heap_t *h) {
  for (unsigned k = 0; k < 2; k++) {
    for (sm_segment_t *seg = h->segs[k].first; seg; seg = seg->next) {
      for (uint32_t i = 0; i < seg->page_count; i++) {
        sm_page_t *pg = &seg->pages[i];
        if (!pg->assigned) continue;
        int64_t a = list_length(pg, pg->free), b = list_length(pg, pg->local_free);
        if (a < 0 || b < 0 || a + b > pg->capacity) {
          pg->free = pg->local_free = NULL;
          a = b = 0;
        }
        sm_page_set_used(pg, pg->capacity - (uint32_t)(a + b));
      }
    }
  }
}

/* The owner thread is exiting: free every empty page and segment, abandon
 * the segments that still hold live blocks for another thread to adopt. */
SM_RUNTIME void sm_pool_release_heap(sm_heap_t *h) {
  for (unsigned cls = 0; cls < SM_CLASS_COUNT; cls++) {
    sm_pagelist_t *lists[2] = {&h->avail[cls], &h->full[cls]};
    for (int l = 0; l < 2; l++) {
      sm_page_t *pg = lists[l]->first;
      while (pg) {
        sm_page_t *next = pg->next;
        page_collect(pg);
        if (pg->used == 0) {
          sm_list_remove(lists[l], pg, next, prev);
          page_unassign(h, page_segment(pg), pg);
        }
        pg = next;
      }
      lists[l]->first = lists[l]->last = NULL;
    }
    sm_heap_set_cur(h, cls, &sm_page_empty);
  }
  /* Nobody will reuse this thread's free pages soon: give their memory
   * back now rather than leave it in abandoned segments (thread churn). */
  purge_pages(h, true, 0);
  for (unsigned k = 0; k < 2; k++) {
    sm_segment_t *seg = h->segs[k].first;
    while (seg) {
      sm_segment_t *next = seg->next;
      seg->next = seg->prev = NULL;
      sm_segment_abandon(seg);
      seg = next;
    }
    h->segs[k].first = h->segs[k].last = NULL;
  }
  h->dirty_bytes = 0;
}

/* ---------------------------------------------------------------- queries */

void *sm_pool_block_start(sm_segment_t *seg, const void *p, sm_page_t **pagep) {
  sm_page_t *pg = sm_page_of(seg, p);
  if (pagep) *pagep = pg;
  if (!pg->assigned || (const uint8_t *)p < pg->start) return NULL;
  size_t off = (size_t)((const uint8_t *)p - pg->start);
  return pg->start + (size_t)sm_class_div(off, pg->cls) * pg->block_size;
}

/* Checks the heap's direct table: each entry is cur[] of its size's class,
 * but malloc(0)'s, which has no page. */
size_t sm_heap_check(const sm_heap_t *h) {
  if (h->direct[0] != &sm_page_empty) return 1;
  for (size_t i = 1; i < SM_DIRECT_COUNT; i++)
    if (h->direct[i] != h->cur[sm_small_class[i]]) return i + 1;
  return 0;
}

/* Checks one page: every block on free and local_free lies inside the
 * carved part at a block boundary and is marked free, no block is listed
 * twice, and
 * used + listed == capacity (thread_free blocks count as used). */
size_t sm_pool_check(const sm_page_t *pg) {
  if (!pg->assigned) return 0;
  int64_t a = list_length(pg, pg->free);
  if (a < 0) return (size_t)-a;
  int64_t b = list_length(pg, pg->local_free);
  if (b < 0) return (size_t)-b;
  if (a + b > pg->capacity) return 2; /* a block on both lists */
  if ((uint64_t)(a + b) + pg->used != pg->capacity) return 3;
  if (pg->capacity > pg->reserved) return 4;
  return 0;
}

/* ---------------------------------------------------------------- walking */

static void mark_list(const sm_page_t *pg, const sm_block_t *b, uint8_t *bits) {
  for (size_t guard = 0; b && guard <= pg->capacity; b = b->next, guard++) {
    if (!is_block_start(pg, b)) return; /* a list being modified: stop there */
    uint32_t i = sm_class_div((size_t)((const uint8_t *)b - pg->start), pg->cls);
    bits[i >> 3] |= (uint8_t)(1u << (i & 7));
  }
}

void sm_pool_walk(sm_segment_t *seg, sm_block_fn fn, void *arg) {
  uint8_t bits[(1u << SM_SMALL_PAGE_SHIFT) / 16 / 8]; /* one bit per block: at most 64 KiB of 16-byte blocks */
  for (uint32_t p = 0; p < seg->page_count; p++) {
    sm_page_t *pg = &seg->pages[p];
    if (!pg->assigned || pg->capacity == 0) continue;
    size_t nbytes = (pg->capacity + 7) / 8;
    __builtin_memset(bits, 0, nbytes);
    mark_list(pg, pg->free, bits);
    mark_list(pg, pg->local_free, bits);
    mark_list(pg, __atomic_load_n(&pg->thread_free, __ATOMIC_ACQUIRE), bits);
    for (uint32_t i = 0; i < pg->capacity; i++) {
      if (bits[i >> 3] & (1u << (i & 7))) continue;
      uint64_t tag = pg->tags ? pg->tags[i] : 0;
      size_t req = (uint32_t)tag ? (size_t)(tag >> 32) : pg->block_size;
      fn((uintptr_t)(pg->start + (size_t)i * pg->block_size), req, (uint32_t)tag & ~SM_TAG_WATCHED, arg);
    }
  }
}
