/* Loads a library that looks like an interpreter (fakepy.c) after start,
 * allocates from a call site of its own (a new trace: the module map is
 * read again, and the probe sees the library), and prints PYTHONMALLOC:
 * the library's constructor ran before the "interpreter" was there, so it
 * is not set. Then unloads it and allocates again: an accepted one must
 * not be read once it is gone. tests/python/scenarios.py reads what the
 * probe said.
 *   probe LIBRARY */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void *volatile kept;

__attribute__((noinline)) static void allocate(void) { kept = malloc(100); }
__attribute__((noinline)) static void allocate_after(void) { kept = malloc(200); }

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  void *h = dlopen(argv[1], RTLD_NOW);
  if (!h) {
    fprintf(stderr, "probe: %s\n", dlerror());
    return 1;
  }
  allocate();
  const char *pm = getenv("PYTHONMALLOC");
  printf("PYTHONMALLOC=%s\n", pm ? pm : "(unset)");
  /* Unloaded: the tracer must not read it any more. */
  if (dlclose(h) != 0) return 1;
  allocate_after();
  return 0;
}
