/* When snapshots are written, one scenario per argument:
 *   signal DIR     - waits in sleep(); the driver sends SIGUSR2; a snapshot
 *                    must appear within a second. Then SIGTERM must reach
 *                    this program's own handler on the main thread (the
 *                    tracer's helper thread blocks every signal).
 *   interval DIR   - runs 2.6 s with interval=1: at least two snapshots.
 *   forkinterval DIR - with interval=0.2, a fork child that only allocates
 *                    from a stack and a page the parent traced just before
 *                    the fork restarts the helper thread: interval
 *                    snapshots with its own pid.
 *   atexit DIR     - an atexit handler and a destructor free blocks; the
 *                    final snapshot (written after them) must not hold them.
 *   fork DIR       - the child allocates and exits; its final snapshot has
 *                    its own pid and its blocks, the parent's has neither.
 *   dlopen DIR LIB - a dlopen'd library allocates; after dlclose the trace
 *                    still names the library's module.
 *   exec DIR SELF  - execs itself ("child" mode): the new image is traced too.
 *   exitcode       - exits 3: tracing must not change the status.
 *   dropped DIR    - drops root privileges, then asks for a snapshot in a
 *                    directory only root may write: -1 with EACCES, one
 *                    warning line, and the program goes on.
 * DIR is where SNAPMALLOC_OPTIONS' out pattern points (set by the driver). */
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "include/snapmalloc.h"
#include "tests/tracer/snaptest.h"

#define NOINLINE __attribute__((noinline))

static volatile sig_atomic_t got_term;
static void on_term(int sig) { (void)sig; got_term = 1; }

static int count_snaps(const char *dir, const char *needle) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "ls %s 2>/dev/null | grep -c '%s' ", dir, needle);
  FILE *p = popen(cmd, "r");
  int n = 0;
  if (p) {
    if (fscanf(p, "%d", &n) != 1) n = 0;
    pclose(p);
  }
  return n;
}

/* Newest final snapshot of pid in dir, read into s; 0 if found. */
static int final_of(const char *dir, long pid, sm_snap_t *s) {
  char cmd[512], path[512];
  snprintf(cmd, sizeof cmd, "ls -t %s/*.%ld.*.snap 2>/dev/null", dir, pid);
  FILE *p = popen(cmd, "r");
  int rc = -1;
  while (p && fgets(path, sizeof path, p)) {
    path[strcspn(path, "\n")] = '\0';
    char err[256];
    if (sm_snap_read(path, s, err, sizeof err) == 0) {
      if (s->flags & SM_SNAP_FINAL) {
        rc = 0;
        break;
      }
      sm_snap_free(s);
    }
  }
  if (p) pclose(p);
  return rc;
}

void *kept[64];
/* malloc/free of one size from one place, for `seconds`. */
NOINLINE void loop_alloc(double seconds) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    for (int i = 0; i < 1000; i++) {
      void *p = malloc(64);
      *(volatile char *)p = 1;
      free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 >= seconds) return;
  }
}
NOINLINE void exit_leftover(void) { kept[0] = malloc(777); kept[1] = malloc(888); }
NOINLINE void child_alloc(void) { for (int i = 2; i < 12; i++) kept[i] = malloc(4321); }
static void free_in_atexit(void) { free(kept[0]); }
__attribute__((destructor)) static void free_in_destructor(void) { free(kept[1]); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *mode = argv[1];
  if (!strcmp(mode, "exitcode")) return 3;
  if (!strcmp(mode, "exitcode0")) return 0;
  if (!strcmp(mode, "maxrss") && argc == 4) { /* maxrss LIB OPTIONS: peak RSS of "exitcode0" under the preload */
    pid_t pid = fork();
    if (pid == 0) {
      setenv("LD_PRELOAD", argv[2], 1);
      setenv("SNAPMALLOC_OPTIONS", argv[3], 1);
      execl("/proc/self/exe", argv[0], "exitcode0", (char *)NULL);
      _exit(127);
    }
    int status;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    printf("%ld\n", ru.ru_maxrss);
    return 0;
  }
  if (!strcmp(mode, "child")) { /* the exec'd image */
    child_alloc();
    return 0;
  }
  if (!snaptest_tracing()) TEST_SKIP("needs the preloaded library with trace=1");
  const char *dir = argc > 2 ? argv[2] : ".";

  if (!strcmp(mode, "signal")) {
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: sleep() must be interrupted */
    printf("ready\n");
    fflush(stdout);
    unsigned left = 20;
    while (!got_term && left) left = sleep(left);
    CHECK_MSG(got_term, "SIGTERM did not reach the main thread's handler");
    CHECK_MSG(left > 0, "sleep() was not interrupted by SIGTERM");
    return test_summary();
  }
  if (!strcmp(mode, "interval")) {
    struct timespec ts = {2, 600000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    int n = count_snaps(dir, "snap$");
    CHECK_MSG(n >= 2, "%d interval snapshots in 2.6 s with interval=1", n);
    return test_summary();
  }
  if (!strcmp(mode, "forkinterval")) {
    /* Round 0 in the parent, round 1 in the child, through the one call
     * of loop_alloc. (The child's first allocation still misses the memo,
     * so this does not pin down which path restarts the helper.) */
    pid_t pid = 0;
    for (volatile int round = 0; round < 2; round++) {
      if (round == 1 && (pid = fork()) != 0) break;
      loop_alloc(round == 0 ? 0.05 : 1.2);
    }
    if (pid == 0) {
      char mine[64];
      snprintf(mine, sizeof mine, "^x\\.%ld\\.", (long)getpid());
      int n = count_snaps(dir, mine);
      CHECK_MSG(n >= 2, "the fork child wrote %d interval snapshots in 1.2 s with interval=0.2", n);
      _exit(test_summary());
    }
    int st;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return test_summary();
  }
  if (!strcmp(mode, "atexit")) {
    exit_leftover();
    child_alloc(); /* stays live: proves the final snapshot is symbolized */
    atexit(free_in_atexit);
    return 0; /* the driver checks the final snapshot */
  }
  if (!strcmp(mode, "fork")) {
    pid_t pid = fork();
    if (pid == 0) {
      child_alloc();
      exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    sm_snap_t s;
    CHECK_MSG(final_of(dir, pid, &s) == 0, "no final snapshot named with the child's pid %ld", (long)pid);
    if (s.pid == (uint64_t)pid) {
      uint64_t size, count;
      snaptest_sum(&s, "child_alloc", &size, &count);
      CHECK_MSG(size == 10 * 4321 && count == 10, "child's blocks: %llu in %llu", (unsigned long long)size,
                (unsigned long long)count);
      sm_snap_free(&s);
    }
    /* the parent's own snapshot does not have the child's blocks */
    CHECK(snapmalloc_snapshot(NULL) == 0);
    CHECK(final_of(dir, getpid(), &s) != 0); /* not final yet */
    return test_summary();
  }
  if (!strcmp(mode, "dlopen")) {
    void *h = dlopen(argv[3], RTLD_NOW);
    CHECK_MSG(h != NULL, "dlopen %s: %s", argv[3], dlerror());
    if (!h) return test_summary();
    void *(*make)(size_t) = (void *(*)(size_t))dlsym(h, "tracer_lib_make");
    void *blocks[5];
    for (int i = 0; i < 5; i++) blocks[i] = make(1234);
    dlclose(h);
    char path[512];
    snprintf(path, sizeof path, "%s/dl.snap", dir);
    CHECK(snapmalloc_snapshot(path) == 0);
    sm_snap_t s;
    snaptest_read(path, &s);
    int found = 0;
    for (size_t i = 0; i < s.ntraces; i++) {
      const sm_snap_trace_t *t = &s.traces[i];
      if (t->nframes && t->frames[0].module != SM_SNAP_NO_MODULE &&
          strstr(s.modules[t->frames[0].module].path, "libtracer_dl") && t->size == 5 * 1234 && t->count == 5)
        found = 1;
    }
    CHECK_MSG(found, "no trace of 5 x 1234 bytes in the dlclose'd library's module");
    sm_snap_free(&s);
    for (int i = 0; i < 5; i++) free(blocks[i]);
    return test_summary();
  }
  if (!strcmp(mode, "exec")) {
    pid_t pid = fork();
    if (pid == 0) {
      execl(argv[3], argv[3], "child", (char *)NULL);
      _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    sm_snap_t s;
    CHECK_MSG(final_of(dir, pid, &s) == 0, "the exec'd program wrote no final snapshot");
    if (s.pid == (uint64_t)pid) {
      uint64_t size, count;
      snaptest_sum(&s, "child_alloc", &size, &count);
      CHECK_MSG(size == 10 * 4321 && count == 10, "exec'd image's blocks: %llu in %llu", (unsigned long long)size,
                (unsigned long long)count);
      struct stat st2;
      CHECK(stat(s.path, &st2) == 0 && (st2.st_mode & 0777) == 0600);
      sm_snap_free(&s);
    }
    return test_summary();
  }
  if (!strcmp(mode, "dropped")) {
    if (getuid() != 0) TEST_SKIP("needs root to drop privileges");
    CHECK(setgid(65534) == 0 && setuid(65534) == 0);
    errno = 0;
    CHECK(snapmalloc_snapshot(NULL) == -1);
    CHECK_MSG(errno == EACCES, "errno %d", errno);
    void *p = malloc(100); /* still allocating and tracing */
    CHECK(p != NULL);
    free(p);
    printf("went on\n");
    return test_summary();
  }
  fprintf(stderr, "unknown mode %s\n", mode);
  return 2;
}
