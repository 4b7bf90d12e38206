/* A two-phase toy program for `snapmalloc run`, `top` and `diff`.
 *
 * Phase 1 loads "records" (small strings and structs); it then asks for a
 * snapshot through the public API, if the library is there. Phase 2 builds
 * an index over the records and a cache that keeps growing. At exit the
 * final snapshot shows everything still live, and `snapmalloc diff` of the
 * two snapshots shows what phase 2 added.
 *
 * The program works the same without the library: the API is looked up
 * with dlsym, as include/snapmalloc.h recommends. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct record {
  int id;
  char *name;
  double values[6];
} record_t;

typedef struct index_entry {
  struct index_entry *next;
  record_t *rec;
} index_entry_t;

static record_t *load_record(int id) {
  record_t *r = malloc(sizeof *r); /* phase 1: one struct per record */
  char buf[64];
  snprintf(buf, sizeof buf, "record-%06d", id);
  r->id = id;
  r->name = strdup(buf); /* phase 1: its name */
  for (int i = 0; i < 6; i++) r->values[i] = id * 0.5 + i;
  return r;
}

static index_entry_t **build_index(record_t **recs, int n, int buckets) {
  index_entry_t **idx = calloc((size_t)buckets, sizeof *idx); /* phase 2: bucket array */
  for (int i = 0; i < n; i++) {
    index_entry_t *e = malloc(sizeof *e); /* phase 2: one entry per record */
    e->rec = recs[i];
    e->next = idx[recs[i]->id % buckets];
    idx[recs[i]->id % buckets] = e;
  }
  return idx;
}

static char *cache_grow(char *cache, size_t *cap, int round) {
  *cap += 4096;
  cache = realloc(cache, *cap); /* phase 2: a cache that keeps growing */
  memset(cache + *cap - 4096, round & 0xff, 4096);
  return cache;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  int (*snapshot)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "snapmalloc_snapshot");

  record_t **recs = malloc((size_t)n * sizeof *recs);
  for (int i = 0; i < n; i++) recs[i] = load_record(i);
  if (snapshot && snapshot(NULL) != 0) perror("snapmalloc_snapshot");

  index_entry_t **idx = build_index(recs, n, 1024);
  char *cache = NULL;
  size_t cap = 0;
  for (int round = 0; round < 64; round++) cache = cache_grow(cache, &cap, round);

  long sum = 0;
  for (int b = 0; b < 1024; b++)
    for (index_entry_t *e = idx[b]; e; e = e->next) sum += e->rec->id;
  printf("records=%d checksum=%ld cache=%zu\n", n, sum, cap);
  return 0; /* everything is still live at exit, on purpose */
}
