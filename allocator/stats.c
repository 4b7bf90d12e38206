/* Statistics for mallinfo2, malloc_stats and `verbose=1`, and the walk over
 * every live block that the leak scanner uses. Computed on demand by walking
 * the segment registry, so the fast paths keep no counters. The figures are
 * a moment's view: other threads may be allocating meanwhile. */
#include "allocator/internal.h"

static void add_segment(sm_segment_t *seg, void *arg) {
  sm_stats_t *st = arg;
  st->segments++;
  if (seg->kind != SM_SEG_POOL) return;
  for (uint32_t i = 0; i < seg->page_count; i++) {
    const sm_page_t *pg = &seg->pages[i];
    /* Owners change these meanwhile (relaxed stores, pool.c): a moment's view. */
    if (__atomic_load_n(&pg->assigned, __ATOMIC_RELAXED))
      st->pool_inuse += (size_t)__atomic_load_n(&pg->used, __ATOMIC_RELAXED) *
                        __atomic_load_n(&pg->block_size, __ATOMIC_RELAXED);
  }
}

void sm_stats_get(sm_stats_t *st) {
  *st = (sm_stats_t){0};
  sm_segment_foreach(add_segment, st);
  /* Without the arena locks: this may run at exit from a signal handler
   * that interrupted an allocation (large.c stores them atomically). */
  for (unsigned i = 0; i < SM_ARENA_COUNT; i++) {
    st->large_inuse += __atomic_load_n(&sm_arenas[i].inuse_bytes, __ATOMIC_RELAXED);
    /* Kept blocks (quick lists) are free to the program. */
    st->large_free += __atomic_load_n(&sm_arenas[i].free_bytes, __ATOMIC_RELAXED) +
                      __atomic_load_n(&sm_arenas[i].quick_bytes, __ATOMIC_RELAXED);
  }
  st->huge_inuse = sm_huge_mapped();
  st->mapped = sm_segment_mapped();
  st->meta = sm_meta_mapped();
  st->heaps = sm_heap_count();
}

static void line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(int fd, const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  size_t n = sm_vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  buf[n++] = '\n';
  sm_write_all(fd, buf, n);
}

void sm_stats_print(int fd) {
  sm_stats_t st;
  sm_stats_get(&st);
  line(fd, "snapmalloc: stats: mapped %zu bytes in %zu segments, metadata %zu bytes, %zu thread heaps",
       st.mapped, st.segments, st.meta, st.heaps);
  line(fd, "snapmalloc: stats: in use: pools %zu (in pages of %zu), large %zu, huge %zu bytes; free large blocks %zu bytes",
       st.pool_inuse, __atomic_load_n(&sm_pool_assigned_bytes, __ATOMIC_RELAXED), st.large_inuse, st.huge_inuse,
       st.large_free);
  line(fd, "snapmalloc: stats: purged %zu bytes in %zu calls; purge passes: %zu full, %zu aged; huge-page advice: %zu calls",
       __atomic_load_n(&sm_os_purge_bytes, __ATOMIC_RELAXED), __atomic_load_n(&sm_os_purge_calls, __ATOMIC_RELAXED),
       __atomic_load_n(&sm_os_purge_all, __ATOMIC_RELAXED), __atomic_load_n(&sm_os_purge_old, __ATOMIC_RELAXED),
       __atomic_load_n(&sm_os_thp_calls, __ATOMIC_RELAXED));
  if (__atomic_load_n(&sm_os_host_reclaim, __ATOMIC_RELAXED) == SM_OS_HOST_RECLAIMS && sm_opt.thp == SM_THP_AUTO)
    line(fd, "snapmalloc: stats: thp=auto asked for no huge pages: the host takes freed memory back "
             "(virtio balloon free page reporting; thp=dense asks all the same)");
}

typedef struct walk_ctx {
  sm_block_fn fn;
  void *arg;
} walk_ctx_t;

static void walk_segment(sm_segment_t *seg, void *arg) {
  walk_ctx_t *w = arg;
  switch (seg->kind) {
  case SM_SEG_POOL: sm_pool_walk(seg, w->fn, w->arg); break;
  case SM_SEG_LARGE: sm_large_walk(seg, w->fn, w->arg); break;
  case SM_SEG_HUGE:
    w->fn((uintptr_t)seg + seg->huge_offset, seg->huge_request, seg->huge_trace, w->arg);
    break;
  }
}

void sm_walk_blocks(sm_block_fn fn, void *arg) {
  walk_ctx_t w = {fn, arg};
  sm_segment_foreach_locked(walk_segment, &w);
}
