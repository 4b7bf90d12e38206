/* Leak analysis at exit, the way valgrind's memcheck and LeakSanitizer
 * classify blocks. With the other threads stopped, every live block is
 * listed (from the allocator's own pages: no shadow table) and sorted by
 * address; then pointers are searched for, word by aligned word:
 *
 *   roots: every readable and writable mapping of the process (data and bss
 *   of every loaded object, the C library's and the loader's anonymous
 *   memory, thread stacks from their stack pointer up, which covers static
 *   TLS, and the registers of every other thread), minus the allocator's
 *   segments and metadata and libsnapmalloc's own data. The tracer's
 *   snapshot helper is not stopped (it blocks every signal); its stack is
 *   read from its outermost frame up, which covers its TCB and TLS. The
 *   exiting thread's stack is scanned from exit()'s frames up (see
 *   exit_stack_floor);
 *
 *   a block pointed to at its start from a root, or from a reachable block,
 *   is *still reachable*; one reached only through an interior pointer (or
 *   from a possibly lost block) is *possibly lost*; of the rest, a block
 *   pointed to by another unreached block is *indirectly lost* and the
 *   others are *definitely lost*.
 *
 * Other threads are stopped with a real-time signal (SM_LEAK_STOP_SIGNAL)
 * whose handler records the thread's registers and stack pointer and waits
 * until the scan is over. Nothing here calls malloc: the tables come from
 * the metadata arena. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tracer/unwlib.h"
#include "tracer/internal.h" /* sm_tracer_weight */

#define SM_LEAK_STOP_SIGNAL (SIGRTMAX - 2)
#define NGREG_SAVED 23
#define STOP_WAIT_MS 2000 /* for threads that take the signal; then give up on them */
#define LOCK_WAIT_MS 2000 /* for the library's locks at exit */

enum { ST_UNREACHED = 0, ST_POSSIBLE = 1, ST_REACHABLE = 2, ST_INDIRECT = 3 };

typedef struct lblock {
  uintptr_t start;
  size_t size;
  uint32_t trace;
  uint8_t state;
} lblock_t;

/* ---------------------------------------------------------------- memory
 *
 * The scan runs with every lock of the library held, so its own tables come
 * straight from mmap, not from the metadata arena. They are kept out of the
 * roots. */

#define SCAN_MAPS 8
static struct {
  void *p;
  size_t len;
} scan_maps[SCAN_MAPS];

static void *scan_alloc(size_t size) {
  size = sm_align_up(size, sm_os_page_size);
  for (int i = 0; i < SCAN_MAPS; i++) {
    if (scan_maps[i].p) continue;
    void *p = sm_os_map(size);
    if (p) scan_maps[i].p = p, scan_maps[i].len = size;
    return p;
  }
  return NULL; /* never: the scan holds at most four tables at once */
}

static void scan_free(void *p) {
  for (int i = 0; i < SCAN_MAPS; i++) {
    if (scan_maps[i].p != p || !p) continue;
    sm_os_unmap(p, scan_maps[i].len);
    scan_maps[i].p = NULL;
    return;
  }
}

/* ---------------------------------------------------------------- stopping
 *
 * LeakSanitizer's rule: take every lock of the library first (the lock
 * table, tracer/locks.c), then stop the other threads, so that none of them
 * is stopped inside the library holding a lock. The locks are released once
 * every thread that can be stopped is: the scan may then allocate its
 * tables and free nothing stopped threads could be holding.
 *
 * A thread that blocks the stop signal (xz's workers block all signals) is
 * not waited for: its stack pointer is what the kernel saved when it
 * entered the system call it sleeps in (/proc/self/task/TID/syscall), and
 * its stack is scanned from there; its registers are lost to us. A thread
 * whose stack pointer is unknown (it is running) has its whole stack
 * mapping scanned. */

typedef struct thread {
  pid_t tid;
  bool answered;           /* stopped in on_stop: sp and regs are valid */
  bool sp_known;           /* sp is valid (answered, or read from /proc) */
  uintptr_t sp;
  uintptr_t regs[NGREG_SAVED];
} thread_t;

static thread_t *threads;  /* the other threads, from the metadata arena */
static int nthreads, threads_cap;
static int resume;         /* atomic: 1 = threads may go on */

static void on_stop(int sig, siginfo_t *si, void *ucv) {
  (void)sig;
  (void)si;
  int saved = errno;
  ucontext_t *uc = ucv;
  pid_t me = (pid_t)syscall(SYS_gettid);
  for (int i = 0; i < nthreads; i++) {
    if (threads[i].tid != me) continue;
    threads[i].sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    for (int r = 0; r < NGREG_SAVED; r++) threads[i].regs[r] = (uintptr_t)uc->uc_mcontext.gregs[r];
    threads[i].sp_known = true;
    __atomic_store_n(&threads[i].answered, true, __ATOMIC_RELEASE);
    break;
  }
  while (!__atomic_load_n(&resume, __ATOMIC_ACQUIRE))
    syscall(SYS_futex, &resume, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
  errno = saved;
}

/* Reads a /proc file into buf (NUL-terminated, at most cap - 1 bytes); its
 * length, 0 if none. */
static size_t read_proc(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t len = 0;
  while (len + 1 < cap) { /* /proc hands out a page or so per read */
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  return len;
}

/* Reads a small /proc file of a thread into buf; its length, 0 if none. */
static size_t read_task_file(pid_t tid, const char *what, char *buf, size_t cap) {
  char path[64];
  sm_snprintf(path, sizeof path, "/proc/self/task/%d/%s", (int)tid, what);
  return read_proc(path, buf, cap);
}

static uintptr_t parse_hex(const char **p);

/* Whether thread tid blocks the stop signal (its SigBlk mask). */
static bool blocks_stop_signal(pid_t tid) {
  /* SigBlk comes after Groups, which can be long: the library's own data,
   * which is never a root. */
  static SM_BIG_BSS char buf[64 * 1024];
  if (!read_task_file(tid, "status", buf, sizeof buf)) return false;
  const char *p = strstr(buf, "\nSigBlk:");
  if (!p) return false;
  p += 8;
  while (*p == ' ' || *p == '\t') p++;
  uint64_t mask = parse_hex(&p);
  return (mask >> (SM_LEAK_STOP_SIGNAL - 1)) & 1;
}

/* The stack pointer the kernel saved for a sleeping thread: the second to
 * last field of /proc/self/task/TID/syscall ("running" has none). */
static void read_saved_sp(thread_t *t) {
  char buf[256];
  if (!read_task_file(t->tid, "syscall", buf, sizeof buf) || buf[0] == 'r') return;
  const char *fields[10];
  int n = 0;
  for (char *p = buf; *p && n < 10;) {
    while (*p == ' ' || *p == '\n') p++;
    if (!*p) break;
    fields[n++] = p;
    while (*p && *p != ' ' && *p != '\n') p++;
  }
  if (n < 3 || fields[n - 2][0] != '0' || fields[n - 2][1] != 'x') return;
  const char *f = fields[n - 2] + 2;
  t->sp = parse_hex(&f);
  t->sp_known = t->sp != 0;
}

/* True while thread tid still exists and is not a zombie. */
static bool task_alive(pid_t tid) {
  char buf[512];
  if (!read_task_file(tid, "stat", buf, sizeof buf)) return false;
  const char *p = strrchr(buf, ')'); /* the name may hold anything */
  return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Lists the other threads (not this one, not the snapshot helper, which is
 * never stopped) into threads[]; false if /proc/self/task is unreadable. */
static bool list_threads(void) {
  int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  pid_t self = (pid_t)syscall(SYS_gettid);
  char buf[4096];
  long n;
  bool capped = false;
  nthreads = 0;
  while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
    for (long off = 0; off < n;) {
      struct dirent64 *d = (struct dirent64 *)(buf + off);
      off += d->d_reclen;
      if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
      pid_t tid = 0;
      for (const char *c = d->d_name; *c; c++) tid = tid * 10 + (*c - '0');
      if (tid == self || tid == sm_triggers_helper_tid()) continue;
      if (nthreads == threads_cap) {
        capped = true;
        continue;
      }
      threads[nthreads++] = (thread_t){.tid = tid};
    }
  }
  close(fd);
  if (capped) sm_warning("leak analysis: threads appeared while it started; the newest are not stopped");
  return true;
}

/* Sends the stop signal to every listed thread that can take it, and waits
 * (bounded) until each answered, exited, or turned out unable to. Locks
 * held: nothing here allocates or takes a lock. */
static int stop_threads(void) {
  struct sigaction sa = {0};
  sa.sa_sigaction = on_stop;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  sigaction(SM_LEAK_STOP_SIGNAL, &sa, NULL);
  __atomic_store_n(&resume, 0, __ATOMIC_RELEASE);
  pid_t pid = getpid();
  int sent = 0;
  bool *waiting = (bool *)__builtin_alloca((size_t)nthreads + 1);
  for (int i = 0; i < nthreads; i++) {
    waiting[i] = !blocks_stop_signal(threads[i].tid) &&
                 syscall(SYS_tgkill, pid, threads[i].tid, SM_LEAK_STOP_SIGNAL) == 0;
    sent += waiting[i];
  }
  uint64_t deadline = sm_os_now_ms() + STOP_WAIT_MS;
  for (int left = sent, rounds = 0; left > 0; rounds++) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
    bool recheck = rounds % 10 == 9, late = sm_os_now_ms() >= deadline;
    left = 0;
    for (int i = 0; i < nthreads; i++) {
      if (!waiting[i] || __atomic_load_n(&threads[i].answered, __ATOMIC_ACQUIRE)) continue;
      /* Exiting threads block every signal before they go. */
      if ((recheck || late) && (!task_alive(threads[i].tid) || blocks_stop_signal(threads[i].tid))) {
        waiting[i] = false;
        continue;
      }
      if (late) {
        sm_warning("leak analysis: thread %d did not stop within %d ms; its stack is scanned as it runs",
                   (int)threads[i].tid, STOP_WAIT_MS);
        waiting[i] = false;
        continue;
      }
      left++;
    }
  }
  for (int i = 0; i < nthreads; i++)
    if (!__atomic_load_n(&threads[i].answered, __ATOMIC_ACQUIRE)) read_saved_sp(&threads[i]);
  return sent;
}

static void resume_threads(void) {
  __atomic_store_n(&resume, 1, __ATOMIC_RELEASE);
  syscall(SYS_futex, &resume, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
}

/* ---------------------------------------------------------------- block table */

typedef struct table {
  lblock_t *b;
  size_t n, cap;
  bool oom;
  uintptr_t lo, hi; /* from the first block's start to the furthest end */
} table_t;

static void add_block(uintptr_t start, size_t size, uint32_t trace, void *arg) {
  table_t *t = arg;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 65536;
    lblock_t *nb = scan_alloc(cap * sizeof *nb);
    if (!nb) {
      t->oom = true;
      return;
    }
    if (t->b) {
      memcpy(nb, t->b, t->n * sizeof *nb);
      scan_free(t->b);
    }
    t->b = nb;
    t->cap = cap;
  }
  t->b[t->n++] = (lblock_t){start, size, trace, ST_UNREACHED};
}

/* Heapsort by start address (no malloc, no recursion). */
static void sift(lblock_t *a, size_t root, size_t n) {
  for (;;) {
    size_t child = 2 * root + 1;
    if (child >= n) return;
    if (child + 1 < n && a[child + 1].start > a[child].start) child++;
    if (a[root].start >= a[child].start) return;
    lblock_t tmp = a[root];
    a[root] = a[child];
    a[child] = tmp;
    root = child;
  }
}

static void sort_blocks(lblock_t *a, size_t n) {
  for (size_t i = n / 2; i-- > 0;) sift(a, i, n);
  for (size_t end = n; end-- > 1;) {
    lblock_t tmp = a[0];
    a[0] = a[end];
    a[end] = tmp;
    sift(a, 0, end);
  }
}

/* Index of the block containing address v, or -1. */
static long find_block(const table_t *t, uintptr_t v) {
  /* Most scanned words are not heap addresses: reject them before the
   * binary search, by the heap's extent and then by the segment map. */
  if (v - t->lo >= t->hi - t->lo || !sm_segment_of((const void *)v)) return -1;
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (t->b[mid].start <= v) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return -1;
  const lblock_t *b = &t->b[lo - 1];
  size_t extent = b->size ? b->size : 1;
  return v - b->start < extent ? (long)(lo - 1) : -1;
}

/* ---------------------------------------------------------------- marking */

typedef struct marker {
  table_t *t;
  uint32_t *stack; /* worklist of block indices */
  size_t top, cap;
} marker_t;

static void push(marker_t *m, size_t i) {
  if (m->top < m->cap) m->stack[m->top++] = (uint32_t)i;
}

/* A word found while scanning; `definite`: the scanned memory is a root or
 * a reachable block. */
static void found(marker_t *m, uintptr_t v, bool definite) {
  long i = find_block(m->t, v);
  if (i < 0) return;
  lblock_t *b = &m->t->b[i];
  if (definite && v == b->start) {
    if (b->state != ST_REACHABLE) {
      b->state = ST_REACHABLE;
      push(m, (size_t)i);
    }
  } else if (b->state == ST_UNREACHED) {
    b->state = ST_POSSIBLE;
    push(m, (size_t)i);
  }
}

/* The words w[0..n) that fall in the heap's extent, passed to found().
 * Nearly every word scanned falls outside it (zeros, small numbers, text,
 * code and stack addresses), so the loop skips eight zero words at once
 * (memory never written) and tests the others four at a time: their
 * smallest distance above the heap's start against its length. A word
 * then costs two or three instructions instead of a call of find_block. */
static void scan_words(marker_t *m, const uintptr_t *w, size_t n, bool definite) {
  uintptr_t base = m->t->lo, span = m->t->hi - m->t->lo;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uintptr_t *g = w + i;
    if (!(g[0] | g[1] | g[2] | g[3] | g[4] | g[5] | g[6] | g[7])) continue; /* untouched memory */
    for (unsigned h = 0; h < 8; h += 4) {
      uintptr_t d0 = g[h] - base, d1 = g[h + 1] - base, d2 = g[h + 2] - base, d3 = g[h + 3] - base;
      uintptr_t x = d0 < d1 ? d0 : d1, y = d2 < d3 ? d2 : d3;
      if (SM_LIKELY((x < y ? x : y) >= span)) continue;
      for (unsigned k = h; k < h + 4; k++)
        if (g[k] - base < span) found(m, g[k], definite);
    }
  }
  for (; i < n; i++)
    if (w[i] - base < span) found(m, w[i], definite);
}

static void scan_range(marker_t *m, uintptr_t lo, uintptr_t hi, bool definite) {
  lo = sm_align_up(lo, sizeof(uintptr_t));
  if (lo + sizeof(uintptr_t) <= hi) scan_words(m, (const uintptr_t *)lo, (hi - lo) / sizeof(uintptr_t), definite);
}

static void drain(marker_t *m) {
  while (m->top) {
    lblock_t *b = &m->t->b[m->stack[--m->top]];
    scan_range(m, b->start, b->start + b->size, b->state == ST_REACHABLE);
  }
}

/* Everything an unreached block leads to is indirectly lost. */
static void clique(marker_t *m, size_t leader) {
  m->top = 0;
  push(m, leader);
  while (m->top) {
    size_t i = m->stack[--m->top];
    lblock_t *b = &m->t->b[i];
    for (uintptr_t a = sm_align_up(b->start, sizeof(uintptr_t)); a + sizeof(uintptr_t) <= b->start + b->size;
         a += sizeof(uintptr_t)) {
      uintptr_t v = *(const uintptr_t *)a;
      if (v - m->t->lo >= m->t->hi - m->t->lo) continue; /* outside the heap: most words */
      long j = find_block(m->t, v);
      if (j < 0 || (size_t)j == leader) continue;
      lblock_t *c = &m->t->b[j];
      if (c->state == ST_UNREACHED) {
        c->state = ST_INDIRECT;
        push(m, (size_t)j);
      }
    }
  }
}

/* ---------------------------------------------------------------- roots */

typedef struct range {
  uintptr_t lo, hi;
} range_t;

#define MAX_EXCLUDE 8192
static SM_BIG_BSS range_t exclude[MAX_EXCLUDE];
static size_t nexclude;

static void add_exclusion(uintptr_t lo, uintptr_t hi);

static void exclude_segment(sm_segment_t *seg, void *arg) {
  (void)arg;
  add_exclusion((uintptr_t)seg, (uintptr_t)seg + seg->size);
}

static void sort_ranges(range_t *r, size_t n) { /* insertion sort: a few hundred entries */
  for (size_t i = 1; i < n; i++) {
    range_t x = r[i];
    size_t j = i;
    while (j && r[j - 1].lo > x.lo) r[j] = r[j - 1], j--;
    r[j] = x;
  }
}

/* Scans root memory [lo, hi) through a copy: a thread that could not be
 * stopped may unmap its own memory meanwhile, and the copy then fails
 * (EFAULT) where a plain read would crash. The buffer is in the library's
 * data, which is never a root. */
static SM_BIG_BSS uintptr_t bounce[8192];

static bool copy_refused; /* process_vm_readv is not allowed here (seccomp, a sandbox) */

/* Whether roots can be read through process_vm_readv: a read of our own
 * buffer must work. Where a sandbox refuses the call, roots are read
 * directly (the locks are held: only threads that could not be stopped can
 * unmap memory meanwhile) rather than not at all, which would make every
 * block look lost. */
static void probe_copy(void) {
  static uintptr_t probe = 1;
  uintptr_t got = 0;
  struct iovec local = {&got, sizeof got}, remote = {&probe, sizeof probe};
  copy_refused = process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != (ssize_t)sizeof got || got != probe;
}

static void scan_copy(marker_t *m, uintptr_t lo, uintptr_t hi) {
  lo = sm_align_up(lo, sizeof(uintptr_t));
  if (copy_refused) {
    scan_range(m, lo, hi, true);
    return;
  }
  pid_t pid = getpid();
  while (lo + sizeof(uintptr_t) <= hi) {
    size_t len = hi - lo < sizeof bounce ? (size_t)(hi - lo) : sizeof bounce;
    struct iovec local = {bounce, len}, remote = {(void *)lo, len};
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got <= 0) { /* gone (or never readable): skip to the next page */
      lo = sm_align_up(lo + 1, sm_os_page_size);
      continue;
    }
    scan_words(m, bounce, (size_t)got / sizeof(uintptr_t), true);
    lo += (size_t)got;
  }
}

/* Scans [lo, hi) minus the excluded ranges. */
static void scan_root(marker_t *m, uintptr_t lo, uintptr_t hi) {
  for (size_t i = 0; i < nexclude && lo < hi; i++) {
    if (exclude[i].hi <= lo) continue;
    if (exclude[i].lo >= hi) break;
    if (exclude[i].lo > lo) scan_copy(m, lo, exclude[i].lo);
    lo = exclude[i].hi;
  }
  if (lo < hi) scan_copy(m, lo, hi);
}

static uintptr_t parse_hex(const char **p) {
  uintptr_t v = 0;
  for (;; (*p)++) {
    char c = **p;
    if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
    else return v;
  }
}

static uintptr_t helper_floor; /* sm_triggers_helper_sp(), read once per scan */

/* Where a stack mapping's live part starts: the lowest stack pointer of the
 * threads whose stack is in [lo, hi) (the snapshot helper's outermost frame
 * included), or lo when none is known. */
static uintptr_t stack_floor(uintptr_t lo, uintptr_t hi, uintptr_t my_sp) {
  uintptr_t floor = 0;
  if (my_sp >= lo && my_sp < hi) floor = my_sp; /* exact: see exit_stack_floor */
  uintptr_t helper = helper_floor; /* its deeper frames are the tracer's own */
  if (helper >= lo && helper < hi && (!floor || helper < floor)) floor = helper;
  for (int i = 0; i < nthreads; i++) {
    if (!threads[i].sp_known || threads[i].sp < lo || threads[i].sp >= hi) continue;
    uintptr_t f = threads[i].sp - 128; /* a thread's red zone is live too */
    if (!floor || f < floor) floor = f;
  }
  if (!floor) return lo;
  return floor < lo ? lo : floor;
}

/* True if [lo, hi) lies inside a loaded object (by address: /proc/self/maps
 * names files by their canonical path, the loader by the one it opened). */
static bool in_module(uintptr_t lo, uintptr_t hi) {
  uint32_t n = sm_modules_count();
  for (uint32_t i = 0; i < n; i++) {
    const sm_module_t *mod = sm_modules_get(i);
    if (lo >= mod->start && hi <= sm_align_up(mod->end, sm_os_page_size)) return true;
  }
  return false;
}

/* One line of /proc/self/maps: scans it if it is a root. */
static void scan_map_line(marker_t *m, const char *p, const char *eol, uintptr_t my_sp) {
  uintptr_t lo = parse_hex(&p);
  if (*p == '-') p++;
  uintptr_t hi = parse_hex(&p);
  while (*p == ' ') p++;
  bool rw = p[0] == 'r' && p[1] == 'w';
  /* fields: perms offset dev inode path */
  int field = 0;
  const char *path = NULL;
  while (p < eol) {
    while (p < eol && *p != ' ') p++;
    while (p < eol && *p == ' ') p++;
    if (++field == 4 && p < eol) path = p;
  }
  size_t plen = path ? (size_t)(eol - path) : 0;
  bool anon = !path || plen == 0;
  bool stack = path && plen >= 7 && memcmp(path, "[stack]", 7) == 0;
  bool special = path && !anon && path[0] == '[' && !stack && !(plen >= 5 && memcmp(path, "[heap", 5) == 0);
  /* File mappings: only the writable segments of loaded objects (other
   * files could be shorter than their mapping: reading past the end would
   * be a SIGBUS). */
  bool file_ok = anon || stack || (!special && path[0] != '[' && in_module(lo, hi));
  if (!rw || special || !file_ok) return;
  uintptr_t from = (anon || stack) ? stack_floor(lo, hi, my_sp) : lo;
  scan_root(m, from, hi);
}

static void collect_exclusions(uintptr_t self_lo, uintptr_t self_hi);

static bool scan_roots(marker_t *m, uintptr_t my_sp, uintptr_t self_lo, uintptr_t self_hi) {
  size_t cap = 16 << 20; /* mapped, touched only as far as the file goes */
  char *buf = scan_alloc(cap);
  if (!buf) return false;
  if (read_proc("/proc/self/maps", buf, cap) + 1 >= cap)
    sm_warning("leak analysis: the memory map is over 16 MiB; the mappings past that are not scanned as roots");
  collect_exclusions(self_lo, self_hi); /* now that every table of the scan is mapped */
  probe_copy();
  for (const char *p = buf; *p;) {
    const char *eol = strchr(p, '\n');
    if (!eol) eol = p + strlen(p);
    scan_map_line(m, p, eol, my_sp);
    p = *eol ? eol + 1 : eol;
  }
  scan_free(buf);
  return true;
}

/* ---------------------------------------------------------------- entry */

static uint64_t untraced_leaks[SM_LEAK_CLASSES][2];

const uint64_t *sm_leaks_untraced(void) { return &untraced_leaks[0][0]; }

static bool exclusions_warned;

static void add_exclusion(uintptr_t lo, uintptr_t hi) {
  if (nexclude < MAX_EXCLUDE) {
    exclude[nexclude++] = (range_t){lo, hi};
  } else if (!exclusions_warned) {
    exclusions_warned = true;
    sm_warning("leak analysis: over %d of the library's own ranges; the rest are scanned as roots", MAX_EXCLUDE);
  }
}

/* The allocator's segments and metadata, libsnapmalloc's own data and the
 * scan's tables: never roots. */
static void collect_exclusions(uintptr_t self_lo, uintptr_t self_hi) {
  nexclude = 0;
  sm_segment_foreach_locked(exclude_segment, NULL);
  static SM_BIG_BSS uintptr_t ms[4096], ml[4096];
  unsigned nm = sm_meta_ranges(ms, ml, 4096);
  for (unsigned i = 0; i < nm; i++) add_exclusion(ms[i], ms[i] + ml[i]);
  add_exclusion(self_lo, self_hi);
  for (int i = 0; i < SCAN_MAPS; i++)
    if (scan_maps[i].p) add_exclusion((uintptr_t)scan_maps[i].p, (uintptr_t)scan_maps[i].p + scan_maps[i].len);
  sort_ranges(exclude, nexclude);
}

/* Adds each block's class to its trace's leak counters. The snapshot
 * helper's DTV (the C library's table of its TLS blocks, allocated when the
 * library started the helper) and the blocks tagged SM_TAG_OWN are the
 * library's own, not the program's. */
static bool record_classes(const table_t *t, uintptr_t helper_dtv) {
  static const int cls[4] = {SM_LEAK_DEFINITE, SM_LEAK_POSSIBLE, SM_LEAK_REACHABLE, SM_LEAK_INDIRECT};
  if (!sm_tracer_leaks_begin(t->n)) return false;
  for (size_t i = 0; i < t->n; i++) {
    const lblock_t *b = &t->b[i];
    if (b->start == helper_dtv || b->trace == SM_TAG_OWN) continue;
    int c = cls[b->state];
    uint64_t *slots = sm_tracer_leak_slots(b->trace);
    uint64_t size, count_fp;
    sm_tracer_weight(b->size, &size, &count_fp);
    if (!slots) {
      slots = &untraced_leaks[0][0];
      size = b->size, count_fp = 65536;
    }
    slots[2 * c] += size;
    slots[2 * c + 1] += (count_fp + 32768) / 65536;
  }
  return true;
}

/* Lists the blocks, marks what the roots reach, and records the classes.
 * The other threads are stopped (or cannot be); no lock is held. */
/* Lists the blocks, marks what the roots reach, and records the classes.
 * The other threads are stopped (or cannot be); every lock is held. False
 * when the analysis could not be done (then nothing is recorded, and the
 * snapshot does not claim a leak analysis). */
static bool analyse(uintptr_t my_sp, uintptr_t self_lo, uintptr_t self_hi) {
  table_t t = {0};
  sm_walk_blocks(add_block, &t);
  bool ok = !t.oom;
  if (t.oom) {
    sm_warning("leak analysis skipped: out of memory for the block table");
  } else if (t.n) {
    sort_blocks(t.b, t.n);
    t.lo = t.b[0].start;
    for (size_t i = 0; i < t.n; i++) {
      uintptr_t end = t.b[i].start + (t.b[i].size ? t.b[i].size : 1);
      if (end > t.hi) t.hi = end;
    }
    marker_t m = {&t, scan_alloc(2 * t.n * sizeof(uint32_t)), 0, 2 * t.n};
    ok = m.stack && scan_roots(&m, my_sp, self_lo, self_hi);
    if (ok) {
      /* The library's own blocks (SM_TAG_OWN) are roots, as the loader's
       * memory is. */
      for (size_t i = 0; i < t.n; i++)
        if (t.b[i].trace == SM_TAG_OWN && t.b[i].state != ST_REACHABLE) {
          t.b[i].state = ST_REACHABLE;
          push(&m, i);
        }
      for (int i = 0; i < nthreads; i++) {
        if (!threads[i].answered) continue; /* registers unknown */
        for (int r = 0; r < NGREG_SAVED; r++) found(&m, threads[i].regs[r], true);
      }
      drain(&m);
      for (size_t i = 0; i < t.n; i++)
        if (t.b[i].state == ST_UNREACHED) clique(&m, i);
      ok = record_classes(&t, sm_triggers_helper_dtv());
      if (!ok) sm_warning("leak analysis skipped: out of memory for the traces' leak counters");
    } else {
      sm_warning("leak analysis skipped: out of memory for its work list or the memory map");
    }
    scan_free(m.stack);
  }
  scan_free(t.b);
  return ok;
}

extern void __libc_freeres(void);

/* The exiting thread's live stack starts at the frame that called exit():
 * below it lie exit()'s own frames, the exit handlers' and ours, all laid
 * over the program's dead frames and full of stale values that would pass
 * for pointers. Found by unwinding: the first frames in the C library are
 * __run_exit_handlers and exit; the one after them is the caller (main, or
 * the C library's own call of exit after main returned). */
static bool in_libc(uintptr_t ip) {
  uint32_t m = sm_modules_find(ip);
  const sm_module_t *mod = m == SM_SNAP_NO_MODULE ? NULL : sm_modules_get(m);
  if (!mod) return false;
  const char *base = strrchr(mod->path, '/');
  base = base ? base + 1 : mod->path;
  return strncmp(base, "libc.so", 7) == 0;
}

static uintptr_t exit_stack_floor(uintptr_t fallback) {
  unw_context_t ctx;
  unw_cursor_t cur;
  if (!sm_unwlib_ready() || sm_unw.getcontext(&ctx) != 0 || sm_unw.init_local(&cur, &ctx) != 0) return fallback;
  int libc_frames = 0;
  for (int depth = 0; depth < 64 && sm_unw.step(&cur) > 0; depth++) {
    unw_word_t ip = 0, sp = 0;
    sm_unw.get_reg(&cur, UNW_REG_IP, &ip);
    sm_unw.get_reg(&cur, UNW_REG_SP, &sp);
    if (libc_frames == 2) return (uintptr_t)sp; /* the caller of exit() */
    if (in_libc((uintptr_t)ip)) libc_frames++;
    else if (libc_frames) return (uintptr_t)sp; /* exit() was inlined or tail-called */
  }
  return fallback;
}

/* libstdc++'s emergency exception pool (72,704 B) is freed by its own
 * __gnu_cxx::__freeres, which valgrind calls at exit as it calls
 * __libc_freeres; looked up before the threads are stopped (dlsym may take
 * the loader's lock). */
typedef void (*freeres_fn)(void);

static freeres_fn cxx_freeres(void) {
  return (freeres_fn)dlsym(RTLD_DEFAULT, "_ZN9__gnu_cxx9__freeresEv");
}

/* How many threads the process has, this one and the helper included. */
static int count_tasks(void) {
  char buf[4096];
  int n = 0;
  int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  long got;
  while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
    for (long off = 0; off < got; off += ((struct dirent64 *)(buf + off))->d_reclen)
      n += ((struct dirent64 *)(buf + off))->d_name[0] != '.';
  close(fd);
  return n;
}

/* Takes every lock, then stops the other threads. False (nothing held) if
 * a lock stays busy. */
static bool stop_the_world(int tasks) {
  threads_cap = (tasks > 0 ? tasks : 0) + 64; /* room for a few newcomers */
  threads = scan_alloc((size_t)threads_cap * sizeof *threads);
  if (!threads) {
    sm_warning("leak analysis skipped: out of memory for its thread table");
    return false;
  }
  if (!sm_locks_try_acquire_all(LOCK_WAIT_MS)) {
    sm_warning("leak analysis skipped: a lock of the library stayed busy for %d ms (exit() called from a signal "
               "handler that interrupted the library?)", LOCK_WAIT_MS);
    scan_free(threads);
    threads = NULL;
    return false;
  }
  nthreads = 0;
  if (list_threads()) stop_threads();
  return true;
}

bool sm_leaks_scan(uintptr_t stack_from) {
  sm_tracer_enter();
  uintptr_t my_sp = exit_stack_floor(stack_from), self_lo, self_hi;
  sm_modules_self(&self_lo, &self_hi);
  helper_floor = sm_triggers_helper_sp();
  int tasks = count_tasks();
  /* Like valgrind at exit: let the C library (and libstdc++) free their
   * internal buffers, so that what is left is the program's. Only when no
   * other thread of the program exists: a stopped thread may hold one of
   * the C library's own locks, and a running one may be using stdio. */
  if (tasks >= 1 && tasks <= 1 + (sm_triggers_helper_tid() != 0)) {
    freeres_fn cxx = cxx_freeres();
    if (cxx) cxx();
    __libc_freeres();
  }
  if (!stop_the_world(tasks)) {
    sm_tracer_leave();
    return false;
  }
  bool ok = analyse(my_sp, self_lo, self_hi);
  resume_threads();
  sm_locks_release_all();
  /* The thread table stays mapped: a thread that was sent the stop signal
   * but did not take it in time (it had blocked the signal meanwhile) may
   * still run on_stop, which reads it; the process is ending anyway. */
  sm_tracer_leave();
  return ok;
}
