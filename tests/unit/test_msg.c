/* The allocation-free formatter behind every message. */
#include <string.h>

#include "allocator/msg.h"
#include "tests/testhelper.h"

int main(void) {
  char b[64];
  sm_snprintf(b, sizeof b, "%s=%d %u %zu %x %p %c%%", "k", -42, 7u, (size_t)123456789, 255u, (void *)0x1f, 'z');
  CHECK(strcmp(b, "k=-42 7 123456789 ff 0x1f z%") == 0);
  sm_snprintf(b, sizeof b, "%.*s|%lld|%llu", 3, "abcdef", -9223372036854775807LL - 1, 18446744073709551615ULL);
  CHECK(strcmp(b, "abc|-9223372036854775808|18446744073709551615") == 0);
  size_t n = sm_snprintf(b, 8, "%s", "0123456789");
  CHECK(n == 7 && strcmp(b, "0123456") == 0);
  /* zero-padded widths: the snapshot writer's random temporary names */
  sm_snprintf(b, sizeof b, "%016llx|%04u|%02x", 0xabcULL, 7u, 0x1234u);
  CHECK(strcmp(b, "0000000000000abc|0007|1234") == 0);
  sm_snprintf(b, sizeof b, "%s", (const char *)NULL);
  CHECK(strcmp(b, "(null)") == 0);
  return test_summary();
}
