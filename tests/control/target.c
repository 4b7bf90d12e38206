/* The process the control tests drive (tests/control/control.py): it runs
 * under the preload and obeys one command per line on stdin, blocked in
 * read() in between (so every request of the channel reaches a program
 * that is waiting, as a service does). Each command answers "ok" (and
 * what it has to say) on stdout once done.
 *
 *   alloc FN N SIZE  FN (before, after, again) allocates N blocks of SIZE bytes, kept
 *   free FN          frees the blocks FN allocated
 *   realloc FN SIZE  reallocates the blocks FN allocated to SIZE bytes
 *   threads N        N threads allocate, free each other's blocks and
 *                    reallocate, until "join" (which frees all they hold)
 *   fork             a child that answers "ok PID" and waits forever
 *   exec             this program again, same pid, stdin and stdout ("ready")
 *   sleepexit        answers "ok", sleeps 30 s, exits at once however sleep ended
 *   closefds DIR     closes every descriptor above 2, as some daemons do, then
 *                    opens DIR/fd0..fd7 (which get those numbers again)
 *   closefds pipes   the same, then makes 8 pipes of its own instead, their
 *                    writing ends under the numbers 3..10
 *   pipebytes        answers "ok N": the bytes waiting in those pipes
 *   exit             exit(0) at once
 * End of input exits too. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define MAXBLOCKS 4096

typedef struct blocks {
  void *p[MAXBLOCKS];
  int n;
} blocks_t;

static blocks_t held[3]; /* before, after, again */
static int pipes[8];       /* closefds pipes: the reading ends */
static const char *const names[] = {"before", "after", "again"};

/* One function per name, so that each is a site of its own. */
NOINLINE void *alloc_before(size_t n) { return malloc(n); }
NOINLINE void *alloc_after(size_t n) { return malloc(n); }
NOINLINE void *alloc_again(size_t n) { return malloc(n); }
static void *(*const allocators[])(size_t) = {alloc_before, alloc_after, alloc_again};

static int which(const char *name) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(name, names[i])) return i;
  return -1;
}

/* ---------------------------------------------------------------- threads */

#define SLOTS 256
static void *_Atomic shared[SLOTS]; /* blocks any thread may free */
static atomic_bool stop_threads;
static pthread_t workers[16];
static int nworkers;

NOINLINE void *thread_alloc(size_t n) { return malloc(n); }

static void *worker(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
  void *mine[64] = {0};
  while (!atomic_load(&stop_threads)) {
    seed = seed * 1103515245u + 12345u;
    unsigned r = seed >> 8;
    size_t size = 16 + r % 3000;
    int k = (int)(r % 64);
    /* own blocks: malloc, realloc (moves across classes), free */
    if (mine[k]) {
      if (r & 1) {
        void *q = realloc(mine[k], size * ((r >> 1) % 3 + 1));
        if (q) mine[k] = q;
      } else {
        free(mine[k]);
        mine[k] = NULL;
      }
    } else {
      mine[k] = thread_alloc(size);
    }
    /* cross-thread: swap a block into a shared slot, free what was there */
    void *p = thread_alloc(size / 2 + 1);
    void *old = atomic_exchange(&shared[r % SLOTS], p);
    free(old);
  }
  for (int i = 0; i < 64; i++) free(mine[i]);
  return NULL;
}

/* ---------------------------------------------------------------- commands */

static int child_wait(void) {
  printf("ok %d\n", (int)getpid());
  fflush(stdout);
  int fds[2];
  if (pipe(fds) != 0) return 1;
  char c;
  for (;;) /* its own writer stays open: blocks in read() for good */
    if (read(fds[0], &c, 1) < 0) pause();
}

int main(int argc, char **argv) {
  /* stdio's buffers are static: glibc would otherwise malloc stdin's at the
   * first fgets, after "ready", and a start that lands in between would
   * trace that block (a race the tests lost under load) */
  static char inbuf[4096], outbuf[4096];
  setvbuf(stdin, inbuf, _IOFBF, sizeof inbuf);
  setvbuf(stdout, outbuf, _IOLBF, sizeof outbuf);
  printf("ready %d\n", (int)getpid());
  char line[256], a[32], path[201];
  while (fgets(line, sizeof line, stdin)) {
    int n;
    size_t size;
    if (sscanf(line, "alloc %31s %d %zu", a, &n, &size) == 3 && which(a) >= 0 && n >= 0 && n <= MAXBLOCKS) {
      blocks_t *b = &held[which(a)];
      for (int i = 0; i < n && b->n < MAXBLOCKS; i++) b->p[b->n++] = allocators[which(a)](size);
    } else if (sscanf(line, "free %31s", a) == 1 && which(a) >= 0) {
      blocks_t *b = &held[which(a)];
      for (int i = 0; i < b->n; i++) free(b->p[i]);
      b->n = 0;
    } else if (sscanf(line, "realloc %31s %zu", a, &size) == 2 && which(a) >= 0) {
      blocks_t *b = &held[which(a)];
      for (int i = 0; i < b->n; i++) b->p[i] = realloc(b->p[i], size);
    } else if (sscanf(line, "threads %d", &n) == 1 && n > 0 && n <= 16 && !nworkers) {
      atomic_store(&stop_threads, false);
      for (nworkers = 0; nworkers < n; nworkers++)
        pthread_create(&workers[nworkers], NULL, worker, (void *)(uintptr_t)(nworkers + 1));
    } else if (!strcmp(line, "join\n")) {
      atomic_store(&stop_threads, true);
      for (int i = 0; i < nworkers; i++) pthread_join(workers[i], NULL);
      nworkers = 0;
      for (int i = 0; i < SLOTS; i++) free(atomic_exchange(&shared[i], NULL));
    } else if (!strcmp(line, "fork\n")) {
      fflush(stdout);
      pid_t pid = fork();
      if (pid == 0) return child_wait();
      if (pid < 0) return 1;
      continue; /* the child answers */
    } else if (!strcmp(line, "exec\n")) {
      fflush(stdout);
      execv("/proc/self/exe", argv);
      return 1;
    } else if (!strcmp(line, "sleepexit\n")) {
      printf("ok\n");
      sleep(30);
      exit(0);
    } else if (!strcmp(line, "closefds pipes\n")) {
      for (int fd = 3; fd < 1024; fd++) close(fd);
      int w[8];
      for (int i = 0; i < 8; i++) {
        int fds[2];
        if (pipe(fds) != 0) return 1;
        pipes[i] = fcntl(fds[0], F_DUPFD, 100);
        w[i] = fcntl(fds[1], F_DUPFD, 200);
        close(fds[0]);
        close(fds[1]);
      }
      for (int i = 0; i < 8; i++) {
        dup2(w[i], 3 + i);
        close(w[i]);
      }
    } else if (!strcmp(line, "pipebytes\n")) {
      int total = 0;
      for (int i = 0; i < 8; i++) {
        int n = 0;
        if (pipes[i] > 0 && ioctl(pipes[i], FIONREAD, &n) == 0) total += n;
      }
      printf("ok %d\n", total);
      continue;
    } else if (sscanf(line, "closefds %200s", path) == 1) {
      for (int fd = 3; fd < 1024; fd++) close(fd);
      for (int i = 0; i < 8; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s/fd%d", path, i);
        if (open(name, O_WRONLY | O_CREAT | O_TRUNC, 0600) < 0) return 1;
      }
    } else if (!strcmp(line, "exit\n")) {
      exit(0);
    } else {
      printf("bad command: %s", line);
      continue;
    }
    printf("ok\n");
  }
  (void)argc;
  return 0;
}
