/* Allocation under a storm of signals: an interval timer (ITIMER_REAL,
 * 200 us) and a second thread (pthread_kill with SIGUSR1) interrupt the main
 * thread while it allocates, reallocs and frees (at least 1.5 s, until
 * 20000 operations and 200 signals of each kind, at most 40 s); a helper thread
 * allocates too, so cross-thread paths (and any internal locking) are hit
 * mid-operation. The handlers only count (async-signal-safe). Patterns are
 * checked, and many signals must have arrived. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "smtest.h"

static volatile sig_atomic_t alarms, usr1s;
static atomic_int stop;
static pthread_t main_thread;

static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

static void on_usr1(int sig) {
  int saved = errno;
  (void)sig;
  usr1s++;
  errno = saved;
}

static void *sender(void *arg) {
  (void)arg;
  struct timespec ts = {0, 50000};
  while (!atomic_load(&stop)) {
    pthread_kill(main_thread, SIGUSR1);
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static void *allocator_thread(void *arg) {
  sm_rng_t r = {(uint64_t)(uintptr_t)arg};
  void *v[128] = {0};
  while (!atomic_load(&stop)) {
    unsigned k = (unsigned)sm_rng_below(&r, 128);
    free(v[k]);
    size_t n = sm_rng_logsize(&r, 1, 300000);
    v[k] = malloc(n);
    if (v[k]) memset(v[k], 0x33, n < 64 ? n : 64);
  }
  for (int k = 0; k < 128; k++) free(v[k]);
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define NS 1024

int main(void) {
  static unsigned char *blk[NS];
  static size_t bn[NS];
  static uint64_t bt[NS];
  struct sigaction sa;
  pthread_t snd, alt;
  sm_rng_t r = {8080};
  long ops = 0, bad = 0, fails = 0;
  uint64_t tag = 1;

  sm_check_preload();
  main_thread = pthread_self();
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_alarm;
  CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
  sa.sa_handler = on_usr1;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  /* Threads start before the timer; they block SIGALRM so that it goes to
   * the main thread. */
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &block, NULL);
  CHECK(pthread_create(&snd, NULL, sender, NULL) == 0);
  CHECK(pthread_create(&alt, NULL, allocator_thread, (void *)7) == 0);
  pthread_sigmask(SIG_UNBLOCK, &block, NULL);

  struct itimerval it = {{0, 200}, {0, 200}};
  CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
  /* Runs for at least 1.5 s and until enough operations and signals have
   * interleaved; on a loaded machine that takes longer (capped at 40 s,
   * within meson's 60 s timeout, so the checks below still report). */
  double t0 = now();
  while (now() - t0 < 1.5 || ((ops < 20000 || alarms <= 200 || usr1s <= 200) && now() - t0 < 40)) {
    for (int j = 0; j < 256; j++, ops++) {
      unsigned k = (unsigned)sm_rng_below(&r, NS);
      if (blk[k]) {
        if (sm_check(blk[k], bn[k], bt[k]) != (size_t)-1) bad++;
        if (sm_rng_below(&r, 4) == 0) {
          size_t n = sm_rng_logsize(&r, 1, 2 << 20);
          unsigned char *q = realloc(blk[k], n);
          if (!q) { fails++; continue; }
          if (sm_check_upto(q, bn[k], bt[k], n) != (size_t)-1) bad++;
          blk[k] = q;
          bn[k] = n;
          sm_fill(q, n, bt[k]);
          continue;
        }
        free(blk[k]);
        blk[k] = NULL;
      } else {
        size_t n = sm_rng_logsize(&r, 1, 2 << 20);
        blk[k] = sm_rng_below(&r, 5) == 0 ? calloc(1, n) : malloc(n);
        if (!blk[k]) { fails++; continue; }
        bn[k] = n;
        bt[k] = tag++;
        sm_fill(blk[k], n, bt[k]);
      }
    }
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  atomic_store(&stop, 1);
  pthread_join(snd, NULL);
  pthread_join(alt, NULL);
  for (int k = 0; k < NS; k++) {
    if (!blk[k]) continue;
    if (sm_check(blk[k], bn[k], bt[k]) != (size_t)-1) bad++;
    free(blk[k]);
  }
  fprintf(stderr, "%ld operations, %d SIGALRM, %d SIGUSR1\n", ops, (int)alarms, (int)usr1s);
  CHECK_MSG(bad == 0, "%ld corrupt blocks", bad);
  CHECK_MSG(fails == 0, "%ld failed allocations", fails);
  CHECK_MSG(alarms > 200, "only %d SIGALRM arrived", (int)alarms);
  CHECK_MSG(usr1s > 200, "only %d SIGUSR1 arrived", (int)usr1s);
  CHECK(ops >= 20000);
  return test_summary();
}
