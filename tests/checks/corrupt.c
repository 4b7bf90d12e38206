/* The checked build catches corruption (docs/checks.md). Each mode damages
 * one allocator structure from outside, the way a buggy program would
 * (writes after free, a stray store into a block header), in a child
 * process, then drives the allocator to the point where the checked build
 * looks; the parent expects SIGABRT and exactly one
 * "snapmalloc: assertion failed: ..." line naming that check. Mode "ok"
 * does the same operations without the damage and must exit 0 silently.
 * Built only with -Dchecks=true: in a normal build every damaging mode goes
 * unnoticed (or crashes later, elsewhere), so each fails if its check is not
 * wired in. White-box: it knows the large block header (allocator/types.h).
 * Usage: checks-corrupt MODE, MODE one of ok pool splay arena fork. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "allocator/check.h"
#include "allocator/types.h"
#include "tests/childrun.h"
#include "tests/testhelper.h"

#define LARGE 100000 /* above the pool limit, far below the huge threshold */

static sm_lblock_t *header(void *p) { return (sm_lblock_t *)((char *)p - SM_LB_HDR); }

/* A freed small block's first word links the page's local free list: point
 * it inside a block. The next collect of the page (when its free list runs
 * out) moves that list into use; the checker must refuse it first. Without
 * the check malloc hands out an address 8 bytes into a block. */
static void pool(int damage) {
  char *a = malloc(48);
  char *keep = malloc(48); /* the page does not empty when a is freed */
  free(a);
  if (damage) *(char **)a = a + 8;
  for (int i = 0; i < 100000; i++)
    if (!malloc(48)) abort();
  free(keep);
}

/* Five adjacent large blocks; y and w freed (kept apart by z and v), so the
 * tree holds y, w and the rest of the chunk, w at the root. A stray store
 * quadruples y's size: its key now lies among the big blocks, away from
 * where y sits. Freeing x merges x with y, and removing y from the tree
 * finds another node; unchecked, that node is unlinked in y's place. */
static void splay(int damage) {
  char *x = malloc(LARGE), *y = malloc(LARGE), *z = malloc(LARGE), *w = malloc(LARGE), *v = malloc(LARGE);
  free(y);
  free(w);
  if (damage) {
    sm_lblock_t *h = header(y);
    h->head = ((h->head & ~SM_LB_FLAGS) * 4) | (h->head & SM_LB_FLAGS);
  }
  free(x);
  free(z);
  free(v);
}

/* A free block's size is repeated in the next block's prev_size; break
 * that copy. Nothing on the way reads it, so only the whole-arena check
 * sees it: at the next fork, or within SM_CHECK_ARENA_EVERY unlocks. */
static char *damaged_arena(int damage, char **x, char **y) {
  *x = malloc(LARGE);
  *y = malloc(LARGE);
  char *z = malloc(LARGE);
  free(*y);
  if (damage) header(z)->prev_size += 16;
  return z;
}

static void arena(int damage) {
  char *x, *y;
  char *z = damaged_arena(damage, &x, &y);
  /* Larger than y: served from the rest of the chunk, y and z untouched. */
  for (int i = 0; i < 4 * SM_CHECK_ARENA_EVERY; i++) free(malloc(2 * LARGE));
  if (damage) header(z)->prev_size -= 16;
  free(x);
  free(z);
}

static void forks(int damage) {
  char *x, *y;
  char *z = damaged_arena(damage, &x, &y);
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid(pid, NULL, 0);
  if (damage) header(z)->prev_size -= 16;
  free(x);
  free(z);
}

static const struct {
  const char *mode;
  void (*run)(int damage);
  const char *want[2]; /* in the assertion line */
} modes[] = {
    {"pool", pool, {"assertion failed: sm_pool_check(", " at pool.c:"}},
    {"splay", splay, {"assertion failed: t == n at splay.c:", NULL}},
    {"arena", arena, {"assertion failed: sm_large_check(", " at large.c:"}},
    {"fork", forks, {"assertion failed: sm_large_check(", " at init.c:"}}, /* the prefork handler */
};

/* th_run_captured's child: one mode, damaging or not. */
typedef struct mode_call {
  void (*fn)(int);
  int damage;
} mode_call_t;

static void call_mode(void *arg) {
  const mode_call_t *c = arg;
  c->fn(c->damage);
}

static int in_child(void (*fn)(int), int damage, char *out, size_t cap) {
  mode_call_t c = {fn, damage};
  return th_run_captured(call_mode, &c, 60, out, cap);
}

static int count(const char *text, const char *needle) {
  int n = 0;
  for (const char *s = text; (s = strstr(s, needle)) != NULL; s++) n++;
  return n;
}

int main(int argc, char **argv) {
  static char out[1 << 16];
  const char *mode = argc > 1 ? argv[1] : "";
  int control = strcmp(mode, "ok") == 0;
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    if (!control && strcmp(mode, modes[i].mode) != 0) continue;
    int st = in_child(modes[i].run, !control, out, sizeof out);
    fprintf(stderr, "== %s%s: %s %d; stderr:\n%s", modes[i].mode, control ? " (undamaged)" : "",
            WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out);
    if (control) {
      CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s undamaged: did not exit 0", modes[i].mode);
      CHECK_MSG(count(out, "snapmalloc:") == 0, "%s undamaged: printed a message", modes[i].mode);
      continue;
    }
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "%s: not killed by SIGABRT", mode);
    CHECK_MSG(count(out, "snapmalloc: assertion failed: ") == 1 && count(out, "\n") == 1,
              "%s: want exactly one line, an assertion", mode);
    for (int w = 0; w < 2; w++)
      if (modes[i].want[w]) CHECK_MSG(strstr(out, modes[i].want[w]) != NULL, "%s: no '%s'", mode, modes[i].want[w]);
    return test_summary();
  }
  if (!control) {
    fprintf(stderr, "usage: %s ok|pool|splay|arena|fork\n", argv[0]);
    return 2;
  }
  return test_summary();
}
