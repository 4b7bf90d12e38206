/* A fork never catches one of the tracer's threads inside the loader's lock
 * (tracer/modules.c, sm_modules_iterate): glibc's fork does not take that
 * lock, so a child forked while another thread was inside dl_iterate_phdr
 * would find it held for ever, and hang in its first stack walk. Here a
 * thread sits in sm_modules_iterate's callback for 300 ms while the main
 * thread forks, with the library's fork handlers (every lock of the table,
 * as preload/init.c registers them). The child then calls dl_iterate_phdr
 * and must return from it; a hung child dies of its alarm. */
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tests/testhelper.h"
#include "tracer/tracer.h"

static volatile int inside;

static int slow(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)info, (void)size, (void)arg;
  __atomic_store_n(&inside, 1, __ATOMIC_RELEASE);
  struct timespec t = {0, 300 * 1000 * 1000};
  nanosleep(&t, NULL);
  return 1;
}

static int first(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)info, (void)size, (void)arg;
  return 1;
}

static void *walker(void *arg) {
  (void)arg;
  sm_modules_iterate(slow, NULL);
  return NULL;
}

int main(void) {
  sm_init();
  pthread_atfork(sm_locks_acquire_all, sm_locks_release_all, sm_locks_reset_all);
  for (int round = 0; round < 3; round++) {
    __atomic_store_n(&inside, 0, __ATOMIC_RELAXED);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, walker, NULL) == 0);
    while (!__atomic_load_n(&inside, __ATOMIC_ACQUIRE)) sched_yield();
    pid_t pid = fork();
    if (pid == 0) {
      alarm(5);
      dl_iterate_phdr(first, NULL);
      _exit(0);
    }
    CHECK(pid > 0);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d: the child %s %d", round,
              WIFSIGNALED(st) ? "died of signal" : "exited with", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    pthread_join(t, NULL);
  }
  return test_summary();
}
