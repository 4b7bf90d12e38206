/* A program for the live view's tests (tests/live/).
 *
 *   grow STOPFILE MAXSECONDS   three sites that sort differently: BIG holds
 *                              the most bytes (one 4 MiB block), MANY the
 *                              most blocks (1000 of 64 B), GROW grows by
 *                              16 KiB every 100 ms (up to 3.2 MiB in 20 s,
 *                              never past BIG's 4 MiB before MAXSECONDS=24)
 *                              until STOPFILE exists or MAXSECONDS pass.
 *   phases                     deterministic figures: phase 1 (100 x 1000 B
 *                              at P1, 10 x 3000 B at P2), 2 s, phase 2
 *                              (50 x 2000 B at P3, half of P1's freed), 2 s,
 *                              exit. P3's blocks are lost at exit, the
 *                              others reachable.
 * It writes nothing: the view has the terminal to itself. The tests find
 * the sites' lines by the SITE_ markers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Global, so that the blocks stay reachable; P3's pointers are kept
 * disguised, so that its blocks are lost (check --live finds them). */
void *volatile live_keep[8192]; /* volatile: stores that nothing reads stay */
volatile uintptr_t live_hidden[50];
static int nkeep;
#define keep live_keep

static void nap(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

__attribute__((noinline)) static void *big(void) { return malloc(4u << 20); /* SITE_BIG */ }
__attribute__((noinline)) static void *many(void) { return malloc(64); /* SITE_MANY */ }
__attribute__((noinline)) static void *grow(void) { return malloc(16384); /* SITE_GROW */ }
__attribute__((noinline)) static void *p1(void) { return malloc(1000); /* SITE_P1 */ }
__attribute__((noinline)) static void *p2(void) { return malloc(3000); /* SITE_P2 */ }
__attribute__((noinline)) static void *p3(void) { return malloc(2000); /* SITE_P3 */ }

static int phases(void) {
  void *a[100];
  for (int i = 0; i < 100; i++) a[i] = p1();
  for (int i = 0; i < 10; i++) keep[nkeep++] = p2();
  nap(2000);
  for (int i = 0; i < 50; i++) live_hidden[i] = (uintptr_t)p3() ^ 0x5a5a5a5a5a5a5a5aull;
  for (int i = 0; i < 50; i++) free(a[i]);
  for (int i = 50; i < 100; i++) keep[nkeep++] = a[i];
  nap(2000);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "phases")) return phases();
  if (argc != 3) return 2;
  const char *stop = argv[1];
  long max_ms = atol(argv[2]) * 1000;
  keep[nkeep++] = big();
  for (int i = 0; i < 1000; i++) keep[nkeep++] = many();
  for (long t = 0; t < max_ms && access(stop, F_OK) != 0 && nkeep < 8192; t += 100) {
    keep[nkeep++] = grow();
    nap(100);
  }
  return 0;
}
