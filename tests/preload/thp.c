/* Transparent huge pages as a program sees them (allocator/segment.c).
 *
 *   preload-thp dense huge     192 MiB of 256 KiB blocks and 192 MiB of
 *                              16 KiB blocks, every byte written: under
 *                              thp=dense (the density rule alone), past the
 *                              first 64 MiB the heap asks for huge pages, so
 *                              at least half of each kind's blocks lie in
 *                              mappings with MADV_HUGEPAGE ("hg" in
 *                              /proc/self/smaps).
 *   preload-thp sparse none    the same blocks, one byte of each written: a
 *                              huge page would commit what the program never
 *                              touches, so no block lies in such a mapping.
 *   preload-thp dense none     (with thp=never) none either.
 *   preload-thp dense host     under the default thp=auto: as `dense huge`,
 *                              unless the host takes freed memory back (a
 *                              virtio balloon with free page reporting, read
 *                              here from sysfs on its own), then as `none`.
 *
 * Then, in every mode, 7 of 8 blocks are freed and malloc_trim(0) purges
 * the holes: the arena chunks that keep survivors are barred from huge
 * pages ("nh"), so that the kernel's khugepaged cannot commit the holes
 * again; RSS falls by at least the freed large blocks' bytes less 16 MiB;
 * the survivors keep their bytes. What khugepaged would do next is then
 * done at once: in madvise mode it scans the mappings that asked for huge
 * pages, so madvise(MADV_COLLAPSE), which turns a 2 MiB range into a huge
 * page, holes included, is applied to the 2 MiB around every surviving
 * block whose mapping still has "hg". RSS must not grow by more than
 * 8 MiB (without the bar, it grows back by the holes: about 170 MiB).
 * Skipped where the kernel has no MADV_COLLAPSE (before Linux 6.1).
 *
 * The flags are what the allocator asked for, so the test needs a kernel
 * that takes the advice and gives huge pages only on it ("madvise" in
 * /sys/kernel/mm/transparent_hugepage/enabled); elsewhere, and without the
 * preload, it skips (77). */
#include <glob.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "smtest.h"
#include "thpmode.h"

#define KIND_BYTES ((size_t)192 << 20)
#define BIG ((size_t)256 << 10)
#define SMALL ((size_t)16 << 10)
#define NBIG (KIND_BYTES / BIG)
#define NSMALL (KIND_BYTES / SMALL)

typedef struct vma {
  uintptr_t lo, hi;
  char flag; /* 'h' hg, 'n' nh, '-' neither */
} vma_t;

static vma_t vmas[65536];
static size_t nvmas;

static void read_smaps(void) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) {
    perror("/proc/self/smaps");
    exit(99);
  }
  char line[512];
  nvmas = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    char *dash = strchr(line, '-'), *space = strchr(line, ' ');
    if (dash && space && dash < space && sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
      if (nvmas < sizeof vmas / sizeof vmas[0]) vmas[nvmas++] = (vma_t){lo, hi, '-'};
    } else if (nvmas && strncmp(line, "VmFlags:", 8) == 0) {
      vmas[nvmas - 1].flag = strstr(line, " hg") ? 'h' : strstr(line, " nh") ? 'n' : '-';
    }
  }
  fclose(f);
}

static char flag_of(const void *p) {
  for (size_t i = 0; i < nvmas; i++)
    if ((uintptr_t)p >= vmas[i].lo && (uintptr_t)p < vmas[i].hi) return vmas[i].flag;
  return '?';
}

static size_t count_flag(void **blocks, size_t n, size_t step, char flag) {
  size_t k = 0;
  for (size_t i = 0; i < n; i += step) k += flag_of(blocks[i]) == flag;
  return k;
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define TWO_MIB ((uintptr_t)2 << 20)

/* Whether MADV_COLLAPSE works here: on a 2 MiB range of our own with one
 * page written. */
static int collapse_works(void) {
  unsigned char *m = mmap(NULL, 2 * TWO_MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 0;
  unsigned char *r = (unsigned char *)(((uintptr_t)m + TWO_MIB - 1) & ~(TWO_MIB - 1));
  r[0] = 1;
  int ok = madvise(r, TWO_MIB, MADV_COLLAPSE) == 0;
  munmap(m, 2 * TWO_MIB);
  return ok;
}

static int kernel_madvise_only(void) { return sm_test_thp_mode("madvise"); }

/* Whether some virtio balloon device reports free pages to the host (bit 5
 * of its features string), read here with glob and stdio, not with the
 * library's code. */
static int host_reclaims(void) {
  glob_t g;
  int yes = 0;
  if (glob("/sys/bus/virtio/drivers/virtio_balloon/virtio*/features", 0, NULL, &g) != 0) return 0;
  for (size_t i = 0; i < g.gl_pathc && !yes; i++) {
    char bits[160] = "";
    FILE *f = fopen(g.gl_pathv[i], "r");
    if (!f) continue;
    yes = fgets(bits, sizeof bits, f) && strlen(bits) > 5 && bits[5] == '1';
    fclose(f);
  }
  globfree(&g);
  return yes;
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "dense") && strcmp(argv[1], "sparse")) ||
      (strcmp(argv[2], "huge") && strcmp(argv[2], "none") && strcmp(argv[2], "host"))) {
    fprintf(stderr, "usage: %s dense|sparse huge|none|host\n", argv[0]);
    return 2;
  }
  sm_check_preload();
  if (!sm_preloaded() || !kernel_madvise_only()) {
    printf("skipped: needs the preload and transparent huge pages in madvise mode\n");
    return 77;
  }
  int dense = strcmp(argv[1], "dense") == 0, want_huge = strcmp(argv[2], "huge") == 0;
  if (strcmp(argv[2], "host") == 0) {
    want_huge = !host_reclaims();
    printf("the host %s freed memory back: huge pages %sexpected\n", want_huge ? "does not take" : "takes",
           want_huge ? "" : "not ");
  }
  static void *big[NBIG], *small[NSMALL];
  /* Interleaved, as a program fills both at once. */
  for (size_t i = 0, j = 0; i < NBIG; i++) {
    big[i] = malloc(BIG);
    CHECK(big[i] != NULL);
    if (dense) sm_fill_range(big[i], 0, BIG, i);
    else ((unsigned char *)big[i])[0] = 1;
    for (size_t e = j + NSMALL / NBIG; j < e; j++) {
      small[j] = malloc(SMALL);
      CHECK(small[j] != NULL);
      if (dense) sm_fill_range(small[j], 0, SMALL, NBIG + j);
      else ((unsigned char *)small[j])[0] = 1;
    }
  }
  read_smaps();
  size_t hb = count_flag(big, NBIG, 1, 'h'), hs = count_flag(small, NSMALL, 1, 'h');
  printf("%s: %zu of %zu large and %zu of %zu pool blocks in MADV_HUGEPAGE mappings\n", argv[1], hb,
         (size_t)NBIG, hs, (size_t)NSMALL);
  if (want_huge)
    CHECK_MSG(hb >= NBIG / 2 && hs >= NSMALL / 2, "huge pages asked for %zu/%zu large, %zu/%zu pool blocks", hb,
              (size_t)NBIG, hs, (size_t)NSMALL);
  else
    CHECK_MSG(hb == 0 && hs == 0, "huge pages asked for %zu large and %zu pool blocks", hb, hs);

  long before = sm_rss_kib();
  for (size_t i = 0; i < NBIG; i++)
    if (i % 8) {
      free(big[i]);
      big[i] = NULL;
    }
  for (size_t j = 0; j < NSMALL; j++)
    if (j % 8) {
      free(small[j]);
      small[j] = NULL;
    }
  malloc_trim(0);
  long after = sm_rss_kib();
  read_smaps();
  size_t still = count_flag(big, NBIG, 8, 'h');
  printf("RSS %ld KiB before the frees, %ld KiB after; %zu surviving large blocks still in MADV_HUGEPAGE mappings\n",
         before, after, still);
  CHECK_MSG(still == 0, "%zu surviving large blocks lie in mappings still open to huge pages", still);
  long freed_kib = (long)(KIND_BYTES / 8 * 7 >> 10);
  if (dense) CHECK_MSG(before - after >= freed_kib - 16 * 1024, "RSS fell by %ld KiB only", before - after);
  if (collapse_works()) {
    size_t collapsed = 0, open = 0;
    for (size_t i = 0; i < NBIG + NSMALL; i += 8) {
      void *b = i < NBIG ? big[i] : small[i - NBIG];
      if (flag_of(b) != 'h') continue;
      open++;
      collapsed += madvise((void *)((uintptr_t)b & ~(TWO_MIB - 1)), TWO_MIB, MADV_COLLAPSE) == 0;
    }
    long later = sm_rss_kib();
    printf("MADV_COLLAPSE around the %zu survivors in mappings open to huge pages: %zu ranges collapsed, RSS %ld KiB\n",
           open, collapsed, later);
    CHECK_MSG(later - after <= 8 * 1024, "RSS grew from %ld to %ld KiB when purged ranges were collapsed", after,
              later);
  } else {
    printf("MADV_COLLAPSE not available: the collapse check is skipped\n");
  }
  for (size_t i = 0; i < NBIG; i += 8)
    CHECK(dense ? sm_check_range(big[i], 0, BIG, i) == (size_t)-1 : ((unsigned char *)big[i])[0] == 1);
  for (size_t j = 0; j < NSMALL; j += 8)
    CHECK(dense ? sm_check_range(small[j], 0, SMALL, NBIG + j) == (size_t)-1 : ((unsigned char *)small[j])[0] == 1);
  for (size_t i = 0; i < NBIG; i += 8) free(big[i]);
  for (size_t j = 0; j < NSMALL; j += 8) free(small[j]);
  return test_summary();
}
