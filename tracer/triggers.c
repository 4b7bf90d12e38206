/* When snapshots are written besides the API: on a signal, every `interval`
 * seconds, at exit, and what a fork child must redo.
 *
 * The signal handler only writes one byte to a pipe (async-signal-safe). A
 * helper thread, started only when a signal or an interval is configured,
 * waits on that pipe with poll() and writes the snapshot; so a program
 * blocked in sleep() or read() still gets its snapshot at once, and nothing
 * unsafe runs in the handler. The helper blocks every signal so it never
 * takes SIGINT or SIGTERM meant for the program.
 *
 * A fork child gets a fresh pipe at once (the parent's helper must not see
 * the child's signals) and a new helper on its next traced allocation:
 * creating a thread inside the fork handler itself is not safe. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tracer/tracer.h"

static int wake_pipe[2] = {-1, -1};
static bool helper_running;
static int helper_tid; /* the leak scanner must not try to stop it */
/* The helper's own stack, mapped once (a fork child's new helper reuses
 * it: the parent's helper does not exist there). Small, because the helper
 * only polls and writes snapshots; and known, because the leak scan skips
 * it: the helper holds no pointers of the program, and reading an 8 MiB
 * default stack end to end would fault it all in. */
#define HELPER_STACK_SIZE ((size_t)256 << 10)
static uint8_t *helper_stack; /* guard page, then HELPER_STACK_SIZE bytes */

int sm_triggers_helper_tid(void) { return __atomic_load_n(&helper_tid, __ATOMIC_ACQUIRE); }

bool sm_triggers_helper_stack(uintptr_t *lo, uintptr_t *hi) {
  if (!helper_stack) return false;
  *lo = (uintptr_t)helper_stack;
  *hi = (uintptr_t)helper_stack + sm_os_page_size + HELPER_STACK_SIZE;
  return true;
}
static bool helper_restart; /* set in a fork child */

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  if (wake_pipe[1] >= 0) {
    ssize_t r = write(wake_pipe[1], "s", 1);
    (void)r; /* a full pipe already has a request pending */
  }
  errno = saved;
}

static void *helper_main(void *arg) {
  (void)arg;
  __atomic_store_n(&helper_tid, (int)sm_os_tid(), __ATOMIC_RELEASE);
  int timeout = sm_opt.interval > 0 ? (int)(sm_opt.interval * 1000) : -1;
  for (;;) {
    struct pollfd pfd = {wake_pipe[0], POLLIN, 0};
    int r = poll(&pfd, 1, timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      return NULL;
    }
    if (r > 0) {
      char drain[64];
      if (read(wake_pipe[0], drain, sizeof drain) <= 0) return NULL; /* pipe gone */
    }
    /* r == 0: the interval elapsed */
    sm_snapshot_write(NULL, 0);
  }
}

static void start_helper(void) {
  if (sm_opt.signal == 0 && sm_opt.interval == 0) return;
  if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    sm_warning("cannot create the snapshot trigger pipe; signal and interval snapshots are off");
    return;
  }
  /* The reading end blocks (poll waits on it); the writing end must not. */
  fcntl(wake_pipe[0], F_SETFL, 0);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the helper inherits "all blocked" */
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (!helper_stack) {
    uint8_t *st = sm_os_map(sm_os_page_size + HELPER_STACK_SIZE);
    if (st && mprotect(st, sm_os_page_size, PROT_NONE) == 0) helper_stack = st;
    else if (st) sm_os_unmap(st, sm_os_page_size + HELPER_STACK_SIZE);
  }
  /* Without a stack of our own the thread gets the default one. */
  if (helper_stack) pthread_attr_setstack(&attr, helper_stack + sm_os_page_size, HELPER_STACK_SIZE);
  int rc = pthread_create(&t, &attr, helper_main, NULL);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    sm_warning("cannot start the snapshot helper thread; signal and interval snapshots are off");
    return;
  }
  helper_running = true;
}

void sm_triggers_init(void) {
  if (sm_opt.signal) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(sm_opt.signal, &sa, NULL);
  }
  start_helper();
}

void sm_triggers_maybe_restart(void) {
  if (SM_LIKELY(!helper_restart)) return;
  helper_restart = false;
  start_helper();
}

void sm_triggers_postfork_child(void) {
  sm_snapshot_postfork_child();
  if (!helper_running) return;
  close(wake_pipe[0]);
  close(wake_pipe[1]);
  wake_pipe[0] = wake_pipe[1] = -1;
  helper_running = false;
  helper_restart = true;
  helper_tid = 0;
}

void sm_triggers_at_exit(uintptr_t stack_from) {
  if (!sm_trace_on || !sm_opt.at_exit) return;
  uint32_t flags = SM_SNAP_FINAL;
  if (sm_opt.leaks && sm_leaks_scan(stack_from)) flags |= SM_SNAP_LEAKS;
  sm_snapshot_write(NULL, flags);
}
