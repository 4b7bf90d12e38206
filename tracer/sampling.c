/* Sampling: with sample=N only a Poisson sample of the allocations is
 * traced. Each thread counts bytes down from an exponentially distributed
 * budget of mean N (sm_track_wanted, inline in tracer.h), and a sampled
 * block of s bytes stands for 1/p blocks with p = 1 - exp(-(s+1)/N) (the
 * estimator tcmalloc and jemalloc use; s+1 lets a zero-byte block be
 * sampled): sm_tracer_weight (tracer/internal.h) and its sampled case here.
 *
 * The math functions are fmath.c's: the library does not link libm.
 *
 * Locks: none. The budget and the generator's state are the thread's own. */
#include "tracer/internal.h"

bool sm_sampling;

static uint64_t rng_next(void) {
  if (!sm_ts.rng) sm_ts.rng = (sm_os_tid() * 0x9E3779B97F4A7C15ull) ^ sm_os_now_ms() ^ 0x5DEECE66Dull;
  uint64_t x = sm_ts.rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return sm_ts.rng = x;
}

/* Bytes until the next sample: exponential with mean sm_opt.sample. */
static int64_t next_budget(void) {
  double u = ((double)(rng_next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); /* (0, 1) */
  double b = -sm_fmath_log(u) * (double)sm_opt.sample;
  return b < 1 ? 1 : (int64_t)b;
}

/* sm_track_wanted() took req from the thread's sampling budget and found it
 * spent. A new thread starts at 0 and lands here on its first allocation:
 * draw its first budget before deciding, so thread starts are not
 * over-sampled. Otherwise this block holds a sample point; by
 * memorylessness the distance to the next one is a fresh draw. False: the
 * block is not sampled after all. */
SM_NOINLINE sm_weight_t sm_tracer_weight_sampled(size_t req) {
  double s = (double)req + 1; /* the block's length in the sampled stream (sm_track_wanted) */
  double p = -sm_fmath_expm1_neg(-s / (double)sm_opt.sample); /* 1 - exp(-s/N), exact for small s */
  return (sm_weight_t){sm_fmath_round((double)req / p), sm_fmath_round((double)SM_FP_ONE / p)};
}

SM_NOINLINE bool sm_sample_point(size_t req) {
  int64_t r = (int64_t)req + 1;
  bool fresh = sm_sample_left == -r;
  sm_sample_left = next_budget();
  if (fresh && (sm_sample_left -= r) > 0) return false;
  while (sm_sample_left <= 0) sm_sample_left += next_budget();
  return true;
}
