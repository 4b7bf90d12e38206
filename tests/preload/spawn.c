/* Starting programs from a process that runs under the preload:
 * posix_spawn and fork+execve of this program (in "child" mode), of
 * /bin/true, popen and system; the preload (LD_PRELOAD) must carry over and
 * the children must run and exit normally. Then, when run as root, a child
 * drops to nobody (setgroups/setgid/setuid 65534), allocates and frees, and
 * execs this program again (skipped, not failed, when not root).
 * Usage: spawn            (the test)
 *        spawn child N    (the child: allocates, checks, exits with N) */
#include <errno.h>
#include <grp.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smtest.h"

extern char **environ;

/* True when /proc/self/maps shows libsnapmalloc mapped in this process. */
static int snapmalloc_mapped(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int found = 0;
  if (!f) return 0;
  while (fgets(line, sizeof line, f))
    if (strstr(line, "snapmalloc")) found = 1;
  fclose(f);
  return found;
}

static int child_main(int code) {
  /* Same preload state as the parent claimed: if LD_PRELOAD names
   * snapmalloc, it must be loaded here too. */
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "snapmalloc") && !snapmalloc_mapped()) {
    fprintf(stderr, "child: LD_PRELOAD=%s but the library is not mapped\n", pre);
    return 90;
  }
  long bad = 0;
  for (int i = 0; i < 3000; i++) {
    size_t n = i % 300 == 7 ? (size_t)3 << 20 : i % 30 == 5 ? (size_t)100000 : (size_t)(i % 700) + 1;
    unsigned char *p = malloc(n);
    if (!p) { bad++; continue; }
    sm_fill(p, n, (uint64_t)i);
    if (sm_check(p, n, (uint64_t)i) != (size_t)-1) bad++;
    free(p);
  }
  return bad ? 91 : code;
}

static int wait_status(pid_t pid) {
  int st = -1;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

static void expect_exit(int st, int code, const char *what) {
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == code, "%s: status %#x (exit %d%s), want exit %d",
            what, st, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
            WIFSIGNALED(st) ? ", killed by a signal" : "", code);
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "child") == 0) return child_main(atoi(argv[2]));
  sm_check_preload();
  const char *self = "/proc/self/exe";
  char selfpath[4096];
  ssize_t len = readlink(self, selfpath, sizeof selfpath - 1);
  CHECK(len > 0);
  if (len <= 0) return test_summary();
  selfpath[len] = 0;

  /* Some heap state the children inherit (posix_spawn may use vfork). */
  void *held[100];
  for (int i = 0; i < 100; i++) held[i] = malloc((size_t)i * 1000 + 1);

  for (int round = 0; round < 5; round++) {
    pid_t pid;
    char code[16];
    snprintf(code, sizeof code, "%d", 40 + round);
    char *args[] = {selfpath, "child", code, NULL};
    int rc = posix_spawn(&pid, selfpath, NULL, NULL, args, environ);
    CHECK_MSG(rc == 0, "posix_spawn: %s", strerror(rc));
    if (rc == 0) expect_exit(wait_status(pid), 40 + round, "posix_spawn(self)");

    char *targs[] = {"true", NULL};
    rc = posix_spawnp(&pid, "true", NULL, NULL, targs, environ);
    CHECK_MSG(rc == 0, "posix_spawnp(true): %s", strerror(rc));
    if (rc == 0) expect_exit(wait_status(pid), 0, "posix_spawnp(true)");

    pid = fork();
    if (pid == 0) {
      /* Allocate in the forked child before exec. */
      void *p = malloc(5000);
      memset(p, 1, 5000);
      free(p);
      execve(selfpath, args, environ);
      _exit(127);
    }
    CHECK(pid > 0);
    if (pid > 0) expect_exit(wait_status(pid), 40 + round, "fork+execve(self)");
  }

  FILE *f = popen("echo hello from popen", "r");
  CHECK(f != NULL);
  if (f) {
    char buf[100] = "";
    CHECK(fgets(buf, sizeof buf, f) != NULL);
    CHECK(strcmp(buf, "hello from popen\n") == 0);
    CHECK(pclose(f) == 0);
  }
  {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' child 7", selfpath);
    int st = system(cmd);
    expect_exit(st, 7, "system(self child 7)");
  }

  for (int i = 0; i < 100; i++) free(held[i]);

  /* Dropping privileges, then exec. */
  if (geteuid() != 0) {
    fprintf(stderr, "not root: setuid part skipped\n");
    return test_summary();
  }
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(80);
    if (getuid() != 65534 || geteuid() != 65534) _exit(81);
    int c = child_main(0);
    if (c != 0) _exit(c);
    /* nobody may not be allowed to run the test binary or read the library
     * (a private build directory): report that separately. */
    if (access(selfpath, X_OK) != 0) _exit(77);
    const char *pre = getenv("LD_PRELOAD");
    if (pre && access(pre, R_OK) != 0) _exit(77);
    char *args[] = {selfpath, "child", "44", NULL};
    execve(selfpath, args, environ);
    _exit(127);
  }
  int st = wait_status(pid);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
    fprintf(stderr, "user nobody cannot run %s or read the preload: exec part skipped\n", selfpath);
  else
    expect_exit(st, 44, "setuid(nobody) + execve(self)");
  return test_summary();
}
