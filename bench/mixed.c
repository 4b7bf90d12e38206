/* mixed: mixed sizes with fragmentation.
 *
 * Each thread keeps a working-set array of blocks whose sizes are drawn
 * log-uniformly from 8 B to 64 KiB (every power-of-two band equally
 * likely, so small blocks are common but most bytes sit in big ones).  At
 * every step a random slot is freed and refilled with a block of a new
 * random size.  Three quarters of the replacements hit a small "young" part
 * of the array, the rest hit any slot, so lifetimes range from a few
 * hundred steps to the whole run: long-lived blocks end up scattered among
 * the holes that short-lived ones leave behind, which is what fragments a
 * heap.  Every block is stamped at both ends, its first bytes are written
 * as a program would initialise them, and one byte per page is touched.
 */
#include "common.h"

#include <pthread.h>

#define USAGE "[threads=cores] [slots_per_thread=4000] [ops_per_thread=5000000] " \
              "[min_size=8] [max_size=65536]"

struct worker {
    pthread_t tid;
    int id;
    long nslots, ops;
    size_t min_size, max_size;
    uint64_t bytes_allocated;
    size_t peak_live;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    bench_rng rng;
    bench_rng_seed(&rng, 0x3c3d0000u + (uint64_t)w->id);

    void **ptr = calloc((size_t)w->nslots, sizeof *ptr);
    size_t *size = calloc((size_t)w->nslots, sizeof *size);
    if (ptr == NULL || size == NULL)
        bench_fail("calloc of the working set failed");
    long young = w->nslots / 16 > 0 ? w->nslots / 16 : 1;
    size_t live = 0;

    for (long i = 0; i < w->ops; i++) {
        long k;
        if ((bench_rand(&rng) & 3) != 0)
            k = (long)bench_below(&rng, (uint64_t)young);
        else
            k = (long)bench_below(&rng, (uint64_t)w->nslots);
        if (ptr[k] != NULL) {
            BENCH_CHECK_STAMP(ptr[k], size[k], "mixed free");
            free(ptr[k]);
            live -= size[k];
        }
        size_t n = bench_logrange(&rng, w->min_size, w->max_size);
        unsigned char *p = bench_xmalloc(n);
        memset(p, (int)(i & 0xff), n < 64 ? n : 64);
        bench_touch_pages(p, n, (unsigned char)i);
        bench_stamp(p, n);
        ptr[k] = p;
        size[k] = n;
        live += n;
        w->bytes_allocated += n;
        if (live > w->peak_live)
            w->peak_live = live;
    }

    for (long k = 0; k < w->nslots; k++) {
        if (ptr[k] == NULL)
            continue;
        BENCH_CHECK_STAMP(ptr[k], size[k], "mixed final");
        free(ptr[k]);
    }
    free(ptr);
    free(size);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init("mixed", USAGE, argc, argv, 5);
    long threads = bench_arg(argc, argv, 1, bench_online_cores(), 1, 1024);
    long nslots = bench_arg(argc, argv, 2, 4000, 1, 100000000);
    long ops = bench_arg(argc, argv, 3, 5000000, 1, 1L << 40);
    long min_size = bench_arg(argc, argv, 4, 8, 1, 1L << 30);
    long max_size = bench_arg(argc, argv, 5, 65536, min_size, 1L << 30);

    struct worker *w = calloc((size_t)threads, sizeof *w);
    if (w == NULL)
        bench_fail("calloc failed");
    double t0 = bench_now();
    for (long t = 0; t < threads; t++) {
        w[t].id = (int)t;
        w[t].nslots = nslots;
        w[t].ops = ops;
        w[t].min_size = (size_t)min_size;
        w[t].max_size = (size_t)max_size;
        bench_spawn(&w[t].tid, NULL, worker_main, &w[t]);
    }
    uint64_t bytes = 0;
    size_t peak = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(w[t].tid, NULL);
        bytes += w[t].bytes_allocated;
        peak += w[t].peak_live;
    }
    double elapsed = bench_now() - t0;
    free(w);

    printf("mixed threads=%ld ops=%llu allocated_mib=%.0f peak_live_mib=%.1f time_s=%.3f\n",
           threads, (unsigned long long)threads * (unsigned long long)ops,
           (double)bytes / 1048576.0, (double)peak / 1048576.0, elapsed);
    return 0;
}
