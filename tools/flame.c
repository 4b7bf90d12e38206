/* snapmalloc flame: a flame graph of live memory, drawn as one SVG file.
 *
 * Each trace kept by the report filters is a path from its outermost frame
 * to its allocation site (to its innermost frame with --raw). The paths are
 * merged into a tree, one node per distinct frame label ("function
 * (file:line)") under the same parent, and a node's width is the live bytes
 * below it. Roots sit at the bottom; siblings are in alphabetical order, so
 * two pictures of the same program line up. With OLD and NEW, widths come
 * from NEW and colours from the change since OLD: red grew, blue shrank,
 * stronger the larger the change relative to the frame's size. A frame
 * that only OLD has is 0 bytes wide in NEW and is not drawn; the title line
 * gives the totals of both.
 *
 * The picture zooms (click a frame), resets (click the bottom frame,
 * "Reset zoom" or Escape) and searches ("Search" or '/') with the small
 * inline script at the end of the file. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/cli.h"
#include "tools/cliopt.h"
#include "tools/report.h"
#include "tools/svg.h"
#include "tools/util.h"

#define FONT_PX 11    /* frame labels */
#define FRAME_PX 16   /* height of one row of frames */
#define TOP_PX 72     /* title, subtitle and controls above the frames */
#define BOTTOM_PX 34  /* the detail line below them */
#define MARGIN_PX 10  /* left and right */
#define MIN_PX 0.1    /* narrower frames are left out (they cannot be seen or clicked) */
#define MAX_DRAWN 50000 /* frames drawn at most: more would not open in a browser (docs/visual.md) */

/* The tree lives in one array (node 0 is the root) with a single hash
 * table from (parent, label) to node, and labels in one arena: a node costs
 * about 100 bytes however many children it has, so memory follows the
 * number of distinct frames in the snapshot, not that times a table each. */
typedef struct fnode {
  const char *key;         /* label from sm_frame_label, unique among siblings (in the arena) */
  sm_sframe_t frame;       /* strings interned by the tools context */
  int64_t size, count;     /* live in NEW (or in the only snapshot) */
  int64_t old_size, old_count;
  uint32_t parent;
  uint32_t kids, next;     /* first child, next sibling: node indexes, 0 = none */
} fnode_t;

typedef struct ftree {
  fnode_t *nodes;
  size_t n, cap;
  uint32_t *slots;         /* open addressing: node index, 0 = free */
  size_t nslots;
  char **chunks;           /* the label arena */
  size_t nchunks, left;
  char *cur;               /* next free byte of the last chunk */
} ftree_t;

typedef struct flame {
  FILE *out;
  bool diff;
  const fnode_t *nodes;    /* the tree, sorted */
  int64_t total;           /* root size: the full width */
  double gw;               /* width of the graph in pixels */
  int maxdepth;            /* deepest row that has a visible frame */
  int rows;                /* maxdepth + 1 */
  int64_t min_bytes;       /* narrower frames are not drawn */
  char label[PATH_MAX + 512]; /* scratch for draw (kept off the stack: it recurses once per row) */
} flame_t;

#define ARENA_CHUNK 65536

static const char *arena_copy(ftree_t *tr, const char *s) {
  size_t n = strlen(s) + 1;
  if (n > tr->left) {
    size_t sz = n > ARENA_CHUNK ? n : ARENA_CHUNK;
    tr->chunks = xrealloc(tr->chunks, (tr->nchunks + 1) * sizeof *tr->chunks);
    tr->chunks[tr->nchunks++] = xmalloc(sz);
    tr->left = sz;
    tr->cur = tr->chunks[tr->nchunks - 1];
  }
  char *d = tr->cur;
  memcpy(d, s, n);
  tr->cur += n;
  tr->left -= n;
  return d;
}

static size_t slot_of(uint32_t parent, const char *key, size_t nslots) {
  return (svg_hash(key) * 0x9e3779b1u ^ parent * 0x85ebca6bu) & (nslots - 1);
}

static void tree_rehash(ftree_t *tr) {
  size_t ns = tr->nslots ? tr->nslots * 2 : 1024;
  uint32_t *sl = xcalloc(ns, sizeof *sl);
  for (size_t i = 1; i < tr->n; i++) {
    size_t j = slot_of(tr->nodes[i].parent, tr->nodes[i].key, ns);
    while (sl[j]) j = (j + 1) & (ns - 1);
    sl[j] = (uint32_t)i;
  }
  free(tr->slots);
  tr->slots = sl;
  tr->nslots = ns;
}

static void tree_init(ftree_t *tr) {
  memset(tr, 0, sizeof *tr);
  tr->cap = 1024;
  tr->nodes = xcalloc(tr->cap, sizeof *tr->nodes);
  tr->n = 1;
  tr->nodes[0].key = "all";
  tree_rehash(tr);
}

/* The child of parent labelled key, made (with frame f) if new. */
static uint32_t kid(ftree_t *tr, uint32_t parent, const sm_sframe_t *f, const char *key) {
  size_t j = slot_of(parent, key, tr->nslots);
  for (; tr->slots[j]; j = (j + 1) & (tr->nslots - 1)) {
    const fnode_t *k = &tr->nodes[tr->slots[j]];
    if (k->parent == parent && strcmp(k->key, key) == 0) return tr->slots[j];
  }
  if (tr->n == UINT32_MAX) return parent; /* cannot happen below the reader's limits */
  if (tr->n == tr->cap) {
    tr->cap *= 2;
    tr->nodes = xrealloc(tr->nodes, tr->cap * sizeof *tr->nodes);
  }
  uint32_t i = (uint32_t)tr->n++;
  fnode_t *k = &tr->nodes[i];
  memset(k, 0, sizeof *k);
  k->key = arena_copy(tr, key);
  if (f) k->frame = *f;
  k->parent = parent;
  k->next = tr->nodes[parent].kids;
  tr->nodes[parent].kids = i;
  tr->slots[j] = i;
  if (tr->n * 2 > tr->nslots) tree_rehash(tr);
  return i;
}

/* Adds t's live bytes and blocks at its model's moment (--at, --old-at). */
static void charge(fnode_t *n, const sm_model_t *m, const sm_strace_t *t, bool is_new) {
  int64_t size = sm_live_size(m, t), count = sm_live_count(m, t);
  if (is_new) n->size += size, n->count += count;
  else n->old_size += size, n->old_count += count;
}

/* Adds every trace of m below the root, outermost frame first. The model's
 * site is 0 under --raw, so the path always ends at the site. A node's
 * sizes are sums over traces of one snapshot, which the reader keeps
 * below 2^63. */
static void add_model(ftree_t *tr, const sm_model_t *m, bool is_new) {
  char label[PATH_MAX + 512];
  for (size_t i = 0; i < m->ntraces; i++) {
    const sm_strace_t *t = &m->traces[i];
    uint32_t n = 0;
    if (sm_live_size(m, t) == 0 && sm_live_count(m, t) == 0) continue; /* nothing live at this moment */
    charge(&tr->nodes[0], m, t, is_new);
    if (t->nframes == 0) {
      charge(&tr->nodes[kid(tr, 0, NULL, "<no frames>")], m, t, is_new);
      continue;
    }
    for (int k = t->nframes - 1; k >= t->site; k--) {
      sm_frame_label(label, sizeof label, &t->frames[k]);
      n = kid(tr, n, &t->frames[k], label);
      charge(&tr->nodes[n], m, t, is_new);
    }
  }
}

static int by_key(const void *a, const void *b, void *nodes) {
  const fnode_t *v = nodes;
  return strcmp(v[*(const uint32_t *)a].key, v[*(const uint32_t *)b].key);
}

/* Puts every node's children in alphabetical order. */
static void sort_tree(ftree_t *tr) {
  uint32_t *tmp = xcalloc(tr->n, sizeof *tmp);
  for (size_t i = 0; i < tr->n; i++) {
    size_t nk = 0;
    for (uint32_t k = tr->nodes[i].kids; k; k = tr->nodes[k].next) tmp[nk++] = k;
    if (nk < 2) continue;
    qsort_r(tmp, nk, sizeof *tmp, by_key, tr->nodes);
    for (size_t k = 0; k + 1 < nk; k++) tr->nodes[tmp[k]].next = tmp[k + 1];
    tr->nodes[tmp[nk - 1]].next = 0;
    tr->nodes[i].kids = tmp[0];
  }
  free(tmp);
}

static void tree_free(ftree_t *tr) {
  for (size_t i = 0; i < tr->nchunks; i++) free(tr->chunks[i]);
  free(tr->chunks);
  free(tr->nodes);
  free(tr->slots);
}

static double px(const flame_t *fl, int64_t bytes) {
  return fl->total > 0 ? (double)bytes / (double)fl->total * fl->gw : fl->gw;
}

static int cmp_desc(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x > y ? -1 : x < y;
}

/* The narrowest frame drawn, in bytes: MIN_PX wide, or wider when more
 * than MAX_DRAWN frames are that wide. A child is never wider than its
 * parent, so the frames at least this wide are exactly the ones drawn. */
static int64_t min_bytes(const flame_t *fl, size_t n) {
  int64_t min = fl->total > 0 ? (int64_t)ceil(MIN_PX / fl->gw * (double)fl->total) : 0;
  if (min < 1) min = 1;
  int64_t *w = xmalloc(n * sizeof *w);
  size_t m = 0;
  for (size_t i = 1; i < n; i++)
    if (fl->nodes[i].size >= min) w[m++] = fl->nodes[i].size;
  if (m > MAX_DRAWN) {
    qsort(w, m, sizeof *w, cmp_desc);
    min = w[MAX_DRAWN] + 1; /* frames as wide as the first one left out go too */
    size_t drawn = 0;
    while (drawn < m && w[drawn] >= min) drawn++;
    fprintf(stderr, "snapmalloc flame: %zu frames are wide enough to see; only the %zu widest are drawn\n", m, drawn);
  }
  free(w);
  return min;
}

static void find_depth(flame_t *fl, const fnode_t *n, int depth) {
  if (depth > fl->maxdepth) fl->maxdepth = depth;
  for (uint32_t i = n->kids; i; i = fl->nodes[i].next) {
    const fnode_t *k = &fl->nodes[i];
    if (k->size > 0 && k->size >= fl->min_bytes) find_depth(fl, k, depth + 1);
  }
}

/* ---------------------------------------------------------------- colours */

/* Single snapshot: a warm colour from the function's name, so a function
 * keeps its colour across the picture and across pictures. */
static void warm_colour(char buf[8], const fnode_t *n, int depth) {
  if (depth == 0) {
    snprintf(buf, 8, "#d9cfc4");
    return;
  }
  unsigned h = svg_hash(n->frame.function ? n->frame.function : n->key);
  double hue = (h % 1000) / 1000.0 * 52;          /* red .. orange .. amber */
  double sat = 0.72 + ((h >> 10) % 100) / 100.0 * 0.2;
  double light = 0.56 + ((h >> 17) % 100) / 100.0 * 0.12;
  svg_hsl(buf, hue, sat, light);
}

/* Diff: white for no change, towards red (growth) or blue (shrink) by the
 * change relative to the larger of the two sizes; any change gets at least
 * a visible tint. Returns the intensity, 0..1. */
static double diff_colour(char buf[8], const fnode_t *n) {
  static const double base[3] = {244, 241, 236}, red[3] = {218, 52, 40}, blue[3] = {46, 104, 200};
  int64_t delta = n->size - n->old_size;
  int64_t big = n->size > n->old_size ? n->size : n->old_size;
  double k = 0;
  if (delta != 0 && big > 0) k = 0.22 + 0.78 * fabs((double)delta) / (double)big;
  const double *to = delta > 0 ? red : blue;
  int c[3];
  for (int i = 0; i < 3; i++) c[i] = (int)lround(base[i] + (to[i] - base[i]) * k);
  snprintf(buf, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
  return k;
}

/* ---------------------------------------------------------------- frames */

static const char *display_name(const fnode_t *n, int depth, char *buf, size_t cap) {
  if (depth == 0) return "all";
  if (!n->frame.function && !n->frame.module && !n->frame.file && n->frame.offset == 0) return n->key;
  if (n->frame.function) return n->frame.function;
  sm_frame_label(buf, cap, &n->frame);
  return buf;
}

static void title_text(const flame_t *fl, strbuf_t *sb, const fnode_t *n, int depth, const char *name) {
  char size[32], delta[32];
  sb_printf(sb, "%s\n", name);
  const sm_sframe_t *f = &n->frame;
  if (depth == 0) sb_puts(sb, "every traced allocation\n");
  else if (f->file) sb_printf(sb, "%s:%d\n", f->file, f->line);
  else if (f->module) sb_printf(sb, "in %s at offset 0x%llx\n", sm_base_name(f->module), (unsigned long long)f->offset);
  else if (f->function || f->offset) sb_printf(sb, "at address 0x%llx\n", (unsigned long long)f->offset);
  else sb_puts(sb, "traces without frames\n");
  sm_format_size(size, sizeof size, (double)n->size, false);
  double pct = fl->total > 0 ? 100.0 * (double)n->size / (double)fl->total : 0;
  if (!fl->diff) {
    sb_printf(sb, "size=%s (%lld bytes, %.2f%% of all), count=%lld", size, (long long)n->size, pct,
              (long long)n->count);
    return;
  }
  int64_t d = n->size - n->old_size;
  sm_format_size(delta, sizeof delta, (double)d, true);
  sb_printf(sb, "size=%s (%s", size, delta);
  if (n->old_size > 0) sb_printf(sb, ", %+.1f%%", 100.0 * (double)d / (double)n->old_size);
  else if (n->size > 0) sb_puts(sb, ", new");
  sb_printf(sb, "), count=%lld (%+lld), %.2f%% of all (%lld bytes, %lld before)", (long long)n->count,
            (long long)(n->count - n->old_count), pct, (long long)n->size, (long long)n->old_size);
}

/* Draws n at byte offset bx of the root and its visible children. */
static void draw(flame_t *fl, const fnode_t *n, int depth, int64_t bx) {
  FILE *out = fl->out;
  char fill[8];
  double x = MARGIN_PX + px(fl, bx), w = fl->total > 0 ? px(fl, n->size) : fl->gw;
  int y = TOP_PX + (fl->maxdepth - depth) * FRAME_PX;
  bool light_text = false;
  if (fl->diff) light_text = diff_colour(fill, n) > 0.68;
  else warm_colour(fill, n, depth);
  const char *name = display_name(n, depth, fl->label, sizeof fl->label);
  strbuf_t title = {0};
  title_text(fl, &title, n, depth, name);
  fprintf(out, "<g class=\"f\" data-d=\"%d\" data-x=\"%lld\" data-v=\"%lld\"><title>", depth, (long long)bx,
          (long long)n->size);
  svg_text(out, title.s, -1);
  free(title.s);
  fprintf(out, "</title><rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\"/>", x, y, w,
          FRAME_PX - 1, fill);
  fprintf(out, "<text x=\"%.2f\" y=\"%d\"%s>", x + 3, y + FRAME_PX - 5, light_text ? " class=\"lt\"" : "");
  svg_text(out, name, svg_fit(w, FONT_PX));
  fputs("</text></g>\n", out);
  int64_t at = bx;
  for (uint32_t i = n->kids; i; i = fl->nodes[i].next) {
    const fnode_t *k = &fl->nodes[i];
    if (k->size <= 0) continue; /* only in OLD: no width in NEW */
    if (k->size >= fl->min_bytes) draw(fl, k, depth + 1, at);
    at += k->size;
  }
}

/* ---------------------------------------------------------------- script */

/* The interactive part, kept small and self-contained: frames carry their
 * depth (data-d), byte offset (data-x) and bytes (data-v), so zooming is
 * exact integer arithmetic on bytes, not on rounded pixels. */
static const char flame_script[] =
    "(function () {\n"
    "  'use strict';\n"
    "  var doc = document, svg = doc.documentElement;\n"
    "  var GX = +svg.getAttribute('data-gx'), GW = +svg.getAttribute('data-gw');\n"
    "  var CW = +svg.getAttribute('data-fs') * +svg.getAttribute('data-em');\n"
    "  var HIT = '#c64fd6';\n"
    "  var frames = [], root = null, term = '';\n"
    "  var detail = doc.getElementById('detail'), matched = doc.getElementById('matched');\n"
    "  var resetCtl = doc.getElementById('reset'), searchCtl = doc.getElementById('search');\n"
    "  var hint = detail.textContent;\n"
    "  var gs = doc.querySelectorAll('g.f');\n"
    "  for (var i = 0; i < gs.length; i++) {\n"
    "    var g = gs[i], r = g.querySelector('rect'), t = g.querySelector('title').textContent;\n"
    "    var f = {g: g, rect: r, text: g.querySelector('text'), d: +g.getAttribute('data-d'),\n"
    "             bx: +g.getAttribute('data-x'), v: +g.getAttribute('data-v'), info: t,\n"
    "             name: t.split('\\n')[0], fill: r.getAttribute('fill')};\n"
    "    g.smFrame = f;\n"
    "    frames.push(f);\n"
    "    if (f.d === 0) root = f;\n"
    "  }\n"
    "  /* the label that fits in w pixels, cut as the C side cuts it */\n"
    "  function fit(name, w) {\n"
    "    var n = Math.floor((w - 6) / CW);\n"
    "    if (name.length <= n) return name;\n"
    "    return n >= 3 ? name.slice(0, n - 2) + '..' : '';\n"
    "  }\n"
    "  function place(f, x, w, below) {\n"
    "    f.g.classList.remove('hide');\n"
    "    f.g.classList.toggle('anc', below);\n"
    "    f.rect.setAttribute('x', (GX + x).toFixed(2));\n"
    "    f.rect.setAttribute('width', w.toFixed(2));\n"
    "    f.text.setAttribute('x', (GX + x + 3).toFixed(2));\n"
    "    f.text.textContent = fit(f.name, w);\n"
    "  }\n"
    "  /* t fills the width; its ancestors stay below it, dimmed; frames\n"
    "     outside its byte range are hidden */\n"
    "  function zoom(t) {\n"
    "    if (!t || !(t.v > 0)) return;\n"
    "    frames.forEach(function (f) {\n"
    "      if (f.d >= t.d && f.bx >= t.bx && f.bx + f.v <= t.bx + t.v) {\n"
    "        var w = f.v / t.v * GW;\n"
    "        if (w < 0.1) f.g.classList.add('hide');\n"
    "        else place(f, (f.bx - t.bx) / t.v * GW, w, false);\n"
    "      } else if (f.d < t.d && f.bx <= t.bx && f.bx + f.v >= t.bx + t.v) {\n"
    "        place(f, 0, GW, true);\n"
    "      } else {\n"
    "        f.g.classList.add('hide');\n"
    "      }\n"
    "    });\n"
    "    resetCtl.classList.toggle('hide', t === root);\n"
    "    svg.setAttribute('data-zoom', t === root ? '' : t.name);\n"
    "  }\n"
    "  /* tracemalloc's size format, as the C side prints it */\n"
    "  function size(b) {\n"
    "    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];\n"
    "    for (var i = 0; ; i++, b /= 1024) {\n"
    "      if (i > 0 && Math.abs(b) < 100) return b.toFixed(1) + ' ' + u[i];\n"
    "      if (Math.abs(b) < 10240 || i === 4) return b.toFixed(0) + ' ' + u[i];\n"
    "    }\n"
    "  }\n"
    "  /* highlights frames whose name or location matches s (a regular\n"
    "     expression, else a plain string; case-insensitive) and sums the\n"
    "     bytes of the outermost matches, nested ones counted once */\n"
    "  function search(s) {\n"
    "    term = s || '';\n"
    "    var re = null, hits = [], sum = 0, end = -1;\n"
    "    if (term) {\n"
    "      try { re = new RegExp(term, 'i'); }\n"
    "      catch (e) { re = new RegExp(term.replace(/[.*+?^${}()|[\\]\\\\]/g, '\\\\$&'), 'i'); }\n"
    "    }\n"
    "    frames.forEach(function (f) {\n"
    "      var lines = f.info.split('\\n');\n"
    "      var on = !!re && f !== root && (re.test(lines[0]) || re.test(lines[1]));\n"
    "      f.rect.setAttribute('fill', on ? HIT : f.fill);\n"
    "      if (on) hits.push(f);\n"
    "    });\n"
    "    hits.sort(function (a, b) { return a.bx - b.bx || a.d - b.d; });\n"
    "    hits.forEach(function (f) { if (f.bx >= end) { sum += f.v; end = f.bx + f.v; } });\n"
    "    var all = root && root.v > 0 ? root.v : 1;\n"
    "    matched.textContent = term ? 'Matched \"' + term + '\": ' + size(sum) + ' (' +\n"
    "      (100 * sum / all).toFixed(1) + '% of all) in ' + hits.length + ' frames' : '';\n"
    "    searchCtl.textContent = term ? 'Search (clear: Escape)' : 'Search';\n"
    "    return sum;\n"
    "  }\n"
    "  function ask() {\n"
    "    var s = window.prompt('Highlight frames matching (regular expression, any case):', term);\n"
    "    if (s !== null) search(s);\n"
    "  }\n"
    "  function frameOf(e) {\n"
    "    var g = e.target.closest ? e.target.closest('g.f') : null;\n"
    "    return g ? g.smFrame : null;\n"
    "  }\n"
    "  var layer = doc.getElementById('frames');\n"
    "  layer.addEventListener('click', function (e) { var f = frameOf(e); if (f) zoom(f); });\n"
    "  layer.addEventListener('mouseover', function (e) {\n"
    "    var f = frameOf(e);\n"
    "    if (f) detail.textContent = f.info.split('\\n').join('  |  ');\n"
    "  });\n"
    "  layer.addEventListener('mouseout', function () { detail.textContent = hint; });\n"
    "  resetCtl.addEventListener('click', function () { zoom(root); });\n"
    "  searchCtl.addEventListener('click', ask);\n"
    "  doc.addEventListener('keydown', function (e) {\n"
    "    if (e.key === 'Escape') { zoom(root); search(''); }\n"
    "    else if (e.key === '/') { e.preventDefault(); ask(); }\n"
    "  });\n"
    "  window.smflame = {zoom: zoom, search: search, frames: frames,\n"
    "                    reset: function () { zoom(root); }};\n"
    "})();\n";

static const char flame_style[] =
    "text { font-family: 'DejaVu Sans Mono', 'Liberation Mono', monospace; font-size: 11px; fill: #111; }\n"
    "#title { font-size: 16px; font-weight: bold; }\n"
    "#sub { fill: #555; }\n"
    ".f { cursor: pointer; }\n"
    ".f text { pointer-events: none; }\n"
    ".f text.lt { fill: #fff; }\n"
    ".f:hover rect { stroke: #222; stroke-width: 0.8; }\n"
    ".anc rect { opacity: 0.55; }\n"
    ".hide { display: none; }\n"
    ".ctl { cursor: pointer; fill: #1f5fa8; text-decoration: underline; }\n";

/* ---------------------------------------------------------------- command */

static void when_text(char *buf, size_t cap, const sm_snap_t *s) {
  time_t secs = (time_t)(s->time_ns / 1000000000ull);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* One snapshot drawn: the file, and the moment its live blocks are taken at. */
typedef struct flame_src {
  const sm_snap_t *snap;
  const char *path;
  sm_at_t at;
} flame_src_t;

/* "p.snap" or "p.snap at its peak", for the subtitle. */
static void src_name(strbuf_t *sb, const flame_src_t *s) {
  sb_puts(sb, sm_base_name(s->path));
  if (s->at == AT_PEAK) sb_puts(sb, " at its peak");
}

/* The title line (the given one, or program, pid and total) and the
 * subtitle (which snapshots, when, what width and colour mean). */
static void flame_titles(FILE *out, const char *title, int width, const fnode_t *root, const flame_src_t *old,
                         const flame_src_t *cur) {
  char total[32], delta[32], when[40];
  sm_format_size(total, sizeof total, (double)root->size, false);
  strbuf_t sb = {0};
  strbuf_t progb = {0};
  sm_escape(&progb, sm_base_name(cur->snap->program[0] ? cur->snap->program : "?"), 256);
  const char *prog = progb.s, *at_peak = cur->at == AT_PEAK ? " at its traced peak" : "";
  unsigned long long pid = (unsigned long long)cur->snap->pid;
  if (title) sb_puts(&sb, title);
  else if (!old) sb_printf(&sb, "Live memory of %s (pid %llu)%s: %s in %lld blocks", prog, pid, at_peak, total,
                           (long long)root->count);
  else {
    sm_format_size(delta, sizeof delta, (double)(root->size - root->old_size), true);
    sb_printf(&sb, "Change in live memory of %s (pid %llu): %s (%s)", prog, pid, total, delta);
  }
  svg_text(out, sb.s, svg_fit(width, 16));
  sb.len = 0;
  fprintf(out, "</text>\n<text id=\"sub\" x=\"%d\" y=\"42\" text-anchor=\"middle\">", width / 2);
  when_text(when, sizeof when, cur->snap);
  if (!old) {
    /* the peak's own time is not recorded: say when the snapshot was written */
    sb_printf(&sb, cur->at == AT_PEAK ? "%s, written %s" : "%s, %s", sm_base_name(cur->path), when);
    sb_printf(&sb, "%s; width = live bytes%s, frames grow upwards from the outermost",
              (cur->snap->flags & SM_SNAP_SAMPLED) ? ", estimated from samples" : "",
              cur->at == AT_PEAK ? " at the peak" : "");
  } else {
    char was[32];
    sm_format_size(was, sizeof was, (double)root->old_size, false);
    src_name(&sb, old);
    sb_printf(&sb, " (%s) -> ", was);
    src_name(&sb, cur);
    sb_printf(&sb, " (%s); width = live bytes in the new one; red grew, blue shrank", total);
  }
  svg_text(out, sb.s, svg_fit(width, FONT_PX));
  free(sb.s);
  free(progb.s);
}

static void write_flame(FILE *out, const char *title, int width, const fnode_t *nodes, size_t nnodes,
                        const flame_src_t *old, const flame_src_t *cur) {
  const fnode_t *root = &nodes[0];
  flame_t *fl = xcalloc(1, sizeof *fl);
  fl->out = out;
  fl->diff = old != NULL;
  fl->nodes = nodes;
  fl->total = root->size;
  fl->gw = width - 2 * MARGIN_PX;
  fl->min_bytes = min_bytes(fl, nnodes);
  find_depth(fl, root, 0);
  fl->rows = fl->maxdepth + 1;
  int height = TOP_PX + fl->rows * FRAME_PX + BOTTOM_PX;
  /* read back by the script: where the graph is and how wide a character is */
  char attrs[160];
  snprintf(attrs, sizeof attrs, "data-gx=\"%d\" data-gw=\"%.2f\" data-fs=\"%d\" data-em=\"%.2f\"", MARGIN_PX, fl->gw,
           FONT_PX, SVG_CHAR_EM);
  svg_begin(out, width, height, attrs, flame_style);
  fprintf(out, "<rect x=\"0\" y=\"0\" width=\"100%%\" height=\"100%%\" fill=\"#fbfaf7\"/>\n");
  fprintf(out, "<g id=\"head\" data-total=\"%lld\">\n<text id=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\">",
          (long long)root->size, width / 2);
  flame_titles(out, title, width, root, old, cur);
  fprintf(out, "</text>\n<text id=\"reset\" class=\"ctl hide\" x=\"%d\" y=\"62\">Reset zoom</text>\n", MARGIN_PX);
  fprintf(out, "<text id=\"search\" class=\"ctl\" x=\"%d\" y=\"62\" text-anchor=\"end\">Search</text>\n</g>\n",
          width - MARGIN_PX);
  fputs("<g id=\"frames\">\n", out);
  draw(fl, root, 0, 0);
  fputs("</g>\n", out);
  fprintf(out, "<text id=\"detail\" x=\"%d\" y=\"%d\">Click a frame to zoom, Escape to reset, / to search.</text>\n",
          MARGIN_PX, height - 12);
  fprintf(out, "<text id=\"matched\" x=\"%d\" y=\"%d\" text-anchor=\"end\"></text>\n", width - MARGIN_PX, height - 12);
  fputs("<script type=\"text/ecmascript\"><![CDATA[\n", out);
  fputs(flame_script, out);
  fputs("]]></script>\n", out);
  svg_end(out);
  free(fl);
}

enum { F_WIDTH = CLI_OWN, F_TITLE };

static const struct option flame_opts[] = {
    {"width", required_argument, NULL, F_WIDTH},
    {"title", required_argument, NULL, F_TITLE},
    {NULL, 0, NULL, 0},
};

static int flame_help(void) {
  printf("usage: snapmalloc flame SNAPSHOT [options]\n"
         "       snapmalloc flame OLD NEW [options]\n\n"
         "Draws live memory as an interactive flame graph (an SVG file): one box per\n"
         "frame, as wide as the live bytes allocated below it, outermost frames at the\n"
         "bottom. With two snapshots, widths are NEW's and colours show the change:\n"
         "red grew, blue shrank. Hover for details, click to zoom.\n\n"
         "  --at end|peak       live blocks when the snapshot was written (default) or\n"
         "                      when traced memory was at its peak (NEW's, with two)\n"
         "  --old-at end|peak   OLD's moment (default: --at's); flame S S --old-at peak\n"
         "                      shows in blue what was freed since the peak\n"
         "  -o, --output FILE   write the SVG to FILE (default: standard output, which\n"
         "                      must not be a terminal)\n"
         "  --include GLOB      keep traces whose site file, function or module matches\n"
         "                      GLOB (repeatable)\n"
         "  --exclude GLOB      drop traces whose site matches GLOB (repeatable)\n"
         "  --raw               stacks end at the innermost frame, allocation wrappers\n"
         "                      (strdup, operator new, ...) included\n"
         "  --alloc-fn GLOB     a function of the program's own that allocates for its\n"
         "                      callers (xmalloc): never the site (repeatable)\n"
         "  --full-paths        do not shorten paths under the current directory\n"
         "  --width PIXELS      width of the picture (default 1200)\n"
         "  --title TEXT        the title line (default: program, pid, total)\n");
  return 0;
}

typedef struct flame_args {
  sm_report_opts_t o;
  const char *pos[2], *output, *title;
  int npos;
  long width;
} flame_args_t;

/* Parses flame's arguments; false after --help (printed). */
static bool parse_flame_args(int argc, char **argv, flame_args_t *a) {
  memset(a, 0, sizeof *a);
  a->o.by = BY_TRACE;
  a->width = 1200;
  cli_select_init(&a->o, argc);
  cli_opts_t p;
  static const struct option *const groups[] = {cli_output_opts, cli_select_opts, cli_naming_opts, cli_view_opts,
                                                flame_opts, cli_help_opts, NULL};
  cli_opts_init(&p, "flame", "-o:", groups);
  int c;
  while ((c = cli_opts_next(&p, argc, argv)) != -1) {
    if (cli_select_opt(c, &a->o) || cli_view_opt("flame", c, &a->o)) continue;
    switch (c) {
    case CLI_OPERAND:
      if (a->npos == 2) cli_usage_error("flame", "takes one snapshot or two (OLD NEW), not more");
      a->pos[a->npos++] = optarg;
      break;
    case 'o': a->output = optarg; break;
    case F_WIDTH:
      cli_range("flame", "--width", 300, 20000, "pixels", &a->width);
      break;
    case F_TITLE: a->title = optarg; break;
    case CLI_HELP:
      cli_select_free(&a->o);
      flame_help();
      return false;
    }
  }
  if (a->npos == 0) cli_usage_error("flame", "needs a snapshot file (or two: OLD NEW)");
  cli_view_done("flame", &a->o, a->npos);
  return true;
}

int cmd_flame(int argc, char **argv) {
  flame_args_t a;
  if (!parse_flame_args(argc, argv, &a)) return 0;
  /* Read everything before creating the output, so that bad input leaves
   * no empty picture behind. */
  sm_snap_t snaps[2];
  flame_src_t src[2];
  for (int i = 0; i < a.npos; i++) {
    src[i] = (flame_src_t){&snaps[i], a.pos[i], i == a.npos - 1 ? a.o.at : a.o.old_at};
    if (cli_load(a.pos[i], &snaps[i]) != 0 || cli_need_figures(a.pos[i], &snaps[i], src[i].at, SORT_SIZE) != 0) {
      for (int j = 0; j <= i; j++) sm_snap_free(&snaps[j]); /* zeroed when reading failed */
      cli_select_free(&a.o);
      return 2;
    }
  }
  FILE *out = svg_open("flame", a.output);
  sm_tools_ctx_t *ctx = sm_ctx_new(&a.o);
  ftree_t tree;
  tree_init(&tree);
  for (int i = 0; i < a.npos; i++) {
    sm_model_t m;
    sm_model_build_at(ctx, &snaps[i], src[i].at, &m);
    add_model(&tree, &m, i == a.npos - 1);
    sm_model_free(&m);
  }
  sort_tree(&tree);
  int last = a.npos - 1;
  write_flame(out, a.title, (int)a.width, tree.nodes, tree.n, a.npos == 2 ? &src[0] : NULL, &src[last]);
  svg_close(out, a.output);
  tree_free(&tree);
  for (int i = 0; i < a.npos; i++) sm_snap_free(&snaps[i]);
  sm_ctx_free(ctx);
  cli_select_free(&a.o);
  return 0;
}
