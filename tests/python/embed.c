/* A program that embeds CPython (libpython3.11.so): the interpreter is a
 * shared library here, and it is started and finalized twice. While it
 * runs, its frames are in the traces; after Py_FinalizeEx, the program's
 * own allocations have native frames only (nothing of the finished
 * interpreter is read); the second interpreter's frames are its own.
 * (3.11 keeps the main thread's state inside _PyRuntime: both interpreters
 * have the same one.)
 *   embed PREFIX: writes PREFIX.<round>.alive.snap and PREFIX.<round>.after.snap */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void *volatile held; /* (so that the compiler keeps the allocation) */

static const char *const code =
    "def make(n):\n"
    "    return [str(i) * 3 for i in range(n)]\n"
    "keep = make(10000)\n";

static void snapshot(int (*snap)(const char *), const char *prefix, int round, const char *what) {
  char path[4096];
  snprintf(path, sizeof path, "%s.%d.%s.snap", prefix, round, what);
  if (snap(path) != 0) {
    perror(path);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  int (*snap)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "snapmalloc_snapshot");
  if (!snap) {
    fprintf(stderr, "not under the preload\n");
    return 1;
  }
  for (int round = 0; round < 2; round++) {
    Py_Initialize();
    if (PyRun_SimpleString(code) != 0) return 1;
    snapshot(snap, argv[1], round, "alive");
    if (Py_FinalizeEx() != 0) return 1;
    held = malloc(12345); /* charged to this line, with no Python frame */
    snapshot(snap, argv[1], round, "after");
    free(held);
  }
  return 0;
}
