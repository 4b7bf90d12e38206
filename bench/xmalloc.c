/* xmalloc: producer/consumer workload in the pattern of xmalloc-test.
 *
 * Producer threads allocate blocks of random size, stamp them, and hand
 * them over in batches through a bounded queue protected by a mutex and two
 * condition variables.  Consumer threads take batches off the queue, verify
 * every block and free it.  Every block is therefore freed by a thread other
 * than the one that allocated it, which is the path thread-caching
 * allocators find hardest (remote frees, memory drifting between threads).
 * The batch records themselves are malloc'ed by the producer and freed by
 * the consumer as well.
 *
 * The queue holds 8 batches (2,048 blocks of the default batch, about
 * 540 KiB). With 256 it had two steady states on two cores, and every
 * allocator landed in either by chance: an empty queue, where blocks are
 * freed while still in cache, and a full one, where the consumer reads and
 * frees 17 MiB of cold blocks, so it stays the slower side and the queue
 * stays full. The same library took 0.27 s or 0.62-1.07 s from one run to
 * the next, so a median of a few runs measured the draw, not the allocator.
 */
#include "common.h"

#include <pthread.h>

#define USAGE "[producers=max(1,cores/2)] [consumers=max(1,cores-producers)] " \
              "[blocks_per_producer=4000000] [batch=256] [min_size=16] [max_size=512]"

#define QUEUE_CAP 8

struct batch {
    int n;
    void **ptr;
    uint32_t *size;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    struct batch *ring[QUEUE_CAP];
    unsigned head, count;
    int waiting_put, waiting_get; /* threads blocked on not_full / not_empty */
    long producers_left;
} q = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .not_empty = PTHREAD_COND_INITIALIZER,
    .not_full = PTHREAD_COND_INITIALIZER,
};

static long cfg_blocks, cfg_batch;
static size_t cfg_min, cfg_max;

struct thread_result {
    pthread_t tid;
    int id;
    uint64_t blocks;
    uint64_t bytes;
};

static void queue_put(struct batch *b)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == QUEUE_CAP) {
        q.waiting_put++;
        pthread_cond_wait(&q.not_full, &q.lock);
        q.waiting_put--;
    }
    q.ring[(q.head + q.count) % QUEUE_CAP] = b;
    q.count++;
    if (q.waiting_get > 0)
        pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

/* Next batch, or NULL once every producer has finished and the queue is
 * empty. */
static struct batch *queue_get(void)
{
    struct batch *b = NULL;
    pthread_mutex_lock(&q.lock);
    while (q.count == 0 && q.producers_left > 0) {
        q.waiting_get++;
        pthread_cond_wait(&q.not_empty, &q.lock);
        q.waiting_get--;
    }
    if (q.count > 0) {
        b = q.ring[q.head];
        q.head = (q.head + 1) % QUEUE_CAP;
        q.count--;
        if (q.waiting_put > 0)
            pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.lock);
    return b;
}

static struct batch *batch_new(int cap)
{
    struct batch *b = bench_xmalloc(sizeof *b);
    b->n = 0;
    b->ptr = bench_xmalloc(sizeof *b->ptr * (size_t)cap);
    b->size = bench_xmalloc(sizeof *b->size * (size_t)cap);
    return b;
}

static void *producer_main(void *arg)
{
    struct thread_result *r = arg;
    bench_rng rng;
    bench_rng_seed(&rng, 0x5e110000u + (uint64_t)r->id);

    struct batch *b = batch_new((int)cfg_batch);
    for (long i = 0; i < cfg_blocks; i++) {
        size_t n = bench_range(&rng, cfg_min, cfg_max);
        void *p = bench_xmalloc(n);
        bench_stamp(p, n);
        b->ptr[b->n] = p;
        b->size[b->n] = (uint32_t)n;
        b->n++;
        r->blocks++;
        r->bytes += n;
        if (b->n == cfg_batch) {
            queue_put(b);
            b = batch_new((int)cfg_batch);
        }
    }
    if (b->n > 0) {
        queue_put(b);
    } else {
        free(b->ptr);
        free(b->size);
        free(b);
    }

    pthread_mutex_lock(&q.lock);
    if (--q.producers_left == 0)
        pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct thread_result *r = arg;
    struct batch *b;
    while ((b = queue_get()) != NULL) {
        for (int i = 0; i < b->n; i++) {
            BENCH_CHECK_STAMP(b->ptr[i], b->size[i], "xmalloc consumer");
            r->bytes += b->size[i];
            free(b->ptr[i]);
        }
        r->blocks += (uint64_t)b->n;
        free(b->ptr);
        free(b->size);
        free(b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init("xmalloc", USAGE, argc, argv, 6);
    int cores = bench_online_cores();
    long dprod = cores / 2 > 0 ? cores / 2 : 1;
    long producers = bench_arg(argc, argv, 1, dprod, 1, 512);
    long dcons = cores - producers > 0 ? cores - producers : 1;
    long consumers = bench_arg(argc, argv, 2, dcons, 1, 512);
    cfg_blocks = bench_arg(argc, argv, 3, 4000000, 1, 1L << 40);
    cfg_batch = bench_arg(argc, argv, 4, 256, 1, 1 << 20);
    cfg_min = (size_t)bench_arg(argc, argv, 5, 16, 1, 1L << 30);
    cfg_max = (size_t)bench_arg(argc, argv, 6, 512, (long)cfg_min, 1L << 30);
    if (cfg_max > UINT32_MAX)
        bench_usage();

    q.producers_left = producers;
    struct thread_result *pr = calloc((size_t)producers, sizeof *pr);
    struct thread_result *cr = calloc((size_t)consumers, sizeof *cr);
    if (pr == NULL || cr == NULL)
        bench_fail("calloc failed");

    double t0 = bench_now();
    for (long i = 0; i < consumers; i++) {
        cr[i].id = (int)i;
        bench_spawn(&cr[i].tid, NULL, consumer_main, &cr[i]);
    }
    for (long i = 0; i < producers; i++) {
        pr[i].id = (int)i;
        bench_spawn(&pr[i].tid, NULL, producer_main, &pr[i]);
    }
    for (long i = 0; i < producers; i++)
        pthread_join(pr[i].tid, NULL);
    for (long i = 0; i < consumers; i++)
        pthread_join(cr[i].tid, NULL);
    double elapsed = bench_now() - t0;

    uint64_t pb = 0, pbytes = 0, cb = 0, cbytes = 0;
    for (long i = 0; i < producers; i++) {
        pb += pr[i].blocks;
        pbytes += pr[i].bytes;
    }
    for (long i = 0; i < consumers; i++) {
        cb += cr[i].blocks;
        cbytes += cr[i].bytes;
    }
    if (pb != (uint64_t)producers * (uint64_t)cfg_blocks || cb != pb || cbytes != pbytes)
        bench_fail("count mismatch: produced %llu blocks/%llu bytes, consumed %llu/%llu",
                   (unsigned long long)pb, (unsigned long long)pbytes,
                   (unsigned long long)cb, (unsigned long long)cbytes);
    free(pr);
    free(cr);

    printf("xmalloc producers=%ld consumers=%ld blocks=%llu time_s=%.3f mblocks_per_s=%.2f\n",
           producers, consumers, (unsigned long long)pb, elapsed, (double)pb / elapsed / 1e6);
    return 0;
}
