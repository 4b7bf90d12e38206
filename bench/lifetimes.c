/* lifetimes: blocks with short, medium and long lifetimes side by side
 * (the pattern of the alloc-test benchmark).
 *
 * Every thread works on its own three pools of slots: a small pool that is
 * replaced all the time (short lives: a few hundred operations), a middle
 * one, and a large one where a block stays for most of the run.  One
 * operation picks a pool (short 75%, medium 20%, long 5%), frees the block
 * in a random slot of it and allocates a replacement.  Sizes are mostly
 * small with a long tail: 8-64 bytes (60%), 64-512 (30%), 512 B-4 KiB (8%),
 * 4-64 KiB (2%), uniform within each band.  A new block gets its stamps and
 * a value in its first word; the value is read back when the block dies.
 *
 * The threads are independent (no cross-thread frees): this workload is
 * about the mix of lifetimes and sizes within one thread's heap; 2 threads
 * show whether two such heaps disturb each other.
 */
#include "common.h"

#include <pthread.h>

#define USAGE "[threads=1] [ops_per_thread=10000000] [short_slots=256] " \
              "[medium_slots=8192] [long_slots=65536]"

struct block {
    void *p;
    uint32_t size;
    uint32_t value;
};

struct pool {
    struct block *b;
    long n;
};

struct worker {
    pthread_t tid;
    long index, ops;
    long nslots[3];
    uint64_t checksum;
};

static size_t draw_size(bench_rng *r)
{
    uint64_t band = bench_below(r, 100);
    if (band < 60)
        return bench_range(r, 8, 64);
    if (band < 90)
        return bench_range(r, 65, 512);
    if (band < 98)
        return bench_range(r, 513, 4096);
    return bench_range(r, 4097, 65536);
}

/* The value sits right after the leading stamp, where it fits: blocks of
 * 12-15 bytes have no trailing stamp, from 20 bytes on it ends before it. */
static int value_fits(size_t n)
{
    return (n >= 12 && n < 16) || n >= 20;
}

/* Put a new block in b; the value stored in it comes from the stream too,
 * so it is the same under every allocator. */
static void fill(struct block *b, bench_rng *r)
{
    size_t n = draw_size(r);
    char *p = bench_xmalloc(n);
    bench_stamp(p, n);
    b->value = (uint32_t)bench_rand(r);
    if (value_fits(n))
        memcpy(p + 8, &b->value, 4);
    b->p = p;
    b->size = (uint32_t)n;
}

/* Check b, fold it into the checksum and free it. */
static uint64_t retire(struct block *b, uint64_t sum)
{
    size_t n = b->size;
    char *p = b->p;
    BENCH_CHECK_STAMP(p, n, "lifetimes free");
    uint32_t v = b->value;
    if (value_fits(n) && memcmp(p + 8, &v, 4) != 0)
        bench_fail("block %p of %zu bytes lost its value", (void *)p, n);
    free(p);
    return (sum ^ v) * 0x100000001b3ULL + n;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    bench_rng rng;
    bench_rng_seed(&rng, 0xa110c000ULL + (uint64_t)w->index);
    struct pool pools[3];
    for (int i = 0; i < 3; i++) {
        pools[i].n = w->nslots[i];
        pools[i].b = bench_xmalloc(sizeof *pools[i].b * (size_t)pools[i].n);
        for (long k = 0; k < pools[i].n; k++)
            fill(&pools[i].b[k], &rng);
    }
    uint64_t sum = 0;
    for (long i = 0; i < w->ops; i++) {
        uint64_t c = bench_below(&rng, 20);
        struct pool *pl = &pools[c < 15 ? 0 : c < 19 ? 1 : 2];
        struct block *b = &pl->b[bench_below(&rng, (uint64_t)pl->n)];
        sum = retire(b, sum);
        fill(b, &rng);
    }
    for (int i = 0; i < 3; i++) {
        for (long k = 0; k < pools[i].n; k++)
            sum = retire(&pools[i].b[k], sum);
        free(pools[i].b);
    }
    w->checksum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init("lifetimes", USAGE, argc, argv, 5);
    long threads = bench_arg(argc, argv, 1, 1, 1, 1024);
    long ops = bench_arg(argc, argv, 2, 10000000, 0, 1L << 40);
    long nshort = bench_arg(argc, argv, 3, 256, 1, 100000000);
    long nmedium = bench_arg(argc, argv, 4, 8192, 1, 100000000);
    long nlong = bench_arg(argc, argv, 5, 65536, 1, 100000000);

    struct worker *workers = bench_xmalloc(sizeof *workers * (size_t)threads);
    double t0 = bench_now();
    for (long t = 0; t < threads; t++) {
        workers[t] = (struct worker){.index = t, .ops = ops,
                                     .nslots = {nshort, nmedium, nlong}};
        bench_spawn(&workers[t].tid, NULL, worker_main, &workers[t]);
    }
    uint64_t sum = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(workers[t].tid, NULL);
        sum = sum * 0x9e3779b97f4a7c15ULL + workers[t].checksum;
    }
    double elapsed = bench_now() - t0;
    free(workers);

    printf("lifetimes threads=%ld ops=%llu time_s=%.3f mops_per_s=%.2f checksum=%016llx\n",
           threads, (unsigned long long)((uint64_t)threads * (uint64_t)ops), elapsed,
           (double)threads * (double)ops / elapsed / 1e6, (unsigned long long)sum);
    return 0;
}
