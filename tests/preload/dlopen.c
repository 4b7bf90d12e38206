/* dlopen/dlclose of a module that allocates (dlo_lib.c) 100 times: blocks
 * cross the module boundary both ways, some of the module's blocks outlive
 * the module (freed after dlclose), and the module's constructor blocks are
 * checked by its destructor at every unload. Usage: dlopen MODULE.so */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "smtest.h"

#define ROUNDS 100
#define NKEEP 64

typedef void *(*make_fn)(size_t, uint64_t);
typedef int (*check_free_fn)(void *, size_t, uint64_t);
typedef void *(*resize_fn)(void *, size_t, size_t, uint64_t);
typedef int (*ctor_check_fn)(void);

struct block {
  unsigned char *p;
  size_t n;
  uint64_t tag;
};

static size_t pick(sm_rng_t *r) {
  switch (sm_rng_below(r, 8)) {
  case 0: return sm_rng_range(r, 64 << 10, 900 << 10);
  case 1: return sm_rng_below(r, 8) == 0 ? sm_rng_range(r, 1 << 20, 5 << 20) : 100;
  default: return sm_rng_logsize(r, 1, 8192);
  }
}

int main(int argc, char **argv) {
  sm_rng_t r = {555};
  struct block keep[NKEEP] = {{0}};
  uint64_t tag = 1;
  long bad = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODULE.so\n", argv[0]);
    return 2;
  }
  sm_check_preload();
  for (int round = 0; round < ROUNDS; round++) {
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      CHECK_MSG(0, "dlopen: %s", dlerror());
      break;
    }
    int *ran = dlsym(h, "dlo_ctor_ran");
    make_fn make = (make_fn)dlsym(h, "dlo_make");
    check_free_fn check_free = (check_free_fn)dlsym(h, "dlo_check_free");
    resize_fn resize = (resize_fn)dlsym(h, "dlo_resize");
    ctor_check_fn ctor_check = (ctor_check_fn)dlsym(h, "dlo_ctor_check");
    /* A failing lookup makes dlerror() allocate its message. */
    CHECK(dlsym(h, "no_such_symbol") == NULL && dlerror() != NULL);
    if (!ran || !make || !check_free || !resize || !ctor_check) {
      CHECK_MSG(0, "dlsym failed: %s", dlerror());
      break;
    }
    CHECK(*ran == 1);
    CHECK(ctor_check() == 0);
    for (int i = 0; i < 40; i++) {
      /* Module allocates, main checks and frees. */
      size_t n = pick(&r);
      uint64_t t = tag++;
      unsigned char *p = make(n, t);
      if (!p || sm_check(p, n, t) != (size_t)-1) bad++;
      /* Main reallocs a module block. */
      if (p && i % 4 == 0) {
        size_t m = pick(&r);
        unsigned char *q = realloc(p, m);
        if (!q || sm_check_upto(q, n, t, m) != (size_t)-1) bad++;
        p = q;
      }
      free(p);
      /* Main allocates, module checks and frees (or resizes first). */
      n = pick(&r);
      t = tag++;
      p = malloc(n);
      if (!p) { bad++; continue; }
      sm_fill(p, n, t);
      if (i % 3 == 0) {
        size_t m = pick(&r);
        p = resize(p, n, m, t);
        if (!p) { bad++; continue; }
        n = m;
      }
      bad += check_free(p, n, t);
    }
    /* Replace some long-lived module blocks: freed rounds after their
     * module copy was unloaded. */
    for (int i = 0; i < 8; i++) {
      struct block *k = &keep[sm_rng_below(&r, NKEEP)];
      if (k->p) {
        if (sm_check(k->p, k->n, k->tag) != (size_t)-1) bad++;
        free(k->p);
      }
      k->n = pick(&r);
      k->tag = tag++;
      k->p = make(k->n, k->tag);
      if (!k->p) bad++;
    }
    CHECK(ctor_check() == 0);
    CHECK_MSG(dlclose(h) == 0, "dlclose: %s", dlerror());
    /* The module really went away (its destructor ran and freed). */
    void *still = dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD);
    CHECK_MSG(still == NULL, "module still loaded after dlclose in round %d", round);
    if (still) dlclose(still);
  }
  for (int i = 0; i < NKEEP; i++)
    if (keep[i].p) {
      if (sm_check(keep[i].p, keep[i].n, keep[i].tag) != (size_t)-1) bad++;
      free(keep[i].p);
    }
  CHECK_MSG(bad == 0, "%ld bad blocks", bad);
  return test_summary();
}
