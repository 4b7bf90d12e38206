/* An index of address spans [lo, hi), sorted, with a running maximum of
 * the ends so that a lookup stays right when spans overlap or nest (DWARF
 * units and functions, ELF symbols). Push every span, finish once, then
 * find. Part of the symbolizer (symbolize.h); out of memory: util.c's x*
 * functions (one line, exit 2), as everywhere in the tool. */
#ifndef SM_TOOLS_SPANS_H
#define SM_TOOLS_SPANS_H

#include <stddef.h>
#include <stdint.h>

typedef struct sm_span {
  uint64_t lo, hi;         /* [lo, hi) */
  uint32_t order;          /* among spans starting together, the greatest wins */
  uint32_t idx;            /* the caller's: what the span stands for */
} sm_span_t;

typedef struct sm_spans {
  sm_span_t *v;
  uint64_t *maxhi;         /* maxhi[i]: the greatest hi of v[0..i] */
  size_t n, cap;
} sm_spans_t;

void sm_spans_push(sm_spans_t *ss, uint64_t lo, uint64_t hi, uint32_t order, uint32_t idx);
/* Sorts the spans; call once, after the last push. */
void sm_spans_finish(sm_spans_t *ss);
/* Index in v of a span containing pc (the one starting last, and of those
 * the one with the greatest order), or -1. */
long sm_spans_find(const sm_spans_t *ss, uint64_t pc);
void sm_spans_free(sm_spans_t *ss);

#endif
