/* fork() while another thread is inside the library's tracer: every lock of
 * the library must be taken before the fork and be usable in the child (the
 * lock table, tracer/locks.c). A thread writes snapshots in a loop (the
 * snapshot writer's lock, the module table's lock, the trace table's) and
 * allocates from new call sites; the main thread forks again and again, and
 * each child writes a snapshot of its own and allocates. A lock left held
 * in the child (the module table's was neither taken nor reset at fork)
 * makes the child hang: the parent gives each child 10 s, then fails.
 * (The thread does not dlopen: glibc's fork leaves the loader's own lock
 * held in the child when another thread was inside dlopen, and the child's
 * first dl_iterate_phdr, ours or a C++ exception's, then hangs; docs/
 * tracer.md, "fork and exec".)
 * Usage: forklocks DIRECTORY [FORKS]. Needs the library preloaded, trace=1. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int (*snapshot)(const char *);
static char busy_path[4096];

__attribute__((noinline)) static void *alloc_at(int depth) {
  if (depth == 0) return malloc(48);
  void *p = alloc_at(depth - 1);
  __asm__ volatile("" ::: "memory");
  return p;
}

static void *busy(void *arg) {
  (void)arg;
  for (unsigned i = 0;; i++) {
    snapshot(busy_path);
    free(alloc_at((int)(i % 24))); /* new stacks: the trace table and the module lookup */
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: forklocks DIRECTORY [FORKS]\n");
    return 2;
  }
  int forks = argc > 2 ? atoi(argv[2]) : 300;
  snapshot = (int (*)(const char *))dlsym(RTLD_DEFAULT, "snapmalloc_snapshot");
  if (!snapshot) {
    fprintf(stderr, "forklocks: libsnapmalloc is not preloaded\n");
    return 2;
  }
  snprintf(busy_path, sizeof busy_path, "%s/forklocks.busy.snap", argv[1]);
  pthread_t t;
  pthread_create(&t, NULL, busy, NULL);
  int hung = 0, failed = 0;
  for (int i = 0; i < forks && !hung; i++) {
    struct timespec ms = {0, 200000 + (i % 7) * 150000};
    nanosleep(&ms, NULL);
    pid_t pid = fork();
    if (pid == 0) {
      char path[4200];
      snprintf(path, sizeof path, "%s/forklocks.child.%d.snap", argv[1], (int)getpid());
      int rc = snapshot(path);
      free(alloc_at(30));
      unlink(path);
      _exit(rc == 0 ? 0 : 3);
    }
    int st = 0;
    for (int waited = 0; waited < 10000 && waitpid(pid, &st, WNOHANG) == 0; waited += 10) {
      struct timespec w = {0, 10000000};
      nanosleep(&w, NULL);
      if (waited + 10 >= 10000) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        hung++;
        fprintf(stderr, "forklocks: child %d of %d hung (killed after 10 s)\n", i, forks);
      }
    }
    if (!hung && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
      failed++;
      fprintf(stderr, "forklocks: child %d ended with status %d\n", i, st);
    }
  }
  unlink(busy_path);
  printf("forklocks: %d forks, %d hung, %d failed\n", forks, hung, failed);
  return hung || failed ? 1 : 0;
}
