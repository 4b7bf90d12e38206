/* The metadata arena's list of mappings (read by the leak scan) has a fixed
 * size: going past it is said once on stderr, with the list still correct
 * for the mappings it holds. */
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

int main(void) {
  sm_os_init();
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
