/* A library the lifecycle test dlopens, allocates through, and dlcloses. */
#include <stdlib.h>

__attribute__((noinline)) void *tracer_lib_make(size_t n) { return malloc(n); }
