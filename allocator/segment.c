/* Segments: the segment map that tells our pointers from everyone else's, the
 * registry of live segments, the cache of empty pool segments and the list of
 * pool segments abandoned by exited threads.
 *
 * Lock order (see also heap.c): sm_heaps_lock -> arena locks -> seg_lock ->
 * meta lock. seg_lock guards the registry, the cache and the abandoned list,
 * and the pool segments' entries in the segment map. */
#include <string.h>

#include "allocator/internal.h"

SM_BIG_BSS uint8_t *sm_segmap[SM_SEGMAP_TOP];

#define LEAF_SIZE ((size_t)1 << SM_SEGMAP_LEAF_BITS)
#define SEG_CACHE_MAX 8

static sm_lock_t seg_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
static sm_seglist_t registry;         /* every live segment (links: all_next, all_prev) */
static sm_segment_t *cache;           /* empty pool segments, purged (next) */
static size_t cache_count;
static sm_seglist_t abandoned[2];     /* by page kind: 0 small pages, 1 medium (links: next, prev) */
static size_t abandoned_count[2];     /* atomic: peeked at without the lock */
static size_t seg_mapped;             /* bytes in live and cached segments (atomic: read without the lock) */

/* Entry for slot idx, creating its leaf if `create`. Leaves are never freed. */
static uint8_t *segmap_entry(uintptr_t idx, bool create) {
  uintptr_t top = idx >> SM_SEGMAP_LEAF_BITS;
  if (top >= SM_SEGMAP_TOP) return NULL;
  uint8_t *leaf = __atomic_load_n(&sm_segmap[top], __ATOMIC_ACQUIRE);
  if (!leaf && create) {
    uint8_t *fresh = sm_meta_alloc(LEAF_SIZE);
    if (!fresh) return NULL;
    if (__atomic_compare_exchange_n(&sm_segmap[top], &leaf, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      leaf = fresh;
    else
      sm_meta_free(fresh, LEAF_SIZE); /* another thread won; leaf holds its leaf */
  }
  return leaf ? &leaf[idx & (LEAF_SIZE - 1)] : NULL;
}

/* What a pool segment's entry is: SM_SEGMAP_POOL, or POOL_ALT once
 * sm_segment_pool_alt ran (seg_lock: a pool segment's entry is written
 * under it, with this value). */
static uint8_t pool_entry = SM_SEGMAP_POOL;

SM_RUNTIME bool sm_segmap_set(sm_segment_t *seg, size_t slots) {
  uintptr_t idx = (uintptr_t)seg >> SM_SEGMENT_SHIFT;
  /* A big segment's entries are SM_SEGMAP_BIG.. for its slots; one slot
   * more would store the FREED marker. The option ranges keep every
   * segment below this (options.c); refusing here keeps a bug from handing
   * our pointers to glibc. A pool segment is one slot. */
  bool pool = seg->kind == SM_SEG_POOL;
  if (slots > (pool ? 1 : SM_SEGMAP_MAX_SLOTS)) return false;
  for (size_t k = 0; k < slots; k++) {
    uint8_t *e = segmap_entry(idx + k, true);
    if (!e) {
      sm_segmap_clear(seg, k, 0);
      return false;
    }
    __atomic_store_n(e, (uint8_t)(pool ? pool_entry : k + SM_SEGMAP_BIG), __ATOMIC_RELEASE);
  }
  return true;
}

SM_RUNTIME void sm_segmap_clear(sm_segment_t *seg, size_t slots, uint8_t value) {
  uintptr_t idx = (uintptr_t)seg >> SM_SEGMENT_SHIFT;
  if (slots > SM_SEGMAP_MAX_SLOTS) slots = SM_SEGMAP_MAX_SLOTS;
  for (size_t k = 0; k < slots; k++) {
    uint8_t *e = segmap_entry(idx + k, false);
    if (e) __atomic_store_n(e, value, __ATOMIC_RELEASE);
  }
}

unsigned sm_segmap_get(const void *p) {
  uint8_t *e = segmap_entry(((uintptr_t)p - 1) >> SM_SEGMENT_SHIFT, false);
  return e ? __atomic_load_n(e, __ATOMIC_ACQUIRE) : 0;
}

bool sm_segment_is_cached(const void *base) {
  bool found = false;
  sm_lock(&seg_lock);
  for (sm_segment_t *s = cache; s && !found; s = s->next) found = (const void *)s == base;
  sm_unlock(&seg_lock);
  return found;
}

static void registry_add_locked(sm_segment_t *seg) { sm_list_push_front(&registry, seg, all_next, all_prev); }

static void registry_remove_locked(sm_segment_t *seg) { sm_list_remove(&registry, seg, all_next, all_prev); }

SM_RUNTIME void sm_segment_register(sm_segment_t *seg) {
  sm_lock(&seg_lock);
  registry_add_locked(seg);
  __atomic_add_fetch(&seg_mapped, seg->size, __ATOMIC_RELAXED);
  sm_unlock(&seg_lock);
}

SM_RUNTIME void sm_segment_unregister(sm_segment_t *seg) {
  sm_lock(&seg_lock);
  registry_remove_locked(seg);
  __atomic_sub_fetch(&seg_mapped, seg->size, __ATOMIC_RELAXED);
  sm_unlock(&seg_lock);
}

size_t sm_segment_header_size(void) {
  return sm_align_up(sizeof(sm_segment_t) + SM_PAGES_MAX * sizeof(sm_page_t), 4096);
}

/* Transparent huge pages. A 2 MiB page costs one fault where 4 KiB pages
 * cost 512, and one TLB entry; a program that fills a gigabyte spends most
 * of its system time in page faults without them. But the kernel commits a
 * huge page whole at the first touch of any of its bytes. So with
 * thp=auto a segment asks for them only in a heap where that costs little:
 *   - the heap maps `thp_min` bytes or more, so that a partly used 2 MiB
 *     is small against it (a small program keeps 4 KiB pages);
 *   - what is in use (pages assigned to classes, large and huge blocks) is
 *     at least half of what is mapped (not many half-empty segments of
 *     threads that came and went, or of memory freed here and there);
 *   - the process's resident anonymous memory is at least three quarters
 *     of what is in use: the program writes what it allocates (a program
 *     that writes a 64 KiB block at its two ends would have all of it
 *     committed);
 *   - (auto, not dense) the host does not take freed memory back
 *     (sm_os_host_reclaims): there a huge page faulted on memory that was
 *     not lately a huge page costs several times the small pages it
 *     replaces, and a heap that gives memory back faults on such memory
 *     again and again.
 * Huge blocks never ask: a big calloc'd array touched here and there would
 * be committed whole.
 *
 * The other half is giving memory back. The kernel's khugepaged collapses
 * the 4 KiB pages of a range open to huge pages into a huge page again,
 * holes included, so a purge inside such a segment would not stay purged.
 * The first purge of a segment that may have huge pages therefore marks the
 * whole segment MADV_NOHUGEPAGE; the pages it still has stay as they are.
 * A cached pool segment has been purged (all but its header), and asks
 * again when it is reused. */
static bool thp_wanted(void) {
  switch (sm_opt.thp) {
  case SM_THP_ALWAYS: return true;
  case SM_THP_AUTO:
  case SM_THP_DENSE: {
    size_t mapped = __atomic_load_n(&seg_mapped, __ATOMIC_RELAXED);
    if (mapped < sm_opt.thp_min) return false;
    if (sm_opt.thp == SM_THP_AUTO && sm_os_host_reclaims()) return false;
    size_t used = __atomic_load_n(&sm_pool_assigned_bytes, __ATOMIC_RELAXED) + sm_huge_mapped();
    for (unsigned i = 0; i < SM_ARENA_COUNT; i++) used += __atomic_load_n(&sm_arenas[i].inuse_bytes, __ATOMIC_RELAXED);
    if (used == 0 || used < mapped / 2) return false;
    size_t resident = sm_os_anon_resident(); /* 0: not known */
    return resident != 0 && resident >= used / 4 * 3;
  }
  default: return false;
  }
}

SM_RUNTIME uint32_t sm_segment_thp_begin(void *base, size_t size, uint32_t s) {
  if (sm_os_thp == SM_OS_THP_NONE) return s;
  /* Not knowing the kernel's mode, only thp=always asks. */
  bool want = sm_os_thp == SM_OS_THP_UNKNOWN ? sm_opt.thp == SM_THP_ALWAYS : thp_wanted();
  /* The kernel's `always` needs no asking, unless a purge barred it. */
  if (want && ((sm_os_thp == SM_OS_THP_ALWAYS && !(s & SM_SEG_THP_BARRED)) || sm_os_huge_pages(base, size, true)))
    return SM_SEG_THP_MAY;
  /* Not asked (or refused): huge pages all the same where the kernel may
   * give them unasked, unless a purge barred them. */
  if (sm_os_thp == SM_OS_THP_MADVISE || (s & SM_SEG_THP_BARRED)) return s;
  if (sm_opt.thp == SM_THP_NEVER && sm_os_thp == SM_OS_THP_ALWAYS) {
    sm_os_huge_pages(base, size, false);
    return SM_SEG_THP_BARRED;
  }
  return SM_SEG_THP_MAY;
}

void sm_segment_thp_purging(sm_segment_t *seg) {
  if (!(__atomic_load_n(&seg->thp, __ATOMIC_RELAXED) & SM_SEG_THP_MAY)) return;
  /* Barred even if the kernel refused (no huge pages at all, or no room
   * for another mapping): asking again at every purge would not help. */
  sm_os_huge_pages(seg, seg->size, false);
  __atomic_store_n(&seg->thp, SM_SEG_THP_BARRED, __ATOMIC_RELAXED);
}

/* Lays out a pool segment for pages of 2^page_shift bytes: a recycled one
 * has its old header cleared, a fresh mapping reads as zeros already. A
 * page's descriptor is written when the page is first assigned (pool.c),
 * so the header commits only the OS pages of the descriptors in use: 12
 * KiB touched at once were a small program's three segments' 36 KiB. */
static void pool_layout(sm_segment_t *seg, unsigned page_shift, bool fresh) {
  if (!fresh) memset(seg, 0, sm_segment_header_size());
  seg->kind = SM_SEG_POOL;
  seg->page_shift = page_shift;
  seg->size = SM_SEGMENT_SIZE;
  seg->page_count = (uint32_t)(SM_SEGMENT_SIZE >> page_shift);
  seg->free_mask = seg->page_count == 64 ? ~(uint64_t)0 : (((uint64_t)1 << seg->page_count) - 1);
}

sm_segment_t *sm_segment_pool_alloc(unsigned page_shift) {
  sm_segment_t *seg = NULL;
  sm_lock(&seg_lock);
  if (cache) {
    seg = cache;
    cache = seg->next;
    cache_count--;
  }
  sm_unlock(&seg_lock);
  uint32_t thp;
  bool fresh = seg == NULL;
  if (seg) {
    thp = sm_segment_thp_begin(seg, SM_SEGMENT_SIZE, seg->thp);
  } else {
    seg = sm_os_map_aligned(SM_SEGMENT_SIZE, SM_SEGMENT_SIZE, 0);
    if (!seg) return NULL;
    /* Asked before the header is written: the first touch decides the
     * page size of its 2 MiB. */
    thp = sm_segment_thp_begin(seg, SM_SEGMENT_SIZE, 0);
    sm_lock(&seg_lock);
    __atomic_add_fetch(&seg_mapped, SM_SEGMENT_SIZE, __ATOMIC_RELAXED);
    sm_unlock(&seg_lock);
  }
  /* A cached segment was purged when it went in (all but its header), so a
   * recycled one reads as zeros past the header, like a fresh one. */
  pool_layout(seg, page_shift, fresh);
  seg->thp = thp;
  /* The entry under seg_lock, with the registry: sm_segment_pool_alt
   * changes the entries of the registered segments and the value of new
   * ones together. (Taking a leaf takes the metadata lock, below seg_lock
   * in the lock order.) */
  sm_lock(&seg_lock);
  if (!sm_segmap_set(seg, 1)) {
    __atomic_sub_fetch(&seg_mapped, SM_SEGMENT_SIZE, __ATOMIC_RELAXED);
    sm_unlock(&seg_lock);
    sm_os_unmap(seg, SM_SEGMENT_SIZE);
    return NULL;
  }
  registry_add_locked(seg);
  sm_unlock(&seg_lock);
  return seg;
}

void sm_segment_pool_alt(void) {
  sm_lock(&seg_lock);
  if (pool_entry != SM_SEGMAP_POOL_ALT) {
    pool_entry = SM_SEGMAP_POOL_ALT;
    for (sm_segment_t *s = registry.first; s; s = s->all_next)
      if (s->kind == SM_SEG_POOL) sm_segmap_set(s, 1); /* its leaf exists: cannot fail */
  }
  sm_unlock(&seg_lock);
}

SM_RUNTIME unsigned sm_segment_purge_pages(sm_segment_t *seg, uint64_t pages) {
  pages &= seg->dirty_mask;
  unsigned n = (unsigned)sm_popcount64(pages);
  seg->dirty_mask &= ~pages;
  if (pages) sm_segment_thp_purging(seg);
  while (pages) {
    /* One system call per run of neighbouring pages: each call may cost a
     * TLB shootdown on every core the process runs on. */
    unsigned i = (unsigned)__builtin_ctzll(pages);
    uint64_t x = pages >> i;
    unsigned run = ~x ? (unsigned)__builtin_ctzll(~x) : 64;
    uint8_t *start = (uint8_t *)seg + ((size_t)i << seg->page_shift);
    size_t len = (size_t)run << seg->page_shift;
    if (i == 0) { /* the header stays */
      size_t hdr = sm_segment_header_size();
      start += hdr;
      len -= hdr;
    }
    sm_os_purge(start, len);
    pages = run == 64 ? 0 : pages & ~((((uint64_t)1 << run) - 1) << i);
  }
  return n;
}

void sm_segment_pool_free(sm_segment_t *seg) {
  /* The entry with the registry, under seg_lock: sm_segment_pool_alt must
   * not find the segment registered after its entry went to FREED. */
  sm_lock(&seg_lock);
  sm_segmap_clear(seg, 1, SM_SEGMAP_FREED);
  registry_remove_locked(seg);
  sm_unlock(&seg_lock);
  /* Purge what is still committed before caching or unmapping. */
  sm_segment_purge_pages(seg, seg->dirty_mask);
  sm_lock(&seg_lock);
  if (cache_count < SEG_CACHE_MAX) {
    seg->next = cache;
    cache = seg;
    cache_count++;
    seg = NULL;
  } else {
    __atomic_sub_fetch(&seg_mapped, SM_SEGMENT_SIZE, __ATOMIC_RELAXED);
  }
  sm_unlock(&seg_lock);
  if (seg) sm_os_unmap(seg, SM_SEGMENT_SIZE);
}

void sm_segment_abandon(sm_segment_t *seg) {
  unsigned k = sm_pool_kind(seg->page_shift);
  sm_lock(&seg_lock);
  __atomic_store_n(&seg->heap, NULL, __ATOMIC_RELEASE);
  seg->abandoned = 1;
  sm_list_push_front(&abandoned[k], seg, next, prev);
  __atomic_add_fetch(&abandoned_count[k], 1, __ATOMIC_RELAXED);
  sm_unlock(&seg_lock);
}

static void abandoned_remove_locked(sm_segment_t *seg) {
  unsigned k = sm_pool_kind(seg->page_shift);
  sm_list_remove(&abandoned[k], seg, next, prev);
  __atomic_sub_fetch(&abandoned_count[k], 1, __ATOMIC_RELAXED);
  seg->abandoned = 0;
}

sm_segment_t *sm_segment_take_abandoned(unsigned page_shift) {
  unsigned k = sm_pool_kind(page_shift);
  if (!__atomic_load_n(&abandoned_count[k], __ATOMIC_RELAXED)) return NULL;
  sm_lock(&seg_lock);
  sm_segment_t *seg = abandoned[k].first;
  if (seg) abandoned_remove_locked(seg);
  sm_unlock(&seg_lock);
  return seg;
}

bool sm_segment_claim_abandoned(sm_segment_t *seg) {
  bool ok = false;
  sm_lock(&seg_lock);
  if (seg->abandoned) {
    abandoned_remove_locked(seg);
    ok = true;
  }
  sm_unlock(&seg_lock);
  return ok;
}

void sm_segment_foreach_locked(void (*fn)(sm_segment_t *seg, void *arg), void *arg) {
  for (sm_segment_t *s = registry.first; s; s = s->all_next) fn(s, arg);
}

void sm_segment_foreach(void (*fn)(sm_segment_t *seg, void *arg), void *arg) {
  sm_lock(&seg_lock);
  sm_segment_foreach_locked(fn, arg);
  sm_unlock(&seg_lock);
}

/* Unmaps every cached segment (malloc_trim). */
SM_RUNTIME void sm_segment_trim(void) {
  sm_lock(&seg_lock);
  sm_segment_t *list = cache;
  cache = NULL;
  cache_count = 0;
  for (sm_segment_t *s = list; s; s = s->next) __atomic_sub_fetch(&seg_mapped, SM_SEGMENT_SIZE, __ATOMIC_RELAXED);
  sm_unlock(&seg_lock);
  while (list) {
    sm_segment_t *next = list->next;
    sm_os_unmap(list, SM_SEGMENT_SIZE);
    list = next;
  }
}

size_t sm_segment_mapped(void) { return __atomic_load_n(&seg_mapped, __ATOMIC_RELAXED); }

/* For the lock table (tracer/locks.c), which orders every lock. */
sm_lock_t *const sm_seg_lock_ref = &seg_lock;
