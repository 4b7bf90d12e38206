/* Symbolizer benchmark (built, not a test): looks up DISTINCT addresses spread
 * over the C library's code, then TOTAL lookups drawn from them at random
 * (as the CLI does with many traces sharing frames), and prints the rates.
 *   symbench [DISTINCT [TOTAL]]      defaults: 20000 1600000
 */
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/symbolize.h"

struct libc_info {
  char path[4096];
  uint64_t lo, hi;  /* executable segment, file vaddrs */
  uint8_t id[64];
  size_t idlen;
  int found;
};

static int find_libc(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct libc_info *li = data;
  if (!info->dlpi_name || !strstr(info->dlpi_name, "/libc.so")) return 0;
  snprintf(li->path, sizeof(li->path), "%s", info->dlpi_name);
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
      li->lo = ph->p_vaddr;
      li->hi = ph->p_vaddr + ph->p_memsz;
    }
    if (ph->p_type == PT_NOTE) {
      const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
      const unsigned char *end = p + ph->p_memsz;
      while (p + sizeof(ElfW(Nhdr)) <= end) {
        const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
        const unsigned char *desc = p + sizeof(*nh) + ((nh->n_namesz + 3) & ~3u);
        if (nh->n_type == NT_GNU_BUILD_ID && nh->n_descsz <= sizeof(li->id)) {
          memcpy(li->id, desc, nh->n_descsz);
          li->idlen = nh->n_descsz;
        }
        p = desc + ((nh->n_descsz + 3) & ~3u);
      }
    }
  }
  li->found = 1;
  return 1;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

int main(int argc, char **argv) {
  long distinct = argc > 1 ? atol(argv[1]) : 20000;
  long total = argc > 2 ? atol(argv[2]) : 1600000;
  if (distinct <= 0 || total <= 0) return 2;
  struct libc_info li;
  memset(&li, 0, sizeof(li));
  dl_iterate_phdr(find_libc, &li);
  if (!li.found || li.hi <= li.lo) {
    fprintf(stderr, "libc not found\n");
    return 1;
  }
  uint64_t *addrs = malloc((size_t)distinct * sizeof(uint64_t));
  if (!addrs) return 1;
  for (long i = 0; i < distinct; i++) addrs[i] = li.lo + next_rand() % (li.hi - li.lo);

  double t0 = now();
  sm_symbolizer_t *s = sm_sym_new();
  int h = sm_sym_add_module(s, li.path, li.id, li.idlen);
  if (sm_sym_status(s, h) != SM_SYM_OK) {
    fprintf(stderr, "%s: status %d\n", li.path, (int)sm_sym_status(s, h));
    return 1;
  }
  sm_sym_frame_t fr[32];
  long named = 0, lined = 0, frames = 0;
  double t1 = now();
  for (long i = 0; i < distinct; i++) {
    int n = sm_sym_lookup(s, h, addrs[i], true, fr, 32);
    frames += n;
    if (n > 0 && fr[n - 1].function) named++;
    if (n > 0 && fr[0].line > 0) lined++;
  }
  double t2 = now();
  long sink = 0;
  for (long i = 0; i < total; i++) {
    int n = sm_sym_lookup(s, h, addrs[next_rand() % (uint64_t)distinct], true, fr, 32);
    sink += n;
  }
  double t3 = now();
  sm_sym_free(s);
  double t4 = now();

  printf("module        %s\n", li.path);
  printf("open          %.3f s\n", t1 - t0);
  printf("cold          %ld distinct addresses in %.3f s (%.0f/s), %ld named, %ld with a line, "
         "%.2f frames each\n",
         distinct, t2 - t1, (double)distinct / (t2 - t1), named, lined,
         (double)frames / (double)distinct);
  printf("warm          %ld lookups in %.3f s (%.1f M/s) [%ld]\n", total, t3 - t2,
         (double)total / (t3 - t2) / 1e6, sink);
  printf("cold+warm     %.3f s, free %.3f s\n", t3 - t0, t4 - t3);
  free(addrs);
  return 0;
}
