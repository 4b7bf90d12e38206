/* The glibc malloc API surface, checked against glibc's documented semantics.
 * Passes with glibc's own malloc (run without the preload) and must pass with
 * libsnapmalloc.so preloaded: errno rules, overflow checks, the aligned
 * family, usable sizes, calloc zeroing, realloc contents, mallinfo2 and
 * friends, C23 free_sized, and the __libc_* aliases. */
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtest.h"

/* The absurd sizes below are the point of the test; o() hides them from
 * the compiler's warnings (and from any constant folding). */
#pragma GCC diagnostic ignored "-Wuse-after-free"
static size_t o(size_t x) {
  volatile size_t v = x;
  return v;
}

/* C23; glibc 2.36 does not have them, so they are looked up at run time. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

#define MiB ((size_t)1 << 20)

static size_t page_size;

static void section(const char *name) {
  fprintf(stderr, "-- %s\n", name);
}

/* Fills the whole usable size of p, allocates a neighbour and fills it,
 * then checks p still holds its bytes: catches a usable size that overlaps
 * the next block or metadata. */
static void check_usable(void *p, size_t req, const char *what) {
  size_t us = malloc_usable_size(p);
  CHECK_MSG(us >= req, "%s: usable %zu < request %zu", what, us, req);
  memset(p, 0xA5, us);
  void *q = malloc(req);
  CHECK(q != NULL);
  if (q) memset(q, 0x5A, malloc_usable_size(q));
  {
    unsigned char *b = p;
    size_t bad = us;
    for (size_t i = 0; i < us; i++)
      if (b[i] != 0xA5) { bad = i; break; }
    CHECK_MSG(bad == us, "%s: byte %zu of %zu usable changed after a neighbour was written",
              what, bad, us);
  }
  free(q);
}

static void test_malloc_zero_and_free_null(void) {
  section("malloc(0), free(NULL)");
  void *a = malloc(0), *b = malloc(0), *c = malloc(0);
  CHECK(a != NULL && b != NULL && c != NULL);
  CHECK(a != b && b != c && a != c);
  free(b);
  free(a);
  free(c);
  errno = 4321;
  free(NULL);
  CHECK(errno == 4321);
  /* Many malloc(0) live at once must all be distinct. */
  enum { N = 1000 };
  static void *v[N];
  for (int i = 0; i < N; i++) v[i] = malloc(0);
  int dup = 0;
  for (int i = 1; i < N; i++) if (v[i] == v[i - 1] || v[i] == NULL) dup++;
  CHECK(dup == 0);
  for (int i = 0; i < N; i++) free(v[i]);
}

static void test_free_errno(void) {
  section("free preserves errno");
  static const size_t sizes[] = {1, 24, 1000, 4096, 70000, 300000, 2 * MiB, 40 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    char *p = malloc(sizes[i]);
    CHECK(p != NULL);
    if (!p) continue;
    memset(p, 1, sizes[i]);
    errno = 1234;
    free(p);
    CHECK_MSG(errno == 1234, "free(%zu-byte block) changed errno to %d", sizes[i], errno);
  }
  /* Freeing many blocks so that pages or segments become empty and may go
   * back to the OS: errno must survive that too. */
  enum { N = 20000 };
  static void *v[N];
  for (int i = 0; i < N; i++) v[i] = malloc((size_t)(i % 64) * 16 + 8);
  int changed = 0;
  for (int i = 0; i < N; i++) {
    errno = 1234;
    free(v[i]);
    if (errno != 1234) changed++;
  }
  CHECK_MSG(changed == 0, "free changed errno %d times", changed);
  errno = 1234;
  malloc_trim(0);
  /* malloc_trim may change errno; nothing to check there. */
}

static void test_overflow(void) {
  section("overflow and too-large requests");
  void *p;
  errno = 0;
  p = calloc(o(SIZE_MAX / 2), 3);
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = calloc(3, o(SIZE_MAX / 2));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = calloc(o((size_t)1 << 32), (size_t)1 << 32);
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = calloc(o(SIZE_MAX), o(SIZE_MAX));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = malloc(o(SIZE_MAX));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = malloc(o((size_t)PTRDIFF_MAX + 1));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = malloc(o(SIZE_MAX) - 4096);
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = malloc(o(SIZE_MAX) - 16);
  CHECK(p == NULL && errno == ENOMEM);
  /* Far more than this machine could map (2^62 bytes). */
  errno = 0;
  p = malloc((size_t)1 << 62);
  CHECK(p == NULL && errno == ENOMEM);

  /* realloc and reallocarray: failure leaves the old block intact. */
  char *q = malloc(100);
  CHECK(q != NULL);
  if (q) {
    memset(q, 0x3C, 100);
    errno = 0;
    p = realloc(q, o(SIZE_MAX));
    CHECK(p == NULL && errno == ENOMEM);
    errno = 0;
    p = realloc(q, o((size_t)PTRDIFF_MAX + 1));
    CHECK(p == NULL && errno == ENOMEM);
    errno = 0;
    p = reallocarray(q, o(SIZE_MAX / 2), 3);
    CHECK(p == NULL && errno == ENOMEM);
    errno = 0;
    p = reallocarray(q, o((size_t)1 << 33), (size_t)1 << 31);
    CHECK(p == NULL && errno == ENOMEM);
    int ok = 1;
    for (int i = 0; i < 100; i++) if ((unsigned char)q[i] != 0x3C) ok = 0;
    CHECK_MSG(ok, "failed realloc/reallocarray damaged the old block");
    p = reallocarray(q, 50, 4);
    CHECK(p != NULL);
    if (p) {
      ok = 1;
      for (int i = 0; i < 100; i++) if (((unsigned char *)p)[i] != 0x3C) ok = 0;
      CHECK(ok);
      CHECK(malloc_usable_size(p) >= 200);
      free(p);
    } else {
      free(q);
    }
  }
  p = reallocarray(NULL, 10, 10);
  CHECK(p != NULL);
  free(p);

  /* posix_memalign and friends with absurd sizes. */
  void *r = (void *)1;
  errno = 777;
  int rc = posix_memalign(&r, 64, o(SIZE_MAX));
  CHECK(rc == ENOMEM);
  rc = posix_memalign(&r, 4096, o(SIZE_MAX) - 4000);
  CHECK(rc == ENOMEM);
  errno = 0;
  p = aligned_alloc(64, o(SIZE_MAX));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = memalign(1 << 20, o(SIZE_MAX) - (1 << 19));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = valloc(o(SIZE_MAX));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = pvalloc(o(SIZE_MAX));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = pvalloc(o(SIZE_MAX) - page_size);
  CHECK(p == NULL && errno == ENOMEM);
}

static void test_realloc_basics(void) {
  section("realloc(NULL, n), realloc(p, 0)");
  errno = 0;
  char *p = realloc(NULL, 100);
  CHECK(p != NULL);
  if (p) {
    CHECK(malloc_usable_size(p) >= 100);
    memset(p, 7, 100);
  }
  /* glibc: realloc(p, 0) frees p and returns NULL. */
  void *z = realloc(p, 0);
  CHECK_MSG(z == NULL, "realloc(p, 0) returned %p, glibc frees and returns NULL", z);
  if (z) free(z);
  p = realloc(NULL, 0);
  CHECK(p != NULL); /* same as malloc(0) */
  free(p);
  /* Large and huge blocks shrunk to 0 as well. */
  p = malloc(200000);
  z = realloc(p, 0);
  CHECK(z == NULL);
  if (z) free(z);
  p = malloc(16 * MiB);
  z = realloc(p, 0);
  CHECK(z == NULL);
  if (z) free(z);
  /* After all those frees the allocator still works. */
  p = malloc(100);
  CHECK(p != NULL);
  free(p);
}

static int is_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void test_bad_alignment(void) {
  section("posix_memalign/aligned_alloc/memalign with bad alignments");
  static const size_t bad[] = {0, 3, 24, sizeof(void *) / 2, 1, 2, 12, 48, 100, 4097,
                               (size_t)1 << 63 | 8, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    void *p = (void *)0x1;
    errno = 555;
    int rc = posix_memalign(&p, bad[i], 64);
    CHECK_MSG(rc == EINVAL, "posix_memalign(alignment %zu) returned %d, want EINVAL", bad[i], rc);
    CHECK_MSG(errno == 555, "posix_memalign(alignment %zu) changed errno to %d", bad[i], errno);
    if (rc == 0) free(p);
  }
  /* memalign and aligned_alloc with alignment 0 behave as malloc in glibc. */
  void *p = memalign(0, 10);
  CHECK(p != NULL);
  free(p);
  /* A valid posix_memalign leaves errno alone too. */
  errno = 555;
  p = NULL;
  CHECK(posix_memalign(&p, 64, 100) == 0);
  CHECK(errno == 555 && p != NULL && is_aligned(p, 64));
  free(p);
}

static void test_aligned_family(void) {
  section("posix_memalign/aligned_alloc/memalign, alignments 1..64 MiB");
  for (size_t a = 1; a <= 64 * MiB; a *= 2) {
    size_t sizes[] = {0, 1, 7, 24, 100, 1000, 5000, 70000, a / 2 + 3, a - 1, a, a + 1,
                      3 * a / 2 + 5};
    size_t nsizes = sizeof sizes / sizeof *sizes;
    for (size_t k = 0; k < nsizes; k++) {
      size_t n = sizes[k];
      /* Keep the biggest combinations few: sizes above 16 MiB only for the
       * block sizes equal to the alignment. */
      if (n > 16 * MiB && n != a + 1) continue;
      for (int fn = 0; fn < 3; fn++) {
        void *p = NULL;
        const char *name;
        if (fn == 0) {
          name = "posix_memalign";
          if (a < sizeof(void *)) continue;
          int rc = posix_memalign(&p, a, n);
          CHECK_MSG(rc == 0, "posix_memalign(%zu, %zu) = %d", a, n, rc);
        } else if (fn == 1) {
          name = "aligned_alloc";
          p = aligned_alloc(a, n);
        } else {
          name = "memalign";
          p = memalign(a, n);
        }
        CHECK_MSG(p != NULL, "%s(%zu, %zu) failed", name, a, n);
        if (!p) continue;
        CHECK_MSG(is_aligned(p, a), "%s(%zu, %zu) = %p not aligned", name, a, n, p);
        size_t us = malloc_usable_size(p);
        CHECK_MSG(us >= n, "%s(%zu, %zu): usable %zu", name, a, n, us);
        memset(p, 0xC3, us);
        /* Touch the first and last byte through a second look. */
        CHECK(((unsigned char *)p)[0] == 0xC3 || us == 0);
        if (us) CHECK(((unsigned char *)p)[us - 1] == 0xC3);
        free(p);
      }
    }
  }
  /* Many aligned blocks alive at once, mixed with plain ones, then freed in
   * another order: checks the blocks do not overlap. */
  enum { N = 600 };
  static void *v[N];
  static size_t vn[N];
  sm_rng_t r = {42};
  for (int i = 0; i < N; i++) {
    size_t a = (size_t)1 << sm_rng_range(&r, 3, 16);
    size_t n = sm_rng_logsize(&r, 1, 300000);
    if (i % 3 == 0) {
      v[i] = malloc(n);
    } else if (i % 3 == 1) {
      CHECK(posix_memalign(&v[i], a, n) == 0);
      CHECK(is_aligned(v[i], a));
    } else {
      v[i] = aligned_alloc(a, n);
      CHECK(v[i] != NULL && is_aligned(v[i], a));
    }
    vn[i] = n;
    if (v[i]) sm_fill(v[i], n, (uint64_t)i);
  }
  int bad = 0;
  for (int i = 0; i < N; i++)
    if (v[i] && sm_check(v[i], vn[i], (uint64_t)i) != (size_t)-1) bad++;
  CHECK_MSG(bad == 0, "%d aligned blocks lost their pattern", bad);
  for (int i = 0; i < N; i += 2) free(v[i]);
  for (int i = 1; i < N; i += 2) free(v[i]);
}

static void test_valloc_pvalloc(void) {
  section("valloc, pvalloc");
  static const size_t sizes[] = {1, 100, 4095, 4096, 4097, 10000, 100000, 3 * MiB + 5};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    size_t n = sizes[i];
    void *p = valloc(n);
    CHECK(p != NULL);
    if (p) {
      CHECK_MSG(is_aligned(p, page_size), "valloc(%zu) = %p", n, p);
      check_usable(p, n, "valloc");
      free(p);
    }
    p = pvalloc(n);
    CHECK(p != NULL);
    if (p) {
      size_t want = (n + page_size - 1) / page_size * page_size;
      CHECK_MSG(is_aligned(p, page_size), "pvalloc(%zu) = %p", n, p);
      CHECK_MSG(malloc_usable_size(p) >= want, "pvalloc(%zu): usable %zu < %zu", n,
                malloc_usable_size(p), want);
      check_usable(p, want, "pvalloc");
      free(p);
    }
  }
  void *p = valloc(0);
  CHECK(p != NULL && is_aligned(p, page_size));
  free(p);
  p = pvalloc(0);
  CHECK(p != NULL && is_aligned(p, page_size));
  free(p);
}

static void test_usable_size(void) {
  section("malloc_usable_size");
  CHECK(malloc_usable_size(NULL) == 0);
  for (size_t n = 0; n <= 70000; n += (n < 2100 ? 1 : n < 20000 ? 37 : 251)) {
    void *p = malloc(n);
    CHECK_MSG(p != NULL, "malloc(%zu)", n);
    if (!p) continue;
    if (n >= 16) CHECK_MSG(is_aligned(p, 16), "malloc(%zu) = %p not 16-aligned", n, p);
    else if (n >= 8) CHECK_MSG(is_aligned(p, 8), "malloc(%zu) = %p not 8-aligned", n, p);
    check_usable(p, n, "malloc");
    free(p);
  }
  static const size_t big[] = {100000, 131072, 200000, 262145, 500000, 1 * MiB - 1, 1 * MiB,
                               1 * MiB + 1, 2 * MiB + 123, 4 * MiB, 8 * MiB - 1, 8 * MiB};
  for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
    void *p = malloc(big[i]);
    CHECK(p != NULL);
    if (!p) continue;
    CHECK(is_aligned(p, 16));
    check_usable(p, big[i], "malloc(big)");
    free(p);
  }
  /* Usable size of a block that realloc shrank or grew in place. */
  char *p = malloc(5000);
  p = realloc(p, 100);
  CHECK(p != NULL && malloc_usable_size(p) >= 100);
  p = realloc(p, 3000);
  CHECK(p != NULL && malloc_usable_size(p) >= 3000);
  if (p) check_usable(p, 3000, "realloc");
  free(p);
}

static void test_calloc_zero(void) {
  section("calloc zeroes, also reused memory");
  static const size_t sizes[] = {1, 8, 24, 100, 1000, 4096, 5000, 65536, 100000, 500000,
                                 2 * MiB, 9 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    size_t n = sizes[i];
    int rounds = n > MiB ? 6 : 40;
    for (int k = 0; k < rounds; k++) {
      unsigned char *p = malloc(n);
      CHECK(p != NULL);
      if (!p) break;
      memset(p, 0xFF, malloc_usable_size(p));
      free(p);
      unsigned char *c = calloc(1, n);
      CHECK(c != NULL);
      if (!c) break;
      size_t bad = n;
      for (size_t j = 0; j < n; j++) if (c[j]) { bad = j; break; }
      CHECK_MSG(bad == n, "calloc(1, %zu) round %d: byte %zu is %#x", n, k, bad, bad < n ? c[bad] : 0);
      memset(c, 0xEE, n);
      free(c);
    }
  }
  /* calloc with nmemb*size spelled the other way and with several live. */
  enum { N = 300 };
  static unsigned char *v[N];
  for (int i = 0; i < N; i++) {
    v[i] = malloc(48);
    if (v[i]) memset(v[i], 0xFF, 48);
  }
  for (int i = 0; i < N; i += 2) free(v[i]);
  int bad = 0;
  for (int i = 0; i < N; i += 2) {
    v[i] = calloc(12, 4);
    if (!v[i]) { bad++; continue; }
    for (int j = 0; j < 48; j++) if (v[i][j]) { bad++; break; }
  }
  CHECK_MSG(bad == 0, "%d calloc(12, 4) blocks not zeroed", bad);
  for (int i = 0; i < N; i++) free(v[i]);
  void *z = calloc(0, 10);
  CHECK(z != NULL);
  free(z);
  z = calloc(10, 0);
  CHECK(z != NULL);
  free(z);
}

static void test_realloc_contents(void) {
  section("realloc keeps contents across size classes");
  static const size_t steps[] = {10, 100, 2000, 50000, 300000, 3 * MiB, 20 * MiB, 21 * MiB,
                                 500000, 1000, 7, 1, 70000, 9 * MiB, 64, 0};
  for (int round = 0; round < 3; round++) {
    uint64_t tag = 77 + (uint64_t)round;
    size_t cur = steps[0];
    unsigned char *p = malloc(cur);
    CHECK(p != NULL);
    if (!p) return;
    sm_fill_range(p, 0, cur, tag);
    for (size_t i = 1; i < sizeof steps / sizeof *steps; i++) {
      size_t n = steps[i];
      if (n == 0) break;
      /* Something else allocated between reallocs, so blocks cannot always
       * grow in place. */
      void *other = malloc(n / 2 + 1);
      unsigned char *q = realloc(p, n);
      CHECK_MSG(q != NULL, "realloc(%zu -> %zu)", cur, n);
      if (!q) { free(other); free(p); return; }
      size_t keep = cur < n ? cur : n;
      size_t bad = sm_check_range(q, 0, keep, tag);
      CHECK_MSG(bad == (size_t)-1, "realloc %zu -> %zu: byte %zu changed", cur, n, bad);
      sm_fill_range(q, 0, n, tag);
      free(other);
      p = q;
      cur = n;
    }
    free(p);
  }
  /* In-place growth of the last block, then shrink by one byte repeatedly. */
  unsigned char *p = malloc(1);
  size_t cur = 1;
  sm_fill_range(p, 0, 1, 5);
  int bad = 0;
  for (size_t n = 2; n < 5000; n += 3) {
    unsigned char *q = realloc(p, n);
    if (!q) { bad++; break; }
    if (sm_check_range(q, 0, cur, 5) != (size_t)-1) bad++;
    sm_fill_range(q, 0, n, 5);
    p = q;
    cur = n;
  }
  for (size_t n = cur; n > 1; n -= 7) {
    unsigned char *q = realloc(p, n);
    if (!q) { bad++; break; }
    if (sm_check_range(q, 0, n, 5) != (size_t)-1) bad++;
    p = q;
    if (n < 8) break;
  }
  CHECK_MSG(bad == 0, "%d realloc steps lost contents", bad);
  free(p);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void test_mallinfo(void) {
  section("mallinfo2, mallinfo, malloc_trim, malloc_stats, mallopt");
  struct mallinfo2 before = mallinfo2();
  struct mallinfo old_before = mallinfo();
  enum { N = 10240 };
  static void *v[N];
  for (int i = 0; i < N; i++) {
    v[i] = malloc(1024);
    if (v[i]) memset(v[i], i, 1024);
  }
  struct mallinfo2 after = mallinfo2();
  struct mallinfo old_after = mallinfo();
  size_t grown = after.uordblks - before.uordblks;
  CHECK_MSG(after.uordblks > before.uordblks && grown >= 10 * MiB,
            "mallinfo2 uordblks %zu -> %zu after 10 MiB in 1 KiB blocks",
            before.uordblks, after.uordblks);
  CHECK_MSG(after.uordblks <= after.arena + after.hblkhd,
            "mallinfo2 uordblks %zu > arena %zu + hblkhd %zu", after.uordblks, after.arena,
            after.hblkhd);
  CHECK_MSG(after.arena >= 10 * MiB || after.arena + after.hblkhd >= 10 * MiB,
            "mallinfo2 arena %zu hblkhd %zu", after.arena, after.hblkhd);
  CHECK_MSG(old_after.uordblks - old_before.uordblks >= (int)(10 * MiB),
            "mallinfo uordblks %d -> %d", old_before.uordblks, old_after.uordblks);
  for (int i = 0; i < N; i++) free(v[i]);
  struct mallinfo2 freed = mallinfo2();
  CHECK_MSG(freed.uordblks + 9 * MiB <= after.uordblks,
            "mallinfo2 uordblks %zu after freeing 10 MiB (was %zu)", freed.uordblks,
            after.uordblks);

  /* Huge blocks show up somewhere too (glibc: hblkhd). */
  void *h = malloc(64 * MiB);
  struct mallinfo2 huge = mallinfo2();
  CHECK_MSG(huge.uordblks + huge.hblkhd >= freed.uordblks + freed.hblkhd + 64 * MiB,
            "a live 64 MiB block: uordblks %zu hblkhd %zu (before %zu %zu)", huge.uordblks,
            huge.hblkhd, freed.uordblks, freed.hblkhd);
  free(h);

  int t = malloc_trim(0);
  CHECK_MSG(t == 0 || t == 1, "malloc_trim(0) = %d", t);
  t = malloc_trim(1 << 20);
  CHECK_MSG(t == 0 || t == 1, "malloc_trim(1 MiB) = %d", t);

  /* malloc_stats writes to stderr: capture it and check it printed. */
  fflush(stderr);
  int saved = dup(2);
  FILE *tmp = tmpfile();
  CHECK(saved >= 0 && tmp != NULL);
  if (saved >= 0 && tmp) {
    dup2(fileno(tmp), 2);
    malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long len = lseek(fileno(tmp), 0, SEEK_END);
    CHECK_MSG(len > 0, "malloc_stats printed nothing on stderr");
    fclose(tmp);
  }

  CHECK(mallopt(M_ARENA_MAX, 1) != 0);
  CHECK(mallopt(M_MMAP_THRESHOLD, 256 * 1024) != 0);
  CHECK(mallopt(M_TRIM_THRESHOLD, 1 << 20) != 0);
  /* The allocator keeps working after mallopt. */
  void *p = malloc(300 * 1024);
  CHECK(p != NULL);
  if (p) memset(p, 1, 300 * 1024);
  free(p);
}
#pragma GCC diagnostic pop

static void test_free_sized(void) {
  section("free_sized, free_aligned_sized (C23)");
  void (*fs)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
  void (*fas)(void *, size_t, size_t) =
      (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
  if (sm_preloaded()) {
    /* snapmalloc exports the C23 functions (glibc 2.36 does not). */
    CHECK_MSG(fs != NULL, "free_sized not exported under the preload");
    CHECK_MSG(fas != NULL, "free_aligned_sized not exported under the preload");
  }
  if (fs) {
    static const size_t sizes[] = {1, 16, 100, 1000, 40000, 300000, 5 * MiB};
    for (int round = 0; round < 50; round++)
      for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        void *p = malloc(sizes[i]);
        CHECK(p != NULL);
        memset(p, 1, sizes[i]);
        errno = 99;
        fs(p, sizes[i]);
        CHECK(errno == 99);
      }
    fs(NULL, 0);
    void *p = calloc(10, 10);
    fs(p, 100);
  } else {
    fprintf(stderr, "   (free_sized not available: skipped)\n");
  }
  if (fas) {
    for (size_t a = 8; a <= 65536; a *= 4) {
      size_t n = a * 3;
      void *p = aligned_alloc(a, n);
      CHECK(p != NULL && is_aligned(p, a));
      memset(p, 2, n);
      fas(p, a, n);
    }
    fas(NULL, 64, 0);
  } else {
    fprintf(stderr, "   (free_aligned_sized not available: skipped)\n");
  }
}

static void test_libc_aliases(void) {
  section("__libc_malloc & co. via dlsym");
  void *(*lmalloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "__libc_malloc");
  void (*lfree)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "__libc_free");
  void *(*lcalloc)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(RTLD_DEFAULT, "__libc_calloc");
  void *(*lrealloc)(void *, size_t) = (void *(*)(void *, size_t))dlsym(RTLD_DEFAULT, "__libc_realloc");
  void *(*lmemalign)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(RTLD_DEFAULT, "__libc_memalign");
  CHECK(lmalloc && lfree && lcalloc && lrealloc && lmemalign);
  if (!(lmalloc && lfree && lcalloc && lrealloc && lmemalign)) return;
  static const size_t sizes[] = {1, 50, 1000, 70000, 400000, 3 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    size_t n = sizes[i];
    /* __libc_malloc -> free */
    unsigned char *p = lmalloc(n);
    CHECK(p != NULL);
    sm_fill_range(p, 0, n, n);
    CHECK(malloc_usable_size(p) >= n);
    /* -> realloc -> __libc_free */
    p = realloc(p, n * 2);
    CHECK(p != NULL && sm_check_range(p, 0, n, n) == (size_t)-1);
    lfree(p);
    /* malloc -> __libc_realloc -> free */
    p = malloc(n);
    sm_fill_range(p, 0, n, n + 1);
    p = lrealloc(p, n + 5000);
    CHECK(p != NULL && sm_check_range(p, 0, n, n + 1) == (size_t)-1);
    free(p);
    /* __libc_calloc zeroed, freed by free */
    p = lcalloc(1, n);
    CHECK(p != NULL);
    size_t nz = 0;
    for (size_t j = 0; j < n; j++) nz += p[j] != 0;
    CHECK(nz == 0);
    free(p);
    /* __libc_memalign aligned, freed by __libc_free and by free */
    p = lmemalign(256, n);
    CHECK(p != NULL && is_aligned(p, 256));
    memset(p, 3, n);
    lfree(p);
    p = lmemalign(4096, n);
    CHECK(p != NULL && is_aligned(p, 4096));
    memset(p, 3, n);
    free(p);
    /* malloc -> __libc_free */
    p = malloc(n);
    memset(p, 4, n);
    lfree(p);
  }
}

int main(void) {
  sm_check_preload();
  page_size = (size_t)sysconf(_SC_PAGESIZE);
  test_malloc_zero_and_free_null();
  test_free_errno();
  test_overflow();
  test_realloc_basics();
  test_bad_alignment();
  test_aligned_family();
  test_valloc_pvalloc();
  test_usable_size();
  test_calloc_zero();
  test_realloc_contents();
  test_mallinfo();
  test_free_sized();
  test_libc_aliases();
  return test_summary();
}
