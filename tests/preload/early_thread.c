/* The first allocation of the program happens in brand-new threads: main
 * does nothing before pthread_create. Several threads start at once, so
 * their first mallocs race with each other (and with the allocator's
 * lazy initialisation, if the preload's constructor did not run it). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtest.h"

#define NT 6

static void *first(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  long bad = 0;
  unsigned char *v[300];
  size_t vn[300];
  for (int i = 0; i < 300; i++) {
    vn[i] = i % 100 == 99 ? (size_t)2 << 20 : i % 10 == 9 ? (size_t)150000 : (size_t)(i * 13 % 2000) + 1;
    v[i] = malloc(vn[i]);
    if (!v[i]) { bad++; continue; }
    sm_fill(v[i], vn[i], ((uint64_t)id << 32) | (uint64_t)i);
  }
  for (int i = 0; i < 300; i++) {
    if (!v[i]) continue;
    if (sm_check(v[i], vn[i], ((uint64_t)id << 32) | (uint64_t)i) != (size_t)-1) bad++;
    free(v[i]);
  }
  return (void *)(intptr_t)bad;
}

int main(void) {
  pthread_t th[NT];
  int created[NT];
  for (int i = 0; i < NT; i++)
    created[i] = pthread_create(&th[i], NULL, first, (void *)(uintptr_t)i) == 0;
  long bad = 0;
  for (int i = 0; i < NT; i++) {
    void *res = (void *)1;
    if (created[i]) pthread_join(th[i], &res);
    bad += (long)(intptr_t)res;
    CHECK(created[i]);
  }
  sm_check_preload();
  CHECK_MSG(bad == 0, "%ld bad blocks in the first threads", bad);
  return test_summary();
}
