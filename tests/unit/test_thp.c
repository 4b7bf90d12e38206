/* Transparent huge pages (allocator/segment.c): what a segment asks the
 * kernel for under each `thp` option and each kernel mode, read back from
 * the VmFlags of /proc/self/smaps ("hg": MADV_HUGEPAGE, "nh":
 * MADV_NOHUGEPAGE); the first purge of a segment that may have huge pages
 * bars them, once; a barred segment asks again when it is reused; and the
 * allocator's own pool segments and arena chunks go through all of it.
 * Skipped (77) where the kernel has no transparent huge pages. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "allocator/internal.h"
#include "tests/testhelper.h"

/* The VmFlags of the mapping that contains p: 'h' for "hg", 'n' for "nh",
 * '-' for neither, '?' if p is in no mapping. */
static char vm_flag(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return '?';
  char line[512];
  bool inside = false;
  char r = '?';
  uintptr_t a = (uintptr_t)p;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = a >= lo && a < hi;
      continue;
    }
    if (inside && strncmp(line, "VmFlags:", 8) == 0) {
      r = strstr(line, " hg") ? 'h' : strstr(line, " nh") ? 'n' : '-';
      break;
    }
  }
  fclose(f);
  return r;
}

static size_t calls(void) { return __atomic_load_n(&sm_os_thp_calls, __ATOMIC_RELAXED); }

/* A 4 MiB region standing for a segment: thp_begin and thp_purging read
 * only its size and thp. */
static sm_segment_t *region(void) {
  void *p = mmap(NULL, SM_SEGMENT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  return p == MAP_FAILED ? NULL : p;
}

static sm_segment_t *begin(sm_thp_t mode, uint32_t state) {
  sm_segment_t *s = region();
  if (!s) return NULL;
  sm_opt.thp = mode;
  s->size = SM_SEGMENT_SIZE;
  s->thp = sm_segment_thp_begin(s, SM_SEGMENT_SIZE, state);
  return s;
}

static void decisions_madvise_kernel(void) {
  sm_os_thp = SM_OS_THP_MADVISE;
  size_t c0 = calls();
  sm_segment_t *s = begin(SM_THP_NEVER, 0);
  CHECK_MSG(s->thp == 0 && vm_flag(s) == '-' && calls() == c0, "never: thp %u, flag %c", s->thp, vm_flag(s));

  s = begin(SM_THP_ALWAYS, 0);
  CHECK_MSG(s->thp == SM_SEG_THP_MAY && vm_flag(s) == 'h', "always: thp %u, flag %c", s->thp, vm_flag(s));
  /* The first purge bars the whole segment, the second asks nothing. */
  size_t c1 = calls();
  sm_segment_thp_purging(s);
  CHECK_MSG(s->thp == SM_SEG_THP_BARRED && vm_flag(s) == 'n' && calls() == c1 + 1, "purged: thp %u, flag %c",
            s->thp, vm_flag(s));
  sm_segment_thp_purging(s);
  CHECK(calls() == c1 + 1 && vm_flag(s) == 'n');
  /* Reused (a cached pool segment): it asks again. */
  s->thp = sm_segment_thp_begin(s, SM_SEGMENT_SIZE, s->thp);
  CHECK_MSG(s->thp == SM_SEG_THP_MAY && vm_flag(s) == 'h', "reused: thp %u, flag %c", s->thp, vm_flag(s));

  /* auto below thp_min: nothing asked; a segment that never asked is not
   * barred by its purge either. */
  sm_opt.thp_min = (size_t)1 << 40;
  size_t c2 = calls();
  s = begin(SM_THP_AUTO, 0);
  CHECK_MSG(s->thp == 0 && vm_flag(s) == '-', "auto below thp_min: thp %u, flag %c", s->thp, vm_flag(s));
  sm_segment_thp_purging(s);
  CHECK(s->thp == 0 && vm_flag(s) == '-' && calls() == c2);
}

static void decisions_always_kernel(void) {
  sm_os_thp = SM_OS_THP_ALWAYS;
  size_t c0 = calls();
  /* The kernel gives huge pages to every mapping: asking costs nothing,
   * but the purge must still bar them. */
  sm_segment_t *s = begin(SM_THP_ALWAYS, 0);
  CHECK_MSG(s->thp == SM_SEG_THP_MAY && calls() == c0, "always/always: thp %u, %zu calls", s->thp, calls() - c0);
  sm_opt.thp_min = (size_t)1 << 40;
  s = begin(SM_THP_AUTO, 0);
  CHECK_MSG(s->thp == SM_SEG_THP_MAY && calls() == c0, "always/auto: thp %u", s->thp);
  sm_segment_thp_purging(s);
  CHECK_MSG(s->thp == SM_SEG_THP_BARRED && vm_flag(s) == 'n', "always/auto purged: thp %u, flag %c", s->thp,
            vm_flag(s));
  /* thp=never says no to the kernel's huge pages. */
  s = begin(SM_THP_NEVER, 0);
  CHECK_MSG(s->thp == SM_SEG_THP_BARRED && vm_flag(s) == 'n', "always/never: thp %u, flag %c", s->thp, vm_flag(s));
  /* A barred segment reused under thp=always asks again. */
  s = begin(SM_THP_ALWAYS, SM_SEG_THP_BARRED);
  CHECK_MSG(s->thp == SM_SEG_THP_MAY && vm_flag(s) == 'h', "always/always reused: thp %u, flag %c", s->thp,
            vm_flag(s));

  /* A refused bar is not asked again: here madvise fails because most of
   * the segment's range is no longer mapped. */
  size_t c2 = calls();
  sm_segment_t *s2 = region();
  s2->size = SM_SEGMENT_SIZE;
  s2->thp = SM_SEG_THP_MAY;
  munmap((char *)s2 + 4096, SM_SEGMENT_SIZE - 4096);
  sm_segment_thp_purging(s2);
  sm_segment_thp_purging(s2);
  CHECK_MSG(s2->thp == SM_SEG_THP_BARRED && calls() == c2 + 1, "refused bar: thp %u, %zu calls", s2->thp,
            calls() - c2);

  /* The kernel's mode not known (no /sys): only thp=always asks; every
   * segment may have huge pages, so its first purge bars them. */
  sm_os_thp = SM_OS_THP_UNKNOWN;
  sm_opt.thp_min = 0;
  size_t c3 = calls();
  s = begin(SM_THP_AUTO, 0);
  CHECK_MSG(s->thp == SM_SEG_THP_MAY && vm_flag(s) == '-' && calls() == c3, "unknown/auto: thp %u, flag %c",
            s->thp, vm_flag(s));
  sm_segment_thp_purging(s);
  CHECK(s->thp == SM_SEG_THP_BARRED && vm_flag(s) == 'n');
  s = begin(SM_THP_ALWAYS, 0);
  CHECK_MSG(s->thp == SM_SEG_THP_MAY && vm_flag(s) == 'h', "unknown/always: thp %u, flag %c", s->thp, vm_flag(s));
  s = begin(SM_THP_NEVER, 0);
  CHECK(s->thp == SM_SEG_THP_MAY && vm_flag(s) == '-');

  /* No transparent huge pages at all: nothing asked, nothing changed. */
  sm_os_thp = SM_OS_THP_NONE;
  size_t c1 = calls();
  s = begin(SM_THP_ALWAYS, 0);
  CHECK(s->thp == 0 && vm_flag(s) == '-' && calls() == c1);
}

/* The allocator's own segments under thp=always: a fresh pool segment and
 * a fresh arena chunk ask before their first write; purging a part of
 * either bars it. */
static void allocator_segments(void) {
  sm_os_thp = SM_OS_THP_MADVISE;
  sm_opt.thp = SM_THP_ALWAYS;
  sm_opt.retain = (size_t)1 << 40; /* only the trim below purges */
  enum { N = 320 };
  static void *small[N], *large[N / 10];
  for (int i = 0; i < N; i++) { /* 320 x 32 KiB: 10 MiB of medium pages, fresh segments */
    small[i] = sm_malloc(32 * SM_KiB);
    memset(small[i], i, 32 * SM_KiB);
  }
  for (int i = 0; i < N / 10; i++) { /* 32 x 1 MiB: more than a 16 MiB chunk */
    large[i] = sm_malloc(SM_MiB);
    memset(large[i], i, SM_MiB);
  }
  sm_segment_t *ps = sm_segment_of(small[N - 1]), *ls = sm_segment_of(large[N / 10 - 1]);
  CHECK_MSG(ps && ps->kind == SM_SEG_POOL && ps->thp == SM_SEG_THP_MAY && vm_flag(small[N - 1]) == 'h',
            "pool segment: thp %u, flag %c", ps ? ps->thp : 0, vm_flag(small[N - 1]));
  CHECK_MSG(ls && ls->kind == SM_SEG_LARGE && ls->thp == SM_SEG_THP_MAY && vm_flag(large[N / 10 - 1]) == 'h',
            "arena chunk: thp %u, flag %c", ls ? ls->thp : 0, vm_flag(large[N / 10 - 1]));
  /* Free all but the last block of each, so that their segments stay,
   * with free pages and free blocks to purge. */
  for (int i = 0; i < N - 1; i++) sm_free(small[i]);
  for (int i = 0; i < N / 10 - 1; i++) sm_free(large[i]);
  CHECK(sm_pool_trim(sm_heap_get_or_create()) > 0); /* what malloc_trim does */
  sm_large_trim();
  CHECK_MSG(ps->thp == SM_SEG_THP_BARRED && vm_flag(small[N - 1]) == 'n', "purged pool segment: thp %u, flag %c",
            ps->thp, vm_flag(small[N - 1]));
  CHECK_MSG(ls->thp == SM_SEG_THP_BARRED && vm_flag(large[N / 10 - 1]) == 'n',
            "purged arena chunk: thp %u, flag %c", ls->thp, vm_flag(large[N / 10 - 1]));
  unsigned char *a = small[N - 1], *b = large[N / 10 - 1];
  CHECK(a[0] == (N - 1) % 256 && a[32 * SM_KiB - 1] == (N - 1) % 256 && b[SM_MiB - 1] == N / 10 - 1);
  sm_free(small[N - 1]);
  sm_free(large[N / 10 - 1]);
}

/* The virtio balloon's free page reporting, read from a made-up driver
 * directory: bit 5 of some device's `features` string, and nothing else,
 * says yes. */
static char tmpdir[256];

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st, (void)type, (void)ftw;
  return remove(path);
}

static void put(const char *rel, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
  if (!text) {
    CHECK(mkdir(path, 0700) == 0);
    return;
  }
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static void host_reporting(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/sm-balloon-XXXXXX", base && *base ? base : "/tmp");
  CHECK(mkdtemp(tmpdir) != NULL);
  CHECK_MSG(!sm_os_free_page_reporting(tmpdir), "an empty driver directory reads as reporting");
  char missing[300];
  snprintf(missing, sizeof missing, "%s/none", tmpdir);
  CHECK(!sm_os_free_page_reporting(missing));
  put("bind", "");            /* the driver's own files are not devices */
  put("virtio1", NULL);       /* a device without a features file */
  put("virtio2", NULL);
  put("virtio2/features", "0110100000000000000000000000000010000000000000000000000000000000\n"); /* bits 1, 2, 4 */
  CHECK_MSG(!sm_os_free_page_reporting(tmpdir), "a balloon without bit 5 reads as reporting");
  put("virtio3", NULL);
  put("virtio3/features", "0110");                                  /* too short to say */
  CHECK(!sm_os_free_page_reporting(tmpdir));
  put("virtio7", NULL);
  put("virtio7/features", "0110010100000000000000000000000010000000000000000000000000000000\n"); /* 1, 2, 5, 7 */
  CHECK_MSG(sm_os_free_page_reporting(tmpdir), "bit 5 of virtio7's features not seen");
  /* Many entries: the listing takes more than one getdents64 call. */
  for (int i = 0; i < 300; i++) {
    char name[64];
    snprintf(name, sizeof name, "virtio-pad-%03d-with-a-long-name-to-fill-the-buffer", i);
    put(name, NULL);
  }
  CHECK_MSG(sm_os_free_page_reporting(tmpdir), "bit 5 not seen among 300 other entries");
  CHECK(nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

/* thp=auto asks for nothing on a host that takes freed memory back; with
 * the same heap, a host that does not, or thp=dense, asks by the density
 * rule. The heap is made dense first: 8 MiB of medium blocks, written. */
static void decisions_reclaiming_host(void) {
  sm_os_thp = SM_OS_THP_MADVISE;
  sm_opt.thp = SM_THP_NEVER;
  sm_os_host_t saved = sm_os_host_reclaim;
  size_t saved_min = sm_opt.thp_min;
  enum { N = 256 };
  static void *blocks[N];
  for (int i = 0; i < N; i++) {
    blocks[i] = sm_malloc(32 * SM_KiB);
    memset(blocks[i], i, 32 * SM_KiB);
  }
  sm_opt.thp_min = 0;
  sm_os_host_reclaim = SM_OS_HOST_KEEPS;
  sm_segment_t *s = begin(SM_THP_AUTO, 0);
  CHECK_MSG(s->thp == SM_SEG_THP_MAY && vm_flag(s) == 'h', "auto, dense heap, host keeps memory: thp %u, flag %c",
            s->thp, vm_flag(s));
  sm_os_host_reclaim = SM_OS_HOST_RECLAIMS;
  size_t c0 = calls();
  s = begin(SM_THP_AUTO, 0);
  CHECK_MSG(s->thp == 0 && vm_flag(s) == '-' && calls() == c0, "auto on a reclaiming host: thp %u, flag %c", s->thp,
            vm_flag(s));
  s = begin(SM_THP_DENSE, 0);
  CHECK_MSG(s->thp == SM_SEG_THP_MAY && vm_flag(s) == 'h', "dense on a reclaiming host: thp %u, flag %c", s->thp,
            vm_flag(s));
  for (int i = 0; i < N; i++) sm_free(blocks[i]);
  sm_os_host_reclaim = saved;
  sm_opt.thp_min = saved_min;
}

int main(void) {
  host_reporting();
  /* Does this kernel take the advice at all? */
  void *probe = mmap(NULL, SM_SEGMENT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe == MAP_FAILED || madvise(probe, SM_SEGMENT_SIZE, MADV_HUGEPAGE) != 0) {
    printf("skipped: no transparent huge pages here\n");
    return 77;
  }
  munmap(probe, SM_SEGMENT_SIZE);
  sm_init();
  sm_os_thp_t kernel = sm_os_thp;
  decisions_madvise_kernel();
  decisions_always_kernel();
  decisions_reclaiming_host();
  allocator_segments();
  sm_os_thp = kernel;
  return test_summary();
}
