/* Helpers for tracer tests: programs run under the preload with trace=1,
 * write snapshots, and read them back with the tool's own reader. A trace is
 * attributed to a function of the test program through dladdr() on its
 * innermost frame (test programs are linked with -rdynamic). */
#ifndef SM_TESTS_SNAPTEST_H
#define SM_TESTS_SNAPTEST_H

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testhelper.h"
#include "tools/snapread.h"

static inline void snaptest_read(const char *path, sm_snap_t *s) {
  char err[256];
  if (sm_snap_read(path, s, err, sizeof err) != 0) {
    fprintf(stderr, "cannot read snapshot %s: %s\n", path, err);
    exit(1);
  }
}

typedef struct snaptest_find {
  const char *path;
  uintptr_t bias;
  int found;
} snaptest_find_t;

static inline int snaptest_find_module(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  snaptest_find_t *f = arg;
  const char *name = info->dlpi_name;
  char exe[4096];
  if (!name || !name[0]) { /* the main program */
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    name = exe;
  }
  if (strcmp(name, f->path) == 0) {
    f->bias = info->dlpi_addr;
    f->found = 1;
    return 1;
  }
  return 0;
}

/* Address in *this* process of frame k of trace t (the snapshot may come
 * from another process, e.g. an exec'd child, loaded at other addresses),
 * or 0 when its module is unknown or not loaded here. */
static inline uintptr_t snaptest_addr(const sm_snap_t *s, const sm_snap_trace_t *t, unsigned k) {
  if (k >= t->nframes || t->frames[k].module == SM_SNAP_NO_MODULE) return 0;
  snaptest_find_t f = {s->modules[t->frames[k].module].path, 0, 0};
  dl_iterate_phdr(snaptest_find_module, &f);
  return f.found ? (uintptr_t)(f.bias + t->frames[k].offset) : 0;
}

/* Name of the function containing return address a (looked up at a - 1). */
static inline const char *snaptest_func(uintptr_t a) {
  Dl_info info;
  if (!a || !dladdr((void *)(a - 1), &info) || !info.dli_sname) return "";
  return info.dli_sname;
}

/* Sums traces whose innermost frame is in function fn. */
static inline void snaptest_sum(const sm_snap_t *s, const char *fn, uint64_t *size, uint64_t *count) {
  *size = *count = 0;
  for (size_t i = 0; i < s->ntraces; i++) {
    const sm_snap_trace_t *t = &s->traces[i];
    if (t->nframes && strcmp(snaptest_func(snaptest_addr(s, t, 0)), fn) == 0) {
      *size += t->size;
      *count += t->count;
    }
  }
}

/* A site's figures: those of the traces whose innermost frame is in
 * function fn, summed (the peak and flow figures are 0 in version 1). */
typedef struct snaptest_site {
  uint64_t size, count, peak_size, peak_count, allocations, allocated, temporary;
} snaptest_site_t;

static inline snaptest_site_t snaptest_site(const sm_snap_t *s, const char *fn) {
  snaptest_site_t r = {0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < s->ntraces; i++) {
    const sm_snap_trace_t *t = &s->traces[i];
    if (!t->nframes || strcmp(snaptest_func(snaptest_addr(s, t, 0)), fn) != 0) continue;
    r.size += t->size, r.count += t->count, r.peak_size += t->peak_size, r.peak_count += t->peak_count;
    r.allocations += t->allocations, r.allocated += t->allocated, r.temporary += t->temporary;
  }
  return r;
}

/* CHECK that two integers are equal, printing both when they are not. */
#define CHECK_EQ_U(got, want)                                                                      \
  CHECK_MSG((uint64_t)(got) == (uint64_t)(want), "%llu, expected %llu", (unsigned long long)(got), \
            (unsigned long long)(want))

/* The public API, looked up at run time as include/snapmalloc.h advises, so
 * the test programs also start (and skip) without the library. */
static int (*snaptest_snapshot)(const char *);
static size_t (*snaptest_traced)(size_t *);
static void (*snaptest_reset)(void);
#define snapmalloc_snapshot(p) snaptest_snapshot(p)
#define snapmalloc_traced_memory(p) snaptest_traced(p)
#define snapmalloc_reset_peak() snaptest_reset()

/* True if the library is preloaded (and so the API is there). */
static inline int snaptest_tracing(void) {
  snaptest_snapshot = (int (*)(const char *))dlsym(RTLD_DEFAULT, "snapmalloc_snapshot");
  snaptest_traced = (size_t(*)(size_t *))dlsym(RTLD_DEFAULT, "snapmalloc_traced_memory");
  snaptest_reset = (void (*)(void))dlsym(RTLD_DEFAULT, "snapmalloc_reset_peak");
  return snaptest_snapshot && snaptest_traced && snaptest_reset;
}

#endif
