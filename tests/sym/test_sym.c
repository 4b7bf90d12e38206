/* Tests for the offline symbolizer (tools/symbolize.c).
 *
 * The program captures real return addresses (__builtin_return_address in
 * noinline functions), turns them into (module path, build-id, file vaddr)
 * the way the tracer does (dl_iterate_phdr), and checks what sm_sym_lookup
 * says about them.  Expected lines are not written here: they are marked in
 * the sources with LINE comments, and found by reading those sources, whose
 * paths meson passes as arguments:
 *   test_sym TEST_SYM_C SYMLIB_C SYMLIB_CXX_CC OBJCOPY_OR_EMPTY [DWZ_OR_EMPTY]
 * Without objcopy the test is skipped (77); without dwz only the dwz part.
 * Built with -g -O2.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <elfutils/libdwelf.h>
#include <gelf.h>

#include "tests/testhelper.h"
#include "tools/symbolize.h"

extern char **environ;

/* The test library (symlib.c, symlib_cxx.cc). */
extern void *volatile symlib_last_ra;
void *symlib_alloc(size_t n);
void *symlib_inl_outer(size_t n);
void *symlib_cxx_alloc(size_t n);

/* ---------------------------------------------------------------------- */
/* Code with a known layout                                                */

static void *volatile last_ra;

/* The executable is linked with --wrap=malloc: its own calls to malloc come
 * here, and while capture_malloc is set the caller's return address is
 * kept, as the tracer would see it. */
static volatile int capture_malloc;
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n) {
  if (capture_malloc) last_ra = __builtin_return_address(0);
  return __real_malloc(n);
}

__attribute__((noinline)) char *direct_malloc(size_t n) {
  char *p = malloc(n); /* LINE:malloc_call */
  if (p) p[0] = 1;
  return p;
}

__attribute__((noinline, noclone)) static void *tracked_malloc(size_t n) {
  last_ra = __builtin_return_address(0);
  __asm__ volatile("" ::: "memory");
  return malloc(n);
}

__attribute__((noinline)) void *known_alloc(size_t n) {
  void *p = tracked_malloc(n); /* LINE:known_call */
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

static inline __attribute__((always_inline)) void *inl_inner(size_t n) {
  void *p = tracked_malloc(n + 1); /* LINE:inner_call */
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

static inline __attribute__((always_inline)) void *inl_middle(size_t n) {
  void *p = inl_inner(n * 2); /* LINE:middle_call */
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

__attribute__((noinline)) void *outer_fn(size_t n) {
  void *p = inl_middle(n + 3); /* LINE:outer_call */
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

static jmp_buf escape;

__attribute__((noinline, noreturn)) static void never_returns(void) {
  last_ra = __builtin_return_address(0);
  longjmp(escape, 1);
}

/* The call to a noreturn function is the last instruction of this
 * function: its return address is past the end of it. */
__attribute__((noinline)) void ends_in_noreturn_call(void) {
  never_returns(); /* LINE:noreturn_call */
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

/* snprintf that treats truncation as a fatal test error. */
__attribute__((format(printf, 3, 4))) static void fmt(char *buf, size_t cap, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(buf, cap, f, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= cap) {
    fprintf(stderr, "string too long: %s\n", buf);
    exit(1);
  }
}

static const char *src_test, *src_lib, *src_cxx, *objcopy, *dwz;
static char tmpdir[PATH_MAX];

/* Line number of the line carrying the marker LINE:<name> in path. */
static int marker_line(const char *path, const char *name) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(1);
  }
  char want[128], buf[1024];
  fmt(want, sizeof(want), "/* LINE:%s */", name);
  int lineno = 0, found = 0;
  while (fgets(buf, sizeof(buf), f)) {
    lineno++;
    if (strstr(buf, want)) {
      found = lineno;
      break;
    }
  }
  fclose(f);
  if (!found) {
    fprintf(stderr, "marker %s not found in %s\n", name, path);
    exit(1);
  }
  return found;
}

typedef struct where {
  char path[PATH_MAX];
  uint64_t vaddr;
  uint8_t id[64];
  size_t idlen;
} where_t;

struct locate_arg {
  uintptr_t addr;
  where_t *w;
  bool found;
};

static int locate_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct locate_arg *a = data;
  bool inside = false;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && a->addr >= lo && a->addr < lo + ph->p_memsz) inside = true;
  }
  if (!inside) return 0;
  where_t *w = a->w;
  w->vaddr = a->addr - info->dlpi_addr;
  if (info->dlpi_name && info->dlpi_name[0]) {
    snprintf(w->path, sizeof(w->path), "%s", info->dlpi_name);
  } else {
    ssize_t n = readlink("/proc/self/exe", w->path, sizeof(w->path) - 1);
    w->path[n > 0 ? n : 0] = '\0';
  }
  w->idlen = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE) continue;
    const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
    const unsigned char *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
      const unsigned char *name = p + sizeof(*nh);
      const unsigned char *desc = name + ((nh->n_namesz + 3) & ~3u);
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
          nh->n_descsz <= sizeof(w->id)) {
        memcpy(w->id, desc, nh->n_descsz);
        w->idlen = nh->n_descsz;
      }
      p = desc + ((nh->n_descsz + 3) & ~3u);
    }
  }
  a->found = true;
  return 1;
}

/* Module path, build-id and file vaddr of a code address in this process. */
static where_t locate(const void *addr) {
  where_t w;
  memset(&w, 0, sizeof(w));
  struct locate_arg a = {(uintptr_t)addr, &w, false};
  dl_iterate_phdr(locate_cb, &a);
  if (!a.found) {
    fprintf(stderr, "address %p is in no loaded object\n", addr);
    exit(1);
  }
  return w;
}

static const char *base_of(const char *p) {
  if (!p) return NULL;
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static bool str_eq(const char *a, const char *b) {
  if (!a || !b) return a == b;
  return strcmp(a, b) == 0;
}

#define S(x) ((x) ? (x) : "(null)")

/* Checks one frame.  file_base NULL means "no file expected". */
static void expect_frame(const char *what, const sm_sym_frame_t *f, const char *func,
                         const char *file_base, int line, bool inlined) {
  CHECK_MSG(str_eq(f->function, func), "%s: function '%s', want '%s'", what, S(f->function),
            func);
  CHECK_MSG(str_eq(base_of(f->file), file_base), "%s: file '%s', want '%s'", what, S(f->file),
            S(file_base));
  CHECK_MSG(f->line == line, "%s: line %d, want %d", what, f->line, line);
  CHECK_MSG(f->inlined == inlined, "%s: inlined %d, want %d", what, f->inlined, inlined);
}

static void dump(const char *what, const sm_sym_frame_t *fr, int n) {
  if (!getenv("TEST_SYM_VERBOSE")) return;
  fprintf(stderr, "%s: %d frame(s)\n", what, n);
  for (int i = 0; i < n; i++)
    fprintf(stderr, "  #%d %s at %s:%d%s\n", i, S(fr[i].function), S(fr[i].file), fr[i].line,
            fr[i].inlined ? " (inlined)" : "");
}

static int add(sm_symbolizer_t *s, const where_t *w) {
  int h = sm_sym_add_module(s, w->path, w->idlen ? w->id : NULL, w->idlen);
  CHECK(h >= 0);
  return h;
}

/* Runs a program with arguments; true if it exited with status 0. */
static bool run(const char *const argv[]) {
  pid_t pid;
  if (posix_spawn(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) != 0) return false;
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return false;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static bool copy_file(const char *from, const char *to, long limit) {
  FILE *in = fopen(from, "rb");
  if (!in) return false;
  FILE *out = fopen(to, "wb");
  if (!out) {
    fclose(in);
    return false;
  }
  char buf[65536];
  long total = 0;
  size_t n;
  while ((limit < 0 || total < limit) && (n = fread(buf, 1, sizeof(buf), in)) > 0) {
    if (limit >= 0 && total + (long)n > limit) n = (size_t)(limit - total);
    fwrite(buf, 1, n, out);
    total += (long)n;
  }
  fclose(in);
  return fclose(out) == 0;
}

static void tmp_path(char *buf, size_t cap, const char *rel) {
  fmt(buf, cap, "%s/%s", tmpdir, rel);
}

static void mkdirs(const char *path) {
  char buf[PATH_MAX];
  fmt(buf, sizeof(buf), "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    mkdir(buf, 0755);
    *p = '/';
  }
  mkdir(buf, 0755);
}

static void remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d) {
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[PATH_MAX];
        fmt(sub, sizeof(sub), "%s/%s", path, e->d_name);
        remove_tree(sub);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

/* Addresses captured once, used by every part. */
static where_t w_malloc, w_known, w_outer, w_noret, w_lib, w_lib_inl, w_cxx;

static void capture_addresses(void) {
  capture_malloc = 1;
  free(direct_malloc(8));
  capture_malloc = 0;
  w_malloc = locate(last_ra);
  free(known_alloc(8));
  w_known = locate(last_ra);
  free(outer_fn(8));
  w_outer = locate(last_ra);
  if (setjmp(escape) == 0) ends_in_noreturn_call();
  w_noret = locate(last_ra);
  free(symlib_alloc(8));
  w_lib = locate(symlib_last_ra);
  free(symlib_inl_outer(8));
  w_lib_inl = locate(symlib_last_ra);
  free(symlib_cxx_alloc(8));
  w_cxx = locate(symlib_last_ra);
}

/* ---------------------------------------------------------------------- */
/* 1. DWARF: plain call, inline chain, shared library, C++                 */

static void test_dwarf(void) {
  sm_symbolizer_t *s = sm_sym_new();
  CHECK(s != NULL);
  sm_sym_frame_t fr[16];
  int n;

  int exe = add(s, &w_known);
  CHECK(sm_sym_status(s, exe) == SM_SYM_OK);
  CHECK_MSG(w_known.idlen > 0, "test executable has no build-id");

  n = sm_sym_lookup(s, exe, w_known.vaddr, true, fr, 16);
  dump("known_alloc", fr, n);
  CHECK_MSG(n == 1, "known_alloc: %d frames", n);
  if (n >= 1)
    expect_frame("known_alloc", &fr[n - 1], "known_alloc", "test_sym.c",
                 marker_line(src_test, "known_call"), false);
  if (n >= 1) CHECK_MSG(fr[0].file && fr[0].file[0] == '/', "file not absolute: %s", S(fr[0].file));

  /* A direct call to malloc. */
  n = sm_sym_lookup(s, exe, w_malloc.vaddr, true, fr, 16);
  dump("direct_malloc", fr, n);
  CHECK_MSG(n == 1, "direct_malloc: %d frames", n);
  if (n >= 1)
    expect_frame("direct_malloc", &fr[n - 1], "direct_malloc", "test_sym.c",
                 marker_line(src_test, "malloc_call"), false);

  /* The same module registered again gives the same handle. */
  CHECK(add(s, &w_outer) == exe);

  n = sm_sym_lookup(s, exe, w_outer.vaddr, true, fr, 16);
  dump("outer_fn", fr, n);
  CHECK_MSG(n == 3, "outer_fn chain: %d frames", n);
  if (n == 3) {
    expect_frame("inline #0", &fr[0], "inl_inner", "test_sym.c",
                 marker_line(src_test, "inner_call"), true);
    expect_frame("inline #1", &fr[1], "inl_middle", "test_sym.c",
                 marker_line(src_test, "middle_call"), true);
    expect_frame("inline #2", &fr[2], "outer_fn", "test_sym.c",
                 marker_line(src_test, "outer_call"), false);
  }

  /* Cache: a repeated lookup gives the very same strings. */
  sm_sym_frame_t again[16];
  int n2 = sm_sym_lookup(s, exe, w_outer.vaddr, true, again, 16);
  CHECK(n2 == n);
  for (int i = 0; i < n && i < n2; i++) {
    CHECK(again[i].function == fr[i].function);
    CHECK(again[i].file == fr[i].file);
    CHECK(again[i].line == fr[i].line);
  }

  /* A chain deeper than max: innermost max-1 frames, then the real function. */
  n = sm_sym_lookup(s, exe, w_outer.vaddr, true, fr, 2);
  CHECK(n == 2);
  if (n == 2) {
    CHECK(str_eq(fr[0].function, "inl_inner") && fr[0].inlined);
    CHECK(str_eq(fr[1].function, "outer_fn") && !fr[1].inlined);
  }
  n = sm_sym_lookup(s, exe, w_outer.vaddr, true, fr, 1);
  CHECK(n == 1 && str_eq(fr[0].function, "outer_fn") && !fr[0].inlined);

  /* Shared library. */
  int lib = add(s, &w_lib);
  CHECK(lib != exe);
  CHECK(sm_sym_status(s, lib) == SM_SYM_OK);
  n = sm_sym_lookup(s, lib, w_lib.vaddr, true, fr, 16);
  dump("symlib_alloc", fr, n);
  CHECK_MSG(n == 1, "symlib_alloc: %d frames", n);
  if (n >= 1)
    expect_frame("symlib_alloc", &fr[n - 1], "symlib_alloc", "symlib.c",
                 marker_line(src_lib, "lib_call"), false);

  n = sm_sym_lookup(s, lib, w_lib_inl.vaddr, true, fr, 16);
  dump("symlib_inl_outer", fr, n);
  CHECK_MSG(n == 2, "symlib_inl_outer chain: %d frames", n);
  if (n == 2) {
    expect_frame("lib inline #0", &fr[0], "lib_inl", "symlib.c",
                 marker_line(src_lib, "lib_inl_call"), true);
    expect_frame("lib inline #1", &fr[1], "symlib_inl_outer", "symlib.c",
                 marker_line(src_lib, "lib_outer_call"), false);
  }

  /* C++: demangled name. */
  n = sm_sym_lookup(s, lib, w_cxx.vaddr, true, fr, 16);
  dump("Box::make", fr, n);
  CHECK_MSG(n == 1, "Box::make: %d frames", n);
  if (n >= 1)
    expect_frame("Box::make", &fr[n - 1], "smsym::Box::make(unsigned long)", "symlib_cxx.cc",
                 marker_line(src_cxx, "cxx_call"), false);

  /* The C library: a name at least (file and line if its debug info is
   * installed). */
  void *(*volatile mp)(size_t) = malloc;
  where_t wc = locate((const void *)(uintptr_t)mp);
  if (strstr(wc.path, "libc.so")) {
    int libc = add(s, &wc);
    CHECK(sm_sym_status(s, libc) == SM_SYM_OK);
    n = sm_sym_lookup(s, libc, wc.vaddr + 4, false, fr, 16);
    dump("libc malloc", fr, n);
    CHECK_MSG(n >= 1 && fr[n - 1].function && strstr(fr[n - 1].function, "malloc"),
              "libc malloc: n=%d function '%s'", n, n >= 1 ? S(fr[n - 1].function) : "-");
  }

  sm_sym_free(s);
}

/* ---------------------------------------------------------------------- */
/* 2. Return-address semantics                                             */

static void test_return_address(void) {
  sm_symbolizer_t *s = sm_sym_new();
  sm_sym_frame_t fr[16];
  int exe = add(s, &w_noret);

  /* A call that is the last instruction of its function. */
  int n = sm_sym_lookup(s, exe, w_noret.vaddr, true, fr, 16);
  dump("noreturn call", fr, n);
  CHECK_MSG(n == 1, "noreturn call: %d frames", n);
  if (n >= 1)
    expect_frame("noreturn call", &fr[n - 1], "ends_in_noreturn_call", "test_sym.c",
                 marker_line(src_test, "noreturn_call"), false);
  /* Looked up as a plain address, the return address is past that function. */
  n = sm_sym_lookup(s, exe, w_noret.vaddr, false, fr, 16);
  dump("noreturn call, not as return address", fr, n);
  CHECK(n == 0 || !str_eq(fr[n - 1].function, "ends_in_noreturn_call") ||
        fr[n - 1].line != marker_line(src_test, "noreturn_call"));

  /* The call to malloc ends its line: the instruction after it (the return
   * address) belongs to the next line, and only is_return_address gives the
   * call's line. */
  n = sm_sym_lookup(s, exe, w_malloc.vaddr, true, fr, 16);
  CHECK(n == 1 && fr[0].line == marker_line(src_test, "malloc_call"));
  n = sm_sym_lookup(s, exe, w_malloc.vaddr, false, fr, 16);
  dump("malloc return address, not as return address", fr, n);
  CHECK(n == 1 && fr[0].line == marker_line(src_test, "malloc_call") + 1);

  /* The plain case: vaddr - 1 is inside the call instruction. */
  n = sm_sym_lookup(s, exe, w_known.vaddr - 1, false, fr, 16);
  CHECK(n == 1 && fr[0].line == marker_line(src_test, "known_call"));
  sm_sym_frame_t fr2[16];
  int n2 = sm_sym_lookup(s, exe, w_known.vaddr, true, fr2, 16);
  CHECK(n2 == n && n2 >= 1 && fr2[0].line == fr[0].line && fr2[0].function == fr[0].function);
  sm_sym_free(s);
}

/* ---------------------------------------------------------------------- */
/* 3. Symbol table only                                                     */

static void test_symtab_only(void) {
  char stripped[PATH_MAX], dynonly[PATH_MAX];
  tmp_path(stripped, sizeof(stripped), "libstripped.so");
  tmp_path(dynonly, sizeof(dynonly), "libdynonly.so");
  const char *a1[] = {objcopy, "--strip-debug", w_lib.path, stripped, NULL};
  const char *a2[] = {objcopy, "--strip-all", w_lib.path, dynonly, NULL};
  CHECK(run(a1));
  CHECK(run(a2));

  sm_symbolizer_t *s = sm_sym_new();
  sm_sym_frame_t fr[16];
  int h = sm_sym_add_module(s, stripped, w_lib.id, w_lib.idlen);
  CHECK(sm_sym_status(s, h) == SM_SYM_OK);
  int n = sm_sym_lookup(s, h, w_lib.vaddr, true, fr, 16);
  dump("stripped symlib_alloc", fr, n);
  CHECK(n == 1);
  if (n >= 1) expect_frame("stripped symlib_alloc", &fr[0], "symlib_alloc", NULL, 0, false);
  n = sm_sym_lookup(s, h, w_lib_inl.vaddr, true, fr, 16);
  CHECK(n == 1);
  if (n >= 1) expect_frame("stripped inline", &fr[0], "symlib_inl_outer", NULL, 0, false);
  n = sm_sym_lookup(s, h, w_cxx.vaddr, true, fr, 16);
  CHECK(n == 1);
  if (n >= 1)
    expect_frame("stripped Box::make", &fr[0], "smsym::Box::make(unsigned long)", NULL, 0, false);

  /* .dynsym only: exported functions still have names. */
  int d = sm_sym_add_module(s, dynonly, w_lib.id, w_lib.idlen);
  CHECK(sm_sym_status(s, d) == SM_SYM_OK);
  n = sm_sym_lookup(s, d, w_lib.vaddr, true, fr, 16);
  dump("dynsym symlib_alloc", fr, n);
  CHECK(n == 1);
  if (n >= 1) expect_frame("dynsym symlib_alloc", &fr[0], "symlib_alloc", NULL, 0, false);
  sm_sym_free(s);
}

/* ---------------------------------------------------------------------- */
/* 4. Separate debug files                                                 */

static void check_lib_full(sm_symbolizer_t *s, int h, const char *what) {
  sm_sym_frame_t fr[16];
  CHECK_MSG(sm_sym_status(s, h) == SM_SYM_OK, "%s: status", what);
  int n = sm_sym_lookup(s, h, w_lib.vaddr, true, fr, 16);
  dump(what, fr, n);
  CHECK_MSG(n == 1, "%s: %d frames", what, n);
  if (n >= 1)
    expect_frame(what, &fr[n - 1], "symlib_alloc", "symlib.c", marker_line(src_lib, "lib_call"),
                 false);
  n = sm_sym_lookup(s, h, w_lib_inl.vaddr, true, fr, 16);
  dump(what, fr, n);
  CHECK_MSG(n == 2, "%s inline: %d frames", what, n);
  if (n == 2) {
    expect_frame(what, &fr[0], "lib_inl", "symlib.c", marker_line(src_lib, "lib_inl_call"), true);
    expect_frame(what, &fr[1], "symlib_inl_outer", "symlib.c",
                 marker_line(src_lib, "lib_outer_call"), false);
  }
  n = sm_sym_lookup(s, h, w_cxx.vaddr, true, fr, 16);
  CHECK_MSG(n == 1, "%s C++: %d frames", what, n);
  if (n >= 1)
    expect_frame(what, &fr[n - 1], "smsym::Box::make(unsigned long)", "symlib_cxx.cc",
                 marker_line(src_cxx, "cxx_call"), false);
}

static void check_lib_symtab_only(sm_symbolizer_t *s, int h, const char *what) {
  sm_sym_frame_t fr[16];
  CHECK_MSG(sm_sym_status(s, h) == SM_SYM_OK, "%s: status", what);
  int n = sm_sym_lookup(s, h, w_lib.vaddr, true, fr, 16);
  dump(what, fr, n);
  CHECK_MSG(n == 1, "%s: %d frames", what, n);
  if (n >= 1) expect_frame(what, &fr[0], "symlib_alloc", NULL, 0, false);
}

static void test_debug_files(void) {
  char hex[129], dbg[PATH_MAX], stripped[PATH_MAX], dir[PATH_MAX], env[2 * PATH_MAX];
  for (size_t i = 0; i < w_lib.idlen; i++) snprintf(hex + 2 * i, 3, "%02x", w_lib.id[i]);

  /* By build-id, in a directory from SNAPMALLOC_DEBUG_DIRS. */
  tmp_path(stripped, sizeof(stripped), "libstripped.so");  /* made by part 3 */
  fmt(dir, sizeof(dir), "%s/dbg/.build-id/%.2s", tmpdir, hex);
  mkdirs(dir);
  fmt(dbg, sizeof(dbg), "%s/%s.debug", dir, hex + 2);
  const char *a1[] = {objcopy, "--only-keep-debug", w_lib.path, dbg, NULL};
  CHECK(run(a1));

  sm_symbolizer_t *s = sm_sym_new();
  int h = sm_sym_add_module(s, stripped, w_lib.id, w_lib.idlen);
  check_lib_symtab_only(s, h, "build-id dir not in SNAPMALLOC_DEBUG_DIRS");
  sm_sym_free(s);

  fmt(env, sizeof(env), "%s/nonexistent::%s/dbg/", tmpdir, tmpdir);
  setenv("SNAPMALLOC_DEBUG_DIRS", env, 1);
  s = sm_sym_new();
  h = sm_sym_add_module(s, stripped, w_lib.id, w_lib.idlen);
  check_lib_full(s, h, "debug file by build-id");
  /* The build-id is the file's own: registering with none works too. */
  h = sm_sym_add_module(s, stripped, NULL, 0);
  check_lib_full(s, h, "debug file by build-id, none recorded");
  sm_sym_free(s);
  unsetenv("SNAPMALLOC_DEBUG_DIRS");

  /* A debug file whose build-id differs is not used. */
  char other[PATH_MAX];
  tmp_path(other, sizeof(other), "other");
  mkdirs(other);
  fmt(dir, sizeof(dir), "%s/other/.build-id/%.2s", tmpdir, hex);
  mkdirs(dir);
  fmt(dbg, sizeof(dbg), "%s/%s.debug", dir, hex + 2);
  const char *a2[] = {objcopy, "--only-keep-debug", w_known.path, dbg, NULL};
  CHECK(run(a2));
  setenv("SNAPMALLOC_DEBUG_DIRS", other, 1);
  s = sm_sym_new();
  h = sm_sym_add_module(s, stripped, w_lib.id, w_lib.idlen);
  check_lib_symtab_only(s, h, "debug file with a wrong build-id");
  sm_sym_free(s);
  unsetenv("SNAPMALLOC_DEBUG_DIRS");

  /* By .gnu_debuglink, next to the file and in its .debug/ directory. */
  for (int k = 0; k < 2; k++) {
    char sub[64], lib[PATH_MAX], linked[PATH_MAX];
    fmt(sub, sizeof(sub), "link%d", k);
    tmp_path(dir, sizeof(dir), sub);
    mkdirs(dir);
    fmt(dbg, sizeof(dbg), "%s/libsym.debug", dir);
    fmt(lib, sizeof(lib), "%s/libsym.so", dir);
    fmt(linked, sizeof(linked), "--add-gnu-debuglink=%s", dbg);
    const char *b1[] = {objcopy, "--only-keep-debug", w_lib.path, dbg, NULL};
    const char *b2[] = {objcopy, "--strip-debug", linked, w_lib.path, lib, NULL};
    CHECK(run(b1));
    CHECK(run(b2));
    if (k == 1) {
      char moved[PATH_MAX];
      fmt(moved, sizeof(moved), "%s/.debug", dir);
      mkdirs(moved);
      fmt(moved, sizeof(moved), "%s/.debug/libsym.debug", dir);
      CHECK(rename(dbg, moved) == 0);
    }
    s = sm_sym_new();
    h = sm_sym_add_module(s, lib, w_lib.id, w_lib.idlen);
    check_lib_full(s, h, k ? "debuglink in .debug/" : "debuglink");
    sm_sym_free(s);
  }

  /* Without build-ids, the debuglink's CRC decides. */
  {
    char nobid[PATH_MAX], lib[PATH_MAX], linked[PATH_MAX];
    tmp_path(dir, sizeof(dir), "nobid");
    mkdirs(dir);
    fmt(nobid, sizeof(nobid), "%s/full.so", dir);
    fmt(dbg, sizeof(dbg), "%s/libsym.debug", dir);
    fmt(lib, sizeof(lib), "%s/libsym.so", dir);
    fmt(linked, sizeof(linked), "--add-gnu-debuglink=%s", dbg);
    const char *c1[] = {objcopy, "--remove-section=.note.gnu.build-id", w_lib.path, nobid, NULL};
    const char *c2[] = {objcopy, "--only-keep-debug", nobid, dbg, NULL};
    const char *c3[] = {objcopy, "--strip-debug", linked, nobid, lib, NULL};
    CHECK(run(c1));
    CHECK(run(c2));
    CHECK(run(c3));
    s = sm_sym_new();
    h = sm_sym_add_module(s, lib, NULL, 0);
    check_lib_full(s, h, "debuglink by CRC");
    /* Registered with the real build-id: the file has none, so mismatch. */
    int h2 = sm_sym_add_module(s, lib, w_lib.id, w_lib.idlen);
    CHECK(sm_sym_status(s, h2) == SM_SYM_MISMATCH);
    sm_sym_free(s);

    /* Replace the debug file by another one: CRC differs, not used. */
    const char *c4[] = {objcopy, "--only-keep-debug", w_known.path, dbg, NULL};
    CHECK(run(c4));
    s = sm_sym_new();
    h = sm_sym_add_module(s, lib, NULL, 0);
    check_lib_symtab_only(s, h, "debuglink with a wrong CRC");
    sm_sym_free(s);
  }
}

/* dwz: DWARF shared between files moved to a common file, which the files
 * name in .gnu_debugaltlink. */
static void test_dwz(void) {
  char dir[PATH_MAX], lib[PATH_MAX], exe[PATH_MAX], common[PATH_MAX], moved[PATH_MAX];
  tmp_path(dir, sizeof(dir), "dwz");
  mkdirs(dir);
  fmt(lib, sizeof(lib), "%s/libsym.so", dir);
  fmt(exe, sizeof(exe), "%s/exe", dir);
  fmt(common, sizeof(common), "%s/common.debug", dir);
  CHECK(copy_file(w_lib.path, lib, -1));
  CHECK(copy_file(w_known.path, exe, -1));
  const char *a[] = {dwz, "-q", "-m", common, "-M", common, lib, exe, NULL};
  run(a);  /* may say "not beneficial" for one of the files */

  /* Build-id of the common file, for the build-id directory case. */
  uint8_t id[64];
  size_t idlen = 0;
  int fd = open(common, O_RDONLY);
  if (fd < 0) {
    fprintf(stderr, "dwz made no common file: dwz part not run\n");
    return;
  }
  elf_version(EV_CURRENT);
  Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
  const void *bits = NULL;
  ssize_t n = elf ? dwelf_elf_gnu_build_id(elf, &bits) : -1;
  if (n > 0 && (size_t)n <= sizeof(id)) {
    memcpy(id, bits, (size_t)n);
    idlen = (size_t)n;
  }
  if (elf) elf_end(elf);
  close(fd);
  CHECK(idlen > 0);

  sm_symbolizer_t *s = sm_sym_new();
  check_lib_full(s, sm_sym_add_module(s, lib, w_lib.id, w_lib.idlen), "dwz");
  sm_sym_free(s);

  /* Common file gone: no crash, lines still known (they are not shared). */
  fmt(moved, sizeof(moved), "%s/moved.debug", dir);
  CHECK(rename(common, moved) == 0);
  s = sm_sym_new();
  int h = sm_sym_add_module(s, lib, w_lib.id, w_lib.idlen);
  sm_sym_frame_t fr[16];
  int k = sm_sym_lookup(s, h, w_lib_inl.vaddr, true, fr, 16);
  dump("dwz without the common file", fr, k);
  CHECK(k >= 1 && k <= 16);
  if (k >= 1) CHECK(fr[0].line == marker_line(src_lib, "lib_inl_call"));
  sm_sym_free(s);

  /* Common file found by its build-id in SNAPMALLOC_DEBUG_DIRS. */
  if (idlen > 0) {
    char hex[129], bdir[PATH_MAX], target[PATH_MAX];
    for (size_t i = 0; i < idlen; i++) snprintf(hex + 2 * i, 3, "%02x", id[i]);
    fmt(bdir, sizeof(bdir), "%s/dbg/.build-id/%.2s", dir, hex);
    mkdirs(bdir);
    fmt(target, sizeof(target), "%s/%s.debug", bdir, hex + 2);
    CHECK(rename(moved, target) == 0);
    fmt(bdir, sizeof(bdir), "%s/dbg", dir);
    setenv("SNAPMALLOC_DEBUG_DIRS", bdir, 1);
    s = sm_sym_new();
    check_lib_full(s, sm_sym_add_module(s, lib, w_lib.id, w_lib.idlen), "dwz, common by build-id");
    sm_sym_free(s);
    unsetenv("SNAPMALLOC_DEBUG_DIRS");
  }
}

/* ---------------------------------------------------------------------- */
/* 5. Mismatch, missing files, bad input                                    */

static void test_bad_input(void) {
  sm_symbolizer_t *s = sm_sym_new();
  sm_sym_frame_t fr[16];

  uint8_t wrong[64];
  memcpy(wrong, w_lib.id, w_lib.idlen);
  wrong[0] ^= 0x5a;
  int mm = sm_sym_add_module(s, w_lib.path, wrong, w_lib.idlen);
  CHECK(sm_sym_status(s, mm) == SM_SYM_MISMATCH);
  CHECK(sm_sym_lookup(s, mm, w_lib.vaddr, true, fr, 16) == 0);
  int shorter = sm_sym_add_module(s, w_lib.path, w_lib.id, w_lib.idlen - 1);
  CHECK(shorter != mm);
  CHECK(sm_sym_status(s, shorter) == SM_SYM_MISMATCH);
  CHECK(sm_sym_lookup(s, shorter, w_lib.vaddr, true, fr, 16) == 0);

  int missing = sm_sym_add_module(s, "/nonexistent/dir/libnope.so", w_lib.id, w_lib.idlen);
  CHECK(sm_sym_status(s, missing) == SM_SYM_MISSING);
  CHECK(sm_sym_lookup(s, missing, w_lib.vaddr, true, fr, 16) == 0);

  int notelf = sm_sym_add_module(s, src_test, NULL, 0);
  CHECK(sm_sym_status(s, notelf) == SM_SYM_MISSING);
  CHECK(sm_sym_lookup(s, notelf, 100, true, fr, 16) == 0);

  int isdir = sm_sym_add_module(s, "/", NULL, 0);
  CHECK(sm_sym_status(s, isdir) == SM_SYM_MISSING);
  CHECK(sm_sym_lookup(s, isdir, 100, true, fr, 16) == 0);

  int empty = sm_sym_add_module(s, "", NULL, 0);
  CHECK(sm_sym_status(s, empty) == SM_SYM_MISSING);

  /* Truncated copies of the library: no crash, whatever they give. */
  static const long cuts[] = {0, 16, 64, 1000, 4096, 20000, 100000};
  for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
    char cut[PATH_MAX], name[64];
    fmt(name, sizeof(name), "cut%ld.so", cuts[i]);
    tmp_path(cut, sizeof(cut), name);
    CHECK(copy_file(w_lib.path, cut, cuts[i]));
    int h = sm_sym_add_module(s, cut, NULL, 0);
    sm_sym_status_t st = sm_sym_status(s, h);
    CHECK(st == SM_SYM_OK || st == SM_SYM_MISSING);
    int n = sm_sym_lookup(s, h, w_lib.vaddr, true, fr, 16);
    CHECK(n >= 0 && n <= 16);
    if (cuts[i] < 64) CHECK(st == SM_SYM_MISSING);
    int h2 = sm_sym_add_module(s, cut, w_lib.id, w_lib.idlen);
    CHECK(sm_sym_lookup(s, h2, w_lib.vaddr, true, fr, 16) >= 0);
  }

  /* Garbage addresses in a good module. */
  int lib = sm_sym_add_module(s, w_lib.path, w_lib.id, w_lib.idlen);
  CHECK(sm_sym_status(s, lib) == SM_SYM_OK);
  static const uint64_t junk[] = {0, 1, 0x10, UINT64_MAX, UINT64_MAX - 1, 0x7fffffffffffull,
                                  0x100000000ull, 0xdeadbeefdeadbeefull};
  for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
    CHECK_MSG(sm_sym_lookup(s, lib, junk[i], true, fr, 16) == 0, "junk %#llx",
              (unsigned long long)junk[i]);
    CHECK_MSG(sm_sym_lookup(s, lib, junk[i], false, fr, 16) == 0, "junk %#llx",
              (unsigned long long)junk[i]);
  }
  /* Every address of the library's code: never more than max frames. */
  for (uint64_t a = w_lib.vaddr & ~0xfffull; a < (w_lib.vaddr & ~0xfffull) + 0x2000; a++) {
    int n = sm_sym_lookup(s, lib, a, false, fr, 4);
    CHECK(n >= 0 && n <= 4);
  }

  /* Bad handles and arguments. */
  CHECK(sm_sym_status(s, -1) == SM_SYM_MISSING);
  CHECK(sm_sym_status(s, 12345) == SM_SYM_MISSING);
  CHECK(sm_sym_lookup(s, -1, w_lib.vaddr, true, fr, 16) == 0);
  CHECK(sm_sym_lookup(s, 12345, w_lib.vaddr, true, fr, 16) == 0);
  CHECK(sm_sym_lookup(s, lib, w_lib.vaddr, true, fr, 0) == 0);
  CHECK(sm_sym_lookup(s, lib, w_lib.vaddr, true, NULL, 16) == 0);
  CHECK(sm_sym_add_module(s, NULL, NULL, 0) == -1);
  int nullid = sm_sym_add_module(s, w_lib.path, NULL, 20);
  CHECK(sm_sym_status(s, nullid) == SM_SYM_OK);
  sm_sym_free(s);
  sm_sym_free(NULL);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s TEST_SYM_C SYMLIB_C SYMLIB_CXX_CC [OBJCOPY]\n", argv[0]);
    return 2;
  }
  src_test = argv[1];
  src_lib = argv[2];
  src_cxx = argv[3];
  objcopy = argc > 4 && argv[4][0] ? argv[4] : NULL;
  dwz = argc > 5 && argv[5][0] ? argv[5] : NULL;
  unsetenv("SNAPMALLOC_DEBUG_DIRS");

  const char *t = getenv("TMPDIR");
  fmt(tmpdir, sizeof(tmpdir), "%s/test_sym.XXXXXX", t && t[0] ? t : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }

  capture_addresses();
  test_dwarf();
  test_return_address();
  test_bad_input();
  if (objcopy) {
    test_symtab_only();
    test_debug_files();
  }
  if (dwz) test_dwz();
  if (!getenv("TEST_SYM_KEEP")) remove_tree(tmpdir);
  if (!objcopy && th_failed == 0)
    TEST_SKIP("objcopy not found: symbol-table and debug-file tests not run");
  return test_summary();
}
