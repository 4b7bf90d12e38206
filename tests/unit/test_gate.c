/* The heaps' gates (allocator/internal.h, "The gate"; heap.c): what
 * malloc's fast path tests instead of the tracer's flag. A new heap starts
 * open, or shut once sm_heaps_gates_shut ran; a shut reaches every
 * registered heap, and is not undone by an owner subtracting from its
 * gate at the same moment (the owner's subtraction is not atomic: the
 * shut checks again once every thread's stores are visible); a zero-byte
 * request never takes the fast path, so each request there counts at least
 * one byte. */
#include <pthread.h>
#include <stdatomic.h>

#include "allocator/internal.h"
#include "tests/testhelper.h"

static sm_heap_t *_Atomic worker_heap;
static atomic_bool stop;
static _Atomic unsigned long spends;

/* Takes a heap, then subtracts from its gate as fast as it can, as
 * malloc's fast path does, until told to stop. */
static void *spender(void *arg) {
  (void)arg;
  void *p = sm_malloc(32); /* checked by main: the heap is not empty (no CHECK here: its counts are not atomic) */
  sm_heap_t *h = sm_heap_tls;
  atomic_store(&worker_heap, h);
  unsigned long n = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int i = 0; i < 64; i++) (void)sm_heap_gate_spend(h, 16);
    n += 64;
  }
  atomic_store(&spends, n);
  sm_free(p);
  return NULL;
}

/* A new thread's heap, and its gate (0 if it got none). */
static void *gate_of_new(void *arg) {
  void *p = sm_malloc(48);
  *(int64_t *)arg = p ? __atomic_load_n(&sm_heap_tls->gate, __ATOMIC_RELAXED) : 0;
  sm_free(p);
  return NULL;
}

static int64_t new_thread_gate(void) {
  int64_t g = 0;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, gate_of_new, &g) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  return g;
}

int main(void) {
  sm_init();
  void *a = sm_malloc(16);
  CHECK(a != NULL);
  sm_heap_t *me = sm_heap_tls;
  CHECK(me != &sm_heap_empty);
  CHECK_MSG(me->gate >= SM_GATE_OPEN_MIN, "a new heap's gate: %lld, not open", (long long)me->gate);

  /* malloc(0) never takes the fast path: its direct entry has no page. */
  sm_page_t *pg;
  CHECK(sm_malloc_fast(me, 0, &pg) == NULL);
  void *z = sm_malloc(0);
  CHECK(z != NULL && sm_usable_size(z) >= 16);
  CHECK(me->direct[0] == &sm_page_empty);
  CHECK_MSG(sm_heap_check(me) == 0, "direct table entry %zu is wrong", sm_heap_check(me));
  void *b = sm_malloc_fast(me, 1, &pg); /* sizes 1-8 share the 16-byte class's page */
  CHECK(b != NULL);

  /* Spending: the subtraction reports a spent gate at 0 and below. */
  int64_t saved = me->gate;
  me->gate = 100;
  CHECK(!sm_heap_gate_spend(me, 99));
  CHECK(sm_heap_gate_spend(me, 1));
  CHECK(me->gate == 0);
  me->gate = saved;

  /* Shut: this heap, and a new thread's; open again: new heaps only. */
  sm_heaps_gates_shut();
  CHECK(me->gate == SM_GATE_SHUT);
  CHECK_MSG(new_thread_gate() == SM_GATE_SHUT, "a heap made after the shut is not shut");
  sm_heaps_gates_open();
  CHECK(me->gate == SM_GATE_SHUT); /* opened by malloc when it finds it spent, not here */
  CHECK_MSG(new_thread_gate() >= SM_GATE_OPEN_MIN, "a heap made after the opening is not open");

  /* A shut against an owner subtracting all the while: each round opens
   * the owner's gate (as malloc does when tracing is off), shuts every
   * gate, and then finds the owner's shut. */
  pthread_t t;
  CHECK(pthread_create(&t, NULL, spender, NULL) == 0);
  sm_heap_t *w;
  while ((w = atomic_load(&worker_heap)) == NULL) {
  }
  CHECK(w != &sm_heap_empty);
  unsigned rounds = 20000, open_after = 0;
  for (unsigned i = 0; i < rounds; i++) {
    __atomic_store_n(&w->gate, SM_GATE_OPEN, __ATOMIC_RELEASE);
    sm_heaps_gates_shut();
    if (__atomic_load_n(&w->gate, __ATOMIC_ACQUIRE) >= SM_GATE_OPEN_MIN) open_after++;
  }
  atomic_store(&stop, true);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK_MSG(open_after == 0, "%u of %u shuts left the subtracting owner's gate open", open_after, rounds);
  CHECK(atomic_load(&spends) > rounds);
  sm_heaps_gates_open();

  sm_free(a);
  sm_free(b);
  sm_free(z);
  return test_summary();
}
