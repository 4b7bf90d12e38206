/* cache-scratch: does the allocator hand a thread memory that shares a
 * cache line with another thread's objects, after a remote free?
 *
 * The main thread allocates one small object per worker, back to back, so
 * they are likely neighbours in one cache line, and hands object t to
 * worker t.  Each worker frees the object it was given (a free of memory
 * another thread allocated), then repeatedly allocates an object of the same
 * size, writes every byte of it many times (reading each byte back) and
 * frees it.  An allocator that recycles the remotely freed object into the
 * worker's own cache gives every worker a piece of the same cache line, and
 * their writes then fight over it (false sharing): the run slows down with
 * the number of threads instead of staying flat.
 */
#include "common.h"

#include <pthread.h>

#define USAGE "[threads=cores] [objects_per_thread=1500] [writes_per_byte=100000] [size=8]"

struct worker {
    pthread_t tid;
    unsigned char *given; /* allocated by the main thread */
    long objects, writes;
    size_t size;
    uint64_t checksum;
};

/* Write and read back every byte of p `writes` times; volatile so that each
 * store and load really reaches the object's cache line. */
static uint64_t scribble(volatile unsigned char *p, size_t size, long writes)
{
    uint64_t sum = 0;
    for (long r = 0; r < writes; r++) {
        for (size_t k = 0; k < size; k++) {
            p[k] = (unsigned char)(r ^ (long)k);
            sum += p[k];
        }
    }
    return sum;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (w->given[0] != 0xa5 || w->given[w->size - 1] != 0xa5)
        bench_fail("the object handed over at %p was corrupted", (void *)w->given);
    free(w->given);
    uint64_t sum = 0;
    for (long i = 0; i < w->objects; i++) {
        unsigned char *p = bench_xmalloc(w->size);
        sum += scribble(p, w->size, w->writes);
        free(p);
    }
    w->checksum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init("cache-scratch", USAGE, argc, argv, 4);
    long threads = bench_arg(argc, argv, 1, bench_online_cores(), 1, 1024);
    long objects = bench_arg(argc, argv, 2, 1500, 1, 1L << 40);
    long writes = bench_arg(argc, argv, 3, 100000, 1, 1L << 40);
    long size = bench_arg(argc, argv, 4, 8, 1, 1L << 20);

    struct worker *workers = bench_xmalloc(sizeof *workers * (size_t)threads);
    for (long t = 0; t < threads; t++) {
        workers[t] = (struct worker){.objects = objects, .writes = writes,
                                     .size = (size_t)size};
        workers[t].given = bench_xmalloc((size_t)size);
        memset(workers[t].given, 0xa5, (size_t)size);
    }
    double t0 = bench_now();
    for (long t = 0; t < threads; t++) {
        bench_spawn(&workers[t].tid, NULL, worker_main, &workers[t]);
    }
    uint64_t sum = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(workers[t].tid, NULL);
        sum += workers[t].checksum;
    }
    double elapsed = bench_now() - t0;
    free(workers);
    printf("cache-scratch threads=%ld objects=%ld time_s=%.3f checksum=%016llx\n",
           threads, objects, elapsed, (unsigned long long)sum);
    return 0;
}
