/* The program options.sh runs under various SNAPMALLOC_OPTIONS: a workload
 * heavy on large blocks (the ones the placement policy and the heap
 * increment govern) with pattern checks. Prints "opts_prog: start" and
 * "opts_prog: end" on stderr around its work and "ok" on stdout; exits 0
 * when every block kept its bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "smtest.h"

#define NS 400

int main(void) {
  static unsigned char *b[NS];
  static size_t bn[NS];
  sm_rng_t r = {99};
  long bad = 0, fails = 0;
  fprintf(stderr, "opts_prog: start\n");
  for (int op = 0; op < 20000; op++) {
    unsigned k = (unsigned)sm_rng_below(&r, NS);
    if (b[k]) {
      if (sm_check(b[k], bn[k], k) != (size_t)-1) bad++;
      if (op % 5 == 0) {
        size_t n = sm_rng_range(&r, 1, 600000);
        unsigned char *q = realloc(b[k], n);
        if (!q) { fails++; continue; }
        if (sm_check_upto(q, bn[k], k, n) != (size_t)-1) bad++;
        b[k] = q;
        bn[k] = n;
        sm_fill(q, n, k);
        continue;
      }
      free(b[k]);
      b[k] = NULL;
    } else {
      /* Mostly large (1 KiB - 600 KiB), some small, a few huge. */
      size_t n = op % 50 == 0 ? sm_rng_range(&r, 1 << 20, 3 << 20)
               : op % 4 == 0  ? sm_rng_range(&r, 1, 512)
                              : sm_rng_range(&r, 1024, 600000);
      b[k] = malloc(n);
      if (!b[k]) { fails++; continue; }
      bn[k] = n;
      sm_fill(b[k], n, k);
    }
  }
  for (int k = 0; k < NS; k++) {
    if (!b[k]) continue;
    if (sm_check(b[k], bn[k], (uint64_t)k) != (size_t)-1) bad++;
    free(b[k]);
  }
  fprintf(stderr, "opts_prog: end (%ld corrupt, %ld failed)\n", bad, fails);
  printf("ok\n");
  return bad || fails ? 1 : 0;
}
