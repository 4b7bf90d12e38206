/* snapmalloc run: start a command with libsnapmalloc.so preloaded and
 * tracing on, pass its exit status through, then say where the snapshots
 * are and print the top 10 sites of its final snapshot (and at the peak
 * of traced memory, when those are not the same).
 *
 * The library is found where SNAPMALLOC_LIB says, else next to this
 * executable (a build tree), else in the libdir that meson installs to,
 * relative to this executable (SM_LIBDIR_FROM_BINDIR, from
 * tools/meson.build), else in ../lib (and ../lib/<multiarch>, ../lib64).
 *
 * A run is told apart from every other by a random id that every process it
 * starts records in its snapshots' options (run=ID, put first): the files
 * of this run are the ones matching the out pattern whose header carries
 * the id, whatever their times and whatever else the pattern matches. */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/cliopt.h"
#include "tools/report.h"
#include "tools/util.h"

static bool is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *find_library(void) {
  const char *env = getenv("SNAPMALLOC_LIB");
  if (env && *env) {
    if (!is_file(env)) {
      fprintf(stderr, "snapmalloc run: SNAPMALLOC_LIB=%s is not a file\n", env);
      exit(2);
    }
    return realpath(env, NULL);
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return NULL;
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (!slash) return NULL;
  *slash = '\0';
#ifndef SM_LIBDIR_FROM_BINDIR
#define SM_LIBDIR_FROM_BINDIR "../lib"
#endif
  static const char *rel[] = {".", SM_LIBDIR_FROM_BINDIR, "../lib", "../lib/x86_64-linux-gnu", "../lib/aarch64-linux-gnu",
                              "../lib64"};
  char cand[2 * PATH_MAX];
  for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
    if (rel[i][0] == '/') snprintf(cand, sizeof cand, "%s/libsnapmalloc.so", rel[i]); /* libdir outside the prefix */
    else snprintf(cand, sizeof cand, "%s/%s/libsnapmalloc.so", self, rel[i]);
    if (is_file(cand)) return realpath(cand, NULL);
  }
  return NULL;
}

static void setenv_or_die(const char *k, const char *v) {
  if (setenv(k, v, 1) != 0) {
    perror("snapmalloc run: setenv");
    exit(2);
  }
}

/* The out pattern with every % field turned into '*'. */
char *cli_pattern_glob(const char *pattern) {
  strbuf_t b = {0};
  for (const char *p = pattern; *p; p++) {
    if (*p == '%' && p[1]) {
      p++;
      sb_putc(&b, *p == '%' ? '%' : '*');
    } else if (*p == '*' || *p == '?' || *p == '[' || *p == '\\') {
      sb_putc(&b, '\\');
      sb_putc(&b, *p);
    } else {
      sb_putc(&b, *p);
    }
  }
  return b.s ? b.s : xstrdup("");
}

static int run_help(void) {
  printf("usage: snapmalloc run [options] -- CMD [ARG...]\n\n"
         "Runs CMD with libsnapmalloc.so preloaded and every allocation traced, passes\n"
         "its exit status through, then lists the snapshots written and prints the top\n"
         "10 allocation sites of the final one (on stderr); and the top 10 at the peak\n"
         "of traced memory, when it was over 10%% above the end or another site led.\n\n"
         "  --depth N        frames kept per trace, 1..128 (default 16; 64 in a CPython\n"
         "                   program, Python frames included)\n"
         "  --out PATTERN    snapshot path pattern: %%p pid, %%n sequence number,\n"
         "                   %%e program name (default snapmalloc.%%e.%%p.%%n.snap)\n"
         "  --interval S     also write a snapshot every S seconds\n"
         "  --sample BYTES   sample one allocation per BYTES on average (K/M/G suffixes)\n"
         "  --no-report      do not print the top sites afterwards\n\n"
         "SIGUSR2 makes the running program write a snapshot. SNAPMALLOC_OPTIONS set in\n"
         "the environment is passed on; these options override it.\n");
  return 0;
}

typedef struct run_args {
  long depth;              /* 0: not given (the library's default) */
  long interval;
  unsigned long long sample;
  const char *out;
  bool report;
  char **cmd;
} run_args_t;

enum { O_DEPTH = CLI_RUN_FIRST, O_OUT, O_INTERVAL, O_SAMPLE, O_NOREPORT };

/* run's own options; check takes every one of them and hands it on. */
const struct option cli_run_opts[] = {
    {"depth", required_argument, NULL, O_DEPTH},
    {"out", required_argument, NULL, O_OUT},
    {"interval", required_argument, NULL, O_INTERVAL},
    {"sample", required_argument, NULL, O_SAMPLE},
    {"no-report", no_argument, NULL, O_NOREPORT},
    {NULL, 0, NULL, 0},
};

/* Takes one of run's options (its value in optarg). */
static void run_opt(int c, run_args_t *a) {
  switch (c) {
  case O_DEPTH:
    cli_range("run", "--depth", 1, 128, "", &a->depth);
    break;
  case O_OUT:
    if (!*optarg || strchr(optarg, ',')) cli_usage_error("run", "--out takes a non-empty path pattern without commas");
    a->out = optarg;
    break;
  case O_INTERVAL:
    cli_range("run", "--interval", 0, 86400, "seconds", &a->interval);
    break;
  case O_SAMPLE:
    if (!cli_parse_size(optarg, &a->sample)) cli_usage_error("run", "--sample takes a size in bytes, not '%s'", optarg);
    break;
  case O_NOREPORT: a->report = false; break;
  }
}

/* Parses run's options; returns -1 to go on, or an exit status (--help). */
static int parse_run_args(int argc, char **argv, run_args_t *a) {
  *a = (run_args_t){0, 0, 0, "snapmalloc.%e.%p.%n.snap", true, NULL};
  cli_opts_t p;
  static const struct option *const groups[] = {cli_run_opts, cli_help_opts, NULL};
  cli_opts_init(&p, "run", "+", groups);
  int c;
  while ((c = cli_opts_next(&p, argc, argv)) != -1) {
    if (c == CLI_HELP) return run_help();
    run_opt(c, a);
  }
  if (optind < argc && !strcmp(argv[optind], "--")) optind++;
  if (optind >= argc) cli_usage_error("run", "needs a command to run after '--'");
  a->cmd = &argv[optind];
  return -1;
}

static void new_run_id(char *id, size_t cap) {
  uint64_t r[2] = {0, 0};
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    r[1] = (uint64_t)ts.tv_sec ^ (uintptr_t)&ts;
  }
  snprintf(id, cap, "%016llx%016llx", (unsigned long long)r[0], (unsigned long long)r[1]);
}

/* Sets up the environment (options with the run id first, the preload)
 * for CMD; the absolute out pattern goes to res->pattern. */
static bool prepare_env(const run_args_t *a, cli_run_t *res) {
  char *lib = find_library();
  if (!lib) {
    fprintf(stderr, "snapmalloc run: cannot find libsnapmalloc.so (set SNAPMALLOC_LIB)\n");
    return false;
  }
  /* An absolute pattern, so a program that changes directory still writes here. */
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, ".");
  strbuf_t pat = {0};
  if (a->out[0] != '/') sb_printf(&pat, "%s/", cwd);
  sb_puts(&pat, a->out);
  res->pattern = pat.s;
  new_run_id(res->id, sizeof res->id);
  strbuf_t opts = {0};
  sb_printf(&opts, "run=%s,", res->id);
  const char *prev = getenv("SNAPMALLOC_OPTIONS");
  if (prev && *prev) sb_printf(&opts, "%s,", prev);
  /* depth only when given: the library's default depends on the program
   * (deeper for a CPython one, docs/python.md). */
  sb_puts(&opts, "trace=1,");
  if (a->depth) sb_printf(&opts, "depth=%ld,", a->depth);
  sb_printf(&opts, "out=%s,interval=%ld,sample=%llu", pat.s, a->interval, a->sample);
  setenv_or_die("SNAPMALLOC_OPTIONS", opts.s);
  strbuf_t pre = {0};
  const char *prev_pre = getenv("LD_PRELOAD");
  sb_puts(&pre, lib);
  if (prev_pre && *prev_pre) sb_printf(&pre, ":%s", prev_pre);
  setenv_or_die("LD_PRELOAD", pre.s);
  free(opts.s);
  free(pre.s);
  free(lib);
  return true;
}

/* Starts CMD and waits for it, like a shell: the terminal's ^C goes to the
 * child. Returns its wait status, or -1 if it could not start. */
static int launch(char **cmd, pid_t *pidp) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("snapmalloc run: fork");
    return -1;
  }
  if (pid == 0) {
    execvp(cmd[0], cmd);
    fprintf(stderr, "snapmalloc run: cannot run %s: %s\n", cmd[0], strerror(errno));
    _exit(127);
  }
  struct sigaction ign = {0}, old_int, old_quit;
  ign.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ign, &old_int);
  sigaction(SIGQUIT, &ign, &old_quit);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGQUIT, &old_quit, NULL);
  unsetenv("LD_PRELOAD");
  *pidp = pid;
  return status;
}

bool cli_snap_in_run(const sm_snap_t *s, const char *id) {
  /* Any run=ID item: a child may have put options of its own before ours,
   * and a nested run puts its own id first (its processes are this run's
   * too). */
  size_t len = strlen(id);
  for (const char *o = s->options ? s->options : ""; *o;) {
    size_t n = strcspn(o, ",");
    if (n == 4 + len && !strncmp(o, "run=", 4) && !strncmp(o + 4, id, len)) return true;
    o += n;
    if (*o) o++;
  }
  return false;
}

/* The snapshots of run `id`: files matching the out pattern whose header
 * names the run. */
char **cli_run_snapshots(const char *pattern, const char *id, size_t *n) {
  char *g = cli_pattern_glob(pattern);
  glob_t gl;
  char **out = NULL;
  *n = 0;
  if (glob(g, 0, NULL, &gl) == 0) {
    for (size_t i = 0; i < gl.gl_pathc; i++) {
      sm_snap_t s;
      char err[256];
      if (sm_snap_read(gl.gl_pathv[i], &s, err, sizeof err) != 0) continue;
      bool ours = cli_snap_in_run(&s, id);
      sm_snap_free(&s);
      if (!ours) continue;
      out = xrealloc(out, (*n + 1) * sizeof *out);
      out[(*n)++] = xstrdup(gl.gl_pathv[i]);
    }
    globfree(&gl);
  }
  free(g);
  return out;
}

void cli_free_list(char **list, size_t n) {
  for (size_t i = 0; i < n; i++) free(list[i]);
  free(list);
}

/* Lists the run's snapshots on stderr; returns the final one of the
 * command's own process (malloc'd), if any. */
static char *list_snapshots(const cli_run_t *res, pid_t pid) {
  size_t n;
  char **files = cli_run_snapshots(res->pattern, res->id, &n);
  char *final = NULL;
  uint64_t final_seq = 0;
  if (n) fprintf(stderr, "snapmalloc: %zu snapshot%s written:\n", n, n == 1 ? "" : "s");
  else fprintf(stderr, "snapmalloc: no snapshot was written (the command may have ended without exit())\n");
  for (size_t i = 0; i < n; i++) {
    fputs("  ", stderr);
    sm_put_escaped(stderr, files[i]); /* %e puts the program's name in it */
    fputc('\n', stderr);
    sm_snap_t s;
    char err[256];
    if (sm_snap_read(files[i], &s, err, sizeof err) != 0) continue;
    if (s.pid == (uint64_t)pid && (s.flags & SM_SNAP_FINAL) && (!final || s.sequence >= final_seq)) {
      free(final);
      final = xstrdup(files[i]);
      final_seq = s.sequence;
    }
    sm_snap_free(&s);
  }
  cli_free_list(files, n);
  return final;
}

/* The top 10 sites of m at its moment (text), as a string (malloc'd). */
static char *report_text(sm_tools_ctx_t *ctx, sm_model_t *m) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return xstrdup("");
  sm_report(f, ctx, NULL, m);
  fclose(f);
  return text;
}

/* The site a report's text names first ("" if none). */
static size_t first_site(const char *text, const char **site) {
  const char *end = strstr(text, ": size=");
  const char *nl = strchr(text, '\n');
  *site = text;
  return end && (!nl || end < nl) ? (size_t)(end - text) : 0;
}

/* Whether the list at the peak tells what the list at exit does not:
 * traced memory was more than 10% higher at the peak, or another site
 * held the most. (A peak a few KiB above the end, stdio's buffer say,
 * would only repeat the list.) */
static bool peak_differs(const sm_snap_t *s, const char *at_exit, const char *at_peak) {
  if (strcmp(at_exit, at_peak) == 0) return false;
  if ((long double)s->traced_peak > 1.1L * (long double)s->traced_current) return true;
  const char *a, *b;
  size_t na = first_site(at_exit, &a), nb = first_site(at_peak, &b);
  return na != nb || strncmp(a, b, na) != 0;
}

/* The top 10 sites at exit and, when those at the peak of traced memory
 * tell more (peak_differs), at the peak too (version 2 has both). */
static void report_final(const char *final) {
  sm_report_opts_t o = {0};
  o.by = BY_LINE;
  o.limit = 10;
  sm_snap_t s;
  if (cli_load(final, &s) != 0) return;
  sm_tools_ctx_t *ctx = sm_ctx_new(&o);
  sm_model_t m;
  sm_model_build(ctx, &s, &m);
  char *at_exit = report_text(ctx, &m);
  fputs("snapmalloc: top 10 allocation sites at exit (", stderr);
  sm_put_escaped(stderr, final);
  fputs("):\n", stderr);
  sm_print_header(stderr, "", &s);
  fputs(at_exit, stderr);
  if (s.has_flow) {
    m.at = AT_PEAK; /* the same traces, their figures at the peak */
    char *at_peak = report_text(ctx, &m), peak[32];
    sm_format_size(peak, sizeof peak, (double)s.traced_peak, false);
    if (peak_differs(&s, at_exit, at_peak))
      fprintf(stderr, "snapmalloc: top 10 allocation sites at the peak of traced memory (%s):\n%s", peak, at_peak);
    free(at_peak);
  }
  free(at_exit);
  sm_model_free(&m);
  sm_ctx_free(ctx);
  sm_snap_free(&s);
}

/* What the command's wait status becomes as our exit status. */
static int pass_status(int status, const char *cmd, bool reraise) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (!WIFSIGNALED(status)) return 2;
  int sig = WTERMSIG(status);
  fprintf(stderr, "snapmalloc: %s was killed by signal %d (%s)\n", cmd, sig, strsignal(sig));
  fflush(NULL);
  if (!reraise) return 128 + sig;
  struct rlimit nocore = {0, 0};
  setrlimit(RLIMIT_CORE, &nocore); /* the child already dumped core if it was going to */
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
  return 128 + sig;
}

int cli_run(int argc, char **argv, bool reraise, cli_run_t *res) {
  run_args_t a;
  int rc = parse_run_args(argc, argv, &a);
  if (rc >= 0) return rc;
  cli_run_t local = {0};
  if (!res) res = &local;
  if (!prepare_env(&a, res)) return 2;
  pid_t pid = 0;
  int status = launch(a.cmd, &pid);
  if (status < 0) {
    free(local.pattern);
    return 2;
  }
  char *final = list_snapshots(res, pid);
  if (final && a.report) report_final(final);
  free(final);
  free(local.pattern);
  return pass_status(status, a.cmd[0], reraise);
}

int cmd_run(int argc, char **argv) { return cli_run(argc, argv, true, NULL); }
