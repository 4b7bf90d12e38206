/* sets: single-threaded churn of small set objects (the pattern of
 * espresso, the logic minimiser, which spends its life building, combining
 * and discarding covers: growable lists of fixed-size bit-vector "cubes").
 *
 * A cube over V boolean variables uses 2 bits per variable (01: the
 * variable is 0, 10: it is 1, 11: either) plus a check word, so all cubes of
 * one problem have one size, and problems of 12-128 variables give cubes
 * of 16, 24 or 40 bytes.  Each iteration, one "problem":
 *   - builds two random covers F and G (3-12 cubes of 2-6 literals), their pointer
 *     arrays grown with realloc as cubes are added;
 *   - intersects them: one new cube for every pair that intersects;
 *   - removes every cube of the product that a near neighbour in it
 *     contains, freeing the removed cubes in the scattered order in which
 *     they are found;
 *   - cofactors the rest against a random literal (copies again);
 *   - keeps the cofactor in a table of long-lived covers, freeing the cover
 *     it replaces, and frees F, G and the product.
 * Every cube's check word is verified when it is freed, and the sizes of
 * the results are folded into the checksum.
 */
#include "common.h"

#define USAGE "[iterations=150000] [kept_covers=64]"

struct cover {
    unsigned words; /* 64-bit words of a cube, without its check word */
    unsigned n, cap;
    uint64_t **cube;
};

static uint64_t cube_check(const uint64_t *c, unsigned words)
{
    uint64_t h = 0x243f6a8885a308d3ULL;
    for (unsigned i = 0; i < words; i++)
        h = (h ^ c[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t *cube_new(unsigned words)
{
    return bench_xmalloc(sizeof(uint64_t) * (words + 1));
}

static void cube_seal(uint64_t *c, unsigned words)
{
    c[words] = cube_check(c, words);
}

static void cube_free(uint64_t *c, unsigned words)
{
    if (c[words] != cube_check(c, words))
        bench_fail("cube %p of %u words was corrupted", (void *)c, words);
    free(c);
}

static void cover_init(struct cover *f, unsigned words)
{
    f->words = words;
    f->n = f->cap = 0;
    f->cube = NULL;
}

static void cover_add(struct cover *f, uint64_t *c)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 4;
        uint64_t **grown = realloc(f->cube, sizeof *grown * f->cap);
        if (grown == NULL)
            bench_fail("realloc of a cover to %u cubes failed", f->cap);
        f->cube = grown;
    }
    f->cube[f->n++] = c;
}

static void cover_free(struct cover *f)
{
    for (unsigned i = 0; i < f->n; i++)
        cube_free(f->cube[i], f->words);
    free(f->cube);
    f->n = f->cap = 0;
    f->cube = NULL;
}

/* Mask of the variable bits in word w of a cube over `vars` variables. */
static uint64_t var_mask(unsigned vars, unsigned w)
{
    unsigned in_word = vars - 32 * w;
    return in_word >= 32 ? ~0ULL : (1ULL << (2 * in_word)) - 1;
}

/* Random cubes with 2-6 literals each, so that products of cubes over
 * many variables still tend to be non-empty, as in real covers. */
static void random_cover(struct cover *f, unsigned vars, bench_rng *r)
{
    unsigned n = (unsigned)bench_range(r, 3, 12);
    for (unsigned k = 0; k < n; k++) {
        uint64_t *c = cube_new(f->words);
        for (unsigned w = 0; w < f->words; w++)
            c[w] = var_mask(vars, w);
        unsigned literals = (unsigned)bench_range(r, 2, 6);
        for (unsigned l = 0; l < literals; l++) {
            unsigned v = (unsigned)bench_below(r, vars);
            unsigned shift = 2 * (v % 32);
            c[v / 32] &= ~(3ULL << shift);
            c[v / 32] |= (bench_rand(r) & 1 ? 2ULL : 1ULL) << shift;
        }
        cube_seal(c, f->words);
        cover_add(f, c);
    }
}

/* A cube is empty when some variable has neither value (00). */
static int cube_empty(const uint64_t *c, unsigned vars, unsigned words)
{
    for (unsigned w = 0; w < words; w++) {
        uint64_t x = c[w] | (c[w] >> 1);
        if ((~x & 0x5555555555555555ULL & var_mask(vars, w)) != 0)
            return 1;
    }
    return 0;
}

static void intersect(struct cover *h, const struct cover *f, const struct cover *g,
                      unsigned vars)
{
    uint64_t tmp[8];
    for (unsigned i = 0; i < f->n; i++) {
        for (unsigned j = 0; j < g->n; j++) {
            for (unsigned w = 0; w < h->words; w++)
                tmp[w] = f->cube[i][w] & g->cube[j][w];
            if (cube_empty(tmp, vars, h->words))
                continue;
            uint64_t *c = cube_new(h->words);
            memcpy(c, tmp, sizeof(uint64_t) * h->words);
            cube_seal(c, h->words);
            cover_add(h, c);
        }
    }
}

static int contains(const uint64_t *big, const uint64_t *small, unsigned words)
{
    for (unsigned w = 0; w < words; w++)
        if ((small[w] & ~big[w]) != 0)
            return 0;
    return 1;
}

/* Drop every cube contained in one of its WINDOW neighbours on either
 * side (of two equal cubes, the later one goes); a full pairwise check
 * would make this a benchmark of the check rather than of the heap.
 * Returns how many were dropped. */
#define WINDOW 6
static unsigned drop_contained(struct cover *h)
{
    unsigned kept = 0, dropped = 0;
    for (unsigned i = 0; i < h->n; i++) {
        uint64_t *c = h->cube[i];
        int inside = 0;
        unsigned lo = i > WINDOW ? i - WINDOW : 0, hi = i + WINDOW + 1;
        for (unsigned j = lo; j < hi && j < h->n && !inside; j++) {
            uint64_t *d = h->cube[j];
            if (j == i || d == NULL || !contains(d, c, h->words))
                continue;
            inside = !contains(c, d, h->words) || j < i;
        }
        if (inside) {
            cube_free(c, h->words);
            h->cube[i] = NULL;
            dropped++;
        }
    }
    for (unsigned i = 0; i < h->n; i++)
        if (h->cube[i] != NULL)
            h->cube[kept++] = h->cube[i];
    h->n = kept;
    return dropped;
}

/* The cubes of h that allow variable `var` to have `value`, with that
 * variable made free (11). */
static void cofactor(struct cover *out, const struct cover *h, unsigned var, unsigned value)
{
    unsigned w = var / 32, shift = 2 * (var % 32);
    uint64_t bit = (uint64_t)(value ? 2 : 1) << shift;
    for (unsigned i = 0; i < h->n; i++) {
        if ((h->cube[i][w] & bit) == 0)
            continue;
        uint64_t *c = cube_new(h->words);
        memcpy(c, h->cube[i], sizeof(uint64_t) * h->words);
        c[w] |= 3ULL << shift;
        cube_seal(c, h->words);
        cover_add(out, c);
    }
}

static uint64_t one_problem(struct cover *keep, long nkeep, bench_rng *r)
{
    static const unsigned var_choices[] = {12, 24, 40, 64, 100, 128};
    unsigned vars = var_choices[bench_below(r, 6)];
    unsigned words = (vars + 31) / 32;
    struct cover f, g, h, co;
    cover_init(&f, words);
    cover_init(&g, words);
    cover_init(&h, words);
    cover_init(&co, words);
    random_cover(&f, vars, r);
    random_cover(&g, vars, r);
    intersect(&h, &f, &g, vars);
    unsigned product = h.n;
    unsigned dropped = drop_contained(&h);
    cofactor(&co, &h, (unsigned)bench_below(r, vars), (unsigned)bench_below(r, 2));
    uint64_t result = ((uint64_t)product << 40) ^ ((uint64_t)dropped << 20) ^ co.n;

    struct cover *slot = &keep[bench_below(r, (uint64_t)nkeep)];
    cover_free(slot);
    *slot = co;
    cover_free(&f);
    cover_free(&g);
    cover_free(&h);
    return result;
}

int main(int argc, char **argv)
{
    bench_init("sets", USAGE, argc, argv, 2);
    long iters = bench_arg(argc, argv, 1, 150000, 1, 1L << 40);
    long nkeep = bench_arg(argc, argv, 2, 64, 1, 10000000);

    struct cover *keep = bench_xmalloc(sizeof *keep * (size_t)nkeep);
    for (long i = 0; i < nkeep; i++)
        cover_init(&keep[i], 1);
    bench_rng rng;
    bench_rng_seed(&rng, 0xe5e55011ULL);

    uint64_t sum = 0;
    double t0 = bench_now();
    for (long i = 0; i < iters; i++)
        sum = sum * 0x9e3779b97f4a7c15ULL + one_problem(keep, nkeep, &rng);
    double elapsed = bench_now() - t0;

    for (long i = 0; i < nkeep; i++) {
        sum += keep[i].n;
        cover_free(&keep[i]);
    }
    free(keep);
    printf("sets iterations=%ld time_s=%.3f checksum=%016llx\n", iters, elapsed,
           (unsigned long long)sum);
    return 0;
}
