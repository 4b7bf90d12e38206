/* snapmalloc run: start a command with libsnapmalloc.so preloaded, tracing
 * on and its control channel armed, pass its exit status through, then say where the snapshots
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include "tools/live.h"
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
         "  --interval S     also write a snapshot every S seconds (fractions to the\n"
         "                   millisecond: 0.5); with --live, the refresh (default 1)\n"
         "  --sample BYTES   sample one allocation per BYTES on average (K/M/G/T suffixes)\n"
         "  --no-report      do not print the top sites afterwards\n"
         "  --live           show the top sites live while CMD runs, refreshed every\n"
         "                   --interval seconds (keys: s size, g growth, c count,\n"
         "                   q quit); plain text blocks when stdout is not a terminal\n"
         "  --top N          with --live: the N sites shown (default: what fits; 10)\n"
         "  --by line|file|function|trace\n"
         "                   with --live: how sites are grouped (default line)\n\n"
         "SIGUSR2 makes the running program write a snapshot, and so does\n"
         "'snapmalloc snap PID'; 'snapmalloc stop PID' and 'start PID' switch its tracing\n"
         "off and on (control=1). SNAPMALLOC_OPTIONS set in the environment is passed\n"
         "on; these options override it.\n");
  return 0;
}

typedef struct run_args {
  long depth;              /* 0: not given (the library's default) */
  long interval_ms;
  unsigned long long sample;
  const char *out;
  bool report;
  char **cmd;
  bool live, interval_given;
  long top;               /* --live: sites shown, 0 = what fits */
  sm_by_t by;             /* --live: grouping */
  const char *live_only;  /* the first option given that only --live takes */
} run_args_t;

enum { O_DEPTH = CLI_RUN_FIRST, O_OUT, O_INTERVAL, O_SAMPLE, O_NOREPORT, O_LIVE, O_TOP, O_BY };

/* run's own options; check takes every one of them and hands it on. */
const struct option cli_run_opts[] = {
    {"depth", required_argument, NULL, O_DEPTH},
    {"out", required_argument, NULL, O_OUT},
    {"interval", required_argument, NULL, O_INTERVAL},
    {"sample", required_argument, NULL, O_SAMPLE},
    {"no-report", no_argument, NULL, O_NOREPORT},
    {"live", no_argument, NULL, O_LIVE},
    {"top", required_argument, NULL, O_TOP},
    {"by", required_argument, NULL, O_BY},
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
    if (!cli_parse_seconds(optarg, 86400 * 1000L, &a->interval_ms))
      cli_usage_error("run", "--interval takes seconds from 0 to 86400, to the millisecond (0.5), not '%s'", optarg);
    a->interval_given = true;
    break;
  case O_SAMPLE:
    if (!cli_parse_size(optarg, &a->sample) || a->sample > (1ULL << 40))
      cli_usage_error("run", "--sample takes a size in bytes up to 1T (K/M/G/T suffixes), not '%s'", optarg);
    break;
  case O_NOREPORT: a->report = false; break;
  case O_LIVE: a->live = true; break;
  case O_TOP:
    cli_range("run", "--top", 1, 100000, "", &a->top);
    if (!a->live_only) a->live_only = "--top";
    break;
  case O_BY: {
    static const char *const by[] = {"line|lineno", "file|filename", "function", "trace|traceback", NULL};
    a->by = (sm_by_t)cli_keyword("run", "--by", by);
    if (!a->live_only) a->live_only = "--by";
    break;
  }
  }
}

/* Parses run's options; returns -1 to go on, or an exit status (--help). */
static int parse_run_args(int argc, char **argv, run_args_t *a) {
  *a = (run_args_t){.depth = 0, .out = "snapmalloc.%e.%p.%n.snap", .report = true, .by = BY_LINE};
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
  if (a->live_only && !a->live) cli_usage_error("run", "%s goes with --live", a->live_only);
  if (a->live && !a->interval_given) a->interval_ms = 1000;
  if (a->live && a->interval_ms == 0) cli_usage_error("run", "--live needs an --interval above 0");
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
 * for CMD; the absolute out pattern goes to res->pattern. The tracer
 * writes there too, unless `live` names another pattern (--live: the
 * live directory's). */
static bool prepare_env(const run_args_t *a, cli_run_t *res, const char *live) {
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
  /* control=1: `snapmalloc start|stop|snap PID` reach the command while it
   * runs. depth only when given: the library's default depends on the
   * program (deeper for a CPython one, docs/python.md). */
  sb_puts(&opts, "trace=1,control=1,");
  if (a->depth) sb_printf(&opts, "depth=%ld,", a->depth);
  sb_printf(&opts, "out=%s,interval=%ld.%03ld,sample=%llu", live ? live : pat.s, a->interval_ms / 1000,
            a->interval_ms % 1000, a->sample);
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

/* Starts CMD; its pid, or -1 if it could not start. *exec_failed (may be
 * NULL) says whether the exec failed (the child then said why and exits
 * 127): a close-on-exec pipe stays silent when the exec succeeds. */
static pid_t spawn(char **cmd, bool *exec_failed) {
  fflush(NULL);
  int p[2] = {-1, -1};
  if (exec_failed && pipe2(p, O_CLOEXEC) != 0) p[0] = p[1] = -1;
  pid_t pid = fork();
  if (pid < 0) {
    perror("snapmalloc run: fork");
    if (p[0] >= 0) close(p[0]), close(p[1]);
    return -1;
  }
  if (pid == 0) {
    execvp(cmd[0], cmd);
    int e = errno;
    fprintf(stderr, "snapmalloc run: cannot run %s: %s\n", cmd[0], strerror(e));
    if (p[1] >= 0 && write(p[1], &e, sizeof e) < 0) _exit(127);
    _exit(127);
  }
  if (exec_failed) {
    *exec_failed = false;
    if (p[0] >= 0) {
      close(p[1]);
      int e;
      ssize_t r;
      while ((r = read(p[0], &e, sizeof e)) < 0 && errno == EINTR) {
      }
      *exec_failed = r > 0;
      close(p[0]);
    }
  }
  unsetenv("LD_PRELOAD");
  return pid;
}

/* While CMD runs, the terminal's ^C and ^\ are for it, as in a shell:
 * run ignores them (the live view catches them for itself while it is up). */
static struct sigaction old_int, old_quit;
static void ignore_interrupts(bool on) {
  struct sigaction ign = {0};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGINT, on ? &ign : &old_int, on ? &old_int : NULL);
  sigaction(SIGQUIT, on ? &ign : &old_quit, on ? &old_quit : NULL);
}

static int wait_child(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

/* Starts CMD and waits for it. Returns its wait status, or -1 if it could
 * not start. */
static int launch(char **cmd, pid_t *pidp) {
  pid_t pid = spawn(cmd, NULL);
  if (pid < 0) return -1;
  ignore_interrupts(true);
  int status = wait_child(pid);
  ignore_interrupts(false);
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
/* Ends this process by sig as its default action would, even when sig is
 * blocked or handled here. Returns only if sig's default is to go on. */
static void die_by(int sig) {
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
}

static int pass_status(int status, const char *cmd, bool reraise) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (!WIFSIGNALED(status)) return 2;
  int sig = WTERMSIG(status);
  fprintf(stderr, "snapmalloc: %s was killed by signal %d (%s)\n", cmd, sig, strsignal(sig));
  fflush(NULL);
  if (!reraise) return 128 + sig;
  struct rlimit nocore = {0, 0};
  setrlimit(RLIMIT_CORE, &nocore); /* the child already dumped core if it was going to */
  die_by(sig);
  return 128 + sig;
}

/* ---------------------------------------------------------------- --live
 *
 * The command writes a snapshot every --interval seconds into a directory
 * of run's own (the tracer's out pattern DIR/%p.%n.snap); each refresh of
 * the view takes the newest file of the command's process (by time: a
 * process that execs starts its sequence again) and deletes every older
 * one of each process. A file that exists is complete: the tracer writes
 * under a temporary name (a leading '.') and links or renames it into
 * place. When the command has ended, the newest file of each process is
 * moved to where the out pattern would have put it, and the directory is
 * removed; the listing and the report then go on as without --live. */

typedef struct live_file {
  unsigned long long pid, seq;
  struct timespec mtime;
  char name[64];
} live_file_t;

/* "PID.SEQ.snap": a snapshot of the live directory. */
static bool live_name(const char *name, live_file_t *f) {
  char *end;
  if (name[0] < '1' || name[0] > '9' || strlen(name) >= sizeof f->name) return false;
  f->pid = strtoull(name, &end, 10);
  if (*end != '.' || end[1] < '0' || end[1] > '9') return false;
  f->seq = strtoull(end + 1, &end, 10);
  if (strcmp(end, ".snap") != 0) return false;
  strcpy(f->name, name);
  return true;
}

/* Orders by process, then time, then sequence: the newest of a process last. */
static int cmp_live_file(const void *pa, const void *pb) {
  const live_file_t *a = pa, *b = pb;
  if (a->pid != b->pid) return a->pid < b->pid ? -1 : 1;
  if (a->mtime.tv_sec != b->mtime.tv_sec) return a->mtime.tv_sec < b->mtime.tv_sec ? -1 : 1;
  if (a->mtime.tv_nsec != b->mtime.tv_nsec) return a->mtime.tv_nsec < b->mtime.tv_nsec ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Deletes every snapshot of the live directory but the newest of each
 * process; returns those (malloc'd, *n of them, by process). */
static live_file_t *live_scan(const char *dir, size_t *n) {
  DIR *d = opendir(dir);
  live_file_t *v = NULL;
  size_t cnt = 0, cap = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    live_file_t f;
    struct stat st;
    if (!live_name(e->d_name, &f) || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode))
      continue;
    f.mtime = st.st_mtim;
    if (cnt == cap) v = xrealloc(v, (cap = cap ? 2 * cap : 16) * sizeof *v);
    v[cnt++] = f;
  }
  if (cnt) qsort(v, cnt, sizeof *v, cmp_live_file);
  size_t kept = 0;
  for (size_t i = 0; i < cnt; i++) {
    if (i + 1 < cnt && v[i + 1].pid == v[i].pid) unlinkat(dirfd(d), v[i].name, 0);
    else v[kept++] = v[i];
  }
  if (d) closedir(d);
  *n = kept;
  return v;
}

typedef struct live_src {
  pid_t pid;               /* the command's process */
  const char *dir, *cmd;
  bool exited;
  int status;              /* its wait status, once exited */
  live_file_t last;        /* the file last handed to the view */
  bool have_last;
} live_src_t;

static void describe_status(char *msg, size_t cap, const char *cmd, pid_t pid, int status) {
  strbuf_t c = {0};
  sm_escape(&c, cmd, 256);
  if (WIFSIGNALED(status))
    snprintf(msg, cap, "%s (pid %d) was killed by signal %d (%s)", c.s, (int)pid, WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else snprintf(msg, cap, "%s (pid %d) exited with status %d", c.s, (int)pid, WEXITSTATUS(status));
  free(c.s);
}

/* The view's source: the newest snapshot of the command's process, if it
 * is not the one handed over last; the end once the command has ended and
 * its last snapshot was handed over. */
static sm_live_status_t live_next(void *arg, char *path, size_t pathcap, char *msg, size_t msgcap) {
  live_src_t *s = arg;
  if (!s->exited) { /* first: then its final snapshot is already there */
    int st;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) s->exited = true, s->status = st;
  }
  size_t n;
  live_file_t *files = live_scan(s->dir, &n), *mine = NULL;
  for (size_t i = 0; i < n; i++)
    if (files[i].pid == (unsigned long long)s->pid) mine = &files[i];
  sm_live_status_t r = s->exited ? SM_LIVE_END : SM_LIVE_NONE;
  if (mine && (!s->have_last || strcmp(mine->name, s->last.name) || mine->mtime.tv_sec != s->last.mtime.tv_sec ||
               mine->mtime.tv_nsec != s->last.mtime.tv_nsec)) {
    s->last = *mine;
    s->have_last = true;
    snprintf(path, pathcap, "%s/%s", s->dir, mine->name);
    r = SM_LIVE_NEW;
  } else if (s->exited) {
    describe_status(msg, msgcap, s->cmd, s->pid, s->status);
  }
  free(files);
  return r;
}

/* The out pattern expanded for a snapshot, as the tracer would have. */
static char *expand_pattern(const char *pattern, const sm_snap_t *s) {
  strbuf_t b = {0};
  for (const char *p = pattern; *p; p++) {
    if (*p != '%' || !p[1]) {
      sb_putc(&b, *p);
      continue;
    }
    switch (*++p) {
    case 'p': sb_printf(&b, "%llu", (unsigned long long)s->pid); break;
    case 'n': sb_printf(&b, "%llu", (unsigned long long)s->sequence); break;
    case 'e': sb_puts(&b, sm_base_name(s->program ? s->program : "")); break;
    case '%': sb_putc(&b, '%'); break;
    default: sb_printf(&b, "%%%c", *p); break;
    }
  }
  return b.s ? b.s : xstrdup("");
}

/* Moves from to to: a rename, or across file systems a copy under a
 * temporary name beside `to`, renamed into place. */
static bool move_file(const char *from, const char *to, char *why, size_t cap) {
  if (rename(from, to) == 0) return true;
  if (errno != EXDEV) {
    snprintf(why, cap, "%s", strerror(errno));
    return false;
  }
  char *tmp = xmalloc(strlen(to) + 8);
  sprintf(tmp, "%s.XXXXXX", to);
  int in = sm_open_regular(from, why, cap), out = in < 0 ? -1 : mkostemp(tmp, O_CLOEXEC);
  bool ok = in >= 0 && out >= 0;
  if (in >= 0 && out < 0) snprintf(why, cap, "%s", strerror(errno));
  char buf[65536];
  ssize_t r = 0;
  while (ok && (r = read(in, buf, sizeof buf)) != 0) {
    if (r < 0 && errno == EINTR) continue;
    ok = r > 0 && write(out, buf, (size_t)r) == r;
    if (!ok) snprintf(why, cap, "%s", strerror(errno ? errno : EIO));
  }
  if (out >= 0 && close(out) != 0 && ok) ok = false, snprintf(why, cap, "%s", strerror(errno));
  if (in >= 0) close(in);
  if (ok && rename(tmp, to) != 0) ok = false, snprintf(why, cap, "%s", strerror(errno));
  if (out >= 0 && !ok) unlink(tmp);
  if (ok) unlink(from);
  free(tmp);
  return ok;
}

/* The newest snapshot of each process goes where the out pattern says. */
static void live_keep(const char *dir, const char *pattern) {
  size_t n;
  live_file_t *files = live_scan(dir, &n);
  for (size_t i = 0; i < n; i++) {
    char from[PATH_MAX + 64], why[256];
    snprintf(from, sizeof from, "%s/%s", dir, files[i].name);
    sm_snap_t s;
    if (sm_snap_read(from, &s, why, sizeof why) != 0) continue; /* not a snapshot of ours */
    char *to = expand_pattern(pattern, &s);
    if (!move_file(from, to, why, sizeof why)) {
      fputs("snapmalloc run: cannot keep the last snapshot of pid ", stderr);
      fprintf(stderr, "%llu as ", (unsigned long long)s.pid);
      sm_put_escaped(stderr, to);
      fprintf(stderr, ": %s\n", why);
    }
    free(to);
    sm_snap_free(&s);
  }
  free(files);
}

/* Waits for CMD once the view is closed, still deleting the snapshots it
 * goes on writing (all but the newest of each process), so that a long
 * run does not fill the directory. */
static int live_wait(pid_t pid, const char *dir, long interval_ms) {
  long nap_ms = interval_ms < 250 ? interval_ms : 250;
  for (long since_scan = 0;; since_scan += nap_ms) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r < 0 && errno != EINTR) return wait_child(pid);
    if (since_scan >= interval_ms) {
      size_t n;
      free(live_scan(dir, &n));
      since_scan = 0;
    }
    struct timespec ts = {nap_ms / 1000, nap_ms % 1000 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

/* run --live: starts CMD, shows the view until it is left, waits for CMD,
 * keeps the last snapshots. Returns CMD's wait status (-1 if it could not
 * start); *rc becomes 2 when the view failed. */
static int run_live(const run_args_t *a, cli_run_t *res, const char *dir, pid_t *pidp, int *rc) {
  bool exec_failed;
  pid_t pid = spawn(a->cmd, &exec_failed);
  if (pid < 0) {
    sm_remove_dir("run", dir);
    return -1;
  }
  *pidp = pid;
  if (exec_failed) { /* nothing to watch; its line stays on the screen */
    int status = wait_child(pid);
    sm_remove_dir("run", dir);
    return status;
  }
  ignore_interrupts(true);
  live_src_t src = {.pid = pid, .dir = dir, .cmd = a->cmd[0]};
  sm_live_opts_t lo = {.interval_ms = a->interval_ms, .top = (int)a->top, .name = "snapmalloc run"};
  lo.report.by = a->by;
  lo.report.format = FMT_TEXT;
  sm_live_source_t source = {live_next, NULL, &src};
  int sig = 0;
  *rc = sm_live_run(&lo, &source, &sig);
  if (!src.exited) /* a ^C reached CMD too: give it a moment to end */
    for (int i = 0; i < 20 && !src.exited; i++) {
      int st;
      if (waitpid(pid, &st, WNOHANG) == pid) src.exited = true, src.status = st;
      else usleep(10000);
    }
  if (sig == SIGTERM || sig == SIGHUP) { /* run itself was asked to end: CMD is left as it is */
    sm_remove_dir("run", dir);
    if (!src.exited) fprintf(stderr, "snapmalloc run: ended by signal %d (%s); pid %d goes on untraced by the view\n",
                             sig, strsignal(sig), (int)pid);
    fflush(NULL);
    die_by(sig);
    _exit(128 + sig);
  }
  if (!src.exited) {
    strbuf_t c = {0};
    sm_escape(&c, a->cmd[0], 256);
    fprintf(stderr, "snapmalloc run: the live view is closed; waiting for %s (pid %d) to end\n", c.s, (int)pid);
    free(c.s);
    src.status = live_wait(pid, dir, a->interval_ms);
  }
  ignore_interrupts(false);
  live_keep(dir, res->pattern);
  sm_remove_dir("run", dir);
  return src.status;
}

int cli_run(int argc, char **argv, bool reraise, cli_run_t *res) {
  run_args_t a;
  int rc = parse_run_args(argc, argv, &a);
  if (rc >= 0) return rc;
  cli_run_t local = {0};
  if (!res) res = &local;
  char live_dir[PATH_MAX] = "", live_pattern[PATH_MAX + 32];
  if (a.live) {
    if (!sm_live_mkdir("run", live_dir, sizeof live_dir)) return 2;
    snprintf(live_pattern, sizeof live_pattern, "%s/%%p.%%n.snap", live_dir);
  }
  if (!prepare_env(&a, res, a.live ? live_pattern : NULL)) {
    if (a.live) sm_remove_dir("run", live_dir);
    return 2;
  }
  pid_t pid = 0;
  rc = 0; /* 2 when the live view failed */
  int status = a.live ? run_live(&a, res, live_dir, &pid, &rc) : launch(a.cmd, &pid);
  if (status < 0) {
    free(local.pattern);
    return 2;
  }
  char *final = list_snapshots(res, pid);
  if (final && a.report) report_final(final);
  free(final);
  free(local.pattern);
  int passed = pass_status(status, a.cmd[0], reraise);
  return passed == 0 && rc ? rc : passed;
}

int cmd_run(int argc, char **argv) { return cli_run(argc, argv, true, NULL); }
