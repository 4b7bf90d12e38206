/* snapmalloc timeline: memory over the snapshots of one run, as an SVG chart.
 *
 * The snapshots (typically written every `interval` seconds) are sorted by
 * the time in their headers; x is seconds since the first. Lines come from
 * each header: RSS, the allocator's mapped and in-use bytes and the traced
 * bytes. Below them, stacked areas show the live bytes of the top sites,
 * grouped as `top --by line` groups them and ranked by their size in the
 * last snapshot (or, with --rank, by their peak or their growth from the
 * first snapshot to the last). Snapshots of different processes are
 * refused unless --mixed says that is intended. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "tools/cli.h"
#include "tools/cliopt.h"
#include "tools/report.h"
#include "tools/svg.h"
#include "tools/util.h"

#define FONT_PX 11
#define LEFT_PX 84    /* room for the y tick labels */
#define RIGHT_PX 24
#define TOP_PX 62     /* title and subtitle */
#define PLOT_PX 340   /* height of the plot area */
#define ROW_PX 17     /* one legend row */
#define MAX_SITES 10

typedef enum { RANK_LAST, RANK_PEAK, RANK_GROWTH } rank_t;

typedef struct site {
  UT_hash_handle hh;
  char *key;               /* as `top --by line` prints it */
  const char *function;    /* interned by the tools context, or NULL */
  int64_t *size;           /* live bytes per snapshot, in time order */
  int64_t score;
} site_t;

typedef struct series {
  const char *id, *label, *colour, *dash;
} series_t;

/* The header lines, in legend order. */
static const series_t lines[] = {
    {"rss", "RSS", "#222222", NULL},
    {"mapped", "heap mapped", "#7b3fa0", "6,3"},
    {"inuse", "heap in use", "#1d7a46", NULL},
    {"traced", "traced", "#c0392b", "2,2"},
};
#define NLINES (sizeof lines / sizeof lines[0])

static const char *area_colours[MAX_SITES] = {"#7fa8dc", "#f2ae6b", "#86c99f", "#e58a9d", "#b9a1db",
                                              "#dcc665", "#7fcbd0", "#c9a27e", "#a9a9a9", "#e6a9d4"};

static uint64_t line_value(const sm_snap_t *s, size_t k) {
  switch (k) {
  case 0: return s->rss;
  case 1: return s->heap_mapped;
  case 2: return s->heap_inuse;
  default: return s->traced_current;
  }
}

static int cmp_time(const void *a, const void *b) {
  const sm_snap_t *x = *(sm_snap_t *const *)a, *y = *(sm_snap_t *const *)b;
  if (x->time_ns != y->time_ns) return x->time_ns < y->time_ns ? -1 : 1;
  if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
  if (x->sequence != y->sequence) return x->sequence < y->sequence ? -1 : 1;
  return strcmp(x->path, y->path);
}

static int cmp_score(const void *a, const void *b) {
  const site_t *x = *(site_t *const *)a, *y = *(site_t *const *)b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  return strcmp(x->key, y->key);
}

/* ---------------------------------------------------------------- chart */

typedef struct chart {
  FILE *out;
  int width, height;
  double x0, x1, y0, y1;   /* plot area in pixels (y0 top) */
  double tmin, tmax;       /* seconds at x0 and x1 */
  double vmax;             /* bytes at y0 */
  double unit;             /* bytes per tick label unit */
  const char *unit_name;
} chart_t;

static double cx(const chart_t *c, double t) { return c->x0 + (t - c->tmin) / (c->tmax - c->tmin) * (c->x1 - c->x0); }
static double cy(const chart_t *c, double v) { return c->y1 - v / c->vmax * (c->y1 - c->y0); }

/* The value of a tick without trailing zeros: 2.5, 10, 0.25. */
static void tick_label(char *buf, size_t cap, double v) {
  snprintf(buf, cap, "%.3f", v);
  char *e = buf + strlen(buf) - 1;
  while (*e == '0') *e-- = '\0';
  if (*e == '.') *e = '\0';
}

static void axes(chart_t *c, double step_v, double step_t) {
  FILE *out = c->out;
  char lab[32];
  fputs("<g id=\"grid\" stroke=\"#e2ded8\" stroke-width=\"1\">\n", out);
  for (double v = step_v; v <= c->vmax / c->unit + 1e-9; v += step_v)
    fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", c->x0, cy(c, v * c->unit), c->x1,
            cy(c, v * c->unit));
  for (double t = ceil(c->tmin / step_t - 1e-9) * step_t; t <= c->tmax + 1e-9; t += step_t)
    fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", cx(c, t), c->y0, cx(c, t), c->y1);
  fputs("</g>\n<g id=\"axes\">\n", out);
  fprintf(out, "<path d=\"M%.1f %.1fV%.1fH%.1f\" fill=\"none\" stroke=\"#444\"/>\n", c->x0, c->y0, c->y1, c->x1);
  for (double v = 0; v <= c->vmax / c->unit + 1e-9; v += step_v) {
    double y = cy(c, v * c->unit);
    tick_label(lab, sizeof lab, v);
    fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>", c->x0 - 5, y, c->x0, y);
    fprintf(out, "<text class=\"ytick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s %s</text>\n", c->x0 - 8, y + 4,
            lab, c->unit_name);
  }
  for (double t = ceil(c->tmin / step_t - 1e-9) * step_t; t <= c->tmax + 1e-9; t += step_t) {
    if (t < -1e-9) continue; /* one snapshot: the axis starts left of it */
    double x = cx(c, t);
    tick_label(lab, sizeof lab, fabs(t) < 1e-9 ? 0 : t);
    fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>", x, c->y1, x, c->y1 + 5);
    fprintf(out, "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s s</text>\n", x, c->y1 + 18,
            lab);
  }
  fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">seconds since the first snapshot</text>\n",
          (c->x0 + c->x1) / 2, c->y1 + 36);
  fputs("</g>\n", out);
}

/* Stacked areas: site k lies between the sum of sites 0..k-1 and 0..k. */
static void areas(chart_t *c, site_t **top, int ntop, const double *t, size_t n) {
  FILE *out = c->out;
  int64_t *below = xcalloc(n, sizeof *below);
  char a[32], b[32], d[32];
  fputs("<g id=\"areas\">\n", out);
  for (int k = 0; k < ntop; k++) {
    const site_t *s = top[k];
    int64_t peak = 0;
    for (size_t i = 0; i < n; i++) peak = s->size[i] > peak ? s->size[i] : peak;
    sm_format_size(a, sizeof a, (double)s->size[n - 1], false);
    sm_format_size(b, sizeof b, (double)peak, false);
    sm_format_size(d, sizeof d, (double)(s->size[n - 1] - s->size[0]), true);
    strbuf_t title = {0};
    sb_printf(&title, "%s\n%s\nlast %s, peak %s, change %s", s->key, s->function ? s->function : "??", a, b, d);
    fprintf(out, "<g class=\"area\" data-site=\"");
    svg_text(out, s->key, -1);
    fprintf(out, "\" fill=\"%s\"><title>", area_colours[k]);
    svg_text(out, title.s, -1);
    free(title.s);
    fputs("</title>", out);
    if (n == 1) {
      /* one snapshot: a bar instead of an area */
      double x = cx(c, t[0]);
      fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"24\" height=\"%.1f\"/>", x - 12,
              cy(c, (double)(below[0] + s->size[0])), cy(c, (double)below[0]) - cy(c, (double)(below[0] + s->size[0])));
    } else {
      fputs("<polygon points=\"", out);
      for (size_t i = 0; i < n; i++) fprintf(out, "%.1f,%.1f ", cx(c, t[i]), cy(c, (double)(below[i] + s->size[i])));
      for (size_t i = n; i-- > 0;) fprintf(out, "%.1f,%.1f ", cx(c, t[i]), cy(c, (double)below[i]));
      fputs("\"/>", out);
    }
    fputs("</g>\n", out);
    for (size_t i = 0; i < n; i++) below[i] += s->size[i];
  }
  fputs("</g>\n", out);
  free(below);
}

static void series_lines(chart_t *c, const double *t, sm_snap_t **snaps, size_t n) {
  FILE *out = c->out;
  char v[32];
  fputs("<g id=\"lines\" fill=\"none\" stroke-width=\"2\">\n", out);
  for (size_t k = 0; k < NLINES; k++) {
    const series_t *l = &lines[k];
    fprintf(out, "<g class=\"series\" data-series=\"%s\" stroke=\"%s\">", l->id, l->colour);
    if (n > 1) {
      fprintf(out, "<polyline%s%s%s points=\"", l->dash ? " stroke-dasharray=\"" : "", l->dash ? l->dash : "",
              l->dash ? "\"" : "");
      for (size_t i = 0; i < n; i++) fprintf(out, "%.1f,%.1f ", cx(c, t[i]), cy(c, (double)line_value(snaps[i], k)));
      fputs("\"/>", out);
    }
    /* a point per snapshot, with its value on hover */
    for (size_t i = 0; i < n; i++) {
      uint64_t val = line_value(snaps[i], k);
      sm_format_size(v, sizeof v, (double)val, false);
      fprintf(out, "\n<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\" data-t=\"%.3f\" data-v=\"%llu\"><title>%s at "
              "%.2f s: %s</title></circle>",
              cx(c, t[i]), cy(c, (double)val), l->colour, t[i], (unsigned long long)val, l->label, t[i], v);
    }
    fputs("</g>\n", out);
  }
  fputs("</g>\n", out);
}

static void legend(chart_t *c, site_t **top, int ntop, size_t n, rank_t rank) {
  FILE *out = c->out;
  double y = c->y1 + 58, colw = (c->x1 - c->x0) / NLINES;
  fputs("<g id=\"legend\">\n", out);
  for (size_t k = 0; k < NLINES; k++) {
    double x = c->x0 + k * colw;
    fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s%s%s/>", x,
            y - 4, x + 24, y - 4, lines[k].colour, lines[k].dash ? " stroke-dasharray=\"" : "",
            lines[k].dash ? lines[k].dash : "", lines[k].dash ? "\"" : "");
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 30, y, lines[k].label);
  }
  y += ROW_PX + 4;
  static const char *rank_text[] = {"in the last snapshot", "at their peak", "by growth since the first snapshot"};
  if (ntop == 0) fprintf(out, "<text x=\"%.1f\" y=\"%.1f\">no traced sites</text>\n", c->x0, y);
  else
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" class=\"note\">stacked: the %d largest sites %s (file:line, function, last size)</text>\n",
            c->x0, y, ntop, rank_text[rank]);
  char a[32];
  for (int k = 0; k < ntop; k++) {
    y += ROW_PX;
    fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"24\" height=\"11\" fill=\"%s\"/>", c->x0, y - 10,
            area_colours[k]);
    sm_format_size(a, sizeof a, (double)top[k]->size[n - 1], false);
    strbuf_t sb = {0};
    sb_printf(&sb, "%s  %s  %s", top[k]->key, top[k]->function ? top[k]->function : "??", a);
    fprintf(out, "<text class=\"site\" x=\"%.1f\" y=\"%.1f\">", c->x0 + 30, y);
    svg_text(out, sb.s, svg_fit(c->x1 - c->x0 - 30, FONT_PX));
    fputs("</text>\n", out);
    free(sb.s);
  }
  fputs("</g>\n", out);
}

static const char timeline_style[] =
    "text { font-family: 'DejaVu Sans Mono', 'Liberation Mono', monospace; font-size: 11px; fill: #111; }\n"
    "#title { font-size: 16px; font-weight: bold; }\n"
    "#sub, .note { fill: #555; }\n"
    ".area { fill-opacity: 0.85; }\n"
    ".area:hover { fill-opacity: 1; stroke: #333; }\n"
    "circle:hover { r: 5; }\n";

/* ---------------------------------------------------------------- command */

enum { T_SITES = CLI_OWN, T_RANK, T_MIXED, T_WIDTH, T_TITLE };

static const struct option timeline_opts[] = {
    {"sites", required_argument, NULL, T_SITES},
    {"rank", required_argument, NULL, T_RANK},
    {"mixed", no_argument, NULL, T_MIXED},
    {"width", required_argument, NULL, T_WIDTH},
    {"title", required_argument, NULL, T_TITLE},
    {NULL, 0, NULL, 0},
};

static int timeline_help(void) {
  printf("usage: snapmalloc timeline SNAPSHOT... [options]\n\n"
         "Draws memory over time (an SVG chart) from the snapshots of one run, for\n"
         "example those written with 'snapmalloc run --interval S': RSS, the heap's\n"
         "mapped and in-use bytes and the traced bytes as lines, and the live bytes of\n"
         "the largest sites (grouped as 'top --by line') as stacked areas. Snapshots\n"
         "are sorted by their time; x is seconds since the first.\n\n"
         "  -o, --output FILE       write the SVG to FILE (default: standard output, which\n"
         "                          must not be a terminal)\n"
         "  --sites N               how many sites to stack, 0..%d (default 5)\n"
         "  --rank last|peak|growth choose the sites by their size in the last snapshot\n"
         "                          (default), their peak, or their growth from the first\n"
         "                          snapshot to the last\n"
         "  --mixed                 accept snapshots of different processes or programs\n"
         "  --include GLOB          only sites whose file, function or module matches GLOB\n"
         "  --exclude GLOB          leave out sites that match GLOB (both repeatable)\n"
         "  --raw                   the site is the innermost frame (no wrapper skipping)\n"
         "  --alloc-fn GLOB         a function of the program's own that allocates for its\n"
         "                          callers (xmalloc): never the site (repeatable)\n"
         "  --full-paths            do not shorten paths under the current directory\n"
         "  --width PIXELS          width of the picture (default 1000)\n"
         "  --title TEXT            the title line (default: program, pid, duration)\n",
         MAX_SITES);
  return 0;
}

static void free_snaps(sm_snap_t *snaps, size_t n) {
  for (size_t i = 0; i < n; i++) sm_snap_free(&snaps[i]);
  free(snaps);
}

typedef struct timeline_args {
  sm_report_opts_t o;
  const char **pos, *output, *title;
  size_t npos;
  long nsites, width;
  rank_t rank;
  bool mixed;
} timeline_args_t;

static void free_args(timeline_args_t *a) {
  free(a->pos);
  cli_select_free(&a->o);
}

static void timeline_opt(int c, timeline_args_t *a) {
  static const char *const ranks[] = {"last", "peak", "growth", NULL};
  switch (c) {
  case CLI_OPERAND: a->pos[a->npos++] = optarg; break;
  case 'o': a->output = optarg; break;
  case T_SITES:
    cli_range("timeline", "--sites", 0, MAX_SITES, "", &a->nsites);
    break;
  case T_RANK: a->rank = (rank_t)cli_keyword("timeline", "--rank", ranks); break;
  case T_MIXED: a->mixed = true; break;
  case T_WIDTH:
    cli_range("timeline", "--width", 400, 20000, "pixels", &a->width);
    break;
  case T_TITLE: a->title = optarg; break;
  }
}

/* Parses timeline's arguments; false after --help (printed). */
static bool parse_timeline_args(int argc, char **argv, timeline_args_t *a) {
  memset(a, 0, sizeof *a);
  a->o.by = BY_LINE;
  a->nsites = 5;
  a->width = 1000;
  a->rank = RANK_LAST;
  cli_select_init(&a->o, argc);
  a->pos = xcalloc((size_t)argc, sizeof *a->pos);
  cli_opts_t p;
  static const struct option *const groups[] = {cli_output_opts, cli_select_opts, cli_naming_opts, timeline_opts,
                                                cli_help_opts, NULL};
  cli_opts_init(&p, "timeline", "-o:", groups);
  int c;
  while ((c = cli_opts_next(&p, argc, argv)) != -1) {
    if (c == CLI_HELP) {
      free_args(a);
      timeline_help();
      return false;
    }
    if (!cli_select_opt(c, &a->o)) timeline_opt(c, a);
  }
  if (a->npos == 0) cli_usage_error("timeline", "needs one or more snapshot files of one run");
  return true;
}

/* The snapshots read, and in time order. */
typedef struct run_snaps {
  sm_snap_t *all;
  sm_snap_t **v;           /* in time order */
  size_t n;
} run_snaps_t;

static void free_run(run_snaps_t *r) {
  free(r->v);
  free_snaps(r->all, r->n);
}

/* Says that a and b are not of one run. */
static void not_one_run(const sm_snap_t *a, const sm_snap_t *b) {
  strbuf_t pa = {0}, pb = {0}, na = {0}, nb = {0};
  sm_escape(&pa, a->path, 0), sm_escape(&pb, b->path, 0);
  sm_escape(&na, sm_base_name(a->program), 256), sm_escape(&nb, sm_base_name(b->program), 256);
  fprintf(stderr,
          "snapmalloc timeline: %s is from pid %llu (%s), %s from pid %llu (%s): not one run "
          "(--mixed draws them together)\n",
          pb.s, (unsigned long long)b->pid, nb.s, pa.s, (unsigned long long)a->pid, na.s);
  free(pa.s), free(pb.s), free(na.s), free(nb.s);
}

/* Reads and sorts every snapshot, and checks that they are of one process
 * unless --mixed; false (after one line) if not. */
static bool load_run(const timeline_args_t *a, run_snaps_t *r) {
  r->all = xcalloc(a->npos, sizeof *r->all);
  for (size_t i = 0; i < a->npos; i++) {
    if (cli_load(a->pos[i], &r->all[i]) != 0) {
      free_snaps(r->all, i);
      return false;
    }
  }
  r->n = a->npos;
  r->v = xcalloc(r->n, sizeof *r->v);
  for (size_t i = 0; i < r->n; i++) r->v[i] = &r->all[i];
  qsort(r->v, r->n, sizeof *r->v, cmp_time);
  for (size_t i = 1; i < r->n && !a->mixed; i++) {
    const sm_snap_t *x = r->v[0], *y = r->v[i];
    if (x->pid != y->pid || strcmp(x->program, y->program) != 0) {
      not_one_run(x, y);
      free_run(r);
      return false;
    }
  }
  return true;
}

/* Live bytes per site (grouped as `top --by line`) and snapshot. */
static site_t *collect_sites(sm_tools_ctx_t *ctx, const run_snaps_t *r) {
  site_t *sites = NULL;
  char key[PATH_MAX + 256];
  for (size_t i = 0; i < r->n; i++) {
    sm_model_t m;
    sm_model_build(ctx, r->v[i], &m);
    for (size_t k = 0; k < m.ntraces; k++) {
      const sm_strace_t *t = &m.traces[k];
      const sm_sframe_t *f = t->nframes ? &t->frames[t->site] : NULL;
      sm_site_key(key, sizeof key, f, BY_LINE);
      site_t *s;
      HASH_FIND_STR(sites, key, s);
      if (!s) {
        s = xcalloc(1, sizeof *s);
        s->key = xstrdup(key);
        s->function = f ? f->function : NULL; /* interned: outlives the model */
        s->size = xcalloc(r->n, sizeof *s->size);
        HASH_ADD_KEYPTR(hh, sites, s->key, strlen(s->key), s);
      }
      s->size[i] += (int64_t)t->raw->size;
    }
    sm_model_free(&m);
  }
  return sites;
}

static void free_sites(site_t *sites) {
  site_t *s, *tmp;
  HASH_ITER(hh, sites, s, tmp) {
    HASH_DEL(sites, s);
    free(s->key);
    free(s->size);
    free(s);
  }
}

/* Every site, best first by the rank asked for; *ntop: how many to stack. */
static site_t **rank_sites(site_t *sites, size_t n, const timeline_args_t *a, int *ntop) {
  size_t nall = HASH_COUNT(sites), k = 0;
  site_t **ranked = xcalloc(nall ? nall : 1, sizeof *ranked);
  for (site_t *s = sites; s; s = s->hh.next) {
    int64_t peak = 0;
    for (size_t i = 0; i < n; i++) peak = s->size[i] > peak ? s->size[i] : peak;
    s->score = a->rank == RANK_LAST ? s->size[n - 1] : a->rank == RANK_PEAK ? peak : s->size[n - 1] - s->size[0];
    ranked[k++] = s;
  }
  qsort(ranked, nall, sizeof *ranked, cmp_score);
  *ntop = 0;
  while (*ntop < a->nsites && (size_t)*ntop < nall && ranked[*ntop]->score > 0) (*ntop)++;
  return ranked;
}

/* The scales: bytes up to the largest value drawn, seconds from the
 * first snapshot (t, one per snapshot); the tick steps in *step_v and
 * *step_t. */
static void scale_chart(chart_t *ch, const run_snaps_t *r, const double *t, site_t **top, int ntop, double *step_v,
                        double *step_t) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double vmax = 0;
  for (size_t i = 0; i < r->n; i++) {
    for (size_t l = 0; l < NLINES; l++) vmax = fmax(vmax, (double)line_value(r->v[i], l));
    double stack = 0;
    for (int j = 0; j < ntop; j++) stack += (double)top[j]->size[i];
    vmax = fmax(vmax, stack);
  }
  vmax = fmax(vmax, 10); /* an empty chart still gets an axis */
  int u = 0;
  while (u < 4 && vmax >= 1024.0 * pow(1024, u)) u++;
  ch->unit = pow(1024, u);
  ch->unit_name = units[u];
  *step_v = svg_tick_step(vmax / ch->unit, 5);
  if (u == 0 && *step_v < 1) *step_v = 1; /* no fractions of a byte */
  ch->vmax = fmax(1, ceil(vmax / ch->unit / *step_v - 1e-9)) * *step_v * ch->unit;
  double span = t[r->n - 1];
  if (span > 0) {
    *step_t = svg_tick_step(span, 8);
    ch->tmin = 0;
    ch->tmax = ceil(span / *step_t - 1e-9) * *step_t;
  } else {
    *step_t = 1; /* one moment: centre it */
    ch->tmin = -1;
    ch->tmax = 1;
  }
  ch->x0 = LEFT_PX;
  ch->x1 = ch->width - RIGHT_PX;
  ch->y0 = TOP_PX;
  ch->y1 = TOP_PX + PLOT_PX;
  ch->height = (int)ch->y1 + 58 + 2 * ROW_PX + 4 + ntop * ROW_PX + 14;
}

/* The title and the subtitle lines. */
static void chart_head(chart_t *ch, const timeline_args_t *a, const run_snaps_t *r, double span) {
  FILE *out = ch->out;
  strbuf_t sb = {0};
  const sm_snap_t *first = r->v[0], *last = r->v[r->n - 1];
  if (a->title) sb_puts(&sb, a->title);
  else if (a->mixed && (first->pid != last->pid || strcmp(first->program, last->program) != 0))
    sb_printf(&sb, "Memory of several processes over %.1f s", span);
  else {
    strbuf_t prog = {0};
    sm_escape(&prog, sm_base_name(last->program[0] ? last->program : "?"), 256);
    sb_printf(&sb, "Memory of %s (pid %llu) over %.1f s", prog.s, (unsigned long long)last->pid, span);
    free(prog.s);
  }
  fprintf(out, "<text id=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\">", ch->width / 2);
  svg_text(out, sb.s, svg_fit(ch->width, 16));
  sb.len = 0;
  char when[32], traced[32];
  time_t secs = (time_t)(first->time_ns / 1000000000ull);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
  sm_format_size(traced, sizeof traced, (double)last->traced_current, false);
  sb_printf(&sb, "%zu snapshot%s from %s; traced %s at the end%s", r->n, r->n == 1 ? "" : "s", when, traced,
            (last->flags & SM_SNAP_SAMPLED) ? " (estimated from samples)" : "");
  fprintf(out, "</text>\n<text id=\"sub\" x=\"%d\" y=\"42\" text-anchor=\"middle\">", ch->width / 2);
  svg_text(out, sb.s, svg_fit(ch->width, FONT_PX));
  fputs("</text>\n", out);
  free(sb.s);
}

/* Draws the whole chart to out. */
static void render_timeline(FILE *out, const timeline_args_t *a, const run_snaps_t *r, site_t **ranked, int ntop) {
  size_t n = r->n;
  double *t = xcalloc(n, sizeof *t);
  for (size_t i = 0; i < n; i++) t[i] = (double)(r->v[i]->time_ns - r->v[0]->time_ns) / 1e9;
  chart_t ch = {.out = out, .width = (int)a->width};
  double step_v, step_t;
  scale_chart(&ch, r, t, ranked, ntop, &step_v, &step_t);
  svg_begin(out, ch.width, ch.height, NULL, timeline_style);
  fprintf(out, "<rect x=\"0\" y=\"0\" width=\"100%%\" height=\"100%%\" fill=\"#fbfaf7\"/>\n");
  chart_head(&ch, a, r, t[n - 1]);
  axes(&ch, step_v, step_t);
  areas(&ch, ranked, ntop, t, n);
  series_lines(&ch, t, r->v, n);
  legend(&ch, ranked, ntop, n, a->rank);
  svg_end(out);
  free(t);
}

int cmd_timeline(int argc, char **argv) {
  timeline_args_t a;
  if (!parse_timeline_args(argc, argv, &a)) return 0;
  /* Everything is read and checked before the output is created. */
  run_snaps_t r;
  if (!load_run(&a, &r)) {
    free_args(&a);
    return 2;
  }
  FILE *out = svg_open("timeline", a.output);
  sm_tools_ctx_t *ctx = sm_ctx_new(&a.o);
  site_t *sites = collect_sites(ctx, &r);
  int ntop;
  site_t **ranked = rank_sites(sites, r.n, &a, &ntop);
  render_timeline(out, &a, &r, ranked, ntop);
  svg_close(out, a.output);
  free_sites(sites);
  free(ranked);
  sm_ctx_free(ctx);
  free_run(&r);
  free_args(&a);
  return 0;
}
