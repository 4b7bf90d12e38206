/* Every allocator data structure, with the meaning and invariant of each field.
 *
 * Memory comes from the OS in *segments*: SM_SEGMENT_SIZE-aligned mappings whose
 * first bytes hold an sm_segment_t. Any pointer p we hand out satisfies
 * "(p - 1) rounded down to SM_SEGMENT_SIZE is the start of the mapping that owns
 * it" (p is never the first byte of a mapping, so p - 1 stays inside), and the
 * global segment map says whether that address is one of ours. Three kinds:
 *   pool  - split into equal pages, each page serving one size class;
 *   large - one arena chunk, carved into boundary-tagged blocks (large.c);
 *   huge  - one block in its own mapping (huge.c). */
#ifndef SM_ALLOCATOR_TYPES_H
#define SM_ALLOCATOR_TYPES_H

#include "allocator/base.h"
#include "allocator/list.h"

/* ---------------------------------------------------------------- sizes */

#define SM_SEGMENT_SHIFT 22
#define SM_SEGMENT_SIZE  ((size_t)1 << SM_SEGMENT_SHIFT) /* 4 MiB */
#define SM_SEGMENT_MASK  (SM_SEGMENT_SIZE - 1)
/* The segment map's entries (internal.h says what each means). */
#define SM_SEGMAP_POOL 1
#define SM_SEGMAP_POOL_ALT 2
#define SM_SEGMAP_BIG 3
#define SM_SEGMAP_FREED 255
/* Slots a large or huge segment may span: entries 3..254 (a 1008 MiB mapping). */
#define SM_SEGMAP_MAX_SLOTS (SM_SEGMAP_FREED - SM_SEGMAP_BIG)

#define SM_SMALL_PAGE_SHIFT  16 /* 64 KiB pages: classes up to SM_SMALL_MAX */
#define SM_MEDIUM_PAGE_SHIFT 19 /* 512 KiB pages: classes up to SM_POOL_MAX */
#define SM_PAGES_MAX (SM_SEGMENT_SIZE >> SM_SMALL_PAGE_SHIFT) /* 64 */

#define SM_SMALL_MAX  ((size_t)1024)
#define SM_POOL_MAX   ((size_t)64 * 1024) /* largest request served by pools */
#define SM_CLASS_COUNT 44                 /* size classes, see sizeclass.c */

/* Smallest alignment every malloc result has (glibc: 2 * sizeof(size_t)). */
#define SM_MIN_ALIGN 16

/* Largest request we try to satisfy at all (glibc refuses > PTRDIFF_MAX). */
#define SM_MAX_REQUEST ((size_t)PTRDIFF_MAX - 2 * SM_SEGMENT_SIZE)

typedef enum sm_segment_kind {
  SM_SEG_POOL = 1,  /* pages of small/medium blocks, owned by one heap */
  SM_SEG_LARGE = 2, /* an arena chunk of boundary-tagged blocks */
  SM_SEG_HUGE = 3,  /* one huge block */
} sm_segment_kind_t;

/* ---------------------------------------------------------------- pools */

/* A free block in a pool page: its first word links to the next, its
 * second holds a free mark. malloc clears the mark of the block it hands
 * out, so a block that carries one on free was freed already (a double
 * free, caught before it can link a block twice). The owner's frees write
 * sm_marks.local; another thread's free swaps in sm_marks.remote atomically
 * (two racing frees of one block: one of them sees the other's mark), and
 * the owner turns it into sm_marks.local when it collects the block, after
 * checking it (a block the owner freed meanwhile has the local mark there).
 * The marks are drawn from the kernel's randomness at start (os.c), so no
 * program can hold them in a live block except by a 1-in-2^47 chance, nor
 * plant them on purpose; both are kernel-half addresses, so the leak
 * scanner never takes them for pointers. */
typedef struct sm_block {
  struct sm_block *next;
  uintptr_t mark; /* sm_marks.local / .remote while free; 0 from malloc until free */
} sm_block_t;

/* Set once in sm_init, before the first block is carved; read-only after. */
extern struct sm_marks {
  uintptr_t local, remote;
} sm_marks;

struct sm_heap;

typedef struct sm_page {
  /* First cache line: what malloc and free touch, the checks of free and
   * the tracer's tags among them. */
  sm_block_t *free;        /* blocks ready for malloc; popped by the fast path */
  uint32_t used;           /* blocks handed out and not yet back on free/local_free */
  uint8_t *start;          /* first block of the page */
  uint64_t mulc;           /* sm_block_mulc(block_size) */
  uint64_t qlimit;         /* atomic: capacity * sm_block_excess(block_size), 0 unassigned: p is a
                              carved block iff (p - start) * mulc < qlimit (sizeclass.h) */
  uint32_t reserved;       /* blocks that fit in the page */
  uint8_t cls;             /* size class index */
  uint8_t in_full;         /* 1 while on the heap's full list, 0 on its avail list */
  uint8_t dirty;           /* unassigned page whose memory is still committed */
  uint8_t assigned;        /* 1 while the page serves a class */
  uint64_t *tags;          /* tracer: per-block trace id | request << 32, or NULL */
  sm_block_t *local_free;  /* blocks the owner freed through its slow paths since the last collect */
  /* Second line: the slow paths', and the one other threads write. */
  sm_block_t *thread_free; /* atomic stack of blocks freed by other threads */
  struct sm_page *next;    /* neighbour in the heap's avail or full list */
  struct sm_page *prev;
  uint32_t block_size;     /* bytes per block; 0 while the page is unassigned */
  uint32_t capacity;       /* blocks carved out of the page so far (<= reserved) */
  uint32_t freed_at;       /* unassigned and dirty: sm_now32() when it was retired */
} SM_CACHE_ALIGN sm_page_t;
/* Two lines, so that a page's index becomes its offset by a shift. */
_Static_assert(sizeof(sm_page_t) == 128, "sm_page_t is two cache lines");

typedef SM_LIST_HEAD(sm_page_t) sm_pagelist_t; /* links: next, prev */
typedef SM_LIST_HEAD(struct sm_segment) sm_seglist_t;

/* ---------------------------------------------------------------- large */

/* Header in front of every large block (32 bytes, keeps payloads 16-aligned).
 * Blocks tile their chunk; `head` holds the size (a multiple of 16) and two
 * flags. prev_size is meaningful only while the previous block is free. */
typedef struct sm_lblock {
  size_t prev_size;  /* size of the block just below, valid if !(head & PREV_INUSE) */
  size_t head;       /* size | SM_LB_INUSE | SM_LB_PREV_INUSE */
  size_t request;    /* bytes the caller asked for (in-use blocks) */
  uint32_t trace;    /* tracer's trace id (0 = none) */
  uint32_t magic;    /* SM_LB_MAGIC while in use, checked on free */
} sm_lblock_t;

#define SM_LB_INUSE      ((size_t)1)
#define SM_LB_PREV_INUSE ((size_t)2)
#define SM_LB_MOVED      ((size_t)4) /* a sampled pool block moved here (tag.c): its free may keep it */
#define SM_LB_FLAGS      ((size_t)15)
#define SM_LB_MAGIC      0x6c61726bu /* "lark" */
#define SM_LB_KEPT       0x6b656570u /* "keep": freed, held on a quick list (large.c) */
#define SM_LB_HDR        sizeof(sm_lblock_t)

/* A free large block keeps its tree links right after the header. */
typedef struct sm_fnode {
  struct sm_fnode *left, *right; /* splay tree keyed by (size, address) */
  uint32_t freed_at;             /* sm_now32() when it became free (purge age) */
  uint32_t dirty_lo, dirty_hi;   /* bytes [lo, hi) from the block's start may be committed;
                                    lo >= hi: none (large.c) */
} sm_fnode_t;

struct sm_segment;

/* When a heap or an arena gives its free memory back (os.c, sm_purge_due). */
typedef struct sm_purge_state {
  uint64_t last;         /* sm_os_now_ms() of the last purge */
  size_t peak;           /* highest live bytes since the last aged purge */
  uint64_t shrunk_at;    /* when a cycling owner was first seen shrunk, its memory held; 0: not */
  uint64_t emptied_at;   /* when a shrink last gave everything back; 0: none to watch */
  size_t emptied_peak;   /* the peak that shrink fell from */
  bool cycling;          /* it grew back to half that peak soon after: the next shrink waits */
} sm_purge_state_t;

typedef struct sm_arena {
  sm_lock_t lock; /* lock order: tracer/locks.c */
  unsigned index;            /* position in sm_arenas[] */
  sm_fnode_t *root;          /* free blocks, best fit by (size, address) */
  sm_seglist_t chunks;       /* chunk segments of this arena (links: next, prev) */
  sm_lblock_t *rover;        /* next-fit: where the last search ended */
  size_t chunk_count;
  size_t free_bytes;         /* sum of free block sizes */
  size_t dirty_bytes;        /* committed bytes in free blocks that purging could return */
  size_t inuse_bytes;        /* sum of in-use block sizes */
  sm_purge_state_t purge;    /* of inuse_bytes and dirty_bytes */
  uint32_t now;              /* sm_now32() at the start of the current free */
  /* Freed blocks that sampling had moved here, kept whole for the next
   * move of the same class (large.c, "quick lists"): in use as far as the
   * boundary tags go, magic SM_LB_KEPT, linked through their payload. */
  struct sm_lblock *quick[SM_CLASS_COUNT];
  uint8_t quick_count[SM_CLASS_COUNT];
  size_t quick_bytes;        /* sum of their sizes (not in inuse_bytes) */
} SM_CACHE_ALIGN sm_arena_t;

/* ---------------------------------------------------------------- segments */

typedef struct sm_segment {
  uint32_t kind;               /* sm_segment_kind_t */
  uint32_t page_shift;         /* pool: log2 of page size */
  size_t size;                 /* bytes mapped, a multiple of SM_SEGMENT_SIZE */
  uint32_t thp;                /* pool and large: SM_SEG_THP_* bits (segment.c); its owner's */
  struct sm_heap *heap;        /* pool: owner heap (atomic); NULL if abandoned */
  struct sm_segment *next;     /* list in the owner (heap, arena) or cache */
  struct sm_segment *prev;
  struct sm_segment *all_next; /* registry of every live segment */
  struct sm_segment *all_prev;
  /* pool segments */
  uint32_t page_count;         /* pages in this segment */
  uint32_t pages_used;         /* pages assigned to a class */
  uint32_t abandoned;          /* 1 while on the abandoned list (segment lock) */
  uint64_t free_mask;          /* bit i set: page i unassigned */
  uint64_t dirty_mask;         /* bit i set: page i unassigned and still committed */
  /* large segments */
  sm_arena_t *arena;
  /* huge segments */
  size_t huge_request;         /* bytes asked for */
  size_t huge_offset;          /* payload = segment + huge_offset */
  uint32_t huge_trace;         /* tracer's trace id */
  uint32_t huge_magic;         /* SM_HUGE_MAGIC while live */
  sm_page_t pages[];           /* pool: page_count entries */
} sm_segment_t;

#define SM_HUGE_MAGIC 0x68756765u /* "huge" */

/* sm_segment_t.thp: the segment may be backed by transparent huge pages
 * (it asked for them, or the kernel gives them to every mapping); it was
 * told not to be (MADV_NOHUGEPAGE), when part of it was purged. */
#define SM_SEG_THP_MAY    1u
#define SM_SEG_THP_BARRED 2u

/* ---------------------------------------------------------------- heaps */

struct sm_segment;

#define SM_DIRECT_COUNT (SM_SMALL_MAX / 8 + 1) /* small sizes by (size + 7) / 8 */

/* Per-thread heap. Only its owner thread touches it, except for the atomic
 * thread_free stacks of its pages and the registry links (under a lock). */
typedef struct sm_heap {
  /* Bytes malloc's fast path may still hand out before it goes out of line
   * (sm_heap_gate_spend, allocator/internal.h): far ahead while nothing is
   * traced, the sampling countdown while sampling sparsely, spent while
   * every block is traced. The owner subtracts without a lock; only
   * sm_heaps_gates_shut (heap.c) writes another thread's. */
  int64_t gate;
  /* malloc's fast path for a size up to SM_SMALL_MAX: cur[] of its class,
   * indexed by (size + 7) / 8, so that the path needs no class lookup
   * first. A copy: every write of cur[] goes through sm_heap_set_cur. */
  sm_page_t *direct[SM_DIRECT_COUNT];
  sm_page_t *cur[SM_CLASS_COUNT];   /* page to allocate from per class */
  sm_pagelist_t avail[SM_CLASS_COUNT]; /* pages that may have free blocks; first == cur */
  sm_pagelist_t full[SM_CLASS_COUNT];  /* pages found exhausted */
  sm_seglist_t segs[2];             /* owned pool segments, [0] small pages, [1] medium; those
                                       with unassigned pages come first (links: next, prev) */
  size_t dirty_bytes;               /* committed bytes in unassigned pages */
  size_t full_pending;              /* atomic: remote frees seen on pages of the full lists */
  size_t pages_bytes;               /* bytes of pages assigned to classes (purge policy) */
  size_t fresh_pages;               /* pages carved so far (periodic full-list sweep) */
  sm_purge_state_t purge;           /* of pages_bytes and dirty_bytes */
  unsigned arena;                   /* index of the large arena this thread uses */
  unsigned reincarnations;          /* times re-created after thread exit */
  struct sm_heap *reg_next;         /* registry of live heaps (sm_heaps_lock) */
  struct sm_heap *reg_prev;
  uint64_t parked_at;               /* sm_os_now_ms() when it was parked (heap.c) */
  uint32_t is_parked;               /* 1 while on the parked list (atomic: read without the lock) */
  uint64_t tid;                     /* kernel thread id of the owner */
} sm_heap_t;

/* Every thread's heap until its first allocation (heap.c). */
extern sm_heap_t sm_heap_empty;

#endif
