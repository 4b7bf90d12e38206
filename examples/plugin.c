/* A plugin that examples/sites.cc dlopens: its blocks must be charged to
 * this file's line. */
#include <stdlib.h>

void **plugin_blocks;

void *plugin_make(int n) {
  plugin_blocks = calloc((size_t)n, sizeof *plugin_blocks); /* 1 x n * 8 B */
  for (int i = 0; i < n; i++) plugin_blocks[i] = malloc(333); /* n x 333 B */
  return plugin_blocks;
}
