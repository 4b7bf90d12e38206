/* Size classes: the lookup table agrees with the arithmetic, every size maps
 * to the smallest class that holds it, and waste stays bounded. */
#include "allocator/sizeclass.h"
#include "tests/testhelper.h"

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
  /* the reciprocal division is exact for every offset inside a page */
  for (unsigned c = 0; c < SM_CLASS_COUNT; c++) {
    size_t bad = 0;
    for (size_t off = 0; off < ((size_t)1 << 19); off++) bad += sm_class_div(off, c) != off / sm_class_size[c];
    CHECK_MSG(bad == 0, "class %u: %zu offsets divide wrongly", c, bad);
  }
  CHECK(sm_class_size[SM_CLASS_SMALL_LAST] == SM_SMALL_MAX);
  for (unsigned c = 1; c < SM_CLASS_COUNT; c++) {
    CHECK(sm_class_size[c] > sm_class_size[c - 1]);
    CHECK(sm_class_size[c] % 16 == 0); /* glibc's 16-byte alignment above 8 B */
  }
  return test_summary();
}
