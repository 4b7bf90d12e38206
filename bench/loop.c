/* loop: the malloc/free fast path.
 *
 * Each thread runs a tight loop of malloc(n) immediately followed by
 * free(), cycling n over a few small sizes (16 B to 512 B).  The first and
 * last byte of every block are written and read back, and the pointer is
 * hidden from the optimiser so the pair cannot be removed.  With one
 * thread this measures the single-threaded fast path; with several, each
 * thread runs its own independent loop, which shows whether the fast path
 * takes locks or shares cache lines between threads.  The summary line
 * gives the mean nanoseconds per malloc/free pair seen by a thread.
 */
#include "common.h"

#include <pthread.h>

#define USAGE "[threads=cores] [pairs_per_thread=80000000]"

static const size_t sizes[8] = {16, 24, 32, 48, 64, 128, 256, 512};

struct worker {
    pthread_t tid;
    long pairs;
    double seconds;
    uint64_t sum;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t sum = 0;
    double t0 = bench_now();
    for (long i = 0; i < w->pairs; i++) {
        size_t n = sizes[i & 7];
        unsigned char *p = malloc(n);
        if (p == NULL)
            bench_fail("malloc(%zu) returned NULL", n);
        p[0] = (unsigned char)i;
        p[n - 1] = (unsigned char)(i >> 8);
        bench_escape(p);
        if (p[0] != (unsigned char)i || p[n - 1] != (unsigned char)(i >> 8))
            bench_fail("block %p of %zu bytes did not keep its contents", (void *)p, n);
        sum += p[0];
        free(p);
    }
    w->seconds = bench_now() - t0;
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init("loop", USAGE, argc, argv, 2);
    long threads = bench_arg(argc, argv, 1, bench_online_cores(), 1, 1024);
    long pairs = bench_arg(argc, argv, 2, 80000000, 1, 1L << 40);

    struct worker *w = calloc((size_t)threads, sizeof *w);
    if (w == NULL)
        bench_fail("calloc failed");
    double t0 = bench_now();
    for (long t = 0; t < threads; t++) {
        w[t].pairs = pairs;
        bench_spawn(&w[t].tid, NULL, worker_main, &w[t]);
    }
    double per_thread = 0;
    uint64_t expect = 0;
    for (long i = 0; i < pairs % 256; i++)
        expect += (uint64_t)i;
    expect += (uint64_t)(pairs / 256) * (255 * 256 / 2);
    for (long t = 0; t < threads; t++) {
        pthread_join(w[t].tid, NULL);
        per_thread += w[t].seconds;
        if (w[t].sum != expect)
            bench_fail("thread %ld checksum %llu, expected %llu", t,
                       (unsigned long long)w[t].sum, (unsigned long long)expect);
    }
    double elapsed = bench_now() - t0;
    free(w);

    printf("loop threads=%ld pairs_per_thread=%ld time_s=%.3f ns_per_pair=%.2f\n",
           threads, pairs, elapsed, per_thread / (double)threads / (double)pairs * 1e9);
    return 0;
}
