/* The module map: every object loaded into the process (executable, shared
 * libraries, dlopen'd ones) with its address range, load bias, path and GNU
 * build-id, read from dl_iterate_phdr. Entries are never removed, so a frame
 * in a library that was dlclose'd later still names it; when another object
 * (or the same one again) is loaded over the same range, it gets a new entry
 * and lookups prefer the newer one.
 * The table is refreshed when the loader reports new objects (dlpi_adds). */
#include <elf.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "allocator/internal.h"
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
  return 0;
}

static int read_adds(struct dl_phdr_info *info, size_t size, void *arg) {
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs)) *(unsigned long long *)arg = info->dlpi_adds;
  return 1; /* the counters are the same in every entry: stop at the first */
}

void sm_modules_refresh(void) {
  unsigned long long adds = 0;
  dl_iterate_phdr(read_adds, &adds);
  sm_lock(&mod_lock);
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

uint32_t sm_modules_find_near(uintptr_t addr, uint32_t hint) {
  if (hint < __atomic_load_n(&mod_count, __ATOMIC_ACQUIRE) && addr >= mods[hint].start && addr < mods[hint].end &&
      !__atomic_load_n(&mods[hint].shadowed, __ATOMIC_ACQUIRE))
    return hint;
  return sm_modules_find(addr);
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
  dl_iterate_phdr(find_self, range);
  *start = range[0];
  *end = range[1];
}
