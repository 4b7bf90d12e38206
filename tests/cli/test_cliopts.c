/* check is made of run's and leaks' option tables (tools/cliopt.h): every
 * option of run, taken from run's table, is accepted by check and handed on
 * to run with its value; every option of leaks (its own table and the
 * naming options) is accepted by check and taken by check itself, with its
 * effect on the leak report's options. An option added to either table
 * without check knowing it makes this test fail: check's parser exits 2, or
 * the option has no sample value below.
 * Also: the option groups' codes stay in their blocks (check tells run's
 * options from the others by their code). */
#include <string.h>
#include <unistd.h>

#include "tests/testhelper.h"
#include "tools/cli.h"
#include "tools/cliopt.h"

static char supp_path[64];

/* A valid value for each option that takes one, and what check must have
 * made of it (NULL: handed on to run). */
typedef bool (*took_fn)(const cli_check_args_t *a);
static bool took_supp(const cli_check_args_t *a) { return a->lo.supp && !strcmp(a->lo.supp, supp_path); }
static bool took_min(const cli_check_args_t *a) { return a->lo.min_bytes == 8192; }
static bool took_show(const cli_check_args_t *a) { return a->lo.show_reachable; }
static bool took_format(const cli_check_args_t *a) { return a->lo.format == FMT_JSON; }
static bool took_full(const cli_check_args_t *a) { return a->lo.naming.full_paths; }
static bool took_alloc(const cli_check_args_t *a) {
  return a->lo.naming.nalloc_fn == 1 && !strcmp(a->lo.naming.alloc_fn[0], "my_x*");
}

static const struct sample {
  const char *name, *value;
  took_fn took;
} samples[] = {
    {"depth", "7", NULL},        {"out", "x.%p.snap", NULL},       {"interval", "3", NULL},
    {"sample", "4K", NULL},      {"no-report", NULL, NULL},        {"suppressions", supp_path, took_supp},
    {"min-bytes", "8K", took_min}, {"show", "reachable", took_show}, {"format", "json", took_format},
    {"full-paths", NULL, took_full}, {"alloc-fn", "my_x*", took_alloc}, {"live", NULL, NULL},
    {"top", "5", NULL},          {"by", "file", NULL},
};

static const struct sample *sample_of(const char *name) {
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
    if (!strcmp(samples[i].name, name)) return &samples[i];
  return NULL;
}

/* check --NAME [VALUE] -- true, parsed. */
static void parse_one(const struct option *o, const char *value, cli_check_args_t *a) {
  static char name[64];
  snprintf(name, sizeof name, "--%s", o->name);
  char *argv[6] = {"check", name};
  int argc = 2;
  if (o->has_arg != no_argument) argv[argc++] = (char *)value;
  argv[argc++] = "--";
  argv[argc++] = "true";
  argv[argc] = NULL;
  cli_check_parse(argc, argv, a);
}

static int find_arg(const cli_check_args_t *a, const char *s) {
  for (int i = 0; i < a->run_argc; i++)
    if (!strcmp(a->run_argv[i], s)) return i;
  return -1;
}

/* Every option of group: accepted by check, and handed on to run or taken
 * by check as its sample says. */
static void check_group(const char *what, const struct option *group, bool to_run) {
  for (const struct option *o = group; o->name; o++) {
    const struct sample *s = sample_of(o->name);
    CHECK_MSG(s != NULL, "%s option --%s has no sample value in this test: add one", what, o->name);
    if (!s) continue;
    CHECK_MSG(o->has_arg == no_argument || s->value, "--%s takes a value but its sample has none", o->name);
    cli_check_args_t a;
    parse_one(o, s->value, &a);
    char name[64];
    snprintf(name, sizeof name, "--%s", o->name);
    int at = find_arg(&a, name);
    CHECK(!strcmp(a.run_argv[a.run_argc - 1], "true"));
    CHECK(!strcmp(a.run_argv[a.run_argc - 2], "--no-report"));
    if (to_run) {
      CHECK_MSG(at > 0, "run option %s was not handed on to run", name);
      if (at > 0 && o->has_arg != no_argument) CHECK_MSG(!strcmp(a.run_argv[at + 1], s->value), "%s lost its value", name);
      CHECK_MSG(find_arg(&a, "--out") > 0, "run has no --out");
    } else {
      CHECK_MSG(at < 0, "leaks option %s was handed on to run", name);
      CHECK_MSG(s->took && s->took(&a), "check did not take leaks option %s", name);
    }
    cli_check_free(&a);
  }
}

static void check_codes(const struct option *group, int lo, int hi) {
  for (const struct option *o = group; o->name; o++) CHECK_MSG(o->val >= lo && o->val <= hi, "--%s: code %d", o->name, o->val);
}

int main(void) {
  snprintf(supp_path, sizeof supp_path, "/tmp/test_cliopts.%d.supp", (int)getpid());
  FILE *f = fopen(supp_path, "w");
  if (!f) TEST_SKIP("cannot write %s", supp_path);
  fputs("leak:nothing\n", f);
  fclose(f);
  check_codes(cli_run_opts, CLI_RUN_FIRST, CLI_RUN_LAST);
  check_codes(cli_leaks_opts, CLI_LEAKS_FIRST, CLI_LEAKS_LAST);
  check_group("run", cli_run_opts, true);
  check_group("leaks", cli_leaks_opts, false);
  check_group("naming", cli_naming_opts, false);
  unlink(supp_path);
  return test_summary();
}
