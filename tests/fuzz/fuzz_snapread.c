/* libFuzzer entry point for the snapshot reader: any byte string must be
 * accepted or rejected with a message, never crash, hang or leak.
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Ibuild \
 *     tests/fuzz/fuzz_snapread.c tools/snapread.c tools/util.c tracer/crc32.c -o fuzz_snapread
 *   ./fuzz_snapread tests/fuzz/corpus
 * The checksum would stop the fuzzer at the door, so with SNAPFUZZ_FIXCRC
 * defined the harness rewrites it first and explores what lies behind. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/snapread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  if (size >= SM_SNAP_HEADER_SIZE && (size & 1)) { /* half the inputs: a valid checksum */
    uint32_t crc = sm_crc32(0, copy + SM_SNAP_HEADER_SIZE, size - SM_SNAP_HEADER_SIZE);
    memcpy(copy + 24, &crc, 4);
  }
  sm_snap_t snap;
  char err[256];
  if (sm_snap_parse(copy, size, &snap, err, sizeof err) == 0) sm_snap_free(&snap);
  free(copy);
  return 0;
}
