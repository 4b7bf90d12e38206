/* snapmalloc run: start a command with libsnapmalloc.so preloaded and
 * tracing on, pass its exit status through, then say where the snapshots
 * are and print the top 10 sites of its final snapshot.
 *
 * The library is found where SNAPMALLOC_LIB says, else next to this
 * executable (a build tree), else in the libdir that meson installs to,
 * relative to this executable (SM_LIBDIR_FROM_BINDIR, from
 * tools/meson.build), else in ../lib (and ../lib/<multiarch>, ../lib64). */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli.h"
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
    } else if (*p == '*' || *p == '?' || *p == '[') {
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
         "10 allocation sites of the final one (on stderr).\n\n"
         "  --depth N        frames kept per trace, 1..128 (default 16)\n"
         "  --out PATTERN    snapshot path pattern: %%p pid, %%n sequence number,\n"
         "                   %%e program name (default snapmalloc.%%e.%%p.%%n.snap)\n"
         "  --interval S     also write a snapshot every S seconds\n"
         "  --sample BYTES   sample one allocation per BYTES on average (K/M/G suffixes)\n"
         "  --no-report      do not print the top sites afterwards\n\n"
         "SIGUSR2 makes the running program write a snapshot. SNAPMALLOC_OPTIONS set in\n"
         "the environment is passed on; these options override it.\n");
  return 0;
}

static int run_main(int argc, char **argv, bool reraise) {
  enum { O_DEPTH = 300, O_OUT, O_INTERVAL, O_SAMPLE, O_NOREPORT, O_HELP };
  static const struct option longopts[] = {
      {"depth", required_argument, NULL, O_DEPTH}, {"out", required_argument, NULL, O_OUT},
      {"interval", required_argument, NULL, O_INTERVAL}, {"sample", required_argument, NULL, O_SAMPLE},
      {"no-report", no_argument, NULL, O_NOREPORT}, {"help", no_argument, NULL, O_HELP}, {NULL, 0, NULL, 0}};
  long depth = 16, interval = 0;
  unsigned long long sample = 0;
  const char *out = "snapmalloc.%e.%p.%n.snap";
  bool report = true;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
    switch (c) {
    case O_DEPTH:
      if (!cli_parse_int(optarg, 1, 128, &depth)) cli_usage_error("run", "--depth takes 1..128, not '%s'", optarg);
      break;
    case O_OUT:
      if (!*optarg || strchr(optarg, ',')) cli_usage_error("run", "--out takes a non-empty path pattern without commas");
      out = optarg;
      break;
    case O_INTERVAL:
      if (!cli_parse_int(optarg, 0, 86400, &interval)) cli_usage_error("run", "--interval takes 0..86400 seconds, not '%s'", optarg);
      break;
    case O_SAMPLE:
      if (!cli_parse_size(optarg, &sample)) cli_usage_error("run", "--sample takes a size in bytes, not '%s'", optarg);
      break;
    case O_NOREPORT: report = false; break;
    case O_HELP: return run_help();
    default: cli_usage_error("run", "option '%s' is unknown or lacks its value", argv[optind - 1]);
    }
  }
  if (optind < argc && !strcmp(argv[optind], "--")) optind++;
  if (optind >= argc) cli_usage_error("run", "needs a command to run after '--'");
  char **cmd = &argv[optind];

  char *lib = find_library();
  if (!lib) {
    fprintf(stderr, "snapmalloc run: cannot find libsnapmalloc.so (set SNAPMALLOC_LIB)\n");
    return 2;
  }
  /* An absolute pattern, so a program that changes directory still writes here. */
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, ".");
  strbuf_t pat = {0};
  if (out[0] != '/') sb_printf(&pat, "%s/", cwd);
  sb_puts(&pat, out);

  strbuf_t opts = {0};
  const char *prev = getenv("SNAPMALLOC_OPTIONS");
  if (prev && *prev) sb_printf(&opts, "%s,", prev);
  sb_printf(&opts, "trace=1,depth=%ld,out=%s,interval=%ld,sample=%llu", depth, pat.s, interval, sample);
  setenv_or_die("SNAPMALLOC_OPTIONS", opts.s);
  strbuf_t pre = {0};
  const char *prev_pre = getenv("LD_PRELOAD");
  sb_puts(&pre, lib);
  if (prev_pre && *prev_pre) sb_printf(&pre, ":%s", prev_pre);
  setenv_or_die("LD_PRELOAD", pre.s);

  time_t start = time(NULL);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("snapmalloc run: fork");
    return 2;
  }
  if (pid == 0) {
    execvp(cmd[0], cmd);
    fprintf(stderr, "snapmalloc run: cannot run %s: %s\n", cmd[0], strerror(errno));
    _exit(127);
  }
  /* Like a shell: the terminal's ^C goes to the child; we wait for it. */
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

  /* Which snapshots did this run write? */
  char *g = cli_pattern_glob(pat.s);
  glob_t gl;
  size_t found = 0;
  char *final = NULL;
  uint64_t final_seq = 0;
  if (glob(g, 0, NULL, &gl) == 0) {
    for (size_t i = 0; i < gl.gl_pathc; i++) {
      struct stat st;
      if (stat(gl.gl_pathv[i], &st) != 0 || st.st_mtime < start || strstr(gl.gl_pathv[i], ".tmp.")) continue;
      found++;
      sm_snap_t s;
      char err[256];
      if (sm_snap_read(gl.gl_pathv[i], &s, err, sizeof err) != 0) continue;
      if (s.pid == (uint64_t)pid && (s.flags & SM_SNAP_FINAL) && (!final || s.sequence >= final_seq)) {
        free(final);
        final = xstrdup(gl.gl_pathv[i]);
        final_seq = s.sequence;
      }
      sm_snap_free(&s);
    }
    if (found) {
      fprintf(stderr, "snapmalloc: %zu snapshot%s written:\n", found, found == 1 ? "" : "s");
      for (size_t i = 0; i < gl.gl_pathc; i++) {
        struct stat st;
        if (stat(gl.gl_pathv[i], &st) == 0 && st.st_mtime >= start && !strstr(gl.gl_pathv[i], ".tmp."))
          fprintf(stderr, "  %s\n", gl.gl_pathv[i]);
      }
    }
    globfree(&gl);
  }
  if (!found) fprintf(stderr, "snapmalloc: no snapshot was written (the command may have ended without exit())\n");
  if (final && report) {
    sm_report_opts_t o = {0};
    o.by = BY_LINE;
    o.limit = 10;
    sm_snap_t s;
    if (cli_load(final, &s) == 0) {
      sm_tools_ctx_t *ctx = sm_ctx_new(&o);
      sm_model_t m;
      sm_model_build(ctx, &s, &m);
      fprintf(stderr, "snapmalloc: top 10 allocation sites at exit (%s):\n", final);
      sm_print_header(stderr, "", &s);
      sm_report(stderr, ctx, NULL, &m);
      sm_model_free(&m);
      sm_ctx_free(ctx);
      sm_snap_free(&s);
    }
  }
  free(final);
  free(g);
  free(pat.s);
  free(opts.s);
  free(pre.s);
  free(lib);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    fprintf(stderr, "snapmalloc: %s was killed by signal %d (%s)\n", cmd[0], sig, strsignal(sig));
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
  return 2;
}

int cmd_run(int argc, char **argv) { return run_main(argc, argv, true); }

int cmd_run_collect(int argc, char **argv) { return run_main(argc, argv, false); }
