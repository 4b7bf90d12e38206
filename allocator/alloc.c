/* The allocator's entry points: malloc, free, calloc, realloc, memalign and
 * usable size, with their fast paths inline here and everything else in
 * pool.c, large.c and huge.c. preload/exports.c maps the C library's names
 * onto these.
 *
 * malloc fast path: class lookup, pop from the thread's current page of that
 * class, one test. free fast path: segment map lookup, owner test, push onto
 * the page's free list, one test. Everything else is out of line. */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "allocator/internal.h"

int sm_init_state;
static sm_lock_t init_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
sm_lock_t *const sm_init_lock_ref = &init_lock;

/* Fixed until sm_init draws them (unit tests that drive the pools without
 * sm_init keep these). */
struct sm_marks sm_marks = {(uintptr_t)0xfffffffff4ee0b1cu, (uintptr_t)0xfffffffff4ee0b1du};

/* The free marks: a random kernel-half address (47 random bits) and its
 * odd neighbour. */
static void marks_init(void) {
  uintptr_t local = ((uintptr_t)sm_os_random64() | ((uintptr_t)0x1ffff << 47)) & ~(uintptr_t)1;
  /* Two scalar stores: as one vector store, its constant came from .rodata
   * (SM_RUNTIME_DATA says why that matters). */
  __asm__("" : "+r"(local));
  sm_marks.local = local;
  sm_marks.remote = local | 1;
}

void (*sm_libc_free)(void *);
void *(*sm_libc_realloc)(void *, size_t);
size_t (*sm_libc_usable_size)(void *);

/* Sets up what every path needs: page size, options, arenas. Allocates
 * nothing through malloc, so it is safe when the first call comes from the
 * dynamic loader or a constructor, before main and before TLS is fully set. */
SM_RUNTIME SM_NOINLINE void sm_init(void) {
  if (__atomic_load_n(&sm_init_state, __ATOMIC_ACQUIRE) == 2) return;
  bool first = false;
  sm_lock(&init_lock);
  if (sm_init_state == 0) {
    sm_init_state = 1;
    sm_os_init();
    marks_init(); /* before the first block is carved */
    sm_options_init();
    sm_large_init();
    __atomic_store_n(&sm_init_state, 2, __ATOMIC_RELEASE);
    first = true;
  }
  sm_unlock(&init_lock);
  /* Outside init_lock: the hook may allocate (and so come back here). */
  if (first && sm_after_init) sm_after_init();
}

/* ---------------------------------------------------------------- malloc */

SM_RUNTIME static SM_NOINLINE void *malloc_big(size_t size, size_t align) {
  if (SM_UNLIKELY(size > SM_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  if (SM_UNLIKELY(sm_init_state != 2)) sm_init();
  if (size > sm_opt.huge || align > 64 * SM_KiB) {
    void *p = sm_huge_malloc(size, align);
    if (!p && sm_release_reserves()) p = sm_huge_malloc(size, align);
    return p;
  }
  sm_heap_t *h = sm_heap_get_or_create();
  if (!h) {
    errno = ENOMEM;
    return NULL;
  }
  return sm_large_malloc(h, size, align);
}

SM_RUNTIME void *sm_malloc(size_t size) {
  if (SM_LIKELY(size <= SM_POOL_MAX)) {
    sm_page_t *pg;
    void *p = sm_malloc_fast(sm_heap_tls, size, &pg);
    if (SM_LIKELY(p != NULL)) return p;
  }
  return sm_malloc_rest(size);
}

SM_RUNTIME void *sm_malloc_rest(size_t size) {
  if (size <= SM_POOL_MAX) return sm_pool_malloc_slow(sm_heap_tls, size);
  return malloc_big(size, 0);
}

/* ---------------------------------------------------------------- free */

/* p is not in any segment we own. A pointer in a segment we released is a
 * double free (or a use after free); a pointer on this thread's stack, to
 * memory not mapped at all, or not 16-aligned cannot be a block of the C
 * library's malloc either, and is reported here rather than left to crash
 * inside it; anything else came from the C library's own malloc
 * (RTLD_DEEPBIND libraries still call it) and goes back there. */
SM_RUNTIME static SM_NOINLINE SM_COLD void free_foreign(void *p) {
  if (sm_segmap_get(p) == SM_SEGMAP_FREED) {
    uintptr_t base = sm_align_down((uintptr_t)p - 1, SM_SEGMENT_SIZE);
    /* Still unmapped, or one of our cached segments: nobody else can own it. */
    if (!sm_os_mapped(p, 1) || sm_segment_is_cached((void *)base))
      sm_fatal("free(): double free of %p (its memory was already returned)", p);
  }
  uintptr_t lo, hi;
  if (sm_os_thread_stack(&lo, &hi) && (uintptr_t)p >= lo && (uintptr_t)p < hi)
    sm_fatal("free(): invalid pointer %p (an address on this thread's stack, not a heap block)", p);
  /* [p - 16, p]: what the C library's free reads first. */
  if (!sm_os_mapped((char *)p - 16, 17)) sm_fatal("free(): invalid pointer %p (not mapped: never allocated by any malloc)", p);
  if ((uintptr_t)p & (SM_MIN_ALIGN - 1))
    sm_fatal("free(): invalid pointer %p (misaligned: not a block of any malloc)", p);
  if (!sm_libc_free) sm_libc_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
  if (sm_libc_free && sm_libc_free != sm_free) sm_libc_free(p);
}

SM_RUNTIME static SM_NOINLINE void free_big(sm_segment_t *seg, void *p) {
  if (seg->kind == SM_SEG_LARGE) sm_large_free(seg, p);
  else if (seg->kind == SM_SEG_HUGE) sm_huge_free(seg, p);
  else sm_fatal("free(): invalid pointer %p (corrupted segment header at %p)", p, (void *)seg);
}

/* Whether b, a pointer into pool page pg, is not a block this page handed
 * out and has not taken back: not one of its carved blocks' starts, or
 * marked free already. */
SM_INLINE bool pool_misuse(const sm_page_t *pg, const sm_block_t *b, uintptr_t mark) {
  return SM_UNLIKELY(sm_pool_not_block(pg, (uintptr_t)b - (uintptr_t)pg->start) || b->mark == mark);
}

/* What pool_free checks of the pointer: */
typedef enum {
  POOL_CHECK,   /* all of pool_misuse */
  POOL_CHECKED, /* nothing: the caller made pool_misuse's tests */
} pool_check_t;

/* A free's push onto its page's free list, the common case: PUSHED when
 * b, a block of the caller's own page that is neither about to empty nor
 * perhaps on the full list, went onto the list, marked free with mark;
 * else whose page it is. b passed pool_misuse's tests. */
typedef enum { PUSHED, OWN_PAGE, OTHER_PAGE } push_t;
SM_INLINE push_t pool_free_push(sm_segment_t *seg, sm_page_t *pg, sm_block_t *b, const uintptr_t mark) {
  /* Relaxed: an exiting owner clears it meanwhile (segment.c); a mov on x86. */
  if (SM_UNLIKELY(__atomic_load_n(&seg->heap, __ATOMIC_RELAXED) != sm_heap_tls)) return OTHER_PAGE;
  uint32_t used = pg->used;
  /* Fast unless the page is about to be empty (used <= 1) or may be on
   * the full list (used == reserved). Two compares: as one unsigned
   * compare of used - 2 against reserved - 2, the compiler needed a
   * register more, and saved and restored one. */
  if (SM_UNLIKELY(used <= 1 || used >= pg->reserved)) return OWN_PAGE;
  b->mark = mark;
  b->next = pg->free; /* LIFO: the next malloc of the page takes it, still in cache */
  pg->free = b;
  sm_page_set_used(pg, used - 1);
  return PUSHED;
}

/* The pool free proper: the push, or the slow and remote paths, which
 * check everything too. Either way the block is marked free, with mark
 * (sm_marks.local, which the caller loaded once for the test and the
 * store). */
SM_INLINE void pool_free(sm_segment_t *seg, sm_page_t *pg, sm_block_t *b, const pool_check_t check,
                         const uintptr_t mark) {
  if (check == POOL_CHECK && pool_misuse(pg, b, mark)) sm_pool_bad_free(seg, pg, b);
  push_t r = pool_free_push(seg, pg, b, mark);
  if (SM_LIKELY(r == PUSHED)) return;
  if (r == OTHER_PAGE) {
    sm_pool_free_remote(seg, pg, b);
    return;
  }
  /* The page empties, but it is its class's only page: keep it as it is
   * (a malloc/free loop must not retire and re-carve a page). */
  sm_heap_t *h = sm_heap_tls;
  if (pg->used == 1 && !pg->next && h->cur[pg->cls] == pg) {
    b->mark = mark;
    b->next = pg->local_free;
    pg->local_free = b;
    sm_page_set_used(pg, 0);
    return;
  }
  sm_pool_free_local_slow(seg, pg, b);
}

void (*sm_tag_released)(uint32_t trace, size_t req, const void *p);

/* The rest of free_pool_tagged when the push did not apply: the owner's
 * other cases (pool_free's), or another thread's free (its own function,
 * so that a remote free does not test the owner again); then the tag. */
static SM_NOINLINE void free_tagged_own(sm_segment_t *seg, sm_page_t *pg, sm_block_t *b, uint64_t tag) {
  pool_free(seg, pg, b, POOL_CHECKED, sm_marks.local);
  sm_tag_released((uint32_t)tag, (size_t)(tag >> 32), b);
}
static SM_NOINLINE void free_tagged_remote(sm_segment_t *seg, sm_page_t *pg, sm_block_t *b, uint64_t tag) {
  sm_pool_free_remote(seg, pg, b);
  sm_tag_released((uint32_t)tag, (size_t)(tag >> 32), b);
}
/* The end of a traced free of a block with a tag, out of line: the tag is
 * cleared before the block can be reused, and handed to the tracer after
 * the free. A block with a tag is live; its free mark is tested all the
 * same (a compare), so that a way to tag a freed block that the checks of
 * malloc and realloc missed is reported, not pushed twice. Only tail
 * calls: the push in line, anything slower out of line, so that no case
 * sets up a frame here to keep the tag across a call. */
static SM_NOINLINE void free_pool_tagged(sm_segment_t *seg, sm_page_t *pg, sm_block_t *b, uint64_t *slot,
                                         uint64_t tag) {
  const uintptr_t mark = sm_marks.local;
  if (SM_UNLIKELY(b->mark == mark)) sm_pool_bad_free(seg, pg, b);
  sm_tag_clear(slot);
  push_t r = pool_free_push(seg, pg, b, mark);
  if (SM_LIKELY(r == PUSHED)) sm_tag_released((uint32_t)tag, (size_t)(tag >> 32), b);
  else if (r == OWN_PAGE) free_tagged_own(seg, pg, b, tag);
  else free_tagged_remote(seg, pg, b, tag);
}

/* A traced free of a pool block. The pointer must be a block start before
 * anything is read for it (a bad pointer never reads the slot of another
 * block). A page with tags then gives the block's tag from its side array,
 * by the offset the test computed; with dense sampling (below
 * SM_SAMPLE_MOVE_MIN) most blocks of such a page have none. A double free
 * of a traced block finds no tag the second time (every free clears the
 * tag before it marks the block free), and is tested for its mark like any
 * untagged block; free_pool_tagged tests a tagged block's mark too. */
SM_INLINE void free_pool_traced(sm_segment_t *seg, sm_page_t *pg, sm_block_t *b) {
  uintptr_t off = (uintptr_t)b - (uintptr_t)pg->start;
  if (SM_UNLIKELY(sm_pool_not_block(pg, off))) goto bad;
  uint64_t *tags = __atomic_load_n(&pg->tags, __ATOMIC_ACQUIRE);
  if (tags) {
    uint64_t *slot = &tags[sm_class_div(off, pg->cls)];
    uint64_t tag = *slot;
    if (tag) {
      free_pool_tagged(seg, pg, b, slot, tag);
      return;
    }
  }
  const uintptr_t mark = sm_marks.local;
  if (SM_UNLIKELY(b->mark == mark)) goto bad;
  pool_free(seg, pg, b, POOL_CHECKED, mark);
  return;
bad: /* one call of the report: with two, the fast path set up a frame */
  sm_pool_bad_free(seg, pg, b);
}

static SM_NOINLINE void free_big_tagged(sm_segment_t *seg, void *p) {
  size_t req = 0;
  uint32_t trace = sm_tag_take(p, &req);
  free_big(seg, p);
  if (trace) sm_tag_released(trace, req, p);
}

/* How a free path frees (a constant at each use): */
typedef enum {
  SM_FREE_DEFAULT, /* as sm_free */
  SM_FREE_TRACED,  /* as sm_free_traced */
} sm_free_mode_t;

/* A pool block's free in mode m. With SM_FREE_TRACED it goes through
 * free_pool_traced: a block of a page without tags costs one load and a
 * test more than the default free; only a block with a tag goes out of
 * line. */
SM_INLINE void free_pool_in(sm_segment_t *seg, void *p, const sm_free_mode_t m) {
  sm_page_t *pg = sm_page_of(seg, p);
  /* One register for the page: left alone, the compiler addresses its
   * fields from two bases (the segment plus a scaled index, and the
   * page), three instructions more. */
  __asm__("" : "+r"(pg));
  if (m == SM_FREE_TRACED) free_pool_traced(seg, pg, p);
  else pool_free(seg, pg, p, POOL_CHECK, sm_marks.local);
}

/* free's cases but a block of an SM_SEGMAP_POOL segment: a block of a
 * POOL_ALT one (in mode m), a large or huge block, anything else. Sparse
 * sampling keeps the default mode: a large or huge block may carry a tag
 * all the same (sm_tag_big_only). */
SM_INLINE void free_other(void *p, unsigned e, const sm_free_mode_t m) {
  if (SM_LIKELY(e == SM_SEGMAP_POOL_ALT)) {
    free_pool_in(sm_segmap_segment(p, e), p, m);
    return;
  }
  if (SM_UNLIKELY(e == 0 || e == SM_SEGMAP_FREED)) {
    if (p) free_foreign(p);
    return;
  }
  sm_segment_t *seg = sm_segmap_segment(p, e);
  if (m == SM_FREE_TRACED || __atomic_load_n(&sm_tag_big_only, __ATOMIC_RELAXED)) free_big_tagged(seg, p);
  else free_big(seg, p);
}

/* Set once (sm_free_trace_start), read by the exported free of a large or
 * huge block; a relaxed load (sm_free_trace_start says why it may be). */
static bool free_traced;

/* The exported free's way out of its fast path. A POOL_ALT entry means
 * the tracer has started: its block is freed traced without a look at the
 * mode (a block of a page without tags, all there are until the mode is
 * published, is freed as by sm_free, one load and a test later). A large
 * or huge one is freed in the mode of the moment. */
SM_RUNTIME static SM_NOINLINE void free_dispatch(void *p, unsigned e) {
  if (SM_LIKELY(e == SM_SEGMAP_POOL_ALT)) free_pool_in(sm_segmap_segment(p, e), p, SM_FREE_TRACED);
  else if (__atomic_load_n(&free_traced, __ATOMIC_RELAXED)) free_other(p, e, SM_FREE_TRACED);
  else free_other(p, e, SM_FREE_DEFAULT);
}

/* free in mode m, or (`dispatch`) the exported free: the default fast
 * path for a block of an SM_SEGMAP_POOL segment, which needs no test of
 * the mode, since a mode other than the default makes every pool
 * segment's entry POOL_ALT first (sm_free_trace_start). */
SM_INLINE void free_impl(void *p, const sm_free_mode_t m, const bool dispatch) {
  unsigned e = sm_segmap_entry(p);
  if (SM_LIKELY(e == SM_SEGMAP_POOL)) {
    free_pool_in(sm_segmap_segment(p, SM_SEGMAP_POOL), p, m);
    return;
  }
  if (dispatch) free_dispatch(p, e);
  else free_other(p, e, m);
}

SM_RUNTIME void sm_free(void *p) { free_impl(p, SM_FREE_DEFAULT, false); }

void sm_free_traced(void *p) { free_impl(p, SM_FREE_TRACED, false); }

SM_RUNTIME void sm_free_exported(void *p) { free_impl(p, SM_FREE_DEFAULT, true); }

/* The entries first, then the flag, each published with a release store.
 * Both come before the tracer publishes sm_trace_tags and sm_trace_on
 * (tracer/tracer.c, "switching"), so a thread freeing a block that carries
 * a tag got it after both and frees it traced; a free that sees the flag
 * still clear frees a large or huge block no one has tagged yet. */
void sm_free_trace_start(void) {
  sm_segment_pool_alt();
  __atomic_store_n(&free_traced, true, __ATOMIC_RELEASE);
}



/* ---------------------------------------------------------------- the rest */

SM_RUNTIME size_t sm_usable_size(const void *p) {
  if (!p) return 0;
  sm_segment_t *seg = sm_segment_of(p);
  if (!seg) {
    if (!sm_libc_usable_size) sm_libc_usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    return sm_libc_usable_size ? sm_libc_usable_size((void *)p) : 0;
  }
  switch (seg->kind) {
  case SM_SEG_POOL: return sm_page_of(seg, p)->block_size;
  case SM_SEG_LARGE: return sm_large_usable(p);
  default: return sm_huge_usable(seg) - (size_t)((const uint8_t *)p - ((const uint8_t *)seg + seg->huge_offset));
  }
}

bool sm_release_reserves(void) {
  size_t before = sm_segment_mapped();
  bool parked = sm_heaps_release_parked(); /* their segments: adoptable or freed */
  sm_segment_trim();
  sm_large_trim();
  return parked || sm_segment_mapped() < before;
}

SM_RUNTIME void *sm_calloc(size_t n, size_t size) {
  size_t total;
  if (SM_UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = sm_malloc(total);
  if (!p) return NULL;
  sm_segment_t *seg = sm_segment_of(p);
  if (seg->kind == SM_SEG_HUGE) return p; /* fresh mapping: zero already */
  memset(p, 0, total <= SM_POOL_MAX ? total : sm_usable_size(p));
  return p;
}

/* Alignment a pool block of class cls has: its size's largest power-of-two
 * factor, capped by the page start's alignment (4 KiB). */
static size_t class_alignment(unsigned cls) {
  size_t bs = sm_class_size[cls];
  size_t a = bs & (~bs + 1);
  return a > 4096 ? 4096 : a;
}

SM_RUNTIME void *sm_memalign(size_t align, size_t size) {
  /* Every block is 16-aligned. */
  if (align <= SM_MIN_ALIGN) return sm_malloc(size);
  if (SM_UNLIKELY(size > SM_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  /* Pool classes whose block size is a multiple of the alignment are
   * naturally aligned, since page blocks start 4 KiB-aligned. */
  if (align <= 4096 && size <= SM_POOL_MAX) {
    size_t want = size < align ? align : size;
    for (unsigned cls = sm_size_class(want); cls < SM_CLASS_COUNT; cls++)
      if (class_alignment(cls) >= align) return sm_malloc(sm_class_size[cls]);
  }
  size_t big = size <= SM_POOL_MAX ? SM_POOL_MAX + 1 : size;
  return malloc_big(big, align);
}

static void *realloc_move(void *p, size_t old_usable, size_t size) {
  void *q = sm_malloc(size);
  if (!q) return NULL; /* p stays valid, errno = ENOMEM */
  memcpy(q, p, old_usable < size ? old_usable : size);
  sm_free(p);
  return q;
}

SM_RUNTIME void *sm_realloc(void *p, size_t size) {
  if (!p) return sm_malloc(size);
  if (size == 0) { /* glibc frees and returns NULL */
    sm_free(p);
    return NULL;
  }
  sm_segment_t *seg = sm_segment_of(p);
  if (SM_UNLIKELY(!seg)) {
    if (!sm_libc_realloc) sm_libc_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    if (sm_segmap_get(p) == SM_SEGMAP_FREED || !sm_libc_realloc)
      sm_fatal("realloc(): invalid pointer %p (not allocated, or already freed)", p);
    return sm_libc_realloc(p, size);
  }
  if (SM_UNLIKELY(size > SM_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  switch (seg->kind) {
  case SM_SEG_POOL: {
    sm_page_t *pg = sm_page_of(seg, p);
    sm_pool_check_realloc(pg, p);
    size_t bs = pg->block_size;
    if (size <= bs && (size > bs / 2 || bs <= 16)) return p; /* still the right class, roughly */
    return realloc_move(p, bs, size);
  }
  case SM_SEG_LARGE:
    if (size > SM_POOL_MAX && size <= sm_opt.huge && sm_large_resize_in_place(seg, p, size)) return p;
    return realloc_move(p, sm_large_usable(p), size);
  case SM_SEG_HUGE: {
    if (size > sm_opt.huge) {
      void *q = sm_huge_realloc(seg, p, size);
      if (q) return q;
    }
    size_t old = sm_huge_usable(seg);
    if (size > sm_opt.huge / 2 && size <= old) return p; /* keep: shrinking to a bit less */
    return realloc_move(p, old, size);
  }
  default:
    sm_fatal("realloc(): invalid pointer %p (corrupted segment header at %p)", p, (void *)seg);
  }
}
