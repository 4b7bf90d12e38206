/* large: large-block churn with realloc growth.
 *
 * Each thread keeps a small table of large blocks (64 KiB to 4 MiB,
 * log-uniform).  At every step it either replaces a random block by a new
 * one of random size, or grows a random block with realloc by a quarter of
 * its size (at least 16 KiB), the way a buffer, a vector or a string
 * builder grows; a block that would pass the maximum is freed and started
 * again small.  Every page of every new or newly grown region is written,
 * so the allocator's handling of fresh versus recycled memory (page faults,
 * mremap, madvise) shows in the time and in the peak RSS.  Realloc must
 * preserve the contents: the old stamp and a byte in the middle are checked
 * after every move.
 */
#include "common.h"

#include <pthread.h>

#define USAGE "[threads=cores] [slots_per_thread=16] [ops_per_thread=20000] " \
              "[min_size=65536] [max_size=4194304]"

struct worker {
    pthread_t tid;
    int id;
    long nslots, ops;
    size_t min_size, max_size;
    uint64_t reallocs, mallocs;
};

struct slot {
    unsigned char *p;
    size_t n;
    unsigned char v; /* value written at every page start */
};

/* Offset of a page-start byte well inside [0, n) that the stamps do not
 * cover, or 0 if there is none. */
static size_t probe_offset(size_t n)
{
    size_t off = (n / 2) & ~(size_t)4095;
    return (off > 0 && off + 8 < n - 8) ? off : 0;
}

static void check_slot(const struct slot *s, const char *what)
{
    BENCH_CHECK_STAMP(s->p, s->n, what);
    size_t off = probe_offset(s->n);
    if (off != 0 && s->p[off] != s->v)
        bench_fail("%s: block %p of %zu bytes lost its contents at offset %zu",
                   what, (void *)s->p, s->n, off);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    bench_rng rng;
    bench_rng_seed(&rng, 0x1a93e000u + (uint64_t)w->id);
    struct slot *slots = calloc((size_t)w->nslots, sizeof *slots);
    if (slots == NULL)
        bench_fail("calloc failed");

    for (long i = 0; i < w->ops; i++) {
        struct slot *s = &slots[bench_below(&rng, (uint64_t)w->nslots)];
        int grow = s->p != NULL && (bench_rand(&rng) & 1);
        size_t newn = grow ? s->n + (s->n / 4 > 16384 ? s->n / 4 : 16384) : 0;

        if (grow && newn <= w->max_size) {
            check_slot(s, "large before realloc");
            uint64_t tag_head, tag_tail;
            memcpy(&tag_head, s->p, 8);
            memcpy(&tag_tail, s->p + s->n - 8, 8);
            size_t off = probe_offset(s->n);
            unsigned char *q = realloc(s->p, newn);
            if (q == NULL)
                bench_fail("realloc(%zu) returned NULL", newn);
            if (memcmp(q, &tag_head, 8) != 0 || memcmp(q + s->n - 8, &tag_tail, 8) != 0 ||
                (off != 0 && q[off] != s->v))
                bench_fail("realloc from %zu to %zu bytes did not preserve the contents",
                           s->n, newn);
            /* Write every page start: the grown part gets committed, and a
             * page start that the old tail stamp covered is restored. */
            bench_touch_pages(q, newn, s->v);
            s->p = q;
            s->n = newn;
            bench_stamp(q, newn);
            w->reallocs++;
            continue;
        }

        if (s->p != NULL) {
            check_slot(s, "large free");
            free(s->p);
        }
        size_t n = grow ? w->min_size : bench_logrange(&rng, w->min_size, w->max_size);
        s->p = bench_xmalloc(n);
        s->n = n;
        s->v = (unsigned char)(bench_rand(&rng) | 1);
        bench_touch_pages(s->p, n, s->v);
        bench_stamp(s->p, n);
        w->mallocs++;
    }

    for (long k = 0; k < w->nslots; k++) {
        if (slots[k].p == NULL)
            continue;
        check_slot(&slots[k], "large final");
        free(slots[k].p);
    }
    free(slots);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init("large", USAGE, argc, argv, 5);
    long threads = bench_arg(argc, argv, 1, bench_online_cores(), 1, 1024);
    long nslots = bench_arg(argc, argv, 2, 16, 1, 1000000);
    long ops = bench_arg(argc, argv, 3, 20000, 1, 1L << 40);
    long min_size = bench_arg(argc, argv, 4, 65536, 64, 1L << 34);
    long max_size = bench_arg(argc, argv, 5, 4194304, min_size, 1L << 34);

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
    uint64_t reallocs = 0, mallocs = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(w[t].tid, NULL);
        reallocs += w[t].reallocs;
        mallocs += w[t].mallocs;
    }
    double elapsed = bench_now() - t0;
    free(w);

    printf("large threads=%ld mallocs=%llu reallocs=%llu time_s=%.3f\n", threads,
           (unsigned long long)mallocs, (unsigned long long)reallocs, elapsed);
    return 0;
}
