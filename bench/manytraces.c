/* A process holding 1,000,000 live blocks from 100,000 distinct stack
 * traces, for timing `snapmalloc top` and `diff` on big snapshots
 * (bench/cli-speed). Each trace is a path through 11 levels of recursion
 * with three distinct call sites per level (3^11 > 100,000 paths), and
 * each path's leaf allocates 10 blocks. It writes a snapshot through the
 * public API after half of the paths and another at exit. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define NOINL __attribute__((noinline))
#define LEVELS 11
#define PATHS 100000
#define PER_PATH 10

static void **blocks;
static long nblocks;
static volatile long sink;

NOINL static void leaf(unsigned code) {
  for (int i = 0; i < PER_PATH; i++) blocks[nblocks++] = malloc(16 + (code % 7) * 8);
}

NOINL static void level(int depth, unsigned code, unsigned path) {
  if (depth == 0) {
    leaf(path);
    return;
  }
  /* Three call sites with different code after them: three return addresses. */
  switch (code % 3) {
  case 0: level(depth - 1, code / 3, path); sink += 1; break;
  case 1: level(depth - 1, code / 3, path); sink += 2; break;
  default: level(depth - 1, code / 3, path); sink += 3; break;
  }
}

int main(int argc, char **argv) {
  int (*snapshot)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "snapmalloc_snapshot");
  blocks = calloc((size_t)PATHS * PER_PATH, sizeof *blocks);
  for (unsigned p = 0; p < PATHS; p++) {
    level(LEVELS, p, p);
    if (p == PATHS / 2 && snapshot && argc > 1) snapshot(argv[1]);
  }
  printf("manytraces blocks=%ld paths=%d\n", nblocks, PATHS);
  return 0;
}
