/* Size classes of the pools: multiples of 16 up to 128, then four
 * classes per doubling up to 64 KiB (1280, 1536, 1792, 2048, ...). The worst
 * internal waste is under 20% above 128 B. Classes up to SM_SMALL_MAX live in
 * 64 KiB pages, the rest in 512 KiB pages. There is no 8-byte class: every
 * block has a second word, where a freed block keeps its free mark (see
 * sm_block_t in types.h), and every block is 16-aligned. */
#ifndef SM_ALLOCATOR_SIZECLASS_H
#define SM_ALLOCATOR_SIZECLASS_H

#include "allocator/types.h"

#define SM_CLASS_SMALL_LAST 19 /* class of SM_SMALL_MAX (1024) */

extern const uint32_t sm_class_size[SM_CLASS_COUNT];
/* class of sizes 0..SM_SMALL_MAX, indexed by (size + 7) / 8 */
extern const uint8_t sm_small_class[SM_SMALL_MAX / 8 + 1];

/* Class for 0 < size <= SM_POOL_MAX. */
SM_INLINE unsigned sm_size_class(size_t size) {
  if (SM_LIKELY(size <= SM_SMALL_MAX)) return sm_small_class[(size + 7) >> 3];
  size_t s = size - 1;
  unsigned b = sm_log2(s); /* 10..15 for 1025..65536 */
  return 8u + (b - 7u) * 4u + (unsigned)((s >> (b - 2u)) & 3u);
}

/* Division by a class size without a divide instruction: for every offset
 * below 2^25, (off * sm_class_inv[c]) >> 40 == off / sm_class_size[c]
 * (inv = ceil(2^40 / size); offsets inside a page are below 2^19). */
extern const uint64_t sm_class_inv[SM_CLASS_COUNT];
SM_INLINE uint32_t sm_class_div(size_t off, unsigned cls) { return (uint32_t)((off * sm_class_inv[cls]) >> 40); }

/* Whether a pointer is a block start, in one multiply and one compare.
 * With c = floor(2^64 / d) + 1 for a block size d, c * d = 2^64 + e with
 * 0 < e <= d. An offset off = i * d + r (0 <= r < d) from the page's
 * first block gives off * c = i * e + r * c (mod 2^64): below 2^30 when
 * r = 0 (i < 2^15 blocks in a page, e <= 2^15), at least c > 2^49 when
 * r > 0, and for the small negative offsets of a pointer into a segment's
 * header (under 2^13 bytes) it wraps to above 2^49 too. So
 * off * c < capacity * e holds exactly when off is the start of one of the
 * first `capacity` blocks: interior, misaligned, not yet carved and
 * header pointers all fail it. tests/unit/test_sizeclass.c checks every
 * class over every offset. */
SM_INLINE uint64_t sm_block_mulc(uint32_t d) { return UINT64_MAX / d + 1 + ((d & (d - 1)) == 0); }
SM_INLINE uint64_t sm_block_excess(uint32_t d) { return sm_block_mulc(d) * d; /* e, mod 2^64 */ }

/* Computes the class arithmetically for any size <= SM_POOL_MAX; the table
 * above is generated from it, and unit tests compare the two. */
unsigned sm_size_class_slow(size_t size);

#endif
