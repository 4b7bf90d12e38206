/* Finding a CPython interpreter in the process, and PYTHONMALLOC.
 *
 * modules.c shows every newly loaded object to sm_python_probe. An object
 * that defines _PyRuntime is an interpreter (the python executable when
 * libpython is linked into it, as Debian builds it, else libpython). It is
 * used only if this build has a reader for its version (py311.c: 3.11.1
 * and later; py312.c, py313.c when built), its _PyRuntime object has the
 * size that reader's headers give (which also tells a free-threaded build
 * apart), and it is not a debug build (which lays objects out otherwise);
 * otherwise one warning says why its frames stay native. So a program that
 * is not Python pays one hash-table lookup per loaded object, and nothing
 * per allocation but the test of sm_py_on in capture.c.
 *
 * PYTHONMALLOC: CPython serves small objects from arenas of its own, which
 * malloc never sees. The interpreter reads PYTHONMALLOC from the
 * environment in main(), before it allocates any object; the library's
 * constructor runs before main(), so setting it there reaches every
 * traced Python process, by `snapmalloc run` or by hand. It is set only
 * when tracing or armed to (control=1), only in a process that is an
 * interpreter, and never over a value the user gave.
 *
 * Locks: sm_python_probe runs under mod_lock (modules.c), which publishes
 * sm_py_rt once with a release store of sm_py_on; readers load sm_py_on
 * with acquire and never see the structure change afterwards. Unloading
 * the interpreter (dlclose) turns sm_py_on off again; a capture that
 * started before that, in another thread, could still read it: unloading
 * an interpreter while another thread runs its code is not supported. */
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "allocator/internal.h"
#include "tracer/python.h"
#include "tracer/tracer.h"

bool sm_py_on;
sm_py_rt_t sm_py_rt;
static bool probed; /* an interpreter was found, supported or not (mod_lock) */

/* The readers this build has, by version. */
static const sm_py_ops_t *const readers[] = {
#ifdef SM_PY311
    &sm_py311_ops,
#endif
#ifdef SM_PY312
    &sm_py312_ops,
#endif
#ifdef SM_PY313
    &sm_py313_ops,
#endif
    NULL,
};

static const sm_py_ops_t *reader_for(unsigned long version) {
  for (unsigned i = 0; readers[i]; i++)
    if (readers[i]->version == (unsigned)(version >> 16)) return readers[i];
  return NULL;
}

static void versions_built(char *buf, size_t cap) {
  size_t n = 0;
  buf[0] = '\0';
  for (unsigned i = 0; readers[i] && n + 16 < cap; i++)
    n += sm_snprintf(buf + n, cap - n, "%s%u.%u", i ? ", " : "", readers[i]->version >> 8, readers[i]->version & 255);
  if (!n) sm_snprintf(buf, cap, "none");
}

static void refuse(const char *path, unsigned long version, const char *why) {
  char built[64];
  versions_built(built, sizeof built);
  sm_warning("python: %s (CPython %lu.%lu.%lu): %s; this build reads CPython %s. Its traces show the "
             "interpreter's native frames instead of Python frames",
             path, (version >> 24) & 255, (version >> 16) & 255, (version >> 8) & 255, why, built);
}

void sm_python_probe(const struct dl_phdr_info *info, uint32_t module, uintptr_t lo, uintptr_t hi) {
  if (probed || !sm_opt.python) return;
  uintptr_t runtime, vaddr;
  size_t runtime_size, vsize;
  if (!sm_module_symbol(info, "_PyRuntime", &runtime, &runtime_size)) return;
  __atomic_store_n(&probed, true, __ATOMIC_RELEASE); /* the first interpreter is the process's */
  const char *path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "the executable";
  /* Py_Version (3.11 and later) is constant data: PY_VERSION_HEX. */
  if (!sm_module_symbol(info, "Py_Version", &vaddr, &vsize) || vsize != sizeof(unsigned long)) {
    refuse(path, 0, "older than 3.11 (no Py_Version)");
    return;
  }
  unsigned long version = *(const unsigned long *)vaddr;
  const sm_py_ops_t *ops = reader_for(version);
  uintptr_t code_type, unicode_type, bytes_type, dummy;
  size_t size;
  if (!ops) {
    refuse(path, version, "not a version this build reads");
  } else if (version < 0x030B01F0u && ops->version == 0x030b) {
    /* gh-99729: 3.11.0 clears a frame while it is still on the chain. */
    refuse(path, version, "3.11.0 is not supported (3.11.1 and later are)");
  } else if (runtime_size != ops->runtime_size) {
    refuse(path, version, "its _PyRuntime differs in size from the headers this build was compiled with");
  } else if (sm_module_symbol(info, "_Py_RefTotal", &dummy, &size) ||
             sm_module_symbol(info, "_Py_NegativeRefcount", &dummy, &size)) {
    refuse(path, version, "a debug build (its objects are laid out differently)");
  } else if (!sm_module_symbol(info, "PyCode_Type", &code_type, &size) ||
             !sm_module_symbol(info, "PyUnicode_Type", &unicode_type, &size) ||
             !sm_module_symbol(info, "PyBytes_Type", &bytes_type, &size)) {
    refuse(path, version, "its type objects were not found");
  } else {
    sm_py_rt.runtime = runtime;
    sm_py_rt.code_type = code_type;
    sm_py_rt.unicode_type = unicode_type;
    sm_py_rt.bytes_type = bytes_type;
    sm_py_rt.lo = lo;
    sm_py_rt.hi = hi;
    sm_py_rt.module = module;
    sm_py_rt.version = version;
    sm_py_rt.ops = ops;
    __atomic_store_n(&sm_py_on, true, __ATOMIC_RELEASE);
    sm_fast_path_close(SM_FAST_PYTHON, true);
    if (sm_opt.verbose)
      sm_info("python: reading the frames of CPython %lu.%lu.%lu (%s)", (version >> 24) & 255,
              (version >> 16) & 255, (version >> 8) & 255, path);
  }
}

static int holds(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  uintptr_t addr = *(const uintptr_t *)arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t a = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && addr >= a && addr - a < ph->p_memsz) return 1;
  }
  return 0;
}

void sm_python_unloaded(void) {
  if (!__atomic_load_n(&sm_py_on, __ATOMIC_ACQUIRE)) return;
  uintptr_t addr = sm_py_rt.runtime;
  if (sm_modules_iterate(holds, &addr)) return;
  /* The interpreter's object is gone: stop reading it, and look at the
   * next one that loads. */
  __atomic_store_n(&sm_py_on, false, __ATOMIC_RELEASE);
  sm_fast_path_close(SM_FAST_PYTHON, false);
  __atomic_store_n(&probed, false, __ATOMIC_RELEASE);
}

static int defines_runtime(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  uintptr_t addr;
  size_t n;
  return sm_module_symbol(info, "_PyRuntime", &addr, &n);
}

void sm_python_environ(void) {
  /* Tracing, or armed to trace (control=1: `snapmalloc start` may come),
   * in a process that is an interpreter (supported or not: an unsupported
   * one's objects are at least seen). Armed and not tracing, the objects
   * were not looked at yet: a look at the loaded objects says. */
  if (!sm_opt.python || (!sm_opt.trace && !sm_opt.control)) return;
  if (!__atomic_load_n(&probed, __ATOMIC_ACQUIRE) && !sm_modules_iterate(defines_runtime, NULL)) return;
  if (getenv("PYTHONMALLOC")) return; /* the user's choice (docs/python.md says what it costs) */
  setenv("PYTHONMALLOC", "malloc", 0);
}

bool sm_python_deepen(void) {
  /* A Python trace holds the native frames inside the innermost Python
   * frame (an extension module's, a library's: sqlite's are a dozen) and
   * then the Python frames: 16 is too few for both. */
  int depth = __atomic_load_n(&sm_opt.depth, __ATOMIC_RELAXED);
  if (!__atomic_load_n(&sm_py_on, __ATOMIC_ACQUIRE) || depth >= SM_PY_DEPTH) return false;
  __atomic_store_n(&sm_opt.depth, SM_PY_DEPTH, __ATOMIC_RELAXED);
  return true;
}
