/* Exit from a signal handler while a snapshot is being written must never
 * deadlock. Each round forks a child that traces (the library is preloaded
 * with trace=1 and at_exit=1, so exit() writes a final snapshot), allocates
 * from many call sites, and writes snapshots in a loop through the API; a
 * thread of its own sends it SIGTERM after a random delay, and the handler
 * calls exit(). The interrupted code may be anywhere in the writer, holding
 * its locks, on the very thread that then runs the exit path. The parent
 * gives every child a few seconds: one still running then is a deadlock
 * (killed, the test fails).
 * Usage: sigterm DIRECTORY [ROUNDS] (snapshots go to DIRECTORY). Needs the
 * library preloaded with tracing on. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>

static void on_term(int sig) {
  (void)sig;
  exit(0); /* not async-signal-safe: what real programs do anyway */
}

static void *terminator(void *arg) {
  long usec = (long)(intptr_t)arg;
  struct timespec ts = {usec / 1000000, (usec % 1000000) * 1000};
  nanosleep(&ts, NULL);
  kill(getpid(), SIGTERM);
  return NULL;
}

/* Distinct call sites, so that snapshots have some traces to write. */
#define SITE(n) static __attribute__((noinline)) void *site##n(size_t s) { return malloc(s + n); }
SITE(0) SITE(1) SITE(2) SITE(3) SITE(4) SITE(5) SITE(6) SITE(7)
static void *(*const sites[8])(size_t) = {site0, site1, site2, site3, site4, site5, site6, site7};

static void child(const char *dir, unsigned seed) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  static void *keep[4096];
  for (int i = 0; i < 4096; i++) keep[i] = sites[i & 7]((size_t)(i % 300));
  pthread_t t;
  pthread_create(&t, NULL, terminator, (void *)(intptr_t)(200 + (long)(seed % 20000)));
  int (*snapshot)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "snapmalloc_snapshot");
  if (!snapshot) _exit(4);
  char path[4096];
  snprintf(path, sizeof path, "%s/loop.snap", dir);
  for (int i = 0;; i++) {
    snapshot(path);
    free(keep[i & 4095]);
    keep[i & 4095] = sites[i & 7]((size_t)(i % 500));
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIRECTORY [ROUNDS]\n", argv[0]);
    return 2;
  }
  int rounds = argc > 2 ? atoi(argv[2]) : 30;
  int hung = 0, bad = 0;
  for (int r = 0; r < rounds; r++) {
    pid_t pid = fork();
    if (pid == 0) {
      child(argv[1], (unsigned)r * 7919u + (unsigned)getpid());
      _exit(3);
    }
    int st = 0;
    int waited = 0;
    for (; waited < 1000; waited++) { /* 10 s */
      pid_t w = waitpid(pid, &st, WNOHANG);
      if (w == pid) break;
      struct timespec ms = {0, 10000000};
      nanosleep(&ms, NULL);
    }
    if (waited == 1000) {
      fprintf(stderr, "sigterm: round %d: child %d still running after 10 s (deadlock)\n", r, (int)pid);
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      hung++;
      continue;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "sigterm: round %d: child status %#x\n", r, st);
      bad++;
    }
  }
  fprintf(stderr, "sigterm: %d rounds, %d hung, %d ended badly\n", rounds, hung, bad);
  return hung || bad ? 1 : 0;
}
