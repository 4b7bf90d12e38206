/* Shared helpers for the snapmalloc benchmark workloads.
 *
 * Every workload is a plain program that uses whatever malloc the process
 * has (allocators are swapped with LD_PRELOAD by bench/run).  The helpers
 * here give each workload the same conventions:
 *   - a fast deterministic PRNG (splitmix64 seeding a xorshift128+ state),
 *   - positional integer arguments with a usage line on error (exit 2),
 *   - block "stamps": a tag derived from the block's address and size is
 *     written at both ends of a block (the start only, below 16 bytes) and verified before it is freed, so
 *     an allocator that hands out overlapping or corrupted memory makes the
 *     workload fail loudly (exit 1) instead of producing a fast number,
 *   - bench_escape(), which hides a pointer from the optimiser so that GCC
 *     cannot delete a malloc/free pair whose memory looks unused.
 */
#ifndef SNAPMALLOC_BENCH_COMMON_H
#define SNAPMALLOC_BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- failure reporting ------------------------------------------------ */

static const char *bench_name = "bench";
static const char *bench_usage_text = "";

__attribute__((noreturn, format(printf, 1, 2), unused))
static void bench_fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: FAILED: ", bench_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    exit(1);
}

__attribute__((noreturn, unused))
static void bench_usage(void)
{
    fprintf(stderr, "usage: %s %s\n", bench_name, bench_usage_text);
    exit(2);
}

/* Checked malloc: a NULL from the allocator is a failure of the run. */
__attribute__((unused))
static void *bench_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        bench_fail("malloc(%zu) returned NULL", n);
    return p;
}

/* ---- arguments ---------------------------------------------------------- */

__attribute__((unused))
static int bench_online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

/* Positional argument `idx` (1-based) as a long in [lo, hi], or `dflt` when
 * absent or given as "-".  Anything else that does not parse exits with
 * the usage line. */
__attribute__((unused))
static long bench_arg(int argc, char **argv, int idx, long dflt, long lo, long hi)
{
    if (idx >= argc || strcmp(argv[idx], "-") == 0)
        return dflt;
    if (strcmp(argv[idx], "-h") == 0 || strcmp(argv[idx], "--help") == 0)
        bench_usage();
    char *end = NULL;
    errno = 0;
    long v = strtol(argv[idx], &end, 0);
    if (errno != 0 || end == argv[idx] || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "%s: argument %d (%s) must be an integer in [%ld, %ld]\n",
                bench_name, idx, argv[idx], lo, hi);
        bench_usage();
    }
    return v;
}

__attribute__((unused))
static void bench_init(const char *name, const char *usage, int argc, char **argv, int max_args)
{
    bench_name = name;
    bench_usage_text = usage;
    if (argc - 1 > max_args)
        bench_usage();
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            bench_usage();
}

/* Starts a thread or ends the run with the reason. */
__attribute__((unused))
static void bench_spawn(pthread_t *tid, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    int err = pthread_create(tid, attr, fn, arg);
    if (err != 0)
        bench_fail("pthread_create: %s", strerror(err));
}

/* ---- time ---------------------------------------------------------------- */

__attribute__((unused))
static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- PRNG ---------------------------------------------------------------- */

typedef struct {
    uint64_t s0, s1;
} bench_rng;

__attribute__((unused))
static uint64_t bench_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

__attribute__((unused))
static void bench_rng_seed(bench_rng *r, uint64_t seed)
{
    r->s0 = bench_splitmix(&seed);
    r->s1 = bench_splitmix(&seed);
    if ((r->s0 | r->s1) == 0)
        r->s1 = 1;
}

static inline uint64_t bench_rand(bench_rng *r)
{
    uint64_t a = r->s0, b = r->s1;
    uint64_t sum = a + b;
    b ^= a;
    r->s0 = ((a << 55) | (a >> 9)) ^ b ^ (b << 14);
    r->s1 = (b << 36) | (b >> 28);
    return sum;
}

__extension__ typedef unsigned __int128 bench_u128;

/* Uniform in [0, n) (n > 0), by multiply-shift; the bias is negligible. */
static inline uint64_t bench_below(bench_rng *r, uint64_t n)
{
    return (uint64_t)(((bench_u128)bench_rand(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline size_t bench_range(bench_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)bench_below(r, (uint64_t)(hi - lo) + 1);
}

/* Log-uniform in [lo, hi]: every power-of-two band is equally likely. */
__attribute__((unused))
static inline size_t bench_logrange(bench_rng *r, size_t lo, size_t hi)
{
    double u = (double)(bench_rand(r) >> 11) * (1.0 / 9007199254740992.0);
    double v = exp(log((double)lo) + u * (log((double)hi + 1.0) - log((double)lo)));
    size_t s = (size_t)v;
    if (s < lo)
        s = lo;
    if (s > hi)
        s = hi;
    return s;
}

/* ---- stamps -------------------------------------------------------------- */

static inline uint64_t bench_tag(const void *p, size_t n)
{
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL;
    return x ^ ((uint64_t)n << 17) ^ 0x5a5aa5a5c3c33c3cULL;
}

/* Write the tag of (p, n) into the first min(n, 8) bytes and, for blocks
 * of 16 bytes or more, into the last 8 bytes as well. */
static inline void bench_stamp(void *p, size_t n)
{
    uint64_t t = bench_tag(p, n);
    size_t k = n < 8 ? n : 8;
    memcpy(p, &t, k);
    if (n >= 16)
        memcpy((char *)p + n - 8, &t, 8);
}

/* 1 if the stamp of (p, n) is intact. */
static inline int bench_stamp_ok(const void *p, size_t n)
{
    uint64_t t = bench_tag(p, n);
    size_t k = n < 8 ? n : 8;
    return memcmp(p, &t, k) == 0 && (n < 16 || memcmp((const char *)p + n - 8, &t, 8) == 0);
}

/* Verify, or fail the run naming the caller's context. */
#define BENCH_CHECK_STAMP(p, n, what)                                         \
    do {                                                                       \
        if (!bench_stamp_ok((p), (n)))                                         \
            bench_fail("%s: block %p of %zu bytes was corrupted", (what),      \
                       (void *)(p), (size_t)(n));                              \
    } while (0)

/* Write one byte in every 4 KiB page of [p, p+n), so the memory is really
 * committed the way a program that uses its blocks would commit it. */
__attribute__((unused))
static inline void bench_touch_pages(void *p, size_t n, unsigned char v)
{
    volatile unsigned char *c = (volatile unsigned char *)p;
    for (size_t off = 0; off < n; off += 4096)
        c[off] = v;
}

/* Make the compiler believe `p` escapes (and its memory may be read). */
static inline void bench_escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* VmRSS of this process in KiB from /proc/self/status, or -1. */
__attribute__((unused))
static long bench_vmrss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

#endif
