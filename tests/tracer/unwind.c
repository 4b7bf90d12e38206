/* Stack captures the tracer's own walker must get exactly as libunwind
 * does; run under trace=1,unwind=check (unwind.sh), where every capture,
 * and every reuse of a remembered one, is compared with libunwind's.
 *
 * Shapes: recursion past the trace depth and right at it; frames with
 * alloca (the CFA follows rbp there even without frame pointers); one
 * helper reached from several callers at the same stack depth (the memo
 * must tell them apart); callbacks from the C library (qsort); malloc
 * inside a signal handler (a signal frame: the walker hands over to
 * libunwind); threads. The program then checks in its own snapshot that
 * the same-depth callers got separate traces.
 *
 * The dlclose mode unloads code and loads other code with the same return
 * addresses but other frame sizes in its place: dlclose must drop the
 * cached rules. libunwind keeps stale state of its own there (it stops
 * after the first frame), so it is no oracle: the snapshot is checked
 * against what the program knows its stacks were. */
#include <alloca.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "include/snapmalloc.h"
#include "tests/tracer/snaptest.h"

static void *volatile sink;

__attribute__((noinline)) static void *recurse(int n) {
  if (n == 0) return malloc(24);
  void *p = recurse(n - 1);
  __asm__ volatile("" ::: "memory"); /* no tail call */
  return p;
}

__attribute__((noinline)) static void *with_alloca(size_t n, int depth) {
  char *buf = alloca(n);
  memset(buf, (int)n, n);
  sink = buf;
  if (depth > 0) return with_alloca(n + 32, depth - 1);
  return malloc(40);
}

/* The helper and its two callers: same frame sizes, same depth. */
__attribute__((noinline)) void *shared_helper(size_t n) {
  void *p = malloc(n);
  __asm__ volatile("" ::: "memory"); /* no tail call: the helper is a frame */
  return p;
}
__attribute__((noinline)) void *caller_one(size_t n) {
  void *p = shared_helper(n);
  __asm__ volatile("" ::: "memory");
  return p;
}
__attribute__((noinline)) void *caller_two(size_t n) {
  void *p = shared_helper(n);
  __asm__ volatile("" ::: "memory");
  return p;
}

static int cmp_alloc(const void *a, const void *b) {
  free(malloc(16)); /* an allocation under qsort's frames */
  return *(const int *)a - *(const int *)b;
}

static void on_usr1(int sig) {
  (void)sig;
  sink = malloc(56); /* raised synchronously below: no malloc is interrupted */
  free(sink);
}

static void *thread_main(void *arg) {
  long k = (long)arg;
  for (int i = 0; i < 2000; i++) {
    free(recurse((int)(i + k) % 24));
    free(with_alloca(64 + (size_t)(i % 5) * 16, i % 3));
  }
  return NULL;
}

typedef void *(*make_fn)(size_t);

/* Loads a copy of shape.c, makes `keep` blocks through it (kept live for
 * the snapshot), unloads it; returns the address its function had. */
__attribute__((noinline)) uintptr_t use_library(const char *path, void **keep, int n) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    exit(1);
  }
  make_fn make = (make_fn)dlsym(h, "tracer_shape_make");
  CHECK(make != NULL);
  for (int i = 0; i < n; i++) keep[i] = make(32);
  __asm__ volatile("" ::: "memory");
  CHECK(dlclose(h) == 0);
  return (uintptr_t)make;
}

/* Live blocks of traces whose innermost frame is in module `path` and whose
 * next frame is in function `caller` of this program. */
static uint64_t count_from(const sm_snap_t *s, const char *path, const char *caller) {
  uint64_t n = 0;
  for (size_t i = 0; i < s->ntraces; i++) {
    const sm_snap_trace_t *t = &s->traces[i];
    if (t->nframes < 2 || t->frames[0].module == SM_SNAP_NO_MODULE) continue;
    if (strcmp(s->modules[t->frames[0].module].path, path) != 0) continue;
    Dl_info d1;
    uintptr_t a1 = snaptest_addr(s, t, 1);
    if (a1 && dladdr((void *)a1, &d1) && d1.dli_sname && strcmp(d1.dli_sname, caller) == 0) n += t->count;
  }
  return n;
}

/* Code unloaded, and other code with the same return addresses but other
 * frame sizes loaded in its place: every block made through either copy
 * must be charged to use_library's call, which a stale rule would miss. */
static int test_dlclose(const char *snap, const char *lib_a, const char *lib_b) {
  static void *keep[3][1000];
  uintptr_t at_a = use_library(lib_a, keep[0], 1000);
  uintptr_t at_b = use_library(lib_b, keep[1], 1000);
  use_library(lib_a, keep[2], 1000);
  if (at_a != at_b) {
    fprintf(stderr, "the two libraries were loaded at different addresses (%#lx, %#lx): nothing to test\n",
            (unsigned long)at_a, (unsigned long)at_b);
    return 1;
  }
  CHECK(snapmalloc_snapshot(snap) == 0);
  sm_snap_t s;
  snaptest_read(snap, &s);
  uint64_t a = count_from(&s, lib_a, "use_library"), b = count_from(&s, lib_b, "use_library");
  CHECK_MSG(a == 2000 && b == 1000, "blocks charged to use_library through %s: %llu (want 2000), through %s: %llu (want 1000)\n",
            lib_a, (unsigned long long)a, lib_b, (unsigned long long)b);
  sm_snap_free(&s);
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 1000; i++) free(keep[k][i]);
  if (th_failed) return 1;
  printf("dlclose: ok\n");
  return 0;
}

static int test_shapes(const char *snap) {
  for (int round = 0; round < 3; round++) {
    for (int d = 0; d < 40; d++) free(recurse(d));
    for (int d = 0; d < 6; d++) free(with_alloca(100 + (size_t)d * 8, d));
  }

  /* 300 blocks from caller_one and 200 from caller_two, interleaved so the
   * same start (return address and stack pointer) alternates callers. */
  static void *keep[500];
  for (int i = 0; i < 500; i++) keep[i] = i % 5 < 3 ? caller_one(100) : caller_two(100);

  int v[64];
  for (int i = 0; i < 64; i++) v[i] = (i * 37) % 64;
  qsort(v, 64, sizeof v[0], cmp_alloc);

  signal(SIGUSR1, on_usr1);
  for (int i = 0; i < 10; i++) raise(SIGUSR1);

  pthread_t th[3];
  for (long k = 0; k < 3; k++) CHECK(pthread_create(&th[k], NULL, thread_main, (void *)k) == 0);
  for (int k = 0; k < 3; k++) pthread_join(th[k], NULL);

  CHECK(snapmalloc_snapshot(snap) == 0);
  sm_snap_t s;
  snaptest_read(snap, &s);
  uint64_t one = 0, two = 0;
  for (size_t i = 0; i < s.ntraces; i++) {
    const sm_snap_trace_t *t = &s.traces[i];
    if (t->nframes < 2 || snaptest_addr(&s, t, 0) == 0) continue;
    Dl_info d0, d1;
    if (!dladdr((void *)snaptest_addr(&s, t, 0), &d0) || !dladdr((void *)snaptest_addr(&s, t, 1), &d1)) continue;
    if (!d0.dli_sname || !d1.dli_sname || strcmp(d0.dli_sname, "shared_helper") != 0) continue;
    if (strcmp(d1.dli_sname, "caller_one") == 0) one += t->count;
    if (strcmp(d1.dli_sname, "caller_two") == 0) two += t->count;
  }
  CHECK_MSG(one == 300 && two == 200, "same-depth callers: %llu blocks charged to caller_one (want 300), %llu to caller_two (want 200)\n",
            (unsigned long long)one, (unsigned long long)two);
  for (int i = 0; i < 500; i++) free(keep[i]);
  sm_snap_free(&s);
  if (th_failed) return 1;
  printf("unwind shapes: ok\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s shapes SNAPSHOT | dlclose SNAPSHOT LIB-A LIB-B\n", argv[0]);
    return 2;
  }
  if (!snaptest_tracing()) TEST_SKIP("needs LD_PRELOAD=libsnapmalloc.so with trace=1");
  if (strcmp(argv[1], "shapes") == 0) return test_shapes(argv[2]);
  if (strcmp(argv[1], "dlclose") == 0 && argc == 5) return test_dlclose(argv[2], argv[3], argv[4]);
  fprintf(stderr, "%s: unknown mode %s\n", argv[0], argv[1]);
  return 2;
}
