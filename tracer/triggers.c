/* When snapshots are written besides the API: on a signal, every `interval`
 * seconds (to the millisecond), at exit, on a request of the control
 * channel (control.c); and what a fork child must redo.
 *
 * The signal handler only writes one byte to a pipe (async-signal-safe). A
 * helper thread, started when a signal or an interval is configured for
 * tracing or the control channel is armed, waits on that pipe and on the
 * control socket with poll() and does the work: so a program blocked in
 * sleep() or read() still gets its snapshot at once, and nothing unsafe
 * runs in the handler. The helper blocks every signal so it never takes
 * SIGINT or SIGTERM meant for the program.
 *
 * Exit: a snapshot asked for must not be lost because the program exits
 * right after asking (a signal cuts sleep() short, and the program's next
 * step is exit()). The exit hook tells the helper to finish what is
 * pending (the signal's snapshot, the connections waiting, the snapshot
 * or request in progress) and waits for it, then closes the control
 * socket; the helper then idles until the process is gone.
 *
 * A fork child gets a fresh pipe at once (the parent's helper must not see
 * the child's signals). An armed child also gets its own control socket
 * and helper right in the fork handler, so that it can be controlled under
 * its own pid even if it never allocates again (glibc has reset its thread
 * and loader locks before it runs the handlers). Otherwise the helper
 * starts again on the child's next traced allocation: a thread is only
 * worth its cost in a child that does not exec at once. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tracer/tracer.h"

static int wake_pipe[2] = {-1, -1};
static ino_t pipe_ino; /* the pipe's inode: a program that closes every descriptor may reuse the numbers */
static bool helper_running;
static int helper_tid; /* the leak scanner must not try to stop it */
/* Where the helper's stack is in use: an address in helper_main's frame.
 * The leak scan reads the helper's stack mapping from there up (its frames
 * and, at the top, its TCB and static TLS), not the whole mapping: reading
 * 8 MiB of untouched default stack would fault it all in. */
static uintptr_t helper_sp;
bool sm_helper_restart; /* set in a fork child (tracer.h) */
static pthread_t helper_thread;
static bool signal_installed;
static bool exit_drain; /* atomic: the exit hook waits for what is pending */
static bool drained;    /* atomic: the helper has done it and stopped serving */

#define EXIT_WAIT_MS 10000 /* how long exit waits for the pending requests */

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

/* Whether fd is still the pipe of ours (fstat is async-signal-safe). */
static bool pipe_ours(int fd) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_ino == pipe_ino;
}

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  if (pipe_ours(wake_pipe[1])) {
    ssize_t r = write(wake_pipe[1], "s", 1);
    (void)r; /* a full pipe already has a request pending */
  }
  errno = saved;
}

/* Empties the wake pipe without waiting: true if a signal asked for a
 * snapshot ('s'; the exit hook writes 'x'). */
static bool take_wakes(void) {
  bool snap = false;
  char buf[64];
  ssize_t n;
  if (wake_pipe[0] < 0) return false;
  if (!pipe_ours(wake_pipe[0])) {
    /* The program closed it (a daemon closing every descriptor): the
     * number may be another file of the program's now. */
    sm_warning("the snapshot trigger pipe was closed by the program; signal snapshots are off");
    wake_pipe[0] = wake_pipe[1] = -1;
    return false;
  }
  while ((n = read(wake_pipe[0], buf, sizeof buf)) > 0) {
    if (memchr(buf, 's', (size_t)n)) snap = true;
    if ((size_t)n < sizeof buf) break;
  }
  return snap;
}

/* The helper's end: nothing more will be served (the exit hook need not wait). */
static SM_NORETURN void idle(void) {
  __atomic_store_n(&drained, true, __ATOMIC_RELEASE);
  for (;;) poll(NULL, 0, -1); /* every signal is blocked here: this never returns */
}

/* At exit: whatever was asked for before the exit hook ran is in the pipe
 * or the socket's queue now; do it all, then let nobody else in. */
static SM_NORETURN void drain_and_idle(void) {
  for (;;) {
    bool snap = take_wakes();
    if (snap) sm_snapshot_write(NULL, 0);
    bool served = sm_control_serve_one();
    if (!snap && !served) break;
  }
  sm_control_close();
  idle();
}

static void *helper_main(void *arg) {
  (void)arg;
  __atomic_store_n(&helper_sp, (uintptr_t)__builtin_frame_address(0), __ATOMIC_RELEASE);
  __atomic_store_n(&helper_tid, (int)sm_os_tid(), __ATOMIC_RELEASE);
  uint64_t due = 0; /* when the next interval snapshot is due (ms); 0: none while tracing is off */
  for (;;) {
    int timeout = -1;
    if (sm_opt.interval_ms > 0 && __atomic_load_n(&sm_trace_on, __ATOMIC_ACQUIRE)) {
      uint64_t now = sm_os_now_ms();
      if (!due) due = now + (uint64_t)sm_opt.interval_ms;
      timeout = due > now ? (int)(due - now) : 0; /* interval <= 86400 s: fits in ms */
    } else {
      due = 0;
    }
    struct pollfd pfd[2] = {{wake_pipe[0], POLLIN, 0}, {sm_control_fd(), POLLIN, 0}};
    int r = poll(pfd, pfd[1].fd >= 0 ? 2 : 1, timeout);
    if (r < 0 && errno != EINTR) idle(); /* cannot happen with two open descriptors */
    bool snap = r > 0 && pfd[0].revents && take_wakes();
    if (r > 0 && pfd[1].revents) sm_control_check();
    if (due && sm_os_now_ms() >= due) {
      snap = true;
      due += (uint64_t)sm_opt.interval_ms;
      if (due <= sm_os_now_ms()) due = 0; /* fell behind: count from the next round */
    }
    if (snap) sm_snapshot_write(NULL, 0);
    if (r > 0 && (pfd[1].revents & POLLIN)) sm_control_serve_one();
    if (wake_pipe[0] < 0 && sm_control_fd() < 0 && !sm_opt.interval_ms) idle(); /* nothing left to wait for */
    if (__atomic_load_n(&exit_drain, __ATOMIC_ACQUIRE)) drain_and_idle();
  }
}

static void start_helper(void) {
  struct stat st;
  if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0 || fstat(wake_pipe[0], &st) != 0) {
    sm_warning("cannot create the snapshot trigger pipe; signal and interval snapshots and the control channel are off");
    sm_control_close();
    return;
  }
  pipe_ino = st.st_ino;
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
    sm_warning("cannot start the snapshot helper thread; signal and interval snapshots and the control channel are off");
    sm_control_close();
    return;
  }
  __atomic_store_n(&helper_running, true, __ATOMIC_RELEASE);
}

/* The snapshot signal's handler. At start (trace=1) it is installed as it
 * always was; when tracing starts later (control channel) only if the
 * program has not claimed the signal itself, since that would take it
 * from the program. SA_RESTART resumes read() and the like; sleep(),
 * poll() and other waits return early, as with any handled signal. */
static void install_signal(bool only_if_unclaimed) {
  if (!sm_opt.signal || signal_installed || wake_pipe[1] < 0) return;
  if (only_if_unclaimed) {
    struct sigaction cur;
    if (sigaction(sm_opt.signal, NULL, &cur) != 0) return;
    if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL) {
      sm_warning("signal %d already has a handler of the program's; snapshots on it are off", sm_opt.signal);
      return;
    }
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(sm_opt.signal, &sa, NULL) == 0) signal_installed = true;
}

void sm_triggers_init(void) {
  bool tracing = __atomic_load_n(&sm_trace_on, __ATOMIC_ACQUIRE);
  bool armed = sm_control_open() >= 0;
  if (armed || (tracing && (sm_opt.signal || sm_opt.interval_ms))) start_helper();
  if (tracing) install_signal(false);
}

void sm_triggers_tracing_on(void) { install_signal(true); }

void sm_triggers_maybe_restart(void) {
  if (SM_LIKELY(!__atomic_load_n(&sm_helper_restart, __ATOMIC_RELAXED))) return;
  /* Two threads of a fork child may get here at once: one starts the helper. */
  if (__atomic_exchange_n(&sm_helper_restart, false, __ATOMIC_ACQ_REL)) {
    sm_fast_path_close(SM_FAST_RESTART, false);
    start_helper();
  }
}

SM_RUNTIME void sm_triggers_postfork_child(void) {
  bool was_armed = sm_control_armed();
  sm_control_postfork_child(); /* the parent's socket and connection */
  if (!helper_running) return;
  close(wake_pipe[0]);
  close(wake_pipe[1]);
  wake_pipe[0] = wake_pipe[1] = -1;
  helper_running = false;
  helper_tid = 0;
  exit_drain = drained = false;
  if (was_armed && sm_control_open() >= 0) {
    sm_tracer_enter(); /* the new thread's TLS is the library's, not the program's */
    start_helper();
    sm_tracer_leave();
  } else {
    sm_helper_restart = true;
    sm_fast_path_close(SM_FAST_RESTART, true);
  }
}

/* Has the helper finish every request made before exit (see the top). Not
 * when this thread is inside the tracer (a signal handler that called
 * exit): the helper would wait for the locks it holds. */
static void drain_requests(void) {
  if (!__atomic_load_n(&helper_running, __ATOMIC_ACQUIRE) || sm_tracer_busy_here()) return;
  if (!pipe_ours(wake_pipe[1])) return; /* the program closed it: the helper cannot be woken */
  __atomic_store_n(&exit_drain, true, __ATOMIC_RELEASE);
  ssize_t w = write(wake_pipe[1], "x", 1);
  (void)w; /* a full pipe wakes the helper as well */
  uint64_t deadline = sm_os_now_ms() + EXIT_WAIT_MS;
  while (!__atomic_load_n(&drained, __ATOMIC_ACQUIRE)) {
    if (sm_os_now_ms() >= deadline) {
      sm_warning_always("exit: the requests pending at exit (snapshots, control channel) were not done within 10 s");
      return;
    }
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
}

SM_RUNTIME bool sm_triggers_exit_pending(void) {
  return __atomic_load_n(&helper_running, __ATOMIC_ACQUIRE) || sm_tracer_started();
}

/* Out of line: at_process_end runs in every process, and this only where
 * sm_triggers_exit_pending says so (SM_RUNTIME). */
SM_NOINLINE void sm_triggers_at_exit(uintptr_t stack_from) {
  drain_requests();
  if (!sm_tracer_started() || !sm_opt.at_exit) return;
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
