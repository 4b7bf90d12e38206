/* Offline symbolizer: (module, file vaddr) -> function / file / line, with
 * inlined calls expanded.  See symbolize.h for the API.
 *
 * How it works
 *  - Each module gets its own Dwfl session with the file reported through
 *    dwfl_report_offline.  For ET_DYN files dwfl places the module at an
 *    address of its choosing; the difference to the file's own vaddrs is the
 *    main ELF's bias (dwfl_module_getelf), added to every looked-up vaddr.
 *    A separate debug file may have its own bias (dwfl_module_getdwarf).
 *  - Separate debug files are found by our own find_debuginfo callback (not
 *    dwfl_standard_find_debuginfo, which may go to a debuginfod server over
 *    the network): DIR/.build-id/xx/rest.debug for each DIR in
 *    SNAPMALLOC_DEBUG_DIRS and /usr/lib/debug, then the .gnu_debuglink name
 *    next to the file, in its .debug/ subdirectory and under each DIR.
 *    Candidates are accepted only when their build-id (or, for files
 *    without one, the debuglink CRC) matches.  dwz alternate files
 *    (.gnu_debugaltlink) go through the same callback.
 *  - DWARF is indexed lazily: at first use the unit DIEs' address ranges
 *    (not .debug_aranges, which some compilers omit); the first time an
 *    address falls in a unit, that unit's functions (subprograms with code).
 *    A lookup then binary-searches the unit, then the function, and walks
 *    down the function's DIE tree through the lexical blocks and inlined
 *    subroutines that contain the address: that path is the inline chain.
 *  - Line of the innermost frame: the line table row of the address; line of
 *    each outer frame: DW_AT_call_file / DW_AT_call_line of the inlined
 *    subroutine DIE one level deeper.
 *  - No DWARF for an address: name from the ELF symbol table that dwfl
 *    found (.symtab, the debug file's .symtab, .dynsym, MiniDebugInfo),
 *    indexed by us so that among aliases the most public name wins (malloc,
 *    not __GI___libc_malloc).  An address past the end of every sized
 *    symbol (alignment padding) gets no name.
 *  - The outermost frame's name: when DWARF has no mangled linkage name for
 *    it but the symbol table has a mangled symbol there, the demangled
 *    symbol (fully qualified) is used.
 *  - File names: relative names are joined to an absolute DW_AT_comp_dir and
 *    absolute paths are cleaned lexically (build/../src/x.c -> src/x.c);
 *    names relative to a relative comp_dir (as in Debian's glibc) are left
 *    as recorded.
 *  - Results are cached per module in an open-addressing hash keyed by the
 *    looked-up address; frames live in one array owned by the symbolizer and
 *    every string is interned in its string table.
 *  - C++ names are demangled with __cxa_demangle from libstdc++ (the program
 *    must link libstdc++; demangled results are memoised per mangled name).
 */
#include "tools/symbolize.h"
#include "tools/util.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Itanium C++ ABI demangler, provided by libstdc++. */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

#define SYS_DEBUG_DIR "/usr/lib/debug"
#define MAX_CHAIN 64       /* deepest inline chain kept */
#define MAX_SCOPE_DEPTH 32 /* nesting of namespaces/classes we index through */

/* ------------------------------------------------------------------------ */
/* String table: interned, NUL-terminated strings in an arena.               */

typedef struct str_slot {
  const char *str;  /* NULL: free slot */
  const char *aux;  /* demangled form of str, once computed */
  uint64_t hash;
} str_slot;

typedef struct arena_block {
  struct arena_block *next;
  char data[];
} arena_block;

typedef struct strtab {
  str_slot *slots;
  size_t cap, count;
  arena_block *blocks;
  char *cur;
  size_t left;
} strtab;

#define ARENA_BLOCK 65536

static uint64_t hash_bytes(const char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)p[i];
    h *= 0x100000001b3ull;
  }
  return h ^ (h >> 29);
}

static char *arena_alloc(strtab *t, size_t n) {
  if (n > t->left) {
    size_t sz = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
    arena_block *b = malloc(sizeof(*b) + sz);
    if (!b) return NULL;
    b->next = t->blocks;
    t->blocks = b;
    if (sz == n) {  /* big string: its own block, keep the current one */
      return b->data;
    }
    t->cur = b->data;
    t->left = sz;
  }
  char *r = t->cur;
  t->cur += n;
  t->left -= n;
  return r;
}

static bool strtab_grow(strtab *t) {
  size_t ncap = t->cap ? t->cap * 2 : 1024;
  str_slot *ns = calloc(ncap, sizeof(*ns));
  if (!ns) return false;
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->slots[i].str) continue;
    size_t j = t->slots[i].hash & (ncap - 1);
    while (ns[j].str) j = (j + 1) & (ncap - 1);
    ns[j] = t->slots[i];
  }
  free(t->slots);
  t->slots = ns;
  t->cap = ncap;
  return true;
}

/* Returns the slot holding a copy of s[0..n), or NULL when out of memory. */
static str_slot *strtab_slot(strtab *t, const char *s, size_t n) {
  if ((t->count + 1) * 2 > t->cap && !strtab_grow(t)) return NULL;
  uint64_t h = hash_bytes(s, n);
  size_t j = h & (t->cap - 1);
  while (t->slots[j].str) {
    if (t->slots[j].hash == h && strncmp(t->slots[j].str, s, n) == 0 &&
        t->slots[j].str[n] == '\0')
      return &t->slots[j];
    j = (j + 1) & (t->cap - 1);
  }
  char *copy = arena_alloc(t, n + 1);
  if (!copy) return NULL;
  memcpy(copy, s, n);
  copy[n] = '\0';
  t->slots[j].str = copy;
  t->slots[j].aux = NULL;
  t->slots[j].hash = h;
  t->count++;
  return &t->slots[j];
}

static const char *strtab_intern(strtab *t, const char *s) {
  if (!s) return NULL;
  str_slot *sl = strtab_slot(t, s, strlen(s));
  return sl ? sl->str : NULL;
}

static void strtab_free(strtab *t) {
  arena_block *b = t->blocks;
  while (b) {
    arena_block *next = b->next;
    free(b);
    b = next;
  }
  free(t->slots);
  memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------------ */
/* Sorted address spans with a running maximum of the ends, so that lookups  */
/* stay correct when spans overlap.                                          */

typedef struct span {
  uint64_t lo, hi;  /* [lo, hi) */
  uint32_t order;   /* among spans starting together, the greatest wins */
  uint32_t idx;
} span;

typedef struct spanset {
  span *v;
  uint64_t *maxhi;
  size_t n, cap;
} spanset;

static bool spanset_push(spanset *ss, uint64_t lo, uint64_t hi, uint32_t order, uint32_t idx) {
  if (ss->n == ss->cap) {
    size_t ncap = ss->cap ? ss->cap * 2 : 16;
    span *nv = realloc(ss->v, ncap * sizeof(*nv));
    if (!nv) return false;
    ss->v = nv;
    ss->cap = ncap;
  }
  ss->v[ss->n].lo = lo;
  ss->v[ss->n].hi = hi;
  ss->v[ss->n].order = order;
  ss->v[ss->n].idx = idx;
  ss->n++;
  return true;
}

static int span_cmp(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
  if (x->order != y->order) return x->order < y->order ? -1 : 1;
  return (x->idx > y->idx) - (x->idx < y->idx);
}

static bool spanset_finish(spanset *ss) {
  if (ss->n == 0) return true;
  qsort(ss->v, ss->n, sizeof(span), span_cmp);
  ss->maxhi = malloc(ss->n * sizeof(uint64_t));
  if (!ss->maxhi) {
    ss->n = 0;
    return false;
  }
  uint64_t m = 0;
  for (size_t i = 0; i < ss->n; i++) {
    if (ss->v[i].hi > m) m = ss->v[i].hi;
    ss->maxhi[i] = m;
  }
  return true;
}

/* Index of a span containing pc (the one starting last, and of those the
 * one with the greatest order), or -1. */
static long spanset_find(const spanset *ss, uint64_t pc) {
  size_t lo = 0, hi = ss->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ss->v[mid].lo <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (size_t i = lo; i-- > 0;) {
    if (ss->maxhi[i] <= pc) break;
    if (ss->v[i].hi > pc) return (long)i;
  }
  return -1;
}

static void spanset_free(spanset *ss) {
  free(ss->v);
  free(ss->maxhi);
  memset(ss, 0, sizeof(*ss));
}

/* ------------------------------------------------------------------------ */
/* Modules                                                                   */

typedef struct cu_info {
  Dwarf_Die cudie;   /* unit DIE: owner of the line table */
  Dwarf_Die topdie;  /* DIE whose subtree holds the functions (split unit) */
  bool indexed;
  spanset funcs;     /* idx -> fdies[] */
  Dwarf_Die *fdies;
  size_t nfdies, capfdies;
} cu_info;

typedef struct cache_slot {
  uint64_t addr;
  uint32_t first;  /* index into the symbolizer's frame array */
  uint16_t count;  /* frames (0: nothing known) */
  uint16_t used;
} cache_slot;

/* One file on disk (one inode), however many handles name it: a snapshot
 * may name one library under many spellings (a/./b, a//b, links), and each
 * would otherwise load its symbols and DWARF again. */
typedef struct sm_module {
  sm_symbolizer_t *owner;
  char *path;        /* the first name it was opened by */
  dev_t dev;
  ino_t ino;

  sm_sym_status_t status; /* OK or MISSING (not an ELF file libdwfl can read) */
  Dwfl *dwfl;
  Dwfl_Module *mod;
  uint64_t bias;     /* dwfl address = file vaddr + bias */
  uint8_t *file_id;  /* build-id of the file at path */
  size_t file_id_len;
  uint64_t (*segs)[2];  /* executable PT_LOAD ranges, file vaddrs */
  size_t nsegs;

  bool dw_tried;
  Dwarf *dw;
  uint64_t dw_off;   /* DWARF address = file vaddr + dw_off (mod 2^64) */
  cu_info *cus;
  size_t ncus;
  spanset cu_spans;  /* idx -> cus[] */

  bool syms_tried;
  spanset syms;        /* ELF symbols, dwfl addresses; idx -> symnames[] */
  const char **symnames;

  cache_slot *cache;
  size_t cache_cap, cache_count;
} sm_module;

/* A registered (path, build-id): what sm_sym_add_module hands out. */
typedef struct sm_handle {
  char *path;
  uint8_t *want_id;  /* build-id recorded by the tracer, or NULL */
  size_t want_len;
  bool opened;
  sm_sym_status_t status;
  sm_module *file;   /* when status is SM_SYM_OK */
} sm_handle;

/* Files opened at most: past this, further modules are not read (their
 * frames stay offsets). The tracer records at most 4096 modules. */
#define MAX_FILES 4096

struct sm_symbolizer {
  sm_handle **hands;
  size_t nhands, caphands;
  int *handtab;  /* open addressing: index into hands by (path, build-id), -1 free */
  size_t handtab_cap;
  sm_module **mods;  /* the files */
  size_t nmods, capmods;
  int *filetab;  /* open addressing: index into mods by (dev, inode), -1 free */
  size_t filetab_cap;
  char **dirs;  /* debug directories, SNAPMALLOC_DEBUG_DIRS first */
  size_t ndirs;
  strtab strings;
  sm_sym_frame_t *frames;
  size_t nframes, capframes;
};

/* ------------------------------------------------------------------------ */
/* Small file helpers                                                        */

static void hex_id(char *out, const uint8_t *id, size_t len) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[id[i] >> 4];
    out[2 * i + 1] = digits[id[i] & 15];
  }
  out[2 * len] = '\0';
}

/* DIR/.build-id/xx/rest.debug into buf; false if it does not fit. */
static bool build_id_path(char *buf, size_t cap, const char *dir, const uint8_t *id, size_t len) {
  if (len < 2 || len > 64) return false;
  char hex[129];
  hex_id(hex, id, len);
  int n = snprintf(buf, cap, "%s/.build-id/%.2s/%s.debug", dir, hex, hex + 2);
  return n > 0 && (size_t)n < cap;
}

static uint32_t crc_table[256];
static bool crc_ready;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    crc_table[i] = c;
  }
  crc_ready = true;
}

/* CRC-32 of a whole file, as .gnu_debuglink records it. */
static bool file_crc32(int fd, uint32_t *out) {
  if (!crc_ready) crc_init();
  unsigned char buf[65536];
  uint32_t c = 0xFFFFFFFFu;
  off_t pos = 0;
  for (;;) {
    ssize_t r = pread(fd, buf, sizeof(buf), pos);
    if (r < 0) return false;
    if (r == 0) break;
    for (ssize_t i = 0; i < r; i++) c = crc_table[(c ^ buf[i]) & 0xFF] ^ (c >> 8);
    pos += r;
  }
  *out = c ^ 0xFFFFFFFFu;
  return true;
}

/* Opens path read-only if it is a regular file, or returns -1. O_NONBLOCK
 * keeps a FIFO from blocking the open, and fstat then refuses it: the path
 * comes from an untrusted snapshot (or a file it names), and must never
 * make us wait on a FIFO or read a device. */
static int open_regular(const char *path, struct stat *st) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -1;
  struct stat tmp;
  if (!st) st = &tmp;
  if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Opens path as a debug-file candidate.  Accepted when it is a regular ELF
 * file other than `self` whose build-id equals id (if id is given and the
 * candidate has one), else whose CRC equals crc (if check_crc).  Returns an
 * fd or -1. */
static int open_candidate(const char *path, const uint8_t *id, size_t idlen, bool check_crc,
                          uint32_t crc, const struct stat *self) {
  struct stat st;
  int fd = open_regular(path, &st);
  if (fd < 0) return -1;
  if (self && st.st_dev == self->st_dev && st.st_ino == self->st_ino) {
    close(fd);
    return -1;
  }
  bool ok = false;
  Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  if (elf && elf_kind(elf) == ELF_K_ELF) {
    const void *bits = NULL;
    ssize_t n = dwelf_elf_gnu_build_id(elf, &bits);
    if (idlen > 0 && n > 0) {
      ok = (size_t)n == idlen && memcmp(bits, id, idlen) == 0;
    } else if (check_crc) {
      uint32_t c;
      ok = file_crc32(fd, &c) && c == crc;
    } else {
      ok = idlen == 0;
    }
  }
  if (elf) elf_end(elf);
  if (!ok) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads .gnu_debugaltlink of a file: the alternate file's name and
 * build-id.  False if the file has none. */
static bool read_altlink(const char *path, char *name, size_t namecap, uint8_t *id, size_t *idlen) {
  int fd = open_regular(path, NULL);
  if (fd < 0) return false;
  bool found = false;
  Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  size_t shstrndx;
  if (elf && elf_kind(elf) == ELF_K_ELF && elf_getshdrstrndx(elf, &shstrndx) == 0) {
    Elf_Scn *scn = NULL;
    while (!found && (scn = elf_nextscn(elf, scn)) != NULL) {
      GElf_Shdr sh;
      if (!gelf_getshdr(scn, &sh)) continue;
      const char *sname = elf_strptr(elf, shstrndx, sh.sh_name);
      if (!sname || strcmp(sname, ".gnu_debugaltlink") != 0) continue;
      Elf_Data *d = elf_getdata(scn, NULL);
      if (!d || !d->d_buf || d->d_size == 0) break;
      const char *p = d->d_buf;
      size_t nl = strnlen(p, d->d_size);
      if (nl == d->d_size || nl + 1 > namecap) break;
      size_t il = d->d_size - nl - 1;
      if (il == 0 || il > 64) break;
      memcpy(name, p, nl + 1);
      memcpy(id, p + nl + 1, il);
      *idlen = il;
      found = true;
    }
  }
  if (elf) elf_end(elf);
  close(fd);
  return found;
}

static int give_fd(int fd, const char *path, char **out_name) {
  char *dup = strdup(path);
  if (!dup) {
    close(fd);
    return -1;
  }
  *out_name = dup;
  return fd;
}

/* Dwfl find_debuginfo callback.  Called for the module's debug file and,
 * once DWARF is loaded, for its dwz alternate file. */
static int find_debuginfo_cb(Dwfl_Module *mod, void **userdata, const char *modname,
                             Dwarf_Addr base, const char *file_name, const char *debuglink,
                             GElf_Word crc, char **out_name) {
  (void)mod;
  (void)modname;
  (void)base;
  sm_module *m = userdata ? *userdata : NULL;
  if (!m || !file_name) return -1;
  sm_symbolizer_t *s = m->owner;
  char path[PATH_MAX];

  /* Directory of the file that asked, resolved, for relative names. */
  char real[PATH_MAX];
  if (!realpath(file_name, real)) snprintf(real, sizeof(real), "%s", file_name);
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", real);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  else
    snprintf(dir, sizeof(dir), ".");
  struct stat self;
  bool have_self = stat(file_name, &self) == 0;

  /* The dwz alternate file? */
  char altname[PATH_MAX];
  uint8_t altid[64];
  size_t altidlen = 0;
  if (debuglink && crc == 0 &&
      read_altlink(file_name, altname, sizeof(altname), altid, &altidlen) &&
      strcmp(altname, debuglink) == 0) {
    int fd = -1;
    if (altname[0] == '/') {
      fd = open_candidate(altname, altid, altidlen, false, 0, NULL);
      if (fd >= 0) return give_fd(fd, altname, out_name);
    } else {
      int n = snprintf(path, sizeof(path), "%s/%s", dir, altname);
      if (n > 0 && (size_t)n < sizeof(path)) {
        fd = open_candidate(path, altid, altidlen, false, 0, NULL);
        if (fd >= 0) return give_fd(fd, path, out_name);
      }
    }
    for (size_t i = 0; i < s->ndirs; i++) {
      if (!build_id_path(path, sizeof(path), s->dirs[i], altid, altidlen)) continue;
      fd = open_candidate(path, altid, altidlen, false, 0, NULL);
      if (fd >= 0) return give_fd(fd, path, out_name);
    }
    return -1;
  }

  /* The module's own debug file: by build-id first. */
  if (m->file_id_len > 0) {
    for (size_t i = 0; i < s->ndirs; i++) {
      if (!build_id_path(path, sizeof(path), s->dirs[i], m->file_id, m->file_id_len)) continue;
      int fd = open_candidate(path, m->file_id, m->file_id_len, false, 0,
                              have_self ? &self : NULL);
      if (fd >= 0) return give_fd(fd, path, out_name);
    }
  }
  /* Then the .gnu_debuglink conventions. */
  if (debuglink && debuglink[0] && !strchr(debuglink, '/')) {
    const char *fmts[2] = {"%s/%s", "%s/.debug/%s"};
    for (int k = 0; k < 2; k++) {
      int n = snprintf(path, sizeof(path), fmts[k], dir, debuglink);
      if (n <= 0 || (size_t)n >= sizeof(path)) continue;
      int fd = open_candidate(path, m->file_id, m->file_id_len, true, crc,
                              have_self ? &self : NULL);
      if (fd >= 0) return give_fd(fd, path, out_name);
    }
    for (size_t i = 0; i < s->ndirs; i++) {
      int n = snprintf(path, sizeof(path), "%s%s%s/%s", s->dirs[i], dir[0] == '/' ? "" : "/",
                       dir, debuglink);
      if (n <= 0 || (size_t)n >= sizeof(path)) continue;
      int fd = open_candidate(path, m->file_id, m->file_id_len, true, crc,
                              have_self ? &self : NULL);
      if (fd >= 0) return give_fd(fd, path, out_name);
    }
  }
  return -1;
}

/* Dwfl find_elf callback.  Never needed (the file is reported by path) and
 * kept away from dwfl_build_id_find_elf, which may ask a debuginfod server. */
static int find_elf_cb(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                       char **file_name, Elf **elfp) {
  (void)mod;
  (void)userdata;
  (void)modname;
  (void)base;
  (void)file_name;
  (void)elfp;
  return -1;
}

static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = find_elf_cb,
    .find_debuginfo = find_debuginfo_cb,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = NULL,
};

static void module_close(sm_module *m) {
  if (m->dwfl) dwfl_end(m->dwfl);
  m->dwfl = NULL;
  m->mod = NULL;
  m->dw = NULL;
}

/* Reads the file open on fd (consumed) and decides its status. */
static void module_open(sm_module *m, int fd) {
  m->status = SM_SYM_MISSING;
  m->dwfl = dwfl_begin(&offline_callbacks);
  if (!m->dwfl) {
    close(fd);
    return;
  }
  dwfl_report_begin(m->dwfl);
  m->mod = dwfl_report_offline(m->dwfl, sm_base_name(m->path), m->path, fd); /* consumes fd on success */
  dwfl_report_end(m->dwfl, NULL, NULL);
  if (!m->mod) {
    close(fd);
    module_close(m);
    return;
  }
  void **ud = NULL;
  dwfl_module_info(m->mod, &ud, NULL, NULL, NULL, NULL, NULL, NULL);
  if (ud) *ud = m;

  GElf_Addr bias = 0;
  Elf *elf = dwfl_module_getelf(m->mod, &bias);
  if (!elf) {
    module_close(m);
    return;
  }
  m->bias = bias;

  const unsigned char *bits = NULL;
  GElf_Addr id_vaddr;
  int idlen = dwfl_module_build_id(m->mod, &bits, &id_vaddr);
  if (idlen > 0 && bits) {
    m->file_id = malloc((size_t)idlen);
    if (m->file_id) {
      memcpy(m->file_id, bits, (size_t)idlen);
      m->file_id_len = (size_t)idlen;
    }
  }
  /* Executable segments: addresses outside them are not code. */
  size_t nph = 0;
  if (elf_getphdrnum(elf, &nph) == 0 && nph > 0) {
    m->segs = calloc(nph, sizeof(*m->segs));
    if (m->segs) {
      for (int pass = 0; pass < 2 && m->nsegs == 0; pass++) {
        for (size_t i = 0; i < nph; i++) {
          GElf_Phdr ph;
          if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD) continue;
          if (pass == 0 && !(ph.p_flags & PF_X)) continue;
          m->segs[m->nsegs][0] = ph.p_vaddr;
          m->segs[m->nsegs][1] = ph.p_vaddr + ph.p_memsz;
          m->nsegs++;
        }
      }
    }
  }
  m->status = SM_SYM_OK;
}

static bool module_has_code_at(const sm_module *m, uint64_t vaddr) {
  if (m->nsegs == 0) return true;  /* no program headers (ET_REL): cannot tell */
  for (size_t i = 0; i < m->nsegs; i++)
    if (vaddr >= m->segs[i][0] && vaddr < m->segs[i][1]) return true;
  return false;
}

/* ------------------------------------------------------------------------ */
/* DWARF index                                                               */

static bool cu_add_func(cu_info *ci, Dwarf_Die *die) {
  Dwarf_Addr base, lo, hi;
  ptrdiff_t off = 0;
  bool added = false;
  uint32_t idx = (uint32_t)ci->nfdies;
  while ((off = dwarf_ranges(die, off, &base, &lo, &hi)) > 0) {
    if (hi <= lo) continue;
    if (!added) {
      if (ci->nfdies == ci->capfdies) {
        size_t ncap = ci->capfdies ? ci->capfdies * 2 : 16;
        Dwarf_Die *nv = realloc(ci->fdies, ncap * sizeof(*nv));
        if (!nv) return false;
        ci->fdies = nv;
        ci->capfdies = ncap;
      }
      ci->fdies[ci->nfdies++] = *die;
      added = true;
    }
    if (!spanset_push(&ci->funcs, lo, hi, 0, idx)) return false;
  }
  return true;
}

static void cu_index_scope(cu_info *ci, Dwarf_Die *parent, int depth) {
  Dwarf_Die child;
  if (depth > MAX_SCOPE_DEPTH || dwarf_child(parent, &child) != 0) return;
  do {
    switch (dwarf_tag(&child)) {
      case DW_TAG_subprogram:
        cu_add_func(ci, &child);
        break;
      case DW_TAG_namespace:
      case DW_TAG_module:
      case DW_TAG_class_type:
      case DW_TAG_structure_type:
      case DW_TAG_union_type:
      case DW_TAG_interface_type:
        cu_index_scope(ci, &child, depth + 1);
        break;
      default:
        break;
    }
  } while (dwarf_siblingof(&child, &child) == 0);
}

static void cu_index(cu_info *ci) {
  if (ci->indexed) return;
  ci->indexed = true;
  cu_index_scope(ci, &ci->topdie, 0);
  spanset_finish(&ci->funcs);
}

static void module_dwarf_init(sm_module *m) {
  if (m->dw_tried) return;
  m->dw_tried = true;
  Dwarf_Addr dwbias = 0;
  Dwarf *dw = dwfl_module_getdwarf(m->mod, &dwbias);
  if (!dw) return;
  m->dw = dw;
  m->dw_off = m->bias - dwbias;

  size_t cap = 0;
  Dwarf_CU *cu = NULL, *next = NULL;
  for (;;) {
    Dwarf_Half version;
    uint8_t unit_type;
    Dwarf_Die cudie, subdie;
    memset(&subdie, 0, sizeof(subdie));
    if (dwarf_get_units(dw, cu, &next, &version, &unit_type, &cudie, &subdie) != 0) break;
    cu = next;
    if (unit_type == DW_UT_type || unit_type == DW_UT_split_type) continue;
    int tag = dwarf_tag(&cudie);
    if (tag != DW_TAG_compile_unit && tag != DW_TAG_partial_unit &&
        tag != DW_TAG_skeleton_unit)
      continue;
    if (m->ncus == cap) {
      size_t ncap = cap ? cap * 2 : 64;
      cu_info *nv = realloc(m->cus, ncap * sizeof(*nv));
      if (!nv) break;
      m->cus = nv;
      cap = ncap;
    }
    cu_info *ci = &m->cus[m->ncus];
    memset(ci, 0, sizeof(*ci));
    ci->cudie = cudie;
    ci->topdie = (unit_type == DW_UT_skeleton && subdie.cu != NULL) ? subdie : cudie;
    uint32_t idx = (uint32_t)m->ncus;

    Dwarf_Addr base, lo, hi;
    ptrdiff_t off = 0;
    bool any = false;
    while ((off = dwarf_ranges(&cudie, off, &base, &lo, &hi)) > 0) {
      if (hi <= lo) continue;
      spanset_push(&m->cu_spans, lo, hi, 0, idx);
      any = true;
    }
    if (!any) {
      /* A unit without address ranges: index its functions now and let
       * their ranges stand for the unit. */
      cu_index(ci);
      for (size_t i = 0; i < ci->funcs.n; i++) {
        spanset_push(&m->cu_spans, ci->funcs.v[i].lo, ci->funcs.v[i].hi, 0, idx);
        any = true;
      }
    }
    if (any) {
      m->ncus++;
    } else {
      spanset_free(&ci->funcs);
      free(ci->fdies);
    }
  }
  spanset_finish(&m->cu_spans);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

static const char *demangled(sm_symbolizer_t *s, const char *name) {
  if (!name) return NULL;
  str_slot *sl = strtab_slot(&s->strings, name, strlen(name));
  if (!sl) return NULL;
  if (sl->aux) return sl->aux;
  const char *result = sl->str;
  if (name[0] == '_' && name[1] == 'Z') {
    int status = -1;
    char *d = __cxa_demangle(name, NULL, NULL, &status);
    if (d && status == 0) {
      const char *in = strtab_intern(&s->strings, d);
      if (in) result = in;
    }
    free(d);
    /* the table may have been rehashed: look the slot up again */
    sl = strtab_slot(&s->strings, name, strlen(name));
    if (!sl) return result;
  }
  sl->aux = result;
  return result;
}

/* A function DIE's name: its mangled linkage name demangled (C++: with scope
 * and parameters); otherwise DW_AT_name.  A linkage name that is not
 * mangled is only an assembler label (glibc's __GI_ aliases, asm("...")),
 * so the source name is preferred to it. */
static const char *die_function_name(sm_symbolizer_t *s, Dwarf_Die *die, bool *from_mangled) {
  Dwarf_Attribute attr;
  const char *link = NULL, *name = NULL;
  *from_mangled = false;
  if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr)) link = dwarf_formstring(&attr);
  if (!link && dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
    link = dwarf_formstring(&attr);
  if (link && link[0] == '_' && link[1] == 'Z') {
    const char *d = demangled(s, link);
    if (d && strcmp(d, link) != 0) {
      *from_mangled = true;
      return d;
    }
  }
  if (dwarf_attr_integrate(die, DW_AT_name, &attr)) name = dwarf_formstring(&attr);
  if (name && name[0]) return strtab_intern(&s->strings, name);
  return (link && link[0]) ? demangled(s, link) : NULL;
}

/* Preference among symbols at one address (lower is better): global, then
 * weak, then local; then fewer leading underscores (malloc over
 * __libc_malloc over __GI___libc_malloc); then shorter. */
static uint32_t symbol_rank(const GElf_Sym *sym, const char *name) {
  uint32_t bind;
  switch (GELF_ST_BIND(sym->st_info)) {
    case STB_GLOBAL: bind = 0; break;
    case STB_WEAK: bind = 1; break;
    case STB_LOCAL: bind = 2; break;
    default: bind = 3; break;
  }
  uint32_t under = 0;
  while (name[under] == '_' && under < 9) under++;
  size_t len = strlen(name);
  return bind * 1000000u + under * 10000u + (uint32_t)(len < 9999 ? len : 9999);
}

typedef struct sym_tmp {
  uint64_t lo, size;
  uint32_t rank;
  const char *name;
} sym_tmp;

static int sym_tmp_cmp(const void *a, const void *b) {
  const sym_tmp *x = a, *y = b;
  if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
  return (x->rank > y->rank) - (x->rank < y->rank);
}

/* Indexes the module's function symbols (whichever table dwfl found:
 * .symtab of the file or its debug file, .dynsym, MiniDebugInfo). */
static void module_symtab_init(sm_module *m) {
  if (m->syms_tried) return;
  m->syms_tried = true;
  int nsym = dwfl_module_getsymtab(m->mod);
  if (nsym <= 1) return;
  sym_tmp *tmp = malloc((size_t)nsym * sizeof(*tmp));
  if (!tmp) return;
  size_t n = 0;
  for (int i = 1; i < nsym; i++) {
    GElf_Sym sym;
    GElf_Addr addr;
    GElf_Word shndx;
    const char *name = dwfl_module_getsym_info(m->mod, i, &sym, &addr, &shndx, NULL, NULL);
    if (!name || !name[0] || shndx == SHN_UNDEF || shndx == SHN_ABS) continue;
    int type = GELF_ST_TYPE(sym.st_info);
    if (type != STT_FUNC && type != STT_GNU_IFUNC && !(type == STT_NOTYPE && sym.st_size > 0))
      continue;
    if (name[0] == '$' || (name[0] == '.' && name[1] == 'L')) continue;
    tmp[n].lo = addr;
    tmp[n].size = sym.st_size;
    tmp[n].rank = symbol_rank(&sym, name);
    tmp[n].name = name;
    n++;
  }
  qsort(tmp, n, sizeof(*tmp), sym_tmp_cmp);
  m->symnames = malloc((n ? n : 1) * sizeof(*m->symnames));
  if (!m->symnames) {
    free(tmp);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t hi = tmp[i].lo + tmp[i].size;
    if (tmp[i].size == 0) {
      /* Sizeless: up to the next symbol, within a page. */
      size_t j = i + 1;
      while (j < n && tmp[j].lo == tmp[i].lo) j++;
      hi = tmp[i].lo + 4096;
      if (j < n && tmp[j].lo < hi) hi = tmp[j].lo;
      if (hi <= tmp[i].lo) hi = tmp[i].lo + 1;
    }
    if (hi < tmp[i].lo) hi = UINT64_MAX;
    m->symnames[i] = tmp[i].name;
    /* Greater order wins among symbols at the same address: invert rank. */
    if (!spanset_push(&m->syms, tmp[i].lo, hi, UINT32_MAX - tmp[i].rank, (uint32_t)i)) break;
  }
  free(tmp);
  spanset_finish(&m->syms);
}

/* Name of the ELF symbol containing addr (demangled), or NULL.  *raw gets
 * the symbol's name as it is in the table. */
static const char *symtab_name(sm_symbolizer_t *s, sm_module *m, uint64_t addr, const char **raw) {
  module_symtab_init(m);
  long i = m->syms.n ? spanset_find(&m->syms, addr) : -1;
  const char *r = i >= 0 ? m->symnames[m->syms.v[i].idx] : NULL;
  if (raw) *raw = r;
  return r ? demangled(s, r) : NULL;
}

/* Source path of a line-table or call-site file name: relative names are
 * put under the unit's compilation directory when that is absolute, and
 * absolute results are cleaned lexically ("." and "dir/.." removed). */
static const char *source_path(sm_symbolizer_t *s, Dwarf_Die *cudie, const char *raw) {
  if (!raw) return NULL;
  char buf[PATH_MAX * 2];
  const char *path = raw;
  if (raw[0] != '/') {
    Dwarf_Attribute attr;
    const char *comp = NULL;
    if (cudie && dwarf_attr(cudie, DW_AT_comp_dir, &attr)) comp = dwarf_formstring(&attr);
    if (!comp || comp[0] != '/') return strtab_intern(&s->strings, raw);
    int n = snprintf(buf, sizeof(buf), "%s/%s", comp, raw);
    if (n < 0 || (size_t)n >= sizeof(buf)) return strtab_intern(&s->strings, raw);
    path = buf;
  }
  /* Lexical clean-up of an absolute path into out. */
  char out[PATH_MAX * 2];
  size_t len = 0;
  const char *p = path;
  while (*p) {
    while (*p == '/') p++;
    const char *e = p;
    while (*e && *e != '/') e++;
    size_t cl = (size_t)(e - p);
    if (cl == 0 || (cl == 1 && p[0] == '.')) {
      /* skip */
    } else if (cl == 2 && p[0] == '.' && p[1] == '.') {
      while (len > 0 && out[len - 1] != '/') len--;
      if (len > 0) len--;  /* the slash; at the root ".." stays at the root */
    } else {
      if (len + 1 + cl >= sizeof(out)) return strtab_intern(&s->strings, path);
      out[len++] = '/';
      memcpy(out + len, p, cl);
      len += cl;
    }
    p = e;
  }
  if (len == 0) out[len++] = '/';
  out[len] = '\0';
  return strtab_intern(&s->strings, out);
}

/* Call site of an inlined-subroutine DIE. */
static void call_site(sm_symbolizer_t *s, Dwarf_Die *inl, const char **file, int *line) {
  Dwarf_Attribute attr;
  Dwarf_Word v;
  *file = NULL;
  *line = 0;
  if (dwarf_attr(inl, DW_AT_call_line, &attr) && dwarf_formudata(&attr, &v) == 0 && v <= INT_MAX)
    *line = (int)v;
  if (dwarf_attr(inl, DW_AT_call_file, &attr) && dwarf_formudata(&attr, &v) == 0) {
    Dwarf_Die cudie;
    Dwarf_Files *files;
    size_t nfiles;
    if (dwarf_diecu(inl, &cudie, NULL, NULL) && dwarf_getsrcfiles(&cudie, &files, &nfiles) == 0 &&
        v < nfiles)
      *file = source_path(s, &cudie, dwarf_filesrc(files, v, NULL, NULL));
  }
}

/* Walks down from a function DIE through the scopes containing pc.  Fills
 * chain[0..n): chain[0] the concrete function, then each inlined subroutine
 * inward. */
static int function_chain(Dwarf_Die *fn, uint64_t pc, Dwarf_Die *chain) {
  int n = 0;
  chain[n++] = *fn;
  Dwarf_Die cur = *fn;
  for (int guard = 0; guard < 1024; guard++) {
    Dwarf_Die child;
    if (dwarf_child(&cur, &child) != 0) break;
    int tag = 0;
    bool found = false;
    do {
      tag = dwarf_tag(&child);
      if (tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block ||
          tag == DW_TAG_try_block || tag == DW_TAG_catch_block || tag == DW_TAG_subprogram) {
        if (dwarf_haspc(&child, pc) == 1) {
          found = true;
          break;
        }
      }
    } while (dwarf_siblingof(&child, &child) == 0);
    if (!found) break;
    if (tag == DW_TAG_subprogram) {
      n = 0;  /* a nested function: it is the real frame */
      chain[n++] = child;
    } else if (tag == DW_TAG_inlined_subroutine && n < MAX_CHAIN) {
      chain[n++] = child;
    }
    cur = child;
  }
  return n;
}

/* ------------------------------------------------------------------------ */
/* Frames and the cache                                                      */

static bool frames_reserve(sm_symbolizer_t *s, size_t more) {
  if (s->nframes + more <= s->capframes) return true;
  if (s->nframes + more > UINT32_MAX) return false;
  size_t ncap = s->capframes ? s->capframes : 1024;
  while (ncap < s->nframes + more) ncap *= 2;
  sm_sym_frame_t *nv = realloc(s->frames, ncap * sizeof(*nv));
  if (!nv) return false;
  s->frames = nv;
  s->capframes = ncap;
  return true;
}

static inline size_t cache_hash(uint64_t a, size_t cap) {
  a ^= a >> 33;
  a *= 0xff51afd7ed558ccdull;
  a ^= a >> 33;
  return (size_t)a & (cap - 1);
}

static cache_slot *cache_find(sm_module *m, uint64_t addr) {
  if (!m->cache) return NULL;
  size_t j = cache_hash(addr, m->cache_cap);
  while (m->cache[j].used) {
    if (m->cache[j].addr == addr) return &m->cache[j];
    j = (j + 1) & (m->cache_cap - 1);
  }
  return NULL;
}

static void cache_put(sm_module *m, uint64_t addr, uint32_t first, uint16_t count) {
  if ((m->cache_count + 1) * 2 > m->cache_cap) {
    size_t ncap = m->cache_cap ? m->cache_cap * 2 : 1024;
    cache_slot *nv = calloc(ncap, sizeof(*nv));
    if (!nv) return;  /* no caching then; still correct */
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

/* Symbolizes one file vaddr; appends the frames to s->frames and returns how
 * many (0: nothing known, or out of memory). */
static int resolve(sm_symbolizer_t *s, sm_module *m, uint64_t vaddr) {
  if (!module_has_code_at(m, vaddr)) return 0;
  uint64_t addr = vaddr + m->bias;  /* dwfl address */

  module_dwarf_init(m);
  Dwarf_Die chain[MAX_CHAIN];
  int depth = 0;
  const char *file = NULL;
  int line = 0;
  bool have_line = false;
  if (m->dw) {
    uint64_t pc = vaddr + m->dw_off;
    long ci_at = spanset_find(&m->cu_spans, pc);
    if (ci_at >= 0) {
      cu_info *ci = &m->cus[m->cu_spans.v[ci_at].idx];
      cu_index(ci);
      Dwarf_Line *ln = dwarf_getsrc_die(&ci->cudie, pc);
      if (ln) {
        int l = 0;
        if (dwarf_lineno(ln, &l) == 0 && l > 0) line = l;
        file = source_path(s, &ci->cudie, dwarf_linesrc(ln, NULL, NULL));
        have_line = file != NULL || line != 0;
      }
      long f = ci->funcs.n ? spanset_find(&ci->funcs, pc) : -1;
      if (f >= 0) depth = function_chain(&ci->fdies[ci->funcs.v[f].idx], pc, chain);
    }
  }

  if (depth > 0) {
    if (!frames_reserve(s, (size_t)depth)) return 0;
    sm_sym_frame_t *out = &s->frames[s->nframes];
    bool mangled = false;
    for (int k = 0; k < depth; k++) {
      Dwarf_Die *die = &chain[depth - 1 - k];
      out[k].function = die_function_name(s, die, &mangled);
      if (k == 0) {
        out[k].file = file;
        out[k].line = line;
      } else {
        call_site(s, &chain[depth - k], &out[k].file, &out[k].line);
      }
      out[k].inlined = k < depth - 1;
    }
    /* The real function: when DWARF has only its plain name (no mangled
     * linkage name, as for some C++ template and lambda members), a
     * mangled symbol gives its full, qualified name. */
    if (!mangled) {
      const char *raw = NULL;
      const char *sname = symtab_name(s, m, addr, &raw);
      bool better = sname && raw && raw[0] == '_' && raw[1] == 'Z' && strcmp(sname, raw) != 0;
      if (!out[depth - 1].function || better)
        out[depth - 1].function = sname ? sname : out[depth - 1].function;
    }
    s->nframes += (size_t)depth;
    return depth;
  }

  const char *name = symtab_name(s, m, addr, NULL);
  if (!name && !have_line) return 0;
  if (!frames_reserve(s, 1)) return 0;
  sm_sym_frame_t *out = &s->frames[s->nframes++];
  out->function = name;
  out->file = file;
  out->line = line;
  out->inlined = false;
  return 1;
}

/* ------------------------------------------------------------------------ */
/* API                                                                       */

static bool add_dir(sm_symbolizer_t *s, const char *d, size_t len) {
  while (len > 1 && d[len - 1] == '/') len--;
  if (len == 0) return true;
  for (size_t i = 0; i < s->ndirs; i++)
    if (strlen(s->dirs[i]) == len && strncmp(s->dirs[i], d, len) == 0) return true;
  char **nv = realloc(s->dirs, (s->ndirs + 1) * sizeof(*nv));
  if (!nv) return false;
  s->dirs = nv;
  char *copy = strndup(d, len);
  if (!copy) return false;
  s->dirs[s->ndirs++] = copy;
  return true;
}

sm_symbolizer_t *sm_sym_new(void) {
  elf_version(EV_CURRENT);
  sm_symbolizer_t *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  const char *env = getenv("SNAPMALLOC_DEBUG_DIRS");
  bool ok = true;
  if (env) {
    const char *p = env;
    while (ok) {
      const char *colon = strchr(p, ':');
      size_t len = colon ? (size_t)(colon - p) : strlen(p);
      ok = add_dir(s, p, len);
      if (!colon) break;
      p = colon + 1;
    }
  }
  if (ok) ok = add_dir(s, SYS_DEBUG_DIR, strlen(SYS_DEBUG_DIR));
  if (!ok) {
    sm_sym_free(s);
    return NULL;
  }
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
    sm_module *m = s->mods[i];
    module_close(m);
    for (size_t c = 0; c < m->ncus; c++) {
      spanset_free(&m->cus[c].funcs);
      free(m->cus[c].fdies);
    }
    free(m->cus);
    spanset_free(&m->cu_spans);
    spanset_free(&m->syms);
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
  strtab_free(&s->strings);
  free(s);
}

static uint64_t handle_hash(const char *path, const uint8_t *id, size_t idlen) {
  return hash_bytes(path, strlen(path)) * 31 + hash_bytes((const char *)id, idlen);
}

static bool handle_is(const sm_handle *h, const char *path, const uint8_t *id, size_t idlen) {
  return h->want_len == idlen && strcmp(h->path, path) == 0 && (idlen == 0 || memcmp(h->want_id, id, idlen) == 0);
}

/* Rebuilds the handle index with room for twice the handles. */
static bool handtab_grow(sm_symbolizer_t *s) {
  size_t ncap = s->handtab_cap ? s->handtab_cap * 2 : 64;
  int *nt = malloc(ncap * sizeof(*nt));
  if (!nt) return false;
  for (size_t i = 0; i < ncap; i++) nt[i] = -1;
  for (size_t i = 0; i < s->nhands; i++) {
    const sm_handle *h = s->hands[i];
    size_t j = handle_hash(h->path, h->want_id, h->want_len) & (ncap - 1);
    while (nt[j] >= 0) j = (j + 1) & (ncap - 1);
    nt[j] = (int)i;
  }
  free(s->handtab);
  s->handtab = nt;
  s->handtab_cap = ncap;
  return true;
}

int sm_sym_add_module(sm_symbolizer_t *s, const char *path, const uint8_t *build_id,
                      size_t build_id_len) {
  if (!s || !path) return -1;
  if (!build_id) build_id_len = 0;
  if ((s->nhands + 1) * 2 > s->handtab_cap && !handtab_grow(s)) return -1;
  size_t j = handle_hash(path, build_id, build_id_len) & (s->handtab_cap - 1);
  for (; s->handtab[j] >= 0; j = (j + 1) & (s->handtab_cap - 1))
    if (handle_is(s->hands[s->handtab[j]], path, build_id, build_id_len)) return s->handtab[j];
  if (s->nhands >= INT_MAX) return -1;
  if (s->nhands == s->caphands) {
    size_t ncap = s->caphands ? s->caphands * 2 : 16;
    sm_handle **nv = realloc(s->hands, ncap * sizeof(*nv));
    if (!nv) return -1;
    s->hands = nv;
    s->caphands = ncap;
  }
  sm_handle *h = calloc(1, sizeof(*h));
  if (!h) return -1;
  h->path = strdup(path);
  if (build_id_len) {
    h->want_id = malloc(build_id_len);
    if (h->want_id) memcpy(h->want_id, build_id, build_id_len);
  }
  if (!h->path || (build_id_len && !h->want_id)) {
    free(h->path);
    free(h->want_id);
    free(h);
    return -1;
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

/* The file with st's device and inode: the one already read, or a new one
 * read from fd. Consumes fd. NULL when out of memory or past MAX_FILES. */
static sm_module *file_get(sm_symbolizer_t *s, const char *path, const struct stat *st, int fd) {
  if (s->filetab_cap == 0 || (s->nmods + 1) * 2 > s->filetab_cap) {
    size_t ncap = s->filetab_cap ? s->filetab_cap * 2 : 64;
    int *nt = malloc(ncap * sizeof(*nt));
    if (!nt) goto fail;
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
  size_t j = file_hash(st->st_dev, st->st_ino, s->filetab_cap);
  for (; s->filetab[j] >= 0; j = (j + 1) & (s->filetab_cap - 1)) {
    sm_module *m = s->mods[s->filetab[j]];
    if (m->dev == st->st_dev && m->ino == st->st_ino) {
      close(fd);
      return m;
    }
  }
  if (s->nmods >= MAX_FILES) goto fail;
  if (s->nmods == s->capmods) {
    size_t ncap = s->capmods ? s->capmods * 2 : 16;
    sm_module **nv = realloc(s->mods, ncap * sizeof(*nv));
    if (!nv) goto fail;
    s->mods = nv;
    s->capmods = ncap;
  }
  sm_module *m = calloc(1, sizeof(*m));
  if (!m || !(m->path = strdup(path))) {
    free(m);
    goto fail;
  }
  m->owner = s;
  m->dev = st->st_dev;
  m->ino = st->st_ino;
  s->mods[s->nmods] = m;
  s->filetab[j] = (int)s->nmods++;
  module_open(m, fd);
  return m;
fail:
  close(fd);
  return NULL;
}

/* Opens a handle's file and decides its status; idempotent. */
static void handle_open(sm_symbolizer_t *s, sm_handle *h) {
  if (h->opened) return;
  h->opened = true;
  h->status = SM_SYM_MISSING;
  struct stat st;
  int fd = open_regular(h->path, &st);
  if (fd < 0) return;
  sm_module *m = file_get(s, h->path, &st, fd);
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
  sm_handle *h = s->hands[module];
  handle_open(s, h);
  return h->status;
}

int sm_sym_lookup(sm_symbolizer_t *s, int module, uint64_t vaddr, bool is_return_address,
                  sm_sym_frame_t *out, int max) {
  if (!s || !out || max <= 0 || module < 0 || (size_t)module >= s->nhands) return 0;
  sm_handle *h = s->hands[module];
  handle_open(s, h);
  if (h->status != SM_SYM_OK) return 0;
  sm_module *m = h->file;
  if (is_return_address) vaddr -= 1;

  uint32_t first;
  int n;
  cache_slot *c = cache_find(m, vaddr);
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
