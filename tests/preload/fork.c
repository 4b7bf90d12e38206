/* fork() while 4 threads allocate, and a fifth starts short-lived threads
 * one after another (each takes the heap the last one parked, or a fresh
 * one): the allocator's locks must be in a sane state in the child
 * (pthread_atfork prepare/parent/child), and no heap lost. Each child
 * allocates and frees blocks of every size class, frees blocks that the
 * parent's (now absent) threads had published, checks patterns, and in some
 * children creates a thread or forks again. A deadlock in the child shows up
 * as SIGALRM (alarm), a corrupted heap as a non-zero status. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smtest.h"

#define NTHREADS 4
#define NFORKS 50
#define SLOTS 128

struct pub {
  _Atomic(unsigned char *) p;
  size_t n;          /* written before p is published */
  uint64_t tag;
};

/* Blocks published by the busy threads; a thread takes a slot with an atomic
 * exchange, so in the child (where those threads vanished mid-step) every
 * non-NULL slot holds a complete block. */
static struct pub pubs[NTHREADS + 1][SLOTS]; /* the last row: the short-lived threads' */
static atomic_int stop;

static size_t size_of_class(sm_rng_t *r, unsigned c) {
  switch (c % 4) {
  case 0: return sm_rng_logsize(r, 1, 1024);
  case 1: return sm_rng_range(r, 1025, 64 << 10);
  case 2: return sm_rng_range(r, (64 << 10) + 1, 1 << 20);
  default: return sm_rng_range(r, (1 << 20) + 1, 4 << 20);
  }
}

/* One step of a parent thread on its row of pubs: replace a published
 * block, and make and drop a short-lived one. */
static void busy_step(unsigned id, sm_rng_t *r, uint64_t *counter) {
  struct pub *s = &pubs[id][sm_rng_below(r, SLOTS)];
  unsigned char *old = atomic_exchange(&s->p, NULL);
  if (old) {
    if (sm_check(old, s->n, s->tag) != (size_t)-1) {
      fprintf(stderr, "parent thread %u: corrupt block\n", id);
      abort();
    }
    free(old);
  }
  unsigned c = (unsigned)sm_rng_below(r, 100);
  size_t n = size_of_class(r, c < 80 ? 0 : c < 97 ? 1 : c < 99 ? 2 : sm_rng_below(r, 4) == 0 ? 3 : 2);
  unsigned char *p = malloc(n);
  if (!p) return;
  s->n = n;
  s->tag = ((uint64_t)id << 40) | (*counter)++;
  sm_fill(p, n, s->tag);
  atomic_store(&s->p, p);
  /* Some short-lived blocks and reallocs too. */
  void *t = malloc(sm_rng_logsize(r, 1, 4096));
  t = realloc(t, sm_rng_logsize(r, 1, 200000));
  free(t);
}

static void *busy(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  sm_rng_t r = {9000 + id};
  uint64_t counter = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    busy_step(id, &r, &counter);
    /* Stay busy but leave the CPUs to the children now and then. */
    if ((counter & 15) == 0) usleep(100);
  }
  return NULL;
}

/* A thread that lives for 64 steps on the last row, then exits: its heap
 * is parked for the next one, whose first call may free a block of it. */
static void *short_lived(void *arg) {
  static uint64_t counter; /* one short-lived thread at a time */
  sm_rng_t r = {(uint64_t)(uintptr_t)arg};
  for (int i = 0; i < 64; i++) busy_step(NTHREADS, &r, &counter);
  return NULL;
}

static void *churner(void *arg) {
  (void)arg;
  for (uintptr_t k = 1; !atomic_load_explicit(&stop, memory_order_relaxed); k++) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_lived, (void *)k) != 0) break;
    pthread_join(t, NULL);
    usleep(200);
  }
  return NULL;
}

static void *child_thread(void *arg) {
  sm_rng_t r = {(uint64_t)(uintptr_t)arg};
  long bad = 0;
  for (int i = 0; i < 2000; i++) {
    size_t n = size_of_class(&r, (unsigned)i);
    if (i % 4 == 3 && i % 40 != 3) continue; /* few huge ones */
    unsigned char *p = malloc(n);
    if (!p) { bad++; continue; }
    sm_fill(p, n, (uint64_t)i);
    if (sm_check(p, n, (uint64_t)i) != (size_t)-1) bad++;
    free(p);
  }
  return (void *)(intptr_t)bad;
}

/* The work done in each child; returns the exit status. */
static int child_work(int k) {
  sm_rng_t r = {(uint64_t)k * 31 + 7};
  enum { N = 1200 };
  static unsigned char *v[N];
  static size_t vn[N];
  long bad = 0;

  /* 1. Free what the parent's threads published (their owners are gone). */
  for (int t = 0; t <= NTHREADS; t++)
    for (int i = 0; i < SLOTS; i++) {
      unsigned char *p = atomic_load(&pubs[t][i].p);
      if (!p) continue;
      if (sm_check(p, pubs[t][i].n, pubs[t][i].tag) != (size_t)-1) bad++;
      if (i % 2) free(p);
    }
  /* 2. Blocks of every class, live together, then freed. */
  for (int i = 0; i < N; i++) {
    unsigned c = (unsigned)i;
    if (c % 4 == 3 && c % 100 != 3) c = 0;
    vn[i] = size_of_class(&r, c);
    v[i] = malloc(vn[i]);
    if (!v[i]) { bad++; continue; }
    sm_fill(v[i], vn[i], (uint64_t)i + 1);
  }
  for (int i = 0; i < N; i++) {
    if (!v[i]) continue;
    if (sm_check(v[i], vn[i], (uint64_t)i + 1) != (size_t)-1) bad++;
    if (i % 3 == 0) {
      size_t n = size_of_class(&r, (unsigned)sm_rng_below(&r, 3));
      unsigned char *q = realloc(v[i], n);
      if (!q) { bad++; continue; }
      if (sm_check_upto(q, vn[i], (uint64_t)i + 1, n) != (size_t)-1) bad++;
      v[i] = q;
    }
    free(v[i]);
  }
  /* 3. Every few children: a thread in the child, or a grandchild. */
  if (k % 5 == 1) {
    pthread_t th;
    void *res = (void *)1;
    if (pthread_create(&th, NULL, child_thread, (void *)(uintptr_t)k) != 0) return 3;
    pthread_join(th, &res);
    if (res) bad++;
  }
  if (k % 10 == 2) {
    pid_t g = fork();
    if (g == 0) {
      alarm(20);
      _exit(child_thread((void *)1) ? 4 : 0);
    }
    int st;
    if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
  }
  if (bad) fprintf(stderr, "child %d: %ld bad blocks\n", k, bad);
  return bad ? 1 : 0;
}

int main(void) {
  pthread_t th[NTHREADS];
  int failed_children = 0;
  sm_check_preload();
  pthread_t churn;
  for (int i = 0; i < NTHREADS; i++)
    CHECK(pthread_create(&th[i], NULL, busy, (void *)(uintptr_t)i) == 0);
  CHECK(pthread_create(&churn, NULL, churner, NULL) == 0);
  usleep(50000);
  for (int k = 0; k < NFORKS; k++) {
    pid_t pid = fork();
    if (pid < 0) {
      CHECK_MSG(0, "fork: %s", strerror(errno));
      break;
    }
    if (pid == 0) {
      alarm(30); /* a deadlocked child dies of SIGALRM */
      _exit(child_work(k));
    }
    int st;
    pid_t w;
    do w = waitpid(pid, &st, 0); while (w < 0 && errno == EINTR);
    CHECK(w == pid);
    if (WIFSIGNALED(st)) {
      failed_children++;
      fprintf(stderr, "child %d killed by signal %d%s\n", k, WTERMSIG(st),
              WTERMSIG(st) == SIGALRM ? " (deadlock?)" : "");
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      failed_children++;
      fprintf(stderr, "child %d exited with %d\n", k, WEXITSTATUS(st));
    }
    usleep(2000);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  pthread_join(churn, NULL);
  /* The parent's heap is still sound after all those forks. */
  long bad = 0;
  for (int t = 0; t <= NTHREADS; t++)
    for (int i = 0; i < SLOTS; i++) {
      unsigned char *p = atomic_load(&pubs[t][i].p);
      if (!p) continue;
      if (sm_check(p, pubs[t][i].n, pubs[t][i].tag) != (size_t)-1) bad++;
      free(p);
    }
  CHECK_MSG(bad == 0, "%ld corrupt blocks in the parent", bad);
  CHECK_MSG(failed_children == 0, "%d of %d children failed", failed_children, NFORKS);
  return test_summary();
}
