/* Cross-file prototypes of the allocator, grouped by the file that defines
 * them. Nothing outside allocator/ and preload/ includes this. */
#ifndef SM_ALLOCATOR_INTERNAL_H
#define SM_ALLOCATOR_INTERNAL_H

#include "allocator/base.h"
#include "allocator/msg.h"
#include "allocator/options.h"
#include "allocator/sizeclass.h"
#include "allocator/types.h"

/* ---- os.c: the only syscalls */
extern size_t sm_os_page_size;
extern size_t sm_os_purge_calls, sm_os_purge_bytes;  /* madvise calls and bytes */
extern size_t sm_os_purge_all, sm_os_purge_old;      /* purge passes by kind */
void sm_os_init(void);
void *sm_os_map(size_t size);                                 /* NULL on failure */
void *sm_os_reserve(size_t size);                             /* PROT_NONE, NORESERVE */
void *sm_os_map_aligned(size_t size, size_t align, size_t shift);
void sm_os_unmap(void *p, size_t size);
void sm_os_purge(void *p, size_t size);                       /* whole pages inside [p, p+size) */
/* The kernel's transparent huge pages for anonymous memory, read at init:
 * none, for those that ask, for every mapping, or not known (no readable
 * /sys: nothing is asked, but purges still bar them). */
typedef enum sm_os_thp { SM_OS_THP_NONE, SM_OS_THP_MADVISE, SM_OS_THP_ALWAYS, SM_OS_THP_UNKNOWN } sm_os_thp_t;
extern sm_os_thp_t sm_os_thp;
extern size_t sm_os_thp_calls;                                /* madvise calls for huge pages */
/* Resident anonymous memory of the process (/proc/self/statm), 0 if unknown. */
size_t sm_os_anon_resident(void);
/* Whether the host takes freed guest memory back (free page reporting of a
 * virtio balloon): what sm_os_free_page_reporting finds under driver_dir,
 * and the system's answer, read once into sm_os_host_reclaim (os.c). */
typedef enum sm_os_host { SM_OS_HOST_UNREAD, SM_OS_HOST_KEEPS, SM_OS_HOST_RECLAIMS } sm_os_host_t;
bool sm_os_free_page_reporting(const char *driver_dir);
bool sm_os_host_reclaims(void);
extern sm_os_host_t sm_os_host_reclaim;
/* madvise(MADV_HUGEPAGE) with huge, MADV_NOHUGEPAGE without; false if refused. */
bool sm_os_huge_pages(void *p, size_t size, bool huge);
uint64_t sm_os_now_ms(void);
uint64_t sm_os_random64(void);                               /* unpredictable, non-zero */
bool sm_os_mapped(const void *p, size_t len);                 /* every page of the range mapped */
uint64_t sm_os_tid(void);
/* Waits until every other thread's stores are visible to this one. */
void sm_os_membarrier(void);
/* The mapping containing addr, from /proc/self/maps (slow: for rare paths). */
bool sm_os_mapping_of(uintptr_t addr, uintptr_t *start, uintptr_t *end);
/* The calling thread's stack mapping [lo, hi), cached per thread. */
bool sm_os_thread_stack(uintptr_t *lo, uintptr_t *hi);

/* ---- os.c: when to give free memory back (shared by pools and arenas).
 * Free memory stays committed while it is young: a program that frees and
 * allocates in a loop must not fault the same pages in again and again.
 * Memory free for SM_PURGE_AGE_MS or more is returned on the next purge
 * check at least that long after the previous one; and when live memory
 * has fallen below an eighth of its recent peak while the free memory
 * exceeds twice `retain` plus twice what is in use (it shrank), all of it
 * is returned at once, so RSS follows a program whose live memory falls.
 * Except in an owner that is cycling: one whose live memory, after such a
 * shrink, grew back to half its peak within SM_REGROW_MS. Its next shrink
 * keeps the memory for SM_SHRINK_GRACE_MS, for the next cycle to reuse
 * instead of faulting it in again; a check after that gives it all back
 * (and the owner is no longer taken for cycling), and so does the exit of
 * a thread (heap.c, large.c). */
#define SM_PURGE_AGE_MS 1000
#define SM_REGROW_MS 1000
#define SM_SHRINK_GRACE_MS 100
typedef enum sm_purge { SM_PURGE_NONE, SM_PURGE_OLD, SM_PURGE_ALL } sm_purge_t;
/* retain: the caller's share of the `retain` option (a heap has all of
 * it, an arena its part, large.c); st: the caller's purge state;
 * *cutoff: with SM_PURGE_OLD, purge what was freed at or before this time
 * (ms, wraps like sm_now32). */
sm_purge_t sm_purge_due(size_t dirty, size_t inuse, size_t retain, sm_purge_state_t *st, uint32_t *cutoff);
/* Records that st's owner just gave everything back (counts the pass). */
void sm_purge_emptied(sm_purge_state_t *st, uint64_t now);
/* The same at time `now` (ms): the decision alone, for the unit tests. */
sm_purge_t sm_purge_decide(uint64_t now, size_t dirty, size_t inuse, size_t retain, sm_purge_state_t *st,
                           uint32_t *cutoff);
SM_INLINE uint32_t sm_now32(void) { return (uint32_t)sm_os_now_ms(); }
SM_INLINE bool sm_freed_by(uint32_t freed_at, uint32_t cutoff) { return (int32_t)(cutoff - freed_at) >= 0; }

/* ---- meta.c: internal metadata arena (never the public malloc) */
void *sm_meta_alloc(size_t size); /* zeroed; NULL on failure */
void sm_meta_free(void *p, size_t size);
size_t sm_meta_mapped(void);
/* Copies up to max (start, length) pairs of the arena's mappings. The
 * caller holds the arena's lock (the leak scan holds every lock). */
unsigned sm_meta_ranges(uintptr_t *starts, uintptr_t *lens, unsigned max);

/* ---- segment.c: segment map, registry, pool segment cache, abandoned list */
/* Two-level map over the 47-bit user address space, one byte per 4 MiB slot:
 * 4096 top entries, each NULL or a leaf of 8192 bytes (32 GiB of address
 * space). A process touches one or two leaves; unlike a flat map it costs no
 * address space under `ulimit -v`. An entry says what the slot holds:
 *   0                      not ours;
 *   SM_SEGMAP_POOL (1)     a pool segment, whose header starts the slot (a
 *                          pool segment is one slot), so free's fast path
 *                          knows the kind without reading the header;
 *   SM_SEGMAP_POOL_ALT (2) the same, once free() has another way to free
 *                          pool blocks (sm_free_trace_start): every
 *                          pool segment's entry then says so, and the
 *                          exported free's one test of the entry sends its
 *                          blocks out of the fast path, which so needs no
 *                          test of the mode (sm_segment_pool_alt);
 *   k + SM_SEGMAP_BIG      a large or huge segment whose header is k slots below;
 *   SM_SEGMAP_FREED        ours once and released since (how a double free of a
 *                          huge block is told from a foreign pointer). */
/* (The entry values, SM_SEGMAP_POOL and the rest, are in types.h.) */
#define SM_SEGMAP_BITS 47
#define SM_SEGMAP_LEAF_BITS 13
#define SM_SEGMAP_TOP ((size_t)1 << (SM_SEGMAP_BITS - SM_SEGMENT_SHIFT - SM_SEGMAP_LEAF_BITS))
extern uint8_t *sm_segmap[SM_SEGMAP_TOP];

/* The entry of the slot of p - 1 (the byte before p, so that a block ending
 * a slot is looked up in its own), 0 when no leaf covers it: the one segment
 * map lookup, inlined into free's fast path. */
SM_INLINE unsigned sm_segmap_entry(const void *p) {
  uintptr_t a = (uintptr_t)p - 1;
  uintptr_t top = a >> (SM_SEGMENT_SHIFT + SM_SEGMAP_LEAF_BITS);
  if (SM_UNLIKELY(top >= SM_SEGMAP_TOP)) return 0;
  const uint8_t *leaf = sm_segmap[top];
  if (SM_UNLIKELY(leaf == NULL)) return 0;
  return leaf[(a >> SM_SEGMENT_SHIFT) & (((uintptr_t)1 << SM_SEGMAP_LEAF_BITS) - 1)];
}

/* The header of the segment whose slot of p - 1 has entry e, one of ours
 * (SM_SEGMAP_POOL, POOL_ALT or a big segment's entry). */
SM_INLINE sm_segment_t *sm_segmap_segment(const void *p, unsigned e) {
  uintptr_t seg = ((uintptr_t)p - 1) & ~(uintptr_t)SM_SEGMENT_MASK;
  if (e >= SM_SEGMAP_BIG) seg -= (uintptr_t)(e - SM_SEGMAP_BIG) << SM_SEGMENT_SHIFT;
  return (sm_segment_t *)seg;
}

/* Whether p is a pointer into a segment of ours, and which (*segp). */
SM_INLINE bool sm_segment_find(const void *p, sm_segment_t **segp) {
  unsigned e = sm_segmap_entry(p);
  if (SM_UNLIKELY(e == 0 || e == SM_SEGMAP_FREED)) return false;
  *segp = sm_segmap_segment(p, e);
  return true;
}

/* The segment owning a pointer we handed out, or NULL if p is not ours. */
SM_INLINE sm_segment_t *sm_segment_of(const void *p) {
  sm_segment_t *seg;
  return sm_segment_find(p, &seg) ? seg : NULL;
}

/* false: no memory for a leaf. A pool segment's under seg_lock (segment.c). */
bool sm_segmap_set(sm_segment_t *seg, size_t slots);
/* From now on every pool segment's entry is SM_SEGMAP_POOL_ALT: those there
 * are now, and those made later. Once, and never undone. */
void sm_segment_pool_alt(void);
void sm_segmap_clear(sm_segment_t *seg, size_t slots, uint8_t value); /* 0 or FREED */
unsigned sm_segmap_get(const void *p); /* raw entry for the slot of p - 1 */
bool sm_segment_is_cached(const void *base);
void sm_segment_register(sm_segment_t *seg);
void sm_segment_unregister(sm_segment_t *seg);
sm_segment_t *sm_segment_pool_alloc(unsigned page_shift); /* NULL when out of memory */
void sm_segment_pool_free(sm_segment_t *seg);
/* Transparent huge pages (segment.c): a pool segment or arena chunk of
 * `size` bytes at base, just mapped (thp 0, and nothing written yet) or
 * taken from the cache (its thp), asks for them by the `thp` option; the
 * result is its new thp. Before any of its pages is purged, a segment that
 * may have them is told not to (once), so that the kernel cannot fill the
 * purged holes again. */
uint32_t sm_segment_thp_begin(void *base, size_t size, uint32_t thp);
void sm_segment_thp_purging(sm_segment_t *seg);
/* Returns the memory of the dirty pages among `pages` (a bit per page) to
 * the OS, one call per run of neighbours (page 0 keeps the header), and
 * clears their dirty bits; returns how many were purged. The caller owns
 * the segment. */
unsigned sm_segment_purge_pages(sm_segment_t *seg, uint64_t pages);
void sm_segment_abandon(sm_segment_t *seg);
sm_segment_t *sm_segment_take_abandoned(unsigned page_shift);
bool sm_segment_claim_abandoned(sm_segment_t *seg); /* true: seg is now the caller's to adopt */
size_t sm_segment_header_size(void);
/* Calls fn for every live segment, under the registry lock: fn must not
 * allocate or take the registry lock. */
void sm_segment_foreach(void (*fn)(sm_segment_t *seg, void *arg), void *arg);
/* The same, for a caller that already holds the registry lock. */
void sm_segment_foreach_locked(void (*fn)(sm_segment_t *seg, void *arg), void *arg);
void sm_segment_trim(void);
size_t sm_segment_mapped(void);

/* ---- pool.c: small and medium blocks */
extern size_t sm_pool_assigned_bytes; /* bytes of pages assigned to classes, all heaps (atomic) */
/* The pool page that p, a pointer into pool segment seg, falls in. */
SM_INLINE sm_page_t *sm_page_of(sm_segment_t *seg, const void *p) {
  return &seg->pages[((uintptr_t)p - (uintptr_t)seg) >> seg->page_shift];
}
/* Whether off, a pointer's offset from the first block of page pg, is
 * not the start of one of the blocks the page has carved: interior,
 * misaligned, not yet carved, in the header, or the page unassigned. One
 * multiply and a compare (sm_block_mulc). */
SM_INLINE bool sm_pool_not_block(const sm_page_t *pg, uintptr_t off) {
  return off * pg->mulc >= __atomic_load_n(&pg->qlimit, __ATOMIC_RELAXED);
}
/* Which of the two kinds of pool segment a page size makes: 0 small
 * pages, 1 medium (the index of per-kind lists and caches). */
SM_INLINE unsigned sm_pool_kind(unsigned page_shift) { return page_shift == SM_SMALL_PAGE_SHIFT ? 0 : 1; }
/* Only a page's owner writes its counts, but statistics (stats.c) and
 * remote frees read them from other threads: relaxed stores, which are
 * plain moves on x86. */
SM_INLINE void sm_page_set_used(sm_page_t *pg, uint32_t used) { __atomic_store_n(&pg->used, used, __ATOMIC_RELAXED); }
/* The same for used + 1, in one instruction on x86-64: an add to memory,
 * which a reader on another thread sees whole, as it sees a mov (no lock
 * prefix: the owner is the only writer). The compiler, given an atomic
 * store, loads, adds and stores in three. */
SM_INLINE void sm_page_used_inc(sm_page_t *pg) {
#if defined(__x86_64__)
  __asm__("addl $1, %0" : "+m"(pg->used));
#else
  sm_page_set_used(pg, pg->used + 1);
#endif
}
void *sm_pool_malloc_slow(sm_heap_t *heap, size_t size); /* may create the heap */
void sm_pool_free_local_slow(sm_segment_t *seg, sm_page_t *page, sm_block_t *block);
void sm_pool_free_remote(sm_segment_t *seg, sm_page_t *page, sm_block_t *block);
/* A free the checks rejected: says what is wrong with p in one line, aborts. */
SM_NORETURN SM_COLD void sm_pool_bad_free(sm_segment_t *seg, sm_page_t *pg, void *p);
/* realloc's checks of pool block p of page pg (aborts on a bad or freed block). */
void sm_pool_check_realloc(sm_page_t *pg, void *p);
void sm_pool_adopt(sm_heap_t *heap, sm_segment_t *seg);
void sm_pool_release_heap(sm_heap_t *heap); /* thread exit: free or abandon all */
void sm_pool_recount_heap(sm_heap_t *heap); /* fork child: a vanished owner's counts from its lists */
void sm_pool_purge(sm_heap_t *heap);
/* malloc_trim: the same, and the free memory inside the heap's pages (pool.c); bytes returned. */
size_t sm_pool_trim(sm_heap_t *heap);
/* Fork child: sm_pool_assigned_bytes from the pages themselves (a thread
 * the fork left behind may have stopped between a page and the count). */
void sm_pool_recount_assigned(void);
size_t sm_pool_check(const sm_page_t *page); /* invariant checker: 0 = ok */
/* The heap's direct table agrees with cur[]: 0, or 1 + the first index
 * that does not. */
size_t sm_heap_check(const sm_heap_t *heap);
void *sm_pool_block_start(sm_segment_t *seg, const void *p, sm_page_t **pagep);

/* Called once, right after the allocator initialised itself (on the
 * process's first allocation), outside any lock. Weak: the library's
 * preload layer defines it to start the tracer; unit tests do not. */
__attribute__((weak)) void sm_after_init(void);

/* ---- the allocator's locks, for the one lock table (tracer/locks.c) */
extern sm_lock_t *const sm_init_lock_ref;  /* alloc.c */
extern sm_lock_t *const sm_heaps_lock_ref; /* heap.c */
extern sm_lock_t *const sm_seg_lock_ref;   /* segment.c */
extern sm_lock_t *const sm_meta_lock_ref;  /* meta.c */
/* and each arena's lock, sm_arenas[i].lock (large.c) */

/* ---- heap.c: per-thread heaps */
#define sm_heap_tls (sm_tw.heap) /* the thread's heap (sm_heap_empty until its first allocation) */
extern sm_page_t sm_page_empty;
sm_heap_t *sm_heap_get_or_create(void); /* NULL only when out of memory */
void sm_heap_thread_done(void *heap);
void sm_heap_key_init(void); /* from the constructor: thread-exit hook */
/* h->cur[cls] = pg, and the same in h->direct for every small size of the
 * class: (previous class's size, cls's size], so indices prev / 8 + 1 to
 * size / 8, and from 1 for the first class. direct[0], malloc(0)'s, stays
 * &sm_page_empty: a zero-byte request never takes the fast path, so every
 * request there counts at least one byte against the heap's gate. */
SM_INLINE void sm_heap_set_cur(sm_heap_t *h, unsigned cls, sm_page_t *pg) {
  h->cur[cls] = pg;
  if (cls > SM_CLASS_SMALL_LAST) return;
  unsigned i = cls ? sm_class_size[cls - 1] / 8 + 1 : 1;
  for (unsigned end = sm_class_size[cls] / 8; i <= end; i++) h->direct[i] = pg;
}
/* The gate: what malloc's fast path tests after taking a block, in place
 * of a flag. Each heap's gate counts down the bytes the path hands out,
 * and the path leaves its line for the rest of malloc once the count is
 * spent (<= 0): the sampling countdown when the tracer samples sparsely,
 * SM_GATE_SHUT (spent for good) when it traces every block or samples
 * densely, SM_GATE_OPEN while nothing is traced, so far ahead that it is
 * never spent (4 EiB; malloc opens it again if it is). The path then costs
 * the same as a test of a flag, and a sampled allocation that is not
 * picked costs nothing more (preload/exports.c, malloc_gate). */
#define SM_GATE_OPEN ((int64_t)1 << 62)
#define SM_GATE_SHUT (-((int64_t)1 << 62))
/* A gate above this is open: a sampling countdown never gets near it. */
#define SM_GATE_OPEN_MIN (SM_GATE_OPEN / 2)
/* h's gate less bytes; true if it is spent (sm_heaps_gates_shut, the only
 * other writer, checks afterwards that no subtraction undid its store). */
SM_INLINE bool sm_heap_gate_spend(sm_heap_t *h, size_t bytes) { return sm_countdown_spend(&h->gate, (int64_t)bytes); }
/* Tracing starts: every heap's gate becomes SM_GATE_SHUT, and so does each
 * new one's, so that the next malloc of every thread goes out of line and
 * sees it. Returns once no gate is open (the tracer's switch, under its
 * write_lock). */
void sm_heaps_gates_shut(void);
/* Tracing stopped: new heaps start open; the others open as they are
 * spent (malloc_gate). */
void sm_heaps_gates_open(void);
void sm_heaps_postfork_child(void); /* after the locks were reset: drop dead threads' heaps */
/* Releases every parked heap (malloc_trim, out of memory); true if there was one. */
bool sm_heaps_release_parked(void);
size_t sm_heaps_parked(void); /* heaps parked now */
/* This thread, which has no heap, takes h if h is parked; false if not. */
bool sm_heap_take_parked(sm_heap_t *h);
/* Releases the heaps parked for SM_PURGE_AGE_MS or more (called as pages retire). */
void sm_heaps_expire_parked(void);
size_t sm_heap_count(void);

/* ---- splay.c: top-down splay tree of free large blocks keyed by (size, address) */
#include "allocator/splay.h"

/* ---- large.c: arenas of boundary-tagged blocks */
#define SM_ARENA_COUNT 8
/* Heaps of exited threads kept whole for new threads (heap.c). Each holds
 * what its thread left: pages with live blocks and at most the current page
 * of each class; its free pages are purged as it is parked. */
#define SM_PARKED_MAX 16
extern sm_arena_t sm_arenas[SM_ARENA_COUNT];
void sm_large_init(void);
void *sm_large_malloc(sm_heap_t *heap, size_t size, size_t align); /* NULL on failure */
/* The same for a sampled pool block of `size` bytes (a class size) that
 * tag.c moves: may reuse such a block freed before (large.c, quick lists). */
void *sm_large_malloc_moved(sm_heap_t *heap, size_t size, size_t align);
void sm_large_free(sm_segment_t *seg, void *p);
size_t sm_large_usable(const void *p);
bool sm_large_resize_in_place(sm_segment_t *seg, void *p, size_t size);
size_t sm_large_trim(void); /* purges every arena; returns bytes returned */
/* A thread leaves: the arena it used, if its memory is held after a shrink
 * (os.c, cycling owners), gives it back now. */
void sm_large_thread_done(unsigned arena);
size_t sm_large_check(sm_arena_t *arena); /* invariant checker: 0 = ok */
/* large block header of a payload pointer */
SM_INLINE sm_lblock_t *sm_lblock_of(const void *p) { return (sm_lblock_t *)((uintptr_t)p - SM_LB_HDR); }

/* ---- huge.c: blocks in their own mapping */
void *sm_huge_malloc(size_t size, size_t align);
void sm_huge_free(sm_segment_t *seg, void *p);
void *sm_huge_realloc(sm_segment_t *seg, void *p, size_t size); /* NULL: caller moves */
size_t sm_huge_usable(const sm_segment_t *seg);
size_t sm_huge_mapped(void);

/* ---- alloc.c: the entry points */
void *sm_malloc(size_t size);
/* What sm_malloc does when sm_malloc_fast found nothing, or size is above
 * SM_POOL_MAX: the slow and large paths. */
void *sm_malloc_rest(size_t size);
/* malloc's fast path, for size <= SM_POOL_MAX: a block off h's (the
 * thread's heap's) current page of size's class, or NULL (then
 * sm_malloc_rest; always for size 0). *page gets
 * the block's page, which the tracer tags it in (sm_tag_set_in_page); an
 * untraced caller lets the compiler drop it. */
SM_INLINE void *sm_malloc_fast(sm_heap_t *h, size_t size, sm_page_t **page) {
  sm_page_t *pg = SM_LIKELY(size <= SM_SMALL_MAX) ? h->direct[(size + 7) >> 3] : h->cur[sm_size_class(size)];
  sm_block_t *b = pg->free;
  if (SM_UNLIKELY(b == NULL)) return NULL;
  sm_block_t *next = b->next;
  pg->free = next;
  /* The next malloc of this class reads next's link. A block freed onto
   * this page while it was current is still in cache, but one freed while
   * another page was current has gone cold: reading its link was where
   * malloc spent most of its time in `lifetimes 1` (perf). Fetched now,
   * it arrives before that malloc needs it. A NULL next (the page ran
   * dry) is harmless: a prefetch never faults. */
  __builtin_prefetch(next, 1, 3);
  sm_page_used_inc(pg);
  b->mark = 0; /* handed out: a free finds no mark */
  *page = pg;
  return b;
}
/* The library's own free: every pool block checked, none traced. */
void sm_free(void *p);
/* free(p) that also takes the block's tag and, when it had one, passes it
 * and p (to compare, not to read: the block is free) to sm_tag_released
 * after the block is freed. */
void sm_free_traced(void *p);
/* The exported free (preload/exports.c): the fast path when p's segment
 * map entry is SM_SEGMAP_POOL, else out of line (free_dispatch, alloc.c). */
void sm_free_exported(void *p);
/* From now on the exported free frees as sm_free_traced: every pool
 * segment's entry becomes SM_SEGMAP_POOL_ALT first (sm_segment_pool_alt).
 * Called when tracing starts (not with sparse sampling, allocator/tag.c). */
void sm_free_trace_start(void);
extern void (*sm_tag_released)(uint32_t trace, size_t req, const void *p); /* set by the tracer */
void *sm_calloc(size_t n, size_t size);
void *sm_realloc(void *p, size_t size);
void *sm_memalign(size_t align, size_t size); /* align: power of two */
size_t sm_usable_size(const void *p);
/* Out of memory: unmaps cached segments and entirely free chunks of every
 * arena; true if anything was released (worth retrying). */
bool sm_release_reserves(void);
void sm_init(void);
extern int sm_init_state; /* 0 none, 1 running, 2 done */
/* the C library's own functions, for pointers that are not ours */
extern void (*sm_libc_free)(void *);
extern void *(*sm_libc_realloc)(void *, size_t);
extern size_t (*sm_libc_usable_size)(void *);

/* ---- tag.c: the tracer's per-block record (trace id 0 = untraced) */
/* A bit of a pool block's trace id that the tracer may set on a live block
 * (trace ids use 24 bits): the block's free then hands it the id with the
 * bit, so that it hears of the block's death (tracer/pyframes.c watches
 * Python code objects this way). Every reader of trace ids from tags masks
 * it off. */
#define SM_TAG_WATCHED 0x80000000u
/* The tag of a block the library allocated for itself through the public
 * malloc while tracing was on: the loader's and libunwind's memory when the
 * tracer loads libunwind (tracer/unwlib.c), anything else called from
 * inside the tracer. Not a trace: its free changes no count, and the
 * exit's leak scan takes it as a root and never reports it, as the memory
 * of libraries loaded at startup, which the loader allocates for itself. */
#define SM_TAG_OWN 0x40000000u
/* Sets SM_TAG_WATCHED on the tagged pool block that starts at p; false
 * when p is not the start of a tagged pool block (not ours, large, huge,
 * untraced, or inside a block). The block must be live and stay so during
 * the call. */
bool sm_tag_watch(const void *p);
bool sm_tag_set(void *p, uint32_t trace, size_t request); /* false: no memory for the side array */
/* Sampling at a rate of SM_SAMPLE_MOVE_MIN or more (set once, before the
 * first tag): only large and huge blocks carry tags. The sampler moves a
 * pool block it picked to a large block (sm_tag_relocate) before tagging
 * it, so that no pool block has a tag and the untraced free, which such
 * sampling keeps, is right for every pool block; a large or huge block's
 * free reads its header anyway, and takes the tag from there. sm_tag_set
 * refuses pool blocks meanwhile. Denser sampling tags pool blocks in
 * place and frees through the traced free, as tracing every block does:
 * a move per sampled block would cost more than it saves. */
#define SM_SAMPLE_MOVE_MIN ((size_t)64 * 1024)
extern bool sm_tag_big_only;
/* What a moved block must keep, from the call that made it: the
 * alignment the call promised (a power of two, 16 at least; memalign and
 * friends ask for more), and SM_MOVE_COPY when its bytes are the caller's
 * (calloc's zeros, realloc's data). */
#define SM_MOVE_COPY    1u
#define SM_MOVE_MALLOC  16u                  /* malloc's: 16-aligned, garbage */
/* memalign's a (a power of two), garbage; a pool block is never aligned
 * beyond the 4 KiB of its page's start */
#define SM_MOVE_ALIGN(a) ((a) <= 16 ? 16u : (a) >= 4096 ? 4096u : (unsigned)(a))
/* With sm_tag_big_only: the block to tag in place of p, a block the
 * caller just allocated for `req` bytes. p itself when it is not a pool
 * block; else a new large block at least as usable as p (pvalloc promises
 * its whole page), aligned as `move` says, holding p's first req bytes if
 * `move` has SM_MOVE_COPY (else whatever the large block held); p is
 * freed. NULL without memory for it (p stays, and is not to be tagged).
 * errno is kept. */
void *sm_tag_relocate(void *p, size_t req, unsigned move);
/* The tag slot of pool block p in page pg when a plain store may set it
 * (the page has its side array), else NULL (sm_tag_set does the rest). */
SM_INLINE uint64_t *sm_tag_slot_plain(sm_page_t *pg, const void *p) {
  uint64_t *tags = __atomic_load_n(&pg->tags, __ATOMIC_ACQUIRE);
  if (SM_UNLIKELY(tags == NULL)) return NULL;
  return &tags[sm_class_div((size_t)((const uint8_t *)p - pg->start), pg->cls)];
}
/* sm_tag_set for a pool block of page pg, known to the caller (malloc's
 * fast path): no segment lookup. */
SM_INLINE bool sm_tag_set_in_page(sm_page_t *pg, void *p, uint32_t trace, size_t request) {
  uint64_t *slot = sm_tag_slot_plain(pg, p);
  if (SM_LIKELY(slot != NULL)) {
    *slot = trace | (uint64_t)request << 32;
    return true;
  }
  return sm_tag_set(p, trace, request);
}
uint32_t sm_tag_take(void *p, size_t *request);           /* reads and clears */
/* sm_tag_take for a block of a pool page (pg is the block's page). */
uint32_t sm_tag_take_pool(sm_page_t *pg, const void *p, size_t *request);
/* New blocks are carved from zeroed memory (set by the tracer when a leak
 * scan may run: old data of a page's previous size class would otherwise
 * look like pointers). */
extern bool sm_zero_carved;
/* Clears a pool block's tag slot, whose tag the caller read. */
SM_INLINE void sm_tag_clear(uint64_t *slot) { *slot = 0; }

/* ---- walk: every live block, for the leak scanner. fn gets the block's
 * start, its requested size (the block size when unknown) and its trace id.
 * The caller holds every lock of the library (the lock table): fn must
 * neither allocate nor take a lock. Meant for a stopped world: other
 * threads' lists are read without their cooperation. */
typedef void (*sm_block_fn)(uintptr_t start, size_t size, uint32_t trace, void *arg);
void sm_walk_blocks(sm_block_fn fn, void *arg);
void sm_pool_walk(sm_segment_t *seg, sm_block_fn fn, void *arg);
void sm_large_walk(sm_segment_t *seg, sm_block_fn fn, void *arg);

/* ---- stats.c */
typedef struct sm_stats {
  size_t mapped;       /* bytes mapped from the OS for blocks (segments, huge) */
  size_t meta;         /* bytes mapped for metadata */
  size_t pool_inuse;   /* bytes in pool blocks handed out */
  size_t large_inuse;  /* bytes in large blocks handed out, headers included */
  size_t huge_inuse;   /* bytes in huge mappings */
  size_t large_free;   /* bytes in free large blocks */
  size_t segments;     /* live segments */
  size_t heaps;        /* live thread heaps */
} sm_stats_t;
void sm_stats_get(sm_stats_t *st);
void sm_stats_print(int fd);

#endif
