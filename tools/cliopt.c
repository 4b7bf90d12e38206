/* See cliopt.h. */
#include "tools/cliopt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/util.h"

const struct option cli_select_opts[] = {
    {"include", required_argument, NULL, CLI_INCLUDE},
    {"exclude", required_argument, NULL, CLI_EXCLUDE},
    {"raw", no_argument, NULL, CLI_RAW},
    {NULL, 0, NULL, 0},
};

const struct option cli_naming_opts[] = {
    {"full-paths", no_argument, NULL, CLI_FULL_PATHS},
    {"alloc-fn", required_argument, NULL, CLI_ALLOC_FN},
    {NULL, 0, NULL, 0},
};

const struct option cli_view_opts[] = {
    {"at", required_argument, NULL, CLI_AT},
    {"old-at", required_argument, NULL, CLI_OLD_AT},
    {NULL, 0, NULL, 0},
};

const struct option cli_output_opts[] = {
    {"output", required_argument, NULL, 'o'},
    {NULL, 0, NULL, 0},
};

const struct option cli_help_opts[] = {
    {"help", no_argument, NULL, CLI_HELP},
    {NULL, 0, NULL, 0},
};

void cli_opts_init(cli_opts_t *p, const char *cmd, const char *shorts, const struct option *const *groups) {
  memset(p, 0, sizeof *p);
  p->cmd = cmd;
  p->shorts = shorts;
  for (; *groups; groups++)
    for (const struct option *o = *groups; o->name; o++) {
      if (p->n == CLI_MAX_OPTS) abort(); /* a table of ours outgrew CLI_MAX_OPTS */
      p->v[p->n++] = *o;
    }
  optind = 1;
  opterr = 0;
}

const struct option *cli_opts_find(const struct option *group, int c) {
  for (; group->name; group++)
    if (group->val == c) return group;
  return NULL;
}

/* The option getopt refused, as the user wrote it: a short option's
 * letter, or the word at argv[optind - 1] (a long option's code is not
 * a letter). */
static __attribute__((noreturn)) void refuse(const cli_opts_t *p, char **argv, const char *why) {
  if (optopt > 0 && optopt < 128) cli_usage_error(p->cmd, "option '-%c' %s", optopt, why);
  cli_usage_error(p->cmd, "option '%s' %s", argv[optind - 1], why);
}

int cli_opts_next(cli_opts_t *p, int argc, char **argv) {
  int before = optind;
  int c = getopt_long(argc, argv, p->shorts, p->v, NULL);
  p->ended_at_dashdash = c == -1 && optind == before + 1 && !strcmp(argv[before], "--");
  if (c == ':') refuse(p, argv, "needs a value");
  if (c == '?') refuse(p, argv, p->split_errors ? "is unknown" : "is unknown or lacks its value");
  return c;
}

/* Whether word is one of the '|'-separated spellings of name. */
static bool spelled(const char *name, const char *word) {
  size_t n = strlen(word);
  for (const char *s = name; s;) {
    const char *bar = strchr(s, '|');
    size_t len = bar ? (size_t)(bar - s) : strlen(s);
    if (len == n && !strncmp(s, word, n)) return true;
    s = bar ? bar + 1 : NULL;
  }
  return false;
}

int cli_keyword(const char *cmd, const char *option, const char *const *names) {
  int n = 0;
  for (; names[n]; n++)
    if (spelled(names[n], optarg)) return n;
  strbuf_t list = {0};
  for (int i = 0; i < n; i++) {
    sb_puts(&list, i == 0 ? "" : i == n - 1 ? " or " : ", ");
    sb_printf(&list, "%.*s", (int)strcspn(names[i], "|"), names[i]);
  }
  cli_usage_error(cmd, "%s takes %s, not '%s'", option, list.s, optarg);
}

void cli_range(const char *cmd, const char *option, long lo, long hi, const char *unit, long *out) {
  if (!cli_parse_int(optarg, lo, hi, out))
    cli_usage_error(cmd, "%s takes %ld..%ld%s%s, not '%s'", option, lo, hi, *unit ? " " : "", unit, optarg);
}

void cli_select_init(sm_report_opts_t *o, int argc) {
  o->include = xcalloc((size_t)argc, sizeof(char *));
  o->exclude = xcalloc((size_t)argc, sizeof(char *));
  o->alloc_fn = xcalloc((size_t)argc, sizeof(char *));
}

bool cli_select_opt(int c, sm_report_opts_t *o) {
  switch (c) {
  case CLI_INCLUDE: o->include[o->ninclude++] = optarg; return true;
  case CLI_EXCLUDE: o->exclude[o->nexclude++] = optarg; return true;
  case CLI_RAW: o->raw = true; return true;
  case CLI_FULL_PATHS: o->full_paths = true; return true;
  case CLI_ALLOC_FN: o->alloc_fn[o->nalloc_fn++] = optarg; return true;
  default: return false;
  }
}

void cli_select_free(sm_report_opts_t *o) {
  free(o->include);
  free(o->exclude);
  free(o->alloc_fn);
}

bool cli_view_opt(const char *cmd, int c, sm_report_opts_t *o) {
  static const char *const moments[] = {"end", "peak", NULL};
  switch (c) {
  case CLI_AT: o->at = (sm_at_t)cli_keyword(cmd, "--at", moments); return true;
  case CLI_OLD_AT:
    o->old_at = (sm_at_t)cli_keyword(cmd, "--old-at", moments);
    o->old_at_given = true;
    return true;
  default: return false;
  }
}

void cli_view_done(const char *cmd, sm_report_opts_t *o, int nsnaps) {
  static const char *const sorts[] = {"size", "count", "allocations", "allocated", "temporary"};
  if (o->old_at_given && nsnaps < 2)
    cli_usage_error(cmd, "--old-at is OLD's moment, for two snapshots (OLD NEW); use --at");
  if (!o->old_at_given) o->old_at = o->at;
  if (sm_sort_is_flow(o->sort) && (o->at == AT_PEAK || o->old_at == AT_PEAK))
    cli_usage_error(cmd, "--sort %s counts since tracing started, not at a moment: not with --at/--old-at peak",
                    sorts[o->sort]);
}
