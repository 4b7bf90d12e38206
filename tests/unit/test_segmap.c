/* The segment map (allocator/internal.h, segment.c): the byte of a slot
 * tells a pool segment from a large or huge one, and for those how many
 * slots below the header is; a released huge mapping reads as freed; an
 * address that is not ours reads as 0; the traced free's start turns
 * every pool segment's byte to POOL_ALT. free's fast path trusts the pool
 * byte without reading the header, so each kind is checked at every slot
 * it covers, against the header's own kind. */
#include <string.h>

#include "allocator/internal.h"
#include "tests/testhelper.h"

static uintptr_t slot_base(const void *p) { return ((uintptr_t)p - 1) & ~(uintptr_t)SM_SEGMENT_MASK; }

/* Every slot of [lo, hi) (pointers into the segment seg) maps back to seg
 * with entry k + SM_SEGMAP_BIG, k the slot's distance from the header. */
static void check_big(sm_segment_t *seg, uintptr_t lo, uintptr_t hi, unsigned kind) {
  CHECK(seg->kind == kind);
  for (uintptr_t a = lo; a < hi; a += SM_SEGMENT_SIZE / 2) {
    const void *p = (const void *)a;
    unsigned k = (unsigned)((slot_base(p) - (uintptr_t)seg) >> SM_SEGMENT_SHIFT);
    CHECK_MSG(sm_segmap_entry(p) == k + SM_SEGMAP_BIG, "%p (slot %u of a kind-%u segment): entry %u", p, k, kind,
              sm_segmap_entry(p));
    CHECK_MSG(sm_segment_of(p) == seg, "%p: segment %p, not %p", p, (void *)sm_segment_of(p), (void *)seg);
  }
}

int main(void) {
  sm_init();

  /* Pool blocks, of a small and a medium class: one slot, entry 1. */
  size_t sizes[] = {16, 1000, 20000, SM_POOL_MAX};
  for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = sm_malloc(sizes[i]);
    CHECK(p != NULL);
    CHECK_MSG(sm_segmap_entry(p) == SM_SEGMAP_POOL, "%zu-byte block: entry %u", sizes[i], sm_segmap_entry(p));
    CHECK_MSG(sm_segmap_entry(p + sizes[i] - 1) == SM_SEGMAP_POOL, "its last byte: entry %u",
              sm_segmap_entry(p + sizes[i] - 1));
    sm_segment_t *seg = sm_segment_of(p);
    CHECK(seg != NULL && (uintptr_t)seg == slot_base(p) && seg->kind == SM_SEG_POOL);
    sm_free(p);
  }

  /* A large block of 12 MiB: its chunk spans several slots, and every
   * slot leads back to the chunk's header. */
  size_t big = 12 * SM_MiB;
  char *l = sm_malloc(big);
  CHECK(l != NULL);
  if (l) {
    sm_segment_t *seg = sm_segment_of(l);
    CHECK(seg != NULL);
    CHECK_MSG(seg && seg->size / SM_SEGMENT_SIZE >= 3, "the chunk spans %zu slots", seg ? seg->size / SM_SEGMENT_SIZE : 0);
    if (seg) check_big(seg, (uintptr_t)l, (uintptr_t)l + big, SM_SEG_LARGE);
    sm_free(l);
  }

  /* A huge block: its own mapping, whose first slot holds the header. */
  size_t huge = sm_opt.huge + SM_MiB;
  char *h = sm_malloc(huge);
  CHECK(h != NULL);
  if (h) {
    sm_segment_t *seg = sm_segment_of(h);
    CHECK(seg != NULL && (uintptr_t)seg == slot_base(h));
    if (seg) {
      CHECK(seg->kind == SM_SEG_HUGE);
      CHECK_MSG(sm_segmap_entry(h) == SM_SEGMAP_BIG, "huge block: entry %u", sm_segmap_entry(h));
    }
    sm_free(h);
    /* Released: a second free is told from a foreign pointer by this. */
    CHECK_MSG(sm_segmap_entry(h) == SM_SEGMAP_FREED, "released huge block: entry %u", sm_segmap_entry(h));
    CHECK(sm_segment_of(h) == NULL);
  }

  /* Not ours: the stack, the C library's heap, the top of the address space. */
  int local = 0;
  CHECK(sm_segmap_entry(&local) == 0 && sm_segment_of(&local) == NULL);
  CHECK(sm_segment_of((void *)((uintptr_t)1 << 47)) == NULL);
  CHECK(sm_segment_of((void *)~(uintptr_t)0) == NULL);

  /* The traced free's start (sm_free_trace_start): from then on every
   * pool segment's entry is POOL_ALT, those there already and those made
   * after, each still leading to its segment; big segments keep theirs.
   * The exported free frees such blocks out of line, traced. */
  char *small = sm_malloc(16), *medium = sm_malloc(20000), *large = sm_malloc(12 * SM_MiB);
  CHECK(small && medium && large);
  sm_free_trace_start(); /* no tracer here: no block has a tag */
  char *held[] = {small, medium};
  for (unsigned i = 0; i < 2; i++) {
    CHECK_MSG(sm_segmap_entry(held[i]) == SM_SEGMAP_POOL_ALT, "pool block %p: entry %u after the traced free started",
              (void *)held[i], sm_segmap_entry(held[i]));
    CHECK(sm_segment_of(held[i]) == (sm_segment_t *)slot_base(held[i]));
  }
  if (large) check_big(sm_segment_of(large), (uintptr_t)large, (uintptr_t)large + 12 * SM_MiB, SM_SEG_LARGE);
  /* 64 KiB blocks, 8 to a 512 KiB page: 200 of them take new segments. */
  enum { N = 200 };
  static char *blk[N];
  unsigned fresh = 0;
  for (unsigned i = 0; i < N; i++) {
    blk[i] = sm_malloc(SM_POOL_MAX);
    CHECK(blk[i] != NULL);
    if (!blk[i]) break;
    sm_segment_t *seg = sm_segment_of(blk[i]);
    CHECK_MSG(seg == (sm_segment_t *)slot_base(blk[i]) && seg->kind == SM_SEG_POOL, "block %u: segment %p", i,
              (void *)seg);
    CHECK_MSG(sm_segmap_entry(blk[i]) == SM_SEGMAP_POOL_ALT, "block %u of a segment made after: entry %u", i,
              sm_segmap_entry(blk[i]));
    fresh += slot_base(blk[i]) != slot_base(medium) && (i == 0 || slot_base(blk[i]) != slot_base(blk[i - 1]));
  }
  CHECK_MSG(fresh >= 2, "200 blocks of 64 KiB took %u new segments", fresh);
  /* Freed through the exported free, they are handed out again. */
  for (unsigned i = 0; i < N; i++) sm_free_exported(blk[i]);
  char *again = sm_malloc(SM_POOL_MAX);
  bool reused = false;
  for (unsigned i = 0; i < N; i++) reused |= again == blk[i];
  CHECK_MSG(reused, "a 64 KiB block after the exported free of 200: %p, none of theirs", (void *)again);
  sm_free_exported(again);
  sm_free_exported(small);
  sm_free_exported(medium);
  sm_free_exported(large);

  /* The map refuses what it cannot encode, before writing anything: a pool
   * segment of more than one slot, a big one of more than the bound. */
  sm_segment_t fake;
  memset(&fake, 0, sizeof fake);
  fake.kind = SM_SEG_POOL;
  CHECK(!sm_segmap_set(&fake, 2));
  fake.kind = SM_SEG_LARGE;
  CHECK(!sm_segmap_set(&fake, SM_SEGMAP_MAX_SLOTS + 1));
  CHECK(sm_segmap_entry(&fake) == 0);
  return test_summary();
}
