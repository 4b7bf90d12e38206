/* Per-thread heaps: creation on a thread's first allocation, hand-back at
 * thread exit, the registry of live heaps, and the fork handlers.
 *
 * Every thread starts with sm_heap_tls pointing at sm_heap_empty, whose
 * class pages have no free blocks: the first malloc of a thread (and any
 * malloc before initialisation) falls into the slow path, which creates the
 * heap. The fast path never asks "am I initialised?".
 *
 * Thread exit: a pthread key destructor releases the heap (pool.c abandons
 * its segments for other threads to adopt) and resets the TLS pointer. A
 * destructor that allocates after ours re-creates a heap and re-arms the key,
 * and glibc runs the destructors again (up to PTHREAD_DESTRUCTOR_ITERATIONS).
 *
 * Fork: every lock of the library is taken in the order of the lock table
 * (tracer/locks.c), and released in the parent or reset in the child. The
 * child then releases the heaps of the threads that did not survive the
 * fork, so their memory can be adopted. */
#include <pthread.h>

#include "allocator/check.h"
#include "allocator/internal.h"

sm_page_t sm_page_empty; /* never has free blocks */

sm_heap_t sm_heap_empty = {
    .cur = {[0 ... SM_CLASS_COUNT - 1] = &sm_page_empty},
};

SM_TLS sm_thread_words_t sm_tw = {.heap = &sm_heap_empty};

static sm_lock_t heaps_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
static SM_LIST_HEAD(sm_heap_t) heaps; /* registry of live heaps (links: reg_next, reg_prev) */
/* Heaps of exited threads, for reuse. Never given back to the metadata
 * arena: a thread freeing a block remotely may still bump the counter of
 * a heap whose owner just exited (pool.c), so the memory stays a heap. */
static sm_heap_t *spare_heaps;
static size_t heaps_count;
static unsigned next_arena;
static pthread_key_t heap_key;
static bool heap_key_ok;

void sm_heap_key_init(void) {
  if (heap_key_ok) return;
  if (pthread_key_create(&heap_key, sm_heap_thread_done) == 0) heap_key_ok = true;
}

sm_heap_t *sm_heap_get_or_create(void) {
  sm_heap_t *h = sm_heap_tls;
  if (h != &sm_heap_empty) return h;
  if (SM_UNLIKELY(sm_init_state != 2)) sm_init();
  sm_lock(&heaps_lock);
  h = spare_heaps;
  if (h) spare_heaps = h->reg_next;
  sm_unlock(&heaps_lock);
  if (h) {
    /* Everything but full_pending, which remote frees may still bump
     * atomically (pool.c); what is left there is harmless: at most one
     * needless sweep. */
    size_t off = offsetof(sm_heap_t, full_pending) + sizeof h->full_pending;
    __builtin_memset(h, 0, offsetof(sm_heap_t, full_pending));
    __builtin_memset((char *)h + off, 0, sizeof *h - off);
  } else {
    h = sm_meta_alloc(sizeof *h);
    if (!h) return NULL;
  }
  for (unsigned c = 0; c < SM_CLASS_COUNT; c++) h->cur[c] = &sm_page_empty;
  h->tid = sm_os_tid();
  sm_lock(&heaps_lock);
  h->arena = next_arena++ % SM_ARENA_COUNT;
  sm_list_push_front(&heaps, h, reg_next, reg_prev);
  __atomic_add_fetch(&heaps_count, 1, __ATOMIC_RELAXED); /* read without the lock */
  sm_unlock(&heaps_lock);
  sm_heap_tls = h;
  /* May allocate (a second-level key block): our heap is usable by now. */
  if (heap_key_ok) pthread_setspecific(heap_key, h);
  return h;
}

static void heap_unregister_locked(sm_heap_t *h) {
  sm_list_remove(&heaps, h, reg_next, reg_prev);
  __atomic_sub_fetch(&heaps_count, 1, __ATOMIC_RELAXED);
}

void sm_heap_thread_done(void *arg) {
  sm_heap_t *h = arg;
  if (!h || h == &sm_heap_empty) return;
  sm_pool_release_heap(h);
  if (sm_heap_tls == h) sm_heap_tls = &sm_heap_empty;
  sm_lock(&heaps_lock);
  heap_unregister_locked(h);
  h->reg_next = spare_heaps;
  spare_heaps = h;
  sm_unlock(&heaps_lock);
}

size_t sm_heap_count(void) { return __atomic_load_n(&heaps_count, __ATOMIC_RELAXED); }

sm_lock_t *const sm_heaps_lock_ref = &heaps_lock;

/* In a fork child, after every lock was reset (tracer/locks.c). */
void sm_heaps_postfork_child(void) {
  /* Only the forking thread exists in the child: hand the other heaps'
   * segments to the abandoned lists, where this thread can adopt them. */
  sm_heap_t *me = sm_heap_tls;
  sm_heap_t *h = heaps.first;
  while (h) {
    sm_heap_t *next = h->reg_next;
    if (h != me) {
      sm_pool_recount_heap(h); /* its owner may have stopped mid-push or mid-pop */
      sm_pool_release_heap(h);
      heap_unregister_locked(h);
      h->reg_next = spare_heaps;
      spare_heaps = h;
    }
    h = next;
  }
  if (me != &sm_heap_empty) me->tid = sm_os_tid();
  sm_check_fork();
}
