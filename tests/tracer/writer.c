/* The snapshot writer only ever creates new regular files or replaces a
 * regular file of ours: never a FIFO, a directory, a symlink, a device or
 * someone else's file; a path too long is ENAMETOOLONG (not a truncated
 * name); temporary names cannot be planted in advance; a writer killed at
 * any moment leaves no temporary file; and write failures are still
 * reported after the 16 warnings of the general budget are spent.
 * Runs under the preload with trace=1 (tests/tracer/meson.build).
 * Usage: writer DIRECTORY   (a fresh subdirectory is made in it)
 *        writer warn DIR    (internal: the warning-budget child) */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "tests/testhelper.h"

static int (*snapshot)(const char *);

static int is_snapshot(const char *path) {
  char head[8] = {0};
  int fd = open(path, O_RDONLY | O_NONBLOCK);
  if (fd < 0) return 0;
  ssize_t n = read(fd, head, 8);
  close(fd);
  struct stat st;
  return n == 8 && memcmp(head, "SNAPMALC", 8) == 0 && lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
         (st.st_mode & 0777) == 0600;
}

static void refuses(const char *what, const char *path, mode_t type) {
  errno = 0;
  int rc = snapshot(path);
  CHECK_MSG(rc == -1 && errno == EEXIST, "%s: snapshot returned %d, errno %d (want -1, EEXIST)", what, rc, errno);
  struct stat st;
  CHECK_MSG(lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == type, "%s: %s was replaced", what, path);
}

/* Names in dir other than `keep`: leftovers. */
static int leftovers(const char *dir, const char *keep) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || (keep && !strcmp(e->d_name, keep))) continue;
    fprintf(stderr, "writer: leftover %s/%s\n", dir, e->d_name);
    n++;
  }
  if (d) closedir(d);
  return n;
}

static void kill_test(const char *top) {
  char dir[4096], target[4200];
  snprintf(dir, sizeof dir, "%s/killed", top);
  mkdir(dir, 0700);
  snprintf(target, sizeof target, "%s/k.snap", dir);
  static void *keep[20000];
  for (int i = 0; i < 20000; i++) keep[i] = malloc((size_t)(i % 700) + 1); /* a snapshot of some size */
  for (int round = 0; round < 30; round++) {
    pid_t pid = fork();
    if (pid == 0) {
      for (;;) snapshot(target);
    }
    struct timespec ts = {0, 1000000L + (long)(round * 977 % 20) * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  /* A writer killed between linking its temporary name and the rename
   * leaves that name; the next process's first snapshot there removes it
   * (planted here too, under the pid of a child that is gone). */
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, NULL, 0);
  struct stat ns;
  CHECK(stat("/proc/self/ns/pid", &ns) == 0);
  char planted[4300], other_ns[4300];
  snprintf(planted, sizeof planted, "%s/.snapmalloc-%llu-%d-0123456789abcdef.tmp", dir, (unsigned long long)ns.st_ino,
           (int)dead);
  int pfd = open(planted, O_WRONLY | O_CREAT | O_EXCL, 0600);
  CHECK(pfd >= 0);
  if (pfd >= 0) close(pfd);
  /* a writer in another pid namespace (a container sharing the directory):
   * its pid means nothing here, so its temporary is left alone */
  snprintf(other_ns, sizeof other_ns, "%s/.snapmalloc-%llu-%d-0123456789abcdef.tmp", dir,
           (unsigned long long)ns.st_ino + 1, (int)dead);
  pfd = open(other_ns, O_WRONLY | O_CREAT | O_EXCL, 0600);
  CHECK(pfd >= 0);
  if (pfd >= 0) close(pfd);
  pid_t pid = fork();
  if (pid == 0) _exit(snapshot(target) == 0 ? 0 : 1);
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a snapshot after the killed writers failed");
  CHECK_MSG(access(other_ns, F_OK) == 0, "the temporary of a writer in another pid namespace was removed");
  unlink(other_ns);
  CHECK_MSG(leftovers(dir, "k.snap") == 0, "killed writers left temporary files");
  for (int i = 0; i < 20000; i++) free(keep[i]);
}

static void long_paths(const char *top) {
  char path[8192];
  size_t len = (size_t)snprintf(path, sizeof path, "%s", top);
  for (int i = 0; i < 4; i++) { /* about 4 x 200 bytes of directories: well past the old 575 */
    path[len++] = '/';
    memset(path + len, 'a' + i, 200);
    len += 200;
    path[len] = '\0';
    CHECK(mkdir(path, 0700) == 0);
  }
  snprintf(path + len, sizeof path - len, "/long.snap");
  CHECK_MSG(snapshot(path) == 0, "a %zu-byte path: errno %d", strlen(path), errno);
  CHECK_MSG(is_snapshot(path), "no snapshot at the %zu-byte path", strlen(path));
  char huge[6000];
  memset(huge, 'x', sizeof huge - 1);
  huge[0] = '/';
  huge[sizeof huge - 1] = '\0';
  errno = 0;
  CHECK_MSG(snapshot(huge) == -1 && errno == ENAMETOOLONG, "a 6000-byte path: errno %d", errno);
}

static int warn_child(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/no/such/dir/x.snap", dir);
  for (int i = 0; i < 3; i++) snapshot(path);
  return 0;
}

int main(int argc, char **argv) {
  snapshot = (int (*)(const char *))dlsym(RTLD_DEFAULT, "snapmalloc_snapshot");
  if (!snapshot) TEST_SKIP("snapmalloc is not preloaded");
  if (argc == 3 && !strcmp(argv[1], "warn")) return warn_child(argv[2]);
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
    return 2;
  }
  char top[4096], p[4300], q[4300];
  snprintf(top, sizeof top, "%s/writer.XXXXXX", argv[1]);
  if (!mkdtemp(top)) {
    perror("mkdtemp");
    return 1;
  }
  /* A new file, then our own regular file replaced. */
  snprintf(p, sizeof p, "%s/new.snap", top);
  CHECK(snapshot(p) == 0 && is_snapshot(p));
  snprintf(p, sizeof p, "%s/mine.snap", top);
  int fd = open(p, O_WRONLY | O_CREAT, 0644);
  CHECK(fd >= 0 && write(fd, "old", 3) == 3);
  close(fd);
  CHECK_MSG(snapshot(p) == 0 && is_snapshot(p), "our own regular file was not replaced");

  /* Never a FIFO, a directory, a symlink, a device, someone else's file. */
  snprintf(p, sizeof p, "%s/fifo", top);
  CHECK(mkfifo(p, 0600) == 0);
  refuses("FIFO", p, S_IFIFO);
  snprintf(p, sizeof p, "%s/dir", top);
  CHECK(mkdir(p, 0700) == 0);
  refuses("directory", p, S_IFDIR);
  snprintf(q, sizeof q, "%s/victim", top);
  fd = open(q, O_WRONLY | O_CREAT, 0600);
  close(fd);
  snprintf(p, sizeof p, "%s/link", top);
  CHECK(symlink(q, p) == 0);
  refuses("symlink", p, S_IFLNK);
  struct stat st;
  CHECK(stat(q, &st) == 0 && st.st_size == 0);
  snprintf(p, sizeof p, "%s/null", top);
  if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0) refuses("character device", p, S_IFCHR);
  else fprintf(stderr, "writer: cannot mknod (not root): device case not run\n");
  snprintf(p, sizeof p, "%s/theirs", top);
  fd = open(p, O_WRONLY | O_CREAT, 0644);
  close(fd);
  if (chown(p, 65534, 65534) == 0) {
    refuses("someone else's file", p, S_IFREG);
    CHECK(stat(p, &st) == 0 && st.st_size == 0);
  } else {
    fprintf(stderr, "writer: cannot chown (not root): someone else's file not run\n");
  }

  /* The old temporary names (name.tmp.PID.SEQ) planted in advance change nothing. */
  snprintf(p, sizeof p, "%s/planted.snap", top);
  for (int seq = 0; seq < 64; seq++) {
    snprintf(q, sizeof q, "%s.tmp.%d.%d", p, (int)getpid(), seq);
    CHECK(mkfifo(q, 0600) == 0);
  }
  CHECK_MSG(snapshot(p) == 0 && is_snapshot(p), "planted temporary names blocked the write (errno %d)", errno);

  long_paths(top);
  kill_test(top);

  /* Write failures are reported even after 16 other warnings. */
  int pipefd[2];
  CHECK(pipe(pipefd) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    setenv("SNAPMALLOC_OPTIONS",
           "trace=1,at_exit=0,w1=1,w2=1,w3=1,w4=1,w5=1,w6=1,w7=1,w8=1,w9=1,w10=1,w11=1,w12=1,w13=1,w14=1,w15=1,w16=1",
           1);
    execl(argv[0], argv[0], "warn", top, (char *)NULL);
    _exit(127);
  }
  close(pipefd[1]);
  static char out[1 << 16];
  size_t len = 0;
  ssize_t k;
  while ((k = read(pipefd[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)k;
  out[len] = '\0';
  waitpid(pid, NULL, 0);
  CHECK_MSG(strstr(out, "unknown option \"w16\"") != NULL, "the child did not spend its warnings:\n%s", out);
  CHECK_MSG(strstr(out, "cannot write snapshot") != NULL, "a write failure after 16 warnings was silent:\n%s", out);

  /* Nothing left behind anywhere but what was written on purpose. */
  DIR *d = opendir(top);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) CHECK_MSG(!strstr(e->d_name, ".snapmalloc-"), "leftover %s", e->d_name);
  if (d) closedir(d);
  return test_summary();
}
