/* Python frames as the tracer keeps them: interned (file name, function
 * name, line) triples with stable ids, copied out of the interpreter's
 * objects when first seen (code objects die; a snapshot must not need
 * them), and a per-thread cache from (code object, instruction) to id so
 * that a frame seen before costs a few compares and no string work.
 *
 * The cache must know when a code object died: the next one is often made
 * at the same address, holding objects at the same addresses as the old
 * one's, with other lines (code compiled again and again does that all the
 * time). So a code object that is a block of ours is *watched*
 * (allocator/tag.c, SM_TAG_WATCHED): its free moves a generation on
 * (sm_pyframes_code_freed), and an entry filled under an older generation
 * is described again. A code object that is not ours to watch (served by
 * pymalloc, under the user's PYTHONMALLOC) is checked by the content of
 * its location table instead: a hash of its bytes, taken at every hit (a
 * cost proportional to the table, paid only there). Either way a hit gives
 * what describing the frame again would.
 *
 * Locks: this file owns py_lock, which guards the hash and the adding of
 * ids (tracer/locks.c: below trace_lock, above delta_lock; its holder
 * takes only the metadata lock). Ids are read without it: the id array's
 * chunks and entries are published with release stores and an entry never
 * changes. The per-thread cache is its thread's alone while the thread
 * lives, then the next one's (counters.c: entries are checked on use). */
#include <string.h>

#include "tracer/internal.h"
#include "tracer/python.h"

typedef struct pyframe {
  UT_hash_handle hh;
  uint32_t id;
  uint32_t keylen;
  uint8_t key[]; /* u32 line, u32 file length, u32 name length, file, name */
} pyframe_t;

#define KEY_FIXED SM_PY_DESC_FIXED
#define ID_CHUNK_BITS 12
#define ID_CHUNK ((uint32_t)1 << ID_CHUNK_BITS)
#define ID_CHUNKS 1024 /* up to 4M distinct Python lines */

static sm_lock_t py_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
sm_lock_t *const sm_py_lock_ref = &py_lock;
static int sm_uthash_oom;
static pyframe_t *table;            /* uthash head (py_lock) */
static SM_BIG_BSS pyframe_t **ids[ID_CHUNKS];  /* id -> frame */
static uint32_t next_id = 1;        /* py_lock; read with acquire by the writer */

static pyframe_t *by_id(uint32_t id) {
  if (!id || (id >> ID_CHUNK_BITS) >= ID_CHUNKS) return NULL;
  pyframe_t **chunk = __atomic_load_n(&ids[id >> ID_CHUNK_BITS], __ATOMIC_ACQUIRE);
  return chunk ? __atomic_load_n(&chunk[id & (ID_CHUNK - 1)], __ATOMIC_ACQUIRE) : NULL;
}

static uint32_t add_locked(const uint8_t *key, uint32_t keylen) {
  uint32_t id = next_id;
  if ((id >> ID_CHUNK_BITS) >= ID_CHUNKS) return 0;
  pyframe_t **chunk = ids[id >> ID_CHUNK_BITS];
  if (!chunk) {
    chunk = sm_meta_alloc(ID_CHUNK * sizeof *chunk);
    if (!chunk) return 0;
    __atomic_store_n(&ids[id >> ID_CHUNK_BITS], chunk, __ATOMIC_RELEASE);
  }
  pyframe_t *f = sm_meta_alloc(sizeof *f + keylen);
  if (!f) return 0;
  f->id = id;
  f->keylen = keylen;
  memcpy(f->key, key, keylen);
  sm_uthash_oom = 0;
  HASH_ADD_KEYPTR(hh, table, f->key, keylen, f);
  if (sm_uthash_oom) {
    sm_meta_free(f, sizeof *f + keylen);
    return 0;
  }
  __atomic_store_n(&chunk[id & (ID_CHUNK - 1)], f, __ATOMIC_RELEASE);
  __atomic_store_n(&next_id, id + 1, __ATOMIC_RELEASE);
  return id;
}

/* The id of a described frame: found or added (takes py_lock). The
 * description is laid out as the key is (python.h). */
static uint32_t intern(const sm_py_desc_t *d) {
  const uint8_t *key = (const uint8_t *)d;
  uint32_t keylen = KEY_FIXED + d->file_len + d->name_len;
  sm_lock(&py_lock);
  pyframe_t *f;
  HASH_FIND(hh, table, key, keylen, f);
  uint32_t id = f ? f->id : add_locked(key, keylen);
  sm_unlock(&py_lock);
  return id;
}

/* Moves on when a watched code object is freed (atomic). */
static uint64_t code_gen = 1;

void sm_pyframes_code_freed(void) { __atomic_add_fetch(&code_gen, 1, __ATOMIC_RELEASE); }

static uint64_t table_hash(const sm_py_ident_t *id) {
  uint64_t h = id->table_len;
  const uint8_t *p = id->table_data;
  size_t n = id->table_len, i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
  }
  for (; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
  return h ^ (h >> 31);
}

static sm_pycache_entry_t *cache_slot(sm_tlocal_t *tl, const sm_py_frame_t *f) {
  uint64_t h = ((uint64_t)f->code ^ ((uint64_t)(uint32_t)f->lasti << 20)) * 0x9E3779B97F4A7C15ull;
  return &tl->pycache[h >> (64 - SM_PYCACHE_BITS)];
}

uint32_t sm_pyframe_id(sm_tlocal_t *tl, const sm_py_frame_t *f) {
  const sm_py_rt_t *rt = &sm_py_rt;
  sm_py_ident_t ident;
  if (!rt->ops->ident(rt, f->code, &ident)) return 0;
  /* Read before the code object is looked at: a code object freed after
   * this moves the generation past what the entry records. */
  uint64_t gen = __atomic_load_n(&code_gen, __ATOMIC_ACQUIRE);
  sm_pycache_entry_t *e = tl ? cache_slot(tl, f) : NULL;
  if (e && e->id && e->code == f->code && e->lasti == f->lasti && e->ident.file == ident.file &&
      e->ident.name == ident.name && e->ident.table == ident.table && e->ident.firstline == ident.firstline &&
      e->ident.table_len == ident.table_len &&
      (e->gen ? e->gen == gen : ident.table_data && e->table_hash == table_hash(&ident)))
    return e->id;
  sm_py_desc_t d;
  if (!rt->ops->describe(rt, f->code, f->lasti, &d)) return 0;
  uint32_t id = intern(&d);
  if (id && e) {
    e->code = f->code;
    e->lasti = f->lasti;
    e->ident = ident;
    e->id = id;
    /* Watched: valid while no watched code object dies. Else by content. */
    e->gen = sm_tag_watch((const void *)f->code) ? gen : 0;
    e->table_hash = e->gen || !ident.table_data ? 0 : table_hash(&ident);
    if (!e->gen && !ident.table_data) e->id = 0; /* nothing to check a hit by: no entry */
  }
  return id;
}

uint32_t sm_pyframes_count(void) { return __atomic_load_n(&next_id, __ATOMIC_ACQUIRE) - 1; }

bool sm_pyframe_get(uint32_t id, sm_pyframe_info_t *out) {
  const pyframe_t *f = by_id(id);
  if (!f) return false;
  uint32_t fixed[3];
  memcpy(fixed, f->key, KEY_FIXED);
  out->line = fixed[0];
  out->file_len = fixed[1];
  out->name_len = fixed[2];
  out->file = (const char *)f->key + KEY_FIXED;
  out->name = out->file + out->file_len;
  return true;
}
