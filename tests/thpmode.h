/* The kernel's transparent huge page mode, for tests whose figures depend
 * on it: true when /sys/kernel/mm/transparent_hugepage/enabled selects
 * `mode` ("always", "madvise" or "never"); false when it does not or cannot
 * be read. */
#ifndef SM_TESTS_THPMODE_H
#define SM_TESTS_THPMODE_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static inline bool sm_test_thp_mode(const char *mode) {
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  char line[128] = "", want[32];
  if (f) {
    if (!fgets(line, sizeof line, f)) line[0] = '\0';
    fclose(f);
  }
  snprintf(want, sizeof want, "[%s]", mode);
  return strstr(line, want) != NULL;
}

#endif
