/* Foreign pointers: a module dlopen'ed with RTLD_DEEPBIND calls the C
 * library's malloc even when another malloc is preloaded. Its blocks reach
 * the main program, which frees, reallocs and asks malloc_usable_size of
 * them through the preloaded allocator: that one must recognise them as not
 * its own and hand them to glibc (DESIGN.md section 3), without crashing and
 * without losing contents. Usage: deepbind MODULE.so */
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtest.h"

static int all_bytes(const unsigned char *p, size_t n, unsigned char v) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != v) return 0;
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODULE.so\n", argv[0]);
    return 2;
  }
  sm_check_preload();
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_DEEPBIND);
  if (!h) {
    CHECK_MSG(0, "dlopen: %s", dlerror());
    return test_summary();
  }
  void *(*maddr)(void) = (void *(*)(void))dlsym(h, "deep_malloc_addr");
  void *(*dmalloc)(size_t, int) = (void *(*)(size_t, int))dlsym(h, "deep_malloc");
  void *(*dcalloc)(size_t) = (void *(*)(size_t))dlsym(h, "deep_calloc");
  void *(*dmemalign)(size_t, size_t, int) = (void *(*)(size_t, size_t, int))dlsym(h, "deep_memalign");
  char *(*dstrdup)(const char *) = (char *(*)(const char *))dlsym(h, "deep_strdup");
  void (*dfree)(void *) = (void (*)(void *))dlsym(h, "deep_free");
  if (!maddr || !dmalloc || !dcalloc || !dmemalign || !dstrdup || !dfree) {
    CHECK_MSG(0, "dlsym: %s", dlerror());
    return test_summary();
  }

  /* Which malloc does the module call? Under the preload it must be glibc's,
   * or this test would not exercise foreign pointers at all. */
  Dl_info info;
  void *theirs = maddr();
  int have = dladdr(theirs, &info) && info.dli_fname;
  fprintf(stderr, "module's malloc is in %s; ours is %s\n", have ? info.dli_fname : "?",
          theirs == dlsym(RTLD_DEFAULT, "malloc") ? "the same" : "a different one");
  if (sm_preloaded()) {
    CHECK_MSG(have && strstr(info.dli_fname, "libc.so"), "module's malloc resolves to %s",
              have ? info.dli_fname : "?");
    CHECK(theirs != dlsym(RTLD_DEFAULT, "malloc"));
  }

  static const size_t sizes[] = {1, 24, 200, 1000, 5000, 70000, 200000, 1 << 20, 4 << 20};
  const size_t ns = sizeof sizes / sizeof *sizes;
  for (int round = 0; round < 10; round++) {
    for (size_t i = 0; i < ns; i++) {
      size_t n = sizes[i];
      unsigned char v = (unsigned char)(i + round + 1);
      /* free of a foreign block, with our own allocations around it. */
      void *mine = malloc(n);
      unsigned char *p = dmalloc(n, v);
      CHECK(p != NULL);
      if (!p) continue;
      CHECK_MSG(malloc_usable_size(p) >= n, "usable size of a %zu-byte foreign block: %zu", n,
                malloc_usable_size(p));
      CHECK(all_bytes(p, n, v));
      free(p);
      free(mine);

      /* realloc of a foreign block: grow, then shrink; contents kept. */
      p = dmalloc(n, v);
      size_t m = n * 3 + 10;
      unsigned char *q = realloc(p, m);
      CHECK_MSG(q != NULL, "realloc(foreign %zu -> %zu)", n, m);
      if (!q) continue;
      CHECK_MSG(all_bytes(q, n, v), "realloc(foreign %zu -> %zu) lost contents", n, m);
      CHECK(malloc_usable_size(q) >= m);
      memset(q, v, m);
      unsigned char *s = realloc(q, n / 2 + 1);
      CHECK(s != NULL);
      if (!s) { free(q); continue; }
      CHECK(all_bytes(s, n / 2 + 1, v));
      free(s);

      /* Shrink a foreign block directly. */
      p = dmalloc(n, v);
      q = realloc(p, n / 3 + 1);
      CHECK(q != NULL && all_bytes(q, n / 3 + 1, v));
      free(q);

      /* realloc(foreign, 0) frees it (glibc semantics). */
      p = dmalloc(n, v);
      q = realloc(p, 0);
      CHECK(q == NULL);
      if (q) free(q);

      /* calloc'd and memalign'd foreign blocks. */
      p = dcalloc(n);
      CHECK(p != NULL && all_bytes(p, n, 0));
      free(p);
      p = dmemalign(4096, n, v);
      CHECK(p != NULL && ((uintptr_t)p & 4095) == 0);
      CHECK(malloc_usable_size(p) >= n);
      free(p);
    }
    /* strdup inside the module, freed by the main program. */
    char *d = dstrdup("a string duplicated by glibc's malloc");
    CHECK(d != NULL && strcmp(d, "a string duplicated by glibc's malloc") == 0);
    free(d);
    /* The module still frees its own blocks itself. */
    void *own = dmalloc(777, 1);
    dfree(own);
  }
  /* Our allocator is still healthy after all that. */
  for (int i = 0; i < 1000; i++) {
    unsigned char *p = malloc((size_t)i * 13 + 1);
    CHECK(p != NULL);
    sm_fill(p, (size_t)i * 13 + 1, (uint64_t)i);
    CHECK(sm_check(p, (size_t)i * 13 + 1, (uint64_t)i) == (size_t)-1);
    free(p);
  }
  dlclose(h);
  return test_summary();
}
