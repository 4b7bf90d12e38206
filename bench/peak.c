/* peak: peak-then-shrink.  Does the allocator give memory back?
 *
 * In each cycle the threads together allocate about 1 GiB in a random
 * interleaving of small (16 B - 1 KiB), medium (1 KiB - 64 KiB) and large
 * (64 KiB - 4 MiB) blocks, each class contributing about a third of the
 * bytes, and write every byte.  Then each thread frees its blocks except a
 * random few (drawn per block, with a byte budget so that after all cycles
 * about 10 MiB stays live, scattered through the heap the way survivors of
 * a load spike are).  A later cycle can reuse what the earlier ones freed.
 * After the last cycle the threads exit; the main thread verifies the
 * survivors, reads VmRSS from /proc/self/status and prints it as
 * rss_after_kib: what the process still holds when its live memory is
 * about 1% of the peak.  Lower is better; the peak itself shows up in the
 * runner's peak-RSS column.
 */
#include "common.h"

#include <pthread.h>

#define USAGE "[threads=cores] [total_mib=1024] [cycles=4] [keep_mib=10]"

struct block {
    unsigned char *p;
    size_t n;
};

struct worker {
    pthread_t tid;
    int id;
    size_t budget;      /* bytes to allocate per cycle */
    size_t keep_budget; /* bytes to keep alive per cycle */
    long cycles;
    struct block *kept; /* survivors of all cycles */
    size_t nkept, kept_bytes, allocated, nblocks;
};

static unsigned char fill_value(const void *p)
{
    return (unsigned char)(((uintptr_t)p >> 4) * 37u + 1u);
}

static void run_cycle(struct worker *w, bench_rng *rng)
{
    /* Mean sizes of the three log-uniform classes, to split the budget into
     * block counts that give each class a third of the bytes. */
    static const size_t lo[3] = {16, 1024, 65536};
    static const size_t hi[3] = {1024, 65536, 4194304};
    uint64_t left[3], total = 0;
    for (int c = 0; c < 3; c++) {
        double mean = (double)(hi[c] - lo[c]) / log((double)hi[c] / (double)lo[c]);
        left[c] = (uint64_t)((double)w->budget / 3.0 / mean) + 1;
        total += left[c];
    }

    struct block *blocks = bench_xmalloc(sizeof *blocks * (size_t)total);
    size_t nb = 0, bytes = 0;
    while (total > 0) {
        uint64_t r = bench_below(rng, total);
        int c = r < left[0] ? 0 : r < left[0] + left[1] ? 1 : 2;
        left[c]--;
        total--;
        size_t n = bench_logrange(rng, lo[c], hi[c]);
        unsigned char *p = bench_xmalloc(n);
        memset(p, fill_value(p), n);
        bench_stamp(p, n);
        blocks[nb].p = p;
        blocks[nb].n = n;
        nb++;
        bytes += n;
    }
    w->allocated += bytes;
    w->nblocks += nb;

    /* Free all but a random few: each block survives with probability
     * keep_budget/bytes, so the expected survivor bytes are keep_budget;
     * a hard cap of twice that bounds the unlucky case of several 4 MiB
     * survivors. */
    double keep_prob = (double)w->keep_budget / (double)bytes;
    uint64_t threshold = (uint64_t)(keep_prob * 18446744073709551615.0);
    size_t kept = 0;
    for (size_t i = 0; i < nb; i++) {
        BENCH_CHECK_STAMP(blocks[i].p, blocks[i].n, "peak");
        if (bench_rand(rng) < threshold && kept + blocks[i].n <= 2 * w->keep_budget) {
            w->kept[w->nkept++] = blocks[i];
            kept += blocks[i].n;
        } else {
            free(blocks[i].p);
        }
    }
    w->kept_bytes += kept;
    free(blocks);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    bench_rng rng;
    bench_rng_seed(&rng, 0x9ea40000u + (uint64_t)w->id);
    /* Survivors are at least 16 bytes each. */
    size_t cap = (size_t)w->cycles * (2 * w->keep_budget / 16 + 1);
    w->kept = bench_xmalloc(sizeof *w->kept * cap);
    for (long c = 0; c < w->cycles; c++)
        run_cycle(w, &rng);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init("peak", USAGE, argc, argv, 4);
    long threads = bench_arg(argc, argv, 1, bench_online_cores(), 1, 1024);
    long total_mib = bench_arg(argc, argv, 2, 1024, 1, 1L << 24);
    long cycles = bench_arg(argc, argv, 3, 4, 1, 1000000);
    long keep_mib = bench_arg(argc, argv, 4, 10, 0, total_mib);

    struct worker *w = calloc((size_t)threads, sizeof *w);
    if (w == NULL)
        bench_fail("calloc failed");
    double t0 = bench_now();
    for (long t = 0; t < threads; t++) {
        w[t].id = (int)t;
        w[t].budget = (size_t)total_mib * 1048576 / (size_t)threads;
        w[t].keep_budget = (size_t)keep_mib * 1048576 / (size_t)threads / (size_t)cycles;
        w[t].cycles = cycles;
        bench_spawn(&w[t].tid, NULL, worker_main, &w[t]);
    }
    for (long t = 0; t < threads; t++)
        pthread_join(w[t].tid, NULL);
    double elapsed = bench_now() - t0;

    size_t allocated = 0, kept_bytes = 0, nkept = 0, nblocks = 0;
    for (long t = 0; t < threads; t++) {
        for (size_t i = 0; i < w[t].nkept; i++) {
            struct block *b = &w[t].kept[i];
            BENCH_CHECK_STAMP(b->p, b->n, "peak survivor");
            size_t mid = b->n / 2;
            if (b->n >= 32 && b->p[mid] != fill_value(b->p))
                bench_fail("survivor %p of %zu bytes lost its contents", (void *)b->p, b->n);
        }
        allocated += w[t].allocated;
        kept_bytes += w[t].kept_bytes;
        nkept += w[t].nkept;
        nblocks += w[t].nblocks;
    }
    long rss = bench_vmrss_kib();
    if (rss < 0)
        bench_fail("cannot read VmRSS from /proc/self/status");

    printf("peak threads=%ld cycles=%ld blocks=%zu allocated_mib=%.0f kept_blocks=%zu "
           "kept_kib=%zu time_s=%.3f rss_after_kib=%ld\n",
           threads, cycles, nblocks, (double)allocated / 1048576.0, nkept, kept_bytes / 1024,
           elapsed, rss);
    /* The survivors are deliberately left live until exit. */
    return 0;
}
