/* cache-thrash: does the allocator make threads share cache lines?
 *
 * Every thread repeatedly allocates one small object, writes every byte of
 * it many times (reading each byte back), and frees it.  The threads never
 * share an object, so nothing but the allocator's placement can put two
 * threads' objects in one cache line; if it does, every write of one thread
 * invalidates the line in the other's cache (false sharing) and the run
 * slows down with the number of threads instead of staying flat.  With one
 * thread it shows how an object placed by the allocator behaves under a
 * tight store/load loop on its own (next to allocator metadata that is
 * written on every malloc and free, for instance).
 *
 * Each thread does the same work, so with enough cores the ideal run time
 * does not depend on the number of threads.
 */
#include "common.h"

#include <pthread.h>

#define USAGE "[threads=cores] [objects_per_thread=2000] [writes_per_byte=200000] [size=8]"

struct worker {
    pthread_t tid;
    long objects, writes;
    size_t size;
    uint64_t checksum;
};

/* Write and read back every byte of p `writes` times; volatile so that each
 * store and load really reaches the object's cache line. */
static uint64_t hammer(volatile unsigned char *p, size_t size, long writes)
{
    uint64_t sum = 0;
    for (long r = 0; r < writes; r++) {
        for (size_t k = 0; k < size; k++) {
            p[k] = (unsigned char)(r + (long)k);
            sum += p[k];
        }
    }
    return sum;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t sum = 0;
    for (long i = 0; i < w->objects; i++) {
        unsigned char *p = bench_xmalloc(w->size);
        sum += hammer(p, w->size, w->writes);
        free(p);
    }
    w->checksum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init("cache-thrash", USAGE, argc, argv, 4);
    long threads = bench_arg(argc, argv, 1, bench_online_cores(), 1, 1024);
    long objects = bench_arg(argc, argv, 2, 2000, 1, 1L << 40);
    long writes = bench_arg(argc, argv, 3, 200000, 1, 1L << 40);
    long size = bench_arg(argc, argv, 4, 8, 1, 1L << 20);

    struct worker *workers = bench_xmalloc(sizeof *workers * (size_t)threads);
    double t0 = bench_now();
    for (long t = 0; t < threads; t++) {
        workers[t] = (struct worker){.objects = objects, .writes = writes,
                                     .size = (size_t)size};
        bench_spawn(&workers[t].tid, NULL, worker_main, &workers[t]);
    }
    uint64_t sum = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(workers[t].tid, NULL);
        sum += workers[t].checksum;
    }
    double elapsed = bench_now() - t0;
    free(workers);
    printf("cache-thrash threads=%ld objects=%ld time_s=%.3f checksum=%016llx\n",
           threads, objects, elapsed, (unsigned long long)sum);
    return 0;
}
