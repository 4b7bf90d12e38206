/* The metadata arena's list of mappings (read by the leak scan) has a fixed
 * size: going past it is said once on stderr, with the list still correct
 * for the mappings it holds. Every block comes zeroed: one reused from a
 * free list is cleared (its link and the old contents), one carved fresh
 * is left as the kernel mapped it, so that its untouched pages stay
 * untouched (mincore). */
#include <sys/mman.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tests/testhelper.h"

#define BIG (64 * 1024 + 1) /* above the arena's classes: one mapping each (address space only) */
#define COUNT 4200

static void *blocks[COUNT];
static uintptr_t starts[COUNT], lens[COUNT];

static bool all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return false;
  return true;
}

/* Resident pages of [p, p + n), p page-aligned. */
static unsigned resident(void *p, size_t n) {
  unsigned char vec[64];
  size_t pages = (n + 4095) / 4096;
  CHECK(pages <= sizeof vec && mincore(p, n, vec) == 0);
  unsigned r = 0;
  for (size_t i = 0; i < pages; i++) r += vec[i] & 1;
  return r;
}

static void zeroing(void) {
  /* Reused: the same class's block comes back cleared. */
  for (size_t size = 1; size <= 40000; size = size * 3 + 1) {
    unsigned char *a = sm_meta_alloc(size);
    CHECK(a != NULL && all_zero(a, size));
    memset(a, 0xa5, size);
    sm_meta_free(a, size);
    unsigned char *b = sm_meta_alloc(size);
    CHECK_MSG(b == a, "a %zu-byte block was not reused", size);
    CHECK_MSG(all_zero(b, size), "a reused %zu-byte block is not zeroed", size);
    sm_meta_free(b, size);
  }
  /* Fresh: a 64 KiB block (the largest class: a fresh one comes off a chunk,
   * page-aligned) has no page resident until written. */
  void *held[32];
  unsigned n = 0, fresh = 0;
  for (; n < 32; n++) {
    held[n] = sm_meta_alloc(64 * 1024);
    CHECK(held[n] != NULL);
    if ((uintptr_t)held[n] % 4096 == 0 && resident(held[n], 64 * 1024) == 0) fresh++;
  }
  CHECK_MSG(fresh > 0, "no fresh 64 KiB metadata block was left untouched");
  for (unsigned i = 0; i < n; i++) CHECK(all_zero(held[i], 64 * 1024));
  for (unsigned i = 0; i < n; i++) sm_meta_free(held[i], 64 * 1024);
}

int main(void) {
  sm_os_init();
  zeroing();
  char path[] = "/tmp/sm-test-meta.XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  int saved = dup(2);
  dup2(fd, 2);
  for (int i = 0; i < COUNT; i++) blocks[i] = sm_meta_alloc(BIG);
  dup2(saved, 2);
  for (int i = 0; i < COUNT; i++) CHECK(blocks[i] != NULL);
  unsigned n = sm_meta_ranges(starts, lens, COUNT);
  CHECK_MSG(n == 4096, "%u ranges listed", n);
  char out[4096] = {0};
  lseek(fd, 0, SEEK_SET);
  ssize_t len = read(fd, out, sizeof out - 1);
  CHECK(len > 0);
  int lines = 0;
  for (const char *p = out; (p = strstr(p, "metadata mappings")) != NULL; p++) lines++;
  CHECK_MSG(lines == 1, "%d warnings about the mapping list (want 1):\n%s", lines, out);
  for (int i = 0; i < COUNT; i++) sm_meta_free(blocks[i], BIG);
  return test_summary();
}
