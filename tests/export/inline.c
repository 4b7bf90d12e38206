/* A program whose allocation site is inlined: built with -O2 -g, so that
 * the frame in fill() is one return address with an inline chain
 * (make_buffer, then fill). tests/export/pprof.sh checks that the pprof
 * export turns it into one Location with two Lines, innermost first. */
#include <stdlib.h>
#include <string.h>

static char *kept[64];

static inline __attribute__((always_inline)) char *make_buffer(size_t n, int fill_byte) {
  char *p = malloc(n); /* the allocation site, inlined into fill() */
  if (p) memset(p, fill_byte, n);
  return p;
}

__attribute__((noinline)) static void fill(int n) {
  for (int i = 0; i < n && i < 64; i++) kept[i] = make_buffer(1000 + (size_t)i, i);
}

int main(void) {
  fill(64);
  size_t sum = 0;
  for (int i = 0; i < 64; i++) sum += (unsigned char)kept[i][0];
  return sum == 64 * 63 / 2 ? 0 : 1; /* everything stays live at exit, on purpose */
}
