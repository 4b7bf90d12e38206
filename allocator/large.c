/* Large blocks (above the pool limit, up to the huge threshold): arenas of
 * boundary-tagged blocks, free blocks in a splay tree keyed by (size, address).
 *
 * An arena grows by chunks of `increment` bytes (a large segment each). A
 * chunk is tiled by blocks: each starts with an sm_lblock_t header whose
 * `head` has the block size and INUSE / PREV_INUSE flags, and whose
 * prev_size is valid while the block below is free. A 32-byte sentinel marked
 * in use ends every chunk, so coalescing never walks off either end. A freed
 * block merges with free neighbours at once; a split leaves the remainder
 * free. Free blocks keep committed memory until sm_purge_due() says the
 * arena holds too much of it; then entirely free chunks are unmapped and the
 * pages inside other free blocks are purged.
 *
 * Placement policy (SNAPMALLOC_OPTIONS=policy=...): best fit through the
 * tree (default); first fit and next fit walk the chunks in address order.
 *
 * Each arena has its own lock; a thread uses the arena its heap was given,
 * so threads rarely meet. A block is freed into the arena that owns its chunk.
 *
 * Quick lists. Sparse sampling moves each pool block it picks to a large
 * block of the pool block's size (tag.c), and frees it as a large block:
 * a split, a merge and three tree operations a sample, most of what a
 * sampled allocation costs. Such a block (SM_LB_MOVED) is kept whole when
 * freed, on its arena's list for its size class, up to LB_QUICK_PER_CLASS
 * a class and LB_QUICK_BYTES an arena, and the next move of that class
 * takes it back. A kept block stays in use as far as the boundary tags go
 * (its neighbours do not merge into it) but carries SM_LB_KEPT instead of
 * SM_LB_MAGIC: heap walks (the leak scan) skip it, and freeing it again is
 * reported as a double free. malloc_trim, and a purge of everything, put
 * the kept blocks back into the tree first. */
#include <errno.h>
#include <string.h>

#include "allocator/check.h"
#include "allocator/internal.h"

sm_arena_t sm_arenas[SM_ARENA_COUNT];
/* Arenas that hold a chunk. The arenas are a fixed set that threads share
 * round-robin, not a cache per thread: `retain` is for all of them
 * together, split evenly among those in use, or a program of many threads
 * would keep eight times what a program of one keeps. */
static unsigned arenas_in_use;

#define LB_MIN_SPLIT ((size_t)1024) /* smallest remainder worth a free block */
#define LB_QUICK_PER_CLASS 8           /* kept blocks of one size class, per arena */
#define LB_QUICK_BYTES ((size_t)1024 * 1024) /* kept bytes, per arena */
#define LB_SENTINEL SM_LB_HDR

static void quick_drain(sm_arena_t *a);
static void free_locked(sm_arena_t *a, sm_lblock_t *b);

void sm_large_init(void) {
  for (unsigned i = 0; i < SM_ARENA_COUNT; i++) sm_arenas[i].index = i;
}

/* ---------------------------------------------------------------- helpers */

static size_t lb_size(const sm_lblock_t *b) { return b->head & ~SM_LB_FLAGS; }
static sm_lblock_t *lb_next(const sm_lblock_t *b) { return (sm_lblock_t *)((uint8_t *)b + lb_size(b)); }
static sm_lblock_t *lb_prev(const sm_lblock_t *b) { return (sm_lblock_t *)((uint8_t *)b - b->prev_size); }
static sm_fnode_t *lb_node(const sm_lblock_t *b) { return (sm_fnode_t *)((uint8_t *)b + SM_LB_HDR); }
static sm_lblock_t *node_block(const sm_fnode_t *n) { return (sm_lblock_t *)((uint8_t *)n - SM_LB_HDR); }

static uint8_t *chunk_first(const sm_segment_t *seg) {
  return (uint8_t *)seg + sm_align_up(sizeof(sm_segment_t), 64);
}
static uint8_t *chunk_end(const sm_segment_t *seg) { return (uint8_t *)seg + seg->size - LB_SENTINEL; }

/* The part of a free block that may be committed, as an address range:
 * what was freed since the block's pages were last purged. Merging a freed
 * block into a clean neighbour gives the bounding range of the dirty
 * parts, not the whole block, so that a small free next to a big purged
 * remainder is not taken for megabytes of committed memory (and purged
 * again and again). */
typedef struct span {
  uintptr_t lo, hi; /* empty when lo >= hi */
} span_t;

SM_RUNTIME_DATA static const span_t clean = {0, 0};

static span_t span_of(const sm_lblock_t *b, size_t size) { return (span_t){(uintptr_t)b, (uintptr_t)b + size}; }

static span_t span_union(span_t x, span_t y) {
  if (x.lo >= x.hi) return y;
  if (y.lo >= y.hi) return x;
  return (span_t){x.lo < y.lo ? x.lo : y.lo, x.hi > y.hi ? x.hi : y.hi};
}

static span_t node_dirty(const sm_fnode_t *n) {
  uintptr_t b = (uintptr_t)n - SM_LB_HDR;
  return (span_t){b + n->dirty_lo, b + n->dirty_hi};
}

/* The whole pages of s inside free block b, past its header and tree node:
 * what purging b could return. */
static span_t purgeable_span(const sm_lblock_t *b, span_t s) {
  if (s.lo >= s.hi) return clean;
  uintptr_t lo = sm_align_up((uintptr_t)b + SM_LB_HDR + sizeof(sm_fnode_t), sm_os_page_size);
  uintptr_t hi = sm_align_down((uintptr_t)b + lb_size(b), sm_os_page_size);
  uintptr_t dlo = sm_align_down(s.lo, sm_os_page_size), dhi = sm_align_up(s.hi, sm_os_page_size);
  if (dlo > lo) lo = dlo;
  if (dhi < hi) hi = dhi;
  return lo < hi ? (span_t){lo, hi} : clean;
}

/* Bytes of free block b that purging could return (the arena's dirty_bytes
 * is their sum over its free blocks). */
SM_RUNTIME static size_t purgeable(const sm_lblock_t *b) {
  span_t p = purgeable_span(b, node_dirty(lb_node(b)));
  return p.hi - p.lo;
}

/* An arena's free_bytes and inuse_bytes change under its lock but are read
 * without it (stats.c): relaxed stores. */

/* Makes b (already sized) a free block in the tree; dirty is the part of
 * the memory that may be committed (clipped to the block). The block above
 * gets PREV_INUSE cleared. */
SM_RUNTIME static void make_free(sm_arena_t *a, sm_lblock_t *b, size_t size, span_t dirty) {
  b->head = size | SM_LB_PREV_INUSE; /* free blocks never have a free block below */
  b->magic = 0;
  sm_lblock_t *n = lb_next(b);
  n->prev_size = size;
  n->head &= ~SM_LB_PREV_INUSE;
  sm_fnode_t *node = lb_node(b);
  uintptr_t lo = dirty.lo > (uintptr_t)b ? dirty.lo : (uintptr_t)b;
  uintptr_t hi = dirty.hi < (uintptr_t)b + size ? dirty.hi : (uintptr_t)b + size;
  node->dirty_lo = lo < hi ? (uint32_t)(lo - (uintptr_t)b) : 0;
  node->dirty_hi = lo < hi ? (uint32_t)(hi - (uintptr_t)b) : 0;
  node->freed_at = a->now;
  a->dirty_bytes += purgeable(b);
  __atomic_store_n(&a->free_bytes, a->free_bytes + size, __ATOMIC_RELAXED);
  sm_splay_insert(&a->root, node);
}

/* A block handed out keeps whatever its free node held, and so does a free
 * block merged into its neighbour (its node lands in the middle of the
 * neighbour's payload). Tree links point at other free blocks, which may
 * be handed out later: the leak scan would take a stale link for the
 * program's pointer and call a lost block reachable. So a node's links are
 * cleared whenever it leaves the tree: two stores. */
static void clear_links(sm_fnode_t *node) { node->left = node->right = NULL; }

SM_RUNTIME static void unlink_free(sm_arena_t *a, sm_lblock_t *b) {
  sm_fnode_t *node = lb_node(b);
  sm_splay_remove(&a->root, node);
  clear_links(node); /* it is handed out, or merged into a neighbour's payload */
  __atomic_store_n(&a->free_bytes, a->free_bytes - lb_size(b), __ATOMIC_RELAXED);
  a->dirty_bytes -= purgeable(b);
  if (a->rover == b) a->rover = NULL;
}

/* Marks a (removed) free block of `size` in use, splitting off the tail if
 * the remainder is worth keeping. `dirty` is the free block's dirty range. */
static void take_block(sm_arena_t *a, sm_lblock_t *b, size_t need, span_t dirty) {
  size_t size = lb_size(b);
  if (size - need >= LB_MIN_SPLIT) {
    sm_lblock_t *rest = (sm_lblock_t *)((uint8_t *)b + need);
    b->head = need | (b->head & SM_LB_PREV_INUSE);
    make_free(a, rest, size - need, dirty);
    size = need;
  }
  b->head |= SM_LB_INUSE;
  lb_next(b)->head |= SM_LB_PREV_INUSE;
  /* In a register: merged into one store with the trace's zero, the
   * constant came from .rodata (SM_RUNTIME_DATA says why that matters). */
  uint32_t magic = SM_LB_MAGIC;
  __asm__("" : "+r"(magic));
  b->magic = magic;
  b->trace = 0;
  __atomic_store_n(&a->inuse_bytes, a->inuse_bytes + size, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- placement */

/* First fit in address order of each chunk, starting at `from` (next fit) or
 * at the first chunk. */
static sm_lblock_t *walk_fit(sm_arena_t *a, size_t need, sm_lblock_t *from) {
  for (int pass = 0; pass < 2; pass++) {
    for (sm_segment_t *seg = a->chunks.first; seg; seg = seg->next) {
      sm_lblock_t *b = (sm_lblock_t *)chunk_first(seg);
      uint8_t *end = chunk_end(seg);
      if (from && pass == 0) {
        if ((uint8_t *)from < (uint8_t *)seg || (uint8_t *)from >= end) continue;
        b = from;
      }
      for (; (uint8_t *)b < end; b = lb_next(b))
        if (!(b->head & SM_LB_INUSE) && lb_size(b) >= need) return b;
      if (from && pass == 0) break; /* the rest of the chunks in pass 1 */
    }
    if (!from) break;
  }
  return NULL;
}

/* Finds a free block of at least `need` bytes and takes it out of the tree. */
SM_RUNTIME static sm_lblock_t *find_fit(sm_arena_t *a, size_t need) {
  switch (sm_opt.policy) {
  case SM_POLICY_FIRST:
  case SM_POLICY_NEXT: {
    sm_lblock_t *b = walk_fit(a, need, sm_opt.policy == SM_POLICY_NEXT ? a->rover : NULL);
    if (b) unlink_free(a, b);
    return b;
  }
  default: {
    sm_fnode_t *n = sm_splay_take_best(&a->root, need);
    if (!n) return NULL;
    sm_lblock_t *b = node_block(n);
    /* take_best already removed it from the tree; undo the accounting. */
    __atomic_store_n(&a->free_bytes, a->free_bytes - lb_size(b), __ATOMIC_RELAXED);
    a->dirty_bytes -= purgeable(b);
    if (a->rover == b) a->rover = NULL;
    return b;
  }
  }
}

/* Adds a chunk able to hold a block of `need` bytes. Lock held. */
static bool grow(sm_arena_t *a, size_t need) {
  size_t overhead = sm_align_up(sizeof(sm_segment_t), 64) + LB_SENTINEL;
  size_t size = sm_opt.increment;
  size_t least = sm_align_up(need + overhead, SM_SEGMENT_SIZE);
  if (size < least) size = least;
  sm_segment_t *seg = sm_os_map_aligned(size, SM_SEGMENT_SIZE, 0);
  if (!seg && size > least) seg = sm_os_map_aligned(size = least, SM_SEGMENT_SIZE, 0); /* short of memory */
  if (!seg) return false;
  uint32_t thp = sm_segment_thp_begin(seg, size, 0); /* before the first write (segment.c) */
  memset(seg, 0, sizeof *seg);
  seg->kind = SM_SEG_LARGE;
  seg->size = size;
  seg->arena = a;
  seg->thp = thp;
  if (!sm_segmap_set(seg, size >> SM_SEGMENT_SHIFT)) {
    sm_os_unmap(seg, size);
    return false;
  }
  sm_segment_register(seg);
  sm_list_push_front(&a->chunks, seg, next, prev);
  if (a->chunk_count++ == 0) __atomic_add_fetch(&arenas_in_use, 1, __ATOMIC_RELAXED);
  sm_lblock_t *sentinel = (sm_lblock_t *)chunk_end(seg);
  sentinel->head = SM_LB_INUSE; /* size 0, in use */
  sm_lblock_t *b = (sm_lblock_t *)chunk_first(seg);
  b->head = SM_LB_PREV_INUSE;
  make_free(a, b, (size_t)((uint8_t *)sentinel - (uint8_t *)b), clean); /* fresh pages: not committed */
  return true;
}

static void release_chunk(sm_arena_t *a, sm_segment_t *seg) {
  sm_list_remove(&a->chunks, seg, next, prev);
  if (--a->chunk_count == 0) __atomic_sub_fetch(&arenas_in_use, 1, __ATOMIC_RELAXED);
  a->rover = NULL;
  sm_segmap_clear(seg, seg->size >> SM_SEGMENT_SHIFT, SM_SEGMAP_FREED);
  sm_segment_unregister(seg);
  sm_os_unmap(seg, seg->size);
}

typedef struct purge_pass {
  sm_arena_t *arena;
  bool all;
  uint32_t cutoff;
} purge_pass_t;

SM_RUNTIME static void purge_one(sm_fnode_t *n, void *arg) {
  purge_pass_t *pp = arg;
  if (n->dirty_lo >= n->dirty_hi || (!pp->all && !sm_freed_by(n->freed_at, pp->cutoff))) return;
  sm_lblock_t *b = node_block(n);
  span_t p = purgeable_span(b, node_dirty(n));
  pp->arena->dirty_bytes -= p.hi - p.lo;
  if (p.lo < p.hi) {
    sm_segment_thp_purging(sm_segment_of((void *)p.lo)); /* p.lo is past the chunk's header */
    sm_os_purge((void *)p.lo, p.hi - p.lo);
  }
  n->dirty_lo = n->dirty_hi = 0;
}

/* Returns free memory (all of it, or what was freed by `cutoff`): chunks
 * that are entirely free go back to the OS (all but one, so a program that
 * frees everything and starts again does not map afresh), and the pages
 * inside other free blocks are purged. */
SM_RUNTIME static void purge_locked(sm_arena_t *a, sm_purge_t how, uint32_t cutoff) {
  if (how == SM_PURGE_ALL) quick_drain(a);
  sm_segment_t *seg = a->chunks.first;
  while (seg && a->chunk_count > 1) {
    sm_segment_t *next = seg->next;
    sm_lblock_t *b = (sm_lblock_t *)chunk_first(seg);
    if (!(b->head & SM_LB_INUSE) && (uint8_t *)b + lb_size(b) == chunk_end(seg) &&
        (how == SM_PURGE_ALL || sm_freed_by(lb_node(b)->freed_at, cutoff))) {
      unlink_free(a, b);
      release_chunk(a, seg);
    }
    seg = next;
  }
  purge_pass_t pp = {a, how == SM_PURGE_ALL, cutoff};
  sm_splay_foreach(a->root, purge_one, &pp);
}

static void maybe_purge_locked(sm_arena_t *a) {
  uint32_t cutoff = 0;
  unsigned n = __atomic_load_n(&arenas_in_use, __ATOMIC_RELAXED);
  size_t retain = sm_opt.retain / (n ? n : 1);
  sm_purge_t how = sm_purge_due(a->dirty_bytes, a->inuse_bytes, retain, &a->purge, &cutoff);
  if (how != SM_PURGE_NONE) purge_locked(a, how, cutoff);
}

/* ---------------------------------------------------------------- API */

/* Carves a block for `size` bytes at `align` from arena a, growing it if
 * `may_grow`. NULL if it has no room. */
SM_RUNTIME static void *arena_malloc(sm_arena_t *a, size_t size, size_t align, bool may_grow, size_t flags) {
  size_t need = sm_align_up(size + SM_LB_HDR, 16);
  /* An aligned request takes room for a leading gap that becomes a free
   * block of its own. */
  size_t search = align ? need + align + LB_MIN_SPLIT : need;
  sm_lock(&a->lock);
  sm_lblock_t *b = find_fit(a, search);
  if (!b) {
    if (!may_grow || !grow(a, search)) {
      sm_check_arena_unlock(a);
      sm_unlock(&a->lock);
      return NULL;
    }
    b = find_fit(a, search);
  }
  span_t dirty = node_dirty(lb_node(b));
  if (align) {
    uintptr_t payload = sm_align_up((uintptr_t)b + SM_LB_HDR, align);
    if (payload - SM_LB_HDR != (uintptr_t)b) {
      /* The gap becomes a free block: make it big enough to be worth one
       * (and to hold its tree node). */
      while (payload - SM_LB_HDR - (uintptr_t)b < LB_MIN_SPLIT) payload += align;
      sm_lblock_t *nb = (sm_lblock_t *)(payload - SM_LB_HDR);
      size_t lead = (size_t)((uint8_t *)nb - (uint8_t *)b);
      size_t total = lb_size(b);
      b->head = lead | (b->head & SM_LB_PREV_INUSE);
      nb->head = total - lead; /* prev (the lead) is free: PREV_INUSE clear */
      make_free(a, b, lead, dirty);
      b = nb;
    }
  }
  take_block(a, b, need, dirty);
  b->head |= flags;
  clear_links(lb_node(b));
  b->request = size;
  a->rover = b;
  sm_check_arena_unlock(a);
  sm_unlock(&a->lock);
  return (uint8_t *)b + SM_LB_HDR;
}

SM_RUNTIME static void *large_malloc(sm_heap_t *heap, size_t size, size_t align, size_t flags) {
  if (align <= 16) align = 0;
  sm_arena_t *own = &sm_arenas[heap->arena];
  void *p = arena_malloc(own, size, align, true, flags);
  if (SM_LIKELY(p != NULL)) return p;
  /* Out of memory (a `ulimit -v` cap, say). Free space may sit in other
   * threads' arenas, or in memory we keep mapped for reuse: try those
   * before saying no. */
  for (unsigned i = 1; i < SM_ARENA_COUNT && !p; i++)
    p = arena_malloc(&sm_arenas[(heap->arena + i) % SM_ARENA_COUNT], size, align, false, flags);
  if (!p && sm_release_reserves()) p = arena_malloc(own, size, align, true, flags);
  if (!p) errno = ENOMEM;
  return p;
}

SM_RUNTIME void *sm_large_malloc(sm_heap_t *heap, size_t size, size_t align) { return large_malloc(heap, size, align, 0); }

/* ---------------------------------------------------------------- quick lists */

static size_t class_need(unsigned cls) { return sm_align_up(sm_class_size[cls] + SM_LB_HDR, 16); }

/* The list a freed block of `size` bytes goes on: the largest class whose
 * moves it can serve. -1: none (no move asks for that much). */
static int quick_class(size_t size) {
  size_t payload = size - SM_LB_HDR;
  if (payload > SM_POOL_MAX + LB_MIN_SPLIT) return -1;
  int c = payload >= SM_POOL_MAX ? SM_CLASS_COUNT - 1 : (int)sm_size_class(payload);
  while (c >= 0 && class_need((unsigned)c) > size) c--;
  return c;
}

/* Keeps a freed moved block on its list, if there is room. Lock held. */
static bool quick_keep(sm_arena_t *a, sm_lblock_t *b) {
  size_t size = lb_size(b);
  int c = quick_class(size);
  if (c < 0 || a->quick_count[c] >= LB_QUICK_PER_CLASS || a->quick_bytes + size > LB_QUICK_BYTES) return false;
  b->magic = SM_LB_KEPT;
  b->trace = 0;
  *(sm_lblock_t **)((uint8_t *)b + SM_LB_HDR) = a->quick[c];
  a->quick[c] = b;
  a->quick_count[c]++;
  __atomic_store_n(&a->quick_bytes, a->quick_bytes + size, __ATOMIC_RELAXED);
  __atomic_store_n(&a->inuse_bytes, a->inuse_bytes - size, __ATOMIC_RELAXED);
  if (a->rover == b) a->rover = NULL;
  return true;
}

/* Takes a kept block of class c off its list, in use again. Lock held. */
static sm_lblock_t *quick_take(sm_arena_t *a, unsigned c) {
  sm_lblock_t *b = a->quick[c];
  if (!b) return NULL;
  sm_lblock_t **link = (sm_lblock_t **)((uint8_t *)b + SM_LB_HDR);
  a->quick[c] = *link;
  *link = NULL; /* the leak scan must not take the stale link for a pointer */
  a->quick_count[c]--;
  __atomic_store_n(&a->quick_bytes, a->quick_bytes - lb_size(b), __ATOMIC_RELAXED);
  __atomic_store_n(&a->inuse_bytes, a->inuse_bytes + lb_size(b), __ATOMIC_RELAXED);
  b->magic = SM_LB_MAGIC;
  return b;
}

/* Frees every kept block into the tree. Lock held. */
SM_RUNTIME static void quick_drain(sm_arena_t *a) {
  for (unsigned c = 0; c < SM_CLASS_COUNT; c++) {
    sm_lblock_t *b;
    while ((b = quick_take(a, c)) != NULL) free_locked(a, b);
  }
}

/* A large block for a pool block of `size` bytes (a class size) that
 * sampling moves (tag.c): a kept one of its class if the thread's arena
 * has one, else a new one, marked SM_LB_MOVED. */
void *sm_large_malloc_moved(sm_heap_t *heap, size_t size, size_t align) {
  if (align <= 16 && size <= SM_POOL_MAX) {
    sm_arena_t *a = &sm_arenas[heap->arena];
    sm_lock(&a->lock);
    sm_lblock_t *b = quick_take(a, sm_size_class(size));
    if (b) b->request = size;
    sm_check_arena_unlock(a);
    sm_unlock(&a->lock);
    if (b) return (uint8_t *)b + SM_LB_HDR;
  }
  return large_malloc(heap, size, align, SM_LB_MOVED);
}

static SM_NOINLINE SM_COLD void bad_large_free(const sm_lblock_t *b, const void *p) {
  /* A freed block keeps a plausible header: magic cleared, INUSE clear, a
   * size that is a multiple of 16 and at least a minimal block. Anything
   * else under p is user data: p was never a block start. */
  size_t size = b->head & ~SM_LB_FLAGS;
  if (b->magic == SM_LB_KEPT && (b->head & SM_LB_INUSE)) /* freed, and kept on a quick list */
    sm_fatal("free(): double free of %p (large block)", p);
  if (b->magic == 0 && !(b->head & SM_LB_INUSE) && !(b->head & 12) && size >= SM_LB_HDR + sizeof(sm_fnode_t) &&
      size <= 512 * SM_MiB)
    sm_fatal("free(): double free of %p (large block)", p);
  sm_fatal("free(): invalid pointer %p (not the start of a large block)", p);
}

/* Validates that p is the payload of an in-use block of seg. */
static void check_large(const sm_segment_t *seg, const void *p) {
  const sm_lblock_t *b = sm_lblock_of(p);
  if ((uintptr_t)p & 15 || (const uint8_t *)b < chunk_first(seg) || (const uint8_t *)p >= chunk_end(seg))
    bad_large_free(b, p);
  if (b->magic != SM_LB_MAGIC || !(b->head & SM_LB_INUSE) ||
      (const uint8_t *)b + lb_size(b) > chunk_end(seg))
    bad_large_free(b, p);
}

/* Frees in-use block b of arena a into the tree, merged with its free
 * neighbours. Lock held. */
SM_RUNTIME static void free_locked(sm_arena_t *a, sm_lblock_t *b) {
  size_t size = lb_size(b);
  __atomic_store_n(&a->inuse_bytes, a->inuse_bytes - size, __ATOMIC_RELAXED);
  if (a->rover == b) a->rover = NULL; /* next fit must restart at a block header */
  b->magic = 0;
  b->head &= ~SM_LB_INUSE;
  sm_lblock_t *n = lb_next(b);
  span_t dirty = span_of(b, size); /* the block itself; neighbours bring their own */
  if (!(n->head & SM_LB_INUSE)) {
    dirty = span_union(dirty, node_dirty(lb_node(n)));
    unlink_free(a, n);
    size += lb_size(n);
  }
  if (!(b->head & SM_LB_PREV_INUSE)) {
    sm_lblock_t *pb = lb_prev(b);
    dirty = span_union(dirty, node_dirty(lb_node(pb)));
    unlink_free(a, pb);
    size += lb_size(pb);
    b = pb;
  }
  b->head = (b->head & SM_LB_PREV_INUSE) | size;
  a->now = sm_now32();
  make_free(a, b, size, dirty);
}

SM_RUNTIME void sm_large_free(sm_segment_t *seg, void *p) {
  sm_arena_t *a = seg->arena;
  sm_lblock_t *b = sm_lblock_of(p);
  sm_lock(&a->lock);
  check_large(seg, p);
  if (!(b->head & SM_LB_MOVED) || !quick_keep(a, b)) {
    free_locked(a, b);
    maybe_purge_locked(a);
  }
  sm_check_arena_unlock(a);
  sm_unlock(&a->lock);
}

size_t sm_large_usable(const void *p) {
  const sm_lblock_t *b = sm_lblock_of(p);
  return lb_size(b) - SM_LB_HDR;
}

bool sm_large_resize_in_place(sm_segment_t *seg, void *p, size_t size) {
  sm_arena_t *a = seg->arena;
  sm_lblock_t *b = sm_lblock_of(p);
  size_t need = sm_align_up(size + SM_LB_HDR, 16);
  bool ok = false;
  sm_lock(&a->lock);
  check_large(seg, p);
  size_t cur = lb_size(b);
  if (need <= cur) {
    if (cur - need >= LB_MIN_SPLIT) { /* shrink: the tail becomes free */
      sm_lblock_t *rest = (sm_lblock_t *)((uint8_t *)b + need);
      b->head = need | (b->head & SM_LB_FLAGS);
      rest->head = SM_LB_PREV_INUSE | (cur - need);
      size_t rsize = cur - need;
      sm_lblock_t *n = (sm_lblock_t *)((uint8_t *)rest + rsize);
      span_t dirty = span_of(rest, rsize);
      if (!(n->head & SM_LB_INUSE)) {
        dirty = span_union(dirty, node_dirty(lb_node(n)));
        unlink_free(a, n);
        rsize += lb_size(n);
      }
      __atomic_store_n(&a->inuse_bytes, a->inuse_bytes - (cur - need), __ATOMIC_RELAXED);
      a->now = sm_now32();
      make_free(a, rest, rsize, dirty);
    }
    ok = true;
  } else {
    sm_lblock_t *n = lb_next(b);
    if (!(n->head & SM_LB_INUSE) && cur + lb_size(n) >= need) { /* grow into the free block above */
      span_t dirty = node_dirty(lb_node(n));
      size_t total = cur + lb_size(n);
      unlink_free(a, n); /* its node is now inside b's payload: unlink_free cleared the links */
      __atomic_store_n(&a->inuse_bytes, a->inuse_bytes - cur, __ATOMIC_RELAXED);
      b->head = total | (b->head & SM_LB_FLAGS);
      b->head &= ~SM_LB_INUSE; /* take_block sets it again */
      take_block(a, b, need, dirty);
      ok = true;
    }
  }
  if (ok) {
    b->request = size;
    b->head &= ~SM_LB_MOVED; /* no longer a moved pool block's size */
  }
  sm_check_arena_unlock(a);
  sm_unlock(&a->lock);
  return ok;
}

SM_RUNTIME void sm_large_thread_done(unsigned arena) {
  sm_arena_t *a = &sm_arenas[arena]; /* a heap's arena index is always in range (heap.c) */
  sm_lock(&a->lock);
  if (a->purge.shrunk_at) { /* shrunk, its memory held for a next cycle */
    sm_purge_emptied(&a->purge, sm_os_now_ms());
    purge_locked(a, SM_PURGE_ALL, 0);
  }
  sm_check_arena_unlock(a);
  sm_unlock(&a->lock);
}

size_t sm_large_trim(void) {
  size_t before = 0;
  for (unsigned i = 0; i < SM_ARENA_COUNT; i++) {
    sm_arena_t *a = &sm_arenas[i];
    sm_lock(&a->lock);
    before += a->dirty_bytes;
    purge_locked(a, SM_PURGE_ALL, 0);
    sm_check_arena_unlock(a);
    sm_unlock(&a->lock);
  }
  return before;
}

/* Walks every chunk of the arena: blocks tile it exactly, flags agree with
 * neighbours, no two free blocks touch, every free block is in the tree and
 * the tree holds nothing else. Lock held by the caller. Returns 0 if sound. */
size_t sm_large_check(sm_arena_t *a) {
  size_t free_count = 0, free_bytes = 0, dirty_bytes = 0, kept_bytes = 0;
  for (sm_segment_t *seg = a->chunks.first; seg; seg = seg->next) {
    sm_lblock_t *b = (sm_lblock_t *)chunk_first(seg);
    bool prev_inuse = true;
    while ((uint8_t *)b < chunk_end(seg)) {
      size_t sz = lb_size(b);
      if (sz < SM_LB_HDR + sizeof(sm_fnode_t) || sz & 15) return 1;
      if (!!(b->head & SM_LB_PREV_INUSE) != prev_inuse) return 2;
      bool inuse = b->head & SM_LB_INUSE;
      if (!inuse) {
        if (!prev_inuse) return 3; /* two free blocks side by side */
        if (lb_next(b)->prev_size != sz) return 4;
        const sm_fnode_t *n = lb_node(b);
        if (n->dirty_lo < n->dirty_hi && n->dirty_hi > sz) return 11; /* dirty range outside the block */
        free_count++;
        free_bytes += sz;
        dirty_bytes += purgeable(b);
      } else if (b->magic == SM_LB_KEPT) {
        if (!(b->head & SM_LB_MOVED) || quick_class(sz) < 0) return 13; /* kept, but never moved here */
        kept_bytes += sz;
      } else if (b->magic != SM_LB_MAGIC) {
        return 5;
      }
      prev_inuse = inuse;
      b = lb_next(b);
    }
    if ((uint8_t *)b != chunk_end(seg)) return 6; /* blocks overrun the chunk */
    if (!(b->head & SM_LB_INUSE) || lb_size(b) != 0) return 7; /* sentinel */
  }
  size_t in_tree = sm_splay_check(a->root);
  if (in_tree == (size_t)-1) return 8;
  if (in_tree != free_count) return 9;
  if (free_bytes != a->free_bytes) return 10;
  if (dirty_bytes != a->dirty_bytes) return 12;
  /* The quick lists hold exactly the kept blocks, each under its class. */
  size_t listed = 0;
  for (unsigned c = 0; c < SM_CLASS_COUNT; c++) {
    unsigned count = 0;
    for (const sm_lblock_t *b = a->quick[c]; b; b = *(sm_lblock_t *const *)((const uint8_t *)b + SM_LB_HDR)) {
      if (b->magic != SM_LB_KEPT || quick_class(lb_size(b)) != (int)c || ++count > LB_QUICK_PER_CLASS) return 14;
      listed += lb_size(b);
    }
    if (count != a->quick_count[c]) return 15;
  }
  if (listed != kept_bytes || kept_bytes != a->quick_bytes || a->quick_bytes > LB_QUICK_BYTES) return 16;
  return 0;
}


void sm_large_walk(sm_segment_t *seg, sm_block_fn fn, void *arg) {
  for (sm_lblock_t *b = (sm_lblock_t *)chunk_first(seg); (uint8_t *)b < chunk_end(seg); b = lb_next(b)) {
    if (lb_size(b) == 0) break; /* corrupt: do not loop */
    if ((b->head & SM_LB_INUSE) && b->magic != SM_LB_KEPT) fn((uintptr_t)b + SM_LB_HDR, b->request, b->trace, arg);
  }
}
