/* Minimal test helper shared by the unit and preload tests.
 * CHECK records a failure with file:line and keeps going; test_summary()
 * prints "N checks, N failed" and returns the process exit status.
 * Exit status 77 means "skipped" to meson. */
#ifndef SM_TESTS_TESTHELPER_H
#define SM_TESTS_TESTHELPER_H

#include <stdio.h>
#include <stdlib.h>

static int th_checks, th_failed;

#define CHECK(expr)                                                          \
  do {                                                                       \
    th_checks++;                                                             \
    if (!(expr)) {                                                           \
      th_failed++;                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
    }                                                                        \
  } while (0)

#define CHECK_MSG(expr, ...)                                                 \
  do {                                                                       \
    th_checks++;                                                             \
    if (!(expr)) {                                                           \
      th_failed++;                                                           \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #expr); \
      fprintf(stderr, __VA_ARGS__);                                          \
      fputc('\n', stderr);                                                   \
    }                                                                        \
  } while (0)

#define TEST_SKIP(...)                                                       \
  do {                                                                       \
    fprintf(stderr, "skipped: " __VA_ARGS__);                                \
    fputc('\n', stderr);                                                     \
    exit(77);                                                                \
  } while (0)

static inline int test_summary(void) {
  fprintf(stderr, "%d checks, %d failed\n", th_checks, th_failed);
  return th_failed ? 1 : 0;
}

#endif
