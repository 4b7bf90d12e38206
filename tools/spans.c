/* See spans.h. */
#include "tools/spans.h"

#include <stdlib.h>
#include <string.h>

#include "tools/util.h"

void sm_spans_push(sm_spans_t *ss, uint64_t lo, uint64_t hi, uint32_t order, uint32_t idx) {
  if (ss->n == ss->cap) {
    ss->cap = ss->cap ? ss->cap * 2 : 16;
    ss->v = xrealloc(ss->v, ss->cap * sizeof *ss->v);
  }
  ss->v[ss->n++] = (sm_span_t){lo, hi, order, idx};
}

static int span_cmp(const void *a, const void *b) {
  const sm_span_t *x = a, *y = b;
  if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
  if (x->order != y->order) return x->order < y->order ? -1 : 1;
  return (x->idx > y->idx) - (x->idx < y->idx);
}

void sm_spans_finish(sm_spans_t *ss) {
  if (ss->n == 0) return;
  qsort(ss->v, ss->n, sizeof *ss->v, span_cmp);
  ss->maxhi = xmalloc(ss->n * sizeof *ss->maxhi);
  uint64_t m = 0;
  for (size_t i = 0; i < ss->n; i++) {
    if (ss->v[i].hi > m) m = ss->v[i].hi;
    ss->maxhi[i] = m;
  }
}

long sm_spans_find(const sm_spans_t *ss, uint64_t pc) {
  size_t lo = 0, hi = ss->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ss->v[mid].lo <= pc) lo = mid + 1;
    else hi = mid;
  }
  for (size_t i = lo; i-- > 0;) {
    if (ss->maxhi[i] <= pc) break;
    if (ss->v[i].hi > pc) return (long)i;
  }
  return -1;
}

void sm_spans_free(sm_spans_t *ss) {
  free(ss->v);
  free(ss->maxhi);
  memset(ss, 0, sizeof *ss);
}
