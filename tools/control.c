/* snapmalloc start, stop and snap: requests to a running process's control
 * channel (see control.h; the server is tracer/control.c).
 *
 * The process listens on an abstract unix socket named after its pid
 * namespace and pid. Anybody can bind an abstract name, so after
 * connecting the client asks the kernel who listens (SO_PEERCRED) and
 * talks only to the pid it was given. When there is nobody to talk to,
 * /proc says why: no such process, not preloaded, or not armed. */
#include "tools/control.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/cliopt.h"
#include "tools/live.h"
#include "tools/report.h"
#include "tools/util.h"
#include "tracer/ctlproto.h"
#include "tracer/snapfmt.h"

static void set_err(char *err, size_t len, pid_t pid, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_err(char *err, size_t len, pid_t pid, const char *fmt, ...) {
  if (!err || !len) return;
  int n = snprintf(err, len, "pid %d: ", (int)pid);
  if (n < 0 || (size_t)n >= len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + n, len - (size_t)n, fmt, ap);
  va_end(ap);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The process's state letter from /proc/PID/stat (readable by anybody);
 * 0 if unknown. */
static char proc_state(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *paren = strrchr(buf, ')'); /* the command name may hold anything */
  return paren && paren[1] == ' ' ? paren[2] : 0;
}

static bool gone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  char st = proc_state(pid);
  return st == 'Z' || st == 'X';
}

/* Nobody listens under pid's name: why. */
static void why_unreachable(pid_t pid, char *err, size_t errlen) {
  if (kill(pid, 0) != 0 && errno == ESRCH) {
    set_err(err, errlen, pid, "no such process");
    return;
  }
  if (gone(pid)) {
    set_err(err, errlen, pid, "the process has exited");
    return;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) {
    int e = errno;
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    if (e == ENOENT) set_err(err, errlen, pid, "no such process");
    else if (stat(path, &st) == 0 && st.st_uid != geteuid())
      set_err(err, errlen, pid, "permission refused (the process belongs to another user)");
    else set_err(err, errlen, pid, "permission refused (cannot read /proc/%d/maps: %s)", (int)pid, strerror(e));
    return;
  }
  bool preloaded = false;
  char *line = NULL;
  size_t cap = 0;
  while (!preloaded && getline(&line, &cap, f) > 0) preloaded = strstr(line, "/libsnapmalloc.so") != NULL;
  free(line);
  fclose(f);
  if (preloaded)
    set_err(err, errlen, pid,
            "not armed (started without control=1 in SNAPMALLOC_OPTIONS; snapmalloc run arms what it starts)");
  else
    set_err(err, errlen, pid, "not preloaded (libsnapmalloc.so is not loaded in it)");
}

/* The inode of pid's pid namespace (the server names its socket after its
 * own); ours when pid's cannot be read (another user's process). */
static unsigned long long pid_namespace(pid_t pid) {
  char path[64];
  struct stat st;
  snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)pid);
  if (stat(path, &st) == 0 || stat("/proc/self/ns/pid", &st) == 0) return (unsigned long long)st.st_ino;
  return 0;
}

/* Copies the server's words into err after "pid N: ", escaped (they come
 * from another process). */
static void server_said(const char *text, pid_t pid, char *err, size_t errlen) {
  strbuf_t b = {0};
  sm_escape(&b, text, 1000);
  set_err(err, errlen, pid, "%s", b.s ? b.s : "");
  free(b.s);
}

int control_call(pid_t pid, const char *request, size_t len, double timeout_s, char *reply, size_t replycap,
                 char *err, size_t errlen) {
  if (pid <= 0) {
    set_err(err, errlen, pid, "not a process id");
    return -1;
  }
  if (len > SM_CTL_MSG_MAX) {
    set_err(err, errlen, pid, "request too long");
    return -1;
  }
  if (!(timeout_s > 0)) timeout_s = CONTROL_TIMEOUT_DEFAULT;
  double deadline = now_s() + timeout_s;
  if (kill(pid, 0) != 0 && errno == ESRCH) {
    set_err(err, errlen, pid, "no such process");
    return -1;
  }
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, SM_CTL_NAME_FMT, pid_namespace(pid), (int)pid);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    set_err(err, errlen, pid, "cannot create a socket: %s", strerror(errno));
    return -1;
  }
  /* A full queue (many requests at once) makes connect wait: within the
   * timeout. */
  struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - floor(timeout_s)) * 1e6)};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc = -1;
  if (connect(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) != 0) {
    if (errno == EAGAIN || errno == EINPROGRESS || errno == ETIMEDOUT)
      set_err(err, errlen, pid, "timed out after %g s waiting for its control channel", timeout_s);
    else
      why_unreachable(pid, err, errlen);
    goto out;
  }
  /* Who listens: the kernel recorded it when the socket was listened on. */
  struct ucred cr;
  socklen_t crlen = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) != 0 || cr.pid != pid) {
    set_err(err, errlen, pid, "its control socket's name is held by another process (pid %d); refusing to use it",
            (int)cr.pid);
    goto out;
  }
  /* A refusal may come before the request is read (the process checks who
   * connected first) and the connection is then closed: the send fails,
   * and the answer is there all the same. */
  int send_errno = send(fd, request, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : errno;
  char *buf = xmalloc(SM_CTL_MSG_MAX + 1);
  for (;;) {
    double left = deadline - now_s();
    struct pollfd p = {fd, POLLIN, 0};
    int r = left > 0 ? poll(&p, 1, (int)ceil(left * 1000)) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      set_err(err, errlen, pid, "timed out after %g s waiting for the answer", timeout_s);
      break;
    }
    ssize_t got = recv(fd, buf, SM_CTL_MSG_MAX + 1, MSG_TRUNC);
    if (got < 0 && errno == EINTR) continue;
    /* A socket closed with our request unread reports ECONNRESET first,
     * and then still gives the answer queued before it. */
    if (got < 0 && errno == ECONNRESET) got = recv(fd, buf, SM_CTL_MSG_MAX + 1, MSG_TRUNC | MSG_DONTWAIT);
    if (got <= 0) { /* end of the connection, or an empty message: no answer */
      if (gone(pid)) set_err(err, errlen, pid, "the process exited before answering");
      else if (send_errno) set_err(err, errlen, pid, "cannot send the request: %s", strerror(send_errno));
      else set_err(err, errlen, pid, "the process closed the connection without answering");
      break;
    }
    if (got > SM_CTL_MSG_MAX || memchr(buf, '\0', (size_t)got)) {
      set_err(err, errlen, pid, "the process answered something that is not the control protocol");
      break;
    }
    buf[got] = '\0';
    if (!strcmp(buf, "ok") || !strncmp(buf, "ok ", 3)) {
      if (reply && replycap) snprintf(reply, replycap, "%s", buf[2] ? buf + 3 : "");
      rc = 0;
    } else if (!strncmp(buf, "error ", 6)) {
      server_said(buf + 6, pid, err, errlen);
    } else {
      set_err(err, errlen, pid, "the process answered something that is not the control protocol");
    }
    break;
  }
  free(buf);
out:
  close(fd);
  return rc;
}

int control_snap(pid_t pid, const char *path, double timeout_s, char *written, size_t writtencap, char *err,
                 size_t errlen) {
  strbuf_t req = {0};
  sb_puts(&req, "snap");
  if (path) {
    if (!*path) {
      set_err(err, errlen, pid, "the snapshot path is empty");
      return -1;
    }
    sb_putc(&req, ' ');
    if (path[0] != '/') {
      char cwd[PATH_MAX];
      if (!getcwd(cwd, sizeof cwd)) {
        set_err(err, errlen, pid, "cannot resolve %s: the current directory is unknown (%s)", path, strerror(errno));
        free(req.s);
        return -1;
      }
      sb_printf(&req, "%s/", cwd);
    }
    sb_puts(&req, path);
    if (req.len - 5 >= SM_CTL_PATH_MAX) {
      set_err(err, errlen, pid, "the snapshot path is too long (%zu bytes)", req.len - 5);
      free(req.s);
      return -1;
    }
  }
  char *reply = xmalloc(SM_CTL_MSG_MAX + 1);
  int rc = control_call(pid, req.s, req.len, timeout_s, reply, SM_CTL_MSG_MAX + 1, err, errlen);
  if (rc == 0 && reply[0] != '/') {
    set_err(err, errlen, pid, "the process answered something that is not the control protocol");
    rc = -1;
  }
  if (rc == 0 && written && writtencap) snprintf(written, writtencap, "%s", reply);
  free(reply);
  free(req.s);
  return rc;
}

/* ---------------------------------------------------------------- commands */

enum { O_DEPTH = CLI_OWN, O_SAMPLE, O_TIMEOUT, O_INTERVAL, O_TOP, O_BY };

static const struct option timeout_opts[] = {
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {NULL, 0, NULL, 0},
};

static const struct option start_opts[] = {
    {"depth", required_argument, NULL, O_DEPTH},
    {"sample", required_argument, NULL, O_SAMPLE},
    {NULL, 0, NULL, 0},
};

static const struct option live_opts[] = {
    {"interval", required_argument, NULL, O_INTERVAL},
    {"top", required_argument, NULL, O_TOP},
    {"by", required_argument, NULL, O_BY},
    {NULL, 0, NULL, 0},
};

typedef struct ctl_args {
  pid_t pid;
  double timeout;
  long interval_ms, top;     /* live */
  sm_by_t by;
  long depth;                /* 0: the process's */
  bool sample_given;
  unsigned long long sample;
  const char *out;
  bool help;
} ctl_args_t;

static void parse_timeout(const char *cmd, double *out) {
  char *end;
  errno = 0;
  double v = strtod(optarg, &end);
  if (errno || end == optarg || *end || !isfinite(v) || v <= 0 || v > 86400)
    cli_usage_error(cmd, "--timeout takes a number of seconds above 0 and up to 86400, not '%s'", optarg);
  *out = v;
}

static void parse_ctl_args(const char *cmd, int argc, char **argv, const struct option *own, bool output,
                           ctl_args_t *a) {
  memset(a, 0, sizeof *a);
  a->timeout = CONTROL_TIMEOUT_DEFAULT;
  a->interval_ms = 1000;
  a->by = BY_LINE;
  const struct option *groups[5];
  int g = 0;
  if (own) groups[g++] = own;
  groups[g++] = timeout_opts;
  if (output) groups[g++] = cli_output_opts;
  groups[g++] = cli_help_opts;
  groups[g] = NULL;
  cli_opts_t p;
  cli_opts_init(&p, cmd, output ? "-o:" : "-", groups);
  int npos = 0;
  const char *pos = NULL;
  int c;
  while ((c = cli_opts_next(&p, argc, argv)) != -1) {
    long v;
    switch (c) {
    case CLI_OPERAND:
      if (npos++ == 0) pos = optarg;
      break;
    case CLI_HELP: a->help = true; break;
    case O_TIMEOUT: parse_timeout(cmd, &a->timeout); break;
    case O_DEPTH: cli_range(cmd, "--depth", 1, SM_SNAP_MAX_FRAMES, "", &v); a->depth = v; break;
    case O_SAMPLE:
      if (!cli_parse_size(optarg, &a->sample) || a->sample > (1ULL << 40))
        cli_usage_error(cmd, "--sample takes a size in bytes up to 1T (K/M/G/T suffixes), not '%s'", optarg);
      a->sample_given = true;
      break;
    case 'o': a->out = optarg; break;
    case O_INTERVAL:
      if (!cli_parse_seconds(optarg, 86400 * 1000L, &a->interval_ms) || a->interval_ms == 0)
        cli_usage_error(cmd, "--interval takes seconds above 0 and up to 86400, to the millisecond (0.5), not '%s'",
                        optarg);
      break;
    case O_TOP: cli_range(cmd, "--top", 1, 100000, "", &v); a->top = v; break;
    case O_BY: {
      static const char *const by[] = {"line|lineno", "file|filename", "function", "trace|traceback", NULL};
      a->by = (sm_by_t)cli_keyword(cmd, "--by", by);
      break;
    }
    }
  }
  if (a->help) return;
  if (npos != 1) cli_usage_error(cmd, npos ? "takes one process id, not %d operands" : "needs a process id%.0d", npos);
  long pid;
  if (!cli_parse_int(pos, 1, INT_MAX, &pid)) cli_usage_error(cmd, "takes a process id, not '%s'", pos);
  a->pid = (pid_t)pid;
}

static int fail(const char *cmd, const char *err) {
  fprintf(stderr, "snapmalloc %s: %s\n", cmd, err);
  return 2;
}

static const char timeout_help[] =
    "  --timeout S      give up after S seconds (default 10): the process may be\n"
    "                   busy, or stopped\n";

int cmd_start(int argc, char **argv) {
  ctl_args_t a;
  parse_ctl_args("start", argc, argv, start_opts, false, &a);
  if (a.help) {
    printf("usage: snapmalloc start PID [--depth N] [--sample BYTES] [--timeout S]\n\n"
           "Switches tracing on in process PID, which runs with libsnapmalloc.so and\n"
           "control=1 (snapmalloc run arms what it starts): blocks allocated from now on\n"
           "are traced; blocks allocated before stay untraced.\n\n"
           "  --depth N        frames kept per trace, 1..128 (default: the process's depth)\n"
           "  --sample BYTES   trace one allocation per BYTES on average (K/M/G/T suffixes);\n"
           "                   only the first start of a process may set it\n%s\n"
           "Exit status 0, or 2 with one line saying why not (docs/service.md).\n",
           timeout_help);
    return 0;
  }
  char req[96];
  int n = snprintf(req, sizeof req, "start");
  if (a.depth) n += snprintf(req + n, sizeof req - (size_t)n, " depth=%ld", a.depth);
  if (a.sample_given) n += snprintf(req + n, sizeof req - (size_t)n, " sample=%llu", a.sample);
  char reply[256], err[1200];
  if (control_call(a.pid, req, (size_t)n, a.timeout, reply, sizeof reply, err, sizeof err) != 0)
    return fail("start", err);
  int depth = 0;
  unsigned long long sample = 0;
  if (sscanf(reply, "depth=%d sample=%llu", &depth, &sample) != 2)
    return fail("start", "the process answered something that is not the control protocol");
  char rate[32];
  sm_format_size(rate, sizeof rate, (double)sample, false);
  if (sample) printf("pid %d: tracing on (depth %d, one allocation per %s sampled)\n", (int)a.pid, depth, rate);
  else printf("pid %d: tracing on (depth %d, every allocation)\n", (int)a.pid, depth);
  return 0;
}

int cmd_stop(int argc, char **argv) {
  ctl_args_t a;
  parse_ctl_args("stop", argc, argv, NULL, false, &a);
  if (a.help) {
    printf("usage: snapmalloc stop PID [--timeout S]\n\n"
           "Switches tracing off in process PID: blocks allocated from now on are not\n"
           "traced; blocks traced before stay charged to their traces until freed, and\n"
           "snapshots say that tracing is off.\n\n%s\n"
           "Exit status 0, or 2 with one line saying why not (docs/service.md).\n",
           timeout_help);
    return 0;
  }
  char reply[256], err[1200];
  if (control_call(a.pid, "stop", 4, a.timeout, reply, sizeof reply, err, sizeof err) != 0) return fail("stop", err);
  unsigned long long traced = 0;
  if (sscanf(reply, "traced=%llu", &traced) != 1)
    return fail("stop", "the process answered something that is not the control protocol");
  char size[32];
  sm_format_size(size, sizeof size, (double)traced, false);
  printf("pid %d: tracing off (%s of blocks traced before stay traced until freed)\n", (int)a.pid, size);
  return 0;
}

int cmd_snap(int argc, char **argv) {
  ctl_args_t a;
  parse_ctl_args("snap", argc, argv, NULL, true, &a);
  if (a.help) {
    printf("usage: snapmalloc snap PID [-o FILE] [--timeout S]\n\n"
           "Makes process PID (run with libsnapmalloc.so and control=1) write a snapshot,\n"
           "and prints its path once the file is complete. The process writes it, with\n"
           "its own credentials, as a new file (temporary name, then rename).\n\n"
           "  -o, --output FILE  where (relative to the current directory); default: the\n"
           "                     next name of the process's out pattern\n%s\n"
           "Exit status 0, or 2 with one line saying why not (docs/service.md).\n",
           timeout_help);
    return 0;
  }
  char written[PATH_MAX + 1], err[1200];
  if (control_snap(a.pid, a.out, a.timeout, written, sizeof written, err, sizeof err) != 0) return fail("snap", err);
  sm_put_escaped(stdout, written);
  putchar('\n');
  return 0;
}

/* ---------------------------------------------------------------- live PID
 *
 * The live view of a running process: each refresh asks it for a snapshot
 * into a private directory (the process writes it with its own
 * credentials, so a view run by root over another user's process hands
 * the directory to that user first), shows it, and deletes it. */
typedef struct pid_src {
  pid_t pid;
  double timeout;
  const char *dir;
  unsigned long n;
} pid_src_t;

/* Whether pid is gone: no such process, or a zombie that only waits to be
 * reaped. */
static bool process_gone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return true;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *close = strrchr(buf, ')'); /* the command name may hold anything */
  return close && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X');
}

static sm_live_status_t pid_next(void *arg, char *path, size_t cap, char *msg, size_t mcap) {
  pid_src_t *s = arg;
  snprintf(path, cap, "%s/%lu.snap", s->dir, s->n++);
  char err[1200];
  if (control_snap(s->pid, path, s->timeout, NULL, 0, err, sizeof err) == 0) return SM_LIVE_NEW;
  if (s->n > 1 && process_gone(s->pid)) { /* it went after it answered; a process never reached is an error */
    snprintf(msg, mcap, "pid %d has exited", (int)s->pid);
    return SM_LIVE_END;
  }
  snprintf(msg, mcap, "%s", err);
  return SM_LIVE_ERROR;
}

static void pid_done(void *arg, const char *path) {
  (void)arg;
  unlink(path);
}

/* As root over another user's process: the directory becomes that user's,
 * so that the process can write into it. */
static void hand_over(const char *dir, pid_t pid) {
  char proc[64];
  struct stat st;
  snprintf(proc, sizeof proc, "/proc/%d", (int)pid);
  if (geteuid() == 0 && stat(proc, &st) == 0 && st.st_uid != 0 && chown(dir, st.st_uid, st.st_gid) != 0)
    fprintf(stderr, "snapmalloc live: cannot give %s to uid %u: %s\n", dir, (unsigned)st.st_uid, strerror(errno));
}

int cmd_live(int argc, char **argv) {
  ctl_args_t a;
  parse_ctl_args("live", argc, argv, live_opts, false, &a);
  if (a.help) {
    printf("usage: snapmalloc live PID [--interval S] [--top N] [--by line|file|function|trace] [--timeout S]\n\n"
           "Shows the top allocation sites of process PID (run with libsnapmalloc.so and\n"
           "control=1, tracing: snapmalloc start PID), refreshed every --interval seconds\n"
           "(default 1, to the millisecond) from a snapshot the process writes each time.\n"
           "In a terminal: a full-screen view; keys s, g, c sort by size, growth, count;\n"
           "q quits (the process goes on). Otherwise: plain text, one block per refresh.\n\n"
           "  --top N          sites shown (default: what fits; 10 in plain text)\n"
           "  --by KEY         how sites are grouped (default line)\n%s\n"
           "Exit status 0, or 2 with one line saying why not (docs/service.md).\n",
           timeout_help);
    return 0;
  }
  char dir[PATH_MAX];
  if (!sm_live_mkdir("live", dir, sizeof dir)) return 2;
  hand_over(dir, a.pid);
  pid_src_t s = {a.pid, a.timeout, dir, 0};
  sm_live_opts_t o = {.interval_ms = a.interval_ms, .top = (int)a.top, .name = "snapmalloc live"};
  o.report.by = a.by;
  sm_live_source_t src = {pid_next, pid_done, &s};
  int sig = 0;
  int rc = sm_live_run(&o, &src, &sig);
  sm_remove_dir("live", dir);
  if (sig) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
  return rc;
}
