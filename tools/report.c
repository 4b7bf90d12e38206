/* Statistics in tracemalloc's terms (see report.h).
 *
 * Site attribution: the site of an allocation is the innermost frame that is
 * not in the allocation runtime: the C library (strdup, fopen's buffer,
 * getline, asprintf, qsort...), the dynamic loader, the C++ runtime
 * (operator new, std::string's out-of-line members) or libsnapmalloc itself,
 * nor a function named "operator new..." anywhere, nor code from system
 * headers (/usr/include: the C++ library's templates, such as std::allocator,
 * compiled into the program), nor a function the user named with
 * --alloc-fn (the program's own wrappers, as valgrind's option of that
 * name). If every frame is in the runtime, the innermost frame is the
 * site. In a trace with Python frames (docs/python.md), the interpreter's
 * own native frames inside the innermost Python frame are passed over too:
 * what the interpreter allocates running a line is charged to that line,
 * as tracemalloc charges it, while an extension module's or a library's
 * allocation stays at its C line. --raw turns this off. */
#include "tools/report.h"

#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#include "tools/intern.h"
#include "tools/util.h"

/* ---------------------------------------------------------------- context */

/* What one address of one module symbolized to, in display form: kept
 * for the context's life, so that a model built again (the live view's
 * refreshes, diff's second snapshot) looks each address up once and
 * builds no display string twice. */
typedef struct frame_memo {
  UT_hash_handle hh;
  struct memo_key {          /* no padding: hashed as bytes */
    int64_t handle;         /* the symbolizer's module */
    uint64_t offset;
  } key;
  int n;                    /* frames of its inline chain; 0: nothing known */
  struct memo_frame {
    const char *file, *function; /* interned display forms */
    int line;
  } f[];
} frame_memo_t;

typedef struct modkey {
  UT_hash_handle hh;
  char *key;   /* path + '\0' + hex build-id */
  int handle;
  bool warned;
} modkey_t;

/* A kind of warning, said once per model with a count, not once per
 * module: a hostile snapshot can name 65,536 modules. */
typedef struct warning {
  unsigned count;          /* since the last flush */
  const char *first;       /* display form of the first one (interned) */
} warning_t;

struct sm_tools_ctx {
  sm_report_opts_t opts;
  sm_symbolizer_t *sym;
  modkey_t *mods;
  sm_intern_t *strings;    /* every string the models point to */
  char cwd[PATH_MAX];
  size_t cwdlen;
  warning_t missing, mismatch, deep;
  frame_memo_t *memo;
};

/* Frames one trace may have once inline chains are expanded (8 per
 * recorded frame on average): bounds the model's memory by the file's size. */
#define MAX_TRACE_FRAMES (8 * SM_SNAP_MAX_FRAMES)
/* Display forms of strings taken from the snapshot itself are cut here. */
#define DISPLAY_MAX 1024

sm_tools_ctx_t *sm_ctx_new(const sm_report_opts_t *o) {
  sm_tools_ctx_t *c = xcalloc(1, sizeof *c);
  c->opts = *o;
  c->sym = sm_sym_new();
  c->strings = sm_intern_new();
  if (!getcwd(c->cwd, sizeof c->cwd)) c->cwd[0] = '\0';
  c->cwdlen = strlen(c->cwd);
  return c;
}

void sm_ctx_free(sm_tools_ctx_t *c) {
  modkey_t *m, *mt;
  HASH_ITER(hh, c->mods, m, mt) {
    HASH_DEL(c->mods, m);
    free(m->key);
    free(m);
  }
  frame_memo_t *f, *ft;
  HASH_ITER(hh, c->memo, f, ft) {
    HASH_DEL(c->memo, f);
    free(f);
  }
  sm_intern_free(c->strings);
  sm_sym_free(c->sym);
  free(c);
}

static const char *intern(sm_tools_ctx_t *c, const char *s) { return sm_intern(c->strings, s); }

/* The display form of s (see sm_escape), interned; max > 0 cuts it. */
static const char *intern_display(sm_tools_ctx_t *c, const char *s, size_t max) {
  if (!s || (sm_plain(s) && (!max || strlen(s) <= max))) return intern(c, s);
  strbuf_t b = {0};
  sm_escape(&b, s, max);
  const char *r = intern(c, b.s);
  free(b.s);
  return r;
}

/* Lexically normalises "a/./b/../c" and shortens paths under the cwd. */
static const char *display_path(sm_tools_ctx_t *c, const char *path) {
  if (!path) return NULL;
  char buf[PATH_MAX];
  size_t n = 0;
  const char *p = path;
  bool abs = *p == '/';
  if (abs) buf[n++] = '/';
  while (*p) {
    while (*p == '/') p++;
    const char *e = p;
    while (*e && *e != '/') e++;
    size_t len = (size_t)(e - p);
    if (len == 0) break;
    if (len == 1 && p[0] == '.') {
      /* skip */
    } else if (len == 2 && p[0] == '.' && p[1] == '.' && n > (abs ? 1u : 0u) &&
               !(n >= 2 && buf[n - 1] == '.' && buf[n - 2] == '.' && (n == 2 || buf[n - 3] == '/'))) {
      while (n > (abs ? 1u : 0u) && buf[n - 1] != '/') n--;
      if (n > (abs ? 1u : 0u)) n--; /* the slash */
    } else {
      if (n && buf[n - 1] != '/') buf[n++] = '/';
      if (n + len >= sizeof buf) return intern_display(c, path, 0);
      memcpy(buf + n, p, len);
      n += len;
    }
    p = e;
  }
  buf[n] = '\0';
  const char *out = buf;
  if (!c->opts.full_paths && c->cwdlen > 1 && strncmp(buf, c->cwd, c->cwdlen) == 0 && buf[c->cwdlen] == '/')
    out = buf + c->cwdlen + 1;
  return intern_display(c, out, 0);
}

static void warn_once(sm_tools_ctx_t *c, warning_t *w, const char *path) {
  if (w->count++ == 0) w->first = intern_display(c, path, DISPLAY_MAX);
}

/* Prints what was counted since the last call: one line per kind. */
static void flush_warnings(sm_tools_ctx_t *c) {
  warning_t *w = &c->mismatch;
  if (w->count == 1)
    fprintf(stderr, "snapmalloc: warning: %s: build-id does not match the snapshot; its frames are shown as offsets\n",
            w->first);
  else if (w->count)
    fprintf(stderr, "snapmalloc: warning: %u modules do not match the snapshot's build-ids (%s and %u more); their "
            "frames are shown as offsets\n", w->count, w->first, w->count - 1);
  w = &c->missing;
  if (w->count == 1)
    fprintf(stderr, "snapmalloc: warning: %s: cannot read it; its frames are shown as offsets\n", w->first);
  else if (w->count)
    fprintf(stderr, "snapmalloc: warning: %u modules cannot be read (%s and %u more); their frames are shown as "
            "offsets\n", w->count, w->first, w->count - 1);
  w = &c->deep;
  if (w->count)
    fprintf(stderr, "snapmalloc: warning: %u trace%s more than %d frames with inlined calls expanded; the outermost "
            "are left out\n", w->count, w->count == 1 ? " has" : "s have", MAX_TRACE_FRAMES);
  c->missing.count = c->mismatch.count = c->deep.count = 0;
}

static int module_handle(sm_tools_ctx_t *c, const sm_snap_module_t *m) {
  /* key: path, NUL, build-id in hex (the path is any length the reader accepts) */
  strbuf_t key = {0};
  sb_puts(&key, m->path);
  sb_putc(&key, '\0');
  for (uint32_t i = 0; i < m->build_id_len; i++) sb_printf(&key, "%02x", m->build_id[i]);
  modkey_t *e;
  HASH_FIND(hh, c->mods, key.s, key.len, e);
  if (e) {
    free(key.s);
    return e->handle;
  }
  e = xcalloc(1, sizeof *e);
  e->key = key.s;
  e->handle = sm_sym_add_module(c->sym, m->path, m->build_id, m->build_id_len);
  HASH_ADD_KEYPTR(hh, c->mods, e->key, key.len, e);
  sm_sym_status_t st = sm_sym_status(c->sym, e->handle);
  if (st == SM_SYM_MISMATCH) warn_once(c, &c->mismatch, m->path);
  else if (st == SM_SYM_MISSING && m->path[0] && m->path[0] != '[' && strncmp(m->path, "linux-vdso", 10) != 0)
    warn_once(c, &c->missing, m->path);
  return e->handle;
}

static bool runtime_module(const char *module) {
  const char *b = sm_base_name(module);
  if (!b) return false;
  return strncmp(b, "libc.so", 7) == 0 || strncmp(b, "libc-", 5) == 0 || strncmp(b, "ld-linux", 8) == 0 ||
         strncmp(b, "libstdc++.so", 12) == 0 || strncmp(b, "libsnapmalloc", 13) == 0;
}

/* The raw file name of a frame, before display_path shortened it. */
static bool system_header(const char *file) {
  return file && (strncmp(file, "/usr/include/", 13) == 0 || strncmp(file, "/usr/local/include/", 19) == 0);
}

static bool runtime_frame(const sm_report_opts_t *o, const sm_sframe_t *f) {
  if (f->function && strncmp(f->function, "operator new", 12) == 0) return true;
  /* --alloc-fn: the program's own allocation wrappers (xmalloc, g_malloc) */
  for (int k = 0; f->function && k < o->nalloc_fn; k++)
    if (fnmatch(o->alloc_fn[k], f->function, 0) == 0) return true;
  /* Template code of the C++ library compiled into the program (std::vector
   * growing through std::allocator, say) comes from system headers. */
  if (system_header(f->file)) return true;
  return runtime_module(f->module);
}

/* ---------------------------------------------------------------- model */

/* Appends f; false (and f dropped) once the trace has MAX_TRACE_FRAMES. */
static bool push_frame(sm_strace_t *t, int *cap, sm_sframe_t f) {
  if (t->nframes == MAX_TRACE_FRAMES) return false;
  if (t->nframes == *cap) {
    *cap = *cap ? *cap * 2 : 16;
    t->frames = xrealloc(t->frames, (size_t)*cap * sizeof *t->frames);
  }
  t->frames[t->nframes++] = f;
  return true;
}

static bool glob_hit(const char *pat, const sm_sframe_t *f) {
  return (f->file && fnmatch(pat, f->file, 0) == 0) || (f->function && fnmatch(pat, f->function, 0) == 0) ||
         (f->module && (fnmatch(pat, f->module, 0) == 0 || fnmatch(pat, sm_base_name(f->module), 0) == 0));
}

/* The snapshot's module index of frame i of t (SM_SNAP_PY_MODULE: a
 * Python frame). */
static uint32_t raw_module(const sm_strace_t *t, int i) { return t->raw->frames[t->frames[i].raw].module; }

/* Appends the frames of one recorded frame of a trace: its inline chain
 * when the symbolizer knows it. False once the trace is full. */
static bool add_frames(sm_tools_ctx_t *c, sm_strace_t *t, int *cap, const sm_snap_t *snap, int *handles,
                       const char **paths, unsigned k) {
  const sm_snap_frame_t *rf = &t->raw->frames[k];
  sm_sframe_t f = {NULL, 0, NULL, NULL, rf->offset, (int)k};
  if (rf->module == SM_SNAP_PY_MODULE) { /* the reader checked the index */
    const sm_snap_pyframe_t *py = &snap->pyframes[rf->offset];
    f.file = display_path(c, py->file);
    f.line = (int)py->line;
    f.function = py->function[0] ? intern_display(c, py->function, DISPLAY_MAX) : NULL;
    f.offset = 0;
    return push_frame(t, cap, f);
  }
  if (rf->module == SM_SNAP_NO_MODULE) return push_frame(t, cap, f);
  f.module = paths[rf->module];
  if (handles[rf->module] == -2) handles[rf->module] = module_handle(c, &snap->modules[rf->module]);
  struct memo_key key = {handles[rf->module], rf->offset};
  frame_memo_t *m;
  HASH_FIND(hh, c->memo, &key, sizeof key, m);
  if (!m) {
    sm_sym_frame_t out[32];
    int n = sm_sym_lookup(c->sym, handles[rf->module], rf->offset, true, out, 32);
    if (n < 0) n = 0;
    m = xcalloc(1, sizeof *m + (size_t)n * sizeof m->f[0]);
    m->key = key;
    m->n = n;
    for (int j = 0; j < n; j++)
      m->f[j] = (struct memo_frame){display_path(c, out[j].file), intern_display(c, out[j].function, 0), out[j].line};
    HASH_ADD(hh, c->memo, key, sizeof key, m);
  }
  if (m->n == 0) return push_frame(t, cap, f);
  for (int j = 0; j < m->n; j++) {
    sm_sframe_t g = f;
    g.file = m->f[j].file;
    g.line = m->f[j].line;
    g.function = m->f[j].function;
    if (!push_frame(t, cap, g)) return false;
  }
  return true;
}

void sm_model_build(sm_tools_ctx_t *c, sm_snap_t *snap, sm_model_t *m) { sm_model_build_at(c, snap, c->opts.at, m); }

void sm_model_build_at(sm_tools_ctx_t *c, sm_snap_t *snap, sm_at_t at, sm_model_t *m) {
  m->snap = snap;
  m->at = at;
  m->traces = xcalloc(snap->ntraces ? snap->ntraces : 1, sizeof *m->traces);
  m->ntraces = 0;
  /* One symbolizer handle and display path per module of this snapshot. */
  int *handles = xcalloc(snap->nmodules ? snap->nmodules : 1, sizeof *handles);
  const char **paths = xcalloc(snap->nmodules ? snap->nmodules : 1, sizeof *paths);
  for (uint32_t k = 0; k < snap->nmodules; k++) {
    handles[k] = -2; /* resolved on first use: unused modules cost nothing */
    paths[k] = intern_display(c, snap->modules[k].path, DISPLAY_MAX);
  }
  for (size_t i = 0; i < snap->ntraces; i++) {
    const sm_snap_trace_t *rt = &snap->traces[i];
    if (rt->id == 0) continue; /* leak counts of untraced blocks: only `leaks` reads them */
    sm_strace_t t = {rt, NULL, 0, 0};
    int cap = 0;
    for (unsigned k = 0; k < rt->nframes; k++) {
      if (!add_frames(c, &t, &cap, snap, handles, paths, k)) {
        c->deep.count++;
        break;
      }
    }
    t.site = 0;
    if (!c->opts.raw) {
      int py = 0; /* the innermost Python frame, or nframes */
      while (py < t.nframes && raw_module(&t, py) != SM_SNAP_PY_MODULE) py++;
      int s = 0;
      while (s < t.nframes && (runtime_frame(&c->opts, &t.frames[s]) ||
                               (s < py && py < t.nframes && raw_module(&t, s) == snap->py_module)))
        s++;
      t.site = s < t.nframes ? s : 0;
    }
    bool keep = true;
    if (t.nframes && c->opts.ninclude) {
      keep = false;
      for (int k = 0; k < c->opts.ninclude && !keep; k++) keep = glob_hit(c->opts.include[k], &t.frames[t.site]);
    }
    for (int k = 0; keep && t.nframes && k < c->opts.nexclude; k++)
      if (glob_hit(c->opts.exclude[k], &t.frames[t.site])) keep = false;
    if (keep) m->traces[m->ntraces++] = t;
    else free(t.frames);
  }
  free(handles);
  free(paths);
  flush_warnings(c);
}

void sm_model_free(sm_model_t *m) {
  for (size_t i = 0; i < m->ntraces; i++) free(m->traces[i].frames);
  free(m->traces);
  m->traces = NULL;
  m->ntraces = 0;
}

/* ---------------------------------------------------------------- labels */

static void frame_key(char *buf, size_t cap, const sm_sframe_t *f, sm_by_t by) {
  const char *mod = f->module ? sm_base_name(f->module) : NULL;
  switch (by) {
  case BY_FILE:
    if (f->file) snprintf(buf, cap, "%s", f->file);
    else if (mod) snprintf(buf, cap, "<%s>", mod);
    else snprintf(buf, cap, "<unknown>");
    return;
  case BY_FUNCTION:
    if (f->function) snprintf(buf, cap, "%s", f->function);
    else if (mod) snprintf(buf, cap, "<%s+0x%llx>", mod, (unsigned long long)f->offset);
    else snprintf(buf, cap, "<0x%llx>", (unsigned long long)f->offset);
    return;
  default:
    if (f->file) snprintf(buf, cap, "%s:%d", f->file, f->line);
    else if (f->function && mod) snprintf(buf, cap, "<%s>:0 (%s)", mod, f->function);
    else if (mod) snprintf(buf, cap, "<%s+0x%llx>:0", mod, (unsigned long long)f->offset);
    else snprintf(buf, cap, "<0x%llx>:0", (unsigned long long)f->offset);
    return;
  }
}

void sm_site_key(char *buf, size_t cap, const sm_sframe_t *f, sm_by_t by) {
  sm_sframe_t none = {0};
  frame_key(buf, cap, f ? f : &none, by);
}

void sm_frame_label(char *buf, size_t cap, const sm_sframe_t *f) {
  const char *mod = f->module ? sm_base_name(f->module) : "?";
  if (f->function && f->file) snprintf(buf, cap, "%s (%s:%d)", f->function, f->file, f->line);
  else if (f->function) snprintf(buf, cap, "%s (%s)", f->function, mod);
  else snprintf(buf, cap, "%s+0x%llx", mod, (unsigned long long)f->offset);
}

/* ---------------------------------------------------------------- grouping */

/* The figures an entry sums for each snapshot: live bytes and blocks when
 * it was written and at its peak, then the flow (version 2). */
enum { F_SIZE, F_COUNT, F_PEAK_SIZE, F_PEAK_COUNT, F_ALLOCATIONS, F_ALLOCATED, F_TEMPORARY, F_N };
static const char *const fig_names[F_N] = {"size", "count", "peak_size", "peak_count",
                                           "allocations", "allocated", "temporary"};

typedef struct stat {
  UT_hash_handle hh;
  char *key;
  const sm_strace_t *rep;  /* a trace of the group (its site frame, and all frames for BY_TRACE) */
  int rep_frame;           /* the frame of rep that the key names */
  /* Per snapshot (OLD [0], NEW [1]). The reader keeps each figure's sum
   * over a snapshot below 2^63, and a trace counts at most once per key,
   * so these and their differences fit. */
  int64_t fig[2][F_N];
  const sm_strace_t *last; /* the trace last counted here (cumulative: once per trace) */
} stat_t;

static stat_t *stat_get(stat_t **tab, const char *key, const sm_strace_t *t, int frame) {
  stat_t *s;
  HASH_FIND_STR(*tab, key, s);
  if (!s) {
    s = xcalloc(1, sizeof *s);
    s->key = xstrdup(key);
    s->rep = t;
    s->rep_frame = frame;
    HASH_ADD_KEYPTR(hh, *tab, s->key, strlen(s->key), s);
  }
  return s;
}

static void trace_key(strbuf_t *sb, const sm_strace_t *t) {
  char one[PATH_MAX + 256];
  for (int i = t->site; i < t->nframes; i++) {
    frame_key(one, sizeof one, &t->frames[i], BY_LINE);
    sb_puts(sb, one);
    sb_putc(sb, '|');
    if (t->frames[i].function) sb_puts(sb, t->frames[i].function);
    sb_putc(sb, '\n');
  }
  if (t->nframes == 0) sb_puts(sb, "<no frames>");
}

static void charge(stat_t *s, const sm_strace_t *t, int side) {
  const sm_snap_trace_t *r = t->raw;
  const uint64_t v[F_N] = {r->size, r->count, r->peak_size, r->peak_count, r->allocations, r->allocated, r->temporary};
  for (int i = 0; i < F_N; i++) s->fig[side][i] += (int64_t)v[i];
}

/* Adds the traces of m to the entries of tab, on side 0 (OLD) or 1. */
static void group(const sm_report_opts_t *o, const sm_model_t *m, stat_t **tab, int side) {
  char key[PATH_MAX + 256];
  for (size_t i = 0; i < m->ntraces; i++) {
    const sm_strace_t *t = &m->traces[i];
    if (o->by == BY_TRACE) {
      strbuf_t sb = {0};
      trace_key(&sb, t);
      charge(stat_get(tab, sb.s ? sb.s : "", t, t->site), t, side);
      free(sb.s);
      continue;
    }
    if (t->nframes == 0) {
      sm_sframe_t none = {NULL, 0, NULL, NULL, 0, -1};
      frame_key(key, sizeof key, &none, o->by);
      charge(stat_get(tab, key, t, -1), t, side);
      continue;
    }
    int last = o->cumulative ? t->nframes : t->site + 1;
    for (int f = t->site; f < last; f++) {
      frame_key(key, sizeof key, &t->frames[f], o->by);
      stat_t *s = stat_get(tab, key, t, f);
      /* each key once per trace, as tracemalloc's cumulative mode counts */
      if (s->last == t) continue;
      s->last = t;
      charge(s, t, side);
    }
  }
}

/* The one-line label of a --by trace entry: its site's key, then the
 * functions that called it, innermost first ("a.c:12 < parse < main"). */
static void trace_label(strbuf_t *sb, const sm_strace_t *t) {
  char one[PATH_MAX + 256];
  if (t->nframes == 0) {
    sb_puts(sb, "<no frames>:0");
    return;
  }
  sm_site_key(one, sizeof one, &t->frames[t->site], BY_LINE);
  sb_puts(sb, one);
  for (int i = t->site + 1; i < t->nframes; i++) {
    const sm_sframe_t *f = &t->frames[i];
    if (f->function) sb_printf(sb, " < %s", f->function);
    else sm_site_key(one, sizeof one, f, BY_FUNCTION), sb_printf(sb, " < %s", one);
  }
}

size_t sm_model_group(sm_tools_ctx_t *c, const sm_model_t *m, sm_group_t **out) {
  stat_t *tab = NULL;
  group(&c->opts, m, &tab, 1);
  int fs = m->at == AT_PEAK ? F_PEAK_SIZE : F_SIZE, fc = m->at == AT_PEAK ? F_PEAK_COUNT : F_COUNT;
  sm_group_t *g = xcalloc(HASH_COUNT(tab) + 1, sizeof *g);
  size_t n = 0;
  stat_t *s, *st;
  HASH_ITER(hh, tab, s, st) {
    HASH_DEL(tab, s);
    if (s->fig[1][fs] || s->fig[1][fc]) {
      sm_group_t *e = &g[n++];
      e->size = s->fig[1][fs];
      e->count = s->fig[1][fc];
      e->key = s->key; /* handed over */
      if (c->opts.by == BY_TRACE) {
        strbuf_t sb = {0};
        trace_label(&sb, s->rep);
        e->label = sb.s;
      } else {
        e->label = xstrdup(s->key);
      }
    } else {
      free(s->key);
    }
    free(s);
  }
  *out = g;
  return n;
}

void sm_groups_free(sm_group_t *g, size_t n) {
  for (size_t i = 0; i < n; i++) free(g[i].key), free(g[i].label);
  free(g);
}

/* What a report shows, per snapshot (OLD [0], NEW [1]): the figures that
 * are its live bytes and blocks (at its moment), and the figure entries
 * are sorted on with its tie-break. */
typedef struct view {
  int size[2], count[2], key[2], second[2];
  bool diff, flow;
} view_t;

static view_t make_view(const sm_report_opts_t *o, const sm_model_t *old, const sm_model_t *cur) {
  view_t v = {.diff = old != NULL, .flow = sm_sort_is_flow(o->sort)};
  for (int side = 0; side < 2; side++) {
    bool peak = (side ? cur : old) && (side ? cur : old)->at == AT_PEAK;
    v.size[side] = peak ? F_PEAK_SIZE : F_SIZE;
    v.count[side] = peak ? F_PEAK_COUNT : F_COUNT;
    static const int flow_key[] = {[SORT_ALLOCATIONS] = F_ALLOCATIONS, [SORT_ALLOCATED] = F_ALLOCATED,
                                   [SORT_TEMPORARY] = F_TEMPORARY};
    if (v.flow) {
      v.key[side] = flow_key[o->sort];
      v.second[side] = o->sort == SORT_ALLOCATIONS ? F_ALLOCATED : F_ALLOCATIONS;
    } else {
      v.key[side] = o->sort == SORT_COUNT ? v.count[side] : v.size[side];
      v.second[side] = o->sort == SORT_COUNT ? v.size[side] : v.count[side];
    }
  }
  return v;
}

/* NEW's figure ix[1] less OLD's figure ix[0]. */
static int64_t change(const stat_t *s, const int ix[2]) { return s->fig[1][ix[1]] - s->fig[0][ix[0]]; }

/* An entry with nothing to show in this view (a trace that held nothing
 * at the chosen moment, or allocated nothing in the flow views). */
static bool shows_nothing(const view_t *v, const stat_t *s) {
  for (int side = 0; side < 2; side++)
    if (s->fig[side][v->key[side]] || s->fig[side][v->second[side]]) return false;
  return true;
}

static int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

static int cmp_top(const void *a, const void *b, void *arg) {
  const view_t *v = arg;
  const stat_t *x = *(stat_t *const *)a, *y = *(stat_t *const *)b;
  int64_t kx = x->fig[1][v->key[1]], ky = y->fig[1][v->key[1]];
  if (kx != ky) return kx > ky ? -1 : 1;
  kx = x->fig[1][v->second[1]], ky = y->fig[1][v->second[1]];
  if (kx != ky) return kx > ky ? -1 : 1;
  return strcmp(y->key, x->key);
}

/* tracemalloc's order for compare_to: the absolute change of the key,
 * the key, the absolute change of the tie-break, the tie-break. */
static int cmp_diff(const void *a, const void *b, void *arg) {
  const view_t *v = arg;
  const stat_t *x = *(stat_t *const *)a, *y = *(stat_t *const *)b;
  int64_t dx = abs64(change(x, v->key)), dy = abs64(change(y, v->key));
  if (dx != dy) return dx > dy ? -1 : 1;
  dx = x->fig[1][v->key[1]], dy = y->fig[1][v->key[1]];
  if (dx != dy) return dx > dy ? -1 : 1;
  dx = abs64(change(x, v->second)), dy = abs64(change(y, v->second));
  if (dx != dy) return dx > dy ? -1 : 1;
  dx = x->fig[1][v->second[1]], dy = y->fig[1][v->second[1]];
  if (dx != dy) return dx > dy ? -1 : 1;
  return strcmp(y->key, x->key);
}

/* ---------------------------------------------------------------- output */

void sm_format_size(char *buf, size_t cap, double size, bool sign) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  for (int u = 0; u < 5; u++) {
    if (fabs(size) < 100 && u != 0) {
      snprintf(buf, cap, sign ? "%+.1f %s" : "%.1f %s", size, units[u]);
      return;
    }
    if (fabs(size) < 10 * 1024 || u == 4) {
      snprintf(buf, cap, sign ? "%+.0f %s" : "%.0f %s", size, units[u]);
      return;
    }
    size /= 1024;
  }
}

void sm_print_header(FILE *out, const char *label, const sm_snap_t *s) {
  char cur[32], peak[32], rss[32], rss_peak[48] = "", mapped[32], inuse[32], over[32];
  sm_format_size(cur, sizeof cur, (double)s->traced_current, false);
  sm_format_size(peak, sizeof peak, (double)s->traced_peak, false);
  sm_format_size(rss, sizeof rss, (double)s->rss, false);
  if (s->peak_rss) { /* version 2 */
    char p[32];
    sm_format_size(p, sizeof p, (double)s->peak_rss, false);
    snprintf(rss_peak, sizeof rss_peak, " (peak %s)", p);
  }
  sm_format_size(mapped, sizeof mapped, (double)s->heap_mapped, false);
  sm_format_size(inuse, sizeof inuse, (double)s->heap_inuse, false);
  double overhead = (double)s->heap_mapped + (double)s->meta_mapped - (double)s->heap_inuse;
  sm_format_size(over, sizeof over, overhead > 0 ? overhead : 0, false);
  time_t secs = (time_t)(s->time_ns / 1000000000ull);
  struct tm tm;
  char when[32];
  gmtime_r(&secs, &tm);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
  strbuf_t prog = {0};
  sm_escape(&prog, s->program[0] ? s->program : "?", DISPLAY_MAX);
  fprintf(out, "%s%s (pid %llu) at %s%s: traced %s (peak %s)%s, RSS %s%s, heap %s mapped, %s in use, overhead %s\n",
          label ? label : "", prog.s, (unsigned long long)s->pid, when,
          (s->flags & SM_SNAP_OFF) ? " with tracing off" : "", cur, peak,
          (s->flags & SM_SNAP_SAMPLED) ? " estimated from samples" : "", rss, rss_peak, mapped, inuse, over);
  free(prog.s);
}

static const char *const sort_names[] = {"size", "count", "allocations", "allocated", "temporary"};

/* "at its traced peak (8.0 MiB)" or "when written (traced 1.3 MiB)". */
static void moment(char *buf, size_t cap, const sm_model_t *m) {
  char size[32];
  bool peak = m->at == AT_PEAK;
  sm_format_size(size, sizeof size, (double)(peak ? m->snap->traced_peak : m->snap->traced_current), false);
  snprintf(buf, cap, peak ? "at its traced peak (%s)" : "when written (traced %s)", size);
}

void sm_print_view(FILE *out, const sm_report_opts_t *o, const sm_model_t *old, const sm_model_t *cur) {
  const char *by = sort_names[o->sort];
  bool sampled = (cur->snap->flags & SM_SNAP_SAMPLED) || (old && (old->snap->flags & SM_SNAP_SAMPLED));
  const char *est = sampled ? " (estimated from samples)" : "";
  char a[64], b[64];
  if (sm_sort_is_flow(o->sort)) {
    if (old) fprintf(out, "Change in allocations from OLD to NEW, by %s%s:\n", by, est);
    else fprintf(out, "Allocations since tracing started or the last peak reset, by %s%s:\n", by, est);
    return;
  }
  if (o->sort == SORT_SIZE && cur->at == AT_END && (!old || old->at == AT_END)) return; /* the default */
  moment(b, sizeof b, cur);
  if (!old) {
    fprintf(out, "Live %s, by %s%s:\n", b, by, est);
    return;
  }
  moment(a, sizeof a, old);
  fprintf(out, "Change from OLD %s to NEW %s, by %s%s:\n", a, b, by, est);
}

/* ", NAME=VALUE", with " (CHANGE)" in a diff: bytes in tracemalloc's size
 * format, blocks as a whole number. long double holds every int64 exactly
 * and the sums of the "other" line (which may pass 2^63 with --cumulative). */
static void put_fig(FILE *out, const char *sep, const char *name, long double now, long double d, bool bytes,
                    bool diff) {
  char a[32];
  fprintf(out, "%s%s=", sep, name);
  if (bytes) sm_format_size(a, sizeof a, (double)now, false);
  else snprintf(a, sizeof a, "%.0Lf", now);
  fputs(a, out);
  if (!diff) return;
  if (bytes) sm_format_size(a, sizeof a, (double)d, true);
  else snprintf(a, sizeof a, "%+.0Lf", d);
  fprintf(out, " (%s)", a);
}

/* An entry's or a sum's figures in text: live (size, count, average) or
 * flow (allocations, allocated, temporary); now[F_N] is NEW's, d[F_N] the
 * change of each figure shown (NEW's figure less OLD's at OLD's moment). */
static void put_figs(FILE *out, const view_t *v, const long double *now, const long double *d) {
  if (v->flow) {
    put_fig(out, "", "allocations", now[F_ALLOCATIONS], d[F_ALLOCATIONS], false, v->diff);
    put_fig(out, ", ", "allocated", now[F_ALLOCATED], d[F_ALLOCATED], true, v->diff);
    put_fig(out, ", ", "temporary", now[F_TEMPORARY], d[F_TEMPORARY], false, v->diff);
    return;
  }
  int size = v->size[1], count = v->count[1];
  put_fig(out, "", "size", now[size], d[size], true, v->diff);
  put_fig(out, ", ", "count", now[count], d[count], false, v->diff);
  if (now[count] != 0) {
    char avg[32];
    sm_format_size(avg, sizeof avg, (double)now[size] / (double)now[count], false);
    fprintf(out, ", average=%s", avg);
  }
}

/* NEW's figures of s, and their changes in this view (indexed by NEW's figure). */
static void stat_figs(const view_t *v, const stat_t *s, long double now[F_N], long double d[F_N]) {
  for (int i = 0; i < F_N; i++) now[i] = (long double)s->fig[1][i], d[i] = now[i] - (long double)s->fig[0][i];
  d[v->size[1]] = (long double)change(s, v->size); /* between the two moments */
  d[v->count[1]] = (long double)change(s, v->count);
}

static void print_stat_text(FILE *out, const view_t *v, const stat_t *s) {
  const sm_strace_t *t = s->rep;
  char key[PATH_MAX + 256];
  if (s->rep_frame >= 0 && t->nframes) frame_key(key, sizeof key, &t->frames[s->rep_frame], BY_LINE);
  else snprintf(key, sizeof key, "<no frames>:0");
  bool is_trace = strchr(s->key, '\n') != NULL || strcmp(s->key, "<no frames>") == 0;
  fprintf(out, "%s: ", is_trace ? key : s->key);
  long double now[F_N], d[F_N];
  stat_figs(v, s, now, d);
  put_figs(out, v, now, d);
  fputc('\n', out);
  if (!is_trace) return;
  for (int i = t->nframes - 1; i >= t->site; i--) { /* oldest first */
    const sm_sframe_t *f = &t->frames[i];
    if (f->file) fprintf(out, "  File \"%s\", line %d", f->file, f->line);
    else if (f->module) fprintf(out, "  File \"<%s+0x%llx>\", line 0", sm_base_name(f->module), (unsigned long long)f->offset);
    else fprintf(out, "  File \"<0x%llx>\", line 0", (unsigned long long)f->offset);
    fprintf(out, ", in %s\n", f->function ? f->function : "??");
  }
}

/* What a report holds: its view, and its entries in order. */
typedef struct report {
  const sm_report_opts_t *o;
  view_t v;
  stat_t **arr;
  size_t n, shown;       /* entries, and those shown (--limit) */
  const sm_model_t *old, *cur;
} report_t;

/* The sums of stat_figs over the entries --limit left out. With
 * --cumulative a trace counts under several entries, so these are sums
 * over entries (long double: they may pass 2^63). */
static void rest_figs(const report_t *r, long double now[F_N], long double d[F_N]) {
  for (int k = 0; k < F_N; k++) now[k] = d[k] = 0;
  for (size_t i = r->shown; i < r->n; i++) {
    long double a[F_N], b[F_N];
    stat_figs(&r->v, r->arr[i], a, b);
    for (int k = 0; k < F_N; k++) now[k] += a[k], d[k] += b[k];
  }
}

/* The entries --limit left out, in one line: "N other: SIZE (CHANGE)" as
 * tracemalloc prints it, or the sums of the flow figures. */
static void print_rest_text(FILE *out, const report_t *r) {
  long double now[F_N], d[F_N];
  rest_figs(r, now, d);
  fprintf(out, "%zu other: ", r->n - r->shown);
  if (r->v.flow) put_figs(out, &r->v, now, d);
  else {
    char a[32], b[32];
    sm_format_size(a, sizeof a, (double)now[r->v.size[1]], false);
    sm_format_size(b, sizeof b, (double)d[r->v.size[1]], true);
    fprintf(out, r->v.diff ? "%s (%s)" : "%s", a, b);
  }
  fputc('\n', out);
}

static void print_report_text(FILE *out, const report_t *r) {
  for (size_t i = 0; i < r->shown; i++) print_stat_text(out, &r->v, r->arr[i]);
  if (r->shown < r->n) print_rest_text(out, r);
  if (r->o->cumulative) return; /* a block counts under several entries: no total */
  long double total[F_N] = {0};
  for (size_t i = 0; i < r->n; i++)
    for (int k = 0; k < F_N; k++) total[k] += (long double)r->arr[i]->fig[1][k];
  if (r->v.flow) {
    fputs("Total: ", out);
    view_t now_only = r->v;
    now_only.diff = false;
    put_figs(out, &now_only, total, total);
    fputc('\n', out);
    return;
  }
  char a[32];
  sm_format_size(a, sizeof a, (double)total[r->v.size[1]], false);
  fprintf(out, "Total allocated size: %s\n", a);
}

void sm_json_site(FILE *out, const sm_sframe_t *site) {
  fputs("{\"file\": ", out);
  json_str(out, site ? site->file : NULL);
  fputs(", \"line\": ", out);
  if (site && site->file) fprintf(out, "%d", site->line);
  else fputs("null", out);
  fputs(", \"function\": ", out);
  json_str(out, site ? site->function : NULL);
  fputc('}', out);
}

void sm_json_frame(FILE *out, const sm_sframe_t *f) {
  fputs("{\"file\": ", out);
  json_str(out, f->file);
  fprintf(out, ", \"line\": ");
  if (f->file) fprintf(out, "%d", f->line);
  else fputs("null", out);
  fputs(", \"function\": ", out);
  json_str(out, f->function);
  fputs(", \"module\": ", out);
  json_str(out, f->module);
  fprintf(out, ", \"offset\": %llu}", (unsigned long long)f->offset);
}

static const char *by_name(sm_by_t by) {
  static const char *names[] = {"line", "file", "function", "trace"};
  return names[by];
}

/* Figures as JSON members (", \"size\": N, ..."): the live ones always;
 * peak and flow ones are null when the snapshot has none (version 1).
 * With d, the changes too: size_diff and count_diff between OLD's and
 * NEW's moments, as the text shows them, and each flow figure's (null
 * unless both snapshots have flow figures). */
static void json_figs(FILE *out, const char *sep, const long double *now, const long double *d, const report_t *r) {
  bool flow = r->cur->snap->has_flow;
  for (int i = 0; i < F_N; i++) {
    fprintf(out, "%s\"%s\": ", i ? ", " : sep, fig_names[i]);
    if (i < F_PEAK_SIZE || flow) fprintf(out, "%.0Lf", now[i]);
    else fputs("null", out);
  }
  if (!d) return;
  fprintf(out, ", \"size_diff\": %.0Lf, \"count_diff\": %.0Lf", d[r->v.size[1]], d[r->v.count[1]]);
  flow = flow && r->old->snap->has_flow;
  for (int i = F_ALLOCATIONS; i < F_N; i++) {
    fprintf(out, ", \"%s_diff\": ", fig_names[i]);
    if (flow) fprintf(out, "%.0Lf", d[i]);
    else fputs("null", out);
  }
}

static void print_stat_json(FILE *out, const report_t *r, const stat_t *s) {
  const sm_strace_t *t = s->rep;
  const sm_sframe_t *site = s->rep_frame >= 0 && t->nframes ? &t->frames[s->rep_frame] : NULL;
  fputs("{\"site\": ", out);
  sm_json_site(out, site);
  long double now[F_N], d[F_N];
  stat_figs(&r->v, s, now, d);
  json_figs(out, ", ", now, r->v.diff ? d : NULL, r);
  fputs(", \"traceback\": [", out);
  if (r->o->by == BY_TRACE) {
    for (int i = t->site; i < t->nframes; i++) {
      if (i > t->site) fputs(", ", out);
      sm_json_frame(out, &t->frames[i]);
    }
  } else if (site) {
    sm_json_frame(out, site);
  }
  fputs("]}", out);
}

/* Collapsed stacks: the figure sorted on (its change, in a diff). */
static void print_folded(FILE *out, const view_t *v, const stat_t *s) {
  const sm_strace_t *t = s->rep;
  char label[PATH_MAX + 256];
  bool first = true;
  for (int i = t->nframes - 1; i >= t->site; i--) {
    sm_frame_label(label, sizeof label, &t->frames[i]);
    for (char *p = label; *p; p++)
      if (*p == ';') *p = ':'; /* ';' separates frames */
    fprintf(out, "%s%s", first ? "" : ";", label);
    first = false;
  }
  if (first) fputs("<no frames>", out);
  fprintf(out, " %lld\n", (long long)(v->diff ? change(s, v->key) : s->fig[1][v->key[1]]));
}

/* A snapshot's header fields, as a JSON object. */
static void print_header_json(FILE *out, const sm_snap_t *s) {
  fprintf(out, "{\"pid\": %llu, \"program\": ", (unsigned long long)s->pid);
  json_str(out, s->program);
  fprintf(out,
          ", \"time_ns\": %llu, \"sequence\": %llu, \"final\": %s, \"sampled\": %s, \"tracing\": %s, \"version\": "
          "%u, \"traced\": {\"current\": %llu, \"peak\": %llu}, \"rss\": %llu, \"peak_rss\": ",
          (unsigned long long)s->time_ns, (unsigned long long)s->sequence, s->flags & SM_SNAP_FINAL ? "true" : "false",
          s->flags & SM_SNAP_SAMPLED ? "true" : "false", s->flags & SM_SNAP_OFF ? "false" : "true", s->version, (unsigned long long)s->traced_current,
          (unsigned long long)s->traced_peak, (unsigned long long)s->rss);
  if (s->peak_rss) fprintf(out, "%llu", (unsigned long long)s->peak_rss);
  else fputs("null", out);
  fprintf(out, ", \"heap\": {\"mapped\": %llu, \"in_use\": %llu}}", (unsigned long long)s->heap_mapped,
          (unsigned long long)s->heap_inuse);
}

/* Every figure summed over the traces of a model (the reader keeps each
 * sum below 2^63); zero without a model. */
static void model_totals(const sm_model_t *m, long double tot[F_N]) {
  stat_t all = {0};
  for (size_t i = 0; m && i < m->ntraces; i++) charge(&all, &m->traces[i], 1);
  for (int k = 0; k < F_N; k++) tot[k] = (long double)all.fig[1][k];
}

static void print_totals_json(FILE *out, const report_t *r) {
  long double now[F_N], old[F_N], d[F_N];
  model_totals(r->cur, now);
  model_totals(r->old, old);
  for (int k = 0; k < F_N; k++) d[k] = now[k] - old[k];
  d[r->v.size[1]] = now[r->v.size[1]] - old[r->v.size[0]]; /* between the two moments */
  d[r->v.count[1]] = now[r->v.count[1]] - old[r->v.count[0]];
  fputs(", \"totals\": {", out);
  json_figs(out, "", now, r->v.diff ? d : NULL, r);
  fputc('}', out);
}

/* JSON: the view, the header of each snapshot, the totals, the shown
 * entries and, when --limit cut the list, what the rest adds up to
 * ("other"). */
static void print_report_json(FILE *out, const report_t *r) {
  const sm_report_opts_t *o = r->o;
  static const char *const at_names[] = {"end", "peak"};
  fprintf(out, "{\"by\": \"%s\", \"cumulative\": %s, \"at\": \"%s\", ", by_name(o->by),
          o->cumulative ? "true" : "false", at_names[r->cur->at]);
  if (r->v.diff) fprintf(out, "\"old_at\": \"%s\", ", at_names[r->old->at]);
  fprintf(out, "\"sort\": \"%s\", \"%s\": ", sort_names[o->sort], r->v.diff ? "old" : "header");
  if (r->v.diff) {
    print_header_json(out, r->old->snap);
    fputs(", \"new\": ", out);
  }
  print_header_json(out, r->cur->snap);
  print_totals_json(out, r);
  fputs(", \"stats\": [", out);
  for (size_t i = 0; i < r->shown; i++) {
    fputs(i ? ",\n  " : "\n  ", out);
    print_stat_json(out, r, r->arr[i]);
  }
  fputs("\n]", out);
  if (r->shown < r->n) {
    long double now[F_N], d[F_N];
    rest_figs(r, now, d);
    fprintf(out, ", \"other\": {\"entries\": %zu", r->n - r->shown);
    json_figs(out, ", ", now, r->v.diff ? d : NULL, r);
    fputs("}", out);
  }
  fputs("}\n", out);
}

int sm_report(FILE *out, sm_tools_ctx_t *c, sm_model_t *old, sm_model_t *cur) {
  stat_t *tab = NULL;
  if (old) group(&c->opts, old, &tab, 0);
  group(&c->opts, cur, &tab, 1);
  report_t r = {&c->opts, make_view(&c->opts, old, cur), NULL, 0, 0, old, cur};
  r.arr = xcalloc(HASH_COUNT(tab) + 1, sizeof *r.arr);
  for (stat_t *s = tab; s; s = s->hh.next)
    if (!shows_nothing(&r.v, s)) r.arr[r.n++] = s;
  qsort_r(r.arr, r.n, sizeof *r.arr, old ? cmp_diff : cmp_top, &r.v);
  r.shown = c->opts.limit > 0 && (size_t)c->opts.limit < r.n ? (size_t)c->opts.limit : r.n;
  if (c->opts.format == FMT_JSON) print_report_json(out, &r);
  else if (c->opts.format == FMT_FOLDED)
    for (size_t i = 0; i < r.shown; i++) print_folded(out, &r.v, r.arr[i]);
  else print_report_text(out, &r);
  stat_t *s, *st;
  HASH_ITER(hh, tab, s, st) {
    HASH_DEL(tab, s);
    free(s->key);
    free(s);
  }
  free(r.arr);
  return 0;
}
