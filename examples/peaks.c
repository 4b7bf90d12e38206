/* A program whose peak is not its end, for `top --at peak` and the flow
 * views (`--sort allocations|allocated|temporary`).
 *
 * Phase 1 reads its "input" into 32 chunks of 256 KiB and sums them: the
 * process's traced memory peaks here, at 8 MiB held by one line. The
 * chunks are then freed. Phase 2 formats every record into a scratch
 * string that is freed at once: 100,000 temporary allocations, none live
 * at the end. Phase 3 keeps its results: a table and one small block per
 * record. At exit, only phase 3's blocks are live, so `top` of the final
 * snapshot shows phase 3, `top --at peak` phase 1, and `--sort temporary`
 * phase 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (256 * 1024)
#define NCHUNKS 32

typedef struct result {
  int id;
  long value;
  char tag[32];
} result_t;

static char **load_chunks(void) {
  char **chunks = malloc(NCHUNKS * sizeof *chunks); /* phase 1: the chunk list */
  for (int i = 0; i < NCHUNKS; i++) {
    chunks[i] = malloc(CHUNK); /* phase 1: the input, all live at the peak */
    memset(chunks[i], 'a' + i % 26, CHUNK);
  }
  return chunks;
}

static long sum_chunks(char **chunks) {
  long sum = 0;
  for (int i = 0; i < NCHUNKS; i++) {
    for (int k = 0; k < CHUNK; k += 4096) sum += chunks[i][k];
    free(chunks[i]);
  }
  free(chunks);
  return sum;
}

static long churn(int n) {
  long len = 0;
  for (int i = 0; i < n; i++) {
    char *tmp = malloc(40); /* phase 2: a scratch string, freed at once */
    snprintf(tmp, 40, "record %d of %d", i, n);
    len += (long)strlen(tmp);
    free(tmp);
  }
  return len;
}

static result_t **keep_results(int n, long seed) {
  result_t **table = calloc((size_t)n, sizeof *table); /* phase 3: the result table */
  for (int i = 0; i < n; i++) {
    table[i] = malloc(sizeof **table); /* phase 3: one result per record, kept */
    table[i]->id = i;
    table[i]->value = seed + i;
    snprintf(table[i]->tag, sizeof table[i]->tag, "r%d", i);
  }
  return table;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  long sum = sum_chunks(load_chunks());
  long len = churn(5 * n);
  result_t **table = keep_results(n, sum);
  printf("records=%d sum=%ld len=%ld last=%s\n", n, sum, len, table[n - 1]->tag);
  return 0; /* phase 3's blocks are still live at exit, on purpose */
}
