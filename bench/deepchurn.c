/* deepchurn: small-block churn whose allocations come from call stacks of
 * random depth, the case where a tracer cannot reuse the stack it captured
 * last time.
 *
 * One thread makes a series of visits.  A visit descends 8 to 15 frames
 * (random) and, at the bottom, makes 8 allocations of 8-4096 bytes; each new
 * block takes a random slot of a live set, and the block it displaces is
 * checked and freed.  Every frame is one of BRANCHES distinct functions,
 * picked at random at each level (with 1 the descent is plain recursion and
 * the stacks differ only in depth), so successive allocations come from
 * ever-changing stacks.
 *
 * The frames must stay frames: the functions are noinline and noclone,
 * each uses the result of the call it makes (no tail call), and they call
 * each other through a volatile table that the compiler cannot see
 * through, so optimisation can neither flatten nor unroll the descent.
 */
#include "common.h"

#define USAGE "[visits=1000000] [branches=4] [live_slots=4096]"

#define MIN_DEPTH 8
#define MAX_DEPTH 15
#define PER_VISIT 8

struct ctx {
    bench_rng rng;
    void **live;
    uint32_t *size;
    long nlive;
    unsigned branches;
    uint64_t bytes, frees;
};

typedef uint64_t (*frame_fn)(struct ctx *, int);

static uint64_t visit(struct ctx *c)
{
    uint64_t sum = 0;
    for (int i = 0; i < PER_VISIT; i++) {
        size_t n = bench_range(&c->rng, 8, 4096);
        long k = (long)bench_below(&c->rng, (uint64_t)c->nlive);
        if (c->live[k] != NULL) {
            BENCH_CHECK_STAMP(c->live[k], c->size[k], "deepchurn free");
            free(c->live[k]);
            c->frees++;
        }
        void *p = bench_xmalloc(n);
        bench_stamp(p, n);
        c->live[k] = p;
        c->size[k] = (uint32_t)n;
        c->bytes += n;
        sum += n;
    }
    return sum;
}

static frame_fn const *volatile frame_table;

/* One level: the bottom makes the visit's allocations, any other level
 * calls a randomly chosen frame function for the next one down. */
static inline __attribute__((always_inline)) uint64_t descend(struct ctx *c, int depth)
{
    if (depth <= 1)
        return visit(c);
    frame_fn next = frame_table[bench_below(&c->rng, c->branches)];
    return next(c, depth - 1);
}

#define FRAME(name, salt)                                                      \
    static __attribute__((noinline, noclone)) uint64_t name(struct ctx *c, int depth) \
    {                                                                          \
        uint64_t r = descend(c, depth);                                        \
        bench_escape(c);                                                       \
        return r * 3 + (salt);                                                 \
    }

FRAME(frame_a, 1)
FRAME(frame_b, 2)
FRAME(frame_c, 3)
FRAME(frame_d, 4)
FRAME(frame_e, 5)
FRAME(frame_f, 6)
FRAME(frame_g, 7)
FRAME(frame_h, 8)

static const frame_fn frames[] = {frame_a, frame_b, frame_c, frame_d,
                                  frame_e, frame_f, frame_g, frame_h};

int main(int argc, char **argv)
{
    bench_init("deepchurn", USAGE, argc, argv, 3);
    long visits = bench_arg(argc, argv, 1, 1000000, 0, 1L << 40);
    long branches = bench_arg(argc, argv, 2, 4, 1, (long)(sizeof frames / sizeof frames[0]));
    long nlive = bench_arg(argc, argv, 3, 4096, 1, 100000000);

    struct ctx c = {.nlive = nlive, .branches = (unsigned)branches};
    c.live = calloc((size_t)nlive, sizeof *c.live);
    c.size = calloc((size_t)nlive, sizeof *c.size);
    if (c.live == NULL || c.size == NULL)
        bench_fail("calloc of the live set failed");
    bench_rng_seed(&c.rng, 0xdeec4u);
    frame_table = frames;

    uint64_t sum = 0;
    double t0 = bench_now();
    for (long v = 0; v < visits; v++) {
        int depth = (int)bench_range(&c.rng, MIN_DEPTH, MAX_DEPTH);
        sum = sum * 0x100000001b3ULL + frames[0](&c, depth);
    }
    double elapsed = bench_now() - t0;

    long live = 0;
    for (long k = 0; k < nlive; k++) {
        if (c.live[k] == NULL)
            continue;
        BENCH_CHECK_STAMP(c.live[k], c.size[k], "deepchurn final");
        free(c.live[k]);
        live++;
    }
    if ((uint64_t)live + c.frees != (uint64_t)visits * PER_VISIT)
        bench_fail("count mismatch: %ld live + %llu freed != %ld allocated", live,
                   (unsigned long long)c.frees, visits * PER_VISIT);
    free(c.live);
    free(c.size);
    printf("deepchurn visits=%ld branches=%ld time_s=%.3f checksum=%016llx\n", visits,
           branches, elapsed, (unsigned long long)(sum ^ c.bytes));
    return 0;
}
