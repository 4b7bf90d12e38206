/* Shared by the command implementations of the snapmalloc tool. */
#ifndef SM_TOOLS_CLI_H
#define SM_TOOLS_CLI_H

#include <limits.h>
#include <stdbool.h>

#include "tools/report.h"
#include "tools/snapread.h"

#define SNAPMALLOC_TOOL_VERSION SM_PROJECT_VERSION /* from meson.build */

/* The whole tool: main() is this (argv[1] is the command). */
int sm_cli_main(int argc, char **argv);
/* Prints "snapmalloc CMD: <message> (see ...)" and exits 2. */
void cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
bool cli_parse_size(const char *s, unsigned long long *out); /* K/M/G/T suffixes */
bool cli_parse_int(const char *s, long lo, long hi, long *out);
/* Seconds with up to three decimals ("2", "0.5") into milliseconds, at
 * most max_ms; false for anything else ("1e3", ".5", "0.0001", "-1"). */
bool cli_parse_seconds(const char *s, long max_ms, long *ms);
/* Reads a snapshot or prints "snapmalloc: PATH: problem" and returns -1. */
int cli_load(const char *path, sm_snap_t *snap);
/* A snapshot of format version 1 has no peak or flow figures: when the
 * moment or the sort needs them, prints "snapmalloc: PATH: ..." and
 * returns -1; else 0. */
int cli_need_figures(const char *path, const sm_snap_t *snap, sm_at_t at, sm_sort_t sort);

int cmd_run(int argc, char **argv);
/* What a run was: its id (run=ID in every snapshot's options) and its
 * absolute out pattern (malloc'd; the caller frees it). */
#define SM_RUN_ID_MAX 64
typedef struct cli_run {
  char id[SM_RUN_ID_MAX];
  char *pattern;
} cli_run_t;
/* run's whole job; a death by signal is re-raised if `reraise`, else
 * returned as 128 + N. res (may be NULL) gets the run's id and pattern. */
int cli_run(int argc, char **argv, bool reraise, cli_run_t *res);
char *cli_pattern_glob(const char *pattern); /* the out pattern as a glob (malloc'd) */
/* Whether a snapshot records run=ID among its options. */
bool cli_snap_in_run(const sm_snap_t *s, const char *id);
/* Files matching `pattern` whose snapshot belongs to run `id`. */
char **cli_run_snapshots(const char *pattern, const char *id, size_t *n);
void cli_free_list(char **list, size_t n);
int cmd_leaks(int argc, char **argv);
int cmd_check(int argc, char **argv);

/* leaks' options (leaks.c). */
typedef struct cli_leaks_opts {
  sm_report_opts_t naming; /* --full-paths, --alloc-fn */
  const char *supp;
  unsigned long long min_bytes;
  bool show_reachable;
  sm_format_t format;
} cli_leaks_opts_t;

/* What check was asked (leaks.c): its leaks options, and run's arguments
 * (every run option given to check, then --out, --no-report, -- CMD...). */
typedef struct cli_check_args {
  cli_leaks_opts_t lo;
  const char *out, *report;  /* --out PATTERN, -o/--report FILE */
  char **run_argv;
  int run_argc;
  char **names;              /* the "--NAME"s of run_argv (malloc'd) */
  int nnames;
  char dir[32];              /* without --out: a fresh directory of check's own */
  char pattern[PATH_MAX];    /* and the pattern in it */
} cli_check_args_t;
/* Parses check's arguments (a usage error exits 2; --help exits 0). */
void cli_check_parse(int argc, char **argv, cli_check_args_t *a);
void cli_check_free(cli_check_args_t *a);
int cmd_export(int argc, char **argv);
int cmd_flame(int argc, char **argv);    /* flame.c */
int cmd_timeline(int argc, char **argv); /* timeline.c */

#endif
