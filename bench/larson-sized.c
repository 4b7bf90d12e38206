/* larson-sized: the Larson server workload with sized frees.
 *
 * A server keeps per-connection data in slot arrays.  The main thread fills
 * every array first, so the first frees of every worker hit blocks another
 * thread allocated.  Then the workers run in generations: a worker replaces
 * random blocks of its array (free the old one, allocate one of random
 * size), and when its share of a generation is done it waits for the other
 * workers, starts its own successor and exits.  The successor serves the
 * *next* array, so every generation frees blocks allocated by a thread that
 * is now dead, as connection handlers come and go while data lives on.
 *
 * Every free passes the block's size: the sized free of whichever
 * allocator is loaded.  C has no sized free before C23's free_sized, and
 * glibc 2.36 has none, so at start the program looks up, in order,
 * free_sized, sdallocx (jemalloc), tc_free_sized (tcmalloc) and
 * mi_free_size (mimalloc), and takes the first one that lives in the same
 * shared object as the malloc in use (a free_sized of another object
 * could not free this malloc's blocks).  Without one, a wrapper that drops
 * the size and calls free is used; the summary line names the choice.
 */
#include "common.h"

#include <dlfcn.h>
#include <pthread.h>

#define USAGE "[threads=cores] [slots_per_thread=5000] [ops_per_generation=200000] " \
              "[generations=60] [min_size=8] [max_size=1000]"

/* ---- the sized free ------------------------------------------------------ */

static void (*sized_free_fn)(void *, size_t);
static void (*sdallocx_fn)(void *, size_t, int);
static const char *sized_free_name = "free";

static void free_dropping_size(void *p, size_t n)
{
    (void)n;
    free(p);
}

static void free_by_sdallocx(void *p, size_t n)
{
    sdallocx_fn(p, n, 0);
}

/* Address of `name` if the object that defines it also defines the malloc
 * this process calls, else NULL. */
static void *same_object_symbol(const char *name, const Dl_info *malloc_obj)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    if (f == NULL || dladdr(f, &info) == 0 || info.dli_fbase != malloc_obj->dli_fbase)
        return NULL;
    return f;
}

static void pick_sized_free(void)
{
    static const char *const names[] = {"free_sized", "sdallocx", "tc_free_sized",
                                        "mi_free_size"};
    sized_free_fn = free_dropping_size;
    Dl_info malloc_obj;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m == NULL || dladdr(m, &malloc_obj) == 0)
        return;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *f = same_object_symbol(names[i], &malloc_obj);
        if (f == NULL)
            continue;
        sized_free_name = names[i];
        if (strcmp(names[i], "sdallocx") == 0) {
            /* sdallocx takes a third argument (flags): call it through a
             * wrapper rather than through a mistyped pointer. */
            *(void **)&sdallocx_fn = f;
            sized_free_fn = free_by_sdallocx;
        } else {
            *(void **)&sized_free_fn = f;
        }
        return;
    }
}

/* ---- workers ------------------------------------------------------------- */

struct slots {
    void **ptr;
    uint32_t *size;
    bench_rng rng;
    uint64_t allocs, frees, bytes;
};

struct shared {
    struct slots *arrays;
    long threads, nslots, ops, generations;
    size_t min_size, max_size;
    pthread_barrier_t gen_end;   /* all workers of a generation are done */
    pthread_barrier_t all_done;  /* the last generation and main */
};

struct worker {
    struct shared *sh;
    long index;      /* lineage: 0 .. threads-1 */
    long generation;
};

static void serve(struct shared *sh, struct slots *s)
{
    for (long i = 0; i < sh->ops; i++) {
        long k = (long)bench_below(&s->rng, (uint64_t)sh->nslots);
        void *p = s->ptr[k];
        size_t old = s->size[k];
        BENCH_CHECK_STAMP(p, old, "larson-sized free");
        sized_free_fn(p, old);
        s->frees++;
        size_t n = bench_range(&s->rng, sh->min_size, sh->max_size);
        void *q = bench_xmalloc(n);
        bench_stamp(q, n);
        s->ptr[k] = q;
        s->size[k] = (uint32_t)n;
        s->allocs++;
        s->bytes += n;
    }
}

static void start_worker(struct worker *w);

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    /* Generation g's worker of lineage i serves array (i + g) mod threads:
     * the arrays of one generation are disjoint, and each array passes to
     * a new thread every generation. */
    serve(sh, &sh->arrays[(w->index + w->generation) % sh->threads]);
    pthread_barrier_wait(&sh->gen_end);
    if (w->generation + 1 < sh->generations) {
        w->generation++;
        start_worker(w); /* the successor takes over this record */
    } else {
        pthread_barrier_wait(&sh->all_done);
    }
    return NULL;
}

static void start_worker(struct worker *w)
{
    pthread_attr_t attr;
    pthread_t tid;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    bench_spawn(&tid, &attr, worker_main, w);
    pthread_attr_destroy(&attr);
}

static void fill_arrays(struct shared *sh)
{
    sh->arrays = bench_xmalloc(sizeof *sh->arrays * (size_t)sh->threads);
    for (long t = 0; t < sh->threads; t++) {
        struct slots *s = &sh->arrays[t];
        s->ptr = bench_xmalloc(sizeof *s->ptr * (size_t)sh->nslots);
        s->size = bench_xmalloc(sizeof *s->size * (size_t)sh->nslots);
        s->allocs = s->frees = s->bytes = 0;
        bench_rng_seed(&s->rng, 0x1a75e0000ULL + (uint64_t)t);
        for (long k = 0; k < sh->nslots; k++) {
            size_t n = bench_range(&s->rng, sh->min_size, sh->max_size);
            s->ptr[k] = bench_xmalloc(n);
            bench_stamp(s->ptr[k], n);
            s->size[k] = (uint32_t)n;
            s->allocs++;
            s->bytes += n;
        }
    }
}

/* Check and free what is left; returns a checksum of the run that depends
 * only on the requests, not on addresses or timing. */
static uint64_t drain_arrays(struct shared *sh)
{
    uint64_t sum = 0, allocs = 0, frees = 0;
    for (long t = 0; t < sh->threads; t++) {
        struct slots *s = &sh->arrays[t];
        for (long k = 0; k < sh->nslots; k++) {
            BENCH_CHECK_STAMP(s->ptr[k], s->size[k], "larson-sized final");
            sum = sum * 31 + s->size[k];
            sized_free_fn(s->ptr[k], s->size[k]);
            frees++;
        }
        allocs += s->allocs;
        frees += s->frees;
        sum ^= s->bytes * 0x9e3779b97f4a7c15ULL;
        free(s->ptr);
        free(s->size);
    }
    uint64_t expected = (uint64_t)sh->threads *
                        ((uint64_t)sh->nslots + (uint64_t)sh->ops * (uint64_t)sh->generations);
    if (allocs != expected || frees != allocs)
        bench_fail("count mismatch: allocs=%llu expected=%llu frees=%llu",
                   (unsigned long long)allocs, (unsigned long long)expected,
                   (unsigned long long)frees);
    free(sh->arrays);
    return sum;
}

int main(int argc, char **argv)
{
    bench_init("larson-sized", USAGE, argc, argv, 6);
    static struct shared sh;
    sh.threads = bench_arg(argc, argv, 1, bench_online_cores(), 1, 1024);
    sh.nslots = bench_arg(argc, argv, 2, 5000, 1, 100000000);
    sh.ops = bench_arg(argc, argv, 3, 200000, 1, 1L << 40);
    sh.generations = bench_arg(argc, argv, 4, 60, 1, 1000000);
    sh.min_size = (size_t)bench_arg(argc, argv, 5, 8, 1, 1L << 30);
    sh.max_size = (size_t)bench_arg(argc, argv, 6, 1000, (long)sh.min_size, 1L << 30);
    pick_sized_free();

    fill_arrays(&sh);
    pthread_barrier_init(&sh.gen_end, NULL, (unsigned)sh.threads);
    pthread_barrier_init(&sh.all_done, NULL, (unsigned)sh.threads + 1);
    struct worker *workers = bench_xmalloc(sizeof *workers * (size_t)sh.threads);

    double t0 = bench_now();
    for (long t = 0; t < sh.threads; t++) {
        workers[t] = (struct worker){.sh = &sh, .index = t, .generation = 0};
        start_worker(&workers[t]);
    }
    pthread_barrier_wait(&sh.all_done);
    double elapsed = bench_now() - t0;

    uint64_t ops = (uint64_t)sh.threads * (uint64_t)sh.ops * (uint64_t)sh.generations;
    uint64_t sum = drain_arrays(&sh);
    free(workers);
    printf("larson-sized threads=%ld generations=%ld ops=%llu sized_free=%s "
           "time_s=%.3f mops_per_s=%.2f checksum=%016llx\n",
           sh.threads, sh.generations, (unsigned long long)ops, sized_free_name,
           elapsed, (double)ops / elapsed / 1e6, (unsigned long long)sum);
    return 0;
}
