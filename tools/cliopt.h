/* The options of the tool's commands, as getopt_long tables composed per
 * command.
 *
 * Each group of options is one table: the selection of traces every report
 * command takes (cli_select_opts), how sites are named (cli_naming_opts),
 * the output file (cli_output_opts), --help, and each command's own (run's
 * and leaks' are exported, because check is made of them). A command's
 * table is the concatenation of its groups (cli_opts_init), and one loop
 * (cli_opts_next) reads argv and says in one line what was wrong. The codes
 * of each group lie in a block of their own, so a code says which group it
 * belongs to: check hands the codes of run's table on to run. */
#ifndef SM_TOOLS_CLIOPT_H
#define SM_TOOLS_CLIOPT_H

#include <getopt.h>
#include <stdbool.h>

#include "tools/report.h"

enum {
  CLI_OPERAND = 1,         /* an operand, with "-" at the start of the short options */
  CLI_HELP = 256,
  /* cli_select_opts and cli_naming_opts */
  CLI_INCLUDE = 300, CLI_EXCLUDE, CLI_RAW, CLI_FULL_PATHS, CLI_ALLOC_FN,
  /* cli_view_opts */
  CLI_AT = 320, CLI_OLD_AT,
  /* run's table (run.c) */
  CLI_RUN_FIRST = 400, CLI_RUN_LAST = 419,
  /* leaks' table (leaks.c) */
  CLI_LEAKS_FIRST = 420, CLI_LEAKS_LAST = 439,
  /* each command's own options, never composed with another's */
  CLI_OWN = 500,
};

#define CLI_MAX_OPTS 32

/* A command's composed table and how to read it. */
typedef struct cli_opts {
  const char *cmd;         /* for messages: "snapmalloc CMD: ..." */
  const char *shorts;      /* getopt's optstring */
  bool split_errors;       /* "is unknown" and "needs a value" apart (check) */
  bool ended_at_dashdash;  /* the last cli_opts_next consumed a "--" */
  struct option v[CLI_MAX_OPTS + 1];
  int n;
} cli_opts_t;

extern const struct option cli_select_opts[]; /* --include, --exclude, --raw */
extern const struct option cli_naming_opts[]; /* --full-paths, --alloc-fn */
extern const struct option cli_view_opts[];   /* --at, --old-at */
extern const struct option cli_output_opts[]; /* -o, --output (with "o:" in shorts) */
extern const struct option cli_help_opts[];   /* --help */
extern const struct option cli_run_opts[];    /* run.c */
extern const struct option cli_leaks_opts[];  /* leaks.c */

/* Starts reading argv (from argv[1]) with the command's table: the
 * groups (a NULL-terminated list) concatenated. shorts: "-" gives operands
 * in order as CLI_OPERAND, "+" stops at the first one; "o:" after it for -o;
 * a ':' first tells a missing value from an unknown option. */
void cli_opts_init(cli_opts_t *p, const char *cmd, const char *shorts, const struct option *const *groups);
/* The next option's code (its value, if any, in optarg), CLI_OPERAND, or
 * -1 at the end. An unknown option, or one that lacks its value, is a
 * usage error (exit 2). */
int cli_opts_next(cli_opts_t *p, int argc, char **argv);
/* The entry of group whose code is c, or NULL. */
const struct option *cli_opts_find(const struct option *group, int c);

/* Reads a keyword option: optarg must be one of names (NULL-terminated),
 * each "NAME" or "NAME|ALIAS|..."; returns its index, or says "OPTION
 * takes A, B or C, not 'X'" (the names without their aliases) and exits 2. */
int cli_keyword(const char *cmd, const char *option, const char *const *names);

/* Reads a whole number from lo to hi in optarg into *out, or says
 * "OPTION takes LO..HI[ UNIT], not 'X'" and exits 2 (unit may be ""). */
void cli_range(const char *cmd, const char *option, long lo, long hi, const char *unit, long *out);

/* The selection and naming options, into a report's options: the arrays
 * get room for every argument (free them with cli_select_free). */
void cli_select_init(sm_report_opts_t *o, int argc);
/* Takes code c if it is a selection or naming option; false if not. */
bool cli_select_opt(int c, sm_report_opts_t *o);
void cli_select_free(sm_report_opts_t *o);

/* The moments (--at, --old-at) into a report's options; o->old_at_given
 * says whether --old-at was given. Takes code c if it is one; false if not. */
bool cli_view_opt(const char *cmd, int c, sm_report_opts_t *o);
/* Once every option is read: OLD's moment is NEW's unless --old-at said;
 * --old-at needs two snapshots (nsnaps); a flow sort (counts since tracing
 * started) has no moment. A usage error exits 2. */
void cli_view_done(const char *cmd, sm_report_opts_t *o, int nsnaps);

#endif
