/* The module map: every object loaded into the process (executable, shared
 * libraries, dlopen'd ones) with its address range, load bias, path and GNU
 * build-id, read from dl_iterate_phdr. Entries are never removed, so a frame
 * in a library that was dlclose'd later still names it; when another object
 * (or the same one again) is loaded over the same range, it gets a new entry
 * and lookups prefer the newer one.
 * The table is refreshed when the loader reports new objects (dlpi_adds).
 * Each new object is also shown to python.c, which looks for a CPython
 * interpreter in its dynamic symbol table (sm_module_symbol): that is the
 * only place a program pays for Python support, once per loaded object. */
#include <elf.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tracer/python.h"
#include "tracer/tracer.h"

#define MODULES_MAX 4096

static sm_lock_t mod_lock = SM_LOCK_INIT; /* lock order: tracer/locks.c */
sm_lock_t *const sm_mod_lock_ref = &mod_lock;
static sm_module_t *mods; /* MODULES_MAX entries from the metadata arena */
static uint32_t mod_count;
static unsigned long long seen_adds = ~0ULL;

static void copy_str(char *dst, size_t cap, const char *src) {
  size_t i = 0;
  for (; src && src[i] && i + 1 < cap; i++) dst[i] = src[i];
  dst[i] = '\0';
}

static void read_build_id(const struct dl_phdr_info *info, sm_module_t *m) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE) continue;
    const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
    const uint8_t *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
      const uint8_t *name = p + sizeof *nh;
      const uint8_t *desc = name + sm_align_up(nh->n_namesz, 4);
      if (desc + nh->n_descsz > end) break;
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
        m->build_id_len = nh->n_descsz > sizeof m->build_id ? sizeof m->build_id : nh->n_descsz;
        memcpy(m->build_id, desc, m->build_id_len);
        return;
      }
      p = desc + sm_align_up(nh->n_descsz, 4);
    }
  }
}

/* The lowest and highest addresses of an object's PT_LOAD segments; false
 * if it has none. */
static bool load_range(const struct dl_phdr_info *info, uintptr_t *lo, uintptr_t *hi) {
  *lo = UINTPTR_MAX;
  *hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr;
    if (a < *lo) *lo = a;
    if (a + ph->p_memsz > *hi) *hi = a + ph->p_memsz;
  }
  return *hi != 0;
}

/* ---- symbols of a loaded object, read from its image in memory (no file,
 * no dlsym: this runs inside dl_iterate_phdr, under the loader's lock,
 * possibly inside malloc). Every read is checked to lie inside the
 * object's loaded range. */
typedef struct image {
  uintptr_t lo, hi, bias;
} image_t;

static bool in_image(const image_t *im, uintptr_t p, size_t n) {
  return p >= im->lo && p <= im->hi && n <= im->hi - p;
}

/* A dynamic-section pointer: the loader relocates most of them in place,
 * not all (the vDSO's); an address below the object is still relative. */
static uintptr_t dyn_ptr(const image_t *im, uintptr_t v) { return v < im->lo ? v + im->bias : v; }

static uint32_t gnu_hash(const char *s) {
  uint32_t h = 5381;
  for (; *s; s++) h = h * 33 + (uint8_t)*s;
  return h;
}

static uint32_t sysv_hash(const char *s) {
  uint32_t h = 0;
  for (; *s; s++) {
    h = (h << 4) + (uint8_t)*s;
    uint32_t g = h & 0xf0000000u;
    if (g) h ^= g >> 24;
    h &= ~g;
  }
  return h;
}

typedef struct dynsyms {
  const ElfW(Sym) *sym;
  const char *str;
  size_t strsz;
} dynsyms_t;

/* Whether symbol i is a definition named `name`; fills addr and size. */
static bool sym_is(const image_t *im, const dynsyms_t *d, uint32_t i, const char *name, size_t len,
                   uintptr_t *addr, size_t *size) {
  const ElfW(Sym) *s = &d->sym[i];
  if (!in_image(im, (uintptr_t)s, sizeof *s)) return false;
  if (s->st_name >= d->strsz || d->strsz - s->st_name <= len) return false;
  if (memcmp(d->str + s->st_name, name, len + 1) != 0) return false;
  if (s->st_shndx == SHN_UNDEF || s->st_value == 0) return false;
  *addr = im->bias + s->st_value;
  *size = s->st_size;
  return true;
}

static bool lookup_gnu(const image_t *im, const dynsyms_t *d, const uint32_t *t, const char *name,
                       uintptr_t *addr, size_t *size) {
  if (!in_image(im, (uintptr_t)t, 16)) return false;
  uint32_t nbuckets = t[0], symoffset = t[1], bloom_words = t[2], shift = t[3];
  if (!nbuckets || !bloom_words) return false;
  const uint64_t *bloom = (const uint64_t *)(t + 4);
  const uint32_t *buckets = (const uint32_t *)(bloom + bloom_words);
  const uint32_t *chain = buckets + nbuckets;
  if (!in_image(im, (uintptr_t)bloom, (size_t)bloom_words * 8 + (size_t)nbuckets * 4)) return false;
  uint32_t h = gnu_hash(name);
  uint64_t word = bloom[(h / 64) % bloom_words];
  uint64_t mask = (1ull << (h % 64)) | (1ull << ((h >> (shift & 31)) % 64));
  if ((word & mask) != mask) return false;
  uint32_t i = buckets[h % nbuckets];
  if (i < symoffset) return false;
  size_t len = strlen(name);
  for (;; i++) {
    const uint32_t *c = &chain[i - symoffset];
    if (!in_image(im, (uintptr_t)c, 4)) return false;
    if ((*c | 1) == (h | 1) && sym_is(im, d, i, name, len, addr, size)) return true;
    if (*c & 1) return false; /* the end of this bucket's chain */
  }
}

static bool lookup_sysv(const image_t *im, const dynsyms_t *d, const uint32_t *t, const char *name,
                        uintptr_t *addr, size_t *size) {
  if (!in_image(im, (uintptr_t)t, 8)) return false;
  uint32_t nbucket = t[0], nchain = t[1];
  if (!nbucket || !in_image(im, (uintptr_t)(t + 2), ((size_t)nbucket + nchain) * 4)) return false;
  const uint32_t *bucket = t + 2, *chain = bucket + nbucket;
  size_t len = strlen(name);
  uint32_t steps = 0;
  for (uint32_t i = bucket[sysv_hash(name) % nbucket]; i != 0 && i < nchain && steps++ < nchain; i = chain[i])
    if (sym_is(im, d, i, name, len, addr, size)) return true;
  return false;
}

bool sm_module_symbol(const struct dl_phdr_info *info, const char *name, uintptr_t *addr, size_t *size) {
  image_t im;
  if (!load_range(info, &im.lo, &im.hi)) return false;
  im.bias = info->dlpi_addr;
  const ElfW(Dyn) *dyn = NULL;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(im.bias + info->dlpi_phdr[i].p_vaddr);
  if (!dyn) return false;
  dynsyms_t d = {0};
  const uint32_t *gnu = NULL, *sysv = NULL;
  for (unsigned n = 0; in_image(&im, (uintptr_t)dyn, sizeof *dyn) && dyn->d_tag != DT_NULL && n < 4096; dyn++, n++) {
    uintptr_t v = (uintptr_t)dyn->d_un.d_ptr;
    switch (dyn->d_tag) {
    case DT_SYMTAB: d.sym = (const ElfW(Sym) *)dyn_ptr(&im, v); break;
    case DT_STRTAB: d.str = (const char *)dyn_ptr(&im, v); break;
    case DT_STRSZ: d.strsz = (size_t)dyn->d_un.d_val; break;
    case DT_GNU_HASH: gnu = (const uint32_t *)dyn_ptr(&im, v); break;
    case DT_HASH: sysv = (const uint32_t *)dyn_ptr(&im, v); break;
    default: break;
    }
  }
  if (!d.sym || !d.str || !d.strsz || !in_image(&im, (uintptr_t)d.str, d.strsz)) return false;
  if (gnu) return lookup_gnu(&im, &d, gnu, name, addr, size);
  if (sysv) return lookup_sysv(&im, &d, sysv, name, addr, size);
  return false;
}

static int add_one(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  uintptr_t lo, hi;
  if (!load_range(info, &lo, &hi)) return 0;
  char path[256];
  if (info->dlpi_name && info->dlpi_name[0]) {
    copy_str(path, sizeof path, info->dlpi_name);
  } else { /* the main executable */
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    path[n > 0 ? n : 0] = '\0';
  }
  /* Known if the newest entry over this range is this very object; an
   * object loaded again where another one was since gets a new entry, so
   * that lookups (newest first) find it. */
  for (uint32_t i = mod_count; i-- > 0;) {
    if (mods[i].end <= lo || mods[i].start >= hi) continue;
    if (mods[i].start == lo && mods[i].end == hi && mods[i].bias == info->dlpi_addr && strcmp(mods[i].path, path) == 0)
      return 0;
    break;
  }
  if (mod_count >= MODULES_MAX) {
    static bool told; /* under mod_lock */
    if (!told)
      sm_warning("more than %u loaded objects: frames in the objects loaded after that are recorded without a "
                 "module (raw addresses)", (unsigned)MODULES_MAX);
    told = true;
    return 1;
  }
  for (uint32_t i = 0; i < mod_count; i++)
    if (mods[i].start < hi && mods[i].end > lo) __atomic_store_n(&mods[i].shadowed, true, __ATOMIC_RELEASE);
  sm_module_t *m = &mods[mod_count];
  memset(m, 0, sizeof *m);
  m->bias = info->dlpi_addr;
  m->start = lo;
  m->end = hi;
  copy_str(m->path, sizeof m->path, path);
  read_build_id(info, m);
  __atomic_store_n(&mod_count, mod_count + 1, __ATOMIC_RELEASE);
  sm_python_probe(info, mod_count - 1, lo, hi);
  return 0;
}

static int read_adds(struct dl_phdr_info *info, size_t size, void *arg) {
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs)) *(unsigned long long *)arg = info->dlpi_adds;
  return 1; /* the counters are the same in every entry: stop at the first */
}

int sm_modules_iterate(int (*fn)(struct dl_phdr_info *info, size_t size, void *arg), void *arg) {
  sm_lock(&mod_lock);
  int r = dl_iterate_phdr(fn, arg);
  sm_unlock(&mod_lock);
  return r;
}

void sm_modules_refresh(void) {
  unsigned long long adds = 0;
  sm_lock(&mod_lock);
  dl_iterate_phdr(read_adds, &adds);
  if (!mods) mods = sm_meta_alloc(MODULES_MAX * sizeof *mods);
  if (mods && adds != seen_adds) {
    seen_adds = adds;
    /* dl_iterate_phdr holds the loader's lock while it calls us; it never
     * calls malloc, and neither does add_one. */
    dl_iterate_phdr(add_one, NULL);
  }
  sm_unlock(&mod_lock);
}

static uint32_t find(uintptr_t addr) {
  uint32_t n = __atomic_load_n(&mod_count, __ATOMIC_ACQUIRE);
  for (uint32_t i = n; i-- > 0;)
    if (addr >= mods[i].start && addr < mods[i].end) return i;
  return SM_SNAP_NO_MODULE;
}

uint32_t sm_modules_find(uintptr_t addr) {
  if (!mods) return SM_SNAP_NO_MODULE;
  uint32_t m = find(addr);
  if (m != SM_SNAP_NO_MODULE) return m;
  sm_modules_refresh();
  return find(addr);
}

uint32_t sm_modules_find_range(uintptr_t addr, uintptr_t *lo, uintptr_t *hi) {
  uint32_t m = sm_modules_find(addr);
  *lo = *hi = 0;
  if (m != SM_SNAP_NO_MODULE && !__atomic_load_n(&mods[m].shadowed, __ATOMIC_ACQUIRE)) {
    *lo = mods[m].start;
    *hi = mods[m].end;
  }
  return m;
}

const sm_module_t *sm_modules_get(uint32_t idx) { return idx < mod_count ? &mods[idx] : NULL; }
uint32_t sm_modules_count(void) { return __atomic_load_n(&mod_count, __ATOMIC_ACQUIRE); }

static int find_self(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  uintptr_t *range = arg;
  uintptr_t me = (uintptr_t)&sm_modules_self;
  uintptr_t lo, hi;
  if (load_range(info, &lo, &hi) && me >= lo && me < hi) {
    range[0] = lo;
    range[1] = hi;
    return 1;
  }
  return 0;
}

void sm_modules_self(uintptr_t *start, uintptr_t *end) {
  uintptr_t range[2] = {0, 0};
  sm_modules_iterate(find_self, range);
  *start = range[0];
  *end = range[1];
}
