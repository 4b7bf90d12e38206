/* mstress: a short stress of many short-lived threads (after the pattern
 * of mimalloc's stress test).
 *
 * The run is a series of rounds; each round starts many threads (by
 * default 8 per core) that live for a few milliseconds (30,000 steps by
 * default) and exit.  A thread keeps a small array of blocks; one step
 *   - allocates a block into a random slot (freeing what was there): sizes
 *     16-128 bytes (70%), 128 B-2 KiB (25%), 2-64 KiB (4.9%) and
 *     256 KiB-1 MiB (0.1%), so the big sizes show up now and then;
 *   - or frees a random slot;
 *   - or swaps a random slot with a random slot of a shared transfer array,
 *     so the block goes to, and is freed by, some other thread, perhaps of
 *     a later round.
 * A finishing thread frees about half of its blocks and puts the rest into
 * the transfer array, so blocks outlive their threads.  Main frees what is
 * left at the end.
 *
 * Every block carries its id and size at its start and a stamp at its end.
 * Whether a given block is freed by its thread or another depends on
 * timing, but which blocks are allocated does not (every choice comes from
 * the thread's own seeded generator), so the sum of the mixed ids of the
 * freed blocks must equal that of the allocated ones: the checksum.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define USAGE "[threads_per_round=8*cores] [rounds=50] [steps_per_thread=30000] " \
              "[local_slots=64] [transfer_slots=1024]"

struct header {
    uint64_t id;
    uint64_t size;
};

struct shared {
    _Atomic(struct header *) *transfer;
    long ntransfer, nlocal, steps;
};

struct worker {
    pthread_t tid;
    struct shared *sh;
    uint64_t seed;
    uint64_t alloc_sum, free_sum, allocs;
};

static uint64_t mix(uint64_t id)
{
    bench_rng r;
    bench_rng_seed(&r, id);
    return bench_rand(&r);
}

static size_t draw_size(bench_rng *r)
{
    uint64_t c = bench_below(r, 1000);
    if (c < 700)
        return bench_range(r, 16, 128);
    if (c < 950)
        return bench_range(r, 129, 2048);
    if (c < 999)
        return bench_range(r, 2049, 65536);
    return bench_range(r, 262144, 1048576);
}

static struct header *block_new(uint64_t id, size_t n)
{
    struct header *h = bench_xmalloc(n);
    h->id = id;
    h->size = n;
    if (n >= 24) {
        uint64_t t = bench_tag(h, n);
        memcpy((char *)h + n - 8, &t, 8);
    }
    return h;
}

/* Verify and free; returns the block's share of the checksum. */
static uint64_t block_free(struct header *h)
{
    if (h == NULL)
        return 0;
    size_t n = h->size;
    uint64_t t = n >= 24 ? bench_tag(h, n) : 0;
    if (n < 16 || n > 1048576 || (n >= 24 && memcmp((char *)h + n - 8, &t, 8) != 0))
        bench_fail("block %p (id %llx) was corrupted", (void *)h,
                   (unsigned long long)h->id);
    uint64_t m = mix(h->id);
    free(h);
    return m;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    bench_rng rng;
    bench_rng_seed(&rng, w->seed);
    struct header **local = calloc((size_t)sh->nlocal, sizeof *local);
    if (local == NULL)
        bench_fail("calloc of a thread's slots failed");
    for (long s = 0; s < sh->steps; s++) {
        struct header **slot = &local[bench_below(&rng, (uint64_t)sh->nlocal)];
        uint64_t c = bench_below(&rng, 10);
        if (c < 5) {
            uint64_t id = (w->seed << 24) + (uint64_t)s;
            size_t n = draw_size(&rng);
            w->free_sum += block_free(*slot);
            *slot = block_new(id, n);
            w->alloc_sum += mix(id);
            w->allocs++;
        } else if (c < 8) {
            w->free_sum += block_free(*slot);
            *slot = NULL;
        } else {
            long k = (long)bench_below(&rng, (uint64_t)sh->ntransfer);
            *slot = atomic_exchange(&sh->transfer[k], *slot);
        }
    }
    for (long i = 0; i < sh->nlocal; i++) {
        if (bench_below(&rng, 2) == 0) {
            long k = (long)bench_below(&rng, (uint64_t)sh->ntransfer);
            local[i] = atomic_exchange(&sh->transfer[k], local[i]);
        }
        w->free_sum += block_free(local[i]);
    }
    free(local);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init("mstress", USAGE, argc, argv, 5);
    long threads = bench_arg(argc, argv, 1, 8L * bench_online_cores(), 1, 4096);
    long rounds = bench_arg(argc, argv, 2, 50, 1, 1000000);
    static struct shared sh;
    sh.steps = bench_arg(argc, argv, 3, 30000, 0, 1L << 40);
    sh.nlocal = bench_arg(argc, argv, 4, 64, 1, 1L << 24);
    sh.ntransfer = bench_arg(argc, argv, 5, 1024, 1, 1L << 24);
    sh.transfer = calloc((size_t)sh.ntransfer, sizeof *sh.transfer);
    struct worker *workers = calloc((size_t)threads, sizeof *workers);
    if (sh.transfer == NULL || workers == NULL)
        bench_fail("calloc failed");

    uint64_t alloc_sum = 0, free_sum = 0, allocs = 0;
    double t0 = bench_now();
    for (long r = 0; r < rounds; r++) {
        for (long t = 0; t < threads; t++) {
            workers[t] = (struct worker){.sh = &sh,
                                         .seed = ((uint64_t)r << 20) + (uint64_t)t + 1};
            bench_spawn(&workers[t].tid, NULL, worker_main, &workers[t]);
        }
        for (long t = 0; t < threads; t++) {
            pthread_join(workers[t].tid, NULL);
            alloc_sum += workers[t].alloc_sum;
            free_sum += workers[t].free_sum;
            allocs += workers[t].allocs;
        }
    }
    for (long k = 0; k < sh.ntransfer; k++)
        free_sum += block_free(atomic_load(&sh.transfer[k]));
    double elapsed = bench_now() - t0;
    if (free_sum != alloc_sum)
        bench_fail("the freed blocks are not the allocated ones (sum %016llx, expected %016llx)",
                   (unsigned long long)free_sum, (unsigned long long)alloc_sum);
    free(sh.transfer);
    free(workers);
    printf("mstress threads=%ld rounds=%ld allocs=%llu time_s=%.3f checksum=%016llx\n",
           threads, rounds, (unsigned long long)allocs, elapsed,
           (unsigned long long)alloc_sum);
    return 0;
}
