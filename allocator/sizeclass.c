/* Size-class tables (see sizeclass.h). */
#include "allocator/sizeclass.h"

SM_RUNTIME_DATA const uint32_t sm_class_size[SM_CLASS_COUNT] = {
    16,    32,    48,    64,    80,    96,    112,   128,         /* 0-7 */
    160,   192,   224,   256,   320,   384,   448,   512,         /* 8-15 */
    640,   768,   896,   1024,                                   /* 16-19 */
    1280,  1536,  1792,  2048,  2560,  3072,  3584,  4096,        /* 20-27 */
    5120,  6144,  7168,  8192,  10240, 12288, 14336, 16384,       /* 28-35 */
    20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536,       /* 36-43 */
};

#define INV(s) ((((uint64_t)1 << 40) + (s)-1) / (s))
SM_RUNTIME_DATA const uint64_t sm_class_inv[SM_CLASS_COUNT] = {
    INV(16),    INV(32),    INV(48),    INV(64),    INV(80),    INV(96),    INV(112),  INV(128),
    INV(160),   INV(192),   INV(224),   INV(256),   INV(320),   INV(384),   INV(448),   INV(512),
    INV(640),   INV(768),   INV(896),   INV(1024),  INV(1280),  INV(1536),  INV(1792),  INV(2048),
    INV(2560),  INV(3072),  INV(3584),  INV(4096),  INV(5120),  INV(6144),  INV(7168),  INV(8192),
    INV(10240), INV(12288), INV(14336), INV(16384), INV(20480), INV(24576), INV(28672), INV(32768),
    INV(40960), INV(49152), INV(57344), INV(65536),
};
#undef INV

unsigned sm_size_class_slow(size_t size) {
  if (size <= 16) return 0;
  if (size <= 128) return (unsigned)((size + 15) >> 4) - 1u;
  size_t s = size - 1;
  unsigned b = sm_log2(s);
  return 8u + (b - 7u) * 4u + (unsigned)((s >> (b - 2u)) & 3u);
}

/* Entry i is the class of sizes 8i-7..8i (class bounds are multiples of 8),
 * i.e. sm_size_class_slow(8 * i); tests/unit/test_sizeclass.c checks it. */
SM_RUNTIME_DATA const uint8_t sm_small_class[SM_SMALL_MAX / 8 + 1] = {
    0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7,
    7, 8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11,
    11, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13,
    13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15,
    15, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17,
    17, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
    18, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19,
    19,
};
