/* The trace table (tracer/table.c) driven directly: enough stacks that the
 * table grows many times, and stacks that all share one hash (one long
 * probe chain). Every stack must come back as the same trace, with its
 * frames, its truncation flag and an id of its own that leads back to it;
 * two stacks must never share a trace. */
#include <string.h>

#include "tests/testhelper.h"
#include "tracer/internal.h"

#define SPREAD 200000 /* stacks with their own hashes */
#define CHAIN 3000    /* stacks all given the hash 42 */

static sm_trace_t *spread[SPREAD], *chain[CHAIN];

/* Stack k of a family: 1 to 4 frames, none in any loaded object. */
static unsigned stack_of(unsigned family, unsigned k, uintptr_t *ips) {
  unsigned n = 1 + k % 4;
  for (unsigned i = 0; i < n; i++) ips[i] = ((uintptr_t)family << 40) + ((uintptr_t)k << 8) + i * 16 + 8;
  return n;
}

static sm_trace_t *intern(unsigned family, unsigned k, bool same_hash) {
  uintptr_t ips[4];
  unsigned n = stack_of(family, k, ips);
  uint32_t gen = __atomic_load_n(&sm_unwind_gen, __ATOMIC_ACQUIRE);
  sm_trace_t *t = sm_trace_intern(ips, n, k % 5 == 0, gen, same_hash ? 42 : sm_stack_hash(ips, n));
  CHECK_MSG(t != NULL, "stack %u of family %u: no trace", k, family);
  CHECK_MSG(t->nframes == n && memcmp(t->frames, ips, n * sizeof *ips) == 0,
            "stack %u of family %u: the trace holds other frames", k, family);
  CHECK_MSG((bool)(t->flags & SM_SNAP_TRUNCATED) == (k % 5 == 0), "stack %u: truncation flag lost", k);
  CHECK_MSG(sm_trace_by_id(t->id) == t, "stack %u: id %u leads elsewhere", k, t->id);
  return t;
}

int main(void) {
  sm_init();
  sm_heap_key_init();
  sm_tracer_init();
  for (unsigned k = 0; k < SPREAD; k++) spread[k] = intern(1, k, false);
  for (unsigned k = 0; k < CHAIN; k++) chain[k] = intern(2, k, true);
  /* Again, in another order: the same traces. */
  for (unsigned k = CHAIN; k-- > 0;) CHECK_MSG(intern(2, k, true) == chain[k], "chained stack %u: a second trace", k);
  for (unsigned k = SPREAD; k-- > 0;) CHECK_MSG(intern(1, k, false) == spread[k], "stack %u: a second trace", k);
  /* Ids are handed out in order, one per stack. */
  for (unsigned k = 1; k < SPREAD; k++) CHECK_MSG(spread[k]->id == spread[k - 1]->id + 1, "stack %u: id skipped", k);
  for (unsigned k = 1; k < CHAIN; k++) CHECK_MSG(chain[k]->id == chain[k - 1]->id + 1, "chained stack %u: id skipped", k);
  CHECK(chain[0]->id == spread[SPREAD - 1]->id + 1);
  printf("test_traces: %u stacks, %u of them on one hash: each found again as its own trace\n", SPREAD + CHAIN, CHAIN);
  return 0;
}
