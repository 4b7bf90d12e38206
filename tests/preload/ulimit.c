/* Running out of address space (RLIMIT_AS, as `ulimit -v` sets it): huge,
 * large and small allocations fail with NULL and errno ENOMEM (no crash, no
 * abort), a failed realloc keeps the old block, and after blocks are freed
 * (by this thread and by another one) allocation works again. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "smtest.h"

#define HEADROOM ((size_t)384 << 20)
#define MAXB 200000

static long vm_size_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmSize:", 7) == 0) { kib = strtol(line + 7, NULL, 10); break; }
  fclose(f);
  return kib;
}

static void *blocks[MAXB];
static size_t nblocks;

/* The helper thread is created before the limit (its stack needs address
 * space) and frees every other block when told to. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go, done;
static size_t freed_by_helper;

static void *helper(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  while (!go) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  for (size_t i = 1; i < nblocks; i += 2) {
    if (blocks[i]) {
      free(blocks[i]);
      blocks[i] = NULL;
      freed_by_helper++;
    }
  }
  /* The helper can allocate again too. */
  void *p = malloc(1 << 20);
  if (p) memset(p, 1, 1 << 20);
  free(p);
  pthread_mutex_lock(&mu);
  done = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  return (void *)(uintptr_t)(p != NULL);
}

/* Allocates blocks of n bytes until malloc fails; returns how many. Checks
 * the failure's errno. */
static size_t exhaust(size_t n, const char *what) {
  size_t got = 0;
  for (;;) {
    if (nblocks >= MAXB) {
      CHECK_MSG(0, "%s: %zu blocks and still no failure", what, got);
      return got;
    }
    errno = 0;
    void *p = malloc(n);
    if (!p) {
      CHECK_MSG(errno == ENOMEM, "%s: malloc(%zu) failed with errno %d, want ENOMEM", what, n, errno);
      return got;
    }
    /* Touch one byte per block: RLIMIT_AS limits mappings, not RSS. */
    ((volatile char *)p)[0] = 1;
    blocks[nblocks++] = p;
    got++;
  }
}

int main(void) {
  pthread_t th;
  sm_check_preload();
  /* Warm up the allocator (and the thread) before setting the limit. */
  free(malloc(100));
  free(malloc(200000));
  free(malloc(4 << 20));
  CHECK(pthread_create(&th, NULL, helper, NULL) == 0);
  char *keep = malloc(1000);
  memset(keep, 0x4B, 1000);

  long vm = vm_size_kib();
  CHECK(vm > 0);
  struct rlimit lim;
  lim.rlim_cur = lim.rlim_max = (rlim_t)vm * 1024 + HEADROOM;
  if (setrlimit(RLIMIT_AS, &lim) != 0) TEST_SKIP("setrlimit(RLIMIT_AS) failed");
  fprintf(stderr, "VmSize %ld KiB, RLIMIT_AS set to %zu MiB\n", vm, (size_t)lim.rlim_cur >> 20);

  /* Beyond the limit in one request. */
  errno = 0;
  void *p = malloc(HEADROOM + ((size_t)64 << 20));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = calloc(1, HEADROOM + ((size_t)64 << 20));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = NULL;
  CHECK(posix_memalign(&p, 1 << 20, HEADROOM + ((size_t)64 << 20)) == ENOMEM);
  errno = 0;
  char *grown = realloc(keep, HEADROOM + ((size_t)64 << 20));
  CHECK(grown == NULL && errno == ENOMEM);
  int intact = 1;
  for (int i = 0; i < 1000; i++) if (keep[i] != 0x4B) intact = 0;
  CHECK_MSG(intact, "a failed realloc damaged the old block");

  /* Fill the address space: huge, then large, then small blocks. */
  size_t huge = exhaust((size_t)16 << 20, "huge");
  size_t large = exhaust((size_t)200 << 10, "large");
  size_t small = exhaust(64, "small");
  fprintf(stderr, "got %zu huge, %zu large, %zu small blocks before ENOMEM\n", huge, large, small);
  CHECK(huge >= 10);
  errno = 0;
  p = malloc((size_t)16 << 20);
  CHECK(p == NULL && errno == ENOMEM);
  free(p);

  /* Free half from another thread, a quarter from this one. */
  pthread_mutex_lock(&mu);
  go = 1;
  pthread_cond_broadcast(&cv);
  while (!done) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  void *helper_ok = NULL;
  pthread_join(th, &helper_ok);
  CHECK_MSG(helper_ok != NULL, "the helper could not allocate 1 MiB after freeing");
  for (size_t i = 0; i < nblocks; i += 4) {
    free(blocks[i]);
    blocks[i] = NULL;
  }
  fprintf(stderr, "freed %zu blocks from the helper thread\n", freed_by_helper);

  /* Allocation works again, in every class. */
  void *h1 = malloc((size_t)16 << 20);
  CHECK_MSG(h1 != NULL, "16 MiB malloc after freeing: errno %d", errno);
  void *l1 = malloc((size_t)200 << 10);
  CHECK(l1 != NULL);
  void *s1 = malloc(64);
  CHECK(s1 != NULL);
  if (h1) memset(h1, 1, (size_t)16 << 20);
  if (l1) memset(l1, 1, (size_t)200 << 10);
  grown = realloc(keep, 100000);
  CHECK(grown != NULL);
  if (grown) {
    intact = 1;
    for (int i = 0; i < 1000; i++) if (grown[i] != 0x4B) intact = 0;
    CHECK(intact);
    keep = grown;
  }
  free(h1);
  free(l1);
  free(s1);
  free(keep);
  for (size_t i = 0; i < nblocks; i++) free(blocks[i]);
  /* Everything freed: a big block that fits the headroom works. */
  p = malloc(HEADROOM / 2);
  CHECK_MSG(p != NULL, "malloc(%zu MiB) after freeing everything", (HEADROOM / 2) >> 20);
  free(p);
  return test_summary();
}
