/* Built twice for the dlclose test in unwind.c, with FRAME = 4096 and 8192:
 * the same machine code layout (every offset, so every return address,
 * alike) but frames of different sizes. When one copy is unloaded and the
 * other loaded at the same address, an unwind rule cached for the first
 * would walk the second's frames wrongly. */
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) void *tracer_shape_make(size_t n) {
  volatile char pad[FRAME];
  pad[n % FRAME] = (char)n;
  void *p = malloc(n + (size_t)(pad[n % FRAME] & 1));
  __asm__ volatile("" ::: "memory"); /* no tail call */
  return p;
}
