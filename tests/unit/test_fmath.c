/* tracer/fmath.c against the C library's libm: the logarithm and e^x - 1
 * within a few units in the last place over their whole ranges of use, the
 * rounding exactly as llround, and the sampler's weights (sampling.c) the
 * same integers as libm's functions give, for 800,000 sizes and rates. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "tests/testhelper.h"
#include "tracer/internal.h"

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* |got - want| in units of want's last place */
static double ulps(double got, double want) {
  if (got == want) return 0;
  return fabs(got - want) / (nextafter(fabs(want), INFINITY) - fabs(want));
}

int main(void) {
  double worst_log = 0, worst_exp = 0, at_log = 0, at_exp = 0;
  /* ln u: the sampler's draws, (0, 1) in steps of 2^-53, and beyond */
  for (int i = 0; i < 2000000; i++) {
    double u = i % 2 ? ((double)(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0)
                     : ldexp(1.0 + (double)(next() >> 12) / 4503599627370496.0, (int)(next() % 400) - 200);
    double e = ulps(sm_fmath_log(u), log(u));
    if (e > worst_log) worst_log = e, at_log = u;
  }
  double edges[] = {1.0, 0.5, 2.0, 1.4142135623730951, 0.7071067811865476, 0.9999999999999999, 1.0000000000000002,
                    1.1102230246251565e-16, 0.75};
  for (unsigned i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    double e = ulps(sm_fmath_log(edges[i]), log(edges[i]));
    if (e > worst_log) worst_log = e, at_log = edges[i];
  }
  CHECK_MSG(worst_log <= 3, "ln: %.1f units in the last place off libm's at %.17g (%.17g against %.17g)", worst_log,
            at_log, sm_fmath_log(at_log), log(at_log));
  /* e^x - 1, x <= 0: from -1e-300 to -800, log-uniform, and the seams */
  for (int i = 0; i < 2000000; i++) {
    double x = -exp((double)(next() >> 11) / 9007199254740992.0 * 697.0 - 690.0);
    double e = ulps(sm_fmath_expm1_neg(x), expm1(x));
    if (e > worst_exp) worst_exp = e, at_exp = x;
  }
  double seams[] = {0.0, -0.5, -0.49999999999999994, -0.5000000000000001, -0.34657359027997264, -45.0, -45.000000000000007,
                    -1.0, -0.6931471805599453, -38.0, -1e-20};
  for (unsigned i = 0; i < sizeof seams / sizeof seams[0]; i++) {
    double e = ulps(sm_fmath_expm1_neg(seams[i]), expm1(seams[i]));
    if (e > worst_exp) worst_exp = e, at_exp = seams[i];
  }
  CHECK_MSG(worst_exp <= 2, "e^x - 1: %.1f units in the last place off libm's at %.17g (%.17g against %.17g)",
            worst_exp, at_exp, sm_fmath_expm1_neg(at_exp), expm1(at_exp));
  printf("largest difference from libm: ln %.2f ulp (at %.17g), e^x - 1 %.2f ulp (at %.17g)\n", worst_log, at_log,
         worst_exp, at_exp);
  /* rounding: halves, integers, and values around them */
  double vals[] = {0.0, 0.5, 1.5, 2.5, 0.49999999999999994, 1e15 + 0.5, 4503599627370495.5, 9007199254740993.0, 7.0,
                   123456.49999999999};
  for (unsigned i = 0; i < sizeof vals / sizeof vals[0]; i++)
    CHECK_MSG(sm_fmath_round(vals[i]) == (uint64_t)llround(vals[i]), "round(%.17g) = %llu, llround %lld", vals[i],
              (unsigned long long)sm_fmath_round(vals[i]), llround(vals[i]));
  for (int i = 0; i < 1000000; i++) {
    double v = (double)(next() >> 20) / (double)(1u << (next() % 30));
    if (sm_fmath_round(v) != (uint64_t)llround(v)) {
      CHECK_MSG(0, "round(%.17g) = %llu, llround %lld", v, (unsigned long long)sm_fmath_round(v), llround(v));
      break;
    }
  }
  /* the sampler's weights: 1/p blocks of req/p bytes, p = 1 - e^(-(req+1)/N) */
  long differ = 0, n = 0;
  size_t rates[] = {1, 7, 4096, 65536, 524288, 1048576, 16777216, (size_t)1 << 40};
  for (unsigned r = 0; r < sizeof rates / sizeof rates[0]; r++) {
    for (int i = 0; i < 100000; i++, n++) {
      size_t req = i < 5000 ? (size_t)i : (size_t)(next() >> (20 + next() % 44));
      double s = (double)req + 1;
      double p_libm = -expm1(-s / (double)rates[r]), p_ours = -sm_fmath_expm1_neg(-s / (double)rates[r]);
      if ((uint64_t)llround((double)req / p_libm) != sm_fmath_round((double)req / p_ours) ||
          (uint64_t)llround(65536.0 / p_libm) != sm_fmath_round(65536.0 / p_ours))
        differ++;
    }
  }
  printf("sampled weights: %ld of %ld differ from libm's\n", differ, n);
  CHECK_MSG(differ == 0, "%ld of %ld sampled weights differ from libm's", differ, n);
  return test_summary();
}
