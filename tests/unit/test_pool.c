/* Pools: blocks are distinct, aligned and writable; pages refill and retire;
 * pages carve their blocks a few KiB at a time and a segment's header
 * commits only the descriptors in use; blocks freed by other
 * threads come back to the owner; exiting threads hand
 * their memory over, their heaps parked for the next threads; a fork child recounts the pages of threads that stopped
 * mid-operation; the page invariant checker passes throughout and notices a
 * corrupted page. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tests/testhelper.h"
#include "tests/thpmode.h"

static size_t pages_bad, pages_seen;

static void check_seg(sm_segment_t *seg, void *arg) {
  (void)arg;
  if (seg->kind != SM_SEG_POOL) return;
  for (uint32_t i = 0; i < seg->page_count; i++) {
    if (!seg->pages[i].assigned) continue;
    pages_seen++;
    if (sm_pool_check(&seg->pages[i])) pages_bad++;
  }
}

static void check_all_pages(const char *when) {
  size_t r = sm_heap_check(sm_heap_tls);
  CHECK_MSG(r == 0, "%s: the heap's direct entry for sizes %zu-%zu is not its class's current page", when,
            r > 1 ? 8 * (r - 1) - 7 : 0, 8 * (r - 1));
  pages_bad = pages_seen = 0;
  sm_segment_foreach(check_seg, NULL);
  CHECK_MSG(pages_bad == 0, "%s: %zu of %zu pages fail the check", when, pages_bad, pages_seen);
}

static size_t pool_inuse(void) {
  sm_stats_t st;
  sm_stats_get(&st);
  return st.pool_inuse;
}

#define NB 60000
static void *blocks[NB];
static size_t sizes[NB];

static void *remote_owner(void *arg) {
  void **out = arg;
  for (int i = 0; i < 10000; i++) out[i] = sm_malloc(64);
  return NULL;
}

/* Allocates, lets main free remotely, allocates again: memory must be reused. */
typedef struct ping {
  pthread_mutex_t m;
  pthread_cond_t c;
  int phase;
  void *b[4096];
} ping_t;

static void *ping_thread(void *arg) {
  ping_t *p = arg;
  for (int round = 0; round < 60; round++) {
    for (int i = 0; i < 4096; i++) p->b[i] = sm_malloc(48);
    pthread_mutex_lock(&p->m);
    p->phase = 1;
    pthread_cond_broadcast(&p->c);
    while (p->phase != 2) pthread_cond_wait(&p->c, &p->m);
    p->phase = 0;
    pthread_mutex_unlock(&p->m);
  }
  return NULL;
}

static void *exiting_thread(void *arg) {
  void **keep = arg;
  for (int i = 0; i < 2000; i++) {
    void *p = sm_malloc((size_t)(16 + i % 900));
    if (i % 2) keep[i / 2] = p;
    else sm_free(p);
  }
  return NULL; /* half its blocks stay live: its segments are abandoned */
}

/* A thread that allocates, frees some, and parks until told to go: at a
 * fork, the child has its heap but not the thread. */
typedef struct parked {
  pthread_mutex_t m;
  pthread_cond_t c;
  int state; /* 0 working, 1 parked, 2 told to go */
  void *c64, *x96, *y96;
} parked_t;

static void *parked_thread(void *arg) {
  parked_t *p = arg;
  void *a = sm_malloc(64), *b = sm_malloc(64);
  p->c64 = sm_malloc(64);
  sm_free(a);
  sm_free(b); /* its 64-byte page: one block used */
  p->x96 = sm_malloc(96);
  p->y96 = sm_malloc(96); /* its 96-byte page: two used */
  pthread_mutex_lock(&p->m);
  p->state = 1;
  pthread_cond_broadcast(&p->c);
  while (p->state != 2) pthread_cond_wait(&p->c, &p->m);
  pthread_mutex_unlock(&p->m);
  sm_free(p->c64);
  sm_free(p->x96);
  sm_free(p->y96);
  return NULL;
}

/* The fork child's half: makes the parked thread's pages look as they would
 * had the fork caught it halfway through a free's push (the block linked,
 * the count not yet lowered) and a malloc's pop (the block unlinked, the
 * count not yet raised), then does what the child's fork handler does. The
 * pages must come out consistent: the first empty and given back, the
 * second with the popped block counted as used. */
static int fork_child_recount(parked_t *p) {
  th_checks = th_failed = 0; /* the child's own verdict, not the parent's so far */
  sm_page_t *pg64, *pg96;
  sm_block_t *c = p->c64;
  sm_pool_block_start(sm_segment_of(c), c, &pg64);
  sm_pool_block_start(sm_segment_of(p->x96), p->x96, &pg96);
  c->mark = sm_marks.local;
  c->next = pg64->free;
  pg64->free = c;
  sm_block_t *z = pg96->free;
  pg96->free = z->next;
  CHECK(pg64->used == 1 && pg96->used == 2);
  sm_heaps_postfork_child();
  check_all_pages("in a fork child, after a thread stopped mid-free and mid-malloc");
  CHECK_MSG(pg96->assigned && pg96->used == 3, "the page of a stopped malloc: used %u, not 3 (x, y and the block "
            "being popped)", pg96->used);
  CHECK_MSG(!pg64->assigned, "the page of a stopped free is still assigned (used %u), not given back", pg64->used);
  CHECK_MSG(sm_heap_count() == 1, "%zu heaps in the fork child", sm_heap_count());
  return test_summary();
}

/* One block in each of 40 size classes, 64 blocks each, written and freed:
 * every class keeps its page (the class's only one), carved and resident.
 * Reports the minor faults of the work and the page of the last class. */
typedef struct warm {
  long faults;
  sm_page_t *page;
} warm_t;

static void *warm_thread(void *arg) {
  warm_t *w = arg;
  struct rusage a, b;
  getrusage(RUSAGE_THREAD, &a);
  void *blk[64];
  for (int c = 0; c < 40; c++) {
    size_t n = (size_t)(c + 1) * 16;
    for (int i = 0; i < 64; i++) memset(blk[i] = sm_malloc(n), c, n);
    if (c == 39) sm_pool_block_start(sm_segment_of(blk[0]), blk[0], &w->page);
    for (int i = 0; i < 64; i++) sm_free(blk[i]);
  }
  getrusage(RUSAGE_THREAD, &b);
  w->faults = b.ru_minflt - a.ru_minflt;
  return NULL;
}

/* Holds its heap until told to go, so that many threads exit together. */
static pthread_barrier_t exit_barrier;
static void *exit_together(void *arg) {
  (void)arg;
  sm_free(sm_malloc(100));
  pthread_barrier_wait(&exit_barrier);
  return NULL;
}

/* Leaves one block live and reports its heap. */
typedef struct leaver {
  void *block;
  sm_heap_t *heap;
  bool last; /* waits for main's word to exit */
} leaver_t;
static pthread_barrier_t alive_barrier, last_barrier;
static void *leave_block(void *arg) {
  leaver_t *l = arg;
  l->block = sm_malloc(200);
  l->heap = sm_heap_tls;
  pthread_barrier_wait(&alive_barrier); /* both alive: two heaps */
  if (l->last) pthread_barrier_wait(&last_barrier);
  return NULL;
}
/* Frees a block before anything else; reports the heap it then has. */
static void *free_first(void *arg) {
  leaver_t *l = arg;
  sm_free(l->block);
  l->heap = sm_heap_tls;
  return NULL;
}

/* A thread that sets a key made after the allocator's, so that the key's
 * destructor runs after ours has handed the thread's heap back. */
typedef struct exiting_probe {
  pthread_key_t key;
  void *block;
  sm_heap_t *own, *after_free, *after_malloc;
} exiting_probe_t;
static void late_destructor(void *arg) {
  exiting_probe_t *pr = arg;
  sm_free(pr->block); /* a block of the heap just parked */
  pr->after_free = sm_heap_tls;
  void *p = sm_malloc(50);
  pr->after_malloc = sm_heap_tls;
  sm_free(p);
}
static void *exiting_thread_probe(void *arg) {
  exiting_probe_t *pr = arg;
  pr->block = sm_malloc(300);
  pr->own = sm_heap_tls;
  pthread_setspecific(pr->key, pr);
  return NULL;
}

/* A page carves its blocks a few KiB at a time, as they are needed: the
 * first block of a class commits one or two OS pages, not the page's 64 KiB
 * (a small program's footprint is mostly these first carves). */
static void carve_step(void) {
  /* A fresh segment's header commits the OS pages of the page descriptors
   * in use, not the whole header: after the first malloc, the last OS page
   * of the header (descriptors 62 and 63) was never touched. */
  void *first = sm_malloc(16);
  sm_segment_t *s0 = sm_segment_of(first);
  unsigned char vec = 0;
  size_t hdr = sm_segment_header_size();
  CHECK(hdr >= 3 * 4096);
  if (!sm_test_thp_mode("always") && mincore((uint8_t *)s0 + hdr - 4096, 4096, &vec) == 0)
    CHECK_MSG(!(vec & 1), "the last OS page of a fresh segment's header is committed after one malloc");
  sm_free(first);
  size_t sizes_probe[] = {16, 224, 1024, 3072};
  for (size_t i = 0; i < sizeof sizes_probe / sizeof *sizes_probe; i++) {
    void *p = sm_malloc(sizes_probe[i]);
    sm_segment_t *seg = sm_segment_of(p);
    sm_page_t *pg = &seg->pages[((uintptr_t)p - (uintptr_t)seg) >> seg->page_shift];
    size_t carved = (size_t)pg->capacity * pg->block_size;
    CHECK_MSG(carved <= 4096 || pg->capacity == 1, "%zu B blocks: the first malloc carved %u blocks (%zu bytes)",
              sizes_probe[i], pg->capacity, carved);
    sm_free(p);
  }
}

int main(void) {
  sm_init();
  sm_heap_key_init();
  carve_step();
  srand(7);
  for (int i = 0; i < NB; i++) {
    sizes[i] = (size_t)(rand() % 3 == 0 ? rand() % (int)SM_POOL_MAX : rand() % 256);
    blocks[i] = sm_malloc(sizes[i]);
    CHECK(blocks[i] != NULL);
    CHECK(sm_usable_size(blocks[i]) >= sizes[i]);
    CHECK_MSG(((uintptr_t)blocks[i] & 15) == 0, "size %zu at %p", sizes[i], blocks[i]);
    memset(blocks[i], (int)(i & 0xff), sizes[i]);
  }
  for (int i = 0; i < NB; i++) {
    unsigned char *p = blocks[i];
    size_t bad = 0;
    for (size_t k = 0; k < sizes[i]; k++) bad += p[k] != (unsigned char)(i & 0xff);
    CHECK_MSG(bad == 0, "block %d (size %zu) overwritten", i, sizes[i]);
    if (th_failed > 5) break;
  }
  check_all_pages("after mixed allocation");
  /* free every other block, then the rest */
  for (int i = 0; i < NB; i += 2) sm_free(blocks[i]);
  check_all_pages("after freeing half");
  for (int i = 1; i < NB; i += 2) sm_free(blocks[i]);
  check_all_pages("after freeing all");
  CHECK_MSG(pool_inuse() == 0, "pool bytes in use after freeing everything: %zu", pool_inuse());

  /* refill: more 16-byte blocks than one page holds, all distinct pages used */
  static void *many[20000];
  for (int i = 0; i < 20000; i++) many[i] = sm_malloc(16);
  CHECK_MSG(sm_heap_check(sm_heap_tls) == 0, "after filling pages of 16-byte blocks, the heap's direct table "
                                             "does not point at the current page (returned %zu)",
            sm_heap_check(sm_heap_tls));
  sm_page_t *first_pg = NULL;
  int pages = 0;
  for (int i = 0; i < 20000; i++) {
    sm_page_t *pg;
    sm_pool_block_start(sm_segment_of(many[i]), many[i], &pg);
    if (pg != first_pg) pages++, first_pg = pg;
  }
  CHECK_MSG(pages >= 5, "20000 16-byte blocks on only %d pages", pages);
  for (int i = 0; i < 20000; i++) sm_free(many[i]);

  /* Every small size, through malloc's direct table (by (size + 7) / 8),
   * gets a block of its own class, on pages that have been switched many
   * times above; twice, so that the second round runs on pages the first
   * one made current. */
  for (int round = 0; round < 2; round++) {
    static void *each[SM_SMALL_MAX + 1];
    for (size_t s = 0; s <= SM_SMALL_MAX; s++) {
      each[s] = sm_malloc(s);
      sm_page_t *pg;
      CHECK(each[s] && sm_pool_block_start(sm_segment_of(each[s]), each[s], &pg) == each[s]);
      unsigned want = sm_size_class_slow(s ? s : 1);
      CHECK_MSG(pg->cls == want, "malloc(%zu) gave a block of class %u (%u bytes), not %u", s, pg->cls,
                pg->block_size, want);
    }
    CHECK_MSG(sm_heap_check(sm_heap_tls) == 0, "with a block of every small size, the heap's direct table does "
                                               "not point at the current pages (returned %zu)",
              sm_heap_check(sm_heap_tls));
    for (size_t s = 0; s <= SM_SMALL_MAX; s++) sm_free(each[s]);
    check_all_pages("after a block of every small size");
  }

  /* The current page empties while another page of its class waits
   * behind it: the page is retired, the other becomes current, and the
   * direct table must follow (left pointing at the retired page, it would
   * hand out blocks of whatever class that page is carved for next). */
  {
    static void *fill[8192];
    sm_page_t *pg_a = NULL, *pg_now = NULL;
    int n = 0, first_b = -1;
    while (n < 8192) {
      fill[n] = sm_malloc(48);
      sm_pool_block_start(sm_segment_of(fill[n]), fill[n], &pg_now);
      if (!pg_a) pg_a = pg_now;
      if (pg_now != pg_a && first_b < 0) first_b = n;
      n++;
      if (first_b >= 0 && n - first_b >= 8) break;
    }
    CHECK_MSG(first_b > 0, "8192 blocks of 48 bytes on one page");
    for (int i = 1; i < first_b; i++) sm_free(fill[i]); /* page A leaves the full list, behind B */
    for (int i = first_b; i < n; i++) sm_free(fill[i]);  /* B empties: retired, A current */
    CHECK_MSG(sm_heap_check(sm_heap_tls) == 0, "after the current page was retired for the one behind it, the "
                                               "direct table entry %zu is stale", sm_heap_check(sm_heap_tls) - 1);
    void *q = sm_malloc(40);
    sm_page_t *pg_q;
    sm_pool_block_start(sm_segment_of(q), q, &pg_q);
    CHECK_MSG(pg_q == pg_a, "malloc(40) after page B was retired took a block of page %p, not A's %p", (void *)pg_q,
              (void *)pg_a);
    sm_free(q);
    sm_free(fill[0]);
    check_all_pages("after retiring the current page");
  }

  /* LIFO: the block its owner freed last is the next one malloc hands out
   * (its page being the current one), not another block of the page. */
  {
    void *a = sm_malloc(400), *b = sm_malloc(400), *c = sm_malloc(400);
    sm_free(b);
    void *d = sm_malloc(400);
    CHECK_MSG(d == b, "malloc after a free of %p returned %p, not the block just freed", b, d);
    sm_free(a);
    sm_free(c);
    sm_free(d);
  }

  /* A full page that gets one block back goes behind the page being
   * allocated from: made current, it would hand out that one block, be
   * full again, and send the next malloc down the slow path (a free then a
   * malloc of the same class each time, in a heap of full pages). */
  {
    static void *fill[4096];
    sm_page_t *pg_first = NULL, *pg_now = NULL;
    int n = 0;
    while (n < 4096) {
      fill[n] = sm_malloc(256);
      sm_pool_block_start(sm_segment_of(fill[n]), fill[n], &pg_now);
      n++;
      if (!pg_first) pg_first = pg_now;
      else if (pg_now != pg_first) break; /* the first page is full now */
    }
    CHECK_MSG(pg_now != pg_first, "4096 blocks of 256 bytes on one page");
    sm_free(fill[0]); /* from the full page */
    void *q = sm_malloc(256);
    sm_page_t *pg_q;
    sm_pool_block_start(sm_segment_of(q), q, &pg_q);
    CHECK_MSG(pg_q == pg_now, "after a free into a full page, malloc took its block (%p) instead of the current "
                              "page's", q);
    sm_free(q);
    for (int i = 1; i < n; i++) sm_free(fill[i]);
    check_all_pages("after the full-page test");
  }

  /* cross-thread frees: collected by the owner, memory reused */
  static void *remote[10000];
  pthread_t t;
  pthread_create(&t, NULL, remote_owner, remote);
  pthread_join(t, NULL);
  for (int i = 0; i < 10000; i++) sm_free(remote[i]); /* owner gone: abandoned segment */

  ping_t *p = calloc(1, sizeof *p);
  pthread_mutex_init(&p->m, NULL);
  pthread_cond_init(&p->c, NULL);
  pthread_create(&t, NULL, ping_thread, p);
  size_t mapped_after_first = 0;
  for (int round = 0; round < 60; round++) {
    pthread_mutex_lock(&p->m);
    while (p->phase != 1) pthread_cond_wait(&p->c, &p->m);
    for (int i = 0; i < 4096; i++) sm_free(p->b[i]); /* remote frees */
    p->phase = 2;
    pthread_cond_broadcast(&p->c);
    pthread_mutex_unlock(&p->m);
    if (round == 2) mapped_after_first = sm_segment_mapped();
  }
  pthread_join(t, NULL);
  CHECK_MSG(sm_segment_mapped() <= mapped_after_first + 2 * SM_SEGMENT_SIZE,
            "remote frees not reused: mapped grew from %zu to %zu", mapped_after_first, sm_segment_mapped());

  /* thread exit: heaps are released, live blocks survive and can be freed */
  static void *kept[8][1000];
  pthread_t ts[8];
  for (int i = 0; i < 8; i++) pthread_create(&ts[i], NULL, exiting_thread, kept[i]);
  for (int i = 0; i < 8; i++) pthread_join(ts[i], NULL);
  CHECK_MSG(sm_heap_count() == 1, "%zu heaps alive after threads exited", sm_heap_count());
  for (int i = 0; i < 8; i++)
    for (int k = 0; k < 1000; k++) sm_free(kept[i][k]);
  check_all_pages("after freeing blocks of exited threads");

  /* Parked heaps (heap.c): a thread that starts after another exited takes
   * its heap whole, pages carved and resident; at most SM_PARKED_MAX wait;
   * releasing them hands their blocks back. */
  {
    CHECK(sm_heaps_parked() > 0); /* the threads above */
    CHECK(sm_heaps_release_parked());
    CHECK_MSG(pool_inuse() == 0, "pool bytes in use once the parked heaps were released: %zu", pool_inuse());
    warm_t first = {0}, second = {0};
    pthread_create(&t, NULL, warm_thread, &first);
    pthread_join(t, NULL);
    CHECK_MSG(sm_heaps_parked() == 1, "%zu heaps parked after a thread exited, not 1", sm_heaps_parked());
    CHECK_MSG(first.page->assigned && first.page->block_size >= 640, "the exited thread's empty page was given up");
    CHECK_MSG(sm_heap_count() == 1, "%zu heaps alive with one thread", sm_heap_count());
    pthread_create(&t, NULL, warm_thread, &second);
    pthread_join(t, NULL);
    CHECK_MSG(second.page == first.page, "the next thread allocated from page %p, not the exited thread's %p",
              (void *)second.page, (void *)first.page);
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__) /* they fault in shadow memory too */
    CHECK_MSG(second.faults < 20, "the next thread faulted %ld pages in (the first %ld): its pages were not "
              "reused", second.faults, first.faults);
#endif
    fprintf(stderr, "parked heap reuse: first thread %ld minor faults, second %ld\n", first.faults, second.faults);
    enum { N = SM_PARKED_MAX + 4 };
    pthread_t exiters[N];
    pthread_barrier_init(&exit_barrier, NULL, N);
    for (int i = 0; i < N; i++) pthread_create(&exiters[i], NULL, exit_together, NULL);
    for (int i = 0; i < N; i++) pthread_join(exiters[i], NULL);
    pthread_barrier_destroy(&exit_barrier);
    CHECK_MSG(sm_heaps_parked() == SM_PARKED_MAX, "%zu heaps parked after %d threads exited, not %d",
              sm_heaps_parked(), (int)N, SM_PARKED_MAX);
    CHECK(sm_heap_count() == 1);
    check_all_pages("with parked heaps");
    CHECK(sm_heaps_release_parked());
    CHECK(sm_heaps_parked() == 0);
    check_all_pages("after releasing the parked heaps");
    /* A thread with no heap whose first call frees a block of a parked
     * heap takes that heap, not the newest. */
    leaver_t older = {0}, newer = {.last = true};
    pthread_t t2;
    pthread_barrier_init(&alive_barrier, NULL, 3);
    pthread_barrier_init(&last_barrier, NULL, 2);
    pthread_create(&t, NULL, leave_block, &older);
    pthread_create(&t2, NULL, leave_block, &newer);
    pthread_barrier_wait(&alive_barrier);
    pthread_join(t, NULL); /* older parks first */
    pthread_barrier_wait(&last_barrier);
    pthread_join(t2, NULL);
    pthread_barrier_destroy(&alive_barrier);
    pthread_barrier_destroy(&last_barrier);
    CHECK(sm_heaps_parked() == 2 && older.heap != newer.heap);
    leaver_t taker = {.block = older.block};
    pthread_create(&t, NULL, free_first, &taker);
    pthread_join(t, NULL);
    CHECK_MSG(taker.heap == older.heap, "a thread that freed a block of parked heap %p first has heap %p",
              (void *)older.heap, (void *)taker.heap);
    sm_free(newer.block);
    CHECK(sm_heaps_release_parked());
    CHECK(pool_inuse() == 0);
    /* Nobody takes a parked heap for SM_PURGE_AGE_MS: the next page this
     * thread retires releases it, and not a heap parked since. */
    leaver_t old_one = {0}, young = {.last = true};
    pthread_barrier_init(&alive_barrier, NULL, 3);
    pthread_barrier_init(&last_barrier, NULL, 2);
    pthread_create(&t, NULL, leave_block, &old_one);
    pthread_create(&t2, NULL, leave_block, &young);
    pthread_barrier_wait(&alive_barrier);
    pthread_join(t, NULL);
    CHECK(sm_heaps_parked() == 1);
    usleep((SM_PURGE_AGE_MS + 200) * 1000);
    static void *two_pages[2048];
    for (int i = 0; i < 2048; i++) two_pages[i] = sm_malloc(1000); /* more than a page of its class */
    for (int i = 0; i < 2048; i++) sm_free(two_pages[i]);
    CHECK_MSG(sm_heaps_parked() == 0 && !old_one.heap->is_parked,
              "a heap parked for %d ms is still parked after pages retired", SM_PURGE_AGE_MS + 200);
    pthread_barrier_wait(&last_barrier);
    pthread_join(t2, NULL);
    pthread_barrier_destroy(&alive_barrier);
    pthread_barrier_destroy(&last_barrier);
    for (int i = 0; i < 2048; i++) two_pages[i] = sm_malloc(1000);
    for (int i = 0; i < 2048; i++) sm_free(two_pages[i]);
    CHECK_MSG(sm_heaps_parked() == 1 && young.heap->is_parked, "a heap parked just now was released");
    sm_free(old_one.block);
    sm_free(young.block);
    CHECK(sm_heaps_release_parked());

    /* A thread whose heap was handed back takes no parked heap: a key
     * destructor that runs after ours (a key made later) frees and
     * allocates. */
    pthread_key_t late;
    CHECK(pthread_key_create(&late, late_destructor) == 0);
    exiting_probe_t probe = {.key = late};
    pthread_create(&t, NULL, exiting_thread_probe, &probe);
    pthread_join(t, NULL);
    CHECK_MSG(probe.after_free == &sm_heap_empty, "a free in a later key destructor took heap %p (its own was %p)",
              (void *)probe.after_free, (void *)probe.own);
    CHECK_MSG(probe.after_malloc != probe.own && probe.after_malloc != &sm_heap_empty,
              "a malloc in a later key destructor got heap %p (its own parked one: %p)", (void *)probe.after_malloc,
              (void *)probe.own);
    CHECK_MSG(sm_heap_count() == 1, "%zu heaps registered after the thread exited", sm_heap_count());
    CHECK(sm_heaps_release_parked());
    CHECK_MSG(pool_inuse() == 0, "pool bytes in use after the destructor test: %zu", pool_inuse());
  }

  /* A fork while another thread is inside free or malloc (fork_child_recount). */
  {
    parked_t *pk = calloc(1, sizeof *pk);
    pthread_mutex_init(&pk->m, NULL);
    pthread_cond_init(&pk->c, NULL);
    pthread_create(&t, NULL, parked_thread, pk);
    pthread_mutex_lock(&pk->m);
    while (pk->state != 1) pthread_cond_wait(&pk->c, &pk->m);
    pthread_mutex_unlock(&pk->m);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) _exit(fork_child_recount(pk));
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the fork child %s %d",
              WIFEXITED(status) ? "exited with" : "died of signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    pthread_mutex_lock(&pk->m);
    pk->state = 2;
    pthread_cond_broadcast(&pk->c);
    pthread_mutex_unlock(&pk->m);
    pthread_join(t, NULL);
    check_all_pages("after the fork test");
    free(pk);
  }

  /* the checker notices corruption */
  void *x = sm_malloc(32);
  sm_page_t *pg;
  sm_pool_block_start(sm_segment_of(x), x, &pg);
  CHECK(sm_pool_check(pg) == 0);
  pg->used += 3;
  CHECK(sm_pool_check(pg) != 0);
  pg->used -= 3;
  sm_free(x);
  return test_summary();
}
