/* sm_crc32 (tracer/crc32.c): the standard check value, and agreement with
 * a plain bitwise CRC-32 over every length and alignment up to 64 bytes and
 * in pieces, so that the eight-bytes-a-step path and the byte tail agree. */
#include <stdint.h>
#include <string.h>

#include "tests/testhelper.h"
#include "tracer/snapfmt.h"

static uint32_t bitwise(uint32_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++) crc = crc & 1 ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  return ~crc;
}

int main(void) {
  CHECK(sm_crc32(0, "123456789", 9) == 0xCBF43926u); /* the CRC-32 check value */
  CHECK(sm_crc32(0, "", 0) == 0);
  uint8_t buf[80];
  uint64_t x = 0x9e3779b97f4a7c15u;
  for (size_t i = 0; i < sizeof buf; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
  for (size_t off = 0; off < 8; off++)
    for (size_t len = 0; off + len <= 72; len++) {
      uint32_t want = bitwise(0, buf + off, len);
      CHECK_MSG(sm_crc32(0, buf + off, len) == want, "offset %zu length %zu", off, len);
      size_t half = len / 3;
      CHECK_MSG(sm_crc32(sm_crc32(0, buf + off, half), buf + off + half, len - half) == want,
                "offset %zu length %zu in two pieces", off, len);
    }
  return test_summary();
}
