/* See intern.h. Open addressing over the entries' indexes (the entries
 * themselves are in insertion order, so an index is stable); strings in
 * 64 KiB arena blocks, a long one in a block of its own. */
#include "tools/intern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/util.h"

#define BLOCK 65536
#define FREE UINT32_MAX

typedef struct entry {
  const char *str;
  const char *aux;
  uint64_t hash;
} entry_t;

typedef struct block {
  struct block *next;
  char data[];
} block_t;

struct sm_intern {
  entry_t *ents;
  uint32_t n, cap;
  uint32_t *slots;         /* entry index, or FREE */
  size_t nslots;
  block_t *blocks;
  char *cur;               /* free bytes of the current block */
  size_t left;
};

uint64_t sm_hash_bytes(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h ^ (h >> 29);
}

sm_intern_t *sm_intern_new(void) { return xcalloc(1, sizeof(sm_intern_t)); }

void sm_intern_free(sm_intern_t *t) {
  if (!t) return;
  while (t->blocks) {
    block_t *next = t->blocks->next;
    free(t->blocks);
    t->blocks = next;
  }
  free(t->ents);
  free(t->slots);
  free(t);
}

static char *arena_alloc(sm_intern_t *t, size_t n) {
  if (n <= t->left) {
    char *r = t->cur;
    t->cur += n;
    t->left -= n;
    return r;
  }
  size_t sz = n > BLOCK / 4 ? n : BLOCK;
  block_t *b = xmalloc(sizeof *b + sz);
  b->next = t->blocks;
  t->blocks = b;
  if (sz == n) return b->data; /* a long string: its own block, the current one stays */
  t->cur = b->data + n;
  t->left = sz - n;
  return b->data;
}

static void rehash(sm_intern_t *t) {
  size_t ns = t->nslots ? t->nslots * 2 : 1024;
  uint32_t *sl = xmalloc(ns * sizeof *sl);
  memset(sl, 0xff, ns * sizeof *sl);
  for (uint32_t i = 0; i < t->n; i++) {
    size_t j = t->ents[i].hash & (ns - 1);
    while (sl[j] != FREE) j = (j + 1) & (ns - 1);
    sl[j] = i;
  }
  free(t->slots);
  t->slots = sl;
  t->nslots = ns;
}

static uint32_t add(sm_intern_t *t, const char *s, size_t n, uint64_t h, size_t slot) {
  if (t->n == FREE - 1) { /* indexes are 32 bits: more strings than the tool can hold */
    fputs("snapmalloc: out of memory (too many strings)\n", stderr);
    exit(2);
  }
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 256;
    t->ents = xrealloc(t->ents, t->cap * sizeof *t->ents);
  }
  char *copy = arena_alloc(t, n + 1);
  memcpy(copy, s, n);
  copy[n] = '\0';
  t->ents[t->n] = (entry_t){copy, NULL, h};
  t->slots[slot] = t->n;
  return t->n++;
}

uint32_t sm_intern_id(sm_intern_t *t, const char *s, size_t n) {
  if ((size_t)(t->n + 1) * 2 > t->nslots) rehash(t);
  uint64_t h = sm_hash_bytes(s, n);
  size_t j = h & (t->nslots - 1);
  for (; t->slots[j] != FREE; j = (j + 1) & (t->nslots - 1)) {
    const entry_t *e = &t->ents[t->slots[j]];
    if (e->hash == h && strncmp(e->str, s, n) == 0 && e->str[n] == '\0') return t->slots[j];
  }
  return add(t, s, n, h, j);
}

const char *sm_intern(sm_intern_t *t, const char *s) {
  if (!s) return NULL;
  uint32_t id = sm_intern_id(t, s, strlen(s)); /* first: it may move the entries */
  return t->ents[id].str;
}

const char *sm_intern_str(const sm_intern_t *t, uint32_t id) { return t->ents[id].str; }
uint32_t sm_intern_count(const sm_intern_t *t) { return t->n; }
const char *sm_intern_aux(const sm_intern_t *t, uint32_t id) { return t->ents[id].aux; }
void sm_intern_set_aux(sm_intern_t *t, uint32_t id, const char *aux) { t->ents[id].aux = aux; }
