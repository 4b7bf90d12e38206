/* Sampling: with sample=N only a Poisson sample of the allocations is
 * traced. Each thread counts bytes down from an exponentially distributed
 * budget of mean N (sm_countdown, in tracer.h: malloc's fast path and
 * sm_track_wanted subtract), and a sampled block of s bytes stands for 1/p
 * blocks with p = 1 - exp(-max(s, 1)/N) (the estimator tcmalloc and
 * jemalloc use; a zero-byte block counts 1 byte so that it can be sampled
 * too): sm_tracer_weight (tracer/internal.h) and its sampled case here.
 *
 * The math functions are fmath.c's: the library does not link libm.
 *
 * Locks: none. The countdown and the generator's state are the thread's own. */
#include "tracer/internal.h"

bool sm_sampling;
bool sm_sampling_dense;
bool sm_gate_traces;

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

SM_NOINLINE sm_weight_t sm_tracer_weight_sampled(size_t req) {
  double s = (double)sm_stream_len(req); /* the block's length in the sampled stream */
  double p = -sm_fmath_expm1_neg(-s / (double)sm_opt.sample); /* 1 - exp(-s/N), exact for small s */
  return (sm_weight_t){sm_fmath_round((double)req / p), sm_fmath_round((double)SM_FP_ONE / p)};
}

/* req's block spent the thread's countdown (sm_countdown: malloc's fast
 * path, or sm_track_wanted). One no draw was made for yet (a new thread's
 * or heap's, or any after a start: at or below SM_GATE_SHUT / 2) lands
 * here on its first allocation: draw first, then decide, so that starts
 * are not over-sampled. Otherwise this block holds a sample point; by
 * memorylessness the distance to the next one is a fresh draw. False: the
 * block is not sampled after all. The stores are atomic only because a
 * start may store into a heap's gate at the same moment (what it stores
 * only sends the thread here again). */
SM_NOINLINE bool sm_sample_point(size_t req) {
  int64_t *left = sm_countdown();
  int64_t r = sm_stream_len(req);
  bool fresh = __atomic_load_n(left, __ATOMIC_RELAXED) <= SM_GATE_SHUT / 2;
  int64_t v = next_budget();
  bool sampled = !fresh || (v -= r) <= 0;
  while (v <= 0) v += next_budget();
  __atomic_store_n(left, v, __ATOMIC_RELAXED);
  return sampled;
}
