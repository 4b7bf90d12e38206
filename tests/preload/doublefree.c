/* Deliberate misuse, one kind per run, selected by argv[1]:
 *   ok             correct use (control: must exit 0)
 *   small          free the same 24-byte block twice in a row
 *   small-between  a, b same size: free(a), free(b), free(a)
 *   large          double free of a 100 KiB block
 *   huge           double free of an 8 MiB block
 *   interior-large free of a pointer 1 KiB inside a 100 KiB block
 *   interior-huge  free of a pointer 8 KiB inside an 8 MiB block
 * Under snapmalloc every misuse must print one "snapmalloc: error: ..." line
 * and abort; df_driver.c checks that. Reaching the end exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep the compiler from seeing (and warning about or removing) the misuse. */
static void *volatile sink;
static void release(void *p) {
  sink = p;
  free(sink);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  char *p, *q;
  /* Some unrelated activity first, so the heap is not pristine. */
  for (int i = 0; i < 100; i++) release(malloc((size_t)i * 50 + 1));
  if (strcmp(mode, "ok") == 0) {
    p = malloc(24);
    q = malloc(100 << 10);
    release(p);
    release(q);
    release(malloc(8 << 20));
  } else if (strcmp(mode, "small") == 0) {
    p = malloc(24);
    memset(p, 1, 24);
    release(p);
    release(p);
  } else if (strcmp(mode, "small-between") == 0) {
    p = malloc(32);
    q = malloc(32);
    release(p);
    release(q);
    release(p);
  } else if (strcmp(mode, "large") == 0) {
    p = malloc(100 << 10);
    memset(p, 1, 100 << 10);
    release(p);
    release(p);
  } else if (strcmp(mode, "huge") == 0) {
    p = malloc(8 << 20);
    memset(p, 1, 8 << 20);
    release(p);
    release(p);
  } else if (strcmp(mode, "interior-large") == 0) {
    p = malloc(100 << 10);
    memset(p, 0, 100 << 10);
    release(p + 1024);
  } else if (strcmp(mode, "interior-huge") == 0) {
    p = malloc(8 << 20);
    memset(p, 0, 8 << 20);
    release(p + 8192);
  } else {
    fprintf(stderr, "doublefree: unknown mode '%s'\n", mode);
    return 2;
  }
  fprintf(stderr, "doublefree: %s: survived\n", mode);
  return 0;
}
