/* Runs code in a child process with its stderr captured, for tests that
 * expect a run to abort with a given message (the allocator's misuse
 * reports, the checked build's assertions). The child dumps no core and is
 * killed by SIGALRM after `seconds`, so a hang fails instead of blocking. */
#ifndef SM_TESTS_CHILDRUN_H
#define SM_TESTS_CHILDRUN_H

#include <errno.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Calls child(arg) in a child process (which then exits 0); fills out
 * (NUL-terminated, at most cap - 1 bytes) with what it wrote to stderr;
 * returns its wait status, or -1 if it could not start. */
static inline int th_run_captured(void (*child)(void *), void *arg, unsigned seconds, char *out, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    alarm(seconds);
    child(arg);
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  for (;;) {
    ssize_t k = read(fds[0], out + len, cap - 1 - len);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    len += (size_t)k;
    if (len == cap - 1) break;
  }
  out[len] = 0;
  close(fds[0]);
  int st = -1;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

#endif
