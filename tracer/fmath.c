/* The three functions of the C math library the sampler needs (sampling.c),
 * written here so that the preloaded library does not bring libm into every
 * process it is loaded into: mapping libm and resolving against it cost a
 * small program about 0.4 MiB of resident memory, most of what made
 * snapmalloc's smallest footprint larger than mimalloc's.
 *
 * Only the cases the sampler uses are covered: e^x - 1 for x <= 0, the
 * natural logarithm of a normal positive number, and the rounding of a
 * non-negative number to the nearest integer (halves away from zero, as
 * llround). Both transcendental functions reduce their argument by a
 * multiple of ln 2 held in two parts (the high part has its low 32 bits
 * clear, so k * LN2_HI is exact for any exponent k here), then sum a short
 * series whose first omitted term is below 1e-19 of the result:
 * tests/unit/test_fmath.c holds them within 3 units in the last place of
 * libm's (measured: 2 for the logarithm, 1 for e^x - 1), and the sampler's
 * weights to the same integers as libm's functions give. */
#include <stdint.h>
#include <string.h>

#include "tracer/internal.h"

#define LN2_HI 0.6931467056274414         /* ln 2, its 21 leading bits */
#define LN2_LO 4.7493250390316726e-07     /* ln 2 - LN2_HI */
#define INV_LN2 1.4426950408889634        /* 1 / ln 2 */
#define SQRT2 1.4142135623730951

static uint64_t bits_of(double x) {
  uint64_t b;
  __builtin_memcpy(&b, &x, sizeof b);
  return b;
}

static double double_of(uint64_t b) {
  double x;
  __builtin_memcpy(&x, &b, sizeof x);
  return x;
}

/* 1/k for the series below, rounded once here: a division per term in a
 * dependent chain was most of the function's time (a division costs ten
 * to twenty cycles of latency, a multiplication four). */
static const double inv_k[18] = {0,         1,         1.0 / 2,  1.0 / 3,  1.0 / 4,  1.0 / 5,
                                 1.0 / 6,   1.0 / 7,   1.0 / 8,  1.0 / 9,  1.0 / 10, 1.0 / 11,
                                 1.0 / 12,  1.0 / 13,  1.0 / 14, 1.0 / 15, 1.0 / 16, 1.0 / 17};

/* e^r - 1 for |r| <= 0.5 by its Taylor series to r^17, as r + r^2 q(r)
 * with q(r) = 1/2! + r/3! + ... in Horner form, 1/2 (1 + r/3 (1 + r/4
 * (... (1 + r/17)))): the rounding errors of the sum (and of each 1/k)
 * stay in the term that is small beside r, so the result is within about
 * half a unit of r's last place. */
static double expm1_small(double r) {
  /* Terms while they can still matter: below |r| = 1/16, r^11/11! is under
   * 2^-65 of r, so the series to r^10 gives the same sum in half the
   * steps. The sampler's r is -max(s, 1)/N, below 1/16 for every block smaller
   * than a sixteenth of the rate. */
  int top = r > -0.0625 && r < 0.0625 ? 10 : 17;
  double acc = 1.0;
  for (int k = top; k >= 3; k--) acc = 1.0 + r * acc * inv_k[k];
  return r + r * r * (0.5 * acc);
}

double sm_fmath_expm1_neg(double x) {
  if (!(x < 0)) return x == 0 ? 0.0 : x; /* 0, or not a number: as given */
  if (x >= -0.5) return expm1_small(x);
  if (x < -45.0) return -1.0; /* e^x is below half a unit in the last place of 1 */
  /* x = k ln2 + r, |r| <= ln2 / 2: e^x = 2^k e^r, with -57 <= k <= 0. */
  double kd = x * INV_LN2;
  int k = (int)(kd - 0.5); /* rounds to nearest: kd < 0 */
  double r = (x - k * LN2_HI) - k * LN2_LO;
  double scale = double_of((uint64_t)(1023 + k) << 52); /* 2^k, exact */
  return scale * (1.0 + expm1_small(r)) - 1.0;
}

double sm_fmath_log(double u) {
  uint64_t b = bits_of(u);
  int e = (int)((b >> 52) & 0x7ff) - 1023;
  double m = double_of((b & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1023) << 52)); /* [1, 2) */
  if (m > SQRT2) {
    m *= 0.5;
    e++;
  }
  /* ln m = 2 atanh(t) = 2 (t + t^3/3 + t^5/5 + ...), t = (m-1)/(m+1), |t| < 0.172 */
  double t = (m - 1.0) / (m + 1.0), t2 = t * t, acc = 0.0;
  for (int k = 25; k >= 3; k -= 2) acc = t2 * (1.0 / (double)k + acc);
  /* e LN2_HI is exact; the small parts are summed before the one rounding
   * that meets it. */
  return e * LN2_HI + (2.0 * t + (2.0 * t * acc + e * LN2_LO));
}

uint64_t sm_fmath_round(double v) {
  uint64_t i = (uint64_t)v; /* v >= 0: truncation */
  if (v - (double)i >= 0.5) i++;
  return i;
}
