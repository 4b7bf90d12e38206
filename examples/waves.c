/* A program whose memory changes shape over a few seconds, for `snapmalloc
 * timeline` and the two-snapshot `snapmalloc flame`:
 *
 *   - a cache that grows at a steady pace for the whole run,
 *   - a pool of frame buffers that fills up during the first 40% of the
 *     run, then drains steadily to a few buffers,
 *   - a table of sessions that churns (one replaced per tick) at a constant
 *     size.
 *
 *   waves [SECONDS [PEAK_SNAPSHOT]]
 *
 * The run takes SECONDS (default 3, at least 0.5) in ticks of 50 ms. With
 * PEAK_SNAPSHOT, it writes a snapshot to that path when the pool is full,
 * through the public API if the library is loaded (looked up with dlsym, so
 * the program also runs without it). Every size depends only on the tick,
 * not on the clock, so two runs hold the same memory at the same tick. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 50
#define POOL_MAX 48
#define POOL_LOW 4
#define BUFFER_BYTES (64 * 1024)
#define SESSIONS 64

typedef struct session {
  int id;
  char *user;
  char scratch[2000];
} session_t;

static char *pool[POOL_MAX];
static int pool_used;
static char *cache;
static size_t cache_len;
static session_t *sessions[SESSIONS];

static char *new_buffer(int tick) {
  char *b = malloc(BUFFER_BYTES); /* a frame buffer */
  memset(b, tick & 0xff, BUFFER_BYTES);
  return b;
}

static void pool_fill(int tick) { pool[pool_used++] = new_buffer(tick); }

static void pool_drain(void) { free(pool[--pool_used]); }

/* How many buffers the pool holds at a tick: a straight rise to POOL_MAX
 * at 40% of the run, then a straight fall to POOL_LOW at its end. */
static int pool_target(int tick, int ticks) {
  int rise = ticks * 2 / 5;
  if (tick < rise) return POOL_MAX * (tick + 1) / rise;
  return POOL_MAX - (POOL_MAX - POOL_LOW) * (tick - rise + 1) / (ticks - rise);
}

static void cache_append(int tick) {
  size_t add = 12 * 1024;
  cache = realloc(cache, cache_len + add); /* the cache grows every tick */
  memset(cache + cache_len, tick & 0xff, add);
  cache_len += add;
}

static session_t *session_new(int id) {
  session_t *s = calloc(1, sizeof *s); /* one session */
  char user[32];
  snprintf(user, sizeof user, "user-%06d", id);
  s->id = id;
  s->user = strdup(user); /* its user name */
  return s;
}

static void session_churn(int tick) {
  int slot = tick % SESSIONS;
  if (sessions[slot]) {
    free(sessions[slot]->user);
    free(sessions[slot]);
  }
  sessions[slot] = session_new(tick);
}

static void run_tick(int tick, int ticks) {
  int target = pool_target(tick, ticks);
  while (pool_used < target) pool_fill(tick);
  while (pool_used > target) pool_drain();
  cache_append(tick);
  session_churn(tick);
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3;
  const char *peak = argc > 2 ? argv[2] : NULL;
  int (*snapshot)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "snapmalloc_snapshot");
  int ticks = (int)(seconds * 1000 / TICK_MS);
  if (ticks < 10) ticks = 10;
  for (int i = 0; i < SESSIONS; i++) sessions[i] = session_new(-1 - i);
  struct timespec pause = {0, TICK_MS * 1000000L};
  for (int tick = 0; tick < ticks; tick++) {
    run_tick(tick, ticks);
    if (peak && snapshot && tick == ticks * 2 / 5 - 1 && snapshot(peak) != 0) perror("snapmalloc_snapshot");
    nanosleep(&pause, NULL);
  }
  printf("ticks=%d pool=%d cache=%zu\n", ticks, pool_used, cache_len);
  return 0; /* the pool, cache and sessions are still live at exit */
}
