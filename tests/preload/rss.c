/* RSS falls when live memory falls. Allocates 1 GiB live (a quarter each of
 * small 16-1024 B, medium up to 64 KiB, large 64 KiB-1 MiB and huge 1-24 MiB
 * blocks, interleaved), touches every page, then frees everything except the
 * first ~10 MiB allocated (the first 2.5 MiB of each class, so the survivors
 * sit together at the start of the heap and do not pin every page), in a
 * shuffled order.
 *
 * Phase 1, no malloc_trim: VmRSS must fall below 64 MiB within a few seconds
 * of ordinary activity (an allocator may return pages lazily, after they
 * stayed unused a while). snapmalloc promises this (DESIGN.md section 3:
 * empty pages and free large ranges go back with madvise/munmap); glibc
 * keeps freed heap memory in the middle of its arenas until malloc_trim, so
 * this phase is only enforced when snapmalloc is preloaded (under glibc the
 * numbers are printed for information).
 * Phase 2: after malloc_trim(0), VmRSS must be below 64 MiB with either
 * allocator. The kept blocks must still hold their bytes.
 *
 * Bookkeeping lives in mmap'd arrays that are unmapped before measuring, so
 * only the allocator's own memory is counted. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "smtest.h"

#define TOTAL ((size_t)1 << 30)
#define KEEP_PER_CLASS ((size_t)5 << 19) /* 2.5 MiB */
#define LIMIT_KIB (64L * 1024)
#define MAXBLOCKS (3u << 20)

struct rec {
  unsigned char *p;
  uint32_t n;
  uint8_t cls, keep, val;
};

static void *map(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(99);
  }
  return p;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Waits up to `seconds` for VmRSS to fall below LIMIT_KIB, doing a little
 * ordinary malloc/free traffic meanwhile. Returns the last VmRSS. */
static long settle(double seconds) {
  long rss = sm_rss_kib();
  for (int i = 0; i < (int)(seconds * 10) && rss >= LIMIT_KIB; i++) {
    for (int k = 0; k < 100; k++) {
      void *p = malloc((size_t)(k * 37 % 3000) + 1);
      if (p) memset(p, 1, 1);
      free(p);
    }
    sleep_ms(100);
    rss = sm_rss_kib();
  }
  return rss;
}

int main(void) {
  sm_rng_t r = {31337};
  size_t bytes[4] = {0, 0, 0, 0}, kept[4] = {0, 0, 0, 0};
  size_t nrec = 0, total = 0, kept_total = 0;
  struct rec *recs = map(sizeof(struct rec) * MAXBLOCKS);
  uint32_t *order;
  int preloaded = sm_preloaded();
  long rss_base, rss_full, rss_freed, rss_trim;

  sm_check_preload();
  rss_base = sm_rss_kib();
  while (total < TOTAL && nrec < MAXBLOCKS) {
    /* The class with the fewest bytes so far goes next: interleaved, and
     * each class ends with about a quarter of the total. */
    unsigned c = 0;
    for (unsigned k = 1; k < 4; k++) if (bytes[k] < bytes[c]) c = k;
    size_t n = c == 0 ? sm_rng_range(&r, 16, 1024)
             : c == 1 ? sm_rng_range(&r, 1025, 64 << 10)
             : c == 2 ? sm_rng_range(&r, (64 << 10) + 1, 1 << 20)
                      : sm_rng_range(&r, (1 << 20) + 1, 24 << 20);
    unsigned char *p = malloc(n);
    if (!p) {
      CHECK_MSG(0, "malloc(%zu) failed after %zu bytes", n, total);
      break;
    }
    recs[nrec].val = (uint8_t)(nrec * 7 + 1);
    memset(p, recs[nrec].val, n); /* touches every page */
    recs[nrec].p = p;
    recs[nrec].n = (uint32_t)n;
    recs[nrec].cls = (uint8_t)c;
    recs[nrec].keep = kept[c] + n <= KEEP_PER_CLASS || (c == 3 && kept[c] == 0 && n < (5u << 20));
    if (recs[nrec].keep) {
      kept[c] += n;
      kept_total += n;
    }
    bytes[c] += n;
    total += n;
    nrec++;
  }
  rss_full = sm_rss_kib();

  /* Free everything not kept, in a shuffled order. */
  order = map(sizeof(uint32_t) * nrec);
  for (size_t i = 0; i < nrec; i++) order[i] = (uint32_t)i;
  for (size_t i = nrec - 1; i > 0; i--) {
    size_t j = (size_t)sm_rng_below(&r, i + 1);
    uint32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  /* Move the kept records to the front of recs (in order), then drop the
   * rest of the bookkeeping. */
  size_t nkept = 0;
  for (size_t i = 0; i < nrec; i++) {
    struct rec *x = &recs[order[i]];
    if (!x->keep) free(x->p);
  }
  for (size_t i = 0; i < nrec; i++)
    if (recs[i].keep) recs[nkept++] = recs[i];
  munmap(order, sizeof(uint32_t) * nrec);
  {
    /* Release the unused tail of recs. */
    size_t used = (sizeof(struct rec) * nkept + 4095) & ~(size_t)4095;
    size_t all = sizeof(struct rec) * MAXBLOCKS;
    if (used < all) munmap((char *)recs + used, all - used);
  }

  rss_freed = settle(preloaded ? 5.0 : 0.5);
  fprintf(stderr,
          "%zu blocks, %zu MiB live (small %zu, medium %zu, large %zu, huge %zu MiB); kept %zu "
          "blocks, %zu KiB\nVmRSS: base %ld KiB, full %ld KiB, after free %ld KiB\n",
          nrec, total >> 20, bytes[0] >> 20, bytes[1] >> 20, bytes[2] >> 20, bytes[3] >> 20,
          nkept, kept_total >> 10, rss_base, rss_full, rss_freed);
  CHECK_MSG(rss_full > (long)(TOTAL >> 10) * 9 / 10, "VmRSS %ld KiB with 1 GiB touched?",
            rss_full);
  if (preloaded)
    CHECK_MSG(rss_freed < LIMIT_KIB,
              "VmRSS %ld KiB after freeing all but %zu KiB (limit %ld KiB, no malloc_trim)",
              rss_freed, kept_total >> 10, LIMIT_KIB);
  else if (rss_freed >= LIMIT_KIB)
    fprintf(stderr, "(glibc keeps %ld KiB without malloc_trim: not checked)\n", rss_freed);

  CHECK(malloc_trim(0) <= 1);
  rss_trim = settle(2.0);
  fprintf(stderr, "VmRSS after malloc_trim(0): %ld KiB\n", rss_trim);
  CHECK_MSG(rss_trim < LIMIT_KIB, "VmRSS %ld KiB after malloc_trim(0) (limit %ld KiB)",
            rss_trim, LIMIT_KIB);

  /* The survivors are intact. */
  size_t bad = 0;
  for (size_t i = 0; i < nkept; i++) {
    unsigned char *p = recs[i].p;
    unsigned char want = recs[i].val;
    for (size_t k = 0; k < recs[i].n; k++)
      if (p[k] != want) { bad++; break; }
    free(p);
  }
  CHECK_MSG(bad == 0, "%zu kept blocks changed", bad);
  CHECK(kept_total > (size_t)8 << 20 && kept_total < (size_t)16 << 20);
  return test_summary();
}
