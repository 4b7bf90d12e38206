/* Offline symbolizer: (module, file vaddr) -> function / file / line, with
 * inlined calls expanded.  See symbolize.h for the API, and sym_internal.h
 * for its parts (one concern a file), their naming and their out-of-memory
 * policy.
 *
 * How it works
 *  - Each module gets its own Dwfl session with the file reported through
 *    dwfl_report_offline (sym_elf.c).  For ET_DYN files dwfl places the
 *    module at an address of its choosing; the difference to the file's own
 *    vaddrs is the main ELF's bias (dwfl_module_getelf), added to every
 *    looked-up vaddr.  A separate debug file may have its own bias
 *    (dwfl_module_getdwarf).
 *  - Separate debug files are found by our own callback (sym_debug.c).
 *  - DWARF is indexed lazily (sym_dwarf.c); a lookup finds the unit, then
 *    the function, and walks down to the address: the inline chain.
 *  - Line of the innermost frame: the line table row of the address; line of
 *    each outer frame: DW_AT_call_file / DW_AT_call_line of the inlined
 *    subroutine DIE one level deeper.
 *  - No DWARF for an address: name from the ELF symbol table that dwfl
 *    found (.symtab, the debug file's .symtab, .dynsym, MiniDebugInfo),
 *    indexed so that among aliases the most public name wins (sym_elf.c).
 *  - The outermost frame's name: when DWARF has no mangled linkage name for
 *    it but the symbol table has a mangled symbol there, the demangled
 *    symbol (fully qualified) is used.
 *  - Results are cached per module in an open-addressing hash keyed by the
 *    looked-up address; frames live in one array owned by the symbolizer and
 *    every string is interned in its string table (intern.c).
 *  - C++ names are demangled with __cxa_demangle from libstdc++ (the program
 *    must link libstdc++; demangled results are memoised per mangled name).
 */
#include "tools/symbolize.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/sym_internal.h"
#include "tools/util.h"

/* Itanium C++ ABI demangler, provided by libstdc++. */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

/* A registered (path, build-id): what sm_sym_add_module hands out. */
struct sm_symhandle {
  char *path;
  uint8_t *want_id;  /* build-id recorded by the tracer, or NULL */
  size_t want_len;
  bool opened;
  sm_sym_status_t status;
  sm_symfile_t *file; /* when status is SM_SYM_OK */
};

/* Files opened at most: past this, further modules are not read (their
 * frames stay offsets). The tracer records at most 4096 modules. */
#define MAX_FILES 4096

/* ------------------------------------------------------------------------ */
/* Shared by the symbolizer's parts (sym_internal.h)                         */

int sm_sym_open(const char *path, struct stat *st) {
  int fd = sm_open_regular(path, NULL, 0); /* never waits on a FIFO, never reads a device */
  if (fd >= 0 && st && fstat(fd, st) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

const char *sm_sym_demangled(sm_symbolizer_t *s, const char *name) {
  if (!name) return NULL;
  uint32_t id = sm_intern_id(s->strings, name, strlen(name));
  const char *done = sm_intern_aux(s->strings, id);
  if (done) return done;
  const char *result = sm_intern_str(s->strings, id);
  if (name[0] == '_' && name[1] == 'Z') {
    int status = -1;
    char *d = __cxa_demangle(name, NULL, NULL, &status);
    if (d && status == 0) result = sm_intern(s->strings, d);
    free(d);
  }
  sm_intern_set_aux(s->strings, id, result);
  return result;
}

/* ------------------------------------------------------------------------ */
/* Frames, the cache, and what an address is                                 */

static bool frames_reserve(sm_symbolizer_t *s, size_t more) {
  if (s->nframes + more <= s->capframes) return true;
  if (s->nframes + more > UINT32_MAX) return false;
  size_t ncap = s->capframes ? s->capframes : 1024;
  while (ncap < s->nframes + more) ncap *= 2;
  s->frames = xrealloc(s->frames, ncap * sizeof(*s->frames));
  s->capframes = ncap;
  return true;
}

static inline size_t cache_hash(uint64_t a, size_t cap) {
  a ^= a >> 33;
  a *= 0xff51afd7ed558ccdull;
  a ^= a >> 33;
  return (size_t)a & (cap - 1);
}

static sm_symcache_slot_t *cache_find(sm_symfile_t *m, uint64_t addr) {
  if (!m->cache) return NULL;
  size_t j = cache_hash(addr, m->cache_cap);
  while (m->cache[j].used) {
    if (m->cache[j].addr == addr) return &m->cache[j];
    j = (j + 1) & (m->cache_cap - 1);
  }
  return NULL;
}

static void cache_put(sm_symfile_t *m, uint64_t addr, uint32_t first, uint16_t count) {
  if ((m->cache_count + 1) * 2 > m->cache_cap) {
    size_t ncap = m->cache_cap ? m->cache_cap * 2 : 1024;
    sm_symcache_slot_t *nv = xcalloc(ncap, sizeof(*nv));
    for (size_t i = 0; i < m->cache_cap; i++) {
      if (!m->cache[i].used) continue;
      size_t j = cache_hash(m->cache[i].addr, ncap);
      while (nv[j].used) j = (j + 1) & (ncap - 1);
      nv[j] = m->cache[i];
    }
    free(m->cache);
    m->cache = nv;
    m->cache_cap = ncap;
  }
  size_t j = cache_hash(addr, m->cache_cap);
  while (m->cache[j].used) j = (j + 1) & (m->cache_cap - 1);
  m->cache[j].addr = addr;
  m->cache[j].first = first;
  m->cache[j].count = count;
  m->cache[j].used = 1;
  m->cache_count++;
}

/* What DWARF says of one address: its line-table row and its inline chain. */
typedef struct dw_answer {
  Dwarf_Die chain[MAX_CHAIN];
  int depth;               /* 0: no function holds the address */
  const char *file;
  int line;
  bool have_line;
} dw_answer_t;

static void dwarf_answer(sm_symbolizer_t *s, sm_symfile_t *m, uint64_t vaddr, dw_answer_t *a) {
  a->depth = 0, a->file = NULL, a->line = 0, a->have_line = false;
  sm_symdw_init(m);
  if (!m->dw) return;
  uint64_t pc = vaddr + m->dw_off;
  sm_symcu_t *ci = sm_symdw_unit(m, pc);
  if (!ci) return;
  Dwarf_Line *ln = dwarf_getsrc_die(&ci->cudie, pc);
  if (ln) {
    int l = 0;
    if (dwarf_lineno(ln, &l) == 0 && l > 0) a->line = l;
    a->file = sm_symdw_source_path(s, &ci->cudie, dwarf_linesrc(ln, NULL, NULL));
    a->have_line = a->file != NULL || a->line != 0;
  }
  a->depth = sm_symdw_chain(ci, pc, a->chain);
}

/* Appends the frames of an inline chain, innermost first; returns how many. */
static int chain_frames(sm_symbolizer_t *s, sm_symfile_t *m, uint64_t addr, const dw_answer_t *a) {
  int depth = a->depth;
  if (!frames_reserve(s, (size_t)depth)) return 0;
  sm_sym_frame_t *out = &s->frames[s->nframes];
  bool mangled = false;
  for (int k = 0; k < depth; k++) {
    Dwarf_Die die = a->chain[depth - 1 - k];
    out[k].function = sm_symdw_function_name(s, &die, &mangled);
    if (k == 0) {
      out[k].file = a->file;
      out[k].line = a->line;
    } else {
      Dwarf_Die inl = a->chain[depth - k];
      sm_symdw_call_site(s, &inl, &out[k].file, &out[k].line);
    }
    out[k].inlined = k < depth - 1;
  }
  /* The real function: when DWARF has only its plain name (no mangled
   * linkage name, as for some C++ template and lambda members), a
   * mangled symbol gives its full, qualified name. */
  if (!mangled) {
    const char *raw = NULL;
    const char *sname = sm_symelf_name(s, m, addr, &raw);
    bool better = sname && raw && raw[0] == '_' && raw[1] == 'Z' && strcmp(sname, raw) != 0;
    if (!out[depth - 1].function || better) out[depth - 1].function = sname ? sname : out[depth - 1].function;
  }
  s->nframes += (size_t)depth;
  return depth;
}

/* Symbolizes one file vaddr; appends the frames to s->frames and returns how
 * many (0: nothing known). */
static int resolve(sm_symbolizer_t *s, sm_symfile_t *m, uint64_t vaddr) {
  if (!sm_symelf_has_code(m, vaddr)) return 0;
  uint64_t addr = vaddr + m->bias; /* dwfl address */
  dw_answer_t a;
  dwarf_answer(s, m, vaddr, &a);
  if (a.depth > 0) return chain_frames(s, m, addr, &a);
  const char *name = sm_symelf_name(s, m, addr, NULL);
  if (!name && !a.have_line) return 0;
  if (!frames_reserve(s, 1)) return 0;
  sm_sym_frame_t *out = &s->frames[s->nframes++];
  out->function = name;
  out->file = a.file;
  out->line = a.line;
  out->inlined = false;
  return 1;
}

static void add_dir(sm_symbolizer_t *s, const char *d, size_t len) {
  while (len > 1 && d[len - 1] == '/') len--;
  if (len == 0) return;
  for (size_t i = 0; i < s->ndirs; i++)
    if (strlen(s->dirs[i]) == len && strncmp(s->dirs[i], d, len) == 0) return;
  s->dirs = xrealloc(s->dirs, (s->ndirs + 1) * sizeof(*s->dirs));
  char *copy = xmalloc(len + 1);
  memcpy(copy, d, len);
  copy[len] = '\0';
  s->dirs[s->ndirs++] = copy;
}

sm_symbolizer_t *sm_sym_new(void) {
  elf_version(EV_CURRENT);
  sm_symbolizer_t *s = xcalloc(1, sizeof(*s));
  s->strings = sm_intern_new();
  const char *env = getenv("SNAPMALLOC_DEBUG_DIRS");
  for (const char *p = env; p;) {
    const char *colon = strchr(p, ':');
    add_dir(s, p, colon ? (size_t)(colon - p) : strlen(p));
    p = colon ? colon + 1 : NULL;
  }
  add_dir(s, SYS_DEBUG_DIR, strlen(SYS_DEBUG_DIR));
  return s;
}

void sm_sym_free(sm_symbolizer_t *s) {
  if (!s) return;
  for (size_t i = 0; i < s->nhands; i++) {
    free(s->hands[i]->want_id);
    free(s->hands[i]->path);
    free(s->hands[i]);
  }
  free(s->hands);
  free(s->handtab);
  free(s->filetab);
  for (size_t i = 0; i < s->nmods; i++) {
    sm_symfile_t *m = s->mods[i];
    sm_symelf_close(m);
    for (size_t c = 0; c < m->ncus; c++) {
      sm_spans_free(&m->cus[c].funcs);
      free(m->cus[c].fdies);
    }
    free(m->cus);
    sm_spans_free(&m->cu_spans);
    sm_spans_free(&m->syms);
    free(m->symnames);
    free(m->cache);
    free(m->segs);
    free(m->file_id);
    free(m->path);
    free(m);
  }
  free(s->mods);
  for (size_t i = 0; i < s->ndirs; i++) free(s->dirs[i]);
  free(s->dirs);
  free(s->frames);
  sm_intern_free(s->strings);
  free(s);
}

static uint64_t handle_hash(const char *path, const uint8_t *id, size_t idlen) {
  return sm_hash_bytes(path, strlen(path)) * 31 + sm_hash_bytes(id, idlen);
}

static bool handle_is(const sm_symhandle_t *h, const char *path, const uint8_t *id, size_t idlen) {
  return h->want_len == idlen && strcmp(h->path, path) == 0 && (idlen == 0 || memcmp(h->want_id, id, idlen) == 0);
}

/* Rebuilds the handle index with room for twice the handles. */
static void handtab_grow(sm_symbolizer_t *s) {
  size_t ncap = s->handtab_cap ? s->handtab_cap * 2 : 64;
  int *nt = xmalloc(ncap * sizeof(*nt));
  for (size_t i = 0; i < ncap; i++) nt[i] = -1;
  for (size_t i = 0; i < s->nhands; i++) {
    const sm_symhandle_t *h = s->hands[i];
    size_t j = handle_hash(h->path, h->want_id, h->want_len) & (ncap - 1);
    while (nt[j] >= 0) j = (j + 1) & (ncap - 1);
    nt[j] = (int)i;
  }
  free(s->handtab);
  s->handtab = nt;
  s->handtab_cap = ncap;
}

int sm_sym_add_module(sm_symbolizer_t *s, const char *path, const uint8_t *build_id,
                      size_t build_id_len) {
  if (!s || !path) return -1;
  if (!build_id) build_id_len = 0;
  if ((s->nhands + 1) * 2 > s->handtab_cap) handtab_grow(s);
  size_t j = handle_hash(path, build_id, build_id_len) & (s->handtab_cap - 1);
  for (; s->handtab[j] >= 0; j = (j + 1) & (s->handtab_cap - 1))
    if (handle_is(s->hands[s->handtab[j]], path, build_id, build_id_len)) return s->handtab[j];
  if (s->nhands >= INT_MAX) return -1;
  if (s->nhands == s->caphands) {
    s->caphands = s->caphands ? s->caphands * 2 : 16;
    s->hands = xrealloc(s->hands, s->caphands * sizeof(*s->hands));
  }
  sm_symhandle_t *h = xcalloc(1, sizeof(*h));
  h->path = xstrdup(path);
  if (build_id_len) {
    h->want_id = xmalloc(build_id_len);
    memcpy(h->want_id, build_id, build_id_len);
  }
  h->want_len = build_id_len;
  s->hands[s->nhands] = h;
  s->handtab[j] = (int)s->nhands;
  return (int)s->nhands++;
}

static size_t file_hash(dev_t dev, ino_t ino, size_t cap) {
  uint64_t k = (uint64_t)dev * 0x9e3779b97f4a7c15ull ^ (uint64_t)ino;
  k ^= k >> 31;
  k *= 0xbf58476d1ce4e5b9ull;
  return (size_t)(k ^ (k >> 29)) & (cap - 1);
}

/* Rebuilds the file index with room for twice the files. */
static void filetab_grow(sm_symbolizer_t *s) {
  size_t ncap = s->filetab_cap ? s->filetab_cap * 2 : 64;
  int *nt = xmalloc(ncap * sizeof(*nt));
  for (size_t i = 0; i < ncap; i++) nt[i] = -1;
  for (size_t i = 0; i < s->nmods; i++) {
    size_t k = file_hash(s->mods[i]->dev, s->mods[i]->ino, ncap);
    while (nt[k] >= 0) k = (k + 1) & (ncap - 1);
    nt[k] = (int)i;
  }
  free(s->filetab);
  s->filetab = nt;
  s->filetab_cap = ncap;
}

/* The file with st's device and inode: the one already read, or a new one
 * read from fd. Consumes fd. NULL past MAX_FILES. */
static sm_symfile_t *file_get(sm_symbolizer_t *s, const char *path, const struct stat *st, int fd) {
  if ((s->nmods + 1) * 2 > s->filetab_cap) filetab_grow(s);
  size_t j = file_hash(st->st_dev, st->st_ino, s->filetab_cap);
  for (; s->filetab[j] >= 0; j = (j + 1) & (s->filetab_cap - 1)) {
    sm_symfile_t *m = s->mods[s->filetab[j]];
    if (m->dev == st->st_dev && m->ino == st->st_ino) {
      close(fd);
      return m;
    }
  }
  if (s->nmods >= MAX_FILES) {
    close(fd);
    return NULL;
  }
  if (s->nmods == s->capmods) {
    s->capmods = s->capmods ? s->capmods * 2 : 16;
    s->mods = xrealloc(s->mods, s->capmods * sizeof(*s->mods));
  }
  sm_symfile_t *m = xcalloc(1, sizeof(*m));
  m->path = xstrdup(path);
  m->owner = s;
  m->dev = st->st_dev;
  m->ino = st->st_ino;
  s->mods[s->nmods] = m;
  s->filetab[j] = (int)s->nmods++;
  sm_symelf_open(m, fd);
  return m;
}

/* Opens a handle's file and decides its status; idempotent. */
static void handle_open(sm_symbolizer_t *s, sm_symhandle_t *h) {
  if (h->opened) return;
  h->opened = true;
  h->status = SM_SYM_MISSING;
  struct stat st;
  int fd = sm_sym_open(h->path, &st);
  if (fd < 0) return;
  sm_symfile_t *m = file_get(s, h->path, &st, fd);
  if (!m || m->status != SM_SYM_OK) return;
  if (h->want_len > 0 &&
      (m->file_id_len != h->want_len || memcmp(m->file_id, h->want_id, h->want_len) != 0)) {
    h->status = SM_SYM_MISMATCH;
    return;
  }
  h->file = m;
  h->status = SM_SYM_OK;
}

sm_sym_status_t sm_sym_status(sm_symbolizer_t *s, int module) {
  if (!s || module < 0 || (size_t)module >= s->nhands) return SM_SYM_MISSING;
  sm_symhandle_t *h = s->hands[module];
  handle_open(s, h);
  return h->status;
}

int sm_sym_lookup(sm_symbolizer_t *s, int module, uint64_t vaddr, bool is_return_address,
                  sm_sym_frame_t *out, int max) {
  if (!s || !out || max <= 0 || module < 0 || (size_t)module >= s->nhands) return 0;
  sm_symhandle_t *h = s->hands[module];
  handle_open(s, h);
  if (h->status != SM_SYM_OK) return 0;
  sm_symfile_t *m = h->file;
  if (is_return_address) vaddr -= 1;

  uint32_t first;
  int n;
  sm_symcache_slot_t *c = cache_find(m, vaddr);
  if (c) {
    first = c->first;
    n = c->count;
  } else {
    size_t before = s->nframes;
    n = resolve(s, m, vaddr);
    first = (uint32_t)before;
    cache_put(m, vaddr, first, (uint16_t)n);
  }
  if (n <= 0) return 0;
  const sm_sym_frame_t *f = &s->frames[first];
  if (n <= max) {
    memcpy(out, f, (size_t)n * sizeof(*out));
    return n;
  }
  memcpy(out, f, (size_t)(max - 1) * sizeof(*out));
  out[max - 1] = f[n - 1];
  return max;
}
