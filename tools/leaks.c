/* snapmalloc leaks / check: the leak report of a final snapshot, and the CI
 * gate that runs a command and fails when it leaked.
 *
 * Suppressions use LeakSanitizer's file format, so existing CI files work
 * as they are: one `leak:PATTERN` per line, `#` comments, other kinds
 * ignored. A trace is suppressed when PATTERN matches the function, the
 * source file or the module of any of its frames: a substring match, `*`
 * matching anything, `^` and `$` anchoring to the start and end. */
#include <errno.h>
#include <unistd.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/cli.h"
#include "tools/cliopt.h"
#include "tools/report.h"
#include "tools/util.h"

static const char *class_names[SM_LEAK_CLASSES] = {"definitely lost", "indirectly lost", "possibly lost",
                                                   "still reachable"};
static const char *class_keys[SM_LEAK_CLASSES] = {"definitely", "indirectly", "possibly", "reachable"};

typedef struct supp {
  char **patterns;
  int n;
  int *hits;
} supp_t;

static void supp_load(const char *path, supp_t *s) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "snapmalloc: %s: cannot open: %s\n", path, strerror(errno));
    exit(2);
  }
  char line[4096];
  int lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    p[strcspn(p, "\r\n")] = '\0';
    size_t len = strlen(p);
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) p[--len] = '\0';
    if (!*p || *p == '#') continue;
    char *colon = strchr(p, ':');
    if (!colon || colon == p || !colon[1]) {
      fprintf(stderr, "snapmalloc: %s:%d: not a suppression (expected KIND:PATTERN): %s\n", path, lineno, p);
      fclose(f);
      exit(2);
    }
    if (strncmp(p, "leak:", 5) != 0) continue; /* other sanitizers' kinds */
    s->patterns = xrealloc(s->patterns, (size_t)(s->n + 1) * sizeof *s->patterns);
    s->patterns[s->n++] = xstrdup(colon + 1);
  }
  fclose(f);
  s->hits = xcalloc((size_t)s->n + 1, sizeof *s->hits);
}

static void supp_free(supp_t *s) {
  for (int k = 0; k < s->n; k++) free(s->patterns[k]);
  free(s->patterns);
  free(s->hits);
}

/* LeakSanitizer-style template match: '*' wildcards, '^'/'$' anchors,
 * otherwise a substring. */
static bool tmatch(const char *pat, const char *str) {
  if (!str) return false;
  bool start = *pat == '^';
  if (start) pat++;
  size_t plen = strlen(pat);
  bool end = plen && pat[plen - 1] == '$';
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", pat);
  if (end) buf[plen - 1] = '\0';
  /* split on '*' and find the pieces in order */
  const char *s = str;
  char *piece = buf;
  bool first = true;
  for (;;) {
    char *star = strchr(piece, '*');
    if (star) *star = '\0';
    if (*piece) {
      const char *at = strstr(s, piece);
      if (!at || (first && start && at != str)) return false;
      s = at + strlen(piece);
    }
    first = false;
    if (!star) break;
    piece = star + 1;
  }
  if (end && !strchr(pat, '*')) return *s == '\0' || (strlen(str) >= strlen(buf) && !strcmp(str + strlen(str) - strlen(buf), buf));
  return !end || *s == '\0' || buf[strlen(buf) - 1] == '\0';
}

static int suppressed(const supp_t *s, const sm_strace_t *t) {
  for (int k = 0; k < s->n; k++)
    for (int f = 0; f < t->nframes; f++) {
      const sm_sframe_t *fr = &t->frames[f];
      if (tmatch(s->patterns[k], fr->function) || tmatch(s->patterns[k], fr->file) || tmatch(s->patterns[k], fr->module))
        return k;
    }
  return -1;
}

typedef struct lentry {
  const sm_strace_t *t;
  int cls;
  uint64_t size, count;
} lentry_t;

static int cmp_entry(const void *a, const void *b) {
  const lentry_t *x = a, *y = b;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  if (x->cls != y->cls) return x->cls - y->cls;
  return x->t->raw->id < y->t->raw->id ? -1 : 1;
}

static void print_frame_text(FILE *out, const sm_sframe_t *f, bool first) {
  const char *mod = f->module ? strrchr(f->module, '/') : NULL;
  mod = mod ? mod + 1 : (f->module ? f->module : "?");
  fprintf(out, "    %s %s", first ? "at" : "by", f->function ? f->function : "??");
  if (f->file) fprintf(out, " (%s:%d)\n", f->file, f->line);
  else fprintf(out, " (%s+0x%llx)\n", mod, (unsigned long long)f->offset);
}

/* What one snapshot's report says: its entries, biggest first, and the
 * totals per class (suppressed blocks apart). */
typedef struct leak_result {
  lentry_t *entries;
  size_t n;
  uint64_t totals[SM_LEAK_CLASSES][2], supp_total[2];
} leak_result_t;

/* Fills r from the model's traces (and the untraced record, may be NULL).
 * The totals of possibly lost and still reachable blocks not shown were
 * added by the caller. */
static void collect_entries(const sm_model_t *m, const sm_strace_t *untraced, supp_t *supp, const cli_leaks_opts_t *lo,
                            leak_result_t *r) {
  r->entries = xcalloc((m->ntraces + 1) * SM_LEAK_CLASSES, sizeof *r->entries);
  for (size_t i = 0; i < m->ntraces + (untraced != NULL); i++) {
    const sm_strace_t *t = i < m->ntraces ? &m->traces[i] : untraced;
    int s = suppressed(supp, t);
    for (int c = 0; c < SM_LEAK_CLASSES; c++) {
      uint64_t size = t->raw->leak[c][0], count = t->raw->leak[c][1];
      if (!count) continue;
      if (c >= SM_LEAK_POSSIBLE && !lo->show_reachable && t->raw->id) continue; /* counted by the caller */
      if (s >= 0 && c <= SM_LEAK_INDIRECT) {
        supp->hits[s] += (int)count;
        r->supp_total[0] += size, r->supp_total[1] += count;
        continue;
      }
      r->totals[c][0] += size, r->totals[c][1] += count;
      bool shown = c <= SM_LEAK_INDIRECT || lo->show_reachable;
      if (shown && size >= lo->min_bytes) r->entries[r->n++] = (lentry_t){t, c, size, count};
    }
  }
  qsort(r->entries, r->n, sizeof *r->entries, cmp_entry);
}

static void print_leaks_json(FILE *out, const leak_result_t *r, const sm_snap_t *snap, const char *label) {
  fputs("{", out);
  if (label) fprintf(out, "\"pid\": %llu, ", (unsigned long long)snap->pid);
  fputs("\"totals\": {", out);
  for (int c = 0; c < SM_LEAK_CLASSES; c++)
    fprintf(out, "%s\"%s\": {\"size\": %llu, \"count\": %llu}", c ? ", " : "", class_keys[c],
            (unsigned long long)r->totals[c][0], (unsigned long long)r->totals[c][1]);
  fprintf(out, ", \"suppressed\": {\"size\": %llu, \"count\": %llu}}, \"leaks\": [",
          (unsigned long long)r->supp_total[0], (unsigned long long)r->supp_total[1]);
  for (size_t i = 0; i < r->n; i++) {
    const lentry_t *e = &r->entries[i];
    const sm_strace_t *t = e->t;
    const sm_sframe_t *site = t->nframes ? &t->frames[t->site] : NULL;
    fprintf(out, "%s%s{\"kind\": \"%s\", \"size\": %llu, \"count\": %llu, \"site\": ", i ? "," : "",
            label ? "" : "\n  ", class_keys[e->cls], (unsigned long long)e->size, (unsigned long long)e->count);
    sm_json_site(out, site);
    fputs(", \"traceback\": [", out);
    for (int f = t->site; f < t->nframes; f++) {
      if (f > t->site) fputs(", ", out);
      sm_json_frame(out, &t->frames[f]);
    }
    fputs("]}", out);
  }
  fputs(label ? "]}\n" : "\n]}\n", out); /* check: one line per process */
}

static void print_leaks_text(FILE *out, const leak_result_t *r, const supp_t *supp, const char *label) {
  if (label) fprintf(out, "%s\n", label);
  char sz[32];
  for (size_t i = 0; i < r->n; i++) {
    const lentry_t *e = &r->entries[i];
    sm_format_size(sz, sizeof sz, (double)e->size, false);
    fprintf(out, "%s in %llu block%s %s %s", sz, (unsigned long long)e->count, e->count == 1 ? "" : "s",
            e->count == 1 ? "is" : "are", class_names[e->cls]);
    if (!e->t->raw->id) fputs(" (allocated before tracing started: no stack trace)\n", out);
    else fprintf(out, " (trace %u)\n", e->t->raw->id);
    for (int f = e->t->site; f < e->t->nframes; f++) print_frame_text(out, &e->t->frames[f], f == e->t->site);
    if (!e->t->nframes && e->t->raw->id) fputs("    (no frames)\n", out);
    fputc('\n', out);
  }
  fputs("LEAK SUMMARY:\n", out);
  for (int c = 0; c < SM_LEAK_CLASSES; c++) {
    sm_format_size(sz, sizeof sz, (double)r->totals[c][0], false);
    fprintf(out, "  %s: %s in %llu block%s\n", class_names[c], sz, (unsigned long long)r->totals[c][1],
            r->totals[c][1] == 1 ? "" : "s");
  }
  if (!supp->n) return;
  sm_format_size(sz, sizeof sz, (double)r->supp_total[0], false);
  fprintf(out, "  suppressed: %s in %llu block%s\n", sz, (unsigned long long)r->supp_total[1],
          r->supp_total[1] == 1 ? "" : "s");
  for (int k = 0; k < supp->n; k++)
    if (supp->hits[k]) fprintf(out, "    %d block%s by leak:%s\n", supp->hits[k], supp->hits[k] == 1 ? "" : "s", supp->patterns[k]);
}

/* Prints the report of one snapshot; returns 1 if anything definitely or
 * indirectly lost remains after suppressions and --min-bytes, 0 if not,
 * 2 on bad input. */
static int leak_report(FILE *out, const char *path, const cli_leaks_opts_t *lo, const char *label) {
  sm_snap_t snap;
  if (cli_load(path, &snap) != 0) return 2;
  if (!(snap.flags & SM_SNAP_LEAKS)) {
    fprintf(stderr, "snapmalloc: %s: no leak analysis in this snapshot (only the final snapshot of a run with "
                    "trace=1 and leaks=1 has one)\n", path);
    sm_snap_free(&snap);
    return 2;
  }
  supp_t supp = {0};
  if (lo->supp) supp_load(lo->supp, &supp);
  sm_tools_ctx_t *ctx = sm_ctx_new(&lo->naming);
  /* Only the traces the report can name are symbolized (the rest is most
   * of a clean program's snapshot, and symbolizing is most of the cost):
   * those with lost blocks, which suppressions may also match, and with
   * --show reachable the others with blocks. The other classes' totals
   * come from the raw counts. */
  leak_result_t r = {0};
  sm_snap_t view = snap;
  view.traces = xcalloc(snap.ntraces + 1, sizeof *view.traces);
  view.ntraces = 0;
  for (size_t i = 0; i < snap.ntraces; i++) {
    const sm_snap_trace_t *rt = &snap.traces[i];
    if (!rt->id) continue;
    bool lost = rt->leak[SM_LEAK_DEFINITE][1] || rt->leak[SM_LEAK_INDIRECT][1];
    bool other = rt->leak[SM_LEAK_POSSIBLE][1] || rt->leak[SM_LEAK_REACHABLE][1];
    if (lost || (lo->show_reachable && other)) view.traces[view.ntraces++] = *rt;
    for (int c = SM_LEAK_POSSIBLE; c < SM_LEAK_CLASSES && !lo->show_reachable; c++)
      r.totals[c][0] += rt->leak[c][0], r.totals[c][1] += rt->leak[c][1];
  }
  sm_model_t m;
  sm_model_build(ctx, &view, &m);
  /* Blocks with no trace (the id-0 record: allocated before tracing could
   * start, which the library avoids, or by the loader) are reported and
   * gated on like the others. With sampling, the untraced blocks are the
   * ones not sampled, which the sampled traces already stand for. */
  sm_strace_t untraced = {0};
  for (size_t i = 0; i < snap.ntraces && !(snap.flags & SM_SNAP_SAMPLED); i++)
    if (snap.traces[i].id == 0) untraced.raw = &snap.traces[i];
  collect_entries(&m, untraced.raw ? &untraced : NULL, &supp, lo, &r);
  int leaked = 0;
  for (size_t i = 0; i < r.n; i++) leaked |= r.entries[i].cls <= SM_LEAK_INDIRECT;
  if (lo->format == FMT_JSON) print_leaks_json(out, &r, &snap, label);
  else print_leaks_text(out, &r, &supp, label);
  supp_free(&supp);
  free(r.entries);
  sm_model_free(&m);
  sm_ctx_free(ctx);
  free(view.traces);
  sm_snap_free(&snap);
  return leaked;
}

static const char leaks_help[] =
    "  --suppressions FILE  LeakSanitizer suppressions (leak:PATTERN lines) to apply\n"
    "  --min-bytes N        report only traces that lost at least N bytes\n"
    "  --show reachable     also list possibly lost and still reachable blocks\n"
    "  --format text|json   output format (default text)\n"
    "  --full-paths         do not shorten paths under the current directory\n"
    "  --alloc-fn GLOB      a function of the program's own that allocates for its\n"
    "                       callers (xmalloc, g_malloc): never named as the site\n"
    "                       (repeatable)\n";

enum { L_SUPP = CLI_LEAKS_FIRST, L_MIN, L_SHOW, L_FORMAT };

/* leaks' own options (with the naming ones); check takes every one of them. */
const struct option cli_leaks_opts[] = {
    {"suppressions", required_argument, NULL, L_SUPP},
    {"min-bytes", required_argument, NULL, L_MIN},
    {"show", required_argument, NULL, L_SHOW},
    {"format", required_argument, NULL, L_FORMAT},
    {NULL, 0, NULL, 0},
};

static void leaks_init(cli_leaks_opts_t *lo, int argc) {
  memset(lo, 0, sizeof *lo);
  lo->format = FMT_TEXT;
  cli_select_init(&lo->naming, argc);
}

/* Takes one of leaks' options or a naming option (its value in optarg). */
static void leaks_opt(const char *cmd, int c, cli_leaks_opts_t *lo) {
  static const char *const formats[] = {"text", "json", NULL};
  static const sm_format_t format_of[] = {FMT_TEXT, FMT_JSON};
  struct stat st;
  switch (c) {
  case L_SUPP:
    if (stat(optarg, &st) != 0 || !S_ISREG(st.st_mode)) {
      fprintf(stderr, "snapmalloc: %s: cannot open: %s\n", optarg, errno ? strerror(errno) : "not a file");
      exit(2);
    }
    lo->supp = optarg;
    break;
  case L_MIN:
    if (!cli_parse_size(optarg, &lo->min_bytes)) cli_usage_error(cmd, "--min-bytes takes a size in bytes, not '%s'", optarg);
    break;
  case L_SHOW:
    if (strcmp(optarg, "reachable") != 0) cli_usage_error(cmd, "--show takes 'reachable', not '%s'", optarg);
    lo->show_reachable = true;
    break;
  case L_FORMAT: lo->format = format_of[cli_keyword(cmd, "--format", formats)]; break;
  default: cli_select_opt(c, &lo->naming);
  }
}

int cmd_leaks(int argc, char **argv) {
  cli_leaks_opts_t lo;
  leaks_init(&lo, argc);
  const char *path = NULL;
  cli_opts_t p;
  static const struct option *const groups[] = {cli_leaks_opts, cli_naming_opts, cli_help_opts, NULL};
  cli_opts_init(&p, "leaks", "-", groups);
  int c;
  while ((c = cli_opts_next(&p, argc, argv)) != -1) {
    if (c == CLI_OPERAND) {
      if (path) cli_usage_error("leaks", "takes one snapshot, not several");
      path = optarg;
    } else if (c == CLI_HELP) {
      printf("usage: snapmalloc leaks SNAPSHOT [options]\n\n"
             "Prints the blocks a traced program lost at exit, grouped by the stack trace\n"
             "that allocated them, biggest first, then the totals per class as valgrind\n"
             "names them. Exit status: 0 nothing lost, 1 leaks reported, 2 bad input.\n\n%s",
             leaks_help);
      cli_select_free(&lo.naming);
      return 0;
    } else {
      leaks_opt("leaks", c, &lo);
    }
  }
  if (!path) cli_usage_error("leaks", "needs a snapshot file");
  int rc = leak_report(stdout, path, &lo, NULL);
  cli_select_free(&lo.naming);
  return rc;
}

/* check: run's options, leaks' options and -o/--report before "--", then
 * the command. */
static const struct option check_opts[] = {
    {"report", required_argument, NULL, 'o'},
    {NULL, 0, NULL, 0},
};

static void check_help(void) {
  printf("usage: snapmalloc check [run options] [leaks options] [-o FILE] -- CMD [ARG...]\n\n"
         "Runs CMD traced with leak analysis at exit (like 'snapmalloc run'), then prints\n"
         "the leak report of every process it started. Exit status: CMD's own if it\n"
         "failed, else 1 if anything definitely or indirectly lost remains after\n"
         "suppressions, else 0; 2 for bad input, or when no process of CMD could be\n"
         "analysed.\n\n"
         "  -o, --report FILE    write the report to FILE instead of stderr (text) or\n"
         "                       stdout (json)\n"
         "Run options:");
  for (const struct option *o = cli_run_opts; o->name; o++) printf("%s --%s", o == cli_run_opts ? "" : ",", o->name);
  printf(" (see snapmalloc run --help).\nLeaks options:\n%s", leaks_help);
}

/* Hands one of run's options on to run, as --NAME [VALUE]. */
static void forward_run_opt(cli_check_args_t *a, int c) {
  const struct option *o = cli_opts_find(cli_run_opts, c);
  strbuf_t name = {0};
  sb_printf(&name, "--%s", o->name);
  a->names[a->nnames++] = name.s;
  a->run_argv[a->run_argc++] = name.s;
  if (o->has_arg != no_argument) a->run_argv[a->run_argc++] = optarg;
  if (!strcmp(o->name, "out")) a->out = optarg;
}

void cli_check_parse(int argc, char **argv, cli_check_args_t *a) {
  memset(a, 0, sizeof *a);
  leaks_init(&a->lo, argc);
  a->run_argv = xcalloc((size_t)argc + 4, sizeof *a->run_argv);
  a->names = xcalloc((size_t)argc, sizeof *a->names);
  a->run_argv[a->run_argc++] = "run";
  cli_opts_t p;
  /* run's table and leaks' (with the naming options): whatever either
   * takes, check takes */
  static const struct option *const groups[] = {cli_run_opts, cli_leaks_opts, cli_naming_opts, check_opts,
                                                cli_help_opts, NULL};
  cli_opts_init(&p, "check", "+:o:", groups);
  p.split_errors = true;
  int c;
  while ((c = cli_opts_next(&p, argc, argv)) != -1) {
    if (c == CLI_HELP) {
      check_help();
      exit(0);
    }
    if (c == 'o') a->report = optarg;
    else if (c >= CLI_RUN_FIRST && c <= CLI_RUN_LAST) forward_run_opt(a, c);
    else leaks_opt("check", c, &a->lo);
  }
  if (!p.ended_at_dashdash && optind < argc) cli_usage_error("check", "option '%s' is unknown", argv[optind]);
  if (!p.ended_at_dashdash || optind >= argc) cli_usage_error("check", "needs a command to run after '--'");
  if (!a->out) { /* filled in by cmd_check */
    a->run_argv[a->run_argc++] = "--out";
    a->run_argv[a->run_argc++] = a->pattern;
  }
  a->run_argv[a->run_argc++] = "--no-report";
  for (int i = optind; i < argc; i++) a->run_argv[a->run_argc++] = argv[i];
}

void cli_check_free(cli_check_args_t *a) {
  for (int i = 0; i < a->nnames; i++) free(a->names[i]);
  free(a->names);
  free(a->run_argv);
  cli_select_free(&a->lo.naming);
}


/* The leak reports of the run's final snapshots, written to out; the worst
 * result (0, 1, 2). */
static int report_run(FILE *out, const cli_check_args_t *a, const cli_run_t *run) {
  size_t n;
  char **files = cli_run_snapshots(run->pattern, run->id, &n);
  int worst = 0, analysed = 0, unanalysed = 0;
  for (size_t k = 0; k < n; k++) {
    sm_snap_t s;
    char err[256];
    if (sm_snap_read(files[k], &s, err, sizeof err) != 0) continue;
    bool final = s.flags & SM_SNAP_FINAL, leaks = s.flags & SM_SNAP_LEAKS;
    /* the program name comes from the file: its display form (docs/cli.md) */
    strbuf_t prog = {0}, path = {0};
    sm_escape(&prog, s.program ? s.program : "", 1024);
    sm_escape(&path, files[k], 0);
    char label[2 * PATH_MAX + 128];
    snprintf(label, sizeof label, "== pid %llu (%s): %s", (unsigned long long)s.pid, prog.s ? prog.s : "",
             path.s ? path.s : "");
    free(prog.s);
    free(path.s);
    sm_snap_free(&s);
    if (!final) continue;
    if (!leaks) {
      fprintf(stderr, "%s: no leak analysis (it was skipped: see the warnings above)\n", label);
      unanalysed++;
      continue;
    }
    analysed++;
    int r = leak_report(out, files[k], &a->lo, label);
    if (r > worst) worst = r;
  }
  cli_free_list(files, n);
  if (!analysed)
    fprintf(stderr, "snapmalloc check: no process of the command wrote a final snapshot with leak analysis "
                    "(did it start? did it end with _exit() or a signal?)\n");
  if (worst == 0 && (!analysed || unanalysed)) worst = 2; /* cannot vouch for it */
  return worst;
}

int cmd_check(int argc, char **argv) {
  cli_check_args_t a;
  cli_check_parse(argc, argv, &a);
  if (a.lo.supp) { /* a bad file stops here (exit 2), before the command runs for nothing */
    supp_t supp = {0};
    supp_load(a.lo.supp, &supp);
    supp_free(&supp);
  }
  FILE *out = a.lo.format == FMT_JSON ? stdout : stderr;
  if (a.report && !(out = fopen(a.report, "we"))) { /* not inherited by CMD */
    fprintf(stderr, "snapmalloc check: %s: cannot write the report: %s\n", a.report, strerror(errno));
    return 2;
  }
  /* Snapshots go to a fresh directory (removed afterwards) unless --out
   * says otherwise; either way the report covers this run's processes
   * only, told apart by the run id in their snapshots. */
  if (!a.out) {
    snprintf(a.dir, sizeof a.dir, "/tmp/snapmalloc-check.XXXXXX");
    if (!mkdtemp(a.dir)) {
      perror("snapmalloc check: mkdtemp");
      return 2;
    }
    snprintf(a.pattern, sizeof a.pattern, "%s/%%e.%%p.%%n.snap", a.dir);
  }
  /* leaks=1 is the default with tracing; say it anyway in case the
   * environment turned it off */
  const char *prev = getenv("SNAPMALLOC_OPTIONS");
  char opts[4096];
  snprintf(opts, sizeof opts, "%s%sleaks=1,at_exit=1", prev && *prev ? prev : "", prev && *prev ? "," : "");
  setenv("SNAPMALLOC_OPTIONS", opts, 1);
  cli_run_t run = {0};
  int status = cli_run(a.run_argc, a.run_argv, false, &run);
  int worst = run.pattern ? report_run(out, &a, &run) : 2;
  if (a.report && fclose(out) != 0) {
    fprintf(stderr, "snapmalloc check: %s: cannot write the report: %s\n", a.report, strerror(errno));
    worst = 2;
  }
  if (!a.out) sm_remove_dir("check", a.dir);
  free(run.pattern);
  cli_check_free(&a);
  if (status != 0) return status;
  return worst;
}
