/* Turning snapshots into statistics: symbolize traces, find each trace's
 * allocation site, group by line / file / function / trace, sort and print
 * them the way Python's tracemalloc does (text) or as JSON. */
#ifndef SM_TOOLS_REPORT_H
#define SM_TOOLS_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tools/snapread.h"
#include "tools/symbolize.h"

typedef enum { BY_LINE, BY_FILE, BY_FUNCTION, BY_TRACE } sm_by_t;
typedef enum { FMT_TEXT, FMT_JSON, FMT_FOLDED } sm_format_t;
/* The moment a snapshot's live figures are taken at: when it was written,
 * or when traced memory was at its peak (version 2). */
typedef enum { AT_END, AT_PEAK } sm_at_t;
/* What entries are sorted on: live bytes or blocks (at the chosen moment),
 * or a flow figure (since tracing started or the last peak reset). */
typedef enum { SORT_SIZE, SORT_COUNT, SORT_ALLOCATIONS, SORT_ALLOCATED, SORT_TEMPORARY } sm_sort_t;

typedef struct sm_report_opts {
  sm_by_t by;
  int limit;               /* <= 0: all */
  bool cumulative;
  bool raw;                /* site = innermost frame, no wrapper skipping */
  bool full_paths;         /* do not shorten paths under the current directory */
  sm_format_t format;
  sm_at_t at;              /* NEW's moment (the only snapshot's for top) */
  sm_at_t old_at;          /* OLD's moment (diff) */
  bool old_at_given;       /* --old-at was given (else old_at follows at) */
  sm_sort_t sort;
  const char **include;    /* globs; a trace is kept if its site matches any */
  int ninclude;
  const char **exclude;    /* globs; a trace is dropped if its site matches any */
  int nexclude;
  const char **alloc_fn;   /* globs: functions that are part of the allocator (the program's xmalloc) */
  int nalloc_fn;
} sm_report_opts_t;

/* One frame after symbolization (an inline chain becomes several). */
typedef struct sm_sframe {
  const char *file;       /* display path or NULL */
  int line;
  const char *function;   /* or NULL */
  const char *module;     /* module path or NULL */
  uint64_t offset;        /* module offset (raw address without module) */
  int raw;                /* index of the snapshot frame it came from (an inline chain shares one) */
} sm_sframe_t;

typedef struct sm_strace {
  const sm_snap_trace_t *raw;
  sm_sframe_t *frames;    /* innermost first */
  int nframes;
  int site;               /* index of the allocation site in frames */
} sm_strace_t;

typedef struct sm_model {
  sm_snap_t *snap;
  sm_strace_t *traces;    /* only those kept by the filters */
  size_t ntraces;
  sm_at_t at;             /* the moment its live figures are taken at */
} sm_model_t;

/* Whether a sort is on flow figures (allocations, allocated, temporary). */
static inline bool sm_sort_is_flow(sm_sort_t s) { return s >= SORT_ALLOCATIONS; }
/* The live bytes and blocks of a trace at its model's moment. */
static inline int64_t sm_live_size(const sm_model_t *m, const sm_strace_t *t) {
  return (int64_t)(m->at == AT_PEAK ? t->raw->peak_size : t->raw->size);
}
static inline int64_t sm_live_count(const sm_model_t *m, const sm_strace_t *t) {
  return (int64_t)(m->at == AT_PEAK ? t->raw->peak_count : t->raw->count);
}

typedef struct sm_tools_ctx sm_tools_ctx_t; /* symbolizer and caches shared by both sides of a diff */
sm_tools_ctx_t *sm_ctx_new(const sm_report_opts_t *o);
void sm_ctx_free(sm_tools_ctx_t *ctx);

/* Builds the model of snap, its live figures at the moment the context's
 * options say for NEW (opts.at); sm_model_build_at names the moment. */
void sm_model_build(sm_tools_ctx_t *ctx, sm_snap_t *snap, sm_model_t *m);
void sm_model_build_at(sm_tools_ctx_t *ctx, sm_snap_t *snap, sm_at_t at, sm_model_t *m);
void sm_model_free(sm_model_t *m);

/* One entry of a model grouped as the context's options say (--by,
 * --cumulative): what the live view shows and follows across snapshots. */
typedef struct sm_group {
  char *key;               /* the grouping key, unique in a grouping (a whole stack for --by trace) */
  char *label;             /* one line naming it: the key, or for --by trace the site and its callers */
  int64_t size, count;     /* live bytes and blocks at the model's moment */
} sm_group_t;

/* Groups m's traces by the context's options into *out (malloc'd, in no
 * particular order; free with sm_groups_free); returns the number of
 * entries. Entries that hold nothing at the model's moment are left out. */
size_t sm_model_group(sm_tools_ctx_t *ctx, const sm_model_t *m, sm_group_t **out);
void sm_groups_free(sm_group_t *g, size_t n);

/* tracemalloc's size format: "2392 KiB", "82.8 KiB", with a sign for diffs. */
void sm_format_size(char *buf, size_t cap, double size, bool sign);

/* One line describing a snapshot. */
void sm_print_header(FILE *out, const char *label, const sm_snap_t *s);

/* The line that says which moment and figures a report shows, when they
 * are not the default (live at the snapshot, by size): text only. */
void sm_print_view(FILE *out, const sm_report_opts_t *o, const sm_model_t *old, const sm_model_t *cur);

/* top (old == NULL) or diff (old != NULL), each model at its own moment
 * (m->at), sorted as the context's options say. Returns 0. */
int sm_report(FILE *out, sm_tools_ctx_t *ctx, sm_model_t *old, sm_model_t *cur);

/* A site as a JSON object: {"file", "line", "function"}, nulls where unknown. */
void sm_json_site(FILE *out, const sm_sframe_t *site);
/* One frame as a JSON object: {"file", "line", "function", "module", "offset"}. */
void sm_json_frame(FILE *out, const sm_sframe_t *f);

/* Text of one frame for folded stacks and messages: "func (file:line)". */
void sm_frame_label(char *buf, size_t cap, const sm_sframe_t *f);
/* The key that `top --by line|file|function` groups a trace's site under
 * ("file:line", "<module+0x...>:0", ...); f NULL for a trace without frames. */
void sm_site_key(char *buf, size_t cap, const sm_sframe_t *f, sm_by_t by);

#endif
