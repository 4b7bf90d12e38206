/* snapmalloc: the command-line tool.
 *
 *   snapmalloc run   [run options] -- CMD [ARG...]
 *   snapmalloc top   SNAP [report options]
 *   snapmalloc diff  OLD NEW [report options]
 *   snapmalloc export SNAP [--format pprof|folded] [-o FILE]
 *   snapmalloc flame SNAP | OLD NEW [-o FILE]      (flame.c)
 *   snapmalloc timeline SNAP... [-o FILE]         (timeline.c)
 *   snapmalloc start|stop|snap|live PID [options] (control.c; the view: live.c)
 *
 * Exit status: 0 success; 2 bad input or usage (one line on stderr says
 * what and where); `run` passes CMD's status through (a death by signal is
 * re-raised). docs/cli.md is the manual. */
#include <errno.h>
#include <stdarg.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/cliopt.h"
#include "tools/control.h"
#include "tools/report.h"
#include "tools/snapread.h"
#include "tools/util.h"

#define EXIT_BAD 2

static const char *prog = "snapmalloc";

void cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s%s%s: ", prog, cmd ? " " : "", cmd ? cmd : "");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see '%s %s%s--help')\n", prog, cmd ? cmd : "", cmd ? " " : "");
  exit(EXIT_BAD);
}

bool cli_parse_size(const char *s, unsigned long long *out) {
  char *end;
  errno = 0;
  if (!s || !*s || *s == '-') return false;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) return false;
  unsigned shift = 0;
  if (*end == 'k' || *end == 'K') shift = 10, end++;
  else if (*end == 'm' || *end == 'M') shift = 20, end++;
  else if (*end == 'g' || *end == 'G') shift = 30, end++;
  else if (*end == 't' || *end == 'T') shift = 40, end++;
  if (shift && *end == 'i') end++;
  if (shift && (*end == 'b' || *end == 'B')) end++;
  else if (!shift && (*end == 'b' || *end == 'B')) end++;
  if (*end) return false;
  if (shift && v > (~0ULL >> shift)) return false;
  *out = v << shift;
  return true;
}

bool cli_parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  if (!s || !*s) return false;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool cli_parse_seconds(const char *s, long max_ms, long *ms) {
  if (!s || *s < '0' || *s > '9') return false;
  long whole = 0, frac = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (whole > max_ms / 1000) return false;
    whole = whole * 10 + (*p - '0');
  }
  if (*p == '.') {
    int digits = 0;
    for (p++; *p >= '0' && *p <= '9'; p++, digits++)
      if (digits < 3) frac = frac * 10 + (*p - '0');
    if (digits < 1 || digits > 3) return false;
    for (; digits < 3; digits++) frac *= 10;
  }
  if (*p || whole > max_ms / 1000 || whole * 1000 + frac > max_ms) return false;
  *ms = whole * 1000 + frac;
  return true;
}

int cli_load(const char *path, sm_snap_t *snap) {
  char err[256];
  if (sm_snap_read(path, snap, err, sizeof err) != 0) {
    fprintf(stderr, "%s: ", prog);
    sm_put_escaped(stderr, path); /* a name from a glob can hold anything */
    fprintf(stderr, ": %s\n", err);
    return -1;
  }
  return 0;
}

int cli_need_figures(const char *path, const sm_snap_t *snap, sm_at_t at, sm_sort_t sort) {
  static const char *const sorts[] = {"size", "count", "allocations", "allocated", "temporary"};
  if (snap->has_flow || (at == AT_END && !sm_sort_is_flow(sort))) return 0;
  fprintf(stderr, "%s: ", prog);
  sm_put_escaped(stderr, path);
  if (at == AT_PEAK)
    fprintf(stderr, ": a version-%u snapshot has no figures at its peak; viewing it at the peak needs format "
            "version 2\n", snap->version);
  else
    fprintf(stderr, ": a version-%u snapshot has no allocation counts; --sort %s needs format version 2\n",
            snap->version, sorts[sort]);
  return -1;
}

/* ---------------------------------------------------------------- report options */

enum { OPT_BY = CLI_OWN, OPT_LIMIT, OPT_CUMULATIVE, OPT_FORMAT, OPT_SORT };

/* top's and diff's own options; with them, the selection and naming ones. */
static const struct option report_opts[] = {
    {"by", required_argument, NULL, OPT_BY},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"cumulative", no_argument, NULL, OPT_CUMULATIVE},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"sort", required_argument, NULL, OPT_SORT},
    {NULL, 0, NULL, 0},
};

static const char report_help[] =
    "  --by line|file|function|trace  group allocations by site line (default), file,\n"
    "                                 function, or whole stack trace\n"
    "  --limit N                      show the N largest entries (default 10, 0 = all)\n"
    "  --cumulative                   count every frame of a trace, not just its site\n"
    "  --at end|peak                  live blocks when the snapshot was written (default)\n"
    "                                 or when traced memory was at its peak (NEW's, in diff)\n"
    "  --old-at end|peak              diff: OLD's moment (default: --at's); diff S S\n"
    "                                 --old-at peak shows what was freed since the peak\n"
    "  --sort size|count|allocations|allocated|temporary\n"
    "                                 order by live bytes (default) or blocks, or show the\n"
    "                                 flow since tracing started: blocks allocated, bytes\n"
    "                                 allocated, blocks freed before their thread allocated\n"
    "                                 again (temporary)\n"
    "  --include GLOB                 keep traces whose site file, function or module\n"
    "                                 matches GLOB (repeatable)\n"
    "  --exclude GLOB                 drop traces whose site matches GLOB (repeatable)\n"
    "  --format text|json|folded      output format (default text; folded: Brendan\n"
    "                                 Gregg's collapsed stacks, one line per trace)\n"
    "  --raw                          the site is the innermost frame, allocation\n"
    "                                 wrappers (strdup, operator new, ...) included\n"
    "  --alloc-fn GLOB                a function of the program's own that allocates for\n"
    "                                 its callers (xmalloc): never the site (repeatable)\n"
    "  --full-paths                   do not shorten paths under the current directory\n";

/* What top and diff were asked: the report's options and the snapshots. */
typedef struct report_args {
  sm_report_opts_t o;
  char **pos;
  int npos;
  bool help;
} report_args_t;

static void report_opt(const char *cmd, int c, sm_report_opts_t *o) {
  static const char *const by[] = {"line|lineno", "file|filename", "function", "trace|traceback", NULL};
  static const char *const formats[] = {"text", "json", "folded", NULL};
  static const sm_format_t format_of[] = {FMT_TEXT, FMT_JSON, FMT_FOLDED};
  static const char *const sorts[] = {"size", "count", "allocations", "allocated", "temporary", NULL};
  long v;
  switch (c) {
  case OPT_BY: o->by = (sm_by_t)cli_keyword(cmd, "--by", by); break;
  case OPT_LIMIT:
    if (!cli_parse_int(optarg, 0, INT_MAX, &v)) cli_usage_error(cmd, "--limit takes a whole number >= 0, not '%s'", optarg);
    o->limit = (int)v;
    break;
  case OPT_CUMULATIVE: o->cumulative = true; break;
  case OPT_FORMAT: o->format = format_of[cli_keyword(cmd, "--format", formats)]; break;
  case OPT_SORT: o->sort = (sm_sort_t)cli_keyword(cmd, "--sort", sorts); break;
  }
}

/* Parses top's or diff's arguments; the snapshots are collected in order. */
static void parse_report_args(const char *cmd, int argc, char **argv, report_args_t *a) {
  sm_report_opts_t *o = &a->o;
  memset(a, 0, sizeof *a);
  o->by = BY_LINE;
  o->limit = 10;
  o->format = FMT_TEXT;
  cli_select_init(o, argc);
  a->pos = xcalloc((size_t)argc + 1, sizeof(char *));
  cli_opts_t p;
  static const struct option *const groups[] = {report_opts, cli_view_opts, cli_select_opts, cli_naming_opts,
                                                cli_help_opts, NULL};
  cli_opts_init(&p, cmd, "-", groups);
  int c;
  while ((c = cli_opts_next(&p, argc, argv)) != -1) {
    if (c == CLI_OPERAND) a->pos[a->npos++] = optarg;
    else if (c == CLI_HELP) a->help = true;
    else if (!cli_select_opt(c, o) && !cli_view_opt(cmd, c, o)) report_opt(cmd, c, o);
  }
  cli_view_done(cmd, o, strcmp(cmd, "diff") ? 1 : 2);
  if (o->cumulative && o->by == BY_TRACE) cli_usage_error(cmd, "--cumulative cannot be used with --by trace");
  if (o->format == FMT_FOLDED && o->by != BY_TRACE) o->by = BY_TRACE; /* folded stacks are whole traces */
}

static void free_report_args(report_args_t *a) {
  cli_select_free(&a->o);
  free(a->pos);
}

/* ---------------------------------------------------------------- top / diff */

static int cmd_top(int argc, char **argv) {
  report_args_t a;
  parse_report_args("top", argc, argv, &a);
  if (a.help) {
    printf("usage: %s top SNAPSHOT [options]\n\n"
           "Prints the allocation sites holding the most live memory in SNAPSHOT (or at\n"
           "its peak, or that allocated the most), one line per site as Python's\n"
           "tracemalloc prints statistics.\n\n%s",
           prog, report_help);
    free_report_args(&a);
    return 0;
  }
  if (a.npos != 1) cli_usage_error("top", a.npos ? "takes one snapshot, not %d" : "needs a snapshot file%.0d", a.npos);
  sm_snap_t snap;
  if (cli_load(a.pos[0], &snap) != 0 || cli_need_figures(a.pos[0], &snap, a.o.at, a.o.sort) != 0) {
    sm_snap_free(&snap); /* zeroed when reading failed */
    free_report_args(&a);
    return EXIT_BAD;
  }
  sm_tools_ctx_t *ctx = sm_ctx_new(&a.o);
  sm_model_t m;
  sm_model_build(ctx, &snap, &m);
  if (a.o.format == FMT_TEXT) {
    sm_print_header(stdout, "", &snap);
    sm_print_view(stdout, &a.o, NULL, &m);
  }
  sm_report(stdout, ctx, NULL, &m);
  sm_model_free(&m);
  sm_ctx_free(ctx);
  sm_snap_free(&snap);
  free_report_args(&a);
  return 0;
}

/* Reads OLD and NEW; false (both freed) if either is bad or lacks the
 * figures its moment or the sort needs. */
static bool load_pair(char **pos, const sm_report_opts_t *o, sm_snap_t *a, sm_snap_t *b) {
  if (cli_load(pos[0], a) != 0) return false;
  if (cli_need_figures(pos[0], a, o->old_at, o->sort) == 0 && cli_load(pos[1], b) == 0) {
    if (cli_need_figures(pos[1], b, o->at, o->sort) == 0) return true;
    sm_snap_free(b);
  }
  sm_snap_free(a);
  return false;
}

static int cmd_diff(int argc, char **argv) {
  report_args_t a;
  parse_report_args("diff", argc, argv, &a);
  if (a.help) {
    printf("usage: %s diff OLD NEW [options]\n\n"
           "Compares two snapshots like tracemalloc's Snapshot.compare_to(): one line\n"
           "per site with its size and count in NEW and the change from OLD, sorted by\n"
           "the absolute size change, then the absolute count change.\n\n%s",
           prog, report_help);
    free_report_args(&a);
    return 0;
  }
  if (a.npos != 2) cli_usage_error("diff", "needs two snapshot files (OLD NEW), got %d", a.npos);
  sm_snap_t old, cur;
  if (!load_pair(a.pos, &a.o, &old, &cur)) {
    free_report_args(&a);
    return EXIT_BAD;
  }
  sm_tools_ctx_t *ctx = sm_ctx_new(&a.o);
  sm_model_t mo, mc;
  sm_model_build_at(ctx, &old, a.o.old_at, &mo);
  sm_model_build_at(ctx, &cur, a.o.at, &mc);
  if (a.o.format == FMT_TEXT) {
    sm_print_header(stdout, "old: ", &old);
    sm_print_header(stdout, "new: ", &cur);
    sm_print_view(stdout, &a.o, &mo, &mc);
  }
  sm_report(stdout, ctx, &mo, &mc);
  sm_model_free(&mo);
  sm_model_free(&mc);
  sm_ctx_free(ctx);
  sm_snap_free(&old);
  sm_snap_free(&cur);
  free_report_args(&a);
  return 0;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s COMMAND [ARGS]\n\n"
          "Commands:\n"
          "  run [options] -- CMD [ARG...]   run CMD with allocation tracing, then show its top sites\n"
          "  top SNAPSHOT [options]          the sites holding the most live memory\n"
          "  diff OLD NEW [options]          what grew or shrank between two snapshots\n"
          "  leaks SNAPSHOT [options]        blocks lost at exit (definitely, indirectly)\n"
          "  check [options] -- CMD [ARG...] run CMD and fail (exit 1) if it leaked\n"
          "  export SNAPSHOT [options]       write SNAPSHOT as a pprof profile or folded stacks\n"
          "  flame SNAPSHOT|OLD NEW [opts]   an interactive SVG flame graph of live memory\n"
          "  timeline SNAPSHOT... [options]  an SVG chart of memory over a run's snapshots\n"
          "  start PID [options]             switch tracing on in a running process\n"
          "  stop PID                        switch it off\n"
          "  snap PID [-o FILE]              make a running process write a snapshot now\n"
          "  live PID [options]              watch a running process's top sites, refreshed\n\n"
          "'%s COMMAND --help' describes a command. Exit status: 0 success, 1 leaks found\n"
          "(leaks, check), 2 bad input or usage; run and check pass CMD's failure through.\n",
          prog, prog);
}

int sm_cli_main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_BAD;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("snapmalloc %s\n", SNAPMALLOC_TOOL_VERSION);
    return 0;
  }
  if (!strcmp(cmd, "top")) return cmd_top(argc - 1, argv + 1);
  if (!strcmp(cmd, "diff")) return cmd_diff(argc - 1, argv + 1);
  if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
  if (!strcmp(cmd, "leaks")) return cmd_leaks(argc - 1, argv + 1);
  if (!strcmp(cmd, "check")) return cmd_check(argc - 1, argv + 1);
  if (!strcmp(cmd, "export")) return cmd_export(argc - 1, argv + 1);
  if (!strcmp(cmd, "flame")) return cmd_flame(argc - 1, argv + 1);
  if (!strcmp(cmd, "timeline")) return cmd_timeline(argc - 1, argv + 1);
  if (!strcmp(cmd, "start")) return cmd_start(argc - 1, argv + 1);
  if (!strcmp(cmd, "stop")) return cmd_stop(argc - 1, argv + 1);
  if (!strcmp(cmd, "snap")) return cmd_snap(argc - 1, argv + 1);
  if (!strcmp(cmd, "live")) return cmd_live(argc - 1, argv + 1);
  fprintf(stderr, "%s: unknown command '%s' (see '%s --help')\n", prog, cmd, prog);
  return EXIT_BAD;
}

/* The fuzz target (tests/fuzz/fuzz_cli.c) is built with SM_CLI_NO_MAIN and
 * calls sm_cli_main itself, once per command. */
#ifndef SM_CLI_NO_MAIN
int main(int argc, char **argv) { return sm_cli_main(argc, argv); }
#endif
