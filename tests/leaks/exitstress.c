/* Exits while other threads are busy or unreachable, for the leak scan at
 * exit (tests/leaks/exitstress.sh):
 *   busy     8 threads churn malloc/free of 16..3000 bytes while main calls
 *            exit(0): the scan must never hang on a lock a stopped thread
 *            holds;
 *   blocked  2 threads that block every signal sleep holding a block only
 *            their stacks point to: the scan must not wait for them, and
 *            must still find the blocks reachable;
 *   sigexit USEC  a timer's signal handler calls exit() after USEC
 *            microseconds while the program allocates from ever new stacks:
 *            the exit path may interrupt the tracer or the allocator holding
 *            a lock, and must skip its snapshot rather than wait forever. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>
#include <unistd.h>

static void *churn(void *arg) {
  uint64_t x = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  void *slots[64] = {0};
  for (;;) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    unsigned i = (unsigned)(x % 64);
    free(slots[i]);
    slots[i] = malloc(16 + (size_t)(x >> 20) % 2985);
    if (slots[i]) memset(slots[i], 1, 16);
  }
  return NULL;
}

static volatile int sink;
static void exit_now(int sig) {
  (void)sig;
  exit(0);
}
__attribute__((noinline)) static void leaf(void) {
  void *p = malloc(24);
  sink += (int)(long)p;
  free(p);
}
__attribute__((noinline)) static void walk_b(unsigned x, int d);
/* A different call path for every x: each allocation is a new stack. */
__attribute__((noinline)) static void walk_a(unsigned x, int d) {
  if (!d) leaf();
  else if (x & 1) walk_a(x >> 1, d - 1);
  else walk_b(x >> 1, d - 1);
  sink++;
}
__attribute__((noinline)) static void walk_b(unsigned x, int d) {
  if (!d) leaf();
  else if (x & 1) walk_a(x >> 1, d - 1);
  else walk_b(x >> 1, d - 1);
  sink++;
}

static void *sleeper(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, NULL);
  void *volatile mine = malloc(1234); /* held by this stack only */
  memset(mine, 2, 1234);
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  pthread_t t;
  if (!strcmp(mode, "busy")) {
    for (uintptr_t i = 0; i < 8; i++) pthread_create(&t, NULL, churn, (void *)(i + 1));
    struct timespec ms = {0, 3000000};
    nanosleep(&ms, NULL);
  } else if (!strcmp(mode, "sigexit") && argc > 2) {
    signal(SIGALRM, exit_now);
    struct itimerval it = {{0, 0}, {0, atol(argv[2])}};
    setitimer(ITIMER_REAL, &it, NULL);
    for (unsigned x = 0;; x++) walk_a(x * 2654435761u, 20);
  } else if (!strcmp(mode, "blocked")) {
    for (int i = 0; i < 2; i++) pthread_create(&t, NULL, sleeper, NULL);
    struct timespec ms = {0, 50000000};
    nanosleep(&ms, NULL);
  } else {
    fprintf(stderr, "usage: exitstress busy|blocked|sigexit USEC\n");
    return 2;
  }
  exit(0);
}
