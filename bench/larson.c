/* larson: a server-like workload in the pattern of the Larson & Krishnan
 * allocator benchmark.
 *
 * Each worker owns a slot array of blocks.  It repeatedly picks a random
 * slot, frees the block in it and puts a freshly allocated block of random
 * size there.  The work is cut into rounds; after every round all workers
 * exit and a new set of threads is started, each taking over the slot array
 * of a *different* worker of the previous round.  So most frees hit blocks
 * that another (often already dead) thread allocated, as in a server whose
 * connection handlers come and go while the data they allocated lives on.
 *
 * Every block carries a stamp at both ends that is verified before it is
 * freed; any corruption ends the run with exit status 1.
 */
#include "common.h"

#include <pthread.h>

#define USAGE "[threads=cores] [slots_per_thread=4000] [ops_per_round=200000] " \
              "[rounds=30] [min_size=16] [max_size=1024]"

struct slots {
    void **ptr;
    uint32_t *size;
    bench_rng rng;
    long nslots;
    uint64_t frees;  /* blocks freed from this array (all rounds) */
    uint64_t allocs; /* blocks allocated into this array */
};

struct worker {
    pthread_t tid;
    struct slots *s;
    long ops;
    size_t min_size, max_size;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct slots *s = w->s;
    const size_t lo = w->min_size, hi = w->max_size;

    for (long i = 0; i < w->ops; i++) {
        long k = (long)bench_below(&s->rng, (uint64_t)s->nslots);
        void *p = s->ptr[k];
        if (p != NULL) {
            BENCH_CHECK_STAMP(p, s->size[k], "larson free");
            free(p);
            s->frees++;
        }
        size_t n = bench_range(&s->rng, lo, hi);
        void *q = bench_xmalloc(n);
        bench_stamp(q, n);
        s->ptr[k] = q;
        s->size[k] = (uint32_t)n;
        s->allocs++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init("larson", USAGE, argc, argv, 6);
    long threads = bench_arg(argc, argv, 1, bench_online_cores(), 1, 1024);
    long nslots = bench_arg(argc, argv, 2, 4000, 1, 100000000);
    long ops = bench_arg(argc, argv, 3, 200000, 1, 1L << 40);
    long rounds = bench_arg(argc, argv, 4, 30, 1, 1000000);
    long min_size = bench_arg(argc, argv, 5, 16, 1, 1L << 30);
    long max_size = bench_arg(argc, argv, 6, 1024, min_size, 1L << 30);

    struct slots *arrays = bench_xmalloc(sizeof *arrays * (size_t)threads);
    struct worker *workers = bench_xmalloc(sizeof *workers * (size_t)threads);
    for (long t = 0; t < threads; t++) {
        struct slots *s = &arrays[t];
        s->ptr = calloc((size_t)nslots, sizeof *s->ptr);
        s->size = calloc((size_t)nslots, sizeof *s->size);
        if (s->ptr == NULL || s->size == NULL)
            bench_fail("calloc of the slot arrays failed");
        s->nslots = nslots;
        s->frees = s->allocs = 0;
        bench_rng_seed(&s->rng, 0x1a250000u + (uint64_t)t);
    }

    double t0 = bench_now();
    for (long r = 0; r < rounds; r++) {
        for (long t = 0; t < threads; t++) {
            /* Round r's thread t takes over the array that thread t-1 of
             * the previous round worked on: a new thread, someone else's
             * blocks. */
            workers[t].s = &arrays[(t + r) % threads];
            workers[t].ops = ops;
            workers[t].min_size = (size_t)min_size;
            workers[t].max_size = (size_t)max_size;
            bench_spawn(&workers[t].tid, NULL, worker_main, &workers[t]);
        }
        for (long t = 0; t < threads; t++)
            pthread_join(workers[t].tid, NULL);
    }
    double elapsed = bench_now() - t0;

    /* Check the survivors, free everything, and reconcile the counts. */
    uint64_t allocs = 0, frees = 0, live = 0;
    for (long t = 0; t < threads; t++) {
        struct slots *s = &arrays[t];
        for (long k = 0; k < nslots; k++) {
            if (s->ptr[k] == NULL)
                continue;
            BENCH_CHECK_STAMP(s->ptr[k], s->size[k], "larson final");
            free(s->ptr[k]);
            live++;
        }
        allocs += s->allocs;
        frees += s->frees;
        free(s->ptr);
        free(s->size);
    }
    uint64_t expected = (uint64_t)threads * (uint64_t)ops * (uint64_t)rounds;
    if (allocs != expected || frees + live != allocs)
        bench_fail("count mismatch: allocs=%llu expected=%llu frees=%llu live=%llu",
                   (unsigned long long)allocs, (unsigned long long)expected,
                   (unsigned long long)frees, (unsigned long long)live);
    free(arrays);
    free(workers);

    printf("larson threads=%ld rounds=%ld ops=%llu time_s=%.3f mops_per_s=%.2f\n",
           threads, rounds, (unsigned long long)allocs, elapsed,
           (double)allocs / elapsed / 1e6);
    return 0;
}
