/* The live view (live.h).
 *
 * Drawn with a dozen ANSI/VT100 escape sequences and termios rather than
 * ncurses: the alternate screen, cursor position, erase to end of line,
 * reverse and bold, cursor hide and show are understood by every terminal
 * in use (xterm and its kin, VTE, tmux, screen, the Linux console); each
 * frame is built in one buffer and written with one write(), every line
 * positioned and erased to its end, so nothing flickers and there is no
 * screen state to diff; leaving the screen is a write() and a tcsetattr(),
 * both async-signal-safe and in our hands on every way out (ncurses
 * installs signal handlers of its own, and endwin() is not safe in one);
 * and the tool gains no link dependency. TERM=dumb gets plain text.
 *
 * One loop: poll() on a self-pipe that the signal handlers write to
 * (resize, quit, stop) and on the terminal (keys), with a timeout to the
 * next refresh (and to the next second, for the clock). A refresh asks
 * the source for a snapshot, reads it, builds the model with a context
 * kept for the whole view (the symbolizer caches every address it looked
 * up, the context every module it opened, so only the first refresh
 * symbolizes much), groups it (report.c) and updates the entries: group
 * key -> live bytes and blocks at the first snapshot and now. */
#include "tools/live.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#include "tools/snapread.h"
#include "tools/util.h"

typedef enum { SORT_BY_SIZE, SORT_BY_GROWTH, SORT_BY_COUNT } live_sort_t;
static const char *const sort_names[] = {"size", "growth", "count"};

typedef struct entry {
  UT_hash_handle hh;
  char *key, *label;            /* from sm_model_group (owned) */
  int64_t base_size, base_count; /* live at the view's first snapshot (0 if absent then) */
  int64_t size, count;          /* live at the latest */
} entry_t;

/* The header figures of the latest snapshot, copied out of it. */
typedef struct head {
  uint64_t pid, traced_current, traced_peak, rss, peak_rss, heap_mapped, heap_inuse;
  bool sampled, final, off;     /* figures estimated from samples; the process's last snapshot; tracing off */
  char *command;                /* display form of the command line (or program) */
} head_t;

typedef struct view {
  const sm_live_opts_t *o;
  const sm_live_source_t *src;
  sm_tools_ctx_t *ctx;
  entry_t *entries;
  entry_t **order;              /* entries sorted, refreshed by sort_entries */
  size_t norder;
  head_t head;
  unsigned long nsnaps;         /* snapshots read */
  double t0, t_end;             /* monotonic seconds at the start, and at the source's END */
  live_sort_t sort;
  bool ended;                   /* the source said END */
  char status[512];             /* the line under the header */
  /* terminal mode */
  bool tty;
  int keyfd;                    /* where keys are read (-1: none) */
  bool own_keyfd;
  bool raw;                     /* the terminal is in our mode, on the alternate screen */
  struct termios saved;
  int rows, cols;
  int saved_err;                /* the real stderr while the tool's own is held back, or -1 */
  FILE *held_err;
} view_t;

/* ---------------------------------------------------------------- time */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void elapsed_text(char *buf, size_t cap, double secs) {
  long s = (long)secs;
  if (s >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else snprintf(buf, cap, "%ld:%02ld", s / 60, s % 60);
}

/* ---------------------------------------------------------------- signals */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  char c = (char)sig;
  ssize_t r = write(sig_pipe[1], &c, 1);
  (void)r; /* a full pipe already holds a wake-up */
  errno = saved;
}

static const int caught[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP};
#define NCAUGHT (sizeof caught / sizeof caught[0])
static struct sigaction old_actions[NCAUGHT];

static void catch_signal(int sig, bool on) {
  for (size_t i = 0; i < NCAUGHT; i++) {
    if (caught[i] != sig) continue;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, on ? &sa : &old_actions[i], on ? &old_actions[i] : NULL);
  }
}

/* ---------------------------------------------------------------- terminal */

static view_t *active; /* the view whose terminal the atexit handler restores */

static void write_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

#define ESC "\x1b"

static void screen_size(view_t *v) {
  struct winsize ws;
  v->rows = 24, v->cols = 80;
  if ((ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 || (v->keyfd >= 0 && ioctl(v->keyfd, TIOCGWINSZ, &ws) == 0)) &&
      ws.ws_row > 0 && ws.ws_col > 0)
    v->rows = ws.ws_row, v->cols = ws.ws_col;
}

/* Our mode: no echo, keys one at a time (signals from ^C and ^Z still
 * work), the alternate screen, no cursor. */
static void enter_screen(view_t *v) {
  if (v->keyfd >= 0 && tcgetattr(v->keyfd, &v->saved) == 0) {
    struct termios t = v->saved;
    t.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(v->keyfd, TCSANOW, &t);
  }
  static const char enter[] = ESC "[?1049h" ESC "[?25l" ESC "[H" ESC "[2J";
  write_all(STDOUT_FILENO, enter, sizeof enter - 1);
  v->raw = true;
  screen_size(v);
}

static void leave_screen(view_t *v) {
  if (!v->raw) return;
  static const char leave[] = ESC "[0m" ESC "[?25h" ESC "[?1049l";
  write_all(STDOUT_FILENO, leave, sizeof leave - 1);
  if (v->keyfd >= 0) tcsetattr(v->keyfd, TCSANOW, &v->saved);
  v->raw = false;
}

/* The tool's own stderr (symbolizer warnings, say) would scribble over the
 * screen: it goes to a temporary file while the view is up, and is
 * written out when it ends. */
static void hold_stderr(view_t *v) {
  v->saved_err = -1;
  fflush(stderr);
  FILE *f = tmpfile();
  if (!f) return;
  int saved = dup(STDERR_FILENO);
  if (saved < 0 || dup2(fileno(f), STDERR_FILENO) < 0) {
    if (saved >= 0) close(saved);
    fclose(f);
    return;
  }
  v->saved_err = saved;
  v->held_err = f;
}

static void release_stderr(view_t *v) {
  if (v->saved_err < 0) return;
  fflush(stderr);
  dup2(v->saved_err, STDERR_FILENO);
  close(v->saved_err);
  v->saved_err = -1;
  char buf[4096];
  size_t n;
  rewind(v->held_err);
  while ((n = fread(buf, 1, sizeof buf, v->held_err)) > 0) write_all(STDERR_FILENO, buf, n);
  fclose(v->held_err);
  v->held_err = NULL;
}

static void restore_at_exit(void) {
  if (!active) return;
  leave_screen(active);
  release_stderr(active);
  active = NULL;
}

bool sm_live_is_terminal(void) {
  const char *term = getenv("TERM");
  return isatty(STDOUT_FILENO) && !(term && !strcmp(term, "dumb"));
}

/* ---------------------------------------------------------------- entries */

static void head_set(head_t *h, const sm_snap_t *s) {
  free(h->command);
  h->pid = s->pid;
  h->traced_current = s->traced_current;
  h->traced_peak = s->traced_peak;
  h->rss = s->rss;
  h->peak_rss = s->peak_rss;
  h->heap_mapped = s->heap_mapped;
  h->heap_inuse = s->heap_inuse;
  h->sampled = s->flags & SM_SNAP_SAMPLED;
  h->final = s->flags & SM_SNAP_FINAL;
  h->off = s->flags & SM_SNAP_OFF;
  /* the command line, its arguments joined by spaces (else the program) */
  strbuf_t raw = {0}, shown = {0};
  for (size_t i = 0; i < s->cmdline_len; i++) sb_putc(&raw, s->cmdline[i] ? s->cmdline[i] : ' ');
  while (raw.len && raw.s[raw.len - 1] == ' ') raw.s[--raw.len] = '\0';
  sm_escape(&shown, raw.len ? raw.s : s->program && s->program[0] ? s->program : "?", 1024);
  free(raw.s);
  h->command = shown.s ? shown.s : xstrdup("");
}

/* Reads the snapshot at path into the entries; -1 with the reader's
 * reason in err if it cannot be read. */
static int take_snapshot(view_t *v, const char *path, char *err, size_t errlen) {
  sm_snap_t s;
  if (sm_snap_read(path, &s, err, errlen) != 0) return -1;
  sm_model_t m;
  sm_model_build(v->ctx, &s, &m);
  sm_group_t *g;
  size_t n = sm_model_group(v->ctx, &m, &g);
  bool first = v->nsnaps == 0;
  for (entry_t *e = v->entries; e; e = e->hh.next) e->size = e->count = 0;
  for (size_t i = 0; i < n; i++) {
    entry_t *e;
    HASH_FIND_STR(v->entries, g[i].key, e);
    if (!e) {
      e = xcalloc(1, sizeof *e);
      e->key = g[i].key, e->label = g[i].label;
      g[i].key = g[i].label = NULL;
      HASH_ADD_KEYPTR(hh, v->entries, e->key, strlen(e->key), e);
    }
    e->size = g[i].size, e->count = g[i].count;
    if (first) e->base_size = e->size, e->base_count = e->count;
  }
  /* what held nothing at the start and holds nothing now is forgotten */
  entry_t *e, *tmp;
  HASH_ITER(hh, v->entries, e, tmp) {
    if (e->size || e->count || e->base_size || e->base_count) continue;
    HASH_DEL(v->entries, e);
    free(e->key), free(e->label), free(e);
  }
  head_set(&v->head, &s);
  sm_groups_free(g, n);
  sm_model_free(&m);
  sm_snap_free(&s);
  v->nsnaps++;
  return 0;
}

static int cmp64(int64_t a, int64_t b) { return a > b ? -1 : a < b ? 1 : 0; }

static int cmp_entries(const void *pa, const void *pb, void *arg) {
  const entry_t *a = *(entry_t *const *)pa, *b = *(entry_t *const *)pb;
  live_sort_t sort = *(const live_sort_t *)arg;
  int r = 0;
  if (sort == SORT_BY_GROWTH) r = cmp64(a->size - a->base_size, b->size - b->base_size);
  else if (sort == SORT_BY_COUNT) r = cmp64(a->count, b->count);
  if (!r) r = cmp64(a->size, b->size);
  if (!r) r = cmp64(a->count, b->count);
  return r ? r : strcmp(a->key, b->key);
}

static void sort_entries(view_t *v) {
  v->norder = HASH_COUNT(v->entries);
  v->order = xrealloc(v->order, (v->norder + 1) * sizeof *v->order);
  size_t i = 0;
  for (entry_t *e = v->entries; e; e = e->hh.next) v->order[i++] = e;
  qsort_r(v->order, v->norder, sizeof *v->order, cmp_entries, &v->sort);
}

/* ---------------------------------------------------------------- plain text */

static void size_text(char *buf, size_t cap, int64_t v, bool sign) { sm_format_size(buf, cap, (double)v, sign); }

/* The header's figures in three parts: "traced 1.2 MiB (peak 1.5 MiB)",
 * "RSS 6.0 MiB (peak 7.0 MiB)", "heap 8.0 MiB mapped, 1.3 MiB in use". */
typedef struct figures {
  char traced[112], rss[96], heap[96];
} figures_t;

static void figures_of(figures_t *f, const head_t *h) {
  char cur[32], peak[32], rss[32], rpeak[48] = "", mapped[32], inuse[32];
  size_text(cur, sizeof cur, (int64_t)h->traced_current, false);
  size_text(peak, sizeof peak, (int64_t)h->traced_peak, false);
  size_text(rss, sizeof rss, (int64_t)h->rss, false);
  if (h->peak_rss) {
    char p[32];
    size_text(p, sizeof p, (int64_t)h->peak_rss, false);
    snprintf(rpeak, sizeof rpeak, " (peak %s)", p);
  }
  size_text(mapped, sizeof mapped, (int64_t)h->heap_mapped, false);
  size_text(inuse, sizeof inuse, (int64_t)h->heap_inuse, false);
  snprintf(f->traced, sizeof f->traced, "traced %s (peak %s)%s%s", cur, peak, h->sampled ? " estimated from samples" : "",
           h->off ? ", tracing off" : "");
  snprintf(f->rss, sizeof f->rss, "RSS %s%s", rss, rpeak);
  snprintf(f->heap, sizeof f->heap, "heap %s mapped, %s in use", mapped, inuse);
}

/* One block: a header line, the top sites tracemalloc-style with their
 * change since the first snapshot, what the rest adds up to, a blank line. */
static void print_block(view_t *v) {
  figures_t f;
  figures_of(&f, &v->head);
  printf("snapmalloc live: %s (pid %llu), snapshot %lu%s at %.1f s: %s, %s, %s\n", v->head.command,
         (unsigned long long)v->head.pid, v->nsnaps, v->head.final ? " (final)" : "", now_s() - v->t0, f.traced,
         f.rss, f.heap);
  size_t top = v->o->top > 0 ? (size_t)v->o->top : 10;
  size_t shown = v->norder < top ? v->norder : top;
  int64_t rest_size = 0, rest_change = 0;
  for (size_t i = 0; i < v->norder; i++) {
    const entry_t *e = v->order[i];
    if (i >= shown) {
      rest_size += e->size, rest_change += e->size - e->base_size;
      continue;
    }
    char size[32], dsize[32];
    size_text(size, sizeof size, e->size, false);
    size_text(dsize, sizeof dsize, e->size - e->base_size, true);
    printf("%s: size=%s (%s), count=%lld (%+lld)", e->label, size, dsize, (long long)e->count,
           (long long)(e->count - e->base_count));
    if (e->count) {
      char avg[32];
      sm_format_size(avg, sizeof avg, (double)e->size / (double)e->count, false);
      printf(", average=%s", avg);
    }
    putchar('\n');
  }
  if (shown < v->norder) {
    char a[32], b[32];
    size_text(a, sizeof a, rest_size, false);
    size_text(b, sizeof b, rest_change, true);
    printf("%zu other: %s (%s)\n", v->norder - shown, a, b);
  }
  putchar('\n');
}

/* ---------------------------------------------------------------- the screen */

/* Appends s, cut to *left columns (a character above U+10FF counts as
 * two: it may be wide, and too short a line is better than a wrapped one). */
static void put_cols(strbuf_t *b, const char *s, int *left) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p && *left > 0) {
    uint32_t cp;
    int n = sm_utf8_char(p, &cp);
    int w = 1;
    if (n <= 0) n = 1, cp = '?';
    else if (cp >= 0x1100) w = 2;
    if (w > *left) break;
    for (int i = 0; i < n; i++) sb_putc(b, (char)p[i]);
    p += n;
    *left -= w;
  }
}

static void put_line(strbuf_t *b, int row, const char *attr, const char *text, int width) {
  sb_printf(b, ESC "[%d;1H%s", row, attr);
  int left = width;
  put_cols(b, text, &left);
  if (*attr) { /* a bar: its colour to the edge */
    while (left-- > 0) sb_putc(b, ' ');
    sb_puts(b, ESC "[0m");
  } else {
    sb_puts(b, ESC "[K");
  }
}

static void draw(view_t *v) {
  if (!v->raw) return;
  int rows = v->rows, cols = v->cols;
  strbuf_t b = {0};
  char line[1024], clock[32];
  elapsed_text(clock, sizeof clock, (v->ended ? v->t_end : now_s()) - v->t0);
  /* 1: who, when (the right part first when the line is short) */
  char right[96];
  snprintf(right, sizeof right, "  elapsed %s  snapshots %lu%s ", clock, v->nsnaps, v->head.final ? " (final)" : "");
  if (v->nsnaps) snprintf(line, sizeof line, " snapmalloc live  pid %llu  %s", (unsigned long long)v->head.pid, v->head.command);
  else snprintf(line, sizeof line, " snapmalloc live");
  int rlen = (int)strlen(right);
  if (rlen < cols) {
    sb_printf(&b, ESC "[1;1H" ESC "[7m");
    int left = cols - rlen;
    put_cols(&b, line, &left);
    while (left-- > 0) sb_putc(&b, ' ');
    sb_puts(&b, right);
    sb_puts(&b, ESC "[0m");
  } else {
    put_line(&b, 1, ESC "[7m", line, cols);
  }
  /* 2, 3: the figures; 4: the status */
  figures_t f = {"", "", ""};
  if (v->nsnaps) {
    figures_of(&f, &v->head);
    snprintf(line, sizeof line, " %s   %s", f.traced, f.rss);
  } else {
    snprintf(line, sizeof line, " waiting for the first snapshot...");
  }
  if (rows >= 2) put_line(&b, 2, "", line, cols);
  snprintf(line, sizeof line, " %s", f.heap);
  if (rows >= 3) put_line(&b, 3, "", line, cols);
  snprintf(line, sizeof line, " %s", v->status);
  if (rows >= 4) put_line(&b, 4, "", line, cols);
  /* 5: the columns; then one site a line; the last: the keys */
  static const char *const by_names[] = {"line", "file", "function", "trace"};
  snprintf(line, sizeof line, "%10s %10s %9s %8s  SITE (by %s)", "SIZE", "GROWTH", "COUNT", "CHANGE",
           by_names[v->o->report.by]);
  if (rows >= 5) put_line(&b, 5, ESC "[1m", line, cols);
  int first = 6, last = rows - 1; /* rows for sites: first..last */
  size_t room = last >= first ? (size_t)(last - first + 1) : 0;
  if (v->o->top > 0 && (size_t)v->o->top < room) room = (size_t)v->o->top;
  size_t i = 0;
  for (; i < room && i < v->norder; i++) {
    const entry_t *e = v->order[i];
    char size[32], dsize[32];
    size_text(size, sizeof size, e->size, false);
    size_text(dsize, sizeof dsize, e->size - e->base_size, true);
    snprintf(line, sizeof line, "%10s %10s %9lld %+8lld  %s", size, dsize, (long long)e->count,
             (long long)(e->count - e->base_count), e->label);
    put_line(&b, first + (int)i, "", line, cols);
  }
  for (int r = first + (int)i; r <= last; r++) put_line(&b, r, "", "", cols);
  /* the keys, with the order in use */
  if (rows >= 2) {
    snprintf(line, sizeof line, " s size  g growth  c count  q quit    sorted by %s, %zu site%s", sort_names[v->sort],
             v->norder, v->norder == 1 ? "" : "s");
    put_line(&b, rows, ESC "[7m", line, cols - 1); /* not the last column of the last line: no scroll */
  }
  write_all(STDOUT_FILENO, b.s, b.len);
  free(b.s);
}

/* ---------------------------------------------------------------- the loop */

static void setup(view_t *v) {
  v->tty = sm_live_is_terminal();
  v->keyfd = -1;
  v->saved_err = -1;
  if (!v->tty) return;
  v->keyfd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (v->keyfd >= 0) v->own_keyfd = true;
  else if (isatty(STDIN_FILENO)) v->keyfd = STDIN_FILENO;
  static bool registered;
  if (!registered) registered = atexit(restore_at_exit) == 0;
  active = v;
  hold_stderr(v);
  enter_screen(v);
}

static void teardown(view_t *v) {
  leave_screen(v);
  release_stderr(v);
  active = NULL;
  if (v->own_keyfd) close(v->keyfd);
  v->keyfd = -1;
}

/* Stops like any program on ^Z: the terminal back as it was, then stopped
 * for real; on continuing, our mode again. */
static void suspend(view_t *v) {
  leave_screen(v);
  struct sigaction dfl = {0}, mine;
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGTSTP, &dfl, &mine);
  raise(SIGTSTP);
  sigaction(SIGTSTP, &mine, NULL);
  enter_screen(v);
}

/* Handles the keys waiting on the terminal; true when one was q. */
static bool read_keys(view_t *v) {
  char buf[64];
  ssize_t n = read(v->keyfd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return false;
  if (n <= 0) { /* the terminal is gone (end of file, EIO after a hangup): no more keys */
    if (v->own_keyfd) close(v->keyfd);
    v->keyfd = -1;
    return false;
  }
  for (ssize_t i = 0; i < n; i++) {
    switch (buf[i]) {
    case 'q': case 'Q': return true;
    case 's': case 'S': v->sort = SORT_BY_SIZE; break;
    case 'g': case 'G': v->sort = SORT_BY_GROWTH; break;
    case 'c': case 'C': v->sort = SORT_BY_COUNT; break;
    default: break;
    }
  }
  sort_entries(v);
  draw(v);
  return false;
}

/* Asks the source once; returns 0 to go on, 1 when the view is done
 * (plain text: the end), 2 on failure (the line already in err). */
static int fetch(view_t *v, double *next_fetch, char *err, size_t errlen) {
  char path[PATH_MAX], msg[512] = "";
  double asked = now_s();
  sm_live_status_t st = v->src->next(v->src->arg, path, sizeof path, msg, sizeof msg);
  double interval = (double)v->o->interval_ms / 1000.0;
  switch (st) {
  case SM_LIVE_NEW: {
    char why[256];
    if (take_snapshot(v, path, why, sizeof why) != 0) {
      strbuf_t p = {0};
      sm_escape(&p, path, 0);
      snprintf(err, errlen, "%s: %s", p.s ? p.s : "", why);
      free(p.s);
      return 2;
    }
    if (v->src->done) v->src->done(v->src->arg, path);
    sort_entries(v);
    if (v->tty) draw(v);
    else print_block(v);
    if (!v->tty && (fflush(stdout) != 0 || ferror(stdout))) { /* a closed pipe, a full disk */
      snprintf(err, errlen, "cannot write to standard output: %s", strerror(errno));
      return 2;
    }
    *next_fetch = asked + interval;
    return 0;
  }
  case SM_LIVE_NONE:
    *next_fetch = now_s() + (interval / 10 > 0.01 ? interval / 10 : 0.01);
    return 0;
  case SM_LIVE_END:
    v->ended = true;
    v->t_end = now_s();
    if (!v->nsnaps) { /* nothing to look at */
      snprintf(err, errlen, "%s", msg);
      return 1;
    }
    if (!v->tty) {
      printf("%s\n", msg);
      if (fflush(stdout) != 0) {
        snprintf(err, errlen, "cannot write to standard output: %s", strerror(errno));
        return 2;
      }
      return 1;
    }
    snprintf(v->status, sizeof v->status, "%s; q leaves the view", msg);
    draw(v);
    return 0;
  default:
    snprintf(err, errlen, "%s", msg[0] ? msg : "the snapshot source failed");
    return 2;
  }
}

int sm_live_run(const sm_live_opts_t *o, const sm_live_source_t *src, int *sig) {
  view_t v = {.o = o, .src = src, .sort = SORT_BY_SIZE};
  *sig = 0;
  if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    fprintf(stderr, "%s: cannot create a pipe: %s\n", o->name, strerror(errno));
    return 2;
  }
  v.ctx = sm_ctx_new(&o->report);
  v.t0 = now_s();
  setup(&v);
  for (size_t i = 0; i < NCAUGHT; i++)
    if (v.tty || (caught[i] != SIGTSTP && caught[i] != SIGWINCH)) catch_signal(caught[i], true);
  /* plain text into a pipe that closes (| head): a write error ends the
   * view, not SIGPIPE the tool (the caller still has the program to see to) */
  struct sigaction ign = {0}, old_pipe;
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old_pipe);
  draw(&v);
  int rc = 0;
  bool done = false;
  char err[PATH_MAX + 600] = "";
  double next_fetch = v.t0;
  while (!done) {
    double t = now_s();
    if (!v.ended && t >= next_fetch) {
      int r = fetch(&v, &next_fetch, err, sizeof err);
      if (r) {
        rc = r == 2 ? 2 : 0;
        break;
      }
      continue;
    }
    /* wait for: the next refresh, the next second of the clock, a key, a signal */
    double until = v.ended ? -1 : next_fetch;
    if (v.tty && !v.ended) {
      double tick = v.t0 + (double)((long)(t - v.t0) + 1);
      if (until < 0 || tick < until) until = tick;
    }
    int timeout = until < 0 ? -1 : (int)((until - t) * 1000) + 1;
    struct pollfd pf[2] = {{sig_pipe[0], POLLIN, 0}, {v.keyfd, POLLIN, 0}};
    int r = poll(pf, v.keyfd >= 0 ? 2 : 1, timeout);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) {
      draw(&v); /* the clock */
      continue;
    }
    if (pf[0].revents & POLLIN) {
      char sigs[16];
      ssize_t n = read(sig_pipe[0], sigs, sizeof sigs);
      for (ssize_t i = 0; i < n && !done; i++) {
        if (sigs[i] == SIGWINCH) {
          screen_size(&v);
          if (v.raw) write_all(STDOUT_FILENO, ESC "[2J", 4);
          draw(&v);
        } else if (sigs[i] == SIGTSTP) {
          suspend(&v);
          draw(&v);
        } else {
          *sig = sigs[i];
          done = true;
        }
      }
    }
    if (!done && v.keyfd >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) done = read_keys(&v);
  }
  for (size_t i = 0; i < NCAUGHT; i++)
    if (v.tty || (caught[i] != SIGTSTP && caught[i] != SIGWINCH)) catch_signal(caught[i], false);
  sigaction(SIGPIPE, &old_pipe, NULL);
  teardown(&v);
  close(sig_pipe[0]);
  close(sig_pipe[1]);
  sig_pipe[0] = sig_pipe[1] = -1;
  if (err[0]) fprintf(stderr, "%s: %s\n", o->name, err);
  entry_t *e, *tmp;
  HASH_ITER(hh, v.entries, e, tmp) {
    HASH_DEL(v.entries, e);
    free(e->key), free(e->label), free(e);
  }
  free(v.order);
  free(v.head.command);
  sm_ctx_free(v.ctx);
  return rc;
}

/* ---------------------------------------------------------------- its directory */

bool sm_live_mkdir(const char *who, char *dir, size_t cap) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || tmp[0] != '/' || strchr(tmp, ',') || strlen(tmp) > 256) tmp = "/tmp";
  if ((size_t)snprintf(dir, cap, "%s/snapmalloc-live.XXXXXX", tmp) >= cap || !mkdtemp(dir)) {
    fprintf(stderr, "snapmalloc %s: cannot create a directory for the live view in %s: %s\n", who, tmp,
            strerror(errno));
    return false;
  }
  return true;
}

