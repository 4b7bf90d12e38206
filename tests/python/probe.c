/* Loads a library that looks like an interpreter (fakepy.c) after start,
 * allocates from a call site of its own (a new trace: the module map is
 * read again, and the probe sees the library), and prints PYTHONMALLOC:
 * the library's constructor ran before the "interpreter" was there, so it
 * is not set. tests/python/scenarios.py reads what the probe said.
 *   probe LIBRARY */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void *volatile kept;

__attribute__((noinline)) static void allocate(void) { kept = malloc(100); }

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  if (!dlopen(argv[1], RTLD_NOW)) {
    fprintf(stderr, "probe: %s\n", dlerror());
    return 1;
  }
  allocate();
  const char *pm = getenv("PYTHONMALLOC");
  printf("PYTHONMALLOC=%s\n", pm ? pm : "(unset)");
  return 0;
}
