/* Per-thread heaps: creation on a thread's first allocation, hand-back at
 * thread exit, the registry of live heaps, and the fork handlers.
 *
 * Every thread starts with sm_heap_tls pointing at sm_heap_empty, whose
 * class pages have no free blocks: the first malloc of a thread (and any
 * malloc before initialisation) falls into the slow path, which creates the
 * heap. The fast path never asks "am I initialised?".
 *
 * Thread exit: a pthread key destructor resets the TLS pointer and parks
 * the heap whole for the next new thread, or, with SM_PARKED_MAX parked,
 * releases it (pool.c abandons its segments for other threads to adopt). A
 * destructor that allocates after ours re-creates a heap and re-arms the key,
 * and glibc runs the destructors again (up to PTHREAD_DESTRUCTOR_ITERATIONS).
 *
 * Fork: every lock of the library is taken in the order of the lock table
 * (tracer/locks.c), and released in the parent or reset in the child. The
 * child then releases the heaps of the threads that did not survive the
 * fork, so their memory can be adopted. Every heap is on the registry or
 * the parked list at any moment heaps_lock is free (one moves between them
 * in one critical section, and a heap being released stays registered
 * until it is released), so the child misses none; parked heaps, which no
 * thread was changing, stay parked. */
#include <pthread.h>

#include "allocator/check.h"
#include "allocator/internal.h"

sm_page_t sm_page_empty; /* never has free blocks */

sm_heap_t sm_heap_empty = {
    .gate = SM_GATE_OPEN, /* never read: its pages have no block for the fast path to take */
    .direct = {[0 ... SM_DIRECT_COUNT - 1] = &sm_page_empty},
    .cur = {[0 ... SM_CLASS_COUNT - 1] = &sm_page_empty},
};

/* sample_left starts as a countdown no draw was made for (tracer/tracer.h). */
SM_TLS sm_thread_words_t sm_tw = {.heap = &sm_heap_empty, .sample_left = SM_GATE_SHUT};

static sm_lock_t heaps_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
static SM_LIST_HEAD(sm_heap_t) heaps; /* registry of live heaps (links: reg_next, reg_prev) */
/* Heaps of exited threads, for reuse. Never given back to the metadata
 * arena: a thread freeing a block remotely may still bump the counter of
 * a heap whose owner just exited (pool.c), so the memory stays a heap. */
static sm_heap_t *spare_heaps;
/* Heaps of exited threads parked whole (links: reg_next, newest first): a
 * new thread takes one with its pages still assigned and carved, and
 * allocates from them without faulting fresh memory in or carving it
 * again. Threads that come and go (a server's handlers, a pool that shrinks
 * and grows) then reuse one another's pages, where releasing each heap
 * purged them and the next thread faulted them back. At most
 * SM_PARKED_MAX: beyond that an exiting thread's heap is released, and so
 * is one parked for SM_PURGE_AGE_MS (sm_heaps_expire_parked), so that the
 * memory of threads that are not replaced goes back. */
static sm_heap_t *parked;
static unsigned parked_count;
static uint64_t parked_oldest; /* parked_at of the oldest parked heap; atomic: read without the lock */
static size_t heaps_count;
static unsigned next_arena;
static pthread_key_t heap_key;
static bool heap_key_ok;

SM_RUNTIME void sm_heap_key_init(void) {
  if (heap_key_ok) return;
  if (pthread_key_create(&heap_key, sm_heap_thread_done) == 0) heap_key_ok = true;
}

/* Set once this thread's heap was handed back (sm_heap_thread_done): what
 * the thread still allocates or frees after that (later key destructors,
 * the C library's own thread cleanup) must not take a parked heap, which it
 * would hold, registered to a dead thread, past the last destructor round. */
static SM_TLS bool heap_exiting;

/* The gate a heap gets when it is registered (heaps_lock): SM_GATE_SHUT
 * while the tracer traces, SM_GATE_OPEN while not (sm_heaps_gates_shut and
 * _open, from the tracer's switch). */
static int64_t gate_initial = SM_GATE_OPEN;

static void heap_register_locked(sm_heap_t *h) {
  __atomic_store_n(&h->gate, gate_initial, __ATOMIC_RELEASE);
  sm_list_push_front(&heaps, h, reg_next, reg_prev);
  __atomic_add_fetch(&heaps_count, 1, __ATOMIC_RELAXED); /* read without the lock */
}

static void heap_unregister_locked(sm_heap_t *h) {
  sm_list_remove(&heaps, h, reg_next, reg_prev);
  __atomic_sub_fetch(&heaps_count, 1, __ATOMIC_RELAXED);
}

/* Takes h off the parked list and registers it, in one critical section:
 * a fork child sees every heap on one of its lists (heaps_lock held). */
SM_RUNTIME static void parked_take_locked(sm_heap_t *h) {
  sm_heap_t **link = &parked;
  while (*link != h) link = &(*link)->reg_next;
  *link = h->reg_next;
  __atomic_store_n(&h->is_parked, 0, __ATOMIC_RELAXED);
  __atomic_sub_fetch(&parked_count, 1, __ATOMIC_RELAXED);
  for (sm_heap_t *o = parked; o; o = o->reg_next) /* newest first: the last is the oldest */
    if (!o->reg_next) __atomic_store_n(&parked_oldest, o->parked_at, __ATOMIC_RELAXED);
  heap_register_locked(h);
}

/* Makes the registered heap h this thread's: the TLS pointer and the key.
 * A warm heap (taken off the parked list) keeps everything its last owner
 * left: pages, lists, counters, arena. */
static sm_heap_t *heap_install(sm_heap_t *h) {
  h->tid = sm_os_tid();
  sm_heap_tls = h;
  /* May allocate (a second-level key block): our heap is usable by now. */
  if (heap_key_ok) pthread_setspecific(heap_key, h);
  return h;
}

SM_RUNTIME sm_heap_t *sm_heap_get_or_create(void) {
  sm_heap_t *h = sm_heap_tls;
  if (h != &sm_heap_empty) return h;
  if (SM_UNLIKELY(sm_init_state != 2)) sm_init();
  sm_heaps_expire_parked();
  sm_lock(&heaps_lock);
  bool warm = !heap_exiting && (h = parked) != NULL; /* the newest parked heap */
  if (warm) {
    parked_take_locked(h);
  } else if ((h = spare_heaps) != NULL) {
    spare_heaps = h->reg_next;
  }
  sm_unlock(&heaps_lock);
  if (warm) return heap_install(h);
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
  for (unsigned c = 0; c < SM_CLASS_COUNT; c++) sm_heap_set_cur(h, c, &sm_page_empty);
  h->direct[0] = &sm_page_empty; /* for good (sm_heap_set_cur) */
  sm_lock(&heaps_lock);
  h->arena = next_arena++ % SM_ARENA_COUNT;
  heap_register_locked(h);
  sm_unlock(&heaps_lock);
  return heap_install(h);
}

SM_RUNTIME bool sm_heap_take_parked(sm_heap_t *h) {
  if (heap_exiting || !__atomic_load_n(&h->is_parked, __ATOMIC_RELAXED)) return false;
  sm_lock(&heaps_lock);
  bool ok = h->is_parked;
  if (ok) parked_take_locked(h);
  sm_unlock(&heaps_lock);
  if (ok) heap_install(h);
  return ok;
}

/* A registered heap nobody owns any more goes back: its pages and segments
 * freed or abandoned (while it is still registered, so that a fork child
 * meanwhile still finds it), then the heap itself to the spare list. */
SM_RUNTIME static void heap_release(sm_heap_t *h) {
  sm_pool_release_heap(h);
  sm_lock(&heaps_lock);
  heap_unregister_locked(h);
  h->reg_next = spare_heaps;
  spare_heaps = h;
  sm_unlock(&heaps_lock);
}

SM_RUNTIME void sm_heap_thread_done(void *arg) {
  sm_heap_t *h = arg;
  if (!h || h == &sm_heap_empty) return;
  heap_exiting = true;
  /* From here on this thread's frees into h are remote: another thread may
   * own h as soon as it is parked. */
  if (sm_heap_tls == h) sm_heap_tls = &sm_heap_empty;
  sm_pool_purge(h); /* parked or released, its free pages go back now */
  sm_large_thread_done(h->arena);
  sm_lock(&heaps_lock);
  bool park = parked_count < SM_PARKED_MAX;
  if (park) {
    heap_unregister_locked(h);
    __atomic_store_n(&h->is_parked, 1, __ATOMIC_RELAXED);
    h->parked_at = sm_os_now_ms();
    if (!parked) __atomic_store_n(&parked_oldest, h->parked_at, __ATOMIC_RELAXED);
    h->reg_next = parked;
    parked = h;
    __atomic_add_fetch(&parked_count, 1, __ATOMIC_RELAXED);
  }
  sm_unlock(&heaps_lock);
  if (!park) heap_release(h);
  sm_heaps_expire_parked();
}

/* Moves the parked heaps from *link on back to the registry (heaps_lock
 * held), into out[]; returns how many. */
SM_RUNTIME static unsigned parked_detach_locked(sm_heap_t **link, sm_heap_t **out) {
  unsigned n = 0;
  for (sm_heap_t *h = *link; h; h = h->reg_next) out[n++] = h;
  *link = NULL;
  for (unsigned i = 0; i < n; i++) {
    __atomic_store_n(&out[i]->is_parked, 0, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&parked_count, 1, __ATOMIC_RELAXED);
    heap_register_locked(out[i]);
  }
  return n;
}

SM_RUNTIME bool sm_heaps_release_parked(void) {
  sm_heap_t *list[SM_PARKED_MAX];
  sm_lock(&heaps_lock);
  unsigned n = parked_detach_locked(&parked, list);
  sm_unlock(&heaps_lock);
  for (unsigned i = 0; i < n; i++) heap_release(list[i]);
  return n > 0;
}

SM_RUNTIME void sm_heaps_expire_parked(void) {
  if (!__atomic_load_n(&parked_count, __ATOMIC_RELAXED)) return;
  uint64_t now = sm_os_now_ms();
  if (__atomic_load_n(&parked_oldest, __ATOMIC_RELAXED) + SM_PURGE_AGE_MS > now) return;
  /* Newest first: cut the list at the first heap parked long enough (a
   * heap parked after `now` was read is never taken for old). */
  sm_heap_t *list[SM_PARKED_MAX];
  unsigned n = 0;
  sm_lock(&heaps_lock);
  for (sm_heap_t **link = &parked; *link; link = &(*link)->reg_next) {
    if ((*link)->parked_at + SM_PURGE_AGE_MS <= now) {
      n = parked_detach_locked(link, list);
      break;
    }
  }
  for (sm_heap_t *o = parked; o; o = o->reg_next)
    if (!o->reg_next) __atomic_store_n(&parked_oldest, o->parked_at, __ATOMIC_RELAXED);
  sm_unlock(&heaps_lock);
  for (unsigned i = 0; i < n; i++) heap_release(list[i]);
}

size_t sm_heaps_parked(void) { return __atomic_load_n(&parked_count, __ATOMIC_RELAXED); }

/* Each owner subtracts from its gate without a lock, in one instruction
 * that reads and then writes: one that read before the store here and
 * writes after it puts an open gate back (its old value less a few bytes).
 * So, once every thread's stores are visible (sm_os_membarrier), the gates
 * are read again, and any still open is shut again, until none is. An
 * owner that finds its gate shut opens it only by an exchange from the
 * value it read, after reading that tracing is off (malloc_gate), so
 * it cannot undo the shutting either. Parked and spare heaps get
 * gate_initial when a thread takes them. */
void sm_heaps_gates_shut(void) {
  sm_heap_t *me = sm_heap_tls;
  bool others = false;
  sm_lock(&heaps_lock);
  gate_initial = SM_GATE_SHUT;
  for (sm_heap_t *h = heaps.first; h; h = h->reg_next) {
    __atomic_store_n(&h->gate, SM_GATE_SHUT, __ATOMIC_RELEASE);
    others |= h != me;
  }
  sm_unlock(&heaps_lock);
  while (others) {
    sm_os_membarrier();
    others = false;
    sm_lock(&heaps_lock);
    for (sm_heap_t *h = heaps.first; h; h = h->reg_next)
      if (__atomic_load_n(&h->gate, __ATOMIC_ACQUIRE) >= SM_GATE_OPEN_MIN) {
        __atomic_store_n(&h->gate, SM_GATE_SHUT, __ATOMIC_RELEASE);
        others = true;
      }
    sm_unlock(&heaps_lock);
  }
}

void sm_heaps_gates_open(void) {
  sm_lock(&heaps_lock);
  gate_initial = SM_GATE_OPEN;
  sm_unlock(&heaps_lock);
}

size_t sm_heap_count(void) { return __atomic_load_n(&heaps_count, __ATOMIC_RELAXED); }

sm_lock_t *const sm_heaps_lock_ref = &heaps_lock;

/* In a fork child, after every lock was reset (tracer/locks.c). */
SM_RUNTIME void sm_heaps_postfork_child(void) {
  /* Only the forking thread exists in the child: hand the other heaps'
   * segments to the abandoned lists, where this thread can adopt them. */
  sm_heap_t *me = sm_heap_tls;
  sm_pool_recount_assigned();
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
