/* CRC-32 (IEEE, reflected polynomial 0xEDB88320). Shared by the snapshot
 * writer and reader, and on the writer's side it runs over every byte of a
 * snapshot, which for a program with a million distinct stacks is hundreds
 * of megabytes at exit: so eight bytes a step ("slicing by 8"), with eight
 * tables built on first use. Table k maps a byte to the CRC contribution
 * of that byte followed by k zero bytes, so the eight lookups of one step
 * are independent and the step costs about what one byte used to. */
#include <string.h>

#include "allocator/base.h" /* SM_BIG_BSS */
#include "tracer/snapfmt.h"

static SM_BIG_BSS uint32_t table[8][256];
static int table_ready;

static void build_tables(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int k = 1; k < 8; k++) table[k][i] = (table[k - 1][i] >> 8) ^ table[0][table[k - 1][i] & 0xff];
  __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t load_le32(const uint8_t *p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4); /* x86-64 only (meson.build): little-endian */
  return v;
}

uint32_t sm_crc32(uint32_t crc, const void *data, size_t len) {
  if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_tables();
  const uint8_t *p = data;
  crc = ~crc;
  for (; len >= 8; len -= 8, p += 8) {
    uint32_t lo = crc ^ load_le32(p), hi = load_le32(p + 4);
    crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
          table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^ table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
  }
  while (len--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}
