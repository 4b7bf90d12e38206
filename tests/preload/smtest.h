/* Helpers shared by the preload test programs (tests/preload/): a small
 * deterministic PRNG, fill/check patterns, VmRSS, and "are we running under
 * snapmalloc" detection. Everything here works the same with glibc's malloc,
 * so that every API test can also be run without the preload. */
#ifndef SM_TESTS_PRELOAD_SMTEST_H
#define SM_TESTS_PRELOAD_SMTEST_H

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testhelper.h"

/* ---- PRNG: splitmix64, deterministic for a given seed. ---- */
typedef struct { uint64_t s; } sm_rng_t;

static inline uint64_t sm_rng_next(sm_rng_t *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0. */
static inline uint64_t sm_rng_below(sm_rng_t *r, uint64_t n) { return sm_rng_next(r) % n; }

/* Uniform in [lo, hi]. */
static inline size_t sm_rng_range(sm_rng_t *r, size_t lo, size_t hi) {
  return lo + (size_t)sm_rng_below(r, (uint64_t)(hi - lo) + 1);
}

/* Log-uniform in [lo, hi], lo >= 1: pick a bit length uniformly, then a value
 * uniformly inside it (clamped). */
static inline size_t sm_rng_logsize(sm_rng_t *r, size_t lo, size_t hi) {
  unsigned lbits = 63u - (unsigned)__builtin_clzl(lo);
  unsigned hbits = 63u - (unsigned)__builtin_clzl(hi);
  unsigned b = lbits + (unsigned)sm_rng_below(r, hbits - lbits + 1);
  size_t base = (size_t)1 << b;
  size_t v = base + (size_t)sm_rng_below(r, base);
  if (v < lo) v = lo;
  if (v > hi) v = hi;
  return v;
}

/* ---- Patterns. The byte at offset i of a block with tag t is a function of
 * (t, i) only, so that realloc (which moves the bytes) keeps it checkable. ---- */
static inline uint64_t sm_pat_word(uint64_t tag, size_t word) {
  uint64_t z = tag * 0xD6E8FEB86659FD93ull + word * 0x9E3779B97F4A7C15ull + 1;
  return z ^ (z >> 29);
}

static inline unsigned char sm_pat_byte(uint64_t tag, size_t i) {
  return (unsigned char)(sm_pat_word(tag, i / 8) >> ((i % 8) * 8));
}

/* Fill bytes [from, to) of block p with the pattern of tag. */
static inline void sm_fill_range(void *p, size_t from, size_t to, uint64_t tag) {
  unsigned char *b = (unsigned char *)p;
  size_t i = from;
  while (i < to && (i % 8) != 0) { b[i] = sm_pat_byte(tag, i); i++; }
  for (; i + 8 <= to; i += 8) {
    uint64_t w = sm_pat_word(tag, i / 8);
    __builtin_memcpy(b + i, &w, 8);
  }
  for (; i < to; i++) b[i] = sm_pat_byte(tag, i);
}

/* Returns the first offset in [from, to) that does not hold the pattern, or
 * (size_t)-1 when all do. */
static inline size_t sm_check_range(const void *p, size_t from, size_t to, uint64_t tag) {
  const unsigned char *b = (const unsigned char *)p;
  size_t i = from;
  while (i < to && (i % 8) != 0) { if (b[i] != sm_pat_byte(tag, i)) return i; i++; }
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, b + i, 8);
    if (w != sm_pat_word(tag, i / 8)) {
      for (size_t j = i; j < i + 8; j++)
        if (b[j] != sm_pat_byte(tag, j)) return j;
    }
  }
  for (; i < to; i++) if (b[i] != sm_pat_byte(tag, i)) return i;
  return (size_t)-1;
}

/* Blocks above this size are filled sparsely: the first and last
 * SM_SPARSE_EDGE bytes plus one 64-byte chunk in every SM_SPARSE_STRIDE.
 * That still catches overlapping blocks at page granularity while keeping
 * page faults on multi-megabyte blocks affordable. */
#define SM_SPARSE_LIMIT  ((size_t)64 << 10)
#define SM_SPARSE_EDGE   ((size_t)4096)
#define SM_SPARSE_STRIDE ((size_t)32 << 10)

static __attribute__((noinline, unused)) void sm_fill_sparse(void *p, size_t n, uint64_t tag) {
  sm_fill_range(p, 0, SM_SPARSE_EDGE, tag);
  for (size_t o = SM_SPARSE_STRIDE; o + 64 < n - SM_SPARSE_EDGE; o += SM_SPARSE_STRIDE)
    sm_fill_range(p, o, o + 64, tag);
  sm_fill_range(p, n - SM_SPARSE_EDGE, n, tag);
}

static inline void sm_fill(void *p, size_t n, uint64_t tag) {
  if (n <= SM_SPARSE_LIMIT) sm_fill_range(p, 0, n, tag);
  else sm_fill_sparse(p, n, tag);
}

/* Checks the bytes sm_fill(p, n, tag) wrote that lie below limit (limit = n
 * for a plain check; the new size after a shrinking realloc). Returns the
 * first bad offset or (size_t)-1. */
static inline size_t sm_check_upto(const void *p, size_t n, uint64_t tag, size_t limit) {
  size_t r;
  if (limit > n) limit = n;
  if (n <= SM_SPARSE_LIMIT) return sm_check_range(p, 0, limit, tag);
  r = sm_check_range(p, 0, limit < SM_SPARSE_EDGE ? limit : SM_SPARSE_EDGE, tag);
  if (r != (size_t)-1) return r;
  for (size_t o = SM_SPARSE_STRIDE; o + 64 < n - SM_SPARSE_EDGE && o + 64 <= limit; o += SM_SPARSE_STRIDE) {
    r = sm_check_range(p, o, o + 64, tag);
    if (r != (size_t)-1) return r;
  }
  if (limit == n) return sm_check_range(p, n - SM_SPARSE_EDGE, n, tag);
  return (size_t)-1;
}

static inline size_t sm_check(const void *p, size_t n, uint64_t tag) {
  return sm_check_upto(p, n, tag, n);
}

/* ---- Process facts. ---- */

/* VmRSS of this process in KiB, or -1. */
static inline long sm_rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) { kib = strtol(line + 6, NULL, 10); break; }
  fclose(f);
  return kib;
}

/* True when the test runs with libsnapmalloc preloaded (or when the library
 * exports its public API into this process some other way). */
static inline int sm_preloaded(void) {
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "snapmalloc")) return 1;
  return dlsym(RTLD_DEFAULT, "snapmalloc_traced_memory") != NULL;
}

/* When LD_PRELOAD names snapmalloc, make sure the dynamic loader really
 * loaded it and that malloc/free resolve into it: ld.so only warns and goes
 * on with glibc's malloc when the preload path is wrong, which would make
 * every test silently pass on glibc. */
static inline void sm_check_preload(void) {
  const char *pre = getenv("LD_PRELOAD");
  Dl_info mi, fi;
  void *m, *f;
  if (!pre || !strstr(pre, "snapmalloc")) return;
  m = dlsym(RTLD_DEFAULT, "malloc");
  f = dlsym(RTLD_DEFAULT, "free");
  CHECK_MSG(m && dladdr(m, &mi) && mi.dli_fname && strstr(mi.dli_fname, "snapmalloc"),
            "LD_PRELOAD=%s but malloc resolves to %s", pre,
            (m && dladdr(m, &mi) && mi.dli_fname) ? mi.dli_fname : "(unknown)");
  CHECK_MSG(f && dladdr(f, &fi) && fi.dli_fname && strstr(fi.dli_fname, "snapmalloc"),
            "LD_PRELOAD=%s but free resolves to %s", pre,
            (f && dladdr(f, &fi) && fi.dli_fname) ? fi.dli_fname : "(unknown)");
}

#endif
