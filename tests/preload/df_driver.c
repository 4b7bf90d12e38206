/* Runs the doublefree program once per misuse kind and checks that each run
 * was killed by SIGABRT and printed exactly one line containing
 * "snapmalloc: error:" (plus "double free" for the double frees), and that
 * this line names the pointer the program said it would misuse; and that
 * the control run ("ok") exits 0 with no such line. A plain should_fail
 * test would also pass on a segfault, a hang or a wrong exit code: a run
 * still going after 10 s is killed (SIGALRM) and fails.
 * Skips (77) when snapmalloc is not preloaded: the messages are ours.
 * Usage: df_driver PATH-TO-doublefree */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smtest.h"
#include "childrun.h"

typedef struct prog_mode {
  const char *prog, *mode;
} prog_mode_t;

static void exec_mode(void *arg) {
  const prog_mode_t *pm = arg;
  execl(pm->prog, pm->prog, pm->mode, (char *)NULL);
  _exit(127);
}

/* Runs prog mode; fills out[] with its stderr; returns the wait status. */
static int run(const char *prog, const char *mode, char *out, size_t cap) {
  prog_mode_t pm = {prog, mode};
  return th_run_captured(exec_mode, &pm, 10, out, cap);
}

static int count_lines_with(const char *text, const char *needle) {
  int n = 0;
  const char *line = text;
  while (*line) {
    const char *end = strchr(line, '\n');
    size_t l = end ? (size_t)(end - line) : strlen(line);
    const char *hit = strstr(line, needle);
    if (hit && hit < line + l) n++;
    line += l + (end ? 1 : 0);
  }
  return n;
}

int main(int argc, char **argv) {
  static char out[1 << 16];
  static const struct {
    const char *mode;
    const char *words;
  } cases[] = {
      {"small", "double free"},          {"small-between", "double free"},
      {"small-aba", "double free"},      {"small-fresh", "double free"},
      {"small-reused", "double free"},   {"interior", "not the start of a block"},
      {"misaligned", "misaligned"},      {"remote", "double free"},
      {"remote-race", "double free"},    {"owner-remote", "double free"},
      {"remote-owner", "double free"},   {"large", "double free"},
      {"huge", "double free"},           {"interior-large", NULL},
      {"interior-huge", NULL},           {"stack", "stack"},
      {"unmapped", "not mapped"},        {"realloc-freed", "realloc(): invalid pointer"},
      {"realloc-remote-freed", "freed already"}, {"realloc-interior", "not the start of a block"},
  };
  if (argc < 2) {
    fprintf(stderr, "usage: %s PATH-TO-doublefree\n", argv[0]);
    return 2;
  }
  if (!sm_preloaded()) TEST_SKIP("snapmalloc is not preloaded (the messages checked are its own)");
  sm_check_preload();

  int st = run(argv[1], "ok", out, sizeof out);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "control run: status %#x, stderr:\n%s", st, out);
  CHECK_MSG(count_lines_with(out, "snapmalloc: error:") == 0, "control run printed an error:\n%s", out);

  st = run(argv[1], "old-marks", out, sizeof out);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(out, "snapmalloc: error:"),
            "old-marks: live data equal to the old fixed marks was taken for a free mark (status %#x):\n%s", st, out);

  /* The marks are drawn at start: two runs differ, and each is a
   * kernel-half address (never a pointer the leak scan would follow). */
  unsigned long long mark[2] = {0, 0};
  for (int r = 0; r < 2; r++) {
    st = run(argv[1], "mark", out, sizeof out);
    const char *m = strstr(out, "mark 0x");
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && m && sscanf(m, "mark %llx", &mark[r]) == 1,
              "mark run %d: status %#x, output:\n%s", r, st, out);
    CHECK_MSG(mark[r] >> 47 == 0x1ffff, "mark run %d: %#llx is not a kernel-half address", r, mark[r]);
  }
  CHECK_MSG(mark[0] != mark[1], "two runs drew the same free mark %#llx", mark[0]);

  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *mode = cases[i].mode;
    st = run(argv[1], mode, out, sizeof out);
    fprintf(stderr, "== %s: %s %d; stderr:\n%s", mode,
            WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
            out);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "%s: not killed by SIGABRT", mode);
    int lines = count_lines_with(out, "snapmalloc: error:");
    CHECK_MSG(lines == 1, "%s: %d lines with 'snapmalloc: error:', want 1", mode, lines);
    if (cases[i].words)
      CHECK_MSG(strstr(out, cases[i].words) != NULL, "%s: stderr lacks '%s'", mode, cases[i].words);
    CHECK_MSG(strstr(out, "survived") == NULL, "%s: the program went on after the misuse", mode);
    /* The error line names the pointer announced by "doublefree: pointer P". */
    const char *ann = strstr(out, "doublefree: pointer ");
    const char *err = strstr(out, "snapmalloc: error:");
    CHECK_MSG(ann != NULL, "%s: the program did not name its pointer", mode);
    if (ann && err) {
      char ptr[40];
      if (sscanf(ann, "doublefree: pointer %39s", ptr) == 1) {
        const char *eol = strchr(err, '\n');
        const char *hit = strstr(err, ptr);
        CHECK_MSG(hit && (!eol || hit < eol), "%s: the error line does not name %s", mode, ptr);
      }
    }
  }
  return test_summary();
}
