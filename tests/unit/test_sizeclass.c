/* Size classes: the lookup table agrees with the arithmetic, every size maps
 * to the smallest class that holds it, and waste stays bounded. */
#include "allocator/sizeclass.h"
#include "tests/testhelper.h"

#include <stdbool.h>

int main(void) {
  for (size_t s = 0; s <= SM_SMALL_MAX; s++)
    CHECK_MSG(sm_small_class[(s + 7) >> 3] == sm_size_class_slow(s), "size %zu", s);
  for (size_t s = 1; s <= SM_POOL_MAX; s++) {
    unsigned c = sm_size_class(s);
    CHECK_MSG(c < SM_CLASS_COUNT && sm_class_size[c] >= s, "size %zu -> class %u", s, c);
    CHECK_MSG(c == 0 || sm_class_size[c - 1] < s, "size %zu not in the smallest class %u", s, c);
    if (s > 128) CHECK_MSG(sm_class_size[c] * 4 <= s * 5 + 4 * 8, "waste above 25%% for %zu", s);
  }
  CHECK(sm_class_size[SM_CLASS_COUNT - 1] == SM_POOL_MAX);
  CHECK(sm_class_size[0] == 16); /* every block has room for its link and its free mark */
  /* the reciprocal division is exact for every offset inside a page */
  for (unsigned c = 0; c < SM_CLASS_COUNT; c++) {
    size_t bad = 0;
    for (size_t off = 0; off < ((size_t)1 << 19); off++) bad += sm_class_div(off, c) != off / sm_class_size[c];
    CHECK_MSG(bad == 0, "class %u: %zu offsets divide wrongly", c, bad);
  }
  /* The free checks' block test (sm_block_mulc): for every class, every
   * offset from a segment header's worth below the first block to the end
   * of a page passes exactly when it is the start of one of the first
   * `cap` blocks, for several capacities. */
  for (unsigned c = 0; c < SM_CLASS_COUNT; c++) {
    uint32_t d = sm_class_size[c];
    size_t page = c <= SM_CLASS_SMALL_LAST ? (size_t)1 << 16 : (size_t)1 << 19;
    uint32_t reserved = (uint32_t)(page / d);
    uint32_t caps[] = {0, 1, 2, reserved / 2, reserved - 1, reserved};
    uint64_t mulc = sm_block_mulc(d), excess = sm_block_excess(d);
    CHECK_MSG(excess > 0 && excess <= d, "class %u: excess %llu", c, (unsigned long long)excess);
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
      uint64_t qlimit = (uint64_t)caps[k] * excess;
      size_t bad = 0;
      for (long long off = -16384; off < (long long)page; off++) {
        bool want = off >= 0 && off % d == 0 && off / d < caps[k];
        bool got = (uint64_t)off * mulc < qlimit;
        bad += want != got;
      }
      CHECK_MSG(bad == 0, "class %u (%u bytes), capacity %u: %zu offsets judged wrongly", c, d, caps[k], bad);
    }
  }
  CHECK(sm_class_size[SM_CLASS_SMALL_LAST] == SM_SMALL_MAX);
  for (unsigned c = 1; c < SM_CLASS_COUNT; c++) {
    CHECK(sm_class_size[c] > sm_class_size[c - 1]);
    CHECK(sm_class_size[c] % 16 == 0); /* glibc's 16-byte alignment, and room for the free mark */
  }
  return test_summary();
}
