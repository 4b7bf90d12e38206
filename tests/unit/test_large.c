/* Large blocks: random allocate/free/resize under every placement policy with
 * the arena invariant checker after each step; neighbours coalesce; a split
 * remainder is reused; aligned requests; an emptied chunk is one free block.
 * Quick lists: a freed block that sampling moved is kept for the next move
 * of its class, within the caps, hidden from heap walks, reported when freed
 * twice, and given back by a trim. `retain` is split among the arenas in
 * use. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "allocator/internal.h"
#include "tests/childrun.h"
#include "tests/testhelper.h"

static sm_arena_t *arena0(void) { return &sm_arenas[sm_heap_get_or_create()->arena]; }

static size_t check_arena(void) {
  sm_arena_t *a = arena0();
  sm_lock(&a->lock);
  size_t r = sm_large_check(a);
  sm_unlock(&a->lock);
  return r;
}

#define N 300

static void random_run(sm_policy_t policy, unsigned seed) {
  sm_opt.policy = policy;
  srand(seed);
  static void *p[N];
  static size_t sz[N];
  memset(p, 0, sizeof p);
  for (int step = 0; step < 6000; step++) {
    int i = rand() % N;
    if (!p[i]) {
      sz[i] = SM_POOL_MAX + 1 + (size_t)rand() % (600 * 1024);
      p[i] = sm_malloc(sz[i]);
      CHECK(p[i] != NULL && ((uintptr_t)p[i] & 15) == 0);
      memset(p[i], i & 0xff, sz[i]);
    } else if (rand() % 4 == 0) {
      size_t ns = SM_POOL_MAX + 1 + (size_t)rand() % (600 * 1024);
      void *q = sm_realloc(p[i], ns);
      CHECK(q != NULL);
      unsigned char *c = q;
      size_t keep = ns < sz[i] ? ns : sz[i];
      CHECK_MSG(c[0] == (i & 0xff) && c[keep - 1] == (i & 0xff), "realloc lost contents (policy %d)", policy);
      memset(q, i & 0xff, ns);
      p[i] = q;
      sz[i] = ns;
    } else {
      unsigned char *c = p[i];
      CHECK_MSG(c[0] == (i & 0xff) && c[sz[i] - 1] == (i & 0xff), "block %d overwritten (policy %d)", i, policy);
      sm_free(p[i]);
      p[i] = NULL;
    }
    size_t r = check_arena();
    CHECK_MSG(r == 0, "policy %d step %d: arena check failed with code %zu", policy, step, r);
    if (th_failed > 5) return;
  }
  for (int i = 0; i < N; i++) sm_free(p[i]);
  CHECK(check_arena() == 0);
}

/* ---- quick lists */

static void count_block(uintptr_t p, size_t req, uint32_t trace, void *arg) {
  (void)req;
  (void)trace;
  const uintptr_t *want = arg;
  if (p == want[0]) ((uintptr_t *)arg)[1]++;
}

/* How many times a walk of p's chunk reports p (0 or 1). */
static size_t walk_sees(void *p) {
  uintptr_t arg[2] = {(uintptr_t)p, 0};
  sm_large_walk(sm_segment_of(p), count_block, arg);
  return arg[1];
}

static size_t kept_count(const sm_arena_t *a) {
  size_t n = 0;
  for (unsigned c = 0; c < SM_CLASS_COUNT; c++) n += a->quick_count[c];
  return n;
}

static void free_twice(void *arg) {
  sm_free(arg);
  sm_free(arg);
}

static void quick_lists(void) {
  sm_heap_t *h = sm_heap_get_or_create();
  sm_arena_t *a = arena0();
  sm_large_trim();
  CHECK(a->quick_bytes == 0 && kept_count(a) == 0);

  /* A moved block, freed, is kept: in use to its neighbours, hidden from
   * walks, counted apart from the in-use bytes. */
  void *m = sm_large_malloc_moved(h, 4096, 0);
  CHECK(m != NULL && sm_usable_size(m) >= 4096);
  CHECK((sm_lblock_of(m)->head & SM_LB_MOVED) && walk_sees(m) == 1);
  size_t inuse = a->inuse_bytes, size = sm_large_usable(m) + SM_LB_HDR;
  sm_free(m);
  CHECK_MSG(a->quick_bytes == size && kept_count(a) == 1, "kept %zu bytes in %zu blocks, want %zu in 1",
            a->quick_bytes, kept_count(a), size);
  CHECK(a->inuse_bytes == inuse - size && sm_lblock_of(m)->magic == SM_LB_KEPT);
  CHECK_MSG(walk_sees(m) == 0, "a heap walk reports a kept block");
  CHECK(check_arena() == 0);

  /* The next move of its class takes it back, its link cleared; a move of
   * another class does not. */
  void *other = sm_large_malloc_moved(h, 8192, 0);
  CHECK_MSG(other != m, "a kept block of 4096 bytes served a move of 8192");
  void *again = sm_large_malloc_moved(h, 4096, 0);
  CHECK_MSG(again == m, "the kept block was not reused (%p, kept %p)", again, m);
  CHECK(*(void **)again == NULL && sm_lblock_of(again)->magic == SM_LB_MAGIC && a->quick_bytes == 0);
  CHECK(walk_sees(again) == 1 && a->inuse_bytes == inuse + sm_large_usable(other) + SM_LB_HDR);
  CHECK(check_arena() == 0);

  /* A large block of the same size that was not moved is not kept. */
  void *plain = sm_large_malloc(h, 4096, 0);
  sm_free(plain);
  CHECK(kept_count(a) == 0);

  /* Freeing a kept block again is a double free, reported as one. */
  char out[512];
  int st = th_run_captured(free_twice, again, 10, out, sizeof out);
  CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(out, "double free"),
            "double free of a kept block: status %#x, stderr: %s", st, out);
  sm_free(again);
  sm_free(other);

  /* The caps: at most 8 a class, at most 1 MiB an arena. */
  void *v[24];
  for (int i = 0; i < 24; i++) v[i] = sm_large_malloc_moved(h, 4096, 0);
  for (int i = 0; i < 24; i++) sm_free(v[i]);
  CHECK_MSG(a->quick_count[sm_size_class(4096)] == 8, "%u kept of one class", a->quick_count[sm_size_class(4096)]);
  void *big[4][8]; /* the four largest classes, 8 each: 1.6 MiB */
  for (int c = 0; c < 4; c++)
    for (int i = 0; i < 8; i++) big[c][i] = sm_large_malloc_moved(h, sm_class_size[SM_CLASS_COUNT - 1 - c], 0);
  for (int c = 0; c < 4; c++)
    for (int i = 0; i < 8; i++) sm_free(big[c][i]);
  CHECK_MSG(a->quick_bytes <= 1024 * 1024 && a->quick_bytes > 1024 * 1024 - 2 * (SM_POOL_MAX + 1024),
            "%zu bytes kept", a->quick_bytes);
  CHECK(check_arena() == 0);

  /* A moved block resized in place is no longer a class's size: not kept. */
  void *r = sm_large_malloc_moved(h, 16384, 0);
  CHECK(sm_large_resize_in_place(sm_segment_of(r), r, 20000) || sm_large_resize_in_place(sm_segment_of(r), r, 9000));
  CHECK(!(sm_lblock_of(r)->head & SM_LB_MOVED));
  size_t before = kept_count(a);
  sm_free(r);
  CHECK(kept_count(a) == before);

  /* malloc_trim gives kept blocks back to the tree (and so to the OS). */
  sm_large_trim();
  CHECK_MSG(a->quick_bytes == 0 && kept_count(a) == 0, "%zu bytes still kept after a trim", a->quick_bytes);
  CHECK(check_arena() == 0);
}

/* `retain` is the arenas' together: with a second arena holding a chunk,
 * this arena keeps half of it. Frees 8 MiB, leaving 100 KB live: one arena
 * in use keeps them (8 MiB is not over twice its 4 MiB plus twice what is
 * live); with two, the shrink rule (live under an eighth of the peak, free
 * over twice the share plus twice what is live) returns them. */
static void *hold_block(void *arg) {
  *(void **)arg = sm_malloc(300000); /* this thread's heap takes the next arena */
  return NULL;
}

static size_t dirty_after_shrink(void) {
  sm_arena_t *a = arena0();
  enum { K = 8 };
  void *live = sm_malloc(100000);
  uint8_t *b[K];
  for (int i = 0; i < K; i++) {
    b[i] = sm_malloc(SM_MiB);
    memset(b[i], 1, SM_MiB);
  }
  for (int i = 0; i < K; i++) sm_free(b[i]); /* live: 100 KB of a peak over 8 MiB */
  size_t dirty = a->dirty_bytes;
  sm_free(live);
  sm_large_trim();
  return dirty;
}

static void retain_split(void) {
  size_t saved = sm_opt.retain;
  sm_opt.retain = 4 * SM_MiB;
  sm_large_trim();
  arena0()->purge = (sm_purge_state_t){0}; /* a fresh history: not cycling */
  size_t one = dirty_after_shrink();
  CHECK_MSG(one >= 7 * SM_MiB, "one arena in use kept %zu dirty bytes of 8 MiB freed", one);
  void *held = NULL;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, hold_block, &held) == 0 && pthread_join(t, NULL) == 0);
  CHECK(held && sm_segment_of(held)->arena != arena0());
  arena0()->purge = (sm_purge_state_t){0}; /* a fresh history: not cycling */
  size_t two = dirty_after_shrink();
  CHECK_MSG(two < SM_MiB, "with two arenas in use, %zu dirty bytes stayed after the shrink", two);
  sm_free(held);
  sm_opt.retain = saved;
}

/* When memory goes back, with time given (os.c, sm_purge_decide): a first
 * shrink gives everything back at once; an owner that grew back soon after
 * is cycling, and its next shrink keeps the memory for the grace period,
 * then gives it back and stops waiting; one that grew back slowly is not
 * cycling. */
static void purge_decisions(void) {
  const size_t M = SM_MiB, R = 1 * SM_MiB;
  sm_purge_state_t st = {0};
  uint32_t cut = 0;
  CHECK(sm_purge_decide(1000, 0, 100 * M, R, &st, &cut) == SM_PURGE_NONE && st.peak == 100 * M);
  CHECK_MSG(sm_purge_decide(1000, 99 * M, 1 * M, R, &st, &cut) == SM_PURGE_ALL, "a first shrink was not given back");
  CHECK(st.emptied_at == 1000 && st.emptied_peak == 100 * M && !st.cycling);
  /* grew back to 80 of 100 MiB 300 ms later: cycling */
  CHECK(sm_purge_decide(1300, 5 * M, 80 * M, R, &st, &cut) == SM_PURGE_NONE);
  CHECK_MSG(st.cycling && st.emptied_at == 0, "a regrowth within SM_REGROW_MS was not taken for cycling");
  /* the next shrink is held for the grace period */
  CHECK_MSG(sm_purge_decide(1400, 90 * M, 1 * M, R, &st, &cut) == SM_PURGE_NONE && st.shrunk_at == 1400,
            "a cycling owner's shrink was given back at once");
  CHECK(sm_purge_decide(1400 + SM_SHRINK_GRACE_MS - 1, 90 * M, 1 * M, R, &st, &cut) == SM_PURGE_NONE);
  /* reused meanwhile: no longer shrunk */
  CHECK(sm_purge_decide(1480, 2 * M, 60 * M, R, &st, &cut) == SM_PURGE_NONE && st.shrunk_at == 0 && st.cycling);
  /* shrunk again and still so after the grace: given back, no longer cycling */
  CHECK(sm_purge_decide(1600, 90 * M, 1 * M, R, &st, &cut) == SM_PURGE_NONE && st.shrunk_at == 1600);
  CHECK_MSG(sm_purge_decide(1600 + SM_SHRINK_GRACE_MS, 90 * M, 1 * M, R, &st, &cut) == SM_PURGE_ALL,
            "held memory was not given back after the grace period");
  CHECK(!st.cycling && st.shrunk_at == 0 && st.emptied_at == 1600 + SM_SHRINK_GRACE_MS);
  /* grew back, but only after SM_REGROW_MS: not cycling, the next shrink goes back at once */
  uint64_t late = 1600 + SM_SHRINK_GRACE_MS + SM_REGROW_MS + 1;
  CHECK(sm_purge_decide(late, 5 * M, 80 * M, R, &st, &cut) != SM_PURGE_ALL && !st.cycling); /* (an aged pass is due) */
  CHECK(sm_purge_decide(late + 10, 90 * M, 1 * M, R, &st, &cut) == SM_PURGE_ALL);
  /* held memory reused down to `retain`: the hold ends */
  st = (sm_purge_state_t){.peak = 100 * M, .cycling = true, .last = 5000};
  CHECK(sm_purge_decide(5000, 90 * M, 1 * M, R, &st, &cut) == SM_PURGE_NONE && st.shrunk_at == 5000);
  CHECK(sm_purge_decide(5010, R, 50 * M, R, &st, &cut) == SM_PURGE_NONE && st.shrunk_at == 0);
}

/* A thread's exit gives back what its arena holds for a next cycle. */
static void held_until_exit(void) {
  sm_arena_t *a = arena0();
  size_t saved = sm_opt.retain;
  sm_opt.retain = 1 * SM_MiB;
  sm_large_trim();
  void *live = sm_malloc(100000);
  enum { K = 8 };
  uint8_t *b[K];
  for (int i = 0; i < K; i++) {
    b[i] = sm_malloc(SM_MiB);
    memset(b[i], 1, SM_MiB);
  }
  a->purge = (sm_purge_state_t){.cycling = true, .last = sm_os_now_ms()};
  for (int i = 0; i < K; i++) sm_free(b[i]);
  CHECK_MSG(a->dirty_bytes >= 7 * SM_MiB && a->purge.shrunk_at != 0,
            "a cycling arena's shrink was not held (%zu dirty bytes)", a->dirty_bytes);
  sm_large_thread_done(a->index);
  CHECK_MSG(a->dirty_bytes < SM_MiB && a->purge.shrunk_at == 0, "%zu dirty bytes stayed after the thread's exit",
            a->dirty_bytes);
  sm_free(live);
  a->purge = (sm_purge_state_t){0};
  sm_opt.retain = saved;
  CHECK(check_arena() == 0);
}

int main(void) {
  sm_init();
  purge_decisions();
  quick_lists();
  sm_opt.retain = 1 * SM_MiB; /* exercise purging too */
  random_run(SM_POLICY_BEST, 1);
  random_run(SM_POLICY_FIRST, 2);
  random_run(SM_POLICY_NEXT, 3);
  sm_opt.policy = SM_POLICY_BEST;

  /* coalescing with both neighbours */
  sm_arena_t *a = arena0();
  void *x = sm_malloc(150000), *y = sm_malloc(150000), *z = sm_malloc(150000), *w = sm_malloc(150000);
  CHECK((uint8_t *)y == (uint8_t *)x + sm_usable_size(x) + SM_LB_HDR); /* carved in address order */
  size_t free_before = sm_splay_check(a->root);
  sm_free(y);
  CHECK(sm_splay_check(a->root) == free_before + 1);
  sm_free(x); /* merges with y */
  CHECK(sm_splay_check(a->root) == free_before + 1);
  sm_free(z); /* merges x+y with z: still one block */
  CHECK(sm_splay_check(a->root) == free_before + 1);
  void *big = sm_malloc(370000); /* best fit: the merged x+y+z hole */
  CHECK_MSG(big == x, "best fit did not reuse the coalesced hole (%p vs %p)", big, x);
  CHECK(check_arena() == 0);
  /* the split remainder stays free and is reused */
  void *rest = sm_malloc(70000); /* fits the ~80 KB remainder of the hole */
  CHECK(rest == (uint8_t *)big + sm_usable_size(big) + SM_LB_HDR);
  sm_free(rest);
  sm_free(big);
  sm_free(w);
  CHECK(check_arena() == 0);

  /* in-place growth into a free neighbour, and shrink */
  void *g = sm_malloc(80000);
  void *h = sm_malloc(80000);
  sm_free(h);
  CHECK(sm_realloc(g, 150000) == g);
  CHECK(sm_usable_size(g) >= 150000);
  CHECK(sm_realloc(g, 70000) == g);
  CHECK(check_arena() == 0);
  sm_free(g);

  /* aligned large blocks */
  for (size_t al = 32; al <= 64 * SM_KiB; al *= 2) {
    void *q = sm_memalign(al, 40000 + al);
    CHECK_MSG(q && ((uintptr_t)q & (al - 1)) == 0, "alignment %zu", al);
    memset(q, 1, 40000 + al);
    CHECK(check_arena() == 0);
    sm_free(q);
  }
  CHECK(check_arena() == 0);

  /* everything freed: every chunk is one free block (or was released) */
  size_t blocks = sm_splay_check(a->root);
  CHECK_MSG(blocks == a->chunk_count, "%zu free blocks in %zu chunks", blocks, a->chunk_count);
  CHECK(a->inuse_bytes == 0);

  /* A block freed next to a purged remainder counts as dirty by its own
   * pages only, not the whole merged block: the merged block's dirty part
   * is the bounding range of what was freed since the last purge. */
  sm_large_trim();
  CHECK(a->dirty_bytes == 0);
  sm_opt.retain = (size_t)1 << 40; /* no purge may hide the figure */
  uint8_t *d = sm_malloc(300000);
  memset(d, 1, 300000);
  size_t chunk_free = a->free_bytes;
  sm_free(d);
  CHECK_MSG(a->dirty_bytes > 0 && a->dirty_bytes <= 300000 + 2 * 4096,
            "dirty %zu bytes after freeing 300000 next to %zu clean ones", a->dirty_bytes, chunk_free);
  CHECK(check_arena() == 0);
  uint8_t *e = sm_malloc(100000), *f = sm_malloc(100000);
  memset(e, 2, 100000);
  memset(f, 3, 100000);
  sm_free(e);
  sm_free(f); /* merges with e and the rest: still only what was used */
  CHECK_MSG(a->dirty_bytes <= 300000 + 2 * 4096, "dirty %zu bytes", a->dirty_bytes);
  CHECK(check_arena() == 0);
  CHECK(sm_large_trim() > 0);
  CHECK(a->dirty_bytes == 0 && check_arena() == 0);
  retain_split();
  held_until_exit();
  return test_summary();
}
