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
#include <time.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tracer/tracer.h"

static int wake_pipe[2] = {-1, -1};
static bool helper_running;
static int helper_tid; /* the leak scanner must not try to stop it */
/* Where the helper's stack is in use: an address in helper_main's frame.
 * The leak scan reads the helper's stack mapping from there up (its frames
 * and, at the top, its TCB and static TLS), not the whole mapping: reading
 * 8 MiB of untouched default stack would fault it all in. */
static uintptr_t helper_sp;
static bool helper_restart; /* set in a fork child */
static pthread_t helper_thread;

int sm_triggers_helper_tid(void) { return __atomic_load_n(&helper_tid, __ATOMIC_ACQUIRE); }

uintptr_t sm_triggers_helper_sp(void) {
  /* A program that exits at once may get here before the new helper has
   * run its first line: give it up to a second. */
  for (int i = 0; i < 1000 && __atomic_load_n(&helper_running, __ATOMIC_ACQUIRE) &&
                  !__atomic_load_n(&helper_sp, __ATOMIC_ACQUIRE); i++) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  return __atomic_load_n(&helper_sp, __ATOMIC_ACQUIRE);
}

/* The x86-64 TLS ABI puts a thread's DTV pointer in the second word of its
 * thread control block, which is where pthread_t points in glibc; the C
 * library stores the address of the DTV's second 16-byte entry there. */
uintptr_t sm_triggers_helper_dtv(void) {
  if (!__atomic_load_n(&helper_running, __ATOMIC_ACQUIRE) || !helper_thread) return 0;
  uintptr_t dtv = ((const uintptr_t *)helper_thread)[1];
  return dtv ? dtv - 16 : 0;
}

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
  __atomic_store_n(&helper_sp, (uintptr_t)__builtin_frame_address(0), __ATOMIC_RELEASE);
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
  /* Unknown until the new helper runs (sm_triggers_helper_sp waits for
   * it). A fork child that never starts a helper keeps the parent's value:
   * that stack stays mapped in the child, in glibc's cache of stacks. */
  __atomic_store_n(&helper_sp, 0, __ATOMIC_RELEASE);
  int rc = pthread_create(&t, &attr, helper_main, NULL);
  if (rc == 0) helper_thread = t;
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
  if (SM_LIKELY(!__atomic_load_n(&helper_restart, __ATOMIC_RELAXED))) return;
  /* Two threads of a fork child may get here at once: one starts the helper. */
  if (__atomic_exchange_n(&helper_restart, false, __ATOMIC_ACQ_REL)) start_helper();
}

void sm_triggers_postfork_child(void) {
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
  /* exit() from a signal handler that interrupted this thread inside the
   * tracer or the allocator: the interrupted code holds locks that this
   * thread would wait for forever (and it may be inside the loader, which
   * the scan's stack walk enters). Nothing is written, with one line. */
  if (sm_tracer_busy_here()) {
    sm_warning_always("final snapshot skipped: exit() interrupted the tracer (a signal handler that called exit)");
    return;
  }
  if (!sm_locks_try_acquire_all(2000)) {
    sm_warning_always("final snapshot skipped: a lock of the library stayed busy for 2 s (exit() from a signal "
                      "handler that interrupted the allocator?)");
    return;
  }
  sm_locks_release_all(); /* free: the scan and the writer take them as they need */
  uint32_t flags = SM_SNAP_FINAL;
  if (sm_opt.leaks && sm_leaks_scan(stack_from)) flags |= SM_SNAP_LEAKS;
  sm_snapshot_write(NULL, flags);
}
