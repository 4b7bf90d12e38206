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
 * site. --raw turns this off. */
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

/* Appends the frames of one recorded frame of a trace: its inline chain
 * when the symbolizer knows it. False once the trace is full. */
static bool add_frames(sm_tools_ctx_t *c, sm_strace_t *t, int *cap, const sm_snap_t *snap, int *handles,
                       const char **paths, unsigned k) {
  const sm_snap_frame_t *rf = &t->raw->frames[k];
  sm_sframe_t f = {NULL, 0, NULL, NULL, rf->offset, (int)k};
  if (rf->module == SM_SNAP_NO_MODULE) return push_frame(t, cap, f);
  f.module = paths[rf->module];
  if (handles[rf->module] == -2) handles[rf->module] = module_handle(c, &snap->modules[rf->module]);
  sm_sym_frame_t out[32];
  int n = sm_sym_lookup(c->sym, handles[rf->module], rf->offset, true, out, 32);
  if (n <= 0) return push_frame(t, cap, f);
  for (int j = 0; j < n; j++) {
    sm_sframe_t g = f;
    g.file = display_path(c, out[j].file);
    g.line = out[j].line;
    g.function = intern_display(c, out[j].function, 0);
    if (!push_frame(t, cap, g)) return false;
  }
  return true;
}

void sm_model_build(sm_tools_ctx_t *c, sm_snap_t *snap, sm_model_t *m) {
  m->snap = snap;
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
      int s = 0;
      while (s < t.nframes && runtime_frame(&c->opts, &t.frames[s])) s++;
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

typedef struct stat {
  UT_hash_handle hh;
  char *key;
  const sm_strace_t *rep;  /* a trace of the group (its site frame, and all frames for BY_TRACE) */
  int rep_frame;           /* the frame of rep that the key names */
  /* The reader keeps each snapshot's sums below 2^63, and a trace counts
   * at most once per key, so these and their differences fit. */
  int64_t size, count;     /* in the newer snapshot */
  int64_t old_size, old_count;
  bool in_new;
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

static void group(const sm_report_opts_t *o, sm_model_t *m, stat_t **tab, bool is_new) {
  char key[PATH_MAX + 256];
  for (size_t i = 0; i < m->ntraces; i++) {
    const sm_strace_t *t = &m->traces[i];
    int64_t size = (int64_t)t->raw->size, count = (int64_t)t->raw->count;
    if (o->by == BY_TRACE) {
      strbuf_t sb = {0};
      trace_key(&sb, t);
      stat_t *s = stat_get(tab, sb.s ? sb.s : "", t, t->site);
      free(sb.s);
      if (is_new) s->size += size, s->count += count, s->in_new = true;
      else s->old_size += size, s->old_count += count;
      continue;
    }
    if (t->nframes == 0) {
      sm_sframe_t none = {NULL, 0, NULL, NULL, 0, -1};
      frame_key(key, sizeof key, &none, o->by);
      stat_t *s = stat_get(tab, key, t, -1);
      if (is_new) s->size += size, s->count += count, s->in_new = true;
      else s->old_size += size, s->old_count += count;
      continue;
    }
    int last = o->cumulative ? t->nframes : t->site + 1;
    for (int f = t->site; f < last; f++) {
      frame_key(key, sizeof key, &t->frames[f], o->by);
      stat_t *s = stat_get(tab, key, t, f);
      /* each key once per trace, as tracemalloc's cumulative mode counts */
      if (s->last == t) continue;
      s->last = t;
      if (is_new) s->size += size, s->count += count, s->in_new = true;
      else s->old_size += size, s->old_count += count;
    }
  }
}

static int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

static int cmp_top(const void *a, const void *b) {
  const stat_t *x = *(stat_t *const *)a, *y = *(stat_t *const *)b;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  return strcmp(y->key, x->key);
}

static int cmp_diff(const void *a, const void *b) {
  const stat_t *x = *(stat_t *const *)a, *y = *(stat_t *const *)b;
  int64_t dx = abs64(x->size - x->old_size), dy = abs64(y->size - y->old_size);
  if (dx != dy) return dx > dy ? -1 : 1;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  dx = abs64(x->count - x->old_count), dy = abs64(y->count - y->old_count);
  if (dx != dy) return dx > dy ? -1 : 1;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
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
  char cur[32], peak[32], rss[32], mapped[32], inuse[32], over[32];
  sm_format_size(cur, sizeof cur, (double)s->traced_current, false);
  sm_format_size(peak, sizeof peak, (double)s->traced_peak, false);
  sm_format_size(rss, sizeof rss, (double)s->rss, false);
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
  fprintf(out, "%s%s (pid %llu) at %s: traced %s (peak %s)%s, RSS %s, heap %s mapped, %s in use, overhead %s\n",
          label ? label : "", prog.s, (unsigned long long)s->pid, when, cur, peak,
          (s->flags & SM_SNAP_SAMPLED) ? " estimated from samples" : "", rss, mapped, inuse, over);
  free(prog.s);
}

static void print_stat_text(FILE *out, const stat_t *s, bool diff) {
  char size[32], avg[32], sdiff[32];
  const sm_strace_t *t = s->rep;
  char key[PATH_MAX + 256];
  if (s->rep_frame >= 0 && t->nframes) frame_key(key, sizeof key, &t->frames[s->rep_frame], BY_LINE);
  else snprintf(key, sizeof key, "<no frames>:0");
  const char *label = s->key;
  bool is_trace = strchr(s->key, '\n') != NULL || strcmp(s->key, "<no frames>") == 0;
  if (is_trace) label = key;
  sm_format_size(size, sizeof size, (double)s->size, false);
  if (diff) {
    sm_format_size(sdiff, sizeof sdiff, (double)(s->size - s->old_size), true);
    fprintf(out, "%s: size=%s (%s), count=%lld (%+lld)", label, size, sdiff, (long long)s->count,
            (long long)(s->count - s->old_count));
  } else {
    fprintf(out, "%s: size=%s, count=%lld", label, size, (long long)s->count);
  }
  if (s->count) {
    sm_format_size(avg, sizeof avg, (double)s->size / (double)s->count, false);
    fprintf(out, ", average=%s", avg);
  }
  fputc('\n', out);
  if (is_trace) {
    for (int i = t->nframes - 1; i >= t->site; i--) { /* oldest first */
      const sm_sframe_t *f = &t->frames[i];
      if (f->file) fprintf(out, "  File \"%s\", line %d", f->file, f->line);
      else if (f->module) fprintf(out, "  File \"<%s+0x%llx>\", line 0", sm_base_name(f->module), (unsigned long long)f->offset);
      else fprintf(out, "  File \"<0x%llx>\", line 0", (unsigned long long)f->offset);
      fprintf(out, ", in %s\n", f->function ? f->function : "??");
    }
  }
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

static void print_stat_json(FILE *out, const stat_t *s, bool diff, sm_by_t by) {
  const sm_strace_t *t = s->rep;
  const sm_sframe_t *site = s->rep_frame >= 0 && t->nframes ? &t->frames[s->rep_frame] : NULL;
  fputs("{\"site\": ", out);
  sm_json_site(out, site);
  fprintf(out, ", \"size\": %lld, \"count\": %lld", (long long)s->size, (long long)s->count);
  if (diff)
    fprintf(out, ", \"size_diff\": %lld, \"count_diff\": %lld", (long long)(s->size - s->old_size),
            (long long)(s->count - s->old_count));
  fputs(", \"traceback\": [", out);
  if (by == BY_TRACE) {
    for (int i = t->site; i < t->nframes; i++) {
      if (i > t->site) fputs(", ", out);
      sm_json_frame(out, &t->frames[i]);
    }
  } else if (site) {
    sm_json_frame(out, site);
  }
  fputs("]}", out);
}

static void print_folded(FILE *out, const stat_t *s, bool diff) {
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
  fprintf(out, " %lld\n", (long long)(diff ? s->size - s->old_size : s->size));
}

/* A snapshot's header fields, as a JSON object. */
static void print_header_json(FILE *out, const sm_snap_t *s) {
  fprintf(out, "{\"pid\": %llu, \"program\": ", (unsigned long long)s->pid);
  json_str(out, s->program);
  fprintf(out,
          ", \"time_ns\": %llu, \"sequence\": %llu, \"final\": %s, \"sampled\": %s, \"traced\": {\"current\": %llu, "
          "\"peak\": %llu}, \"rss\": %llu, \"heap\": {\"mapped\": %llu, \"in_use\": %llu}}",
          (unsigned long long)s->time_ns, (unsigned long long)s->sequence, s->flags & SM_SNAP_FINAL ? "true" : "false",
          s->flags & SM_SNAP_SAMPLED ? "true" : "false", (unsigned long long)s->traced_current,
          (unsigned long long)s->traced_peak, (unsigned long long)s->rss, (unsigned long long)s->heap_mapped,
          (unsigned long long)s->heap_inuse);
}

/* Live bytes and blocks of every trace of a model (the reader keeps both
 * sums below 2^63). */
static void model_totals(const sm_model_t *m, int64_t *size, int64_t *count) {
  *size = *count = 0;
  for (size_t i = 0; m && i < m->ntraces; i++) {
    *size += (int64_t)m->traces[i].raw->size;
    *count += (int64_t)m->traces[i].raw->count;
  }
}

/* JSON: the header of each snapshot, the totals, the shown entries and,
 * when --limit cut the list, what the rest adds up to ("other"). */
static void print_report_json(FILE *out, const sm_report_opts_t *o, stat_t **arr, size_t n, size_t shown,
                              const sm_model_t *old, const sm_model_t *cur) {
  bool diff = old != NULL;
  fprintf(out, "{\"by\": \"%s\", \"cumulative\": %s, ", by_name(o->by), o->cumulative ? "true" : "false");
  if (diff) {
    fputs("\"old\": ", out);
    print_header_json(out, old->snap);
    fputs(", \"new\": ", out);
  } else {
    fputs("\"header\": ", out);
  }
  print_header_json(out, cur->snap);
  int64_t size, count, old_size, old_count;
  model_totals(cur, &size, &count);
  model_totals(old, &old_size, &old_count);
  fprintf(out, ", \"totals\": {\"size\": %lld, \"count\": %lld", (long long)size, (long long)count);
  if (diff) fprintf(out, ", \"size_diff\": %lld, \"count_diff\": %lld", (long long)(size - old_size), (long long)(count - old_count));
  fputs("}, \"stats\": [", out);
  for (size_t i = 0; i < shown; i++) {
    fputs(i ? ",\n  " : "\n  ", out);
    print_stat_json(out, arr[i], diff, o->by);
  }
  fputs("\n]", out);
  if (shown < n) {
    /* with --cumulative a trace counts under several entries: the rest is
     * a sum over entries, kept as a double like the text form's */
    double rs = 0, rc = 0, rsd = 0, rcd = 0;
    for (size_t i = shown; i < n; i++) {
      rs += (double)arr[i]->size, rc += (double)arr[i]->count;
      rsd += (double)arr[i]->size - (double)arr[i]->old_size, rcd += (double)arr[i]->count - (double)arr[i]->old_count;
    }
    fprintf(out, ", \"other\": {\"entries\": %zu, \"size\": %.0f, \"count\": %.0f", n - shown, rs, rc);
    if (diff) fprintf(out, ", \"size_diff\": %.0f, \"count_diff\": %.0f", rsd, rcd);
    fputs("}", out);
  }
  fputs("}\n", out);
}

int sm_report(FILE *out, sm_tools_ctx_t *c, sm_model_t *old, sm_model_t *cur) {
  const sm_report_opts_t *o = &c->opts;
  stat_t *tab = NULL;
  if (old) group(o, old, &tab, false);
  group(o, cur, &tab, true);
  size_t n = HASH_COUNT(tab), k = 0;
  stat_t **arr = xcalloc(n ? n : 1, sizeof *arr);
  /* version 2 also lists traces with nothing live (peak or flow only) */
  for (stat_t *s = tab; s; s = s->hh.next)
    if (s->size || s->count || s->old_size || s->old_count) arr[k++] = s;
  n = k;
  qsort(arr, n, sizeof *arr, old ? cmp_diff : cmp_top);
  size_t shown = o->limit > 0 && (size_t)o->limit < n ? (size_t)o->limit : n;
  bool diff = old != NULL;
  if (o->format == FMT_JSON) {
    print_report_json(out, o, arr, n, shown, old, cur);
  } else if (o->format == FMT_FOLDED) {
    for (size_t i = 0; i < shown; i++) print_folded(out, arr[i], diff);
  } else {
    for (size_t i = 0; i < shown; i++) print_stat_text(out, arr[i], diff);
    if (shown < n) {
      /* --cumulative counts a trace under several keys: these sums can
       * pass 2^63, so they are kept as doubles (they are only shown) */
      double rest = 0, rest_diff = 0;
      for (size_t i = shown; i < n; i++)
        rest += (double)arr[i]->size, rest_diff += (double)arr[i]->size - (double)arr[i]->old_size;
      char a[32], b[32];
      sm_format_size(a, sizeof a, rest, false);
      if (diff) {
        sm_format_size(b, sizeof b, rest_diff, true);
        fprintf(out, "%zu other: %s (%s)\n", n - shown, a, b);
      } else {
        fprintf(out, "%zu other: %s\n", n - shown, a);
      }
    }
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) total += o->cumulative ? 0 : arr[i]->size;
    if (!o->cumulative) {
      char a[32];
      sm_format_size(a, sizeof a, (double)total, false);
      fprintf(out, "Total allocated size: %s\n", a);
    }
  }
  stat_t *s, *st;
  HASH_ITER(hh, tab, s, st) {
    HASH_DEL(tab, s);
    free(s->key);
    free(s);
  }
  free(arr);
  return 0;
}
