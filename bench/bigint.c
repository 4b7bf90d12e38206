/* bigint: single-threaded churn of small multi-precision numbers (the
 * pattern of cfrac, a factoring program whose every arithmetic operation
 * returns a newly allocated number).
 *
 * Each iteration walks one row of Pascal's triangle with exact big-integer
 * arithmetic: C(n, k+1) = C(n, k) * (n - k) / (k + 1), adding every term to
 * a running sum.  Every operation allocates its result and the operands it
 * replaces are freed at once, so the heap sees a stream of 8-28 byte
 * objects (rows up to n = 128 by default) of a handful of sizes, freed
 * almost in LIFO order.  One term in
 * 16 is copied into a table of kept numbers, replacing a random older one,
 * so short-lived numbers are always allocated among long-lived ones.
 *
 * The results check themselves: the row must sum to exactly 2^n, and a kept
 * number must still have its residue modulo 2^61 - 1 when it is evicted.
 */
#include "common.h"

#define USAGE "[iterations=400000] [max_n=128] [kept_slots=4096]"

#define MERSENNE61 ((1ULL << 61) - 1)

/* Little-endian 32-bit digits; len >= 1 and the top digit is non-zero
 * unless the number is 0. */
struct num {
    uint32_t len;
    uint32_t d[];
};

static struct num *num_new(uint32_t len)
{
    struct num *x = bench_xmalloc(sizeof *x + (size_t)len * sizeof x->d[0]);
    x->len = len;
    return x;
}

static struct num *num_trim(struct num *x)
{
    while (x->len > 1 && x->d[x->len - 1] == 0)
        x->len--;
    return x;
}

static struct num *num_from(uint32_t v)
{
    struct num *x = num_new(1);
    x->d[0] = v;
    return x;
}

static struct num *num_copy(const struct num *a)
{
    struct num *x = num_new(a->len);
    memcpy(x->d, a->d, (size_t)a->len * sizeof a->d[0]);
    return x;
}

static struct num *num_mul_small(const struct num *a, uint32_t m)
{
    struct num *x = num_new(a->len + 1);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        uint64_t t = (uint64_t)a->d[i] * m + carry;
        x->d[i] = (uint32_t)t;
        carry = t >> 32;
    }
    x->d[a->len] = (uint32_t)carry;
    return num_trim(x);
}

/* a / m; the remainder must be 0 here (binomials divide exactly). */
static struct num *num_div_exact(const struct num *a, uint32_t m)
{
    struct num *x = num_new(a->len);
    uint64_t rem = 0;
    for (uint32_t i = a->len; i-- > 0;) {
        uint64_t t = (rem << 32) | a->d[i];
        x->d[i] = (uint32_t)(t / m);
        rem = t % m;
    }
    if (rem != 0)
        bench_fail("a binomial coefficient did not divide by %u", m);
    return num_trim(x);
}

static struct num *num_add(const struct num *a, const struct num *b)
{
    if (a->len < b->len) {
        const struct num *t = a;
        a = b;
        b = t;
    }
    struct num *x = num_new(a->len + 1);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        carry += (uint64_t)a->d[i] + (i < b->len ? b->d[i] : 0);
        x->d[i] = (uint32_t)carry;
        carry >>= 32;
    }
    x->d[a->len] = (uint32_t)carry;
    return num_trim(x);
}

/* x mod 2^61 - 1, by Horner's rule in base 2^32. */
static uint64_t num_residue(const struct num *x)
{
    uint64_t r = 0;
    for (uint32_t i = x->len; i-- > 0;) {
        bench_u128 t = ((bench_u128)r << 32) | x->d[i];
        uint64_t lo = (uint64_t)t & MERSENNE61, hi = (uint64_t)(t >> 61);
        r = lo + hi;
        if (r >= MERSENNE61)
            r -= MERSENNE61;
    }
    return r;
}

static int num_is_pow2(const struct num *x, uint32_t n)
{
    if (x->len != n / 32 + 1 || x->d[n / 32] != 1u << (n % 32))
        return 0;
    for (uint32_t i = 0; i < n / 32; i++)
        if (x->d[i] != 0)
            return 0;
    return 1;
}

struct kept {
    struct num *x;
    uint64_t residue;
};

static void keep_number(struct kept *table, long nkept, bench_rng *r, const struct num *c)
{
    struct kept *k = &table[bench_below(r, (uint64_t)nkept)];
    if (k->x != NULL) {
        if (num_residue(k->x) != k->residue)
            bench_fail("a kept number at %p was corrupted", (void *)k->x);
        free(k->x);
    }
    k->x = num_copy(c);
    k->residue = num_residue(c);
}

/* One row of Pascal's triangle: returns the residue of its middle term. */
static uint64_t pascal_row(uint32_t n, struct kept *table, long nkept, bench_rng *r)
{
    struct num *c = num_from(1), *sum = num_from(1);
    uint64_t middle = 1;
    for (uint32_t k = 0; k < n; k++) {
        struct num *t = num_mul_small(c, n - k);
        free(c);
        c = num_div_exact(t, k + 1);
        free(t);
        struct num *s = num_add(sum, c);
        free(sum);
        sum = s;
        if (k + 1 == n / 2)
            middle = num_residue(c);
        if (bench_below(r, 16) == 0)
            keep_number(table, nkept, r, c);
    }
    if (!num_is_pow2(sum, n))
        bench_fail("row %u of Pascal's triangle does not sum to 2^%u", n, n);
    free(c);
    free(sum);
    return middle;
}

int main(int argc, char **argv)
{
    bench_init("bigint", USAGE, argc, argv, 3);
    long iters = bench_arg(argc, argv, 1, 400000, 1, 1L << 40);
    long max_n = bench_arg(argc, argv, 2, 128, 2, 100000);
    long nkept = bench_arg(argc, argv, 3, 4096, 1, 100000000);

    struct kept *table = calloc((size_t)nkept, sizeof *table);
    if (table == NULL)
        bench_fail("calloc of the kept table failed");
    bench_rng rng;
    bench_rng_seed(&rng, 0xcf4ac7ULL);

    uint64_t sum = 0;
    double t0 = bench_now();
    for (long i = 0; i < iters; i++) {
        uint32_t n = (uint32_t)bench_range(&rng, 2, (size_t)max_n);
        sum = sum * 0x100000001b3ULL + pascal_row(n, table, nkept, &rng);
    }
    double elapsed = bench_now() - t0;

    for (long i = 0; i < nkept; i++) {
        if (table[i].x == NULL)
            continue;
        if (num_residue(table[i].x) != table[i].residue)
            bench_fail("a kept number at %p was corrupted", (void *)table[i].x);
        sum ^= table[i].residue;
        free(table[i].x);
    }
    free(table);
    printf("bigint iterations=%ld time_s=%.3f checksum=%016llx\n", iters, elapsed,
           (unsigned long long)sum);
    return 0;
}
