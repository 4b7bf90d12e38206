/* A program linked with -lsnapmalloc, for secure.sh: run setuid (or with a
 * file capability) it must serve allocations and take nothing from
 * SNAPMALLOC_OPTIONS. It allocates, frees, asks for a snapshot through the
 * API and reports what it saw on stdout:
 *   secure=<AT_SECURE> api=<return of snapmalloc_snapshot> errno=<errno> threads=<N>
 * (N: its threads; the library's helper thread runs only when options
 * asked for it, here control=1 with signal=0). 
 * Usage: secure SNAPSHOT-PATH */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "snapmalloc.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SNAPSHOT-PATH\n", argv[0]);
    return 2;
  }
  void *v[1000];
  for (int i = 0; i < 1000; i++) {
    v[i] = malloc((size_t)i * 37 + 1);
    if (!v[i]) return 3;
    memset(v[i], i & 0xff, (size_t)i * 37 + 1);
  }
  for (int i = 0; i < 1000; i++) free(v[i]);
  errno = 0;
  int rc = snapmalloc_snapshot(argv[1]);
  int err = rc ? errno : 0, threads = 0;
  DIR *d = opendir("/proc/self/task");
  for (struct dirent *e; d && (e = readdir(d));) threads += e->d_name[0] != '.';
  if (d) closedir(d);
  printf("secure=%lu api=%d errno=%d threads=%d\n", getauxval(AT_SECURE), rc, err, threads);
  return 0;
}
