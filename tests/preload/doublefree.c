/* Deliberate misuse, one kind per run, selected by argv[1]:
 *   ok             correct use (control: must exit 0)
 *   small          free the same 24-byte block twice in a row
 *   small-between  a, b same size: free(a), free(b), free(a)
 *   small-aba      the same with other blocks of the page live (the page's
 *                  counts then stay far from empty: only a per-block check
 *                  sees it)
 *   small-fresh    free of a block the page carved but never handed out
 *   small-reused   a freed block freed again after its page moved it to
 *                  the list malloc takes blocks from
 *   realloc-freed  realloc of a freed 48-byte block to 40 bytes (the same
 *                  class: a realloc that keeps the block in place)
 *   realloc-remote-freed  the same after another thread freed it
 *   realloc-interior  realloc(p + 16) of a 64-byte block
 *   interior       free(p + 16) of a 64-byte block
 *   misaligned     free(p + 1) of a 64-byte block
 *   remote         a block freed by one thread, then by another
 *   remote-race    two threads free the same block at the same moment
 *   owner-remote   the owner frees a block, then another thread does
 *   remote-owner   another thread frees a block, then the owner does, then
 *                  the owner allocates until its page collects the block
 *   large          double free of a 100 KiB block
 *   huge           double free of a 40 MiB block (above the default huge=32M)
 *   interior-large free of a pointer 1 KiB inside a 100 KiB block
 *   interior-huge  free of a pointer 8 KiB inside a 40 MiB block
 *   stack          free of a local array
 *   unmapped       free of an address whose memory is not mapped
 * Under snapmalloc every misuse must print one "snapmalloc: error: ..." line
 * naming the pointer and abort; df_driver.c checks that (the line
 * "doublefree: pointer P" printed first says which pointer). Reaching the
 * end exits 0. Nothing here may hang: the driver kills a run after a few
 * seconds and counts that as a failure. */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

/* Keep the compiler from seeing (and warning about or removing) the misuse. */
static void *volatile sink;
static void release(void *p) {
  sink = p;
  free(sink);
}

static void *resize(void *p, size_t n) {
  sink = p;
  return realloc(sink, n);
}

static void name_pointer(const void *p) { fprintf(stderr, "doublefree: pointer %p\n", p); }

/* ---- frees from other threads */
static void *remote_free(void *p) {
  release(p);
  return NULL;
}

static void free_in_thread(void *p) {
  pthread_t t;
  if (pthread_create(&t, NULL, remote_free, p) != 0) abort();
  pthread_join(t, NULL);
}

static pthread_barrier_t race_barrier;
static void *racer(void *p) {
  pthread_barrier_wait(&race_barrier);
  release(p);
  return NULL;
}

/* Many rounds of two threads freeing one block at once: the checks must
 * catch the first round (the process aborts there). */
static void remote_race(void) {
  for (int round = 0; round < 100000; round++) {
    void *keep[8];
    for (int i = 0; i < 8; i++) keep[i] = malloc(48); /* keep the page busy */
    void *p = malloc(48);
    if (round == 0) name_pointer(p);
    pthread_t a, b;
    pthread_barrier_init(&race_barrier, NULL, 2);
    pthread_create(&a, NULL, racer, p);
    pthread_create(&b, NULL, racer, p);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&race_barrier);
    for (int i = 0; i < 8; i++) release(keep[i]);
    void *q[64];
    for (int i = 0; i < 64; i++) q[i] = malloc(48); /* would hand p out twice */
    for (int i = 0; i < 64; i++)
      for (int j = 0; j < i; j++)
        if (q[i] == q[j]) {
          fprintf(stderr, "doublefree: remote-race: %p handed out twice\n", q[i]);
          return;
        }
    for (int i = 0; i < 64; i++) release(q[i]);
  }
}

/* Allocates n blocks of `size` and keeps them, so that the page the next
 * block comes from is far from empty. */
static void **hold(size_t n, size_t size) {
  void **v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) v[i] = malloc(size);
  return v;
}

/* A 48-byte block among others, freed by `how`, then resized to a size of
 * its class (a realloc that would keep it in place). */
static char *resize_freed(void (*how)(void *)) {
  hold(10, 48);
  char *b = malloc(48);
  hold(10, 48);
  name_pointer(b);
  how(b);
  return resize(b, 40);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  char *p, *q;
  /* Some unrelated activity first, so the heap is not pristine. */
  for (int i = 0; i < 100; i++) release(malloc((size_t)i * 50 + 1));
  if (strcmp(mode, "ok") == 0) {
    p = malloc(24);
    q = malloc(100 << 10);
    release(p);
    release(q);
    release(malloc(40 << 20));
  } else if (strcmp(mode, "old-marks") == 0) {
    /* Live blocks holding what were once the fixed free marks in their
     * second word are ordinary data, freed locally and by another thread. */
    uint64_t *a = malloc(24), *b = malloc(24);
    a[0] = b[0] = 0;
    a[1] = 0xfffffffff4ee0b1cu;
    b[1] = 0xfffffffff4ee0b1du;
    release(a);
    free_in_thread(b);
  } else if (strcmp(mode, "mark") == 0) {
    /* The free mark of a small block, read back after its free (the page
     * stays mapped: the other block keeps it in use). */
    uint64_t *a = malloc(24), *keep = malloc(24);
    release(a);
    fprintf(stderr, "mark %#llx\n", (unsigned long long)((volatile uint64_t *)a)[1]);
    release(keep);
  } else if (strcmp(mode, "small") == 0) {
    p = malloc(24);
    memset(p, 1, 24);
    name_pointer(p);
    release(p);
    release(p);
  } else if (strcmp(mode, "small-between") == 0) {
    p = malloc(32);
    q = malloc(32);
    name_pointer(p);
    release(p);
    release(q);
    release(p);
  } else if (strcmp(mode, "small-aba") == 0) {
    hold(100, 32);
    p = malloc(32);
    q = malloc(32);
    hold(100, 32);
    name_pointer(p);
    release(p);
    release(q);
    release(p);
    /* Old behaviour: the free list is now a cycle p -> q -> p. */
    void *a = malloc(32), *b = malloc(32), *c = malloc(32);
    fprintf(stderr, "doublefree: small-aba: malloc gave %p %p %p\n", a, b, c);
  } else if (strcmp(mode, "small-fresh") == 0) {
    hold(10, 80);
    p = malloc(80);
    name_pointer(p + 80);
    release(p + 80); /* the next block: carved, never handed out */
    q = malloc(80);
    char *r = malloc(80);
    fprintf(stderr, "doublefree: small-fresh: malloc gave %p %p\n", (void *)q, (void *)r);
  } else if (strcmp(mode, "small-reused") == 0) {
    hold(50, 96);
    p = malloc(96);
    q = malloc(96);
    release(p);
    release(q);
    /* Allocate until q comes back: the page has then collected q and p
     * into its free list and handed out q; p is free, on that list. */
    for (int i = 0; i < 100000 && malloc(96) != q; i++) {
    }
    name_pointer(p);
    release(p);
    void *a = malloc(96), *b = malloc(96), *c = malloc(96);
    fprintf(stderr, "doublefree: small-reused: malloc gave %p %p %p\n", a, b, c);
  } else if (strcmp(mode, "realloc-freed") == 0) {
    q = resize_freed(release);
    /* Old behaviour: the block kept in place, then freed again (traced: unseen). */
    release(q);
    void *a = malloc(48), *b = malloc(48);
    fprintf(stderr, "doublefree: realloc-freed: malloc gave %p %p\n", a, b);
  } else if (strcmp(mode, "realloc-remote-freed") == 0) {
    q = resize_freed(free_in_thread);
    fprintf(stderr, "doublefree: realloc-remote-freed: realloc gave %p\n", (void *)q);
  } else if (strcmp(mode, "realloc-interior") == 0) {
    hold(10, 64);
    p = malloc(64);
    name_pointer(p + 16);
    q = resize(p + 16, 40);
    fprintf(stderr, "doublefree: realloc-interior: realloc gave %p\n", (void *)q);
  } else if (strcmp(mode, "interior") == 0) {
    hold(10, 64);
    p = malloc(64);
    name_pointer(p + 16);
    release(p + 16);
    q = malloc(64);
    fprintf(stderr, "doublefree: interior: malloc gave %p next to %p\n", (void *)q, (void *)p);
  } else if (strcmp(mode, "misaligned") == 0) {
    hold(10, 64);
    p = malloc(64);
    name_pointer(p + 1);
    release(p + 1);
    q = malloc(64);
    fprintf(stderr, "doublefree: misaligned: malloc gave %p\n", (void *)q);
  } else if (strcmp(mode, "remote") == 0) {
    hold(10, 48);
    p = malloc(48);
    name_pointer(p);
    free_in_thread(p);
    free_in_thread(p);
    /* Old behaviour: the remote list is now a cycle; collecting it spins. */
    void **more = hold(5000, 48);
    fprintf(stderr, "doublefree: remote: malloc gave %p\n", more[4999]);
  } else if (strcmp(mode, "remote-race") == 0) {
    remote_race();
  } else if (strcmp(mode, "owner-remote") == 0) {
    hold(10, 48);
    p = malloc(48);
    name_pointer(p);
    release(p);
    free_in_thread(p);
    hold(5000, 48);
  } else if (strcmp(mode, "remote-owner") == 0) {
    hold(10, 48);
    p = malloc(48);
    name_pointer(p);
    free_in_thread(p);
    release(p);
    void **more = hold(5000, 48);
    for (int i = 0; i < 5000; i++)
      for (int j = i + 1; j < i + 64 && j < 5000; j++)
        if (more[i] == more[j]) {
          fprintf(stderr, "doublefree: remote-owner: %p handed out twice\n", more[i]);
          return 1;
        }
  } else if (strcmp(mode, "stack") == 0) {
    char buf[64];
    memset(buf, 0, sizeof buf);
    name_pointer(buf + 16);
    release(buf + 16);
  } else if (strcmp(mode, "unmapped") == 0) {
    long page = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, (size_t)page * 3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 2;
    munmap(m, (size_t)page * 3);
    name_pointer(m + page + 32);
    release(m + page + 32);
  } else if (strcmp(mode, "large") == 0) {
    p = malloc(100 << 10);
    memset(p, 1, 100 << 10);
    name_pointer(p);
    release(p);
    release(p);
  } else if (strcmp(mode, "huge") == 0) {
    p = malloc(40 << 20);
    memset(p, 1, 40 << 20);
    name_pointer(p);
    release(p);
    release(p);
  } else if (strcmp(mode, "interior-large") == 0) {
    p = malloc(100 << 10);
    memset(p, 0, 100 << 10);
    name_pointer(p + 1024);
    release(p + 1024);
  } else if (strcmp(mode, "interior-huge") == 0) {
    p = malloc(40 << 20);
    memset(p, 0, 40 << 20);
    name_pointer(p + 8192);
    release(p + 8192);
  } else {
    fprintf(stderr, "doublefree: unknown mode '%s'\n", mode);
    return 2;
  }
  fprintf(stderr, "doublefree: %s: survived\n", mode);
  return 0;
}
