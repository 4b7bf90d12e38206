/* The checked build's structure checks (see check.h and docs/checks.md).
 * Built only with -Dchecks=true. Each failure is reported through
 * sm_assert_fail (msg.c): one line, no allocation, then abort. */
#include "allocator/check.h"

#include "allocator/internal.h"

/* "<checker>(<what>) == 0 (returned <code>)" as the assertion's expression:
 * the codes are listed in the checkers' own sources. */
static SM_NORETURN SM_COLD void check_failed(const char *checker, const void *what, size_t code, const char *file,
                                             int line) {
  char expr[160];
  sm_snprintf(expr, sizeof expr, "%s(%p) == 0 (returned %zu)", checker, what, code);
  sm_assert_fail(expr, file, line);
}

void sm_check_page_at(const sm_page_t *pg, const char *file, int line) {
  size_t r = sm_pool_check(pg);
  if (SM_UNLIKELY(r != 0)) check_failed("sm_pool_check", pg, r, file, line);
}

/* Unlocks per arena, counted under that arena's lock. */
static unsigned arena_unlocks[SM_ARENA_COUNT];

void sm_check_arena_unlock_at(sm_arena_t *a, const char *file, int line) {
  if (++arena_unlocks[a->index] % SM_CHECK_ARENA_EVERY != 0) return;
  size_t r = sm_large_check(a);
  if (SM_UNLIKELY(r != 0)) check_failed("sm_large_check", a, r, file, line);
}

static void check_pagelist(const sm_page_t *pg, const char *file, int line) {
  for (; pg; pg = pg->next) sm_check_page_at(pg, file, line);
}

void sm_check_fork_at(const char *file, int line) {
  for (unsigned i = 0; i < SM_ARENA_COUNT; i++) {
    size_t r = sm_large_check(&sm_arenas[i]);
    if (SM_UNLIKELY(r != 0)) check_failed("sm_large_check", &sm_arenas[i], r, file, line);
  }
  /* Only the forking thread's own pages: the others' owners may be in the
   * middle of an operation on them. */
  sm_heap_t *h = sm_heap_tls;
  size_t r = sm_heap_check(h);
  if (SM_UNLIKELY(r != 0)) check_failed("sm_heap_check", h, r, file, line);
  if (h == &sm_heap_empty) return;
  for (unsigned cls = 0; cls < SM_CLASS_COUNT; cls++) {
    check_pagelist(h->avail[cls].first, file, line);
    check_pagelist(h->full[cls].first, file, line);
  }
}
