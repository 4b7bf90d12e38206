/* churn: single-threaded small-object churn in the pattern of the classic
 * cfrac and espresso allocation traces.
 *
 * Like cfrac, the program does arbitrary-precision arithmetic in which
 * every operation returns a freshly allocated number and the operands die
 * soon after; like espresso, it builds small linked structures (lists of
 * variable-size "cubes") and tears them down again.  Nearly every object is
 * 8-128 bytes and short-lived; about one result in 64 is kept in a
 * long-lived table where it stays until a later result replaces it, so the
 * heap always holds a background of older objects between the new ones.
 *
 * Results are verified: every product/sum is checked against arithmetic
 * modulo a prime done on machine words, every kept number is re-checked
 * when it is evicted, and every list is checksummed on build and teardown.
 */
#include "common.h"

#define USAGE "[iterations=1500000] [long_lived_slots=20000]"

#define PRIME 0x7fffffffu /* 2^31 - 1, so reduction needs no division */

/* A little-endian bignum of 32-bit digits: 4-byte header + digits. */
struct bn {
    uint32_t len;
    uint32_t d[];
};

static struct bn *bn_alloc(uint32_t len)
{
    struct bn *x = bench_xmalloc(sizeof *x + sizeof x->d[0] * len);
    x->len = len;
    return x;
}

static void bn_trim(struct bn *x)
{
    while (x->len > 1 && x->d[x->len - 1] == 0)
        x->len--;
}

static struct bn *bn_random(bench_rng *r, uint32_t len)
{
    struct bn *x = bn_alloc(len);
    for (uint32_t i = 0; i < len; i++)
        x->d[i] = (uint32_t)bench_rand(r);
    if (x->d[len - 1] == 0)
        x->d[len - 1] = 1;
    return x;
}

static struct bn *bn_mul(const struct bn *a, const struct bn *b)
{
    struct bn *c = bn_alloc(a->len + b->len);
    memset(c->d, 0, sizeof c->d[0] * c->len);
    for (uint32_t i = 0; i < a->len; i++) {
        uint64_t carry = 0;
        for (uint32_t j = 0; j < b->len; j++) {
            uint64_t t = (uint64_t)a->d[i] * b->d[j] + c->d[i + j] + carry;
            c->d[i + j] = (uint32_t)t;
            carry = t >> 32;
        }
        c->d[i + b->len] = (uint32_t)carry;
    }
    bn_trim(c);
    return c;
}

static struct bn *bn_add(const struct bn *a, const struct bn *b)
{
    if (a->len < b->len) {
        const struct bn *t = a;
        a = b;
        b = t;
    }
    struct bn *c = bn_alloc(a->len + 1);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        uint64_t t = (uint64_t)a->d[i] + (i < b->len ? b->d[i] : 0) + carry;
        c->d[i] = (uint32_t)t;
        carry = t >> 32;
    }
    c->d[a->len] = (uint32_t)carry;
    bn_trim(c);
    return c;
}

static uint64_t bn_mod(const struct bn *x)
{
    /* Horner's rule base 2^32; 2^31 == 1 (mod PRIME), so 2^32 == 2. */
    uint64_t r = 0;
    for (uint32_t i = x->len; i-- > 0;) {
        uint64_t t = 2 * r + (x->d[i] >> 31) + (x->d[i] & PRIME);
        t = (t & PRIME) + (t >> 31);
        r = t >= PRIME ? t - PRIME : t;
    }
    return r;
}

/* An espresso-like "cube": a list node with a variable-size payload. */
struct cube {
    struct cube *next;
    uint32_t n;
    unsigned char bits[];
};

static uint64_t build_and_free_list(bench_rng *r)
{
    unsigned k = (unsigned)bench_range(r, 2, 40);
    struct cube *head = NULL;
    uint64_t sum_in = 0, sum_out = 0;
    for (unsigned i = 0; i < k; i++) {
        uint32_t n = (uint32_t)bench_range(r, 4, 112); /* node 16..128 B */
        struct cube *c = bench_xmalloc(sizeof *c + n);
        c->n = n;
        unsigned char v = (unsigned char)bench_rand(r);
        memset(c->bits, v, n);
        sum_in += (uint64_t)v * 131 + n;
        c->next = head;
        head = c;
    }
    /* "Minimise the cover": walk the list, dropping every other cube, then
     * free the rest, checking each payload as it goes. */
    unsigned idx = 0;
    for (struct cube **pp = &head; *pp != NULL; idx++) {
        struct cube *c = *pp;
        unsigned char v = c->bits[0];
        if (c->bits[c->n - 1] != v || c->bits[c->n / 2] != v)
            bench_fail("cube %p payload corrupted", (void *)c);
        sum_out += (uint64_t)v * 131 + c->n;
        if (idx % 2 == 0) {
            *pp = c->next;
            free(c);
        } else {
            pp = &c->next;
        }
    }
    while (head != NULL) {
        struct cube *c = head;
        head = c->next;
        free(c);
    }
    if (sum_in != sum_out)
        bench_fail("list checksum mismatch");
    return sum_in;
}

struct kept {
    struct bn *x;
    uint64_t mod;
};

int main(int argc, char **argv)
{
    bench_init("churn", USAGE, argc, argv, 2);
    long iters = bench_arg(argc, argv, 1, 1500000, 1, 1L << 40);
    long nkeep = bench_arg(argc, argv, 2, 20000, 1, 100000000);

    struct kept *keep = calloc((size_t)nkeep, sizeof *keep);
    if (keep == NULL)
        bench_fail("calloc failed");
    bench_rng rng;
    bench_rng_seed(&rng, 0xcf7ac);

    uint64_t check = 0;
    double t0 = bench_now();
    for (long it = 0; it < iters; it++) {
        uint32_t la = (uint32_t)bench_range(&rng, 1, 10);
        uint32_t lb = (uint32_t)bench_range(&rng, 1, 10);
        struct bn *a = bn_random(&rng, la);
        struct bn *b = bn_random(&rng, lb);
        uint64_t ma = bn_mod(a), mb = bn_mod(b);

        struct bn *c = bn_mul(a, b);          /* up to 20 digits: 84 B */
        struct bn *d = bn_add(c, a);
        struct bn *e = bn_add(d, b);
        free(c);
        struct bn *f = bn_mul(a, a);
        free(a);
        struct bn *g = bn_add(f, e);
        free(f);
        free(d);
        free(b);

        /* g = a*b + a + b + a*a */
        uint64_t expect = (ma * mb % PRIME + ma + mb + ma * ma % PRIME) % PRIME;
        if (bn_mod(e) != (ma * mb % PRIME + ma + mb) % PRIME || bn_mod(g) != expect)
            bench_fail("bignum arithmetic gave a wrong result at iteration %ld", it);
        free(e);

        if ((it & 63) == 0) {
            long slot = (long)bench_below(&rng, (uint64_t)nkeep);
            if (keep[slot].x != NULL) {
                if (bn_mod(keep[slot].x) != keep[slot].mod)
                    bench_fail("long-lived number in slot %ld was corrupted", slot);
                free(keep[slot].x);
            }
            keep[slot].x = g;
            keep[slot].mod = expect;
        } else {
            free(g);
        }

        check += build_and_free_list(&rng);
    }
    double elapsed = bench_now() - t0;

    long live = 0;
    for (long i = 0; i < nkeep; i++) {
        if (keep[i].x == NULL)
            continue;
        if (bn_mod(keep[i].x) != keep[i].mod)
            bench_fail("long-lived number in slot %ld was corrupted", i);
        free(keep[i].x);
        live++;
    }
    free(keep);

    printf("churn iterations=%ld kept_at_end=%ld time_s=%.3f checksum=%llx\n",
           iters, live, elapsed, (unsigned long long)(check & 0xffffffffu));
    return 0;
}
